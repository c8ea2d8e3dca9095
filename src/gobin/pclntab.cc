#include "gobin/pclntab.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "gobin/moduledata.h"

namespace gotlscap::gobin {
namespace {

constexpr uint32_t kMagic12 = 0xFFFFFFFB, kMagic116 = 0xFFFFFFFA, kMagic118 = 0xFFFFFFF0, kMagic120 = 0xFFFFFFF1;
// More functions than any real program has by far (a 300 MB binary has ~500k); guards against
// garbage headers making us walk gigabytes.
constexpr uint64_t kMaxFuncs = 1u << 24;

Error Corrupt(const std::string& what) { return MakeError(ErrorKind::kCorrupt, "corrupt Go pclntab: " + what); }

}  // namespace

const char* PclntabFormatName(PclntabFormat f) {
  switch (f) {
    case PclntabFormat::kGo12: return "go1.2";
    case PclntabFormat::kGo116: return "go1.16";
    case PclntabFormat::kGo118: return "go1.18";
    case PclntabFormat::kGo120: return "go1.20";
  }
  return "?";
}

Result<Pclntab> Pclntab::Parse(std::span<const uint8_t> data, uint64_t vaddr) {
  if (data.size() < 16) return Corrupt("header truncated");
  Pclntab t;
  t.data_ = data;
  t.vaddr_ = vaddr;
  uint32_t magic = elf::ReadU32(data, 0);
  switch (magic) {
    case kMagic12: t.format_ = PclntabFormat::kGo12; break;
    case kMagic116: t.format_ = PclntabFormat::kGo116; break;
    case kMagic118: t.format_ = PclntabFormat::kGo118; break;
    case kMagic120: t.format_ = PclntabFormat::kGo120; break;
    default: return Corrupt(fmt::format("unknown magic {:#x}", magic));
  }
  if (data[4] != 0 || data[5] != 0) return Corrupt("bad header padding");
  t.quantum_ = data[6];
  t.ptr_size_ = data[7];
  if (t.quantum_ != 1 && t.quantum_ != 2 && t.quantum_ != 4) return Corrupt(fmt::format("instruction size {}", t.quantum_));
  if (t.ptr_size_ != 4 && t.ptr_size_ != 8) return Corrupt(fmt::format("pointer size {}", t.ptr_size_));
  const unsigned P = t.ptr_size_;
  auto word = [&](unsigned i) { return elf::ReadUintptr(data, 8 + uint64_t(i) * P, P); };

  if (t.format_ == PclntabFormat::kGo12) {
    t.nfunc_ = word(0);
    t.functab_off_ = 8 + P;
    t.funcdata_off_ = 0;
    t.field_size_ = P;
    t.funcname_off_ = 0;
    t.funcname_end_ = data.size();
  } else {
    const bool v118 = t.format_ != PclntabFormat::kGo116;
    if (data.size() < 8 + uint64_t(v118 ? 8 : 7) * P) return Corrupt("header truncated");
    t.nfunc_ = word(0);
    unsigned k = 2;  // word 1 is nfiles
    if (v118) t.header_text_start_ = word(k++);
    t.funcname_off_ = word(k++);
    uint64_t cu = word(k++), filetab = word(k++), pctab = word(k++), pcln = word(k++);
    // Sub-tables follow each other in this order (cmd/link pcln.go); anything else is garbage.
    if (!(t.funcname_off_ >= 8 + uint64_t(k) * P && t.funcname_off_ <= cu && cu <= filetab && filetab <= pctab &&
          pctab <= pcln && pcln < data.size()))
      return Corrupt("sub-table offsets out of order or out of range");
    t.funcname_end_ = cu;
    t.functab_off_ = pcln;
    t.funcdata_off_ = pcln;
    t.field_size_ = v118 ? 4 : P;
  }
  if (t.nfunc_ == 0 || t.nfunc_ > kMaxFuncs) return Corrupt(fmt::format("function count {}", t.nfunc_));
  uint64_t functab_bytes = (2 * t.nfunc_ + 1) * t.field_size_;
  if (t.functab_off_ > data.size() || data.size() - t.functab_off_ < functab_bytes) return Corrupt("function table truncated");
  if (t.FunctabEntry(0) > t.FunctabEntry(t.nfunc_)) return Corrupt("function table not sorted");
  return t;
}

uint64_t Pclntab::FunctabEntry(uint64_t i) const {
  return elf::ReadUintptr(data_, functab_off_ + 2 * i * field_size_, field_size_);
}

uint64_t Pclntab::FunctabFuncoff(uint64_t i) const {
  return elf::ReadUintptr(data_, functab_off_ + (2 * i + 1) * field_size_, field_size_);
}

uint64_t Pclntab::FirstEntryRaw() const { return FunctabEntry(0); }

Result<std::vector<std::optional<FuncInfo>>> Pclntab::Lookup(std::span<const std::string> names) const {
  std::vector<std::optional<FuncInfo>> out(names.size());
  // Offsets in the name table that hold each wanted name (1.16+: found with memmem, a name only
  // counts when it starts right after a NUL, so "x/crypto/tls.f" does not match "crypto/tls.f").
  std::vector<std::vector<uint64_t>> want(names.size());
  const bool by_table = format_ != PclntabFormat::kGo12;
  if (by_table) {
    // One pass over the name table for all names: search their common prefix ("crypto/tls.")
    // and compare whole names only where a hit starts a name. The linker deduplicates names, so
    // the pass stops once every name has been seen.
    const uint8_t* base = data_.data() + funcname_off_;
    const uint8_t* end = data_.data() + funcname_end_;
    std::string_view prefix = names.empty() ? std::string_view() : std::string_view(names[0]);
    for (const auto& nm : names) {
      size_t k = 0;
      while (k < prefix.size() && k < nm.size() && prefix[k] == nm[k]) k++;
      prefix = prefix.substr(0, k);
    }
    if (prefix.empty()) prefix = std::string_view("\0", 1);  // names share nothing: visit every name start
    size_t unseen = names.size();
    for (const uint8_t* p = base; unseen > 0 && p < end; p++) {
      p = static_cast<const uint8_t*>(memmem(p, end - p, prefix.data(), prefix.size()));
      if (!p) break;
      const uint8_t* start = prefix[0] == '\0' ? p + 1 : p;
      if (start != base && start[-1] != 0) continue;
      const size_t len = strnlen(reinterpret_cast<const char*>(start), end - start);
      const std::string_view cand(reinterpret_cast<const char*>(start), len);
      for (size_t n = 0; n < names.size(); n++) {
        if (cand != names[n]) continue;
        unseen -= want[n].empty();
        want[n].push_back(start - base);
      }
    }
  }
  size_t remaining = names.size();
  if (by_table) {
    remaining = 0;
    for (auto& w : want) remaining += !w.empty();
  }
  // Offset of nameoff inside _func: after the entry field.
  const uint64_t nameoff_at = uses_text_start() ? 4 : ptr_size_;
  for (uint64_t i = 0; i < nfunc_ && remaining > 0; i++) {
    uint64_t funcoff = FunctabFuncoff(i);
    uint64_t rec = funcdata_off_ + funcoff;
    if (funcoff > data_.size() || rec > data_.size() || data_.size() - rec < nameoff_at + 8)
      return Corrupt(fmt::format("function record {} lies outside the table", i));
    uint32_t nameoff = elf::ReadU32(data_, rec + nameoff_at);
    for (size_t n = 0; n < names.size(); n++) {
      if (out[n]) continue;
      bool match = false;
      if (by_table) {
        // (fuzz) want[n] is ascending (forward memmem scan); a binary search keeps a name table
        // crafted with the name repeated many times from costing nfunc x occurrences.
        match = std::binary_search(want[n].begin(), want[n].end(), uint64_t{nameoff});
      } else {
        const std::string& nm = names[n];
        match = nameoff < data_.size() && data_.size() - nameoff > nm.size() &&
                std::memcmp(data_.data() + nameoff, nm.data(), nm.size()) == 0 && data_[nameoff + nm.size()] == 0;
      }
      if (!match) continue;
      uint64_t entry = FunctabEntry(i), end = FunctabEntry(i + 1);
      // The record repeats its entry: a cheap consistency check against a damaged table.
      uint64_t rec_entry = elf::ReadUintptr(data_, rec, uses_text_start() ? 4 : ptr_size_);
      if (rec_entry != entry || end <= entry)
        return Corrupt(fmt::format("inconsistent record for {}", names[n]));
      uint64_t base = uses_text_start() ? text_start_ : 0;
      // (fuzz) A garbage textStart could wrap base + end past 2^64, giving end < entry.
      if (end > UINT64_MAX - base) return Corrupt(fmt::format("{} lies past the end of the address space", names[n]));
      out[n] = FuncInfo{base + entry, base + end, elf::ReadU32(data_, rec + nameoff_at + 4)};
      remaining--;
    }
  }
  return out;
}

std::optional<Pclntab::NamedFunc> Pclntab::FuncAtEntry(uint64_t addr) const {
  const uint64_t base = uses_text_start() ? text_start_ : 0;
  if (addr < base) return std::nullopt;
  const uint64_t raw = addr - base;
  uint64_t lo = 0, hi = nfunc_;  // functab is sorted by entry (checked by Parse)
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (FunctabEntry(mid) < raw) lo = mid + 1; else hi = mid;
  }
  if (lo >= nfunc_ || FunctabEntry(lo) != raw) return std::nullopt;
  const uint64_t rec = funcdata_off_ + FunctabFuncoff(lo);
  const uint64_t nameoff_at = uses_text_start() ? 4 : ptr_size_;
  if (rec > data_.size() || data_.size() - rec < nameoff_at + 8) return std::nullopt;
  const uint64_t nameoff = elf::ReadU32(data_, rec + nameoff_at);
  const uint64_t start = format_ == PclntabFormat::kGo12 ? nameoff : funcname_off_ + nameoff;
  const uint64_t end = format_ == PclntabFormat::kGo12 ? data_.size() : funcname_end_;
  const uint64_t next = FunctabEntry(lo + 1);  // functab ends with the end PC of the last function
  if (start >= end || end > data_.size() || next <= raw || next > UINT64_MAX - base) return std::nullopt;
  const char* p = reinterpret_cast<const char*>(data_.data() + start);
  return NamedFunc{std::string(p, strnlen(p, end - start)),
                   FuncInfo{addr, base + next, elf::ReadU32(data_, rec + nameoff_at + 4)}};
}

namespace {

Result<std::optional<Pclntab>> TrySection(const elf::ElfFile& f, std::string_view name) {
  auto s = f.FindSection(name);
  if (!s || s->size == 0) return std::optional<Pclntab>();
  auto bytes = f.SectionBytes(*s);
  auto t = Pclntab::Parse(bytes, s->addr);
  if (!t.ok()) return t.error();
  return std::optional<Pclntab>(std::move(t).value());
}

// External linkers (GNU ld for PIE, lld) can merge .gopclntab into .data.rel.ro, leaving no
// section of its own: scan loaded segments for a header that parses, and prefer one that
// runtime.firstmoduledata points at (a stray magic in data cannot pass that check).
std::optional<Pclntab> ScanForMagic(const elf::ElfFile& f) {
  std::optional<Pclntab> unconfirmed;
  // (fuzz) Each candidate costs a FindModuledata pass over the writable segments: a file packed
  // with parseable headers made this quadratic (minutes for a few MiB). Real binaries hold one
  // table, so give up confirming after a few candidates.
  constexpr int kMaxCandidates = 16;
  int candidates = 0;
  static const uint32_t kMagics[] = {kMagic120, kMagic118, kMagic116, kMagic12};
  for (uint32_t magic : kMagics) {
    uint8_t pat[6];
    std::memcpy(pat, &magic, 4);
    pat[4] = pat[5] = 0;
    for (const auto& seg : f.load_segments()) {
      if (seg.executable()) continue;
      auto b = f.BytesAtOffset(seg.offset, seg.filesz);
      const uint8_t* p = b.data();
      const uint8_t* end = b.data() + b.size();
      while (p < end) {
        p = static_cast<const uint8_t*>(memmem(p, end - p, pat, sizeof pat));
        if (!p) break;
        uint64_t vaddr = seg.vaddr + (p - b.data());
        if (vaddr % 4 == 0) {
          auto t = Pclntab::Parse(b.subspan(p - b.data()), vaddr);
          if (t.ok() && ++candidates > kMaxCandidates) return unconfirmed;
          if (t.ok() && FindModuledata(f, *t)) return std::move(t).value();
          if (t.ok() && !unconfirmed) unconfirmed = std::move(t).value();
        }
        p++;
      }
    }
  }
  return unconfirmed;
}

}  // namespace

Result<std::optional<Pclntab>> FindPclntab(const elf::ElfFile& f) {
  for (std::string_view name : {".gopclntab", ".data.rel.ro.gopclntab"}) {
    auto t = TrySection(f, name);
    if (!t.ok() || t->has_value()) return t;
  }
  if (auto t = ScanForMagic(f)) return std::optional<Pclntab>(std::move(*t));
  return std::optional<Pclntab>();
}

}  // namespace gotlscap::gobin
