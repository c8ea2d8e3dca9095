// HTTP/2 (RFC 9113) decoding of one connection's captured plaintext into HttpMessages.
//
// The decoder itself is made by MakeHttp2Decoder (declared in decode/http_message.h). This header
// holds the protocol constants and the fixed caps it applies to hostile input, so that callers and
// tests can refer to them.
//
// How it works:
// - Each direction is a separate frame parser. The direction that starts with the client preface
//   is the client; the other one is then the server. A connection picked up mid-stream has no
//   preface: the parser looks for a frame boundary (a plausible frame header followed, at the
//   position its length gives, by another plausible frame header) and decodes from there.
// - Header blocks (HEADERS / PUSH_PROMISE + CONTINUATION) go through one nghttp2 HPACK inflater per
//   direction. SETTINGS_HEADER_TABLE_SIZE sent by one side changes the inflater of the other side's
//   headers (increases at once, decreases when the other side acknowledges the SETTINGS).
// - HPACK is never guessed: a header block that references dynamic-table entries the decoder has
//   not seen (a connection picked up mid-stream) fails to inflate; the stream's headers are then
//   reported as undecodable (a notice) and that direction's header decoding stays off (its table
//   is out of step from then on). DATA frames are still attributed to their streams.
// - DATA payloads are streamed (never buffered whole); other frames are buffered up to their
//   length, which must fit DecoderLimits::max_buffered (else the frame is skipped with a notice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gotlscap::decode::http2 {

inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kFrameHeaderLen = 9;
// Largest frame payload the decoder accepts at all (the 24-bit length field allows 16 MiB - 1).
inline constexpr uint32_t kMaxFrameLen = (16u << 20) - 1;
// While looking for a frame boundary (no preface seen), a candidate frame must be at most this
// long: the default SETTINGS_MAX_FRAME_SIZE (a larger frame there is skipped, and the boundary
// after it found instead).
inline constexpr uint32_t kMaxResyncFrameLen = 16384;
// Streams open at once per connection; beyond that the oldest is dropped (with a notice if it
// held a message in progress).
inline constexpr size_t kMaxOpenStreams = 1000;
// Decoded header list kept per header block (RFC 7541 size: name + value + 32 per field).
inline constexpr uint64_t kMaxHeaderListSize = 1u << 20;
// Largest HPACK dynamic table the decoder will keep (a larger SETTINGS_HEADER_TABLE_SIZE is
// clamped; an encoder then using more fails to inflate rather than decoding wrongly).
inline constexpr uint32_t kMaxHpackTableSize = 1u << 20;
// gRPC message sizes recorded per message.
inline constexpr size_t kMaxGrpcMessages = 65536;

// Frame types (RFC 9113 section 6).
enum FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kPriority = 0x2,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoAway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};

// Frame flags.
inline constexpr uint8_t kFlagEndStream = 0x1;
inline constexpr uint8_t kFlagAck = 0x1;
inline constexpr uint8_t kFlagEndHeaders = 0x4;
inline constexpr uint8_t kFlagPadded = 0x8;
inline constexpr uint8_t kFlagPriority = 0x20;

// Name of an RFC 9113 error code ("CANCEL"), or "0x.." for unknown ones.
std::string ErrorCodeName(uint32_t code);

}  // namespace gotlscap::decode::http2
