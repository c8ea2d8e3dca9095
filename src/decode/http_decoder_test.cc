// HttpDecoder: protocol choice per connection, connection ends (Close, or a close event fed in)
// and the bounds on what it keeps across connections (connections whose end is never seen are
// dropped least recently used first, and bytes held before the protocol is known are capped).
#include "decode/http_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gotlscap::decode {
namespace {

struct Got {
  std::vector<DecodedMessage> msgs;
  std::vector<std::string> notices;
};

std::unique_ptr<HttpDecoder> Make(Got* g, size_t max_connections = 4096) {
  return std::make_unique<HttpDecoder>([g](DecodedMessage&& m) { g->msgs.push_back(std::move(m)); },
                                       [g](uint32_t, const std::string&, const capture::Connection&,
                                           std::string_view n) { g->notices.emplace_back(n); },
                                       DecoderLimits{}, max_connections);
}

capture::DataEvent Ev(uint64_t conn, capture::Direction dir, std::string bytes) {
  capture::DataEvent ev;
  ev.pid = 7;
  ev.comm = "prog";
  ev.dir = dir;
  ev.conn.id = conn;
  ev.len = bytes.size();
  ev.payload = std::move(bytes);
  return ev;
}
constexpr auto kW = capture::Direction::kWrite;
constexpr auto kR = capture::Direction::kRead;

TEST(HttpDecoder, ChoosesHttp1AndTagsTheConnection) {
  Got g;
  auto d = Make(&g);
  EXPECT_TRUE(d->Feed(Ev(3, kW, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")));
  EXPECT_TRUE(d->Feed(Ev(3, kR, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")));
  ASSERT_EQ(g.msgs.size(), 2u);
  EXPECT_EQ(g.msgs[1].msg.body, "ok");
  EXPECT_EQ(g.msgs[1].msg.request_path, "/a");
  EXPECT_EQ(g.msgs[1].conn.id, 3u);
  EXPECT_EQ(g.msgs[1].pid, 7u);
}

TEST(HttpDecoder, OtherProtocolsStayRaw) {
  Got g;
  auto d = Make(&g);
  EXPECT_FALSE(d->Feed(Ev(1, kW, "SSH-2.0-OpenSSH_9.2\r\n")));
  EXPECT_FALSE(d->Feed(Ev(1, kW, "GET / HTTP/1.1\r\n\r\n")));  // the connection's verdict is kept
  EXPECT_TRUE(g.msgs.empty());
}

// A body that runs to the end of the connection is delivered when the decoder goes away (the
// end of the capture), or when its connection is dropped as least recently used.
TEST(HttpDecoder, DroppedConnectionsDeliverWhatEndsWithThem) {
  Got g;
  auto d = Make(&g, /*max_connections=*/2);
  EXPECT_TRUE(d->Feed(Ev(1, kW, "GET /old HTTP/1.0\r\n\r\n")));
  EXPECT_TRUE(d->Feed(Ev(1, kR, "HTTP/1.0 200 OK\r\n\r\nto the end")));
  ASSERT_EQ(g.msgs.size(), 1u);  // the response has no length: it ends with the connection
  EXPECT_TRUE(d->Feed(Ev(2, kW, "GET /b HTTP/1.1\r\n\r\n")));
  EXPECT_TRUE(d->Feed(Ev(3, kW, "GET /c HTTP/1.1\r\n\r\n")));  // a third connection: 1 is dropped
  ASSERT_EQ(g.msgs.size(), 4u);  // /old, /b, the response to /old (at the drop), /c
  EXPECT_EQ(g.msgs[2].msg.body, "to the end");
  EXPECT_EQ(g.msgs[2].msg.request_path, "/old");
  EXPECT_EQ(g.msgs[2].conn.id, 1u);
  EXPECT_EQ(g.msgs[3].msg.path, "/c");
  // Bytes of connection 1 arriving later are a connection picked up mid-stream: raw, never
  // decoded into wrong values.
  EXPECT_FALSE(d->Feed(Ev(1, kR, "more body bytes of the old response")));
  EXPECT_EQ(g.msgs.size(), 4u);
  // The most recently used connections survive.
  EXPECT_TRUE(d->Feed(Ev(3, kR, "HTTP/1.1 204 No Content\r\n\r\n")));
  ASSERT_EQ(g.msgs.size(), 5u);
  EXPECT_EQ(g.msgs[4].msg.request_path, "/c");
  d->Feed(Ev(2, kR, "HTTP/1.0 200 OK\r\n\r\nlast"));
  d.reset();
  ASSERT_EQ(g.msgs.size(), 6u);
  EXPECT_EQ(g.msgs[5].msg.body, "last");
}

capture::DataEvent End(uint64_t conn, capture::ConnEnd end) {
  capture::DataEvent ev = Ev(conn, end == capture::ConnEnd::kEof ? kR : kW, "");
  ev.end = end;
  return ev;
}

// Close finishes the connection: a body that runs to its end is delivered then, not at exit,
// and nothing of the connection is kept.
TEST(HttpDecoder, CloseDeliversABodyThatRanToTheEndAndDropsTheState) {
  Got g;
  auto d = Make(&g);
  EXPECT_TRUE(d->Feed(Ev(1, kW, "GET /old HTTP/1.0\r\n\r\n")));
  EXPECT_TRUE(d->Feed(Ev(1, kR, "HTTP/1.0 200 OK\r\n\r\nto the ")));
  EXPECT_TRUE(d->Feed(Ev(1, kR, "end")));
  EXPECT_TRUE(d->Feed(Ev(2, kW, "GET /other HTTP/1.1\r\n\r\n")));
  ASSERT_EQ(g.msgs.size(), 2u);
  EXPECT_EQ(d->connections(), 2u);
  EXPECT_TRUE(d->Close(7, 1));
  ASSERT_EQ(g.msgs.size(), 3u);
  EXPECT_EQ(g.msgs[2].msg.kind, HttpMessage::Kind::kResponse);
  EXPECT_EQ(g.msgs[2].msg.body, "to the end");
  EXPECT_EQ(g.msgs[2].msg.request_path, "/old");
  EXPECT_EQ(g.msgs[2].conn.id, 1u);
  EXPECT_EQ(g.msgs[2].pid, 7u);
  EXPECT_EQ(d->connections(), 1u);
  EXPECT_EQ(d->closed(), 1u);
  EXPECT_FALSE(d->Close(7, 1));  // already gone
  EXPECT_FALSE(d->Close(8, 2));  // another process's connection 2 was never seen
  EXPECT_EQ(d->connections(), 1u);
  // Later bytes with the same id start afresh: a body fragment is a connection picked up
  // mid-stream (raw), never glued to the old response.
  EXPECT_FALSE(d->Feed(Ev(1, kR, "more body bytes of the old response")));
  d.reset();
  EXPECT_EQ(g.msgs.size(), 3u);  // nothing left to deliver at the end
}

// Close events from the capture (Close or io.EOF) go through Feed; they carry no bytes.
TEST(HttpDecoder, CloseEventsFedInEndTheConnection) {
  Got g;
  auto d = Make(&g);
  EXPECT_TRUE(d->Feed(Ev(4, kW, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")));
  EXPECT_TRUE(d->Feed(Ev(4, kR, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil EOF")));
  ASSERT_EQ(g.msgs.size(), 1u);
  EXPECT_FALSE(d->Feed(End(4, capture::ConnEnd::kEof)));  // the peer closed: body complete
  ASSERT_EQ(g.msgs.size(), 2u);
  EXPECT_EQ(g.msgs[1].msg.body, "until EOF");
  EXPECT_FALSE(d->Feed(End(4, capture::ConnEnd::kClose)));  // then the process closes: nothing more
  EXPECT_EQ(g.msgs.size(), 2u);
  EXPECT_EQ(d->connections(), 0u);
  // A connection that was never HTTP is forgotten too: the id's next life is judged afresh.
  EXPECT_FALSE(d->Feed(Ev(5, kW, "SSH-2.0-OpenSSH_9.2\r\n")));
  EXPECT_FALSE(d->Feed(Ev(5, kW, "GET / HTTP/1.1\r\n\r\n")));
  EXPECT_FALSE(d->Feed(End(5, capture::ConnEnd::kClose)));
  EXPECT_TRUE(d->Feed(Ev(5, kW, "GET /new HTTP/1.1\r\n\r\n")));
  ASSERT_EQ(g.msgs.size(), 3u);
  EXPECT_EQ(g.msgs[2].msg.path, "/new");
  EXPECT_EQ(d->closed(), 2u);
}

// An HTTP/2 connection and one still waiting for its protocol are dropped on close as well.
TEST(HttpDecoder, CloseDropsHttp2AndUndecidedConnections) {
  Got g;
  auto d = Make(&g);
  const std::string settings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  EXPECT_TRUE(d->Feed(Ev(1, kW, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings)));
  EXPECT_FALSE(d->Feed(Ev(2, kW, "GE")));  // not enough bytes to tell yet
  EXPECT_EQ(d->connections(), 2u);
  EXPECT_FALSE(d->Feed(End(1, capture::ConnEnd::kClose)));
  EXPECT_FALSE(d->Feed(End(2, capture::ConnEnd::kClose)));
  EXPECT_EQ(d->connections(), 0u);
  EXPECT_EQ(d->closed(), 2u);
  // The held "GE" is gone: the next life of connection 2 starts with its own bytes.
  EXPECT_TRUE(d->Feed(Ev(2, kR, "HTTP/1.1 204 No Content\r\n\r\n")));
  ASSERT_EQ(g.msgs.size(), 1u);
  EXPECT_EQ(g.msgs[0].msg.status, 204);
}

// An HTTP/2 server speaks first; its bytes are held until the client's preface tells the
// protocol, but not beyond the cap (1 MiB): then the connection stays raw.
TEST(HttpDecoder, BytesHeldBeforeTheProtocolIsKnownAreCapped) {
  Got g;
  auto d = Make(&g);
  const std::string settings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  const std::string ping = std::string("\x00\x00\x08\x06\x00\x00\x00\x00\x00", 9) + std::string(8, 'p');
  EXPECT_FALSE(d->Feed(Ev(1, kW, settings)));
  std::string lots;
  while (lots.size() < (1u << 20)) lots += ping;
  EXPECT_FALSE(d->Feed(Ev(1, kW, lots)));
  EXPECT_FALSE(d->Feed(Ev(1, kR, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")));
  EXPECT_TRUE(g.msgs.empty());
  // Under the cap, the same start is decoded.
  EXPECT_FALSE(d->Feed(Ev(2, kW, settings + ping)));
  EXPECT_TRUE(d->Feed(Ev(2, kR, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")));
}

}  // namespace
}  // namespace gotlscap::decode
