#include "gobin/moduledata.h"

#include <cstring>

namespace gotlscap::gobin {
namespace {

// What moduledata's first word must equal, and which later word confirms it.
struct Signature {
  uint64_t word0;
  unsigned check_word;
  uint64_t check_value;
  unsigned text_word;
};

Signature SignatureFor(const Pclntab& t) {
  const unsigned P = t.ptr_size();
  if (t.format() == PclntabFormat::kGo12)  // pclntable.ptr; ftab.ptr = table + 8 + P
    return {t.address(), 3, t.address() + 8 + P, 12};
  return {t.address(), 1, t.address() + t.funcname_offset(), 22};  // pcHeader; funcnametab.ptr
}

bool ExecutableAddress(const elf::ElfFile& f, uint64_t vaddr) {
  const elf::Segment* s = f.SegmentFor(vaddr);
  return s && s->executable();
}

}  // namespace

std::optional<Moduledata> FindModuledata(const elf::ElfFile& f, const Pclntab& t) {
  const Signature sig = SignatureFor(t);
  const unsigned P = t.ptr_size();
  auto confirm = [&](uint64_t addr) -> std::optional<Moduledata> {
    if (f.ReadPointer(addr + uint64_t(sig.check_word) * P, P) != sig.check_value) return std::nullopt;
    return Moduledata{addr, f.ReadPointer(addr + uint64_t(sig.text_word) * P, P)};
  };
  // The in-file word holds the address in static and most PIE builds.
  // (fuzz) confirm() may walk every relocation; bound the attempts so a segment full of copies of
  // word0 cannot make this words x relocations.
  int attempts = 0;
  for (const auto& seg : f.load_segments()) {
    if (!seg.writable()) continue;
    auto b = f.BytesAtOffset(seg.offset, seg.filesz);
    for (uint64_t off = (P - seg.vaddr % P) % P; off + P <= b.size(); off += P) {
      if (elf::ReadUintptr(b, off, P) != sig.word0) continue;
      if (++attempts > 256) return std::nullopt;
      if (auto m = confirm(seg.vaddr + off)) return m;
    }
  }
  // Some PIE linkers leave the word zero and carry the value only in a RELATIVE relocation.
  for (uint64_t where : f.RelativeRelocsWithAddend(sig.word0, 64))
    if (auto m = confirm(where)) return m;
  return std::nullopt;
}

Result<bool> ResolveTextStart(const elf::ElfFile& f, Pclntab& t) {
  if (!t.uses_text_start()) return true;
  auto fits = [&](uint64_t text) { return text != 0 && ExecutableAddress(f, text + t.FirstEntryRaw()); };
  uint64_t text = t.header_text_start();
  if (!fits(text)) {
    auto md = FindModuledata(f, t);
    text = md ? md->text : 0;
  }
  if (!fits(text)) text = f.SymbolValue("runtime.text").value_or(0);
  if (!fits(text))
    return MakeError(ErrorKind::kCorrupt, "corrupt Go pclntab: cannot determine the text start address");
  t.set_text_start(text);
  return true;
}

}  // namespace gotlscap::gobin
