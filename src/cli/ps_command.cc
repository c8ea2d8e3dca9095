#include "cli/ps_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/binary_cache.h"
#include "host/process_scan.h"
#include "output/json_report.h"

namespace gotlscap::cli {
namespace {

struct Row {
  host::ProcessInfo proc;
  std::shared_ptr<const host::BinaryVerdict> verdict;
};

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

void PrintJson(const std::vector<Row>& rows) {
  for (const auto& r : rows) {
    nlohmann::ordered_json j;
    j["pid"] = r.proc.pid;
    j["ppid"] = r.proc.ppid;
    j["uid"] = r.proc.uid;
    j["comm"] = r.proc.comm;
    j["binary"] = r.proc.exe;
    j["go_version"] = r.verdict->version;
    j["abi"] = r.verdict->abi;
    j["tls"] = r.verdict->tls;
    if (r.verdict->binary) j["arch"] = gobin::ArchName(r.verdict->binary->machine);
    if (!r.verdict->tls) j["reason"] = r.verdict->reason;
    fmt::print("{}", output::JsonLine(j));
  }
}

void PrintTable(const std::vector<Row>& rows) {
  const std::vector<std::string> head = {"PID", "COMM", "GO", "ABI", "TLS", "BINARY"};
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::string binary = r.proc.exe;
    if (!r.verdict->tls && !r.verdict->reason.empty()) binary += "  (" + r.verdict->reason + ")";
    cells.push_back({std::to_string(r.proc.pid), r.proc.comm, OrDash(r.verdict->version), OrDash(r.verdict->abi),
                     r.verdict->tls ? "yes" : "no", binary});
  }
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); c++) {
    width[c] = head[c].size();
    for (const auto& row : cells) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& v) {
    std::string out;
    for (size_t c = 0; c < v.size(); c++) {
      if (c + 1 == v.size()) out += v[c];  // last column: no padding
      else if (c == 0) out += fmt::format("{:>{}}  ", v[c], width[c]);
      else out += fmt::format("{:<{}}  ", v[c], width[c]);
    }
    fmt::print("{}\n", out);
  };
  line(head);
  for (const auto& row : cells) line(row);
}

}  // namespace

void RegisterPs(CLI::App& app, PsOptions& opts) {
  auto* cmd = app.add_subcommand("ps", "List the running Go processes a whole-host capture would attach to");
  cmd->add_flag("--all", opts.all, "Also list Go processes that cannot be attached to (no crypto/tls, analysis errors)");
  cmd->add_flag("--json", opts.json, "Print one JSON object per process (JSON Lines)");
}

int RunPs(const PsOptions& opts) {
  if (::geteuid() != 0) fmt::print(stderr, "gotlscap: not root: other users' processes are not visible\n");
  host::BinaryCache cache;
  std::vector<Row> rows;
  size_t hidden = 0;
  const auto self = static_cast<uint32_t>(::getpid());
  for (auto& p : host::ScanProcesses()) {  // sorted by pid
    if (p.pid == self) continue;
    auto v = cache.Get(p.file, p.exe_link);
    if (!v->go) continue;
    if (!v->tls && !opts.all) {
      hidden++;
      continue;
    }
    rows.push_back({std::move(p), std::move(v)});
  }
  if (opts.json) PrintJson(rows);
  else PrintTable(rows);
  if (hidden)
    fmt::print(stderr, "gotlscap: {} Go process{} not attachable (no crypto/tls, or not analysable) not shown; --all lists {}\n",
               hidden, hidden == 1 ? "" : "es", hidden == 1 ? "it" : "them");
  std::fflush(stdout);
  return 0;
}

}  // namespace gotlscap::cli
