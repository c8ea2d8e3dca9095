// PacketCapture: the TC side of `gotlscap pcap`. Loads the capture programs (libbpf skeleton of
// bpf/pcap.bpf.c), and for each interface compiles the user's pcap-filter expression, translates
// it to an eBPF filter program (packet/cbpf_to_ebpf) that tail-calls the capture program on a
// match, and attaches it to the interface's TC hooks (tcx links; clsact filters before Linux
// 6.6). Loopback gets the egress hook only: each packet crosses lo twice, and tcpdump shows it once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/pcap_events.h"
#include "common/result.h"
#include "packet/net_interface.h"

struct pcap_bpf;

namespace gotlscap::packet {

struct PacketCaptureOptions {
  uint32_t snaplen = PCAP_MAX_SNAPLEN;
  uint64_t ringbuf_bytes = 64ull << 20;  // rounded up to a power of two
};

struct RawPacket {
  uint64_t mono_ns = 0;  // CLOCK_MONOTONIC
  uint32_t ifindex = 0;
  uint32_t orig_len = 0;
  bool egress = false;
  std::string_view data;  // valid during the sink call only
  bool vlan_present = false;  // an offloaded tag to put back after the MAC addresses
  uint16_t vlan_tci = 0;
  uint16_t vlan_proto_be = 0;
  uint32_t gso_size = 0;  // TCP segment size of a GSO packet, 0 otherwise
};

struct PacketCounters {
  uint64_t v[PCAP_CNT_MAX] = {};
  uint64_t packets() const { return v[PCAP_CNT_PACKETS]; }
  uint64_t lost() const { return v[PCAP_CNT_LOST]; }
  uint64_t load_faults() const { return v[PCAP_CNT_LOAD_FAULTS]; }
};

// tcpdump's -Q: the packets of which hooks to write (loopback has only egress, for every
// direction: each of its packets is both sent and received by this host). The other hook is still
// attached, but its filter passes only TLS handshake records: the sequencer needs the ClientHello
// to tie a connection to its secrets, and does not write them (Packet::write false).
enum class Direction { kIn = 1, kOut = 2, kInOut = 3 };
// True when a packet of that hook is only looked at (not of direction `dir`).
inline bool PeekOnly(Direction dir, bool egress, bool loopback) {
  if (loopback) return false;
  return !(static_cast<int>(dir) & static_cast<int>(egress ? Direction::kOut : Direction::kIn));
}

class PacketCapture {
 public:
  using Sink = std::function<void(const RawPacket&)>;
  // kPermission without root / CAP_BPF+CAP_NET_ADMIN.
  static Result<std::unique_ptr<PacketCapture>> Open(const PacketCaptureOptions& opts, Sink sink);
  ~PacketCapture();

  // Checks `filter` against the interface's link type (a bad expression fails here, with
  // libpcap's message) and attaches. Returns the number of hooks attached (1 or 2).
  Result<int> Attach(const NetInterface& itf, const std::string& filter, Direction dir = Direction::kInOut);
  // Removes this capture's hooks from one interface (gone, or moved to another namespace).
  void Detach(uint32_t ifindex);
  // Removes every hook this capture attached (never a qdisc: others may be using it).
  void DetachAll();
  // The packet ring buffer, to be polled with the session's (CaptureSession::AddRingBuffer with
  // OnRecord and this object): one epoll wakes for packets and secrets alike.
  int ringbuf_fd() const;
  static int OnRecord(void* ctx, void* data, size_t size);
  PacketCounters ReadCounters() const;

 private:
  PacketCapture() = default;
  struct Hook;
  static void Remove(const Hook& h);

  struct Hook {
    uint32_t ifindex;
    int attach_point;  // BPF_TC_INGRESS / BPF_TC_EGRESS
    uint32_t handle, priority;  // of the clsact filter (when there is no tcx link)
    int prog_fd;
    int link_fd;  // tcx link, -1 when attached as a clsact filter
  };
  PacketCaptureOptions opts_;
  Sink sink_;
  pcap_bpf* skel_ = nullptr;
  std::vector<Hook> hooks_;
};

}  // namespace gotlscap::packet
