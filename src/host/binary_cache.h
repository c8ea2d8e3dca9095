// Per-executable analysis results for whole-host capture (issue 7). Many processes run the same
// few files; each distinct file (FileKey: device, inode, size, mtime) is analysed once, whatever
// the path or mount namespace it was reached through, and the verdict says whether capture can
// attach to it. Bounded (least recently used entries go first) and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gobin/go_binary.h"
#include "host/process_scan.h"

namespace gotlscap::host {

struct BinaryVerdict {
  FileKey key;              // the file actually analysed (see BinaryCache::Get)
  bool go = false;          // a Go binary (build info or pclntab found)
  bool tls = false;         // crypto/tls hook targets all found: attachable
  std::string version;      // "go1.27.3" when known ("" otherwise)
  std::string abi;          // "register" | "stack" | "" (unknown: no build info and not attachable)
  std::string reason;       // why not attachable (one line), "" when tls
  std::shared_ptr<const gobin::GoBinary> binary;  // set when tls; binary->path is the path analysed
};

// Classifies the file at `path` (no cache). Non-ELF files (scripts) cost one open + read of 4
// bytes. ok → go+tls; kMissingFunction → go, no tls (version and ABI from the build info);
// kNotElf/kNotGo → not go; other errors (corrupt Go tables, no RET, unsupported architecture,
// I/O) → reason set, go when the file has Go tables. `key` is set from fstat of the opened file.
BinaryVerdict AnalyzeExecutable(const std::string& path);

class BinaryCache {
 public:
  explicit BinaryCache(size_t capacity = 4096);  // capacity 0 is taken as 1

  // Analyses `path` (e.g. /proc/PID/exe or /proc/self/fd/N) unless `key` is cached. Concurrent
  // calls for the same key share one analysis. The file is opened once and analysed through that
  // descriptor; when it no longer has `key` (replaced since the caller's stat), the verdict is
  // about, and cached under, the file actually found: check verdict->key. A file that cannot be
  // opened (the process exited, permission) gives a verdict with the reason that is not cached.
  std::shared_ptr<const BinaryVerdict> Get(const FileKey& key, const std::string& path);

  size_t size() const;      // cached verdicts
  uint64_t hits() const;    // Get calls answered from the cache (or by joining an analysis)
  uint64_t misses() const;  // Get calls that analysed a file

 private:
  using VerdictPtr = std::shared_ptr<const BinaryVerdict>;
  using Lru = std::list<std::pair<FileKey, VerdictPtr>>;  // most recently used first
  void InsertLocked(const FileKey& key, VerdictPtr v);

  mutable std::mutex mu_;
  size_t capacity_;
  Lru lru_;
  std::unordered_map<FileKey, Lru::iterator, FileKeyHash> index_;
  std::unordered_map<FileKey, std::shared_future<VerdictPtr>, FileKeyHash> pending_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace gotlscap::host
