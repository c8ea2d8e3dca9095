// Pieces every capture subcommand shares: stop on SIGINT/SIGTERM, the `ready` line, one-line errors.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "capture/session.h"
#include "common/result.h"
#include "host/host_follower.h"

namespace CLI {
class App;
}

namespace gotlscap::cli {

class CommandRun;

// Set by SIGINT/SIGTERM (and by a command that must stop, e.g. on a write error).
std::atomic<bool>& StopFlag();
void InstallSignalHandlers();
// -- COMMAND: the first SIGINT/SIGTERM goes to `pid` instead (unless the terminal sent it to
// both), the second one stops us. 0: none.
void ForwardSignalsTo(pid_t pid);
// The signal that set StopFlag, 0 if none did.
int StopSignal();
// "ready: N uprobes on M binaries: go1.x /path (ABI), ..." on stderr: scripts wait for it.
void PrintReady(const capture::CaptureSession& session);
// Prints "gotlscap: <message>" and returns the exit code of the error's kind.
int Fail(const Error& e);
// Deadline for --duration SEC (0: none), on the session's monotonic clock.
uint64_t DeadlineFor(double seconds);

// Whole-host mode (no -e/-p): the options every capture subcommand takes, and the follower.
struct FollowCli {
  std::vector<std::string> comms, exclude_comms;
  std::string cgroup;  // --cgroup (also with -e/-p)
  std::vector<std::string> containers;  // --container ID prefixes (also with -e/-p)
  bool verbose = false;
  std::vector<std::string> command;  // after `--`: run it, capture its process tree only
  std::string run_as;                // --run-as USER (for the command)
};
// The targets every capture subcommand shares, as session options: -e paths, -p pids, -u uid,
// --cgroup (resolved: an error when it is not a cgroup v2 directory), --container prefixes, and
// whole-host mode when there is no -e/-p.
Result<capture::SessionOptions> TargetSessionOptions(const std::vector<std::string>& elf_paths,
                                                     const std::vector<uint32_t>& pids, std::optional<uint32_t> uid,
                                                     const FollowCli& follow);
// --cgroup PATH: a cgroup v2 directory, absolute or relative to the cgroup v2 mount
// ("system.slice/x.service"). "" stays "".
Result<std::string> ResolveCgroup(const std::string& path);
void AddFollowOptions(CLI::App* cmd, FollowCli& o);
// Starts following the host on `session` (which was started with follow_host); prints the
// attach lines and then the `ready` line. With `cmd`, only its process tree is followed (the
// session needs pid_filter), and the command is released once all is ready.
Result<std::unique_ptr<host::HostFollower>> StartFollowing(capture::CaptureSession& session, const FollowCli& o,
                                                           std::optional<uint32_t> uid, CommandRun* cmd = nullptr);
// The `ready` step every capture subcommand shares: StartFollowing when the session follows the
// host (no -e/-p), else PrintReady; the follower is null in the second case.
Result<std::unique_ptr<host::HostFollower>> AnnounceReady(capture::CaptureSession& session, bool follow_host,
                                                          const FollowCli& o, std::optional<uint32_t> uid,
                                                          CommandRun* cmd);
// --max-payload BYTES: capture only the first BYTES of each crypto/tls call (the rest is counted,
// not copied); 0 (the default) caps nothing beyond the 32 MiB per-call limit; values over
// GOTLS_CAPTURE_MAX or negative are a one-line usage error. For every capture subcommand that
// delivers data events.
void AddMaxPayloadOption(CLI::App* cmd, uint64_t& bytes);
// The option's value as SessionOptions::max_payload (0 -> GOTLS_CAPTURE_MAX).
uint64_t SessionMaxPayload(uint64_t option_bytes);

// "host: B binaries attached (D detached, A still attached), P processes, E execs, S skipped"
void PrintFollowSummary(const host::HostFollower& f);

}  // namespace gotlscap::cli
