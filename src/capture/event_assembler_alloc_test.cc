// The consumer's hot path allocates nothing per event: a call that fits one ring-buffer record is
// built in a DataEvent the assembler keeps, and a multi-record call reuses an earlier call's
// pending-table node with its buffers. Counted with a replacement of the global operator new
// (this test binary's only one; it counts only while a test enables it, on its own thread).
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "capture/event_assembler.h"

namespace {
thread_local bool counting = false;
thread_local size_t news = 0;
}  // namespace

void* operator new(size_t n) {
  if (counting) news++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace gotlscap::capture {
namespace {

std::vector<uint8_t> Record(uint64_t call, uint64_t total, uint64_t offset, const std::string& data, uint8_t flags) {
  gotls_data_event h{};
  h.call_id = call;
  h.ts_ns = 1000 + call;
  h.total_len = total;
  h.conn_ptr = 0xc000100000;
  h.sock_ptr = 0xffff888000001000;
  h.fd = 7;
  h.pid = 42;
  h.tid = 1;
  h.dir = GOTLS_DIR_READ;
  h.family = AF_INET6;  // "[fd00:aaaa:bbbb::1]:443": longer than std::string's inline buffer
  h.laddr[0] = 0xfd;
  h.raddr[0] = 0xfd;
  h.laddr[15] = 1;
  h.raddr[15] = 2;
  h.lport = 443;
  h.rport = 50000;
  std::strcpy(h.comm, "a-long-comm-15c");
  h.offset = offset;
  h.chunk_len = data.size();
  h.flags = flags;
  std::vector<uint8_t> r(sizeof h + data.size());
  std::memcpy(r.data(), &h, sizeof h);
  std::memcpy(r.data() + sizeof h, data.data(), data.size());
  return r;
}

struct Counted {
  size_t events = 0, bytes = 0, missing = 0;
};

TEST(EventAssemblerAllocations, NoneForCallsInOneRecord) {
  Counted c;
  // Like the real sinks (writers, HTTP decoder): they read the event and copy what they keep.
  EventAssembler a([&](DataEvent&& e) { c.events++, c.bytes += e.payload.size(), c.missing += e.missing; }, 0);
  std::vector<std::vector<uint8_t>> records;
  for (uint64_t i = 0; i < 1000; i++)
    records.push_back(Record(i + 1, 200 + i, 0, std::string(200 + i, char('a' + i % 26)), GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  records.push_back(Record(2000, 5, 0, "", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));  // a faulted copy
  a.OnRecord(records[0]);  // the connection's state and the event's buffers are made once
  counting = true;
  for (size_t i = 1; i < records.size(); i++) a.OnRecord(records[i]);
  counting = false;
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(c.events, 1001u);
  EXPECT_EQ(c.bytes, 200u * 1000 + 999u * 1000 / 2 + 5);  // every payload, the faulted one zero-filled
  EXPECT_EQ(c.missing, 5u);
  EXPECT_EQ(a.incomplete_events(), 1u);
  news = 0;
}

TEST(EventAssemblerAllocations, MultiRecordCallsReuseTheirBuffers) {
  Counted c;
  std::string seen;
  EventAssembler a([&](DataEvent&& e) { c.events++, seen = e.payload.substr(GOTLS_CHUNK_MAX - 1, 3); }, 0);
  const std::string head(GOTLS_CHUNK_MAX, 'h');
  std::vector<std::vector<uint8_t>> records;  // made before counting
  for (uint64_t id : {900, 901}) {  // warm-up: the pool's steady state, as long as the calls below
    const std::string tail = std::to_string(id);
    records.push_back(Record(id, head.size() + tail.size(), 0, head, GOTLS_CHUNK_FIRST));
    records.push_back(Record(id, head.size() + tail.size(), head.size(), tail, GOTLS_CHUNK_LAST));
  }
  for (uint64_t id = 100; id < 200; id++) {
    const std::string tail = std::to_string(id);
    records.push_back(Record(id, head.size() + tail.size(), 0, head, GOTLS_CHUNK_FIRST));
    records.push_back(Record(id, head.size() + tail.size(), head.size(), tail, GOTLS_CHUNK_LAST));
  }
  for (size_t i = 0; i < 4; i++) a.OnRecord(records[i]);
  counting = true;
  for (size_t i = 4; i < records.size(); i++) a.OnRecord(records[i]);
  counting = false;
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(c.events, 102u);
  EXPECT_EQ(seen, "h19");  // "h" + "199": the reused buffer holds this call's bytes only
  news = 0;
}

}  // namespace
}  // namespace gotlscap::capture
