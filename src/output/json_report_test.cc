#include "output/json_report.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "output/encoding.h"

namespace gotlscap::output {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

nlohmann::json Strict(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  return nlohmann::json::parse(line);  // throws on invalid UTF-8
}

TEST(JsonReport, ValidUtf8ReplacesEachBadByte) {
  EXPECT_EQ(ValidUtf8("plain"), "plain");
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9"), "caf\xc3\xa9");                      // well-formed: kept
  EXPECT_EQ(ValidUtf8("caf\xe9"), "caf" + kFffd);                           // latin-1
  EXPECT_EQ(ValidUtf8("\xe9\x80x"), kFffd + kFffd + "x");                   // truncated sequence
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), kFffd + kFffd);                          // overlong '/'
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), kFffd + kFffd + kFffd);              // surrogate
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
  EXPECT_EQ(ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));    // NUL is valid UTF-8
}

TEST(JsonReport, JsonLineMakesAnyDomValid) {
  nlohmann::ordered_json j;
  j["name"] = "srv\xff\xfe";
  j["list"] = {"ok", "bad\x80", 3};
  j["nested"]["k\xc3"] = {{"inner\xe9", "v\xf8"}};
  const auto parsed = Strict(JsonLine(j));
  EXPECT_EQ(parsed["name"], "srv" + kFffd + kFffd);
  EXPECT_EQ(parsed["list"][1], "bad" + kFffd);
  EXPECT_EQ(parsed["list"][2], 3);
  EXPECT_EQ(parsed["nested"]["k" + kFffd]["inner" + kFffd], "v" + kFffd);
}

TEST(JsonReport, KeysThatBecomeEqualAreBothKept) {
  nlohmann::ordered_json j;
  j["a\xff"] = 1;
  j["a\xfe"] = 2;
  j["a\xfd"] = 3;
  const auto parsed = Strict(JsonLine(j));
  ASSERT_EQ(parsed.size(), 3u) << parsed.dump();
  EXPECT_EQ(parsed["a" + kFffd], 1);
  EXPECT_EQ(parsed["a" + kFffd + " #2"], 2);
  EXPECT_EQ(parsed["a" + kFffd + " #3"], 3);
}

// The report DOMs and the hand-built event lines follow one rule: for any bytes, JsonLine's
// string is exactly what AppendJsonString writes.
TEST(JsonReport, SameRuleAsTheEventWriters) {
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; i++) {
    std::string s(rng() % 24, '\0');
    for (auto& c : s) c = char(rng() % 4 == 0 ? rng() % 0x20 : 0x70 + rng() % 0x90);
    fmt::memory_buffer b;
    AppendJsonString(b, s);
    std::string line = JsonLine(nlohmann::ordered_json(s));
    line.pop_back();
    ASSERT_EQ(line, fmt::to_string(b)) << "input #" << i;
    Strict(line + "\n");
  }
}

}  // namespace
}  // namespace gotlscap::output
