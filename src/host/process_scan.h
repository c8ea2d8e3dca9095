// Process discovery for whole-host capture (issue 7): what runs, from which executable file.
// Everything comes from /proc; nothing here needs eBPF. A process is identified by pid plus its
// start time (pids are reused); its executable by FileKey (device, inode, size, mtime), so one
// analysis serves every process, path and mount namespace that runs the same file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace gotlscap::host {

// Identifies an executable's content: same key → same analysis. An upgrade that replaces the file
// gives a new inode (rename) or a new size/mtime (rewrite in place), hence a new key.
struct FileKey {
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileKey&) const = default;
};
struct FileKeyHash {
  size_t operator()(const FileKey&) const noexcept;
};

// fstat(fd). Errors: kIo.
Result<FileKey> FileKeyOfFd(int fd);
// stat(p), following symlinks, so /proc/PID/exe gives the running executable, even when it was
// deleted or lives in another mount namespace. Errors: kNoProcess (ENOENT/ESRCH), kPermission
// (EACCES/EPERM), kIo.
Result<FileKey> FileKeyOfPath(const std::string& p);

struct ProcessInfo {
  uint32_t pid = 0, ppid = 0, uid = 0;  // uid: effective user id (as `ps -u`)
  std::string comm;        // /proc/PID/comm
  std::string exe;         // the executable's path for people: ShownPath of readlink(/proc/PID/exe)
  std::string exe_link;    // "/proc/PID/exe": the path to open/attach (works across mount namespaces)
  FileKey file;
  uint64_t mnt_ns = 0;     // inode of /proc/PID/ns/mnt (0 when it cannot be read)
  uint64_t start_time = 0; // field 22 of /proc/PID/stat (tells a reused pid apart)
};

// The path to show for process `pid`'s executable `key`, given `seen`, the path the kernel gives
// gotlscap (readlink of /proc/PID/exe or of an fd). `seen` itself when it opens that very file from
// gotlscap's root. A program of another mount namespace or root (a container, a chroot, a bind
// mount of its own) is named from its own root instead: "/proc/PID/root" + its path there, which
// root can open while the process lives (the kernel's path would lead to another file, or to
// nothing, from here). Else `seen` unchanged (" (deleted)" files).
std::string ShownPath(uint32_t pid, const std::string& seen, const FileKey& key);

// nullopt: gone, kernel thread, zombie (no executable left), or unreadable (another user's
// process without root). Only the thread-group leader's pid is meaningful here.
std::optional<ProcessInfo> ReadProcess(uint32_t pid);
// Every readable user-space process (including the caller), sorted by pid.
std::vector<ProcessInfo> ScanProcesses();

// Parent pid and start time from /proc/PID/stat alone (cheap; zombies too); nullopt when gone.
struct ParentInfo {
  uint32_t ppid = 0;
  uint64_t start_time = 0;
};
std::optional<ParentInfo> ReadParent(uint32_t pid);

}  // namespace gotlscap::host
