// KeyLogFile: an SSLKEYLOGFILE that Wireshark can read while it grows. Created mode 0600 (it
// holds secrets), appended to if it exists, one write(2) per line so a reader (or a SIGINT) never
// sees half a line, and each (label, client random) written once, including across runs.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <utility>

#include "capture/secret_event.h"
#include "common/recent_set.h"
#include "common/result.h"

namespace gotlscap::output {

class KeyLogFile {
 public:
  // Opens (creating) `path`; errors name the path and the reason (missing directory, read-only).
  static Result<std::unique_ptr<KeyLogFile>> Open(const std::string& path);
  ~KeyLogFile();

  // Returns true when written, false for a duplicate. Sets failed() on a write error.
  bool Write(const capture::SecretEvent& s);
  bool failed() const { return failed_; }
  int last_errno() const { return errno_; }
  uint64_t written() const { return written_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t not_written() const { return not_written_; }  // write errors

 private:
  KeyLogFile() = default;
  int fd_ = -1;
  // (label, client random hex) of the most recent secrets: duplicates arrive close together (both
  // ends, two probes); bounded so a long run does not grow with every connection.
  RecentSet<std::pair<std::string, std::string>> seen_{8192};
  uint64_t written_ = 0, duplicates_ = 0, not_written_ = 0;
  bool failed_ = false;
  int errno_ = 0;
};

}  // namespace gotlscap::output
