// `gotlscap gotls`: eCapture's `gotls` command line, word for word, mapped onto the text, keylog
// and pcap modes (the same engine: this file only translates options). Users' scripts and
// runbooks written for eCapture keep working.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/nats_cli.h"

namespace CLI {
class App;
}  // namespace CLI

namespace gotlscap::cli {

struct EcaptureOptions {
  std::string model = "text";  // text | pcap | pcapng | key | keylog
  std::vector<std::string> elf_paths;
  uint64_t pid = 0;  // 0: every process (eCapture's meaning)
  uint64_t uid = 0;  // 0: every user (eCapture's meaning)
  std::string keylog_file = "ecapture_gotls_key.log";
  std::string pcap_file = "ecapture_gotls.pcapng";
  std::string ifname;
  bool hex = false;
  std::string logaddr;    // run log (and, in text mode, the events) to this file
  std::string eventaddr;  // events to this file
  bool debug = false;
  std::string cgroup_path;  // --cgroup_path: gotlscap's --cgroup
  double duration = 0;  // ours: stop after SEC seconds
  std::vector<std::string> filter;
  NatsCli nats;  // gotlscap's --nats (text and keylog models)
  uint64_t max_payload = 0;  // gotlscap's --max-payload (text model)
  CLI::App* cmd = nullptr;  // to see which accepted-but-unneeded flags were given
};

void RegisterEcapture(CLI::App& app, EcaptureOptions& opts);
int RunEcapture(const EcaptureOptions& opts);

}  // namespace gotlscap::cli
