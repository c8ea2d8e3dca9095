// Every JSON gotlscap prints is valid JSON Lines whatever bytes its inputs hold (README "JSON
// output"): each byte that is not part of well-formed UTF-8 in a name becomes U+FFFD, payloads
// stay exact in base64. Checked with nlohmann's parser, which rejects invalid UTF-8:
//   - `inspect --json` of matrix binaries whose build info strings were damaged (chosen bytes,
//     and a sweep of random ones as a corrupted download gives): exit 0 with valid JSON, or a
//     one-line error; never a signal;
//   - `ps --json` of a Go server run from a directory and file name that are not UTF-8;
//   - `text --format json` of that server and a client (same kind of names) exchanging a header
//     whose value is not UTF-8 (obs-text), over HTTP/1.1 and HTTP/2: every line parses, names and
//     header values carry U+FFFD where the bytes were, the data events keep the raw bytes.
// inspect and ps need the matrix; the capture also needs root and BPF (skips otherwise, fails
// under CI=true).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr const char* kFffd = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Names that are not UTF-8: a lone continuation byte, a truncated sequence, 0xff.
const std::string kBadDir = "dir-\x80x\xe9";
const std::string kBadServer = "srv\xff\xfe";
const std::string kBadClient = "cli\xc3";
// What the JSON output must say for them.
const std::string kBadDirJson = std::string("dir-") + kFffd + "x" + kFffd;
const std::string kBadServerJson = std::string("srv") + kFffd + kFffd;
const std::string kBadClientJson = std::string("cli") + kFffd;
// tlsprog.Latin1Header / Latin1Value, and the value as the JSON output must show it.
const std::string kLatin1Header = "x-gotlscap-latin1";
const std::string kLatin1Value = "caf\xe9 \xff\xfe end";
const std::string kLatin1Json = std::string("caf") + kFffd + " " + kFffd + kFffd + " end";

// Each line of `out` parsed strictly; failures are added to `pr`.
std::vector<nlohmann::json> ParseJsonLines(const std::string& out, Problems& pr) {
  std::vector<nlohmann::json> lines;
  if (!out.empty() && out.back() != '\n') pr.Add("output does not end with a newline");
  size_t n = 0;
  for (const auto& line : SplitLines(out)) {
    n++;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      pr.Add("line " + std::to_string(n) + " is not a valid JSON object: " + line.substr(0, 200));
    else
      lines.push_back(std::move(j));
  }
  return lines;
}

// Offset and length of the modinfo text ("path\t..." to the last line) in a Go binary.
bool FindModInfo(const std::string& bin, size_t* start, size_t* len) {
  const size_t magic = bin.find("\xff Go buildinf:");
  if (magic == std::string::npos) return false;
  *start = bin.find("path\t", magic);
  if (*start == std::string::npos || *start - magic > 4096) return false;
  const size_t end = bin.find("\nbuild\t", *start);
  if (end == std::string::npos) return false;
  const size_t last = bin.find('\n', end + 1);
  *len = (last == std::string::npos ? end : last) - *start;
  return true;
}

TEST(JsonOutputE2E, InspectDamagedBuildInfoIsValidJson) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "client");
  ASSERT_NE(row, nullptr);
  const std::string orig = ReadFileBytes(row->path);
  size_t mi = 0, mi_len = 0;
  ASSERT_TRUE(FindModInfo(orig, &mi, &mi_len)) << row->path;
  TempDir dir;

  CommandResult clean = RunCommand({GotlscapBin(), "inspect", "--json", row->path});
  ASSERT_EQ(clean.exit_code, 0) << clean.Describe();
  const auto want = nlohmann::json::parse(clean.out);

  // Chosen damage: the main package path, the module path, a build setting's key.
  struct Case {
    std::string what, find;  // the bytes after `find` (in the modinfo) are replaced
    std::string bytes, field;  // field: the JSON field that shows the damage ("": a setting key)
  };
  const std::vector<Case> cases = {
      {"main path", "path\t", "\xe9\x80", "main_path"},
      {"module path", "mod\t", "\xff\xfe", "module_path"},
      {"setting key", "build\t-", "\xc3\x28", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const size_t at = orig.find(c.find, mi);
    ASSERT_LT(at, mi + mi_len);
    std::string damaged = orig;
    damaged.replace(at + c.find.size(), c.bytes.size(), c.bytes);
    const std::string path = dir.File("damaged");
    WriteFileBytes(path, damaged);
    CommandResult r = RunCommand({GotlscapBin(), "inspect", "--json", path});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    Problems pr;
    auto lines = ParseJsonLines(r.out, pr);
    ASSERT_EQ(pr.size(), 0u) << pr.str();
    ASSERT_EQ(lines.size(), 1u) << r.out;
    const auto& j = lines[0];
    // The hooks are untouched by damage to the build info.
    EXPECT_EQ(j["functions"], want["functions"]);
    if (!c.field.empty()) {
      // Both bytes replaced at the start of the value, one U+FFFD each.
      std::string expect = want[c.field].get<std::string>();
      expect.replace(0, c.bytes.size(), std::string(kFffd) + kFffd);
      EXPECT_EQ(j[c.field].get<std::string>(), expect);
    } else {
      bool found = false;
      // "-buildmode" became "-\xc3(ildmode": the lone lead byte is U+FFFD, "(" is kept.
      for (const auto& [k, v] : j["build_settings"].items()) found |= k == std::string("-") + kFffd + "(ildmode";
      EXPECT_TRUE(found) << j["build_settings"].dump();
    }
  }

  // A sweep of random damage in the modinfo text (fixed seed): 1-4 bytes set to random values.
  std::mt19937 rng(20);
  int ok = 0, errors = 0;
  Problems pr;
  for (int i = 0; i < 150; i++) {
    std::string damaged = orig;
    const int nbytes = 1 + int(rng() % 4);
    for (int b = 0; b < nbytes; b++) damaged[mi + rng() % mi_len] = char(rng() & 0xff);
    const std::string path = dir.File("sweep");
    WriteFileBytes(path, damaged);
    CommandResult r = RunCommand({GotlscapBin(), "inspect", "--json", path});
    if (r.exit_code == 0) {
      ok++;
      Problems lp;
      auto lines = ParseJsonLines(r.out, lp);
      if (lp.size() || lines.size() != 1) pr.Add("mutation " + std::to_string(i) + ": " + lp.str() + r.out.substr(0, 300));
    } else if (r.exit_code >= 128 || r.exit_code < 0) {
      pr.Add("mutation " + std::to_string(i) + " killed gotlscap: " + r.Describe());
    } else {
      errors++;
      const auto err_lines = SplitLines(r.err);
      if (err_lines.size() != 1 || r.err.rfind("gotlscap: ", 0) != 0)
        pr.Add("mutation " + std::to_string(i) + ": not a one-line error: " + r.Describe());
    }
  }
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  EXPECT_GT(ok, 0) << "no mutation left readable build info";
  RecordProperty("sweep_ok", ok);
  RecordProperty("sweep_errors", errors);
}

// The matrix's newest server and client copied as DIR/kBadDir/kBadServer and .../kBadClient.
struct BadNames {
  TempDir dir;
  std::string server, client;
};
::testing::AssertionResult CopyWithBadNames(BadNames* b) {
  const MatrixRow* s = NewestRow("default", "server");
  const MatrixRow* c = NewestRow("default", "client");
  if (!s || !c) return ::testing::AssertionFailure() << "no default server/client row";
  fs::create_directories(b->dir.File(kBadDir));
  b->server = b->dir.File(kBadDir + "/" + kBadServer);
  b->client = b->dir.File(kBadDir + "/" + kBadClient);
  CopyFile(s->path, b->server);
  CopyFile(c->path, b->client);
  return ::testing::AssertionSuccess();
}

TEST(JsonOutputE2E, PsNamesThatAreNotUtf8) {
  GOTLSCAP_REQUIRE_MATRIX();
  BadNames b;
  ASSERT_TRUE(CopyWithBadNames(&b));
  Server srv;
  ASSERT_TRUE(StartServer(b.server, &srv));
  CommandResult r = RunCommand({GotlscapBin(), "ps", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  Problems pr;
  auto lines = ParseJsonLines(r.out, pr);
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  bool found = false;
  for (const auto& j : lines) {
    if (j.value("pid", 0) != srv.pid()) continue;
    found = true;
    EXPECT_EQ(j.value("comm", ""), kBadServerJson);
    EXPECT_EQ(j.value("binary", ""), b.dir.path() + "/" + kBadDirJson + "/" + kBadServerJson);
    EXPECT_EQ(j.value("tls", false), true);
  }
  EXPECT_TRUE(found) << "server pid " << srv.pid() << " not listed:\n" << r.out;
}

TEST(JsonOutputE2E, CaptureNamesAndHeadersThatAreNotUtf8) {
  GOTLSCAP_REQUIRE(SkipOrFailUnlessReady(BpfProblem("capture")));
  BadNames b;
  ASSERT_TRUE(CopyWithBadNames(&b));
  Proc cap({GotlscapBin(), "text", "--format", "json", "-e", b.server, "-e", b.client});
  ASSERT_TRUE(cap.WaitLine(2, "ready", seconds(60))) << cap.Describe();
  Server srv;
  ASSERT_TRUE(StartServer(b.server, &srv));
  for (bool h2 : {false, true}) {
    std::vector<std::string> args = {b.client, "-url", srv.url(), "-mode", "headers", "-n", "2", "-latin1-header",
                                     "-tls", "1.3"};
    if (h2) args.push_back("-h2");
    ProcRun c = RunToEnd(args);
    ASSERT_EQ(c.exit_code, 0) << c.describe;
  }
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  cap.Signal(SIGINT);
  ASSERT_EQ(cap.Wait(seconds(30)), 0) << cap.Describe();

  Problems pr;
  auto lines = ParseJsonLines(cap.Out(), pr);
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  // Per (side, proto, kind): the messages carrying the header, with its value as shown.
  std::map<std::string, int> seen;
  bool raw_in_data = false;
  for (const auto& j : lines) {
    const std::string type = j.value("type", "");
    if (type == "data" || type == "http" || type == "close") {
      const bool server = j.value("pid", 0) == srv.pid();
      EXPECT_EQ(j.value("comm", ""), server ? kBadServerJson : kBadClientJson) << j.dump();
    }
    if (type == "data") {
      bool ok = false;
      const std::string payload = Base64Decode(j.value("payload_b64", ""), &ok);
      EXPECT_TRUE(ok);
      raw_in_data |= payload.find(kLatin1Value) != std::string::npos;  // HTTP/1.1: as sent
    }
    if (type != "http") continue;
    for (const auto& h : j["headers"]) {
      std::string name = h[0].get<std::string>();
      for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
      if (name != kLatin1Header) continue;
      EXPECT_EQ(h[1].get<std::string>(), kLatin1Json) << j.dump();
      seen[(j.value("pid", 0) == srv.pid() ? "server " : "client ") + j.value("proto", "") + " " +
           j.value("kind", "")]++;
    }
  }
  EXPECT_TRUE(raw_in_data) << "the raw header bytes are in no data event";
  for (const char* side : {"server", "client"})
    for (const char* proto : {"HTTP/1.1", "HTTP/2"})
      for (const char* kind : {"request", "response"}) {
        const std::string key = std::string(side) + " " + proto + " " + kind;
        EXPECT_EQ(seen[key], 2) << key;
      }
}

}  // namespace
}  // namespace gotlscap::testenv
