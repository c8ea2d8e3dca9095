// Reader for Go's function table (.gopclntab, "pclntab"). Written by hand: no C/C++ library reads
// it. Formats (Go's debug/gosym/pclntab.go, runtime/symtab.go at each tag):
//   0xFFFFFFFB  Go 1.2-1.15   functab {entry uintptr, funcoff uintptr}; names relative to the table
//   0xFFFFFFFA  Go 1.16-1.17  header with offsets of funcnametab, cutab, filetab, pctab, pclntable
//   0xFFFFFFF0  Go 1.18-1.19  functab {entryoff u32, funcoff u32}, PCs relative to textStart
//   0xFFFFFFF1  Go 1.20+      same layout as 1.18 (the magic marks a symbol-naming change)
// Names are looked up without building a table of all functions: find the name's offset in
// funcnametab, then walk functab reading only each _func's 4-byte nameoff.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace gotlscap::gobin {

enum class PclntabFormat { kGo12, kGo116, kGo118, kGo120 };
const char* PclntabFormatName(PclntabFormat f);  // "go1.2", "go1.16", "go1.18", "go1.20"

struct FuncInfo {
  uint64_t entry = 0;     // virtual address of the first instruction
  uint64_t end = 0;       // next function's entry (includes alignment padding)
  uint32_t args = 0;      // _func.args: argument (+result, stack ABI) frame size in bytes
};

class Pclntab {
 public:
  // Validates the header of a table at `vaddr` whose bytes (possibly running past the table's
  // end) are `data`. kCorrupt if it is not a plausible pclntab.
  static Result<Pclntab> Parse(std::span<const uint8_t> data, uint64_t vaddr);

  PclntabFormat format() const { return format_; }
  uint64_t address() const { return vaddr_; }
  unsigned ptr_size() const { return ptr_size_; }
  unsigned quantum() const { return quantum_; }
  uint64_t nfunc() const { return nfunc_; }
  // For Go 1.18+: byte offset of funcnametab from the table start (moduledata's second word
  // points there, which confirms a table found by a magic scan).
  uint64_t funcname_offset() const { return funcname_off_; }
  // textStart as written in the header (Go 1.18-1.25; 0 from Go 1.26 on). 0 for older formats.
  uint64_t header_text_start() const { return header_text_start_; }
  bool uses_text_start() const { return format_ == PclntabFormat::kGo118 || format_ == PclntabFormat::kGo120; }
  void set_text_start(uint64_t t) { text_start_ = t; }
  uint64_t text_start() const { return text_start_; }
  // Entry of the first function (relative for 1.18+ tables: add text_start()).
  uint64_t FirstEntryRaw() const;

  // Looks up each name (full Go symbol name) in one pass over functab. Entries of the result are
  // nullopt for names not present. kCorrupt when a found function's record is inconsistent.
  Result<std::vector<std::optional<FuncInfo>>> Lookup(std::span<const std::string> names) const;
  // The function whose entry is exactly `addr` (binary search of functab): its name and extent;
  // nullopt if no function starts there or its record or name lies outside the table. Go 1.17
  // names Read's deferred closure "Read·dwrap·15", later ones "Read.func1" or "Read.deferwrap1":
  // a caller that knows the address asks for the name instead of guessing it.
  struct NamedFunc {
    std::string name;
    FuncInfo func;
  };
  std::optional<NamedFunc> FuncAtEntry(uint64_t addr) const;

 private:
  Pclntab() = default;
  uint64_t FunctabEntry(uint64_t i) const;    // raw entry PC (or entryoff) of functab[i]
  uint64_t FunctabFuncoff(uint64_t i) const;  // funcoff of functab[i]
  std::span<const uint8_t> data_;
  uint64_t vaddr_ = 0;
  PclntabFormat format_ = PclntabFormat::kGo120;
  unsigned ptr_size_ = 8;
  unsigned quantum_ = 1;
  uint64_t nfunc_ = 0;
  uint64_t funcname_off_ = 0, funcname_end_ = 0;  // funcnametab bounds (1.16+)
  uint64_t functab_off_ = 0;                      // start of functab
  uint64_t funcdata_off_ = 0;                     // funcoff is relative to this
  unsigned field_size_ = 8;                       // functab field size: 4 (1.18+) or ptr_size
  uint64_t header_text_start_ = 0;
  uint64_t text_start_ = 0;
};

// Finds and validates the pclntab of `file`: by section name (.gopclntab, .data.rel.ro.gopclntab),
// else by a validated magic scan of the loaded segments (external linkers merge the section into
// .data.rel.ro). nullopt if there is none (not a Go binary).
Result<std::optional<Pclntab>> FindPclntab(const elf::ElfFile& file);

}  // namespace gotlscap::gobin
