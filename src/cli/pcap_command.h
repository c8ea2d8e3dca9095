// `gotlscap pcap`: the packets of an interface and the TLS secrets of Go programs in one pcapng
// that Wireshark opens already decrypted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/capture_common.h"

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct PcapOptions {
  std::vector<std::string> interfaces;  // "any": every interface, new ones too
  std::string file;  // "-": stdout
  uint64_t count = 0;       // -c: stop after this many packets (0: no limit)
  double file_size_mb = 0;  // -C: rotate past this many millions of bytes (0: one file)
  uint32_t file_count = 0;  // -W: at most this many files, reused in turn
  std::string direction = "inout";  // -Q in|out|inout
  std::vector<std::string> elf_paths;
  std::vector<uint32_t> pids;
  std::optional<uint32_t> uid;
  FollowCli follow;  // no -e/-p: the whole host
  uint32_t snaplen = 262144;
  double duration = 0;
  uint32_t ringbuf_mb = 64;
  std::vector<std::string> filter;  // pcap-filter words, joined with spaces
};

void RegisterPcap(CLI::App& app, PcapOptions& opts);
int RunPcap(const PcapOptions& opts);

}  // namespace gotlscap::cli
