// ExecWatcher: every exec on the host, before the new program runs its first instruction.
//
// fanotify permission events (FAN_OPEN_EXEC_PERM) on every filesystem: the kernel holds the
// exec until we answer, so a program that starts, makes one request and exits within a few
// milliseconds is still captured from its first byte — its binary's uprobes are attached while
// it waits. The answer is always "allow" (gotlscap never blocks a program), given as soon as the
// callback returns; if gotlscap dies, the kernel allows every pending exec by itself.
//
// The sched_process_exec tracepoint would only report an exec after the fact, racing the
// program; a polling loop would miss short-lived programs altogether. That after-the-fact report
// is still useful where fanotify cannot see: a program on a filesystem mounted only in another
// mount namespace (a container started later). The kernel's process connector (netlink) gives
// it without BPF or tracefs; `on_exec_done` receives those, and the mounts of a new namespace are
// then watched too. The connector's fork events go to `on_fork` (-- COMMAND follows a tree).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/result.h"

namespace gotlscap::host {

class ExecWatcher {
 public:
  struct Exec {
    uint32_t pid = 0;  // the process calling execve (same pid after the exec)
    int fd = -1;       // the executable, opened by the kernel; valid during the callback only
  };
  using Callback = std::function<void(const Exec&)>;
  using DoneCallback = std::function<void(uint32_t pid)>;
  // A new process (not a thread): `child` forked by `parent` (process connector, after the fact).
  using ForkCallback = std::function<void(uint32_t parent, uint32_t child)>;

  // Marks the filesystems mounted in our mount namespace and starts the answering thread.
  // kPermission without CAP_SYS_ADMIN; kInternal when the kernel lacks fanotify permission
  // events. Without the process connector, `on_exec_done` is simply never called.
  static Result<std::unique_ptr<ExecWatcher>> Start(Callback cb, DoneCallback on_exec_done,
                                                    ForkCallback on_fork = nullptr);
  ~ExecWatcher();

  // Also watches the filesystems mounted in `pid`'s mount namespace (containers).
  void WatchMountsOf(uint32_t pid);

  uint64_t events() const { return events_.load(); }
  int filesystems() const;

 private:
  ExecWatcher() = default;
  void MarkMounts(const std::string& root_prefix, const std::string& mountinfo);
  void Loop();

  void ReadProcEvents();

  Callback cb_;
  DoneCallback done_cb_;
  ForkCallback fork_cb_;
  int fan_fd_ = -1;
  int proc_fd_ = -1;  // netlink process connector, -1 when unavailable
  int stop_fd_ = -1;  // eventfd: wakes the thread to exit
  std::thread thread_;
  std::atomic<uint64_t> events_{0};
  mutable std::mutex mu_;
  std::set<uint64_t> marked_devs_;
};

}  // namespace gotlscap::host
