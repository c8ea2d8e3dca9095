#include "packet/net_interface.h"

#include <net/if.h>
#include <net/if_arp.h>
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

}  // namespace gotlscap::packet
