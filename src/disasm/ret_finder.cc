#include "disasm/ret_finder.h"

#include <capstone/capstone.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>

namespace gotlscap::disasm {
namespace {

constexpr uint8_t kArm64Ret[4] = {0xc0, 0x03, 0x5f, 0xd6};  // RET X30

using InsnPtr = std::unique_ptr<cs_insn, void (*)(cs_insn*)>;
InsnPtr NewInsn(csh h) {
  return InsnPtr(cs_malloc(h), [](cs_insn* i) { cs_free(i, 1); });
}

bool OnlyPadding(std::span<const uint8_t> rest) {
  return std::all_of(rest.begin(), rest.end(), [](uint8_t b) { return b == 0xcc || b == 0x00; });
}

}  // namespace

Result<Disassembler> Disassembler::Create(elf::Machine machine) {
  const bool x86 = machine == elf::Machine::kAmd64;
  Disassembler d(x86);
  csh plain = 0, detailed = 0;
  if (cs_open(x86 ? CS_ARCH_X86 : CS_ARCH_ARM64, x86 ? CS_MODE_64 : CS_MODE_ARM, &plain) != CS_ERR_OK)
    return MakeError(ErrorKind::kInternal, "cannot initialise the Capstone disassembler");
  d.plain_ = plain;
  if (cs_open(x86 ? CS_ARCH_X86 : CS_ARCH_ARM64, x86 ? CS_MODE_64 : CS_MODE_ARM, &detailed) != CS_ERR_OK)
    return MakeError(ErrorKind::kInternal, "cannot initialise the Capstone disassembler");
  d.detailed_ = detailed;
  cs_option(detailed, CS_OPT_DETAIL, CS_OPT_ON);
  return d;
}

Disassembler::Disassembler(Disassembler&& o) noexcept : x86_(o.x86_), plain_(o.plain_), detailed_(o.detailed_) {
  o.plain_ = o.detailed_ = 0;
}

Disassembler::~Disassembler() {
  for (size_t h : {plain_, detailed_}) {
    csh c = h;
    if (c) cs_close(&c);
  }
}

Result<RetScan> Disassembler::FindReturns(std::span<const uint8_t> code, uint64_t entry) const {
  const bool x86 = x86_;
  const csh h = plain_;
  InsnPtr insn = NewInsn(h);

  RetScan out;
  const uint8_t* p = code.data();
  size_t left = code.size();
  uint64_t addr = entry;
  while (left > 0) {
    const uint8_t* before = p;
    if (cs_disasm_iter(h, &p, &left, &addr, insn.get())) {
      out.instructions++;
      bool is_ret = x86 ? insn->id == X86_INS_RET
                        : insn->id == ARM64_INS_RET && std::equal(kArm64Ret, kArm64Ret + 4, insn->bytes);
      if (is_ret) out.ret_offsets.push_back(insn->address - entry);
      continue;
    }
    std::span<const uint8_t> rest(before, left);
    if (OnlyPadding(rest)) break;
    if (x86)
      return MakeError(ErrorKind::kCorrupt,
                       fmt::format("undecodable instruction at {:#x} (function at {:#x})", addr, entry));
    // AArch64 is fixed-width: a word Capstone 4 does not know (some LSE atomics) is skipped.
    size_t skip = std::min<size_t>(4, left);
    p += skip;
    left -= skip;
    addr += skip;
  }
  return out;
}

uint64_t Disassembler::FindBodyStart(std::span<const uint8_t> code, uint64_t entry) const {
  const bool x86 = x86_;
  const csh h = detailed_;
  InsnPtr insn = NewInsn(h);

  // Target of a direct branch, and whether it is conditional.
  auto branch = [&](const cs_insn* i, uint64_t* target, bool* conditional) {
    if (x86) {
      if (!cs_insn_group(h, i, CS_GRP_JUMP) || i->detail->x86.op_count != 1 ||
          i->detail->x86.operands[0].type != X86_OP_IMM)
        return false;
      *target = static_cast<uint64_t>(i->detail->x86.operands[0].imm);
      *conditional = i->id != X86_INS_JMP;
      return true;
    }
    if (i->id != ARM64_INS_B || i->detail->arm64.op_count != 1 || i->detail->arm64.operands[0].type != ARM64_OP_IMM)
      return false;
    *target = static_cast<uint64_t>(i->detail->arm64.operands[0].imm);
    *conditional = i->detail->arm64.cc != ARM64_CC_INVALID && i->detail->arm64.cc != ARM64_CC_AL;
    return true;
  };
  // Does the block at `target` jump back to the entry within a few instructions?
  auto returns_to_entry = [&](uint64_t target) {
    if (target <= entry || target - entry >= code.size()) return false;
    const uint8_t* p = code.data() + (target - entry);
    size_t left = code.size() - (target - entry);
    uint64_t addr = target;
    // The block spills the register arguments, calls morestack, reloads them and jumps back:
    // up to ~40 instructions with 16 arguments on arm64. A return on the way means it is not it.
    for (int n = 0; n < 64 && cs_disasm_iter(h, &p, &left, &addr, insn.get()); n++) {
      if (cs_insn_group(h, insn.get(), CS_GRP_RET)) return false;
      uint64_t t;
      bool cond;
      if (branch(insn.get(), &t, &cond) && !cond) return t == entry;
    }
    return false;
  };

  // Functions with huge frames check twice (stackguard == StackPreempt, then the bound): take the
  // last check before the first call.
  uint64_t body = 0;
  const uint8_t* p = code.data();
  size_t left = code.size();
  uint64_t addr = entry;
  for (int n = 0; n < 16 && cs_disasm_iter(h, &p, &left, &addr, insn.get()); n++) {
    if (cs_insn_group(h, insn.get(), CS_GRP_CALL)) break;
    uint64_t target;
    bool cond;
    if (!branch(insn.get(), &target, &cond)) continue;
    if (!cond) break;
    const uint64_t next = insn->address + insn->size;  // returns_to_entry reuses `insn`
    if (returns_to_entry(target)) body = next - entry;
  }
  return body;
}

}  // namespace gotlscap::disasm
