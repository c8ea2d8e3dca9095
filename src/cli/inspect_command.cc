#include "cli/inspect_command.h"

#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "gobin/go_binary.h"
#include "output/json_report.h"

namespace gotlscap::cli {
namespace {

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
    fmt::print("{}", output::JsonLine(output::InspectReport(*r)));
  else
    PrintText(*r);
  return 0;
}

}  // namespace gotlscap::cli
