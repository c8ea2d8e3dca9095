#include "output/stat_report.h"

#include <algorithm>
#include <array>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "output/json_report.h"

namespace gotlscap::output {
namespace {

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }
// Milliseconds with 3 decimals, as a JSON number.
double Ms3(uint64_t ns) { return static_cast<double>(ns / 1000) / 1e3; }

std::string Clock(uint64_t ts_ns) {
  const time_t t = static_cast<time_t>(ts_ns / 1000000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

// Columns right-aligned to the widest cell, the last (the group: free text) left-aligned.
std::string Align(const std::vector<std::vector<std::string>>& cells) {
  std::vector<size_t> width;
  for (const auto& row : cells) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        out += row[i];
      } else if (i == 0) {
        out += fmt::format("{:<{}}  ", row[i], width[i]);
      } else {
        out += fmt::format("{:>{}}  ", row[i], width[i]);
      }
    }
    out += '\n';
  }
  return out;
}

// Control characters in a path or host would break the table: shown escaped.
std::string Cell(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

}  // namespace

std::string StatTable(const StatPeriod& p, std::string_view group_by, const std::vector<stats::GroupRow>& rows) {
  std::string out = fmt::format("{} {} {:.1f} s: {} responses ({} untimed: request not seen)\n", Clock(p.ts_ns), p.name,
                                p.seconds, p.responses, p.untimed);
  std::vector<std::vector<std::string>> cells;
  std::string title(group_by);
  std::transform(title.begin(), title.end(), title.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });
  cells.push_back({"SIDE", "COUNT", "ERRORS", "P50_MS", "P90_MS", "P99_MS", "MAX_MS", "REQ_BYTES", "RESP_BYTES", title});
  for (const auto& r : rows) {
    auto ms = [&](uint64_t ns) { return r.timed ? fmt::format("{:.3f}", Ms(ns)) : std::string("-"); };
    cells.push_back({r.side, std::to_string(r.count), std::to_string(r.errors), ms(r.p50_ns), ms(r.p90_ns),
                     ms(r.p99_ns), ms(r.max_ns), std::to_string(r.req_bytes), std::to_string(r.resp_bytes),
                     Cell(r.group)});
  }
  return out + Align(cells) + "\n";
}

std::string SlowestTable(const std::vector<stats::SlowRequest>& slow) {
  std::string out = fmt::format("slowest {} requests:\n", slow.size());
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"SIDE", "LATENCY_MS", "WAIT_MS", "STATUS", "PID", "COMM", "CONN", "REMOTE", "METHOD", "REQUEST"});
  for (const auto& s : slow) {
    cells.push_back({s.side, fmt::format("{:.3f}", Ms(s.latency_ns)),
                     s.wait_ns ? fmt::format("{:.3f}", Ms(*s.wait_ns)) : std::string("-"),
                     s.status ? std::to_string(s.status) + (s.error ? "!" : "") : std::string("?"), std::to_string(s.pid),
                     Cell(s.comm), std::to_string(s.conn_id) + (s.stream ? fmt::format("/{}", s.stream) : ""),
                     s.remote.empty() ? "?" : s.remote, s.method.empty() ? "?" : Cell(s.method),
                     Cell(s.authority) + Cell(s.path)});
  }
  return out + Align(cells) + "\n";
}

std::string StatJson(const StatPeriod& p, std::string_view group_by, const std::vector<stats::GroupRow>& rows) {
  std::string out;
  for (const auto& r : rows) {
    nlohmann::ordered_json j;
    j["type"] = "stat";
    j["period"] = p.name;
    j["ts_ns"] = p.ts_ns;
    j["seconds"] = p.seconds;
    j["side"] = r.side;
    j["group_by"] = group_by;
    j["group"] = r.group;
    j["count"] = r.count;
    j["errors"] = r.errors;
    j["timed"] = r.timed;
    for (auto [name, ns] : std::array<std::pair<const char*, uint64_t>, 4>{
             {{"p50_ms", r.p50_ns}, {"p90_ms", r.p90_ns}, {"p99_ms", r.p99_ns}, {"max_ms", r.max_ns}}}) {
      if (r.timed) j[name] = Ms3(ns);
      else j[name] = nullptr;
    }
    j["req_bytes"] = r.req_bytes;
    j["resp_bytes"] = r.resp_bytes;
    out += JsonLine(j);
  }
  return out;
}

std::string SlowestJson(const StatPeriod& p, const std::vector<stats::SlowRequest>& slow) {
  std::string out;
  size_t rank = 0;
  for (const auto& s : slow) {
    nlohmann::ordered_json j;
    j["type"] = "slow";
    j["period"] = p.name;
    j["rank"] = ++rank;
    j["ts_ns"] = s.ts_ns;
    j["latency_ms"] = Ms3(s.latency_ns);
    if (s.wait_ns) j["wait_ms"] = Ms3(*s.wait_ns);
    else j["wait_ms"] = nullptr;
    j["side"] = s.side;
    j["proto"] = s.proto;
    j["method"] = s.method;
    j["authority"] = s.authority;
    j["path"] = s.path;
    j["status"] = s.status;
    j["error"] = s.error;
    j["pid"] = s.pid;
    j["comm"] = s.comm;
    j["conn"] = {{"id", s.conn_id}, {"local", s.local}, {"remote", s.remote}};
    if (s.stream) j["stream"] = s.stream;
    out += JsonLine(j);
  }
  return out;
}

}  // namespace gotlscap::output
