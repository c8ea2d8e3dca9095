#include "output/json_report.h"

#include "output/encoding.h"

namespace gotlscap::output {
namespace {

nlohmann::ordered_json Sanitized(const nlohmann::ordered_json& j) {
  if (j.is_string()) return ValidUtf8(j.get_ref<const std::string&>());
  if (j.is_array()) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const auto& e : j) a.push_back(Sanitized(e));
    return a;
  }
  if (j.is_object()) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (const auto& [k, v] : j.items()) {
      std::string key = ValidUtf8(k);
      if (o.contains(key)) {
        std::string base = key;
        for (int n = 2; o.contains(key); n++) key = base + " #" + std::to_string(n);
      }
      o[key] = Sanitized(v);
    }
    return o;
  }
  return j;  // numbers, booleans, null
}

}  // namespace

nlohmann::ordered_json InspectReport(const gobin::GoBinary& b) {
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

std::string JsonLine(const nlohmann::ordered_json& j) {
  // Sanitized first, so nothing is left for the error handler; `replace` only guards the guarantee.
  std::string line = Sanitized(j).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

}  // namespace gotlscap::output
