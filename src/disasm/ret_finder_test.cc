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
std::vector<uint8_t> X86StackCheckedFunction() {
  return {
      0x49, 0x3b, 0x66, 0x10,        // 0: cmp 0x10(%r14),%rsp
      0x76, 0x05,                    // 4: jbe 0xb
      0x55,                          // 6: push %rbp       <- body
      0xc3,                          // 7: ret
      0x90, 0x90, 0x90,              // 8: nops
      0xe8, 0x00, 0x00, 0x00, 0x00,  // b: call (morestack)
      0xeb, 0xee,                    // 10: jmp 0 (the entry)
  };
}

TEST(BodyStart, X86AfterTheStackCheck) {
  const std::vector<uint8_t> code = X86StackCheckedFunction();
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

namespace gotlscap::disasm {
namespace {

// A Go 1.21+-shaped amd64 function: stack check, PUSH BP frame of 0x18 bytes, spills of AX/BX/CX
// to entry SP+8/16/24, a call, the epilogue; the morestack block re-stores the same registers.
std::vector<uint8_t> SpillingFunction(bool clobber_after_call) {
  std::vector<uint8_t> c = {
      0x49, 0x3b, 0x66, 0x10,        // 00 cmp rsp, [r14+0x10]
      0x76, 0x22,                    // 04 jbe 0x28
      0x55,                          // 06 push rbp
      0x48, 0x89, 0xe5,              // 07 mov rbp, rsp
      0x48, 0x83, 0xec, 0x10,        // 0a sub rsp, 0x10
      0x48, 0x89, 0x44, 0x24, 0x20,  // 0e mov [rsp+0x20], rax   (entry SP+8)
      0x48, 0x89, 0x5c, 0x24, 0x28,  // 13 mov [rsp+0x28], rbx   (entry SP+16)
      0x48, 0x89, 0x4c, 0x24, 0x30,  // 18 mov [rsp+0x30], rcx   (entry SP+24)
      0xe8, 0x00, 0x00, 0x00, 0x00,  // 1d call (next)
      0x48, 0x83, 0xc4, 0x10,        // 22 add rsp, 0x10
      0x5d,                          // 26 pop rbp
      0xc3,                          // 27 ret
      0x48, 0x89, 0x44, 0x24, 0x08,  // 28 mov [rsp+8], rax
      0x48, 0x89, 0x5c, 0x24, 0x10,  // 2d mov [rsp+0x10], rbx
      0x48, 0x89, 0x4c, 0x24, 0x18,  // 32 mov [rsp+0x18], rcx
      0xe8, 0x00, 0x00, 0x00, 0x00,  // 37 call (morestack)
      0xeb, 0xc2,                    // 3c jmp 0
      0xcc, 0xcc,
  };
  if (clobber_after_call) {
    const uint8_t store_rdx[5] = {0x48, 0x89, 0x54, 0x24, 0x28};  // mov [rsp+0x28], rdx: b.ptr's slot
    std::copy(store_rdx, store_rdx + 5, c.begin() + 0x1d);
  }
  return c;
}

TEST(ProveArgsAtReturns, X86SpillsBeforeAnyCallAreProven) {
  const auto code = SpillingFunction(false);
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, /*register_abi=*/true, 3, d.FindBodyStart(code, 0x1000));
  EXPECT_TRUE(p.proven) << p.text;
  EXPECT_NE(p.text.find("AX→8(SP) at +0xe, BX→16(SP) at +0x13, CX→24(SP) at +0x18"), std::string::npos) << p.text;
}

TEST(ProveArgsAtReturns, X86LaterStoreToASlotRefuses) {
  const auto code = SpillingFunction(true);
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, true, 3, d.FindBodyStart(code, 0x1000));
  EXPECT_FALSE(p.proven);
  EXPECT_NE(p.text.find("+0x1d"), std::string::npos) << p.text;
}

TEST(ProveArgsAtReturns, StackAbiStoreToAnArgumentRefuses) {
  // Stack ABI: the same code stores registers over the caller's argument words: refused.
  const auto code = SpillingFunction(false);
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, /*register_abi=*/false, 3, d.FindBodyStart(code, 0x1000));
  EXPECT_FALSE(p.proven) << p.text;
}

TEST(ProveArgsAtReturns, X86UnbalancedSpAtRetRefuses) {
  auto code = SpillingFunction(false);
  code[0x25] = 0x08;  // add rsp, 0x8: SP below its entry value at the RET
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, true, 3, d.FindBodyStart(code, 0x1000));
  EXPECT_FALSE(p.proven);
  EXPECT_NE(p.text.find("RET at +0x27"), std::string::npos) << p.text;
}

// Entry probes go on the stack check's JBE on amd64 (the kernel emulates it), after the check on
// arm64.
TEST(EntryProbe, X86OnTheStackCheckBranch) {
  const std::vector<uint8_t> code = X86StackCheckedFunction();
  auto d = Dis(elf::Machine::kAmd64);
  const auto probe = d.FindEntryProbe(code, 0x1000, d.FindBodyStart(code, 0x1000));
  EXPECT_EQ(probe.offset, 4u);
  EXPECT_TRUE(probe.at_check);
  // No check (NOSPLIT): the entry itself.
  const auto none = d.FindEntryProbe(code, 0x1000, 0);
  EXPECT_EQ(none.offset, 0u);
  EXPECT_FALSE(none.at_check);
}

// A function shaped like Go's Read under the register ABI (assembled from intel syntax):
//   0: cmp rsp,[r14+0x10]; jbe morestack; push rbp; mov rbp,rsp; sub rsp,0x20
//      spills of rax/rbx/rcx to entry SP+8/16/24; results stored to [rsp+8..0x18] after a call
//  47: call rdx  -> 49: mov rax/rbx/rcx,[rsp+8/0x10/0x18]; add rsp,0x20; pop rbp; 5d: ret
//  5e: call f    -> the same epilogue, 77: ret
//  78: call f; xor ebx,ebx (BX not from a slot: not an exit) ...; 89: ret
//  8a: morestack block, jmp 0
std::vector<uint8_t> DeferredExitFunction() {
  return {
      0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x80, 0x00, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83,
      0xec, 0x20, 0x48, 0x89, 0x44, 0x24, 0x30, 0x48, 0x89, 0x5c, 0x24, 0x38, 0x48, 0x89, 0x4c, 0x24,
      0x40, 0x48, 0xc7, 0x44, 0x24, 0x08, 0x00, 0x00, 0x00, 0x00, 0xe8, 0xd1, 0xff, 0xff, 0xff, 0x48,
      0x89, 0x44, 0x24, 0x08, 0x48, 0x89, 0x5c, 0x24, 0x10, 0x48, 0x89, 0x4c, 0x24, 0x18, 0x48, 0x85,
      0xc0, 0x75, 0x1b, 0x48, 0x8b, 0x14, 0x24, 0xff, 0xd2, 0x48, 0x8b, 0x44, 0x24, 0x08, 0x48, 0x8b,
      0x5c, 0x24, 0x10, 0x48, 0x8b, 0x4c, 0x24, 0x18, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3, 0xe8, 0x9d,
      0xff, 0xff, 0xff, 0x48, 0x8b, 0x44, 0x24, 0x08, 0x48, 0x8b, 0x5c, 0x24, 0x10, 0x48, 0x8b, 0x4c,
      0x24, 0x18, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3, 0xe8, 0x83, 0xff, 0xff, 0xff, 0x31, 0xdb, 0x48,
      0x8b, 0x44, 0x24, 0x08, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3, 0x48, 0x89, 0x44, 0x24, 0x08, 0x48,
      0x89, 0x5c, 0x24, 0x10, 0x48, 0x89, 0x4c, 0x24, 0x18, 0xe8, 0x62, 0xff, 0xff, 0xff, 0x48, 0x8b,
      0x44, 0x24, 0x08, 0x48, 0x8b, 0x5c, 0x24, 0x10, 0x48, 0x8b, 0x4c, 0x24, 0x18, 0xe9, 0x4e, 0xff,
      0xff, 0xff
  };
}

TEST(ProveArgsAtReturns, X86CallExitsAreFoundWithTheirResultSlots) {
  const auto code = DeferredExitFunction();
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, /*register_abi=*/true, 3, d.FindBodyStart(code, 0x1000));
  ASSERT_TRUE(p.proven) << p.text;
  ASSERT_EQ(p.call_exits.size(), 2u);
  const auto& indirect = p.call_exits[0];
  EXPECT_EQ(indirect.ret, 0x5du);
  EXPECT_EQ(indirect.call, 0x47u);
  EXPECT_EQ(indirect.after_call, 0x49u);
  EXPECT_FALSE(indirect.target.has_value());
  EXPECT_EQ(indirect.sp, -0x28);  // push rbp + sub 0x20
  EXPECT_EQ(indirect.ax, -0x20);  // [rsp+8] at SP = entry - 0x28
  EXPECT_EQ(indirect.bx, -0x18);
  EXPECT_EQ(indirect.cx, -0x10);
  const auto& direct = p.call_exits[1];
  EXPECT_EQ(direct.ret, 0x77u);
  EXPECT_EQ(direct.call, 0x5eu);
  EXPECT_EQ(direct.target, 0x1000u);
  EXPECT_EQ(direct.ax, -0x20);
}

TEST(ProveArgsAtReturns, X86AStoreInTheEpilogueIsNoCallExit) {
  auto code = DeferredExitFunction();
  // 0x4e: mov rbx,[rsp+0x10] -> mov [rsp+0x10],rbx (a store between the call and the RET).
  ASSERT_EQ(code[0x4f], 0x8b);
  code[0x4f] = 0x89;
  auto d = Dis(elf::Machine::kAmd64);
  ArgSlotsProof p = d.ProveArgsAtReturns(code, 0x1000, true, 3, d.FindBodyStart(code, 0x1000));
  ASSERT_TRUE(p.proven) << p.text;
  ASSERT_EQ(p.call_exits.size(), 1u);
  EXPECT_EQ(p.call_exits[0].ret, 0x77u);
}

}  // namespace
}  // namespace gotlscap::disasm
