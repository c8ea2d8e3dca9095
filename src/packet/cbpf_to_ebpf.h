// Classic BPF (libpcap's output, see packet/pcap_filter.h) → eBPF for a BPF_PROG_TYPE_SCHED_CLS
// program, so a pcap-filter expression runs on TC (clsact) and non-matching packets never leave
// the kernel.
//
// Why translate rather than attach the classic program: TC's cls_bpf can take classic BPF, but
// such a program yields only a class id: it could not tail-call the capture program
// (bpf/pcap.bpf.c) nor hand it the snap length.
//
// Semantics follow libpcap's interpreter (bpf_filter.c), which tcpdump uses on saved files:
// A, X and M[] start at 0; a load beyond the packet, or a division/modulo by X == 0, ends the
// program with 0 (no match); shifts by X >= 32 give 0. Packet offsets are relative to the start
// of the frame as TC sees it (the Ethernet header on Ethernet and loopback devices, the IP header
// on raw-IP devices); "len" is skb->len.
//
// Not supported (Error kUsage, never a crash): backward jumps (libpcap emits them only for
// "protochain", whose loop the verifier cannot bound), loads from negative offsets (Linux
// ancillary data), jumps past the end, unknown opcodes, a program whose end can be fallen off.
#pragma once

#include <linux/bpf.h>
#include <linux/filter.h>

#include <cstdint>
#include <vector>

#include "common/result.h"

namespace gotlscap::packet {

// TC_ACT_UNSPEC from <linux/pkt_cls.h>: "no opinion", the packet goes on unchanged.
inline constexpr int kTcActUnspec = -1;
// Index into struct __sk_buff's cb[] where a kTailCall filter leaves the matched snap length.
inline constexpr int kSnapLenCbIndex = 0;

struct CbpfEpilogue {
  enum class Mode {
    // On a match (non-zero cBPF result): skb->cb[0] = result, then bpf_tail_call(skb,
    // prog_array_fd, 0). No match, or a failed tail call (empty slot): return TC_ACT_UNSPEC.
    kTailCall,
    // Return the cBPF result itself (0 or the snap length): for BPF_PROG_TEST_RUN in tests.
    kReturnVerdict,
  };
  Mode mode = Mode::kReturnVerdict;
  int prog_array_fd = -1;  // kTailCall: a BPF_MAP_TYPE_PROG_ARRAY, slot 0

  static CbpfEpilogue TailCall(int prog_array_fd) { return {Mode::kTailCall, prog_array_fd}; }
  static CbpfEpilogue ReturnVerdict() { return {Mode::kReturnVerdict, -1}; }
};

// Translates `cbpf` into eBPF instructions for BPF_PROG_TYPE_SCHED_CLS, ready for
// LoadFilterProgram. kUsage for the programs listed above as not supported, and for programs too
// large for eBPF's 16-bit jump offsets (tens of thousands of classic instructions).
Result<std::vector<bpf_insn>> TranslateCbpf(const std::vector<sock_filter>& cbpf, const CbpfEpilogue& epilogue);

// bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL"). `name`: at most 15 characters of
// [A-Za-z0-9_.]. Returns the program fd (the caller closes it). Errors: kPermission for EPERM
// (no root / CAP_BPF); otherwise kInternal with the verifier's message.
Result<int> LoadFilterProgram(const std::vector<bpf_insn>& insns, const char* name);

}  // namespace gotlscap::packet
