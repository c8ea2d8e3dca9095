#include "packet/gso_split.h"

#include <algorithm>

#include "packet/packet_parse.h"

namespace gotlscap::packet {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void PutBe16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
void PutBe32(char* p, uint32_t v) {
  PutBe16(p, static_cast<uint16_t>(v >> 16));
  PutBe16(p + 2, static_cast<uint16_t>(v));
}

// One's complement sum folded to 16 bits with end-around carry: nonzero unless every word was
// zero, as the kernel's csum_add/csum_fold leave it.
uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;
constexpr uint8_t kIp6HopByHop = 0;
constexpr uint8_t kIp6TlvJumbo = 0xC2;
constexpr size_t kMaxIpDatagram = 65535;

// TCP flag bits (byte 13 of the header).
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

}  // namespace

std::vector<std::string> SplitOversizedGso(int linktype, std::string_view packet, uint32_t gso_size) {
  auto unchanged = [&] { return std::vector<std::string>{std::string(packet)}; };
  if (gso_size == 0 || packet.size() <= kMaxIpDatagram) return unchanged();
  auto p = reinterpret_cast<const uint8_t*>(packet.data());

  // Link layer: kept as is in every segment (skb_segment copies the MAC header).
  size_t l3 = 0;
  uint16_t ethertype = 0;
  if (linktype == kLinktypeEthernet) {
    if (packet.size() < 14) return unchanged();
    l3 = 12;
    ethertype = Be16(p + l3);
    for (int tags = 0; tags < 2 && (ethertype == 0x8100 || ethertype == 0x88A8 || ethertype == 0x9100); ++tags) {
      l3 += 4;
      if (packet.size() < l3 + 2) return unchanged();
      ethertype = Be16(p + l3);
    }
    l3 += 2;
  } else if (linktype == kLinktypeRaw || linktype == kLinktypeIpv4 || linktype == kLinktypeIpv6) {
    uint8_t version = p[0] >> 4;
    ethertype = version == 4 ? kEthIpv4 : version == 6 ? kEthIpv6 : 0;
  } else {
    return unchanged();
  }
  if (packet.size() - l3 <= kMaxIpDatagram) return unchanged();  // fits: the kernel leaves it whole

  // The headers every segment starts with (IPv6: without the jumbo option), and where the
  // IP and TCP headers sit in them.
  std::string header;
  size_t tcp_off = 0;
  bool v6 = ethertype == kEthIpv6;
  if (ethertype == kEthIpv4) {
    if (packet.size() < l3 + 20 || p[l3] >> 4 != 4) return unchanged();
    size_t ihl = (p[l3] & 15) * 4u;
    if (ihl < 20 || packet.size() < l3 + ihl) return unchanged();
    if (Be16(p + l3 + 2) != 0) return unchanged();            // a real length: not a BIG TCP packet
    if ((Be16(p + l3 + 6) & 0x3FFF) != 0) return unchanged();  // MF or an offset: a fragment
    if (p[l3 + 9] != kProtoTcp) return unchanged();
    tcp_off = l3 + ihl;
    header.assign(packet.substr(0, tcp_off));
  } else if (v6) {
    if (packet.size() < l3 + 40 || p[l3] >> 4 != 6) return unchanged();
    if (Be16(p + l3 + 4) != 0) return unchanged();
    size_t ip6 = l3 + 40;
    uint8_t next = p[l3 + 6];
    header.assign(packet.substr(0, ip6));
    if (next == kIp6HopByHop) {
      // ipv6_hopopt_jumbo_remove: an 8-byte hop-by-hop header holding only the jumbo option,
      // followed by TCP, is dropped before segmenting.
      if (packet.size() < ip6 + 8) return unchanged();
      const uint8_t* hbh = p + ip6;
      if (hbh[1] != 0 || hbh[2] != kIp6TlvJumbo || hbh[3] != 4 || hbh[0] != kProtoTcp) return unchanged();
      header[l3 + 6] = static_cast<char>(kProtoTcp);
      tcp_off = ip6 + 8;
    } else if (next == kProtoTcp) {
      tcp_off = ip6;
    } else {
      return unchanged();
    }
  } else {
    return unchanged();
  }

  if (packet.size() < tcp_off + 20) return unchanged();
  const uint8_t* th = p + tcp_off;
  size_t thlen = (th[12] >> 4) * 4u;
  if (thlen < 20 || packet.size() < tcp_off + thlen) return unchanged();
  size_t payload_off = tcp_off + thlen;
  size_t payload_len = packet.size() - payload_off;
  if (payload_len <= gso_size) return unchanged();  // tcp_gso_segment: nothing to split

  size_t ip_off = l3;                       // in `header`
  size_t tcp_hoff = header.size();          // TCP header offset in a segment
  header.append(packet.substr(tcp_off, thlen));
  const uint32_t seq0 = Be32(th + 4);
  const uint8_t flags0 = th[13];
  const uint16_t check0 = Be16(th + 16);
  const uint16_t id0 = v6 ? 0 : Be16(p + l3 + 4);
  // tcp_gso_segment: oldlen = ~skb->len (TCP header + payload), and each segment's checksum field
  // is ~csum_fold(csum_add(csum_unfold(check), htonl(oldlen + its TCP length))): the partial
  // (pseudo-header) sum moved to the segment's length. Computed here in big-endian 16-bit words.
  const uint32_t oldlen = ~static_cast<uint32_t>(thlen + payload_len);

  std::vector<std::string> segs;
  size_t n = (payload_len + gso_size - 1) / gso_size;
  segs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    size_t off = i * gso_size;
    size_t len = std::min<size_t>(gso_size, payload_len - off);
    bool first = i == 0, last = i + 1 == n;
    std::string s;
    s.reserve(header.size() + len);
    s.append(header);
    s.append(packet.substr(payload_off + off, len));
    char* ip = s.data() + ip_off;
    char* tcp = s.data() + tcp_hoff;
    size_t ip_payload = s.size() - ip_off - (v6 ? 40 : 0);
    if (v6) {
      PutBe16(ip + 4, static_cast<uint16_t>(ip_payload));
    } else {
      // inet_gso_segment: tot_len, id++ per segment unless SKB_GSO_TCP_FIXEDID (set only by GRO
      // for forwarded packets with a fixed id, never for locally built TCP), ip_send_check.
      size_t ihl = tcp_hoff - ip_off;
      PutBe16(ip + 2, static_cast<uint16_t>(ip_payload));
      PutBe16(ip + 4, static_cast<uint16_t>(id0 + i));
      PutBe16(ip + 10, 0);
      uint64_t sum = 0;
      for (size_t k = 0; k < ihl; k += 2) sum += Be16(reinterpret_cast<const uint8_t*>(ip + k));
      PutBe16(ip + 10, static_cast<uint16_t>(~Fold(sum)));
    }
    PutBe32(tcp + 4, static_cast<uint32_t>(seq0 + off));
    uint8_t flags = flags0;
    if (!last) flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (!first) flags &= static_cast<uint8_t>(~kTcpCwr);  // unless AccECN (SKB_GSO_TCP_ACCECN)
    tcp[13] = static_cast<char>(flags);
    uint32_t delta = oldlen + static_cast<uint32_t>(thlen + len);
    PutBe16(tcp + 16, Fold(uint64_t{check0} + (delta >> 16) + (delta & 0xFFFF)));
    segs.push_back(std::move(s));
  }
  return segs;
}

}  // namespace gotlscap::packet
