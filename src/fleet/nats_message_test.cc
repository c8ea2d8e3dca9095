// Subjects, ids, bodies and the splitting of big events (NatsMessage*): every part a valid JSON
// object with every field of the event, slices that decode on their own and join into the payload.
#include "fleet/nats_message.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "output/encoding.h"

namespace gotlscap::fleet {
namespace {

std::string B64(std::string_view bytes) {
  fmt::memory_buffer b;
  output::AppendBase64Portable(b, bytes);
  return fmt::to_string(b);
}

std::string Unb64(const std::string& s) {
  static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    acc = (acc << 6) | uint32_t(k.find(c));
    if ((bits += 6) >= 8) out.push_back(char(acc >> (bits -= 8)));
  }
  return out;
}

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 r(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(r());
  return s;
}

std::string DataLine(const std::string& payload) {
  return R"({"type":"data","ts_ns":1,"pid":7,"tid":8,"uid":0,"comm":"x\"y","dir":"write","len":)" +
         std::to_string(payload.size()) + R"(,"truncated":false,"captured":)" + std::to_string(payload.size()) +
         R"(,"missing":0,"conn":{"id":3,"fd":5,"local":"a","remote":"b"},"payload_b64":")" + B64(payload) + "\"}\n";
}

TEST(NatsMessageTest, SubjectTokenReplacesDotsAndWildcards) {
  EXPECT_EQ(SubjectToken("node-1.example.org"), "node-1_example_org");
  EXPECT_EQ(SubjectToken("a b*c>d\te"), "a_b_c_d_e");
  EXPECT_EQ(SubjectToken(""), "unknown");
  EXPECT_EQ(SubjectToken("plain"), "plain");
}

TEST(NatsMessageTest, SubjectPrefixValidation) {
  EXPECT_TRUE(ValidSubjectPrefix("gotlscap"));
  EXPECT_TRUE(ValidSubjectPrefix("fleet.tls"));
  for (const char* bad : {"", ".a", "a.", "a..b", "a b", "a.*", "a.>", "a\tb"}) EXPECT_FALSE(ValidSubjectPrefix(bad)) << bad;
}

TEST(NatsMessageTest, BodyWithHostIsTheSameObjectPlusHost) {
  const std::string line = DataLine("hello");
  const std::string body = BodyWithHost(line, "\"node\\\"1\"");
  EXPECT_EQ(body.substr(0, 30), R"({"type":"data","host":"node\"1)");
  EXPECT_NE(body.back(), '\n');
  auto j = nlohmann::json::parse(body);
  auto orig = nlohmann::json::parse(line);
  EXPECT_EQ(j["host"], "node\"1");
  j.erase("host");
  EXPECT_EQ(j, orig);
}

TEST(NatsMessageTest, SmallEventIsOneUnchangedMessage) {
  const std::string body = BodyWithHost(DataLine("abc"), "\"h\"");
  auto parts = SplitBody(body, body.size());
  ASSERT_TRUE(parts);
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0], body);
}

// Sizes around every remainder of 3 and slice boundary: nothing lost, nothing repeated.
TEST(NatsMessageTest, BigEventSplitsIntoSelfContainedParts) {
  for (size_t n : {size_t(3000), size_t(3001), size_t(3002), size_t(100000), size_t(3u << 20)}) {
    const std::string payload = Bytes(n, uint32_t(n));
    const std::string body = BodyWithHost(DataLine(payload), "\"h\"");
    const size_t max = n > 100000 ? (1u << 20) - 200 : 1000;
    auto parts = SplitBody(body, max);
    ASSERT_TRUE(parts) << n;
    ASSERT_GT(parts->size(), 1u);
    auto whole = nlohmann::json::parse(body);
    std::string joined;
    for (size_t i = 0; i < parts->size(); i++) {
      const std::string& p = (*parts)[i];
      EXPECT_LE(p.size(), max) << n << " part " << i;
      auto j = nlohmann::json::parse(p);
      EXPECT_EQ(j["part"], i + 1);
      EXPECT_EQ(j["parts"], parts->size());
      const std::string slice = j["payload_b64"];
      EXPECT_EQ(slice.size() % 4, 0u);
      const std::string bytes = Unb64(slice);
      if (i + 1 < parts->size()) {
        EXPECT_EQ(slice.find('='), std::string::npos) << "padding inside part " << i;
        EXPECT_EQ(bytes.size() % 3, 0u);
      }
      joined += bytes;
      // Every other field is the event's own.
      for (auto& k : {"part", "parts", "payload_b64"}) j.erase(k);
      auto w = whole;
      w.erase("payload_b64");
      EXPECT_EQ(j, w);
    }
    EXPECT_EQ(joined.size(), payload.size());
    EXPECT_TRUE(joined == payload) << n;
  }
}

TEST(NatsMessageTest, HttpBodySplitsOnBodyB64) {
  const std::string body_bytes = Bytes(5000, 9);
  const std::string line = R"({"type":"http","ts_ns":1,"pid":2,"comm":"c","proto":"HTTP/1.1","kind":"request","conn":{"id":1,"fd":3,"local":"a","remote":"b"},"method":"POST","path":"/p","authority":"x","headers":[["k","\"payload_b64\":\"x"]],"body_len":5000,"body_wire_len":5000,"body_decoded":false,"body_truncated":false,"body_b64":")" +
                           B64(body_bytes) + "\"}\n";
  auto parts = SplitBody(BodyWithHost(line, "\"h\""), 2000);
  ASSERT_TRUE(parts);
  ASSERT_GE(parts->size(), 4u);
  std::string joined;
  for (const auto& p : *parts) {
    auto j = nlohmann::json::parse(p);
    EXPECT_EQ(j["headers"][0][1], "\"payload_b64\":\"x");
    joined += Unb64(j["body_b64"]);
  }
  EXPECT_TRUE(joined == body_bytes);
}

TEST(NatsMessageTest, UnsplittableEventsAreReported) {
  const std::string secret = BodyWithHost(R"({"type":"secret","ts_ns":1,"label":")" + std::string(3000, 'A') + "\"}\n", "\"h\"");
  EXPECT_FALSE(SplitBody(secret, 1000));
  // Fields alone larger than a message: cannot be cut either.
  EXPECT_FALSE(SplitBody(BodyWithHost(DataLine(Bytes(600, 1)), "\"h\""), 250));
}

TEST(NatsMessageTest, MessageIdsNameHostBootRunSequenceAndPart) {
  EXPECT_EQ(MessageId("n/b/r", 42, 0), "n/b/r/42");
  EXPECT_EQ(MessageId("n/b/r", 42, 3), "n/b/r/42/3");
  EXPECT_NE(NewRunId(), NewRunId());
  EXPECT_EQ(NewRunId().size(), 16u);
  EXPECT_EQ(ReadBootId().size(), 36u);  // a UUID
}

}  // namespace
}  // namespace gotlscap::fleet
