#include "output/stat_report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

namespace gotlscap::output {
namespace {

std::vector<stats::GroupRow> Rows() {
  stats::GroupRow a;
  a.side = "server";
  a.group = "/delay/80";
  a.count = 12;
  a.timed = 12;
  a.p50_ns = 80123456;
  a.p90_ns = 80500000;
  a.p99_ns = 81000000;
  a.max_ns = 81000001;
  a.resp_bytes = 36;
  stats::GroupRow b;
  b.side = "client";
  b.group = std::string("/bad\xff\x01path");
  b.count = 1;
  b.errors = 1;
  return {a, b};
}

TEST(StatReport, TextTableIsAligned) {
  StatPeriod p{"total", 1700000000000000000ull, 2.5, 13, 1};
  const std::string t = StatTable(p, "path", Rows());
  std::istringstream in(t);
  std::string title, header, r1, r2;
  std::getline(in, title);
  std::getline(in, header);
  std::getline(in, r1);
  std::getline(in, r2);
  EXPECT_NE(title.find("total 2.5 s: 13 responses (1 untimed"), std::string::npos) << title;
  EXPECT_EQ(header.find("SIDE"), 0u);
  // The group column starts at the same place on every line; the numbers end together.
  EXPECT_EQ(header.find("PATH"), r1.find("/delay/80"));
  EXPECT_EQ(header.find("PATH"), r2.find("/bad"));
  EXPECT_EQ(header.find("P50_MS") + 6, r1.find("80.123") + 6);
  EXPECT_NE(r2.find("\\x01"), std::string::npos);  // control bytes escaped
  EXPECT_NE(r2.find(" - "), std::string::npos);     // no timed response: no percentile
}

TEST(StatReport, JsonRowsAreValidLinesWithTheFields) {
  StatPeriod p{"interval", 1, 1.0, 13, 0};
  std::istringstream in(StatJson(p, "path", Rows()));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["type"], "stat");
    EXPECT_EQ(j["period"], "interval");
    for (const char* k : {"group", "count", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms", "req_bytes", "resp_bytes"})
      EXPECT_TRUE(j.contains(k)) << k;
    if (n == 0) {
      EXPECT_DOUBLE_EQ(j["p50_ms"].get<double>(), 80.123);
    }
    if (n == 1) {
      EXPECT_TRUE(j["p50_ms"].is_null());
    }
    n++;
  }
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace gotlscap::output
