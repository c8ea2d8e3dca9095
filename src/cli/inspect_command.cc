#include "cli/inspect_command.h"

#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "gobin/go_binary.h"

namespace gotlscap::cli {
namespace {

nlohmann::ordered_json ToJson(const gobin::GoBinary& b) {
  nlohmann::ordered_json j;
  j["path"] = b.path;
  j["go_version"] = b.version_string;
  j["arch"] = gobin::ArchName(b.machine);
  j["pie"] = b.pie;
  j["stripped"] = b.stripped;
  j["abi"] = gobin::AbiName(b.abi);
  if (b.build_info) {
    const auto& bi = *b.build_info;
    j["go_version_raw"] = bi.version;
    j["main_path"] = bi.main_path;
    j["module_path"] = bi.module_path;
    j["module_version"] = bi.module_version;
    j["dependencies"] = bi.dependency_count;
    nlohmann::ordered_json settings = nlohmann::ordered_json::object();
    for (const auto& [k, v] : bi.settings) settings[k] = v;
    j["build_settings"] = settings;
  }
  j["pclntab"] = {{"format", gobin::PclntabFormatName(b.pclntab_format)},
                  {"address", b.pclntab_address},
                  {"functions", b.function_count}};
  j["text_start"] = b.text_start;
  nlohmann::ordered_json fns = nlohmann::ordered_json::object();
  for (const auto& f : b.functions) {
    fns[f.name] = {{"address", f.address},     {"file_offset", f.file_offset}, {"size", f.size},
                   {"args_size", f.args_size}, {"ret_offsets", f.ret_offsets},
                   {"body_offset", f.body_offset},
                   // Entry uprobes: on the emulated stack-check JBE when at_check (one trap, not two).
                   {"entry_probe", {{"offset", f.entry_probe_offset}, {"at_check", f.entry_probe_at_check}}}};
    if (f.name == "crypto/tls.(*Conn).Read") {
      // Which probes Read gets, and the disassembly's proof (or why the fallback).
      fns[f.name]["read_path"] = gobin::ReadPathName(b.read_path);
      fns[f.name][b.read_path == gobin::ReadPath::kRetOnly ? "proof" : "reason"] = b.read_path_why;
      // RETs left unprobed because they return n == 0 (no data can pass there).
      fns[f.name]["zero_result_rets"] = b.read_zero_rets;
      if (!b.read_zero_rets_why.empty()) fns[f.name]["zero_result_rets_note"] = b.read_zero_rets_why;
      // Where the results are read: RET probes left, and probes at the deferred call.
      fns[f.name]["ret_probes"] = b.read_ret_probes;
      nlohmann::ordered_json exits = nlohmann::ordered_json::array();
      for (const auto& e : b.read_exits)
        exits.push_back({{"address", e.address},
                         {"file_offset", e.file_offset},
                         {"in_callee", e.in_callee},
                         {"at_check", e.at_check},
                         {"to_entry", e.to_entry},
                         {"n_offset", e.n_off},
                         {"err_offset", e.err_off},
                         {"return_sites", e.return_sites},
                         {"rets", e.rets}});
      fns[f.name]["exits"] = exits;
      fns[f.name]["exits_note"] = b.read_exits_why;
    }
  }
  j["functions"] = fns;
  return j;
}

void PrintText(const gobin::GoBinary& b) {
  fmt::print("{}\n", b.path);
  fmt::print("  go version   {}{}\n", b.version_string,
             b.build_info && b.build_info->version != b.version_string ? fmt::format(" ({})", b.build_info->version) : "");
  fmt::print("  arch         {} ({} ABI)\n", gobin::ArchName(b.machine), gobin::AbiName(b.abi));
  fmt::print("  executable   {}, {}\n", b.pie ? "PIE" : "non-PIE", b.stripped ? "stripped" : "with symbols");
  if (b.build_info) {
    const auto& bi = *b.build_info;
    if (!bi.main_path.empty()) fmt::print("  main         {}\n", bi.main_path);
    if (!bi.module_path.empty()) fmt::print("  module       {} {}\n", bi.module_path, bi.module_version);
    for (const auto& [k, v] : bi.settings) fmt::print("  build        {}={}\n", k, v);
  }
  fmt::print("  pclntab      {} format at {:#x}, {} functions, text at {:#x}\n",
             gobin::PclntabFormatName(b.pclntab_format), b.pclntab_address, b.function_count, b.text_start);
  fmt::print("  hooks:\n");
  for (const auto& f : b.functions) {
    std::string rets;
    for (auto r : f.ret_offsets) rets += fmt::format("{}{:#x}", rets.empty() ? "" : " ", r);
    fmt::print("    {:<42} addr {:#x}  file offset {:#x}  size {}  body at +{:#x}  entry probe at +{:#x}{}  RET at +[{}]\n",
               f.name, f.address, f.file_offset, f.size, f.body_offset, f.entry_probe_offset,
               f.entry_probe_at_check ? " (JBE)" : "", rets);
  }
  fmt::print("  read path    {}: {}\n", gobin::ReadPathName(b.read_path), b.read_path_why);
  if (!b.read_zero_rets.empty()) {
    std::string rets;
    for (auto r : b.read_zero_rets) rets += fmt::format("{}{:#x}", rets.empty() ? "" : " ", r);
    fmt::print("  read RETs    not probed at +[{}]: n == 0 there (nothing to capture)\n", rets);
  } else if (!b.read_zero_rets_why.empty()) {
    fmt::print("  read RETs    {}\n", b.read_zero_rets_why);
  }
  fmt::print("  read exits   {}\n", b.read_exits_why);
  for (const auto& e : b.read_exits) {
    std::string rets;
    for (auto r : e.rets) rets += fmt::format("{}+{:#x}", rets.empty() ? "" : " ", r);
    fmt::print("               {} at {:#x}{}: entry SP = SP+{:#x}, n at SP+{:#x}, err at SP+{:#x} (for RETs {})\n",
               e.in_callee ? "closure entry" : "CALL", e.address, e.at_check ? " (JBE)" : "", e.to_entry, e.n_off,
               e.err_off, rets);
  }
}

}  // namespace

void RegisterInspect(CLI::App& app, InspectOptions& opts) {
  auto* cmd = app.add_subcommand("inspect", "Report what a capture needs from a Go binary (no root needed)");
  cmd->add_flag("--json", opts.json, "Print one JSON object");
  cmd->add_option("BINARY", opts.binary, "Go ELF executable")->required();
}

int RunInspect(const InspectOptions& opts) {
  auto r = gobin::AnalyzeGoBinary(opts.binary);
  if (!r.ok()) {
    const std::string& m = r.error().message;
    // Messages from the file layer already start with the path.
    if (m.rfind(opts.binary, 0) == 0)
      fmt::print(stderr, "gotlscap: {}\n", m);
    else
      fmt::print(stderr, "gotlscap: {}: {}\n", opts.binary, m);
    return ExitCodeFor(r.error().kind);
  }
  if (opts.json)
    fmt::print("{}\n", ToJson(*r).dump());
  else
    PrintText(*r);
  return 0;
}

}  // namespace gotlscap::cli
