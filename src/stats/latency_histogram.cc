#include "stats/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace gotlscap::stats {
namespace {

constexpr unsigned kSubBits = 7;                  // 128 buckets per octave
constexpr uint64_t kExact = uint64_t{1} << (kSubBits + 1);  // values below 256 have a bucket each
constexpr size_t kPerOctave = size_t{1} << kSubBits;

}  // namespace

size_t LatencyHistogram::Index(uint64_t v) {
  if (v < kExact) return static_cast<size_t>(v);
  const unsigned msb = 63 - static_cast<unsigned>(std::countl_zero(v));  // >= 8
  const unsigned shift = msb - kSubBits;
  const uint64_t sub = (v >> shift) - kPerOctave;  // 0..127
  return static_cast<size_t>(kExact + (msb - (kSubBits + 1)) * kPerOctave + sub);
}

uint64_t LatencyHistogram::BucketLow(size_t i) {
  if (i < kExact) return i;
  const size_t octave = (i - kExact) / kPerOctave;  // msb - 8
  const uint64_t sub = (i - kExact) % kPerOctave + kPerOctave;
  return sub << (octave + 1);
}

uint64_t LatencyHistogram::BucketHigh(size_t i) {
  if (i < kExact) return i;
  const size_t octave = (i - kExact) / kPerOctave;
  const uint64_t width = uint64_t{1} << (octave + 1);
  return BucketLow(i) + (width - 1);
}

void LatencyHistogram::Record(uint64_t v) {
  const size_t i = Index(v);
  if (i >= counts_.size()) counts_.resize(i + 1);
  if (counts_[i] != UINT32_MAX) counts_[i]++;
  count_++;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void LatencyHistogram::Merge(const LatencyHistogram& o) {
  if (o.counts_.size() > counts_.size()) counts_.resize(o.counts_.size());
  for (size_t i = 0; i < o.counts_.size(); ++i)
    counts_[i] = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{counts_[i]} + o.counts_[i], UINT32_MAX));
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

uint64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  // Nearest rank: the smallest value with at least ceil(p% of count) values at or below it.
  const double want = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(count_));
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(want));
  if (rank >= count_) return max_;  // the largest value is known exactly
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace gotlscap::stats
