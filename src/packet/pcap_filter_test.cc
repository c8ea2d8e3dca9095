// pcap headers first: see pcap_filter.cc.
#include <pcap/pcap.h>

#include "packet/pcap_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace gotlscap::packet {
namespace {

constexpr int kEthernet = DLT_EN10MB;

// libpcap's own message for `expr`, straight from pcap_compile.
std::string LibpcapMessage(const std::string& expr) {
  pcap_t* p = pcap_open_dead(kEthernet, 262144);
  bpf_program prog{};
  std::string msg;
  if (pcap_compile(p, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    msg = pcap_geterr(p);
  else
    pcap_freecode(&prog);
  pcap_close(p);
  return msg;
}

TEST(PcapFilterCompile, EmptyExpressionMatchesEverything) {
  auto prog = CompilePcapFilter("", kEthernet, 1234);
  ASSERT_TRUE(prog.ok()) << prog.error().message;
  ASSERT_EQ(prog->size(), 1u);
  EXPECT_EQ((*prog)[0].code, BPF_RET | BPF_K);
  EXPECT_EQ((*prog)[0].k, 1234u);
  uint8_t frame[60] = {};
  EXPECT_EQ(RunPcapInterpreter(*prog, frame, sizeof(frame), sizeof(frame)), 1234u);
}

TEST(PcapFilterCompile, ReturnsTheSnapLengthOnAMatch) {
  auto prog = CompilePcapFilter("tcp port 443", kEthernet, 96);
  ASSERT_TRUE(prog.ok()) << prog.error().message;
  bool saw_snap = false;
  for (const sock_filter& f : *prog) saw_snap |= f.code == (BPF_RET | BPF_K) && f.k == 96;
  EXPECT_TRUE(saw_snap);
}

TEST(PcapFilterCompile, RawIpLinkType) {
  auto prog = CompilePcapFilter("tcp and host 10.0.0.1", DLT_RAW, 262144);
  ASSERT_TRUE(prog.ok()) << prog.error().message;
  // An IPv4 header first, no Ethernet header: TCP is byte 9.
  uint8_t ip[40] = {0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  EXPECT_EQ(RunPcapInterpreter(*prog, ip, sizeof(ip), sizeof(ip)), 262144u);
}

TEST(PcapFilterCompile, BadExpressionsCarryLibpcapsMessage) {
  for (const char* expr : {"tcp port", "host 999.1.1.1", "ip broadcast", "portrange 10-", "nosuchkeyword",
                           "ether host zz:zz:zz:zz:zz:zz", "tcp[100000000000]", "port 70000", "(tcp"}) {
    SCOPED_TRACE(expr);
    std::string theirs = LibpcapMessage(expr);
    ASSERT_FALSE(theirs.empty()) << "libpcap accepted it";
    auto prog = CompilePcapFilter(expr, kEthernet, 262144);
    ASSERT_FALSE(prog.ok());
    EXPECT_EQ(prog.error().kind, ErrorKind::kUsage);
    EXPECT_EQ(prog.error().message, "bad filter expression: " + theirs);
  }
}

TEST(PcapFilterCompile, LinkTypeLibpcapCannotFilterIsAUsageError) {
  // DLT_USER0: libpcap knows no header layout for it, so "tcp" cannot be compiled.
  auto prog = CompilePcapFilter("tcp", DLT_USER0, 262144);
  ASSERT_FALSE(prog.ok());
  EXPECT_EQ(prog.error().kind, ErrorKind::kUsage);
  EXPECT_NE(prog.error().message.find("bad filter expression: "), std::string::npos);
}

TEST(PcapFilterCompile, RejectsLinuxAncillaryLoads) {
  // What libpcap emits for "vlan" on a live Linux socket: ldb [vlan_avail]; the TC program has
  // no such load.
  std::vector<sock_filter> prog = {
      {BPF_LD | BPF_B | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  auto r = CheckNoAncillaryLoads(prog);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  EXPECT_NE(r.error().message.find("ancillary"), std::string::npos) << r.error().message;
  prog[0] = {BPF_LDX | BPF_MSH | BPF_B, 0, 0, static_cast<uint32_t>(SKF_NET_OFF)};
  EXPECT_FALSE(CheckNoAncillaryLoads(prog).ok());
  prog[0] = {BPF_LD | BPF_H | BPF_IND, 0, 0, static_cast<uint32_t>(SKF_LL_OFF + 12)};
  EXPECT_FALSE(CheckNoAncillaryLoads(prog).ok());
  // Non-packet loads may carry any k.
  prog[0] = {BPF_LD | BPF_IMM, 0, 0, 0xfffff000u};
  EXPECT_TRUE(CheckNoAncillaryLoads(prog).ok());
}

}  // namespace
}  // namespace gotlscap::packet
