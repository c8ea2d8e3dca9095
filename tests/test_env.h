// Shared helpers of the matrix and CLI tests: where the Go toolchain matrix lives
// (scripts/go-matrix.sh build), its manifest, and running subprocesses without a shell.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
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
  std::string variant;     // default | pie | stripped | cgo | trimpath | arm64 | arm64-pie | arm64-stripped
                           // (on an arm64 machine its arm64 rows read default | pie | stripped)
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

// This machine's GOARCH: "amd64", "arm64" (else uname's machine name).
std::string HostGoArch();
// The row of `prog` built by toolchain `go_minor` ("1.19") as `variant` for HostGoArch(); nullptr
// if the matrix has none.
const MatrixRow* FindRow(const std::string& go_minor, const std::string& variant, const std::string& prog);
// The row of `prog` built as `variant` for HostGoArch() by the newest toolchain; nullptr if none.
const MatrixRow* NewestRow(const std::string& variant, const std::string& prog);
// Name of a parameterized test over server rows: MatrixRow::TestName() without "_server".
std::string ServerRowName(const ::testing::TestParamInfo<MatrixRow>& info);

// Records a skip (no manifest) or, under CI=true, a fatal failure. Use through
// GOTLSCAP_REQUIRE_MATRIX() which also returns from the test body.
void SkipOrFailWithoutMatrix();
bool IsCi();
// A skip for `why`, or under CI=true a fatal failure (the test needs what `why` says is missing).
void SkipOrFail(const std::string& why);
// Empty `why`: SkipOrFailWithoutMatrix(); else SkipOrFail(why). For environment checks that
// want more than the matrix (see BpfProblem).
void SkipOrFailUnlessReady(const std::string& why);
// What keeps `who` tests ("capture", "keylog") from attaching eBPF uprobes (not root, no kernel
// BTF), or "" when nothing does.
std::string BpfProblem(const std::string& who);

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

// Copies the row's binary to DIR/SUBDIR/PROG: its own inode, so the uprobes of one test see only
// its own processes (tests may run in parallel), and the name, hence comm, stays the program's.
std::string CopyBinary(const TempDir& dir, const MatrixRow& row, const std::string& subdir = "bin");

std::string ReadFileBytes(const std::string& path);
std::string ReadFileRange(const std::string& path, uint64_t offset, uint64_t size);
void WriteFileBytes(const std::string& path, const std::string& data);
void CopyFile(const std::string& from, const std::string& to);

std::vector<std::string> SplitLines(const std::string& s);
std::vector<std::string> SplitWs(const std::string& s);
std::vector<std::string> SplitTabs(const std::string& s);  // every field, empty ones too
std::string Trim(const std::string& s);
std::optional<uint64_t> ParseU64(const std::string& s, int base);  // whole string must parse

// The test programs' deterministic payload (testdata/go/internal/tlsprog/payload.go): a 32-bit
// LCG, x = x*1664525 + 1013904223, each byte the top 8 bits.
std::string PayloadBytes(size_t n, uint32_t seed);
// Standard base64 (the JSON output's payload_b64/body_b64); *ok false on malformed input.
std::string Base64Decode(const std::string& in, bool* ok);

// Collects failure messages and reports at most `keep` of them, so one broken capture does not
// print thousands of lines.
class Problems {
 public:
  explicit Problems(size_t keep = 15) : keep_(keep) {}
  void Add(const std::string& what) {
    n_++;
    if (list_.size() < keep_) list_.push_back(what);
  }
  size_t size() const { return n_; }
  std::string str() const {
    std::ostringstream os;
    for (const auto& p : list_) os << "  - " << p << "\n";
    if (n_ > list_.size()) os << "  ... and " << (n_ - list_.size()) << " more\n";
    return os.str();
  }

 private:
  size_t keep_;
  size_t n_ = 0;
  std::vector<std::string> list_;
};

// Server and client of one toolchain (`go_minor`, or the newest when empty), default build,
// copied into their own directory (uprobes belong to a file: a test sees only its processes).
struct Programs {
  TempDir dir;
  std::string server, client;
};

::testing::AssertionResult CopyPrograms(const std::string& go_minor, Programs* p);
// The default servers of the stack-ABI toolchain (1.15), an early register-ABI one (1.19) and the
// newest: where protocol-level tests run.
std::vector<MatrixRow> AbiSpanServerRows();

}  // namespace gotlscap::testenv

// Runs `check` (a call that may record a skip or a fatal failure) and returns from the test
// body if it did.
#define GOTLSCAP_REQUIRE(check)                                                      \
  do {                                                                               \
    check;                                                                           \
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return; \
  } while (0)

#define GOTLSCAP_REQUIRE_MATRIX() GOTLSCAP_REQUIRE(::gotlscap::testenv::SkipOrFailWithoutMatrix())
