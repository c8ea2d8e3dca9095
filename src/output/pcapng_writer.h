// PcapngWriter: the pcapng file of `gotlscap pcap` — Section Header, one Interface Description
// per interface, Enhanced Packet Blocks, and Decryption Secrets Blocks carrying TLS key log lines
// so Wireshark decrypts with no key file. Written by hand: libpcap writes only classic pcap, and
// the blocks are a few dozen lines (pcapng spec, draft-ietf-opsawg-pcapng).
//
// Blocks are built in memory and written by Flush() (called every poll, ~10 ms), so a reader of
// `-w -` sees them promptly while a busy capture still makes few write(2) calls.
//
// Rotation (tcpdump's -C/-W): before a packet, a file grown over `size_bytes` is closed and the
// next one opened (FILE, FILE1, FILE2... ; with max_files, FILE0..FILE<max-1> reused in turn, as
// tcpdump names them). Each file stands alone: it starts with the Section Header, every interface
// so far (same ids) and a DSB of what the `repeat_secrets` callback returns (the keys of
// connections still open), before its first packet.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace gotlscap::output {

class PcapngWriter {
 public:
  // "-" is stdout. A file is created (or truncated, as tcpdump -w does) with mode 0600: it
  // holds secrets. Errors name the path and the reason.
  struct Rotation {
    uint64_t size_bytes = 0;  // 0: one file
    uint32_t max_files = 0;   // 0: no limit
  };
  static Result<std::unique_ptr<PcapngWriter>> Open(const std::string& path, Rotation rotation);
  static Result<std::unique_ptr<PcapngWriter>> Open(const std::string& path) { return Open(path, Rotation()); }
  // The name of file number `n` (0-based) of a rotation over `path`, as tcpdump names them.
  static std::string RotatedName(const std::string& path, uint32_t n, uint32_t max_files);
  // Called when a new file starts: NSS key log lines to write at its start ("" for none).
  void set_repeat_secrets(std::function<std::string()> f) { repeat_secrets_ = std::move(f); }
  ~PcapngWriter();

  struct Interface {
    std::string name;
    int linktype = 1;  // LINKTYPE_ETHERNET
    uint32_t snaplen = 262144;
    std::string description;  // optional if_description
    std::string comment;      // optional opt_comment, e.g. "netns net:[4026531840]"
  };
  // Returns the interface id packets refer to.
  uint32_t AddInterface(const Interface& itf);

  enum class Dir { kUnknown, kInbound, kOutbound };
  void WritePacket(uint32_t interface_id, uint64_t ts_ns, std::string_view data, uint32_t orig_len, Dir dir,
                   std::string_view comment);
  // `keylog` is one or more NSS key log lines, each ending in '\n'.
  void WriteSecrets(std::string_view keylog);

  // Writes what is buffered. False (and failed()) on a write error such as a full disk.
  bool Flush();
  bool failed() const { return failed_; }
  int last_errno() const { return errno_; }
  uint64_t packets() const { return packets_; }
  uint64_t secret_blocks() const { return secret_blocks_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint32_t files_opened() const { return files_opened_; }
  const std::string& current_path() const { return current_path_; }

 private:
  PcapngWriter() = default;
  std::optional<Error> OpenFile(const std::string& path);
  void WriteSectionHeader();
  void WriteInterface(const Interface& itf);
  void Rotate();
  void BeginBlock(uint32_t type);
  void EndBlock();
  void Option(uint16_t code, std::string_view value);
  void Pad();

  int fd_ = -1;
  bool owns_fd_ = false;
  std::string base_path_, current_path_;
  Rotation rotation_;
  uint32_t file_number_ = 0, files_opened_ = 0;
  uint64_t file_bytes_ = 0;  // written to the current file (buffered bytes not included)
  std::vector<Interface> itfs_;
  std::function<std::string()> repeat_secrets_;
  std::string buf_;
  size_t block_start_ = 0;
  uint32_t interfaces_ = 0;
  uint64_t packets_ = 0, secret_blocks_ = 0, bytes_written_ = 0;
  bool failed_ = false;
  int errno_ = 0;
};

}  // namespace gotlscap::output
