#include "output/keylog_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <memory>

#include <fmt/format.h>

namespace gotlscap::capture {

std::string Hex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string KeyLogLine(const SecretEvent& s) {
  return fmt::format("{} {} {}", s.label, Hex(s.client_random), Hex(s.secret));
}

}  // namespace gotlscap::capture

namespace gotlscap::output {

Result<std::unique_ptr<KeyLogFile>> KeyLogFile::Open(const std::string& path) {
  auto f = std::unique_ptr<KeyLogFile>(new KeyLogFile());
  f->fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (f->fd_ < 0) return MakeError(ErrorKind::kIo, fmt::format("cannot open key log file {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(f->fd_, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
    fmt::print(stderr, "gotlscap: warning: {} is readable by other users (mode {:o}); it will hold TLS secrets\n",
               path, st.st_mode & 0777);
  // Lines already in the file count as written: appending never repeats a secret.
  std::ifstream in(path);
  std::string line;
  bool ends_with_newline = true;
  while (std::getline(in, line)) {
    ends_with_newline = !in.eof();
    std::istringstream fields(line);
    std::string label, random, secret;
    if (fields >> label >> random >> secret && label[0] != '#') f->seen_.insert({label, random});
  }
  // Never glue our first line onto an unterminated last line of someone else's.
  if (!ends_with_newline && ::write(f->fd_, "\n", 1) != 1)
    return MakeError(ErrorKind::kIo, fmt::format("cannot write to key log file {}: {}", path, std::strerror(errno)));
  return f;
}

KeyLogFile::~KeyLogFile() {
  if (fd_ >= 0) close(fd_);
}

bool KeyLogFile::Write(const capture::SecretEvent& s) {
  auto key = std::make_pair(s.label, capture::Hex(s.client_random));
  if (seen_.contains(key)) {
    duplicates_++;
    return false;
  }
  const std::string line = capture::KeyLogLine(s) + '\n';
  // O_APPEND + one write: the line lands whole, even with other writers or an interrupt.
  ssize_t n;
  do {
    n = ::write(fd_, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(line.size())) {
    failed_ = true;
    not_written_++;
    errno_ = n < 0 ? errno : ENOSPC;
    return false;
  }
  seen_.insert(std::move(key));  // only once it is really in the file
  written_++;
  return true;
}

}  // namespace gotlscap::output
