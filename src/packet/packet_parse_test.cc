#include "packet/packet_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace gotlscap::packet {
namespace {

std::string U16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)}; }

std::string Tcp(const std::string& payload) {
  std::string t = U16(40000) + U16(443) + std::string(8, '\0');
  t += static_cast<char>(5 << 4);
  t += static_cast<char>(tcp_flags::kAck);
  t += U16(65535) + std::string(4, '\0');
  return t + payload;
}

std::string Ipv4(uint16_t total_len, const std::string& l4) {
  std::string h;
  h += static_cast<char>(0x45);
  h += '\0';
  h += U16(total_len) + U16(1) + U16(0x4000);
  h += static_cast<char>(64);
  h += static_cast<char>(kProtoTcp);
  h += U16(0) + std::string("\x7f\0\0\1\x7f\0\0\1", 8);
  return h + l4;
}

std::string Eth(const std::string& l3) { return std::string(12, '\0') + U16(0x0800) + l3; }

// TC egress sees TSO / BIG TCP packets over 64 KiB before the kernel segments them: their IPv4
// total length is 0, and the payload runs to the end of the captured bytes.
TEST(PacketParse, Ipv4TotalLengthZeroRunsToTheEnd) {
  std::string payload(131000, 'p');
  std::string frame = Eth(Ipv4(0, Tcp(payload)));
  auto p = ParsePacket(kLinktypeEthernet, frame);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key.protocol, kProtoTcp);
  EXPECT_EQ(p->payload.size(), payload.size());
  EXPECT_EQ(p->key.ToString(), "tcp 127.0.0.1:443 <-> 127.0.0.1:40000");

  // Also a small one (a zero length is taken as "the rest", whatever the size), raw IP too.
  std::string small = Ipv4(0, Tcp("abc"));
  auto r = ParsePacket(kLinktypeRaw, small);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, "abc");

  // Cut by the snap length inside the TCP header: still no connection.
  EXPECT_FALSE(ParsePacket(kLinktypeEthernet, frame.substr(0, 14 + 20 + 10)));
}

TEST(PacketParse, Ipv4NonZeroLengthStillBoundsThePayload) {
  std::string ip = Ipv4(20 + 20 + 3, Tcp("abc"));
  auto p = ParsePacket(kLinktypeEthernet, Eth(ip + std::string(7, '\0')));  // Ethernet padding
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload, "abc");
  // A length shorter than the header is still malformed.
  EXPECT_FALSE(ParsePacket(kLinktypeEthernet, Eth(Ipv4(10, Tcp("abc")))));
}

}  // namespace
}  // namespace gotlscap::packet
