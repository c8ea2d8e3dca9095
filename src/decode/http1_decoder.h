// HTTP/1.x decoder (MakeHttp1Decoder, declared in decode/http_message.h): one per connection.
//
// Which direction carries requests is learned from the first start line seen (request line
// `METHOD SP target SP HTTP/1.x` or status line `HTTP/1.x SP 3DIGIT`), so the traced process may be
// the client or the server. Per direction, bytes are framed as RFC 9112 says:
//   - requests: Transfer-Encoding chunked (trailer fields go to `trailers`), Content-Length,
//     else no body; a Transfer-Encoding other than chunked is invalid;
//   - responses: none for 1xx / 204 / 304 and for answers to HEAD; chunked; Content-Length; else,
//     for HTTP/1.0 or `Connection: close` (or a non-chunked Transfer-Encoding), the body runs to
//     the next status line at a line start (or to the decoder's destruction, which emits it);
//     otherwise none;
//   - 101 Switching Protocols and 2xx answers to CONNECT end decoding of the connection (notice);
//     bytes a client sends after an Upgrade / CONNECT request are held until the answer is known;
//   - Expect: 100-continue: 1xx responses do not answer the request; if a final response comes
//     before any body byte and the client then starts a new request, the body is taken as absent.
// Responses carry request_method/request_path of the oldest unanswered request. Content-Encoding
// (gzip, deflate, br, lists of them) is removed unless DecoderLimits::raw (content_decoding.h).
//
// Bytes that are not a valid start line (capture began mid-connection, lost data, framing errors,
// limits exceeded) are skipped up to a line start where a complete, valid head (start line and
// header block) begins; each such resynchronisation gives one notice and no message. After one,
// responses are not attributed to requests until the unanswered-request queue has drained.
//
// Limits: a head (start line + header fields) or a trailer block larger than kHttp1MaxHeadBytes
// (or max_buffered, if smaller) or with more than kHttp1MaxHeaderFields fields is rejected;
// chunk-size lines longer than kHttp1MaxChunkLine are rejected; no more than max_buffered
// unconsumed bytes are kept per direction; bodies keep max_body bytes (decoded output too).
#pragma once

#include <cstddef>

#include "decode/http_message.h"

namespace gotlscap::decode {

inline constexpr size_t kHttp1MaxHeadBytes = 64 * 1024;
inline constexpr size_t kHttp1MaxHeaderFields = 1024;
inline constexpr size_t kHttp1MaxChunkLine = 4096;
// Requests without a response kept for attribution; beyond this, attribution is dropped.
inline constexpr size_t kHttp1MaxPendingRequests = 4096;

}  // namespace gotlscap::decode
