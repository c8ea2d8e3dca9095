#include "packet/cbpf_to_ebpf.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gotlscap::packet {
namespace {

// Register plan. R6-R9 survive helper calls (R0-R5 do not), so the skb and the two classic
// registers live there; R0-R5 are scratch for the helper calls of packet loads.
constexpr uint8_t kSkb = BPF_REG_6;
constexpr uint8_t kA = BPF_REG_7;
constexpr uint8_t kX = BPF_REG_8;
// Stack: M[0..15] as 16 words at fp-64..fp-4, and an 8-byte landing slot for packet loads.
constexpr int16_t kMemOff = -64;
constexpr int16_t kLoadSlotOff = -72;
// A and X are kept zero-extended in their 64-bit registers (every write is a 32-bit ALU op or a
// zero-extending load), so 64-bit moves and compares of them are also correct.

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn Mov64Reg(uint8_t dst, uint8_t src) { return Insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn Mov64Imm(uint8_t dst, int32_t imm) { return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn Mov32Reg(uint8_t dst, uint8_t src) { return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
// 32-bit move: zero-extends, so K >= 2^31 does not become a negative 64-bit value.
bpf_insn Mov32Imm(uint8_t dst, uint32_t k) {
  return Insn(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, static_cast<int32_t>(k));
}
bpf_insn Alu32Imm(uint8_t op, uint8_t dst, uint32_t k) {
  return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, static_cast<int32_t>(k));
}
bpf_insn Alu32Reg(uint8_t op, uint8_t dst, uint8_t src) { return Insn(BPF_ALU | op | BPF_X, dst, src, 0, 0); }
bpf_insn Alu64Imm(uint8_t op, uint8_t dst, int32_t imm) { return Insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm); }
bpf_insn LdxMem(uint8_t size, uint8_t dst, uint8_t src, int16_t off) {
  return Insn(BPF_LDX | BPF_MEM | size, dst, src, off, 0);
}
bpf_insn StxMem(uint8_t size, uint8_t dst, uint8_t src, int16_t off) {
  return Insn(BPF_STX | BPF_MEM | size, dst, src, off, 0);
}
bpf_insn StMem(uint8_t size, uint8_t dst, int16_t off, int32_t imm) {
  return Insn(BPF_ST | BPF_MEM | size, dst, 0, off, imm);
}
bpf_insn Call(int32_t func) { return Insn(BPF_JMP | BPF_CALL, 0, 0, 0, func); }
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

int16_t MemSlot(uint32_t k) { return static_cast<int16_t>(kMemOff + 4 * static_cast<int>(k)); }

bool ValidOpcode(const sock_filter& f) {
  // Exactly the opcodes libpcap's interpreter and validator know (bpf_filter.c).
  switch (f.code) {
    case BPF_RET | BPF_K:
    case BPF_RET | BPF_A:
    case BPF_LD | BPF_W | BPF_ABS:
    case BPF_LD | BPF_H | BPF_ABS:
    case BPF_LD | BPF_B | BPF_ABS:
    case BPF_LD | BPF_W | BPF_LEN:
    case BPF_LDX | BPF_W | BPF_LEN:
    case BPF_LD | BPF_W | BPF_IND:
    case BPF_LD | BPF_H | BPF_IND:
    case BPF_LD | BPF_B | BPF_IND:
    case BPF_LDX | BPF_MSH | BPF_B:
    case BPF_LD | BPF_IMM:
    case BPF_LDX | BPF_IMM:
    case BPF_JMP | BPF_JA:
    case BPF_JMP | BPF_JGT | BPF_K:
    case BPF_JMP | BPF_JGE | BPF_K:
    case BPF_JMP | BPF_JEQ | BPF_K:
    case BPF_JMP | BPF_JSET | BPF_K:
    case BPF_JMP | BPF_JGT | BPF_X:
    case BPF_JMP | BPF_JGE | BPF_X:
    case BPF_JMP | BPF_JEQ | BPF_X:
    case BPF_JMP | BPF_JSET | BPF_X:
    case BPF_ALU | BPF_ADD | BPF_X:
    case BPF_ALU | BPF_SUB | BPF_X:
    case BPF_ALU | BPF_MUL | BPF_X:
    case BPF_ALU | BPF_DIV | BPF_X:
    case BPF_ALU | BPF_MOD | BPF_X:
    case BPF_ALU | BPF_AND | BPF_X:
    case BPF_ALU | BPF_OR | BPF_X:
    case BPF_ALU | BPF_XOR | BPF_X:
    case BPF_ALU | BPF_LSH | BPF_X:
    case BPF_ALU | BPF_RSH | BPF_X:
    case BPF_ALU | BPF_ADD | BPF_K:
    case BPF_ALU | BPF_SUB | BPF_K:
    case BPF_ALU | BPF_MUL | BPF_K:
    case BPF_ALU | BPF_AND | BPF_K:
    case BPF_ALU | BPF_OR | BPF_K:
    case BPF_ALU | BPF_XOR | BPF_K:
    case BPF_ALU | BPF_NEG:
    case BPF_MISC | BPF_TAX:
    case BPF_MISC | BPF_TXA:
      return true;
    case BPF_LD | BPF_MEM:
    case BPF_LDX | BPF_MEM:
    case BPF_ST:
    case BPF_STX:
      return f.k < BPF_MEMWORDS;
    case BPF_ALU | BPF_DIV | BPF_K:
    case BPF_ALU | BPF_MOD | BPF_K:
      return f.k != 0;
    case BPF_ALU | BPF_LSH | BPF_K:
    case BPF_ALU | BPF_RSH | BPF_K:
      return f.k < 32;  // the eBPF verifier refuses larger 32-bit shifts, libpcap's validator too
    default:
      return false;
  }
}

bool IsConditionalJump(uint16_t code) { return BPF_CLASS(code) == BPF_JMP && BPF_OP(code) != BPF_JA; }

Error Malformed(size_t pc, const std::string& why) {
  return MakeError(ErrorKind::kUsage, fmt::format("cannot translate the filter: instruction {}: {}", pc, why));
}

constexpr size_t kMaxInsns = 1000000;  // BPF_COMPLEXITY_LIMIT_INSNS: nothing longer could verify

// Where a jump goes: a classic instruction (its first eBPF instruction) or an epilogue block.
enum class Label { kNoMatch, kMatchCheck, kMatch, kUnspec, kCount };

class Translator {
 public:
  Translator(const std::vector<sock_filter>& cbpf, const CbpfEpilogue& epilogue) : in_(cbpf), epi_(epilogue) {}

  Result<std::vector<bpf_insn>> Run() {
    if (in_.empty()) return MakeError(ErrorKind::kUsage, "cannot translate the filter: empty program");
    // The kernel takes at most 4096 classic instructions (BPF_MAXINSNS) in a socket filter; an
    // eBPF program may be far longer, so the real limits are eBPF's 16-bit jump offsets (checked
    // below) and the verifier's.
    if (in_.size() > kMaxInsns)
      return MakeError(ErrorKind::kUsage,
                       fmt::format("cannot translate the filter: {} instructions (at most {})", in_.size(), kMaxInsns));
    if (epi_.mode == CbpfEpilogue::Mode::kTailCall && epi_.prog_array_fd < 0)
      return MakeError(ErrorKind::kInternal, "cannot translate the filter: tail call without a program array");
    if (auto err = Validate()) return *err;

    // Pass 1: emit, recording every jump whose target is not yet placed.
    Prologue();
    start_.assign(in_.size() + 1, 0);
    for (size_t pc = 0; pc < in_.size(); ++pc) {
      start_[pc] = out_.size();
      // Unreachable classic instructions are dropped: the verifier refuses unreachable code, and
      // nothing jumps to them (that is what unreachable means).
      if (reachable_[pc]) Emit(pc);
    }
    start_[in_.size()] = out_.size();
    Epilogue();
    // Pass 2: every target is placed now; patch the offsets.
    for (const Fixup& f : fixups_) {
      size_t target = f.to_label ? label_pos_[static_cast<int>(f.label)] : start_[f.cbpf_target];
      long off = static_cast<long>(target) - static_cast<long>(f.at) - 1;
      if (off < std::numeric_limits<int16_t>::min() || off > std::numeric_limits<int16_t>::max())
        return MakeError(ErrorKind::kUsage,
                         "cannot translate the filter: too large (a jump spans more than 32767 eBPF instructions)");
      out_[f.at].off = static_cast<int16_t>(off);
    }
    return std::move(out_);
  }

 private:
  struct Fixup {
    size_t at;
    bool to_label;
    Label label;
    size_t cbpf_target;
  };

  // Checks every instruction and marks the reachable ones. Jumps in classic BPF are relative to
  // the next instruction; jt/jf are unsigned (forward), JA's k is taken as signed as libpcap does.
  std::optional<Error> Validate() {
    reachable_.assign(in_.size(), false);
    for (size_t pc = 0; pc < in_.size(); ++pc) {
      const sock_filter& f = in_[pc];
      if (!ValidOpcode(f)) return Malformed(pc, fmt::format("bad opcode {:#x} (k = {})", f.code, f.k));
      int cls = BPF_CLASS(f.code);
      if ((cls == BPF_LD || cls == BPF_LDX) &&
          (BPF_MODE(f.code) == BPF_ABS || BPF_MODE(f.code) == BPF_IND || BPF_MODE(f.code) == BPF_MSH) &&
          static_cast<int32_t>(f.k) < 0)
        return Malformed(pc, fmt::format("load from negative offset {} (Linux ancillary data) is not supported",
                                         static_cast<int32_t>(f.k)));
      if (f.code == (BPF_JMP | BPF_JA)) {
        if (static_cast<int32_t>(f.k) < 0)
          return Malformed(pc, "backward jump (libpcap's \"protochain\") is not supported in the kernel");
        if (pc + 1 + f.k >= in_.size()) return Malformed(pc, "jump past the end of the program");
      } else if (IsConditionalJump(f.code)) {
        if (pc + 1 + f.jt >= in_.size() || pc + 1 + f.jf >= in_.size())
          return Malformed(pc, "jump past the end of the program");
      } else if (cls != BPF_RET && pc + 1 == in_.size()) {
        return Malformed(pc, "the program does not end with a return");
      }
    }
    // Every jump is forward, so one ascending sweep propagates reachability.
    reachable_[0] = true;
    for (size_t pc = 0; pc < in_.size(); ++pc) {
      if (!reachable_[pc]) continue;
      const sock_filter& f = in_[pc];
      if (BPF_CLASS(f.code) == BPF_RET) continue;
      if (f.code == (BPF_JMP | BPF_JA)) {
        reachable_[pc + 1 + f.k] = true;
      } else if (IsConditionalJump(f.code)) {
        reachable_[pc + 1 + f.jt] = true;
        reachable_[pc + 1 + f.jf] = true;
      } else {
        reachable_[pc + 1] = true;
      }
    }
    return std::nullopt;
  }

  void Add(bpf_insn i) { out_.push_back(i); }
  void JumpTo(bpf_insn i, Label label) {
    fixups_.push_back({out_.size(), true, label, 0});
    used_[static_cast<int>(label)] = true;
    out_.push_back(i);
  }
  void JumpToCbpf(bpf_insn i, size_t target) {
    fixups_.push_back({out_.size(), false, Label::kCount, target});
    out_.push_back(i);
  }
  void Place(Label label) { label_pos_[static_cast<int>(label)] = out_.size(); }
  bool Used(Label label) const { return used_[static_cast<int>(label)]; }
  bool TailCall() const { return epi_.mode == CbpfEpilogue::Mode::kTailCall; }

  void Prologue() {
    Add(Mov64Reg(kSkb, BPF_REG_1));
    Add(Mov32Imm(kA, 0));  // classic BPF starts with A = X = 0 and M[] = 0
    Add(Mov32Imm(kX, 0));
    // Zeroed, as libpcap's interpreter does; the verifier also refuses reads of unwritten stack.
    for (int i = 0; i < BPF_MEMWORDS / 2; ++i) Add(StMem(BPF_DW, BPF_REG_10, static_cast<int16_t>(kMemOff + 8 * i), 0));
  }

  // dst = big-endian `size`-byte value at packet offset R2, or "no match" when out of range.
  //
  // Why bpf_skb_load_bytes rather than direct packet access (skb->data .. data_end): direct
  // access needs a verifier-visible bounds check per load and sees only the linear part of the
  // skb, so bytes in paged fragments (large or GRO packets) would look out of range; the helper
  // reads any offset below skb->len. Why not eBPF's LD_ABS/LD_IND: on an out-of-range offset they
  // end the program with 0, which on TC is TC_ACT_OK, not our "no match" path with its epilogue.
  void LoadAtR2(uint8_t dst, int size_bytes) {
    Add(Mov64Reg(BPF_REG_1, kSkb));
    Add(Mov64Reg(BPF_REG_3, BPF_REG_10));
    Add(Alu64Imm(BPF_ADD, BPF_REG_3, kLoadSlotOff));
    Add(Mov64Imm(BPF_REG_4, size_bytes));
    Add(Call(BPF_FUNC_skb_load_bytes));
    // Classic BPF returns 0 when a load runs past the captured bytes.
    JumpTo(Insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 0, 0), Label::kNoMatch);
    uint8_t sz = size_bytes == 4 ? BPF_W : size_bytes == 2 ? BPF_H : BPF_B;
    Add(LdxMem(sz, dst, BPF_REG_10, kLoadSlotOff));
    // Classic loads are network byte order; BPF_END|BPF_TO_BE converts big-endian to host order
    // (a no-op on big-endian hosts) and truncates to the width, keeping dst zero-extended.
    if (size_bytes > 1) Add(Insn(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, size_bytes * 8));
  }

  static int SizeBytes(uint16_t code) {
    switch (BPF_SIZE(code)) {
      case BPF_W:
        return 4;
      case BPF_H:
        return 2;
      default:
        return 1;
    }
  }

  void EmitReturn(bool from_a, uint32_t k) {
    if (!TailCall()) {
      Add(from_a ? Mov32Reg(BPF_REG_0, kA) : Mov32Imm(BPF_REG_0, k));
      Add(Exit());
    } else if (from_a) {
      Add(Mov32Reg(BPF_REG_0, kA));
      JumpTo(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), Label::kMatchCheck);
    } else if (k != 0) {
      Add(Mov32Imm(BPF_REG_0, k));
      JumpTo(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), Label::kMatch);
    } else {
      JumpTo(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), Label::kUnspec);
    }
  }

  // Shift by X: eBPF masks the count (or leaves it undefined); classic BPF gives 0 from 32 up.
  void EmitShiftX(uint8_t op) {
    Add(Insn(BPF_JMP32 | BPF_JGT | BPF_K, kX, 0, 2, 31));  // to "A = 0"
    Add(Alu32Reg(op, kA, kX));
    Add(Insn(BPF_JMP | BPF_JA, 0, 0, 1, 0));  // over "A = 0"
    Add(Mov32Imm(kA, 0));
  }

  void EmitCondJump(size_t pc, const sock_filter& f) {
    size_t t = pc + 1 + f.jt, e = pc + 1 + f.jf;
    if (t == e) {
      if (f.jt != 0) JumpToCbpf(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), t);
      return;
    }
    bool x = BPF_SRC(f.code) == BPF_X;
    uint8_t op = BPF_OP(f.code);
    // 32-bit compares (JMP32): A, X and K are all 32-bit unsigned values, as in classic BPF.
    auto cmp = [&](uint8_t o) {
      return x ? Insn(BPF_JMP32 | o | BPF_X, kA, kX, 0, 0)
               : Insn(BPF_JMP32 | o | BPF_K, kA, 0, 0, static_cast<int32_t>(f.k));
    };
    if (f.jt == 0 && op != BPF_JSET) {  // fall through on true: one inverted jump (no JNSET exists)
      uint8_t inv = op == BPF_JEQ ? BPF_JNE : op == BPF_JGT ? BPF_JLE : BPF_JLT;  // JGE -> JLT
      JumpToCbpf(cmp(inv), e);
      return;
    }
    JumpToCbpf(cmp(op), t);
    if (f.jf != 0) JumpToCbpf(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), e);
  }

  void Emit(size_t pc) {
    const sock_filter& f = in_[pc];
    switch (BPF_CLASS(f.code)) {
      case BPF_LD:
        switch (BPF_MODE(f.code)) {
          case BPF_ABS:
            Add(Mov64Imm(BPF_REG_2, static_cast<int32_t>(f.k)));  // 0 <= k < 2^31 (Validate)
            LoadAtR2(kA, SizeBytes(f.code));
            return;
          case BPF_IND:
            // X + k in 64 bits: it cannot wrap as libpcap's 32-bit check guards against. The
            // helper takes a 32-bit offset, so anything beyond INT_MAX (which it refuses
            // anyway) must not reach it truncated.
            Add(Mov64Reg(BPF_REG_2, kX));
            Add(Alu64Imm(BPF_ADD, BPF_REG_2, static_cast<int32_t>(f.k)));
            JumpTo(Insn(BPF_JMP | BPF_JGT | BPF_K, BPF_REG_2, 0, 0, std::numeric_limits<int32_t>::max()),
                   Label::kNoMatch);
            LoadAtR2(kA, SizeBytes(f.code));
            return;
          case BPF_LEN:
            Add(LdxMem(BPF_W, kA, kSkb, offsetof(__sk_buff, len)));
            return;
          case BPF_IMM:
            Add(Mov32Imm(kA, f.k));
            return;
          case BPF_MEM:
            Add(LdxMem(BPF_W, kA, BPF_REG_10, MemSlot(f.k)));
            return;
        }
        return;
      case BPF_LDX:
        switch (BPF_MODE(f.code)) {
          case BPF_MSH:  // X = (P[k] & 0xf) << 2: the IPv4 header length
            Add(Mov64Imm(BPF_REG_2, static_cast<int32_t>(f.k)));
            LoadAtR2(kX, 1);
            Add(Alu32Imm(BPF_AND, kX, 0xf));
            Add(Alu32Imm(BPF_LSH, kX, 2));
            return;
          case BPF_LEN:
            Add(LdxMem(BPF_W, kX, kSkb, offsetof(__sk_buff, len)));
            return;
          case BPF_IMM:
            Add(Mov32Imm(kX, f.k));
            return;
          case BPF_MEM:
            Add(LdxMem(BPF_W, kX, BPF_REG_10, MemSlot(f.k)));
            return;
        }
        return;
      case BPF_ST:
        Add(StxMem(BPF_W, BPF_REG_10, kA, MemSlot(f.k)));
        return;
      case BPF_STX:
        Add(StxMem(BPF_W, BPF_REG_10, kX, MemSlot(f.k)));
        return;
      case BPF_ALU: {
        uint8_t op = BPF_OP(f.code);
        if (op == BPF_NEG) {
          Add(Insn(BPF_ALU | BPF_NEG, kA, 0, 0, 0));
          return;
        }
        if (BPF_SRC(f.code) == BPF_K) {
          Add(Alu32Imm(op, kA, f.k));  // DIV/MOD by 0 and shifts >= 32 were refused in Validate
          return;
        }
        if (op == BPF_LSH || op == BPF_RSH) {
          EmitShiftX(op);
          return;
        }
        if (op == BPF_DIV || op == BPF_MOD)  // classic BPF: division by zero ends with "no match"
          JumpTo(Insn(BPF_JMP32 | BPF_JEQ | BPF_K, kX, 0, 0, 0), Label::kNoMatch);
        Add(Alu32Reg(op, kA, kX));  // eBPF DIV/MOD with off = 0 are unsigned, as classic BPF's
        return;
      }
      case BPF_JMP:
        if (BPF_OP(f.code) == BPF_JA) {
          if (f.k != 0) JumpToCbpf(Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), pc + 1 + f.k);
        } else {
          EmitCondJump(pc, f);
        }
        return;
      case BPF_RET:
        EmitReturn(BPF_RVAL(f.code) == BPF_A, f.k);
        return;
      case BPF_MISC:
        Add(BPF_MISCOP(f.code) == BPF_TAX ? Mov32Reg(kX, kA) : Mov32Reg(kA, kX));
        return;
    }
  }

  // Blocks are emitted only when something jumps to them: the verifier refuses unreachable code.
  void Epilogue() {
    if (!TailCall()) {
      if (Used(Label::kNoMatch)) {
        Place(Label::kNoMatch);
        Add(Mov64Imm(BPF_REG_0, 0));
        Add(Exit());
      }
      return;
    }
    if (Used(Label::kMatchCheck)) {  // RET A: A == 0 is "no match"
      Place(Label::kMatchCheck);
      JumpTo(Insn(BPF_JMP32 | BPF_JEQ | BPF_K, BPF_REG_0, 0, 0, 0), Label::kUnspec);
    }
    if (Used(Label::kMatchCheck) || Used(Label::kMatch)) {
      Place(Label::kMatch);
      // The capture program needs the snap length the expression was compiled with; cb[] is
      // writable from SCHED_CLS and survives the tail call (it is the same skb).
      Add(StxMem(BPF_W, kSkb, BPF_REG_0, offsetof(__sk_buff, cb) + 4 * kSnapLenCbIndex));
      Add(Mov64Reg(BPF_REG_1, kSkb));
      Add(Insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2, BPF_PSEUDO_MAP_FD, 0, epi_.prog_array_fd));
      Add(Insn(0, 0, 0, 0, 0));  // second half of the 64-bit immediate
      Add(Mov64Imm(BPF_REG_3, 0));
      Add(Call(BPF_FUNC_tail_call));
      // Reached only when the tail call fails (empty slot, tail-call limit): let the packet pass.
    }
    Place(Label::kUnspec);
    Place(Label::kNoMatch);
    Add(Mov64Imm(BPF_REG_0, kTcActUnspec));
    Add(Exit());
  }

  const std::vector<sock_filter>& in_;
  CbpfEpilogue epi_;
  std::vector<bool> reachable_;
  std::vector<size_t> start_;  // first eBPF instruction of each classic one (+ one past the end)
  std::vector<bpf_insn> out_;
  std::vector<Fixup> fixups_;
  size_t label_pos_[static_cast<int>(Label::kCount)] = {};
  bool used_[static_cast<int>(Label::kCount)] = {};
};

// The verifier's log ends with its verdict, then statistics ("processed N insns ..."); the last
// line that is not a statistic says what was wrong.
std::string VerifierMessage(const char* log) {
  std::string_view all(log);
  std::string best;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    std::string_view line = all.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? all.size() : nl + 1;
    if (line.empty() || line.starts_with("processed ") || line.starts_with("verification time") ||
        line.starts_with("stack depth") || line.starts_with("-- "))
      continue;
    best = std::string(line);
  }
  return best;
}

}  // namespace

Result<std::vector<bpf_insn>> TranslateCbpf(const std::vector<sock_filter>& cbpf, const CbpfEpilogue& epilogue) {
  return Translator(cbpf, epilogue).Run();
}

Result<int> LoadFilterProgram(const std::vector<bpf_insn>& insns, const char* name) {
  // log_level 0 with a buffer: libbpf loads without a log and, only on failure, loads again with
  // log_level 1 to fill the buffer, so a good program costs no log.
  std::string log(256 * 1024, '\0');
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.log_buf = log.data();
  opts.log_size = static_cast<uint32_t>(log.size());
  opts.log_level = 0;
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns.data(), insns.size(), &opts);
  if (fd >= 0) return fd;
  int err = errno;
  // Only EPERM means missing privileges: the verifier itself reports many refusals as EACCES.
  if (err == EPERM) {
    return MakeError(ErrorKind::kPermission,
                     fmt::format("cannot load the packet filter: {} (needs root, or CAP_BPF and CAP_NET_ADMIN)",
                                 std::strerror(err)));
  }
  std::string msg = VerifierMessage(log.c_str());
  return MakeError(ErrorKind::kInternal, fmt::format("cannot load the packet filter: {}{}{}", std::strerror(err),
                                                     msg.empty() ? "" : ": verifier: ", msg));
}

}  // namespace gotlscap::packet
