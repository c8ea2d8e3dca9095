// HttpDecoder: routes each connection's captured plaintext to an HTTP/1.x or HTTP/2 decoder,
// chosen from the first bytes (the HTTP/2 client preface, or an HTTP/1 request or status line),
// and hands decoded messages, with their connection, to the output.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "capture/data_event.h"
#include "decode/http_message.h"

namespace gotlscap::decode {

struct DecodedMessage {
  HttpMessage msg;
  uint32_t pid = 0;
  std::string comm;
  capture::Connection conn;
};

class HttpDecoder {
 public:
  using MessageSink = std::function<void(DecodedMessage&&)>;
  using NoticeSink = std::function<void(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                                        std::string_view notice)>;
  HttpDecoder(MessageSink on_message, NoticeSink on_notice, DecoderLimits limits = {},
              size_t max_connections = 4096);
  // Destroying the decoder delivers what ends with the connection (e.g. a body read to the end).
  ~HttpDecoder();

  // Feeds one captured call. Returns true when the connection is decoded as HTTP, so the event's
  // bytes will appear in decoded messages (the caller may omit the raw event from human-readable
  // output); false while the protocol is not known yet or is not HTTP.
  // A connection-end event (ev.closed(): Close, or io.EOF from the peer) calls Close() and
  // returns false: it carries no bytes, and the caller shows it as it chooses.
  bool Feed(const capture::DataEvent& ev);

  // The connection ended: delivers what ends with it (an HTTP/1 body delimited by the end of the
  // connection; the HTTP/2 decoder's remarks on unfinished streams) and drops its state. Bytes
  // of the same connection id arriving later start afresh, as a connection picked up mid-stream.
  // Returns false when the connection was not known (never fed, already closed or dropped).
  bool Close(uint32_t pid, uint64_t conn_id);
  // Closes every connection of a process that exited without closing them.
  void ForgetProcess(uint32_t pid);
  // Called once per connection found to speak HTTP/2 (capture keeps such connections whole
  // under --max-payload: frame headers may sit anywhere in a call).
  void OnHttp2(std::function<void(uint32_t pid, uint64_t conn_id)> fn) { on_http2_ = std::move(fn); }

  uint64_t messages() const { return messages_; }
  uint64_t notices() const { return notices_; }
  uint64_t closed() const { return closed_; }  // connections ended by Close()
  size_t connections() const { return lru_.size(); }  // connections with state

 private:
  struct Conn;
  Conn& Lookup(const capture::DataEvent& ev);

  MessageSink on_message_;
  NoticeSink on_notice_;
  std::function<void(uint32_t, uint64_t)> on_http2_;
  DecoderLimits limits_;
  size_t max_connections_;
  // Least recently used first. Connections normally leave through Close(); those whose end is
  // never seen (process killed, probe missing, capture started mid-way) are dropped oldest
  // first once max_connections are held.
  std::list<std::pair<std::pair<uint32_t, uint64_t>, std::unique_ptr<Conn>>> lru_;
  std::map<std::pair<uint32_t, uint64_t>, decltype(lru_)::iterator> index_;
  uint64_t messages_ = 0, notices_ = 0, closed_ = 0;
};

}  // namespace gotlscap::decode
