// cgroup v2 paths and the containers they name, for every layer that reports or filters by
// container (the capture session, pcap's packet owners).
//
// ContainerOf parses the directory names container runtimes and the kubelet give their cgroups,
// with both cgroup drivers:
//   systemd:  .../docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
//             kubepods[-burstable|-besteffort]-pod<uid, '_' for '-'>.slice
//   cgroupfs: /docker/<id>, /kubepods/[burstable|besteffort/]pod<uid>/<id>,
//             /libpod_parent/libpod-<id>, crio-<id>
// <id> is 64 hex digits. The deepest container component wins (a container in a container).
//
// CgroupIndex turns the kernel's cgroup ids (the inode number of the cgroup's directory, what
// bpf_get_current_cgroup_id() returns) into paths relative to the cgroup v2 mount, without a
// /proc read per event: each id is resolved once and kept.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gotlscap {

struct ContainerInfo {
  std::string id;       // 64 lowercase hex digits
  std::string runtime;  // "docker" | "containerd" | "cri-o" | "podman"; "" when the path does not say
  std::string pod_uid;  // Kubernetes pod UID ("…-…-…"), "" outside a pod
  bool operator==(const ContainerInfo&) const = default;
};

// The container a cgroup v2 path ("/system.slice/docker-<id>.scope") names, nullopt if none.
std::optional<ContainerInfo> ContainerOf(std::string_view cgroup_path);
// ContainerOf(path)->id, or "".
std::string ContainerIdOf(std::string_view cgroup_path);
// A --container argument: 1 to 64 hex digits (case-insensitive).
bool IsContainerIdPrefix(std::string_view s);

// One cgroup as events report it.
struct CgroupInfo {
  std::string path;  // "/system.slice/docker-<id>.scope", relative to the cgroup v2 mount
  std::optional<ContainerInfo> container;
};

// The cgroup v2 path in /proc/PID/cgroup ("0::/path"); on a v1-only host the first hierarchy's
// path; "" when unreadable (the process is gone).
std::string ProcCgroupPath(uint32_t pid);

// cgroup id -> CgroupInfo, bounded. A miss tries the process's /proc/PID/cgroup (checked
// against the id: the process may have moved, or sit in another cgroup namespace; tried once per
// id between walks), then walks the hierarchy, at most once a second (a walk records every cgroup
// it sees). An id a walk did not find (the cgroup is gone, or outside the mount we see) is
// remembered as unknown: ids are never reused.
class CgroupIndex {
 public:
  // `mount`: the cgroup v2 mount ("" : none, every lookup misses).
  explicit CgroupIndex(std::string mount);
  // nullptr when the id is not (yet) known. `pid` 0: no /proc hint.
  std::shared_ptr<const CgroupInfo> Lookup(uint64_t id, uint32_t pid);
  // Walks the hierarchy now, recording every cgroup; calls fn for each (id, info) found.
  void Walk(const std::function<void(uint64_t id, const std::shared_ptr<const CgroupInfo>&)>& fn = nullptr);
  const std::string& mount() const { return mount_; }
  size_t size() const { return by_id_.size(); }
  static constexpr size_t kMaxEntries = 65536;

 private:
  std::shared_ptr<const CgroupInfo> Insert(uint64_t id, std::string path);
  std::string mount_;
  std::unordered_map<uint64_t, std::shared_ptr<const CgroupInfo>> by_id_;
  std::unordered_map<uint64_t, bool> proc_tried_;  // ids whose /proc hint failed since the last walk
  uint64_t last_walk_ns_ = 0;
  bool walked_ = false;
};

}  // namespace gotlscap
