#include "capture/event_assembler.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include <fmt/format.h>

namespace gotlscap::capture {

std::string FormatAddress(uint16_t family, const uint8_t addr[16], uint16_t port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET && inet_ntop(AF_INET, addr, buf, sizeof buf)) return fmt::format("{}:{}", buf, port);
  if (family == AF_INET6 && inet_ntop(AF_INET6, addr, buf, sizeof buf)) {
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; print it as IPv4.
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(addr, kMapped, 12) == 0 && inet_ntop(AF_INET, addr + 12, buf, sizeof buf))
      return fmt::format("{}:{}", buf, port);
    return fmt::format("[{}]:{}", buf, port);
  }
  return "";
}

EventAssembler::EventAssembler(Sink sink, int64_t monotonic_to_epoch_ns, uint64_t max_payload)
    : sink_(std::move(sink)),
      mono_to_epoch_(monotonic_to_epoch_ns),
      max_payload_(max_payload == 0 || max_payload > GOTLS_CAPTURE_MAX ? GOTLS_CAPTURE_MAX : max_payload) {
  whole_.payload.reserve(GOTLS_CHUNK_MAX);  // the largest call that fits one record
}

EventAssembler::ConnKey EventAssembler::KeyOf(const gotls_data_event& h) {
  ConnKey key{h.pid, h.conn_ptr, h.sock_ptr, h.lport, h.rport, {}, {}};
  std::memcpy(key.laddr.data(), h.laddr, 16);
  std::memcpy(key.raddr.data(), h.raddr, 16);
  if (h.family != AF_INET6) {  // only the first 4 bytes are meaningful for IPv4
    std::fill(key.laddr.begin() + 4, key.laddr.end(), 0);
    std::fill(key.raddr.begin() + 4, key.raddr.end(), 0);
  }
  return key;
}

EventAssembler::ConnState& EventAssembler::Connection(const ConnKey& key) {
  if (conns_.size() >= (1u << 20) && !conns_.count(key)) {
    // Bound memory on very long runs with connections that never report an end: forget the
    // idle ones (their later bytes get new ids, their ends are dropped).
    for (auto it = conns_.begin(); it != conns_.end();)
      it = it->second.pending == 0 && it->second.waiting.empty() ? EraseConn(it) : std::next(it);
  }
  auto [it, inserted] = conns_.try_emplace(key);
  if (inserted) {
    it->second.id = next_conn_id_++;
    by_id_.emplace(it->second.id, it);
  }
  return it->second;
}

EventAssembler::ConnMap::iterator EventAssembler::EraseConn(ConnMap::iterator it) {
  by_id_.erase(it->second.id);
  return conns_.erase(it);
}

std::optional<uint64_t> EventAssembler::ConnPointer(uint32_t pid, uint64_t conn_id) const {
  auto it = by_id_.find(conn_id);
  if (it == by_id_.end() || it->second->first.pid != pid) return std::nullopt;
  return it->second->first.conn;
}

void EventAssembler::FillMeta(const gotls_data_event& h, ConnState& cs, DataEvent* ev) const {
  ev->ts_ns = h.ts_ns + mono_to_epoch_;
  ev->pid = h.pid;
  ev->tid = h.tid;
  ev->uid = h.uid;
  ev->cgroup_id = h.cgroup_id;
  ev->comm.assign(h.comm, strnlen(h.comm, sizeof h.comm));
  ev->dir = h.dir == GOTLS_DIR_READ || h.dir == GOTLS_DIR_EOF ? Direction::kRead : Direction::kWrite;
  ev->conn.id = cs.id;
  ev->conn.fd = h.fd;
  if (!cs.named) {  // the addresses are part of the connection's key: formatted once
    cs.local = FormatAddress(h.family, h.laddr, h.lport);
    cs.remote = FormatAddress(h.family, h.raddr, h.rport);
    cs.named = true;
  }
  ev->conn.local = cs.local;
  ev->conn.remote = cs.remote;
}

// A data event's fields from its call's first record (the event may be a reused one).
void EventAssembler::StartCall(const gotls_data_event& h, ConnState& cs, DataEvent* ev) const {
  FillMeta(h, cs, ev);
  ev->len = h.total_len;
  ev->truncated = h.flags & GOTLS_CHUNK_TRUNCATED;
  ev->end = ConnEnd::kNone;
}

void EventAssembler::OnRecord(std::span<const uint8_t> record) {
  gotls_data_event h;
  if (record.size() < sizeof h) {
    malformed_++;
    return;
  }
  std::memcpy(&h, record.data(), sizeof h);
  if (h.dir == GOTLS_DIR_CLOSE || h.dir == GOTLS_DIR_EOF) {
    if (h.total_len != 0 || h.chunk_len != 0) {
      malformed_++;
      return;
    }
    OnEnd(h);
    return;
  }
  std::span<const uint8_t> data = record.subspan(sizeof h);
  if (h.chunk_len > data.size() || h.chunk_len > GOTLS_CHUNK_MAX || h.offset >= GOTLS_CAPTURE_MAX ||
      h.total_len == 0 || h.dir > GOTLS_DIR_READ) {
    malformed_++;
    return;
  }
  if ((h.flags & GOTLS_CHUNK_FIRST) && (h.flags & GOTLS_CHUNK_LAST) && h.offset == 0) {
    EmitWhole(h, data.first(h.chunk_len));  // a call in one record: most calls
    return;
  }
  const CallKey key{h.tid, h.call_id};
  auto it = pending_.find(key);
  if (it == pending_.end()) {
    // A table node of an emitted call when there is one: no allocation, and its event's strings
    // keep their capacity.
    if (spare_.empty()) {
      it = pending_.try_emplace(key).first;
    } else {
      auto node = std::move(spare_.back());
      spare_.pop_back();
      node.key() = key;
      it = pending_.insert(std::move(node)).position;
    }
    Pending& p = it->second;
    p.received = 0;
    p.hdr = h;
    p.conn = KeyOf(h);
    p.expected = ExpectedBytes(h);
    ConnState& cs = Connection(p.conn);
    cs.pending++;
    StartCall(h, cs, &p.ev);
    p.ev.payload.clear();
    // Sized once for the whole capture (≤ GOTLS_CAPTURE_MAX, from our own BPF program): growing by
    // doubling as chunks arrive copied a 1 MB write twice more.
    p.ev.payload.reserve(p.expected);
  }
  Pending& p = it->second;
  if (h.offset + h.chunk_len <= p.expected) {
    // Chunks arrive in order (appended: no zero-fill first); a gap (lost chunk) is zero-filled
    // and counted in `missing`.
    auto& payload = p.ev.payload;
    if (h.offset == payload.size()) {
      payload.append(reinterpret_cast<const char*>(data.data()), h.chunk_len);
    } else {
      if (payload.size() < h.offset + h.chunk_len) payload.resize(h.offset + h.chunk_len);
      std::memcpy(payload.data() + h.offset, data.data(), h.chunk_len);
    }
    p.received += h.chunk_len;
  }
  if (h.flags & GOTLS_CHUNK_LAST) EmitPending(it);
}

// A call that fits one record, without the pending table: built in one long-lived DataEvent, so
// its strings keep their capacity from call to call (no heap allocation per event, unless the
// sink takes them). Same outcome as the pending path: nothing is counted pending, since nothing
// can arrive between this call's start and end; the connection's held ends are untouched.
void EventAssembler::EmitWhole(const gotls_data_event& h, std::span<const uint8_t> data) {
  DataEvent& ev = whole_;
  StartCall(h, Connection(KeyOf(h)), &ev);
  const uint64_t expected = ExpectedBytes(h);
  const uint64_t received = data.size() <= expected ? data.size() : 0;
  ev.payload.assign(reinterpret_cast<const char*>(data.data()), received);
  DeliverCall(ev, expected, received);
}

// The call at its full captured length: bytes lost (ring buffer full) or faulted are zero-filled
// and counted, never hidden.
void EventAssembler::DeliverCall(DataEvent& ev, uint64_t expected, uint64_t received) {
  ev.payload.resize(expected);
  ev.missing = received < expected ? expected - received : 0;
  if (ev.missing) incomplete_++;
  sink_(std::move(ev));
}

void EventAssembler::EmitPending(PendingMap::iterator it) {
  auto node = pending_.extract(it);
  Emit(node.mapped());
  // Sinks read events (writers, decoders copy what they keep): the node and its buffers are
  // reused. A few, not huge ones: what is kept stays resident.
  if (node.mapped().ev.payload.capacity() <= kSpareMaxBytes && spare_.size() < kSpares)
    spare_.push_back(std::move(node));
}

void EventAssembler::Emit(Pending& p) {
  DeliverCall(p.ev, p.expected, p.received);
  auto it = conns_.find(p.conn);
  if (it == conns_.end() || it->second.pending == 0) return;
  // The last pending call releases the ends it held, unless a close is in its grace period
  // (then DeliverHeldCloses does).
  if (--it->second.pending == 0 && it->second.close_at == 0) DeliverWaiting(it);
}

void EventAssembler::DeliverWaiting(ConnMap::iterator it) {
  std::vector<DataEvent> ends = std::move(it->second.waiting);
  it->second.waiting.clear();
  for (auto& e : ends) {
    const bool close = e.end == ConnEnd::kClose;
    DeliverEnd(it, std::move(e));
    if (close) return;  // the connection is gone: nothing after its close
  }
}

void EventAssembler::DeliverHeldCloses(uint64_t monotonic_now_ns) {
  std::erase_if(held_closes_, [&](const ConnKey& key) {
    auto it = conns_.find(key);
    if (it == conns_.end() || it->second.close_at == 0) return true;  // already delivered
    if (it->second.pending || it->second.close_at + kCloseGraceNs > monotonic_now_ns) return false;
    it->second.close_at = 0;
    DeliverWaiting(it);
    return true;
  });
}

void EventAssembler::OnEnd(const gotls_data_event& h) {
  auto it = conns_.find(KeyOf(h));
  if (it == conns_.end()) {
    ignored_ends_++;  // no data events: nothing to end (or already closed)
    return;
  }
  ConnState& cs = it->second;
  const ConnEnd end = h.dir == GOTLS_DIR_CLOSE ? ConnEnd::kClose : ConnEnd::kEof;
  if (end == ConnEnd::kEof) {
    if (cs.eof_delivered) return;
    for (const auto& w : cs.waiting)
      if (w.end == ConnEnd::kEof) return;
  }
  if (cs.close_at) return;  // a second close, or an EOF after the close: nothing after a close
  DataEvent ev;
  FillMeta(h, cs, &ev);
  ev.end = end;
  if (end == ConnEnd::kClose) {
    cs.close_at = h.ts_ns;
    cs.waiting.push_back(std::move(ev));
    held_closes_.push_back(it->first);
    return;
  }
  if (cs.pending) {
    cs.waiting.push_back(std::move(ev));
    return;
  }
  DeliverEnd(it, std::move(ev));
}

void EventAssembler::DeliverEnd(ConnMap::iterator it, DataEvent&& ev) {
  ends_++;
  if (ev.end == ConnEnd::kEof) {
    it->second.eof_delivered = true;
  } else {
    EraseConn(it);  // over: the same identity later is a new connection
  }
  sink_(std::move(ev));
}

void EventAssembler::FlushAll() {
  FlushOlderThan(UINT64_MAX);
  DeliverHeldCloses(UINT64_MAX);
}

void EventAssembler::FlushOlderThan(uint64_t monotonic_ns) {
  // In call order, so per-connection order is kept.
  std::vector<std::pair<uint64_t, CallKey>> due;  // (ts, call)
  for (const auto& [key, p] : pending_)
    if (p.hdr.ts_ns < monotonic_ns) due.emplace_back(p.hdr.ts_ns, key);
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [ts, key] : due) EmitPending(pending_.find(key));
}

std::vector<uint32_t> EventAssembler::Pids() const {
  std::vector<uint32_t> out;
  for (auto it = conns_.begin(); it != conns_.end();) {
    out.push_back(it->first.pid);
    ConnKey next{};
    next.pid = it->first.pid + 1;
    if (next.pid == 0) break;
    it = conns_.lower_bound(next);
  }
  return out;
}

void EventAssembler::ForgetProcess(uint32_t pid) {
  ConnKey from{};
  from.pid = pid;
  // Connections holding ends keep them until they are delivered (DeliverHeldCloses, Emit).
  for (auto it = conns_.lower_bound(from); it != conns_.end() && it->first.pid == pid;)
    it = it->second.pending == 0 && it->second.waiting.empty() ? EraseConn(it) : std::next(it);
}

}  // namespace gotlscap::capture
