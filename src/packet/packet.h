// Packet: one captured packet on its way from the TC capture to the pcapng writer.
#pragma once

#include <cstdint>
#include <string>

namespace gotlscap::packet {

struct Packet {
  uint64_t ts_ns = 0;         // Unix epoch, ns
  uint32_t interface_id = 0;  // pcapng interface id
  uint32_t orig_len = 0;      // length on the wire
  bool egress = false;
  int linktype = 1;           // DLT_EN10MB (1) or LINKTYPE_RAW (101) for L3 devices
  std::string data;           // captured bytes (<= snaplen)
  std::string comment;        // set by the sequencer when the owner is known: "pid=1234 comm=server"
  bool write = true;          // false: only looked at (a TLS handshake of the direction -Q leaves out)
};

}  // namespace gotlscap::packet
