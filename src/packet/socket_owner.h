// Which process holds a socket, from /proc alone (no kprobes on this kernel): the socket's inode
// comes from /proc/PID/net/tcp{,6} or udp{,6} (PID's own network namespace), its holder from the
// socket:[inode] links in /proc/PID/fd. pcap mode asks this once per connection whose owner the
// TLS secrets did not already name — connections opened before gotlscap started, plain TCP.
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "packet/packet_parse.h"
#include "common/cgroup.h"
#include "packet/packet_sequencer.h"

namespace gotlscap::packet {

// The process among `pids` holding the TCP (or UDP) socket of `key`, in either role.
std::optional<Owner> FindSocketOwner(const ConnKey& key, const std::vector<uint32_t>& pids);

// Every process whose executable is one of `files` (device, inode).
std::vector<uint32_t> PidsRunning(const std::vector<std::pair<dev_t, ino_t>>& files);

std::string CommOf(uint32_t pid);

// Every TCP and UDP socket on the host at one moment (taken once at start): /proc/PID/net/* of one
// process per network namespace, and the socket:[inode] links of every process. Names the owner
// of connections opened before gotlscap started, with no /proc walk per connection.
class SocketSnapshot {
 public:
  static SocketSnapshot Take();
  std::optional<Owner> Find(const ConnKey& key) const;
  size_t sockets() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<uint8_t, 16> local{}, remote{};  // IPv4 in the first 4 bytes
    bool v6 = false;
    uint16_t local_port = 0, remote_port = 0;
    uint8_t protocol = 0;
    uint32_t pid = 0;
  };
  std::vector<Entry> entries_;
};

// uid, parent (pid, comm) and cgroup of processes, read from /proc/PID at first sight and cached
// per pid (re-read when the comm differs: the pid was reused).
class ProcessInfoCache {
 public:
  void Complete(Owner& o);

 private:
  // The cgroup v2 path of a cgroup id (its directory's inode number), by walking the cgroup v2
  // mount; for processes gone from /proc. "" when not found.
  std::string CgroupPath(uint64_t id);
  std::unordered_map<uint32_t, Owner> cache_;
  std::unique_ptr<CgroupIndex> cgroups_;  // made at the first lookup by id
};

}  // namespace gotlscap::packet
