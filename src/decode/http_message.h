// HttpMessage: one HTTP request or response decoded from a connection's captured plaintext, and
// the interface of the per-connection protocol decoders (HTTP/1.x, HTTP/2) that produce them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gotlscap::decode {

struct HttpMessage {
  enum class Kind { kRequest, kResponse };
  bool sent = false;      // the traced process wrote this message (false: it read it)
  std::string proto;      // "HTTP/1.0", "HTTP/1.1" or "HTTP/2"
  Kind kind = Kind::kRequest;
  uint32_t stream = 0;    // HTTP/2 stream id; 0 for HTTP/1
  std::string method;     // requests (HTTP/2: :method)
  std::string path;       // requests (HTTP/2: :path)
  std::string authority;  // requests: Host header or :authority
  int status = 0;         // responses (HTTP/2: :status)
  std::vector<std::pair<std::string, std::string>> headers;  // as sent (HTTP/2: pseudo-headers too)
  // Fields sent after the body: HTTP/1 chunked trailer fields, HTTP/2 trailing HEADERS
  // (gRPC's grpc-status and grpc-message).
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;             // decoded: chunked coding and Content-Encoding removed (unless raw)
  uint64_t body_wire_len = 0;   // body bytes as they were on the wire (after chunking removed)
  std::string content_encoding; // as sent ("gzip", "br", ...), empty if none
  bool body_decoded = false;    // Content-Encoding was removed
  bool body_truncated = false;  // the body exceeded the per-message cap; `body` holds its start
  // Sizes of the length-prefixed messages (1-byte compressed flag, 4-byte big-endian length,
  // message) of a body whose content-type is application/grpc* (HTTP/2 only), in order; empty
  // otherwise. A message cut short by the end of the body is not listed.
  std::vector<uint64_t> grpc_messages;
  // A response names the request it answers (HTTP/1: the oldest unanswered request on the
  // connection; HTTP/2: the request on the same stream).
  std::string request_method, request_path;
  // Times (Unix epoch ns) of the events (crypto/tls calls) that held the message's first and
  // last byte: ts_ns is when it was complete.
  uint64_t first_ts_ns = 0;
  uint64_t ts_ns = 0;
  // Responses: the request they answer, when it was seen — its first and last byte's times (0:
  // not seen, e.g. a request still streaming its body), authority and body size on the wire.
  uint64_t request_first_ts_ns = 0, request_last_ts_ns = 0;
  std::string request_authority;
  uint64_t request_body_len = 0;
  // Body bytes counted but not captured (--max-payload): part of body_wire_len, absent from body.
  uint64_t body_uncaptured = 0;
};

// From the first byte of the request to the last byte of the response, as the traced process
// wrote / read them; none when the request was not seen (or for a request).
inline std::optional<uint64_t> LatencyNs(const HttpMessage& m) {
  if (m.kind != HttpMessage::Kind::kResponse || m.request_first_ts_ns == 0 || m.ts_ns < m.request_first_ts_ns)
    return std::nullopt;
  return m.ts_ns - m.request_first_ts_ns;
}
// From the last byte of the request to the first byte of the response: the server's think time
// on a server, network + server on a client. None when unknown, or when the response began
// before the request ended (a server answering early, a bidirectional gRPC stream).
inline std::optional<uint64_t> WaitNs(const HttpMessage& m) {
  if (m.kind != HttpMessage::Kind::kResponse || m.request_last_ts_ns == 0 || m.first_ts_ns == 0 ||
      m.first_ts_ns < m.request_last_ts_ns)
    return std::nullopt;
  return m.first_ts_ns - m.request_last_ts_ns;
}
// ASCII case-insensitive equality: header names, tokens and content codings.
bool IEquals(std::string_view a, std::string_view b);

// Whether a response reports a failure: HTTP status >= 500, or a gRPC status other than 0
// (grpc-status in the trailers, or in the headers of a trailers-only response).
bool IsErrorResponse(const HttpMessage& m);

// Direction of bytes relative to the traced process: kOut = it wrote them, kIn = it read them.
enum class Flow { kOut, kIn };

struct DecoderLimits {
  uint64_t max_buffered = 8u << 20;  // bytes buffered per connection and direction before giving up
  uint64_t max_body = 16u << 20;     // body bytes kept per message (the rest: body_truncated)
  bool raw = false;                  // keep Content-Encoding as sent
};

// Callbacks of a decoder: decoded messages, and one-line notices about what could not be decoded
// ("HTTP/2 headers on stream 5 reference HPACK state from before the capture started").
struct DecoderSink {
  std::function<void(HttpMessage&&)> message;
  std::function<void(std::string_view notice)> notice;
};

// One connection's decoder. Bytes of each direction arrive in order; the two directions may
// interleave arbitrarily. A decoder never throws, never crashes on hostile input and never
// buffers more than DecoderLimits::max_buffered per direction (it reports and resynchronises or
// gives up on that connection instead).
class ConnectionDecoder {
 public:
  virtual ~ConnectionDecoder() = default;
  virtual void Feed(Flow flow, std::string_view bytes, uint64_t ts_ns) = 0;
  // `n` bytes of the direction that were not captured (--max-payload) follow what was fed. Inside
  // a body (HTTP/1 Content-Length or chunk data, HTTP/2 DATA payload) they are counted and the
  // decoder stays in step; elsewhere the framing is lost: reported, then resynchronised.
  virtual void Skip(Flow flow, uint64_t n, uint64_t ts_ns) = 0;
  virtual const char* protocol() const = 0;  // "HTTP/1.1" / "HTTP/2"
};

std::unique_ptr<ConnectionDecoder> MakeHttp1Decoder(DecoderSink sink, DecoderLimits limits);
std::unique_ptr<ConnectionDecoder> MakeHttp2Decoder(DecoderSink sink, DecoderLimits limits);

}  // namespace gotlscap::decode
