#include "packet/packet_parse.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace gotlscap::packet {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;
constexpr uint16_t kEthVlan = 0x8100;     // 802.1Q
constexpr uint16_t kEthQinQ = 0x88A8;     // 802.1ad
constexpr uint16_t kEthQinQOld = 0x9100;  // pre-standard QinQ, still seen on switches

// IPv6 extension headers that may precede TCP/UDP (RFC 8200 §4; AH: RFC 4302).
constexpr uint8_t kIp6HopByHop = 0, kIp6Routing = 43, kIp6Fragment = 44, kIp6Auth = 51, kIp6DestOpts = 60;

struct L3 {
  bool v6 = false;
  std::array<uint8_t, 16> src{}, dst{};
  uint8_t protocol = 0;
  std::string_view l4;  // from the L4 header to the end of the IP payload (as captured)
};

std::optional<L3> ParseIpv4(std::string_view d) {
  if (d.size() < 20) return std::nullopt;
  auto p = reinterpret_cast<const uint8_t*>(d.data());
  if (p[0] >> 4 != 4) return std::nullopt;
  size_t ihl = (p[0] & 15) * 4u;
  size_t total = Be16(p + 2);
  // Total length 0: a TSO / BIG TCP packet longer than 64 KiB as TC egress sees it before the
  // kernel segments it (the field cannot hold its size): it runs to the end of what was captured.
  if (total == 0) total = d.size();
  if (ihl < 20 || total < ihl || d.size() < ihl) return std::nullopt;
  // A non-first fragment carries no L4 header: its connection cannot be told.
  if ((Be16(p + 6) & 0x1FFF) != 0) return std::nullopt;
  L3 l3;
  std::memcpy(l3.src.data(), p + 12, 4);
  std::memcpy(l3.dst.data(), p + 16, 4);
  l3.protocol = p[9];
  // The IP length bounds the payload: Ethernet pads short frames to 60 bytes.
  l3.l4 = d.substr(ihl, std::min(total, d.size()) - ihl);
  return l3;
}

std::optional<L3> ParseIpv6(std::string_view d) {
  if (d.size() < 40) return std::nullopt;
  auto p = reinterpret_cast<const uint8_t*>(d.data());
  if (p[0] >> 4 != 6) return std::nullopt;
  L3 l3;
  l3.v6 = true;
  std::memcpy(l3.src.data(), p + 8, 16);
  std::memcpy(l3.dst.data(), p + 24, 16);
  // Payload length 0 is a jumbogram (RFC 2675): bounded by what was captured.
  size_t payload_len = Be16(p + 4);
  size_t end = payload_len ? std::min(d.size(), 40 + payload_len) : d.size();
  size_t off = 40;
  uint8_t next = p[6];
  for (int i = 0; i < 8; ++i) {  // a bounded walk: a loop of headers cannot hold us
    if (next == kIp6HopByHop || next == kIp6Routing || next == kIp6DestOpts || next == kIp6Auth ||
        next == kIp6Fragment) {
      if (off + 8 > end) return std::nullopt;
      size_t len = next == kIp6Fragment ? 8
                   : next == kIp6Auth   ? (p[off + 1] + 2u) * 4u
                                        : (p[off + 1] + 1u) * 8u;
      if (next == kIp6Fragment && (Be16(p + off + 2) & 0xFFF8) != 0) return std::nullopt;  // not first
      next = p[off];
      off += len;
      if (off > end) return std::nullopt;
      continue;
    }
    l3.protocol = next;
    l3.l4 = d.substr(off, end - off);
    return l3;
  }
  return std::nullopt;
}

}  // namespace

std::string ConnKey::ToString() const {
  auto ep = [&](const std::array<uint8_t, 16>& a, uint16_t port) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, a.data(), buf, sizeof buf);
    return v6 ? fmt::format("[{}]:{}", buf, port) : fmt::format("{}:{}", buf, port);
  };
  return fmt::format("{} {} <-> {}", protocol == kProtoTcp ? "tcp" : protocol == kProtoUdp ? "udp" : "?",
                     ep(addr_a, port_a), ep(addr_b, port_b));
}

size_t ConnKeyHash::operator()(const ConnKey& k) const noexcept {
  // FNV-1a over the fields: cheap, and the key is not attacker-chosen in a way that matters for a
  // map bounded by the sequencer's connection cap.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* data, size_t n) {
    auto b = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  mix(&k.protocol, 1);
  uint8_t v6 = k.v6;
  mix(&v6, 1);
  mix(k.addr_a.data(), 16);
  mix(k.addr_b.data(), 16);
  mix(&k.port_a, 2);
  mix(&k.port_b, 2);
  return static_cast<size_t>(h);
}

std::optional<ParsedPacket> ParsePacket(int linktype, std::string_view data) {
  std::string_view l3data;
  uint16_t ethertype = 0;
  if (linktype == kLinktypeEthernet) {
    if (data.size() < 14) return std::nullopt;
    auto p = reinterpret_cast<const uint8_t*>(data.data());
    size_t off = 12;
    ethertype = Be16(p + off);
    for (int tags = 0; tags < 2 && (ethertype == kEthVlan || ethertype == kEthQinQ || ethertype == kEthQinQOld);
         ++tags) {
      off += 4;
      if (data.size() < off + 2) return std::nullopt;
      ethertype = Be16(p + off);
    }
    l3data = data.substr(off + 2);
  } else if (linktype == kLinktypeRaw || linktype == kLinktypeIpv4 || linktype == kLinktypeIpv6) {
    if (data.empty()) return std::nullopt;
    uint8_t version = static_cast<uint8_t>(data[0]) >> 4;
    ethertype = version == 4 ? kEthIpv4 : version == 6 ? kEthIpv6 : 0;
    l3data = data;
  } else {
    return std::nullopt;
  }

  std::optional<L3> l3;
  if (ethertype == kEthIpv4) l3 = ParseIpv4(l3data);
  else if (ethertype == kEthIpv6) l3 = ParseIpv6(l3data);
  if (!l3) return std::nullopt;

  ParsedPacket out;
  auto l4 = reinterpret_cast<const uint8_t*>(l3->l4.data());
  uint16_t sport, dport;
  if (l3->protocol == kProtoTcp) {
    if (l3->l4.size() < 20) return std::nullopt;
    size_t doff = (l4[12] >> 4) * 4u;
    if (doff < 20 || doff > l3->l4.size()) return std::nullopt;
    sport = Be16(l4);
    dport = Be16(l4 + 2);
    out.tcp_flags = l4[13];
    out.payload = l3->l4.substr(doff);
  } else if (l3->protocol == kProtoUdp) {
    if (l3->l4.size() < 8) return std::nullopt;
    sport = Be16(l4);
    dport = Be16(l4 + 2);
    size_t len = Be16(l4 + 4);
    out.payload = l3->l4.substr(8, len >= 8 ? std::min(len, l3->l4.size()) - 8 : l3->l4.size() - 8);
  } else {
    return std::nullopt;
  }

  ConnKey& k = out.key;
  k.protocol = l3->protocol;
  k.v6 = l3->v6;
  // Canonical order: the smaller (address, port) is a, so both directions share a key.
  int cmp = std::memcmp(l3->src.data(), l3->dst.data(), 16);
  out.from_a = cmp < 0 || (cmp == 0 && sport <= dport);
  if (out.from_a) {
    k.addr_a = l3->src, k.port_a = sport, k.addr_b = l3->dst, k.port_b = dport;
  } else {
    k.addr_a = l3->dst, k.port_a = dport, k.addr_b = l3->src, k.port_b = sport;
  }
  return out;
}

std::optional<std::string> ClientHelloRandom(std::string_view payload) {
  // Record: type 0x16 (handshake), version 0x03 0x01..0x04, length (2). Handshake: type 1
  // (ClientHello), length (3), client_version (2), random (32) at record offset 11.
  if (payload.size() < 43) return std::nullopt;
  auto p = reinterpret_cast<const uint8_t*>(payload.data());
  if (p[0] != 0x16 || p[1] != 0x03 || p[2] < 0x01 || p[2] > 0x04) return std::nullopt;
  if (Be16(p + 3) < 4 + 2 + 32) return std::nullopt;  // a record too short to hold the random
  if (p[5] != 0x01) return std::nullopt;
  return std::string(payload.substr(11, 32));
}

}  // namespace gotlscap::packet
