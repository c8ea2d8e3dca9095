// Request timing (first/last byte times, a response's request) and bytes not captured (Skip),
// for both decoders: what `gotlscap stat` and JSON's latency_ns / wait_ns rest on.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <utility>
#include <vector>

#include "decode/http1_decoder.h"
#include "decode/http2_decoder.h"
#include "decode/http_message.h"

namespace gotlscap::decode {
namespace {

using Kind = HttpMessage::Kind;

struct Capture {
  std::vector<HttpMessage> msgs;
  std::vector<std::string> notices;
  DecoderSink Sink() {
    return {[this](HttpMessage&& m) { msgs.push_back(std::move(m)); },
            [this](std::string_view n) { notices.emplace_back(n); }};
  }
  const HttpMessage* Response(size_t i) const {
    size_t seen = 0;
    for (const auto& m : msgs)
      if (m.kind == Kind::kResponse && seen++ == i) return &m;
    return nullptr;
  }
};

// ---- HTTP/1 ----

TEST(RequestTiming, Http1RequestAndResponseTimes) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  // Client view: the request written in two calls (head at t=100, body at t=150), the response
  // read in two calls (t=300, t=400).
  d->Feed(Flow::kOut, "POST /api/x HTTP/1.1\r\nHost: svc.example:8443\r\nContent-Length: 5\r\n\r\n", 100);
  d->Feed(Flow::kOut, "hello", 150);
  d->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwo", 300);
  d->Feed(Flow::kIn, "rd", 400);
  ASSERT_EQ(c.msgs.size(), 2u);
  const HttpMessage& req = c.msgs[0];
  EXPECT_EQ(req.kind, Kind::kRequest);
  EXPECT_TRUE(req.sent);
  EXPECT_EQ(req.first_ts_ns, 100u);
  EXPECT_EQ(req.ts_ns, 150u);
  const HttpMessage& resp = c.msgs[1];
  EXPECT_FALSE(resp.sent);
  EXPECT_EQ(resp.first_ts_ns, 300u);
  EXPECT_EQ(resp.ts_ns, 400u);
  EXPECT_EQ(resp.request_first_ts_ns, 100u);
  EXPECT_EQ(resp.request_last_ts_ns, 150u);
  EXPECT_EQ(resp.request_authority, "svc.example:8443");
  EXPECT_EQ(resp.request_body_len, 5u);
  EXPECT_EQ(LatencyNs(resp), std::optional<uint64_t>(300));
  EXPECT_EQ(WaitNs(resp), std::optional<uint64_t>(150));
  EXPECT_FALSE(LatencyNs(req));
}

TEST(RequestTiming, Http1PipelinedResponsesAnswerTheirOwnRequests) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  // Server view: two requests read in one call, answered in one call each.
  d->Feed(Flow::kIn, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", 1000);
  d->Feed(Flow::kOut, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", 2000);
  d->Feed(Flow::kIn, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n", 2500);
  d->Feed(Flow::kOut, "HTTP/1.1 503 Busy\r\nContent-Length: 1\r\n\r\nB", 5000);
  d->Feed(Flow::kOut, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC", 6000);
  ASSERT_NE(c.Response(2), nullptr);
  EXPECT_TRUE(c.Response(0)->sent);
  EXPECT_EQ(c.Response(0)->request_path, "/a");
  EXPECT_EQ(LatencyNs(*c.Response(0)), std::optional<uint64_t>(1000));
  EXPECT_EQ(c.Response(1)->request_path, "/b");
  EXPECT_EQ(LatencyNs(*c.Response(1)), std::optional<uint64_t>(4000));
  EXPECT_TRUE(IsErrorResponse(*c.Response(1)));
  EXPECT_EQ(c.Response(2)->request_path, "/c");
  EXPECT_EQ(LatencyNs(*c.Response(2)), std::optional<uint64_t>(3500));
  EXPECT_EQ(WaitNs(*c.Response(2)), std::optional<uint64_t>(3500));
  EXPECT_FALSE(IsErrorResponse(*c.Response(2)));
}

TEST(RequestTiming, Http1ResponseWithoutItsRequestIsUntimed) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  d->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 10);
  ASSERT_NE(c.Response(0), nullptr);
  EXPECT_FALSE(LatencyNs(*c.Response(0)));
  EXPECT_FALSE(WaitNs(*c.Response(0)));
}

TEST(RequestTiming, Http1SkippedBodyBytesAreCountedAndTheNextMessageDecodes) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  d->Feed(Flow::kOut, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  // A 1000-byte body of which only the first 10 bytes were captured, then the rest of a call.
  d->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", 2);
  d->Skip(Flow::kIn, 990, 2);
  d->Feed(Flow::kOut, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n", 3);
  d->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 4);
  ASSERT_NE(c.Response(1), nullptr);
  EXPECT_TRUE(c.notices.empty()) << c.notices[0];
  EXPECT_EQ(c.Response(0)->body_wire_len, 1000u);
  EXPECT_EQ(c.Response(0)->body_uncaptured, 990u);
  EXPECT_EQ(c.Response(0)->body, "0123456789");
  EXPECT_TRUE(c.Response(0)->body_truncated);
  EXPECT_EQ(c.Response(1)->request_path, "/next");
  EXPECT_EQ(c.Response(1)->body, "ok");
}

TEST(RequestTiming, Http1SkippedChunkDataKeepsChunkedFraming) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  d->Feed(Flow::kOut, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  d->Feed(Flow::kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabcd", 2);
  d->Skip(Flow::kIn, 252, 3);
  d->Feed(Flow::kIn, "\r\n0\r\n\r\n", 4);
  ASSERT_NE(c.Response(0), nullptr);
  EXPECT_TRUE(c.notices.empty());
  EXPECT_EQ(c.Response(0)->body_wire_len, 256u);
  EXPECT_EQ(c.Response(0)->ts_ns, 4u);
}

TEST(RequestTiming, Http1FramingInSkippedBytesIsReportedAndResynchronised) {
  Capture c;
  auto d = MakeHttp1Decoder(c.Sink(), {});
  d->Feed(Flow::kOut, "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: aaaa", 1);
  d->Skip(Flow::kOut, 5000, 1);  // the rest of the head was not captured
  d->Feed(Flow::kOut, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n", 2);
  ASSERT_FALSE(c.notices.empty());
  EXPECT_NE(c.notices[0].find("not captured"), std::string::npos) << c.notices[0];
  ASSERT_EQ(c.msgs.size(), 1u);
  EXPECT_EQ(c.msgs[0].path, "/b");
}

// ---- HTTP/2 ----

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  const uint32_t len = static_cast<uint32_t>(payload.size());
  std::string f = {static_cast<char>(len >> 16), static_cast<char>(len >> 8), static_cast<char>(len),
                   static_cast<char>(type),      static_cast<char>(flags),    static_cast<char>(stream >> 24),
                   static_cast<char>(stream >> 16), static_cast<char>(stream >> 8), static_cast<char>(stream)};
  return f + std::string(payload);
}

class Hpack {
 public:
  Hpack() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~Hpack() { nghttp2_hd_deflate_del(d_); }
  std::string Encode(const std::vector<std::pair<std::string, std::string>>& hs) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : hs)
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    std::string out(nghttp2_hd_deflate_bound(d_, nva.data(), nva.size()), '\0');
    const ssize_t n =
        nghttp2_hd_deflate_hd(d_, reinterpret_cast<uint8_t*>(out.data()), out.size(), nva.data(), nva.size());
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  }

 private:
  nghttp2_hd_deflater* d_ = nullptr;
};

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr uint8_t kEndStream = http2::kFlagEndStream, kEndHeaders = http2::kFlagEndHeaders;

TEST(RequestTiming, Http2InterleavedStreamsAreTimedPerStream) {
  Capture c;
  auto d = MakeHttp2Decoder(c.Sink(), {});
  Hpack client, server;
  d->Feed(Flow::kOut, std::string(kPreface) + Frame(http2::kSettings, 0, 0, ""), 10);
  d->Feed(Flow::kOut,
          Frame(http2::kHeaders, kEndHeaders | kEndStream, 1,
                client.Encode({{":method", "GET"}, {":path", "/slow"}, {":authority", "a.example"}, {":scheme", "https"}})),
          100);
  d->Feed(Flow::kOut,
          Frame(http2::kHeaders, kEndHeaders, 3,
                client.Encode({{":method", "POST"}, {":path", "/fast"}, {":authority", "a.example"}, {":scheme", "https"}})),
          110);
  d->Feed(Flow::kOut, Frame(http2::kData, kEndStream, 3, "body"), 120);
  // Stream 3 answered first (t=200), stream 1 later (headers t=250, data t=900).
  d->Feed(Flow::kIn, Frame(http2::kHeaders, kEndHeaders | kEndStream, 3, server.Encode({{":status", "200"}})), 200);
  d->Feed(Flow::kIn, Frame(http2::kHeaders, kEndHeaders, 1, server.Encode({{":status", "200"}})), 250);
  d->Feed(Flow::kIn, Frame(http2::kData, 0, 1, "part"), 600);
  d->Feed(Flow::kIn, Frame(http2::kData, kEndStream, 1, "rest"), 900);
  const HttpMessage* fast = c.Response(0);
  const HttpMessage* slow = c.Response(1);
  ASSERT_NE(slow, nullptr);
  EXPECT_EQ(fast->request_path, "/fast");
  EXPECT_EQ(fast->request_authority, "a.example");
  EXPECT_EQ(fast->request_body_len, 4u);
  EXPECT_EQ(LatencyNs(*fast), std::optional<uint64_t>(90));  // 110 → 200
  EXPECT_EQ(WaitNs(*fast), std::optional<uint64_t>(80));     // 120 → 200
  EXPECT_EQ(slow->request_path, "/slow");
  EXPECT_EQ(slow->first_ts_ns, 250u);
  EXPECT_EQ(LatencyNs(*slow), std::optional<uint64_t>(800));  // 100 → 900
  EXPECT_EQ(WaitNs(*slow), std::optional<uint64_t>(150));     // 100 → 250
  EXPECT_FALSE(slow->sent);
}

TEST(RequestTiming, Http2GrpcStatusInTrailersIsAnError) {
  Capture c;
  auto d = MakeHttp2Decoder(c.Sink(), {});
  Hpack client, server;
  d->Feed(Flow::kIn, std::string(kPreface) + Frame(http2::kSettings, 0, 0, ""), 1);
  d->Feed(Flow::kIn,
          Frame(http2::kHeaders, kEndHeaders, 1,
                client.Encode({{":method", "POST"}, {":path", "/pkg.Svc/Call"}, {":scheme", "https"},
                               {"content-type", "application/grpc"}})) +
              Frame(http2::kData, kEndStream, 1, std::string("\0\0\0\0\2hi", 7)),
          2);
  d->Feed(Flow::kOut,
          Frame(http2::kHeaders, kEndHeaders, 1, server.Encode({{":status", "200"}, {"content-type", "application/grpc"}})) +
              Frame(http2::kHeaders, kEndHeaders | kEndStream, 1, server.Encode({{"grpc-status", "13"}})),
          5);
  ASSERT_NE(c.Response(0), nullptr);
  EXPECT_TRUE(c.Response(0)->sent);
  EXPECT_TRUE(IsErrorResponse(*c.Response(0)));
  EXPECT_EQ(LatencyNs(*c.Response(0)), std::optional<uint64_t>(3));
}

TEST(RequestTiming, Http2SkippedDataPayloadKeepsFraming) {
  Capture c;
  auto d = MakeHttp2Decoder(c.Sink(), {});
  Hpack client, server;
  d->Feed(Flow::kOut, std::string(kPreface) + Frame(http2::kSettings, 0, 0, ""), 1);
  d->Feed(Flow::kOut,
          Frame(http2::kHeaders, kEndHeaders | kEndStream, 1,
                client.Encode({{":method", "GET"}, {":path", "/big"}, {":scheme", "https"}})),
          2);
  d->Feed(Flow::kIn, Frame(http2::kHeaders, kEndHeaders, 1, server.Encode({{":status", "200"}})), 3);
  // A 16 KiB DATA frame of which the first 100 payload bytes were captured.
  const std::string data = Frame(http2::kData, 0, 1, std::string(16384, 'x'));
  d->Feed(Flow::kIn, data.substr(0, 9 + 100), 4);
  d->Skip(Flow::kIn, data.size() - 109, 4);
  d->Feed(Flow::kIn, Frame(http2::kData, kEndStream, 1, "end"), 5);
  ASSERT_NE(c.Response(0), nullptr);
  EXPECT_TRUE(c.notices.empty()) << c.notices[0];
  EXPECT_EQ(c.Response(0)->body_wire_len, 16384u + 3);
  EXPECT_EQ(c.Response(0)->body_uncaptured, 16284u);
  EXPECT_EQ(c.Response(0)->ts_ns, 5u);
}

TEST(RequestTiming, Http2FrameHeaderInSkippedBytesIsReported) {
  Capture c;
  auto d = MakeHttp2Decoder(c.Sink(), {});
  Hpack client;
  d->Feed(Flow::kOut, std::string(kPreface) + Frame(http2::kSettings, 0, 0, ""), 1);
  d->Feed(Flow::kOut, Frame(http2::kHeaders, kEndHeaders, 1,
                            client.Encode({{":method", "POST"}, {":path", "/up"}, {":scheme", "https"}})), 2);
  const std::string two = Frame(http2::kData, 0, 1, std::string(100, 'a')) + Frame(http2::kData, kEndStream, 1, "zz");
  d->Feed(Flow::kOut, two.substr(0, 50), 3);
  d->Skip(Flow::kOut, two.size() - 50, 3);  // the second frame's header is in the gap
  ASSERT_FALSE(c.notices.empty());
  EXPECT_NE(c.notices[0].find("not captured"), std::string::npos) << c.notices[0];
}

}  // namespace
}  // namespace gotlscap::decode
