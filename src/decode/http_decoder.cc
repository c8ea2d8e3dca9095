#include "decode/http_decoder.h"

#include <algorithm>
#include <cstring>

namespace gotlscap::decode {
namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMaxHeld = 1u << 20;  // bytes held per direction while the protocol is unknown

enum class Verdict { kWait, kHttp1Request, kHttp1Response, kHttp2Client, kHttp2Frames, kOther };

// Judges a direction's first bytes.
Verdict Sniff(std::string_view b) {
  const size_t n = std::min(b.size(), kH2Preface.size());
  if (b.substr(0, n) == kH2Preface.substr(0, n)) return n == kH2Preface.size() ? Verdict::kHttp2Client : Verdict::kWait;
  // An HTTP/2 server speaks first with a SETTINGS frame (type 4 on stream 0), before it has read
  // the client's preface: wait for the other direction to tell.
  if (b.size() >= 9 && b[3] == 4 && b[5] == 0 && b[6] == 0 && b[7] == 0 && b[8] == 0) return Verdict::kHttp2Frames;
  static const char* kRequests[] = {"GET ",     "POST ",   "PUT ",   "HEAD ",  "DELETE ",
                                    "OPTIONS ", "PATCH ",  "TRACE ", "CONNECT "};
  auto starts = [&](std::string_view start) {
    const size_t m = std::min(b.size(), start.size());
    if (b.substr(0, m) != start.substr(0, m)) return Verdict::kOther;
    return m == start.size() ? Verdict::kHttp1Request : Verdict::kWait;
  };
  for (const char* r : kRequests)
    if (Verdict v = starts(r); v != Verdict::kOther) return v;
  if (Verdict v = starts("HTTP/1."); v != Verdict::kOther) return v == Verdict::kWait ? v : Verdict::kHttp1Response;
  return b.size() < 9 ? Verdict::kWait : Verdict::kOther;
}

}  // namespace

struct HttpDecoder::Conn {
  // Who the connection belongs to, for the messages. Declared before `decoder`, which is
  // destroyed first and may still emit a message (a body that ran to the end of the connection).
  uint32_t pid = 0;
  std::string comm;
  capture::Connection conn;
  std::unique_ptr<ConnectionDecoder> decoder;
  bool undecidable = false;
  std::string early[2];  // bytes seen before the protocol was known, per flow
};

HttpDecoder::HttpDecoder(MessageSink on_message, NoticeSink on_notice, DecoderLimits limits, size_t max_connections)
    : on_message_(std::move(on_message)),
      on_notice_(std::move(on_notice)),
      limits_(limits),
      max_connections_(max_connections) {}

HttpDecoder::~HttpDecoder() = default;

HttpDecoder::Conn& HttpDecoder::Lookup(const capture::DataEvent& ev) {
  const auto key = std::make_pair(ev.pid, ev.conn.id);
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.end(), lru_, it->second);  // most recently used last
    return *it->second->second;
  }
  if (lru_.size() >= max_connections_) {
    index_.erase(lru_.front().first);
    lru_.pop_front();
  }
  lru_.emplace_back(key, std::make_unique<Conn>());
  index_[key] = std::prev(lru_.end());
  return *lru_.back().second;
}

bool HttpDecoder::Close(uint32_t pid, uint64_t conn_id) {
  auto it = index_.find(std::make_pair(pid, conn_id));
  if (it == index_.end()) return false;
  // Unlink first, then destroy: the decoder's destructor emits through the sinks (which may
  // look at this decoder's counters) and must find the connection already gone.
  std::unique_ptr<Conn> conn = std::move(it->second->second);
  lru_.erase(it->second);
  index_.erase(it);
  closed_++;
  conn.reset();
  return true;
}

void HttpDecoder::ForgetProcess(uint32_t pid) {
  std::vector<uint64_t> ids;
  for (auto it = index_.lower_bound({pid, 0}); it != index_.end() && it->first.first == pid; ++it)
    ids.push_back(it->first.second);
  for (uint64_t id : ids) Close(pid, id);
}

bool HttpDecoder::Feed(const capture::DataEvent& ev) {
  if (ev.closed()) {
    Close(ev.pid, ev.conn.id);
    return false;
  }
  Conn& c = Lookup(ev);
  if (c.undecidable) return false;
  const Flow flow = ev.dir == capture::Direction::kWrite ? Flow::kOut : Flow::kIn;
  c.pid = ev.pid;
  c.comm = ev.comm;
  c.conn = ev.conn;
  // Bytes of the call that were not captured (--max-payload, or beyond the per-call limit).
  const uint64_t uncaptured = ev.len > ev.payload.size() ? ev.len - ev.payload.size() : 0;
  if (!c.decoder) {
    // Hold the bytes of both directions until one of them names the protocol.
    const int fi = flow == Flow::kOut ? 0 : 1;
    if (c.early[fi].size() + ev.payload.size() > kMaxHeld) {
      c.undecidable = true;
      return false;
    }
    c.early[fi] += ev.payload;
    const Verdict v[2] = {Sniff(c.early[0]), Sniff(c.early[1])};
    auto any = [&](Verdict x) { return v[0] == x || v[1] == x; };
    const bool h2 = any(Verdict::kHttp2Client);
    const bool h1 = any(Verdict::kHttp1Request) || any(Verdict::kHttp1Response);
    if (!h2 && !h1) {
      // (Held bytes followed by bytes not captured could not be replayed in step: raw too.)
      if (any(Verdict::kOther) || uncaptured > 0) {
        // A connection first seen mid-stream, or another protocol: it stays raw.
        c.undecidable = true;
        return false;
      }
      return false;  // still waiting: the caller shows the raw bytes meanwhile
    }
    DecoderSink sink;
    Conn* owner = &c;
    sink.message = [this, owner](HttpMessage&& m) {
      messages_++;
      on_message_(DecodedMessage{std::move(m), owner->pid, owner->comm, owner->conn});
    };
    sink.notice = [this, owner](std::string_view n) {
      notices_++;
      on_notice_(owner->pid, owner->comm, owner->conn, n);
    };
    c.decoder = h2 ? MakeHttp2Decoder(std::move(sink), limits_) : MakeHttp1Decoder(std::move(sink), limits_);
    // Replay the held bytes, the client's direction first (requests before their responses).
    const int client = (v[0] == Verdict::kHttp2Client || v[0] == Verdict::kHttp1Request) ? 0 : 1;
    for (int i : {client, 1 - client})
      if (!c.early[i].empty()) c.decoder->Feed(i == 0 ? Flow::kOut : Flow::kIn, c.early[i], ev.ts_ns);
    c.early[0] = std::string();
    c.early[1] = std::string();
    if (uncaptured > 0) c.decoder->Skip(flow, uncaptured, ev.ts_ns);
    if (h2 && on_http2_) on_http2_(ev.pid, ev.conn.id);
    return true;
  }
  c.decoder->Feed(flow, ev.payload, ev.ts_ns);
  if (uncaptured > 0) c.decoder->Skip(flow, uncaptured, ev.ts_ns);
  return true;
}

}  // namespace gotlscap::decode
