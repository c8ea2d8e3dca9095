// RequestStats: `gotlscap stat`'s aggregation. Each decoded response (with the request it answers)
// lands in one group — by path, host, method, status, process name, connection or remote host —
// kept apart per side (server: the traced process answered; client: it asked), with a count,
// errors, an HDR-style histogram of latency_ns (request's first byte to response's last byte, as
// this process wrote/read them) and the bytes of request and response bodies. Memory is bounded:
// past `max_groups` groups, the rest is counted in one "(other)" group per side.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "decode/http_decoder.h"
#include "stats/latency_histogram.h"

namespace gotlscap::stats {

enum class GroupBy { kPath, kHost, kMethod, kStatus, kComm, kConn, kRemote };
enum class SortBy { kCount, kP50, kP90, kP99, kMax, kBytes };
std::optional<GroupBy> ParseGroupBy(std::string_view s);
std::optional<SortBy> ParseSortBy(std::string_view s);
const char* GroupByName(GroupBy g);

struct StatOptions {
  GroupBy group_by = GroupBy::kPath;
  int path_depth = 0;      // > 0: paths cut after this many segments ("/a/b/c", 1 → "/a")
  bool keep_query = false;  // false: "?..." dropped from paths
  size_t max_groups = 10000;
  size_t slowest = 0;  // keep the N slowest requests
};

struct GroupRow {
  std::string side;   // "server" | "client"
  std::string group;
  uint64_t count = 0;   // responses
  uint64_t errors = 0;  // status >= 500 or grpc-status != 0
  uint64_t timed = 0;   // responses whose request was seen (in the percentiles)
  uint64_t p50_ns = 0, p90_ns = 0, p99_ns = 0, max_ns = 0;
  uint64_t req_bytes = 0, resp_bytes = 0;  // body bytes on the wire
};

struct SlowRequest {
  uint64_t ts_ns = 0;  // when the response was complete
  uint64_t latency_ns = 0;
  std::optional<uint64_t> wait_ns;
  std::string side, proto, method, path, authority;
  int status = 0;
  bool error = false;
  uint32_t pid = 0;
  std::string comm;
  uint64_t conn_id = 0;
  std::string local, remote;
  uint32_t stream = 0;
};

class RequestStats {
 public:
  explicit RequestStats(StatOptions opts) : opts_(std::move(opts)) {}
  // Responses are counted; requests are not (their response carries what stat needs of them).
  void Add(const decode::DecodedMessage& m);
  // Rows sorted by `sort` (descending; count and group name break ties), at most `top` (0: all).
  std::vector<GroupRow> Rows(SortBy sort, size_t top = 0) const;
  // The slowest requests, slowest first.
  std::vector<SlowRequest> Slowest() const;
  uint64_t responses() const { return responses_; }
  uint64_t untimed() const { return untimed_; }
  size_t groups() const { return groups_.size(); }
  void Reset();

  // The group a response falls in (exposed for tests).
  std::string GroupOf(const decode::DecodedMessage& m) const;

 private:
  struct Group {
    uint64_t count = 0, errors = 0, req_bytes = 0, resp_bytes = 0;
    LatencyHistogram latency;
  };
  StatOptions opts_;
  std::map<std::pair<std::string, std::string>, Group> groups_;  // (side, group)
  std::vector<SlowRequest> slow_;  // a min-heap on latency_ns, at most opts_.slowest
  uint64_t responses_ = 0, untimed_ = 0;
};

}  // namespace gotlscap::stats
