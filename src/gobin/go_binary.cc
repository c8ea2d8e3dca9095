#include "gobin/go_binary.h"

#include <algorithm>
#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "disasm/ret_finder.h"
#include "gobin/moduledata.h"

namespace gotlscap::gobin {
namespace {

// Larger than any compiled Go function we hook (writeRecordLocked is ~2 KiB); bounds the
// disassembly of a damaged table.
constexpr uint64_t kMaxFunctionSize = 1u << 20;

// Register ABI: amd64 from Go 1.17, arm64 from Go 1.18 (arm64 1.17 is still stack-based).
Abi AbiForVersion(elf::Machine m, const GoVersion& v) {
  return v.AtLeast(1, m == elf::Machine::kArm64 ? 18 : 17) ? Abi::kRegister : Abi::kStack;
}

// Without build info (hand-stripped or pre-1.13 binaries), the argument frame of (*Conn).Read
// tells the ABI: the stack ABI reserves args + results (c, b, n, err = 56 bytes), the register
// ABI only the spill area of c and b (32 bytes).
Abi AbiFromFrame(const PclntabFormat fmt, const std::vector<FunctionSite>& fns) {
  if (fmt == PclntabFormat::kGo118 || fmt == PclntabFormat::kGo120) return Abi::kRegister;
  if (fmt == PclntabFormat::kGo12) return Abi::kStack;
  for (const auto& f : fns)
    if (f.name == "crypto/tls.(*Conn).Read") return f.args_size >= 56 ? Abi::kStack : Abi::kRegister;
  return Abi::kStack;
}

// Read's exits on amd64. A probe on a RET costs a Go server ~20 µs a hit here: the kernel cannot
// emulate RET and single-steps it out of line (two traps). Read's `defer c.in.Unlock()` is
// open-coded: each return path calls the deferred function and then runs an epilogue that only
// reloads the results from their frame slots (disasm CallExit). During that call the results
// are final, in their slots, and c and b in theirs (the ret-only proof), so the probe goes
// - on the CALL itself when it is direct (Go 1.15/1.16: CALL sync.(*Mutex).Unlock): the kernel
//   emulates a direct call;
// - else (CALL through a register: Go 1.17+ calls a closure, Read.func1 / Read.deferwrap1) on
//   that closure's entry probe (its stack-check JBE, emulated), keeping only calls whose return
//   address is one of those call sites (the runtime also runs the closure when a panic unwinds);
// - nowhere for the exit after runtime.deferreturn: Go resumes there only after a deferred call
//   of this frame recovered a panic, and Read's only deferred call is Unlock.
// RETs covered neither way, and not proven to return n == 0, keep their RET probe. arm64 needs
// none of this: its kernel simulates RET (one trap already).
void PlanReadExits(const elf::ElfFile& f, const Pclntab& table, const disasm::Disassembler& dis,
                   const disasm::ArgSlotsProof& proof, GoBinary& out) {
  const FunctionSite* read = out.Function("crypto/tls.(*Conn).Read");
  if (!read) return;
  auto keep_all = [&](std::string why) {
    out.read_ret_probes.clear();
    for (uint64_t r : read->ret_offsets)
      if (std::find(out.read_zero_rets.begin(), out.read_zero_rets.end(), r) == out.read_zero_rets.end())
        out.read_ret_probes.push_back(r);
    out.read_exits_why = std::move(why);
  };
  const char* env = getenv("GOTLSCAP_READ_EXIT");
  if (env && std::string(env) == "ret") return keep_all("RET probes: forced by GOTLSCAP_READ_EXIT=ret");
  if (out.machine != elf::Machine::kAmd64) return keep_all("RET probes (arm64 simulates RET: one trap)");
  if (out.read_path != ReadPath::kRetOnly) return keep_all("RET probes (the argument slots are not proven)");

  const std::vector<std::string> names = {"runtime.deferreturn"};
  auto found = table.Lookup(names);
  if (!found.ok()) return keep_all("RET probes (" + found.error().message + ")");
  const uint64_t deferreturn = (*found)[0] ? (*found)[0]->entry : 0;
  // The deferred closure: the one function named Read.<something> (func1, deferwrap1, Go 1.17's
  // ·dwrap·N) whose address Read computes (LEAQ ...(IP)) to build the defer's funcval.
  std::optional<Pclntab::NamedFunc> closure;
  for (uint64_t t : proof.lea_targets) {
    auto fn = table.FuncAtEntry(t);
    if (!fn || !fn->name.starts_with("crypto/tls.(*Conn).Read") || fn->name == read->name) continue;
    if (closure && closure->func.entry != t) return keep_all("RET probes (Read builds two closures)");
    closure = std::move(fn);
  }
  std::optional<disasm::Disassembler::EntryProbe> closure_probe;
  if (closure && closure->func.end - closure->func.entry <= kMaxFunctionSize) {
    const uint64_t entry = closure->func.entry, size = closure->func.end - entry;
    auto code = f.BytesAtVaddr(entry, size);
    if (code.size() == size && f.VaddrToOffset(entry))
      closure_probe = dis.FindEntryProbe(code, entry, dis.FindBodyStart(code, entry));
  }

  const bool stack_abi = out.abi == Abi::kStack;
  std::vector<uint64_t> covered;
  size_t recovery_only = 0;
  for (const auto& ce : proof.call_exits) {
    if (ce.target && *ce.target == deferreturn) {
      covered.push_back(ce.ret);
      recovery_only++;
      continue;
    }
    // Offsets from SP at the call.
    int64_t n, err;
    if (stack_abi) {
      n = 40, err = 48;  // c, b (3 words), n, err (2 words) from the entry SP + 8
    } else {
      if (!ce.ax || !ce.bx || !ce.cx || *ce.cx != *ce.bx + 8) continue;
      n = *ce.ax, err = *ce.bx;
    }
    const int64_t to_entry = -ce.sp;
    n -= ce.sp, err -= ce.sp;
    if (to_entry < 0 || n < 0 || err < 0 || to_entry > 0xfff0 || n > 0xfff0 || err > 0xfff0) continue;
    GoBinary::ReadExitProbe p;
    p.to_entry = static_cast<uint16_t>(to_entry);
    p.n_off = static_cast<uint16_t>(n);
    p.err_off = static_cast<uint16_t>(err);
    if (ce.target) {
      p.address = read->address + ce.call;
      p.file_offset = read->file_offset + ce.call;
      p.rets = {ce.ret};
      out.read_exits.push_back(std::move(p));
      covered.push_back(ce.ret);
      continue;
    }
    if (!closure_probe) continue;
    p.in_callee = true;
    p.at_check = closure_probe->at_check;
    p.address = closure->func.entry + closure_probe->offset;
    p.file_offset = *f.VaddrToOffset(closure->func.entry) + closure_probe->offset;
    const int64_t site = static_cast<int64_t>(read->address + ce.after_call) - static_cast<int64_t>(p.address);
    if (site < INT32_MIN || site > INT32_MAX) continue;
    auto same = std::find_if(out.read_exits.begin(), out.read_exits.end(), [&](const GoBinary::ReadExitProbe& q) {
      return q.in_callee && q.to_entry == p.to_entry && q.n_off == p.n_off && q.err_off == p.err_off;
    });
    if (same == out.read_exits.end()) same = out.read_exits.insert(out.read_exits.end(), std::move(p));
    if (same->return_sites.size() >= GoBinary::kMaxReturnSites) continue;
    same->return_sites.push_back(static_cast<int32_t>(site));
    same->rets.push_back(ce.ret);
    covered.push_back(ce.ret);
  }
  keep_all("");
  std::erase_if(out.read_ret_probes,
                [&](uint64_t r) { return std::find(covered.begin(), covered.end(), r) != covered.end(); });
  size_t at_call = 0, in_callee = 0;
  for (const auto& e : out.read_exits) (e.in_callee ? in_callee : at_call) += e.rets.size();
  out.read_exits_why = fmt::format(
      "{} of {} RETs read at their deferred call ({} at a CALL in Read, {} in {}{}), {} after runtime.deferreturn "
      "(recovery only: not probed), {} return n == 0 (not probed), {} keep a RET probe",
      at_call + in_callee, read->ret_offsets.size(), at_call, in_callee, closure ? closure->name : "no closure",
      closure_probe && closure_probe->at_check ? "'s stack-check JBE" : "", recovery_only,
      std::count_if(out.read_zero_rets.begin(), out.read_zero_rets.end(),
                    [&](uint64_t r) { return std::find(covered.begin(), covered.end(), r) == covered.end(); }),
      out.read_ret_probes.size());
}

}  // namespace

const char* ReadPathName(ReadPath p) { return p == ReadPath::kRetOnly ? "ret-only" : "entry+ret"; }
const char* AbiName(Abi a) { return a == Abi::kStack ? "stack" : "register"; }
const char* ArchName(elf::Machine m) { return m == elf::Machine::kAmd64 ? "amd64" : "arm64"; }

const std::vector<HookTarget>& HookTargets() {
  static const std::vector<HookTarget> kTargets = {
      {"crypto/tls.(*Conn).writeRecordLocked", true},  // plaintext written (record type 23)
      {"crypto/tls.(*Conn).Read", true},               // plaintext read, at each RET
      {"crypto/tls.(*Conn).Write", true},
      {"crypto/tls.(*Config).writeKeyLog", true},      // every NSS key-log secret
      {"crypto/tls.keysFromMasterSecret", false},      // TLS 1.2 resumption secrets
      {"crypto/tls.(*halfConn).setTrafficSecret", false},  // TLS 1.3 KeyUpdate
      {"crypto/tls.(*Conn).setReadTrafficSecret", false},  // Go 1.25+
      {"crypto/tls.(*Conn).Close", false},
  };
  return kTargets;
}

const FunctionSite* GoBinary::Function(const std::string& name) const {
  for (const auto& f : functions)
    if (f.name == name) return &f;
  return nullptr;
}

Result<GoBinary> AnalyzeGoBinary(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, elf::ElfFile::Open(path));
  return AnalyzeGoBinary(*file, path);
}

Result<GoBinary> AnalyzeGoBinary(const elf::ElfFile& f, const std::string& path) {
  GoBinary out;
  out.path = path;
  out.machine = f.machine();
  out.pie = f.is_pie();
  out.stripped = !f.has_symtab();

  ASSIGN_OR_RETURN(out.build_info, ReadBuildInfo(f));
  ASSIGN_OR_RETURN(auto table, FindPclntab(f));
  if (!table) {
    if (out.build_info) return MakeError(ErrorKind::kCorrupt, "Go build info present but no pclntab found");
    return MakeError(ErrorKind::kNotGo, "not a Go binary (no Go build info or pclntab)");
  }
  if (table->ptr_size() != 8) return MakeError(ErrorKind::kCorrupt, "corrupt Go pclntab: 32-bit table in a 64-bit file");
  ASSIGN_OR_RETURN(bool resolved, ResolveTextStart(f, *table));
  (void)resolved;
  out.pclntab_format = table->format();
  out.pclntab_address = table->address();
  out.text_start = table->text_start();
  out.function_count = table->nfunc();
  if (out.build_info) {
    out.version = ParseGoVersion(out.build_info->version);
    out.version_string = out.version ? out.version->ToString() : out.build_info->version;
  } else {
    out.version_string = "unknown";
  }

  std::vector<std::string> names;
  for (const auto& t : HookTargets()) names.emplace_back(t.name);
  ASSIGN_OR_RETURN(auto found, table->Lookup(names));
  ASSIGN_OR_RETURN(disasm::Disassembler dis, disasm::Disassembler::Create(f.machine()));
  const char* entry_env = getenv("GOTLSCAP_ENTRY_PROBE");
  const bool entry_at_body = entry_env && std::string(entry_env) == "body";
  for (size_t i = 0; i < names.size(); i++) {
    const HookTarget& target = HookTargets()[i];
    if (!found[i]) {
      if (target.required)
        return MakeError(ErrorKind::kMissingFunction,
                         fmt::format("{} not found ({}): the program does not use crypto/tls", names[i], out.version_string));
      continue;
    }
    FunctionSite site;
    site.name = names[i];
    site.address = found[i]->entry;
    site.size = found[i]->end - found[i]->entry;
    site.args_size = found[i]->args;
    const elf::Segment* seg = f.SegmentFor(site.address);
    if (!seg || !seg->executable() || site.size > kMaxFunctionSize)
      return MakeError(ErrorKind::kCorrupt, fmt::format("corrupt Go pclntab: {} at {:#x} is not in executable code",
                                                        site.name, site.address));
    site.file_offset = *f.VaddrToOffset(site.address);
    auto code = f.BytesAtVaddr(site.address, site.size);
    if (code.size() != site.size)
      return MakeError(ErrorKind::kCorrupt, fmt::format("{} extends past its segment", site.name));
    ASSIGN_OR_RETURN(auto scan, dis.FindReturns(code, site.address));
    if (scan.ret_offsets.empty() && target.required)
      return MakeError(ErrorKind::kNoReturn, fmt::format("no return instruction found in {} at {:#x} ({})", site.name,
                                                         site.address, out.version_string));
    site.ret_offsets = std::move(scan.ret_offsets);
    site.body_offset = dis.FindBodyStart(code, site.address);
    const auto probe = entry_at_body ? disasm::Disassembler::EntryProbe{site.body_offset, false}
                                     : dis.FindEntryProbe(code, site.address, site.body_offset);
    site.entry_probe_offset = probe.offset;
    site.entry_probe_at_check = probe.at_check;
    out.functions.push_back(std::move(site));
  }
  out.abi = out.version ? AbiForVersion(out.machine, *out.version) : AbiFromFrame(out.pclntab_format, out.functions);

  // Read's path: c, b.ptr, b.len (argument words 0-2) provably at fixed slots at every RET?
  if (const FunctionSite* read = out.Function("crypto/tls.(*Conn).Read")) {
    const disasm::ArgSlotsProof proof = dis.ProveArgsAtReturns(f.BytesAtVaddr(read->address, read->size), read->address,
                                                               out.abi == Abi::kRegister, 3, read->body_offset,
                                                               /*result_word=*/4);
    const char* force = getenv("GOTLSCAP_READ_PATH");
    if (force && std::string(force) == "entry") {
      out.read_path_why = fmt::format("forced by GOTLSCAP_READ_PATH=entry (ret-only {})",
                                      proof.proven ? "would be proven" : "not proven: " + proof.text);
    } else {
      out.read_path = proof.proven ? ReadPath::kRetOnly : ReadPath::kEntryAndRet;
      out.read_path_why = proof.text;
      if (proof.proven) {
        const char* all = getenv("GOTLSCAP_READ_ALL_RETS");
        if (all && std::string(all) == "1") {
          if (!proof.zero_result_rets.empty())
            out.read_zero_rets_why = fmt::format("{} RETs return n == 0; probed anyway (GOTLSCAP_READ_ALL_RETS=1)",
                                                 proof.zero_result_rets.size());
        } else {
          out.read_zero_rets = proof.zero_result_rets;
        }
      }
    }
    PlanReadExits(f, *table, dis, proof, out);
  }
  return out;
}

}  // namespace gotlscap::gobin
