#include "gobin/go_binary.h"

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
  }
  return out;
}

}  // namespace gotlscap::gobin
