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

EventAssembler::EventAssembler(Sink sink, int64_t monotonic_to_epoch_ns)
    : sink_(std::move(sink)), mono_to_epoch_(monotonic_to_epoch_ns) {}

uint64_t EventAssembler::ConnectionId(const gotls_data_event& h) {
  ConnKey key{h.pid, h.conn_ptr, h.sock_ptr, h.lport, h.rport, {}, {}};
  std::memcpy(key.laddr.data(), h.laddr, 16);
  std::memcpy(key.raddr.data(), h.raddr, 16);
  if (h.family != AF_INET6) {  // only the first 4 bytes are meaningful for IPv4
    std::fill(key.laddr.begin() + 4, key.laddr.end(), 0);
    std::fill(key.raddr.begin() + 4, key.raddr.end(), 0);
  }
  auto [it, inserted] = conn_ids_.try_emplace(key, next_conn_id_);
  if (inserted) next_conn_id_++;
  if (conn_ids_.size() > (1u << 20)) conn_ids_.clear();  // bound memory on very long runs
  return it->second;
}

void EventAssembler::OnRecord(std::span<const uint8_t> record) {
  gotls_data_event h;
  if (record.size() < sizeof h) {
    malformed_++;
    return;
  }
  std::memcpy(&h, record.data(), sizeof h);
  std::span<const uint8_t> data = record.subspan(sizeof h);
  if (h.chunk_len > data.size() || h.chunk_len > GOTLS_CHUNK_MAX || h.offset >= GOTLS_CAPTURE_MAX ||
      h.total_len == 0) {
    malformed_++;
    return;
  }
  const CallKey key{h.tid, h.call_id};
  auto it = pending_.find(key);
  if (it == pending_.end()) {
    Pending p;
    p.hdr = h;
    p.expected = std::min<uint64_t>(h.total_len, GOTLS_CAPTURE_MAX);
    DataEvent& ev = p.ev;
    ev.ts_ns = h.ts_ns + mono_to_epoch_;
    ev.pid = h.pid;
    ev.tid = h.tid;
    ev.uid = h.uid;
    ev.comm.assign(h.comm, strnlen(h.comm, sizeof h.comm));
    ev.dir = h.dir == GOTLS_DIR_READ ? Direction::kRead : Direction::kWrite;
    ev.len = h.total_len;
    ev.truncated = h.flags & GOTLS_CHUNK_TRUNCATED;
    ev.conn.id = ConnectionId(h);
    ev.conn.fd = h.fd;
    ev.conn.local = FormatAddress(h.family, h.laddr, h.lport);
    ev.conn.remote = FormatAddress(h.family, h.raddr, h.rport);
    ev.payload.reserve(std::min<uint64_t>(p.expected, GOTLS_CHUNK_MAX));  // grows as chunks arrive
    it = pending_.emplace(key, std::move(p)).first;
  }
  Pending& p = it->second;
  if (h.offset + h.chunk_len <= p.expected) {
    // Chunks arrive in order; a gap (lost chunk) is zero-filled and counted in `missing`.
    if (p.ev.payload.size() < h.offset + h.chunk_len) p.ev.payload.resize(h.offset + h.chunk_len);
    std::memcpy(p.ev.payload.data() + h.offset, data.data(), h.chunk_len);
    p.received += h.chunk_len;
  }
  if (h.flags & GOTLS_CHUNK_LAST) {
    Pending done = std::move(p);
    pending_.erase(it);
    Emit(std::move(done));
  }
}

void EventAssembler::Emit(Pending&& p) {
  p.ev.payload.resize(p.expected);  // a lost tail is zero-filled too
  if (p.received < p.expected) {
    p.ev.missing = p.expected - p.received;
    incomplete_++;
  }
  sink_(std::move(p.ev));
}

void EventAssembler::FlushAll() { FlushOlderThan(UINT64_MAX); }

void EventAssembler::FlushOlderThan(uint64_t monotonic_ns) {
  // In call order, so per-connection order is kept.
  std::vector<std::pair<uint64_t, CallKey>> due;  // (ts, call)
  for (const auto& [key, p] : pending_)
    if (p.hdr.ts_ns < monotonic_ns) due.emplace_back(p.hdr.ts_ns, key);
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [ts, key] : due) {
    auto it = pending_.find(key);
    Pending p = std::move(it->second);
    pending_.erase(it);
    Emit(std::move(p));
  }
}

}  // namespace gotlscap::capture
