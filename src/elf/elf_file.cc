#include "elf/elf_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace gotlscap::elf {

bool Segment::executable() const { return flags & PF_X; }
bool Segment::writable() const { return flags & PF_W; }

uint64_t ReadU64(std::span<const uint8_t> b, uint64_t off) {
  if (off > b.size() || b.size() - off < 8) return 0;
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;  // both supported targets are little-endian, like the hosts we run on
}

uint32_t ReadU32(std::span<const uint8_t> b, uint64_t off) {
  if (off > b.size() || b.size() - off < 4) return 0;
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

uint64_t ReadUintptr(std::span<const uint8_t> b, uint64_t off, unsigned ptr_size) {
  return ptr_size == 8 ? ReadU64(b, off) : ReadU32(b, off);
}

Result<std::unique_ptr<ElfFile>> ElfFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError(ErrorKind::kIo, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError(ErrorKind::kIo, fmt::format("{}: not a regular file", path));
  }
  auto f = std::unique_ptr<ElfFile>(new ElfFile());
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    // MAP_PRIVATE + PROT_WRITE: libelf may convert headers in place; copy-on-write keeps the file
    // untouched and untouched pages shared with the page cache.
    f->map_ = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (f->map_ == MAP_FAILED) {
      f->map_ = nullptr;
      ::close(fd);
      return MakeError(ErrorKind::kIo, fmt::format("cannot map {}: {}", path, std::strerror(errno)));
    }
    f->data_ = static_cast<uint8_t*>(f->map_);
  }
  ::close(fd);
  auto r = Init(std::move(f));
  if (!r.ok()) return MakeError(r.error().kind, fmt::format("{}: {}", path, r.error().message));
  return r;
}

Result<std::unique_ptr<ElfFile>> ElfFile::FromBytes(std::string bytes) {
  auto f = std::unique_ptr<ElfFile>(new ElfFile());
  f->owned_ = std::move(bytes);
  f->data_ = reinterpret_cast<uint8_t*>(f->owned_.data());
  f->size_ = f->owned_.size();
  return Init(std::move(f));
}

Result<std::unique_ptr<ElfFile>> ElfFile::Init(std::unique_ptr<ElfFile> f) {
  if (f->size_ < EI_NIDENT || std::memcmp(f->data_, ELFMAG, SELFMAG) != 0)
    return MakeError(ErrorKind::kNotElf, "not an ELF file");
  if (f->data_[EI_CLASS] != ELFCLASS64 || f->data_[EI_DATA] != ELFDATA2LSB)
    return MakeError(ErrorKind::kUnsupportedArch,
                     "unsupported architecture: only 64-bit little-endian (amd64, arm64) ELF files are supported");
  elf_version(EV_CURRENT);
  f->elf_ = elf_memory(reinterpret_cast<char*>(f->data_), f->size_);
  if (f->elf_ == nullptr || elf_kind(f->elf_) != ELF_K_ELF)
    return MakeError(ErrorKind::kNotElf, fmt::format("not a valid ELF file ({})", elf_errmsg(-1)));

  GElf_Ehdr eh;
  if (gelf_getehdr(f->elf_, &eh) == nullptr)
    return MakeError(ErrorKind::kNotElf, fmt::format("bad ELF header ({})", elf_errmsg(-1)));
  switch (eh.e_machine) {
    case EM_X86_64: f->machine_ = Machine::kAmd64; break;
    case EM_AARCH64: f->machine_ = Machine::kArm64; break;
    default:
      return MakeError(ErrorKind::kUnsupportedArch,
                       fmt::format("unsupported architecture (ELF machine {}): only amd64 and arm64", eh.e_machine));
  }
  f->elf_type_ = eh.e_type;

  size_t nph = 0;
  if (elf_getphdrnum(f->elf_, &nph) != 0) return MakeError(ErrorKind::kCorrupt, "corrupt program header table");
  for (size_t i = 0; i < nph; i++) {
    GElf_Phdr ph;
    if (gelf_getphdr(f->elf_, static_cast<int>(i), &ph) == nullptr)
      return MakeError(ErrorKind::kCorrupt, "corrupt program header");
    if (ph.p_type == PT_INTERP) f->has_interp_ = true;
    if (ph.p_type != PT_LOAD) continue;
    // A segment that ends past the end of the file means a truncated (e.g. half-copied) file:
    // say so, rather than report whatever is missing from the part that is gone.
    if (ph.p_offset > f->size_ || ph.p_filesz > f->size_ - ph.p_offset)
      return MakeError(ErrorKind::kCorrupt,
                       fmt::format("truncated or corrupt ELF file: segment {} ends at {:#x}, past the end of the file ({:#x})",
                                   i, ph.p_offset + ph.p_filesz, f->size_));
    f->loads_.push_back(Segment{ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_flags});
  }

  size_t shstrndx = 0;
  if (elf_getshdrstrndx(f->elf_, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(f->elf_, nullptr); scn != nullptr; scn = elf_nextscn(f->elf_, scn)) {
      GElf_Shdr sh;
      if (gelf_getshdr(scn, &sh) == nullptr) continue;
      const char* name = elf_strptr(f->elf_, shstrndx, sh.sh_name);
      f->sections_.push_back(Section{name ? name : "", sh.sh_type, sh.sh_flags, sh.sh_addr, sh.sh_offset, sh.sh_size});
    }
  }
  return f;
}

ElfFile::~ElfFile() {
  if (elf_) elf_end(elf_);
  if (map_) ::munmap(map_, size_);
}

std::optional<Section> ElfFile::FindSection(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return s;
  return std::nullopt;
}

const Segment* ElfFile::SegmentFor(uint64_t vaddr) const {
  for (const auto& s : loads_)
    if (vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) return &s;
  return nullptr;
}

std::optional<uint64_t> ElfFile::VaddrToOffset(uint64_t vaddr) const {
  const Segment* s = SegmentFor(vaddr);
  if (!s) return std::nullopt;
  return vaddr - s->vaddr + s->offset;
}

std::span<const uint8_t> ElfFile::BytesAtVaddr(uint64_t vaddr, uint64_t len) const {
  const Segment* s = SegmentFor(vaddr);
  if (!s) return {};
  uint64_t in_seg = vaddr - s->vaddr;
  return BytesAtOffset(s->offset + in_seg, std::min(len, s->filesz - in_seg));
}

std::span<const uint8_t> ElfFile::BytesAtOffset(uint64_t offset, uint64_t len) const {
  if (offset >= size_) return {};
  return {data_ + offset, static_cast<size_t>(std::min(len, size_ - offset))};
}

std::span<const uint8_t> ElfFile::SectionBytes(const Section& s) const {
  if (s.type == SHT_NOBITS) return {};
  return BytesAtOffset(s.offset, s.size);
}

std::optional<uint64_t> ElfFile::SymbolValue(std::string_view name) const {
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn != nullptr; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (gelf_getshdr(scn, &sh) == nullptr || sh.sh_type != SHT_SYMTAB || sh.sh_entsize == 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    size_t n = data->d_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
      const char* s = elf_strptr(elf_, sh.sh_link, sym.st_name);
      if (s && name == s) return sym.st_value;
    }
  }
  return std::nullopt;
}

void ElfFile::ForEachRelative(const std::function<bool(uint64_t, uint64_t)>& fn) const {
  const uint32_t relative = machine_ == Machine::kAmd64 ? R_X86_64_RELATIVE : R_AARCH64_RELATIVE;
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn != nullptr; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (gelf_getshdr(scn, &sh) == nullptr || sh.sh_type != SHT_RELA || sh.sh_entsize == 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    size_t n = data->d_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
      GElf_Rela rela;
      if (!gelf_getrela(data, static_cast<int>(i), &rela)) break;
      if (GELF_R_TYPE(rela.r_info) == relative && !fn(rela.r_offset, static_cast<uint64_t>(rela.r_addend))) return;
    }
  }
}

std::optional<uint64_t> ElfFile::RelativeRelocAddend(uint64_t vaddr) const {
  std::optional<uint64_t> out;
  ForEachRelative([&](uint64_t where, uint64_t addend) {
    if (where == vaddr) out = addend;
    return !out;
  });
  return out;
}

std::vector<uint64_t> ElfFile::RelativeRelocsWithAddend(uint64_t value, size_t limit) const {
  std::vector<uint64_t> out;
  ForEachRelative([&](uint64_t where, uint64_t addend) {
    if (addend == value) out.push_back(where);
    return out.size() < limit;
  });
  return out;
}

uint64_t ElfFile::ReadPointer(uint64_t vaddr, unsigned ptr_size) const {
  uint64_t v = ReadUintptr(BytesAtVaddr(vaddr, ptr_size), 0, ptr_size);
  if (v == 0) v = RelativeRelocAddend(vaddr).value_or(0);
  return v;
}

}  // namespace gotlscap::elf
