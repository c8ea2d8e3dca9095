// DataEvent: one crypto/tls call's plaintext (a write or a read), reassembled from its ring-buffer
// chunks, as the output writers receive it; or, with `end` set, the end of a connection (no
// payload): after it no more events of that connection follow (a new one gets a new id).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/cgroup.h"

namespace gotlscap::capture {

enum class Direction { kWrite, kRead };
inline const char* DirectionName(Direction d) { return d == Direction::kWrite ? "write" : "read"; }

// Why a connection ended. kClose: the process called (*tls.Conn).Close. kEof: one of its Reads
// returned io.EOF (the peer closed the connection; the process may still write before closing).
enum class ConnEnd { kNone, kClose, kEof };
inline const char* ConnEndName(ConnEnd e) { return e == ConnEnd::kClose ? "close" : e == ConnEnd::kEof ? "eof" : ""; }

struct Connection {
  uint64_t id = 0;     // stable within a gotlscap run: (pid, *tls.Conn, kernel socket)
  int64_t fd = -1;     // the socket's fd in the traced process, -1 if unknown
  std::string local;   // "10.0.0.1:443", "[::1]:8443", "" if unknown
  std::string remote;
  // The process's cgroup v2 path and container, when known (set by CaptureSession from the
  // event's cgroup id; carried with the connection into HTTP messages and decoder notices).
  std::shared_ptr<const CgroupInfo> cgroup;
};

struct DataEvent {
  uint64_t ts_ns = 0;  // Unix epoch, nanoseconds
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t uid = 0;
  uint64_t cgroup_id = 0;  // the calling task's cgroup v2 id, read in the kernel (0: unknown)
  std::string comm;
  Direction dir = Direction::kWrite;
  uint64_t len = 0;          // the call's true length
  std::string payload;       // captured bytes (len, or the first max_payload / 32 MiB when truncated)
  bool truncated = false;    // len exceeded the per-call capture limit (--max-payload, 32 MiB)
  uint64_t missing = 0;      // bytes lost inside the captured range (ring buffer full, fault)
  Connection conn;
  // Not kNone: a connection-end marker, not data (len 0, no payload; dir kWrite for kClose,
  // kRead for kEof).
  ConnEnd end = ConnEnd::kNone;
  bool closed() const { return end != ConnEnd::kNone; }
};

}  // namespace gotlscap::capture
