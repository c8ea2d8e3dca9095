#include "packet/net_interface.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace gotlscap::packet {
namespace {
constexpr int kLinktypeEthernet = 1;
constexpr int kLinktypeRaw = 101;
}  // namespace

Result<NetInterface> LookupInterface(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return MakeError(ErrorKind::kUsage, fmt::format("no such network interface: '{}'", name));
  NetInterface itf;
  itf.name = name;
  itf.ifindex = if_nametoindex(name.c_str());
  if (itf.ifindex == 0) return MakeError(ErrorKind::kUsage, fmt::format("no such network interface: {}", name));

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(ErrorKind::kIo, fmt::format("socket: {}", std::strerror(errno)));
  ifreq req{};
  std::memcpy(req.ifr_name, name.c_str(), name.size());
  bool ok = ioctl(fd, SIOCGIFHWADDR, &req) == 0;
  int hwtype = req.ifr_hwaddr.sa_family;
  ok = ok && ioctl(fd, SIOCGIFFLAGS, &req) == 0;
  int err = errno;
  close(fd);
  if (!ok) return MakeError(ErrorKind::kIo, fmt::format("interface {}: {}", name, std::strerror(err)));
  itf.loopback = (req.ifr_flags & IFF_LOOPBACK) != 0;

  switch (hwtype) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:  // TC sees loopback packets with a zeroed Ethernet header
      itf.linktype = kLinktypeEthernet;
      break;
    case ARPHRD_NONE:  // tun, wireguard: packets start at the IP header
      itf.linktype = kLinktypeRaw;
      break;
    default:
      return MakeError(ErrorKind::kUsage,
                       fmt::format("interface {}: link type {} is not supported (Ethernet, loopback and raw IP are)",
                                   name, hwtype));
  }
  return itf;
}

std::vector<std::string> ListInterfaceNames() {
  std::vector<std::string> out;
  if (struct if_nameindex* all = if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index != 0; ++i) out.emplace_back(i->if_name);
    if_freenameindex(all);
  }
  return out;
}

std::string NetnsName() {
  char buf[64];
  ssize_t n = readlink("/proc/self/ns/net", buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

Result<std::unique_ptr<LinkWatcher>> LinkWatcher::Open() {
  std::unique_ptr<LinkWatcher> w(new LinkWatcher());
  w->fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (w->fd_ < 0) return MakeError(ErrorKind::kIo, fmt::format("netlink socket: {}", std::strerror(errno)));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK;
  if (bind(w->fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return MakeError(ErrorKind::kIo, fmt::format("netlink bind: {}", std::strerror(errno)));
  return w;
}

LinkWatcher::~LinkWatcher() {
  if (fd_ >= 0) close(fd_);
}

std::vector<LinkWatcher::Change> LinkWatcher::Read(bool* overflow) {
  std::vector<Change> out;
  *overflow = false;
  alignas(nlmsghdr) char buf[16384];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        *overflow = true;
        continue;
      }
      break;  // EAGAIN: nothing more
    }
    size_t len = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) continue;
      auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
      Change c;
      c.added = h->nlmsg_type == RTM_NEWLINK;
      c.ifindex = static_cast<uint32_t>(ifi->ifi_index);
      int alen = static_cast<int>(IFLA_PAYLOAD(h));
      for (auto* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
        if (a->rta_type == IFLA_IFNAME) c.name = static_cast<const char*>(RTA_DATA(a));
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace gotlscap::packet
