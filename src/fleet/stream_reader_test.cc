#include "fleet/stream_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gotlscap::fleet {
namespace {

using Json = nlohmann::ordered_json;

struct Collected {
  std::vector<std::string> lines;  // dump of each event
  std::vector<uint64_t> seqs;      // the "n" field each test event carries
};

StreamAssembler Make(Collected& c, size_t max_wait = 1000) {
  return StreamAssembler(
      [&c](const Json& ev, const std::string&) {
        c.lines.push_back(ev.dump());
        c.seqs.push_back(ev.value("n", uint64_t(0)));
      },
      max_wait);
}

std::string Event(uint64_t n) { return R"({"type":"data","host":"h","n":)" + std::to_string(n) + R"(,"payload_b64":"QUJD"})"; }

TEST(ViewParseSince, Units) {
  EXPECT_EQ(ParseSince("30s"), std::chrono::seconds(30));
  EXPECT_EQ(ParseSince("10m"), std::chrono::seconds(600));
  EXPECT_EQ(ParseSince("2h"), std::chrono::seconds(7200));
  EXPECT_EQ(ParseSince("1d"), std::chrono::seconds(86400));
  for (const char* bad : {"", "s", "10", "0m", "-5m", "5x", "1.5h", "m5", "10 m"}) EXPECT_FALSE(ParseSince(bad)) << bad;
}

TEST(ViewFilterSubject, HostTokenAndWildcards) {
  EXPECT_EQ(ViewFilterSubject("gotlscap", "", ""), "gotlscap.*.*");
  EXPECT_EQ(ViewFilterSubject("a.b", "node-1.eu", "secret"), "a.b.node-1_eu.secret");
}

TEST(ViewParseMessageId, WithAndWithoutPart) {
  auto a = ParseMessageId("node-1/boot-id/0123abcd/42", false);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->run, "node-1/boot-id/0123abcd");
  EXPECT_EQ(a->seq, 42u);
  EXPECT_EQ(a->part, 0u);
  auto b = ParseMessageId("node-1/boot-id/0123abcd/42/3", true);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->run, "node-1/boot-id/0123abcd");
  EXPECT_EQ(b->seq, 42u);
  EXPECT_EQ(b->part, 3u);
  EXPECT_FALSE(ParseMessageId("nothing", false));
  EXPECT_FALSE(ParseMessageId("h/b/r/x", false));
  EXPECT_FALSE(ParseMessageId("h/b/r/1/0", true));
}

TEST(StreamAssembler, InOrderPassesThrough) {
  Collected c;
  auto a = Make(c);
  for (uint64_t i = 1; i <= 3; i++) ASSERT_TRUE(a.Add("h/b/r/" + std::to_string(i), Event(i)).ok());
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(c.lines[0], Event(1));  // fields in their order, untouched
}

TEST(StreamAssembler, ResentMessageStoredLaterIsPutBackInOrder) {
  Collected c;
  auto a = Make(c);
  for (uint64_t i : {1, 2, 4, 5, 3, 6}) ASSERT_TRUE(a.Add("h/b/r/" + std::to_string(i), Event(i)).ok());
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(StreamAssembler, GapThatNeverFillsIsReleasedAfterTheBoundOrFlush) {
  Collected c;
  auto a = Make(c, 3);
  for (uint64_t i : {1, 3, 4, 5}) ASSERT_TRUE(a.Add("h/b/r/" + std::to_string(i), Event(i)).ok());
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1}));  // 3 later messages: still waiting for 2
  ASSERT_TRUE(a.Add("h/b/r/6", Event(6)).ok());   // the 4th: given up
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1, 3, 4, 5, 6}));
  ASSERT_TRUE(a.Add("h/b/r/2", Event(2)).ok());   // late after all: shown once
  ASSERT_TRUE(a.Add("h/b/r/2", Event(2)).ok());   // a second copy: not shown
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1, 3, 4, 5, 6, 2}));
  EXPECT_EQ(a.duplicates(), 1u);

  Collected d;
  auto b = Make(d);
  for (uint64_t i : {1, 3, 4}) ASSERT_TRUE(b.Add("h/b/r/" + std::to_string(i), Event(i)).ok());
  EXPECT_EQ(d.seqs, (std::vector<uint64_t>{1}));
  b.Flush();
  EXPECT_EQ(d.seqs, (std::vector<uint64_t>{1, 3, 4}));
}

TEST(StreamAssembler, RunsAreOrderedSeparately) {
  Collected c;
  auto a = Make(c);
  ASSERT_TRUE(a.Add("x/b/r/1", Event(1)).ok());
  ASSERT_TRUE(a.Add("y/b/r/7", Event(7)).ok());  // another node, read from mid-run
  ASSERT_TRUE(a.Add("x/b/r/3", Event(3)).ok());
  ASSERT_TRUE(a.Add("y/b/r/8", Event(8)).ok());
  ASSERT_TRUE(a.Add("x/b/r/2", Event(2)).ok());
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{1, 7, 8, 2, 3}));
}

TEST(StreamAssembler, JoinsPartsInPartOrderAndDropsPartFields) {
  Collected c;
  auto a = Make(c);
  auto part = [](int i, const char* slice) {
    return std::string(R"({"type":"data","host":"h","len":9,"part":)") + std::to_string(i) +
           R"(,"parts":3,"payload_b64":")" + slice + "\"}";
  };
  ASSERT_TRUE(a.Add("h/b/r/1", Event(1)).ok());
  ASSERT_TRUE(a.Add("h/b/r/2/2", part(2, "REVG")).ok());
  ASSERT_TRUE(a.Add("h/b/r/3", Event(3)).ok());
  ASSERT_TRUE(a.Add("h/b/r/2/1", part(1, "QUJD")).ok());
  ASSERT_TRUE(a.Add("h/b/r/2/1", part(1, "QUJD")).ok());  // a duplicate part
  EXPECT_EQ(c.seqs.size(), 1u);
  ASSERT_TRUE(a.Add("h/b/r/2/3", part(3, "R0hJ")).ok());
  ASSERT_EQ(c.lines.size(), 3u);
  EXPECT_EQ(c.lines[1], R"({"type":"data","host":"h","len":9,"payload_b64":"QUJDREVGR0hJ"})");
  EXPECT_EQ(c.seqs[2], 3u);
  EXPECT_EQ(a.duplicates(), 1u);
}

TEST(StreamAssembler, IncompletePartsAreCountedAtFlush) {
  Collected c;
  auto a = Make(c);
  ASSERT_TRUE(a.Add("h/b/r/1/1", R"({"type":"data","part":1,"parts":2,"payload_b64":"QUJD"})").ok());
  ASSERT_TRUE(a.Add("h/b/r/2", Event(2)).ok());
  a.Flush();
  EXPECT_EQ(a.incomplete(), 1u);
  EXPECT_EQ(c.seqs, (std::vector<uint64_t>{2}));
}

TEST(StreamAssembler, BadMessagesAreErrors) {
  Collected c;
  auto a = Make(c);
  EXPECT_FALSE(a.Add("h/b/r/1", "not json").ok());
  EXPECT_FALSE(a.Add("h/b/r/x", Event(1)).ok());
  EXPECT_FALSE(a.Add("h/b/r/1/3", R"({"type":"data","part":3,"parts":2,"payload_b64":""})").ok());
  EXPECT_TRUE(c.lines.empty());
}

}  // namespace
}  // namespace gotlscap::fleet
