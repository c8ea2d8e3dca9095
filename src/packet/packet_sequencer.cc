#include "packet/packet_sequencer.h"

#include <algorithm>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

namespace gotlscap::packet {
namespace {

// Payload segments per direction examined for a ClientHello. More than one: the server's first
// segment can reach us before the client's (several CPUs), and a ClientHello may follow a
// plaintext preamble (HTTP CONNECT, STARTTLS).
constexpr uint8_t kHelloProbeSegments = 4;
// A client random's written lines kept for dedupe (KeyUpdates add lines on long connections).
constexpr size_t kMaxLinesPerRandom = 64;
constexpr uint64_t kSweepIntervalNs = 1'000'000'000;

}  // namespace

PacketSequencer::PacketSequencer(SequencerOptions opts, PacketSink packets, SecretsSink secrets)
    : opts_(std::move(opts)), packet_sink_(std::move(packets)), secrets_sink_(std::move(secrets)) {
  if (opts_.max_hold_ns < opts_.min_hold_ns) opts_.max_hold_ns = opts_.min_hold_ns;
  if (opts_.closed_conn_ns == 0) opts_.closed_conn_ns = 2 * opts_.max_hold_ns;
  if (opts_.max_connections == 0) opts_.max_connections = 1;
}

PacketSequencer::~PacketSequencer() = default;

void PacketSequencer::AddPacket(Packet p) {
  ++counters_.packets_in;
  Conn* c = nullptr;
  if (auto pp = ParsePacket(p.linktype, p.data)) c = Track(*pp, p);

  size_t bytes = p.data.size() + sizeof(Held);
  uint64_t ts = p.ts_ns;
  Held h{std::move(p), c, bytes};
  // Packets come from several CPUs slightly out of order: keep the queue sorted by time (after
  // packets of the same time, so equal stamps keep their arrival order).
  if (queue_.empty() || queue_.back().packet.ts_ns <= ts) {
    queue_.push_back(std::move(h));
  } else {
    auto pos = std::upper_bound(queue_.begin(), queue_.end(), ts,
                                [](uint64_t t, const Held& x) { return t < x.packet.ts_ns; });
    queue_.insert(pos, std::move(h));
  }
  if (c) ++c->held;
  buffered_bytes_ += bytes;

  // After queuing: the new packet pins its connection, which must not be evicted.
  if (conns_.size() > opts_.max_connections && conns_.size() >= conn_cap_trigger_) {
    EvictIdleConns(opts_.max_connections - opts_.max_connections / 8);
    // If held packets pin them all, try again only after a further eighth: no scan per packet.
    conn_cap_trigger_ = conns_.size() + std::max<size_t>(1, opts_.max_connections / 8);
  }
  if (buffered_bytes_ > opts_.max_buffered_bytes) ReleaseReady(false);
}

PacketSequencer::Conn* PacketSequencer::Track(const ParsedPacket& pp, const Packet& p) {
  auto it = conns_.find(pp.key);
  if (it != conns_.end()) {
    Conn& old = it->second;
    // Port reuse: a bare SYN on a closed connection with nothing held starts a new connection.
    bool closed = old.rst || (old.fin[0] && old.fin[1]);
    if (closed && old.held == 0 && pp.key.protocol == kProtoTcp &&
        (pp.tcp_flags & (tcp_flags::kSyn | tcp_flags::kAck)) == tcp_flags::kSyn) {
      EraseConn(it);
      it = conns_.end();
    }
  }
  if (it == conns_.end()) {
    it = conns_.try_emplace(pp.key).first;
    Conn& c = it->second;
    c.key = pp.key;
    c.first_ts = c.last_ts = p.ts_ns;
    if (opts_.lookup_owner) lookups_.emplace(p.ts_ns + opts_.min_hold_ns, pp.key);
  }
  Conn& c = it->second;
  c.first_ts = std::min(c.first_ts, p.ts_ns);
  c.last_ts = std::max(c.last_ts, p.ts_ns);

  if (pp.key.protocol == kProtoTcp) {
    int dir = pp.from_a ? 0 : 1;
    if (pp.tcp_flags & tcp_flags::kFin) c.fin[dir] = true;
    if (pp.tcp_flags & tcp_flags::kRst) c.rst = true;
    if (!pp.payload.empty() && !c.tls && c.payloads_seen[dir] < kHelloProbeSegments) {
      ++c.payloads_seen[dir];
      if (auto random = ClientHelloRandom(pp.payload)) SeeClientHello(c, *random);
    }
  }
  return &c;
}

void PacketSequencer::SeeClientHello(Conn& c, const std::string& random) {
  c.tls = true;
  c.client_random = random;
  conn_by_random_[random] = c.key;
  // The secrets may have come first (they travel in another ring buffer).
  if (auto r = randoms_.find(random); r != randoms_.end()) {
    c.key_flags |= r->second.key_flags;
    c.lines = r->second.lines;
    if (r->second.owner) SetOwner(c, *r->second.owner);
  }
}

void PacketSequencer::SetOwner(Conn& c, const Owner& o) {
  if (c.owner) return;  // the first owner named stays (loopback: both ends log the same secrets)
  c.owner = o;
  c.comment = OwnerComment(o);
}

std::string OwnerComment(const Owner& o) {
  std::string s = fmt::format("pid={}", o.pid);
  if (o.tid != 0) s += fmt::format(" tid={}", o.tid);
  s += fmt::format(" comm={}", o.comm);
  if (o.uid) s += fmt::format(" uid={}", *o.uid);
  if (o.ppid != 0) s += fmt::format(" ppid={} pcomm={}", o.ppid, o.pcomm);
  if (!o.cgroup.empty()) s += fmt::format(" cgroup={}", o.cgroup);
  if (!o.container.empty()) s += fmt::format(" container={}", o.container);
  return s;
}

void PacketSequencer::AddSecret(const capture::SecretEvent& s) {
  if (s.label.empty() || s.client_random.empty()) return;  // not a key log line
  uint64_t t = std::max(now_, s.ts_ns);
  auto [it, inserted] = randoms_.try_emplace(s.client_random);
  if (inserted) random_order_.emplace_back(t, s.client_random);
  RandomState& r = it->second;

  std::string line = capture::KeyLogLine(s);
  Conn* conn = nullptr;
  if (auto ci = conn_by_random_.find(s.client_random); ci != conn_by_random_.end()) {
    if (auto c = conns_.find(ci->second); c != conns_.end() && c->second.client_random == s.client_random)
      conn = &c->second;
  }
  if (std::find(r.lines.begin(), r.lines.end(), line) != r.lines.end()) {
    ++counters_.secrets_duplicate;
  } else {
    if (conn && conn->lines.size() < kMaxLinesPerRandom &&
        std::find(conn->lines.begin(), conn->lines.end(), line) == conn->lines.end())
      conn->lines.push_back(line);
    // Now, not later: this DSB must precede every packet still held, the ones that need it.
    line += '\n';
    secrets_sink_(line);
    ++counters_.secrets_written;
    line.pop_back();
    if (r.lines.size() < kMaxLinesPerRandom) r.lines.push_back(std::move(line));
  }

  uint8_t flag = s.label == "CLIENT_RANDOM"             ? kClientRandom
                 : s.label == "CLIENT_TRAFFIC_SECRET_0" ? kClientTraffic0
                 : s.label == "SERVER_TRAFFIC_SECRET_0" ? kServerTraffic0
                                                        : 0;
  r.key_flags |= flag;
  if (!r.owner) {
    Owner owner{s.pid, s.comm};
    owner.tid = s.tid;
    owner.uid = s.uid;  // from the kernel: right even if the process has exited since
    owner.ppid = s.ppid;
    owner.cgroup_id = s.cgroup_id;
    if (opts_.complete_owner) opts_.complete_owner(owner);
    r.owner = std::move(owner);
  }
  if (conn) {
    conn->key_flags |= flag;
    SetOwner(*conn, *r.owner);
  }

  // Bounded: oldest client randoms go first (their connections keep their own copy of the state).
  while (!random_order_.empty() && (randoms_.size() > opts_.max_client_randoms ||
                                    random_order_.front().first + opts_.secret_retention_ns <= t)) {
    randoms_.erase(random_order_.front().second);
    random_order_.pop_front();
  }
}

void PacketSequencer::EnsureLookup(Conn& c) {
  // TLS connections are owned by whoever logs their secrets; the lookup is asked once.
  if (c.lookup_done || c.tls) return;
  c.lookup_done = true;
  if (!opts_.lookup_owner) return;
  if (auto o = opts_.lookup_owner(c.key)) SetOwner(c, *o);
}

bool PacketSequencer::Settled(const Conn& c) const {
  if (c.tls) {
    bool keyed = (c.key_flags & kClientRandom) ||
                 (c.key_flags & (kClientTraffic0 | kServerTraffic0)) == (kClientTraffic0 | kServerTraffic0);
    return keyed || c.given_up;
  }
  return !opts_.targets_only || c.lookup_done;
}

void PacketSequencer::Release(Why why) {
  Held& h = queue_.front();
  Conn* c = h.conn;
  bool settled = !c || Settled(*c);
  if (!settled && (why == Why::kMaxHold || why == Why::kFlush)) {
    ++counters_.released_unsettled;
    // Its keys are not coming (or its owner never logged them): the connection's later packets
    // stop waiting for them. Keys that still come are written at once and apply from there.
    if (c && c->tls && why == Why::kMaxHold) c->given_up = true;
  }
  if (why == Why::kMemory) ++counters_.released_over_memory;

  bool write = !opts_.targets_only || (c && c->owner);
  if (!h.packet.write) {
    // Looked at for its ClientHello only (-Q): neither written nor counted.
  } else if (write) {
    if (c && c->owner) h.packet.comment = c->comment;
    ++counters_.packets_written;
    packet_sink_(std::move(h.packet));
  } else {
    ++counters_.packets_dropped_not_target;
  }
  if (c) --c->held;
  buffered_bytes_ -= h.bytes;
  queue_.pop_front();
}

void PacketSequencer::ReleaseReady(bool flush) {
  while (!queue_.empty()) {
    Held& h = queue_.front();
    uint64_t age = now_ > h.packet.ts_ns ? now_ - h.packet.ts_ns : 0;
    bool over = buffered_bytes_ > opts_.max_buffered_bytes;
    Conn* c = h.conn;
    // The lookup is due at min_hold; under memory pressure (targets-only) it is asked early
    // rather than dropping a target's packet unasked.
    if (c && (age >= opts_.min_hold_ns || flush || (over && opts_.targets_only))) EnsureLookup(*c);
    bool settled = !c || Settled(*c);
    if (settled && age >= opts_.min_hold_ns) Release(Why::kReady);
    else if (flush) Release(Why::kFlush);
    else if (age >= opts_.max_hold_ns) Release(Why::kMaxHold);
    else if (over) Release(Why::kMemory);
    else break;  // the head blocks: the output stays in time order
  }
}

void PacketSequencer::RunDueLookups() {
  while (!lookups_.empty() && lookups_.top().first <= now_) {
    ConnKey key = lookups_.top().second;
    lookups_.pop();
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    // A connection re-created under the same key has its own, later entry.
    if (it->second.first_ts + opts_.min_hold_ns > now_) continue;
    EnsureLookup(it->second);
  }
}

void PacketSequencer::Poll(uint64_t now_ns) {
  now_ = std::max(now_, now_ns);
  // Lookups first: a connection's first packet may sit behind a blocked head, but its socket
  // should be looked for while it still exists.
  RunDueLookups();
  ReleaseReady(false);
  if (now_ >= next_sweep_) {
    Sweep();
    next_sweep_ = now_ + kSweepIntervalNs;
  }
}

void PacketSequencer::Flush() {
  // Held packets' connections get their lookup as they come to the head.
  ReleaseReady(true);
}

std::string PacketSequencer::SecretsForNewFile() const {
  std::string out;
  std::unordered_set<std::string> done;
  for (const auto& [key, c] : conns_) {
    if (c.client_random.empty()) continue;
    bool closed = c.rst || (c.fin[0] && c.fin[1]);
    if (closed && c.held == 0) continue;
    if (!done.insert(c.client_random).second) continue;
    for (const auto& l : c.lines) out += l + '\n';
  }
  // Secrets whose ClientHello has not been seen yet (their packets may come).
  for (const auto& [random, r] : randoms_) {
    if (done.count(random) || conn_by_random_.count(random)) continue;
    for (const auto& l : r.lines) out += l + '\n';
  }
  return out;
}

void PacketSequencer::Sweep() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    const Conn& c = it->second;
    uint64_t idle = now_ > c.last_ts ? now_ - c.last_ts : 0;
    bool closed = c.rst || (c.fin[0] && c.fin[1]);
    if (c.held == 0 && idle >= (closed ? opts_.closed_conn_ns : opts_.idle_conn_ns)) {
      auto next = std::next(it);
      EraseConn(it);
      it = next;
    } else {
      ++it;
    }
  }
  // Over the cap because held packets pinned their connections when they came: not any more.
  if (conns_.size() > opts_.max_connections) {
    EvictIdleConns(opts_.max_connections - opts_.max_connections / 8);
    conn_cap_trigger_ = conns_.size() + std::max<size_t>(1, opts_.max_connections / 8);
  }
  while (!random_order_.empty() && random_order_.front().first + opts_.secret_retention_ns <= now_) {
    randoms_.erase(random_order_.front().second);
    random_order_.pop_front();
  }
}

void PacketSequencer::EvictIdleConns(size_t target) {
  if (conns_.size() <= target) return;
  std::vector<ConnMap::iterator> idle;
  for (auto it = conns_.begin(); it != conns_.end(); ++it)
    if (it->second.held == 0) idle.push_back(it);
  size_t n = std::min(idle.size(), conns_.size() - target);
  std::nth_element(idle.begin(), idle.begin() + n, idle.end(),
                   [](auto x, auto y) { return x->second.last_ts < y->second.last_ts; });
  for (size_t i = 0; i < n; ++i) EraseConn(idle[i]);
}

void PacketSequencer::EraseConn(ConnMap::iterator it) {
  const Conn& c = it->second;
  if (!c.client_random.empty()) {
    if (auto r = conn_by_random_.find(c.client_random); r != conn_by_random_.end() && r->second == c.key)
      conn_by_random_.erase(r);
  }
  conns_.erase(it);
}

}  // namespace gotlscap::packet
