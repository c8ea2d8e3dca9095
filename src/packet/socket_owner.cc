#include "packet/socket_owner.h"

#include <dirent.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <map>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "common/cgroup_mount.h"

namespace gotlscap::packet {
namespace {

struct Endpoint {
  std::array<uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
  bool v6 = false;
  uint16_t port = 0;  // host order
};

// The kernel prints each 32-bit word of the address in host order as %08X.
bool ParseHexAddr(const std::string& s, Endpoint& e) {
  size_t colon = s.find(':');
  if (colon == std::string::npos) return false;
  std::string hex = s.substr(0, colon);
  if (hex.size() != 8 && hex.size() != 32) return false;
  e.v6 = hex.size() == 32;
  for (size_t w = 0; w < hex.size() / 8; ++w) {
    uint32_t word = static_cast<uint32_t>(std::stoul(hex.substr(w * 8, 8), nullptr, 16));
    std::memcpy(&e.addr[w * 4], &word, 4);
  }
  e.port = static_cast<uint16_t>(std::stoul(s.substr(colon + 1), nullptr, 16));
  return true;
}

// An IPv4 endpoint as an IPv6 socket sees it (::ffff:a.b.c.d), for dual-stack listeners.
Endpoint Mapped(const Endpoint& e) {
  if (e.v6) return e;
  Endpoint m;
  m.v6 = true;
  m.port = e.port;
  m.addr[10] = m.addr[11] = 0xff;
  std::memcpy(&m.addr[12], e.addr.data(), 4);
  return m;
}

bool Same(const Endpoint& x, const Endpoint& y) {
  size_t n = x.v6 ? 16 : 4;
  return x.v6 == y.v6 && x.port == y.port && std::memcmp(x.addr.data(), y.addr.data(), n) == 0;
}

// Calls fn(local, remote, inode) for each socket of a /proc/PID/net/{tcp,udp}[6] table.
template <typename Fn>
void ForEachSocket(const std::string& path, Fn fn) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout;
    uint64_t inode = 0;
    if (!(is >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode)) continue;
    Endpoint l, r;
    if (ParseHexAddr(local, l) && ParseHexAddr(remote, r) && inode != 0) fn(l, r, inode);
  }
}

// Inodes of sockets between a and b in the table at `path` (either end local).
std::set<uint64_t> InodesIn(const std::string& path, const Endpoint& a, const Endpoint& b) {
  std::set<uint64_t> out;
  ForEachSocket(path, [&](const Endpoint& l, const Endpoint& r, uint64_t inode) {
    if ((Same(l, a) && Same(r, b)) || (Same(l, b) && Same(r, a))) out.insert(inode);
  });
  return out;
}

bool HoldsAny(uint32_t pid, const std::set<uint64_t>& inodes) {
  std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  bool found = false;
  char target[64];
  while (dirent* de = readdir(d)) {
    std::string link = dir + "/" + de->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 8) continue;
    target[n] = '\0';
    uint64_t inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1 && inodes.count(inode)) {
      found = true;
      break;
    }
  }
  closedir(d);
  return found;
}

}  // namespace

std::string CommOf(uint32_t pid) {
  std::ifstream f(fmt::format("/proc/{}/comm", pid));
  std::string comm;
  std::getline(f, comm);
  return comm;
}

std::optional<Owner> FindSocketOwner(const ConnKey& key, const std::vector<uint32_t>& pids) {
  const char* proto = key.protocol == kProtoTcp ? "tcp" : "udp";
  const Endpoint a{key.addr_a, key.v6, key.port_a}, b{key.addr_b, key.v6, key.port_b};
  for (uint32_t pid : pids) {
    // Each pid's own view: processes in other network namespaces have other tables.
    std::set<uint64_t> inodes;
    if (!a.v6) inodes = InodesIn(fmt::format("/proc/{}/net/{}", pid, proto), a, b);
    for (uint64_t i : InodesIn(fmt::format("/proc/{}/net/{}6", pid, proto), Mapped(a), Mapped(b))) inodes.insert(i);
    if (!inodes.empty() && HoldsAny(pid, inodes)) return Owner{pid, CommOf(pid)};
  }
  return std::nullopt;
}

std::vector<uint32_t> PidsRunning(const std::vector<std::pair<dev_t, ino_t>>& files) {
  std::vector<uint32_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* de = readdir(d)) {
    char* end = nullptr;
    unsigned long pid = std::strtoul(de->d_name, &end, 10);
    if (*end != '\0' || pid == 0) continue;
    struct stat st{};
    if (stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) != 0) continue;
    for (const auto& f : files)
      if (st.st_dev == f.first && st.st_ino == f.second) out.push_back(static_cast<uint32_t>(pid));
  }
  closedir(d);
  return out;
}

SocketSnapshot SocketSnapshot::Take() {
  SocketSnapshot snap;
  // Socket inode -> the first process holding it; one pid per network namespace for its tables.
  std::unordered_map<uint64_t, uint32_t> holder;
  std::map<std::string, uint32_t> netns_pid;
  DIR* d = opendir("/proc");
  if (!d) return snap;
  char target[64];
  while (dirent* de = readdir(d)) {
    char* end = nullptr;
    unsigned long pid = std::strtoul(de->d_name, &end, 10);
    if (*end != '\0' || pid == 0) continue;
    std::string dir = fmt::format("/proc/{}/fd", pid);
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;
    bool any = false;
    while (dirent* fe = readdir(fds)) {
      ssize_t n = readlink((dir + "/" + fe->d_name).c_str(), target, sizeof(target) - 1);
      if (n <= 8) continue;
      target[n] = '\0';
      uint64_t inode = 0;
      if (std::sscanf(target, "socket:[%lu]", &inode) == 1) {
        holder.try_emplace(inode, static_cast<uint32_t>(pid));
        any = true;
      }
    }
    closedir(fds);
    if (!any) continue;
    ssize_t n = readlink(fmt::format("/proc/{}/ns/net", pid).c_str(), target, sizeof(target) - 1);
    if (n > 0) netns_pid.try_emplace(std::string(target, static_cast<size_t>(n)), static_cast<uint32_t>(pid));
  }
  closedir(d);
  for (const auto& [ns, pid] : netns_pid) {
    for (const char* table : {"tcp", "tcp6", "udp", "udp6"}) {
      ForEachSocket(fmt::format("/proc/{}/net/{}", pid, table), [&](const Endpoint& l, const Endpoint& r,
                                                                      uint64_t inode) {
        if (r.port == 0) return;  // listening and unconnected sockets carry no connection
        auto h = holder.find(inode);
        if (h == holder.end()) return;
        Entry e;
        e.local = l.addr;
        e.remote = r.addr;
        e.v6 = l.v6;
        e.local_port = l.port;
        e.remote_port = r.port;
        e.protocol = table[0] == 't' ? kProtoTcp : kProtoUdp;
        e.pid = h->second;
        snap.entries_.push_back(e);
      });
    }
  }
  return snap;
}

std::optional<Owner> SocketSnapshot::Find(const ConnKey& key) const {
  const Endpoint a{key.addr_a, key.v6, key.port_a}, b{key.addr_b, key.v6, key.port_b};
  const Endpoint ma = Mapped(a), mb = Mapped(b);
  for (const Entry& x : entries_) {
    if (x.protocol != key.protocol) continue;
    const struct {
      Endpoint local, remote;
    } e{{x.local, x.v6, x.local_port}, {x.remote, x.v6, x.remote_port}};
    if ((Same(e.local, a) && Same(e.remote, b)) || (Same(e.local, b) && Same(e.remote, a)) ||
        (Same(e.local, ma) && Same(e.remote, mb)) || (Same(e.local, mb) && Same(e.remote, ma)))
      return Owner{x.pid, CommOf(x.pid)};
  }
  return std::nullopt;
}

void ProcessInfoCache::Complete(Owner& o) {
  if (o.pid == 0) return;
  auto it = cache_.find(o.pid);
  if (it == cache_.end() || (!o.comm.empty() && it->second.comm != o.comm)) {
    if (cache_.size() >= 8192) cache_.clear();  // bounded; pids that still matter are read again
    Owner info;
    info.comm = o.comm.empty() ? CommOf(o.pid) : o.comm;
    std::ifstream status(fmt::format("/proc/{}/status", o.pid));
    std::string line;
    while (std::getline(status, line)) {
      unsigned v = 0;
      if (std::sscanf(line.c_str(), "Uid: %u", &v) == 1) info.uid = v;
      else if (std::sscanf(line.c_str(), "PPid: %u", &v) == 1) info.ppid = v;
    }
    if (info.ppid != 0) info.pcomm = CommOf(info.ppid);
    info.cgroup = ProcCgroupPath(o.pid);
    info.container = ContainerIdOf(info.cgroup);
    it = cache_.insert_or_assign(o.pid, std::move(info)).first;
  }
  const Owner& c = it->second;
  if (o.comm.empty()) o.comm = c.comm;
  if (!o.uid) o.uid = c.uid;
  if (o.ppid == 0) {
    o.ppid = c.ppid;
    o.pcomm = c.pcomm;
  }
  if (o.pcomm.empty() && o.ppid != 0) o.pcomm = CommOf(o.ppid);
  if (o.cgroup.empty()) o.cgroup = c.cgroup;
  if (o.cgroup.empty() && o.cgroup_id != 0) o.cgroup = CgroupPath(o.cgroup_id);
  if (o.container.empty()) o.container = ContainerIdOf(o.cgroup);
}

std::string ProcessInfoCache::CgroupPath(uint64_t id) {
  if (!cgroups_) cgroups_ = std::make_unique<CgroupIndex>(CgroupV2Mount());
  auto info = cgroups_->Lookup(id, 0);
  return info ? info->path : "";
}

}  // namespace gotlscap::packet
