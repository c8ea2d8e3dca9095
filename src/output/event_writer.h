// Writers turn DataEvents into output: human-readable text or JSON Lines. They buffer; Flush()
// pushes what they have to the file (the capture loop calls it between ring-buffer polls).
#pragma once

#include <cstdio>
#include <memory>

#include "capture/data_event.h"
#include "capture/secret_event.h"

namespace gotlscap::output {

class EventWriter {
 public:
  virtual ~EventWriter() = default;
  virtual void Write(const capture::DataEvent& ev) = 0;
  virtual void WriteSecret(const capture::SecretEvent& s) = 0;
  // false when the output cannot be written (disk full, closed pipe): the caller stops.
  virtual bool Flush() = 0;
};

std::unique_ptr<EventWriter> MakeTextWriter(FILE* out, bool hex);
std::unique_ptr<EventWriter> MakeJsonWriter(FILE* out);

}  // namespace gotlscap::output
