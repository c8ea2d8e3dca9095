// `gotlscap text`: the plaintext of Go programs' TLS connections, as text or JSON Lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/capture_common.h"
#include "cli/nats_cli.h"

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct TextOptions {
  std::vector<std::string> elf_paths;
  std::vector<uint32_t> pids;
  std::optional<uint32_t> uid;
  FollowCli follow;  // no -e/-p: the whole host
  std::string format = "text";
  bool hex = false;
  std::string output;
  double duration = 0;
  // 32 MiB: the ring is mapped twice (64 MiB resident) and read every 10 ms, or at once when it
  // is 1/8 full. 8 MiB lost nothing in the benchmark (one traced end) but lost chunks in CI with
  // both ends of 3 MB exchanges traced while other tests competed for the 2 cores.
  uint64_t ringbuf_mb = 32;
  std::string decode = "http";  // none | http
  bool raw = false;             // keep Content-Encoding as sent
  NatsCli nats;                 // --nats: every event (JSON) to JetStream too
  uint64_t max_payload = 0;     // --max-payload BYTES per call (0: whole calls, up to 32 MiB)
};

void RegisterText(CLI::App& app, TextOptions& opts);
int RunText(const TextOptions& opts);

}  // namespace gotlscap::cli
