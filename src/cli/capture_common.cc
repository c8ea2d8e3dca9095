#include "cli/capture_common.h"

#include <signal.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/command_run.h"
#include "cli/exit_codes.h"
#include "common/cgroup_mount.h"

namespace gotlscap::cli {
namespace {
std::atomic<pid_t> g_forward_pid{0};
std::atomic<int> g_signals{0}, g_stop_signal{0};

void OnSignal(int sig, siginfo_t* si, void*) {
  const pid_t child = g_forward_pid.load();
  if (child > 0 && g_signals.fetch_add(1) == 0) {
    // From the terminal (SI_KERNEL), the command, in our process group, got it too.
    if (si->si_code <= 0) kill(child, sig);
    return;
  }
  g_stop_signal.store(sig);
  StopFlag().store(true);
}
}  // namespace

void ForwardSignalsTo(pid_t pid) { g_forward_pid.store(pid); }
int StopSignal() { return g_stop_signal.load(); }

std::atomic<bool>& StopFlag() {
  static std::atomic<bool> stop{false};
  return stop;
}

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_sigaction = OnSignal;  // no SA_RESTART: the ring-buffer poll returns at once
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed pipe shows up as a write error instead
}

void PrintReady(const capture::CaptureSession& session) {
  std::string what;
  for (const auto& t : session.targets())
    what += fmt::format("{}{} {} ({} ABI)", what.empty() ? "" : ", ", t.binary.version_string, t.path,
                        gobin::AbiName(t.binary.abi));
  fmt::print(stderr, "ready: {} uprobes on {} binar{}: {}\n", session.probe_count(), session.targets().size(),
             session.targets().size() == 1 ? "y" : "ies", what);
  fflush(stderr);
}

int Fail(const Error& e) {
  fmt::print(stderr, "gotlscap: {}\n", e.message);
  return ExitCodeFor(e.kind);
}

void AddFollowOptions(CLI::App* cmd, FollowCli& o) {
  const char* group = "Whole host (no -e/-p)";
  cmd->add_option("--comm", o.comms, "Only programs of this name; repeatable")->group(group);
  cmd->add_option("--exclude-comm", o.exclude_comms, "Not programs of this name; repeatable")->group(group);
  cmd->add_flag("-v,--verbose", o.verbose, "One line for each program skipped, and why")->group(group);
  cmd->footer("Run a program under capture: ... [options] -- COMMAND [ARGS...] captures COMMAND's process tree only, "
              "from its first instruction, and exits with its exit code");
  cmd->add_option("--run-as", o.run_as,
                  "With -- COMMAND: run it as this user (default under sudo: the user who ran sudo)")
      ->group("Run a command (-- COMMAND [ARGS...])");
  cmd->add_option("--cgroup", o.cgroup,
                  "Only processes in this cgroup v2 (or below it): a path, absolute or relative to the cgroup v2 mount");
  cmd->add_option("--container", o.containers,
                  "Only processes of the container whose id starts with this (hex; docker, containerd, CRI-O, "
                  "podman cgroups); repeatable; containers that start later are picked up");
}

Result<capture::SessionOptions> TargetSessionOptions(const std::vector<std::string>& elf_paths,
                                                     const std::vector<uint32_t>& pids, std::optional<uint32_t> uid,
                                                     const FollowCli& follow) {
  capture::SessionOptions so;
  so.elf_paths = elf_paths;
  so.pids = pids;
  so.uid = uid;
  auto cgroup = ResolveCgroup(follow.cgroup);
  if (!cgroup.ok()) return cgroup.error();
  so.cgroup = *cgroup;
  so.containers = follow.containers;
  so.follow_host = elf_paths.empty() && pids.empty();
  return so;
}

Result<std::string> ResolveCgroup(const std::string& path) {
  if (path.empty()) return path;
  const std::string root = CgroupV2Mount();
  std::vector<std::string> candidates = {path};
  if (!root.empty()) candidates.push_back(root + "/" + path);
  for (const std::string& p : candidates) {
    struct statfs fs {};
    if (statfs(p.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return p;
  }
  return MakeError(ErrorKind::kUsage, fmt::format("--cgroup {}: no such cgroup v2 directory{}", path,
                                                  root.empty() ? " (cgroup v2 is not mounted)" : " under " + root));
}

Result<std::unique_ptr<host::HostFollower>> StartFollowing(capture::CaptureSession& session, const FollowCli& o,
                                                           std::optional<uint32_t> uid, CommandRun* cmd) {
  host::FollowOptions fo;
  if (cmd) fo.tree_root = static_cast<uint32_t>(cmd->pid());
  fo.comms = o.comms;
  fo.exclude_comms = o.exclude_comms;
  fo.uid = uid;
  fo.verbose = o.verbose;
  auto f = host::HostFollower::Start(session.probes(), fo, [](const std::string& line) {
    fmt::print(stderr, "{}\n", line);
    fflush(stderr);
  });
  if (!f.ok()) return f.error();
  if (cmd) {
    cmd->SetFollower(f->get());
    fmt::print(stderr, "ready: running {} (pid {}), following its process tree\n", cmd->name(), cmd->pid());
    fflush(stderr);
    cmd->Release();
    return f;
  }
  auto s = (*f)->summary();
  fmt::print(stderr, "ready: following the host: {} uprobes on {} binar{}\n", (*f)->probe_count(), s.attached_now,
             s.attached_now == 1 ? "y" : "ies");
  fflush(stderr);
  return f;
}

Result<std::unique_ptr<host::HostFollower>> AnnounceReady(capture::CaptureSession& session, bool follow_host,
                                                          const FollowCli& o, std::optional<uint32_t> uid,
                                                          CommandRun* cmd) {
  if (follow_host) return StartFollowing(session, o, uid, cmd);
  PrintReady(session);
  return std::unique_ptr<host::HostFollower>();
}

void PrintFollowSummary(const host::HostFollower& f) {
  auto s = f.summary();
  fmt::print(stderr, "host: {} binaries attached ({} detached, {} still attached), {} processes, {} execs, {} skipped\n",
             s.binaries_attached, s.binaries_detached, s.attached_now, s.processes, s.execs, s.skipped);
}

void AddMaxPayloadOption(CLI::App* cmd, uint64_t& bytes) {
  cmd->add_option("--max-payload", bytes,
                  fmt::format("Capture only the first BYTES of each TLS read and write (copied in the kernel; the "
                              "rest is counted: events keep the call's length and are marked truncated); 0: whole "
                              "calls, up to the {} MiB limit",
                              GOTLS_CAPTURE_MAX >> 20))
      ->type_name("BYTES")
      ->check(CLI::Range(uint64_t{0}, uint64_t{GOTLS_CAPTURE_MAX}));
}

uint64_t SessionMaxPayload(uint64_t option_bytes) {
  return option_bytes == 0 || option_bytes > GOTLS_CAPTURE_MAX ? GOTLS_CAPTURE_MAX : option_bytes;
}

uint64_t DeadlineFor(double seconds) {
  return seconds > 0 ? capture::MonotonicNowNs() + static_cast<uint64_t>(seconds * 1e9) : 0;
}

}  // namespace gotlscap::cli
