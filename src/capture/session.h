// CaptureSession: from command-line targets to a running capture. Resolves -e paths and -p pids
// to executables (one set of uprobes per distinct file), analyses each, loads and attaches the
// probes, then pumps the ring buffer into an EventAssembler until asked to stop, and drains.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "capture/event_assembler.h"
#include "capture/key_update_tracker.h"
#include "capture/probes.h"
#include "capture/ring_reader.h"
#include "capture/secret_event.h"
#include "common/cgroup.h"
#include "common/result.h"


namespace gotlscap::capture {

struct SessionOptions {
  bool data = true;     // capture plaintext
  bool secrets = true;  // capture TLS secrets
  std::vector<std::string> elf_paths;
  std::vector<uint32_t> pids;
  std::optional<uint32_t> uid;
  uint64_t ringbuf_bytes = 64ull << 20;
  // No -e/-p: start with no target; host::HostFollower attaches binaries as it finds them.
  bool follow_host = false;
  std::string cgroup;  // --cgroup: a cgroup v2 directory (resolved by the CLI)
  bool pid_filter = false;  // -- COMMAND: the kernel's pid filter on, pids added as they come
  // --container: only processes of containers whose id starts with one of these (hex) prefixes;
  // checked in the kernel, containers that start later are added within a second.
  std::vector<std::string> containers;
  // --max-payload: bytes captured per call, 1..GOTLS_CAPTURE_MAX (the default caps nothing beyond
  // the 32 MiB limit); the rest of a longer call is counted (DataEvent::len), not copied, except
  // on connections given to CaptureSession::CaptureWhole.
  uint64_t max_payload = GOTLS_CAPTURE_MAX;
  // Notes for the user (containers found, prefixes nothing matches yet); default: stderr.
  std::function<void(const std::string&)> log;
};

struct Target {
  std::string path;  // as attached (a -e path, or /proc/PID/exe)
  gobin::GoBinary binary;
  int probes = 0;
};

struct SessionSummary {
  uint64_t events = 0;
  uint64_t bytes = 0;
  uint64_t truncated = 0;
  uint64_t uncaptured_bytes = 0;  // of truncated events: len - payload.size(), summed
  uint64_t incomplete = 0;  // events with bytes missing
  uint64_t closes = 0;      // connection-end events (DataEvent::end), not counted in `events`
  uint64_t secrets = 0;
  ProbeCounters counters;
};

class CaptureSession {
 public:
  // Everything that can fail before capture starts fails here, with a one-line error.
  using SecretSink = std::function<void(SecretEvent&&)>;
  // `sink` receives data events and, with data capture on, connection-end events (ev.closed()).
  static Result<std::unique_ptr<CaptureSession>> Start(const SessionOptions& opts, EventAssembler::Sink sink,
                                                       SecretSink secret_sink = nullptr);
  ~CaptureSession();

  const std::vector<Target>& targets() const { return targets_; }
  GoTlsProbes& probes() { return *probes_; }
  // Called (from Run) for each traced process found gone, after its connection state is dropped.
  void SetProcessExitHandler(std::function<void(uint32_t pid)> fn) { on_process_exit_ = std::move(fn); }
  // Another BPF ring buffer to poll with the session's (pcap mode's packets); Finish drains it.
  Result<bool> AddRingBuffer(int map_fd, int (*fn)(void* ctx, void* data, size_t size), void* ctx);
  int probe_count() const;
  // From now on the calls of connection `conn_id` (DataEvent::conn.id) of process `pid` are
  // captured whole (up to GOTLS_CAPTURE_MAX) whatever max_payload says: for protocols whose
  // framing may sit anywhere in a call (HTTP/2). Calls already in the ring buffer stay capped. Call
  // it from the sink (the capture thread). false: no such open connection (or the kernel's map
  // refused it). The exemption ends with the connection (its close) or as the least recently used
  // of GOTLS_WHOLE_CONNS_MAX.
  bool CaptureWhole(uint32_t pid, uint64_t conn_id);

  // Polls until `stop` becomes true or `deadline_ns` (CLOCK_MONOTONIC, 0 = none) passes.
  // `on_idle` runs after each poll (writers flush there).
  void Run(const std::atomic<bool>& stop, uint64_t deadline_ns, const std::function<void()>& on_idle);
  // Detaches the probes, delivers every event still in the ring buffer, returns the totals.
  SessionSummary Finish();

 private:
  CaptureSession() = default;
  static int OnRecord(void* ctx, void* data, size_t size);
  static int OnSecret(void* ctx, void* data, size_t size);

  std::vector<Target> targets_;
  std::unique_ptr<GoTlsProbes> probes_;
  std::unique_ptr<EventAssembler> assembler_;
  std::unique_ptr<RingReader> rb_;
  SessionSummary summary_;
  EventAssembler::Sink sink_;
  SecretSink secret_sink_;
  KeyUpdateTracker key_updates_;
  int64_t mono_to_epoch_ = 0;
  std::function<void(uint32_t)> on_process_exit_;
  // cgroup id -> path and container, for every event (ids come from the kernel with each record).
  std::unique_ptr<CgroupIndex> cgroups_;
  // --container: the prefixes, and the cgroups now in the kernel's container_cgroups map.
  void ScanContainers(bool first);
  std::vector<std::string> container_prefixes_;
  std::set<uint64_t> container_cgroups_;
  std::function<void(const std::string&)> log_;
  // CaptureWhole's connections: (pid, conn id) -> *tls.Conn; and how many of them name each kernel
  // key (a reused *tls.Conn address), so an end removes the kernel entry only with the last.
  void EndCaptureWhole(uint32_t pid, uint64_t conn_id);
  void ForgetCaptureWhole(uint32_t pid);
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> whole_conns_;
  std::map<std::pair<uint32_t, uint64_t>, uint32_t> whole_keys_;
};

uint64_t MonotonicNowNs();

}  // namespace gotlscap::capture
