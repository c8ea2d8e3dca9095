// pcap-filter expressions ("tcp port 443", "host 10.0.0.1 and tcp") compiled to classic BPF by
// libpcap itself, so `gotlscap pcap FILTER` accepts exactly what tcpdump and dumpcap accept. The
// result is translated to eBPF by packet/cbpf_to_ebpf.h and runs in the kernel on TC.
#pragma once

#include <linux/filter.h>  // struct sock_filter: the same layout as libpcap's struct bpf_insn

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace gotlscap::packet {

// Compiles `expr` for a capture of link type `linktype` (LINKTYPE_*/DLT_*) and snap length
// `snaplen` (the value a matching packet's program returns). Optimized, netmask unknown (so
// "ip broadcast" is refused, as tcpdump does on an interface without an IPv4 address). An empty
// expression matches every packet.
//
// Errors: kUsage "bad filter expression: <libpcap's message>"; kUsage when the program would need
// Linux ancillary data (negative/SKF_AD_OFF offsets), which the in-kernel filter cannot provide.
// The compiled program may still hold backward jumps ("protochain"): TranslateCbpf refuses those.
Result<std::vector<sock_filter>> CompilePcapFilter(const std::string& expr, int linktype, uint32_t snaplen);

// kUsage naming the first load from a negative offset (Linux ancillary data such as
// SKF_AD_OFF + SKF_AD_VLAN_TAG, or SKF_NET_OFF/SKF_LL_OFF), or nothing when there is none.
Result<bool> CheckNoAncillaryLoads(const std::vector<sock_filter>& prog);

// libpcap's own interpreter (pcap_offline_filter) on one packet: the verdict tcpdump would
// reach, 0 for no match, else the snap length. The reference the translated program is tested
// against; here so that callers need not include <pcap/bpf.h>, whose struct bpf_insn (classic)
// clashes with <linux/bpf.h>'s (eBPF).
uint32_t RunPcapInterpreter(const std::vector<sock_filter>& prog, const uint8_t* packet, uint32_t wirelen,
                            uint32_t caplen);

}  // namespace gotlscap::packet
