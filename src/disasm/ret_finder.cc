#include "disasm/ret_finder.h"

#include <capstone/capstone.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

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

Disassembler::EntryProbe Disassembler::FindEntryProbe(std::span<const uint8_t> code, uint64_t entry,
                                                      uint64_t body_offset) const {
  if (!x86_ || body_offset == 0 || body_offset > code.size()) return {body_offset, false};
  InsnPtr insn = NewInsn(detailed_);
  const uint8_t* p = code.data();
  size_t left = body_offset;
  uint64_t addr = entry;
  while (cs_disasm_iter(detailed_, &p, &left, &addr, insn.get()))
    if (addr - entry == body_offset)
      return insn->id == X86_INS_JBE ? EntryProbe{insn->address - entry, true} : EntryProbe{body_offset, false};
  return {body_offset, false};
}

}  // namespace gotlscap::disasm

// ---- ProveArgsAtReturns ----------------------------------------------------------------------

namespace gotlscap::disasm {
namespace {

// What the proof needs to know of one instruction, whatever the architecture.
struct FrameInsn {
  uint64_t addr = 0;
  uint32_t size = 0;
  enum Flow { kNext, kRet, kCall, kJump, kCond, kStop, kIndirect } flow = kNext;
  uint64_t target = 0;     // kJump / kCond
  int64_t sp_change = 0;   // added to SP by this instruction
  bool sp_unknown = false; // writes SP in a way not understood
  struct Store {
    int64_t disp;   // from SP before the instruction
    uint32_t size;
    int reg = -1;   // argument register index stored (whole 8 bytes), -1 otherwise
    bool zero = false;  // stores zeros (immediate 0, XZR)
    bool x15 = false;   // stores amd64's X15: zeros under the register ABI (ABIInternal) only
  };
  std::vector<Store> sp_stores;      // stores addressed from SP
  std::vector<int64_t> sp_pointers;  // values SP + k copied into another register...
  int sp_pointer_reg = -1;           // ...namely this one (general register number)
  uint64_t gpr_reads = 0, gpr_writes = 0;  // general registers (bit = number) read / written
  bool compare = false;              // only compares its operands
  uint32_t clobbers = 0;             // argument registers (bit i) this instruction writes
  bool padding = false;              // INT3 / zero word between functions
  bool zeroes_result = false;        // sets the first result register (AX / R0) to 0
  std::optional<int64_t> loads_result;  // loads AX / R0 (8 bytes) from SP + this (SP before it)
  int load_reg = -1;                 // amd64: a general register (X86Gpr) loaded whole from SP + load_disp
  int64_t load_disp = 0;
  std::optional<uint64_t> rip_lea;   // amd64: LEA of this RIP-relative address
  std::string problem;               // non-empty: cannot be reasoned about
  std::string text;                  // "mnemonic operands"
};

constexpr uint32_t kAllArgRegs = 0xffffffffu;

// amd64 register ABI argument order: RAX RBX RCX RDI RSI R8 R9 R10 R11, with their sub-registers.
int X86ArgIndex(unsigned r) {
  switch (r) {
    case X86_REG_RAX: case X86_REG_EAX: case X86_REG_AX: case X86_REG_AL: case X86_REG_AH: return 0;
    case X86_REG_RBX: case X86_REG_EBX: case X86_REG_BX: case X86_REG_BL: case X86_REG_BH: return 1;
    case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: case X86_REG_CH: return 2;
    case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL: return 3;
    case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL: return 4;
    case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B: return 5;
    case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B: return 6;
    case X86_REG_R10: case X86_REG_R10D: case X86_REG_R10W: case X86_REG_R10B: return 7;
    case X86_REG_R11: case X86_REG_R11D: case X86_REG_R11W: case X86_REG_R11B: return 8;
    default: return -1;
  }
}
bool X86Is64(unsigned r) { return X86ArgIndex(r) >= 0 && (r == X86_REG_RAX || r == X86_REG_RBX || r == X86_REG_RCX ||
                                                        r == X86_REG_RDI || r == X86_REG_RSI || r == X86_REG_R8 ||
                                                        r == X86_REG_R9 || r == X86_REG_R10 || r == X86_REG_R11); }

// arm64: R0-R15 (X or W view).
int Arm64ArgIndex(unsigned r) {
  if (r >= ARM64_REG_X0 && r <= ARM64_REG_X28) return r - ARM64_REG_X0 < 16 ? int(r - ARM64_REG_X0) : -1;
  if (r >= ARM64_REG_W0 && r <= ARM64_REG_W30) return r - ARM64_REG_W0 < 16 ? int(r - ARM64_REG_W0) : -1;
  return -1;
}
// Bytes a register operand of a load/store moves.
uint32_t Arm64RegBytes(unsigned r) {
  if ((r >= ARM64_REG_X0 && r <= ARM64_REG_X28) || r == ARM64_REG_X29 || r == ARM64_REG_X30 || r == ARM64_REG_XZR)
    return 8;
  if ((r >= ARM64_REG_W0 && r <= ARM64_REG_W30) || r == ARM64_REG_WZR) return 4;
  if (r >= ARM64_REG_B0 && r < ARM64_REG_D0) return 1;
  if (r >= ARM64_REG_D0 && r < ARM64_REG_H0) return 8;
  if (r >= ARM64_REG_H0 && r < ARM64_REG_Q0) return 2;
  if (r >= ARM64_REG_Q0 && r < ARM64_REG_S0) return 16;
  if (r >= ARM64_REG_S0 && r < ARM64_REG_W0) return 4;
  return 64;  // unknown: as large as any store
}

bool IsSp(unsigned r) { return r == ARM64_REG_SP || r == ARM64_REG_WSP; }
// General register number (0-30) of Xn / Wn, -1 for others (SP, ZR, FP/SIMD).
int Arm64Gpr(unsigned r) {
  if (r >= ARM64_REG_X0 && r <= ARM64_REG_X28) return int(r - ARM64_REG_X0);
  if (r >= ARM64_REG_W0 && r <= ARM64_REG_W30) return int(r - ARM64_REG_W0);
  if (r == ARM64_REG_X29) return 29;
  if (r == ARM64_REG_X30) return 30;
  return -1;
}

// General register number (0-15) of any view of an amd64 register, -1 for others.
int X86Gpr(csh h, unsigned r) {
  static const char* kFamilies[16][5] = {
      {"rax", "eax", "ax", "al", "ah"},  {"rcx", "ecx", "cx", "cl", "ch"},  {"rdx", "edx", "dx", "dl", "dh"},
      {"rbx", "ebx", "bx", "bl", "bh"},  {"rsp", "esp", "sp", "spl", ""},   {"rbp", "ebp", "bp", "bpl", ""},
      {"rsi", "esi", "si", "sil", ""},   {"rdi", "edi", "di", "dil", ""},   {"r8", "r8d", "r8w", "r8b", ""},
      {"r9", "r9d", "r9w", "r9b", ""},   {"r10", "r10d", "r10w", "r10b", ""}, {"r11", "r11d", "r11w", "r11b", ""},
      {"r12", "r12d", "r12w", "r12b", ""}, {"r13", "r13d", "r13w", "r13b", ""}, {"r14", "r14d", "r14w", "r14b", ""},
      {"r15", "r15d", "r15w", "r15b", ""}};
  const char* name = cs_reg_name(h, r);
  if (!name) return -1;
  for (int i = 0; i < 16; i++)
    for (const char* n : kFamilies[i])
      if (*n && strcmp(n, name) == 0) return i;
  return -1;
}

void DecodeX86(csh h, const cs_insn* in, FrameInsn* f) {
  const cs_x86& x = in->detail->x86;
  const unsigned id = in->id;
  if (id == X86_INS_RET) {
    f->flow = FrameInsn::kRet;
    return;
  }
  if (cs_insn_group(h, in, CS_GRP_CALL)) {
    f->flow = FrameInsn::kCall;
    f->clobbers = kAllArgRegs;  // no callee-saved registers in Go's ABI
    if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM) f->target = static_cast<uint64_t>(x.operands[0].imm);
    return;
  }
  if (cs_insn_group(h, in, CS_GRP_JUMP)) {
    if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM) {
      f->flow = id == X86_INS_JMP ? FrameInsn::kJump : FrameInsn::kCond;
      f->target = static_cast<uint64_t>(x.operands[0].imm);
    } else {
      f->flow = FrameInsn::kIndirect;
    }
    return;
  }
  if (id == X86_INS_INT3 || id == X86_INS_UD2 || id == X86_INS_HLT) {
    f->flow = FrameInsn::kStop;
    f->padding = id == X86_INS_INT3;
    return;
  }
  if (id == X86_INS_NOP) return;
  // Registers written (explicit and implicit).
  cs_regs rd, wr;
  uint8_t nrd = 0, nwr = 0;
  bool writes_sp = false;
  if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) == CS_ERR_OK) {
    for (int i = 0; i < nrd; i++)
      if (int g = X86Gpr(h, rd[i]); g >= 0) f->gpr_reads |= 1ull << g;
    for (int i = 0; i < nwr; i++) {
      if (int g = X86Gpr(h, wr[i]); g >= 0) f->gpr_writes |= 1ull << g;
      if (wr[i] == X86_REG_RSP) writes_sp = true;
      int a = X86ArgIndex(wr[i]);
      if (a >= 0) f->clobbers |= 1u << a;
    }
  } else {
    f->problem = "registers not decodable";
    return;
  }
  // The first result register: zeroed (XOR AX, AX / MOV $0, AX), or loaded from a stack slot.
  if (x.op_count == 2 && x.operands[0].type == X86_OP_REG &&
      (x.operands[0].reg == X86_REG_EAX || x.operands[0].reg == X86_REG_RAX)) {
    const cs_x86_op& src = x.operands[1];
    if ((id == X86_INS_XOR && src.type == X86_OP_REG && src.reg == x.operands[0].reg) ||
        (id == X86_INS_MOV && src.type == X86_OP_IMM && src.imm == 0))
      f->zeroes_result = true;
    else if (id == X86_INS_MOV && x.operands[0].reg == X86_REG_RAX && src.type == X86_OP_MEM &&
             src.mem.base == X86_REG_RSP && src.mem.index == X86_REG_INVALID && src.size == 8)
      f->loads_result = src.mem.disp;
  }
  if (id == X86_INS_MOV && x.op_count == 2 && x.operands[0].type == X86_OP_REG && x.operands[1].type == X86_OP_MEM &&
      x.operands[1].mem.base == X86_REG_RSP && x.operands[1].mem.index == X86_REG_INVALID && x.operands[1].size == 8 &&
      X86Gpr(h, x.operands[0].reg) >= 0 && x.operands[0].size == 8) {
    f->load_reg = X86Gpr(h, x.operands[0].reg);
    f->load_disp = x.operands[1].mem.disp;
  }
  if (id == X86_INS_LEA && x.op_count == 2 && x.operands[1].type == X86_OP_MEM && x.operands[1].mem.base == X86_REG_RIP &&
      x.operands[1].mem.index == X86_REG_INVALID)
    f->rip_lea = in->address + in->size + x.operands[1].mem.disp;
  const bool is_add = id == X86_INS_ADD, is_sub = id == X86_INS_SUB;
  if (id == X86_INS_PUSH || id == X86_INS_PUSHFQ) {
    f->sp_change = -8;
    f->sp_stores.push_back({-8, 8, -1});
    if (x.op_count == 1 && x.operands[0].type == X86_OP_REG && x.operands[0].reg == X86_REG_RSP)
      f->problem = "pushes SP";
  } else if (id == X86_INS_POP || id == X86_INS_POPFQ) {
    f->sp_change = 8;
    if (x.op_count == 1 && x.operands[0].type == X86_OP_REG && x.operands[0].reg == X86_REG_RSP) f->sp_unknown = true;
  } else if ((is_add || is_sub) && x.op_count == 2 && x.operands[0].type == X86_OP_REG &&
             x.operands[0].reg == X86_REG_RSP && x.operands[1].type == X86_OP_IMM) {
    f->sp_change = is_add ? x.operands[1].imm : -x.operands[1].imm;
  } else if (writes_sp) {
    f->sp_unknown = true;
  }
  const bool reads_only = id == X86_INS_CMP || id == X86_INS_TEST || id == X86_INS_BT ||
                          (id >= X86_INS_PREFETCH && id <= X86_INS_PREFETCHT0);
  f->compare = id == X86_INS_CMP || id == X86_INS_TEST;
  for (int i = 0; i < x.op_count; i++) {
    const cs_x86_op& op = x.operands[i];
    if (op.type == X86_OP_REG && op.reg == X86_REG_RSP) {
      // SP as a value: fine as the operand of the SP arithmetic above or of a compare; copied
      // into another register it is a pointer into the stack.
      if (i == 0 && (is_add || is_sub)) continue;
      if (reads_only || id == X86_INS_PUSH || id == X86_INS_POP) continue;
      if (id == X86_INS_MOV && i == 1 && x.operands[0].type == X86_OP_REG) {
        f->sp_pointers.push_back(0);
        f->sp_pointer_reg = X86Gpr(h, x.operands[0].reg);
        continue;
      }
      f->problem = "uses SP as a value";
      continue;
    }
    if (op.type != X86_OP_MEM) continue;
    const x86_op_mem& m = op.mem;
    if (id == X86_INS_LEA) {
      if (m.base == X86_REG_RSP || m.index == X86_REG_RSP) {
        if (m.index != X86_REG_INVALID || m.base != X86_REG_RSP)
          f->problem = "computes an indexed stack address";
        else
          f->sp_pointers.push_back(m.disp), f->sp_pointer_reg = X86Gpr(h, x.operands[0].reg);
      } else if (m.base == X86_REG_RBP || m.index == X86_REG_RBP) {
        f->problem = "computes an address from the frame pointer";
      }
      continue;
    }
    const bool write = (i == 0 && !reads_only) || (op.access & CS_AC_WRITE);
    if (!write) continue;
    if (m.base == X86_REG_RSP || m.index == X86_REG_RSP) {
      if (m.index != X86_REG_INVALID || m.base != X86_REG_RSP) {
        f->problem = "stores to an indexed stack address";
        continue;
      }
      int reg = -1;
      if (id == X86_INS_MOV && x.op_count == 2 && x.operands[1].type == X86_OP_REG && X86Is64(x.operands[1].reg) &&
          op.size == 8)
        reg = X86ArgIndex(x.operands[1].reg);
      const bool zero = x.op_count == 2 && id == X86_INS_MOV && x.operands[1].type == X86_OP_IMM && x.operands[1].imm == 0;
      const bool x15 = x.op_count == 2 && (id == X86_INS_MOVUPS || id == X86_INS_MOVAPS || id == X86_INS_MOVDQU) &&
                       x.operands[1].type == X86_OP_REG && x.operands[1].reg == X86_REG_XMM15;
      f->sp_stores.push_back({m.disp, op.size ? op.size : 64u, reg, zero, x15});
    } else if (m.base == X86_REG_RBP || m.index == X86_REG_RBP) {
      f->problem = "stores through the frame pointer";
    }
  }
}

bool Arm64IsStore(unsigned id) {
  switch (id) {
    case ARM64_INS_STR: case ARM64_INS_STRB: case ARM64_INS_STRH: case ARM64_INS_STUR: case ARM64_INS_STURB:
    case ARM64_INS_STURH: case ARM64_INS_STP: case ARM64_INS_STNP: return true;
    default: return false;
  }
}
bool Arm64IsLoad(unsigned id) {
  switch (id) {
    case ARM64_INS_LDR: case ARM64_INS_LDRB: case ARM64_INS_LDRH: case ARM64_INS_LDRSB: case ARM64_INS_LDRSH:
    case ARM64_INS_LDRSW: case ARM64_INS_LDUR: case ARM64_INS_LDURB: case ARM64_INS_LDURH: case ARM64_INS_LDURSB:
    case ARM64_INS_LDURSH: case ARM64_INS_LDURSW: case ARM64_INS_LDP: case ARM64_INS_LDPSW: case ARM64_INS_LDNP:
    case ARM64_INS_PRFM: case ARM64_INS_PRFUM: return true;
    default: return false;
  }
}

int64_t Arm64Imm(const cs_arm64_op& op) {
  int64_t v = op.imm;
  if (op.shift.type == ARM64_SFT_LSL) v <<= op.shift.value;
  return v;
}

void DecodeArm64(const cs_insn* in, FrameInsn* f) {
  const cs_arm64& a = in->detail->arm64;
  const unsigned id = in->id;
  switch (id) {
    case ARM64_INS_RET:
      if (a.op_count == 0 || (a.operands[0].type == ARM64_OP_REG && a.operands[0].reg == ARM64_REG_X30))
        f->flow = FrameInsn::kRet;
      else
        f->flow = FrameInsn::kIndirect;  // RET Xn: a tail call
      return;
    case ARM64_INS_BL: case ARM64_INS_BLR:
      f->flow = FrameInsn::kCall;
      f->clobbers = kAllArgRegs;
      return;
    case ARM64_INS_BR:
      f->flow = FrameInsn::kIndirect;
      return;
    case ARM64_INS_B: case ARM64_INS_CBZ: case ARM64_INS_CBNZ: case ARM64_INS_TBZ: case ARM64_INS_TBNZ:
      if (a.op_count == 0 || a.operands[a.op_count - 1].type != ARM64_OP_IMM) {
        f->problem = "branch without a target";
        return;
      }
      f->target = static_cast<uint64_t>(a.operands[a.op_count - 1].imm);
      f->flow = id == ARM64_INS_B && (a.cc == ARM64_CC_INVALID || a.cc == ARM64_CC_AL) ? FrameInsn::kJump
                                                                                      : FrameInsn::kCond;
      return;
    case ARM64_INS_BRK: case ARM64_INS_HLT:
      f->flow = FrameInsn::kStop;
      return;
    case ARM64_INS_NOP:
      return;
    default:
      break;
  }
  const bool store = Arm64IsStore(id), load = Arm64IsLoad(id);
  const bool compare = id == ARM64_INS_CMP || id == ARM64_INS_CMN || id == ARM64_INS_TST;
  // The first result register: zeroed (MOVD ZR, R0 / MOVD $0, R0), or loaded from a stack slot.
  if (a.op_count == 2 && a.operands[0].type == ARM64_OP_REG &&
      (a.operands[0].reg == ARM64_REG_X0 || a.operands[0].reg == ARM64_REG_W0)) {
    const cs_arm64_op& src = a.operands[1];
    if (id == ARM64_INS_MOV && ((src.type == ARM64_OP_REG && (src.reg == ARM64_REG_XZR || src.reg == ARM64_REG_WZR)) ||
                                (src.type == ARM64_OP_IMM && src.imm == 0)))
      f->zeroes_result = true;
    else if ((id == ARM64_INS_LDR || id == ARM64_INS_LDUR) && a.operands[0].reg == ARM64_REG_X0 &&
             src.type == ARM64_OP_MEM && IsSp(src.mem.base) && src.mem.index == ARM64_REG_INVALID && !a.writeback)
      f->loads_result = src.mem.disp;
  }
  f->compare = compare;
  // Registers read: every register operand not only written, and memory bases and indexes.
  for (int i = 0; i < a.op_count; i++) {
    const cs_arm64_op& op = a.operands[i];
    if (op.type == ARM64_OP_REG && (i > 0 || store || compare || (op.access & CS_AC_READ)))
      if (int g = Arm64Gpr(op.reg); g >= 0) f->gpr_reads |= 1ull << g;
    if (op.type == ARM64_OP_MEM)
      for (unsigned r : {unsigned(op.mem.base), unsigned(op.mem.index)})
        if (int g = Arm64Gpr(r); g >= 0) f->gpr_reads |= 1ull << g;
  }
  // Registers written: what Capstone marks, and op[0] of anything but stores and compares (its
  // access flags are not complete); a load pair writes two.
  for (int i = 0; i < a.op_count; i++) {
    const cs_arm64_op& op = a.operands[i];
    if (op.type != ARM64_OP_REG) continue;
    // (Capstone 4 marks a compare's first operand as written: it writes only the flags.)
    const bool written = !compare && ((op.access & CS_AC_WRITE) || i == 0 ||
                                      (i == 1 && load && a.op_count >= 3 && a.operands[2].type == ARM64_OP_MEM));
    if (!written) continue;
    int idx = Arm64ArgIndex(op.reg);
    if (idx >= 0) f->clobbers |= 1u << idx;
    if (int g = Arm64Gpr(op.reg); g >= 0) f->gpr_writes |= 1ull << g;
    if (IsSp(op.reg)) {
      // ADD/SUB SP, SP, #imm is the only understood SP arithmetic.
      if ((id == ARM64_INS_ADD || id == ARM64_INS_SUB) && i == 0 && a.op_count == 3 && a.operands[1].type == ARM64_OP_REG &&
          IsSp(a.operands[1].reg) && a.operands[2].type == ARM64_OP_IMM)
        f->sp_change = id == ARM64_INS_ADD ? Arm64Imm(a.operands[2]) : -Arm64Imm(a.operands[2]);
      else
        f->sp_unknown = true;
    }
  }
  // SP read as a value (not as a base register).
  for (int i = 0; i < a.op_count; i++) {
    const cs_arm64_op& op = a.operands[i];
    if (op.type != ARM64_OP_REG || !IsSp(op.reg) || i == 0) continue;
    if (compare) continue;
    if (i == 1 && a.operands[0].type == ARM64_OP_REG && IsSp(a.operands[0].reg)) continue;  // SP arithmetic above
    if ((id == ARM64_INS_ADD || id == ARM64_INS_SUB) && a.op_count == 3 && a.operands[2].type == ARM64_OP_IMM) {
      f->sp_pointers.push_back(id == ARM64_INS_ADD ? Arm64Imm(a.operands[2]) : -Arm64Imm(a.operands[2]));
      f->sp_pointer_reg = Arm64Gpr(a.operands[0].reg);
    } else if (id == ARM64_INS_MOV && a.op_count == 2) {
      f->sp_pointers.push_back(0);
      f->sp_pointer_reg = Arm64Gpr(a.operands[0].reg);
    } else {
      f->problem = "uses SP as a value";
    }
  }
  for (int i = 0; i < a.op_count; i++) {
    const cs_arm64_op& op = a.operands[i];
    if (op.type != ARM64_OP_MEM) continue;
    const arm64_op_mem& m = op.mem;
    const bool sp_based = IsSp(m.base) || IsSp(m.index);
    const bool post_index = a.writeback && i + 1 < a.op_count && a.operands[i + 1].type == ARM64_OP_IMM;
    int64_t disp = post_index ? 0 : m.disp;
    if (sp_based && a.writeback) {
      if (!IsSp(m.base) || m.index != ARM64_REG_INVALID) {
        f->sp_unknown = true;
        continue;
      }
      f->sp_change = post_index ? a.operands[i + 1].imm : m.disp;
    } else if (!sp_based && a.writeback && m.base == ARM64_REG_X29) {
      f->problem = "changes the frame pointer by writeback";
    }
    if (load) continue;
    // A store, or an instruction not known to only read memory.
    if (sp_based) {
      if (m.index != ARM64_REG_INVALID || !IsSp(m.base)) {
        f->problem = "stores to an indexed stack address";
        continue;
      }
      auto is_zr = [&](int k) { return a.operands[k].type == ARM64_OP_REG && (a.operands[k].reg == ARM64_REG_XZR || a.operands[k].reg == ARM64_REG_WZR); };
      if (store && (id == ARM64_INS_STP || id == ARM64_INS_STNP) && i == 2) {
        const uint32_t sz = Arm64RegBytes(a.operands[0].reg);
        f->sp_stores.push_back({disp, sz, sz == 8 ? Arm64ArgIndex(a.operands[0].reg) : -1, is_zr(0)});
        f->sp_stores.push_back({disp + sz, sz, sz == 8 ? Arm64ArgIndex(a.operands[1].reg) : -1, is_zr(1)});
      } else if (store && (id == ARM64_INS_STR || id == ARM64_INS_STUR) && i == 1) {
        const uint32_t sz = Arm64RegBytes(a.operands[0].reg);
        f->sp_stores.push_back({disp, sz, sz == 8 ? Arm64ArgIndex(a.operands[0].reg) : -1, is_zr(0)});
      } else if (store && (id == ARM64_INS_STRB || id == ARM64_INS_STURB)) {
        f->sp_stores.push_back({disp, 1, -1});
      } else if (store && (id == ARM64_INS_STRH || id == ARM64_INS_STURH)) {
        f->sp_stores.push_back({disp, 2, -1});
      } else {
        f->sp_stores.push_back({disp, 64, -1});
      }
    } else if (m.base == ARM64_REG_X29 && !load) {
      f->problem = "stores through the frame pointer";
    }
  }
}

// A word Capstone 4 does not decode (some LSE atomics): acceptable only as a load/store whose
// base register is not SP (the class and Rn field are the same in every load/store encoding).
void DecodeArm64Unknown(uint32_t w, FrameInsn* f) {
  f->text = fmt::format(".word {:#010x}", w);
  f->padding = w == 0;
  const bool load_store = (w & 0x0a000000u) == 0x08000000u;
  const unsigned rn = (w >> 5) & 31;
  if (!load_store || rn == 31) {
    f->problem = "undecodable instruction";
    return;
  }
  for (unsigned r : {w & 31, (w >> 16) & 31, (w >> 10) & 31}) {  // Rt, Rs, Rt2: any may be written
    if (r < 16) f->clobbers |= 1u << r;
    if (r < 31) f->gpr_writes |= 1ull << r, f->gpr_reads |= 1ull << r;
  }
  f->gpr_reads |= 1ull << rn;
}

// RETs at which the first integer result (Read's byte count) is provably 0, so a probe there
// could never capture data. Walking back from the RET through straight-line code that no branch
// enters:
//  - register ABI: either the last write to AX/R0 zeroes it, or it loads it from a frame slot
//    whose last store (further back on the same straight line) stored zeros;
//  - stack ABI (stack_result: the result's slot, from the entry SP): the last store to that slot
//    stored zeros.
// Calls between that store and the RET cannot change the slot: the function derives no pointer
// that could reach it (Go is memory safe: a pointer into the function's own frame stays below
// the return address; one into the caller's argument area was refused by the proof unless only
// compared, like arm64 Go 1.15's stack-bound check).
// The frame pointer (BP / R29) is not such a pointer: it is only saved and restored, and the
// proof already refused any store through it.
std::vector<size_t> ZeroResultRets(const std::vector<FrameInsn>& insns, const std::map<uint64_t, size_t>& at,
                                   const std::vector<std::optional<int64_t>>& delta, bool x86,
                                   std::optional<int64_t> stack_result) {
  const int frame_pointer = x86 ? 5 : 29;  // RBP (X86Gpr numbering) / X29
  std::set<size_t> targets;
  std::vector<int64_t> pointers;  // frame addresses (from the entry SP) derived from SP anywhere
  for (size_t i = 0; i < insns.size(); i++) {
    if (!delta[i]) continue;
    const FrameInsn& f = insns[i];
    if (f.flow == FrameInsn::kJump || f.flow == FrameInsn::kCond)
      if (auto t = at.find(f.target); t != at.end()) targets.insert(t->second);
    if (f.sp_pointer_reg == frame_pointer) continue;
    for (int64_t k : f.sp_pointers) pointers.push_back(*delta[i] + k);
  }
  auto reachable = [&](int64_t slot) {
    // A slot in the caller's argument area (>= 0) is out of reach: the proof refused every SP
    // pointer there that is used for more than a compare.
    return slot < 0 && std::any_of(pointers.begin(), pointers.end(), [&](int64_t p) { return p <= slot; });
  };
  std::vector<size_t> out;
  for (size_t r = 0; r < insns.size(); r++) {
    if (insns[r].flow != FrameInsn::kRet || !delta[r]) continue;
    std::optional<int64_t> slot = stack_result;  // the result's frame slot (offset from the entry SP)
    bool zero = false;
    for (size_t cur = r, steps = 0; steps < 64 && cur > 0 && !targets.count(cur); steps++) {
      const size_t prev = cur - 1;
      const FrameInsn& f = insns[prev];
      const bool falls_through = f.flow == FrameInsn::kNext || f.flow == FrameInsn::kCall || f.flow == FrameInsn::kCond;
      if (!delta[prev] || !falls_through || !f.problem.empty()) break;
      cur = prev;
      if (!slot) {
        if (f.flow == FrameInsn::kCall) break;  // a call leaves anything in AX/R0
        if (f.zeroes_result) {
          zero = true;
          break;
        }
        if (f.loads_result) slot = *delta[prev] + *f.loads_result;
        else if (f.gpr_writes & 1) break;
        continue;
      }
      const auto hit = std::find_if(f.sp_stores.begin(), f.sp_stores.end(), [&](const FrameInsn::Store& s) {
        const int64_t abs = *delta[prev] + s.disp;
        return abs < *slot + 8 && abs + int64_t(s.size) > *slot;
      });
      if (hit == f.sp_stores.end()) continue;
      const int64_t abs = *delta[prev] + hit->disp;
      const bool zeros = hit->zero || (hit->x15 && !stack_result);
      zero = zeros && abs <= *slot && abs + int64_t(hit->size) >= *slot + 8;
      break;
    }
    if (zero && slot && reachable(*slot)) zero = false;
    if (zero) out.push_back(r);
  }
  return out;
}

// amd64: RETs whose straight line back (nothing branches into it) is an epilogue -- loads of
// whole registers from frame slots, SP arithmetic, POP BP, NOPs; no store, no other write -- and
// then a call. The call's return lands on that epilogue, so whatever the epilogue loads is in its
// slots during the call: the callee cannot change them. Go is memory safe: a pointer into the
// frame that the function hands out (the deferred closure's funcval) reaches only its own object,
// and a value whose address escapes lives on the heap, not in a slot; the stack ABI's result slots
// are in the caller's frame, which the proof shows no pointer reaches.
std::vector<ArgSlotsProof::CallExit> CallExits(const std::vector<FrameInsn>& insns, const std::map<uint64_t, size_t>& at,
                                               const std::vector<std::optional<int64_t>>& delta, uint64_t entry) {
  constexpr int kAx = 0, kCx = 1, kBx = 3, kSp = 4, kBp = 5;  // X86Gpr numbers
  constexpr uint64_t kAllowed = 1ull << kAx | 1ull << kCx | 1ull << kBx | 1ull << kSp | 1ull << kBp;
  std::set<size_t> targets;
  for (const FrameInsn& f : insns)
    if (f.flow == FrameInsn::kJump || f.flow == FrameInsn::kCond)
      if (auto t = at.find(f.target); t != at.end()) targets.insert(t->second);
  std::vector<ArgSlotsProof::CallExit> out;
  for (size_t r = 0; r < insns.size(); r++) {
    if (insns[r].flow != FrameInsn::kRet || !delta[r]) continue;
    ArgSlotsProof::CallExit e;
    e.ret = insns[r].addr - entry;
    bool found = false, readable = true;
    for (size_t cur = r, steps = 0; readable && steps < 16 && cur > 0 && !targets.count(cur); steps++) {
      const FrameInsn& f = insns[--cur];
      if (!delta[cur]) break;
      if (f.flow == FrameInsn::kCall) {
        e.call = f.addr - entry;
        e.after_call = f.addr + f.size - entry;
        if (f.target) e.target = f.target;
        e.sp = *delta[cur];
        found = true;
        break;
      }
      const bool plain = f.flow == FrameInsn::kNext && f.problem.empty() && f.sp_stores.empty() &&
                         f.sp_pointers.empty() && !f.sp_unknown && !f.rip_lea && (f.gpr_writes & ~kAllowed) == 0;
      if (!plain) break;
      // Walking back, the first write of a result register is its last before the RET; one not
      // loaded from a slot (XORL BX, BX) makes the exit unreadable at the call.
      for (auto [reg, slot] : {std::pair{kAx, &e.ax}, {kBx, &e.bx}, {kCx, &e.cx}}) {
        if (!(f.gpr_writes >> reg & 1) || slot->has_value()) continue;
        if (f.load_reg != reg) readable = false;
        else *slot = *delta[cur] + f.load_disp;
      }
    }
    if (found && readable) out.push_back(e);
  }
  return out;
}

}  // namespace

ArgSlotsProof Disassembler::ProveArgsAtReturns(std::span<const uint8_t> code, uint64_t entry, bool register_abi,
                                               int nwords, uint64_t body_offset, int result_word) const {
  const bool x86 = x86_;
  const csh h = detailed_;
  InsnPtr insn = NewInsn(h);
  auto refuse = [](std::string why) { return ArgSlotsProof{false, std::move(why)}; };
  auto hex = [&](uint64_t addr) { return fmt::format("+{:#x}", addr - entry); };
  static const char* kAmd64Names[] = {"AX", "BX", "CX", "DI", "SI", "R8", "R9", "R10", "R11"};
  auto reg_name = [&](int i) { return x86 ? std::string(kAmd64Names[i]) : fmt::format("R{}", i); };
  const char* sp_name = x86 ? "SP" : "RSP";
  if (nwords < 1 || nwords > 8) return refuse("bad argument count");

  // Decode every instruction of the function (linear sweep: Go puts no data in function text).
  std::vector<FrameInsn> insns;
  std::map<uint64_t, size_t> at;
  {
    const uint8_t* p = code.data();
    size_t left = code.size();
    uint64_t addr = entry;
    while (left > 0) {
      FrameInsn f;
      f.addr = addr;
      const uint8_t* before = p;
      if (cs_disasm_iter(h, &p, &left, &addr, insn.get())) {
        f.size = insn->size;
        f.text = fmt::format("{} {}", insn->mnemonic, insn->op_str);
        if (x86)
          DecodeX86(h, insn.get(), &f);
        else
          DecodeArm64(insn.get(), &f);
      } else if (!x86 && left >= 4) {
        uint32_t w;
        memcpy(&w, before, 4);
        DecodeArm64Unknown(w, &f);
        f.size = 4;
        p += 4;
        left -= 4;
        addr += 4;
      } else {
        break;  // x86 padding or garbage: unreachable code only may follow (checked below)
      }
      at[f.addr] = insns.size();
      insns.push_back(std::move(f));
    }
  }
  if (insns.empty()) return refuse("no instructions");

  // 1. SP offset (from its entry value) at each reachable instruction.
  std::vector<std::optional<int64_t>> delta(insns.size());
  std::vector<size_t> work = {0};
  delta[0] = 0;
  auto reach = [&](uint64_t target, int64_t d, const FrameInsn& from) -> std::string {
    auto it = at.find(target);
    if (it == at.end()) return fmt::format("{} {} branches to {}, not an instruction of the function", hex(from.addr),
                                           from.text, hex(target));
    if (delta[it->second] && *delta[it->second] != d)
      return fmt::format("{} is reached with two SP offsets ({} and {})", hex(target), *delta[it->second], d);
    if (!delta[it->second]) {
      delta[it->second] = d;
      work.push_back(it->second);
    }
    return "";
  };
  const uint64_t slots_lo = 8, slots_hi = 8 + 8 * static_cast<uint64_t>(nwords);
  struct SlotStore {
    size_t insn;
    int64_t abs;
    uint32_t size;
    int reg;
  };
  std::vector<SlotStore> slot_stores;
  auto in_slots = [&](int64_t abs, uint32_t size) {
    return abs < static_cast<int64_t>(slots_hi) && abs + static_cast<int64_t>(size) > static_cast<int64_t>(slots_lo);
  };
  // A pointer at or above the entry SP is harmless if, on every path, the register holding it is
  // only compared (Go's stack-bound check on arm64 1.15: MOVD RSP, R2; CMP R1, R2) before it is
  // overwritten or a call ends its life (Go keeps no register live across a call).
  auto pointer_unused = [&](size_t from, int reg) {
    if (reg < 0) return false;
    std::vector<size_t> todo = {from + 1};
    std::set<size_t> seen;
    if (insns[from].flow == FrameInsn::kJump || insns[from].flow == FrameInsn::kCond) {
      auto t = at.find(insns[from].target);
      if (t == at.end()) return false;
      todo.push_back(t->second);
      if (insns[from].flow == FrameInsn::kJump) todo.erase(todo.begin());
    }
    while (!todo.empty()) {
      const size_t j = todo.back();
      todo.pop_back();
      if (j >= insns.size() || seen.size() > 64) return false;
      if (!seen.insert(j).second) continue;
      const FrameInsn& g = insns[j];
      const bool reads = g.gpr_reads >> reg & 1;
      if (reads && !g.compare) return false;
      if (g.flow == FrameInsn::kCall || g.flow == FrameInsn::kRet || g.flow == FrameInsn::kStop) continue;
      if (g.flow == FrameInsn::kIndirect || !g.problem.empty()) return false;
      if ((g.gpr_writes >> reg & 1) && !reads) continue;
      if (g.flow != FrameInsn::kJump) todo.push_back(j + 1);
      if (g.flow == FrameInsn::kJump || g.flow == FrameInsn::kCond) {
        auto t = at.find(g.target);
        if (t == at.end()) return false;
        todo.push_back(t->second);
      }
    }
    return true;
  };
  size_t runtime_entries = 0;  // code only the runtime enters (deferreturn after a recovery)
  for (;;) {
  while (!work.empty()) {
    const size_t i = work.back();
    work.pop_back();
    const FrameInsn& f = insns[i];
    const int64_t d = *delta[i];
    if (!f.problem.empty()) return refuse(fmt::format("{} {}: {}", hex(f.addr), f.text, f.problem));
    if (f.flow == FrameInsn::kIndirect) return refuse(fmt::format("{} {}: indirect jump", hex(f.addr), f.text));
    if (f.sp_unknown) return refuse(fmt::format("{} {}: changes SP in a way not understood", hex(f.addr), f.text));
    if (d > 0) return refuse(fmt::format("{} {}: SP above its entry value", hex(f.addr), f.text));
    for (const auto& s : f.sp_stores) {
      const int64_t abs = d + s.disp;
      if (in_slots(abs, s.size)) slot_stores.push_back({i, abs, s.size, s.reg});
    }
    for (int64_t k : f.sp_pointers)
      if (d + k >= 0 && !pointer_unused(i, f.sp_pointer_reg))
        return refuse(fmt::format("{} {}: takes the address of entry {}{:+d}, in the caller's frame", hex(f.addr), f.text,
                                  sp_name, d + k));
    const int64_t after = d + f.sp_change;
    if (f.flow == FrameInsn::kRet) {
      if (d != 0) return refuse(fmt::format("RET at {} with SP at entry{:+d}", hex(f.addr), d));
      continue;
    }
    if (f.flow == FrameInsn::kStop) continue;
    if (f.flow == FrameInsn::kJump || f.flow == FrameInsn::kCond)
      if (auto e = reach(f.target, after, f); !e.empty()) return refuse(e);
    if (f.flow != FrameInsn::kJump) {
      if (i + 1 >= insns.size())
        return refuse(fmt::format("{} {}: execution runs past the decoded code", hex(f.addr), f.text));
      if (auto e = reach(insns[i + 1].addr, after, f); !e.empty()) return refuse(e);
    }
  }
  // Code no branch reaches, after a RET or jump: Go's deferreturn block, where the runtime resumes a
  // frame whose deferred call recovered a panic, with SP at the body's value (that of the first
  // call after the prologue). Analysed from there, like the rest.
  std::optional<int64_t> body_delta;
  for (size_t i = 0; i < insns.size() && !body_delta; i++)
    if (insns[i].flow == FrameInsn::kCall && insns[i].addr - entry >= body_offset && delta[i]) body_delta = delta[i];
  size_t seed = insns.size();
  for (size_t i = 1; i < insns.size() && seed == insns.size(); i++)
    if (!delta[i] && !insns[i].padding && delta[i - 1] &&
        (insns[i - 1].flow == FrameInsn::kRet || insns[i - 1].flow == FrameInsn::kJump ||
         insns[i - 1].flow == FrameInsn::kStop))
      seed = i;
  if (seed == insns.size()) break;
  if (!body_delta) return refuse(fmt::format("{}: unreached code and no call to tell the body's SP", hex(insns[seed].addr)));
  delta[seed] = *body_delta;
  work.push_back(seed);
  runtime_entries++;
  }
  for (size_t i = 0; i < insns.size(); i++)
    if (insns[i].flow == FrameInsn::kRet && !delta[i]) return refuse(fmt::format("RET at {} not analysed", hex(insns[i].addr)));
  size_t rets = 0;
  for (size_t i = 0; i < insns.size(); i++)
    if (insns[i].flow == FrameInsn::kRet && delta[i]) rets++;
  if (rets == 0) return refuse("no reachable RET");

  // 3. Value-preserving stores: straight lines from the entry (and from the stack-bound check's
  // morestack block) where the argument registers still hold the arguments.
  std::set<size_t> preserving;  // indexes of instructions whose slot stores store the arguments
  std::vector<uint64_t> spilled(nwords, 0);
  std::vector<bool> have(nwords, false);
  uint64_t morestack = 0;
  uint32_t clobbered_at_check = 0;
  {
    uint32_t clobbered = 0;
    size_t i = 0;
    for (; i < insns.size(); i++) {
      const FrameInsn& f = insns[i];
      // The stack-bound check: the last conditional branch before the body.
      if (f.flow == FrameInsn::kCond && f.addr - entry < body_offset && (!morestack || f.target == morestack)) {
        if (!morestack) clobbered_at_check = clobbered;
        morestack = f.target;
        continue;
      }
      if (f.flow != FrameInsn::kNext) break;
      bool all = true;
      for (const auto& s : f.sp_stores)
        if (s.reg >= 0 && s.reg < nwords && !(clobbered >> s.reg & 1) && *delta[i] + s.disp == int64_t(8 + 8 * s.reg)) {
          if (!have[s.reg]) spilled[s.reg] = f.addr;
          have[s.reg] = true;
        } else if (in_slots(*delta[i] + s.disp, s.size)) {
          all = false;
        }
      if (all && !f.sp_stores.empty() && register_abi) preserving.insert(i);
      clobbered |= f.clobbers;
    }
    if (!register_abi) have.assign(nwords, false);
  }
  if (morestack) {
    // The morestack block: straight to a jump back to the entry.
    auto it = at.find(morestack);
    if (it == at.end()) return refuse("stack-bound check branches outside the function");
    uint32_t clobbered = clobbered_at_check;
    size_t i = it->second;
    for (; i < insns.size(); i++) {
      const FrameInsn& f = insns[i];
      if (f.flow == FrameInsn::kJump) break;
      if (f.flow != FrameInsn::kNext && f.flow != FrameInsn::kCall)
        return refuse(fmt::format("morestack block: {} {} before the jump back to the entry", hex(f.addr), f.text));
      bool all = true;
      for (const auto& s : f.sp_stores)
        if (!(s.reg >= 0 && s.reg < nwords && !(clobbered >> s.reg & 1) && *delta[i] + s.disp == int64_t(8 + 8 * s.reg)) &&
            in_slots(*delta[i] + s.disp, s.size))
          all = false;
      if (all && !f.sp_stores.empty() && register_abi) preserving.insert(i);
      clobbered |= f.clobbers;
    }
    if (i >= insns.size() || insns[i].target != entry)
      return refuse("the stack-bound check's block does not jump back to the entry");
  }
  // Nothing may branch into the entry line after the entry: its stores must dominate every RET.
  uint64_t last_spill = 0;
  for (int r = 0; r < nwords; r++) last_spill = std::max(last_spill, spilled[r]);
  for (const auto& f : insns) {
    if ((f.flow == FrameInsn::kJump || f.flow == FrameInsn::kCond) && f.target > entry && f.target <= last_spill &&
        f.target != morestack)
      return refuse(fmt::format("{} branches into the entry block at {}", hex(f.addr), hex(f.target)));
  }

  // 2. Every store to the slots is one of those.
  for (const auto& s : slot_stores) {
    if (preserving.count(s.insn)) continue;
    const FrameInsn& f = insns[s.insn];
    return refuse(fmt::format("{} {} stores to entry {}{:+d} ({} bytes), an argument slot", hex(f.addr), f.text, sp_name,
                              s.abs, s.size));
  }
  auto AddCallExits = [&](ArgSlotsProof& proof) {
    if (!x86) return;
    proof.call_exits = CallExits(insns, at, delta, entry);
    for (const FrameInsn& f : insns)
      if (f.rip_lea) proof.lea_targets.push_back(*f.rip_lea);
  };
  std::string rets_text = fmt::format("SP back at its entry value at all {} RETs{}", rets,
                                      runtime_entries ? " (deferreturn block included, entered with the body's SP)" : "");
  if (!register_abi) {
    ArgSlotsProof proof{true, fmt::format("stack ABI: arguments at {}({})..{}({}) from the caller; {}; no store to "
                                          "those slots and no pointer to them",
                                          slots_lo, sp_name, slots_hi - 8, sp_name, rets_text)};
    if (result_word >= 0)
      for (size_t r : ZeroResultRets(insns, at, delta, x86, 8 + 8 * int64_t(result_word)))
        proof.zero_result_rets.push_back(insns[r].addr - entry);
    AddCallExits(proof);
    return proof;
  }
  std::string spills;
  for (int r = 0; r < nwords; r++) {
    if (!have[r])
      return refuse(fmt::format("{} is not stored to {}({}) before the first branch or call", reg_name(r), 8 + 8 * r,
                                sp_name));
    spills += fmt::format("{}{}→{}({}) at {}", r ? ", " : "", reg_name(r), 8 + 8 * r, sp_name, hex(spilled[r]));
  }
  const size_t extra = slot_stores.size() - static_cast<size_t>(nwords);
  ArgSlotsProof proof{
      true, fmt::format("spills {} (SP at entry) before any branch or call; {}; no other store to those slots{} and no "
                        "pointer to them",
                        spills, rets_text,
                        extra ? fmt::format(" (the morestack path stores the same registers: {} stores)", extra) : "")};
  for (size_t r : ZeroResultRets(insns, at, delta, x86, std::nullopt))
    proof.zero_result_rets.push_back(insns[r].addr - entry);
  AddCallExits(proof);
  return proof;
}

}  // namespace gotlscap::disasm
