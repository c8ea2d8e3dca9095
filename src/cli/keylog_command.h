// `gotlscap keylog`: every TLS secret of Go programs, as an SSLKEYLOGFILE.
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

struct KeylogOptions {
  std::string keylog_file;
  std::vector<std::string> elf_paths;
  std::vector<uint32_t> pids;
  std::optional<uint32_t> uid;
  FollowCli follow;  // no -e/-p: the whole host
  double duration = 0;
  NatsCli nats;  // --nats: each secret as a JSON "secret" event to JetStream (-k then optional)
};

void RegisterKeylog(CLI::App& app, KeylogOptions& opts);
int RunKeylog(const KeylogOptions& opts);

}  // namespace gotlscap::cli
