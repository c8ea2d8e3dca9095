// libFuzzer target: the HTTP/2 connection decoder (MakeHttp2Decoder) fed two interleaved directions.
// Any input must be decoded without a crash, a hang, or output beyond the limits.
//
// Input layout: byte 0 selects the start (bit 0: the client preface opens one direction, bit 1:
// which one, bit 2: raw bodies); then records of [ctl][bytes]: direction = ctl & 1, length =
// (ctl >> 1) + 1, or when that is 128 the next two bytes (big-endian) + 1. The last record takes
// what is left. Seeds: any HTTP/2 conversation written this way. With bit 3 of byte 0, a record
// whose length would be 101..127 is instead (ctl >> 1) * 50 bytes not captured (Skip, as under
// --max-payload), and consumes no input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "decode/http2_decoder.h"
#include "decode/http_message.h"

using gotlscap::decode::DecoderLimits;
using gotlscap::decode::DecoderSink;
using gotlscap::decode::Flow;
using gotlscap::decode::HttpMessage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  DecoderLimits limits;
  limits.max_buffered = 64 * 1024;
  limits.max_body = 4096;
  limits.raw = (data[0] & 4) != 0;
  uint64_t messages = 0;
  DecoderSink sink{[&](HttpMessage&& m) {
                     ++messages;
                     // Bodies are capped (a decoded body by the same cap as the kept one).
                     if (m.body.size() > limits.max_body) __builtin_trap();
                     if (!m.body_decoded && m.body.size() > m.body_wire_len) __builtin_trap();
                     if (m.body_uncaptured > m.body_wire_len) __builtin_trap();
                     if (m.proto != "HTTP/2") __builtin_trap();
                   },
                   [](std::string_view notice) {
                     if (notice.empty()) __builtin_trap();
                   }};
  auto dec = gotlscap::decode::MakeHttp2Decoder(sink, limits);
  if (data[0] & 1) {
    const Flow client = (data[0] & 2) ? Flow::kIn : Flow::kOut;
    dec->Feed(client, gotlscap::decode::http2::kClientPreface, 0);
  }
  size_t i = 1;
  uint64_t ts = 1;
  while (i < size) {
    const uint8_t ctl = data[i++];
    const Flow flow = (ctl & 1) ? Flow::kIn : Flow::kOut;
    size_t len = (ctl >> 1) + 1;
    if ((data[0] & 8) && len > 100 && len < 128) {
      dec->Skip(flow, (ctl >> 1) * 50, ts++);
      continue;
    }
    if (len == 128 && size - i >= 2) {
      len = ((size_t{data[i]} << 8) | data[i + 1]) + 1;
      i += 2;
    }
    if (len > size - i) len = size - i;
    dec->Feed(flow, std::string_view(reinterpret_cast<const char*>(data + i), len), ts++);
    i += len;
  }
  (void)messages;
  return 0;
}
