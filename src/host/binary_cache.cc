#include "host/binary_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "elf/elf_file.h"
#include "gobin/buildinfo.h"
#include "gobin/go_version.h"

namespace gotlscap::host {
namespace {

// Closes a descriptor on every path out.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// The calling convention from the version alone (as gobin::AnalyzeGoBinary decides it): register
// ABI on amd64 from Go 1.17, on arm64 from Go 1.18.
std::string AbiFor(elf::Machine m, const gobin::GoVersion& v) {
  return v.AtLeast(1, m == elf::Machine::kArm64 ? 18 : 17) ? "register" : "stack";
}

// Version and ABI from the build info, for a Go binary whose full analysis failed.
void FillFromBuildInfo(const elf::ElfFile& f, BinaryVerdict& v) {
  auto bi = gobin::ReadBuildInfo(f);
  if (!bi.ok() || !bi.value()) return;
  v.go = true;
  auto version = gobin::ParseGoVersion(bi.value()->version);
  v.version = version ? version->ToString() : bi.value()->version;
  if (version) v.abi = AbiFor(f.machine(), *version);
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); !from.empty() && at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// Analysis of an open file. `cacheable` false: the failure may be transient (I/O).
BinaryVerdict AnalyzeOpened(int fd, const FileKey& key, const std::string& path, bool* cacheable) {
  BinaryVerdict v;
  v.key = key;
  *cacheable = true;

  // Fast path: scripts and other non-ELF files cost one 4-byte read.
  unsigned char magic[4] = {};
  ssize_t n;
  do n = ::pread(fd, magic, sizeof magic, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    *cacheable = false;
    v.reason = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return v;
  }
  if (n != 4 || std::memcmp(magic, "\x7f" "ELF", 4) != 0) {
    v.reason = "not an ELF file";
    return v;
  }

  // Through the descriptor: the very file fstat'ed, even if the path now names another.
  const std::string fd_path = fmt::format("/proc/self/fd/{}", fd);
  auto file = elf::ElfFile::Open(fd_path);
  if (!file.ok()) {
    const Error& e = file.error();
    if (e.kind == ErrorKind::kIo) *cacheable = false;
    v.reason = Replace(e.message, fd_path, path);
    return v;
  }
  auto r = gobin::AnalyzeGoBinary(**file, path);
  if (r.ok()) {
    auto bin = std::make_shared<gobin::GoBinary>(std::move(r).value());
    v.go = v.tls = true;
    v.version = bin->build_info ? bin->version_string : "";
    v.abi = gobin::AbiName(bin->abi);
    v.binary = std::move(bin);
    return v;
  }
  const Error& e = r.error();
  v.reason = Replace(e.message, fd_path, path);
  switch (e.kind) {
    case ErrorKind::kNotElf:
    case ErrorKind::kNotGo:
      v.reason = e.kind == ErrorKind::kNotGo ? "not a Go binary" : "not an ELF file";
      return v;
    case ErrorKind::kMissingFunction:
    case ErrorKind::kNoReturn:
    case ErrorKind::kCorrupt:  // every kCorrupt of gobin is about a Go table that was found
      v.go = true;
      break;
    case ErrorKind::kIo:
      *cacheable = false;
      break;
    default:
      break;
  }
  FillFromBuildInfo(**file, v);
  return v;
}

}  // namespace

BinaryVerdict AnalyzeExecutable(const std::string& path) {
  BinaryVerdict v;
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    v.reason = fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return v;
  }
  auto key = FileKeyOfFd(fd.fd);
  if (!key.ok()) {
    v.reason = key.error().message;
    return v;
  }
  bool cacheable = true;
  return AnalyzeOpened(fd.fd, *key, path, &cacheable);
}

BinaryCache::BinaryCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

std::shared_ptr<const BinaryVerdict> BinaryCache::Get(const FileKey& key, const std::string& path) {
  std::promise<VerdictPtr> promise;
  {
    std::unique_lock lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      hits_++;
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    if (auto it = pending_.find(key); it != pending_.end()) {
      hits_++;
      auto fut = it->second;
      lock.unlock();
      return fut.get();
    }
    misses_++;
    pending_.emplace(key, promise.get_future().share());
  }

  VerdictPtr verdict;
  bool cacheable = true;
  try {
    Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    const int open_errno = errno;
    auto actual = fd.fd >= 0 ? FileKeyOfFd(fd.fd) : Result<FileKey>(MakeError(ErrorKind::kIo, std::strerror(open_errno)));
    if (!actual.ok()) {
      auto v = std::make_shared<BinaryVerdict>();
      v->key = key;
      v->reason = fmt::format("cannot open {}: {}", path, actual.error().message);
      verdict = std::move(v);
      cacheable = false;
    } else {
      verdict = std::make_shared<const BinaryVerdict>(AnalyzeOpened(fd.fd, *actual, path, &cacheable));
    }
  } catch (const std::exception& e) {
    auto v = std::make_shared<BinaryVerdict>();
    v->key = key;
    v->reason = fmt::format("analysis of {} failed: {}", path, e.what());
    verdict = std::move(v);
    cacheable = false;
  }
  {
    std::lock_guard lock(mu_);
    pending_.erase(key);
    if (cacheable) InsertLocked(verdict->key, verdict);
  }
  promise.set_value(verdict);
  return verdict;
}

void BinaryCache::InsertLocked(const FileKey& key, VerdictPtr v) {
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->second = std::move(v);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, std::move(v));
  index_.emplace(key, lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

size_t BinaryCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}
uint64_t BinaryCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}
uint64_t BinaryCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

}  // namespace gotlscap::host
