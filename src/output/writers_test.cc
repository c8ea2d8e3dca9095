// The JSON and text writers: every line they write is what the README documents (JSON lines parse
// back to the values they were given), large events and write errors behave.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "output/event_writer.h"
#include "testing/captured_output.h"

namespace gotlscap::output {
namespace {

using Captured = testing::CapturedOutput;

capture::DataEvent Data(std::string payload) {
  capture::DataEvent ev;
  ev.ts_ns = 1'700'000'000'123'456'789ull;
  ev.pid = 42;
  ev.tid = 43;
  ev.uid = 1000;
  ev.comm = "srv\"x\x01";
  ev.dir = capture::Direction::kRead;
  ev.len = payload.size() + 5;
  ev.payload = std::move(payload);
  ev.truncated = true;
  ev.missing = 3;
  ev.conn = {7, 9, "127.0.0.1:443", "[::1]:50000"};
  return ev;
}

std::string Unbase64(const std::string& s) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    acc = (acc << 6) | uint32_t(std::string_view(k).find(c));
    if ((bits += 6) >= 8) out.push_back(char(acc >> (bits -= 8)));
  }
  return out;
}

TEST(JsonWriter, DataAndCloseEventsParseBackToTheirFields) {
  Captured c;
  auto w = MakeJsonWriter(c.f);
  w->Write(Data(std::string("GET / HTTP/1.1\r\n\0\xff", 18)));
  capture::DataEvent end = Data("");
  end.end = capture::ConnEnd::kEof;
  w->Write(end);
  auto lines = c.Lines(*w);
  ASSERT_EQ(lines.size(), 2u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["type"], "data");
  EXPECT_EQ(j["ts_ns"], 1'700'000'000'123'456'789ull);
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["tid"], 43);
  EXPECT_EQ(j["uid"], 1000);
  EXPECT_EQ(j["comm"], "srv\"x\x01");
  EXPECT_EQ(j["dir"], "read");
  EXPECT_EQ(j["len"], 23);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_EQ(j["captured"], 18);
  EXPECT_EQ(j["missing"], 3);
  EXPECT_EQ(j["conn"], nlohmann::json::parse(R"({"id":7,"fd":9,"local":"127.0.0.1:443","remote":"[::1]:50000"})"));
  EXPECT_EQ(Unbase64(j["payload_b64"]), std::string("GET / HTTP/1.1\r\n\0\xff", 18));
  auto e = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(e["type"], "close");
  EXPECT_EQ(e["reason"], "eof");
  EXPECT_EQ(e["conn"]["id"], 7);
}

TEST(JsonWriter, HttpSecretAndNoticeEventsParseBackToTheirFields) {
  Captured c;
  auto w = MakeJsonWriter(c.f);
  decode::DecodedMessage d;
  d.pid = 42;
  d.comm = "srv";
  d.conn = {7, 9, "127.0.0.1:443", "127.0.0.1:50000"};
  d.msg.proto = "HTTP/2";
  d.msg.kind = decode::HttpMessage::Kind::kResponse;
  d.msg.stream = 3;
  d.msg.status = 200;
  d.msg.request_method = "POST";
  d.msg.request_path = "/a\"b";
  d.msg.headers = {{":status", "200"}, {"x-bin", "caf\xc3\xa9\t\x80"}};
  d.msg.trailers = {{"grpc-status", "0"}};
  d.msg.body = std::string("\0\x01hello", 7);
  d.msg.body_wire_len = 20;
  d.msg.content_encoding = "gzip";
  d.msg.body_decoded = true;
  d.msg.grpc_messages = {2, 0};
  d.msg.ts_ns = 5;
  w->WriteHttp(d);
  capture::SecretEvent s;
  s.ts_ns = 6;
  s.pid = 42;
  s.tid = 44;
  s.comm = "srv";
  s.label = "CLIENT_RANDOM";
  s.client_random = std::string(32, '\x01');
  s.secret = std::string(48, '\xab');
  s.from_master_secret = true;
  w->WriteSecret(s);
  w->WriteSecret(s);  // the same secret again: written once
  w->WriteNotice(42, "srv", d.conn, "HTTP/2 \"odd\" frame");
  auto lines = c.Lines(*w);
  ASSERT_EQ(lines.size(), 3u);
  auto h = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(h["type"], "http");
  EXPECT_EQ(h["kind"], "response");
  EXPECT_EQ(h["proto"], "HTTP/2");
  EXPECT_EQ(h["stream"], 3);
  EXPECT_EQ(h["status"], 200);
  EXPECT_EQ(h["request"], nlohmann::json::parse(R"({"method":"POST","path":"/a\"b"})"));
  EXPECT_EQ(h["headers"][1][0], "x-bin");
  EXPECT_EQ(h["headers"][1][1], "caf\xc3\xa9\t\xef\xbf\xbd");  // the stray byte replaced
  EXPECT_EQ(h["trailers"], nlohmann::json::parse(R"([["grpc-status","0"]])"));
  EXPECT_EQ(h["body_len"], 7);
  EXPECT_EQ(h["body_wire_len"], 20);
  EXPECT_EQ(h["content_encoding"], "gzip");
  EXPECT_EQ(h["body_decoded"], true);
  EXPECT_EQ(h["body_truncated"], false);
  EXPECT_EQ(h["grpc_messages"], nlohmann::json::parse("[2,0]"));
  EXPECT_EQ(Unbase64(h["body_b64"]), d.msg.body);
  auto sec = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(sec["type"], "secret");
  EXPECT_EQ(sec["label"], "CLIENT_RANDOM");
  std::string random_hex;
  for (int i = 0; i < 32; i++) random_hex += "01";
  EXPECT_EQ(sec["client_random"], random_hex);
  EXPECT_EQ(sec["secret"].get<std::string>().size(), 96u);
  EXPECT_EQ(sec["source"], "master_secret");
  auto n = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(n["type"], "notice");
  EXPECT_EQ(n["notice"], "HTTP/2 \"odd\" frame");
  EXPECT_EQ(n["conn"]["id"], 7);
}

TEST(JsonWriter, RequestFieldsAndNoOptionalFields) {
  Captured c;
  auto w = MakeJsonWriter(c.f);
  decode::DecodedMessage d;
  d.msg.proto = "HTTP/1.1";
  d.msg.method = "GET";
  d.msg.path = "/";
  d.msg.authority = "example.com";
  w->WriteHttp(d);
  auto lines = c.Lines(*w);
  ASSERT_EQ(lines.size(), 1u);
  auto h = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(h["kind"], "request");
  EXPECT_EQ(h["method"], "GET");
  EXPECT_EQ(h["authority"], "example.com");
  for (const char* absent : {"stream", "trailers", "content_encoding", "grpc_messages", "status"})
    EXPECT_FALSE(h.contains(absent)) << absent;
  EXPECT_EQ(h["body_b64"], "");
}

TEST(Writers, EventsLargerThanTheBufferAreWrittenWhole) {
  for (bool json : {true, false}) {
    Captured c;
    auto w = json ? MakeJsonWriter(c.f) : MakeTextWriter(c.f, false);
    // 3 MiB + 1: past the 1 MiB write-out point in one event, encoded in several slices (JSON)
    // that must join exactly: varied bytes, a length that is not a multiple of 3.
    std::string big((3 << 20) + 1, 'a');
    if (json)
      for (size_t i = 0; i < big.size(); i++) big[i] = char((i * 2654435761u) >> 13);
    w->Write(Data(big));
    w->Write(Data("tail"));
    auto lines = c.Lines(*w);
    if (json) {
      ASSERT_EQ(lines.size(), 2u);
      EXPECT_EQ(Unbase64(nlohmann::json::parse(lines[0])["payload_b64"]), big);
      EXPECT_EQ(Unbase64(nlohmann::json::parse(lines[1])["payload_b64"]), "tail");
    } else {
      std::string all;
      for (auto& l : lines) all += l + "\n";
      EXPECT_NE(all.find(big + "\n"), std::string::npos);
      EXPECT_NE(all.find("tail\n"), std::string::npos);
    }
  }
}

// The sink side of the JSON writer (what --nats uses): the same lines as a file gets, each whole
// with its type, a 3 MiB event included (a file gets it in 1 MiB writes; the sink in one piece).
TEST(JsonWriterSinkFleet, SinkGetsTheFileLinesWholeWithTheirTypes) {
  struct Sink : LineSink {
    std::vector<std::pair<EventType, std::string>> lines;
    void Line(EventType t, std::string_view l) override { lines.emplace_back(t, std::string(l)); }
  } sink;
  Captured c;
  auto file = MakeJsonWriter(c.f);
  auto to_sink = MakeJsonWriter(&sink);
  auto tee = MakeTeeWriter({file.get(), to_sink.get()});
  std::string big((3 << 20) + 2, 'b');
  for (size_t i = 0; i < big.size(); i++) big[i] = char((i * 2654435761u) >> 11);
  tee->Write(Data(big));
  capture::DataEvent end = Data("");
  end.end = capture::ConnEnd::kClose;
  tee->Write(end);
  capture::SecretEvent s;
  s.pid = 1;
  s.label = "CLIENT_RANDOM";
  s.client_random = std::string(32, '\1');
  s.secret = std::string(48, '\2');
  tee->WriteSecret(s);
  decode::DecodedMessage d;
  d.msg.proto = "HTTP/1.1";
  tee->WriteHttp(d);
  tee->WriteNotice(1, "c", capture::Connection{}, "n");
  auto lines = c.Lines(*tee);
  ASSERT_EQ(sink.lines.size(), 5u);
  ASSERT_EQ(lines.size(), 5u);
  const EventType types[] = {EventType::kData, EventType::kClose, EventType::kSecret, EventType::kHttp, EventType::kNotice};
  for (size_t i = 0; i < 5; i++) {
    EXPECT_EQ(sink.lines[i].first, types[i]);
    EXPECT_EQ(sink.lines[i].second, lines[i] + "\n") << i;
    EXPECT_EQ(nlohmann::json::parse(lines[i])["type"], EventTypeName(types[i]));
  }
  EXPECT_EQ(Unbase64(nlohmann::json::parse(sink.lines[0].second)["payload_b64"]), big);
}

TEST(Writers, AFullDiskMakesFlushFail) {
  FILE* full = fopen("/dev/full", "w");
  if (!full) GTEST_SKIP() << "no /dev/full";
  auto w = MakeJsonWriter(full);
  w->Write(Data("x"));
  EXPECT_FALSE(w->Flush());
  fclose(full);
}

}  // namespace
}  // namespace gotlscap::output
