// EventAssembler: turns ring-buffer chunks (gotls_data_event + payload) back into one DataEvent
// per crypto/tls call, assigns connection ids, and converts kernel monotonic time to wall time.
// CLOSE and EOF records become end-of-connection DataEvents (DataEvent::end):
//   - only for connections that had data events in this run (a Close of a connection that never
//     carried application data, or was opened before the capture and stayed silent, is dropped);
//   - after every data event of that connection whose chunks were still arriving (a call on
//     another goroutine may be split into chunks around the close record): the end waits for them;
//   - a connection's first EOF only (Read keeps returning io.EOF), and one close: after a close
//     the connection's id is forgotten, so later bytes with the same identity get a new id;
//   - a close is held kCloseGraceNs (DeliverHeldCloses) before it is delivered: a call that
//     raced it on another goroutine (its probe fired just after Close's entry probe, e.g. an
//     HTTP/2 frame written while the transport closes) still belongs to the connection and is
//     delivered before its close.
// A call longer than the probes' max_payload arrives with only its first max_payload bytes (flag
// GOTLS_CHUNK_TRUNCATED): its DataEvent has len = the call's length, payload = the captured prefix,
// truncated set, missing 0; calls of a connection exempt in the kernel (GOTLS_CHUNK_WHOLE_CONN)
// come up to GOTLS_CAPTURE_MAX.
// Pure user-space logic, unit-tested without BPF.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bpf/gotls_events.h"
#include "capture/data_event.h"

namespace gotlscap::capture {

class EventAssembler {
 public:
  using Sink = std::function<void(DataEvent&&)>;
  // monotonic_to_epoch_ns: add to a CLOCK_MONOTONIC time to get Unix epoch time. max_payload: the
  // probes' per-call capture limit (ProbeOptions::max_payload).
  EventAssembler(Sink sink, int64_t monotonic_to_epoch_ns, uint64_t max_payload = GOTLS_CAPTURE_MAX);

  // Feeds one ring-buffer record. Malformed records are counted, never trusted.
  void OnRecord(std::span<const uint8_t> record);
  // Emits every call still waiting for chunks (their missing bytes are counted). Called when
  // draining at exit and periodically for calls whose last chunk was lost.
  void FlushAll();
  void FlushOlderThan(uint64_t monotonic_ns);
  // Delivers the closes received before monotonic_now_ns - kCloseGraceNs whose connections have
  // no call still arriving. The capture loop calls it after each ring-buffer read.
  void DeliverHeldCloses(uint64_t monotonic_now_ns);
  static constexpr uint64_t kCloseGraceNs = 50'000'000;

  uint64_t malformed_records() const { return malformed_; }
  uint64_t incomplete_events() const { return incomplete_; }
  uint64_t connection_ends() const { return ends_; }        // end events delivered
  uint64_t ignored_ends() const { return ignored_ends_; }   // of connections without data events

  // Processes with connection state, and dropping one's state (it exited without closing).
  std::vector<uint32_t> Pids() const;
  void ForgetProcess(uint32_t pid);
  // The *tls.Conn address (the kernel's whole_conns key, with the pid) of connection `conn_id`
  // (DataEvent::conn.id) of process `pid`; nullopt when no such connection is open (never seen,
  // another process's, or ended).
  std::optional<uint64_t> ConnPointer(uint32_t pid, uint64_t conn_id) const;

 private:
  // A *tls.Conn address and even the kernel socket struct are reused after a connection closes
  // (garbage collection, slab reuse); the addresses and ports tell the connections apart.
  struct ConnKey {
    uint32_t pid;
    uint64_t conn, sock;
    uint16_t lport, rport;
    std::array<uint8_t, 16> laddr, raddr;
    bool operator<(const ConnKey& o) const {
      return std::tie(pid, conn, sock, lport, rport, laddr, raddr) <
             std::tie(o.pid, o.conn, o.sock, o.lport, o.rport, o.laddr, o.raddr);
    }
  };
  struct ConnState {
    uint64_t id = 0;
    uint32_t pending = 0;            // calls of this connection still being assembled
    bool eof_delivered = false;
    bool named = false;              // local/remote below are set
    std::string local, remote;       // formatted addresses, as in Connection
    std::vector<DataEvent> waiting;  // ends held: while calls were pending, or a close's grace
    uint64_t close_at = 0;           // monotonic time of a held close (0: none)
  };
  struct Pending {
    gotls_data_event hdr;
    ConnKey conn;
    DataEvent ev;
    uint64_t expected = 0;  // bytes the kernel meant to send (ExpectedBytes)
    uint64_t received = 0;
  };
  static ConnKey KeyOf(const gotls_data_event& h);
  // The payload bytes the kernel sends for the call of `h`: its length, or the limit that applied.
  uint64_t ExpectedBytes(const gotls_data_event& h) const {
    const uint64_t limit = h.flags & GOTLS_CHUNK_WHOLE_CONN ? GOTLS_CAPTURE_MAX : max_payload_;
    return h.total_len < limit ? h.total_len : limit;
  }
  using ConnMap = std::map<ConnKey, ConnState>;
  ConnMap::iterator EraseConn(ConnMap::iterator it);
  void FillMeta(const gotls_data_event& h, ConnState& cs, DataEvent* ev) const;
  void StartCall(const gotls_data_event& h, ConnState& cs, DataEvent* ev) const;
  void Emit(Pending& p);
  void EmitWhole(const gotls_data_event& h, std::span<const uint8_t> data);
  void DeliverCall(DataEvent& ev, uint64_t expected, uint64_t received);
  void OnEnd(const gotls_data_event& h);
  void DeliverEnd(ConnMap::iterator it, DataEvent&& ev);
  void DeliverWaiting(ConnMap::iterator it);
  ConnState& Connection(const ConnKey& key);

  Sink sink_;
  int64_t mono_to_epoch_;
  uint64_t max_payload_;
  struct CallKey {
    uint32_t tid;
    uint64_t call_id;
    bool operator==(const CallKey& o) const { return tid == o.tid && call_id == o.call_id; }
  };
  struct CallKeyHash {
    size_t operator()(const CallKey& k) const { return std::hash<uint64_t>()(k.call_id * 31 + k.tid); }
  };
  using PendingMap = std::unordered_map<CallKey, Pending, CallKeyHash>;
  void EmitPending(PendingMap::iterator it);
  PendingMap pending_;
  DataEvent whole_;                          // reused for every call that fits one record
  std::vector<PendingMap::node_type> spare_;  // nodes of emitted calls, reused with their buffers
  static constexpr size_t kSpares = 2, kSpareMaxBytes = 2u << 20;
  ConnMap conns_;  // ordered by pid first: ForgetProcess erases a range
  std::unordered_map<uint64_t, ConnMap::iterator> by_id_;  // conns_ by ConnState::id
  std::vector<ConnKey> held_closes_;     // connections with close_at set, in arrival order
  uint64_t next_conn_id_ = 1;
  uint64_t malformed_ = 0;
  uint64_t incomplete_ = 0;
  uint64_t ends_ = 0, ignored_ends_ = 0;
};

// "1.2.3.4:80" / "[::1]:443" from the event's family/address/port; "" when unknown.
std::string FormatAddress(uint16_t family, const uint8_t addr[16], uint16_t port);

}  // namespace gotlscap::capture
