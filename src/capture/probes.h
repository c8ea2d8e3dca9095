// GoTlsProbes: the loaded eBPF programs (libbpf skeleton of bpf/gotls.bpf.c) and their uprobes.
// One instance serves any number of Go binaries: each Attach() adds the uprobes of one
// executable, with the binary's calling convention passed as the attach cookie.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bpf/gotls_events.h"
#include "common/result.h"
#include "gobin/go_binary.h"

struct gotls_bpf;
struct bpf_link;

namespace gotlscap::capture {

struct ProbeOptions {
  bool data = true;     // plaintext probes (writeRecordLocked, Read, Close)
  bool secrets = true;  // key probes (writeKeyLog, keysFromMasterSecret)
  uint64_t ringbuf_bytes = 64ull << 20;  // rounded up to a power of two
  std::optional<uint32_t> uid;           // only this user's processes
  std::vector<uint32_t> pids;            // only these processes (empty: all)
  bool pid_filter = false;               // the pid filter even with no pids yet (AddPid later)
  std::string cgroup;                    // only tasks under this cgroup v2 directory ("" : all)
  bool container_filter = false;         // only tasks in (below) the cgroups given to AddContainerCgroup
  // Bytes captured per call (1..GOTLS_CAPTURE_MAX): a longer call sends its first max_payload bytes
  // (flag GOTLS_CHUNK_TRUNCATED, its true length in total_len), unless its connection was given
  // to SetCaptureWhole.
  uint64_t max_payload = GOTLS_CAPTURE_MAX;
};

struct ProbeCounters {
  uint64_t v[GOTLS_CNT_MAX] = {};
  uint64_t calls() const { return v[GOTLS_CNT_CALLS]; }
  uint64_t lost_chunks() const { return v[GOTLS_CNT_LOST_CHUNKS]; }
  uint64_t lost_bytes() const { return v[GOTLS_CNT_LOST_BYTES]; }
  uint64_t read_faults() const { return v[GOTLS_CNT_READ_FAULTS]; }
  uint64_t read_no_entry() const { return v[GOTLS_CNT_READ_NO_ENTRY]; }
  uint64_t probe_hits() const { return v[GOTLS_CNT_PROBE_HITS]; }
  uint64_t lost_secrets() const { return v[GOTLS_CNT_LOST_SECRETS]; }
  uint64_t lost_closes() const { return v[GOTLS_CNT_LOST_CLOSES]; }
  uint64_t stack_growth() const { return v[GOTLS_CNT_STACK_GROWTH]; }
};

// Root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN also does).
bool HasBpfPrivileges();
// A libbpf load failure as a one-line error: kPermission when privileges are missing, else the
// verifier's verdict (kInternal).
Error BpfLoadError(int err);

class GoTlsProbes {
 public:
  // Loads the programs. kPermission without root / CAP_BPF+CAP_PERFMON.
  static Result<std::unique_ptr<GoTlsProbes>> Load(const ProbeOptions& opts);
  ~GoTlsProbes();

  // Attaches to `path` (every process running it) the data uprobes (write, Read entry, each Read
  // RET, Close entry where the binary has it) and/or the secret uprobes (writeKeyLog;
  // keysFromMasterSecret where present), as the options say. Returns the number of uprobes attached.
  Result<int> Attach(const gobin::GoBinary& binary, const std::string& path);
  void DetachAll();
  // The same, with the uprobes remembered as `group` so DetachGroup can remove exactly them
  // (whole-host mode detaches a binary no process uses any more).
  Result<int> AttachGroup(const gobin::GoBinary& binary, const std::string& path, uint64_t group);
  // Thread-safe with AttachGroup: the uprobes are removed (in parallel) outside the lock.
  void DetachGroup(uint64_t group);
  // Adds a process to (removes it from) the kernel's pid filter, at any time (`-- COMMAND`: each
  // process of the command's tree as it appears). Only with `pids` or `pid_filter` set at Load.
  void AddPid(uint32_t pid);
  void RemovePid(uint32_t pid);
  // --container: a container's cgroup (its id, the directory's inode number) whose tasks, and its
  // descendants', are traced. Only with `container_filter` set at Load. false when the map is full.
  bool AddContainerCgroup(uint64_t cgroup_id);
  void RemoveContainerCgroup(uint64_t cgroup_id);
  // The connection (process, *tls.Conn address) is captured whole from now on (up to
  // GOTLS_CAPTURE_MAX per call) whatever max_payload says; its entry goes at its Close (in the
  // kernel), with ClearCaptureWhole, or least recently used of GOTLS_WHOLE_CONNS_MAX. false if the
  // map refused it. Nothing to do (true) when max_payload caps nothing.
  bool SetCaptureWhole(uint32_t pid, uint64_t conn_ptr);
  void ClearCaptureWhole(uint32_t pid, uint64_t conn_ptr);
  uint64_t max_payload() const { return opts_.max_payload; }

  int ringbuf_fd() const;
  int secrets_fd() const;
  ProbeCounters ReadCounters() const;

 private:
  GoTlsProbes() = default;
  Result<int> AttachLinks(const gobin::GoBinary& binary, const std::string& path, std::vector<bpf_link*>& made);
  ProbeOptions opts_;
  gotls_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
  std::map<uint64_t, std::vector<bpf_link*>> groups_;
  // Read exit layouts written to the read_exits map, by content: identical binaries share one.
  // An error once GOTLS_READ_EXITS_MAX layouts exist: that binary keeps RET probes instead.
  Result<uint32_t> ReadExitIndex(const gobin::GoBinary::ReadExitProbe& e);
  std::map<std::string, uint32_t> read_exit_ids_;
  std::mutex read_exit_mu_;
  std::mutex links_mu_;  // Attach/Detach may come from the exec-following thread and the capture loop
};

}  // namespace gotlscap::capture
