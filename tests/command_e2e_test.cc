// End-to-end tests of `gotlscap text|keylog|pcap [options] -- COMMAND [ARGS...]` (issue 11): the
// command is started once every probe is attached, so a Go client that makes its requests and
// exits at once is captured from its first request and first secret; only the command's process
// tree is captured (a shell that execs the client, a script file, a client left behind by a shell
// that exited), never another client of the same binary file making requests at the same time
// (a "bystander": the uprobes fire for it too, the kernel's pid filter drops it); gotlscap exits
// with the command's exit code, once the tree has exited; the command's stdout goes to gotlscap's
// stderr when the capture is written to stdout.
//   - text: the JSON events hold exactly the client's payloads, all from its pid;
//   - keylog: tshark decrypts dumpcap's capture with the key file, whose lines are exactly the
//     client's own key log (-keylog);
//   - pcap: tshark decrypts the file alone, and every packet's comment names the client's pid;
//     also with a filter, and `-w -`;
//   - exit codes (0, 3, killed, not found), a forwarded SIGTERM, --run-as and the sudo default,
//     usage errors.
// Needs root, BPF, the matrix, tshark/dumpcap: skips otherwise, fails under CI=true.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"
#include "tls_traffic.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kExitUsage = 2;  // src/cli/exit_codes.h

void RequireCommandEnv(bool wireshark) {
  std::string why = BpfProblem("-- COMMAND");
  if (why.empty() && wireshark && (!InPath("tshark") || !InPath("dumpcap")))
    why = "-- COMMAND tests need tshark and dumpcap (apt-get install tshark)";
  SkipOrFailUnlessReady(why);
}
#define REQUIRE_COMMAND_ENV(wireshark) GOTLSCAP_REQUIRE(RequireCommandEnv(wireshark))

// `client -url URL -mode echo -n N -size SIZE -seed SEED [-keylog REF]`: N POSTs of Payload(SIZE,
// SEED+i) on one connection, then it exits.
std::vector<std::string> ClientArgs(const std::string& client, const std::string& url, int n, size_t size,
                                    uint32_t seed, const std::string& reflog = "") {
  std::vector<std::string> a = {client, "-url", url, "-mode", "echo", "-n", std::to_string(n),
                                "-size", std::to_string(size), "-seed", std::to_string(seed)};
  if (!reflog.empty()) a.insert(a.end(), {"-keylog", reflog});
  return a;
}

// One shell word.
std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
std::string ShellLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) line += (line.empty() ? "" : " ") + Quote(a);
  return line;
}

// `gotlscap MODE ARGS... -- COMMAND...`, to its end.
ProcRun RunUnder(const std::string& mode, std::vector<std::string> args, const std::vector<std::string>& command) {
  std::vector<std::string> argv = {GotlscapBin(), mode};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return RunToEnd(argv, seconds(60));
}

// The pid of COMMAND, from "ready: running X (pid N), ..."; -1 if none.
pid_t CommandPid(const std::string& err) {
  static const std::regex re(R"(ready: running .* \(pid (\d+)\))");
  std::smatch m;
  return std::regex_search(err, m, re) ? std::stoi(m[1]) : -1;
}

// Another client of the same binary file, outside every tree, making requests all along.
class Bystander {
 public:
  Bystander(const std::string& client, const std::string& url) {
    thread_ = std::thread([this, client, url] {
      for (uint32_t i = 0; !stop_.load(); i++) {
        ProcRun r = RunToEnd(ClientArgs(client, url, 2, 700, 900000 + i * 10), seconds(30));
        std::lock_guard<std::mutex> l(mu_);
        if (r.exit_code == 0) runs_++;
      }
    });
  }
  ~Bystander() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int runs() {
    std::lock_guard<std::mutex> l(mu_);
    return runs_;
  }
  // Waits until it completed `n` more runs than `since` (it was busy meanwhile).
  bool WaitRuns(int since, int n) {
    const auto deadline = Clock::now() + seconds(20);
    while (runs() < since + n)
      if (Clock::now() > deadline) return false;
      else std::this_thread::sleep_for(milliseconds(10));
    return true;
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  int runs_ = 0;
};

// A script file that execs its arguments (the tree: sh, then the client in its place).
std::string ExecScript(const TempDir& dir) {
  const std::string path = dir.File("run-client.sh");
  WriteFileBytes(path, "#!/bin/sh\n# a wrapper, as deployments have them\nexec \"$@\"\n");
  chmod(path.c_str(), 0755);
  return path;
}

// ------------------------------------------------------------------------------------------
// text
// ------------------------------------------------------------------------------------------

struct JsonCapture {
  std::map<int64_t, std::string> wrote, read;  // pid -> payload bytes, in order
  std::set<int64_t> pids;                      // of every event that carries one
  size_t events = 0;
  std::string problems;
};

JsonCapture ParseJson(const std::string& out) {
  JsonCapture c;
  for (const auto& line : SplitLines(out)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      c.problems += "not JSON: " + line.substr(0, 200) + "\n";
      continue;
    }
    c.events++;
    if (j.contains("pid")) c.pids.insert(j["pid"].get<int64_t>());
    if (j.value("type", "") != "data") continue;
    bool ok = false;
    std::string bytes = Base64Decode(j.value("payload_b64", ""), &ok);
    if (!ok) c.problems += "bad payload_b64\n";
    (j.value("dir", "") == "write" ? c.wrote : c.read)[j["pid"].get<int64_t>()] += bytes;
  }
  return c;
}

TEST(CommandE2E, TextCapturesTheTreeFromItsFirstRequestAndNothingElse) {
  REQUIRE_COMMAND_ENV(false);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  Bystander bystander(progs.client, srv.url());
  ASSERT_TRUE(bystander.WaitRuns(0, 1)) << "the bystander client never completed a run";
  const std::string script = ExecScript(progs.dir);

  struct Variant {
    const char* name;
    std::vector<std::string> command;
    int exit_code;
    bool root_is_client;  // the client runs under COMMAND's own pid (exec)
  };
  const uint32_t seed = 100;
  const int n = 3;
  const size_t size = 3000;
  auto client = [&](uint32_t s) { return ClientArgs(progs.client, srv.url(), n, size, s); };
  std::vector<Variant> variants;
  variants.push_back({"direct", client(seed), 0, true});
  variants.push_back({"sh -c exec", {"sh", "-c", "exec " + ShellLine(client(seed + 10))}, 0, true});
  std::vector<std::string> via_script = {script};
  for (const auto& a : client(seed + 20)) via_script.push_back(a);
  variants.push_back({"script file", via_script, 0, true});
  // The shell exits at once; its client, reparented to gotlscap, is still followed and waited for.
  variants.push_back({"orphan", {"sh", "-c", ShellLine(client(seed + 30)) + " & exit 5"}, 5, false});

  for (size_t v = 0; v < variants.size(); v++) {
    const Variant& var = variants[v];
    SCOPED_TRACE(var.name);
    ProcRun r = RunUnder("text", {"--format", "json"}, var.command);
    ASSERT_EQ(r.exit_code, var.exit_code) << r.describe;
    // The capture is on stdout: the client's own stdout went to our stderr.
    EXPECT_THAT(r.err, HasSubstr("client: ok requests=3 ")) << r.describe;
    EXPECT_THAT(r.out, Not(HasSubstr("client: ok")));
    const pid_t root = CommandPid(r.err);
    ASSERT_GT(root, 0) << r.err;
    JsonCapture c = ParseJson(r.out);
    EXPECT_EQ(c.problems, "");
    ASSERT_EQ(c.pids.size(), 1u) << "events of other processes (the bystander?): " << r.err;
    const int64_t pid = *c.pids.begin();
    if (var.root_is_client) {
      EXPECT_EQ(pid, root);
    } else {
      EXPECT_NE(pid, root);
    }
    // Every request of the client, the first one included, both ways.
    for (int i = 0; i < n; i++) {
      const std::string payload = PayloadBytes(size, seed + 10 * v + i);
      EXPECT_NE(c.wrote[pid].find(payload), std::string::npos) << "request " << i << " not captured";
      EXPECT_NE(c.read[pid].find(payload), std::string::npos) << "echo " << i << " not captured";
    }
    EXPECT_THAT(r.err, HasSubstr("summary: ")) << r.err;
    EXPECT_THAT(r.err, HasSubstr(" 0 lost, ")) << r.err;
  }
  EXPECT_GE(bystander.runs(), 2) << "the bystander was not making requests meanwhile";
}

// ------------------------------------------------------------------------------------------
// keylog
// ------------------------------------------------------------------------------------------

TEST(CommandE2E, KeylogDecryptsDumpcapsCaptureOfTheTreeOnly) {
  REQUIRE_COMMAND_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  const std::string keyfile = progs.dir.File("keys.log"), pcap = progs.dir.File("dumpcap.pcapng");
  const std::string ref1 = progs.dir.File("ref1.log"), ref2 = progs.dir.File("ref2.log");
  Sentinel sentinel;
  Dumpcap dumpcap("lo", PortFilter({srv.port, sentinel.port()}), pcap);
  ASSERT_TRUE(dumpcap.Start(sentinel));
  Bystander bystander(progs.client, srv.url());
  ASSERT_TRUE(bystander.WaitRuns(0, 1));

  // Directly, and through a script file that execs the client. The key file is not stdout: the
  // client's stdout is our stdout.
  ProcRun r1 = RunUnder("keylog", {"-k", keyfile}, ClientArgs(progs.client, srv.url(), 2, 500, 1, ref1));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  EXPECT_THAT(r1.out, HasSubstr("client: ok requests=2 "));
  std::vector<std::string> via_script = {ExecScript(progs.dir)};
  for (const auto& a : ClientArgs(progs.client, srv.url(), 3, 500, 2, ref2)) via_script.push_back(a);
  ProcRun r2 = RunUnder("keylog", {"-k", keyfile}, via_script);
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  EXPECT_THAT(r2.out, HasSubstr("client: ok requests=3 "));
  EXPECT_GE(bystander.runs(), 2) << "the bystander was not making requests meanwhile";
  bystander.Stop();
  EXPECT_TRUE(WaitConnectionsClosed({srv.port}));
  ASSERT_TRUE(dumpcap.Stop(sentinel));

  // The key file holds the client's own key log, line for line, and nothing of the bystander.
  std::set<std::string> ours, reference;
  for (const auto& l : SplitLines(ReadFileBytes(keyfile)))
    if (!l.empty()) ours.insert(l);
  for (const auto& f : {ref1, ref2})
    for (const auto& l : SplitLines(ReadFileBytes(f)))
      if (!l.empty()) reference.insert(l);
  EXPECT_FALSE(reference.empty());
  EXPECT_EQ(ours, reference);

  std::string raw;
  auto t = Tshark(pcap, keyfile, {srv.port}, &raw);
  PortTally tally = t.count(srv.port) ? t.at(srv.port) : PortTally{};
  EXPECT_EQ(tally.http1_requests, 5) << raw;
  EXPECT_EQ(tally.http1_responses, 5) << raw;
  EXPECT_GT(tally.client_randoms.size(), 2u) << "the bystander's handshakes are in dumpcap's capture too";
}

// ------------------------------------------------------------------------------------------
// pcap
// ------------------------------------------------------------------------------------------

// Every packet's comment, as tshark reads it (frame.comment), with the TCP ports.
std::vector<std::string> Comments(const std::string& file, std::string* raw) {
  CommandResult r = RunCommand({"tshark", "-n", "-r", file, "-T", "fields", "-e", "frame.comment", "-e", "tcp.srcport",
                                "-e", "tcp.dstport"},
                               TsharkEnv());
  *raw = r.out + r.err;
  std::vector<std::string> out;
  for (const auto& l : SplitLines(r.out))
    if (!l.empty()) out.push_back(SplitTabs(l)[0]);
  return out;
}

TEST(CommandE2E, PcapFileDecryptsAloneAndNamesTheClient) {
  REQUIRE_COMMAND_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  Bystander bystander(progs.client, srv.url());
  ASSERT_TRUE(bystander.WaitRuns(0, 1));

  struct Variant {
    const char* name;
    std::vector<std::string> args;  // after `pcap`
    std::vector<std::string> command;
  };
  const std::string f1 = progs.dir.File("direct.pcapng"), f2 = progs.dir.File("filtered.pcapng"),
                    f3 = progs.dir.File("stdout.pcapng");
  const std::string port = std::to_string(srv.port);
  std::vector<Variant> variants = {
      {"direct", {"-i", "lo", "-w", f1}, ClientArgs(progs.client, srv.url(), 3, 2000, 1)},
      {"sh -c exec, with a filter",
       {"-i", "lo", "-w", f2, "tcp", "port", port},
       {"sh", "-c", "exec " + ShellLine(ClientArgs(progs.client, srv.url(), 3, 2000, 2))}},
      {"-w -", {"-i", "lo", "-w", "-"}, ClientArgs(progs.client, srv.url(), 3, 2000, 3)},
  };
  for (const auto& var : variants) {
    SCOPED_TRACE(var.name);
    ProcRun r = RunUnder("pcap", var.args, var.command);
    ASSERT_EQ(r.exit_code, 0) << r.describe;
    std::string file = var.args[3];
    if (file == "-") {
      // The capture went to stdout, the client's stdout to our stderr.
      EXPECT_THAT(r.err, HasSubstr("client: ok requests=3 "));
      ASSERT_GE(r.out.size(), 4u);
      EXPECT_EQ(r.out.substr(0, 4), std::string("\x0a\x0d\x0d\x0a", 4)) << "stdout is not a pcapng file";
      file = f3;
      WriteFileBytes(file, r.out);
    } else {
      EXPECT_THAT(r.out, HasSubstr("client: ok requests=3 "));
    }
    const pid_t pid = CommandPid(r.err);
    ASSERT_GT(pid, 0) << r.err;

    std::string raw;
    auto t = Tshark(file, "", {srv.port}, &raw);
    PortTally tally = t.count(srv.port) ? t.at(srv.port) : PortTally{};
    EXPECT_EQ(tally.http1_requests, 3) << raw;
    EXPECT_EQ(tally.http1_responses, 3) << raw;
    EXPECT_EQ(tally.client_randoms.size(), 1u) << "only the client's connection: " << raw;

    // Every packet is the client's: its comment names the client's pid.
    const std::regex pid_re("(^| )pid=" + std::to_string(pid) + "( |,|$)");
    auto comments = Comments(file, &raw);
    EXPECT_GT(comments.size(), 6u) << raw;
    Problems probs;
    for (const auto& c : comments)
      if (!std::regex_search(c, pid_re)) probs.Add("comment `" + c + "` does not name pid " + std::to_string(pid));
    EXPECT_EQ(probs.size(), 0u) << probs.str() << raw;
  }
  EXPECT_GE(bystander.runs(), 2) << "the bystander was not making requests meanwhile";
}

// ------------------------------------------------------------------------------------------
// The command's exit, signals, user
// ------------------------------------------------------------------------------------------

TEST(CommandE2E, ExitsWithTheCommandsCodeOnceTheTreeHasEnded) {
  REQUIRE_COMMAND_ENV(false);
  TempDir dir;
  const std::string keys = dir.File("keys.log");
  struct Case {
    std::vector<std::string> command;
    int exit_code;
  };
  const std::vector<Case> cases = {
      {{"true"}, 0},
      {{"sh", "-c", "exit 3"}, 3},
      {{"sh", "-c", "kill -TERM $$"}, 128 + SIGTERM},
      {{"/nonexistent/gotlscap-test-command"}, 127},
  };
  for (const auto& c : cases) {
    ProcRun r = RunUnder("keylog", {"-k", keys}, c.command);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.describe;
    EXPECT_THAT(r.err, HasSubstr("summary: ")) << r.describe;
  }

  // The tree outlives the command: a process left behind is waited for.
  const auto start = Clock::now();
  ProcRun r = RunUnder("keylog", {"-k", keys}, {"sh", "-c", "sleep 1 & exit 4"});
  EXPECT_EQ(r.exit_code, 4) << r.describe;
  EXPECT_GE(Clock::now() - start, milliseconds(950)) << "gotlscap did not wait for the tree";

  // The first SIGTERM goes to the command; gotlscap exits with its code.
  Proc p({GotlscapBin(), "keylog", "-k", keys, "--", "sleep", "30"});
  ASSERT_TRUE(p.WaitLine(2, "ready: running sleep", seconds(30))) << p.Describe();
  p.Signal(SIGTERM);
  auto code = p.Wait(seconds(10));
  ASSERT_TRUE(code.has_value()) << p.Describe();
  EXPECT_EQ(*code, 128 + SIGTERM) << p.Describe();
}

TEST(CommandE2E, RunsAsTheSudoUserOrRunAs) {
  REQUIRE_COMMAND_ENV(false);
  TempDir dir;
  const std::string keys = dir.File("keys.log");
  // Under sudo: the invoking user (SUDO_UID/SUDO_GID) by default.
  ProcRun sudo = RunToEnd({"env", "SUDO_UID=65534", "SUDO_GID=65533", GotlscapBin(), "keylog", "-k", keys, "--", "sh",
                           "-c", "echo uid=$(id -u) gid=$(id -g)"},
                          seconds(60));
  EXPECT_EQ(sudo.exit_code, 0) << sudo.describe;
  EXPECT_THAT(sudo.out, HasSubstr("uid=65534 gid=65533")) << sudo.describe;
  // --run-as wins; gotlscap itself stays root (it wrote its key file, 0600, as root).
  ProcRun as = RunToEnd({"env", "SUDO_UID=65534", GotlscapBin(), "keylog", "-k", keys, "--run-as", "0", "--", "sh",
                         "-c", "echo uid=$(id -u)"},
                        seconds(60));
  EXPECT_EQ(as.exit_code, 0) << as.describe;
  EXPECT_THAT(as.out, HasSubstr("uid=0")) << as.describe;
  ProcRun plain = RunToEnd({GotlscapBin(), "keylog", "-k", keys, "--run-as", "65534", "--", "id", "-u"}, seconds(60));
  EXPECT_EQ(plain.exit_code, 0) << plain.describe;
  EXPECT_THAT(plain.out, HasSubstr("65534")) << plain.describe;
}

TEST(CommandCli, UsageErrors) {
  TempDir dir;
  const std::string keys = dir.File("keys.log");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {GotlscapBin(), "keylog", "-k", keys, "-e", "/bin/true", "--", "true"},
           {GotlscapBin(), "text", "-p", "1", "--", "true"},
           {GotlscapBin(), "keylog", "-k", keys, "--run-as", "nobody"},
           {GotlscapBin(), "text", "--"},
           {GotlscapBin(), "text", "--run-as", "no-such-user-gotlscap", "--", "true"},
       }) {
    ProcRun r = RunToEnd(argv, seconds(30));
    EXPECT_EQ(r.exit_code, kExitUsage) << r.describe;
    EXPECT_EQ(SplitLines(Trim(r.err)).size(), 1u) << "one line: " << r.err;
  }
}

}  // namespace
}  // namespace gotlscap::testenv
