// Hand-built pclntabs in every layout, including those of Go 1.16-1.18 and 1.20-1.23, whose
// toolchains are not available here. Layouts follow Go's runtime/symtab.go and debug/gosym.
#include "gobin/pclntab.h"

#include <gtest/gtest.h>

#include "gobin/moduledata.h"
#include "testing/mini_elf.h"

namespace gotlscap::gobin {
namespace {

using testing::PutU32;
using testing::PutU64;
using testing::SetU32;
using testing::SetU64;

struct Fn {
  std::string name;
  uint64_t entry;  // absolute PC (relative to textStart for 1.18+ tables)
  uint32_t args;
};

const std::vector<Fn> kFns = {
    {"runtime.main", 0x1000, 0},
    {"evil/crypto/tls.(*Conn).Read", 0x1100, 8},  // decoy: contains the wanted name as a suffix
    {"crypto/tls.(*Conn).Read", 0x1200, 32},
    {"crypto/tls.(*Conn).Write", 0x1400, 56},
};
constexpr uint64_t kEnd = 0x1800;

// Builds a 1.16+ table: header, funcnametab, cutab, filetab, pctab, then pclntable = functab
// followed by the _func records (funcoff relative to pclntable).
std::vector<uint8_t> BuildModern(uint32_t magic, uint64_t text_start) {
  const bool v118 = magic != 0xFFFFFFFA;
  const unsigned field = v118 ? 4 : 8;
  std::vector<uint8_t> t;
  PutU32(t, magic);
  t.insert(t.end(), {0, 0, 1, 8});
  const unsigned nwords = v118 ? 8 : 7;
  for (unsigned i = 0; i < nwords; i++) PutU64(t, 0);
  std::vector<uint32_t> nameoff;
  const uint64_t funcname = t.size();
  t.push_back(0);  // a leading empty name, as the linker emits
  for (const auto& f : kFns) {
    nameoff.push_back(t.size() - funcname);
    t.insert(t.end(), f.name.begin(), f.name.end());
    t.push_back(0);
  }
  const uint64_t cu = t.size();
  PutU32(t, 0);
  const uint64_t filetab = t.size();
  t.insert(t.end(), {'a', '.', 'g', 'o', 0});
  const uint64_t pctab = t.size();
  t.insert(t.end(), {0, 0, 0, 0});
  while (t.size() % 8) t.push_back(0);
  const uint64_t pcln = t.size();
  auto put = [&](uint64_t v) { field == 4 ? PutU32(t, uint32_t(v)) : PutU64(t, v); };
  const uint64_t recs = (2 * kFns.size() + 1) * field;
  for (size_t i = 0; i < kFns.size(); i++) {
    put(kFns[i].entry);
    put(recs + i * 32);
  }
  put(kEnd);
  for (size_t i = 0; i < kFns.size(); i++) {
    size_t at = t.size();
    put(kFns[i].entry);
    PutU32(t, nameoff[i]);
    PutU32(t, kFns[i].args);
    while (t.size() < at + 32) t.push_back(0);
  }
  unsigned w = 0;
  SetU64(t, 8 + 8 * w++, kFns.size());
  SetU64(t, 8 + 8 * w++, 1);
  if (v118) SetU64(t, 8 + 8 * w++, text_start);
  for (uint64_t off : {funcname, cu, filetab, pctab, pcln}) SetU64(t, 8 + 8 * w++, off);
  return t;
}

// Builds a Go 1.2-1.15 table: functab of {entry, funcoff} right after the header, names stored
// inside the table and referenced from its start.
std::vector<uint8_t> BuildGo12() {
  std::vector<uint8_t> t;
  PutU32(t, 0xFFFFFFFB);
  t.insert(t.end(), {0, 0, 1, 8});
  PutU64(t, kFns.size());
  const uint64_t functab = t.size();
  for (size_t i = 0; i < 2 * kFns.size() + 1; i++) PutU64(t, 0);
  PutU32(t, 0);  // filetab offset
  std::vector<uint64_t> recs;
  for (const auto& f : kFns) {
    recs.push_back(t.size());
    PutU64(t, f.entry);
    PutU32(t, 0);  // nameoff, patched below
    PutU32(t, f.args);
    PutU64(t, 0);
  }
  for (size_t i = 0; i < kFns.size(); i++) {
    SetU32(t, recs[i] + 8, uint32_t(t.size()));
    t.insert(t.end(), kFns[i].name.begin(), kFns[i].name.end());
    t.push_back(0);
    SetU64(t, functab + 16 * i, kFns[i].entry);
    SetU64(t, functab + 16 * i + 8, recs[i]);
  }
  SetU64(t, functab + 16 * kFns.size(), kEnd);
  return t;
}

struct Case {
  const char* label;
  uint32_t magic;
  PclntabFormat format;
};

class PclntabFormats : public ::testing::TestWithParam<Case> {};

TEST_P(PclntabFormats, FindsFunctionsByExactName) {
  const Case& c = GetParam();
  const uint64_t text = 0x400000;
  auto bytes = c.magic == 0xFFFFFFFB ? BuildGo12() : BuildModern(c.magic, text);
  auto t = Pclntab::Parse(bytes, 0x500000);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->format(), c.format);
  EXPECT_EQ(t->nfunc(), kFns.size());
  const uint64_t base = t->uses_text_start() ? text : 0;
  if (t->uses_text_start()) {
    EXPECT_EQ(t->header_text_start(), text);
    t->set_text_start(text);
  }
  std::vector<std::string> names = {"crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write", "crypto/tls.missing"};
  auto r = t->Lookup(names);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE((*r)[0].has_value());
  EXPECT_EQ((*r)[0]->entry, base + 0x1200);  // not the decoy at 0x1100
  EXPECT_EQ((*r)[0]->end, base + 0x1400);
  EXPECT_EQ((*r)[0]->args, 32u);
  ASSERT_TRUE((*r)[1].has_value());
  EXPECT_EQ((*r)[1]->entry, base + 0x1400);
  EXPECT_EQ((*r)[1]->end, base + kEnd);  // last function ends at the table's end PC
  EXPECT_EQ((*r)[1]->args, 56u);
  EXPECT_FALSE((*r)[2].has_value());
  // And back: the function at an entry, in every format, as Lookup finds it.
  auto read = t->FuncAtEntry(base + 0x1200);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->name, "crypto/tls.(*Conn).Read");
  EXPECT_EQ(read->func.entry, (*r)[0]->entry);
  EXPECT_EQ(read->func.end, (*r)[0]->end);
  EXPECT_EQ(read->func.args, (*r)[0]->args);
  auto write = t->FuncAtEntry(base + 0x1400);
  ASSERT_TRUE(write.has_value());
  EXPECT_EQ(write->name, "crypto/tls.(*Conn).Write");
  EXPECT_EQ(write->func.end, base + kEnd);
  EXPECT_FALSE(t->FuncAtEntry(base + 0x1201).has_value()) << "not an entry";
  EXPECT_FALSE(t->FuncAtEntry(base + kEnd).has_value()) << "the end PC starts no function";
}

TEST_P(PclntabFormats, RejectsDamagedHeaders) {
  const Case& c = GetParam();
  auto good = c.magic == 0xFFFFFFFB ? BuildGo12() : BuildModern(c.magic, 0x400000);
  auto mutate = [&](auto fn) {
    auto b = good;
    fn(b);
    return Pclntab::Parse(b, 0x500000);
  };
  EXPECT_FALSE(mutate([](auto& b) { b[0] = 0x12; }).ok()) << "bad magic";
  EXPECT_FALSE(mutate([](auto& b) { b[6] = 3; }).ok()) << "bad quantum";
  EXPECT_FALSE(mutate([](auto& b) { b[7] = 16; }).ok()) << "bad pointer size";
  EXPECT_FALSE(mutate([](auto& b) { SetU64(b, 8, uint64_t(1) << 40); }).ok()) << "absurd nfunc";
  EXPECT_FALSE(mutate([](auto& b) { b.resize(40); }).ok()) << "truncated in functab";
  if (c.magic != 0xFFFFFFFB) {
    // funcnametab offset past the cutab offset: sub-tables out of order.
    unsigned funcname_word = c.magic == 0xFFFFFFFA ? 2 : 3;
    EXPECT_FALSE(mutate([&](auto& b) { SetU64(b, 8 + 8 * funcname_word, 1u << 20); }).ok());
  }
}

TEST_P(PclntabFormats, LookupReportsInconsistentRecords) {
  const Case& c = GetParam();
  auto b = c.magic == 0xFFFFFFFB ? BuildGo12() : BuildModern(c.magic, 0x400000);
  auto t = Pclntab::Parse(b, 0x500000);
  ASSERT_TRUE(t.ok());
  t->set_text_start(0x400000);
  // Break Read's record so its entry disagrees with functab: Lookup must refuse, not guess.
  auto names = std::vector<std::string>{"crypto/tls.(*Conn).Read"};
  auto before = t->Lookup(names);
  ASSERT_TRUE(before.ok() && (*before)[0]);
  const uint64_t raw_entry = 0x1200;
  // The record is the second occurrence of the entry value (the first is in functab).
  std::vector<uint8_t> broken = b;
  size_t hits = 0;
  for (size_t i = 16; i + 4 <= broken.size(); i++) {
    if (elf::ReadU32(broken, i) == raw_entry && ++hits == 2) {
      SetU32(broken, i, raw_entry + 4);
      break;
    }
  }
  ASSERT_EQ(hits, 2u);
  auto t2 = Pclntab::Parse(broken, 0x500000);
  ASSERT_TRUE(t2.ok());
  t2->set_text_start(0x400000);
  auto r = t2->Lookup(names);
  EXPECT_FALSE(r.ok());
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, PclntabFormats,
                         ::testing::Values(Case{"go1_2", 0xFFFFFFFB, PclntabFormat::kGo12},
                                           Case{"go1_16", 0xFFFFFFFA, PclntabFormat::kGo116},
                                           Case{"go1_18", 0xFFFFFFF0, PclntabFormat::kGo118},
                                           Case{"go1_20", 0xFFFFFFF1, PclntabFormat::kGo120}),
                         [](const auto& info) { return std::string(info.param.label); });

// A table with no section header of its own (merged into .data.rel.ro by an external linker) is
// found by its magic, confirmed by moduledata, and textStart comes from moduledata.text when the
// header carries 0 (Go 1.26+).
TEST(PclntabLocation, MagicScanAndModuledataTextStart) {
  testing::MiniElf elf;
  const uint64_t code_addr = elf.AddSection(".text", std::vector<uint8_t>(0x2000, 0xcc), true, /*exec=*/true);
  auto table = BuildModern(0xFFFFFFF1, /*text_start=*/0);
  std::vector<uint8_t> padded(64, 0x5a);  // some unrelated data before the table
  padded.insert(padded.end(), table.begin(), table.end());
  const uint64_t blob = elf.AddSection("blob", padded, /*named=*/false);
  const uint64_t table_addr = blob + 64;
  // moduledata: pcHeader, funcnametab{ptr,len,cap}, ... text at word 22.
  std::vector<uint8_t> md(8 * 24, 0);
  const uint64_t funcname_off = elf::ReadU64(table, 8 + 8 * 3);
  SetU64(md, 0, table_addr);
  SetU64(md, 8, table_addr + funcname_off);
  const uint64_t text = code_addr - 0x1000 + 0x10;  // so text + first entryoff lands in code
  SetU64(md, 8 * 22, text);
  elf.AddSection(".noptrdata", md);
  auto file = elf::ElfFile::FromBytes(elf.Build());
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto found = FindPclntab(**file);
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->address(), table_addr);
  auto md_found = FindModuledata(**file, **found);
  ASSERT_TRUE(md_found.has_value());
  EXPECT_EQ(md_found->text, text);
  auto resolved = ResolveTextStart(**file, **found);
  ASSERT_TRUE(resolved.ok()) << resolved.error().message;
  EXPECT_EQ((*found)->text_start(), text);
}

}  // namespace
}  // namespace gotlscap::gobin
