// Finds every return instruction of a function by disassembling it with Capstone (x86-64 or
// AArch64, chosen from the target ELF, never from the host). Uprobes on these sites replace
// uretprobes, which corrupt Go's moving stacks. A byte scan for 0xC3 is wrong: the byte appears
// inside other x86 instructions (ModRM, immediates).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace gotlscap::disasm {

struct RetScan {
  std::vector<uint64_t> ret_offsets;  // offsets from the function entry
  uint64_t instructions = 0;          // instructions decoded (for tests and diagnostics)
};

// Whether a function's first argument words are provably at fixed stack slots at every RET, so
// a probe there can read them without an entry probe (see ProveArgsAtReturns).
struct ArgSlotsProof {
  bool proven = false;
  std::string text;  // the proof when proven, else why not (one line)
  // When proven: RETs (offsets from the entry) where the first result is provably 0 (for Read:
  // n == 0, nothing to capture), by straight-line analysis back from each RET (register ABI: the
  // result register zeroed, or loaded from a frame slot last stored with zeros; stack ABI: its
  // result slot last stored with zeros; no pointer that could reach the slot).
  std::vector<uint64_t> zero_result_rets;

  // amd64, when proven: RETs reached straight from a call through an epilogue that only loads
  // result registers from frame slots and pops the frame. In Go these are the open-coded deferred
  // calls (`defer c.in.Unlock()` in Read): the results sit in their frame slots during the call,
  // so a probe at the call (a direct CALL is emulated by the kernel, a RET is not) or at the
  // callee's entry can read them there.
  struct CallExit {
    uint64_t ret = 0;                // the RET (offset from the entry)
    uint64_t call = 0;               // the CALL (offset from the entry)
    uint64_t after_call = 0;         // the instruction after it: the return address (offset)
    std::optional<uint64_t> target;  // a direct call's target address; none: CALL through a register
    int64_t sp = 0;                  // SP at the CALL, from the entry SP (<= 0)
    // Frame slots (from the entry SP) the epilogue loads AX, BX and CX from, if it does.
    std::optional<int64_t> ax, bx, cx;
  };
  std::vector<CallExit> call_exits;
  // amd64: every address a RIP-relative LEA of the function computes (closures it creates).
  std::vector<uint64_t> lea_targets;
};

// One per analysed binary: the Capstone handles are opened once (opening them per function was
// a large part of analysing a small binary), the decoder chosen from the target's ELF machine.
class Disassembler {
 public:
  static Result<Disassembler> Create(elf::Machine machine);
  ~Disassembler();
  Disassembler(Disassembler&& o) noexcept;
  Disassembler(const Disassembler&) = delete;
  Disassembler& operator=(const Disassembler&) = delete;
  Disassembler& operator=(Disassembler&&) = delete;

  // Linear sweep over `code` (the function's bytes, from its entry to the next function). Go puts
  // no data in function text (jump tables live in .rodata), so a sweep stays in sync. On arm64
  // only `RET` (= RET X30) counts: Go 1.27 wrappers tail-call with `RET Xn`, which does not return
  // to the caller. Trailing alignment padding (INT3 / zero words) is skipped. kCorrupt if x86 code
  // cannot be decoded before the padding.
  Result<RetScan> FindReturns(std::span<const uint8_t> code, uint64_t entry) const;

  // Offset of the first instruction after the prologue's stack-bound check, or 0 when the
  // function has none (NOSPLIT). When a goroutine's stack must grow, the check branches to a
  // block that calls runtime.morestack and then jumps back to the entry, so an entry uprobe fires
  // twice for one call; a uprobe here fires once. The arguments are still untouched there (the
  // check reads only SP and g). Recognised by its shape: a forward conditional branch in the first
  // instructions whose target block jumps back to the entry.
  uint64_t FindBodyStart(std::span<const uint8_t> code, uint64_t entry) const;

  // Where an entry uprobe costs least. A uprobe on an instruction the kernel emulates (x86: jumps,
  // conditional jumps, direct calls, NOP; PUSH from Linux 6.11) costs one trap; any other is
  // single-stepped out of line, a second trap: measured here 0.8 µs against 9.2 µs per hit. On
  // amd64 the stack-bound check's JBE (the instruction just before `body_offset`) is such an
  // instruction, and the arguments are untouched there; its probe also fires when the branch is
  // about to be taken (stack growth: the call re-runs its entry), which the eBPF program tells
  // from the CMP's flags and ignores. Elsewhere (arm64, no check): `body_offset`.
  struct EntryProbe {
    uint64_t offset = 0;
    bool at_check = false;  // on the JBE: skip the hit when CF or ZF is set (the branch is taken)
  };
  EntryProbe FindEntryProbe(std::span<const uint8_t> code, uint64_t entry, uint64_t body_offset) const;

  // Proves, or refuses to prove, that at every RET of the function the integer argument words
  // 0..nwords-1 sit at entry-SP + 8 + 8*i (the stack ABI's argument words, and the register ABI's
  // spill slots, which the caller reserves just above the return address / at RSP+8 on arm64).
  // The proof, over every instruction reachable from the entry (direct branches only):
  //  1. SP: every instruction that changes SP is understood (PUSH/POP, ADD/SUB SP,#imm, arm64
  //     pre/post-indexed SP writeback), each instruction is reached with one SP offset, and every
  //     RET is reached with SP back at its entry value.
  //  2. No instruction stores to any byte of the slots, and no instruction derives from SP a pointer
  //     at or above the entry SP (so no store through another register can reach them). Stores
  //     through pointers into the function's own frame stay below it (Go is memory safe).
  //  3. Register ABI only: the argument registers (AX BX CX.. / R0 R1 R2..) are stored, unmodified,
  //     to their slots in the straight line from the entry before any call, return or branch other
  //     than the stack-bound check, and nothing branches into that line: the stores dominate every
  //     RET. The stack-bound check's morestack block may store the same unmodified registers to the
  //     same slots (value-preserving) and must jump back to the entry.
  // Anything else (indirect jumps, unknown instructions on the path, other SP arithmetic) refuses.
  // result_word (stack ABI): the first result's word in the argument area (Read: 4, after c and
  // b's three words), for zero_result_rets; -1: not looked for.
  ArgSlotsProof ProveArgsAtReturns(std::span<const uint8_t> code, uint64_t entry, bool register_abi, int nwords,
                                   uint64_t body_offset, int result_word = -1) const;

 private:
  explicit Disassembler(bool x86) : x86_(x86) {}
  bool x86_;
  size_t plain_ = 0;     // csh: no instruction details (the RET sweep)
  size_t detailed_ = 0;  // csh: with operands (branch targets in the prologue)
};

}  // namespace gotlscap::disasm
