#include "output/encoding.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace gotlscap::output
