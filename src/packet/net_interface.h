// NetInterface: what pcap mode needs to know about a network interface before attaching to it:
// its index (TC hooks are per ifindex), the pcap link type its TC programs see, and whether it is
// a loopback (where every packet passes egress and then ingress: captured once, on egress).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace gotlscap::packet {

struct NetInterface {
  std::string name;
  uint32_t ifindex = 0;
  int linktype = 1;  // LINKTYPE_ETHERNET (also loopback, as tcpdump shows it) or LINKTYPE_RAW
  bool loopback = false;
};

// kUsage "no such network interface: NAME" when absent; kUsage for link types TC cannot give
// us in a form pcap knows (only Ethernet-framed, loopback and raw-IP devices are supported).
Result<NetInterface> LookupInterface(const std::string& name);

}  // namespace gotlscap::packet
