#include "decode/http1_decoder.h"

#include <gtest/gtest.h>

#include "testing/compress.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "decode/http_message.h"

namespace gotlscap::decode {
namespace {

using Kind = HttpMessage::Kind;

using testing::Brotli;
using testing::Compress;

struct Segment {
  Flow flow;
  std::string bytes;
};

struct Capture {
  std::vector<HttpMessage> msgs;
  std::vector<std::string> notices;
  DecoderSink Sink() {
    return {[this](HttpMessage&& m) { msgs.push_back(std::move(m)); },
            [this](std::string_view n) { notices.emplace_back(n); }};
  }
};

// Every field, for comparing decodes of the same bytes under different chunkings.
std::string Summary(const HttpMessage& m) {
  std::string s = m.proto + "|" + (m.kind == Kind::kRequest ? "req" : "resp") + "|" + m.method + "|" + m.path + "|" +
                  m.authority + "|" + std::to_string(m.status) + "|";
  for (const auto& [k, v] : m.headers) s += k + "=" + v + ";";
  s += "|";
  for (const auto& [k, v] : m.trailers) s += k + "=" + v + ";";
  s += "|" + m.body + "|" + std::to_string(m.body_wire_len) + "|" + m.content_encoding + "|" +
       std::to_string(m.body_decoded) + std::to_string(m.body_truncated) + "|" + m.request_method + " " + m.request_path;
  return s;
}

std::vector<std::string> Summaries(const Capture& c) {
  std::vector<std::string> v;
  for (const auto& m : c.msgs) v.push_back(Summary(m));
  return v;
}

// Feeds each segment in order, cut into pieces by `cut(segment length)` → piece sizes.
template <typename Cut>
Capture RunScript(const std::vector<Segment>& script, Cut cut, DecoderLimits limits = {}) {
  Capture c;
  {
    auto dec = MakeHttp1Decoder(c.Sink(), limits);
    uint64_t ts = 0;
    for (const auto& seg : script) {
      size_t off = 0;
      for (size_t n : cut(seg.bytes.size())) {
        dec->Feed(seg.flow, std::string_view(seg.bytes).substr(off, n), ++ts);
        off += n;
      }
      EXPECT_EQ(off, seg.bytes.size());
    }
  }
  return c;
}

Capture RunWhole(const std::vector<Segment>& script, DecoderLimits limits = {}) {
  return RunScript(script, [](size_t n) { return std::vector<size_t>{n}; }, limits);
}

std::vector<size_t> Bytewise(size_t n) { return std::vector<size_t>(n, 1); }

// Checks that 1-byte feeds, every two-piece split of every segment and random chunkings all
// decode like one Feed per segment.
void ExpectChunkingInvariant(const std::vector<Segment>& script, const Capture& whole) {
  const auto want = Summaries(whole);
  Capture bytewise = RunScript(script, Bytewise);
  EXPECT_EQ(Summaries(bytewise), want) << "byte by byte";
  EXPECT_EQ(bytewise.notices, whole.notices);
  for (size_t i = 0; i < script.size(); ++i) {
    for (size_t at = 1; at < script[i].bytes.size(); ++at) {
      size_t seg = 0;
      Capture c = RunScript(script, [&](size_t n) {
        return seg++ == i ? std::vector<size_t>{at, n - at} : std::vector<size_t>{n};
      });
      ASSERT_EQ(Summaries(c), want) << "segment " << i << " split at " << at;
    }
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 100; ++round) {
    Capture c = RunScript(script, [&](size_t n) {
      std::vector<size_t> v;
      while (n) {
        size_t k = std::min<size_t>(n, 1 + rng() % (round % 2 ? 7 : 300));
        v.push_back(k);
        n -= k;
      }
      return v;
    });
    ASSERT_EQ(Summaries(c), want) << "round " << round;
  }
}

std::string Header(const HttpMessage& m, std::string_view name) {
  for (const auto& [k, v] : m.headers)
    if (k == name) return v;
  return "<none>";
}

TEST(Http1Decoder, ClientRequestAndResponse) {
  std::vector<Segment> script = {
      {Flow::kOut, "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\n"
                   "X-Mixed-Case: Keep It\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_TRUE(c.notices.empty());
  const HttpMessage& req = c.msgs[0];
  EXPECT_EQ(req.kind, Kind::kRequest);
  EXPECT_EQ(req.proto, "HTTP/1.1");
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/index.html?q=1");
  EXPECT_EQ(req.authority, "example.com");
  ASSERT_EQ(req.headers.size(), 3u);
  EXPECT_EQ(req.headers[2].first, "X-Mixed-Case");
  EXPECT_EQ(req.headers[2].second, "Keep It");
  EXPECT_EQ(req.ts_ns, 1u);
  const HttpMessage& resp = c.msgs[1];
  EXPECT_EQ(resp.kind, Kind::kResponse);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "hello");
  EXPECT_EQ(resp.body_wire_len, 5u);
  EXPECT_EQ(resp.request_method, "GET");
  EXPECT_EQ(resp.request_path, "/index.html?q=1");
  EXPECT_EQ(resp.ts_ns, 2u);
  EXPECT_EQ(resp.stream, 0u);
  ExpectChunkingInvariant(script, c);
}

TEST(Http1Decoder, ServerSideRolesAreLearned) {
  std::vector<Segment> script = {
      {Flow::kIn, "POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"},
      {Flow::kOut, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_EQ(c.msgs[0].body, "abc");
  EXPECT_EQ(c.msgs[1].status, 201);
  EXPECT_EQ(c.msgs[1].request_method, "POST");
  EXPECT_TRUE(c.notices.empty());
}

std::string fmt_hex(size_t n) {
  char b[32];
  std::snprintf(b, sizeof b, "%zx", n);
  return b;
}

// A realistic keep-alive exchange covering most framings; checked under all chunkings.
std::vector<Segment> MixedScript() {
  const std::string gz = Compress(std::string(3000, 'g') + "zip!", 31);
  const std::string br = Brotli("brotli body, brotli body, brotli body");
  return {
      {Flow::kOut, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nAAA"},
      {Flow::kOut, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                   "4;name=value\r\nWiki\r\n5 ; q=\"a;b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 42\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
      {Flow::kOut, "GET /gz HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\nHEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /br HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size()) + "\r\n\r\n" + gz +
                      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n" +
                      fmt_hex(br.size()) + "\r\n" + br + "\r\n0\r\n\r\n"},
      {Flow::kOut, "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 100 Continue\r\n\r\n"},
      {Flow::kOut, "data"},
      {Flow::kIn, "HTTP/1.1 204 No Content\r\n\r\n"},
      {Flow::kOut, "GET /c HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e\"\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 77\r\n\r\n"},
      {Flow::kOut, "GET /last HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"},
  };
}

TEST(Http1Decoder, MixedExchangeUnderAllChunkings) {
  const auto script = MixedScript();
  Capture c = RunWhole(script);
  EXPECT_TRUE(c.notices.empty()) << c.notices[0];
  ASSERT_EQ(c.msgs.size(), 17u);
  // Order of emission: each message when complete.
  const HttpMessage& upload = c.msgs[2];
  EXPECT_EQ(upload.method, "POST");
  EXPECT_EQ(upload.body, "Wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(upload.body_wire_len, upload.body.size());
  EXPECT_EQ(upload.headers.back().first, "Trailer");
  ASSERT_EQ(upload.trailers.size(), 1u);
  EXPECT_EQ(upload.trailers[0], (std::pair<std::string, std::string>("X-Sum", "42")));
  EXPECT_EQ(c.msgs[3].body, "abc");
  EXPECT_EQ(c.msgs[3].request_path, "/upload");

  const HttpMessage& gz = c.msgs[7];
  EXPECT_EQ(gz.request_path, "/gz");
  EXPECT_EQ(gz.body, std::string(3000, 'g') + "zip!");
  EXPECT_TRUE(gz.body_decoded);
  EXPECT_EQ(gz.content_encoding, "gzip");
  EXPECT_LT(gz.body_wire_len, 200u);
  const HttpMessage& head = c.msgs[8];
  EXPECT_EQ(head.request_method, "HEAD");
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Header(head, "Content-Length"), "1000");
  const HttpMessage& br = c.msgs[9];
  EXPECT_EQ(br.request_path, "/br");
  EXPECT_EQ(br.body, "brotli body, brotli body, brotli body");
  EXPECT_TRUE(br.body_decoded);
  EXPECT_EQ(br.content_encoding, "br");

  // Expect: 100-continue: the 100 answers nothing, the request completes with its body.
  EXPECT_EQ(c.msgs[10].status, 100);
  EXPECT_EQ(c.msgs[10].request_method, "PUT");
  EXPECT_EQ(c.msgs[11].method, "PUT");
  EXPECT_EQ(c.msgs[11].body, "data");
  EXPECT_EQ(c.msgs[12].status, 204);
  EXPECT_EQ(c.msgs[12].request_path, "/e");
  EXPECT_EQ(c.msgs[14].status, 304);
  EXPECT_EQ(c.msgs[14].body, "");
  EXPECT_EQ(c.msgs[14].request_path, "/c");
  EXPECT_EQ(c.msgs[16].body, "last");
  EXPECT_EQ(c.msgs[16].request_path, "/last");
  ExpectChunkingInvariant(script, c);
}

TEST(Http1Decoder, PipelinedMessagesInOneFeed) {
  std::vector<Segment> script = {
      {Flow::kOut, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /4 HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 8u);
  EXPECT_TRUE(c.notices.empty());
  const char* paths[] = {"/1", "/2", "/3", "/4"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c.msgs[i].path, paths[i]);
    EXPECT_EQ(c.msgs[4 + i].request_path, paths[i]);
  }
  EXPECT_EQ(c.msgs[2].body, "hi");
  EXPECT_EQ(c.msgs[4].body, "1");
  EXPECT_EQ(c.msgs[5].body, "");
  EXPECT_EQ(c.msgs[6].body, "3");
  EXPECT_EQ(c.msgs[7].status, 404);
  ExpectChunkingInvariant(script, c);
}

TEST(Http1Decoder, ContentEncodings) {
  const std::string body = "{\"json\": true, \"pad\": \"" + std::string(500, 'p') + "\"}";
  for (const auto& [enc, data] : std::vector<std::pair<std::string, std::string>>{
           {"gzip", Compress(body, 31)}, {"deflate", Compress(body, 15)}, {"deflate", Compress(body, -15)}, {"br", Brotli(body)}}) {
    std::vector<Segment> script = {
        {Flow::kOut, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
        {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Encoding: " + enc + "\r\nContent-Length: " + std::to_string(data.size()) +
                        "\r\n\r\n" + data},
    };
    Capture c = RunWhole(script);
    ASSERT_EQ(c.msgs.size(), 2u) << enc;
    EXPECT_TRUE(c.notices.empty());
    EXPECT_EQ(c.msgs[1].body, body) << enc;
    EXPECT_TRUE(c.msgs[1].body_decoded);
    EXPECT_EQ(c.msgs[1].content_encoding, enc);
    EXPECT_EQ(c.msgs[1].body_wire_len, data.size());

    DecoderLimits raw;
    raw.raw = true;
    Capture r = RunWhole(script, raw);
    ASSERT_EQ(r.msgs.size(), 2u);
    EXPECT_EQ(r.msgs[1].body, data);
    EXPECT_FALSE(r.msgs[1].body_decoded);
    EXPECT_EQ(r.msgs[1].content_encoding, enc);
  }
  // Request bodies are decoded too; corrupt data is kept as sent, with a notice.
  const std::string gz = Compress(body, 31);
  std::vector<Segment> script = {
      {Flow::kOut, "POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size()) +
                       "\r\n\r\n" + gz},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_EQ(c.msgs[0].body, body);
  EXPECT_EQ(c.msgs[1].body, "not gzip!!");
  EXPECT_FALSE(c.msgs[1].body_decoded);
  ASSERT_EQ(c.notices.size(), 1u);
  EXPECT_NE(c.notices[0].find("not decoded"), std::string::npos) << c.notices[0];
}

TEST(Http1Decoder, DecodedBodyIsCappedAtMaxBody) {
  const std::string zeros(8u << 20, '0');
  const std::string gz = Compress(zeros, 31);
  std::vector<Segment> script = {
      {Flow::kOut, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size()) + "\r\n\r\n" + gz},
  };
  DecoderLimits limits;
  limits.max_body = 100000;
  Capture c = RunWhole(script, limits);
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_EQ(c.msgs[1].body, zeros.substr(0, 100000));
  EXPECT_TRUE(c.msgs[1].body_decoded);
  EXPECT_TRUE(c.msgs[1].body_truncated);
  EXPECT_EQ(c.msgs[1].body_wire_len, gz.size());
}

TEST(Http1Decoder, BodyUntilNextStatusLineOrEnd) {
  std::vector<Segment> script = {
      {Flow::kOut, "GET /old HTTP/1.0\r\n\r\n"},
      {Flow::kIn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nline one\r\nHTTP/1.1 is mentioned\r\nend\r\n"},
      {Flow::kOut, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nrest of the connection"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 4u);
  EXPECT_TRUE(c.notices.empty());
  EXPECT_EQ(c.msgs[1].path, "/close");
  EXPECT_EQ(c.msgs[2].body, "line one\r\nHTTP/1.1 is mentioned\r\nend\r\n");  // ended by the next status line
  EXPECT_EQ(c.msgs[2].request_path, "/old");
  EXPECT_EQ(c.msgs[3].body, "rest of the connection");  // ended by the decoder's destruction
  EXPECT_EQ(c.msgs[3].request_path, "/close");
  ExpectChunkingInvariant(script, c);

  // HTTP/1.1 keep-alive without a length: no body.
  Capture k = RunWhole({{Flow::kOut, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"},
                        {Flow::kIn, "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"}});
  ASSERT_EQ(k.msgs.size(), 4u);
  EXPECT_EQ(k.msgs[2].body, "");
  EXPECT_EQ(k.msgs[3].body, "z");
  EXPECT_EQ(k.msgs[3].request_path, "/2");
}

TEST(Http1Decoder, ExpectContinueRejectedWithoutBody) {
  std::vector<Segment> script = {
      {Flow::kOut, "POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"},
      {Flow::kOut, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 4u);
  EXPECT_TRUE(c.notices.empty());
  EXPECT_EQ(c.msgs[0].status, 417);
  EXPECT_EQ(c.msgs[0].request_path, "/big");
  EXPECT_EQ(c.msgs[1].path, "/big");
  EXPECT_EQ(c.msgs[1].body, "");
  EXPECT_EQ(c.msgs[2].path, "/next");
  EXPECT_EQ(c.msgs[3].request_path, "/next");
  ExpectChunkingInvariant(script, c);
}

TEST(Http1Decoder, UpgradeStopsDecoding) {
  std::vector<Segment> script = {
      {Flow::kOut, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85garbage frame"},
      {Flow::kIn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"},
      {Flow::kOut, "GET / HTTP/1.1\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\n\r\n"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_EQ(c.msgs[1].status, 101);
  EXPECT_EQ(c.msgs[1].request_path, "/ws");
  ASSERT_EQ(c.notices.size(), 1u);
  EXPECT_NE(c.notices[0].find("switched protocols"), std::string::npos);
  ExpectChunkingInvariant(script, c);

  // An Upgrade the server ignores: decoding goes on.
  Capture d = RunWhole({{Flow::kOut, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"},
                        {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}});
  ASSERT_EQ(d.msgs.size(), 4u);
  EXPECT_TRUE(d.notices.empty());
  EXPECT_EQ(d.msgs[2].path, "/2");
  EXPECT_EQ(d.msgs[3].request_path, "/2");
}

TEST(Http1Decoder, MidStreamStartResynchronises) {
  std::vector<Segment> script = {
      {Flow::kIn, "dy of a response we missed\r\nHTTP/1.1 is just text here\r\n<html>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
      {Flow::kOut, "ontent-Length: 10\r\n\r\n012345678\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"},
      {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 3u);
  ASSERT_EQ(c.notices.size(), 2u);  // one per direction
  EXPECT_EQ(c.msgs[0].status, 200);
  EXPECT_EQ(c.msgs[0].body, "ok");
  EXPECT_EQ(c.msgs[0].request_method, "");  // its request was not seen
  EXPECT_EQ(c.msgs[1].path, "/after");
  EXPECT_EQ(c.msgs[2].body, "!");
  ExpectChunkingInvariant(script, c);
}

TEST(Http1Decoder, HostileHugeHeader) {
  std::vector<Segment> script = {
      {Flow::kOut, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200000, 'a') + "\r\n\r\n"},
      {Flow::kOut, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"},
  };
  Capture c = RunWhole(script);
  ASSERT_EQ(c.msgs.size(), 1u);
  EXPECT_EQ(c.msgs[0].path, "/ok");
  ASSERT_EQ(c.notices.size(), 1u);
  EXPECT_NE(c.notices[0].find("too large"), std::string::npos) << c.notices[0];
  Capture b = RunScript(script, Bytewise);
  EXPECT_EQ(Summaries(b), Summaries(c));

  // Too many header fields.
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 2000; ++i) many += "A: b\r\n";
  Capture m = RunWhole({{Flow::kOut, many + "\r\nGET /ok HTTP/1.1\r\n\r\n"}});
  ASSERT_EQ(m.msgs.size(), 1u);
  EXPECT_EQ(m.msgs[0].path, "/ok");
  EXPECT_EQ(m.notices.size(), 1u);
}

TEST(Http1Decoder, HostileChunkSizes) {
  for (const std::string& bad : std::vector<std::string>{"zz\r\n", "fffffffffffffffffff\r\n", "-1\r\n", "5 x\r\n", std::string(10000, '1')}) {
    std::vector<Segment> script = {
        {Flow::kOut, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
        {Flow::kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bad + "\r\nabc\r\n0\r\n\r\n"},
        {Flow::kOut, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"},
        {Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
    };
    Capture c = RunWhole(script);
    ASSERT_EQ(c.msgs.size(), 3u) << bad.substr(0, 20);
    EXPECT_EQ(c.msgs[2].body, "x");
    EXPECT_EQ(c.msgs[2].request_path, "");  // attribution is withheld after the loss
    EXPECT_EQ(c.notices.size(), 1u);
  }
  // Chunk data not followed by CRLF.
  Capture c = RunWhole({{Flow::kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"}});
  EXPECT_TRUE(c.msgs.empty());
  EXPECT_EQ(c.notices.size(), 1u);
}

TEST(Http1Decoder, NeverEndingBodiesStayWithinLimits) {
  DecoderLimits limits;
  limits.max_body = 1000;
  limits.max_buffered = 4096;
  Capture c;
  {
    auto dec = MakeHttp1Decoder(c.Sink(), limits);
    dec->Feed(Flow::kOut, "GET / HTTP/1.0\r\n\r\n", 1);
    dec->Feed(Flow::kIn, "HTTP/1.0 200 OK\r\n\r\n", 2);
    const std::string block(1 << 20, 'x');
    for (int i = 0; i < 64; ++i) dec->Feed(Flow::kIn, block, 3);
    EXPECT_EQ(c.msgs.size(), 1u);  // the response is still open
  }
  ASSERT_EQ(c.msgs.size(), 2u);
  EXPECT_EQ(c.msgs[1].body.size(), 1000u);
  EXPECT_TRUE(c.msgs[1].body_truncated);
  EXPECT_EQ(c.msgs[1].body_wire_len, 64u << 20);

  // Content-Length far beyond what arrives; a chunk that never ends: nothing emitted, no growth.
  Capture d;
  {
    auto dec = MakeHttp1Decoder(d.Sink(), limits);
    dec->Feed(Flow::kOut, "POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n", 1);
    dec->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffff\r\n", 1);
    const std::string block(1 << 20, 'y');
    for (int i = 0; i < 16; ++i) {
      dec->Feed(Flow::kOut, block, 2);
      dec->Feed(Flow::kIn, block, 2);
    }
  }
  EXPECT_TRUE(d.msgs.empty());
  EXPECT_TRUE(d.notices.empty());
}

TEST(Http1Decoder, HeldUpgradeBytesAreBounded) {
  DecoderLimits limits;
  limits.max_buffered = 10000;
  Capture c = RunWhole({{Flow::kOut, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n" + std::string(50000, 'w')}}, limits);
  ASSERT_EQ(c.msgs.size(), 1u);
  ASSERT_EQ(c.notices.size(), 1u);
  EXPECT_NE(c.notices[0].find("buffered"), std::string::npos) << c.notices[0];
}

TEST(Http1Decoder, GarbageNeverCrashesOrProducesHugeMessages) {
  std::mt19937 rng(5);
  const std::vector<std::string> pieces = {"GET / HTTP/1.1\r\n", "HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n",
                                           "Transfer-Encoding: chunked\r\n", "\r\n", "5\r\n", "0\r\n", "abcde",
                                           "Content-Encoding: gzip\r\n", "\n", "HEAD / HTTP/1.0\r\n", "X: y\r\n",
                                           "HTTP/1.1 101 S\r\n", "\x1f\x8b\x08", "HTTP/1.1 100 C\r\n"};
  for (int round = 0; round < 3000; ++round) {
    DecoderLimits limits;
    limits.max_body = 64;
    limits.max_buffered = 256;
    Capture c;
    {
      auto dec = MakeHttp1Decoder(c.Sink(), limits);
      for (int i = 0; i < 40; ++i) {
        std::string s = pieces[rng() % pieces.size()];
        if (rng() % 5 == 0) s[rng() % s.size()] = static_cast<char>(rng());
        dec->Feed(rng() % 2 ? Flow::kOut : Flow::kIn, s, i);
      }
    }
    for (const auto& m : c.msgs) {
      EXPECT_LE(m.body.size(), 64u);
      EXPECT_TRUE(m.proto == "HTTP/1.1" || m.proto == "HTTP/1.0" || m.proto.rfind("HTTP/1.", 0) == 0);
    }
  }
}

}  // namespace
}  // namespace gotlscap::decode
