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

std::string PcapngWriter::RotatedName(const std::string& path, uint32_t n, uint32_t max_files) {
  // tcpdump's MakeFilename: digits enough for max_files - 1, and no number at all for the first
  // file when there is no limit.
  int digits = 0;
  for (uint32_t x = max_files > 0 ? max_files - 1 : 0; x > 0; x /= 10) ++digits;
  if (n == 0 && digits == 0) return path;
  return fmt::format("{}{:0{}}", path, n, digits);
}

std::optional<Error> PcapngWriter::OpenFile(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return MakeError(errno == EACCES || errno == EPERM ? ErrorKind::kPermission : ErrorKind::kIo,
                     fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  // An existing file keeps its mode through O_TRUNC: make sure secrets are not left readable.
  if (fchmod(fd, 0600) != 0) {
    int err = errno;
    close(fd);
    return MakeError(ErrorKind::kIo, fmt::format("cannot chmod 0600 {}: {}", path, std::strerror(err)));
  }
  fd_ = fd;
  owns_fd_ = true;
  current_path_ = path;
  file_bytes_ = 0;
  ++files_opened_;
  return std::nullopt;
}

Result<std::unique_ptr<PcapngWriter>> PcapngWriter::Open(const std::string& path, Rotation rotation) {
  std::unique_ptr<PcapngWriter> w(new PcapngWriter());
  w->base_path_ = path;
  if (path == "-") {
    w->fd_ = STDOUT_FILENO;
    w->current_path_ = path;
    w->files_opened_ = 1;
  } else {
    w->rotation_ = rotation;
    if (auto err = w->OpenFile(RotatedName(path, 0, rotation.max_files))) return *err;
  }
  w->WriteSectionHeader();
  return w;
}

void PcapngWriter::WriteSectionHeader() {
  BeginBlock(kSectionHeader);
  Put<uint32_t>(buf_, kByteOrderMagic);
  Put<uint16_t>(buf_, 1);  // version 1.0
  Put<uint16_t>(buf_, 0);
  Put<int64_t>(buf_, -1);  // section length unknown: the file is written as a stream
  Option(kShbUserAppl, "gotlscap " GOTLSCAP_VERSION);
  Option(kOptEnd, {});
  EndBlock();
}

void PcapngWriter::Rotate() {
  // The old file gets everything buffered for it; then the next one starts on its own.
  if (!Flush()) return;
  if (owns_fd_) close(fd_);
  owns_fd_ = false;
  ++file_number_;
  if (rotation_.max_files > 0) file_number_ %= rotation_.max_files;
  if (auto err = OpenFile(RotatedName(base_path_, file_number_, rotation_.max_files))) {
    failed_ = true;
    errno_ = errno != 0 ? errno : EIO;
    return;
  }
  WriteSectionHeader();
  for (const Interface& itf : itfs_) WriteInterface(itf);
  if (repeat_secrets_) {
    std::string keys = repeat_secrets_();
    if (!keys.empty()) {
      WriteSecrets(keys);
      --secret_blocks_;  // counted once, when first written
    }
  }
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
  WriteInterface(itf);
  itfs_.push_back(itf);
  return interfaces_++;
}

void PcapngWriter::WriteInterface(const Interface& itf) {
  BeginBlock(kInterfaceDescription);
  Put<uint16_t>(buf_, static_cast<uint16_t>(itf.linktype));
  Put<uint16_t>(buf_, 0);
  Put<uint32_t>(buf_, itf.snaplen);
  if (!itf.comment.empty()) Option(kOptComment, itf.comment);
  Option(kIfName, itf.name);
  if (!itf.description.empty()) Option(kIfDescription, itf.description);
  const char nanoseconds = 9;  // timestamps in units of 10^-9 s
  Option(kIfTsresol, std::string_view(&nanoseconds, 1));
  Option(kOptEnd, {});
  EndBlock();
}

void PcapngWriter::WritePacket(uint32_t interface_id, uint64_t ts_ns, std::string_view data, uint32_t orig_len,
                               Dir dir, std::string_view comment) {
  // tcpdump -C: a file over the size is closed before the next packet, not in mid-block.
  if (rotation_.size_bytes > 0 && file_bytes_ + buf_.size() > rotation_.size_bytes) Rotate();
  if (failed_) return;
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
  file_bytes_ += buf_.size();
  buf_.clear();
  return true;
}

}  // namespace gotlscap::output
