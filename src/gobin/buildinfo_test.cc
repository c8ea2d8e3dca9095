// Build info in both layouts (pointer format before Go 1.18, inline strings after), hand-built
// in a small ELF, plus damaged variants.
#include "gobin/buildinfo.h"

#include <gtest/gtest.h>

#include "gobin/go_version.h"
#include "testing/mini_elf.h"

namespace gotlscap::gobin {
namespace {

using testing::MiniElf;
using testing::PutU64;

const std::string kModInfo =
    "path\texample.com/srv\nmod\texample.com/srv\t(devel)\t\ndep\tgolang.org/x/net\tv0.1.0\th1:abc=\n"
    "build\t-ldflags=\"-s -w\"\nbuild\tCGO_ENABLED=0\nbuild\tGOARCH=amd64\n";

// cmd/go frames modinfo with 16-byte sentinels; the last one is preceded by a newline.
std::string Framed(const std::string& m) {
  return std::string("0w\xaf\x0c\x92t\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6", 16) + m +
         std::string("\xf9" "2C1\x86\x18 r\x00\x82\x42\x10\x41\x16\xd8\xf2", 16);
}

std::vector<uint8_t> Header(uint8_t flags) {
  std::string magic = "\xff Go buildinf:";
  std::vector<uint8_t> h(magic.begin(), magic.end());
  h.push_back(8);
  h.push_back(flags);
  h.resize(32, 0);
  return h;
}

void PutVarString(std::vector<uint8_t>& b, const std::string& s) {
  uint64_t n = s.size();
  while (n >= 0x80) {
    b.push_back(uint8_t(n) | 0x80);
    n >>= 7;
  }
  b.push_back(uint8_t(n));
  b.insert(b.end(), s.begin(), s.end());
}

void ExpectModInfo(const BuildInfo& bi) {
  EXPECT_EQ(bi.main_path, "example.com/srv");
  EXPECT_EQ(bi.module_path, "example.com/srv");
  EXPECT_EQ(bi.module_version, "(devel)");
  EXPECT_EQ(bi.dependency_count, 1u);
  EXPECT_EQ(bi.Setting("-ldflags").value_or(""), "-s -w");
  EXPECT_EQ(bi.Setting("CGO_ENABLED").value_or(""), "0");
  EXPECT_EQ(bi.Setting("GOARCH").value_or(""), "amd64");
}

TEST(BuildInfo, InlineFormatGo118Plus) {
  MiniElf elf;
  auto b = Header(0x2);
  PutVarString(b, "go1.21.4");
  PutVarString(b, Framed(kModInfo));
  elf.AddSection(".go.buildinfo", b);
  auto f = elf::ElfFile::FromBytes(elf.Build());
  ASSERT_TRUE(f.ok()) << f.error().message;
  auto bi = ReadBuildInfo(**f);
  ASSERT_TRUE(bi.ok()) << bi.error().message;
  ASSERT_TRUE(bi->has_value());
  EXPECT_TRUE((*bi)->inline_format);
  EXPECT_EQ((*bi)->version, "go1.21.4");
  ExpectModInfo(**bi);
}

// Before 1.18: the header holds pointers to Go string headers {ptr, len}.
TEST(BuildInfo, PointerFormatBeforeGo118) {
  MiniElf elf;
  const std::string version = "go1.16.15";
  const std::string mod = Framed(kModInfo);
  std::vector<uint8_t> strings(version.begin(), version.end());
  strings.insert(strings.end(), mod.begin(), mod.end());
  const uint64_t str_addr = elf.AddSection(".rodata", strings);
  std::vector<uint8_t> hdrs;
  PutU64(hdrs, str_addr);
  PutU64(hdrs, version.size());
  PutU64(hdrs, str_addr + version.size());
  PutU64(hdrs, mod.size());
  const uint64_t hdr_addr = elf.AddSection(".data", hdrs);
  auto b = Header(0x0);
  testing::SetU64(b, 16, hdr_addr);
  testing::SetU64(b, 24, hdr_addr + 16);
  // Without a section name, as in binaries whose section headers were removed: found by magic.
  elf.AddSection("", b, /*named=*/false);
  auto f = elf::ElfFile::FromBytes(elf.Build());
  ASSERT_TRUE(f.ok()) << f.error().message;
  auto bi = ReadBuildInfo(**f);
  ASSERT_TRUE(bi.ok()) << bi.error().message;
  ASSERT_TRUE(bi->has_value());
  EXPECT_FALSE((*bi)->inline_format);
  EXPECT_EQ((*bi)->version, version);
  ExpectModInfo(**bi);
}

TEST(BuildInfo, DamagedIsCorruptNotCrash) {
  {  // string length running past the section
    MiniElf elf;
    auto b = Header(0x2);
    b.push_back(0xff);
    b.push_back(0x7f);
    b.insert(b.end(), {'g', 'o'});
    elf.AddSection(".go.buildinfo", b);
    auto f = elf::ElfFile::FromBytes(elf.Build());
    ASSERT_TRUE(f.ok());
    auto bi = ReadBuildInfo(**f);
    ASSERT_FALSE(bi.ok());
    EXPECT_EQ(bi.error().kind, ErrorKind::kCorrupt);
  }
  {  // pointer format with dangling pointers
    MiniElf elf;
    auto b = Header(0x0);
    testing::SetU64(b, 16, 0xdeadbeef);
    testing::SetU64(b, 24, 0x1234);
    elf.AddSection(".go.buildinfo", b);
    auto f = elf::ElfFile::FromBytes(elf.Build());
    ASSERT_TRUE(f.ok());
    auto bi = ReadBuildInfo(**f);
    ASSERT_FALSE(bi.ok());
    EXPECT_EQ(bi.error().kind, ErrorKind::kCorrupt);
  }
  {  // no build info at all is not an error
    MiniElf elf;
    elf.AddSection(".data", std::vector<uint8_t>(64, 0));
    auto f = elf::ElfFile::FromBytes(elf.Build());
    ASSERT_TRUE(f.ok());
    auto bi = ReadBuildInfo(**f);
    ASSERT_TRUE(bi.ok());
    EXPECT_FALSE(bi->has_value());
  }
}

TEST(GoVersion, ParsesReleaseAndVendorStrings) {
  auto v = ParseGoVersion("go1.27.3 X:nocoverageredesign");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->minor, 27);
  EXPECT_EQ(v->patch, 3);
  v = ParseGoVersion("go1.22-20231128-RC02 cl/586117301 +6111acc8e6 X:fieldtrack,boringcrypto");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->minor, 22);
  EXPECT_EQ(v->patch, 0);
  v = ParseGoVersion("go1.16");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->ToString(), "go1.16.0");
  v = ParseGoVersion("devel go1.24-abcdef");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->minor, 24);
  EXPECT_FALSE(ParseGoVersion("gopher"));
  EXPECT_TRUE(ParseGoVersion("go1.17")->AtLeast(1, 17));
  EXPECT_FALSE(ParseGoVersion("go1.16.9")->AtLeast(1, 17));
}

}  // namespace
}  // namespace gotlscap::gobin
