#include "stats/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace gotlscap::stats {
namespace {

TEST(LatencyHistogram, BucketsCoverEveryValueWithinOnePart128) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> values = {0, 1, 255, 256, 257, 511, 512, 1000, 123456789, UINT64_MAX / 3, UINT64_MAX};
  for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
  for (uint64_t v : values) {
    const size_t i = LatencyHistogram::Index(v);
    ASSERT_LE(LatencyHistogram::BucketLow(i), v) << v;
    ASSERT_GE(LatencyHistogram::BucketHigh(i), v) << v;
    ASSERT_LT(i, 7424u);
    const uint64_t width = LatencyHistogram::BucketHigh(i) - LatencyHistogram::BucketLow(i);
    if (v >= 256) ASSERT_LE(static_cast<double>(width), static_cast<double>(v) / 128.0) << v;
    else ASSERT_EQ(width, 0u);
  }
  // Buckets are contiguous: each starts right after the previous one ends.
  for (size_t i = 1; i < 7424; ++i) ASSERT_EQ(LatencyHistogram::BucketLow(i), LatencyHistogram::BucketHigh(i - 1) + 1) << i;
}

TEST(LatencyHistogram, PercentilesWithinOnePercentOfExact) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> dist(16.0, 1.5);  // ~ms-scale latencies in ns
  LatencyHistogram h;
  std::vector<uint64_t> exact;
  for (int i = 0; i < 50000; ++i) {
    const uint64_t v = static_cast<uint64_t>(dist(rng));
    h.Record(v);
    exact.push_back(v);
  }
  std::sort(exact.begin(), exact.end());
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * exact.size()));
    const double want = static_cast<double>(exact[rank - 1]);
    EXPECT_NEAR(static_cast<double>(h.Percentile(p)), want, want * 0.01) << p;
  }
  EXPECT_EQ(h.max(), exact.back());
  EXPECT_EQ(h.min(), exact.front());
  EXPECT_EQ(h.count(), exact.size());
}

TEST(LatencyHistogram, EmptyAndMerge) {
  LatencyHistogram a, b;
  EXPECT_EQ(a.Percentile(50), 0u);
  EXPECT_EQ(a.max(), 0u);
  for (uint64_t v = 1; v <= 100; ++v) a.Record(v * 1000000);
  for (uint64_t v = 101; v <= 200; ++v) b.Record(v * 1000000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 200u);
  EXPECT_NEAR(static_cast<double>(a.Percentile(50)), 100e6, 1e6);
  EXPECT_EQ(a.Percentile(100), 200000000u);
}

}  // namespace
}  // namespace gotlscap::stats
