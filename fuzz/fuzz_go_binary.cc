// libFuzzer target: the whole analysis of an ELF image (ElfFile::FromBytes + AnalyzeGoBinary).
// Any input must give a value or an Error: no crash, hang or read outside the image.
// Seeds: fuzz/make-seeds.sh (miniature Go ELFs of every pclntab format and layout variant).
#include <cstddef>
#include <cstdint>
#include <string>

#include "elf/elf_file.h"
#include "gobin/go_binary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = gotlscap::elf::ElfFile::FromBytes(std::string(reinterpret_cast<const char*>(data), size));
  if (!file.ok()) return 0;
  auto bin = gotlscap::gobin::AnalyzeGoBinary(**file, "fuzz");
  if (bin.ok()) {
    // Everything reported must lie in the image: a uprobe offset outside it would be a bug.
    for (const auto& f : bin->functions) {
      if (f.file_offset >= size || size - f.file_offset < f.size) __builtin_trap();
      for (uint64_t r : f.ret_offsets)
        if (r >= f.size) __builtin_trap();
    }
  }
  return 0;
}
