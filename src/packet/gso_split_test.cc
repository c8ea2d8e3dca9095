#include "packet/gso_split.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "packet/packet_parse.h"

namespace gotlscap::packet {
namespace {

uint16_t Be16(const std::string& s, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[off]) << 8 | static_cast<uint8_t>(s[off + 1]));
}
uint32_t Be32(const std::string& s, size_t off) { return uint32_t{Be16(s, off)} << 16 | Be16(s, off + 2); }
void Put16(std::string& s, size_t off, uint16_t v) {
  s[off] = static_cast<char>(v >> 8);
  s[off + 1] = static_cast<char>(v);
}
void Put32(std::string& s, size_t off, uint32_t v) {
  Put16(s, off, static_cast<uint16_t>(v >> 16));
  Put16(s, off + 2, static_cast<uint16_t>(v));
}

// Plain RFC 1071 arithmetic, written apart from the code under test.
uint64_t Sum16(const std::string& s, size_t off, size_t len) {
  uint64_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += Be16(s, off + i);
  if (len & 1) sum += static_cast<uint64_t>(static_cast<uint8_t>(s[off + len - 1])) << 8;
  return sum;
}
uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Pseudo-header sum (addresses, protocol, 32-bit TCP length), as tcp_v4_send_check /
// tcp_v6_send_check leave it in the checksum field for CHECKSUM_PARTIAL.
uint16_t PseudoSum(const std::string& pkt, size_t ip, bool v6, uint32_t tcp_len) {
  uint64_t sum = v6 ? Sum16(pkt, ip + 8, 32) : Sum16(pkt, ip + 12, 8);
  sum += 6 + (tcp_len >> 16) + (tcp_len & 0xFFFF);
  return Fold(sum);
}

std::string Payload(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

constexpr uint8_t kAck = 0x10, kPsh = 0x08, kFin = 0x01, kCwr = 0x80;

// TCP header with the timestamp option (32 bytes), checksum field = the pseudo-header sum.
std::string TcpHeader(uint32_t seq, uint8_t flags) {
  std::string t(32, '\0');
  Put16(t, 0, 443);
  Put16(t, 2, 51000);
  Put32(t, 4, seq);
  Put32(t, 8, 0x01020304);
  t[12] = static_cast<char>(8 << 4);
  t[13] = static_cast<char>(flags);
  Put16(t, 14, 512);
  t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;  // NOP NOP TS
  Put32(t, 24, 0xAABBCCDD);
  Put32(t, 28, 0x11223344);
  return t;
}

std::string Ethernet(uint16_t ethertype, bool vlan) {
  std::string e(12, '\0');
  if (vlan) e += std::string("\x81\x00\x00\x2a", 4);
  e += static_cast<char>(ethertype >> 8);
  e += static_cast<char>(ethertype & 0xFF);
  return e;
}

// An Ethernet + IPv4 + TCP GSO packet as TC egress sees it: total length 0.
std::string Ipv4Gso(const std::string& payload, uint16_t id, uint32_t seq, uint8_t flags, bool vlan = false) {
  std::string pkt = Ethernet(0x0800, vlan);
  size_t ip = pkt.size();
  std::string iph(20, '\0');
  iph[0] = 0x45;
  Put16(iph, 4, id);
  Put16(iph, 6, 0x4000);  // DF
  iph[8] = 64;
  iph[9] = 6;
  Put32(iph, 12, 0x7F000001);
  Put32(iph, 16, 0x7F000002);
  pkt += iph;
  pkt += TcpHeader(seq, flags);
  pkt += payload;
  Put16(pkt, ip + 10, static_cast<uint16_t>(~Fold(Sum16(pkt, ip, 20))));
  Put16(pkt, ip + 20 + 16, PseudoSum(pkt, ip, false, static_cast<uint32_t>(32 + payload.size())));
  return pkt;
}

// Ethernet + IPv6 (+ the hop-by-hop jumbo option Linux < 6.19 inserts) + TCP, payload length 0.
std::string Ipv6Gso(const std::string& payload, uint32_t seq, uint8_t flags, bool jumbo_hbh) {
  std::string pkt = Ethernet(0x86DD, false);
  size_t ip = pkt.size();
  std::string iph(40, '\0');
  iph[0] = 0x60;
  iph[6] = static_cast<char>(jumbo_hbh ? 0 : 6);
  iph[7] = 64;
  iph[23] = 1;  // ::1
  iph[24] = 0x20, iph[25] = 0x01, iph[39] = 2;  // 2001::2
  pkt += iph;
  if (jumbo_hbh) {
    std::string hbh(8, '\0');
    hbh[0] = 6;
    hbh[2] = static_cast<char>(0xC2);
    hbh[3] = 4;
    Put32(hbh, 4, static_cast<uint32_t>(8 + 32 + payload.size()));
    pkt += hbh;
  }
  size_t tcp = pkt.size();
  pkt += TcpHeader(seq, flags);
  pkt += payload;
  Put16(pkt, tcp + 16, PseudoSum(pkt, ip, true, static_cast<uint32_t>(32 + payload.size())));
  return pkt;
}

// What the device (or the receiver, for CHECKSUM_PARTIAL on loopback) does with the partial sum:
// sums the TCP segment with the field as it is and stores the complement. That must equal the
// full checksum computed from scratch, and the result must verify.
void ExpectTcpChecksumCompletes(const std::string& seg, size_t ip, size_t tcp, bool v6) {
  uint32_t tcp_len = static_cast<uint32_t>(seg.size() - tcp);
  std::string zeroed = seg;
  Put16(zeroed, tcp + 16, 0);
  uint16_t full = static_cast<uint16_t>(~Fold(PseudoSum(seg, ip, v6, tcp_len) + Sum16(zeroed, tcp, tcp_len)));
  uint16_t completed = static_cast<uint16_t>(~Fold(Sum16(seg, tcp, tcp_len)));
  EXPECT_EQ(completed, full);
  std::string done = seg;
  Put16(done, tcp + 16, completed);
  EXPECT_EQ(Fold(PseudoSum(done, ip, v6, tcp_len) + Sum16(done, tcp, tcp_len)), 0xFFFF);
}

TEST(GsoSplit, Ipv4BigTcpSplitLikeTheKernel) {
  const uint32_t mss = 65483;  // loopback: MTU 65536 − IPv4 − TCP with timestamps
  std::string payload = Payload(2 * mss + 1000, 1);
  std::string pkt = Ipv4Gso(payload, 0xFFFF, 0xFFFFFF00u, kAck | kPsh | kFin | kCwr);
  auto segs = SplitOversizedGso(kLinktypeEthernet, pkt, mss);
  ASSERT_EQ(segs.size(), 3u);
  std::string joined;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& s = segs[i];
    SCOPED_TRACE(i);
    size_t len = i < 2 ? mss : 1000;
    ASSERT_EQ(s.size(), 14 + 20 + 32 + len);
    EXPECT_EQ(s.substr(0, 14), pkt.substr(0, 14));
    EXPECT_EQ(Be16(s, 14 + 2), 20 + 32 + len);                  // total length
    EXPECT_EQ(Be16(s, 14 + 4), static_cast<uint16_t>(0xFFFF + i));  // id++ (wraps)
    EXPECT_EQ(Fold(Sum16(s, 14, 20)), 0xFFFF);                  // header checksum verifies
    EXPECT_EQ(Be32(s, 34 + 4), 0xFFFFFF00u + static_cast<uint32_t>(i * mss));  // seq (wraps)
    uint8_t flags = static_cast<uint8_t>(s[34 + 13]);
    EXPECT_EQ(flags & kAck, kAck);
    EXPECT_EQ((flags & kFin) != 0, i == 2);
    EXPECT_EQ((flags & kPsh) != 0, i == 2);
    EXPECT_EQ((flags & kCwr) != 0, i == 0);
    // Options and the rest of the header unchanged.
    EXPECT_EQ(s.substr(34 + 8, 5), pkt.substr(34 + 8, 5));
    EXPECT_EQ(s.substr(34 + 14, 2), pkt.substr(34 + 14, 2));
    EXPECT_EQ(s.substr(34 + 18, 14), pkt.substr(34 + 18, 14));
    // Checksum field: the pseudo-header sum for this segment's length.
    EXPECT_EQ(Be16(s, 34 + 16), PseudoSum(s, 14, false, static_cast<uint32_t>(32 + len)));
    ExpectTcpChecksumCompletes(s, 14, 34, false);
    auto parsed = ParsePacket(kLinktypeEthernet, s);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->payload.size(), len);
    joined += s.substr(66);
  }
  EXPECT_EQ(joined, payload);
}

TEST(GsoSplit, Ipv4AfterVlanTagAndRawIp) {
  const uint32_t mss = 40000;
  std::string payload = Payload(70000, 2);
  std::string pkt = Ipv4Gso(payload, 7, 1000, kAck, /*vlan=*/true);
  auto segs = SplitOversizedGso(kLinktypeEthernet, pkt, mss);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].substr(0, 18), pkt.substr(0, 18));
  EXPECT_EQ(Be16(segs[1], 18 + 2), 20 + 32 + 30000);
  EXPECT_EQ(Be16(segs[1], 18 + 4), 8);
  EXPECT_EQ(Be32(segs[1], 38 + 4), 1000u + mss);
  ExpectTcpChecksumCompletes(segs[1], 18, 38, false);

  std::string raw = Ipv4Gso(payload, 7, 1000, kAck).substr(14);
  auto raw_segs = SplitOversizedGso(kLinktypeRaw, raw, mss);
  ASSERT_EQ(raw_segs.size(), 2u);
  EXPECT_EQ(raw_segs[0], segs[0].substr(18));
  EXPECT_EQ(raw_segs[1], segs[1].substr(18));
}

TEST(GsoSplit, Ipv6WithAndWithoutJumboOption) {
  const uint32_t mss = 65476;  // loopback: MTU 65536 − IPv6 − TCP with timestamps
  std::string payload = Payload(mss + 5000, 3);
  for (bool hbh : {true, false}) {
    SCOPED_TRACE(hbh);
    std::string pkt = Ipv6Gso(payload, 42, kAck | kPsh | kCwr, hbh);
    auto segs = SplitOversizedGso(kLinktypeEthernet, pkt, mss);
    ASSERT_EQ(segs.size(), 2u);
    std::string joined;
    for (size_t i = 0; i < 2; ++i) {
      const std::string& s = segs[i];
      size_t len = i == 0 ? mss : 5000;
      ASSERT_EQ(s.size(), 14 + 40 + 32 + len);
      EXPECT_EQ(static_cast<uint8_t>(s[14 + 6]), 6);  // next header TCP: jumbo option gone
      EXPECT_EQ(Be16(s, 14 + 4), 32 + len);           // payload length
      EXPECT_EQ(s.substr(14 + 7, 33), pkt.substr(14 + 7, 33));  // hop limit, addresses
      EXPECT_EQ(Be32(s, 54 + 4), 42u + static_cast<uint32_t>(i * mss));
      uint8_t flags = static_cast<uint8_t>(s[54 + 13]);
      EXPECT_EQ((flags & kPsh) != 0, i == 1);
      EXPECT_EQ((flags & kCwr) != 0, i == 0);
      EXPECT_EQ(Be16(s, 54 + 16), PseudoSum(s, 14, true, static_cast<uint32_t>(32 + len)));
      ExpectTcpChecksumCompletes(s, 14, 54, true);
      auto parsed = ParsePacket(kLinktypeEthernet, s);
      ASSERT_TRUE(parsed);
      EXPECT_EQ(parsed->payload.size(), len);
      joined += s.substr(86);
    }
    EXPECT_EQ(joined, payload);
  }
}

TEST(GsoSplit, LeavesWhatNeedsNoSplitAlone) {
  std::string payload = Payload(70000, 4);
  std::string big = Ipv4Gso(payload, 1, 1, kAck);
  auto one = [](const std::vector<std::string>& v, const std::string& p) { return v.size() == 1 && v[0] == p; };
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, big, 0), big));         // not GSO
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, big, 100000), big));    // one segment
  std::string small = Ipv4Gso(Payload(1000, 5), 1, 1, kAck);
  Put16(small, 16, static_cast<uint16_t>(small.size() - 14));
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, small, 500), small));   // fits in 64 KiB
  std::string with_len = big;
  Put16(with_len, 16, 60000);  // a real total length: not BIG TCP
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, with_len, 1000), with_len));
  std::string udp = big;
  udp[14 + 9] = 17;
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, udp, 1000), udp));
  std::string frag = big;
  Put16(frag, 14 + 6, 0x2000);  // MF
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, frag, 1000), frag));
  std::string v6 = Ipv6Gso(payload, 1, kAck, true);
  v6[54 + 2] = 0x05;  // not the jumbo option
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, v6, 1000), v6));
  std::string bad_doff = big;
  bad_doff[34 + 12] = 0x40;  // TCP header of 16 bytes
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, bad_doff, 1000), bad_doff));
  EXPECT_TRUE(one(SplitOversizedGso(kLinktypeEthernet, "", 1000), ""));
  EXPECT_TRUE(one(SplitOversizedGso(147, big, 1000), big));  // unknown link type
}

TEST(GsoSplit, RandomHeadersNeverCrash) {
  std::mt19937 rng(9);
  std::string base = Ipv4Gso(Payload(70000, 6), 1, 1, kAck);
  for (int i = 0; i < 2000; ++i) {
    std::string p = base.substr(0, 65536 + rng() % 8000);
    for (int k = 0; k < 6; ++k) p[rng() % 80] = static_cast<char>(rng());
    for (int lt : {kLinktypeEthernet, kLinktypeRaw}) {
      auto segs = SplitOversizedGso(lt, p, 1 + rng() % 70000);
      size_t total = 0;
      for (const auto& s : segs) total += s.size();
      EXPECT_GE(total, p.size() - 80);  // never loses payload
    }
  }
}

}  // namespace
}  // namespace gotlscap::packet
