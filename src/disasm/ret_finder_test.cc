// Return sites from real instruction encodings, including the traps a byte scan falls into.
#include "disasm/ret_finder.h"

#include <gtest/gtest.h>

namespace gotlscap::disasm {
namespace {

Disassembler Dis(elf::Machine m) { return std::move(Disassembler::Create(m)).value(); }

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
  auto r = Dis(elf::Machine::kAmd64).FindReturns(code, 0x1000);
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
  auto r = Dis(elf::Machine::kArm64).FindReturns(code, 0x2000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->ret_offsets, (std::vector<uint64_t>{4, 12}));
}

TEST(RetFinder, X86UndecodableCodeIsAnError) {
  const std::vector<uint8_t> code = {0x90, 0x0f, 0x0b, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xc3};
  // 0f 0b = ud2 decodes; 0f ff is invalid and followed by non-padding bytes.
  auto r = Dis(elf::Machine::kAmd64).FindReturns(code, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kCorrupt);
}

// Go's prologue: compare SP with the stack guard, branch to a block that calls morestack and
// jumps back to the entry. The body starts after the branch.
TEST(BodyStart, X86AfterTheStackCheck) {
  const std::vector<uint8_t> code = {
      0x49, 0x3b, 0x66, 0x10,        // 0: cmp 0x10(%r14),%rsp
      0x76, 0x05,                    // 4: jbe 0xb
      0x55,                          // 6: push %rbp       <- body
      0xc3,                          // 7: ret
      0x90, 0x90, 0x90,              // 8: nops
      0xe8, 0x00, 0x00, 0x00, 0x00,  // b: call (morestack)
      0xeb, 0xee,                    // 10: jmp 0 (the entry)
  };
  EXPECT_EQ(Dis(elf::Machine::kAmd64).FindBodyStart(code, 0x1000), 6u);
  // The same branch to a block that returns is not a stack check.
  auto no_check = code;
  no_check[0xb] = 0xc3;  // ret before the jump back
  EXPECT_EQ(Dis(elf::Machine::kAmd64).FindBodyStart(no_check, 0x1000), 0u);
}

TEST(BodyStart, Arm64AfterTheStackCheck) {
  const std::vector<uint8_t> code = {
      0x90, 0x0b, 0x40, 0xf9,  // 0: ldr x16, [x28, #16]
      0xff, 0x63, 0x30, 0xeb,  // 4: cmp sp, x16
      0xa9, 0x00, 0x00, 0x54,  // 8: b.ls 0x1c
      0xfe, 0x0f, 0x1f, 0xf8,  // c: str x30, [sp, #-16]!   <- body
      0xc0, 0x03, 0x5f, 0xd6,  // 10: ret
      0x1f, 0x20, 0x03, 0xd5,  // 14: nop
      0x1f, 0x20, 0x03, 0xd5,  // 18: nop
      0xe3, 0x03, 0x1e, 0xaa,  // 1c: mov x3, x30
      0x00, 0x00, 0x00, 0x94,  // 20: bl (morestack)
      0xf7, 0xff, 0xff, 0x17,  // 24: b 0 (the entry)
  };
  EXPECT_EQ(Dis(elf::Machine::kArm64).FindBodyStart(code, 0x2000), 0xcu);
}

}  // namespace
}  // namespace gotlscap::disasm
