// Finds every return instruction of a function by disassembling it with Capstone (x86-64 or
// AArch64, chosen from the target ELF, never from the host). Uprobes on these sites replace
// uretprobes, which corrupt Go's moving stacks. A byte scan for 0xC3 is wrong: the byte appears
// inside other x86 instructions (ModRM, immediates).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace gotlscap::disasm {

struct RetScan {
  std::vector<uint64_t> ret_offsets;  // offsets from the function entry
  uint64_t instructions = 0;          // instructions decoded (for tests and diagnostics)
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

 private:
  explicit Disassembler(bool x86) : x86_(x86) {}
  bool x86_;
  size_t plain_ = 0;     // csh: no instruction details (the RET sweep)
  size_t detailed_ = 0;  // csh: with operands (branch targets in the prologue)
};

}  // namespace gotlscap::disasm
