// ElfFile: a read-only, memory-mapped view of an ELF file with the few queries Go binary analysis
// needs (sections by name, PT_LOAD segments, virtual address -> file offset, symbols, relocations).
// Headers are parsed by libelf; data is read straight from the mapping, so nothing is copied and
// peak memory stays far below the file size.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

struct Elf;  // libelf handle

namespace gotlscap::elf {

enum class Machine { kAmd64, kArm64 };

struct Section {
  std::string name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct Segment {
  uint64_t vaddr = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint32_t flags = 0;  // PF_X | PF_W | PF_R
  bool executable() const;
  bool writable() const;
};

class ElfFile {
 public:
  // Maps and validates `path`. Errors: kIo (cannot open/read), kNotElf, kUnsupportedArch
  // (anything but little-endian 64-bit x86-64 or AArch64).
  static Result<std::unique_ptr<ElfFile>> Open(const std::string& path);
  // Same checks on an in-memory image (fuzzing, tests). The bytes are owned by the ElfFile.
  static Result<std::unique_ptr<ElfFile>> FromBytes(std::string bytes);

  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  Machine machine() const { return machine_; }
  uint16_t elf_type() const { return elf_type_; }  // ET_EXEC, ET_DYN, ...
  bool has_interp() const { return has_interp_; }
  // A PIE executable: ET_DYN with a program interpreter (ET_DYN without one is a shared library).
  bool is_pie() const { return elf_type_ == 3 /*ET_DYN*/ && has_interp_; }
  bool is_shared_object() const { return elf_type_ == 3 /*ET_DYN*/ && !has_interp_; }
  bool has_symtab() const { return FindSection(".symtab").has_value(); }

  const std::vector<Section>& sections() const { return sections_; }
  std::optional<Section> FindSection(std::string_view name) const;
  const std::vector<Segment>& load_segments() const { return loads_; }

  // The PT_LOAD segment whose file-backed part holds `vaddr`, or nullopt.
  const Segment* SegmentFor(uint64_t vaddr) const;
  std::optional<uint64_t> VaddrToOffset(uint64_t vaddr) const;
  // Up to `len` file bytes at virtual address `vaddr`, clipped to the segment's file-backed part
  // (empty when the address is not backed by the file).
  std::span<const uint8_t> BytesAtVaddr(uint64_t vaddr, uint64_t len) const;
  std::span<const uint8_t> BytesAtOffset(uint64_t offset, uint64_t len) const;
  std::span<const uint8_t> SectionBytes(const Section& s) const;
  std::span<const uint8_t> image() const { return {data_, size_}; }

  // Value of a symbol from .symtab (not .dynsym: Go binaries keep function symbols only there).
  std::optional<uint64_t> SymbolValue(std::string_view name) const;
  // Addend of an R_*_RELATIVE relocation applied at `vaddr` (.rela.dyn), for PIE pointers whose
  // in-file value a linker left as zero.
  std::optional<uint64_t> RelativeRelocAddend(uint64_t vaddr) const;
  // Addresses patched by R_*_RELATIVE relocations whose addend is `value` (at most `limit`).
  std::vector<uint64_t> RelativeRelocsWithAddend(uint64_t value, size_t limit) const;
  // A pointer stored at `vaddr`: the in-file word, or the RELATIVE relocation's addend when the
  // linker left the word zero.
  uint64_t ReadPointer(uint64_t vaddr, unsigned ptr_size) const;

 private:
  ElfFile() = default;
  static Result<std::unique_ptr<ElfFile>> Init(std::unique_ptr<ElfFile> f);
  // Calls fn(where, addend) for each RELATIVE relocation until it returns false.
  void ForEachRelative(const std::function<bool(uint64_t, uint64_t)>& fn) const;

  void* map_ = nullptr;      // mmap'ed file (Open)
  std::string owned_;        // in-memory image (FromBytes)
  uint8_t* data_ = nullptr;  // image start, whichever backs it
  uint64_t size_ = 0;
  ::Elf* elf_ = nullptr;
  Machine machine_ = Machine::kAmd64;
  uint16_t elf_type_ = 0;
  bool has_interp_ = false;
  std::vector<Section> sections_;
  std::vector<Segment> loads_;
};

// Little-endian readers over a span; they return 0 when out of range, so callers validate sizes
// once and never read past the image.
uint64_t ReadU64(std::span<const uint8_t> b, uint64_t off);
uint32_t ReadU32(std::span<const uint8_t> b, uint64_t off);
uint64_t ReadUintptr(std::span<const uint8_t> b, uint64_t off, unsigned ptr_size);

}  // namespace gotlscap::elf
