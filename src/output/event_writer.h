// Writers turn DataEvents into output: human-readable text or JSON Lines. They buffer; Flush()
// pushes what they have to the file (the capture loop calls it between ring-buffer polls).
#pragma once

#include <cstdio>
#include <memory>

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

std::unique_ptr<EventWriter> MakeTextWriter(FILE* out, bool hex);
std::unique_ptr<EventWriter> MakeJsonWriter(FILE* out);

}  // namespace gotlscap::output
