// Content-Encoding removal for HTTP bodies: gzip (also concatenated members), deflate (zlib-wrapped
// or raw, both occur in the wild), br, identity, and comma-separated lists of them ("gzip, br" is
// decoded br first). Output is bounded: a small compressed body never expands past max_out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gotlscap::decode {

enum class DecodeStatus {
  kOk,           // the whole body decoded
  kTruncated,    // output reached max_out; `out` holds its first max_out bytes
  kIncomplete,   // the input ended inside the compressed stream; `out` holds what it encodes
  kError,        // corrupt data
  kUnsupported,  // an encoding other than gzip / x-gzip / deflate / br / identity
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kOk;
  std::string out;  // never longer than max_out
};

// Decodes as much as possible; for kError / kUnsupported `out` is empty.
DecodeResult DecodeContentBounded(std::string_view encoding, std::string_view body, uint64_t max_out);

// The whole decoded body, or nullopt when the data is corrupt or incomplete, the encoding is not
// supported, or the output would exceed max_out.
std::optional<std::string> DecodeContent(std::string_view encoding, std::string_view body, uint64_t max_out);

}  // namespace gotlscap::decode
