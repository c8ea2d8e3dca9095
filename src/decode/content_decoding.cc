#include "decode/content_decoding.h"
#include "decode/http_message.h"

#include <brotli/decode.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

namespace gotlscap::decode {
namespace {

constexpr size_t kChunk = 64 * 1024;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Appends up to max_out bytes (total) to `out`; returns false once more than max_out were offered.
bool Append(std::string& out, const uint8_t* p, size_t n, uint64_t max_out) {
  const uint64_t room = max_out > out.size() ? max_out - out.size() : 0;
  out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(std::min<uint64_t>(room, n)));
  return n <= room;
}

// window_bits: 16+15 gzip, 15 zlib, -15 raw deflate.
DecodeResult Inflate(std::string_view in, int window_bits, uint64_t max_out) {
  DecodeResult r;
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return {DecodeStatus::kError, {}};
  const bool gzip = window_bits > 15;
  std::vector<uint8_t> buf(kChunk);
  auto next_in = reinterpret_cast<const uint8_t*>(in.data());
  size_t left = in.size();
  r.status = DecodeStatus::kIncomplete;
  for (;;) {
    if (zs.avail_in == 0 && left > 0) {
      const size_t n = std::min<size_t>(left, 1u << 30);
      zs.next_in = const_cast<Bytef*>(next_in);
      zs.avail_in = static_cast<uInt>(n);
      next_in += n;
      left -= n;
    }
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    const int ret = inflate(&zs, Z_NO_FLUSH);
    const size_t produced = buf.size() - zs.avail_out;
    if (!Append(r.out, buf.data(), produced, max_out)) {
      r.status = DecodeStatus::kTruncated;
      break;
    }
    if (ret == Z_STREAM_END) {
      // Another gzip member follows (concatenated gzip files are one valid gzip stream).
      if (gzip && zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        if (inflateReset(&zs) != Z_OK) {
          r.status = DecodeStatus::kError;
          break;
        }
        continue;
      }
      r.status = DecodeStatus::kOk;  // trailing bytes after the stream are ignored
      break;
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
      r.status = DecodeStatus::kIncomplete;
      break;
    }
    if (ret == Z_BUF_ERROR && (zs.avail_in == 0 || produced > 0)) continue;
    r.status = DecodeStatus::kError;
    break;
  }
  inflateEnd(&zs);
  if (r.status == DecodeStatus::kError) r.out.clear();
  return r;
}

bool LooksLikeZlib(std::string_view in) {
  if (in.size() < 2) return false;
  const auto b0 = static_cast<uint8_t>(in[0]), b1 = static_cast<uint8_t>(in[1]);
  return (b0 & 0x0f) == 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 == 0;
}

DecodeResult Deflate(std::string_view in, uint64_t max_out) {
  if (LooksLikeZlib(in)) {
    DecodeResult r = Inflate(in, 15, max_out);
    if (r.status != DecodeStatus::kError) return r;
  }
  return Inflate(in, -15, max_out);
}

DecodeResult Brotli(std::string_view in, uint64_t max_out) {
  DecodeResult r;
  BrotliDecoderState* s = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  if (!s) return {DecodeStatus::kError, {}};
  std::vector<uint8_t> buf(kChunk);
  size_t avail_in = in.size();
  auto next_in = reinterpret_cast<const uint8_t*>(in.data());
  for (;;) {
    size_t avail_out = buf.size();
    uint8_t* next_out = buf.data();
    const BrotliDecoderResult ret = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    if (!Append(r.out, buf.data(), buf.size() - avail_out, max_out)) {
      r.status = DecodeStatus::kTruncated;
      break;
    }
    if (ret == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) continue;
    if (ret == BROTLI_DECODER_RESULT_SUCCESS) {
      r.status = DecodeStatus::kOk;
    } else if (ret == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
      r.status = DecodeStatus::kIncomplete;
    } else {
      r.status = DecodeStatus::kError;
      r.out.clear();
    }
    break;
  }
  BrotliDecoderDestroyInstance(s);
  return r;
}

DecodeResult DecodeOne(std::string_view coding, std::string_view in, uint64_t max_out) {
  if (coding.empty() || IEquals(coding, "identity")) {
    DecodeResult r;
    r.out.assign(in.substr(0, static_cast<size_t>(std::min<uint64_t>(in.size(), max_out))));
    r.status = in.size() > max_out ? DecodeStatus::kTruncated : DecodeStatus::kOk;
    return r;
  }
  if (IEquals(coding, "gzip") || IEquals(coding, "x-gzip")) return Inflate(in, 16 + 15, max_out);
  if (IEquals(coding, "deflate")) return Deflate(in, max_out);
  if (IEquals(coding, "br")) return Brotli(in, max_out);
  return {DecodeStatus::kUnsupported, {}};
}

}  // namespace

DecodeResult DecodeContentBounded(std::string_view encoding, std::string_view body, uint64_t max_out) {
  std::vector<std::string_view> codings;
  while (!encoding.empty()) {
    const size_t comma = encoding.find(',');
    std::string_view c = Trim(encoding.substr(0, comma));
    if (!c.empty()) codings.push_back(c);
    if (comma == std::string_view::npos) break;
    encoding.remove_prefix(comma + 1);
  }
  for (std::string_view c : codings) {  // reject early: nothing is decoded if one coding is unknown
    if (!IEquals(c, "identity") && !IEquals(c, "gzip") && !IEquals(c, "x-gzip") && !IEquals(c, "deflate") &&
        !IEquals(c, "br"))
      return {DecodeStatus::kUnsupported, {}};
  }
  DecodeResult r;
  r.out.assign(body.substr(0, static_cast<size_t>(std::min<uint64_t>(body.size(), max_out))));
  r.status = body.size() > max_out ? DecodeStatus::kTruncated : DecodeStatus::kOk;
  std::string_view in = body;  // the input of the next stage is not bounded by max_out
  // Codings are listed in the order they were applied: undo the last one first.
  for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
    const DecodeStatus in_status = it == codings.rbegin() ? DecodeStatus::kOk : r.status;
    DecodeResult next = DecodeOne(*it, in, max_out);
    if (next.status == DecodeStatus::kError || next.status == DecodeStatus::kUnsupported) return next;
    // A cut-off intermediate stage makes the next stage's input incomplete; report the cause.
    if (in_status != DecodeStatus::kOk && next.status != DecodeStatus::kTruncated) next.status = in_status;
    r = std::move(next);
    in = r.out;
  }
  return r;
}

std::optional<std::string> DecodeContent(std::string_view encoding, std::string_view body, uint64_t max_out) {
  DecodeResult r = DecodeContentBounded(encoding, body, max_out);
  if (r.status != DecodeStatus::kOk) return std::nullopt;
  return std::move(r.out);
}

}  // namespace gotlscap::decode
