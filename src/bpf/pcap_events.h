/* Packet records shared by the TC program (pcap.bpf.c) and user space (packet/). Plain C with
 * fixed-width fields so both compilers agree on the layout. */
#ifndef GOTLSCAP_BPF_PCAP_EVENTS_H
#define GOTLSCAP_BPF_PCAP_EVENTS_H

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t pc_u8;
typedef uint16_t pc_u16;
typedef uint32_t pc_u32;
typedef uint64_t pc_u64;
#else
typedef __u8 pc_u8;
typedef __u16 pc_u16;
typedef __u32 pc_u32;
typedef __u64 pc_u64;
#endif

/* Largest packet copied whole: dumpcap's default snap length. Loopback and veth hand TC GSO
 * packets of up to 64 KiB (more with BIG TCP); beyond this the record is cut and counted. */
#define PCAP_MAX_SNAPLEN 262144

/* Indexes of the per-CPU counters map. */
enum pcap_counter {
  PCAP_CNT_PACKETS = 0, /* packets that matched the filter */
  PCAP_CNT_BYTES,       /* their captured bytes */
  PCAP_CNT_LOST,        /* ring buffer full: packets dropped */
  PCAP_CNT_LOAD_FAULTS, /* bpf_skb_load_bytes failed */
  PCAP_CNT_MAX,
};

struct pcap_packet_event {
  pc_u64 ts_ns;    /* CLOCK_MONOTONIC when TC saw the packet */
  pc_u32 ifindex;
  pc_u32 orig_len; /* skb->len: the packet as the stack holds it (GSO packets whole) */
  pc_u32 cap_len;  /* bytes that follow */
  pc_u8 egress;
  /* A VLAN tag the device keeps out of the packet data (offloaded): user space puts it back, as
   * libpcap does, so the packet reads as it was on the wire. */
  pc_u8 vlan_present;
  pc_u16 vlan_tci;
  pc_u16 vlan_proto; /* network byte order, as in the skb */
  pc_u16 pad;
  /* TCP segment size of a GSO packet (0: not GSO). TC sees a GSO packet before the kernel
   * splits it for the device; user space splits the ones no wire can carry (over 64 KiB). */
  pc_u32 gso_size;
  /* followed by cap_len packet bytes */
};

#endif
