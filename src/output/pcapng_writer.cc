#include "output/pcapng_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace gotlscap::output {
namespace {

// Block types and option codes of the pcapng specification.
constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kInterfaceDescription = 0x00000001;
constexpr uint32_t kEnhancedPacket = 0x00000006;
constexpr uint32_t kDecryptionSecrets = 0x0000000A;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr uint32_t kSecretsTlsKeyLog = 0x544c534b;  // "TLSK"
constexpr uint16_t kOptEnd = 0;
constexpr uint16_t kOptComment = 1;
constexpr uint16_t kShbUserAppl = 4;
constexpr uint16_t kIfName = 2;
constexpr uint16_t kIfDescription = 3;
constexpr uint16_t kIfTsresol = 9;
constexpr uint16_t kEpbFlags = 2;

template <typename T>
void Put(std::string& b, T v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof(v));  // host order: the SHB's magic says which
}

}  // namespace

Result<std::unique_ptr<PcapngWriter>> PcapngWriter::Open(const std::string& path) {
  std::unique_ptr<PcapngWriter> w(new PcapngWriter());
  if (path == "-") {
    w->fd_ = STDOUT_FILENO;
  } else {
    w->fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd_ < 0)
      return MakeError(errno == EACCES || errno == EPERM ? ErrorKind::kPermission : ErrorKind::kIo,
                       fmt::format("cannot create {}: {}", path, std::strerror(errno)));
    w->owns_fd_ = true;
    // An existing file keeps its mode through O_TRUNC: make sure secrets are not left readable.
    if (fchmod(w->fd_, 0600) != 0)
      return MakeError(ErrorKind::kIo, fmt::format("cannot chmod 0600 {}: {}", path, std::strerror(errno)));
  }
  w->BeginBlock(kSectionHeader);
  Put<uint32_t>(w->buf_, kByteOrderMagic);
  Put<uint16_t>(w->buf_, 1);  // version 1.0
  Put<uint16_t>(w->buf_, 0);
  Put<int64_t>(w->buf_, -1);  // section length unknown: the file is written as a stream
  w->Option(kShbUserAppl, "gotlscap " GOTLSCAP_VERSION);
  w->Option(kOptEnd, {});
  w->EndBlock();
  return w;
}

PcapngWriter::~PcapngWriter() {
  Flush();
  if (owns_fd_) close(fd_);
}

void PcapngWriter::BeginBlock(uint32_t type) {
  block_start_ = buf_.size();
  Put<uint32_t>(buf_, type);
  Put<uint32_t>(buf_, 0);  // total length, patched by EndBlock
}

void PcapngWriter::EndBlock() {
  uint32_t total = static_cast<uint32_t>(buf_.size() - block_start_ + 4);
  std::memcpy(&buf_[block_start_ + 4], &total, 4);
  Put<uint32_t>(buf_, total);
}

void PcapngWriter::Pad() { buf_.append((4 - buf_.size() % 4) % 4, '\0'); }

void PcapngWriter::Option(uint16_t code, std::string_view value) {
  Put<uint16_t>(buf_, code);
  Put<uint16_t>(buf_, static_cast<uint16_t>(value.size()));
  buf_.append(value);
  Pad();
}

uint32_t PcapngWriter::AddInterface(const Interface& itf) {
  BeginBlock(kInterfaceDescription);
  Put<uint16_t>(buf_, static_cast<uint16_t>(itf.linktype));
  Put<uint16_t>(buf_, 0);
  Put<uint32_t>(buf_, itf.snaplen);
  Option(kIfName, itf.name);
  if (!itf.description.empty()) Option(kIfDescription, itf.description);
  const char nanoseconds = 9;  // timestamps in units of 10^-9 s
  Option(kIfTsresol, std::string_view(&nanoseconds, 1));
  Option(kOptEnd, {});
  EndBlock();
  return interfaces_++;
}

void PcapngWriter::WritePacket(uint32_t interface_id, uint64_t ts_ns, std::string_view data, uint32_t orig_len,
                               Dir dir, std::string_view comment) {
  BeginBlock(kEnhancedPacket);
  Put<uint32_t>(buf_, interface_id);
  Put<uint32_t>(buf_, static_cast<uint32_t>(ts_ns >> 32));
  Put<uint32_t>(buf_, static_cast<uint32_t>(ts_ns));
  Put<uint32_t>(buf_, static_cast<uint32_t>(data.size()));
  Put<uint32_t>(buf_, orig_len);
  buf_.append(data);
  Pad();
  if (!comment.empty()) Option(kOptComment, comment.substr(0, 0xfffc));
  if (dir != Dir::kUnknown) {
    uint32_t flags = dir == Dir::kInbound ? 1 : 2;  // bits 0-1: direction
    Option(kEpbFlags, std::string_view(reinterpret_cast<const char*>(&flags), 4));
  }
  Option(kOptEnd, {});
  EndBlock();
  ++packets_;
}

void PcapngWriter::WriteSecrets(std::string_view keylog) {
  if (keylog.empty()) return;
  BeginBlock(kDecryptionSecrets);
  Put<uint32_t>(buf_, kSecretsTlsKeyLog);
  Put<uint32_t>(buf_, static_cast<uint32_t>(keylog.size()));
  buf_.append(keylog);
  Pad();
  EndBlock();
  ++secret_blocks_;
}

bool PcapngWriter::Flush() {
  if (failed_) {
    buf_.clear();
    return false;
  }
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t n = write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_ = true;
      errno_ = n < 0 ? errno : EIO;
      buf_.clear();
      return false;
    }
    off += static_cast<size_t>(n);
  }
  bytes_written_ += buf_.size();
  buf_.clear();
  return true;
}

}  // namespace gotlscap::output
