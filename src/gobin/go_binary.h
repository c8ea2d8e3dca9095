// AnalyzeGoBinary: everything a capture needs to know about a Go executable, from the file alone
// (no root, no running process): version and build settings, architecture, ABI, PIE/stripped,
// and for each crypto/tls function we hook its address, uprobe file offset and return sites.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"
#include "gobin/buildinfo.h"
#include "gobin/go_version.h"
#include "gobin/pclntab.h"

namespace gotlscap::gobin {

enum class Abi { kStack, kRegister };
const char* AbiName(Abi a);             // "stack" | "register"
const char* ArchName(elf::Machine m);   // "amd64" | "arm64"

struct HookTarget {
  const char* name;  // full Go symbol name
  bool required;     // capture cannot work without it
};
// The functions capture hooks, in report order: first the required ones.
const std::vector<HookTarget>& HookTargets();

struct FunctionSite {
  std::string name;
  uint64_t address = 0;      // virtual address, as `go tool nm` prints it
  uint64_t file_offset = 0;  // where a uprobe attaches (PT_LOAD mapping, independent of PIE)
  uint64_t size = 0;         // up to the next function (includes alignment padding)
  uint32_t args_size = 0;    // _func.args: argument frame bytes (stack ABI: args + results)
  std::vector<uint64_t> ret_offsets;  // from `address`, found by disassembly
  uint64_t body_offset = 0;  // after the stack-growth check: where an entry hook fires once per call
  // Where entry uprobes go (disasm::Disassembler::FindEntryProbe): amd64, the stack-bound check's
  // JBE, which the kernel emulates (one trap instead of two); else body_offset.
  // GOTLSCAP_ENTRY_PROBE=body (environment) keeps them at body_offset (comparisons).
  uint64_t entry_probe_offset = 0;
  bool entry_probe_at_check = false;  // on that JBE: the probe ignores hits where it branches
};

// How (*Conn).Read is probed. kEntryAndRet: an entry probe stashes c and b (keyed by goroutine)
// for the RET probes. kRetOnly: the disassembly proves c, b.ptr and b.len sit at entry-SP+8/16/24
// at every RET (stack ABI arguments, or register-ABI spill slots), so the RET probes read them
// there and the entry probe is dropped (one uprobe hit per Read instead of two).
enum class ReadPath { kEntryAndRet, kRetOnly };
const char* ReadPathName(ReadPath p);  // "entry+ret" | "ret-only"

struct GoBinary {
  std::string path;
  std::optional<BuildInfo> build_info;
  std::optional<GoVersion> version;
  std::string version_string;  // "go1.27.3", or "unknown" without build info
  elf::Machine machine = elf::Machine::kAmd64;
  bool pie = false;
  bool stripped = false;
  Abi abi = Abi::kRegister;
  PclntabFormat pclntab_format = PclntabFormat::kGo120;
  uint64_t pclntab_address = 0;
  uint64_t text_start = 0;
  uint64_t function_count = 0;
  std::vector<FunctionSite> functions;  // found hook targets, in HookTargets() order
  ReadPath read_path = ReadPath::kEntryAndRet;
  std::string read_path_why;  // kRetOnly: the proof; kEntryAndRet: why not (one line)
  // kRetOnly: Read's RETs (offsets, a subset of its ret_offsets) that provably return n == 0
  // (error paths: the net/http server's aborted background read, io.EOF): not probed, one trap
  // fewer per such Read. Their cost: an io.EOF returned there gives no "eof" event (Close still
  // ends the connection). GOTLSCAP_READ_ALL_RETS=1 probes them (read_zero_rets stays empty).
  std::vector<uint64_t> read_zero_rets;
  std::string read_zero_rets_why;  // set when they were found but are probed anyway

  // amd64: probes that read Read's results at its deferred call instead of at a RET (a RET is
  // single-stepped by the kernel, ~20 µs a hit in a Go server here; a direct CALL or the callee's
  // stack-check JBE is emulated, ~1-2 µs). See PlanReadExits in go_binary.cc.
  static constexpr size_t kMaxReturnSites = 8;  // GOTLS_READ_EXIT_SITES
  struct ReadExitProbe {
    uint64_t address = 0;      // virtual address of the probed instruction
    uint64_t file_offset = 0;  // where the uprobe goes
    bool in_callee = false;    // at the deferred closure's entry: only calls from return_sites count
    bool at_check = false;     // on that entry's stack-check JBE
    // From SP at the call: Read's entry SP (c, b.ptr, b.len above it at +8/+16/+24), n, err (2 words).
    uint16_t to_entry = 0, n_off = 0, err_off = 0;
    std::vector<int32_t> return_sites;  // in_callee: return address minus the probe's address
    std::vector<uint64_t> rets;         // Read's RETs (offsets) this probe stands for
  };
  std::vector<ReadExitProbe> read_exits;
  std::vector<uint64_t> read_ret_probes;  // Read's RETs that keep a RET probe (offsets)
  std::string read_exits_why;             // how the RETs are covered, or why not (one line)

  const FunctionSite* Function(const std::string& name) const;
};

// GOTLSCAP_READ_PATH=entry (environment) forces ReadPath::kEntryAndRet (tests, comparisons).
// Errors (kind → meaning): kIo, kNotElf, kUnsupportedArch, kNotGo (ELF without Go runtime
// tables), kCorrupt (damaged build info / pclntab / code), kMissingFunction (a required crypto/tls
// function is absent; the message names it and the Go version), kNoReturn (a required function
// has no return instruction).
Result<GoBinary> AnalyzeGoBinary(const std::string& path);
Result<GoBinary> AnalyzeGoBinary(const elf::ElfFile& file, const std::string& path);

}  // namespace gotlscap::gobin
