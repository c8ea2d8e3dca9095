// Return sites from real instruction encodings, including the traps a byte scan falls into.
#include "disasm/ret_finder.h"

#include <gtest/gtest.h>

namespace gotlscap::disasm {
namespace {

TEST(RetFinder, X86IgnoresC3InsideOtherInstructions) {
  const std::vector<uint8_t> code = {
      0x48, 0x89, 0xc3,                    // mov %rax,%rbx   (ModRM byte 0xc3)
      0xb8, 0xc3, 0x00, 0x00, 0x00,        // mov $0xc3,%eax  (immediate 0xc3)
      0x74, 0x01,                          // je +1
      0xc3,                                // ret             <- offset 10
      0x48, 0x8b, 0x83, 0xc3, 0, 0, 0,     // mov 0xc3(%rbx),%rax
      0xc3,                                // ret             <- offset 18
      0xcc, 0xcc, 0xcc, 0xcc,              // int3 padding
  };
  auto r = FindReturns(elf::Machine::kAmd64, code, 0x1000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->ret_offsets, (std::vector<uint64_t>{10, 18}));
}

TEST(RetFinder, Arm64OnlyPlainRetReturnsToCaller) {
  const std::vector<uint8_t> code = {
      0xfd, 0x7b, 0xbf, 0xa9,  // stp x29, x30, [sp, #-16]!
      0xc0, 0x03, 0x5f, 0xd6,  // ret            <- offset 4
      0xa0, 0x00, 0x5f, 0xd6,  // ret x5: a Go 1.27 wrapper's tail call, not a return
      0xc0, 0x03, 0x5f, 0xd6,  // ret            <- offset 12
      0x00, 0x00, 0x00, 0x00,  // padding
  };
  auto r = FindReturns(elf::Machine::kArm64, code, 0x2000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->ret_offsets, (std::vector<uint64_t>{4, 12}));
}

TEST(RetFinder, X86UndecodableCodeIsAnError) {
  const std::vector<uint8_t> code = {0x90, 0x0f, 0x0b, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xc3};
  // 0f 0b = ud2 decodes; 0f ff is invalid and followed by non-padding bytes.
  auto r = FindReturns(elf::Machine::kAmd64, code, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kCorrupt);
}

}  // namespace
}  // namespace gotlscap::disasm
