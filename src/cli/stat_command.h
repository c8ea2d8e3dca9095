// `gotlscap stat`: which requests are slow, from the traced process's own point of view. The same
// targets as `text` (whole host by default, -e/-p, --container, -- COMMAND); decoded responses are
// grouped (stats::RequestStats) and printed every --interval seconds and at the end. Only headers
// are needed: each call is captured up to --max-payload bytes (default 4 KiB) in the kernel, the
// rest counted, so bulk bodies cost little.
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

struct StatOptions {
  std::vector<std::string> elf_paths;
  std::vector<uint32_t> pids;
  std::optional<uint32_t> uid;
  FollowCli follow;
  std::string output;
  std::string format = "text";
  double duration = 0;
  double interval = 0;  // 0: only at the end
  std::string group_by = "path";
  std::string sort = "count";
  size_t top = 0;  // 0: every group
  int path_depth = 0;
  bool keep_query = false;
  size_t slowest = 0;
  uint64_t max_payload = 4096;
  uint64_t ringbuf_mb = 32;
};

void RegisterStat(CLI::App& app, StatOptions& opts);
int RunStat(const StatOptions& opts);

}  // namespace gotlscap::cli
