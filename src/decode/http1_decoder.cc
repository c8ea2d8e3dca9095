#include "decode/http1_decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "decode/content_decoding.h"

namespace gotlscap::decode {
namespace {

constexpr size_t kFeedSlice = 64 * 1024;  // a large Feed is processed in slices of this size
constexpr size_t kMaxMethod = 32;
constexpr size_t kStatusProbe = 13;  // "HTTP/1.1 200" + one byte decides a status line

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

bool IsTchar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// Field values and reason phrases: HTAB, SP, VCHAR, obs-text.
bool IsFieldChar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

bool IsTargetChar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c > 0x20 && c != 0x7f;
}

bool IsMethodChar(char c, bool strict) { return strict ? (IsUpper(c) || c == '-' || c == '_') : IsTchar(c); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(token) for each comma-separated, trimmed, non-empty element.
template <typename F>
void ForEachToken(std::string_view list, F f) {
  while (true) {
    const size_t comma = list.find(',');
    std::string_view t = Trim(list.substr(0, comma));
    if (!t.empty()) f(t);
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// Printable, bounded rendering of untrusted text for notices.
std::string Printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

enum class Want { kAny, kRequest, kResponse };

// Could `s` (possibly incomplete) be the beginning of a start line?
bool PlausibleStartPrefix(std::string_view s, Want want, bool strict) {
  if (s.empty()) return true;
  if (s[0] == 'H' && want != Want::kRequest) {
    static constexpr std::string_view kProto = "HTTP/1.";
    bool ok = true;
    for (size_t i = 0; i < s.size() && i < kStatusProbe && ok; ++i) {
      const char c = s[i];
      if (i < 7) ok = c == kProto[i];
      else if (i == 7) ok = IsDigit(c);
      else if (i == 8) ok = c == ' ';
      else if (i == 9) ok = c >= '1' && c <= (strict ? '5' : '9');
      else if (i < 12) ok = IsDigit(c);
      else ok = c == ' ' || c == '\r' || c == '\n';
    }
    if (ok) return true;
  }
  if (want == Want::kResponse) return false;
  size_t i = 0;
  while (i < s.size() && i <= kMaxMethod && IsMethodChar(s[i], strict)) ++i;
  if (i == s.size()) return i <= kMaxMethod;
  if (i == 0 || i > kMaxMethod || s[i] != ' ') return false;
  return i + 1 >= s.size() || IsTargetChar(s[i + 1]);
}

// Full request line `METHOD SP target SP HTTP/1.d` (no CR/LF).
bool ParseRequestLine(std::string_view line, bool strict, HttpMessage& m) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > kMaxMethod) return false;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  const std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                         version = line.substr(sp2 + 1);
  for (char c : method)
    if (!IsMethodChar(c, strict)) return false;
  for (char c : target)
    if (!IsTargetChar(c)) return false;
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || !IsDigit(version[7])) return false;
  m.kind = HttpMessage::Kind::kRequest;
  m.method = method;
  m.path = target;
  m.proto = version;
  return true;
}

// Full status line `HTTP/1.d SP 3DIGIT [SP reason]` (no CR/LF).
bool ParseStatusLine(std::string_view line, bool strict, HttpMessage& m) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !IsDigit(line[7]) || line[8] != ' ') return false;
  if (!(line[9] >= '1' && line[9] <= (strict ? '5' : '9')) || !IsDigit(line[10]) || !IsDigit(line[11])) return false;
  if (line.size() > 12) {
    if (line[12] != ' ') return false;
    for (char c : line.substr(13))
      if (!IsFieldChar(c)) return false;
  }
  m.kind = HttpMessage::Kind::kResponse;
  m.proto = line.substr(0, 8);
  m.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  return true;
}

// Incremental search for the end of a block of lines closed by an empty line.
struct BlockScan {
  size_t scan = 0;                          // resume point of the '\n' search
  size_t first_nl = std::string_view::npos; // end of the first line, once seen
  bool first_checked = false;
};

// Returns the offset just past the empty line that closes the block (the block's first line is
// never empty here), or npos if it is not complete yet.
size_t FindBlockEnd(std::string_view s, BlockScan& bs) {
  while (true) {
    const size_t i = s.find('\n', bs.scan);
    if (i == std::string_view::npos) {
      bs.scan = s.size();
      return std::string_view::npos;
    }
    if (bs.first_nl == std::string_view::npos) bs.first_nl = i;
    bs.scan = i;  // re-examine this '\n' when more bytes arrive
    if (i + 1 >= s.size()) return std::string_view::npos;
    if (s[i + 1] == '\n') return i + 2;
    if (s[i + 1] == '\r') {
      if (i + 2 >= s.size()) return std::string_view::npos;
      if (s[i + 2] == '\n') return i + 3;
    }
    bs.scan = i + 1;
  }
}

// Parses header field lines (each ending in LF or CRLF, the block without its closing empty line).
bool ParseFields(std::string_view block, std::vector<std::pair<std::string, std::string>>& out, size_t max_fields,
                 const char** why) {
  size_t count = 0;
  while (!block.empty()) {
    const size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line[0] == ' ' || line[0] == '\t') {  // obs-fold: continuation of the previous field
      if (out.empty()) return (*why = "header block starts with a continuation line"), false;
      std::string_view more = Trim(line);
      for (char c : more)
        if (!IsFieldChar(c)) return (*why = "control character in a header value"), false;
      if (!more.empty()) {
        if (!out.back().second.empty()) out.back().second += ' ';
        out.back().second += more;
      }
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return (*why = "malformed header line"), false;
    const std::string_view name = line.substr(0, colon), value = Trim(line.substr(colon + 1));
    for (char c : name)
      if (!IsTchar(c)) return (*why = "malformed header name"), false;
    for (char c : value)
      if (!IsFieldChar(c)) return (*why = "control character in a header value"), false;
    if (++count > max_fields) return (*why = "too many header fields"), false;
    out.emplace_back(std::string(name), std::string(value));
  }
  return true;
}

enum class HeadResult { kOk, kNeedMore, kInvalid };

// Parses a complete head (start line + header fields + empty line) at the start of `s`.
HeadResult ParseHead(std::string_view s, BlockScan& bs, size_t cap, Want want, bool strict, HttpMessage& m,
                     size_t& len, const char** why) {
  const size_t end = FindBlockEnd(s.substr(0, std::min(s.size(), cap + 3)), bs);
  if (bs.first_nl == std::string_view::npos) {
    if (!PlausibleStartPrefix(s.substr(0, kMaxMethod + 2), want, strict)) return (*why = "not an HTTP/1 start line"), HeadResult::kInvalid;
  } else if (!bs.first_checked) {
    std::string_view line = s.substr(0, bs.first_nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    HttpMessage probe;
    const bool ok = (want != Want::kResponse && ParseRequestLine(line, strict, probe)) ||
                    (want != Want::kRequest && ParseStatusLine(line, strict, probe));
    if (!ok) return (*why = "not an HTTP/1 start line"), HeadResult::kInvalid;
    bs.first_checked = true;
  }
  if (end == std::string_view::npos || end > cap) {
    if (s.size() > cap) return (*why = "header block too large"), HeadResult::kInvalid;
    return HeadResult::kNeedMore;
  }
  std::string_view line = s.substr(0, bs.first_nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  m = HttpMessage{};
  if (!((want != Want::kResponse && ParseRequestLine(line, strict, m)) ||
        (want != Want::kRequest && ParseStatusLine(line, strict, m))))
    return (*why = "not an HTTP/1 start line"), HeadResult::kInvalid;
  if (!ParseFields(s.substr(bs.first_nl + 1, end - bs.first_nl - 1), m.headers, kHttp1MaxHeaderFields, why))
    return HeadResult::kInvalid;
  len = end;
  return HeadResult::kOk;
}

// All values of a header, comma-joined.
std::optional<std::string> HeaderValue(const HttpMessage& m, std::string_view name) {
  std::optional<std::string> v;
  for (const auto& [k, val] : m.headers) {
    if (!IEquals(k, name)) continue;
    if (!v) v = val;
    else *v += ", " + val;
  }
  return v;
}

bool HasToken(const HttpMessage& m, std::string_view header, std::string_view token) {
  auto v = HeaderValue(m, header);
  if (!v) return false;
  bool found = false;
  ForEachToken(*v, [&](std::string_view t) { found = found || IEquals(t, token); });
  return found;
}

enum class Framing { kNone, kLength, kChunked, kUntilStatus, kInvalid };

// Content-Length: a list of equal non-negative decimal values.
std::optional<uint64_t> ParseContentLength(std::string_view v) {
  std::optional<uint64_t> len;
  bool bad = false;
  ForEachToken(v, [&](std::string_view t) {
    if (t.size() > 18) return void(bad = true);
    uint64_t n = 0;
    for (char c : t) {
      if (!IsDigit(c)) return void(bad = true);
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (len && *len != n) bad = true;
    len = n;
  });
  if (bad || !len) return std::nullopt;
  return len;
}

// Framing from Transfer-Encoding / Content-Length; kNone if neither is present.
Framing BodyFraming(const HttpMessage& m, uint64_t& length, const char** why) {
  if (auto te = HeaderValue(m, "Transfer-Encoding")) {
    std::string_view last;
    ForEachToken(*te, [&](std::string_view t) { last = t; });
    if (IEquals(last, "chunked")) return Framing::kChunked;
    if (m.kind == HttpMessage::Kind::kRequest) return (*why = "request Transfer-Encoding does not end in chunked"), Framing::kInvalid;
    return Framing::kUntilStatus;
  }
  if (auto cl = HeaderValue(m, "Content-Length")) {
    auto n = ParseContentLength(*cl);
    if (!n) return (*why = "invalid Content-Length"), Framing::kInvalid;
    length = *n;
    return Framing::kLength;
  }
  return Framing::kNone;
}

// Chunk-size line (without LF): 1*HEXDIG [BWS] [; extensions] [CR].
std::optional<uint64_t> ParseChunkSize(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  uint64_t n = 0;
  size_t i = 0;
  for (; i < line.size(); ++i) {
    const char c = line[i];
    int d;
    if (IsDigit(c)) d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else break;
    if (i >= 15) return std::nullopt;  // > 2^60: not a real chunk
    n = n * 16 + static_cast<uint64_t>(d);
  }
  if (i == 0) return std::nullopt;
  std::string_view rest = line.substr(i);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  if (!rest.empty() && rest.front() != ';') return std::nullopt;
  for (char c : rest)
    if (!IsFieldChar(c)) return std::nullopt;
  return n;
}

std::string AuthorityFromTarget(std::string_view target) {
  const size_t scheme = target.find("://");
  if (scheme == std::string_view::npos || scheme == 0) return {};
  std::string_view rest = target.substr(scheme + 3);
  return std::string(rest.substr(0, rest.find_first_of("/?#")));
}

class Http1Decoder final : public ConnectionDecoder {
 public:
  Http1Decoder(DecoderSink sink, DecoderLimits limits) : sink_(std::move(sink)), limits_(limits) {
    dirs_[0].flow = Flow::kOut;
    dirs_[1].flow = Flow::kIn;
    head_cap_ = static_cast<size_t>(std::min<uint64_t>(kHttp1MaxHeadBytes, std::max<uint64_t>(limits_.max_buffered, 16)));
  }

  ~Http1Decoder() override {
    // A response delimited by the end of the connection ends here.
    for (Dir& d : dirs_) {
      if (d.st != St::kUntilStatus || !sink_.message) continue;
      AppendBody(d, View(d));
      d.pos = d.buf.size();
      Complete(d);
    }
  }

  void Feed(Flow flow, std::string_view bytes, uint64_t ts_ns) override {
    Dir& d = dirs_[flow == Flow::kOut ? 0 : 1];
    d.ts = ts_ns;
    // Nothing of a next message buffered: if one starts, it starts in this call.
    if ((d.st == St::kStart || d.st == St::kResync) && d.pos == d.buf.size()) d.start_ts = ts_ns;
    const size_t slice_size = static_cast<size_t>(std::clamp<uint64_t>(limits_.max_buffered, 1, kFeedSlice));
    do {
      std::string_view slice = bytes.substr(0, slice_size);
      bytes.remove_prefix(slice.size());
      if (d.st == St::kOpaque) return;
      slice.remove_prefix(TakeBodyDirectly(d, slice));
      if (slice.empty()) continue;
      d.buf.append(slice);
      Process(d);
      for (Dir& x : dirs_) Compact(x);
      if (d.buf.size() > limits_.max_buffered) {
        if (d.st == St::kResync) EnterResync(d);  // already resynchronising: one notice is enough
        else Notice(d, fmt::format("more than {} bytes buffered without a complete message; dropped them", limits_.max_buffered),
                    St::kResync);
        d.buf.clear();
        d.pos = 0;
      }
    } while (!bytes.empty());
  }

  void Skip(Flow flow, uint64_t n, uint64_t ts_ns) override {
    Dir& d = dirs_[flow == Flow::kOut ? 0 : 1];
    d.ts = ts_ns;
    while (n > 0 && d.st != St::kOpaque) {
      if ((d.st == St::kBody || d.st == St::kChunkData) && !d.maybe_no_body && d.pos == d.buf.size()) {
        // Body bytes: counted, not kept; the framing tells where the body ends.
        const uint64_t k = std::min(d.remaining, n);
        SkipBody(d, k);
        n -= k;
        d.remaining -= k;
        if (d.remaining == 0) {
          if (d.st == St::kBody) Complete(d);
          else d.st = St::kChunkEnd;
        }
        continue;
      }
      if (d.st == St::kUntilStatus && d.pos == d.buf.size()) {  // a body that ends with the connection
        SkipBody(d, n);
        return;
      }
      // Framing (a head, a chunk size line) was in the bytes not captured.
      if (d.st != St::kResync)
        Notice(d, fmt::format("{} bytes not captured (--max-payload) hold message framing", n), St::kResync);
      d.buf.clear();
      d.pos = 0;
      // A call after the gap may begin with the next message (a writer's calls often do): its
      // first byte counts as a line start; if it does not begin one, the search goes on.
      d.line_start = true;
      return;
    }
  }

  const char* protocol() const override { return "HTTP/1.1"; }

 private:
  enum class St { kStart, kResync, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kUntilStatus, kHold, kOpaque };
  enum class Role { kUnknown, kRequests, kResponses };

  // A request sent and not answered yet, with what its response reports of it.
  struct Pending {
    std::string method, path, authority;
    uint64_t seq = 0;
    uint64_t first_ts = 0, last_ts = 0;  // last_ts: 0 while its body is still coming
    uint64_t body_len = 0;
  };

  struct Dir {
    Flow flow = Flow::kOut;
    std::string buf;
    size_t pos = 0;  // bytes of buf already consumed
    St st = St::kStart;
    Role role = Role::kUnknown;
    bool synced = false;      // a head was accepted in this direction
    bool line_start = false;  // kResync / kUntilStatus: buf[pos] begins a line
    BlockScan bs;
    HttpMessage cur;
    uint64_t remaining = 0;
    uint64_t seq = 0;            // requests: sequence number of `cur`
    bool expect_continue = false;
    bool maybe_no_body = false;  // a final response came before the body of an Expect request
    uint64_t ts = 0;        // time of the call being fed
    uint64_t start_ts = 0;  // time of the call that held `cur`'s first byte
    // Responses: the request `cur` answers (its timing is completed if it ends after the
    // response's head).
    std::optional<Pending> answered;
  };

  static std::string_view View(const Dir& d) { return std::string_view(d.buf).substr(d.pos); }

  // Inside a body with nothing left in buf: the body's bytes go straight to the message, not
  // through buf first (bulk transfers are nearly all body; one copy fewer). The same steps as
  // Process's kBody / kChunkData case. Returns how many bytes of `in` it took.
  size_t TakeBodyDirectly(Dir& d, std::string_view in) {
    if ((d.st != St::kBody && d.st != St::kChunkData) || d.maybe_no_body || d.pos != d.buf.size()) return 0;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(d.remaining, in.size()));
    AppendBody(d, in.substr(0, n));
    d.bs = {};
    d.remaining -= n;
    if (d.remaining == 0) {
      if (d.st == St::kBody) Complete(d);
      else d.st = St::kChunkEnd;
    }
    return n;
  }
  Dir& Other(Dir& d) { return &d == &dirs_[0] ? dirs_[1] : dirs_[0]; }

  void Consume(Dir& d, size_t n) {
    d.pos += n;
    d.bs = {};
  }

  static void Compact(Dir& d) {
    if (d.pos == 0) return;
    d.buf.erase(0, d.pos);
    d.pos = 0;
    if (d.buf.capacity() > 4 * kFeedSlice && d.buf.size() < kFeedSlice) d.buf.shrink_to_fit();
  }

  void Notice(Dir& d, std::string_view what, St then) {
    if (sink_.notice)
      sink_.notice(fmt::format("HTTP/1 {}: {}{}", d.flow == Flow::kOut ? "out" : "in", what,
                               then == St::kResync ? "; skipping to the next message start" : ""));
    if (then == St::kResync) EnterResync(d);
  }

  void EnterResync(Dir& d) {
    d.cur = HttpMessage{};
    d.st = St::kResync;
    d.line_start = false;
    d.bs = {};
    d.expect_continue = d.maybe_no_body = false;
    // Messages were lost: which response answers which request is no longer known.
    pending_.clear();
    attribution_lost_ = true;
    upgrade_seq_ = 0;
    Dir& o = Other(d);
    if (o.st == St::kHold) o.st = St::kStart;
  }

  Want WantFor(const Dir& d) const {
    if (d.role == Role::kRequests) return Want::kRequest;
    if (d.role == Role::kResponses) return Want::kResponse;
    return Want::kAny;
  }

  void Process(Dir& d) {
    while (true) {
      const std::string_view s = View(d);
      switch (d.st) {
        case St::kOpaque:
          d.pos = d.buf.size();
          return;
        case St::kHold:
          return;
        case St::kStart: {
          size_t skip = 0;
          while (skip < s.size() && (s[skip] == '\r' || s[skip] == '\n')) ++skip;
          if (skip) {
            Consume(d, skip);
            continue;
          }
          if (s.empty()) return;
          HttpMessage m;
          size_t len = 0;
          const char* why = "";
          const HeadResult r = ParseHead(s, d.bs, head_cap_, WantFor(d), /*strict=*/false, m, len, &why);
          if (r == HeadResult::kNeedMore) return;
          if (r == HeadResult::kInvalid) {
            Notice(d, d.synced ? std::string(why) : fmt::format("{} at the start of the capture (picked up mid-connection?)", why),
                   St::kResync);
            continue;
          }
          Consume(d, len);
          AcceptHead(d, std::move(m));
          continue;
        }
        case St::kResync: {
          if (!d.line_start) {
            const size_t nl = s.find('\n');
            if (nl == std::string_view::npos) {
              Consume(d, s.size());
              return;
            }
            Consume(d, nl + 1);
            d.line_start = true;
            continue;
          }
          if (s.empty()) return;
          HttpMessage m;
          size_t len = 0;
          const char* why = "";
          const HeadResult r = ParseHead(s, d.bs, head_cap_, WantFor(d), /*strict=*/true, m, len, &why);
          if (r == HeadResult::kNeedMore) return;
          if (r == HeadResult::kInvalid) {
            d.line_start = false;
            d.bs = {};
            continue;
          }
          d.bs = {};
          d.st = St::kStart;
          continue;
        }
        case St::kBody:
        case St::kChunkData: {
          if (s.empty()) return;
          if (d.st == St::kBody && d.maybe_no_body) {
            if (!ClientSkippedBody(d, s)) return;
            if (d.st != St::kBody) continue;  // the request was completed without a body
          }
          const size_t n = static_cast<size_t>(std::min<uint64_t>(d.remaining, s.size()));
          AppendBody(d, s.substr(0, n));
          Consume(d, n);
          d.remaining -= n;
          if (d.remaining == 0) {
            if (d.st == St::kBody) Complete(d);
            else d.st = St::kChunkEnd;
          }
          continue;
        }
        case St::kChunkSize: {
          if (d.maybe_no_body && !s.empty()) {
            if (!ClientSkippedBody(d, s)) return;
            if (d.st != St::kChunkSize) continue;
          }
          const size_t nl = s.find('\n');
          if (nl == std::string_view::npos) {
            if (s.size() > kHttp1MaxChunkLine) Notice(d, "chunk-size line too long", St::kResync);
            else return;
            continue;
          }
          auto size = ParseChunkSize(s.substr(0, nl));
          if (!size) {
            Notice(d, fmt::format("invalid chunk-size line \"{}\"", Printable(s.substr(0, nl))), St::kResync);
            continue;
          }
          Consume(d, nl + 1);
          d.remaining = *size;
          d.st = *size == 0 ? St::kTrailers : St::kChunkData;
          continue;
        }
        case St::kChunkEnd: {
          if (s.empty()) return;
          if (s[0] == '\n') {
            Consume(d, 1);
          } else if (s[0] == '\r' && s.size() < 2) {
            return;
          } else if (s[0] == '\r' && s[1] == '\n') {
            Consume(d, 2);
          } else {
            Notice(d, "chunk data not followed by CRLF", St::kResync);
            continue;
          }
          d.st = St::kChunkSize;
          continue;
        }
        case St::kTrailers: {
          if (s.empty()) return;
          size_t end;
          if (s[0] == '\n') {
            end = 1;
          } else if (s[0] == '\r') {
            if (s.size() < 2) return;
            if (s[1] != '\n') {
              Notice(d, "malformed chunked trailer", St::kResync);
              continue;
            }
            end = 2;
          } else {
            end = FindBlockEnd(s.substr(0, std::min(s.size(), head_cap_ + 3)), d.bs);
            if (end == std::string_view::npos || end > head_cap_) {
              if (s.size() > head_cap_) Notice(d, "chunked trailer too large", St::kResync);
              else return;
              continue;
            }
            const char* why = "";
            std::vector<std::pair<std::string, std::string>> trailers;
            if (!ParseFields(s.substr(0, end), trailers, kHttp1MaxHeaderFields, &why)) {
              Notice(d, fmt::format("chunked trailer: {}", why), St::kResync);
              continue;
            }
            for (auto& t : trailers) d.cur.trailers.push_back(std::move(t));
          }
          Consume(d, end);
          Complete(d);
          continue;
        }
        case St::kUntilStatus: {
          // The body runs to the next line that starts with a status line.
          size_t i = 0;
          bool found = false, wait = false;
          while (i < s.size()) {
            if (d.line_start) {
              const std::string_view probe = s.substr(i, kStatusProbe);
              if (probe[0] == 'H' && PlausibleStartPrefix(probe, Want::kResponse, /*strict=*/true)) {
                if (probe.size() == kStatusProbe) found = true;
                else wait = true;
                break;
              }
              d.line_start = false;
            }
            const size_t nl = s.find('\n', i);
            if (nl == std::string_view::npos) {
              i = s.size();
            } else {
              i = nl + 1;
              d.line_start = true;
            }
          }
          AppendBody(d, s.substr(0, i));
          Consume(d, i);
          if (found) {
            Complete(d);
            continue;
          }
          (void)wait;
          return;
        }
      }
    }
  }

  // Expect: 100-continue answered by a final response: if the client now starts a new request
  // instead of the body, the request had no body. Returns false to wait for more bytes.
  bool ClientSkippedBody(Dir& d, std::string_view s) {
    HttpMessage m;
    size_t len = 0;
    const char* why = "";
    const HeadResult r = ParseHead(s, d.bs, head_cap_, Want::kRequest, /*strict=*/true, m, len, &why);
    if (r == HeadResult::kNeedMore) return false;
    d.maybe_no_body = false;
    d.bs = {};
    if (r == HeadResult::kOk) Complete(d);
    return true;
  }

  bool RoleAllows(Dir& d, bool request) {
    const Role want = request ? Role::kRequests : Role::kResponses;
    if (d.role == Role::kUnknown) {
      Dir& o = Other(d);
      if (o.role == want) return false;
      d.role = want;
      o.role = request ? Role::kResponses : Role::kRequests;
    }
    return d.role == want;
  }

  void AcceptHead(Dir& d, HttpMessage&& m) {
    const bool request = m.kind == HttpMessage::Kind::kRequest;
    if (!RoleAllows(d, request)) {
      Notice(d, request ? "request in the direction that carries responses" : "response in the direction that carries requests",
             St::kResync);
      return;
    }
    uint64_t length = 0;
    const char* why = "";
    const Framing framing = BodyFraming(m, length, &why);
    if (framing == Framing::kInvalid) {
      Notice(d, why, St::kResync);
      return;
    }
    d.synced = true;
    d.cur = std::move(m);
    d.remaining = 0;
    d.expect_continue = d.maybe_no_body = false;
    if (request) AcceptRequest(d, framing, length);
    else AcceptResponse(d, framing, length);
  }

  void StartBody(Dir& d, Framing framing, uint64_t length) {
    switch (framing) {
      case Framing::kChunked:
        d.st = St::kChunkSize;
        break;
      case Framing::kLength:
        d.remaining = length;
        // The body's size is known: one allocation instead of a doubling series that copies the
        // body again at each step (measured: a fifth of the consumer's CPU under 1 MB bodies).
        // Bounded by max_body; an announced length never sent costs address space, not memory.
        d.cur.body.reserve(static_cast<size_t>(std::min<uint64_t>(length, limits_.max_body)));
        if (length == 0) Complete(d);
        else d.st = St::kBody;
        break;
      case Framing::kUntilStatus:
        d.st = St::kUntilStatus;
        d.line_start = true;
        break;
      case Framing::kNone:
      case Framing::kInvalid:
        Complete(d);
        break;
    }
  }

  void AcceptRequest(Dir& d, Framing framing, uint64_t length) {
    HttpMessage& m = d.cur;
    if (auto host = HeaderValue(m, "Host")) m.authority = *host;
    else if (m.method == "CONNECT") m.authority = m.path;  // authority-form target
    else m.authority = AuthorityFromTarget(m.path);
    d.seq = ++seq_;
    if (pending_.size() >= kHttp1MaxPendingRequests) {
      pending_.clear();
      attribution_lost_ = true;
    }
    pending_.push_back({m.method, m.path, m.authority, d.seq, d.start_ts, 0, 0});
    d.expect_continue = HasToken(m, "Expect", "100-continue");
    if (m.method == "CONNECT" || HeaderValue(m, "Upgrade")) upgrade_seq_ = d.seq;
    StartBody(d, framing, length);
  }

  void AcceptResponse(Dir& d, Framing framing, uint64_t length) {
    HttpMessage& m = d.cur;
    const int status = m.status;
    const bool final_response = status >= 200 || status == 101;
    std::optional<Pending> answered;
    if (final_response) {
      if (!pending_.empty()) {
        answered = std::move(pending_.front());
        pending_.pop_front();
      }
      if (attribution_lost_) {
        // Unattributed until every request sent before the loss has had its answer.
        if (pending_.empty()) attribution_lost_ = false;
        answered.reset();
      }
    } else if (!pending_.empty() && !attribution_lost_) {
      answered = pending_.front();
    }
    if (answered) {
      m.request_method = answered->method;
      m.request_path = answered->path;
    }
    d.answered = answered;
    const bool head = answered && answered->method == "HEAD";
    const bool connect = answered && answered->method == "CONNECT";
    Dir& req = Other(d);

    if (final_response && answered && req.expect_continue && req.seq == answered->seq &&
        (req.st == St::kBody || req.st == St::kChunkSize) && req.cur.body_wire_len == 0)
      req.maybe_no_body = true;

    if (status == 101 || (connect && status / 100 == 2)) {
      Complete(d);
      Notice(d, status == 101 ? "connection switched protocols (101); not decoded further"
                              : "CONNECT tunnel established; not decoded further",
             St::kOpaque);
      for (Dir& x : dirs_) {
        x.st = St::kOpaque;
        x.buf.clear();
        x.pos = 0;
      }
      return;
    }
    // The server did not switch protocols: what the client sent next is HTTP again.
    const bool release = final_response && answered && answered->seq == upgrade_seq_;
    if (release) upgrade_seq_ = 0;
    if (status < 200 || status == 204 || status == 304 || head) {
      framing = Framing::kNone;
    } else if (framing == Framing::kNone && (m.proto == "HTTP/1.0" || HasToken(m, "Connection", "close"))) {
      framing = Framing::kUntilStatus;
    }
    StartBody(d, framing, length);
    if (release && req.st == St::kHold) {
      req.st = St::kStart;
      Process(req);
    }
  }

  void SkipBody(Dir& d, uint64_t n) {
    d.cur.body_wire_len += n;
    d.cur.body_uncaptured += n;
    d.cur.body_truncated = true;
  }

  void AppendBody(Dir& d, std::string_view bytes) {
    HttpMessage& m = d.cur;
    m.body_wire_len += bytes.size();
    const uint64_t room = limits_.max_body > m.body.size() ? limits_.max_body - m.body.size() : 0;
    if (bytes.size() > room) m.body_truncated = true;
    m.body.append(bytes.substr(0, static_cast<size_t>(std::min<uint64_t>(room, bytes.size()))));
  }

  void DecodeBody(Dir& d, HttpMessage& m) {
    auto enc = HeaderValue(m, "Content-Encoding");
    if (!enc) return;
    m.content_encoding = *enc;
    if (limits_.raw || m.body.empty()) return;
    bool only_identity = true;
    ForEachToken(*enc, [&](std::string_view t) { only_identity = only_identity && IEquals(t, "identity"); });
    if (only_identity) return;
    DecodeResult r = DecodeContentBounded(*enc, m.body, limits_.max_body);
    const char* problem = nullptr;
    switch (r.status) {
      case DecodeStatus::kOk:
        break;
      case DecodeStatus::kTruncated:
        m.body_truncated = true;
        break;
      case DecodeStatus::kIncomplete:
        if (!m.body_truncated) problem = "compressed data ends early";
        break;
      case DecodeStatus::kError:
        problem = "corrupt data";
        break;
      case DecodeStatus::kUnsupported:
        problem = "unsupported encoding";
        break;
    }
    if (problem) {
      if (sink_.notice)
        sink_.notice(fmt::format("HTTP/1 {}: {} body with Content-Encoding \"{}\" not decoded ({}); kept as sent",
                                 d.flow == Flow::kOut ? "out" : "in",
                                 m.kind == HttpMessage::Kind::kRequest ? "request" : "response", Printable(*enc), problem));
      return;
    }
    m.body = std::move(r.out);
    m.body_decoded = true;
  }

  void Complete(Dir& d) {
    HttpMessage m = std::move(d.cur);
    d.cur = HttpMessage{};
    const bool request = m.kind == HttpMessage::Kind::kRequest;
    d.st = request && upgrade_seq_ == d.seq && d.seq != 0 ? St::kHold : St::kStart;
    d.remaining = 0;
    d.expect_continue = d.maybe_no_body = false;
    d.bs = {};
    DecodeBody(d, m);
    m.sent = d.flow == Flow::kOut;
    m.first_ts_ns = d.start_ts;
    m.ts_ns = d.ts;
    if (request) {
      // Its timing and size, for the response (already popped from pending_ when the server
      // answered before the body ended).
      std::optional<Pending>& early = Other(d).answered;
      for (Pending* p : {FindPending(d.seq), early && early->seq == d.seq ? &*early : nullptr}) {
        if (!p) continue;
        p->last_ts = d.ts;
        p->body_len = m.body_wire_len;
      }
    } else if (d.answered && m.status >= 200) {
      m.request_authority = d.answered->authority;
      m.request_first_ts_ns = d.answered->first_ts;
      m.request_last_ts_ns = d.answered->last_ts;
      m.request_body_len = d.answered->body_len;
    }
    if (!request) d.answered.reset();
    // Bytes after this message in the same call begin the next one.
    d.start_ts = d.ts;
    if (sink_.message) sink_.message(std::move(m));
  }

  Pending* FindPending(uint64_t seq) {
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it)
      if (it->seq == seq) return &*it;
    return nullptr;
  }

  DecoderSink sink_;
  DecoderLimits limits_;
  size_t head_cap_;
  Dir dirs_[2];
  std::deque<Pending> pending_;
  bool attribution_lost_ = false;
  uint64_t seq_ = 0;
  uint64_t upgrade_seq_ = 0;
};

}  // namespace

std::unique_ptr<ConnectionDecoder> MakeHttp1Decoder(DecoderSink sink, DecoderLimits limits) {
  return std::make_unique<Http1Decoder>(std::move(sink), limits);
}

}  // namespace gotlscap::decode
