#include "output/encoding.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <vector>

namespace gotlscap::output {
namespace {

std::string B64(std::string_view s) {
  fmt::memory_buffer b;
  AppendBase64(b, s);
  return fmt::to_string(b);
}

TEST(Encoding, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(B64(""), "");
  EXPECT_EQ(B64("f"), "Zg==");
  EXPECT_EQ(B64("fo"), "Zm8=");
  EXPECT_EQ(B64("foo"), "Zm9v");
  EXPECT_EQ(B64("foob"), "Zm9vYg==");
  EXPECT_EQ(B64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(B64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(B64(std::string("\xff\x00\xfe", 3)), "/wD+");
}

// A plain reference: 6 bits at a time.
std::string Base64Reference(std::string_view s) {
  static const char kA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    if (i + 1 < s.size()) v |= uint32_t(uint8_t(s[i + 1])) << 8;
    if (i + 2 < s.size()) v |= uint8_t(s[i + 2]);
    out += kA[v >> 18];
    out += kA[(v >> 12) & 63];
    out += i + 1 < s.size() ? kA[(v >> 6) & 63] : '=';
    out += i + 2 < s.size() ? kA[v & 63] : '=';
  }
  return out;
}

TEST(Encoding, Base64FastAndPortablePathsMatchTheReferenceAtEveryLength) {
  std::mt19937 rng(7);
  std::string data(200000, '\0');
  for (auto& c : data) c = char(rng());
  // Every length up to 300 (the vector loop's edges: 24-byte steps, 28 bytes read per step) and
  // a few large ones, appended after existing content.
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; n++) lengths.push_back(n);
  for (size_t n : {16383, 16384, 16385, 100000, 199999, 200000}) lengths.push_back(n);
  for (size_t n : lengths) {
    const std::string_view in(data.data() + (n % 7), std::min(n, data.size() - 7));
    const std::string want = "x" + Base64Reference(in);
    fmt::memory_buffer fast, portable;
    fast.push_back('x');
    portable.push_back('x');
    AppendBase64(fast, in);
    AppendBase64Portable(portable, in);
    ASSERT_EQ(fmt::to_string(fast), want) << "length " << in.size();
    ASSERT_EQ(fmt::to_string(portable), want) << "length " << in.size();
  }
}

std::string JsonString(std::string_view s) {
  fmt::memory_buffer b;
  AppendJsonString(b, s);
  return fmt::to_string(b);
}

TEST(Encoding, JsonStringsMatchNlohmannForValidText) {
  for (std::string s : {std::string(""), std::string("server"), std::string("a\"b\\c/d"),
                        std::string("\b\f\n\r\t\x01\x1f\x7f", 8), std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        std::string("[::1]:443")}) {
    EXPECT_EQ(JsonString(s), nlohmann::json(s).dump()) << s;
    EXPECT_EQ(nlohmann::json::parse(JsonString(s)).get<std::string>(), s);
  }
}

TEST(Encoding, JsonStringsReplaceBytesThatAreNotUtf8) {
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate, past U+10FFFF.
  for (std::string bad : {std::string("a\x80" "b"), std::string("a\xe2\x82"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    const std::string out = JsonString(bad);
    auto parsed = nlohmann::json::parse(out);  // valid JSON, valid UTF-8
    EXPECT_NE(parsed.get<std::string>().find("\xef\xbf\xbd"), std::string::npos) << out;
  }
  EXPECT_EQ(JsonString("a\x80" "b"), "\"a\xef\xbf\xbd" "b\"");
}

TEST(Encoding, EscapesNonPrintableBytes) {
  fmt::memory_buffer b;
  AppendEscaped(b, std::string("GET /\r\n\x01\\\xff", 10));
  EXPECT_EQ(fmt::to_string(b), "GET /\\r\n\\x01\\\\\\xff");
}

TEST(Encoding, TimestampIsRfc3339Utc) {
  fmt::memory_buffer b;
  AppendTimestamp(b, 1'700'000'000'123'456'789ull);
  EXPECT_EQ(fmt::to_string(b), "2023-11-14T22:13:20.123456789Z");
}

TEST(Encoding, HexDumpLayout) {
  fmt::memory_buffer b;
  AppendHexDump(b, "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(fmt::to_string(b),
            "00000000  48 54 54 50 2f 31 2e 31  20 32 30 30 20 4f 4b 0d  |HTTP/1.1 200 OK.|\n"
            "00000010  0a                                                |.|\n");
}

// The dump written byte by byte through a pointer matches the layout formatted field by field
// (as `hexdump -C` prints it) for every line length, at offsets past 0xffff.
TEST(Encoding, HexDumpMatchesFormattedLayout) {
  auto formatted = [](std::string_view bytes) {
    std::string out;
    for (size_t off = 0; off < bytes.size(); off += 16) {
      out += fmt::format("{:08x}  ", off);
      for (size_t i = 0; i < 16; i++) {
        out += off + i < bytes.size() ? fmt::format("{:02x} ", static_cast<unsigned char>(bytes[off + i])) : "   ";
        if (i == 7) out += ' ';
      }
      out += " |";
      for (size_t i = 0; i < 16 && off + i < bytes.size(); i++) {
        const auto c = static_cast<unsigned char>(bytes[off + i]);
        out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
      }
      out += "|\n";
    }
    return out;
  };
  std::string bytes;
  for (size_t i = 0; i < 70000; i++) bytes.push_back(static_cast<char>((i * 2654435761u) >> 11));
  for (size_t len : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 70000}) {
    fmt::memory_buffer b;
    b.append(std::string_view("before\n"));
    AppendHexDump(b, std::string_view(bytes).substr(0, len));
    EXPECT_EQ(fmt::to_string(b), "before\n" + formatted(std::string_view(bytes).substr(0, len))) << len;
  }
}

}  // namespace
}  // namespace gotlscap::output

namespace gotlscap::output {
namespace {

TEST(Encoding, DecodeBase64RoundTripsAndFlagsBadCharacters) {
  std::mt19937 rng(3);
  for (size_t n = 0; n < 300; n++) {
    std::string bytes(n, '\0');
    for (auto& c : bytes) c = char(rng());
    std::string back;
    ASSERT_TRUE(DecodeBase64(B64(bytes), &back)) << n;
    EXPECT_EQ(back, bytes) << n;
  }
  std::string out;
  EXPECT_FALSE(DecodeBase64("Zm9v!YmFy", &out));  // '!' skipped, the rest decoded
  EXPECT_EQ(out, "foobar");
}

}  // namespace
}  // namespace gotlscap::output
