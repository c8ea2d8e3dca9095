// LatencyHistogram: an HDR-style log-linear histogram of nanosecond values. Bounded memory (at
// most 7,424 counters, grown only up to the largest value seen: ~11 K counters' worth of bytes for
// latencies up to seconds) and at most 1/256 relative error on any percentile (each octave
// [2^k, 2^(k+1)) is cut into 128 equal buckets and a percentile is reported as its bucket's
// middle; values under 256 are exact).
//
// Written by hand: Debian 12 packages no C or C++ HDR histogram library (only Java's and Go's),
// and the scheme is 40 lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gotlscap::stats {

class LatencyHistogram {
 public:
  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  // The value at percentile p (0 < p <= 100; nearest rank), 0 when empty.
  uint64_t Percentile(double p) const;

  // Bucket arithmetic, public for tests.
  static size_t Index(uint64_t value);
  static uint64_t BucketLow(size_t index);
  static uint64_t BucketHigh(size_t index);  // inclusive

 private:
  std::vector<uint32_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace gotlscap::stats
