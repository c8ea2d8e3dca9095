// `gotlscap stat`'s output: the groups as a table aligned like `ss`/`top` (text) or one JSON
// object per group (JSON Lines, through JsonLine: valid UTF-8 whatever the paths hold), and the
// slowest requests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stats/request_stats.h"

namespace gotlscap::output {

struct StatPeriod {
  std::string_view name;   // "interval" | "total"
  uint64_t ts_ns = 0;      // end of the period (Unix epoch ns)
  double seconds = 0;      // its length
  uint64_t responses = 0;  // all responses of the period (also those past --top)
  uint64_t untimed = 0;    // responses whose request was not seen
};

// Text: a title line, then a header and one row per group (milliseconds with 3 decimals).
std::string StatTable(const StatPeriod& p, std::string_view group_by, const std::vector<stats::GroupRow>& rows);
std::string SlowestTable(const std::vector<stats::SlowRequest>& slow);
// JSON Lines: {"type":"stat","period":…,"ts_ns":…,"side":…,"group_by":…,"group":…,"count":…,"errors":…,
// "timed":…,"p50_ms":…,"p90_ms":…,"p99_ms":…,"max_ms":…,"req_bytes":…,"resp_bytes":…} per row.
std::string StatJson(const StatPeriod& p, std::string_view group_by, const std::vector<stats::GroupRow>& rows);
// {"type":"slow","period":…,"rank":…,"latency_ms":…,"wait_ms":…,"side":…,"method":…,"path":…,…} per request.
std::string SlowestJson(const StatPeriod& p, const std::vector<stats::SlowRequest>& slow);

}  // namespace gotlscap::output
