// PacketSequencer: orders captured packets and TLS secrets for one pcapng file so that a single
// sequential read decrypts everything, and keeps only the targeted processes' packets.
//
// Wireshark uses a Decryption Secrets Block only for packets AFTER it. A Go program logs its
// secrets a little after the packets that start the handshake have crossed the interface (TLS
// 1.3: ServerHello + EncryptedExtensions can arrive in one packet before the handshake secrets
// are derived). So packets are held, in capture-time order, and secrets are written at once:
//   - AddSecret emits the key log line immediately (deduplicated); it precedes every packet still
//     held, which is every packet of a connection that is not yet keyed.
//   - A packet leaves the head of the queue when it is min_hold old and its connection is
//     settled, or when it is max_hold old (counted: released_unsettled), or when more than
//     max_buffered_bytes are held (counted: released_over_memory). The head blocks the packets
//     behind it, so the output stays in time order.
//   - A TLS connection (ClientHello seen: its client random) is settled once keyed: CLIENT_RANDOM
//     (TLS 1.2), or CLIENT_ and SERVER_TRAFFIC_SECRET_0 (TLS 1.3). Its owner is the process that
//     logged the secrets. Packets before the ClientHello (SYN...) wait with it.
//   - Any other connection (not TLS, or opened before the capture started) is settled at once in
//     all-traffic mode; in targets-only mode once `lookup_owner` has been asked, once, when its
//     first packet is min_hold old (a server's accepted socket only shows in /proc after the
//     handshake). In all-traffic mode the lookup, if given, only names owners for comments.
//   - Targets-only mode drops packets of connections without an owner, packets with no
//     connection (ARP, ICMP...), and TLS connections never keyed (released at max_hold).
// Packets of owned connections get the comment OwnerComment(owner): "pid=<pid> tid=<tid>
// comm=<comm> uid=<uid> ppid=<ppid> pcomm=<parent comm> cgroup=<path> container=<id>", the
// fields that are known (`complete_owner` fills in what a secret does not carry).
//
// Single-threaded; times are passed in (no clock reads), so tests are deterministic. Memory is
// bounded: held bytes by max_buffered_bytes, connection state by idle/close age-out and
// max_connections, per-client-random secret state by secret_retention_ns and max_client_randoms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "capture/secret_event.h"
#include "packet/packet.h"
#include "packet/packet_parse.h"

namespace gotlscap::packet {

struct Owner {
  uint32_t pid = 0;
  std::string comm;
  uint32_t tid = 0;  // the thread that logged the secret; 0: unknown
  std::optional<uint32_t> uid;
  uint32_t ppid = 0;  // 0: unknown
  std::string pcomm;
  std::string cgroup;     // cgroup v2 path ("/user.slice/..."); "" unknown
  std::string container;  // container id found in the cgroup path, "" none
  uint64_t cgroup_id = 0;  // cgroup v2 id, to find `cgroup` when the process is gone from /proc
};

// The packet comment naming `o` (fields that are unknown are left out).
std::string OwnerComment(const Owner& o);

struct SequencerOptions {
  uint64_t min_hold_ns = 200'000'000;    // every packet waits this long (late secrets, CPU reordering)
  uint64_t max_hold_ns = 3'000'000'000;  // no packet waits longer
  size_t max_buffered_bytes = 256u << 20;
  bool targets_only = false;  // -p / -e given: write only the targets' connections
  // The owner of a connection not tied to a secret (see above); nullopt: none of the targets.
  std::function<std::optional<Owner>(const ConnKey&)> lookup_owner;
  // Completes the owner a secret names (pid, tid, comm) with uid, parent, cgroup...; once per
  // client random.
  std::function<void(Owner&)> complete_owner;
  // Connection state is forgotten this long after its last packet once closed (FIN both ways or
  // RST; 0: 2 x max_hold), or idle_conn_ns after it otherwise; and the least recently seen idle
  // ones beyond max_connections.
  uint64_t closed_conn_ns = 0;
  uint64_t idle_conn_ns = 120'000'000'000;
  size_t max_connections = 65536;
  // Secrets by client random (owner, keyed state, seen lines for dedupe), for a secret that comes
  // before its ClientHello is seen; forgotten this long after they were first seen.
  uint64_t secret_retention_ns = 60'000'000'000;
  size_t max_client_randoms = 16384;
};

struct SequencerCounters {
  uint64_t packets_in = 0;
  uint64_t packets_written = 0;
  uint64_t packets_dropped_not_target = 0;  // targets-only: no owner / no connection / never keyed
  uint64_t released_unsettled = 0;          // at max_hold (or Flush) before their connection settled
  uint64_t released_over_memory = 0;        // before their time because max_buffered_bytes was exceeded
  uint64_t secrets_written = 0;
  uint64_t secrets_duplicate = 0;
};

class PacketSequencer {
 public:
  using PacketSink = std::function<void(Packet&&)>;
  // NSS key log text: one or more lines, each ending in '\n' (the writer wraps it in a DSB).
  using SecretsSink = std::function<void(std::string_view keylog)>;

  // The sinks are called from AddPacket, AddSecret, Poll and Flush; they must not call back.
  PacketSequencer(SequencerOptions opts, PacketSink packets, SecretsSink secrets);
  ~PacketSequencer();
  PacketSequencer(const PacketSequencer&) = delete;
  PacketSequencer& operator=(const PacketSequencer&) = delete;

  // Queues a packet (in ts order, wherever it lands). May release the head at once when the
  // memory cap is exceeded.
  void AddPacket(Packet p);
  // Writes the secret's key log line now (unless already written) and records its owner.
  void AddSecret(const capture::SecretEvent& s);
  // Releases what is ready at `now_ns` (Unix epoch, ns); asks owner lookups that are due;
  // forgets old state.
  void Poll(uint64_t now_ns);
  // Releases everything (at exit, after the secrets have been drained).
  void Flush();
  // The key log lines a new file needs (tcpdump -C rotation): those of every TLS connection still
  // open or with packets held, and of secrets not yet tied to a connection. May be called from
  // the packet sink.
  std::string SecretsForNewFile() const;

  const SequencerCounters& counters() const { return counters_; }
  size_t buffered_packets() const { return queue_.size(); }
  size_t buffered_bytes() const { return buffered_bytes_; }
  size_t connections() const { return conns_.size(); }
  size_t client_randoms() const { return randoms_.size(); }

 private:
  enum KeyFlag : uint8_t { kClientRandom = 1, kClientTraffic0 = 2, kServerTraffic0 = 4 };
  struct Conn {
    ConnKey key;
    uint64_t first_ts = 0, last_ts = 0;
    size_t held = 0;  // packets of it in the queue: state is never forgotten while > 0
    bool tls = false;  // ClientHello seen
    std::string client_random;
    uint8_t key_flags = 0;
    bool given_up = false;  // a packet left at max_hold unkeyed: stop waiting for keys
    bool lookup_done = false;
    std::optional<Owner> owner;
    std::string comment;
    std::vector<std::string> lines;  // key log lines of its client random (for a new file)
    uint8_t payloads_seen[2] = {0, 0};  // payload segments looked at for a ClientHello, per direction
    bool fin[2] = {false, false};
    bool rst = false;
  };
  struct RandomState {
    std::optional<Owner> owner;
    uint8_t key_flags = 0;
    std::vector<std::string> lines;  // written, for dedupe
  };
  struct Held {
    Packet packet;
    Conn* conn = nullptr;  // nullptr: no connection (stable: unordered_map nodes; held pins it)
    size_t bytes = 0;
  };
  enum class Why { kReady, kMaxHold, kMemory, kFlush };
  using ConnMap = std::unordered_map<ConnKey, Conn, ConnKeyHash>;

  Conn* Track(const ParsedPacket& pp, const Packet& p);
  void SeeClientHello(Conn& c, const std::string& random);
  void SetOwner(Conn& c, const Owner& o);
  void EnsureLookup(Conn& c);
  bool Settled(const Conn& c) const;
  void Release(Why why);
  void ReleaseReady(bool flush);
  void RunDueLookups();
  void Sweep();
  void EvictIdleConns(size_t target);
  void EraseConn(ConnMap::iterator it);

  SequencerOptions opts_;
  PacketSink packet_sink_;
  SecretsSink secrets_sink_;
  SequencerCounters counters_;

  std::deque<Held> queue_;  // sorted by packet.ts_ns
  size_t buffered_bytes_ = 0;
  ConnMap conns_;
  std::unordered_map<std::string, ConnKey> conn_by_random_;
  std::unordered_map<std::string, RandomState> randoms_;
  std::deque<std::pair<uint64_t, std::string>> random_order_;  // (first seen, random), oldest first
  // Connections whose owner lookup is due at first-packet ts + min_hold: (ts, key), min-heap.
  using Due = std::pair<uint64_t, ConnKey>;
  struct DueLater {
    bool operator()(const Due& x, const Due& y) const { return x.first > y.first; }
  };
  std::priority_queue<Due, std::vector<Due>, DueLater> lookups_;
  uint64_t now_ = 0;         // the latest Poll time
  uint64_t next_sweep_ = 0;  // Poll time of the next age-out pass
  size_t conn_cap_trigger_ = 0;  // connection count at which the cap is enforced next
};

}  // namespace gotlscap::packet
