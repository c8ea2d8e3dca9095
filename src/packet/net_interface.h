// NetInterface: what pcap mode needs to know about a network interface before attaching to it:
// its index (TC hooks are per ifindex), the pcap link type its TC programs see, and whether it is
// a loopback (where every packet passes egress and then ingress: captured once, on egress).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// Every interface of this network namespace, by name (if_nameindex).
std::vector<std::string> ListInterfaceNames();
// This process's network namespace as /proc names it: "net:[4026531840]" ("" if unreadable).
std::string NetnsName();

// Interfaces appearing and disappearing (rtnetlink RTM_NEWLINK / RTM_DELLINK on RTMGRP_LINK), for
// `-i any`. Non-blocking: Read() returns what happened since the last call.
class LinkWatcher {
 public:
  static Result<std::unique_ptr<LinkWatcher>> Open();
  ~LinkWatcher();
  struct Change {
    bool added = false;  // RTM_NEWLINK (also sent for a known interface's changes); else removed
    uint32_t ifindex = 0;
    std::string name;
  };
  // *overflow: notifications were lost (ENOBUFS); the caller lists the interfaces again.
  std::vector<Change> Read(bool* overflow);

 private:
  LinkWatcher() = default;
  int fd_ = -1;
};

}  // namespace gotlscap::packet
