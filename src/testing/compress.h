// Test-only: compressors for making Content-Encoding bodies (zlib/gzip/raw deflate, brotli).
#pragma once

#include <brotli/encode.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <string_view>

namespace gotlscap::testing {

// window_bits: 16+15 gzip, 15 zlib, -15 raw deflate.
inline std::string Compress(std::string_view in, int window_bits) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline std::string Brotli(std::string_view in) {
  size_t n = BrotliEncoderMaxCompressedSize(in.size()) + 64;
  std::string out(n, '\0');
  EXPECT_TRUE(BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, in.size(),
                                    reinterpret_cast<const uint8_t*>(in.data()), &n,
                                    reinterpret_cast<uint8_t*>(out.data())));
  out.resize(n);
  return out;
}

}  // namespace gotlscap::testing
