// gotlscap run the way a Kubernetes DaemonSet runs it: in a mount namespace and root file system of
// its own (a minimal root holding only gotlscap and its shared libraries, as a container image
// would), with the host's pid namespace and the host's /proc, /sys and /dev mounted in, tracing
// programs that live outside its root:
//   - whole-host following: a Go server and client started on the host after `ready` are attached
//     (named /proc/PID/root/PATH, the only path that opens them from gotlscap's root) and their
//     exchange is captured;
//   - `-e /proc/PID/root/PATH` of a running server: its traffic is captured.
// Needs root, BPF, unshare, mount and chroot, and the matrix (skips otherwise, fails under CI=true).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host_test_lock.h"
#include "test_env.h"
#include "test_process.h"
#include "tls_traffic.h"

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// DIR/root: gotlscap at /gotlscap with every library `ldd` lists, at the same paths; empty
// mount points for proc, sys and dev.
::testing::AssertionResult MakeMinimalRoot(const TempDir& dir, std::string* root) {
  *root = dir.File("root");
  for (const char* d : {"proc", "sys", "dev", "tmp", "out"}) fs::create_directories(*root + "/" + d);
  CopyFile(GotlscapBin(), *root + "/gotlscap");
  fs::permissions(*root + "/gotlscap", fs::perms::owner_all);
  CommandResult ldd = RunCommand({"ldd", GotlscapBin()});
  if (ldd.exit_code != 0) return ::testing::AssertionFailure() << ldd.Describe();
  size_t libs = 0;
  for (const auto& line : SplitLines(ldd.out)) {
    for (const auto& word : SplitWs(line)) {
      if (word.empty() || word[0] != '/') continue;
      const std::string to = *root + word;
      fs::create_directories(fs::path(to).parent_path());
      fs::copy_file(word, to, fs::copy_options::overwrite_existing);  // follows symlinks
      fs::permissions(to, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
      libs++;
      break;
    }
  }
  if (libs < 5) return ::testing::AssertionFailure() << "ldd listed only " << libs << " libraries:\n" << ldd.out;
  return ::testing::AssertionSuccess();
}

// `unshare -m` (a mount namespace of its own, host pid namespace), the host's /proc, /sys (BTF,
// cgroups, bpffs) and /dev mounted into `root`, then `chroot root /gotlscap ARGS`.
std::vector<std::string> InOwnRoot(const std::string& root, const std::vector<std::string>& args) {
  std::string script =
      "set -e; r=$0; mount -t proc proc \"$r/proc\"; mount --rbind /sys \"$r/sys\"; mount --rbind /dev \"$r/dev\"; "
      "exec chroot \"$r\" /gotlscap \"$@\"";
  std::vector<std::string> argv = {"unshare", "-m", "--propagation", "private", "sh", "-c", script, root};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

struct Events {
  std::vector<nlohmann::json> lines;
  size_t invalid = 0;
};
Events ReadEvents(const std::string& path, const std::set<int>& pids) {
  Events e;
  std::ifstream in(path, std::ios::binary);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      e.invalid++;
      continue;
    }
    if (pids.count(j.value("pid", 0))) e.lines.push_back(std::move(j));
  }
  return e;
}

// The echo request the client wrote and the server read, both seen.
void ExpectEchoCaptured(const Events& ev, int server, int client, const std::string& what) {
  bool client_wrote = false, server_read = false, server_wrote = false;
  for (const auto& j : ev.lines) {
    if (j.value("type", "") != "data") continue;
    bool ok = false;
    const std::string payload = Base64Decode(j.value("payload_b64", ""), &ok);
    const bool request = payload.rfind("POST /echo", 0) == 0;
    const std::string dir = j.value("dir", "");
    if (j.value("pid", 0) == client && dir == "write" && request) client_wrote = true;
    if (j.value("pid", 0) == server && dir == "read" && request) server_read = true;
    if (j.value("pid", 0) == server && dir == "write" && payload.rfind("HTTP/1.1 200", 0) == 0) server_wrote = true;
  }
  EXPECT_TRUE(client_wrote) << what << ": the client's request was not captured";
  EXPECT_TRUE(server_read) << what << ": the server's read of the request was not captured";
  EXPECT_TRUE(server_wrote) << what << ": the server's response was not captured";
}

std::vector<std::string> EchoClient(const std::string& client, const std::string& url) {
  return {client, "-url", url, "-mode", "echo", "-n", "2", "-size", "3000", "-seed", "77"};
}

void RequireEnv() {
  SkipOrFailUnlessReady(BpfProblem("capture"));
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
  for (const char* tool : {"unshare", "mount", "chroot", "ldd", "sh"})
    if (!InPath(tool)) return SkipOrFail(std::string("the DaemonSet-style test needs `") + tool + "` in PATH");
}

TEST(DaemonSetE2E, OwnRootFollowsTheHostAndTracesThroughProcRoot) {
  GOTLSCAP_REQUIRE(RequireEnv());
  GOTLSCAP_REQUIRE_MATRIX();
  HOST_TEST_LOCK(lock);
  Programs p;  // outside the minimal root: not reachable by gotlscap's own paths
  ASSERT_TRUE(CopyPrograms("", &p));
  TempDir dir;
  std::string root;
  ASSERT_TRUE(MakeMinimalRoot(dir, &root));
  ASSERT_FALSE(fs::exists(root + p.server)) << "the root must not hold the programs";

  // 1. Whole host: programs started after `ready`.
  {
    Proc cap(InOwnRoot(root, {"text", "--format", "json", "-o", "/out/host.jsonl"}));
    ASSERT_TRUE(cap.WaitLine(2, "ready: following the host", seconds(120))) << cap.Describe();
    Server srv;
    ASSERT_TRUE(StartServer(p.server, &srv));
    ProcRun c = RunToEnd(EchoClient(p.client, srv.url()));
    ASSERT_EQ(c.exit_code, 0) << c.describe;
    srv.proc->Signal(SIGTERM);
    srv.proc->Wait(seconds(10));
    cap.Signal(SIGINT);
    ASSERT_EQ(cap.Wait(seconds(60)), 0) << cap.Describe();
    const std::string err = cap.Err();
    // Named by a path that opens them from gotlscap's root: through their own root.
    EXPECT_NE(err.find("attached go"), std::string::npos) << err;
    EXPECT_NE(err.find(" /proc/" + std::to_string(srv.pid()) + "/root" + p.server), std::string::npos)
        << "the server should be named /proc/" << srv.pid() << "/root" << p.server << ":\n" << err;
    auto ev = ReadEvents(root + "/out/host.jsonl", {srv.pid(), c.pid});
    EXPECT_EQ(ev.invalid, 0u);
    ExpectEchoCaptured(ev, srv.pid(), c.pid, "whole host from its own root");
  }

  // 2. -e through /proc/PID/root of a server already running.
  {
    Server srv;
    ASSERT_TRUE(StartServer(p.server, &srv));
    const std::string via = "/proc/" + std::to_string(srv.pid()) + "/root" + p.server;
    Proc cap(InOwnRoot(root, {"text", "--format", "json", "-o", "/out/e.jsonl", "-e", via}));
    ASSERT_TRUE(cap.WaitLine(2, "ready", seconds(120))) << cap.Describe();
    ProcRun c = RunToEnd(EchoClient(p.client, srv.url()));
    ASSERT_EQ(c.exit_code, 0) << c.describe;
    srv.proc->Signal(SIGTERM);
    srv.proc->Wait(seconds(10));
    cap.Signal(SIGINT);
    ASSERT_EQ(cap.Wait(seconds(60)), 0) << cap.Describe();
    auto ev = ReadEvents(root + "/out/e.jsonl", {srv.pid(), c.pid});
    EXPECT_EQ(ev.invalid, 0u);
    size_t server_events = 0, client_events = 0;
    for (const auto& j : ev.lines) (j.value("pid", 0) == srv.pid() ? server_events : client_events)++;
    EXPECT_GT(server_events, 0u) << "nothing of the server traced through " << via;
    EXPECT_EQ(client_events, 0u) << "only the -e binary is traced";
    bool read_request = false;
    for (const auto& j : ev.lines) {
      bool ok = false;
      if (j.value("type", "") == "data" && j.value("dir", "") == "read" &&
          Base64Decode(j.value("payload_b64", ""), &ok).rfind("POST /echo", 0) == 0)
        read_request = true;
    }
    EXPECT_TRUE(read_request) << "the server's read of the request was not captured";
  }
}

}  // namespace
}  // namespace gotlscap::testenv
