#include "common/cgroup.h"

#include <sys/stat.h>
#include <time.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <vector>

namespace gotlscap {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool StripSuffix(std::string_view& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.substr(s.size() - suffix.size()) != suffix) return false;
  s.remove_suffix(suffix.size());
  return true;
}

bool StripPrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// A pod UID as the path spells it: a UUID (36), or a static pod's 32-hex config hash.
std::optional<std::string> PodUid(std::string_view s, bool systemd) {
  if (s.size() < 32 || s.size() > 36) return std::nullopt;
  std::string uid(s);
  for (char& c : uid) {
    if (systemd && c == '_') c = '-';  // systemd escapes '-' in unit names as '_'
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return std::nullopt;
  }
  return uid;
}

// The container in one path component (its parent given for the cgroupfs layouts).
std::optional<ContainerInfo> ContainerComponent(std::string_view c, std::string_view parent) {
  static const struct {
    std::string_view prefix, runtime;
  } kScopes[] = {{"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"}, {"libpod-", "podman"}};
  std::string_view base = c;
  StripSuffix(base, ".scope");
  for (const auto& s : kScopes) {
    std::string_view id = base;
    if (StripPrefix(id, s.prefix) && id.size() == 64 && IsLowerHex(id))
      return ContainerInfo{std::string(id), std::string(s.runtime), ""};
  }
  // cgroupfs: the bare id, under /docker (docker's own cgroup parent) or a pod's directory.
  if (c.size() == 64 && IsLowerHex(c)) return ContainerInfo{std::string(c), parent == "docker" ? "docker" : "", ""};
  return std::nullopt;
}

// The pod UID in one component: systemd "kubepods[-qos]-pod<uid>.slice", cgroupfs "pod<uid>" (below
// a kubepods directory).
std::optional<std::string> PodComponent(std::string_view c, bool under_kubepods) {
  std::string_view s = c;
  if (StripSuffix(s, ".slice")) {
    if (s.find("kubepods") == std::string_view::npos) return std::nullopt;
    size_t dash = s.rfind("-pod");
    if (dash == std::string_view::npos) return std::nullopt;
    return PodUid(s.substr(dash + 4), true);
  }
  if (under_kubepods && StripPrefix(s, "pod")) return PodUid(s, false);
  return std::nullopt;
}

}  // namespace

std::optional<ContainerInfo> ContainerOf(std::string_view path) {
  std::optional<ContainerInfo> found;
  std::string pod;
  bool under_kubepods = false;
  std::string_view parent;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view c = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (c.empty()) continue;
    if (auto uid = PodComponent(c, under_kubepods)) pod = *uid;
    if (c.substr(0, 8) == "kubepods") under_kubepods = true;
    if (auto ci = ContainerComponent(c, parent)) {
      found = std::move(ci);
      found->pod_uid = pod;
    }
    parent = c;
  }
  return found;
}

std::string ContainerIdOf(std::string_view path) {
  auto c = ContainerOf(path);
  return c ? c->id : "";
}

bool IsContainerIdPrefix(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string ProcCgroupPath(uint32_t pid) {
  std::ifstream cg("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, first;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
    size_t colon = line.find(':', line.find(':') + 1);
    if (colon != std::string::npos && first.empty()) first = line.substr(colon + 1);
  }
  return first;
}

CgroupIndex::CgroupIndex(std::string mount) : mount_(std::move(mount)) {
  while (mount_.size() > 1 && mount_.back() == '/') mount_.pop_back();
}

std::shared_ptr<const CgroupInfo> CgroupIndex::Insert(uint64_t id, std::string path) {
  if (by_id_.size() >= kMaxEntries) by_id_.clear();  // bounded; ids still in use come back
  auto info = std::make_shared<CgroupInfo>();
  info->container = ContainerOf(path);
  info->path = std::move(path);
  by_id_[id] = info;
  return info;
}

std::shared_ptr<const CgroupInfo> CgroupIndex::Lookup(uint64_t id, uint32_t pid) {
  if (id == 0 || mount_.empty()) return nullptr;
  if (auto it = by_id_.find(id); it != by_id_.end()) return it->second;  // null: a walk missed it
  // The process's own view: right when it still runs, has not moved, and shares our cgroup
  // namespace (else its path is relative to another root and names another directory).
  if (pid != 0 && proc_tried_.size() < 4096 && proc_tried_.emplace(id, true).second) {
    std::string path = ProcCgroupPath(pid);
    struct stat st {};
    if (!path.empty() && path[0] == '/' && path.find("/..") == std::string::npos &&
        stat((mount_ + path).c_str(), &st) == 0 && st.st_ino == id)
      return Insert(id, path);
  }
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t now = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
  if (walked_ && now - last_walk_ns_ < 1000000000ull) return nullptr;
  Walk();
  auto it = by_id_.find(id);
  if (it != by_id_.end()) return it->second;
  by_id_[id] = nullptr;
  return nullptr;
}

void CgroupIndex::Walk(const std::function<void(uint64_t, const std::shared_ptr<const CgroupInfo>&)>& fn) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  last_walk_ns_ = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
  walked_ = true;
  proc_tried_.clear();
  if (mount_.empty()) return;
  auto visit = [&](const std::string& dir, std::string rel) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return;
    auto it = by_id_.find(st.st_ino);
    std::shared_ptr<const CgroupInfo> info =
        it != by_id_.end() && it->second && it->second->path == rel ? it->second : Insert(st.st_ino, std::move(rel));
    if (fn) fn(st.st_ino, info);
  };
  visit(mount_, "/");
  std::error_code ec;
  for (auto i = std::filesystem::recursive_directory_iterator(
           mount_, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && i != std::filesystem::recursive_directory_iterator(); i.increment(ec)) {
    if (!i->is_directory(ec) || i->is_symlink(ec)) continue;
    visit(i->path().string(), "/" + std::filesystem::relative(i->path(), mount_, ec).string());
  }
}

}  // namespace gotlscap
