#include "capture/ring_reader.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gotlscap::capture {
namespace {

// A ring laid out as the kernel lays it out (positions and a power-of-two data area), written
// by hand: records are an 8-byte header (length | BUSY bit 31 | DISCARD bit 30, page offset) and
// the sample, rounded up to 8 bytes.
struct FakeRing {
  explicit FakeRing(size_t size) : data(size) {}
  uint64_t consumer = 0, producer = 0;
  std::vector<uint8_t> data;

  // Appends a record at the producer position, wrapping around the end like the kernel.
  void Put(const std::string& sample, uint32_t flags = 0) {
    const uint64_t mask = data.size() - 1;
    const uint32_t len = static_cast<uint32_t>(sample.size()) | flags;
    std::memcpy(&data[producer & mask], &len, 4);
    for (size_t i = 0; i < sample.size(); i++) data[(producer + 8 + i) & mask] = static_cast<uint8_t>(sample[i]);
    producer += (8 + sample.size() + 7) & ~size_t{7};
  }
  RingView View() { return {&consumer, &producer, data.data(), data.size() - 1}; }
};

int Collect(void* ctx, void* data, size_t size) {
  static_cast<std::vector<std::string>*>(ctx)->emplace_back(static_cast<const char*>(data), size);
  return 0;
}

TEST(ConsumeRing, DeliversCommittedRecordsAndSkipsDiscardedOnes) {
  FakeRing ring(256);
  ring.Put("first");
  ring.Put("dropped", 1u << 30);
  ring.Put("second record");
  std::vector<std::string> got;
  std::vector<uint8_t> scratch;
  EXPECT_EQ(ConsumeRing(ring.View(), Collect, &got, scratch), 2);
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second record"}));
  EXPECT_EQ(ring.consumer, ring.producer) << "every record given back";
}

TEST(ConsumeRing, StopsAtARecordStillBeingWritten) {
  FakeRing ring(256);
  ring.Put("done");
  const uint64_t busy_at = ring.producer;
  ring.Put("in progress", 1u << 31);
  ring.Put("after");
  std::vector<std::string> got;
  std::vector<uint8_t> scratch;
  EXPECT_EQ(ConsumeRing(ring.View(), Collect, &got, scratch), 1);
  EXPECT_EQ(got, std::vector<std::string>{"done"});
  EXPECT_EQ(ring.consumer, busy_at) << "the busy record is read again next time";
}

TEST(ConsumeRing, ARecordWrappingAroundTheEndComesWhole) {
  FakeRing ring(64);
  // Start near the end: 48 bytes consumed, then a 30-byte sample whose body runs past byte 63.
  ring.consumer = ring.producer = 48;
  const std::string wrapping = "abcdefghijklmnopqrstuvwxyz0123";
  ring.Put(wrapping);
  ring.Put("next");
  std::vector<std::string> got;
  std::vector<uint8_t> scratch;
  EXPECT_EQ(ConsumeRing(ring.View(), Collect, &got, scratch), 2);
  EXPECT_EQ(got, (std::vector<std::string>{wrapping, "next"}));
  EXPECT_EQ(ring.consumer, ring.producer);
}

TEST(ConsumeRing, ACallbackErrorStopsAfterItsRecord) {
  FakeRing ring(256);
  ring.Put("a");
  ring.Put("b");
  int calls = 0;
  auto stop = [](void* ctx, void*, size_t) {
    ++*static_cast<int*>(ctx);
    return -7;
  };
  std::vector<uint8_t> scratch;
  EXPECT_EQ(ConsumeRing(ring.View(), stop, &calls, scratch), -7);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ring.consumer, 16u) << "the record that failed is consumed, the next is not";
}

}  // namespace
}  // namespace gotlscap::capture
