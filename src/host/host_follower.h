// HostFollower: whole-host capture. With no -e/-p, gotlscap finds every Go program with
// crypto/tls by itself and follows the host as programs start and stop:
//
//   start:  /proc scan ─► each process's executable (via /proc/PID/exe, so container processes
//           work) ─► BinaryCache (analysis once per file content) ─► uprobes once per file
//   exec:   ExecWatcher (fanotify, the exec waits) ─► same path, before the program runs
//   tick:   every second, processes that exited or exec'ed elsewhere are dropped; a binary no
//           process has used for `linger` loses its uprobes (bounded state, no leftover probes)
//
// Uprobes belong to a file (inode), not a process: attaching once covers every process running
// it, present and future, whatever path or mount namespace it is run from.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "capture/probes.h"
#include "common/result.h"
#include "host/binary_cache.h"
#include "host/exec_watcher.h"
#include "host/process_scan.h"

namespace gotlscap::host {

struct FollowOptions {
  std::vector<std::string> comms;          // --comm: only these program names
  std::vector<std::string> exclude_comms;  // --exclude-comm
  std::optional<uint32_t> uid;             // -u: only programs run by this user
  bool verbose = false;                    // one line per skipped binary
  uint64_t linger_ns = 5'000'000'000;      // detach a binary unused this long
  // -- COMMAND: only this process and its descendants (forks and execs, also in the kernel's pid
  // filter: GoTlsProbes::AddPid; the probes must be loaded with pid_filter). A process belongs
  // when its parent chain reaches a member, or reaches us: the CLI is the child subreaper of
  // the tree, so orphaned members are reparented to it (and it forks nothing else).
  uint32_t tree_root = 0;
};

struct FollowSummary {
  uint64_t binaries_attached = 0;  // attach operations (a binary re-attached after detach counts again)
  uint64_t binaries_detached = 0;
  uint64_t processes = 0;          // distinct processes seen running an attached binary
  uint64_t execs = 0;              // exec events answered
  uint64_t skipped = 0;            // binaries not attached (not Go, no crypto/tls, filtered, errors)
  size_t attached_now = 0;
};

class HostFollower {
 public:
  // `log` receives the one-line notices (attached/detached/skipped) meant for stderr.
  using Log = std::function<void(const std::string&)>;
  static Result<std::unique_ptr<HostFollower>> Start(capture::GoTlsProbes& probes, const FollowOptions& opts, Log log);
  ~HostFollower();

  // From the capture loop: drops exited processes, detaches unused binaries (once a second).
  void Tick(uint64_t now_ns);
  // Stops following (no more attaches); the probes stay until the session detaches them all.
  void Stop();
  FollowSummary summary() const;
  int probe_count() const;
  // tree_root set: the processes of the tree seen so far (still running or not yet pruned).
  std::vector<uint32_t> tree_pids() const;

 private:
  struct Binary {
    std::shared_ptr<const BinaryVerdict> verdict;
    std::string shown_path;  // as a process sees it, for the log
    uint64_t group = 0;      // probes group, 0 when not attached
    int probes = 0;
    std::map<uint32_t, uint64_t> pids;  // pid -> start time
    uint64_t idle_since_ns = 0;         // 0 while some process uses it
  };

  HostFollower(capture::GoTlsProbes& probes, const FollowOptions& opts, Log log);
  void OnExec(const ExecWatcher::Exec& e);
  void OnExecDone(uint32_t pid);
  void OnFork(uint32_t parent, uint32_t child);
  // tree_root set: whether `pid` is in the tree; a member found by its parent chain joins it.
  bool JoinTree(uint32_t pid);
  void AddMember(uint32_t pid, uint64_t start_time);
  void PruneTree();
  // Records that `pid` runs the file `key` (readable at `path`), attaching it when needed.
  struct Proc {
    uint32_t pid;
    uint64_t start_time;
  };
  void Track(const std::vector<Proc>& procs, const FileKey& key, const std::string& path,
             const std::string& shown_path, const std::string& comm, uint32_t uid);
  bool Wanted(const std::string& comm, uint32_t uid) const;
  void NoteSkipped(const FileKey& key, const std::shared_ptr<const BinaryVerdict>& v, const std::string& shown_path);
  void TickLocked(uint64_t now_ns, std::vector<Binary>& to_detach);

  capture::GoTlsProbes& probes_;
  FollowOptions opts_;
  Log log_;
  BinaryCache cache_;
  std::unique_ptr<ExecWatcher> watcher_;
  mutable std::mutex mu_;  // the fanotify thread and the capture loop both attach/detach
  std::unordered_map<FileKey, Binary, FileKeyHash> binaries_;
  // Binaries whose uprobes are being attached (outside mu_), with the processes seen meanwhile.
  std::unordered_map<FileKey, std::vector<Proc>, FileKeyHash> attaching_;
  std::mutex skipped_mu_;  // apart from mu_: a skipped exec never waits for the capture loop
  std::unordered_set<FileKey, FileKeyHash> skipped_logged_;  // one count (and -v line) per binary
  std::atomic<uint64_t> execs_{0}, skipped_{0};
  std::set<uint64_t> mount_namespaces_;
  uint64_t next_group_ = 1;
  uint64_t next_tick_ns_ = 0;
  FollowSummary summary_;
  mutable std::mutex tree_mu_;
  std::unordered_map<uint32_t, uint64_t> tree_;  // member pid -> start time
};

}  // namespace gotlscap::host
