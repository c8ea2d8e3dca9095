// HTTP/2 connection decoder: frames, HPACK (nghttp2's inflater), streams → HttpMessages.
// See http2_decoder.h for the design.
#include "decode/http2_decoder.h"

#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>

#include "decode/content_decoding.h"
#include "decode/http_message.h"

namespace gotlscap::decode {
namespace http2 {

std::string ErrorCodeName(uint32_t code) {
  static constexpr const char* kNames[] = {
      "NO_ERROR",        "PROTOCOL_ERROR",    "INTERNAL_ERROR",      "FLOW_CONTROL_ERROR",
      "SETTINGS_TIMEOUT", "STREAM_CLOSED",    "FRAME_SIZE_ERROR",    "REFUSED_STREAM",
      "CANCEL",          "COMPRESSION_ERROR", "CONNECT_ERROR",       "ENHANCE_YOUR_CALM",
      "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};
  if (code < std::size(kNames)) return kNames[code];
  return fmt::format("0x{:x}", code);
}

}  // namespace http2

namespace {

using namespace http2;

enum class Role { kUnknown, kClient, kServer };

struct FrameHeader {
  uint32_t len = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  bool reserved = false;
};

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

FrameHeader ParseFrameHeader(const uint8_t* p) {
  FrameHeader h;
  h.len = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
  h.type = p[3];
  h.flags = p[4];
  h.reserved = (p[5] & 0x80) != 0;
  h.stream = Be32(p + 5) & 0x7fffffffu;
  return h;
}

// Why a frame header is invalid for its type (RFC 9113 section 6), or nullptr. Unknown types are
// valid (they are ignored).
const char* FrameError(const FrameHeader& h) {
  switch (h.type) {
    case kData:
    case kHeaders:
    case kContinuation:
      if (h.stream == 0) return "DATA/HEADERS/CONTINUATION frame on stream 0";
      break;
    case kPriority:
      if (h.stream == 0) return "PRIORITY frame on stream 0";
      if (h.len != 5) return "PRIORITY frame length is not 5";
      break;
    case kRstStream:
      if (h.stream == 0) return "RST_STREAM frame on stream 0";
      if (h.len != 4) return "RST_STREAM frame length is not 4";
      break;
    case kSettings:
      if (h.stream != 0) return "SETTINGS frame on a stream";
      if (h.len % 6 != 0) return "SETTINGS frame length is not a multiple of 6";
      if ((h.flags & kFlagAck) && h.len != 0) return "SETTINGS ACK with a payload";
      break;
    case kPushPromise:
      if (h.stream == 0) return "PUSH_PROMISE frame on stream 0";
      if (h.len < 4) return "PUSH_PROMISE frame too short";
      break;
    case kPing:
      if (h.stream != 0) return "PING frame on a stream";
      if (h.len != 8) return "PING frame length is not 8";
      break;
    case kGoAway:
      if (h.stream != 0) return "GOAWAY frame on a stream";
      if (h.len < 8) return "GOAWAY frame too short";
      break;
    case kWindowUpdate:
      if (h.len != 4) return "WINDOW_UPDATE frame length is not 4";
      break;
    default:
      break;
  }
  return nullptr;
}

// A stricter test used to find a frame boundary in a connection picked up mid-stream: a known
// type with only its defined flags, the reserved bit clear, a modest length.
bool PlausibleForResync(const FrameHeader& h) {
  if (h.type > kContinuation || h.reserved || h.len > kMaxResyncFrameLen) return false;
  static constexpr uint8_t kAllowedFlags[] = {
      kFlagEndStream | kFlagPadded,                                     // DATA
      kFlagEndStream | kFlagEndHeaders | kFlagPadded | kFlagPriority,  // HEADERS
      0,                                                                // PRIORITY
      0,                                                                // RST_STREAM
      kFlagAck,                                                         // SETTINGS
      kFlagEndHeaders | kFlagPadded,                                    // PUSH_PROMISE
      kFlagAck,                                                         // PING
      0,                                                                // GOAWAY
      0,                                                                // WINDOW_UPDATE
      kFlagEndHeaders,                                                  // CONTINUATION
  };
  if (h.flags & ~kAllowedFlags[h.type]) return false;
  if (h.type == kSettings && h.len > 6 * 64) return false;
  if (h.type == kGoAway && h.len > 64 * 1024) return false;
  // Stream ids this high take years of streams on one connection; zero-filled bytes do not.
  if (h.stream > (1u << 24)) return false;
  // Frames that carry nothing are sent, but not these: an empty DATA frame ends a stream, and a
  // header block is never empty.
  if (h.type == kData && h.len == 0 && !(h.flags & kFlagEndStream)) return false;
  if ((h.type == kHeaders || h.type == kContinuation || h.type == kPushPromise) && h.len == 0) return false;
  return FrameError(h) == nullptr;
}

// Payload checks for a resync candidate whose payload is at hand.
bool PayloadPlausible(const FrameHeader& h, const uint8_t* p) {
  switch (h.type) {
    case kData:
    case kHeaders:
    case kPushPromise: {
      size_t need = 0;
      if (h.flags & kFlagPadded) need += 1 + p[0];
      if (h.type == kHeaders && (h.flags & kFlagPriority)) need += 5;
      if (h.type == kPushPromise) need += 4;
      return need <= h.len;
    }
    case kPriority:
      return (Be32(p) & 0x7fffffffu) != h.stream;
    case kRstStream:
      return Be32(p) <= 0xd;
    case kGoAway:
      return Be32(p + 4) <= 0xd;
    case kWindowUpdate:
      return Be32(p) != 0 && Be32(p) <= 0x7fffffffu;
    case kSettings:
      for (uint32_t i = 0; i + 6 <= h.len; i += 6) {
        const uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
        const uint32_t v = Be32(p + i + 2);
        if (id == 0 || id > 9 || id == 7) return false;
        if (id == 0x2 && v > 1) return false;
        if (id == 0x4 && v > 0x7fffffffu) return false;
        if (id == 0x5 && (v < 16384 || v > kMaxFrameLen)) return false;
      }
      return true;
    default:
      return true;
  }
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// Printable, bounded rendering of peer-supplied text for notices.
std::string Printable(std::string_view s, size_t max = 80) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

class Http2Decoder final : public ConnectionDecoder {
 public:
  Http2Decoder(DecoderSink sink, DecoderLimits limits)
      : sink_(std::move(sink)),
        limits_(limits),
        body_budget_(std::max<uint64_t>(limits.max_body * 4, uint64_t{64} << 20)) {
    dirs_[0].flow = Flow::kOut;
    dirs_[1].flow = Flow::kIn;
    for (Dir& d : dirs_) {
      if (nghttp2_hd_inflate_new(&d.inflater) != 0) {
        d.inflater = nullptr;
        d.hpack_off = true;
      }
    }
  }
  ~Http2Decoder() override {
    for (Dir& d : dirs_)
      if (d.inflater) nghttp2_hd_inflate_del(d.inflater);
  }

  const char* protocol() const override { return "HTTP/2"; }

  void Feed(Flow flow, std::string_view bytes, uint64_t ts_ns) override {
    ts_ = ts_ns;
    Dir& d = dirs_[Index(flow)];
    while (!bytes.empty()) {
      if (d.state == State::kDead) return;
      Compact(d);
      const uint64_t unconsumed = d.buf.size();
      const uint64_t room = limits_.max_buffered > unconsumed ? limits_.max_buffered - unconsumed : 0;
      if (room == 0) {
        Notice(fmt::format("HTTP/2: more than {} bytes {} could not be decoded; giving up on that direction",
                           limits_.max_buffered, Sent(d)));
        Kill(d);
        return;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), room));
      d.buf.append(bytes.data(), n);
      bytes.remove_prefix(n);
      Process(d);
    }
    Compact(d);
  }

  void Skip(Flow flow, uint64_t n, uint64_t ts_ns) override {
    ts_ = ts_ns;
    Dir& d = dirs_[Index(flow)];
    if (d.state == State::kDead || n == 0) return;
    Compact(d);
    // Inside a DATA frame's payload (what a prefix cap leaves out of a body): counted, and the
    // frame's length says where the next frame begins.
    if (d.state == State::kFrames && d.in_frame && d.fh.type == kData && d.pad_known && Avail(d) == 0) {
      const FrameHeader h = d.fh;
      const uint64_t k = std::min<uint64_t>(n, d.data_left);
      if (k > 0) OnDataSkipped(d, h.stream, k);
      d.data_left -= static_cast<uint32_t>(k);
      n -= k;
      const uint64_t pad = std::min<uint64_t>(n, d.data_left == 0 ? d.pad_left : 0);
      d.pad_left -= static_cast<uint32_t>(pad);
      n -= pad;
      d.offset += k + pad;
      if (d.data_left == 0 && d.pad_left == 0) {
        d.in_frame = false;
        if (h.flags & kFlagEndStream) OnEndStream(d, h.stream);
      }
    } else if (d.state == State::kFrames && d.skip_left > 0 && Avail(d) == 0) {  // an ignored frame
      const uint64_t k = std::min(n, d.skip_left);
      d.skip_left -= k;
      n -= k;
      d.offset += k;
      if (d.skip_left == 0) d.in_frame = false;
    }
    if (n == 0) return;
    // A frame header or a header block was not captured: find the next frame boundary in what
    // comes next (HPACK is out of step once a header block may have been lost).
    const bool lose_hpack = (d.in_block || d.hpack_used) && !d.hpack_off;
    if (d.state != State::kSearch)
      Notice(fmt::format("HTTP/2: {} bytes {} were not captured (--max-payload) and hold frame headers; looking "
                         "for the next frame{}",
                         n, Sent(d), lose_hpack ? "; their headers are not decoded from here on" : ""));
    d.buf.clear();
    d.pos = 0;
    d.offset += n;
    LoseFraming(d);
  }

 private:
  enum class State { kPreface, kSearch, kFrames, kDead };
  enum class Missing { kNo, kUndecodable, kBeforeCapture };

  struct Block {
    uint32_t stream = 0;
    bool push = false;
    uint32_t promised = 0;
    bool end_stream = false;
    bool decodable = true;  // HPACK was on when the block started and has not failed in it
    bool oversize = false;
    uint64_t size = 0;      // RFC 7541 size of the kept fields
    std::vector<std::pair<std::string, std::string>> headers;
  };

  struct Dir {
    Flow flow = Flow::kOut;
    Role role = Role::kUnknown;
    State state = State::kPreface;
    std::string buf;  // unconsumed bytes start at pos
    size_t pos = 0;
    uint64_t offset = 0;     // bytes of the direction consumed so far
    uint64_t discarded = 0;  // bytes skipped while looking for a frame boundary (this search)
    int errors = 0;
    // Frame boundary search: absolute offsets of undecided candidates, next offset to examine.
    std::vector<uint64_t> undecided;
    uint64_t scan = 0;
    // The frame being read.
    bool in_frame = false;
    FrameHeader fh;
    bool pad_known = false;
    uint32_t data_left = 0, pad_left = 0;
    uint64_t skip_left = 0;  // payload being skipped
    // Header block (HEADERS / PUSH_PROMISE + CONTINUATION) being read.
    bool in_block = false;
    Block block;
    nghttp2_hd_inflater* inflater = nullptr;
    bool hpack_off = false;   // this direction's headers are not decoded any more
    bool hpack_used = false;  // the inflater has seen at least one header block fragment
    uint32_t table_limit = 4096;                 // SETTINGS_HEADER_TABLE_SIZE applied to `inflater`
    std::optional<uint32_t> pending_table_size;  // to apply when the current block ends
    // SETTINGS this direction sent that the other side has not acknowledged yet
    // (their SETTINGS_HEADER_TABLE_SIZE, if any).
    std::deque<std::optional<uint32_t>> unacked;
  };

  struct Half {
    bool started = false, done = false;
    bool decoded = false;  // a decoded header block set msg's fields
    Missing missing = Missing::kNo;
    bool grpc = false;
    uint8_t grpc_hdr[5] = {};
    size_t grpc_hdr_len = 0;
    uint64_t grpc_left = 0, grpc_len = 0;
    bool grpc_in_msg = false;
    uint64_t held = 0;  // header + body bytes counted in held_
    uint64_t first_ts = 0, last_ts = 0;  // times of the message's first and last frame
    HttpMessage msg;
  };

  struct Stream {
    uint32_t id = 0;
    uint64_t seq = 0;
    int opener = -1;  // direction whose HEADERS were the first thing seen on the stream
    bool have_request = false;
    std::string req_method, req_path, req_authority;
    uint64_t req_body_len = 0;
    Half half[2];
  };

  static size_t Index(Flow f) { return f == Flow::kOut ? 0 : 1; }
  Dir& Other(Dir& d) { return &d == &dirs_[0] ? dirs_[1] : dirs_[0]; }

  void Notice(std::string_view s) {
    if (sink_.notice) sink_.notice(s);
  }

  static const char* Who(const Dir& d) {
    switch (d.role) {
      case Role::kClient: return "client";
      case Role::kServer: return "server";
      default: return d.flow == Flow::kOut ? "traced process" : "peer";
    }
  }
  static std::string Sent(const Dir& d) { return fmt::format("sent by the {}", Who(d)); }

  void SetRole(Dir& d, Role r) {
    if (d.role != Role::kUnknown) return;
    Dir& o = Other(d);
    if (o.role != Role::kUnknown && o.role == r) return;  // contradiction: keep what we had
    d.role = r;
    o.role = r == Role::kClient ? Role::kServer : Role::kClient;
    FlushPending();
  }

  // Messages whose headers were not decoded, held until it is known which side is the client.
  struct Pending {
    size_t dir;
    HttpMessage msg;
    std::string req_method, req_path;
    uint64_t held;
  };
  static constexpr size_t kMaxPending = 64;

  void FlushPending() {
    std::deque<Pending> pending = std::move(pending_);
    pending_.clear();
    for (Pending& p : pending) {
      held_ -= p.held;
      p.msg.kind = dirs_[p.dir].role == Role::kClient ? HttpMessage::Kind::kRequest : HttpMessage::Kind::kResponse;
      if (p.msg.kind == HttpMessage::Kind::kResponse) {
        p.msg.request_method = std::move(p.req_method);
        p.msg.request_path = std::move(p.req_path);
      }
      if (sink_.message) sink_.message(std::move(p.msg));
    }
  }

  void Compact(Dir& d) {
    if (d.pos == 0) return;
    d.buf.erase(0, d.pos);
    d.pos = 0;
  }
  void Consume(Dir& d, size_t n) {
    d.pos += n;
    d.offset += n;
  }
  size_t Avail(const Dir& d) const { return d.buf.size() - d.pos; }
  const uint8_t* Ptr(const Dir& d) const { return reinterpret_cast<const uint8_t*>(d.buf.data()) + d.pos; }

  void Kill(Dir& d) {
    d.state = State::kDead;
    d.buf.clear();
    d.buf.shrink_to_fit();
    d.pos = 0;
    d.in_block = false;
    d.hpack_off = true;
  }

  void DisableHpack(Dir& d, std::string_view why) {
    if (d.hpack_off) return;
    d.hpack_off = true;
    Notice(fmt::format("HTTP/2: {}; headers {} are not decoded from here on", why, Sent(d)));
  }

  void ProtocolError(Dir& d, std::string_view what) {
    if (++d.errors > 16) {
      Notice(fmt::format("HTTP/2: too many framing errors in the bytes {}; giving up on that direction", Sent(d)));
      Kill(d);
      return;
    }
    // Part of a header block may be lost: the HPACK table would be out of step.
    const bool lose_hpack = (d.in_block || d.hpack_used) && !d.hpack_off;
    Notice(fmt::format("HTTP/2: framing error in the bytes {} (offset {}): {}; looking for the next frame{}",
                       Sent(d), d.offset, what, lose_hpack ? "; their headers are not decoded from here on" : ""));
    LoseFraming(d);
  }

  // The frame boundary is lost: the frame and header block in progress are forgotten (HPACK is out
  // of step once part of a header block may be lost) and the next frame is searched for from
  // d.offset on.
  void LoseFraming(Dir& d) {
    if (d.in_block || d.hpack_used) {
      d.hpack_off = true;
      if (d.in_block && d.block.decodable) OnBlockLost(d);
    }
    d.in_block = false;
    d.in_frame = false;
    d.skip_left = 0;
    d.state = State::kSearch;
    d.discarded = 0;
    d.undecided.clear();
    d.scan = d.offset;
  }

  // ---- byte-level state machine ----

  void Process(Dir& d) {
    for (;;) {
      switch (d.state) {
        case State::kDead:
          d.buf.clear();
          d.pos = 0;
          return;
        case State::kPreface:
          if (!StepPreface(d)) return;
          break;
        case State::kSearch:
          if (!StepSearch(d)) return;
          break;
        case State::kFrames:
          if (!StepFrame(d)) return;
          break;
      }
    }
  }

  bool StepPreface(Dir& d) {
    const size_t n = std::min(Avail(d), kClientPreface.size());
    if (std::memcmp(Ptr(d), kClientPreface.data(), n) != 0) {
      // Not the client's start: the server's start if the client's preface was seen, else a
      // connection picked up mid-stream.
      d.state = started_ ? State::kFrames : State::kSearch;
      d.discarded = 0;
      return true;
    }
    if (n < kClientPreface.size()) return false;
    Consume(d, n);
    started_ = true;
    d.role = Role::kClient;
    Dir& o = Other(d);
    o.role = Role::kServer;
    d.state = State::kFrames;
    // The server may have spoken first (Go's server writes its SETTINGS before reading the
    // preface); if nothing of it was skipped, it is frame-aligned from its start.
    if (o.state == State::kSearch && o.offset == 0 && o.discarded == 0) {
      o.state = State::kFrames;
      o.undecided.clear();
      o.scan = 0;
      Process(o);
    }
    return true;
  }

  // Frame boundary search. A candidate offset is confirmed by a plausible frame whose payload
  // checks out followed by another such frame, rejected as soon as something does not fit, and
  // undecided while the bytes it needs have not arrived (then it is re-examined as they come).
  // The earliest confirmed candidate wins.
  enum class Verdict { kConfirmed, kRejected, kUndecided };

  Verdict Evaluate(const Dir& d, uint64_t abs) const {
    const uint64_t rel = abs - d.offset;
    const uint64_t avail = Avail(d) - rel;
    const uint8_t* p = Ptr(d) + rel;
    const FrameHeader h = ParseFrameHeader(p);
    if (!PlausibleForResync(h)) return Verdict::kRejected;
    const uint64_t next = kFrameHeaderLen + uint64_t{h.len};
    if (next + kFrameHeaderLen > limits_.max_buffered) return Verdict::kRejected;
    if (avail < next) return Verdict::kUndecided;
    if (!PayloadPlausible(h, p + kFrameHeaderLen)) return Verdict::kRejected;
    // The very first bytes of a direction being a SETTINGS frame: a connection's start.
    if (abs == 0 && h.type == kSettings && !(h.flags & kFlagAck)) return Verdict::kConfirmed;
    if (avail < next + kFrameHeaderLen) return Verdict::kUndecided;
    const FrameHeader h2 = ParseFrameHeader(p + next);
    if (!PlausibleForResync(h2)) return Verdict::kRejected;
    const uint64_t need = next + kFrameHeaderLen + h2.len;
    if (need > limits_.max_buffered) return Verdict::kRejected;
    if (avail < need) return Verdict::kUndecided;
    return PayloadPlausible(h2, p + next + kFrameHeaderLen) ? Verdict::kConfirmed : Verdict::kRejected;
  }

  bool StepSearch(Dir& d) {
    static constexpr size_t kMaxUndecided = 64;
    std::optional<uint64_t> found;
    // Earlier candidates first: they were undecided, and precede every new offset.
    std::vector<uint64_t> still;
    for (uint64_t a : d.undecided) {
      if (found) break;
      const Verdict v = Evaluate(d, a);
      if (v == Verdict::kConfirmed) found = a;
      else if (v == Verdict::kUndecided) still.push_back(a);
    }
    if (!found) {
      d.undecided = std::move(still);
      d.scan = std::max(d.scan, d.offset);
      const uint64_t end = d.offset + Avail(d);
      for (; d.scan + kFrameHeaderLen <= end; ++d.scan) {
        const Verdict v = Evaluate(d, d.scan);
        if (v == Verdict::kConfirmed) {
          found = d.scan;
          break;
        }
        if (v == Verdict::kUndecided) {
          if (d.undecided.size() >= kMaxUndecided) d.undecided.erase(d.undecided.begin());
          d.undecided.push_back(d.scan);
        }
      }
    }
    if (found) {
      const uint64_t skip = *found - d.offset;
      Consume(d, static_cast<size_t>(skip));
      d.discarded += skip;
      d.undecided.clear();
      d.scan = 0;
      return Synced(d);
    }
    // Bytes before the first undecided candidate can go.
    const uint64_t keep_from = d.undecided.empty() ? d.scan : std::min(d.scan, d.undecided.front());
    const uint64_t drop = keep_from - d.offset;
    Consume(d, static_cast<size_t>(drop));
    d.discarded += drop;
    return false;
  }

  bool Synced(Dir& d) {
    if (d.discarded > 0)
      Notice(fmt::format("HTTP/2: skipped {} bytes {} to find a frame boundary", d.discarded, Sent(d)));
    // Skipped bytes may have held header blocks: once the inflater is in use, its table would
    // be out of step. Before that, it only knows what follows, which keeps it safe.
    if (d.discarded > 0 && d.hpack_used) DisableHpack(d, "bytes were skipped after decoding began");
    d.discarded = 0;
    d.state = State::kFrames;
    return true;
  }

  bool StepFrame(Dir& d) {
    if (d.skip_left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(Avail(d), d.skip_left));
      Consume(d, n);
      d.skip_left -= n;
      if (d.skip_left > 0) return false;
      d.in_frame = false;
      return true;
    }
    if (!d.in_frame) {
      if (Avail(d) < kFrameHeaderLen) return false;
      d.fh = ParseFrameHeader(Ptr(d));
      Consume(d, kFrameHeaderLen);
      const FrameHeader& h = d.fh;
      if (const char* err = FrameError(h)) {
        ProtocolError(d, err);
        return true;
      }
      if (d.in_block && (h.type != kContinuation || h.stream != d.block.stream)) {
        ProtocolError(d, fmt::format("frame type {} inside the header block of stream {}", h.type,
                                     d.block.stream));
        return true;
      }
      d.in_frame = true;
      d.pad_known = false;
      if (h.type == kData) return true;
      if (h.type > kContinuation) {  // unknown type: ignored
        d.skip_left = h.len;
        if (d.skip_left == 0) d.in_frame = false;
        return true;
      }
      if (h.type == kContinuation && !d.in_block) {
        // The rest of a header block that began before the capture (or a broken stream).
        if (d.hpack_used) {
          DisableHpack(d, fmt::format("CONTINUATION without HEADERS on stream {}", h.stream));
        } else {
          Notice(fmt::format("HTTP/2: headers on stream {} ({}) began before the capture started; skipped",
                             h.stream, Sent(d)));
          MarkMissing(d, h.stream, Missing::kBeforeCapture);
        }
        d.skip_left = h.len;
        if (d.skip_left == 0) d.in_frame = false;
        return true;
      }
      if (h.len > limits_.max_buffered || h.len > kMaxFrameLen) {
        Notice(fmt::format("HTTP/2: frame of {} bytes (type {}) on stream {} ({}) exceeds the buffer limit; skipped",
                           h.len, h.type, h.stream, Sent(d)));
        if (h.type == kHeaders || h.type == kPushPromise || h.type == kContinuation) {
          if (d.in_block && d.block.decodable) OnBlockLost(d);
          d.in_block = false;
          if (h.type == kHeaders) MarkMissing(d, h.stream, Missing::kUndecodable);
          DisableHpack(d, "a header block was skipped");
        }
        d.skip_left = h.len;
        if (d.skip_left == 0) d.in_frame = false;
        return true;
      }
    }
    const FrameHeader& h = d.fh;
    if (h.type == kData) return StepData(d);
    if (Avail(d) < h.len) return false;
    const uint8_t* payload = Ptr(d);
    Consume(d, h.len);
    d.in_frame = false;
    HandleFrame(d, h, std::string_view(reinterpret_cast<const char*>(payload), h.len));
    return true;
  }

  bool StepData(Dir& d) {
    const FrameHeader& h = d.fh;
    if (!d.pad_known) {
      if (h.flags & kFlagPadded) {
        if (h.len < 1) {
          ProtocolError(d, "padded DATA frame without a pad length");
          return true;
        }
        if (Avail(d) < 1) return false;
        const uint8_t pad = *Ptr(d);
        Consume(d, 1);
        if (pad > h.len - 1) {
          ProtocolError(d, "DATA padding longer than the frame");
          return true;
        }
        d.pad_left = pad;
        d.data_left = h.len - 1 - pad;
      } else {
        d.pad_left = 0;
        d.data_left = h.len;
      }
      d.pad_known = true;
    }
    if (d.data_left > 0) {
      const size_t n = std::min<size_t>(Avail(d), d.data_left);
      if (n == 0) return false;
      OnData(d, h.stream, std::string_view(reinterpret_cast<const char*>(Ptr(d)), n));
      Consume(d, n);
      d.data_left -= static_cast<uint32_t>(n);
      if (d.data_left > 0) return false;
    }
    if (d.pad_left > 0) {
      const size_t n = std::min<size_t>(Avail(d), d.pad_left);
      Consume(d, n);
      d.pad_left -= static_cast<uint32_t>(n);
      if (d.pad_left > 0) return false;
    }
    d.in_frame = false;
    if (h.flags & kFlagEndStream) OnEndStream(d, h.stream);
    return true;
  }

  // ---- frames ----

  void HandleFrame(Dir& d, const FrameHeader& h, std::string_view payload) {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    switch (h.type) {
      case kHeaders:
      case kPushPromise: {
        size_t off = 0, pad = 0;
        if (h.flags & kFlagPadded) {
          if (payload.empty()) return ProtocolError(d, "padded frame without a pad length");
          pad = p[0];
          off = 1;
        }
        uint32_t promised = 0;
        if (h.type == kHeaders && (h.flags & kFlagPriority)) off += 5;
        if (h.type == kPushPromise) {
          if (payload.size() < off + 4) return ProtocolError(d, "PUSH_PROMISE frame too short");
          promised = Be32(p + off) & 0x7fffffffu;
          off += 4;
        }
        if (off + pad > payload.size()) return ProtocolError(d, "padding longer than the frame");
        StartBlock(d, h, promised);
        AddFragment(d, payload.substr(off, payload.size() - off - pad), (h.flags & kFlagEndHeaders) != 0);
        return;
      }
      case kContinuation:
        AddFragment(d, payload, (h.flags & kFlagEndHeaders) != 0);
        return;
      case kRstStream:
        OnReset(d, h.stream, Be32(p));
        return;
      case kSettings:
        OnSettings(d, h, p);
        return;
      case kGoAway: {
        const uint32_t last = Be32(p) & 0x7fffffffu, code = Be32(p + 4);
        if (code != 0)
          Notice(fmt::format("HTTP/2: GOAWAY from the {} (last stream {}): {}{}{}", Who(d), last,
                             ErrorCodeName(code), payload.size() > 8 ? " " : "",
                             Printable(payload.substr(8))));
        return;
      }
      case kPriority:
      case kPing:
      case kWindowUpdate:
      default:
        return;
    }
  }

  void OnSettings(Dir& d, const FrameHeader& h, const uint8_t* p) {
    Dir& o = Other(d);
    if (h.flags & kFlagAck) {
      // d acknowledges o's oldest unacknowledged SETTINGS: from now on d's encoder obeys them.
      if (o.unacked.empty()) return;
      const std::optional<uint32_t> v = o.unacked.front();
      o.unacked.pop_front();
      if (v) ApplyTableSize(d, *v);
      return;
    }
    std::optional<uint32_t> table;
    for (uint32_t i = 0; i + 6 <= h.len; i += 6) {
      const uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
      if (id == 0x1) table = std::min(Be32(p + i + 2), kMaxHpackTableSize);
    }
    if (d.unacked.size() >= 16) d.unacked.pop_front();
    d.unacked.push_back(table);
    // An increase only allows the other side's encoder more: apply it at once (it may use it
    // before we see its ACK). A decrease waits for the ACK.
    if (table && *table > o.table_limit) ApplyTableSize(o, *table);
  }

  void ApplyTableSize(Dir& d, uint32_t v) {
    if (d.hpack_off || !d.inflater) return;
    if (d.in_block) {
      d.pending_table_size = v;
      return;
    }
    d.pending_table_size.reset();
    if (nghttp2_hd_inflate_change_table_size(d.inflater, v) != 0) {
      DisableHpack(d, "changing the HPACK table size failed");
      return;
    }
    d.table_limit = v;
  }

  // ---- header blocks ----

  void StartBlock(Dir& d, const FrameHeader& h, uint32_t promised) {
    d.in_block = true;
    d.block = Block{};
    d.block.stream = h.stream;
    d.block.push = h.type == kPushPromise;
    d.block.promised = promised;
    d.block.end_stream = h.type == kHeaders && (h.flags & kFlagEndStream);
    d.block.decodable = !d.hpack_off;
  }

  void AddFragment(Dir& d, std::string_view frag, bool end_headers) {
    Block& b = d.block;
    if (b.decodable) {
      if (d.hpack_off) {
        b.decodable = false;
      } else {
        d.hpack_used = true;
        const int rv = Inflate(d, frag, end_headers);
        if (rv != 0) {
          b.decodable = false;
          b.headers.clear();
          d.hpack_off = true;
          const uint32_t s = b.push ? b.promised : b.stream;
          if (started_)
            Notice(fmt::format("HTTP/2: headers on stream {} ({}) could not be decoded ({}); headers {} are "
                               "not decoded from here on",
                               s, Sent(d), nghttp2_strerror(rv), Sent(d)));
          else
            Notice(fmt::format("HTTP/2: headers on stream {} ({}) are undecodable: they reference HPACK state "
                               "from before the capture started; headers {} are not decoded from here on",
                               s, Sent(d), Sent(d)));
        }
      }
    }
    if (!end_headers) return;
    d.in_block = false;
    if (d.pending_table_size) ApplyTableSize(d, *d.pending_table_size);
    Block block = std::move(d.block);
    d.block = Block{};
    OnHeaders(d, std::move(block));
  }

  // Returns 0 or an nghttp2 error code.
  int Inflate(Dir& d, std::string_view frag, bool final) {
    Block& b = d.block;
    const auto* in = reinterpret_cast<const uint8_t*>(frag.data());
    size_t len = frag.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t rv = nghttp2_hd_inflate_hd2(d.inflater, &nv, &flags, in, len, final ? 1 : 0);
      if (rv < 0) return static_cast<int>(rv);
      in += rv;
      len -= static_cast<size_t>(rv);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        const uint64_t sz = uint64_t{nv.namelen} + nv.valuelen + 32;
        if (b.size + sz <= kMaxHeaderListSize && held_ + b.size + sz <= body_budget_) {
          b.size += sz;
          b.headers.emplace_back(std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                                 std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
        } else if (!b.oversize) {
          b.oversize = true;
          Notice(fmt::format("HTTP/2: header list on stream {} ({}) exceeds {} bytes; the rest is dropped",
                             b.push ? b.promised : b.stream, Sent(d), kMaxHeaderListSize));
        }
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(d.inflater);
        return 0;
      }
      if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && (len == 0 || rv == 0)) {
        if (final) return NGHTTP2_ERR_HEADER_COMP;  // input ended inside the block
        return len == 0 ? 0 : NGHTTP2_ERR_HEADER_COMP;
      }
    }
  }

  // A header block cut short by a framing problem: its stream's headers are unknown.
  void OnBlockLost(Dir& d) {
    if (!d.block.push) MarkMissing(d, d.block.stream, Missing::kUndecodable);
    d.block = Block{};
  }

  void MarkMissing(Dir& d, uint32_t stream_id, Missing why) {
    Stream& s = GetStream(stream_id);
    Half& h = s.half[Index(d.flow)];
    if (!h.started) {
      Start(h);
      h.missing = why;
    }
  }

  void OnHeaders(Dir& d, Block&& b) {
    const size_t i = Index(d.flow);
    if (b.push) {
      SetRole(d, Role::kServer);
      Stream& ps = GetStream(b.promised);
      Half& ch = ps.half[1 - i];  // the client sends nothing on a pushed stream
      ch.started = ch.done = true;
      ch.first_ts = ch.last_ts = ts_;
      if (!b.decodable) return;
      HttpMessage m;
      m.proto = "HTTP/2";
      m.kind = HttpMessage::Kind::kRequest;
      m.stream = b.promised;
      FillFromHeaders(m, b.headers, nullptr);
      m.headers = std::move(b.headers);
      ps.have_request = true;
      ps.req_method = m.method;
      ps.req_path = m.path;
      ps.req_authority = m.authority;
      m.sent = d.flow == Flow::kOut;
      m.first_ts_ns = m.ts_ns = ts_;
      if (sink_.message) sink_.message(std::move(m));
      return;
    }
    Stream& s = GetStream(b.stream);
    Half& h = s.half[i];
    if (h.done) return;  // headers after END_STREAM: ignored
    // Which side is the client, when no preface and no decoded pseudo-header told: on a stream
    // first seen through one side's HEADERS, the other side's first HEADERS without END_STREAM
    // (so not trailers) is the response. Decoded or not, the frames tell.
    if (!h.started && !s.half[1 - i].started) {
      s.opener = static_cast<int>(i);
    } else if (!h.started && s.opener == static_cast<int>(1 - i) && !b.end_stream && (s.id & 1)) {
      SetRole(dirs_[1 - i], Role::kClient);
    }
    if (!b.decodable) {
      if (!h.started) {
        Start(h);
        h.missing = Missing::kUndecodable;
      }
    } else if (!h.started || (!h.decoded && h.missing == Missing::kNo)) {
      if (!h.started) Start(h);
      h.decoded = true;
      HttpMessage& m = h.msg;
      FillFromHeaders(m, b.headers, &h.grpc);
      if (!m.method.empty()) {
        m.kind = HttpMessage::Kind::kRequest;
        SetRole(d, Role::kClient);
        s.have_request = true;
        s.req_method = m.method;
        s.req_path = m.path;
        s.req_authority = m.authority;
      } else if (m.status != 0) {
        m.kind = HttpMessage::Kind::kResponse;
        SetRole(d, Role::kServer);
      }
      m.headers = std::move(b.headers);
      h.held += b.size;
      held_ += b.size;
      if (m.status >= 100 && m.status < 200 && !b.end_stream) {
        // An interim response (100 Continue, 103 Early Hints): reported on its own; the final
        // response follows on the same stream.
        HttpMessage interim = std::move(m);
        held_ -= h.held;
        h = Half{};
        interim.proto = "HTTP/2";
        interim.stream = s.id;
        interim.request_method = s.req_method;
        interim.request_path = s.req_path;
        interim.sent = d.flow == Flow::kOut;
        interim.first_ts_ns = interim.ts_ns = ts_;
        if (sink_.message) sink_.message(std::move(interim));
        return;
      }
    } else {
      // Trailers (or headers after a body whose headers were not captured).
      for (auto& kv : b.headers) h.msg.trailers.push_back(std::move(kv));
      h.held += b.size;
      held_ += b.size;
    }
    if (b.end_stream) FinishHalf(s, i);
  }

  // Sets the message fields that the header list determines.
  static void FillFromHeaders(HttpMessage& m, const std::vector<std::pair<std::string, std::string>>& hs,
                              bool* grpc) {
    std::string host;
    for (const auto& [name, value] : hs) {
      if (name == ":method") m.method = value;
      else if (name == ":path") m.path = value;
      else if (name == ":authority") m.authority = value;
      else if (name == ":status") {
        int st = 0;
        bool ok = value.size() == 3;
        for (char c : value) ok = ok && c >= '0' && c <= '9';
        if (ok) st = std::stoi(value);
        m.status = st;
      } else if (name == "host") host = value;
      else if (name == "content-encoding") m.content_encoding = value;
      else if (name == "content-type" && grpc) *grpc = IStartsWith(value, "application/grpc");
    }
    if (m.authority.empty()) m.authority = host;
  }

  // ---- streams ----

  Stream& GetStream(uint32_t id) {
    auto it = streams_.find(id);
    if (it != streams_.end()) return it->second;
    if (streams_.size() >= kMaxOpenStreams) EvictOldest();
    Stream& s = streams_[id];
    s.id = id;
    s.seq = next_seq_++;
    order_.emplace(s.seq, id);
    return s;
  }

  void EvictOldest() {
    if (order_.empty()) return;
    const uint32_t id = order_.begin()->second;
    auto it = streams_.find(id);
    if (it != streams_.end()) {
      bool in_progress = false;
      for (Half& h : it->second.half) {
        if (h.started && !h.done) in_progress = true;
        held_ -= h.held;
      }
      if (in_progress)
        Notice(fmt::format("HTTP/2: more than {} open streams; dropped stream {} with a message in progress",
                           kMaxOpenStreams, id));
      streams_.erase(it);
    }
    order_.erase(order_.begin());
  }

  void EraseStream(uint32_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    for (Half& h : it->second.half) held_ -= h.held;
    order_.erase(it->second.seq);
    streams_.erase(it);
  }

  void OnData(Dir& d, uint32_t stream_id, std::string_view bytes) {
    Stream& s = GetStream(stream_id);
    Half& h = s.half[Index(d.flow)];
    if (h.done) return;  // DATA after END_STREAM
    if (!h.started) {
      Start(h);
      h.missing = Missing::kBeforeCapture;
    }
    HttpMessage& m = h.msg;
    m.body_wire_len += bytes.size();
    uint64_t keep = 0;
    if (m.body.size() < limits_.max_body && held_ < body_budget_)
      keep = std::min<uint64_t>({bytes.size(), limits_.max_body - m.body.size(), body_budget_ - held_});
    if (keep < bytes.size()) {
      m.body_truncated = true;
      if (m.body.size() + keep < limits_.max_body && !budget_noticed_) {  // cut by the connection budget
        budget_noticed_ = true;
        Notice(fmt::format("HTTP/2: bodies held across open streams exceed {} bytes; truncating them",
                           body_budget_));
      }
    }
    m.body.append(bytes.data(), keep);
    h.held += keep;
    held_ += keep;
    if (h.grpc) GrpcFeed(h, bytes);
  }

  // DATA payload bytes that were not captured: counted in the body, not kept.
  void OnDataSkipped(Dir& d, uint32_t stream_id, uint64_t n) {
    Stream& s = GetStream(stream_id);
    Half& h = s.half[Index(d.flow)];
    if (h.done) return;
    if (!h.started) {
      Start(h);
      h.missing = Missing::kBeforeCapture;
    }
    h.msg.body_wire_len += n;
    h.msg.body_uncaptured += n;
    h.msg.body_truncated = true;
    if (!h.grpc) return;
    // gRPC messages keep being counted while only their payloads are skipped; a length prefix
    // in the gap ends the count for this message.
    if (h.grpc_in_msg && n <= h.grpc_left) {
      h.grpc_left -= n;
      if (h.grpc_left == 0) {
        h.grpc_in_msg = false;
        if (h.msg.grpc_messages.size() < kMaxGrpcMessages) h.msg.grpc_messages.push_back(h.grpc_len);
      }
    } else {
      h.grpc = false;
    }
  }

  void Start(Half& h) {
    h.started = true;
    h.first_ts = ts_;
  }

  static void GrpcFeed(Half& h, std::string_view b) {
    while (!b.empty()) {
      if (h.grpc_in_msg) {
        const uint64_t n = std::min<uint64_t>(b.size(), h.grpc_left);
        b.remove_prefix(n);
        h.grpc_left -= n;
        if (h.grpc_left == 0) {
          h.grpc_in_msg = false;
          if (h.msg.grpc_messages.size() < kMaxGrpcMessages) h.msg.grpc_messages.push_back(h.grpc_len);
        }
        continue;
      }
      const size_t n = std::min(b.size(), 5 - h.grpc_hdr_len);
      std::memcpy(h.grpc_hdr + h.grpc_hdr_len, b.data(), n);
      h.grpc_hdr_len += n;
      b.remove_prefix(n);
      if (h.grpc_hdr_len < 5) continue;
      h.grpc_hdr_len = 0;
      h.grpc_len = Be32(h.grpc_hdr + 1);
      if (h.grpc_len == 0) {
        if (h.msg.grpc_messages.size() < kMaxGrpcMessages) h.msg.grpc_messages.push_back(0);
      } else {
        h.grpc_in_msg = true;
        h.grpc_left = h.grpc_len;
      }
    }
  }

  void OnEndStream(Dir& d, uint32_t stream_id) {
    Stream& s = GetStream(stream_id);
    FinishHalf(s, Index(d.flow));
  }

  void OnReset(Dir& d, uint32_t stream_id, uint32_t code) {
    auto it = streams_.find(stream_id);
    bool in_progress = false;
    if (it != streams_.end())
      for (Half& h : it->second.half) in_progress = in_progress || (h.started && !h.done && h.missing == Missing::kNo);
    if (code != 0 || in_progress)
      Notice(fmt::format("HTTP/2: stream {} reset by the {} ({}){}", stream_id, Who(d), ErrorCodeName(code),
                         in_progress ? "; its incomplete message is reported as received so far" : ""));
    if (it == streams_.end()) return;
    Stream& s = it->second;
    for (size_t i = 0; i < 2; ++i) {
      Half& h = s.half[i];
      if (h.started && !h.done) {
        h.done = true;
        Emit(s, i);
      }
    }
    EraseStream(stream_id);
  }

  bool IsResponseHalf(const Stream& s, size_t i) const {
    const Half& h = s.half[i];
    if (h.decoded && h.msg.status != 0) return true;
    if (h.decoded && !h.msg.method.empty()) return false;
    return dirs_[i].role == Role::kServer;
  }

  void FinishHalf(Stream& s, size_t i) {
    Half& h = s.half[i];
    if (h.done) return;
    h.done = true;
    if (h.started) Emit(s, i);
    const Half& o = s.half[1 - i];
    if (o.done || (IsResponseHalf(s, i) && !o.started)) EraseStream(s.id);
  }

  void Emit(Stream& s, size_t i) {
    Half& h = s.half[i];
    const Dir& d = dirs_[i];
    HttpMessage m = std::move(h.msg);
    h.msg = HttpMessage{};
    held_ -= h.held;
    h.held = 0;
    if (h.missing != Missing::kNo && m.body_wire_len == 0) return;  // nothing to report
    bool known = false;
    if (h.decoded && !m.method.empty()) {
      m.kind = HttpMessage::Kind::kRequest;
      known = true;
    } else if (h.decoded && m.status != 0) {
      m.kind = HttpMessage::Kind::kResponse;
      known = true;
    } else if (d.role != Role::kUnknown) {
      m.kind = d.role == Role::kClient ? HttpMessage::Kind::kRequest : HttpMessage::Kind::kResponse;
      known = true;
    }
    if (h.missing == Missing::kBeforeCapture)
      Notice(fmt::format("HTTP/2: the headers of stream {} ({}) were sent before the capture started; {} "
                         "body bytes are reported without them",
                         s.id, Sent(d), m.body_wire_len));
    m.proto = "HTTP/2";
    m.stream = s.id;
    m.sent = d.flow == Flow::kOut;
    h.last_ts = ts_;
    m.first_ts_ns = h.first_ts;
    if (known && m.kind == HttpMessage::Kind::kRequest) s.req_body_len = m.body_wire_len;
    if (known && m.kind == HttpMessage::Kind::kResponse && s.have_request) {
      const Half& req = s.half[1 - i];
      m.request_method = s.req_method;
      m.request_path = s.req_path;
      m.request_authority = s.req_authority;
      m.request_first_ts_ns = req.first_ts;
      m.request_last_ts_ns = req.done ? req.last_ts : 0;
      m.request_body_len = s.req_body_len;
    }
    if (!limits_.raw && !m.content_encoding.empty() && !IStartsWith(m.content_encoding, "identity") &&
        !m.body_truncated && m.body_wire_len == m.body.size()) {
      if (auto decoded = DecodeContent(m.content_encoding, m.body, limits_.max_body)) {
        m.body = std::move(*decoded);
        m.body_decoded = true;
      } else {
        Notice(fmt::format("HTTP/2: stream {}: could not remove Content-Encoding \"{}\"; body kept as sent", s.id,
                           Printable(m.content_encoding)));
      }
    }
    m.ts_ns = ts_;
    if (!known) {
      // Held until a later stream shows which side is the client.
      if (pending_.size() >= kMaxPending) {
        Notice(fmt::format("HTTP/2: stream {}: {} body bytes {} not reported (which side is the client is "
                           "not known)",
                           pending_.front().msg.stream, pending_.front().msg.body_wire_len,
                           Sent(dirs_[pending_.front().dir])));
        held_ -= pending_.front().held;
        pending_.pop_front();
      }
      const uint64_t held = m.body.size();
      held_ += held;
      pending_.push_back(Pending{i, std::move(m), s.have_request ? s.req_method : std::string(),
                                 s.have_request ? s.req_path : std::string(), held});
      return;
    }
    if (sink_.message) sink_.message(std::move(m));
  }

  DecoderSink sink_;
  DecoderLimits limits_;
  const uint64_t body_budget_;  // header + body bytes held across a connection's open streams
  Dir dirs_[2];
  bool started_ = false;  // the client preface was seen
  uint64_t ts_ = 0;
  uint64_t held_ = 0;
  bool budget_noticed_ = false;
  std::unordered_map<uint32_t, Stream> streams_;
  std::map<uint64_t, uint32_t> order_;  // creation order → stream id
  std::deque<Pending> pending_;
  uint64_t next_seq_ = 0;
};

}  // namespace

std::unique_ptr<ConnectionDecoder> MakeHttp2Decoder(DecoderSink sink, DecoderLimits limits) {
  return std::make_unique<Http2Decoder>(std::move(sink), limits);
}

}  // namespace gotlscap::decode
