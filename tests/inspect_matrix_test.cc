// `gotlscap inspect --json` over every binary of the Go toolchain matrix, compared with oracles
// that share no code with gotlscap: the row's own Go toolchain (`go version [-m]`,
// `go tool nm`, `go tool objdump`) and GNU binutils (`readelf`, `objdump`).
//
// Stripped rows: gotlscap reads the stripped file, the symbol oracles read its unstripped twin
// (same code layout, verified by go-matrix.sh); the values must be identical.
#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "test_env.h"

namespace gotlscap::testenv {
namespace {

using nlohmann::json;

// What gotlscap reports (src/gobin/go_binary.cc HookTargets()); the first four are required.
const std::vector<std::string> kRequired = {
    "crypto/tls.(*Conn).writeRecordLocked",
    "crypto/tls.(*Conn).Read",
    "crypto/tls.(*Conn).Write",
    "crypto/tls.(*Config).writeKeyLog",
};
const std::vector<std::string> kOptional = {
    "crypto/tls.keysFromMasterSecret",
    "crypto/tls.(*halfConn).setTrafficSecret",
    "crypto/tls.(*Conn).setReadTrafficSecret",
    "crypto/tls.(*Conn).Close",
};

std::vector<std::string> AllTargets() {
  std::vector<std::string> all = kRequired;
  all.insert(all.end(), kOptional.begin(), kOptional.end());
  return all;
}

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

// Go regexp (RE2) for exactly `name`.
std::string QuoteRegexp(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::string("\\.+*?()|[]{}^$").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// --- oracle: go tool nm -size -sort address ------------------------------------------
struct NmSym {
  uint64_t addr = 0;
  uint64_t size = 0;
  char type = 0;
  std::string name;
};

std::vector<NmSym> GoNm(const MatrixRow& row, const std::string& binary) {
  auto r = RunCommand({GoBin(row), "tool", "nm", "-size", "-sort", "address", binary}, GoEnv(row));
  EXPECT_EQ(r.exit_code, 0) << "go tool nm " << binary << ": " << r.Describe();
  std::vector<NmSym> syms;
  for (const auto& line : SplitLines(r.out)) {
    // "  5ad760        645 T crypto/tls.(*Config).writeKeyLog" — names may contain spaces.
    auto f = SplitWs(line);
    if (f.size() < 4) continue;  // undefined symbols have no address
    auto addr = ParseU64(f[0], 16);
    auto size = ParseU64(f[1], 10);
    if (!addr || !size || f[2].size() != 1) continue;
    size_t name_pos = line.find(f[3], line.find(f[2]) + 1);
    syms.push_back({*addr, *size, f[2][0], line.substr(name_pos)});
  }
  return syms;
}

// --- oracle: go tool objdump -s ------------------------------------------------------
struct Insn {
  uint64_t addr = 0;
  std::string bytes;  // in file order
  std::string text;   // Go syntax, e.g. "RET", "MOVQ BP, 0x60(SP)"
  std::string line;   // source position, e.g. "conn.go:1393"
};
struct DisFunc {
  std::vector<Insn> insns;
};

std::string HexToBytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// go tool objdump -s RE: every function whose name matches, by name.
std::map<std::string, DisFunc> GoObjdumpMatching(const MatrixRow& row, const std::string& binary, const std::string& re) {
  auto r = RunCommand({GoBin(row), "tool", "objdump", "-s", re, binary}, GoEnv(row));
  EXPECT_EQ(r.exit_code, 0) << "go tool objdump " << binary << ": " << r.Describe();
  std::map<std::string, DisFunc> out;
  DisFunc* cur = nullptr;
  for (const auto& line : SplitLines(r.out)) {
    if (line.rfind("TEXT ", 0) == 0) {
      // "TEXT crypto/tls.(*Conn).Read(SB) /path/conn.go"
      auto end = line.find("(SB)");
      cur = end == std::string::npos ? nullptr : &out[line.substr(5, end - 5)];
      continue;
    }
    if (!cur) continue;
    // "  conn.go:1301\t\t0x5b5d40\t\t493b6610\t\tCMPQ 0x10(R14), SP\t\t\t"
    std::vector<std::string> f;
    size_t start = 0;
    while (start <= line.size()) {
      size_t tab = line.find('\t', start);
      std::string field = Trim(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (!field.empty()) f.push_back(field);
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (f.size() < 4 || f[1].rfind("0x", 0) != 0) continue;
    auto addr = ParseU64(f[1].substr(2), 16);
    if (!addr) continue;
    Insn in;
    in.addr = *addr;
    if (row.goarch == "arm64") {
      // One 32-bit word per instruction, printed as a number: file order is little endian.
      std::string be = HexToBytes(f[2]);
      in.bytes.assign(be.rbegin(), be.rend());
    } else {
      in.bytes = HexToBytes(f[2]);
    }
    in.text = f[3];
    in.line = f[0];
    cur->insns.push_back(std::move(in));
  }
  return out;
}

std::map<std::string, DisFunc> GoObjdump(const MatrixRow& row, const std::string& binary,
                                         const std::vector<std::string>& names) {
  std::string re = "^(";
  for (size_t i = 0; i < names.size(); i++) re += (i ? "|" : "") + QuoteRegexp(names[i]);
  re += ")$";
  return GoObjdumpMatching(row, binary, re);
}

// --- oracle: GNU objdump (amd64 only) ------------------------------------------------
std::vector<uint64_t> GnuObjdumpRets(const std::string& binary, uint64_t start, uint64_t stop) {
  auto r = RunCommand({"objdump", "-d", "--no-show-raw-insn", "--start-address=" + Hex(start),
                       "--stop-address=" + Hex(stop), binary});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<uint64_t> rets;
  for (const auto& line : SplitLines(r.out)) {
    // "  5b5e44:\tret"
    auto colon = line.find(":\t");
    if (colon == std::string::npos) continue;
    auto addr = ParseU64(Trim(line.substr(0, colon)), 16);
    auto mnemonic = SplitWs(line.substr(colon + 2));
    if (addr && !mnemonic.empty() && (mnemonic[0] == "ret" || mnemonic[0] == "retq")) rets.push_back(*addr - start);
  }
  return rets;
}

// --- oracle: readelf -----------------------------------------------------------------
struct ElfFacts {
  std::string elf_class, type, machine;
  bool has_interp = false;
  bool has_symtab = false;
  struct Load {
    uint64_t offset, vaddr, filesz;
    std::string flags;
  };
  std::vector<Load> loads;
};

ElfFacts ReadElf(const std::string& binary) {
  ElfFacts e;
  auto h = RunCommand({"readelf", "-hlSW", binary});
  EXPECT_EQ(h.exit_code, 0) << h.Describe();
  for (const auto& line : SplitLines(h.out)) {
    auto t = Trim(line);
    auto value = [&](const char* key) -> std::optional<std::string> {
      if (t.rfind(key, 0) != 0) return std::nullopt;
      return Trim(t.substr(std::string(key).size()));
    };
    if (auto v = value("Class:")) e.elf_class = *v;
    if (auto v = value("Type:")) e.type = v->substr(0, v->find(' '));
    if (auto v = value("Machine:")) e.machine = *v;
    auto f = SplitWs(t);
    if (f.empty()) continue;
    if (f[0] == "INTERP") e.has_interp = true;
    if (f[0] == "LOAD" && f.size() >= 7) {
      // LOAD Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align
      ElfFacts::Load l{*ParseU64(f[1], 16), *ParseU64(f[2], 16), *ParseU64(f[4], 16), ""};
      for (size_t i = 6; i + 1 < f.size(); i++) l.flags += f[i];
      e.loads.push_back(l);
    }
    // Section list: "[NN] .symtab SYMTAB ..." (the "[ N]" form splits into "[" "N]").
    for (size_t i = 0; i + 1 < f.size(); i++)
      if (f[i].back() == ']' && f[i + 1] == ".symtab") e.has_symtab = true;
  }
  return e;
}

// --- oracle: go version [-m] -----------------------------------------------------------
std::string GoUnquote(const std::string& s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return s;
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); i++) {
    char c = s[i];
    if (c != '\\' || i + 2 >= s.size()) {
      out += c;
      continue;
    }
    char n = s[++i];
    switch (n) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'x': out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)); i += 2; break;
      default: out += n;
    }
  }
  return out;
}

struct GoModInfo {
  std::string path, mod_path, mod_version;
  int deps = 0;
  std::map<std::string, std::string> build;
};

GoModInfo GoVersionM(const MatrixRow& row, const std::string& binary) {
  auto r = RunCommand({GoBin(row), "version", "-m", binary}, GoEnv(row));
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  GoModInfo m;
  for (const auto& line : SplitLines(r.out)) {
    if (line.empty() || line[0] != '\t') continue;
    const std::vector<std::string> f = SplitTabs(line.substr(1));
    if (f[0] == "path" && f.size() >= 2) m.path = f[1];
    if (f[0] == "mod" && f.size() >= 3) m.mod_path = f[1], m.mod_version = f[2];
    if (f[0] == "dep") m.deps++;
    if (f[0] == "build" && f.size() >= 2) {
      // key=value, either side Go-quoted when it contains special characters.
      std::string kv = f[1];
      size_t eq;
      std::string key;
      if (!kv.empty() && kv[0] == '"') {
        size_t close = 1;
        while (close < kv.size() && !(kv[close] == '"' && kv[close - 1] != '\\')) close++;
        key = GoUnquote(kv.substr(0, close + 1));
        eq = close + 1;
      } else {
        eq = kv.find('=');
        key = kv.substr(0, eq);
      }
      m.build[key] = eq == std::string::npos ? "" : GoUnquote(kv.substr(eq + 1));
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------
class InspectMatrixTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(InspectMatrixTest, MatchesOracles) {
  const MatrixRow& row = GetParam();
  SCOPED_TRACE(::testing::Message() << row);

  // gotlscap, through its CLI.
  auto run = RunCommand({GotlscapBin(), "inspect", "--json", row.path});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_EQ(run.err, "");
  json j;
  ASSERT_NO_THROW(j = json::parse(run.out)) << run.out;
  ASSERT_TRUE(j.is_object());
  const json& fns = j.at("functions");

  // Go version: Go's own debug/buildinfo.
  {
    auto v = RunCommand({GoBin(row), "version", row.path}, GoEnv(row));
    ASSERT_EQ(v.exit_code, 0) << v.Describe();
    std::string ver = Trim(v.out.substr(v.out.rfind(": ") + 2));
    EXPECT_EQ(j.at("go_version"), ver);
    EXPECT_EQ(ver, row.go_version) << "manifest and binary disagree";
  }
  // Build info as `go version -m` prints it.
  {
    GoModInfo m = GoVersionM(row, row.path);
    EXPECT_EQ(j.value("main_path", ""), m.path);
    EXPECT_EQ(j.value("module_path", ""), m.mod_path);
    EXPECT_EQ(j.value("module_version", ""), m.mod_version);
    EXPECT_EQ(j.value("dependencies", -1), m.deps);
    std::map<std::string, std::string> ours;
    if (j.contains("build_settings"))
      for (auto& [k, v] : j["build_settings"].items()) ours[k] = v.get<std::string>();
    EXPECT_EQ(ours, m.build);
    if (row.Minor() >= 18) {
      EXPECT_EQ(m.build["GOARCH"], row.goarch);
    }
  }

  // ELF facts: GNU readelf.
  const ElfFacts elf = ReadElf(row.path);
  EXPECT_EQ(elf.elf_class, "ELF64");
  const std::string arch = elf.machine == "Advanced Micro Devices X86-64" ? "amd64"
                           : elf.machine == "AArch64"                     ? "arm64"
                                                                          : "?" + elf.machine;
  EXPECT_EQ(j.at("arch"), arch);
  EXPECT_EQ(arch, row.goarch);
  // ET_DYN executable = PIE (all matrix PIEs are dynamically linked, so they have PT_INTERP).
  const bool pie = elf.type == "DYN";
  EXPECT_EQ(j.at("pie"), pie) << "ELF type " << elf.type;
  if (pie) {
    EXPECT_TRUE(elf.has_interp);
  }
  EXPECT_EQ(j.at("stripped"), !elf.has_symtab);
  EXPECT_EQ(j.at("stripped").get<bool>(), row.IsStrippedVariant());
  const bool reg = (arch == "amd64" && row.Minor() >= 17) || (arch == "arm64" && row.Minor() >= 18);
  EXPECT_EQ(j.at("abi"), reg ? "register" : "stack");
  EXPECT_EQ(j.at("path"), row.path);

  // Symbol oracles read the unstripped twin.
  if (row.twin.empty()) {
    if (IsCi()) FAIL() << "manifest has no verified twin for stripped " << row.path;
    GTEST_SKIP() << "no verified unstripped twin for " << row.path << " (go-matrix.sh twin check failed)";
  }
  const std::vector<NmSym> nm = GoNm(row, row.twin);
  ASSERT_FALSE(nm.empty());
  std::vector<const NmSym*> text;  // text symbols in address order
  for (const auto& s : nm)
    if (s.type == 'T' || s.type == 't') text.push_back(&s);

  std::set<std::string> expected_names;
  for (const auto& name : AllTargets())
    for (const auto* s : text)
      if (s->name == name) expected_names.insert(name);
  for (const auto& name : kRequired) EXPECT_TRUE(expected_names.count(name)) << "nm lacks " << name;
  std::set<std::string> reported;
  for (auto& [k, v] : fns.items()) reported.insert(k);
  EXPECT_EQ(reported, expected_names) << "reported hook functions differ from those nm lists";

  const auto dis = GoObjdump(row, row.twin, std::vector<std::string>(expected_names.begin(), expected_names.end()));
  const uint64_t align = arch == "amd64" ? 32 : 16;  // Go linker funcAlign

  for (const auto& name : expected_names) {
    SCOPED_TRACE(name);
    if (!fns.contains(name)) continue;
    const json& f = fns.at(name);
    const uint64_t addr = f.at("address").get<uint64_t>();
    const uint64_t size = f.at("size").get<uint64_t>();
    const uint64_t file_offset = f.at("file_offset").get<uint64_t>();
    const auto rets = f.at("ret_offsets").get<std::vector<uint64_t>>();
    EXPECT_GT(f.at("args_size").get<uint64_t>(), 0u);

    // Address and size vs nm. nm's size is the symbol's own size (st_size: code without the
    // padding to the next function); ours runs to the next function entry. So: ours equals the
    // distance to the next text symbol, and the difference is alignment padding.
    auto it = std::find_if(text.begin(), text.end(), [&](const NmSym* s) { return s->name == name; });
    ASSERT_NE(it, text.end());
    const NmSym& sym = **it;
    EXPECT_EQ(addr, sym.addr) << "address: expected " << Hex(sym.addr) << " got " << Hex(addr);
    auto next = std::find_if(it, text.end(), [&](const NmSym* s) { return s->addr > sym.addr; });
    if (next != text.end()) {
      EXPECT_EQ(size, (*next)->addr - sym.addr) << "size should reach " << (*next)->name << " at " << Hex((*next)->addr);
    }
    EXPECT_GE(size, sym.size);
    EXPECT_LT(size - sym.size, align) << "nm size " << sym.size << ", ours " << size;
    EXPECT_EQ(addr % align, 0u);

    // file_offset: independent PT_LOAD arithmetic from readelf -l of the analysed file.
    std::optional<uint64_t> want_off;
    for (const auto& l : elf.loads)
      if (addr >= l.vaddr && addr + sym.size <= l.vaddr + l.filesz) {
        EXPECT_NE(l.flags.find('E'), std::string::npos) << "function in a non-executable segment";
        want_off = addr - l.vaddr + l.offset;
      }
    ASSERT_TRUE(want_off.has_value()) << "no PT_LOAD maps " << Hex(addr);
    EXPECT_EQ(file_offset, *want_off) << "file_offset: expected " << Hex(*want_off) << " got " << Hex(file_offset);

    // Instructions from go tool objdump: bytes at our file_offset, RET sites.
    auto d = dis.find(name);
    ASSERT_NE(d, dis.end()) << "go tool objdump did not list " << name;
    const auto& insns = d->second.insns;
    ASSERT_FALSE(insns.empty());
    EXPECT_EQ(insns.front().addr, addr);
    std::string code;
    std::vector<uint64_t> want_rets;
    for (const auto& in : insns) {
      EXPECT_EQ(in.addr, addr + code.size()) << "gap in objdump listing";
      code += in.bytes;
      if (in.text == "RET") want_rets.push_back(in.addr - addr);
    }
    EXPECT_EQ(code.size(), sym.size) << "objdump bytes vs nm size";
    const std::string file_code = ReadFileRange(row.path, file_offset, code.size());
    if (row.twin == row.path) {
      auto diff = std::mismatch(file_code.begin(), file_code.end(), code.begin(), code.end());
      EXPECT_TRUE(file_code == code) << "bytes of " << row.path << " at file_offset " << Hex(file_offset)
                                     << " differ from objdump's at " << Hex(addr) << ", first at +"
                                     << (diff.first - file_code.begin()) << " (file has " << file_code.size()
                                     << " bytes there, objdump " << code.size() << ")";
    } else {
      // Stripping moves data (not code): only instructions that encode a data address may
      // differ from the twin's; every other instruction, RETs included, must be identical.
      ASSERT_EQ(file_code.size(), code.size());
      // arm64 addresses are ADRP (page) + the next instruction's 12-bit immediate (ADD/MOVD).
      int relocated = 0;
      bool after_adrp = false;
      for (const auto& in : insns) {
        const size_t at = in.addr - addr;
        const bool low12 = after_adrp;
        after_adrp = in.text.rfind("ADRP", 0) == 0;
        if (file_code.compare(at, in.bytes.size(), in.bytes) == 0) continue;
        const bool addr_operand = in.text.find("(SB)") != std::string::npos ||
                                  in.text.find("(IP)") != std::string::npos || after_adrp || low12 ||
                                  in.text.rfind("ADR ", 0) == 0;
        EXPECT_TRUE(addr_operand) << "stripped file at file_offset " << Hex(file_offset + at)
                                  << " differs from twin's instruction at " << Hex(in.addr) << ": " << in.text;
        relocated++;
      }
      RecordProperty("relocated_insns", relocated);
    }
    EXPECT_EQ(rets, want_rets) << "ret_offsets vs go tool objdump";
    EXPECT_FALSE(rets.empty());

    // Second disassembler for amd64: GNU objdump over [addr, addr + nm size).
    if (arch == "amd64") {
      // On the analysed file itself (works without symbols).
      EXPECT_EQ(rets, GnuObjdumpRets(row.path, addr, addr + sym.size)) << "ret_offsets vs GNU objdump";
    }
  }
}

// --- Read's probe path ------------------------------------------------------------------
// gotlscap proves from its own (Capstone) disassembly whether (*Conn).Read's c, b.ptr and b.len sit
// at entry-SP+8/+16/+24 at every RET (ret-only: no entry probe). This checks the claim against
// `go tool objdump`'s listing of the twin, read independently: the frame size from the prologue,
// SP restored before every RET, and every store to the three slots accounted for (register ABI: the
// spills of AX/BX/CX or R0/R1/R2 before the first call, and the morestack block's stores of the
// same registers; stack ABI: none).

// "0x68(SP)" / "120(RSP)" / "(SP)" -> offset; nullopt if not an SP-relative memory operand.
std::optional<int64_t> SpOffset(const std::string& operand, bool arm64) {
  const std::string base = arm64 ? "(RSP)" : "(SP)";
  if (operand.size() < base.size() || operand.compare(operand.size() - base.size(), base.size(), base) != 0)
    return std::nullopt;
  std::string num = operand.substr(0, operand.size() - base.size());
  if (num.empty()) return 0;
  try {
    return std::stoll(num, nullptr, 0);
  } catch (...) {
    return std::nullopt;
  }
}

// Operands of a Go-syntax instruction ("MOVQ AX, 0x68(SP)" -> {"AX", "0x68(SP)"}); a register pair
// "(R5, R4)" stays one operand.
std::vector<std::string> GoOperands(const std::string& text) {
  std::vector<std::string> ops;
  size_t sp = text.find(' ');
  if (sp == std::string::npos) return ops;
  std::string cur;
  int depth = 0;
  for (char c : text.substr(sp + 1)) {
    if (c == '(') depth++;
    if (c == ')') depth--;
    if (c == ',' && depth == 0) {
      ops.push_back(Trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!Trim(cur).empty()) ops.push_back(Trim(cur));
  return ops;
}

std::string Mnemonic(const std::string& text) { return text.substr(0, text.find(' ')); }

// Bytes a Go-syntax store writes (conservative: 16 when unknown).
int64_t StoreBytes(const std::string& mnemonic) {
  if (mnemonic == "MOVQ" || mnemonic == "MOVD" || mnemonic == "FMOVD") return 8;
  if (mnemonic == "MOVL" || mnemonic == "MOVW" || mnemonic == "FMOVS") return 4;  // arm64 MOVW: 4 bytes
  if (mnemonic == "MOVB") return 1;
  if (mnemonic == "MOVH") return 2;
  return 16;  // MOVUPS, STP, FMOVQ, ...
}

// Empty if objdump's listing confirms gotlscap's ret-only claim, else what disagrees.
std::string CheckReadSlots(const std::vector<Insn>& insns, bool arm64, bool register_abi) {
  // Frame: amd64 [PUSHQ BP;] SUBQ $N, SP; arm64 MOVD.W R30, -N(RSP).
  int64_t frame = -1;
  size_t body = 0;
  for (size_t i = 0; i < insns.size() && i < 12 && frame < 0; i++) {
    const std::string& t = insns[i].text;
    const auto ops = GoOperands(t);
    if (!arm64 && Mnemonic(t) == "SUBQ" && ops.size() == 2 && ops[1] == "SP" && ops[0][0] == '$') {
      bool push = false;  // Go 1.21+: PUSHQ BP; MOVQ SP, BP; SUBQ $N, SP
      for (size_t k = 0; k < i; k++) push |= insns[k].text == "PUSHQ BP";
      frame = std::stoll(ops[0].substr(1), nullptr, 0) + (push ? 8 : 0);
      body = i;
    }
    if (arm64 && Mnemonic(t) == "MOVD.W" && ops.size() == 2 && ops[0] == "R30") {
      auto off = SpOffset(ops[1], true);
      if (off && *off < 0) frame = -*off, body = i;
    }
  }
  if (frame < 0) return "no prologue recognised in objdump's listing";
  // The morestack block: from the first conditional branch's target to the end.
  uint64_t morestack = 0;
  for (size_t i = 0; i < body; i++) {
    const std::string m = Mnemonic(insns[i].text);
    if (m == "JBE" || m == "JLS" || m == "BLS" || m == "JB") {
      const auto ops = GoOperands(insns[i].text);
      if (ops.empty()) break;
      if (!arm64) {
        morestack = std::stoull(ops[0], nullptr, 0);
      } else if (ops[0].size() > 4 && ops[0].substr(ops[0].size() - 4) == "(PC)") {
        morestack = insns[i].addr + 4 * std::stoll(ops[0].substr(0, ops[0].size() - 4));
      }
    }
  }
  if (!morestack) return "no stack-bound check found";
  const char* regs[3] = {arm64 ? "R0" : "AX", arm64 ? "R1" : "BX", arm64 ? "R2" : "CX"};
  bool before_call = true;
  int spills = 0;
  for (size_t i = 0; i < insns.size(); i++) {
    const Insn& in = insns[i];
    const std::string m = Mnemonic(in.text);
    const bool in_morestack = in.addr >= morestack;
    const int64_t delta = in_morestack || i < body ? 0 : -frame;  // SP offset from its entry value
    if (!in_morestack && (m == "CALL" || m[0] == 'J' || m[0] == 'B' || m == "CBZ" || m == "CBNZ" || m == "TBZ" ||
                          m == "TBNZ" || m == "RET") && i >= body)
      before_call = false;
    if (m == "RET") {
      // The instruction before restores SP: ADDQ $N, SP [+ POPQ BP] / MOVD.P N(RSP), R30.
      // (1.15 may put a NOPL between them.)
      std::vector<std::string> before;
      for (size_t k = i; k-- > 0 && before.size() < 2;)
        if (insns[k].text.rfind("NOP", 0) != 0) before.push_back(insns[k].text);
      before.resize(2);
      const std::string &p1 = before[0], &p2 = before[1];
      bool ok;
      if (arm64) {
        ok = p1 == "MOVD.P " + std::to_string(frame) + "(RSP), R30" || p1 == fmt::format("ADD ${}, RSP, RSP", frame);
      } else if (p1 == "POPQ BP") {
        ok = p2 == fmt::format("ADDQ ${:#x}, SP", frame - 8);
      } else {
        ok = p1 == fmt::format("ADDQ ${:#x}, SP", frame);
      }
      if (!ok) return fmt::format("RET at {:#x} not preceded by the epilogue of a {:#x}-byte frame", in.addr, frame);
      continue;
    }
    const auto ops = GoOperands(in.text);
    if (ops.empty() || m.rfind("CMP", 0) == 0 || m.rfind("TEST", 0) == 0) continue;
    // Go syntax: the destination is the last operand.
    auto off = SpOffset(ops.back(), arm64);
    if (!off || (arm64 && m.rfind("LD", 0) == 0) || m == "LEAQ") continue;
    const int64_t lo = delta + *off, hi = lo + StoreBytes(m);
    if (hi <= 8 || lo >= 32) continue;
    // A store to a slot: only the spill of the slot's own register (STP (Ra, Rb): two slots).
    const int slot = static_cast<int>((lo - 8) / 8);
    bool spill = register_abi && ops.size() == 2 && lo % 8 == 0 && hi - lo == 8 && ops[0] == regs[slot];
    if (register_abi && m == "STP" && ops.size() == 2 && lo % 8 == 0 && lo >= 8) {
      // Each register of the pair that lands in a slot must be that slot's own (b.cap at +32 is
      // not one of them).
      const auto pair = GoOperands("X " + ops[0].substr(1, ops[0].size() - 2));
      spill = pair.size() == 2 && pair[0] == regs[slot] && (slot + 1 >= 3 || pair[1] == regs[slot + 1]);
    }
    if (!spill) return fmt::format("{:#x} {} stores to an argument slot", in.addr, in.text);
    if (!in_morestack) {
      if (!before_call) return fmt::format("{:#x} {} spills after a call or branch", in.addr, in.text);
      spills++;
    }
  }
  if (register_abi && spills != 3) return fmt::format("{} spills of c, b.ptr, b.len before the first call", spills);
  return "";
}

TEST_P(InspectMatrixTest, ReadPathIsProvenOrExplained) {
  const MatrixRow& row = GetParam();
  SCOPED_TRACE(::testing::Message() << row);
  auto run = RunCommand({GotlscapBin(), "inspect", "--json", row.path});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  json j = json::parse(run.out);
  const json& read = j.at("functions").at("crypto/tls.(*Conn).Read");
  const std::string path = read.at("read_path");
  RecordProperty("read_path", path);
  if (path == "entry+ret") {
    ASSERT_TRUE(read.contains("reason"));
    EXPECT_FALSE(read.at("reason").get<std::string>().empty());
    std::cout << row.TestName() << ": entry+ret: " << read.at("reason").get<std::string>() << "\n";
    return;
  }
  ASSERT_EQ(path, "ret-only");
  const std::string proof = read.at("proof");
  std::cout << row.TestName() << ": ret-only: " << proof << "\n";
  const bool arm64 = row.goarch == "arm64";
  const bool reg = j.at("abi") == "register";
  if (reg) {
    EXPECT_THAT(proof, ::testing::HasSubstr(arm64 ? "R0→8(RSP)" : "AX→8(SP)"));
  } else {
    EXPECT_THAT(proof, ::testing::HasSubstr("stack ABI"));
  }
  // Forced fallback: the same binary, GOTLSCAP_READ_PATH=entry.
  auto forced = RunCommand({"/usr/bin/env", "GOTLSCAP_READ_PATH=entry", GotlscapBin(), "inspect", "--json", row.path});
  ASSERT_EQ(forced.exit_code, 0) << forced.Describe();
  const json forced_json = json::parse(forced.out);
  const json& fr = forced_json.at("functions").at("crypto/tls.(*Conn).Read");
  EXPECT_EQ(fr.at("read_path"), "entry+ret");
  EXPECT_THAT(fr.at("reason").get<std::string>(), ::testing::HasSubstr("GOTLSCAP_READ_PATH=entry"));
  // The independent reading of go tool objdump's listing.
  if (row.twin.empty()) GTEST_SKIP() << "no verified unstripped twin";
  const auto dis = GoObjdump(row, row.twin, {"crypto/tls.(*Conn).Read"});
  auto d = dis.find("crypto/tls.(*Conn).Read");
  ASSERT_NE(d, dis.end());
  EXPECT_EQ(CheckReadSlots(d->second.insns, arm64, reg), "") << "objdump disagrees with: " << proof;

  // RETs left unprobed because n == 0 there: each must belong to a `return 0, ...` statement of
  // the toolchain's own crypto/tls/conn.go (objdump's line table, the Go source: independent of
  // our disassembly).
  const auto zero = read.at("zero_result_rets").get<std::vector<uint64_t>>();
  EXPECT_FALSE(zero.empty()) << "Read's error returns (return 0, err) were not recognised";
  std::vector<std::string> source;
  {
    std::ifstream in(row.goroot + "/src/crypto/tls/conn.go");
    for (std::string l; std::getline(in, l);) source.push_back(l);
  }
  ASSERT_FALSE(source.empty()) << row.goroot << "/src/crypto/tls/conn.go";
  const uint64_t base = read.at("address").get<uint64_t>();
  for (uint64_t off : zero) {
    auto insn = std::find_if(d->second.insns.begin(), d->second.insns.end(),
                             [&](const Insn& in) { return in.addr == base + off; });
    ASSERT_NE(insn, d->second.insns.end()) << "no instruction at +" << off;
    EXPECT_EQ(insn->text, "RET");
    if (insn->line == ":0") continue;  // go1.19's objdump prints no lines for PIE (its non-PIE twin is checked)
    ASSERT_EQ(insn->line.rfind("conn.go:", 0), 0u) << insn->line;
    const size_t n = std::stoul(insn->line.substr(8));
    ASSERT_TRUE(n >= 1 && n <= source.size()) << insn->line;
    EXPECT_THAT(Trim(source[n - 1]), ::testing::StartsWith("return 0, ")) << "RET +" << off << " at " << insn->line;
  }
  // Where the results are read (gobin::PlanReadExits), checked against objdump's listing of Read
  // and its closures: every RET is either proven zero, read at a deferred call, a recovery-only
  // exit after runtime.deferreturn, or keeps its RET probe.
  const auto ret_probes = read.at("ret_probes").get<std::vector<uint64_t>>();
  const json& exits = read.at("exits");
  const auto all_rets = read.at("ret_offsets").get<std::vector<uint64_t>>();
  auto insn_at = [&](uint64_t addr) {
    return std::find_if(d->second.insns.begin(), d->second.insns.end(), [&](const Insn& in) { return in.addr == addr; });
  };
  std::set<uint64_t> covered(zero.begin(), zero.end());
  covered.insert(ret_probes.begin(), ret_probes.end());
  if (arm64) {
    EXPECT_TRUE(exits.empty()) << "arm64 keeps its RET probes (the kernel simulates RET)";
  } else {
    EXPECT_FALSE(exits.empty()) << read.dump();
    EXPECT_LE(ret_probes.size(), 1u) << "at most the handshake-error RET keeps its probe: " << read.dump();
    // Read and its closures (func1, deferwrap1, Go 1.17's ·dwrap·N).
    const auto closures = GoObjdumpMatching(row, row.twin, "^crypto/tls\\.\\(\\*Conn\\)\\.Read[.·]");
    EXPECT_EQ(closures.size(), j.at("abi") == "register" ? 1u : 0u) << "Read's closures";
    for (const json& e : exits) {
      const uint64_t at = e.at("address").get<uint64_t>();
      for (uint64_t r : e.at("rets").get<std::vector<uint64_t>>()) covered.insert(r);
      if (!e.at("in_callee").get<bool>()) {
        // Stack ABI: the deferred c.in.Unlock() is a direct call in Read.
        auto call = insn_at(at);
        ASSERT_NE(call, d->second.insns.end()) << "no instruction of Read at " << at;
        EXPECT_EQ(call->text, "CALL sync.(*Mutex).Unlock(SB)");
        continue;
      }
      // Register ABI: the probe is in one of Read's closures; each return site follows a CALL
      // through a register in Read.
      bool in_closure = false;
      for (const auto& [name, fn] : closures)
        for (const Insn& in : fn.insns) in_closure |= in.addr == at;
      EXPECT_TRUE(in_closure) << "exit probe at " << at << " is not in a closure of Read";
      for (int64_t site : e.at("return_sites").get<std::vector<int64_t>>()) {
        const uint64_t ret_addr = at + site;
        auto after = insn_at(ret_addr);
        ASSERT_TRUE(after != d->second.insns.end() && after != d->second.insns.begin()) << "return site " << ret_addr;
        EXPECT_THAT(std::prev(after)->text, ::testing::MatchesRegex("CALL [A-Z][A-Z0-9]*")) << "before " << ret_addr;
      }
    }
  }
  for (uint64_t off : all_rets) {
    if (covered.count(off)) continue;
    // The exit after runtime.deferreturn: Go resumes there only after a recovered panic.
    auto ret = insn_at(base + off);
    ASSERT_NE(ret, d->second.insns.end());
    bool after_deferreturn = false;
    for (auto it = ret; it != d->second.insns.begin() && !after_deferreturn;) {
      --it;
      if (it->text.rfind("CALL", 0) == 0 || it->text.rfind("BL", 0) == 0) {
        after_deferreturn = it->text.find("runtime.deferreturn") != std::string::npos;
        break;
      }
      if (it->text.rfind("J", 0) == 0 || it->text.rfind("B", 0) == 0 || it->text == "RET") break;
    }
    EXPECT_TRUE(after_deferreturn) << "RET +" << off << " neither probed nor covered: " << read.dump();
  }
  // Forced: every RET probed.
  auto all = RunCommand({"/usr/bin/env", "GOTLSCAP_READ_ALL_RETS=1", GotlscapBin(), "inspect", "--json", row.path});
  ASSERT_EQ(all.exit_code, 0) << all.Describe();
  EXPECT_TRUE(json::parse(all.out).at("functions").at("crypto/tls.(*Conn).Read").at("zero_result_rets").empty());
}

std::string RowName(const ::testing::TestParamInfo<MatrixRow>& info) { return info.param.TestName(); }

INSTANTIATE_TEST_SUITE_P(Matrix, InspectMatrixTest, ::testing::ValuesIn(ManifestRows()), RowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(InspectMatrixTest);

// Without rows the parameterised suite is empty; this test makes that visible (skip) or, in CI,
// fatal.
TEST(InspectMatrix, ManifestPresent) {
  GOTLSCAP_REQUIRE_MATRIX();
  const auto& rows = ManifestRows();
  std::set<std::string> names;
  for (const auto& r : rows) {
    EXPECT_TRUE(names.insert(r.TestName()).second) << "duplicate row " << r.TestName();
    EXPECT_TRUE(r.goarch == "amd64" || r.goarch == "arm64") << r;
    if (!r.IsStrippedVariant()) {
      EXPECT_EQ(r.twin, r.path) << r;
    }
  }
  std::cout << rows.size() << " matrix rows from " << ManifestPath() << "\n";
}

}  // namespace
}  // namespace gotlscap::testenv
