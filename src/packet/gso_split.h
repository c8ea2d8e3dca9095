// GSO packets too large for one IP datagram, split as the kernel splits them before a packet
// socket sees them.
//
// TC egress runs before the kernel segments TCP GSO packets for the device. On loopback TCP
// builds GSO packets larger than 64 KiB (BIG TCP / TSO): the IPv4 total length is then 0 (it
// cannot hold the size), the IPv6 payload length 0 (Linux before 6.19 also inserts a hop-by-hop
// jumbo option). Such a packet is longer than the device's gso_max_size, so validate_xmit_skb
// segments it in software (skb_gso_segment → inet_gso_segment / ipv6_gso_segment →
// tcp_gso_segment) before dev_queue_xmit_nit hands the segments to AF_PACKET: dumpcap records
// the segments, never the whole packet. SplitOversizedGso rebuilds those segments byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gotlscap::packet {

// `packet` is one whole captured packet of link type `linktype` (kLinktypeEthernet, up to two
// VLAN tags, or kLinktypeRaw/Ipv4/Ipv6), `gso_size` the skb's gso_size (TCP payload bytes per
// segment, 0 = not GSO). When it is a TCP packet whose IP datagram is longer than 65535 bytes
// (IPv4 total length 0; IPv6 payload length 0, with or without a jumbo option), returns its
// segments as Linux's tcp_gso_segment + inet_gso_segment / ipv6_gso_segment build them:
//   - the link-layer, IP and TCP headers copied into each, then gso_size payload bytes (the last
//     segment gets the rest);
//   - IPv4: total length set, id incremented per segment (the first keeps the packet's), header
//     checksum recomputed; IPv6: payload length set, the hop-by-hop jumbo option removed;
//   - TCP: seq advanced by gso_size per segment, FIN and PSH only on the last segment, CWR only on
//     the first, and the checksum field as CHECKSUM_PARTIAL leaves it on loopback: the folded
//     pseudo-header sum (addresses, protocol, this segment's TCP length), not its complement.
// Otherwise (no split needed, not TCP, gso_size 0, malformed or cut headers) returns `packet`
// unchanged as the one element. Each segment's length on the wire is its size: the caller must
// pass a packet that the snap length did not cut.
std::vector<std::string> SplitOversizedGso(int linktype, std::string_view packet, uint32_t gso_size);

}  // namespace gotlscap::packet
