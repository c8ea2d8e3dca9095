// End-to-end tests of `gotlscap ps`: matrix Go servers (Go 1.15, stack ABI, and the newest,
// register ABI) run alongside, and `gotlscap ps --json` must list them with the right version, ABI
// and TLS=yes; a non-Go process (`sleep`) never appears; a Go program without crypto/tls (gofmt,
// kept alive blocked on a FIFO) appears only with --all, marked TLS=no with a reason.
// Needs the matrix (skips without it, fails under CI=true); no root and no eBPF: the processes are
// the test's own.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;

// pid → object of each JSON line of `gotlscap ps ARGS --json`.
::testing::AssertionResult RunPsJson(const std::vector<std::string>& args, std::map<int, nlohmann::json>* out) {
  std::vector<std::string> argv = {GotlscapBin(), "ps", "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << r.Describe();
  int last = 0;
  for (const auto& line : SplitLines(r.out)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("pid"))
      return ::testing::AssertionFailure() << "not a JSON object: " << line;
    int pid = j["pid"].get<int>();
    if (pid <= last) return ::testing::AssertionFailure() << "not sorted by pid at " << pid << ":\n" << r.out;
    last = pid;
    (*out)[pid] = j;
  }
  return ::testing::AssertionSuccess();
}

// Waits until `pid` has exec'ed the program named `comm` (a fork that has not exec'ed yet still
// runs the test binary).
bool WaitExec(pid_t pid, const std::string& comm) {
  auto deadline = Clock::now() + seconds(10);
  while (Clock::now() < deadline) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string line;
    if (std::getline(f, line) && line == comm) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::vector<const MatrixRow*> ServerRows() {
  std::vector<const MatrixRow*> rows;
  if (HostGoArch() == "amd64")
    if (const MatrixRow* r = FindRow("1.15", "default", "server")) rows.push_back(r);  // stack ABI
  if (const MatrixRow* r = NewestRow("default", "server"); r && (rows.empty() || rows[0] != r)) rows.push_back(r);
  return rows;
}

TEST(PsE2eTest, ListsGoServersWithVersionAbiAndTls) {
  GOTLSCAP_REQUIRE_MATRIX();
  auto rows = ServerRows();
  ASSERT_FALSE(rows.empty()) << "no default server row for " << HostGoArch();
  std::vector<Server> servers(rows.size());
  for (size_t i = 0; i < rows.size(); i++) ASSERT_TRUE(StartServer(rows[i]->path, &servers[i]));
  Proc sleeper({"sleep", "300"});
  ASSERT_TRUE(WaitExec(sleeper.pid(), "sleep")) << sleeper.Describe();

  std::map<int, nlohmann::json> ps;
  ASSERT_TRUE(RunPsJson({}, &ps));
  for (size_t i = 0; i < rows.size(); i++) {
    const MatrixRow& row = *rows[i];
    SCOPED_TRACE(row.go_version);
    auto it = ps.find(servers[i].pid());
    ASSERT_NE(it, ps.end()) << "pid " << servers[i].pid() << " (" << row.path << ") not listed";
    const auto& j = it->second;
    EXPECT_EQ(j.value("comm", ""), "server");
    EXPECT_EQ(j.value("binary", ""), row.path);
    EXPECT_EQ(j.value("go_version", ""), row.go_version);
    EXPECT_EQ(j.value("abi", ""), row.Minor() <= 16 && row.goarch == "amd64" ? "stack" : "register");
    EXPECT_EQ(j.value("tls", false), true);
    EXPECT_EQ(j.value("uid", -1), static_cast<int>(geteuid()));
    EXPECT_FALSE(j.contains("reason"));
  }
  EXPECT_EQ(ps.count(sleeper.pid()), 0u) << "sleep (not Go) listed";

  // Text table: a header and one line per server.
  CommandResult text = RunCommand({GotlscapBin(), "ps"});
  ASSERT_EQ(text.exit_code, 0) << text.Describe();
  auto lines = SplitLines(text.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(SplitWs(lines[0]), (std::vector<std::string>{"PID", "COMM", "GO", "ABI", "TLS", "BINARY"}));
  for (size_t i = 0; i < rows.size(); i++) {
    bool found = false;
    for (const auto& l : lines) {
      auto f = SplitWs(l);
      if (f.size() == 6 && f[0] == std::to_string(servers[i].pid())) {
        found = true;
        EXPECT_EQ(f[2], rows[i]->go_version);
        EXPECT_EQ(f[4], "yes");
        EXPECT_EQ(f[5], rows[i]->path);
      }
    }
    EXPECT_TRUE(found) << servers[i].pid() << " not in:\n" << text.out;
  }
  for (const auto& l : lines) EXPECT_NE(SplitWs(l)[0], std::to_string(sleeper.pid())) << l;
}

TEST(PsE2eTest, GoWithoutCryptoTlsOnlyWithAll) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  const std::string gofmt = row->goroot + "/bin/gofmt";  // a Go program that does not link crypto/tls
  if (access(gofmt.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << gofmt;
  TempDir dir;
  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Proc go_no_tls({gofmt, fifo});  // blocks opening the FIFO until killed
  ASSERT_TRUE(WaitExec(go_no_tls.pid(), "gofmt")) << go_no_tls.Describe();

  std::map<int, nlohmann::json> by_default, all;
  ASSERT_TRUE(RunPsJson({}, &by_default));
  ASSERT_TRUE(RunPsJson({"--all"}, &all));
  EXPECT_EQ(by_default.count(go_no_tls.pid()), 0u);
  auto it = all.find(go_no_tls.pid());
  ASSERT_NE(it, all.end()) << "gofmt not listed by --all";
  EXPECT_EQ(it->second.value("tls", true), false);
  EXPECT_EQ(it->second.value("go_version", "").rfind("go1.", 0), 0u) << it->second.dump();
  EXPECT_NE(it->second.value("reason", "").find("crypto/tls"), std::string::npos) << it->second.dump();

  CommandResult text = RunCommand({GotlscapBin(), "ps"});
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.err.find("not attachable"), std::string::npos) << text.Describe();
}

}  // namespace
}  // namespace gotlscap::testenv
