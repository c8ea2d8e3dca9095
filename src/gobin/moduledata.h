// runtime.firstmoduledata: the runtime's own descriptor of the binary, pointing at the pclntab.
// We use it to confirm a pclntab found by a magic scan and to learn textStart, which the pclntab
// header stops carrying in Go 1.26 (the linker writes 0 there) and which differs from the .text
// section address under external linking (crt code comes first).
#pragma once

#include <optional>

#include "elf/elf_file.h"
#include "gobin/pclntab.h"

namespace gotlscap::gobin {

struct Moduledata {
  uint64_t address = 0;
  uint64_t text = 0;  // moduledata.text: the runtime's textStart
};

// Finds the moduledata whose first words point at `table`. Layouts (runtime/symtab.go):
//   Go 1.16+: pcHeader*, funcnametab []byte, cutab, filetab, pctab, pclntable, ftab,
//             findfunctab, minpc, maxpc, text  -> text at 22 words (+176 on 64-bit)
//   Go <=1.15: pclntable []byte, ftab, filetab, findfunctab, minpc, maxpc, text -> text at 12 words
std::optional<Moduledata> FindModuledata(const elf::ElfFile& file, const Pclntab& table);

// Sets table.text_start() for Go 1.18+ tables (header value, else moduledata.text, else the
// runtime.text symbol), validated to lie in an executable segment. kCorrupt if none fits.
Result<bool> ResolveTextStart(const elf::ElfFile& file, Pclntab& table);

}  // namespace gotlscap::gobin
