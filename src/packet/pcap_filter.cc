// libpcap's <pcap/bpf.h> and the kernel's <linux/filter.h> define the same BPF_* macros; pcap
// first, because linux/bpf_common.h guards the one value they disagree on (BPF_MAXINSNS).
#include <pcap/pcap.h>

#include "packet/pcap_filter.h"

#include <fmt/format.h>

#include <memory>

namespace gotlscap::packet {
namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};

bool IsPacketLoad(uint16_t code) {
  int cls = BPF_CLASS(code);
  int mode = BPF_MODE(code);
  return (cls == BPF_LD && (mode == BPF_ABS || mode == BPF_IND)) || (cls == BPF_LDX && mode == BPF_MSH);
}

}  // namespace

Result<bool> CheckNoAncillaryLoads(const std::vector<sock_filter>& prog) {
  for (size_t i = 0; i < prog.size(); ++i) {
    const sock_filter& f = prog[i];
    // The kernel reads offsets from SKF_AD_OFF (-0x1000) up as skb metadata and SKF_NET_OFF /
    // SKF_LL_OFF as header-relative loads; libpcap emits them only for live Linux captures. A TC
    // program sees none of that through packet loads, so such a filter cannot be honoured.
    if (IsPacketLoad(f.code) && static_cast<int32_t>(f.k) < 0) {
      return MakeError(ErrorKind::kUsage,
                       fmt::format("filter uses Linux ancillary data (load from offset {} at instruction {}), "
                                   "which the in-kernel filter does not support",
                                   static_cast<int32_t>(f.k), i));
    }
  }
  return true;
}

Result<std::vector<sock_filter>> CompilePcapFilter(const std::string& expr, int linktype, uint32_t snaplen) {
  // A "dead" handle: compiling needs only the link type and snap length, no device and no
  // privileges, so a bad expression is reported before anything is loaded or attached.
  std::unique_ptr<pcap_t, PcapCloser> pcap(pcap_open_dead(linktype, static_cast<int>(snaplen)));
  if (!pcap) return MakeError(ErrorKind::kInternal, "pcap_open_dead failed");
  bpf_program prog{};
  if (pcap_compile(pcap.get(), &prog, expr.c_str(), /*optimize=*/1, PCAP_NETMASK_UNKNOWN) != 0) {
    return MakeError(ErrorKind::kUsage, fmt::format("bad filter expression: {}", pcap_geterr(pcap.get())));
  }
  std::vector<sock_filter> out(prog.bf_len);
  for (u_int i = 0; i < prog.bf_len; ++i) {
    const bpf_insn& in = prog.bf_insns[i];
    out[i] = sock_filter{in.code, in.jt, in.jf, in.k};
  }
  pcap_freecode(&prog);
  auto check = CheckNoAncillaryLoads(out);
  if (!check.ok()) return check.error();
  return out;
}

uint32_t RunPcapInterpreter(const std::vector<sock_filter>& prog, const uint8_t* packet, uint32_t wirelen,
                            uint32_t caplen) {
  std::vector<bpf_insn> insns(prog.size());
  for (size_t i = 0; i < prog.size(); ++i) insns[i] = bpf_insn{prog[i].code, prog[i].jt, prog[i].jf, prog[i].k};
  bpf_program p{static_cast<u_int>(insns.size()), insns.data()};
  pcap_pkthdr hdr{};
  hdr.caplen = caplen;
  hdr.len = wirelen;
  return static_cast<uint32_t>(pcap_offline_filter(&p, &hdr, packet));
}

}  // namespace gotlscap::packet
