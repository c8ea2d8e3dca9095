#include "packet/socket_owner.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

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

// Inodes of sockets between a and b in the table at `path` (either end local).
std::set<uint64_t> InodesIn(const std::string& path, const Endpoint& a, const Endpoint& b) {
  std::set<uint64_t> out;
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout;
    uint64_t inode = 0;
    if (!(is >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode)) continue;
    Endpoint l, r;
    if (!ParseHexAddr(local, l) || !ParseHexAddr(remote, r) || inode == 0) continue;
    if ((Same(l, a) && Same(r, b)) || (Same(l, b) && Same(r, a))) out.insert(inode);
  }
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

}  // namespace gotlscap::packet
