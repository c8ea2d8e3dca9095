// RingReader: consumes BPF ring buffers (BPF_MAP_TYPE_RINGBUF) like libbpf's ring_buffer, with
// one difference that matters for memory: the data area is mapped once, not twice.
//
// libbpf maps a ring's data pages twice in a row so that a record running past the end reads on
// contiguously. The kernel inserts every page at mmap time, so both mappings count in the
// process's RSS: a 32 MiB ring made gotlscap's peak RSS ~80 MB for ~45 MB of memory really used.
// Here the data is mapped once; the rare record that wraps around the end is copied into a
// scratch buffer (the header never wraps: records are 8-byte aligned in a power-of-two area).
// Hand-written because libbpf has no such mode; the record format (8-byte header: length with
// BUSY and DISCARD bits, then the sample, rounded up to 8) and the memory ordering (acquire on the
// producer position and on each header, release on the consumer position) are the kernel's
// (kernel/bpf/ringbuf.c) and libbpf's (ringbuf.c).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/result.h"

namespace gotlscap::capture {

// A callback per record, as libbpf's ring_buffer_sample_fn (a non-zero return stops consuming).
using RingSampleFn = int (*)(void* ctx, void* data, size_t size);

// One ring as laid out in memory: the consumer position (ours to write), the producer position
// and the data area of `mask + 1` bytes (a power of two).
struct RingView {
  uint64_t* consumer_pos = nullptr;
  const uint64_t* producer_pos = nullptr;
  const uint8_t* data = nullptr;
  uint64_t mask = 0;
};

// Delivers every committed record from the consumer position on, skipping discarded ones,
// stopping at one still being written (BUSY). Returns the records delivered, or the first
// non-zero value a callback returned (that record counts as consumed). `scratch` holds a record
// that wraps.
int64_t ConsumeRing(const RingView& ring, RingSampleFn fn, void* ctx, std::vector<uint8_t>& scratch);

class RingReader {
 public:
  RingReader();
  ~RingReader();
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  // Maps the ring of BPF map `map_fd` and polls it with the others. kInternal on failure.
  Result<bool> Add(int map_fd, RingSampleFn fn, void* ctx);
  // Waits up to timeout_ms for a wake-up on any ring, then consumes every ring. Returns the
  // records delivered, or a negative errno.
  int Poll(int timeout_ms);
  // Consumes every ring without waiting.
  int Consume();

 private:
  struct Ring {
    RingView view;
    RingSampleFn fn = nullptr;
    void* ctx = nullptr;
    void* consumer_map = nullptr;  // one page, read-write
    void* producer_map = nullptr;  // producer page + data, read-only, mapped once
    size_t producer_len = 0;
  };
  std::vector<Ring> rings_;
  std::vector<uint8_t> scratch_;
  int epoll_fd_ = -1;
};

}  // namespace gotlscap::capture
