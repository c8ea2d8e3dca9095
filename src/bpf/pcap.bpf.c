// SPDX-License-Identifier: GPL-2.0
/* TC (clsact) packet capture for `gotlscap pcap`.
 *
 *   TC hook -> filter program (the user's pcap-filter expression, translated from classic BPF by
 *              packet/cbpf_to_ebpf.cc; it stores the snap length in skb->cb[0])
 *           -> tail call into capture_ingress / capture_egress below (on a match only)
 *           -> one ring-buffer record per packet
 *
 * Two capture programs rather than one so the record says the direction without guessing from
 * skb fields. Packets are never modified or dropped: every path returns TC_ACT_UNSPEC, which lets
 * the next classifier (or the default action) decide. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_helpers.h>

#include "pcap_events.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load: --snaplen. */
const volatile __u32 snaplen = PCAP_MAX_SNAPLEN;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 32 << 20); /* resized by user space */
} packets SEC(".maps");

struct counters {
  __u64 v[PCAP_CNT_MAX];
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct counters);
} counters SEC(".maps");

/* Tail-call targets of the filter programs: slot 0 holds capture_ingress / capture_egress. */
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} ingress_jump SEC(".maps");
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} egress_jump SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n) {
  __u32 zero = 0;
  struct counters *c = bpf_map_lookup_elem(&counters, &zero);
  if (c && idx < PCAP_CNT_MAX) __sync_fetch_and_add(&c->v[idx], n);
}

/* Same batching as the uprobe ring (gotls.bpf.c): user space polls every 10 ms, so wake it only
 * when the ring is filling up. */
static __always_inline __u64 wakeup_flag(void) {
  __u64 avail = bpf_ringbuf_query(&packets, BPF_RB_AVAIL_DATA);
  __u64 size = bpf_ringbuf_query(&packets, BPF_RB_RING_SIZE);
  return avail > size / 8 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Records are built in place in the ring buffer (no per-CPU staging copy); a reservation must
 * have a constant size, so packets go into the smallest of a few size classes. */
#define DEFINE_EMIT(SZ)                                                                       \
  struct record_##SZ {                                                                        \
    struct pcap_packet_event hdr;                                                             \
    __u8 data[SZ];                                                                            \
  };                                                                                          \
  static __noinline int emit_##SZ(struct __sk_buff *skb, __u64 n, __u8 egress) {              \
    /* The barriers keep clang from testing a copy of n: the verifier must see both bounds   \
     * on the very register passed to bpf_skb_load_bytes. The lower one is a signed test:     \
     * Linux 6.1's verifier learns nothing from n != 0, only from n > 0 (seen on arm64). */   \
    asm volatile("" : "+r"(n));                                                               \
    if (n > SZ) return 0;                                                                     \
    asm volatile("" : "+r"(n));                                                               \
    if ((__s64)n <= 0) return 0;                                                              \
    struct record_##SZ *r = bpf_ringbuf_reserve(&packets, sizeof(struct record_##SZ), 0);     \
    if (!r) {                                                                                 \
      count(PCAP_CNT_LOST, 1);                                                                \
      return 0;                                                                               \
    }                                                                                         \
    r->hdr.ts_ns = bpf_ktime_get_ns();                                                        \
    r->hdr.ifindex = skb->ifindex;                                                            \
    r->hdr.orig_len = skb->len;                                                               \
    r->hdr.cap_len = (__u32)n;                                                                    \
    r->hdr.egress = egress;                                                                   \
    r->hdr.vlan_present = skb->vlan_present ? 1 : 0;                                          \
    r->hdr.vlan_tci = (__u16)skb->vlan_tci;                                                   \
    r->hdr.vlan_proto = (__u16)skb->vlan_proto;                                               \
    r->hdr.gso_size = skb->gso_size;                                                          \
    if (bpf_skb_load_bytes(skb, 0, r->data, n)) {                                             \
      count(PCAP_CNT_LOAD_FAULTS, 1);                                                         \
      bpf_ringbuf_discard(r, 0);                                                              \
      return 0;                                                                               \
    }                                                                                         \
    bpf_ringbuf_submit(r, wakeup_flag());                                                     \
    count(PCAP_CNT_PACKETS, 1);                                                               \
    count(PCAP_CNT_BYTES, n);                                                                 \
    return 0;                                                                                 \
  }
DEFINE_EMIT(128)
DEFINE_EMIT(256)
DEFINE_EMIT(512)
DEFINE_EMIT(1024)
DEFINE_EMIT(1600)
DEFINE_EMIT(2048)
DEFINE_EMIT(4096)
DEFINE_EMIT(9216)
DEFINE_EMIT(16384)
DEFINE_EMIT(32768)
DEFINE_EMIT(65600)
DEFINE_EMIT(131072)
DEFINE_EMIT(262144)
_Static_assert(PCAP_MAX_SNAPLEN == 262144, "emit_262144 carries the largest packets");

static __always_inline int capture(struct __sk_buff *skb, __u8 egress) {
  __u64 n = skb->len; /* 64-bit: a u32 would be zero-extended into a copy the verifier does not bound */
  /* The filter's verdict is the snap length its expression was compiled with. */
  __u32 snap = skb->cb[0];
  if (snap == 0 || snap > snaplen) snap = snaplen;
  if (n > snap) n = snap; /* user space counts orig_len > cap_len as cut by the snap length */
  if (n > PCAP_MAX_SNAPLEN) n = PCAP_MAX_SNAPLEN;
  /* Classes close to common sizes (ACKs, MTU 1500 frames, jumbo frames, GSO packets of up to
   * 64 KiB): a record wastes at most about half its space. */
  if (n <= 128)
    emit_128(skb, n, egress);
  else if (n <= 256)
    emit_256(skb, n, egress);
  else if (n <= 512)
    emit_512(skb, n, egress);
  else if (n <= 1024)
    emit_1024(skb, n, egress);
  else if (n <= 1600)
    emit_1600(skb, n, egress);
  else if (n <= 2048)
    emit_2048(skb, n, egress);
  else if (n <= 4096)
    emit_4096(skb, n, egress);
  else if (n <= 9216)
    emit_9216(skb, n, egress);
  else if (n <= 16384)
    emit_16384(skb, n, egress);
  else if (n <= 32768)
    emit_32768(skb, n, egress);
  else if (n <= 65600)
    emit_65600(skb, n, egress);
  else if (n <= 131072)
    emit_131072(skb, n, egress);
  else
    emit_262144(skb, n, egress);
  return TC_ACT_UNSPEC;
}

SEC("tc")
int capture_ingress(struct __sk_buff *skb) { return capture(skb, 0); }

SEC("tc")
int capture_egress(struct __sk_buff *skb) { return capture(skb, 1); }
