#include "stats/request_stats.h"

#include <gtest/gtest.h>

namespace gotlscap::stats {
namespace {

decode::DecodedMessage Response(std::string path, int status, uint64_t first, uint64_t last, bool server = true,
                                std::string trailer_status = "") {
  decode::DecodedMessage d;
  d.pid = 42;
  d.comm = "svc";
  d.conn.id = 7;
  d.conn.local = "10.0.0.1:443";
  d.conn.remote = "10.0.0.9:50000";
  auto& m = d.msg;
  m.kind = decode::HttpMessage::Kind::kResponse;
  m.proto = "HTTP/1.1";
  m.sent = server;
  m.status = status;
  m.request_method = "GET";
  m.request_path = std::move(path);
  m.request_authority = "api.example";
  m.request_first_ts_ns = first;
  m.request_last_ts_ns = first;
  m.first_ts_ns = last;
  m.ts_ns = last;
  m.body_wire_len = 10;
  m.request_body_len = 3;
  if (!trailer_status.empty()) m.trailers.push_back({"grpc-status", trailer_status});
  return d;
}

TEST(RequestStats, GroupsPerSideWithCountsErrorsAndPercentiles) {
  RequestStats st({});
  for (int i = 0; i < 10; ++i) st.Add(Response("/delay/80?x=" + std::to_string(i), 200, 1000, 1000 + 80000000));
  st.Add(Response("/status/503", 503, 0 + 5, 5 + 1000000));
  st.Add(Response("/grpc", 200, 10, 20, true, "13"));
  st.Add(Response("/grpc", 200, 10, 30, false, "0"));
  auto rows = st.Rows(SortBy::kCount);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].group, "/delay/80");  // query dropped
  EXPECT_EQ(rows[0].side, "server");
  EXPECT_EQ(rows[0].count, 10u);
  EXPECT_EQ(rows[0].errors, 0u);
  EXPECT_NEAR(static_cast<double>(rows[0].p50_ns), 80e6, 80e6 * 0.01);
  EXPECT_EQ(rows[0].req_bytes, 30u);
  EXPECT_EQ(rows[0].resp_bytes, 100u);
  int errors = 0;
  for (const auto& r : rows) errors += static_cast<int>(r.errors);
  EXPECT_EQ(errors, 2);  // the 503 and grpc-status 13; the client's grpc-status 0 is not
  EXPECT_EQ(st.responses(), 13u);
}

TEST(RequestStats, PathDepthQueryAndOtherGroupings) {
  StatOptions o;
  o.path_depth = 1;
  RequestStats st(o);
  decode::DecodedMessage d = Response("/delay/80/x?q=1", 200, 1, 2);
  EXPECT_EQ(st.GroupOf(d), "/delay");
  o.path_depth = 2;
  o.keep_query = true;
  EXPECT_EQ(RequestStats(o).GroupOf(Response("/a/b?q=1", 200, 1, 2)), "/a/b?q=1");
  o.path_depth = 0;
  EXPECT_EQ(RequestStats(o).GroupOf(Response("/a/b?q=1", 200, 1, 2)), "/a/b?q=1");
  o.group_by = GroupBy::kRemote;
  EXPECT_EQ(RequestStats(o).GroupOf(d), "10.0.0.9");
  d.conn.remote = "[::1]:8443";
  EXPECT_EQ(RequestStats(o).GroupOf(d), "[::1]");
  o.group_by = GroupBy::kHost;
  EXPECT_EQ(RequestStats(o).GroupOf(d), "api.example");
  o.group_by = GroupBy::kStatus;
  EXPECT_EQ(RequestStats(o).GroupOf(d), "200");
  o.group_by = GroupBy::kConn;
  EXPECT_EQ(RequestStats(o).GroupOf(d), "42 7 10.0.0.1:443->[::1]:8443");
}

TEST(RequestStats, UntimedSlowestAndBoundedGroups) {
  StatOptions o;
  o.slowest = 2;
  o.max_groups = 3;
  RequestStats st(o);
  for (int i = 1; i <= 5; ++i) st.Add(Response("/p" + std::to_string(i), 200, 100, 100 + i * 1000));
  decode::DecodedMessage untimed = Response("/p1", 200, 0, 50);
  st.Add(untimed);
  EXPECT_EQ(st.untimed(), 1u);
  EXPECT_EQ(st.responses(), 6u);
  EXPECT_EQ(st.groups(), 4u);  // /p1 /p2 /p3 and (other)
  auto rows = st.Rows(SortBy::kMax);
  EXPECT_EQ(rows[0].group, "(other)");  // /p4 and /p5: the slowest
  EXPECT_EQ(rows[0].count, 2u);
  auto slow = st.Slowest();
  ASSERT_EQ(slow.size(), 2u);
  EXPECT_EQ(slow[0].path, "/p5");
  EXPECT_EQ(slow[0].latency_ns, 5000u);
  EXPECT_EQ(slow[1].path, "/p4");
  EXPECT_EQ(st.Rows(SortBy::kCount, 1).size(), 1u);
  st.Reset();
  EXPECT_EQ(st.responses(), 0u);
  EXPECT_TRUE(st.Rows(SortBy::kCount).empty());
}

TEST(RequestStats, RequestsAndInterimResponsesAreNotCounted) {
  RequestStats st({});
  decode::DecodedMessage req = Response("/a", 0, 1, 2);
  req.msg.kind = decode::HttpMessage::Kind::kRequest;
  st.Add(req);
  st.Add(Response("/a", 100, 1, 2));
  EXPECT_EQ(st.responses(), 0u);
}

}  // namespace
}  // namespace gotlscap::stats
