#include "capture/ring_reader.h"

#include <bpf/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace gotlscap::capture {
namespace {

// The kernel's record header (struct bpf_ringbuf_hdr): length with two flag bits, page offset.
constexpr uint32_t kBusyBit = 1u << 31;
constexpr uint32_t kDiscardBit = 1u << 30;
constexpr uint64_t kHeaderSize = 8;

uint64_t RoundUp8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

}  // namespace

int64_t ConsumeRing(const RingView& ring, RingSampleFn fn, void* ctx, std::vector<uint8_t>& scratch) {
  int64_t delivered = 0;
  const uint64_t size = ring.mask + 1;
  uint64_t cons = __atomic_load_n(ring.consumer_pos, __ATOMIC_ACQUIRE);
  for (;;) {
    const uint64_t prod = __atomic_load_n(ring.producer_pos, __ATOMIC_ACQUIRE);
    if (cons >= prod) break;
    while (cons < prod) {
      const uint64_t at = cons & ring.mask;
      const uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(ring.data + at), __ATOMIC_ACQUIRE);
      if (len & kBusyBit) return delivered;  // still being written: the next poll takes it
      const uint64_t sample_len = len & ~(kBusyBit | kDiscardBit);
      const uint64_t body = (at + kHeaderSize) & ring.mask;
      cons += RoundUp8(kHeaderSize + sample_len);
      if (!(len & kDiscardBit)) {
        const uint8_t* sample = ring.data + body;
        if (body + sample_len > size) {  // wraps around the end of the data area
          scratch.resize(sample_len);
          const uint64_t first = size - body;
          std::memcpy(scratch.data(), ring.data + body, first);
          std::memcpy(scratch.data() + first, ring.data, sample_len - first);
          sample = scratch.data();
        }
        if (int err = fn(ctx, const_cast<uint8_t*>(sample), sample_len); err != 0) {
          __atomic_store_n(ring.consumer_pos, cons, __ATOMIC_RELEASE);
          return err;
        }
        delivered++;
      }
      // Each record is given back as soon as it is consumed, so the producer never waits on a
      // whole batch.
      __atomic_store_n(ring.consumer_pos, cons, __ATOMIC_RELEASE);
    }
  }
  return delivered;
}

RingReader::RingReader() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}

RingReader::~RingReader() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (Ring& r : rings_) {
    if (r.consumer_map) munmap(r.consumer_map, page);
    if (r.producer_map) munmap(r.producer_map, r.producer_len);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Result<bool> RingReader::Add(int map_fd, RingSampleFn fn, void* ctx) {
  auto fail = [&](const char* what) {
    return MakeError(ErrorKind::kInternal, fmt::format("cannot map the eBPF ring buffer: {}: {}", what, std::strerror(errno)));
  };
  if (epoll_fd_ < 0) return fail("epoll_create1");
  bpf_map_info info = {};
  uint32_t info_len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &info_len) != 0) return fail("map info");
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uint64_t size = info.max_entries;
  if (size == 0 || (size & (size - 1)) != 0 || size % page != 0) {
    errno = EINVAL;
    return fail("size not a power of two");
  }
  Ring r;
  r.fn = fn;
  r.ctx = ctx;
  r.consumer_map = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (r.consumer_map == MAP_FAILED) return fail("consumer page");
  // The producer page and the data area, once (libbpf maps the data twice).
  r.producer_len = page + size;
  r.producer_map = mmap(nullptr, r.producer_len, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(page));
  if (r.producer_map == MAP_FAILED) {
    const int err = errno;
    munmap(r.consumer_map, page);
    errno = err;
    return fail("data pages");
  }
  r.view.consumer_pos = static_cast<uint64_t*>(r.consumer_map);
  r.view.producer_pos = static_cast<const uint64_t*>(r.producer_map);
  r.view.data = static_cast<const uint8_t*>(r.producer_map) + page;
  r.view.mask = size - 1;
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u32 = static_cast<uint32_t>(rings_.size());
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, map_fd, &ev) != 0) {
    const int err = errno;
    munmap(r.consumer_map, page);
    munmap(r.producer_map, r.producer_len);
    errno = err;
    return fail("epoll_ctl");
  }
  rings_.push_back(r);
  return true;
}

int RingReader::Poll(int timeout_ms) {
  epoll_event events[8];
  if (epoll_wait(epoll_fd_, events, 8, timeout_ms) < 0) return -errno;
  return Consume();
}

int RingReader::Consume() {
  int64_t total = 0;
  for (const Ring& r : rings_) {
    const int64_t n = ConsumeRing(r.view, r.fn, r.ctx, scratch_);
    if (n < 0) return static_cast<int>(n);
    total += n;
  }
  return static_cast<int>(std::min<int64_t>(total, INT32_MAX));
}

}  // namespace gotlscap::capture
