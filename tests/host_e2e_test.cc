// End-to-end tests of whole-host capture (issue 7): `gotlscap text --format json` with neither -e
// nor -p finds the Go programs with crypto/tls by itself, those already running (a /proc scan) and
// those started later (fanotify FAN_OPEN_EXEC_PERM: the exec waits until the binary's uprobes are
// attached), attaches once per executable file (inode), and detaches a binary no process has used
// for 5 s.
//   - FollowsProgramsStartedAfterIt: servers and short-lived clients of Go 1.15 (stack ABI), 1.19
//     and the newest toolchain, one server in its own mount namespace from a bind-mounted path;
//   - AttachesToProgramsAlreadyRunning: the /proc scan;
//   - SkipsNonGoAndFilters: --comm, --exclude-comm, -v's `skipped` lines;
//   - DetachesUnusedBinaries: the `detached` line, and then no uprobe on the file (bpftool, and the
//     breakpoints themselves, read from the memory of a process that maps the file);
//   - SoakShortLivedProcesses: 2,000 short-lived clients; gotlscap's RSS, CPU time, exec latency.
// Needs root, BPF and the matrix (skips otherwise, fails under CI=true).
//
// Each test copies the binaries it runs into its own temporary directory (new inodes): assertions
// are about those files and the test's own pids, never about global counts, since other tests run
// alongside. A whole-host gotlscap attaches to every Go program of the host, so the tests of this
// file hold a lock (one at a time): one test's capture would otherwise attach to the binaries whose
// uprobes another test checks are gone, and take part in its exec timings.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host_test_lock.h"
#include "test_env.h"
#include "test_process.h"
#include "tls_traffic.h"

extern char** environ;

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ------------------------------------------------------------------------------------------
// Environment
// ------------------------------------------------------------------------------------------

void RequireHostEnv() { SkipOrFailUnlessReady(BpfProblem("whole-host capture")); }
#define REQUIRE_HOST_ENV() GOTLSCAP_REQUIRE(RequireHostEnv())

void RequireTools(const std::vector<std::string>& tools) {
  for (const auto& t : tools)
    if (!InPath(t)) return SkipOrFail("whole-host capture tests need `" + t + "` in PATH");
}


// ------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------

bool Contains(const std::string& hay, const std::string& needle) {
  if (needle.empty()) return true;
  return std::search(hay.begin(), hay.end(), std::boyer_moore_horspool_searcher(needle.begin(), needle.end())) !=
         hay.end();
}

std::string Basename(const std::string& p) { return fs::path(p).filename().string(); }

// Copies `from` to DIR/SUBDIR/NAME (a new inode; the name is the process's comm).
std::string CopyAs(const TempDir& dir, const std::string& from, const std::string& subdir, const std::string& name) {
  fs::create_directories(dir.File(subdir));
  std::string to = dir.File(subdir + "/" + name);
  CopyFile(from, to);
  return to;
}

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// A "/proc/PID/status" field in kB ("VmRSS", "RssAnon"), 0 if gone.
uint64_t StatusKb(pid_t pid, const std::string& field = "VmRSS") {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  return 0;
}

// utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15), -1 if unreadable.
double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  auto fields = SplitWs(s.substr(rp + 1));  // fields[0] is field 3 (state)
  if (fields.size() < 13) return -1;
  double ticks = static_cast<double>(std::stoull(fields[11]) + std::stoull(fields[12]));
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// `client -url URL -mode echo -n 1 -size SIZE -seed SEED`: one POST /echo, then it exits.
std::vector<std::string> OneRequest(const std::string& client, const std::string& url, size_t size, uint32_t seed) {
  return {client, "-url", url, "-mode", "echo", "-n", "1", "-size", std::to_string(size), "-seed", std::to_string(seed)};
}

// ------------------------------------------------------------------------------------------
// gotlscap following the host
// ------------------------------------------------------------------------------------------

struct Notice {
  std::string version, path, rest;  // rest: "3" (pids) for attached, the reason for detached
};

// `attached go1.27.3 /path (N pids)` lines.
std::vector<Notice> Attached(const std::string& err) {
  static const std::regex re(R"(^attached (\S+) (.+) \((\d+) pids?\)$)");
  std::vector<Notice> v;
  for (const auto& l : SplitLines(err)) {
    std::smatch m;
    if (std::regex_match(l, m, re)) v.push_back({m[1].str(), m[2].str(), m[3].str()});
  }
  return v;
}

// `detached go1.27.3 /path (why)` lines.
std::vector<Notice> Detached(const std::string& err) {
  static const std::regex re(R"(^detached (\S+) (.+) \(([^()]*)\)$)");
  std::vector<Notice> v;
  for (const auto& l : SplitLines(err)) {
    std::smatch m;
    if (std::regex_match(l, m, re)) v.push_back({m[1].str(), m[2].str(), m[3].str()});
  }
  return v;
}

size_t CountPath(const std::vector<Notice>& v, const std::set<std::string>& paths) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [&](const Notice& n) { return paths.count(n.path) > 0; }));
}

// Lines of `err` that mention a path under `dir`, for failure messages.
std::string LinesAbout(const std::string& err, const std::string& dir) {
  std::string out;
  for (const auto& l : SplitLines(err))
    if (l.find(dir) != std::string::npos || l.rfind("ready", 0) == 0 || l.rfind("summary", 0) == 0 ||
        l.rfind("host:", 0) == 0 || l.rfind("gotlscap:", 0) == 0)
      out += "  " + l + "\n";
  return out;
}

struct Summary {
  bool parsed = false, host_parsed = false;
  uint64_t events = 0, lost = 0, lost_bytes = 0, incomplete = 0, read_faults = 0;
  uint64_t attached = 0, detached = 0, still_attached = 0, processes = 0, execs = 0, skipped = 0;
};

Summary ParseSummaries(const std::string& err) {
  Summary s;
  static const std::regex data(
      R"(^summary: (\d+) events, \d+ bytes, (\d+) lost, \d+ truncated \(lost bytes (\d+), incomplete events (\d+), read faults (\d+))");
  static const std::regex host(
      R"(^host: (\d+) binaries attached \((\d+) detached, (\d+) still attached\), (\d+) processes, (\d+) execs, (\d+) skipped$)");
  for (const auto& l : SplitLines(err)) {
    std::smatch m;
    if (std::regex_search(l, m, data)) {
      s.parsed = true;
      s.events = std::stoull(m[1]);
      s.lost = std::stoull(m[2]);
      s.lost_bytes = std::stoull(m[3]);
      s.incomplete = std::stoull(m[4]);
      s.read_faults = std::stoull(m[5]);
    } else if (std::regex_match(l, m, host)) {
      s.host_parsed = true;
      s.attached = std::stoull(m[1]);
      s.detached = std::stoull(m[2]);
      s.still_attached = std::stoull(m[3]);
      s.processes = std::stoull(m[4]);
      s.execs = std::stoull(m[5]);
      s.skipped = std::stoull(m[6]);
    }
  }
  return s;
}

// What one process did, from the JSON events.
struct PidData {
  std::string wrote, read;  // payloads of its data events, in order
  size_t data_events = 0, other_events = 0;
  uint64_t missing = 0;  // bytes of its events lost on the way (zero-filled)
  std::set<std::string> comms;
};

struct Capture {
  int exit_code = -1;
  std::string err;
  Summary summary;
  std::map<uint32_t, PidData> pids;  // only the pids asked for
  std::vector<std::string> problems;  // parse errors, no exit
};

// `gotlscap text --format json -o DIR/host-N.jsonl ARGS...`, no -e/-p.
class HostCapture {
 public:
  HostCapture(const TempDir& dir, const std::vector<std::string>& args) {
    static int counter = 0;
    out_path_ = dir.File("host-" + std::to_string(++counter) + ".jsonl");
    unlink(out_path_.c_str());
    std::vector<std::string> argv = {GotlscapBin(), "text", "--format", "json", "-o", out_path_};
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Proc>(argv);
  }
  // SIGINT, then SIGKILL: while it runs, every exec on the host waits for it.
  ~HostCapture() {
    if (!proc_->Wait(milliseconds(0))) {
      proc_->Signal(SIGINT);
      if (!proc_->Wait(seconds(60))) proc_->Signal(SIGKILL);
    }
  }

  ::testing::AssertionResult WaitReady(Clock::duration timeout = seconds(60)) {
    auto line = proc_->WaitLine(2, "ready: following the host", timeout);
    if (!line) return ::testing::AssertionFailure() << "gotlscap did not print `ready: following the host`: " << proc_->Describe();
    ready_err_ = proc_->Err();
    return ::testing::AssertionSuccess();
  }
  // stderr up to the `ready` line (what the /proc scan attached).
  const std::string& ready_err() const { return ready_err_; }

  // A stderr line containing `needle`.
  std::optional<std::string> WaitErr(const std::string& needle, Clock::duration timeout) {
    return proc_->WaitLine(2, needle, timeout, /*anywhere=*/true);
  }
  std::string Err() { return proc_->Err(); }
  pid_t pid() const { return proc_->pid(); }
  std::string Describe() { return proc_->Describe(); }

  // SIGINT (SIGKILL after `timeout`), the summaries, and the events of the pids `want` accepts.
  Capture Stop(const std::function<bool(uint32_t)>& want, Clock::duration timeout = seconds(90)) {
    Capture c;
    proc_->Signal(SIGINT);
    auto code = proc_->Wait(timeout);
    if (!code) {
      c.problems.push_back("gotlscap did not exit within the timeout after SIGINT");
      proc_->Signal(SIGKILL);
      proc_->Wait(seconds(10));
    }
    c.exit_code = code ? *code : -1;
    c.err = proc_->Err();
    c.summary = ParseSummaries(c.err);
    ReadEvents(want, &c);
    return c;
  }

 private:
  // Streams the JSON Lines (they hold the whole host's traffic: only lines of wanted pids are
  // parsed; the pid is the third field of every line).
  void ReadEvents(const std::function<bool(uint32_t)>& want, Capture* c) {
    std::ifstream in(out_path_, std::ios::binary);
    if (!in) {
      c->problems.push_back("cannot read " + out_path_);
      return;
    }
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      lineno++;
      size_t p = line.find("\"pid\":");
      if (p == std::string::npos || p > 120) {
        if (c->problems.size() < 5) c->problems.push_back("line " + std::to_string(lineno) + " without a pid: " + line.substr(0, 200));
        continue;
      }
      uint32_t pid = static_cast<uint32_t>(std::strtoul(line.c_str() + p + 6, nullptr, 10));
      if (!want(pid)) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("type")) {
        c->problems.push_back("line " + std::to_string(lineno) + " is not a JSON event: " + line.substr(0, 200));
        continue;
      }
      PidData& d = c->pids[pid];
      if (j.contains("comm") && j["comm"].is_string()) d.comms.insert(j["comm"].get<std::string>());
      if (j["type"] != "data") {
        d.other_events++;
        continue;
      }
      d.data_events++;
      d.missing += j.value("missing", uint64_t{0});
      bool ok = false;
      std::string payload = Base64Decode(j.value("payload_b64", ""), &ok);
      if (!ok) c->problems.push_back("line " + std::to_string(lineno) + ": bad payload_b64");
      (j.value("dir", "") == "write" ? d.wrote : d.read) += payload;
    }
  }

  std::string out_path_;
  std::unique_ptr<Proc> proc_;
  std::string ready_err_;
};

auto PidsIn(std::set<uint32_t> pids) {
  return [pids = std::move(pids)](uint32_t p) { return pids.count(p) > 0; };
}

// Exit 0 and both summaries. `lost` and `lost bytes` count the whole run's traffic: with every Go
// program of the host followed, other tests' traffic (tens of MB per call) can overflow the ring
// buffer, so there they are reported (the test's own events are checked for losses one by one);
// when --comm keeps gotlscap to the test's programs they must be 0.
enum class Traffic { kOnlyOurs, kWholeHost };
void ExpectCleanExit(const Capture& c, Traffic traffic) {
  EXPECT_EQ(c.exit_code, 0) << c.err.substr(0, 4000);
  EXPECT_TRUE(c.problems.empty()) << c.problems.size() << " problem(s), first: " << c.problems.front();
  ASSERT_TRUE(c.summary.parsed) << "no summary line:\n" << c.err.substr(0, 4000);
  ASSERT_TRUE(c.summary.host_parsed) << "no `host:` summary line:\n" << c.err.substr(0, 4000);
  if (traffic == Traffic::kOnlyOurs) {
    EXPECT_EQ(c.summary.lost, 0u);
    EXPECT_EQ(c.summary.lost_bytes, 0u);
  } else if (c.summary.lost || c.summary.lost_bytes) {
    std::cout << "[ note     ] the whole host's traffic lost " << c.summary.lost << " records (" << c.summary.lost_bytes
              << " bytes) in this run; this test's own events are checked one by one" << std::endl;
    ::testing::Test::RecordProperty("whole_host_lost_records", std::to_string(c.summary.lost));
  }
  EXPECT_EQ(c.summary.read_faults, 0u);
}

// What `client -mode echo -n 1 -size SIZE -seed SEED` against `server` provably put in both
// directions: the request line and body in the client's writes and the server's reads, the echoed
// body in the server's writes and the client's reads.
void CheckEchoPair(const Capture& c, const std::string& what, pid_t client, pid_t server, size_t size, uint32_t seed,
                   const std::string& client_comm = "client", const std::string& server_comm = "server") {
  const std::string body = PayloadBytes(size, seed);
  static const PidData kNone;
  auto get = [&](pid_t p) -> const PidData& {
    auto it = c.pids.find(static_cast<uint32_t>(p));
    return it == c.pids.end() ? kNone : it->second;
  };
  const PidData &cl = get(client), &sv = get(server);
  Problems p;
  if (cl.data_events == 0) p.Add("no data event of the client (pid " + std::to_string(client) + ")");
  if (cl.missing) p.Add("the client's events lost " + std::to_string(cl.missing) + " bytes");
  if (sv.missing) p.Add("the server's events lost " + std::to_string(sv.missing) + " bytes");
  if (sv.data_events == 0) p.Add("no data event of the server (pid " + std::to_string(server) + ")");
  if (!Contains(cl.wrote, "POST /echo HTTP/1.1\r\n")) p.Add("request line not in the client's writes");
  if (!Contains(cl.wrote, body)) p.Add("request body not in the client's writes");
  if (!Contains(sv.read, "POST /echo HTTP/1.1\r\n")) p.Add("request line not in the server's reads");
  if (!Contains(sv.read, body)) p.Add("request body not in the server's reads");
  if (!Contains(sv.wrote, "HTTP/1.1 200 OK\r\n")) p.Add("status line not in the server's writes");
  if (!Contains(sv.wrote, body)) p.Add("echoed body not in the server's writes");
  if (!Contains(cl.read, body)) p.Add("echoed body not in the client's reads");
  if (!cl.comms.empty() && cl.comms != std::set<std::string>{client_comm}) p.Add("client events not of comm " + client_comm);
  if (!sv.comms.empty() && sv.comms != std::set<std::string>{server_comm}) p.Add("server events not of comm " + server_comm);
  EXPECT_EQ(p.size(), 0u) << what << " (client pid " << client << ", server pid " << server << ", client wrote "
                          << cl.wrote.size() << " B / read " << cl.read.size() << " B, server wrote " << sv.wrote.size()
                          << " B / read " << sv.read.size() << " B):\n"
                          << p.str();
}

// ------------------------------------------------------------------------------------------
// Uprobes in the kernel
// ------------------------------------------------------------------------------------------

struct PerfUprobe {
  int fd = -1;
  uint64_t offset = 0;
  std::string filename;
  bool operator<(const PerfUprobe& o) const { return std::tie(fd, offset, filename) < std::tie(o.fd, o.offset, o.filename); }
  bool operator==(const PerfUprobe& o) const { return fd == o.fd && offset == o.offset && filename == o.filename; }
};

// `bpftool -j perf show`: the uprobes `owner` holds (-1: every process's), or an error.
::testing::AssertionResult PerfUprobes(pid_t owner, std::set<PerfUprobe>* out) {
  CommandResult r = RunCommand({"bpftool", "-j", "perf", "show"});
  if (r.exit_code != 0) return ::testing::AssertionFailure() << r.Describe();
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return ::testing::AssertionFailure() << "bpftool output is not a JSON array";
  out->clear();
  for (const auto& e : j) {
    if (!e.is_object() || e.value("fd_type", "") != "uprobe") continue;
    if (owner >= 0 && e.value("pid", -1) != owner) continue;
    out->insert({e.value("fd", -1), e.value("offset", uint64_t{0}), e.value("filename", "")});
  }
  return ::testing::AssertionSuccess();
}

std::set<uint64_t> Offsets(const std::set<PerfUprobe>& s) {
  std::set<uint64_t> v;
  for (const auto& u : s) v.insert(u.offset);
  return v;
}

// The file offsets among `offsets` at which process `pid`'s mapping of `file` differs from the
// file itself: the breakpoints of the uprobes the kernel holds on that file (a uprobe writes its
// breakpoint instruction into every mapping of its inode). The kernel's view, whoever attached.
::testing::AssertionResult PatchedOffsets(pid_t pid, const std::string& file, const std::set<uint64_t>& offsets,
                                          std::set<uint64_t>* patched) {
  patched->clear();
  const uint64_t ino = InodeOf(file);
  struct Map {
    uint64_t start, end, off;
  };
  std::vector<Map> maps;
  std::ifstream mf("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(mf, line)) {
    auto f = SplitWs(line);  // start-end perms offset dev inode path
    if (f.size() < 6 || f[1].find('x') == std::string::npos) continue;
    if (std::strtoull(f[4].c_str(), nullptr, 10) != ino) continue;
    size_t dash = f[0].find('-');
    maps.push_back({std::stoull(f[0].substr(0, dash), nullptr, 16), std::stoull(f[0].substr(dash + 1), nullptr, 16),
                    std::stoull(f[2], nullptr, 16)});
  }
  if (maps.empty()) return ::testing::AssertionFailure() << "pid " << pid << " maps no executable part of " << file;
  int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem < 0) return ::testing::AssertionFailure() << "cannot open /proc/" << pid << "/mem: " << std::strerror(errno);
  std::string problems;
  for (uint64_t off : offsets) {
    const Map* m = nullptr;
    for (const auto& x : maps)
      if (off >= x.off && off + 4 <= x.off + (x.end - x.start)) m = &x;
    if (!m) {
      problems += " offset " + std::to_string(off) + " not mapped;";
      continue;
    }
    char live[4];
    if (pread(mem, live, sizeof live, static_cast<off_t>(m->start + (off - m->off))) != sizeof live) {
      problems += " cannot read offset " + std::to_string(off) + ": " + std::strerror(errno) + ";";
      continue;
    }
    if (std::memcmp(live, ReadFileRange(file, off, sizeof live).data(), sizeof live) != 0) patched->insert(off);
  }
  close(mem);
  if (!problems.empty()) return ::testing::AssertionFailure() << "pid " << pid << ":" << problems;
  return ::testing::AssertionSuccess();
}

// Waits until process `pid` has exec'ed `file` (its maps hold the file's inode).
bool WaitMapped(pid_t pid, const std::string& file, Clock::duration timeout) {
  const std::string ino = std::to_string(InodeOf(file));
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::ifstream mf("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    while (std::getline(mf, line)) {
      auto f = SplitWs(line);
      if (f.size() >= 6 && f[4] == ino) return true;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

// ------------------------------------------------------------------------------------------
// Exec latency
// ------------------------------------------------------------------------------------------

struct Latency {
  int runs = 0;
  double total_ms = 0, mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0;
  std::string str() const {
    char b[200];
    std::snprintf(b, sizeof b, "%d runs in %.1f ms: mean %.0f us, p50 %.0f us, p99 %.0f us, max %.0f us", runs,
                  total_ms, mean_us, p50_us, p99_us, max_us);
    return b;
  }
};

// fork+exec+wait of `bin`, one latency per run.
double SpawnAndWaitUs(const std::string& bin) {
  char* argv[] = {const_cast<char*>(bin.c_str()), nullptr};
  auto t0 = Clock::now();
  pid_t pid = -1;
  if (posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv, environ) != 0) return -1;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

Latency TimeExecs(const std::string& bin, int n) {
  std::vector<double> v;
  auto t0 = Clock::now();
  for (int i = 0; i < n; i++) v.push_back(SpawnAndWaitUs(bin));
  Latency l;
  l.runs = n;
  l.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::sort(v.begin(), v.end());
  for (double x : v) l.mean_us += x / n;
  l.p50_us = v[v.size() / 2];
  l.p99_us = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  l.max_us = v.back();
  return l;
}

void Report(const std::string& key, const std::string& value) {
  ::testing::Test::RecordProperty(key, value);
  std::cout << "[ figures  ] " << key << ": " << value << std::endl;
}

// ------------------------------------------------------------------------------------------
// 1. Programs started after gotlscap
// ------------------------------------------------------------------------------------------

// No target: servers of the stack-ABI toolchain (1.15), 1.19 and the newest start after `ready`,
// the 1.19 one inside its own mount namespace from a bind-mounted path (and a second 1.19 server
// from the file's own path: same inode); against each a client that makes one request and exits.
// Every request and response is in the events, and each file is attached exactly once.
TEST(HostE2E, FollowsProgramsStartedAfterIt) {
  REQUIRE_HOST_ENV();
  GOTLSCAP_REQUIRE(RequireTools({"unshare", "mount", "sh"}));
  HOST_TEST_LOCK(lock);
  auto rows = AbiSpanServerRows();
  ASSERT_GE(rows.size(), 2u) << "the matrix lacks default servers of 1.15/1.19/newest for " << HostGoArch();
  // The mount-namespace run: 1.19 if there is one, else the second row.
  size_t ns_index = 1;
  for (size_t i = 0; i < rows.size(); i++)
    if (rows[i].go_minor == "1.19") ns_index = i;

  TempDir dir;
  struct Prog {
    MatrixRow row;
    std::string server, client;
  };
  std::vector<Prog> progs;
  for (const auto& r : rows) {
    const MatrixRow* crow = FindRow(r.go_minor, "default", "client");
    ASSERT_NE(crow, nullptr) << "no default client row for go" << r.go_minor;
    const std::string sub = "go" + r.go_minor;
    progs.push_back({r, CopyBinary(dir, r, sub), CopyBinary(dir, *crow, sub)});
  }
  const std::string ns_dst = dir.File("ns/server");  // the bind mount's target, an empty file here
  fs::create_directories(dir.File("ns"));
  WriteFileBytes(ns_dst, "");

  HostCapture cap(dir, {});
  ASSERT_TRUE(cap.WaitReady());
  for (const auto& n : Attached(cap.ready_err()))
    ASSERT_EQ(n.path.find(dir.path()), std::string::npos) << "attached to a file of this test before it ran: " << n.path;

  struct Run {
    std::string what;
    pid_t client = -1, server = -1;
    size_t size;
    uint32_t seed;
  };
  std::vector<Run> runs;
  std::vector<Server> servers(progs.size() + 1);
  std::set<uint32_t> pids;
  uint32_t seed = 7000;
  auto run_client = [&](const Prog& p, const Server& s, const std::string& what) {
    const size_t size = 3000 + runs.size() * 1000;
    ProcRun c = RunToEnd(OneRequest(p.client, s.url(), size, ++seed), seconds(60));
    EXPECT_EQ(c.exit_code, 0) << c.describe;
    EXPECT_NE(c.out.find("client: ok requests=1 "), std::string::npos) << c.describe;
    runs.push_back({what, c.pid, s.pid(), size, seed});
    pids.insert(static_cast<uint32_t>(c.pid));
    pids.insert(static_cast<uint32_t>(s.pid()));
  };
  for (size_t i = 0; i < progs.size(); i++) {
    const Prog& p = progs[i];
    Server& s = servers[i];
    if (i == ns_index) {
      // unshare (no fork) execs sh, which mounts and execs the server: one pid throughout.
      ASSERT_TRUE(StartServer("unshare", &s, {},
                              {"-m", "--propagation", "private", "sh", "-c",
                               "s=$0; d=$1; shift; mount --bind \"$s\" \"$d\" && exec \"$d\" \"$@\"", p.server, ns_dst}));
      // It runs the copy's inode from the other path (the host sees an empty file there).
      struct stat st {};
      ASSERT_EQ(stat(("/proc/" + std::to_string(s.pid()) + "/exe").c_str(), &st), 0);
      EXPECT_EQ(st.st_ino, InodeOf(p.server));
      EXPECT_NE(InodeOf(ns_dst), InodeOf(p.server));
      run_client(p, s, p.row.go_version + " server in a mount namespace, bind-mounted at " + ns_dst);
      // The same file from its own path: already attached.
      Server& again = servers.back();
      ASSERT_TRUE(StartServer(p.server, &again));
      run_client(p, again, p.row.go_version + " server from " + p.server + " (same inode)");
    } else {
      ASSERT_TRUE(StartServer(p.server, &s));
      run_client(p, s, p.row.go_version + " server");
    }
  }
  Capture c = cap.Stop(PidsIn(pids));
  ExpectCleanExit(c, Traffic::kWholeHost);
  for (const auto& r : runs) CheckEchoPair(c, r.what, r.client, r.server, r.size, r.seed);

  const auto attached = Attached(c.err);
  for (size_t i = 0; i < progs.size(); i++) {
    const Prog& p = progs[i];
    std::set<std::string> server_paths = {p.server};
    // Whichever path it is shown under: the server in its own mount namespace only by a path that
    // opens it from here, through its root (ns_dst is an empty file in ours).
    if (i == ns_index) server_paths.insert("/proc/" + std::to_string(servers[i].pid()) + "/root" + ns_dst);
    EXPECT_EQ(CountPath(attached, server_paths), 1u)
        << p.row.go_version << " server (inode " << InodeOf(p.server) << ") should be attached once:\n"
        << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(attached, {p.client}), 1u)
        << p.row.go_version << " client should be attached once:\n" << LinesAbout(c.err, dir.path());
    for (const auto& n : attached) {
      if (server_paths.count(n.path) || n.path == p.client) {
        EXPECT_EQ(n.version, p.row.go_version) << n.path;
      }
    }
  }
  // Nothing else of this test's directory was attached (e.g. the bind target under a third name).
  size_t mine = 0;
  for (const auto& n : attached) mine += n.path.find(dir.path()) != std::string::npos;
  EXPECT_EQ(mine, progs.size() * 2) << LinesAbout(c.err, dir.path());
}

// ------------------------------------------------------------------------------------------
// 2. Programs already running
// ------------------------------------------------------------------------------------------

TEST(HostE2E, AttachesToProgramsAlreadyRunning) {
  REQUIRE_HOST_ENV();
  HOST_TEST_LOCK(lock);
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));

  HostCapture cap(p.dir, {});
  ASSERT_TRUE(cap.WaitReady());
  // The /proc scan attached it before `ready`.
  auto before = Attached(cap.ready_err());
  ASSERT_EQ(CountPath(before, {p.server}), 1u) << LinesAbout(cap.ready_err(), p.dir.path());
  for (const auto& n : before)
    if (n.path == p.server) {
      EXPECT_EQ(n.rest, "1") << "should say (1 pid)";
      EXPECT_EQ(n.version, row->go_version);
    }
  EXPECT_NE(cap.ready_err().find("attached " + row->go_version + " " + p.server + " (1 pid)\n"), std::string::npos)
      << cap.ready_err();

  ProcRun cl = RunToEnd(OneRequest(p.client, srv.url(), 20000, 42), seconds(60));
  EXPECT_EQ(cl.exit_code, 0) << cl.describe;
  Capture c = cap.Stop(PidsIn({static_cast<uint32_t>(cl.pid), static_cast<uint32_t>(srv.pid())}));
  ExpectCleanExit(c, Traffic::kWholeHost);
  CheckEchoPair(c, "server running before gotlscap", cl.pid, srv.pid(), 20000, 42);
  EXPECT_EQ(CountPath(Attached(c.err), {p.server}), 1u) << LinesAbout(c.err, p.dir.path());
  EXPECT_EQ(CountPath(Attached(c.err), {p.client}), 1u) << LinesAbout(c.err, p.dir.path());
  EXPECT_EQ(CountPath(Detached(c.err), {p.server}), 0u) << "detached while running:\n" << LinesAbout(c.err, p.dir.path());
}

// ------------------------------------------------------------------------------------------
// 3. Non-Go programs and the filters
// ------------------------------------------------------------------------------------------

TEST(HostE2E, SkipsNonGoAndFilters) {
  REQUIRE_HOST_ENV();
  HOST_TEST_LOCK(lock);
  const MatrixRow* srow = NewestRow("default", "server");
  ASSERT_NE(srow, nullptr);
  const MatrixRow* crow = FindRow(srow->go_minor, "default", "client");
  ASSERT_NE(crow, nullptr);
  TempDir dir;
  // Two copies of the server under other names (comm is the file name).
  const std::string wanted = CopyAs(dir, srow->path, "bin", "hswanted");
  const std::string other = CopyAs(dir, srow->path, "bin", "hsother");
  const std::string client = CopyBinary(dir, *crow);
  const std::string notgo = CopyAs(dir, "/bin/true", "bin", "hsnotgo");
  ASSERT_EQ(chmod(notgo.c_str(), 0755), 0);

  // --comm: only hswanted; -v: one `skipped` line for the non-Go program.
  Server w1, o1;
  pid_t c_w1 = -1, c_o1 = -1;
  {
    HostCapture cap(dir, {"-v", "--comm", "hswanted"});
    ASSERT_TRUE(cap.WaitReady());
    ASSERT_TRUE(StartServer(wanted, &w1));
    ASSERT_TRUE(StartServer(other, &o1));
    ProcRun t = RunToEnd({notgo}, seconds(30));
    EXPECT_EQ(t.exit_code, 0) << t.describe;
    EXPECT_TRUE(cap.WaitErr("skipped " + notgo + ": ", seconds(10)))
        << "no `skipped " << notgo << ": reason` line:\n" << LinesAbout(cap.Err(), dir.path());
    ProcRun a = RunToEnd(OneRequest(client, w1.url(), 5000, 300), seconds(60));
    ProcRun b = RunToEnd(OneRequest(client, o1.url(), 5000, 301), seconds(60));
    EXPECT_EQ(a.exit_code, 0) << a.describe;
    EXPECT_EQ(b.exit_code, 0) << b.describe;
    c_w1 = a.pid;
    c_o1 = b.pid;
    Capture c = cap.Stop(PidsIn({uint32_t(w1.pid()), uint32_t(o1.pid()), uint32_t(c_w1), uint32_t(c_o1)}));
    ExpectCleanExit(c, Traffic::kOnlyOurs);
    const auto att = Attached(c.err);
    EXPECT_EQ(CountPath(att, {wanted}), 1u) << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(att, {other}), 0u) << "--comm hswanted attached hsother:\n" << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(att, {client}), 0u) << "--comm hswanted attached the client:\n" << LinesAbout(c.err, dir.path());
    size_t notgo_lines = 0;
    for (const auto& l : SplitLines(c.err))
      if (l.rfind("skipped " + notgo + ": ", 0) == 0) notgo_lines++;
    EXPECT_EQ(notgo_lines, 1u) << "one `skipped` line per binary:\n" << LinesAbout(c.err, dir.path());
    // Only the wanted server's side of its connection was captured.
    const auto& w = c.pids[uint32_t(w1.pid())];
    EXPECT_TRUE(Contains(w.read, PayloadBytes(5000, 300))) << "hswanted's reads lack the request body";
    EXPECT_TRUE(Contains(w.wrote, PayloadBytes(5000, 300))) << "hswanted's writes lack the echoed body";
    EXPECT_TRUE(w.comms.empty() || w.comms == std::set<std::string>{"hswanted"});
    for (pid_t p : {o1.pid(), c_w1, c_o1}) {
      auto it = c.pids.find(uint32_t(p));
      EXPECT_TRUE(it == c.pids.end()) << "events of pid " << p << ", which --comm excludes";
    }
  }

  // --exclude-comm hsother, no -v: the running servers come from the /proc scan, a new hsother
  // starts after `ready`; clients (comm "client") are followed; no `skipped` lines without -v.
  {
    HostCapture cap(dir, {"--exclude-comm", "hsother"});
    ASSERT_TRUE(cap.WaitReady());
    EXPECT_EQ(CountPath(Attached(cap.ready_err()), {wanted}), 1u) << LinesAbout(cap.ready_err(), dir.path());
    Server o2;
    ASSERT_TRUE(StartServer(other, &o2));
    ProcRun t = RunToEnd({notgo}, seconds(30));
    EXPECT_EQ(t.exit_code, 0) << t.describe;
    ProcRun a = RunToEnd(OneRequest(client, w1.url(), 6000, 400), seconds(60));
    ProcRun b = RunToEnd(OneRequest(client, o1.url(), 6000, 401), seconds(60));
    ProcRun d = RunToEnd(OneRequest(client, o2.url(), 6000, 402), seconds(60));
    for (const ProcRun* r : {&a, &b, &d}) EXPECT_EQ(r->exit_code, 0) << r->describe;
    Capture c = cap.Stop(PidsIn({uint32_t(w1.pid()), uint32_t(o1.pid()), uint32_t(o2.pid()), uint32_t(a.pid),
                                 uint32_t(b.pid), uint32_t(d.pid)}));
    ExpectCleanExit(c, Traffic::kWholeHost);
    const auto att = Attached(c.err);
    EXPECT_EQ(CountPath(att, {wanted}), 1u) << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(att, {other}), 0u) << "--exclude-comm hsother attached it:\n" << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(att, {client}), 1u) << LinesAbout(c.err, dir.path());
    for (const auto& l : SplitLines(c.err)) EXPECT_NE(l.rfind("skipped ", 0), 0u) << "without -v: " << l;
    CheckEchoPair(c, "hswanted", a.pid, w1.pid(), 6000, 400, "client", "hswanted");
    for (pid_t p : {o1.pid(), o2.pid()}) EXPECT_EQ(c.pids.count(uint32_t(p)), 0u) << "events of excluded pid " << p;
    // The clients of the excluded servers are followed: their side is there.
    for (auto [r, s] : {std::pair{&b, 401u}, std::pair{&d, 402u}}) {
      const auto& cl = c.pids[uint32_t(r->pid)];
      EXPECT_TRUE(Contains(cl.wrote, PayloadBytes(6000, s))) << "client " << r->pid << "'s writes lack its body";
      EXPECT_TRUE(Contains(cl.read, PayloadBytes(6000, s))) << "client " << r->pid << "'s reads lack the echo";
    }
  }
}

// ------------------------------------------------------------------------------------------
// 4. Detach
// ------------------------------------------------------------------------------------------

// A client copy runs once and exits; within ~8 s its file is detached, and then the kernel holds
// no uprobe on it: gotlscap's perf-event uprobes are back to the server's, and a process of the
// same inode (a hard link under a name --comm does not follow) has no breakpoint in its code.
// --comm keeps gotlscap to this test's programs, so its uprobes can be compared exactly.
TEST(HostE2E, DetachesUnusedBinaries) {
  REQUIRE_HOST_ENV();
  GOTLSCAP_REQUIRE(RequireTools({"bpftool"}));
  HOST_TEST_LOCK(lock);
  const MatrixRow* srow = NewestRow("default", "server");
  ASSERT_NE(srow, nullptr);
  const MatrixRow* crow = FindRow(srow->go_minor, "default", "client");
  ASSERT_NE(crow, nullptr);
  TempDir dir;
  const std::string server = CopyAs(dir, srow->path, "bin", "hdserver");
  const std::string client = CopyAs(dir, crow->path, "bin", "hdclient");
  const std::string peek = dir.File("bin/hdpeek");  // same inode as hdclient
  ASSERT_EQ(link(client.c_str(), peek.c_str()), 0) << std::strerror(errno);

  HostCapture cap(dir, {"--comm", "hdserver", "--comm", "hdclient"});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(server, &srv));
  ASSERT_TRUE(cap.WaitErr(" " + server + " (", seconds(10))) << LinesAbout(cap.Err(), dir.path());
  std::set<PerfUprobe> with_server, with_client, after;
  ASSERT_TRUE(PerfUprobes(cap.pid(), &with_server));
  ASSERT_FALSE(with_server.empty()) << "bpftool lists no uprobe of gotlscap (pid " << cap.pid() << ")";

  ProcRun cl = RunToEnd(OneRequest(client, srv.url(), 2000, 77), seconds(60));
  ASSERT_EQ(cl.exit_code, 0) << cl.describe;
  const auto exited = Clock::now();
  ASSERT_TRUE(PerfUprobes(cap.pid(), &with_client));
  std::set<PerfUprobe> client_probes;
  std::set_difference(with_client.begin(), with_client.end(), with_server.begin(), with_server.end(),
                      std::inserter(client_probes, client_probes.end()));
  ASSERT_FALSE(client_probes.empty()) << "no new uprobe after the client ran:\n" << LinesAbout(cap.Err(), dir.path());
  EXPECT_TRUE(std::includes(with_client.begin(), with_client.end(), with_server.begin(), with_server.end()));

  // Meanwhile, exec latency on the host while gotlscap detaches (reported).
  std::atomic<bool> stop_timing{false};
  std::vector<std::pair<double, double>> lat;  // (seconds since exit, us)
  std::thread timer([&] {
    while (!stop_timing.load()) {
      double us = SpawnAndWaitUs("/bin/true");
      lat.push_back({std::chrono::duration<double>(Clock::now() - exited).count(), us});
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  auto line = cap.WaitErr(" " + client + " (", seconds(0));  // the attach line, already there
  EXPECT_TRUE(line && line->rfind("attached ", 0) == 0) << LinesAbout(cap.Err(), dir.path());
  auto detached = cap.WaitErr("detached " + crow->go_version + " " + client + " (no process left)", seconds(12));
  const double detach_s = std::chrono::duration<double>(Clock::now() - exited).count();
  std::this_thread::sleep_for(milliseconds(500));
  stop_timing.store(true);
  timer.join();
  ASSERT_TRUE(detached) << "no `detached ... " << client << "` line " << detach_s << " s after the client exited:\n"
                        << LinesAbout(cap.Err(), dir.path());
  EXPECT_LE(detach_s, 8.5) << "detached only " << detach_s << " s after the last process exited";
  Report("detach_seconds_after_exit", std::to_string(detach_s));
  double worst = 0, worst_at = 0, sum = 0;
  for (auto [at, us] : lat) {
    sum += us;
    if (us > worst) worst = us, worst_at = at;
  }
  if (!lat.empty()) {
    char b[200];
    std::snprintf(b, sizeof b, "%zu runs of /bin/true while the client's uprobes were detached: mean %.0f us, max %.0f us at %.2f s",
                  lat.size(), sum / lat.size(), worst, worst_at);
    Report("exec_latency_around_detach", b);
  }

  // gotlscap's uprobes: exactly the server's again.
  ASSERT_TRUE(PerfUprobes(cap.pid(), &after));
  EXPECT_EQ(after, with_server) << after.size() << " uprobes after the detach, " << with_server.size()
                                << " before the client ran";
  for (const auto& u : client_probes) EXPECT_EQ(after.count(u), 0u) << "left: fd " << u.fd << " offset " << u.offset;
  // No uprobe of any process names the client's file.
  std::set<PerfUprobe> all;
  ASSERT_TRUE(PerfUprobes(-1, &all));
  for (const auto& u : all) EXPECT_NE(u.filename, client) << "a uprobe on " << client << " at " << u.offset;

  // The kernel's view: a process of the same inode, under a name --comm does not follow (so
  // gotlscap leaves it alone), has the file's own bytes at every offset the client's uprobes had.
  // First, on the server (attached), the same method must see breakpoints.
  std::set<uint64_t> patched;
  ASSERT_TRUE(PatchedOffsets(srv.pid(), server, Offsets(with_server), &patched));
  EXPECT_EQ(patched, Offsets(with_server)) << "the attached server should show a breakpoint at every uprobe";
  Proc peeker({peek, "-url", "https://127.0.0.1:1", "-wait-ready", "30", "-n", "1"});  // retries: stays alive
  ASSERT_TRUE(WaitMapped(peeker.pid(), peek, seconds(10))) << peeker.Describe();
  ASSERT_TRUE(PatchedOffsets(peeker.pid(), peek, Offsets(client_probes), &patched));
  EXPECT_TRUE(patched.empty()) << patched.size() << " of " << client_probes.size()
                               << " uprobe sites of the detached file still hold a breakpoint";
  peeker.Signal(SIGKILL);
  peeker.Wait(seconds(10));

  Capture c = cap.Stop(PidsIn({uint32_t(cl.pid), uint32_t(srv.pid())}));
  ExpectCleanExit(c, Traffic::kOnlyOurs);
  CheckEchoPair(c, "hdclient -> hdserver", cl.pid, srv.pid(), 2000, 77, "hdclient", "hdserver");
  EXPECT_EQ(CountPath(Attached(c.err), {client, peek}), 1u) << LinesAbout(c.err, dir.path());
  EXPECT_EQ(CountPath(Detached(c.err), {client}), 1u) << LinesAbout(c.err, dir.path());
  EXPECT_EQ(CountPath(Detached(c.err), {server}), 0u) << "the running server was detached:\n" << LinesAbout(c.err, dir.path());
}

// ------------------------------------------------------------------------------------------
// 5. Soak
// ------------------------------------------------------------------------------------------

// 2,000 short-lived clients (one request each, 6 at a time, paced over ~60 s) against one server;
// in the first 1.5 s of every 10 s one of three other copies runs instead, so those are detached
// and re-attached. gotlscap's RSS is sampled every second and must not grow (end vs after the
// first 200 processes); every client's request is captured; after the last run every copy is
// detached and no uprobe is left on it; gotlscap's CPU time and the exec latency of /bin/true
// with and without it are reported.
TEST(HostE2E, SoakShortLivedProcesses) {
  REQUIRE_HOST_ENV();
  GOTLSCAP_REQUIRE(RequireTools({"bpftool"}));
  HOST_TEST_LOCK(lock);
  const auto test_start = Clock::now();
  const MatrixRow* srow = NewestRow("default", "server");
  ASSERT_NE(srow, nullptr);
  const MatrixRow* crow = FindRow(srow->go_minor, "default", "client");
  ASSERT_NE(crow, nullptr);
  TempDir dir;
  const std::string server = CopyAs(dir, srow->path, "bin", "hsoaksrv");
  const std::string main_client = CopyAs(dir, crow->path, "bin", "hsoakcli");
  const std::vector<std::string> extras = {CopyAs(dir, crow->path, "bin", "hsoakx1"),
                                           CopyAs(dir, crow->path, "bin", "hsoakx2"),
                                           CopyAs(dir, crow->path, "bin", "hsoakx3")};
  // Hard links (same inodes) under names --comm does not follow, to look at the copies' code.
  std::vector<std::string> peeks;
  for (const std::string* c : {&main_client, &extras[0], &extras[1], &extras[2]}) {
    peeks.push_back(dir.File("bin/hsoakpeek" + std::to_string(peeks.size())));
    ASSERT_EQ(link(c->c_str(), peeks.back().c_str()), 0) << std::strerror(errno);
  }

  const Latency without = TimeExecs("/bin/true", 300);
  // --comm: gotlscap attaches only to this test's programs (its figures are about them, not about
  // whatever else runs), but it still answers every exec of the host.
  HostCapture cap(dir, {"--comm", "hsoaksrv", "--comm", "hsoakcli", "--comm", "hsoakx1", "--comm", "hsoakx2",
                        "--comm", "hsoakx3"});
  ASSERT_TRUE(cap.WaitReady());
  const Latency with = TimeExecs("/bin/true", 300);
  Report("exec_latency_without_gotlscap", without.str());
  Report("exec_latency_following_the_host", with.str());

  Server srv;
  ASSERT_TRUE(StartServer(server, &srv));
  ASSERT_TRUE(cap.WaitErr(" " + server + " (", seconds(10))) << LinesAbout(cap.Err(), dir.path());
  std::set<PerfUprobe> server_probes;
  ASSERT_TRUE(PerfUprobes(cap.pid(), &server_probes));
  const double cpu_before = CpuSeconds(cap.pid());

  constexpr int kRuns = 2000, kWorkers = 6;
  constexpr size_t kSize = 300;
  constexpr auto kSpacing = milliseconds(29);  // 2,000 starts over 58 s
  struct RunResult {
    pid_t pid = -1;
    int exit_code = -1;
    std::string bin, err;
  };
  std::vector<RunResult> results(kRuns);
  std::atomic<int> next{0}, done{0};
  const auto t0 = Clock::now();
  auto worker = [&] {
    for (int i; (i = next.fetch_add(1)) < kRuns;) {
      const auto at = t0 + i * kSpacing;
      std::this_thread::sleep_until(at);
      const auto since = std::chrono::duration_cast<milliseconds>(at - t0).count();
      const std::string& bin = since % 10000 < 1500 ? extras[(since / 10000) % 3] : main_client;
      ProcRun r = RunToEnd(OneRequest(bin, srv.url(), kSize, 100000 + i), seconds(60));
      results[i] = {r.pid, r.exit_code, bin, r.exit_code == 0 ? "" : r.describe};
      done.fetch_add(1);
    }
  };
  // RSS every second, with the number of finished runs.
  struct Sample {
    double t;
    int done;
    uint64_t rss_kb, anon_kb;
  };
  std::vector<Sample> samples;
  std::atomic<bool> sampling{true};
  // The client's uprobe sites (every copy has the same layout): gotlscap's uprobes but the
  // server's, once the main client is attached.
  std::set<uint64_t> client_offsets;
  std::thread sampler([&] {
    while (sampling.load()) {
      samples.push_back({std::chrono::duration<double>(Clock::now() - t0).count(), done.load(), StatusKb(cap.pid()),
                         StatusKb(cap.pid(), "RssAnon")});
      if (client_offsets.empty() && done.load() >= 100) {
        std::set<PerfUprobe> now, diff;
        if (PerfUprobes(cap.pid(), &now))
          std::set_difference(now.begin(), now.end(), server_probes.begin(), server_probes.end(),
                              std::inserter(diff, diff.end()));
        client_offsets = Offsets(diff);
      }
      std::this_thread::sleep_for(seconds(1));
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; w++) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  const double run_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu_after_runs = CpuSeconds(cap.pid());

  // Every copy is detached once unused: the extras long ago, the main client ~5-7 s after the end.
  bool all_detached = true;
  for (const auto& b : extras) all_detached &= cap.WaitErr("detached " + crow->go_version + " " + b + " (", seconds(12)).has_value();
  all_detached &= cap.WaitErr("detached " + crow->go_version + " " + main_client + " (", seconds(12)).has_value();
  std::this_thread::sleep_for(milliseconds(1200));  // one more tick, and a last RSS sample
  sampling.store(false);
  sampler.join();
  const double cpu_end = CpuSeconds(cap.pid());
  const uint64_t rss_end = StatusKb(cap.pid()), anon_end = StatusKb(cap.pid(), "RssAnon");
  EXPECT_TRUE(all_detached) << "not every client copy was detached:\n" << LinesAbout(cap.Err(), dir.path());

  // No probe left on the copies: gotlscap holds the server's uprobes only, and a process of each
  // copy's inode (a hard link --comm does not follow) shows no breakpoint.
  std::set<PerfUprobe> after;
  ASSERT_TRUE(PerfUprobes(cap.pid(), &after));
  EXPECT_EQ(after, server_probes) << after.size() << " uprobes left, " << server_probes.size() << " are the server's";
  ASSERT_FALSE(client_offsets.empty()) << "no client uprobe seen during the soak";
  for (const auto& peek : peeks) {
    std::set<uint64_t> patched;
    Proc peeker({peek, "-url", "https://127.0.0.1:1", "-wait-ready", "30", "-n", "1"});  // retries: stays alive
    ASSERT_TRUE(WaitMapped(peeker.pid(), peek, seconds(10))) << peeker.Describe();
    ASSERT_TRUE(PatchedOffsets(peeker.pid(), peek, client_offsets, &patched));
    EXPECT_TRUE(patched.empty()) << patched.size() << " of " << client_offsets.size() << " uprobe sites of the copy "
                                 << peek << " links to still hold a breakpoint";
    peeker.Signal(SIGKILL);
    peeker.Wait(seconds(10));
  }

  // RSS: after the first 200 processes vs at the end. The processes came and went: what gotlscap
  // kept of them (pids, connections, decoder state) must be gone or bounded far below 2,000 of them.
  // 4 MB over 1,800 processes is ~2.3 kB each (when this test was written: ~5 kB each, of which ~3 kB is HTTP
  // decoder state of connections whose process exited, kept until 4,096 are evicted least
  // recently used, and ~2 kB grows without limit).
  uint64_t rss_200 = 0, anon_200 = 0, rss_max = 0;
  for (const auto& s : samples) {
    if (!rss_200 && s.done >= 200) rss_200 = s.rss_kb, anon_200 = s.anon_kb;
    rss_max = std::max(rss_max, s.rss_kb);
  }
  rss_max = std::max(rss_max, rss_end);
  std::string rss_trace;
  for (size_t i = 0; i < samples.size(); i += 5)
    rss_trace += std::to_string(static_cast<int>(samples[i].t)) + "s/" + std::to_string(samples[i].done) + ":" +
                 std::to_string(samples[i].rss_kb / 1024) + "MB(anon " + std::to_string(samples[i].anon_kb / 1024) + ") ";
  Report("rss_kb_after_200_processes", std::to_string(rss_200) + " (anon " + std::to_string(anon_200) + ")");
  Report("rss_kb_at_end", std::to_string(rss_end) + " (anon " + std::to_string(anon_end) + ")");
  Report("rss_kb_max", std::to_string(rss_max));
  Report("rss_trace", rss_trace);
  ASSERT_GT(rss_200, 0u) << "no RSS sample after 200 processes";
  const double per_process = (static_cast<double>(rss_end) - static_cast<double>(rss_200)) * 1024 / (kRuns - 200);
  Report("rss_growth_bytes_per_process", std::to_string(static_cast<int64_t>(per_process)));
  EXPECT_LE(rss_end, rss_200 + 4 * 1024) << "RSS grew from " << rss_200 << " kB to " << rss_end << " kB ("
                                         << static_cast<int64_t>(per_process) << " bytes per process): " << rss_trace;

  char cpu[300];
  std::snprintf(cpu, sizeof cpu,
                "%.2f s during the %d runs (%.1f s wall, %.0f us per process), %.2f s in all since the server started",
                cpu_after_runs - cpu_before, kRuns, run_s, (cpu_after_runs - cpu_before) * 1e6 / kRuns, cpu_end - cpu_before);
  Report("gotlscap_cpu", cpu);
  Report("gotlscap_cpu_seconds_total", std::to_string(cpu_end));

  Capture c = cap.Stop([](uint32_t) { return true; });
  ExpectCleanExit(c, Traffic::kOnlyOurs);
  Report("host_summary", "binaries attached " + std::to_string(c.summary.attached) + ", detached " +
                             std::to_string(c.summary.detached) + ", processes " + std::to_string(c.summary.processes) +
                             ", execs " + std::to_string(c.summary.execs) + ", skipped " + std::to_string(c.summary.skipped));

  // Every run succeeded and was captured from its first byte.
  Problems p;
  int ok = 0;
  for (int i = 0; i < kRuns; i++) {
    const RunResult& r = results[i];
    if (r.exit_code != 0) {
      p.Add("run " + std::to_string(i) + " failed: " + r.err.substr(0, 300));
      continue;
    }
    ok++;
    auto it = c.pids.find(uint32_t(r.pid));
    const std::string body = PayloadBytes(kSize, 100000 + uint32_t(i));
    if (it == c.pids.end()) {
      p.Add("run " + std::to_string(i) + " (" + Basename(r.bin) + ", pid " + std::to_string(r.pid) + "): no event");
      continue;
    }
    if (!Contains(it->second.wrote, "POST /echo HTTP/1.1\r\n") || !Contains(it->second.wrote, body))
      p.Add("run " + std::to_string(i) + " (" + Basename(r.bin) + "): request not in its writes");
    if (!Contains(it->second.read, body)) p.Add("run " + std::to_string(i) + " (" + Basename(r.bin) + "): echo not in its reads");
    if (it->second.missing) p.Add("run " + std::to_string(i) + ": " + std::to_string(it->second.missing) + " bytes lost");
  }
  EXPECT_EQ(ok, kRuns);
  EXPECT_EQ(p.size(), 0u) << p.size() << " of " << kRuns << " runs not fully captured:\n" << p.str();
  const PidData& sv = c.pids[uint32_t(srv.pid())];
  EXPECT_TRUE(Contains(sv.read, PayloadBytes(kSize, 100000))) << "the server's reads lack the first request";
  EXPECT_TRUE(Contains(sv.read, PayloadBytes(kSize, 100000 + kRuns - 1))) << "the server's reads lack the last request";

  // Attach/detach cycles: each extra copy ran in two windows 30 s apart.
  const auto att = Attached(c.err), det = Detached(c.err);
  for (const auto& b : extras) {
    EXPECT_GE(CountPath(att, {b}), 2u) << Basename(b) << " should have been re-attached:\n" << LinesAbout(c.err, dir.path());
    EXPECT_EQ(CountPath(att, {b}), CountPath(det, {b})) << LinesAbout(c.err, dir.path());
  }
  EXPECT_EQ(CountPath(att, {main_client}), 1u) << LinesAbout(c.err, dir.path());
  Report("soak_seconds", std::to_string(std::chrono::duration<double>(Clock::now() - test_start).count()));
}

}  // namespace
}  // namespace gotlscap::testenv
