// Shared helpers of the matrix and CLI tests: where the Go toolchain matrix lives
// (scripts/go-matrix.sh build), its manifest, and running subprocesses without a shell.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace gotlscap::testenv {

// ${GOTLSCAP_CACHE:-/var/cache/gotlscap}
std::string CacheDir();
// $CACHE/testprogs/manifest.tsv (or $GOTLSCAP_MANIFEST when set)
std::string ManifestPath();
bool ManifestExists();

// One row of manifest.tsv: "go_minor go_version variant goarch prog path twin goroot".
struct MatrixRow {
  std::string go_minor;    // "1.19"
  std::string go_version;  // "go1.19.8"
  std::string variant;     // default | pie | stripped | cgo | trimpath | arm64 | arm64-stripped
  std::string goarch;      // amd64 | arm64
  std::string prog;        // server | client | both
  std::string path;        // the binary under test
  std::string twin;        // unstripped build with the same code layout (may be empty)
  std::string goroot;      // toolchain that built it

  int Minor() const;              // 19 for "1.19"
  bool IsStrippedVariant() const;  // variant ends in "stripped"
  std::string TestName() const;   // "go1_19_arm64_stripped_server"
};
std::ostream& operator<<(std::ostream& os, const MatrixRow& r);

// All rows; empty if the manifest does not exist. A malformed manifest aborts (it is a
// broken matrix, not a reason to run zero tests).
std::vector<MatrixRow> ReadManifest();
// ReadManifest(), read once per process; what INSTANTIATE_TEST_SUITE_P iterates.
const std::vector<MatrixRow>& ManifestRows();

// `gotlscap` executable: $GOTLSCAP_BIN (set by ctest), else "gotlscap" next to the test binary.
std::string GotlscapBin();

struct CommandResult {
  int exit_code = -1;  // exit status, or 128+signal if killed by a signal
  std::string out;
  std::string err;
  std::string Describe() const;  // for failure messages
};

// fork + execvpe, argv passed verbatim (no shell). `env` entries "K=V" override/extend the
// current environment; "K" alone removes K. LC_ALL=C is always set.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// Environment for running the row's own toolchain (`go tool nm` etc.): GOROOT, no toolchain
// switching, no network, a GOCACHE (Go >= 1.25 builds nm/objdump on demand).
std::vector<std::string> GoEnv(const MatrixRow& row);
// argv prefix "$goroot/bin/go"
std::string GoBin(const MatrixRow& row);

// Records a skip (no manifest) or, under CI=true, a fatal failure. Use through
// GOTLSCAP_REQUIRE_MATRIX() which also returns from the test body.
void SkipOrFailWithoutMatrix();
bool IsCi();

// Temporary directory, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadFileBytes(const std::string& path);
std::string ReadFileRange(const std::string& path, uint64_t offset, uint64_t size);
void WriteFileBytes(const std::string& path, const std::string& data);
void CopyFile(const std::string& from, const std::string& to);

std::vector<std::string> SplitLines(const std::string& s);
std::vector<std::string> SplitWs(const std::string& s);
std::string Trim(const std::string& s);
std::optional<uint64_t> ParseU64(const std::string& s, int base);  // whole string must parse

}  // namespace gotlscap::testenv

#define GOTLSCAP_REQUIRE_MATRIX()                                                    \
  do {                                                                               \
    ::gotlscap::testenv::SkipOrFailWithoutMatrix();                                  \
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return; \
  } while (0)
