#include "decode/content_decoding.h"

#include <gtest/gtest.h>

#include "testing/compress.h"

#include <random>
#include <string>

namespace gotlscap::decode {
namespace {

using testing::Brotli;
using testing::Compress;

std::string Text(size_t n) {
  std::string s;
  std::mt19937 rng(7);
  static const char* words[] = {"alpha ", "beta ", "gamma ", "delta\n", "{\"k\": 1}, "};
  while (s.size() < n) s += words[rng() % 5];
  s.resize(n);
  return s;
}

TEST(ContentDecoding, GzipZlibRawDeflateBrotli) {
  const std::string text = Text(100000);
  EXPECT_EQ(DecodeContent("gzip", Compress(text, 31), 1 << 20), text);
  EXPECT_EQ(DecodeContent("x-gzip", Compress(text, 31), 1 << 20), text);
  EXPECT_EQ(DecodeContent("deflate", Compress(text, 15), 1 << 20), text);
  EXPECT_EQ(DecodeContent("deflate", Compress(text, -15), 1 << 20), text);
  EXPECT_EQ(DecodeContent("br", Brotli(text), 1 << 20), text);
  EXPECT_EQ(DecodeContent("GZIP", Compress(text, 31), 1 << 20), text);
  EXPECT_EQ(DecodeContent("identity", text, 1 << 20), text);
  EXPECT_EQ(DecodeContent("", text, 1 << 20), text);
  EXPECT_EQ(DecodeContent("gzip", Compress("", 31), 10), "");
}

TEST(ContentDecoding, RawDeflateThatLooksLikeZlibHeaderFallsBack) {
  // Many short inputs: whichever first two bytes raw deflate produces, decoding must work.
  for (int i = 0; i < 200; ++i) {
    const std::string text = Text(static_cast<size_t>(i) * 7 + 1) + std::to_string(i);
    EXPECT_EQ(DecodeContent("deflate", Compress(text, -15), 1 << 20), text) << i;
  }
}

TEST(ContentDecoding, ListsAreUndoneInReverse) {
  const std::string text = Text(5000);
  const std::string twice = Brotli(Compress(text, 31));  // gzip applied first, then br
  EXPECT_EQ(DecodeContent("gzip, br", twice, 1 << 20), text);
  EXPECT_EQ(DecodeContent("gzip,identity ,br", twice, 1 << 20), text);
  EXPECT_EQ(DecodeContent("br, gzip", twice, 1 << 20), std::nullopt);
}

TEST(ContentDecoding, ConcatenatedGzipMembers) {
  const std::string a = Text(1000), b = "second member";
  EXPECT_EQ(DecodeContent("gzip", Compress(a, 31) + Compress(b, 31), 1 << 20), a + b);
}

TEST(ContentDecoding, CorruptUnsupportedAndIncomplete) {
  const std::string text = Text(20000);
  std::string gz = Compress(text, 31);
  EXPECT_EQ(DecodeContent("gzip", "not gzip at all", 1 << 20), std::nullopt);
  EXPECT_EQ(DecodeContent("br", "not brotli at all, no no", 1 << 20), std::nullopt);
  EXPECT_EQ(DecodeContent("deflate", std::string(100, '\xff'), 1 << 20), std::nullopt);
  EXPECT_EQ(DecodeContent("zstd", gz, 1 << 20), std::nullopt);
  EXPECT_EQ(DecodeContentBounded("zstd", gz, 1 << 20).status, DecodeStatus::kUnsupported);
  EXPECT_EQ(DecodeContentBounded("gzip, zstd", gz, 1 << 20).status, DecodeStatus::kUnsupported);

  std::string corrupt = gz;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() / 2 + 1] ^= 0x55;
  EXPECT_EQ(DecodeContent("gzip", corrupt, 1 << 20), std::nullopt);

  // Cut in the middle: not a whole body, but the prefix decodes.
  const std::string half = gz.substr(0, gz.size() / 2);
  EXPECT_EQ(DecodeContent("gzip", half, 1 << 20), std::nullopt);
  DecodeResult r = DecodeContentBounded("gzip", half, 1 << 20);
  EXPECT_EQ(r.status, DecodeStatus::kIncomplete);
  EXPECT_GT(r.out.size(), 0u);
  EXPECT_EQ(r.out, text.substr(0, r.out.size()));
  const std::string br = Brotli(text);
  r = DecodeContentBounded("br", br.substr(0, br.size() / 2), 1 << 20);
  EXPECT_EQ(r.status, DecodeStatus::kIncomplete);
  EXPECT_EQ(r.out, text.substr(0, r.out.size()));
}

TEST(ContentDecoding, OutputIsBounded) {
  const std::string zeros(64u << 20, '\0');  // 64 MiB of zeros: ~64 KiB gzip, a few bytes of br
  const std::string gz = Compress(zeros, 31), br = Brotli(zeros);
  ASSERT_LT(gz.size(), 200000u);
  ASSERT_LT(br.size(), 2000u);
  for (const auto& [enc, data] : {std::pair<std::string, std::string>{"gzip", gz}, {"br", br}}) {
    EXPECT_EQ(DecodeContent(enc, data, 1 << 20), std::nullopt) << enc;
    DecodeResult r = DecodeContentBounded(enc, data, 1 << 20);
    EXPECT_EQ(r.status, DecodeStatus::kTruncated) << enc;
    EXPECT_EQ(r.out.size(), 1u << 20) << enc;
  }
  EXPECT_EQ(DecodeContent("gzip", Compress("abc", 31), 3), "abc");
  EXPECT_EQ(DecodeContent("gzip", Compress("abcd", 31), 3), std::nullopt);
  EXPECT_EQ(DecodeContentBounded("identity", "abcd", 3).out, "abc");
}

TEST(ContentDecoding, RandomInputsNeverCrash) {
  std::mt19937 rng(1);
  const std::string gz = Compress(Text(3000), 31), br = Brotli(Text(3000));
  for (int i = 0; i < 2000; ++i) {
    std::string in = (i % 3 == 0) ? gz : (i % 3 == 1) ? br : std::string(1 + rng() % 200, 'x');
    for (int k = 0; k < 4; ++k) in[rng() % in.size()] = static_cast<char>(rng());
    for (const char* enc : {"gzip", "deflate", "br"}) {
      DecodeResult r = DecodeContentBounded(enc, in, 4096);
      EXPECT_LE(r.out.size(), 4096u);
    }
  }
}

}  // namespace
}  // namespace gotlscap::decode
