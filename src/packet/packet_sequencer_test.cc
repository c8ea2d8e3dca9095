#include "packet/packet_sequencer.h"

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "packet/packet_parse.h"

namespace gotlscap::packet {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;  // Unix epoch ns

// ---- Packets built byte by byte (checksums are not looked at, so they stay zero) ----

std::string U16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)}; }
std::string U24(uint32_t v) { return {static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)};
}
std::string V6(uint8_t last) {  // 2001:db8::<last>
  std::string a(16, '\0');
  a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = static_cast<char>(0xb8), a[15] = static_cast<char>(last);
  return a;
}

std::string Tcp(uint16_t sport, uint16_t dport, uint8_t flags, const std::string& payload) {
  std::string t = U16(sport) + U16(dport) + std::string(8, '\0');  // ports, seq, ack
  t += static_cast<char>(5 << 4);                                   // data offset: 20 bytes
  t += static_cast<char>(flags);
  t += U16(65535) + std::string(4, '\0');  // window, checksum, urgent
  return t + payload;
}
std::string Udp(uint16_t sport, uint16_t dport, const std::string& payload) {
  return U16(sport) + U16(dport) + U16(static_cast<uint16_t>(8 + payload.size())) + U16(0) + payload;
}
std::string Ipv4(const std::string& src, const std::string& dst, uint8_t proto, const std::string& l4,
                 uint16_t frag = 0x4000 /* DF */) {
  std::string h;
  h += static_cast<char>(0x45);
  h += '\0';
  h += U16(static_cast<uint16_t>(20 + l4.size())) + U16(0) + U16(frag);
  h += static_cast<char>(64);
  h += static_cast<char>(proto);
  h += U16(0) + src + dst;
  return h + l4;
}
// `ext`: one Hop-by-Hop options header (8 bytes) before the L4 header, as MLD and jumbo use.
std::string Ipv6(const std::string& src, const std::string& dst, uint8_t proto, const std::string& l4,
                 bool ext = false) {
  std::string body = l4;
  uint8_t next = proto;
  if (ext) {
    std::string hbh = {static_cast<char>(proto), '\0', 1, 0, 0, 0, 0, 0};  // next, len 0 (8 bytes), PadN
    body = hbh + l4;
    next = 0;
  }
  std::string h = {0x60, 0, 0, 0};
  h += U16(static_cast<uint16_t>(body.size()));
  h += static_cast<char>(next);
  h += static_cast<char>(64);
  return h + src + dst + body;
}
std::string Eth(uint16_t ethertype, const std::string& l3, std::vector<uint16_t> vlans = {}) {
  std::string e = std::string("\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
  for (size_t i = 0; i < vlans.size(); ++i) e += U16(i == 0 && vlans.size() == 2 ? 0x88A8 : 0x8100) + U16(vlans[i]);
  return e + U16(ethertype) + l3;
}

// A ClientHello record: the sequencer reads only its first 43 bytes, the rest keeps it realistic.
std::string ClientHello(const std::string& random) {
  std::string body = U16(0x0303) + random;
  body += '\0';                      // session id
  body += U16(2) + U16(0x1301);      // cipher suites
  body += std::string("\x01\x00", 2);  // compression: null
  body += U16(0);                    // extensions
  std::string hs = std::string(1, 0x01) + U24(static_cast<uint32_t>(body.size())) + body;
  return std::string("\x16\x03\x01", 3) + U16(static_cast<uint16_t>(hs.size())) + hs;
}
// Bytes that look like what follows the ClientHello: ServerHello then encrypted records.
std::string Encrypted(size_t n) { return std::string("\x17\x03\x03", 3) + U16(static_cast<uint16_t>(n)) + std::string(n, 'x'); }
std::string ServerHelloAndEncryptedExtensions() {
  return std::string("\x16\x03\x03\x00\x2a\x02", 6) + std::string(41, 's') + Encrypted(30);
}

constexpr uint8_t kSyn = tcp_flags::kSyn, kAck = tcp_flags::kAck, kFin = tcp_flags::kFin,
                  kRst = tcp_flags::kRst, kPsh = 0x08;

// One TCP connection over Ethernet/IPv4 (or IPv6, optionally VLAN-tagged).
struct Flow {
  uint8_t client_host = 2, server_host = 1;
  uint16_t client_port = 50000, server_port = 443;
  bool v6 = false;
  std::vector<uint16_t> vlans;

  Packet Make(uint64_t ts, bool from_client, uint8_t flags, const std::string& payload = "") const {
    uint16_t sp = from_client ? client_port : server_port, dp = from_client ? server_port : client_port;
    uint8_t sh = from_client ? client_host : server_host, dh = from_client ? server_host : client_host;
    std::string tcp = Tcp(sp, dp, flags, payload);
    Packet p;
    p.ts_ns = ts;
    p.egress = from_client;
    p.data = v6 ? Eth(0x86DD, Ipv6(V6(sh), V6(dh), kProtoTcp, tcp), vlans)
                : Eth(0x0800, Ipv4(V4(10, 0, 0, sh), V4(10, 0, 0, dh), kProtoTcp, tcp), vlans);
    p.orig_len = static_cast<uint32_t>(p.data.size());
    return p;
  }
  Packet C(uint64_t ts, uint8_t flags, const std::string& payload = "") const { return Make(ts, true, flags, payload); }
  Packet S(uint64_t ts, uint8_t flags, const std::string& payload = "") const { return Make(ts, false, flags, payload); }
};

capture::SecretEvent Secret(const std::string& label, const std::string& random, uint32_t pid = 42,
                            const std::string& comm = "server") {
  capture::SecretEvent s;
  s.pid = pid;
  s.comm = comm;
  s.label = label;
  s.client_random = random;
  s.secret = std::string(32, static_cast<char>(label.size()));
  return s;
}

// Records both sinks in one log, so tests can check the order of DSBs and packets in the file.
struct Recorder {
  std::vector<std::string> log;  // "S <line>" or "P <ms after kT0> <comment>"
  std::vector<Packet> packets;
  PacketSequencer Make(SequencerOptions opts = {}) {
    return PacketSequencer(
        std::move(opts),
        [this](Packet&& p) {
          log.push_back("P " + std::to_string((p.ts_ns - kT0) / kMs) + " " + p.comment);
          packets.push_back(std::move(p));
        },
        [this](std::string_view keylog) { log.push_back("S " + std::string(keylog)); });
  }
  size_t Count(char kind) const {
    size_t n = 0;
    for (auto& l : log) n += l[0] == kind;
    return n;
  }
};

// ---- Parsing ----

TEST(PacketSequencerParse, BothDirectionsShareOneKey) {
  Flow f;
  std::string syn = f.C(kT0, kSyn).data, syn_ack = f.S(kT0, kSyn | kAck).data;
  auto c = ParsePacket(kLinktypeEthernet, syn);
  auto s = ParsePacket(kLinktypeEthernet, syn_ack);
  ASSERT_TRUE(c && s);
  EXPECT_EQ(c->key, s->key);
  EXPECT_NE(c->from_a, s->from_a);
  EXPECT_EQ(c->key.protocol, kProtoTcp);
  EXPECT_FALSE(c->key.v6);
  EXPECT_EQ(c->key.ToString(), "tcp 10.0.0.1:443 <-> 10.0.0.2:50000");
  EXPECT_EQ(c->tcp_flags, kSyn);
  EXPECT_TRUE(c->payload.empty());
}

TEST(PacketSequencerParse, Ipv6WithHopByHopHeader) {
  std::string tcp = Tcp(40000, 443, kAck | kPsh, "hello");
  // (The payload is a view into the packet: the bytes must outlive it.)
  std::string frame = Eth(0x86DD, Ipv6(V6(9), V6(1), kProtoTcp, tcp, /*ext=*/true));
  auto p = ParsePacket(kLinktypeEthernet, frame);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->key.v6);
  EXPECT_EQ(p->payload, "hello");
  EXPECT_FALSE(p->from_a);  // 2001:db8::9 > 2001:db8::1
  EXPECT_EQ(p->key.ToString(), "tcp [2001:db8::1]:443 <-> [2001:db8::9]:40000");
}

TEST(PacketSequencerParse, VlanAndQinQTags) {
  std::string ip = Ipv4(V4(1, 2, 3, 4), V4(5, 6, 7, 8), kProtoTcp, Tcp(1, 2, kAck, "x"));
  for (std::vector<uint16_t> tags : {std::vector<uint16_t>{}, {100}, {100, 200}}) {
    std::string frame = Eth(0x0800, ip, tags);
    auto p = ParsePacket(kLinktypeEthernet, frame);
    ASSERT_TRUE(p) << tags.size() << " tags";
    EXPECT_EQ(p->payload, "x");
    EXPECT_EQ(p->key.port_a, 1);
  }
  // Three tags are more than we unwrap: no connection rather than a misread.
  std::string three = Eth(0x8100, U16(300) + U16(0x0800) + ip, {100, 200});
  EXPECT_FALSE(ParsePacket(kLinktypeEthernet, three));
}

TEST(PacketSequencerParse, RawIpUdpAndWhatHasNoConnection) {
  std::string udp = Ipv4(V4(10, 0, 0, 1), V4(10, 0, 0, 2), kProtoUdp, Udp(53, 5353, "dns"));
  auto p = ParsePacket(kLinktypeRaw, udp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key.protocol, kProtoUdp);
  EXPECT_EQ(p->payload, "dns");
  EXPECT_TRUE(ParsePacket(kLinktypeIpv6, Ipv6(V6(1), V6(2), kProtoTcp, Tcp(1, 2, kSyn, ""))));
  // Ethernet padding is not payload: the IP length bounds it.
  std::string padded_frame = Eth(0x0800, udp + std::string(10, '\0'));
  auto padded = ParsePacket(kLinktypeEthernet, padded_frame);
  ASSERT_TRUE(padded);
  EXPECT_EQ(padded->payload, "dns");
  // ARP, ICMP, a non-first fragment, an unknown link type: no connection.
  EXPECT_FALSE(ParsePacket(kLinktypeEthernet, Eth(0x0806, std::string(28, '\1'))));
  EXPECT_FALSE(ParsePacket(kLinktypeEthernet, Eth(0x0800, Ipv4(V4(1, 1, 1, 1), V4(2, 2, 2, 2), 1, "icmp-echo"))));
  EXPECT_FALSE(ParsePacket(kLinktypeRaw, Ipv4(V4(1, 1, 1, 1), V4(2, 2, 2, 2), kProtoTcp, Tcp(1, 2, kAck, "x"), 0x0010)));
  EXPECT_FALSE(ParsePacket(113, udp));
}

TEST(PacketSequencerParse, ClientHelloRandom) {
  std::string random(32, '\0');
  for (int i = 0; i < 32; ++i) random[i] = static_cast<char>(i * 7);
  std::string hello = ClientHello(random);
  EXPECT_EQ(ClientHelloRandom(hello), random);
  // Only the first segment is needed: a ClientHello cut after its random still counts.
  EXPECT_EQ(ClientHelloRandom(hello.substr(0, 43)), random);
  EXPECT_FALSE(ClientHelloRandom(hello.substr(0, 42)));
  EXPECT_FALSE(ClientHelloRandom(ServerHelloAndEncryptedExtensions()));  // handshake type 2
  EXPECT_FALSE(ClientHelloRandom(Encrypted(60)));                        // application data
  std::string bad_version = hello;
  bad_version[2] = 0x05;
  EXPECT_FALSE(ClientHelloRandom(bad_version));
  EXPECT_FALSE(ClientHelloRandom("GET / HTTP/1.1\r\nHost: example\r\n\r\n0123456789"));
}

// ---- Sequencing ----

// The point of the sequencer: in TLS 1.3 the server's second flight (ServerHello +
// EncryptedExtensions...) is on the wire before any secret is logged. The DSBs must still come
// first in the file, and the SYN, which belongs to the connection, waits with it.
TEST(PacketSequencer, Tls13SecretsPrecedeEncryptedPackets) {
  Recorder r;
  auto seq = r.Make();
  Flow f;
  std::string random(32, 'R');
  seq.AddPacket(f.C(kT0 + 0 * kMs, kSyn));
  seq.AddPacket(f.S(kT0 + 1 * kMs, kSyn | kAck));
  seq.AddPacket(f.C(kT0 + 2 * kMs, kAck));
  seq.AddPacket(f.C(kT0 + 3 * kMs, kAck | kPsh, ClientHello(random)));
  seq.AddPacket(f.S(kT0 + 4 * kMs, kAck | kPsh, ServerHelloAndEncryptedExtensions()));
  seq.AddPacket(f.C(kT0 + 5 * kMs, kAck | kPsh, Encrypted(40)));   // client Finished
  seq.AddPacket(f.C(kT0 + 6 * kMs, kAck | kPsh, Encrypted(100)));  // request
  seq.AddPacket(f.S(kT0 + 7 * kMs, kAck | kPsh, Encrypted(200)));  // response

  // Every packet is past min_hold, but the connection is not keyed: nothing leaves.
  seq.Poll(kT0 + 250 * kMs);
  EXPECT_TRUE(r.log.empty());
  // The handshake secrets alone do not key it (Wireshark needs the traffic secrets too).
  seq.AddSecret(Secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", random));
  seq.AddSecret(Secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", random));
  EXPECT_EQ(r.Count('S'), 2u);  // written at once, ahead of the held packets
  seq.Poll(kT0 + 260 * kMs);
  EXPECT_EQ(r.Count('P'), 0u);
  seq.AddSecret(Secret("CLIENT_TRAFFIC_SECRET_0", random));
  EXPECT_EQ(r.Count('P'), 0u);
  seq.AddSecret(Secret("SERVER_TRAFFIC_SECRET_0", random));
  seq.Poll(kT0 + 270 * kMs);

  ASSERT_EQ(r.log.size(), 12u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.log[i][0], 'S') << r.log[i];
  EXPECT_EQ(r.log[0], "S " + capture::KeyLogLine(Secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", random)) + "\n");
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(r.log[4 + i], "P " + std::to_string(i) + " pid=42 comm=server");
  EXPECT_EQ(r.packets[0].egress, true);
  EXPECT_EQ(seq.counters().packets_in, 8u);
  EXPECT_EQ(seq.counters().packets_written, 8u);
  EXPECT_EQ(seq.counters().secrets_written, 4u);
  EXPECT_EQ(seq.counters().released_unsettled, 0u);
  EXPECT_EQ(seq.buffered_packets(), 0u);
  EXPECT_EQ(seq.buffered_bytes(), 0u);
}

// Usual timing: keys come a few ms after the handshake, so packets leave at min_hold, each at
// its own time (the head is released as soon as it is min_hold old, later packets later).
TEST(PacketSequencer, Tls12ClientRandomOverIpv6Vlan) {
  Recorder r;
  auto seq = r.Make();
  Flow f;
  f.v6 = true;
  f.vlans = {7};
  std::string random(32, '2');
  seq.AddPacket(f.C(kT0, kAck | kPsh, ClientHello(random)));
  seq.AddPacket(f.S(kT0 + 1 * kMs, kAck | kPsh, std::string("\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9)));
  seq.AddSecret(Secret("CLIENT_RANDOM", random, 7, "client"));
  seq.AddPacket(f.C(kT0 + 300 * kMs, kAck | kPsh, Encrypted(10)));
  seq.Poll(kT0 + 199 * kMs);
  EXPECT_EQ(r.Count('P'), 0u);  // min_hold: every packet waits 200 ms
  seq.Poll(kT0 + 201 * kMs);
  EXPECT_EQ(r.Count('P'), 2u);
  seq.Poll(kT0 + 500 * kMs);
  ASSERT_EQ(r.log.size(), 4u);
  EXPECT_EQ(r.log[0][0], 'S');
  EXPECT_EQ(r.log[3], "P 300 pid=7 comm=client");
}

// The two ring buffers are read one after the other: a secret may be seen before the
// ClientHello packet that carries its random.
TEST(PacketSequencer, SecretBeforeItsClientHello) {
  Recorder r;
  auto seq = r.Make();
  Flow f;
  std::string random(32, 'e');
  seq.AddSecret(Secret("CLIENT_RANDOM", random));
  seq.AddPacket(f.C(kT0, kAck | kPsh, ClientHello(random)));
  seq.Poll(kT0 + 200 * kMs);
  ASSERT_EQ(r.log.size(), 2u);
  EXPECT_EQ(r.log[1], "P 0 pid=42 comm=server");
}

// Loopback with both ends traced: client and server log the same lines. One DSB line each.
TEST(PacketSequencer, DuplicateSecretsWrittenOnce) {
  Recorder r;
  auto seq = r.Make();
  std::string random(32, 'd');
  seq.AddSecret(Secret("CLIENT_TRAFFIC_SECRET_0", random, 1, "client"));
  seq.AddSecret(Secret("CLIENT_TRAFFIC_SECRET_0", random, 2, "server"));
  auto other = Secret("CLIENT_TRAFFIC_SECRET_0", random, 2, "server");
  other.secret = "different";  // not the same line: written
  seq.AddSecret(other);
  EXPECT_EQ(r.Count('S'), 2u);
  EXPECT_EQ(seq.counters().secrets_written, 2u);
  EXPECT_EQ(seq.counters().secrets_duplicate, 1u);
  seq.AddSecret(Secret("", random));  // no label: not a key log line
  EXPECT_EQ(r.Count('S'), 2u);
}

// With -p/-e, a TLS connection nobody traced logs no secret: it waits max_hold and is dropped,
// and it is never looked up in /proc (secrets own TLS connections). It holds the head, so the
// target's packets behind it leave with it, in time order.
TEST(PacketSequencer, TargetsOnlyDropsForeignTlsConnection) {
  Recorder r;
  int lookups = 0;
  SequencerOptions o;
  o.targets_only = true;
  o.lookup_owner = [&](const ConnKey&) -> std::optional<Owner> {
    ++lookups;
    return Owner{99, "wrong"};
  };
  auto seq = r.Make(o);
  Flow foreign, target;
  target.client_port = 50001;
  std::string foreign_random(32, 'f'), target_random(32, 't');
  seq.AddPacket(foreign.C(kT0, kAck | kPsh, ClientHello(foreign_random)));
  seq.AddPacket(target.C(kT0 + 1 * kMs, kAck | kPsh, ClientHello(target_random)));
  seq.AddPacket(foreign.S(kT0 + 2 * kMs, kAck | kPsh, Encrypted(50)));
  seq.AddPacket(target.S(kT0 + 3 * kMs, kAck | kPsh, Encrypted(50)));
  seq.AddSecret(Secret("CLIENT_RANDOM", target_random, 5, "target"));

  seq.Poll(kT0 + 1000 * kMs);
  EXPECT_EQ(r.Count('P'), 0u);  // the foreign head blocks
  seq.Poll(kT0 + 2999 * kMs);
  EXPECT_EQ(r.Count('P'), 0u);
  // At max_hold the foreign ClientHello is dropped and the connection given up on, so its
  // second packet goes (dropped) too; the target's packets leave in between, in time order.
  seq.Poll(kT0 + 3000 * kMs);
  ASSERT_EQ(r.Count('P'), 2u);
  EXPECT_EQ(r.log[1], "P 1 pid=5 comm=target");
  EXPECT_EQ(r.log[2], "P 3 pid=5 comm=target");
  EXPECT_EQ(seq.counters().packets_dropped_not_target, 2u);
  EXPECT_EQ(seq.counters().released_unsettled, 1u);

  // Given up on: the foreign connection's later packets no longer wait for keys.
  seq.AddPacket(foreign.C(kT0 + 4000 * kMs, kAck | kPsh, Encrypted(10)));
  seq.AddPacket(target.C(kT0 + 4001 * kMs, kAck | kPsh, Encrypted(10)));
  seq.Poll(kT0 + 4201 * kMs);
  EXPECT_EQ(r.Count('P'), 3u);
  EXPECT_EQ(seq.counters().packets_dropped_not_target, 3u);
  EXPECT_EQ(seq.counters().released_unsettled, 1u);
  EXPECT_EQ(lookups, 0);
  EXPECT_EQ(seq.counters().packets_in,
            seq.counters().packets_written + seq.counters().packets_dropped_not_target);
}

// Plain TCP (or TLS begun before the capture) has no secret to name its owner: /proc is asked,
// once per connection, when its first packet is min_hold old (an accepted socket shows up only
// after the handshake). No owner among the targets: dropped. No connection at all: dropped.
TEST(PacketSequencer, TargetsOnlyLooksUpOwnerOfPlainConnectionOnce) {
  Recorder r;
  std::vector<ConnKey> asked;
  Flow mine, theirs;
  mine.server_port = 80;
  theirs.server_port = 80;
  theirs.client_port = 50001;
  ConnKey mine_key = ParsePacket(kLinktypeEthernet, mine.C(0, kSyn).data)->key;
  SequencerOptions o;
  o.targets_only = true;
  o.lookup_owner = [&](const ConnKey& k) -> std::optional<Owner> {
    asked.push_back(k);
    if (k == mine_key) return Owner{10, "curl"};
    return std::nullopt;
  };
  auto seq = r.Make(o);
  seq.AddPacket(mine.C(kT0, kSyn));
  seq.AddPacket(theirs.C(kT0 + 1 * kMs, kSyn));
  Packet arp;
  arp.ts_ns = kT0 + 2 * kMs;
  arp.data = Eth(0x0806, std::string(28, '\1'));
  seq.AddPacket(arp);
  seq.AddPacket(mine.S(kT0 + 3 * kMs, kSyn | kAck));
  seq.AddPacket(mine.C(kT0 + 4 * kMs, kAck | kPsh, "GET / HTTP/1.1\r\n\r\n"));
  seq.AddPacket(theirs.S(kT0 + 5 * kMs, kRst | kAck));

  seq.Poll(kT0 + 199 * kMs);
  EXPECT_TRUE(asked.empty());
  seq.Poll(kT0 + 200 * kMs);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], mine_key);
  seq.Poll(kT0 + 300 * kMs);
  EXPECT_EQ(asked.size(), 2u);
  seq.AddPacket(mine.S(kT0 + 301 * kMs, kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n"));
  seq.Poll(kT0 + 600 * kMs);
  seq.Flush();
  EXPECT_EQ(asked.size(), 2u);  // never twice
  ASSERT_EQ(r.log.size(), 4u);
  EXPECT_EQ(r.log[0], "P 0 pid=10 comm=curl");
  EXPECT_EQ(r.log[3], "P 301 pid=10 comm=curl");
  EXPECT_EQ(seq.counters().packets_dropped_not_target, 3u);  // theirs x2, ARP
}

// All-traffic mode: everything is written; a lookup, when given, only names owners.
TEST(PacketSequencer, AllTrafficWritesEverythingAndNamesKnownOwners) {
  Recorder r;
  Flow plain;
  plain.server_port = 80;
  SequencerOptions o;
  o.lookup_owner = [](const ConnKey&) -> std::optional<Owner> { return Owner{3, "nginx"}; };
  auto seq = r.Make(o);
  seq.AddPacket(plain.C(kT0, kSyn));
  Packet arp;
  arp.ts_ns = kT0 + 1 * kMs;
  arp.data = "\x01\x02";
  seq.AddPacket(arp);
  seq.Poll(kT0 + 201 * kMs);
  ASSERT_EQ(r.log.size(), 2u);
  EXPECT_EQ(r.log[0], "P 0 pid=3 comm=nginx");
  EXPECT_EQ(r.log[1], "P 1 ");
}

// Keys that never come (a program we do not trace, lost secrets) delay a connection max_hold at
// most; its later packets then leave at min_hold, and keys that come late still apply.
TEST(PacketSequencer, MaxHoldReleasesUnkeyedTls) {
  Recorder r;
  auto seq = r.Make();
  Flow f;
  std::string random(32, 'm');
  seq.AddPacket(f.C(kT0, kAck | kPsh, ClientHello(random)));
  seq.AddPacket(f.S(kT0 + 10 * kMs, kAck | kPsh, Encrypted(20)));
  seq.Poll(kT0 + 2999 * kMs);
  EXPECT_EQ(r.Count('P'), 0u);
  // The head leaves unkeyed at max_hold; the connection is given up on, so the packet behind it,
  // past min_hold, goes too.
  seq.Poll(kT0 + 3000 * kMs);
  EXPECT_EQ(r.log, (std::vector<std::string>{"P 0 ", "P 10 "}));
  EXPECT_EQ(seq.counters().released_unsettled, 1u);
  seq.AddPacket(f.C(kT0 + 3100 * kMs, kAck | kPsh, Encrypted(20)));
  seq.AddSecret(Secret("CLIENT_RANDOM", random));
  seq.Poll(kT0 + 3300 * kMs);
  ASSERT_EQ(r.log.size(), 4u);
  EXPECT_EQ(r.log[2][0], 'S');
  EXPECT_EQ(r.log[3], "P 3100 pid=42 comm=server");
  EXPECT_EQ(seq.counters().released_unsettled, 1u);
}

// Packets reach user space from several CPUs slightly out of order; the file is in time order.
// And an unkeyed TLS head holds back a later, settled packet of another connection.
TEST(PacketSequencer, OutOfOrderInsertAndHeadBlocking) {
  Recorder r;
  auto seq = r.Make();
  Flow a, b, tls;
  a.server_port = 80;
  b.server_port = 81;
  tls.client_port = 50009;
  std::string random(32, 'o');
  seq.AddPacket(a.C(kT0 + 3 * kMs, kAck));
  seq.AddPacket(b.C(kT0 + 1 * kMs, kSyn));
  seq.AddPacket(a.C(kT0 + 2 * kMs, kSyn));
  seq.AddPacket(b.C(kT0 + 2 * kMs, kAck));  // same time: after the one that came first
  seq.AddPacket(tls.C(kT0 + 4 * kMs, kAck | kPsh, ClientHello(random)));
  seq.AddPacket(a.C(kT0 + 5 * kMs, kFin | kAck));
  seq.Poll(kT0 + 1000 * kMs);
  ASSERT_EQ(r.log.size(), 4u);
  EXPECT_EQ(r.log[0], "P 1 ");
  EXPECT_EQ(r.log[1], "P 2 ");
  EXPECT_EQ(r.log[2], "P 2 ");
  EXPECT_EQ(r.packets[1].data, a.C(0, kSyn).data);
  EXPECT_EQ(r.packets[2].data, b.C(0, kAck).data);
  EXPECT_EQ(r.log[3], "P 3 ");
  seq.AddSecret(Secret("CLIENT_RANDOM", random));
  seq.Poll(kT0 + 1001 * kMs);
  ASSERT_EQ(r.log.size(), 7u);
  EXPECT_EQ(r.log[4][0], 'S');
  EXPECT_EQ(r.log[5], "P 4 pid=42 comm=server");
  EXPECT_EQ(r.log[6], "P 5 ");
}

// Held bytes are capped: past max_buffered_bytes the head leaves regardless (counted).
TEST(PacketSequencer, MemoryCapReleasesHead) {
  Recorder r;
  Flow f;
  std::string random(32, 'c');
  Packet hello = f.C(kT0, kAck | kPsh, ClientHello(random));
  size_t per_packet;  // what one data packet costs, bookkeeping included
  {
    auto probe = r.Make();
    probe.AddPacket(f.S(kT0, kAck, Encrypted(200)));
    per_packet = probe.buffered_bytes();
    ASSERT_GT(per_packet, 200u);
    ASSERT_LT(hello.data.size() + (per_packet - f.S(kT0, kAck, Encrypted(200)).data.size()), per_packet);
  }
  SequencerOptions o;
  o.max_buffered_bytes = 3 * per_packet + per_packet / 2;  // room for 3 data packets, not 3 + hello
  auto seq = r.Make(o);
  seq.AddPacket(hello);
  for (int i = 1; i <= 5; ++i) seq.AddPacket(f.S(kT0 + i * kMs, kAck, Encrypted(200)));
  EXPECT_LE(seq.buffered_bytes(), o.max_buffered_bytes);
  EXPECT_EQ(seq.buffered_packets(), 3u);
  EXPECT_EQ(seq.counters().released_over_memory, 3u);
  ASSERT_EQ(r.log.size(), 3u);
  EXPECT_EQ(r.log[0], "P 0 ");
  EXPECT_EQ(r.log[2], "P 2 ");
}

// Connection state does not grow with the number of connections seen: closed ones are forgotten
// 2 x max_hold after their last packet, idle ones after idle_conn_ns, and beyond
// max_connections the least recently seen go first.
TEST(PacketSequencer, ConnectionStateIsBounded) {
  Recorder r;
  SequencerOptions o;
  o.max_connections = 100;
  o.idle_conn_ns = 60'000 * kMs;
  auto seq = r.Make(o);
  uint64_t t = kT0;
  for (int i = 0; i < 1000; ++i) {
    Flow f;
    f.client_port = static_cast<uint16_t>(10000 + i);
    seq.AddPacket(f.C(t += kMs, kSyn));
    seq.Poll(t);
    EXPECT_LE(seq.connections(), 100u + 100u / 8 + 201u) << i;  // above the cap: only the ~200 held
  }
  seq.Poll(t + 1000 * kMs);
  EXPECT_LE(seq.connections(), 113u);
  EXPECT_EQ(seq.counters().packets_written, 1000u);

  Flow closed;
  closed.client_port = 9;
  seq.AddPacket(closed.C(t + 2000 * kMs, kFin | kAck));
  seq.AddPacket(closed.S(t + 2001 * kMs, kFin | kAck));
  seq.Poll(t + 2500 * kMs);
  size_t with_closed = seq.connections();
  seq.Poll(t + 2001 * kMs + 6000 * kMs);
  EXPECT_EQ(seq.connections(), with_closed - 1);  // closed: gone after 2 x max_hold
  seq.Poll(t + 70'000 * kMs);
  EXPECT_EQ(seq.connections(), 0u);  // idle: gone after idle_conn_ns

  for (int i = 0; i < 20000; ++i) seq.AddSecret(Secret("CLIENT_RANDOM", std::string(28, 'z') + std::to_string(1000 + i)));
  EXPECT_LE(seq.client_randoms(), o.max_client_randoms);
}

// Flush (at exit) releases everything; in targets-only mode the never-keyed TLS is dropped.
TEST(PacketSequencer, FlushReleasesEverything) {
  Recorder r;
  SequencerOptions o;
  o.targets_only = true;
  o.lookup_owner = [](const ConnKey&) -> std::optional<Owner> { return Owner{1, "init"}; };
  auto seq = r.Make(o);
  Flow tls, plain;
  plain.server_port = 80;
  seq.AddPacket(tls.C(kT0, kAck | kPsh, ClientHello(std::string(32, 'x'))));
  seq.AddPacket(plain.C(kT0 + 1 * kMs, kSyn));
  seq.Flush();
  EXPECT_EQ(seq.buffered_packets(), 0u);
  EXPECT_EQ(r.log, std::vector<std::string>{"P 1 pid=1 comm=init"});
  EXPECT_EQ(seq.counters().packets_dropped_not_target, 1u);
  EXPECT_EQ(seq.counters().released_unsettled, 1u);
}

// Hostile or cut packets: parsing never reads past the captured bytes (run under ASan to see),
// and every packet is accounted for.
TEST(PacketSequencerRobustness, TruncatedAndRandomPacketsNeverCrash) {
  Flow v4, v6, vlan;
  v6.v6 = true;
  vlan.vlans = {1, 2};
  std::vector<std::pair<int, std::string>> samples;
  for (const Flow* f : {&v4, &v6, &vlan}) samples.emplace_back(kLinktypeEthernet, f->C(0, kAck, ClientHello(std::string(32, 'q'))).data);
  samples.emplace_back(kLinktypeRaw, Ipv6(V6(1), V6(2), kProtoTcp, Tcp(1, 2, kAck, ClientHello(std::string(32, 'w'))), true));
  samples.emplace_back(kLinktypeRaw, Ipv4(V4(1, 1, 1, 1), V4(2, 2, 2, 2), kProtoUdp, Udp(1, 2, "abc")));

  for (bool targets_only : {false, true}) {
    Recorder r;
    SequencerOptions o;
    o.targets_only = targets_only;
    o.max_buffered_bytes = 1 << 20;
    o.max_connections = 64;
    o.lookup_owner = [](const ConnKey& k) -> std::optional<Owner> {
      if (k.port_a % 2) return Owner{1, "odd"};
      return std::nullopt;
    };
    auto seq = r.Make(o);
    uint64_t t = kT0;
    auto feed = [&](int linktype, std::string data) {
      Packet p;
      p.ts_ns = t += 1000;
      p.linktype = linktype;
      p.data = std::move(data);
      (void)ParsePacket(p.linktype, p.data);
      if (auto pp = ParsePacket(p.linktype, p.data)) (void)ClientHelloRandom(pp->payload);
      seq.AddPacket(std::move(p));
    };
    // Every prefix of every sample: snaplen cuts anywhere.
    for (auto& [lt, data] : samples)
      for (size_t n = 0; n <= data.size(); ++n) feed(lt, data.substr(0, n));
    // Random bytes, and samples with random bytes changed (lengths, header sizes, next headers).
    std::mt19937 rng(12345);
    for (int i = 0; i < 20000; ++i) {
      std::string data;
      int lt = std::array{kLinktypeEthernet, kLinktypeRaw, kLinktypeIpv4, kLinktypeIpv6, 0}[rng() % 5];
      if (i % 2) {
        data.resize(rng() % 120);
        for (auto& c : data) c = static_cast<char>(rng());
      } else {
        auto& s = samples[rng() % samples.size()];
        lt = s.first;
        data = s.second;
        for (int k = 0, m = 1 + rng() % 4; k < m; ++k) data[rng() % data.size()] = static_cast<char>(rng());
        data.resize(rng() % (data.size() + 1));
      }
      feed(lt, std::move(data));
      if (i % 100 == 0) {
        seq.AddSecret(Secret("CLIENT_RANDOM", std::string(32, 'q')));
        seq.Poll(t + 150 * kMs);
      }
    }
    seq.Flush();
    const auto& c = seq.counters();
    EXPECT_EQ(c.packets_in, c.packets_written + c.packets_dropped_not_target);
    EXPECT_EQ(seq.buffered_bytes(), 0u);
  }
}

}  // namespace
}  // namespace gotlscap::packet

// ---- tcpdump-style additions: rotation, owner details, -Q ----

namespace gotlscap::packet {
namespace {

// A new file (-C) needs the keys of connections still open (or with packets held) and of secrets
// whose ClientHello has not come yet; not those of connections closed and written out.
TEST(PacketSequencerRotation, SecretsForNewFileNameOpenConnectionsOnly) {
  Recorder r;
  auto seq = r.Make();
  const std::string open_random(32, 'o'), closed_random(32, 'c'), early_random(32, 'e');
  Flow open_flow, closed_flow;
  closed_flow.client_port = 50001;
  seq.Poll(kT0);  // the secrets' time of arrival
  seq.AddPacket(open_flow.C(kT0, kAck | kPsh, ClientHello(open_random)));
  seq.AddPacket(closed_flow.C(kT0, kAck | kPsh, ClientHello(closed_random)));
  seq.AddSecret(Secret("CLIENT_RANDOM", open_random));
  seq.AddSecret(Secret("CLIENT_RANDOM", closed_random));
  seq.AddSecret(Secret("CLIENT_RANDOM", early_random));
  seq.AddPacket(closed_flow.C(kT0 + 1 * kMs, kFin | kAck));
  seq.AddPacket(closed_flow.S(kT0 + 2 * kMs, kFin | kAck));
  // Held: every connection's keys are still needed.
  std::string all = seq.SecretsForNewFile();
  EXPECT_NE(all.find(capture::Hex(open_random)), std::string::npos);
  EXPECT_NE(all.find(capture::Hex(closed_random)), std::string::npos);
  EXPECT_NE(all.find(capture::Hex(early_random)), std::string::npos);
  seq.Poll(kT0 + 500 * kMs);  // everything written
  std::string later = seq.SecretsForNewFile();
  EXPECT_NE(later.find("CLIENT_RANDOM " + capture::Hex(open_random)), std::string::npos);
  EXPECT_EQ(later.find(capture::Hex(closed_random)), std::string::npos) << later;
  EXPECT_NE(later.find(capture::Hex(early_random)), std::string::npos);
  EXPECT_EQ(later.back(), '\n');
}

TEST(PacketSequencerOwner, CompleteOwnerFillsTheComment) {
  Recorder r;
  SequencerOptions o;
  int calls = 0;
  o.complete_owner = [&](Owner& w) {
    calls++;
    w.uid = 1000;
    w.ppid = 7;
    w.pcomm = "bash";
    w.cgroup = "/system.slice/docker-" + std::string(64, 'a') + ".scope";
    w.container = std::string(64, 'a');
  };
  auto seq = r.Make(o);
  const std::string random(32, 'r');
  Flow f;
  seq.AddPacket(f.C(kT0, kAck | kPsh, ClientHello(random)));
  auto s = Secret("CLIENT_RANDOM", random, 42, "server");
  s.tid = 43;
  seq.AddSecret(s);
  seq.AddSecret(Secret("CLIENT_RANDOM", random, 42, "server"));  // duplicate: no second lookup
  seq.Flush();
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(r.packets.size(), 1u);
  EXPECT_EQ(r.packets[0].comment, "pid=42 tid=43 comm=server uid=1000 ppid=7 pcomm=bash cgroup=/system.slice/docker-" +
                                      std::string(64, 'a') + ".scope container=" + std::string(64, 'a'));
}

// -Q: a packet of the other direction is looked at (its ClientHello ties the connection to its
// keys and owner) but never written.
TEST(PacketSequencerDirection, PeekedPacketsTieTheConnectionButAreNotWritten) {
  Recorder r;
  SequencerOptions o;
  o.targets_only = true;
  auto seq = r.Make(o);
  const std::string random(32, 'q');
  Flow f;
  Packet hello = f.C(kT0, kAck | kPsh, ClientHello(random));
  hello.write = false;
  seq.AddPacket(std::move(hello));
  seq.AddPacket(f.S(kT0 + 1 * kMs, kAck | kPsh, Encrypted(100)));
  seq.AddSecret(Secret("CLIENT_RANDOM", random));
  seq.Poll(kT0 + 500 * kMs);
  ASSERT_EQ(r.packets.size(), 1u);
  EXPECT_FALSE(r.packets[0].egress);
  EXPECT_EQ(r.packets[0].comment, "pid=42 comm=server");
  EXPECT_EQ(seq.counters().packets_written, 1u);
  EXPECT_EQ(seq.counters().packets_dropped_not_target, 0u);
}

}  // namespace
}  // namespace gotlscap::packet
