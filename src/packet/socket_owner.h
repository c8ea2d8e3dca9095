// Which process holds a socket, from /proc alone (no kprobes on this kernel): the socket's inode
// comes from /proc/PID/net/tcp{,6} or udp{,6} (PID's own network namespace), its holder from the
// socket:[inode] links in /proc/PID/fd. pcap mode asks this once per connection whose owner the
// TLS secrets did not already name — connections opened before gotlscap started, plain TCP.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "packet/packet_parse.h"
#include "packet/packet_sequencer.h"

namespace gotlscap::packet {

// The process among `pids` holding the TCP (or UDP) socket of `key`, in either role.
std::optional<Owner> FindSocketOwner(const ConnKey& key, const std::vector<uint32_t>& pids);

// Every process whose executable is one of `files` (device, inode).
std::vector<uint32_t> PidsRunning(const std::vector<std::pair<dev_t, ino_t>>& files);

std::string CommOf(uint32_t pid);

}  // namespace gotlscap::packet
