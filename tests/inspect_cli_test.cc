// `gotlscap inspect` error paths and output shape, through the executable: every failure is one
// line on stderr, nothing on stdout, and the exit code of its kind (src/cli/exit_codes.h).
#include <elf.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"

namespace gotlscap::testenv {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using nlohmann::json;

// Exit codes (src/cli/exit_codes.h), spelled out so a renumbering is caught.
constexpr int kExitUsage = 2, kExitIo = 3, kExitNotElf = 4, kExitNotGo = 5, kExitArch = 6, kExitCorrupt = 7,
              kExitMissingFunction = 8, kExitNoReturn = 9;

CommandResult Inspect(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GotlscapBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

// One line on stderr ("gotlscap: ..."), nothing on stdout, the given exit code.
void ExpectOneLineError(const CommandResult& r, int code) {
  EXPECT_EQ(r.exit_code, code) << r.Describe();
  EXPECT_EQ(r.out, "") << r.Describe();
  ASSERT_FALSE(r.err.empty()) << r.Describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.Describe();
  EXPECT_EQ(r.err.back(), '\n') << r.Describe();
  EXPECT_EQ(r.err.rfind("gotlscap: ", 0), 0u) << r.Describe();
}

// A default amd64 matrix binary (newest toolchain), or nullptr.
const MatrixRow* DefaultAmd64Row(const std::string& prog = "server") {
  const MatrixRow* best = nullptr;
  for (const auto& r : ManifestRows())
    if (r.variant == "default" && r.goarch == "amd64" && r.prog == prog && (!best || r.Minor() > best->Minor()))
      best = &r;
  return best;
}

struct Section {
  uint64_t addr = 0, offset = 0, size = 0;
};
// From readelf -SW, not from our ELF reader.
std::optional<Section> FindSection(const std::string& binary, const std::string& name) {
  auto r = RunCommand({"readelf", "-SW", binary});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  for (const auto& line : SplitLines(r.out)) {
    auto close = line.find(']');
    if (line.find('[') == std::string::npos || close == std::string::npos) continue;
    auto f = SplitWs(line.substr(close + 1));
    // Name Type Address Off Size ...
    if (f.size() >= 5 && f[0] == name) {
      auto a = ParseU64(f[2], 16), o = ParseU64(f[3], 16), s = ParseU64(f[4], 16);
      if (a && o && s) return Section{*a, *o, *s};
    }
  }
  return std::nullopt;
}

void PutLe(std::string& data, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; i++) data[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// --- no matrix needed ------------------------------------------------------------------

TEST(InspectCli, NoArgumentIsUsageError) { ExpectOneLineError(Inspect({"inspect"}), kExitUsage); }

TEST(InspectCli, UnknownSubcommandIsUsageError) { ExpectOneLineError(Inspect({"bogus"}), kExitUsage); }

TEST(InspectCli, NoSubcommandIsUsageError) { ExpectOneLineError(Inspect({}), kExitUsage); }

TEST(InspectCli, NonexistentFile) {
  TempDir tmp;
  auto r = Inspect({"inspect", tmp.File("does-not-exist")});
  ExpectOneLineError(r, kExitIo);
  EXPECT_THAT(r.err, HasSubstr("does-not-exist"));
}

TEST(InspectCli, DirectoryIsIoError) {
  TempDir tmp;
  ExpectOneLineError(Inspect({"inspect", tmp.path()}), kExitIo);
}

TEST(InspectCli, TextFileIsNotElf) {
  TempDir tmp;
  WriteFileBytes(tmp.File("notes.txt"), "hello, this is not an executable\nsecond line\n");
  ExpectOneLineError(Inspect({"inspect", tmp.File("notes.txt")}), kExitNotElf);
}

TEST(InspectCli, EmptyFileIsNotElf) {
  TempDir tmp;
  WriteFileBytes(tmp.File("empty"), "");
  ExpectOneLineError(Inspect({"inspect", tmp.File("empty")}), kExitNotElf);
}

TEST(InspectCli, CProgramIsNotGo) {
  ASSERT_TRUE(std::filesystem::exists("/bin/ls"));
  auto r = Inspect({"inspect", "/bin/ls"});
  ExpectOneLineError(r, kExitNotGo);
  r = Inspect({"inspect", "--json", "/bin/ls"});
  ExpectOneLineError(r, kExitNotGo);
}

TEST(InspectCli, Elf32IsUnsupportedArch) {
  // A real 32-bit ELF when the system has one, and a synthesized ELF32 header either way.
  for (const char* candidate : {"/usr/lib32/libc.so.6", "/usr/lib32/libresolv.so.2", "/usr/lib32/libutil.so.1"}) {
    if (!std::filesystem::exists(candidate)) continue;
    SCOPED_TRACE(candidate);
    ExpectOneLineError(Inspect({"inspect", candidate}), kExitArch);
    break;
  }
  TempDir tmp;
  Elf32_Ehdr h{};
  std::copy_n(ELFMAG, SELFMAG, h.e_ident);
  h.e_ident[EI_CLASS] = ELFCLASS32;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = ET_EXEC;
  h.e_machine = EM_386;
  h.e_version = EV_CURRENT;
  h.e_ehsize = sizeof h;
  WriteFileBytes(tmp.File("elf32"), std::string(reinterpret_cast<const char*>(&h), sizeof h));
  ExpectOneLineError(Inspect({"inspect", tmp.File("elf32")}), kExitArch);
}

// --- with matrix binaries ------------------------------------------------------------------

class InspectCliMatrix : public ::testing::Test {
 protected:
  void SetUp() override {
    GOTLSCAP_REQUIRE_MATRIX();
    row_ = DefaultAmd64Row();
    ASSERT_NE(row_, nullptr) << "no default amd64 server in " << ManifestPath();
  }
  const MatrixRow* row_ = nullptr;
  TempDir tmp_;
};

TEST_F(InspectCliMatrix, JsonShape) {
  for (const auto& row : ManifestRows()) {
    if (row.prog != "server" || (row.variant != "default" && row.variant != "arm64-stripped")) continue;
    SCOPED_TRACE(::testing::Message() << row);
    auto r = Inspect({"inspect", "--json", row.path});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.err, "");
    // Exactly one JSON value, one line.
    ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    json j;
    ASSERT_NO_THROW(j = json::parse(r.out));
    ASSERT_TRUE(j.is_object());
    for (const char* key : {"path", "go_version", "arch", "abi"}) EXPECT_TRUE(j.at(key).is_string()) << key;
    for (const char* key : {"pie", "stripped"}) EXPECT_TRUE(j.at(key).is_boolean()) << key;
    ASSERT_TRUE(j.at("functions").is_object());
    std::set<std::string> names;
    for (auto& [name, f] : j["functions"].items()) {
      SCOPED_TRACE(name);
      names.insert(name);
      for (const char* key : {"address", "file_offset", "size", "args_size"})
        EXPECT_TRUE(f.at(key).is_number_unsigned()) << key;
      ASSERT_TRUE(f.at("ret_offsets").is_array());
      for (const auto& off : f["ret_offsets"]) {
        EXPECT_TRUE(off.is_number_unsigned());
        EXPECT_LT(off.get<uint64_t>(), f["size"].get<uint64_t>());
      }
    }
    for (const char* required : {"crypto/tls.(*Conn).writeRecordLocked", "crypto/tls.(*Conn).Read",
                                 "crypto/tls.(*Conn).Write", "crypto/tls.(*Config).writeKeyLog"})
      EXPECT_TRUE(names.count(required)) << required;
    // Text mode works too and names the functions.
    auto t = Inspect({"inspect", row.path});
    EXPECT_EQ(t.exit_code, 0) << t.Describe();
    EXPECT_THAT(t.out, HasSubstr("crypto/tls.(*Conn).Read"));
  }
}

TEST_F(InspectCliMatrix, Em386In64BitFileIsUnsupportedArch) {
  std::string data = ReadFileBytes(row_->path);
  ASSERT_EQ(data[EI_CLASS], ELFCLASS64);
  PutLe(data, offsetof(Elf64_Ehdr, e_machine), EM_386, 2);
  WriteFileBytes(tmp_.File("em386"), data);
  auto r = Inspect({"inspect", tmp_.File("em386")});
  ExpectOneLineError(r, kExitArch);
}

TEST_F(InspectCliMatrix, CorruptPclntabHeader) {
  auto sec = FindSection(row_->path, ".gopclntab");
  ASSERT_TRUE(sec.has_value()) << "no .gopclntab in " << row_->path;
  const std::string pristine = ReadFileBytes(row_->path);
  // Header after magic (4), pad (2), minLC (1), ptrSize (1): nfunc, nfiles, then the table
  // offsets (Go 1.16+ layout; 1.18+ has textStart before the offsets).
  struct Case {
    const char* what;
    size_t field_off;
    int nfields;
  };
  for (const Case& c : {Case{"nfunc", 8, 1}, Case{"table offsets", 24, 6}, Case{"nfunc and offsets", 8, 8}}) {
    SCOPED_TRACE(c.what);
    std::string data = pristine;
    for (int i = 0; i < c.nfields; i++) PutLe(data, sec->offset + c.field_off + 8 * i, 0x7ffffff0fffffff0ull - i, 8);
    const std::string path = tmp_.File("corrupt");
    WriteFileBytes(path, data);
    auto r = Inspect({"inspect", path});
    ExpectOneLineError(r, kExitCorrupt);
  }
}

TEST_F(InspectCliMatrix, TruncatedFileFailsCleanly) {
  for (const auto& row : ManifestRows()) {
    if (row.prog != "server" || (row.variant != "default" && row.variant != "stripped" && row.variant != "pie"))
      continue;
    SCOPED_TRACE(::testing::Message() << row);
    const std::string data = ReadFileBytes(row.path);
    const std::string path = tmp_.File("truncated");
    WriteFileBytes(path, data.substr(0, data.size() * 6 / 10));
    auto r = Inspect({"inspect", path});
    ExpectOneLineError(r, r.exit_code);
    EXPECT_THAT(r.exit_code, AnyOf(Eq(kExitNotGo), Eq(kExitCorrupt))) << r.Describe();
  }
}

TEST_F(InspectCliMatrix, ProgramWithoutCryptoTlsIsMissingFunction) {
  std::set<std::string> goroots;
  for (const auto& row : ManifestRows()) goroots.insert(row.goroot);
  const MatrixRow* any = &ManifestRows().front();
  for (const auto& goroot : goroots) {
    const std::string gofmt = goroot + "/bin/gofmt";
    SCOPED_TRACE(gofmt);
    if (!std::filesystem::exists(gofmt)) {
      ADD_FAILURE() << "toolchain without gofmt";
      continue;
    }
    MatrixRow r0 = *any;
    r0.goroot = goroot;
    auto v = RunCommand({GoBin(r0), "version", gofmt}, GoEnv(r0));
    ASSERT_EQ(v.exit_code, 0) << v.Describe();
    const std::string version = Trim(v.out.substr(v.out.rfind(": ") + 2));
    auto r = Inspect({"inspect", gofmt});
    ExpectOneLineError(r, kExitMissingFunction);
    EXPECT_THAT(r.err, HasSubstr("crypto/tls.(*Conn)."));
    EXPECT_THAT(r.err, HasSubstr(version));
  }
}

TEST_F(InspectCliMatrix, NoReturnInstruction) {
  auto ok = Inspect({"inspect", "--json", row_->path});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  const json j = json::parse(ok.out);
  const json& read = j.at("functions").at("crypto/tls.(*Conn).Read");
  const uint64_t file_offset = read.at("file_offset").get<uint64_t>();
  std::string data = ReadFileBytes(row_->path);
  auto rets = read.at("ret_offsets").get<std::vector<uint64_t>>();
  ASSERT_FALSE(rets.empty());
  for (uint64_t off : rets) {
    ASSERT_EQ(static_cast<unsigned char>(data[file_offset + off]), 0xC3) << "RET at +" << off;
    data[file_offset + off] = static_cast<char>(0xCC);
  }
  WriteFileBytes(tmp_.File("noret"), data);
  auto r = Inspect({"inspect", tmp_.File("noret")});
  ExpectOneLineError(r, kExitNoReturn);
  EXPECT_THAT(r.err, HasSubstr("crypto/tls.(*Conn).Read"));
}

}  // namespace
}  // namespace gotlscap::testenv
