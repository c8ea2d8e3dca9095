#include "host/process_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

namespace gotlscap::host {
namespace {

constexpr uint64_t kPfKthread = 0x00200000;  // include/linux/sched.h PF_KTHREAD

FileKey KeyOf(const struct stat& st) {
  FileKey k;
  k.dev = static_cast<uint64_t>(st.st_dev);
  k.ino = static_cast<uint64_t>(st.st_ino);
  k.size = static_cast<uint64_t>(st.st_size);
  k.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return k;
}

ErrorKind KindOfErrno(int e) {
  if (e == ENOENT || e == ESRCH) return ErrorKind::kNoProcess;
  if (e == EACCES || e == EPERM) return ErrorKind::kPermission;
  return ErrorKind::kIo;
}

// A small file (procfs), read whole up to `max` bytes; nullopt when it cannot be opened or read.
std::optional<std::string> ReadSmall(const std::string& path, size_t max = 4096) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out(max, '\0');
  size_t got = 0;
  bool failed = false;
  while (got < max) {
    ssize_t n = ::read(fd, out.data() + got, max - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) failed = true;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (failed) return std::nullopt;
  out.resize(got);
  return out;
}

template <typename T>
bool ParseNum(std::string_view s, T& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Fields of /proc/PID/stat after "pid (comm)": index 0 is field 3 (state). comm may hold spaces
// and parentheses, so split after the last ')'.
std::vector<std::string_view> StatFields(std::string_view stat) {
  std::vector<std::string_view> out;
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return out;
  std::string_view rest = stat.substr(close + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n')) i++;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') j++;
    if (j > i) out.push_back(rest.substr(i, j - i));
    i = j;
  }
  return out;
}

// Effective uid from the "Uid:\treal\teffective\tsaved\tfs" line of /proc/PID/status.
std::optional<uint32_t> EffectiveUid(const std::string& status) {
  size_t at = status.find("\nUid:");
  if (at == std::string::npos) return std::nullopt;
  std::string_view line(status.c_str() + at + 5);
  line = line.substr(0, line.find('\n'));
  uint32_t ids[2] = {0, 0};
  int n = 0;
  size_t i = 0;
  while (n < 2 && i < line.size()) {
    while (i < line.size() && (line[i] == '\t' || line[i] == ' ')) i++;
    size_t j = i;
    while (j < line.size() && line[j] != '\t' && line[j] != ' ') j++;
    if (j == i || !ParseNum(line.substr(i, j - i), ids[n])) return std::nullopt;
    n++;
    i = j;
  }
  if (n < 2) return std::nullopt;
  return ids[1];
}

}  // namespace

size_t FileKeyHash::operator()(const FileKey& k) const noexcept {
  // boost::hash_combine-style mixing over the four fields (64-bit golden ratio constant).
  uint64_t h = 0;
  for (uint64_t v : {k.dev, k.ino, k.size, static_cast<uint64_t>(k.mtime_ns)}) {
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return static_cast<size_t>(h);
}

Result<FileKey> FileKeyOfFd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return MakeError(ErrorKind::kIo, fmt::format("fstat fd {}: {}", fd, std::strerror(errno)));
  return KeyOf(st);
}

Result<FileKey> FileKeyOfPath(const std::string& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) {
    int e = errno;
    return MakeError(KindOfErrno(e), fmt::format("{}: {}", p, std::strerror(e)));
  }
  return KeyOf(st);
}

std::string ShownPath(uint32_t pid, const std::string& seen, const FileKey& key) {
  if (seen.empty() || seen[0] != '/') return seen;
  if (auto k = FileKeyOfPath(seen); k.ok() && *k == key) return seen;
  const std::string root_link = fmt::format("/proc/{}/root", pid);
  // The kernel writes the process's root the way it writes `seen`: from the root of the
  // namespace both lie in, when gotlscap's root is not above them. Their difference is the
  // path inside the process's root.
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(root_link.c_str(), buf, sizeof buf);
  std::string inside = seen;
  if (n > 1) {
    const std::string_view root(buf, static_cast<size_t>(n));
    if (seen.size() > root.size() && seen.compare(0, root.size(), root) == 0 && seen[root.size()] == '/')
      inside = seen.substr(root.size());
  }
  const std::string through_root = root_link + inside;
  if (auto k = FileKeyOfPath(through_root); k.ok() && *k == key) return through_root;
  return seen;
}

std::optional<ProcessInfo> ReadProcess(uint32_t pid) {
  const std::string dir = fmt::format("/proc/{}", pid);
  ProcessInfo info;
  info.pid = pid;

  auto stat = ReadSmall(dir + "/stat");
  if (!stat) return std::nullopt;
  auto fields = StatFields(*stat);
  uint64_t flags = 0;
  if (fields.size() < 20 || !ParseNum(fields[1], info.ppid) || !ParseNum(fields[6], flags) ||
      !ParseNum(fields[19], info.start_time))
    return std::nullopt;
  if (flags & kPfKthread) return std::nullopt;
  if (fields[0] == "Z" || fields[0] == "X") return std::nullopt;  // zombie/dead: no executable

  // readlink fails with ENOENT for kernel threads and exited processes, EACCES for another
  // user's process (ptrace access mode check) when we are not root.
  info.exe_link = dir + "/exe";
  char buf[PATH_MAX];
  ssize_t n = ::readlink(info.exe_link.c_str(), buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  info.exe.assign(buf, static_cast<size_t>(n));
  auto key = FileKeyOfPath(info.exe_link);
  if (!key) return std::nullopt;
  info.file = *key;
  info.exe = ShownPath(pid, info.exe, info.file);

  if (auto comm = ReadSmall(dir + "/comm", 64)) {
    info.comm = std::move(*comm);
    while (!info.comm.empty() && info.comm.back() == '\n') info.comm.pop_back();
  }
  auto status = ReadSmall(dir + "/status", 16384);
  if (!status) return std::nullopt;
  auto uid = EffectiveUid(*status);
  if (!uid) return std::nullopt;
  info.uid = *uid;

  struct stat ns;
  if (::stat((dir + "/ns/mnt").c_str(), &ns) == 0) info.mnt_ns = static_cast<uint64_t>(ns.st_ino);
  return info;
}

std::optional<ParentInfo> ReadParent(uint32_t pid) {
  auto stat = ReadSmall(fmt::format("/proc/{}/stat", pid), 1024);
  if (!stat) return std::nullopt;
  auto fields = StatFields(*stat);
  ParentInfo p;
  if (fields.size() < 20 || !ParseNum(fields[1], p.ppid) || !ParseNum(fields[19], p.start_time)) return std::nullopt;
  return p;
}

std::vector<ProcessInfo> ScanProcesses() {
  std::vector<ProcessInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  std::vector<uint32_t> pids;
  while (struct dirent* e = ::readdir(d)) {
    uint32_t pid = 0;
    std::string_view name(e->d_name);
    if (!name.empty() && name[0] >= '1' && name[0] <= '9' && ParseNum(name, pid)) pids.push_back(pid);
  }
  ::closedir(d);
  std::sort(pids.begin(), pids.end());
  out.reserve(pids.size());
  for (uint32_t pid : pids)
    if (auto p = ReadProcess(pid)) out.push_back(std::move(*p));
  return out;
}

}  // namespace gotlscap::host
