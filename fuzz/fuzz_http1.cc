// libFuzzer target: the HTTP/1.x connection decoder (decode/http1_decoder.h).
// Byte 0 picks the limits (small ones make the caps and resynchronisation paths reachable). The
// rest is a sequence of records: a control byte c, then up to (c >> 1) + 1 bytes fed to direction
// (c & 1 ? kIn : kOut), so one input exercises two interleaved directions cut at arbitrary points.
// Checked beyond "no crash / no sanitizer report": bodies never exceed max_body, notices are one
// line, and decoding the same input fed in one piece per record run does not crash either. A
// third run reads records with (c >> 1) >= 100 as bytes not captured (Skip, as under
// --max-payload: ((c >> 1) - 99) * 100 of them), consuming no input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "decode/http1_decoder.h"
#include "decode/http_message.h"

namespace {

using gotlscap::decode::DecoderLimits;
using gotlscap::decode::DecoderSink;
using gotlscap::decode::Flow;
using gotlscap::decode::HttpMessage;

void Run(const uint8_t* data, size_t size, const DecoderLimits& limits, bool merge, bool skips = false) {
  DecoderSink sink{
      [&](HttpMessage&& m) {
        if (m.body.size() > limits.max_body) __builtin_trap();
        if (m.body_wire_len < (m.body_decoded ? 0 : m.body.size())) __builtin_trap();
        if (m.body_uncaptured > m.body_wire_len) __builtin_trap();
      },
      [](std::string_view notice) {
        if (notice.find('\n') != std::string_view::npos) __builtin_trap();
      }};
  auto dec = gotlscap::decode::MakeHttp1Decoder(sink, limits);
  std::string pending;
  Flow pending_flow = Flow::kOut;
  uint64_t ts = 0;
  size_t i = 0;
  while (i < size) {
    const uint8_t c = data[i++];
    const Flow flow = (c & 1) ? Flow::kIn : Flow::kOut;
    if (skips && (c >> 1) >= 100) {
      dec->Skip(flow, uint64_t((c >> 1) - 99) * 100, ++ts);
      continue;
    }
    const size_t n = std::min<size_t>((c >> 1) + 1, size - i);
    const std::string_view bytes(reinterpret_cast<const char*>(data + i), n);
    i += n;
    if (!merge) {
      dec->Feed(flow, bytes, ++ts);
      continue;
    }
    // Same bytes per direction, consecutive records of one direction merged into one Feed.
    if (flow != pending_flow && !pending.empty()) {
      dec->Feed(pending_flow, pending, ++ts);
      pending.clear();
    }
    pending_flow = flow;
    pending.append(bytes);
  }
  if (!pending.empty()) dec->Feed(pending_flow, pending, ++ts);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  DecoderLimits limits;
  switch (data[0] % 4) {
    case 0:
      break;  // defaults
    case 1:
      limits.max_body = 16;
      limits.max_buffered = 512;
      break;
    case 2:
      limits.max_body = 1024;
      limits.max_buffered = 64;
      limits.raw = true;
      break;
    case 3:
      limits.max_body = 0;
      limits.max_buffered = 1;
      break;
  }
  Run(data + 1, size - 1, limits, /*merge=*/false);
  Run(data + 1, size - 1, limits, /*merge=*/true);
  Run(data + 1, size - 1, limits, /*merge=*/false, /*skips=*/true);
  return 0;
}
