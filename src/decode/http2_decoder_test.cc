// Tests of the HTTP/2 decoder over real HTTP/2 byte streams: header blocks come from nghttp2's
// HPACK deflater, frame headers are written here.
#include "decode/http2_decoder.h"

#include <gtest/gtest.h>

#include "testing/compress.h"
#include <nghttp2/nghttp2.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "decode/http_message.h"

namespace gotlscap::decode {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
namespace h2 = http2;

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const uint32_t len = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(len >> 16);
  f += static_cast<char>(len >> 8);
  f += static_cast<char>(len);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>(stream >> 24);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  f += payload;
  return f;
}

std::string U32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Settings(std::vector<std::pair<uint16_t, uint32_t>> kv) {
  std::string p;
  for (auto [id, v] : kv) {
    p += static_cast<char>(id >> 8);
    p += static_cast<char>(id);
    p += U32(v);
  }
  return Frame(h2::kSettings, 0, 0, p);
}
std::string SettingsAck() { return Frame(h2::kSettings, h2::kFlagAck, 0, ""); }

// nghttp2's HPACK encoder, one per sending side, as a real endpoint has.
class Deflater {
 public:
  explicit Deflater(size_t max_table = 4096) {
    nghttp2_hd_deflater* d = nullptr;
    EXPECT_EQ(nghttp2_hd_deflate_new(&d, max_table), 0);
    d_.reset(d);
  }

  std::string Encode(const Headers& hs, bool no_index = false) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : hs)
      nva.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                               reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                               static_cast<uint8_t>(no_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
    std::string out(nghttp2_hd_deflate_bound(d_.get(), nva.data(), nva.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(d_.get(), reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                            nva.data(), nva.size());
    EXPECT_GE(n, 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }
  void ChangeTableSize(size_t v) { EXPECT_EQ(nghttp2_hd_deflate_change_table_size(d_.get(), v), 0); }

 private:
  struct Del {
    void operator()(nghttp2_hd_deflater* d) const { nghttp2_hd_deflate_del(d); }
  };
  std::unique_ptr<nghttp2_hd_deflater, Del> d_;
};

// HEADERS (+ CONTINUATION when the block exceeds max_frame).
std::string HeaderFrames(uint32_t stream, const std::string& block, bool end_stream, size_t max_frame = 16384) {
  std::string out;
  size_t off = 0;
  bool first = true;
  do {
    const size_t n = std::min(max_frame, block.size() - off);
    const bool last = off + n == block.size();
    uint8_t flags = last ? h2::kFlagEndHeaders : 0;
    if (first && end_stream) flags |= h2::kFlagEndStream;
    out += Frame(first ? h2::kHeaders : h2::kContinuation, flags, stream, block.substr(off, n));
    off += n;
    first = false;
  } while (off < block.size());
  return out;
}

std::string Data(uint32_t stream, std::string_view body, bool end_stream) {
  return Frame(h2::kData, end_stream ? h2::kFlagEndStream : 0, stream, body);
}

std::string Gzip(std::string_view in) { return testing::Compress(in, 16 + MAX_WBITS); }

std::string GrpcMessage(std::string_view payload) {
  return std::string(1, '\0') + U32(static_cast<uint32_t>(payload.size())) + std::string(payload);
}

// A recorded conversation: each step is one captured call.
struct Step {
  Flow flow;
  std::string bytes;
};

// A connection between a client and a server, each with its own HPACK encoder. The traced process
// is the client unless traced_is_server.
struct Conversation {
  bool traced_is_server = false;
  // Encoders that may grow up to 64 KiB when the peer allows it (their table starts at 4096).
  Deflater client_hpack{65536}, server_hpack{65536};
  std::vector<Step> steps;

  Flow ClientFlow() const { return traced_is_server ? Flow::kIn : Flow::kOut; }
  Flow ServerFlow() const { return traced_is_server ? Flow::kOut : Flow::kIn; }
  void Client(std::string bytes) { steps.push_back({ClientFlow(), std::move(bytes)}); }
  void Server(std::string bytes) { steps.push_back({ServerFlow(), std::move(bytes)}); }

  void Start() {
    Client(std::string(h2::kClientPreface) + Settings({{0x2, 0}, {0x4, 4194304}}));
    Server(Settings({{0x5, 1 << 20}, {0x3, 250}}) + Frame(h2::kWindowUpdate, 0, 0, U32(983041)));
    Server(SettingsAck());
    Client(SettingsAck());
  }
  std::string Req(const Headers& hs) { return client_hpack.Encode(hs); }
  std::string Resp(const Headers& hs) { return server_hpack.Encode(hs); }
};

Headers GetHeaders(const std::string& path, const std::string& method = "GET") {
  return {{":method", method},
          {":scheme", "https"},
          {":authority", "example.com"},
          {":path", path},
          {"user-agent", "gotlscap-test/1.0"},
          {"accept-encoding", "gzip"}};
}
Headers OkHeaders(const std::string& type = "text/plain") {
  return {{":status", "200"}, {"content-type", type}, {"server", "test"}};
}

struct Result {
  std::vector<HttpMessage> messages;
  std::vector<std::string> notices;
};

DecoderSink SinkInto(Result& r) {
  return DecoderSink{[&r](HttpMessage&& m) { r.messages.push_back(std::move(m)); },
                     [&r](std::string_view n) { r.notices.emplace_back(n); }};
}

enum class Chunking { kWhole, kByteAtATime, kRandom };

Result Decode(const std::vector<Step>& steps, DecoderLimits limits = {}, Chunking chunking = Chunking::kWhole,
           size_t first_step = 0, size_t skip_bytes = 0) {
  Result r;
  auto dec = MakeHttp2Decoder(SinkInto(r), limits);
  EXPECT_STREQ(dec->protocol(), "HTTP/2");
  std::mt19937 rng(7);
  uint64_t ts = 1000;
  for (size_t i = first_step; i < steps.size(); ++i) {
    std::string_view b = steps[i].bytes;
    if (i == first_step) b.remove_prefix(std::min(skip_bytes, b.size()));
    ++ts;
    switch (chunking) {
      case Chunking::kWhole:
        dec->Feed(steps[i].flow, b, ts);
        break;
      case Chunking::kByteAtATime:
        for (char c : b) dec->Feed(steps[i].flow, std::string_view(&c, 1), ts);
        break;
      case Chunking::kRandom:
        while (!b.empty()) {
          const size_t n = std::min<size_t>(b.size(), 1 + rng() % 700);
          dec->Feed(steps[i].flow, b.substr(0, n), ts);
          b.remove_prefix(n);
        }
        break;
    }
  }
  return r;
}

const HttpMessage* Find(const Result& r, HttpMessage::Kind kind, uint32_t stream) {
  for (const auto& m : r.messages)
    if (m.kind == kind && m.stream == stream) return &m;
  return nullptr;
}

bool AnyNoticeContains(const Result& r, std::string_view what) {
  return std::any_of(r.notices.begin(), r.notices.end(),
                     [&](const std::string& n) { return n.find(what) != std::string::npos; });
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

TEST(Http2Decoder, GetAnd200) {
  for (bool traced_is_server : {false, true}) {
    SCOPED_TRACE(traced_is_server ? "traced server" : "traced client");
    Conversation c;
    c.traced_is_server = traced_is_server;
    if (traced_is_server) {
      // Go's server writes its SETTINGS before it has read the client preface.
      c.Server(Settings({{0x5, 1 << 20}}));
      c.Client(std::string(h2::kClientPreface) + Settings({{0x2, 0}}));
      c.Server(SettingsAck());
      c.Client(SettingsAck());
    } else {
      c.Start();
    }
    c.Client(HeaderFrames(1, c.Req(GetHeaders("/hello?x=1")), true));
    c.Server(HeaderFrames(1, c.Resp(OkHeaders()), false) + Data(1, "hello ", false));
    c.Server(Data(1, "world", true));
    Result r = Decode(c.steps);
    EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
    ASSERT_EQ(r.messages.size(), 2u);
    const HttpMessage& req = r.messages[0];
    EXPECT_EQ(req.kind, HttpMessage::Kind::kRequest);
    EXPECT_EQ(req.proto, "HTTP/2");
    EXPECT_EQ(req.stream, 1u);
    EXPECT_EQ(req.method, "GET");
    EXPECT_EQ(req.path, "/hello?x=1");
    EXPECT_EQ(req.authority, "example.com");
    EXPECT_EQ(req.headers, GetHeaders("/hello?x=1"));  // pseudo-headers included, in order
    EXPECT_TRUE(req.body.empty());
    const HttpMessage& resp = r.messages[1];
    EXPECT_EQ(resp.kind, HttpMessage::Kind::kResponse);
    EXPECT_EQ(resp.stream, 1u);
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.headers, OkHeaders());
    EXPECT_EQ(resp.body, "hello world");
    EXPECT_EQ(resp.body_wire_len, 11u);
    EXPECT_FALSE(resp.body_truncated);
    EXPECT_EQ(resp.request_method, "GET");
    EXPECT_EQ(resp.request_path, "/hello?x=1");
    EXPECT_EQ(resp.ts_ns, 1000u + c.steps.size());
  }
}

// Many streams open at once, their frames interleaved, responses in another order.
Conversation ManyStreams(int n) {
  Conversation c;
  c.Start();
  std::string client_bytes;
  for (int i = 0; i < n; ++i) {
    const uint32_t id = 1 + 2 * i;
    const bool post = i % 3 == 0;
    client_bytes += HeaderFrames(id, c.Req(GetHeaders("/item/" + std::to_string(i), post ? "POST" : "GET")), !post);
  }
  // Request bodies, interleaved across streams in two halves.
  for (int part = 0; part < 2; ++part)
    for (int i = 0; i < n; i += 3)
      client_bytes += Data(1 + 2 * i, part == 0 ? "body-" : std::to_string(i), part == 1);
  c.Client(client_bytes);
  std::string server_bytes;
  for (int i = n - 1; i >= 0; --i) {
    Headers hs = OkHeaders();
    hs.emplace_back("x-item", std::to_string(i));
    server_bytes += HeaderFrames(1 + 2 * i, c.Resp(hs), false);
  }
  for (int part = 0; part < 3; ++part) {
    for (int i = 0; i < n; ++i) {
      const int j = (i * 7) % n;  // a permutation when gcd(7, n) == 1
      server_bytes += Data(1 + 2 * j, "r" + std::to_string(j) + "." + std::to_string(part) + ";", part == 2);
    }
    c.Server(server_bytes);
    server_bytes.clear();
  }
  return c;
}

TEST(Http2Decoder, ManyConcurrentInterleavedStreams) {
  const int n = 150;
  Conversation c = ManyStreams(n);
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 2u * n);
  for (int i = 0; i < n; ++i) {
    const uint32_t id = 1 + 2 * i;
    const HttpMessage* req = Find(r, HttpMessage::Kind::kRequest, id);
    const HttpMessage* resp = Find(r, HttpMessage::Kind::kResponse, id);
    ASSERT_TRUE(req && resp) << i;
    EXPECT_EQ(req->path, "/item/" + std::to_string(i));
    EXPECT_EQ(req->method, i % 3 == 0 ? "POST" : "GET");
    EXPECT_EQ(req->body, i % 3 == 0 ? "body-" + std::to_string(i) : "");
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->headers.back(), (std::pair<std::string, std::string>("x-item", std::to_string(i))));
    const std::string s = std::to_string(i);
    EXPECT_EQ(resp->body, "r" + s + ".0;r" + s + ".1;r" + s + ".2;");
    EXPECT_EQ(resp->request_path, req->path);
    EXPECT_EQ(resp->request_method, req->method);
  }
}

TEST(Http2Decoder, LargeHeadersUseContinuation) {
  Conversation c;
  c.Start();
  Headers hs = GetHeaders("/big");
  for (int i = 0; i < 12; ++i) hs.emplace_back("x-large-" + std::to_string(i), std::string(5000, 'a' + i));
  const std::string block = c.Req(hs);
  ASSERT_GT(block.size(), 2u * 16384);
  const std::string frames = HeaderFrames(1, block, true, 16384);
  ASSERT_EQ(static_cast<uint8_t>(frames[3]), h2::kHeaders);
  c.Client(frames);
  c.Server(HeaderFrames(1, c.Resp({{":status", "204"}}), true));
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].headers, hs);
  EXPECT_EQ(r.messages[1].status, 204);
  EXPECT_EQ(r.messages[1].request_path, "/big");
}

TEST(Http2Decoder, DynamicTableReusedAcrossRequests) {
  Conversation c;
  c.Start();
  Headers hs = GetHeaders("/first");
  hs.emplace_back("authorization", "Bearer abcdefghijklmnopqrstuvwxyz0123456789");
  hs.emplace_back("x-request-context", "tenant=42;region=eu-west-1;feature=alpha");
  const std::string first = c.Req(hs);
  c.Client(HeaderFrames(1, first, true));
  c.Server(HeaderFrames(1, c.Resp(OkHeaders()), true));
  hs[3].second = "/second";
  const std::string second = c.Req(hs);
  // The second block mostly references the dynamic table the first one filled.
  EXPECT_LT(second.size() * 2, first.size());
  c.Client(HeaderFrames(3, second, true));
  c.Server(HeaderFrames(3, c.Resp(OkHeaders()), true));
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[2].headers, hs);
  EXPECT_EQ(r.messages[2].path, "/second");
  EXPECT_EQ(r.messages[3].headers, OkHeaders());
  EXPECT_EQ(r.messages[3].request_path, "/second");
}

TEST(Http2Decoder, HeaderTableSizeSettingsChangeThePeersDecoder) {
  Conversation c;
  c.Start();
  Headers hs = GetHeaders("/a");
  hs.emplace_back("x-token", std::string(300, 't'));
  c.Client(HeaderFrames(1, c.Req(hs), true));
  c.Server(HeaderFrames(1, c.Resp(OkHeaders()), true));
  // The server shrinks the table its decoder keeps; the client acknowledges, then its encoder
  // starts the next block with a table size update.
  c.Server(Settings({{0x1, 128}}));
  c.Client(SettingsAck());
  c.client_hpack.ChangeTableSize(128);
  hs[3].second = "/b";
  c.Client(HeaderFrames(3, c.Req(hs), true));
  c.Server(SettingsAck());  // (the server acknowledging nothing pending: ignored)
  c.Server(HeaderFrames(3, c.Resp(OkHeaders()), true));
  // Then it grows beyond the 4096 default: a 6000-byte entry only fits the larger table.
  c.Server(Settings({{0x1, 16384}}));
  c.Client(SettingsAck());
  c.client_hpack.ChangeTableSize(16384);
  hs[3].second = "/c";
  hs.emplace_back("x-huge", std::string(6000, 'h'));
  c.Client(HeaderFrames(7, c.Req(hs), true));
  const std::string again = c.Req(hs);
  EXPECT_LT(again.size(), 100u);  // the 6000-byte value is indexed
  c.Client(HeaderFrames(9, again, true));
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  const HttpMessage* b = Find(r, HttpMessage::Kind::kRequest, 3);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->path, "/b");
  EXPECT_EQ(b->headers.back().second, std::string(300, 't'));
  const HttpMessage* m7 = Find(r, HttpMessage::Kind::kRequest, 7);
  const HttpMessage* m9 = Find(r, HttpMessage::Kind::kRequest, 9);
  ASSERT_TRUE(m7 && m9);
  EXPECT_EQ(m7->headers, hs);
  EXPECT_EQ(m9->headers, hs);
}

TEST(Http2Decoder, HeaderTableSizeDecreaseWithoutUpdateIsAnError) {
  // After the ACK of a smaller SETTINGS_HEADER_TABLE_SIZE the encoder must send a table size
  // update; a block without one is reported, not decoded with a stale table.
  Conversation c;
  c.Start();
  c.Server(Settings({{0x1, 0}}));
  c.Client(SettingsAck());
  c.Client(HeaderFrames(1, c.Req(GetHeaders("/x")), true));  // encoder not told: no update
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.messages.empty());
  EXPECT_TRUE(AnyNoticeContains(r, "could not be decoded")) << Join(r.notices);
}

TEST(Http2Decoder, PaddingAndPriority) {
  Conversation c;
  c.Start();
  const std::string block = c.Req(GetHeaders("/pad", "POST"));
  // HEADERS with PADDED (7 bytes) and PRIORITY (5 bytes).
  std::string payload = std::string(1, '\x07') + U32(0) + std::string(1, '\x0f') + block + std::string(7, '\0');
  c.Client(Frame(h2::kHeaders, h2::kFlagEndHeaders | h2::kFlagPadded | h2::kFlagPriority, 1, payload));
  c.Client(Frame(h2::kPriority, 0, 1, U32(0) + "\x10"));
  // DATA with 10 bytes of padding, then DATA padded with 0 bytes, then pad length only.
  c.Client(Frame(h2::kData, h2::kFlagPadded, 1, std::string(1, '\x0a') + "abc" + std::string(10, '\0')));
  c.Client(Frame(h2::kData, h2::kFlagPadded, 1, std::string(1, '\0') + "def"));
  c.Client(Frame(h2::kData, h2::kFlagPadded | h2::kFlagEndStream, 1, std::string(1, '\x02') + std::string(2, '\0')));
  c.Server(Frame(h2::kPing, 0, 0, "12345678") + Frame(h2::kPing, h2::kFlagAck, 0, "12345678"));
  c.Server(HeaderFrames(1, c.Resp({{":status", "201"}}), true));
  for (Chunking ch : {Chunking::kWhole, Chunking::kByteAtATime}) {
    Result r = Decode(c.steps, {}, ch);
    EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].path, "/pad");
    EXPECT_EQ(r.messages[0].body, "abcdef");
    EXPECT_EQ(r.messages[0].body_wire_len, 6u);
    EXPECT_EQ(r.messages[1].status, 201);
  }
}

TEST(Http2Decoder, GzipBodyIsDecoded) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i) + " of a compressible body\n";
  const std::string gz = Gzip(text);
  ASSERT_LT(gz.size(), text.size() / 4);
  Conversation c;
  c.Start();
  c.Client(HeaderFrames(1, c.Req(GetHeaders("/gz")), true));
  Headers rh = OkHeaders();
  rh.emplace_back("content-encoding", "gzip");
  std::string frames = HeaderFrames(1, c.Resp(rh), false);
  for (size_t off = 0; off < gz.size(); off += 1000)
    frames += Data(1, std::string_view(gz).substr(off, 1000), off + 1000 >= gz.size());
  c.Server(frames);
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 2u);
  const HttpMessage& m = r.messages[1];
  EXPECT_EQ(m.content_encoding, "gzip");
  EXPECT_TRUE(m.body_decoded);
  EXPECT_EQ(m.body, text);
  EXPECT_EQ(m.body_wire_len, gz.size());

  DecoderLimits raw;
  raw.raw = true;
  Result rr = Decode(c.steps, raw);
  ASSERT_EQ(rr.messages.size(), 2u);
  EXPECT_FALSE(rr.messages[1].body_decoded);
  EXPECT_EQ(rr.messages[1].body, gz);

  // A body over max_body is kept truncated, and not decoded.
  DecoderLimits small;
  small.max_body = 100;
  Result rs = Decode(c.steps, small);
  ASSERT_EQ(rs.messages.size(), 2u);
  EXPECT_TRUE(rs.messages[1].body_truncated);
  EXPECT_EQ(rs.messages[1].body, gz.substr(0, 100));
  EXPECT_EQ(rs.messages[1].body_wire_len, gz.size());
  EXPECT_FALSE(rs.messages[1].body_decoded);
}

TEST(Http2Decoder, GrpcLengthPrefixedMessages) {
  Conversation c;
  c.Start();
  Headers req = {{":method", "POST"},          {":scheme", "https"},
                 {":path", "/pkg.Svc/Method"}, {":authority", "grpc.example"},
                 {"content-type", "application/grpc+proto"}, {"te", "trailers"}};
  c.Client(HeaderFrames(1, c.Req(req), false));
  const std::string body = GrpcMessage("abc") + GrpcMessage("") + GrpcMessage(std::string(1000, 'x'));
  // DATA boundaries fall inside a length prefix and inside a message.
  c.Client(Data(1, body.substr(0, 7), false));
  c.Client(Data(1, body.substr(7, 500), false));
  c.Client(Data(1, body.substr(507), true));
  c.Server(HeaderFrames(1, c.Resp({{":status", "200"}, {"content-type", "application/grpc"}}), false));
  const std::string rbody = GrpcMessage(std::string(70000, 'y'));
  for (size_t off = 0; off < rbody.size(); off += 16384)
    c.Server(Data(1, std::string_view(rbody).substr(off, 16384), false));
  c.Server(HeaderFrames(1, c.Resp({{"grpc-status", "0"}, {"grpc-message", ""}}), true));
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].path, "/pkg.Svc/Method");
  EXPECT_EQ(r.messages[0].grpc_messages, (std::vector<uint64_t>{3, 0, 1000}));
  EXPECT_EQ(r.messages[0].body, body);
  const HttpMessage& resp = r.messages[1];
  EXPECT_EQ(resp.grpc_messages, (std::vector<uint64_t>{70000}));
  ASSERT_EQ(resp.headers.size(), 2u);
  ASSERT_EQ(resp.trailers.size(), 2u);
  EXPECT_EQ(resp.trailers[0], (std::pair<std::string, std::string>("grpc-status", "0")));
  EXPECT_EQ(resp.trailers[1], (std::pair<std::string, std::string>("grpc-message", "")));
  EXPECT_EQ(resp.request_path, "/pkg.Svc/Method");
}

TEST(Http2Decoder, RstStreamReportsTheIncompleteMessage) {
  Conversation c;
  c.Start();
  c.Client(HeaderFrames(1, c.Req(GetHeaders("/upload", "POST")), false) + Data(1, "partial", false));
  c.Client(Frame(h2::kRstStream, 0, 1, U32(0x8)));  // CANCEL
  c.Client(HeaderFrames(3, c.Req(GetHeaders("/next")), true));
  c.Server(HeaderFrames(3, c.Resp(OkHeaders()), false) + Data(3, "ok", true));
  c.Server(Frame(h2::kRstStream, 0, 5, U32(0x7)));  // REFUSED_STREAM on a stream never seen
  Result r = Decode(c.steps);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].stream, 1u);
  EXPECT_EQ(r.messages[0].body, "partial");
  EXPECT_EQ(r.messages[1].path, "/next");
  EXPECT_EQ(r.messages[2].body, "ok");
  EXPECT_EQ(r.messages[2].request_path, "/next");
  ASSERT_EQ(r.notices.size(), 2u) << Join(r.notices);
  EXPECT_NE(r.notices[0].find("stream 1 reset by the client (CANCEL)"), std::string::npos) << r.notices[0];
  EXPECT_NE(r.notices[1].find("REFUSED_STREAM"), std::string::npos) << r.notices[1];
}

TEST(Http2Decoder, PushPromiseHeaderBlockIsDecoded) {
  Conversation c;
  c.Start();
  c.Client(HeaderFrames(1, c.Req(GetHeaders("/index.html")), true));
  const std::string promise = c.Resp(GetHeaders("/style.css"));
  c.Server(Frame(h2::kPushPromise, h2::kFlagEndHeaders, 1, U32(2) + promise));
  c.Server(HeaderFrames(1, c.Resp(OkHeaders("text/html")), false) + Data(1, "<html>", true));
  c.Server(HeaderFrames(2, c.Resp(OkHeaders("text/css")), false) + Data(2, "body{}", true));
  Result r = Decode(c.steps);
  EXPECT_TRUE(r.notices.empty()) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 4u);
  const HttpMessage* pushed_req = Find(r, HttpMessage::Kind::kRequest, 2);
  const HttpMessage* pushed_resp = Find(r, HttpMessage::Kind::kResponse, 2);
  ASSERT_TRUE(pushed_req && pushed_resp);
  EXPECT_EQ(pushed_req->path, "/style.css");
  EXPECT_EQ(pushed_resp->body, "body{}");
  EXPECT_EQ(pushed_resp->request_path, "/style.css");
  EXPECT_EQ(Find(r, HttpMessage::Kind::kResponse, 1)->headers, OkHeaders("text/html"));
}

bool SameMessage(const HttpMessage& a, const HttpMessage& b) {
  return a.proto == b.proto && a.kind == b.kind && a.stream == b.stream && a.method == b.method &&
         a.path == b.path && a.authority == b.authority && a.status == b.status && a.headers == b.headers &&
         a.trailers == b.trailers &&
         a.body == b.body && a.body_wire_len == b.body_wire_len && a.content_encoding == b.content_encoding &&
         a.body_decoded == b.body_decoded && a.body_truncated == b.body_truncated &&
         a.grpc_messages == b.grpc_messages && a.request_method == b.request_method &&
         a.request_path == b.request_path && a.ts_ns == b.ts_ns;
}

TEST(Http2Decoder, ChunkingDoesNotChangeTheResult) {
  Conversation c = ManyStreams(20);
  // Add a gzip body, a large header block and padding to the same connection.
  Headers rh = OkHeaders();
  rh.emplace_back("content-encoding", "gzip");
  Headers big = GetHeaders("/big");
  big.emplace_back("x-blob", std::string(40000, 'b'));
  c.Client(HeaderFrames(101, c.Req(big), true, 16384));
  c.Server(HeaderFrames(101, c.Resp(rh), false) +
           Frame(h2::kData, h2::kFlagPadded | h2::kFlagEndStream, 101,
                 std::string(1, '\x03') + Gzip("compressed text") + std::string(3, '\0')));
  const Result whole = Decode(c.steps, {}, Chunking::kWhole);
  EXPECT_TRUE(whole.notices.empty()) << Join(whole.notices);
  ASSERT_EQ(whole.messages.size(), 42u);
  for (Chunking ch : {Chunking::kByteAtATime, Chunking::kRandom}) {
    const Result other = Decode(c.steps, {}, ch);
    ASSERT_EQ(other.messages.size(), whole.messages.size());
    for (size_t i = 0; i < whole.messages.size(); ++i) EXPECT_TRUE(SameMessage(whole.messages[i], other.messages[i])) << i;
    EXPECT_EQ(other.notices, whole.notices);
  }
  const HttpMessage* m = Find(whole, HttpMessage::Kind::kResponse, 101);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body, "compressed text");
}

// A connection with three sequential exchanges that share HPACK state.
Conversation ThreeExchanges() {
  Conversation c;
  c.Start();
  for (uint32_t id : {1u, 3u, 5u}) {
    const std::string path = "/r" + std::to_string(id);
    c.Client(HeaderFrames(id, c.Req(GetHeaders(path, "POST")), false));
    c.Client(Data(id, "request body " + std::to_string(id), true));
    c.Server(HeaderFrames(id, c.Resp(OkHeaders()), false));
    c.Server(Data(id, "response body ", false) + Data(id, std::to_string(id), true));
  }
  return c;
}

TEST(Http2Decoder, MidStreamStartGivesUndecodableNoticesNotWrongValues) {
  Conversation c = ThreeExchanges();
  // Steps: 0-3 preface/settings, then 4 steps per exchange. Start inside exchange 2's request
  // DATA frame (3 bytes in: no frame boundary at the start).
  for (Chunking ch : {Chunking::kWhole, Chunking::kByteAtATime, Chunking::kRandom}) {
    for (size_t skip : {0u, 3u}) {
      SCOPED_TRACE(skip);
      Result r = Decode(c.steps, {}, ch, 4 + 4 + 1, skip);
      // Headers of streams 3 and 5 reference table entries made before the cut: no values
      // may appear for them, only notices.
      EXPECT_TRUE(AnyNoticeContains(r, "undecodable")) << Join(r.notices);
      for (const auto& m : r.messages) {
        EXPECT_TRUE(m.method.empty() && m.path.empty() && m.status == 0 && m.headers.empty()) << m.stream;
        EXPECT_TRUE(m.request_method.empty() && m.request_path.empty());
      }
      // DATA is still attributed: stream 5's bodies (roles learnt from stream 5's HEADERS order).
      const HttpMessage* req5 = Find(r, HttpMessage::Kind::kRequest, 5);
      const HttpMessage* resp5 = Find(r, HttpMessage::Kind::kResponse, 5);
      ASSERT_TRUE(req5 && resp5) << Join(r.notices);
      EXPECT_EQ(req5->body, "request body 5");
      EXPECT_EQ(resp5->body, "response body 5");
      // Stream 3's response body too, once the roles were known.
      const HttpMessage* resp3 = Find(r, HttpMessage::Kind::kResponse, 3);
      ASSERT_TRUE(resp3);
      EXPECT_EQ(resp3->body, "response body 3");
      // "undecodable" is said once per direction, not per stream.
      EXPECT_EQ(std::count_if(r.notices.begin(), r.notices.end(),
                              [](const std::string& n) { return n.find("undecodable") != std::string::npos; }),
                2);
    }
  }
}

TEST(Http2Decoder, MidStreamStartWithFreshHpackStateDecodes) {
  // Picked up after the preface and SETTINGS (cut inside the SETTINGS frame): the first header
  // blocks only use the static table and new literals, so they decode, correctly.
  Conversation c = ThreeExchanges();
  for (Chunking ch : {Chunking::kWhole, Chunking::kByteAtATime, Chunking::kRandom}) {
  Result r = Decode(c.steps, {}, ch, 0, 30);  // 24-byte preface + 6 bytes
  ASSERT_EQ(r.notices.size(), 1u) << Join(r.notices);
  EXPECT_TRUE(AnyNoticeContains(r, "to find a frame boundary")) << Join(r.notices);
  ASSERT_EQ(r.messages.size(), 6u) << Join(r.notices);
  for (uint32_t id : {1u, 3u, 5u}) {
    const HttpMessage* req = Find(r, HttpMessage::Kind::kRequest, id);
    const HttpMessage* resp = Find(r, HttpMessage::Kind::kResponse, id);
    ASSERT_TRUE(req && resp);
    EXPECT_EQ(req->path, "/r" + std::to_string(id));
    EXPECT_EQ(req->headers, GetHeaders(req->path, "POST"));
    EXPECT_EQ(resp->headers, OkHeaders());
    EXPECT_EQ(resp->body, "response body " + std::to_string(id));
  }
  }
}

TEST(Http2Decoder, HostileInputStaysWithinLimits) {
  DecoderLimits limits;
  limits.max_buffered = 64 * 1024;
  limits.max_body = 1000;
  {
    // Random bytes in both directions: no crash, no message with made-up values is required.
    std::mt19937 rng(1);
    for (int round = 0; round < 200; ++round) {
      Result r;
      auto dec = MakeHttp2Decoder(SinkInto(r), limits);
      for (int k = 0; k < 20; ++k) {
        std::string b(rng() % 300, '\0');
        for (char& ch : b) ch = static_cast<char>(rng());
        if (round % 2 == 0 && k == 0) b = std::string(h2::kClientPreface) + b;
        dec->Feed(k % 2 ? Flow::kIn : Flow::kOut, b, k);
      }
    }
  }
  {
    // A frame longer than max_buffered is skipped; a body over max_body is truncated.
    Conversation c;
    c.Start();
    c.Client(Frame(0xfa, 0, 0, std::string(200000, 'u')));  // unknown type: ignored
    c.Client(HeaderFrames(1, c.Req(GetHeaders("/a", "POST")), false));
    c.Client(Data(1, std::string(100000, 'd'), true));
    c.Server(Frame(h2::kGoAway, 0, 0, U32(1) + U32(0xb) + "calm down"));
    Result r = Decode(c.steps, limits, Chunking::kRandom);
    ASSERT_EQ(r.messages.size(), 1u) << Join(r.notices);
    EXPECT_TRUE(r.messages[0].body_truncated);
    EXPECT_EQ(r.messages[0].body.size(), 1000u);
    EXPECT_EQ(r.messages[0].body_wire_len, 100000u);
    EXPECT_TRUE(AnyNoticeContains(r, "ENHANCE_YOUR_CALM calm down")) << Join(r.notices);
    Conversation c2;
    c2.Start();
    c2.Client(Frame(h2::kHeaders, h2::kFlagEndHeaders, 1, std::string(100000, '\x82')));
    Result r2 = Decode(c2.steps, limits);
    EXPECT_TRUE(AnyNoticeContains(r2, "exceeds the buffer limit")) << Join(r2.notices);
  }
  {
    // Thousands of open streams: the oldest are dropped with a notice.
    Conversation c;
    c.Start();
    std::string b;
    for (uint32_t i = 0; i < 3000; ++i) b += HeaderFrames(1 + 2 * i, c.Req(GetHeaders("/s", "POST")), false) + Data(1 + 2 * i, "x", false);
    c.Client(b);
    Result r = Decode(c.steps, limits);
    EXPECT_TRUE(r.messages.empty());
    EXPECT_EQ(std::count_if(r.notices.begin(), r.notices.end(),
                            [](const std::string& n) { return n.find("open streams") != std::string::npos; }),
              2000);
  }
  {
    // An HPACK bomb: one 4000-byte entry referenced thousands of times in a block.
    Conversation c;
    c.Start();
    c.Client(HeaderFrames(1, c.Req(GetHeaders("/a")), true));
    std::string block = c.Req({{"x-bomb", std::string(3000, 'b')}});  // inserted at index 62
    std::string refs(5000, '\xbe');  // indexed field 62
    c.Client(HeaderFrames(3, block, false) + HeaderFrames(5, refs, true));
    Result r = Decode(c.steps, limits);
    EXPECT_TRUE(AnyNoticeContains(r, "header list on stream 5")) << Join(r.notices);
    const HttpMessage* m = Find(r, HttpMessage::Kind::kRequest, 5);
    ASSERT_TRUE(m);
    EXPECT_GT(m->headers.size(), 100u);
    EXPECT_LE(m->headers.size(), h2::kMaxHeaderListSize / 3038);
  }
  {
    // Garbage after a good start: a framing error, then a search for the next frame; a
    // buffer that cannot make progress is given up.
    Conversation c;
    c.Start();
    c.Client(Frame(h2::kPing, 0, 0, "short"));
    c.Client(HeaderFrames(1, c.Req(GetHeaders("/after")), true));
    Result r = Decode(c.steps, limits);
    EXPECT_TRUE(AnyNoticeContains(r, "PING frame length")) << Join(r.notices);
    for (const auto& m : r.messages) EXPECT_TRUE(m.path.empty() || m.path == "/after");
    DecoderLimits tiny;
    tiny.max_buffered = 16;
    Result rt;
    auto dec = MakeHttp2Decoder(SinkInto(rt), tiny);
    dec->Feed(Flow::kOut, std::string(h2::kClientPreface) + Settings({{1, 1}, {2, 2}, {3, 3}}), 1);
    dec->Feed(Flow::kOut, std::string(1000, 'z'), 2);
    EXPECT_TRUE(AnyNoticeContains(rt, "giving up")) << Join(rt.notices);
  }
}

}  // namespace
}  // namespace gotlscap::decode
