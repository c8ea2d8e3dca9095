// libFuzzer target: ReadBuildInfo (+ ParseModInfo).
// An input starting with "\x7fELF" is used as the whole file. Anything else is wrapped in a
// minimal ELF64 whose only segment, a writable PT_LOAD at kVaddr, holds the input: with no section
// headers the reader finds the blob by its magic, and pointer-format (Go < 1.18) headers can point
// back into the input. Seeds: fuzz/make-seeds.sh (real and synthetic .go.buildinfo blobs).
#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "elf/elf_file.h"
#include "gobin/buildinfo.h"

namespace {
constexpr uint64_t kVaddr = 0x10000000;  // matches fuzz/seedgen.py
constexpr size_t kDataOff = 128;         // after the ELF header and one program header

std::string Wrap(const uint8_t* data, size_t size) {
  std::string img(kDataOff + size, '\0');
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_flags = PF_R | PF_W;
  ph.p_offset = kDataOff;
  ph.p_vaddr = ph.p_paddr = kVaddr;
  ph.p_filesz = ph.p_memsz = size;
  ph.p_align = 16;
  std::memcpy(img.data(), &eh, sizeof eh);
  std::memcpy(img.data() + sizeof eh, &ph, sizeof ph);
  if (size) std::memcpy(img.data() + kDataOff, data, size);
  return img;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool is_elf = size >= 4 && std::memcmp(data, ELFMAG, SELFMAG) == 0;
  auto file = gotlscap::elf::ElfFile::FromBytes(is_elf ? std::string(reinterpret_cast<const char*>(data), size)
                                                       : Wrap(data, size));
  if (file.ok()) (void)gotlscap::gobin::ReadBuildInfo(**file);
  if (!is_elf) {
    gotlscap::gobin::BuildInfo bi;
    gotlscap::gobin::ParseModInfo(std::string_view(reinterpret_cast<const char*>(data), size), bi);
  }
  return 0;
}
