// Packet parsing for the sequencer: just enough of Ethernet (up to two VLAN tags) or raw IP,
// IPv4/IPv6 and TCP/UDP to name a packet's connection, and of a TLS ClientHello to read its
// client random. Every read is bounds-checked against the captured bytes (a snaplen cut or a
// hostile packet yields "no connection" or a shorter payload, never a read past the end).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gotlscap::packet {

inline constexpr int kLinktypeEthernet = 1;
inline constexpr int kLinktypeRaw = 101;   // LINKTYPE_RAW: starts with an IPv4 or IPv6 header
inline constexpr int kLinktypeIpv4 = 228;  // LINKTYPE_IPV4
inline constexpr int kLinktypeIpv6 = 229;  // LINKTYPE_IPV6

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

// A TCP or UDP connection, both directions alike: endpoint a is the smaller (address, port).
struct ConnKey {
  uint8_t protocol = 0;  // kProtoTcp / kProtoUdp
  bool v6 = false;
  std::array<uint8_t, 16> addr_a{};  // IPv4: first 4 bytes, rest zero (an IPv4-mapped IPv6
  std::array<uint8_t, 16> addr_b{};  // address stays IPv6, as it was on the wire)
  uint16_t port_a = 0;               // host order
  uint16_t port_b = 0;

  bool operator==(const ConnKey&) const = default;
  // "tcp 10.0.0.1:443 <-> 10.0.0.2:51000", "udp [::1]:53 <-> [::1]:40000"
  std::string ToString() const;
};

struct ConnKeyHash {
  size_t operator()(const ConnKey& k) const noexcept;
};

namespace tcp_flags {
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kAck = 0x10;
}  // namespace tcp_flags

struct ParsedPacket {
  ConnKey key;
  bool from_a = false;    // the packet's source is endpoint a of the key
  uint8_t tcp_flags = 0;  // 0 for UDP
  std::string_view payload;  // L4 payload within the captured bytes (bounded by the IP length)
};

// The connection of a packet of link type `linktype` (kLinktypeEthernet, kLinktypeRaw,
// kLinktypeIpv4/6). nullopt for anything that is not TCP or UDP over IP with a whole L4 header in
// the captured bytes: ARP, ICMP, non-first fragments, truncated or malformed headers. An IPv4
// total length of 0 (a TSO / BIG TCP packet over 64 KiB, seen at TC egress before segmentation)
// or an IPv6 payload length of 0 (jumbogram) means the packet runs to the end of the captured bytes.
std::optional<ParsedPacket> ParsePacket(int linktype, std::string_view data);

// The client random (32 raw bytes) when `tcp_payload` starts with a TLS handshake record
// (0x16, 0x03, 0x01..0x04) holding a ClientHello; only these first 43 bytes are needed, so a
// ClientHello spanning segments is recognised from its first one.
std::optional<std::string> ClientHelloRandom(std::string_view tcp_payload);

}  // namespace gotlscap::packet
