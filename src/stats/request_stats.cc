#include "stats/request_stats.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace gotlscap::stats {
namespace {

constexpr std::string_view kOther = "(other)";

// "/a/b/c?x=1": the query dropped unless kept, then cut after `depth` segments.
std::string PathGroup(std::string_view path, int depth, bool keep_query) {
  if (path.empty()) return "?";
  if (!keep_query) path = path.substr(0, path.find('?'));
  if (depth > 0) {
    int seen = 0;
    for (size_t i = 0; i < path.size(); ++i)
      if (path[i] == '/' && ++seen > depth) {
        path = path.substr(0, i);
        break;
      }
  }
  return std::string(path);
}

// "10.0.0.1:443" → "10.0.0.1", "[::1]:8443" → "[::1]".
std::string HostOf(const std::string& addr) {
  if (addr.empty()) return "?";
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || (addr.front() == '[' && addr[colon - 1] != ']')) return addr;
  return addr.substr(0, colon);
}

bool ByName(const GroupRow& a, const GroupRow& b) {
  return std::tie(a.side, a.group) < std::tie(b.side, b.group);
}

}  // namespace

std::optional<GroupBy> ParseGroupBy(std::string_view s) {
  for (GroupBy g : {GroupBy::kPath, GroupBy::kHost, GroupBy::kMethod, GroupBy::kStatus, GroupBy::kComm, GroupBy::kConn,
                    GroupBy::kRemote})
    if (s == GroupByName(g)) return g;
  return std::nullopt;
}

const char* GroupByName(GroupBy g) {
  switch (g) {
    case GroupBy::kPath: return "path";
    case GroupBy::kHost: return "host";
    case GroupBy::kMethod: return "method";
    case GroupBy::kStatus: return "status";
    case GroupBy::kComm: return "comm";
    case GroupBy::kConn: return "conn";
    case GroupBy::kRemote: return "remote";
  }
  return "?";
}

std::optional<SortBy> ParseSortBy(std::string_view s) {
  if (s == "count") return SortBy::kCount;
  if (s == "p50") return SortBy::kP50;
  if (s == "p90") return SortBy::kP90;
  if (s == "p99") return SortBy::kP99;
  if (s == "max") return SortBy::kMax;
  if (s == "bytes") return SortBy::kBytes;
  return std::nullopt;
}

std::string RequestStats::GroupOf(const decode::DecodedMessage& d) const {
  const auto& m = d.msg;
  switch (opts_.group_by) {
    case GroupBy::kPath: return PathGroup(m.request_path, opts_.path_depth, opts_.keep_query);
    case GroupBy::kHost: return m.request_authority.empty() ? "?" : m.request_authority;
    case GroupBy::kMethod: return m.request_method.empty() ? "?" : m.request_method;
    case GroupBy::kStatus: return m.status ? std::to_string(m.status) : "?";
    case GroupBy::kComm: return d.comm;
    case GroupBy::kConn:
      return fmt::format("{} {} {}->{}", d.pid, d.conn.id, d.conn.local.empty() ? "?" : d.conn.local,
                         d.conn.remote.empty() ? "?" : d.conn.remote);
    case GroupBy::kRemote: return HostOf(d.conn.remote);
  }
  return "?";
}

void RequestStats::Add(const decode::DecodedMessage& d) {
  const auto& m = d.msg;
  if (m.kind != decode::HttpMessage::Kind::kResponse || m.status < 200) return;  // interim 1xx: not an answer
  responses_++;
  // The process wrote the response: it is the server of this exchange.
  std::string side = m.sent ? "server" : "client";
  auto key = std::make_pair(side, GroupOf(d));
  auto it = groups_.find(key);
  if (it == groups_.end()) {
    if (groups_.size() >= opts_.max_groups) key.second = std::string(kOther);
    it = groups_.try_emplace(std::move(key)).first;
  }
  Group& g = it->second;
  const bool error = decode::IsErrorResponse(m);
  g.count++;
  g.errors += error;
  g.req_bytes += m.request_body_len;
  g.resp_bytes += m.body_wire_len;
  const auto latency = decode::LatencyNs(m);
  if (!latency) {
    untimed_++;
    return;
  }
  g.latency.Record(*latency);
  if (opts_.slowest == 0) return;
  auto later = [](const SlowRequest& a, const SlowRequest& b) { return a.latency_ns > b.latency_ns; };
  if (slow_.size() == opts_.slowest && slow_.front().latency_ns >= *latency) return;
  SlowRequest s;
  s.ts_ns = m.ts_ns;
  s.latency_ns = *latency;
  s.wait_ns = decode::WaitNs(m);
  s.side = std::move(side);
  s.proto = m.proto;
  s.method = m.request_method;
  s.path = m.request_path;
  s.authority = m.request_authority;
  s.status = m.status;
  s.error = error;
  s.pid = d.pid;
  s.comm = d.comm;
  s.conn_id = d.conn.id;
  s.local = d.conn.local;
  s.remote = d.conn.remote;
  s.stream = m.stream;
  if (slow_.size() == opts_.slowest) {
    std::pop_heap(slow_.begin(), slow_.end(), later);
    slow_.pop_back();
  }
  slow_.push_back(std::move(s));
  std::push_heap(slow_.begin(), slow_.end(), later);
}

std::vector<GroupRow> RequestStats::Rows(SortBy sort, size_t top) const {
  std::vector<GroupRow> rows;
  rows.reserve(groups_.size());
  for (const auto& [key, g] : groups_) {
    GroupRow r;
    r.side = key.first;
    r.group = key.second;
    r.count = g.count;
    r.errors = g.errors;
    r.timed = g.latency.count();
    r.p50_ns = g.latency.Percentile(50);
    r.p90_ns = g.latency.Percentile(90);
    r.p99_ns = g.latency.Percentile(99);
    r.max_ns = g.latency.max();
    r.req_bytes = g.req_bytes;
    r.resp_bytes = g.resp_bytes;
    rows.push_back(std::move(r));
  }
  auto metric = [sort](const GroupRow& r) -> uint64_t {
    switch (sort) {
      case SortBy::kCount: return r.count;
      case SortBy::kP50: return r.p50_ns;
      case SortBy::kP90: return r.p90_ns;
      case SortBy::kP99: return r.p99_ns;
      case SortBy::kMax: return r.max_ns;
      case SortBy::kBytes: return r.req_bytes + r.resp_bytes;
    }
    return 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const GroupRow& a, const GroupRow& b) {
    if (metric(a) != metric(b)) return metric(a) > metric(b);
    if (a.count != b.count) return a.count > b.count;
    return ByName(a, b);
  });
  if (top > 0 && rows.size() > top) rows.resize(top);
  return rows;
}

std::vector<SlowRequest> RequestStats::Slowest() const {
  std::vector<SlowRequest> out = slow_;
  std::sort(out.begin(), out.end(), [](const SlowRequest& a, const SlowRequest& b) {
    if (a.latency_ns != b.latency_ns) return a.latency_ns > b.latency_ns;
    return a.ts_ns < b.ts_ns;
  });
  return out;
}

void RequestStats::Reset() {
  groups_.clear();
  slow_.clear();
  responses_ = untimed_ = 0;
}

}  // namespace gotlscap::stats
