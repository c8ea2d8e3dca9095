// Test-only: builds small ELF64 images in memory (one PT_LOAD per added section, R+X for code and
// R+W otherwise, at kBase + file offset), so readers can be tested on hand-made Go tables, including layouts
// of Go versions whose toolchains we cannot run here.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace gotlscap::testing {

class MiniElf {
 public:
  static constexpr uint64_t kBase = 0x400000;
  static constexpr uint64_t kDataStart = 0x1000;  // file offset where section data begins

  explicit MiniElf(uint16_t machine = EM_X86_64) : machine_(machine) { body_.resize(kDataStart); }

  // Appends a section (aligned to 16) and returns its virtual address.
  uint64_t AddSection(const std::string& name, const std::vector<uint8_t>& bytes, bool named = true,
                      bool exec = false) {
    while (body_.size() % 16) body_.push_back(0);
    uint64_t off = body_.size();
    body_.insert(body_.end(), bytes.begin(), bytes.end());
    if (named) sections_.push_back({name, off, bytes.size()});
    segments_.push_back({off, bytes.size(), exec});
    return kBase + off;
  }
  uint64_t NextAddress() const { return kBase + ((body_.size() + 15) & ~uint64_t(15)); }
  void set_type(uint16_t t) { type_ = t; }

  std::string Build() const {
    std::vector<uint8_t> img = body_;
    // Section name table, then section headers at the end.
    std::string shstr(1, '\0');
    std::vector<uint32_t> name_off;
    for (const auto& s : sections_) {
      name_off.push_back(shstr.size());
      shstr += s.name + '\0';
    }
    uint32_t shstr_name = shstr.size();
    shstr += ".shstrtab";
    shstr += '\0';
    uint64_t shstr_off = img.size();
    img.insert(img.end(), shstr.begin(), shstr.end());
    while (img.size() % 8) img.push_back(0);
    uint64_t shoff = img.size();
    std::vector<Elf64_Shdr> sh(1);
    for (size_t i = 0; i < sections_.size(); i++) {
      Elf64_Shdr h{};
      h.sh_name = name_off[i];
      h.sh_type = SHT_PROGBITS;
      h.sh_flags = SHF_ALLOC | SHF_WRITE;
      h.sh_addr = kBase + sections_[i].off;
      h.sh_offset = sections_[i].off;
      h.sh_size = sections_[i].size;
      h.sh_addralign = 16;
      sh.push_back(h);
    }
    Elf64_Shdr strh{};
    strh.sh_name = shstr_name;
    strh.sh_type = SHT_STRTAB;
    strh.sh_offset = shstr_off;
    strh.sh_size = shstr.size();
    strh.sh_addralign = 1;
    sh.push_back(strh);
    img.resize(shoff + sh.size() * sizeof(Elf64_Shdr));
    std::memcpy(img.data() + shoff, sh.data(), sh.size() * sizeof(Elf64_Shdr));

    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type_;
    eh.e_machine = machine_;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_shoff = shoff;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = segments_.size();
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = sh.size();
    eh.e_shstrndx = sh.size() - 1;
    std::memcpy(img.data(), &eh, sizeof eh);
    for (size_t i = 0; i < segments_.size(); i++) {
      Elf64_Phdr ph{};
      ph.p_type = PT_LOAD;
      ph.p_flags = segments_[i].exec ? (PF_R | PF_X) : (PF_R | PF_W);
      ph.p_offset = segments_[i].off;
      ph.p_vaddr = ph.p_paddr = kBase + segments_[i].off;
      ph.p_filesz = ph.p_memsz = segments_[i].size;
      ph.p_align = 16;
      std::memcpy(img.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
    }
    return std::string(img.begin(), img.end());
  }

 private:
  struct Sec {
    std::string name;
    uint64_t off, size;
  };
  uint16_t machine_;
  uint16_t type_ = ET_EXEC;
  std::vector<uint8_t> body_;
  std::vector<Sec> sections_;
  struct Seg {
    uint64_t off, size;
    bool exec;
  };
  std::vector<Seg> segments_;
};

// Little-endian appenders for building tables.
inline void PutU32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(uint8_t(v >> (8 * i)));
}
inline void PutU64(std::vector<uint8_t>& b, uint64_t v) {
  for (int i = 0; i < 8; i++) b.push_back(uint8_t(v >> (8 * i)));
}
inline void SetU64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) b[at + i] = uint8_t(v >> (8 * i));
}
inline void SetU32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) b[at + i] = uint8_t(v >> (8 * i));
}

}  // namespace gotlscap::testing
