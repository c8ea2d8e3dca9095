#include "gobin/buildinfo.h"

#include <cstring>

#include <fmt/format.h>

#include "gobin/go_version.h"

namespace gotlscap::gobin {
namespace {

constexpr char kMagic[] = "\xff Go buildinf:";
constexpr size_t kMagicLen = 14;
constexpr size_t kHeaderLen = 32;
// Largest version or modinfo string we accept; real modinfo of big programs is a few hundred KiB.
constexpr uint64_t kMaxString = 16u << 20;

Error Corrupt(const std::string& what) { return MakeError(ErrorKind::kCorrupt, "corrupt Go build info: " + what); }

// Locates the 32-byte-aligned header: by section name, else by scanning writable segments.
std::optional<uint64_t> FindHeader(const elf::ElfFile& f) {
  if (auto s = f.FindSection(".go.buildinfo")) {
    auto b = f.SectionBytes(*s);
    if (b.size() >= kMagicLen && std::memcmp(b.data(), kMagic, kMagicLen) == 0) return s->addr;
  }
  for (const auto& seg : f.load_segments()) {
    if (!seg.writable() || seg.executable()) continue;
    auto b = f.BytesAtOffset(seg.offset, seg.filesz);
    const uint8_t* p = b.data();
    const uint8_t* end = b.data() + b.size();
    while (p < end) {
      p = static_cast<const uint8_t*>(memmem(p, end - p, kMagic, kMagicLen));
      if (!p) break;
      uint64_t vaddr = seg.vaddr + (p - b.data());
      if (vaddr % 16 == 0) return vaddr;
      p++;
    }
  }
  return std::nullopt;
}

// Decodes a uvarint-prefixed string at b[*pos], advancing *pos.
std::optional<std::string> ReadVarString(std::span<const uint8_t> b, size_t* pos) {
  uint64_t len = 0;
  for (int shift = 0;; shift += 7) {
    if (*pos >= b.size() || shift > 63) return std::nullopt;
    uint8_t c = b[(*pos)++];
    len |= uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
  }
  if (len > kMaxString || len > b.size() - *pos) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(b.data() + *pos), len);
  *pos += len;
  return s;
}

// Follows a pointer to a Go string header {data, len} and returns the string.
std::optional<std::string> ReadStringViaHeader(const elf::ElfFile& f, uint64_t header_ptr, unsigned ptr_size) {
  uint64_t data = f.ReadPointer(header_ptr, ptr_size);
  uint64_t len = elf::ReadUintptr(f.BytesAtVaddr(header_ptr + ptr_size, ptr_size), 0, ptr_size);
  if (len == 0) return std::string();
  if (len > kMaxString) return std::nullopt;
  auto b = f.BytesAtVaddr(data, len);
  if (b.size() != len) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(b.data()), len);
}

// modinfo is framed by two 16-byte sentinels (cmd/go modinfo.go); strip them when present.
std::string_view StripSentinels(std::string_view m) {
  if (m.size() >= 33 && m[m.size() - 17] == '\n') return m.substr(16, m.size() - 32);
  return m;
}

}  // namespace

std::optional<std::string> BuildInfo::Setting(const std::string& key) const {
  for (const auto& [k, v] : settings)
    if (k == key) return v;
  return std::nullopt;
}

void ParseModInfo(std::string_view modinfo, BuildInfo& out) {
  while (!modinfo.empty()) {
    size_t nl = modinfo.find('\n');
    std::string_view line = modinfo.substr(0, nl);
    modinfo = nl == std::string_view::npos ? std::string_view() : modinfo.substr(nl + 1);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) continue;
    std::string_view kind = line.substr(0, tab), rest = line.substr(tab + 1);
    if (kind == "path") {
      out.main_path = rest;
    } else if (kind == "mod") {
      size_t t = rest.find('\t');
      out.module_path = rest.substr(0, t);
      if (t != std::string_view::npos) {
        std::string_view v = rest.substr(t + 1);
        out.module_version = v.substr(0, v.find('\t'));
      }
    } else if (kind == "dep") {
      out.dependency_count++;
    } else if (kind == "build") {
      size_t eq = rest.find('=');
      if (eq == std::string_view::npos) continue;
      std::string key(rest.substr(0, eq)), value(rest.substr(eq + 1));
      // Values with spaces or quotes are Go-quoted ("-ldflags=\"-s -w\""); unquote the simple case.
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      if (key.size() >= 2 && key.front() == '"' && key.back() == '"') key = key.substr(1, key.size() - 2);
      out.settings.emplace_back(std::move(key), std::move(value));
    }
  }
}

Result<std::optional<BuildInfo>> ReadBuildInfo(const elf::ElfFile& f) {
  auto addr = FindHeader(f);
  if (!addr) return std::optional<BuildInfo>();
  const elf::Segment* seg = f.SegmentFor(*addr);
  auto b = f.BytesAtVaddr(*addr, seg ? seg->filesz : 0);
  if (b.size() < kHeaderLen) return Corrupt("header truncated");

  BuildInfo bi;
  bi.address = *addr;
  unsigned ptr_size = b[14];
  uint8_t flags = b[15];
  if (flags & 1) return Corrupt("big-endian build info in a little-endian file");
  bi.inline_format = flags & 2;
  std::string modinfo;
  if (bi.inline_format) {
    size_t pos = kHeaderLen;
    auto v = ReadVarString(b, &pos);
    auto m = v ? ReadVarString(b, &pos) : std::nullopt;
    if (!v || !m) return Corrupt("string length out of range");
    bi.version = std::move(*v);
    modinfo = std::move(*m);
  } else {
    if (ptr_size != 4 && ptr_size != 8) return Corrupt(fmt::format("pointer size {}", ptr_size));
    auto v = ReadStringViaHeader(f, f.ReadPointer(*addr + 16, ptr_size), ptr_size);
    auto m = ReadStringViaHeader(f, f.ReadPointer(*addr + 16 + ptr_size, ptr_size), ptr_size);
    if (!v || !m) return Corrupt("version or module pointer out of range");
    bi.version = std::move(*v);
    modinfo = std::move(*m);
  }
  if (!ParseGoVersion(bi.version)) return Corrupt(fmt::format("unrecognised Go version {:?}", bi.version.substr(0, 64)));
  ParseModInfo(StripSentinels(modinfo), bi);
  return std::optional<BuildInfo>(std::move(bi));
}

}  // namespace gotlscap::gobin
