// Writers turn DataEvents into output: human-readable text or JSON Lines. They buffer; Flush()
// pushes what they have to the file (the capture loop calls it between ring-buffer polls).
#pragma once

#include <cstdio>
#include <memory>
#include <string_view>
#include <vector>

#include "capture/data_event.h"
#include "capture/secret_event.h"
#include "decode/http_decoder.h"

namespace gotlscap::output {

class EventWriter {
 public:
  virtual ~EventWriter() = default;
  // A data event, or a connection-end event (ev.closed()): JSON {"type":"close",...}, text one
  // line ending in "close" or "eof".
  virtual void Write(const capture::DataEvent& ev) = 0;
  virtual void WriteSecret(const capture::SecretEvent& s) = 0;
  virtual void WriteHttp(const decode::DecodedMessage& m) = 0;
  // A decoder's remark about a connection it could not (fully) decode.
  virtual void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                           std::string_view notice) = 0;
  // false when the output cannot be written (disk full, closed pipe): the caller stops.
  virtual bool Flush() = 0;
};

// The "type" of a JSON event.
enum class EventType { kData, kHttp, kSecret, kClose, kNotice };
// "data", "http", "secret", "close", "notice"
std::string_view EventTypeName(EventType t);

// Receives each JSON line whole (the exporters' side of the JSON writer: one formatting code for
// files and brokers). `json_line` is one object followed by '\n', valid only during the call.
class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void Line(EventType type, std::string_view json_line) = 0;
};

std::unique_ptr<EventWriter> MakeTextWriter(FILE* out, bool hex);
std::unique_ptr<EventWriter> MakeJsonWriter(FILE* out);
// JSON Lines handed to `sink` one whole line at a time (a 32 MiB call is one 43 MiB line: the
// sink gets the event whole). `sink` must outlive the writer.
std::unique_ptr<EventWriter> MakeJsonWriter(LineSink* sink);
// Every call goes to each writer of `writers` (none null), in order; Flush fails if any fails.
std::unique_ptr<EventWriter> MakeTeeWriter(std::vector<EventWriter*> writers);

}  // namespace gotlscap::output
