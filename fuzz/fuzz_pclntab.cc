// libFuzzer target: Pclntab::Parse on raw bytes at a fixed address, then the hook lookup.
// Seeds: fuzz/make-seeds.sh (synthetic tables of each format, 64 KiB prefixes of real ones).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gobin/go_binary.h"
#include "gobin/pclntab.h"

namespace {
constexpr uint64_t kTableVaddr = 0x800000;
constexpr uint64_t kTextStart = 0x401000;  // what the synthetic seeds use
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy, so ASan flags any read past the table's bytes.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size]);
  if (size) std::memcpy(copy.get(), data, size);
  auto t = gotlscap::gobin::Pclntab::Parse(std::span<const uint8_t>(copy.get(), size), kTableVaddr);
  if (!t.ok()) return 0;
  (void)t->FirstEntryRaw();
  if (t->uses_text_start()) t->set_text_start(t->header_text_start() ? t->header_text_start() : kTextStart);
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& h : gotlscap::gobin::HookTargets()) v.emplace_back(h.name);
    v.emplace_back("runtime.text");
    return v;
  }();
  auto found = t->Lookup(names);
  if (found.ok()) {
    for (const auto& f : *found)
      if (f && f->end <= f->entry) __builtin_trap();  // Lookup promises end > entry
  }
  return 0;
}
