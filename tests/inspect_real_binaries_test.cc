// gotlscap inspect on real third-party Go binaries built by Go 1.16-1.18 and 1.20-1.23 (the
// versions Debian has no toolchain for), fetched by scripts/real-binaries.sh. All are stripped,
// so the oracles are Go's own debug/buildinfo + debug/gosym (tests/oracle/gosym) for versions and
// function bounds, and LLVM's disassembler (llvm-objdump, not Capstone) for return sites.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"

namespace gotlscap::testenv {
namespace {

struct RealBinary {
  std::string label;  // "go1.17-arm64"
  std::string path;
};

std::string RealManifest() { return CacheDir() + "/real/manifest.tsv"; }
std::string OraclePath() { return CacheDir() + "/oracle/gosym-oracle"; }

std::vector<RealBinary> ReadRealManifest() {
  std::vector<RealBinary> rows;
  std::ifstream in(RealManifest());
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    auto tab = line.find('\t');
    if (tab != std::string::npos) rows.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return rows;
}

const std::vector<RealBinary>& RealRows() {
  static const std::vector<RealBinary> rows = ReadRealManifest();
  return rows;
}

// Return sites per llvm-objdump: "ret" alone is RET/RET X30; "ret x5" (arm64) is a tail call.
std::vector<uint64_t> LlvmRets(const std::string& path, uint64_t start, uint64_t end) {
  auto r = RunCommand({"llvm-objdump", "-d", "--no-show-raw-insn", "--start-address=" + std::to_string(start),
                       "--stop-address=" + std::to_string(end), path});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<uint64_t> rets;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream insn(line.substr(colon + 1));
    std::string mnemonic, operand;
    insn >> mnemonic >> operand;
    if ((mnemonic == "ret" || mnemonic == "retq") && operand.empty())
      rets.push_back(std::stoull(line.substr(0, colon), nullptr, 16) - start);
  }
  return rets;
}

class RealBinaries : public ::testing::TestWithParam<RealBinary> {};

TEST_P(RealBinaries, MatchesGoDebugGosymAndLlvmObjdump) {
  const RealBinary& b = GetParam();
  auto ours = RunCommand({GotlscapBin(), "inspect", "--json", b.path});
  ASSERT_EQ(ours.exit_code, 0) << ours.Describe();
  auto j = nlohmann::json::parse(ours.out);

  std::vector<std::string> argv = {OraclePath(), b.path};
  for (auto& [name, _] : j["functions"].items()) argv.push_back(name);
  auto oracle_run = RunCommand(argv);
  ASSERT_EQ(oracle_run.exit_code, 0) << oracle_run.Describe();
  auto oracle = nlohmann::json::parse(oracle_run.out);

  // Version: Go's buildinfo prints "go1.16" for a .0 release; we normalise to go1.16.0.
  std::string want = oracle["version"];
  if (std::count(want.begin(), want.end(), '.') == 1) want += ".0";
  EXPECT_EQ(j["go_version"], want);
  EXPECT_EQ(j["main_path"], oracle["path"]);
  EXPECT_EQ(j["module_path"], oracle["module"]);
  for (auto& [k, v] : oracle["settings"].items()) EXPECT_EQ(j["build_settings"][k], v) << k;

  // The label says which Go minor and arch built it.
  const bool arm64 = b.label.find("arm64") != std::string::npos;
  const int minor = std::stoi(b.label.substr(4));
  EXPECT_EQ(j["arch"], arm64 ? "arm64" : "amd64");
  EXPECT_EQ(j["abi"], minor >= (arm64 ? 18 : 17) ? "register" : "stack");

  ASSERT_EQ(j["functions"].size(), oracle["functions"].size());
  for (auto& [name, f] : j["functions"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(oracle["functions"].contains(name));
    const uint64_t entry = oracle["functions"][name]["entry"], end = oracle["functions"][name]["end"];
    EXPECT_EQ(f["address"].get<uint64_t>(), entry);
    EXPECT_EQ(f["size"].get<uint64_t>(), end - entry);
    EXPECT_EQ(f["ret_offsets"].get<std::vector<uint64_t>>(), LlvmRets(b.path, entry, end));
  }
  for (const char* required : {"crypto/tls.(*Conn).writeRecordLocked", "crypto/tls.(*Conn).Read",
                               "crypto/tls.(*Conn).Write", "crypto/tls.(*Config).writeKeyLog"})
    EXPECT_TRUE(j["functions"].contains(required)) << required;
}

// Runs even without the corpus so that CI notices a missing corpus instead of passing silently.
TEST(RealBinariesCorpus, IsPresent) {
  if (!RealRows().empty() && access(OraclePath().c_str(), X_OK) == 0) return;
  if (IsCi()) FAIL() << "real-binary corpus missing under CI: run scripts/real-binaries.sh fetch";
  GTEST_SKIP() << "real-binary corpus missing: run scripts/real-binaries.sh fetch";
}

INSTANTIATE_TEST_SUITE_P(Corpus, RealBinaries, ::testing::ValuesIn(RealRows()), [](const auto& info) {
  std::string n = info.param.label;
  for (char& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
});
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RealBinaries);

}  // namespace
}  // namespace gotlscap::testenv
