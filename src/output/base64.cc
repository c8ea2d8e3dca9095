// Base64 (RFC 4648, with padding) for JSON payloads: the consumer's hottest loop, since bulk
// transfers put hundreds of MB/s through it. Debian has no SIMD base64 library (libb64 is a
// byte-at-a-time state machine), so this is hand-written:
// - x86-64 with AVX2 (checked once at run time): 24 input bytes -> 32 characters per step, the
//   byte-shuffle / multiply-shift / table-lookup method published by W. Muła and D. Lemire
//   ("Faster Base64 Encoding and Decoding Using AVX2 Instructions", 2018);
// - elsewhere and for the tail: 3 bytes -> 4 characters through a 4096-entry table of character
//   pairs (one lookup per 12 bits instead of per 6).
#include <cstring>

#include <array>

#include "output/encoding.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace gotlscap::output {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct PairTable {
  char pair[4096][2];
  PairTable() {
    for (int v = 0; v < 4096; v++) {
      pair[v][0] = kAlphabet[v >> 6];
      pair[v][1] = kAlphabet[v & 63];
    }
  }
};
const PairTable kPairs;

// Encodes n bytes (any n) from p to o; returns nothing, writes exactly (n + 2) / 3 * 4 bytes.
void EncodeScalar(const uint8_t* p, size_t n, char* o) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3, o += 4) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    std::memcpy(o, kPairs.pair[v >> 12], 2);
    std::memcpy(o + 2, kPairs.pair[v & 4095], 2);
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t(p[i]) << 16;
    std::memcpy(o, kPairs.pair[v >> 12], 2);
    o[2] = o[3] = '=';
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8);
    std::memcpy(o, kPairs.pair[v >> 12], 2);
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = '=';
  }
}

#if defined(__x86_64__)
// Encodes the first n / 24 * 24 bytes that can be loaded 28 at a time (each step reads 4 bytes
// past its 24); returns how many input bytes it consumed.
__attribute__((target("avx2"))) size_t EncodeAvx2(const uint8_t* p, size_t n, char* o) {
  // Each 128-bit lane holds 12 input bytes; this spreads every 3 bytes over 4 lanes' worth of
  // 16-bit pairs (bytes b1 b0 b2 b1) so the 6-bit fields can be cut out with two multiplies.
  const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,  //
                                          1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  // Per range of 6-bit values, what to add to reach its ASCII character: A-Z (0-25) +65,
  // a-z (26-51) +71, 0-9 (52-61) -4, '+' (62) -19, '/' (63) -16.
  const __m256i offsets = _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,  //
                                           65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
  size_t i = 0;
  for (; i + 28 <= n; i += 24, o += 32) {
    __m256i in = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 12)), 1);
    in = _mm256_shuffle_epi8(in, spread);
    // Fields a and c (bits 10-15 and 6-11 of each 16-bit half) via mulhi, b and d via mullo.
    const __m256i ac = _mm256_mulhi_epu16(_mm256_and_si256(in, _mm256_set1_epi32(0x0FC0FC00)),
                                          _mm256_set1_epi32(0x04000040));
    const __m256i bd = _mm256_mullo_epi16(_mm256_and_si256(in, _mm256_set1_epi32(0x003F03F0)),
                                          _mm256_set1_epi32(0x01000010));
    const __m256i idx6 = _mm256_or_si256(ac, bd);  // one 6-bit value per byte
    // Range number: 0 for 0-25 (after the compare below), 1 for 26-51, 2-11 for 52-61, 12/13 for 62/63.
    __m256i range = _mm256_subs_epu8(idx6, _mm256_set1_epi8(51));
    range = _mm256_sub_epi8(range, _mm256_cmpgt_epi8(idx6, _mm256_set1_epi8(25)));
    const __m256i chars = _mm256_add_epi8(idx6, _mm256_shuffle_epi8(offsets, range));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), chars);
  }
  return i;
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
#else
constexpr bool kHaveAvx2 = false;
#endif

void Append(fmt::memory_buffer& out, std::string_view in, [[maybe_unused]] bool vector) {
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size(), start = out.size();
  out.resize(start + (n + 2) / 3 * 4);  // sized once, then written through a pointer
  char* o = out.data() + start;
  size_t done = 0;
#if defined(__x86_64__)
  if (vector) done = EncodeAvx2(p, n, o);
#endif
  EncodeScalar(p + done, n - done, o + done / 3 * 4);
}

}  // namespace

void AppendBase64(fmt::memory_buffer& out, std::string_view in) { Append(out, in, kHaveAvx2); }

// The portable path alone, so tests can compare both on any machine.
void AppendBase64Portable(fmt::memory_buffer& out, std::string_view in) { Append(out, in, false); }

bool DecodeBase64(std::string_view b64, std::string* out) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) t[uint8_t(a[i])] = int8_t(i);
    return t;
  }();
  out->clear();
  out->reserve(b64.size() / 4 * 3);
  bool valid = true;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    const int v = table[uint8_t(c)];
    if (v < 0) {
      valid = false;
      continue;
    }
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(char((acc >> bits) & 0xff));
    }
  }
  return valid;
}

}  // namespace gotlscap::output
