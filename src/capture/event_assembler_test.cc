// Chunk reassembly without BPF: records are built as the eBPF program writes them.
#include "capture/event_assembler.h"

#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// Allocations counted while a test enables it, on its own thread: this test binary's one
// replacement of the global operator new (EventAssemblerAllocations below).
namespace {
thread_local bool counting = false;
thread_local size_t news = 0;
}  // namespace

void* operator new(size_t n) {
  if (counting) news++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that the new above is the malloc these frees pair with.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace gotlscap::capture {
namespace {

gotls_data_event Header(uint32_t tid, uint64_t call, uint64_t total, uint8_t dir = GOTLS_DIR_WRITE) {
  gotls_data_event h{};
  h.call_id = call;
  h.ts_ns = 1000 + call;
  h.total_len = total;
  h.conn_ptr = 0xc000100000;
  h.sock_ptr = 0xffff888000001000;
  h.fd = 7;
  h.pid = 42;
  h.tid = tid;
  h.dir = dir;
  h.family = AF_INET;
  h.lport = 443;
  h.rport = 50000;
  const uint8_t l[4] = {10, 0, 0, 1}, r[4] = {10, 0, 0, 2};
  std::memcpy(h.laddr, l, 4);
  std::memcpy(h.raddr, r, 4);
  std::strcpy(h.comm, "server");
  return h;
}

std::vector<uint8_t> Record(gotls_data_event h, uint64_t offset, const std::string& data, uint8_t flags) {
  h.offset = offset;
  h.chunk_len = data.size();
  h.flags = flags;
  std::vector<uint8_t> r(sizeof h + data.size());
  std::memcpy(r.data(), &h, sizeof h);
  std::memcpy(r.data() + sizeof h, data.data(), data.size());
  return r;
}

// A CLOSE / EOF record as gotls_close / gotls_read_return write it: a header, no payload.
std::vector<uint8_t> EndRecord(uint32_t tid, uint64_t call, uint8_t dir) {
  return Record(Header(tid, call, 0, dir), 0, "", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST);
}

TEST(EventAssembler, JoinsChunksOfOneCallAndKeepsCallsApart) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, /*mono_to_epoch=*/1'000'000);
  const std::string part1(GOTLS_CHUNK_MAX, 'a'), part2 = "tail";
  auto h1 = Header(1, 1, part1.size() + part2.size());
  auto h2 = Header(2, 1, 3, GOTLS_DIR_READ);  // same call id, other thread: a different call
  a.OnRecord(Record(h1, 0, part1, GOTLS_CHUNK_FIRST));
  a.OnRecord(Record(h2, 0, "abc", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(Record(h1, part1.size(), part2, GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload, "abc");
  EXPECT_EQ(out[0].dir, Direction::kRead);
  EXPECT_EQ(out[1].payload, part1 + part2);
  EXPECT_EQ(out[1].len, part1.size() + part2.size());
  EXPECT_EQ(out[1].ts_ns, 1000 + 1 + 1'000'000u);
  EXPECT_EQ(out[1].comm, "server");
  EXPECT_EQ(out[1].conn.local, "10.0.0.1:443");
  EXPECT_EQ(out[1].conn.remote, "10.0.0.2:50000");
  EXPECT_EQ(out[1].conn.id, out[0].conn.id);  // same process, tls.Conn and socket
  EXPECT_EQ(out[1].missing, 0u);
}

// Go reuses a freed *tls.Conn's memory and the kernel its socket struct: a new TCP connection
// with the same pointers must still get its own id.
TEST(EventAssembler, ReusedPointersOfANewConnectionGetANewId) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  auto first = Header(1, 1, 1);
  auto second = Header(1, 2, 1);
  second.rport = 50001;  // same conn_ptr and sock_ptr, another client port
  a.OnRecord(Record(first, 0, "a", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(Record(second, 0, "b", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(Record(Header(1, 3, 1), 0, "c", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_NE(out[0].conn.id, out[1].conn.id);
  EXPECT_EQ(out[0].conn.id, out[2].conn.id);
}

TEST(EventAssembler, LostChunksAreCountedNotHidden) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  const std::string chunk(GOTLS_CHUNK_MAX, 'x');
  auto h = Header(1, 9, 3 * chunk.size());
  a.OnRecord(Record(h, 0, chunk, GOTLS_CHUNK_FIRST));
  // the middle chunk never arrives (ring buffer full)
  a.OnRecord(Record(h, 2 * chunk.size(), chunk, GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].missing, chunk.size());
  EXPECT_EQ(out[0].payload.size(), 3 * chunk.size());
  EXPECT_EQ(a.incomplete_events(), 1u);

  // A call whose last chunk is lost is delivered at flush time, with its gap counted.
  auto h2 = Header(1, 10, 2 * chunk.size());
  a.OnRecord(Record(h2, 0, chunk, GOTLS_CHUNK_FIRST));
  EXPECT_EQ(out.size(), 1u);
  a.FlushAll();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].missing, chunk.size());
}

TEST(EventAssembler, TruncatedCallsCarryTheirTrueLength) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  auto h = Header(1, 3, GOTLS_CAPTURE_MAX + 100);
  a.OnRecord(Record(h, GOTLS_CAPTURE_MAX - 4, "last", GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].truncated);
  EXPECT_EQ(out[0].len, GOTLS_CAPTURE_MAX + 100);
  EXPECT_EQ(out[0].payload.size(), GOTLS_CAPTURE_MAX);
}

// --max-payload 100: the kernel sends the first 100 bytes of a longer call (one record, marked
// truncated, total_len the call's length): the event keeps the length, carries the prefix, is
// truncated and misses nothing. Shorter calls are whole and not truncated.
TEST(EventAssembler, CappedCallsCarryTheirPrefixAndTrueLength) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0, /*max_payload=*/100);
  const std::string prefix(100, 'p');
  a.OnRecord(Record(Header(1, 1, 1'000'000), 0, prefix, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED));
  a.OnRecord(Record(Header(1, 2, 100), 0, prefix, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(Record(Header(1, 3, 7), 0, "abcdefg", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].len, 1'000'000u);
  EXPECT_EQ(out[0].payload, prefix);
  EXPECT_TRUE(out[0].truncated);
  EXPECT_EQ(out[0].missing, 0u);
  EXPECT_EQ(out[1].len, 100u);
  EXPECT_EQ(out[1].payload, prefix);
  EXPECT_FALSE(out[1].truncated);
  EXPECT_EQ(out[2].payload, "abcdefg");
  EXPECT_FALSE(out[2].truncated);
  EXPECT_EQ(a.incomplete_events(), 0u);
  // A prefix lost to a full ring (an empty record, as after a read fault) is zero-filled and
  // counted missing, within the prefix only.
  a.OnRecord(Record(Header(1, 4, 5000), 0, "", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].payload, std::string(100, '\0'));
  EXPECT_EQ(out[3].missing, 100u);
}

// A cap over one record: the prefix comes in GOTLS_CHUNK_MAX chunks and is joined; a chunk beyond
// the cap is not one our probes send (ignored, as any chunk past what was expected).
TEST(EventAssembler, CappedCallsOverSeveralRecords) {
  std::vector<DataEvent> out;
  const uint64_t cap = GOTLS_CHUNK_MAX + 1000;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0, cap);
  const std::string part1(GOTLS_CHUNK_MAX, 'a'), part2(1000, 'b');
  auto h = Header(1, 1, 3 * GOTLS_CHUNK_MAX);
  a.OnRecord(Record(h, 0, part1, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_TRUNCATED));
  a.OnRecord(Record(h, GOTLS_CHUNK_MAX, part2, GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].len, 3u * GOTLS_CHUNK_MAX);
  EXPECT_EQ(out[0].payload, part1 + part2);
  EXPECT_TRUE(out[0].truncated);
  EXPECT_EQ(out[0].missing, 0u);
  auto h2 = Header(1, 2, 3 * GOTLS_CHUNK_MAX);
  a.OnRecord(Record(h2, 0, part1, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_TRUNCATED));
  a.OnRecord(Record(h2, GOTLS_CHUNK_MAX, part1, GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED));  // past the cap
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].payload.size(), cap);
  EXPECT_EQ(out[1].missing, 1000u);
}

// A connection exempt in the kernel (CaptureWhole): its records carry GOTLS_CHUNK_WHOLE_CONN and
// the whole call, whatever the assembler's cap; its calls over 32 MiB still stop there.
TEST(EventAssembler, ExemptConnectionsComeWhole) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0, /*max_payload=*/100);
  const std::string part1(GOTLS_CHUNK_MAX, 'a'), part2 = "tail";
  auto h = Header(1, 1, part1.size() + part2.size());
  a.OnRecord(Record(h, 0, part1, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_WHOLE_CONN));
  a.OnRecord(Record(h, part1.size(), part2, GOTLS_CHUNK_LAST | GOTLS_CHUNK_WHOLE_CONN));
  const std::string small(3000, 's');
  a.OnRecord(Record(Header(1, 2, small.size()), 0, small, GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST | GOTLS_CHUNK_WHOLE_CONN));
  auto huge = Header(1, 3, GOTLS_CAPTURE_MAX + 5);
  a.OnRecord(Record(huge, GOTLS_CAPTURE_MAX - 4, "last",
                    GOTLS_CHUNK_LAST | GOTLS_CHUNK_TRUNCATED | GOTLS_CHUNK_WHOLE_CONN));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].payload, part1 + part2);
  EXPECT_FALSE(out[0].truncated);
  EXPECT_EQ(out[0].missing, 0u);
  EXPECT_EQ(out[1].payload, small);
  EXPECT_EQ(out[2].len, GOTLS_CAPTURE_MAX + 5);
  EXPECT_EQ(out[2].payload.size(), GOTLS_CAPTURE_MAX);
  EXPECT_TRUE(out[2].truncated);
}

// CaptureWhole's mapping: connection id (and pid) -> the *tls.Conn the kernel names it by; none
// for another process's id, an unknown id, or a connection that ended.
TEST(EventAssembler, ConnPointerMapsIdsBackToTheKernelKey) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0, 100);
  auto h1 = Header(1, 1, 1);
  auto h2 = Header(1, 2, 1);
  h2.conn_ptr = 0xc000200000;
  h2.rport = 50001;
  auto other = Header(1, 3, 1);
  other.pid = 43;
  other.conn_ptr = 0xc000300000;
  for (const auto& h : {h1, h2, other}) a.OnRecord(Record(h, 0, "x", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(a.ConnPointer(42, out[0].conn.id), std::optional<uint64_t>(0xc000100000));
  EXPECT_EQ(a.ConnPointer(42, out[1].conn.id), std::optional<uint64_t>(0xc000200000));
  EXPECT_EQ(a.ConnPointer(43, out[2].conn.id), std::optional<uint64_t>(0xc000300000));
  EXPECT_EQ(a.ConnPointer(43, out[0].conn.id), std::nullopt);  // another process's connection
  EXPECT_EQ(a.ConnPointer(42, 999), std::nullopt);
  // Closed: gone. The sink may ask while the event is delivered (the connection is open then).
  std::optional<uint64_t> during;
  EventAssembler b(
      [&](DataEvent&& e) {
        if (!e.closed()) during = b.ConnPointer(e.pid, e.conn.id);
        out.push_back(std::move(e));
      },
      0, 100);
  out.clear();
  b.OnRecord(Record(h1, 0, "x", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  EXPECT_EQ(during, std::optional<uint64_t>(0xc000100000));
  const uint64_t id = out[0].conn.id;
  b.OnRecord(EndRecord(1, 4, GOTLS_DIR_CLOSE));
  b.DeliverHeldCloses(UINT64_MAX);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(b.ConnPointer(42, id), std::nullopt);
  // A process forgotten: its connections too.
  b.OnRecord(Record(h2, 0, "y", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  const uint64_t id2 = out.back().conn.id;
  EXPECT_TRUE(b.ConnPointer(42, id2));
  b.ForgetProcess(42);
  EXPECT_EQ(b.ConnPointer(42, id2), std::nullopt);
}

TEST(EventAssembler, MalformedRecordsAreRejected) {
  EventAssembler a([](DataEvent&&) { FAIL() << "nothing should be emitted"; }, 0);
  a.OnRecord(std::vector<uint8_t>(10, 0));  // shorter than a header
  auto h = Header(1, 1, 100);
  auto r = Record(h, 0, "abc", GOTLS_CHUNK_LAST);
  r.resize(r.size() - 2);  // chunk_len says 3, only 1 byte present
  a.OnRecord(r);
  EXPECT_EQ(a.malformed_records(), 2u);
}


TEST(EventAssembler, CloseEndsTheConnectionOfItsDataEvents) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  a.OnRecord(Record(Header(1, 1, 3), 0, "abc", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(EndRecord(2, 2, GOTLS_DIR_EOF));
  a.OnRecord(EndRecord(2, 3, GOTLS_DIR_EOF));  // Read keeps returning io.EOF: reported once
  a.OnRecord(EndRecord(1, 4, GOTLS_DIR_CLOSE));
  // The close is held for its grace period (a racing call may still come), then delivered.
  a.DeliverHeldCloses(1004 + EventAssembler::kCloseGraceNs - 1);
  ASSERT_EQ(out.size(), 2u);
  a.DeliverHeldCloses(1004 + EventAssembler::kCloseGraceNs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].closed());
  EXPECT_EQ(out[1].end, ConnEnd::kEof);
  EXPECT_EQ(out[1].dir, Direction::kRead);
  EXPECT_EQ(out[2].end, ConnEnd::kClose);
  EXPECT_TRUE(out[2].closed());
  for (const auto& e : out) EXPECT_EQ(e.conn.id, out[0].conn.id);
  EXPECT_EQ(out[2].len, 0u);
  EXPECT_TRUE(out[2].payload.empty());
  EXPECT_EQ(out[2].conn.fd, 7);
  EXPECT_EQ(out[2].conn.local, "10.0.0.1:443");
  EXPECT_EQ(out[2].conn.remote, "10.0.0.2:50000");
  EXPECT_EQ(out[2].comm, "server");
  EXPECT_EQ(out[2].ts_ns, 1004u);
  // Closed: a second Close is not reported, and the same identity later is a new connection.
  a.OnRecord(EndRecord(1, 5, GOTLS_DIR_CLOSE));
  EXPECT_EQ(out.size(), 3u);
  a.OnRecord(Record(Header(1, 6, 2), 0, "hi", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_NE(out[3].conn.id, out[0].conn.id);
  EXPECT_EQ(a.connection_ends(), 2u);
  EXPECT_EQ(a.ignored_ends(), 1u);
  EXPECT_EQ(a.malformed_records(), 0u);
}

TEST(EventAssembler, EndsOfConnectionsWithoutDataAreDropped) {
  EventAssembler a([](DataEvent&&) { FAIL() << "nothing should be emitted"; }, 0);
  a.OnRecord(EndRecord(1, 1, GOTLS_DIR_CLOSE));  // e.g. a handshake-only connection
  a.OnRecord(EndRecord(1, 2, GOTLS_DIR_EOF));
  EXPECT_EQ(a.ignored_ends(), 2u);
  // An end record with a payload is not one the probes write.
  auto bad = Record(Header(1, 3, 0, GOTLS_DIR_CLOSE), 0, "x", GOTLS_CHUNK_LAST);
  a.OnRecord(bad);
  EXPECT_EQ(a.malformed_records(), 1u);
}

// A write on another goroutine, split into chunks around the close record, is delivered first.
TEST(EventAssembler, CloseWaitsForCallsStillArriving) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  const std::string part1(GOTLS_CHUNK_MAX, 'a'), part2 = "tail";
  a.OnRecord(Record(Header(1, 1, 1), 0, "x", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  auto big = Header(3, 2, part1.size() + part2.size());
  a.OnRecord(Record(big, 0, part1, GOTLS_CHUNK_FIRST));
  a.OnRecord(EndRecord(2, 3, GOTLS_DIR_EOF));
  a.OnRecord(EndRecord(1, 4, GOTLS_DIR_CLOSE));
  ASSERT_EQ(out.size(), 1u);
  a.OnRecord(Record(big, part1.size(), part2, GOTLS_CHUNK_LAST));
  ASSERT_EQ(out.size(), 2u);  // the ends wait for the close's grace period
  a.DeliverHeldCloses(UINT64_MAX);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[1].payload, part1 + part2);
  EXPECT_EQ(out[2].end, ConnEnd::kEof);
  EXPECT_EQ(out[3].end, ConnEnd::kClose);
  // A call whose last chunk is lost releases the close when it is flushed.
  out.clear();
  a.OnRecord(Record(Header(1, 5, 1), 0, "y", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(Record(Header(3, 6, part1.size() + 1), 0, part1, GOTLS_CHUNK_FIRST));
  a.OnRecord(EndRecord(1, 7, GOTLS_DIR_CLOSE));
  ASSERT_EQ(out.size(), 1u);
  a.FlushAll();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].missing, 1u);
  EXPECT_EQ(out[2].end, ConnEnd::kClose);
  EXPECT_EQ(out[2].conn.id, out[0].conn.id);
}

// A call whose probe fired just after Close's (another goroutine wrote while the connection was
// being closed) is the connection's, with its id, and comes before the close.
TEST(EventAssembler, ACallRacingTheCloseComesBeforeIt) {
  std::vector<DataEvent> out;
  EventAssembler a([&](DataEvent&& e) { out.push_back(std::move(e)); }, 0);
  a.OnRecord(Record(Header(1, 1, 1), 0, "a", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(EndRecord(1, 2, GOTLS_DIR_CLOSE));
  a.OnRecord(Record(Header(3, 3, 1), 0, "b", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(EndRecord(2, 4, GOTLS_DIR_EOF));  // after the close: not reported
  a.OnRecord(EndRecord(1, 5, GOTLS_DIR_CLOSE));  // a second close: not reported
  a.DeliverHeldCloses(1002 + EventAssembler::kCloseGraceNs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].payload, "a");
  EXPECT_EQ(out[1].payload, "b");
  EXPECT_EQ(out[2].end, ConnEnd::kClose);
  for (const auto& e : out) EXPECT_EQ(e.conn.id, out[0].conn.id);
  // A process that exited keeps a held close until it is delivered.
  out.clear();
  a.OnRecord(Record(Header(1, 6, 1), 0, "c", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  a.OnRecord(EndRecord(1, 7, GOTLS_DIR_CLOSE));
  a.ForgetProcess(42);
  a.FlushAll();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].end, ConnEnd::kClose);
  EXPECT_EQ(out[1].conn.id, out[0].conn.id);
}

TEST(FormatAddress, MapsIpv4InIpv6) {
  uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  EXPECT_EQ(FormatAddress(AF_INET6, v6, 8443), "127.0.0.1:8443");
  uint8_t lo[16] = {};
  lo[15] = 1;
  EXPECT_EQ(FormatAddress(AF_INET6, lo, 443), "[::1]:443");
  EXPECT_EQ(FormatAddress(0, lo, 443), "");
}

// The consumer's hot path allocates nothing per event: a call that fits one ring-buffer record is
// built in a DataEvent the assembler keeps, and a multi-record call reuses an earlier call's
// pending-table node with its buffers.
// An IPv6 connection ("[fd00::1]:443") and a 15-character comm: as long as strings get inline.
gotls_data_event LongHeader(uint64_t call, uint64_t total) {
  auto h = Header(1, call, total, GOTLS_DIR_READ);
  h.family = AF_INET6;
  std::memset(h.laddr, 0, 16);
  std::memset(h.raddr, 0, 16);
  h.laddr[0] = h.raddr[0] = 0xfd;
  h.laddr[15] = 1;
  h.raddr[15] = 2;
  std::strcpy(h.comm, "a-long-comm-15c");
  return h;
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
    records.push_back(Record(LongHeader(i + 1, 200 + i), 0, std::string(200 + i, char('a' + i % 26)),
                             GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));
  records.push_back(Record(LongHeader(2000, 5), 0, "", GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST));  // a faulted copy
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
    records.push_back(Record(LongHeader(id, head.size() + tail.size()), 0, head, GOTLS_CHUNK_FIRST));
    records.push_back(Record(LongHeader(id, head.size() + tail.size()), head.size(), tail, GOTLS_CHUNK_LAST));
  }
  for (uint64_t id = 100; id < 200; id++) {
    const std::string tail = std::to_string(id);
    records.push_back(Record(LongHeader(id, head.size() + tail.size()), 0, head, GOTLS_CHUNK_FIRST));
    records.push_back(Record(LongHeader(id, head.size() + tail.size()), head.size(), tail, GOTLS_CHUNK_LAST));
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
