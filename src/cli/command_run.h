// `gotlscap text|keylog|pcap [options] -- COMMAND [ARGS...]`: runs COMMAND under capture.
//
// COMMAND is forked first and waits on a pipe, before exec, until every probe is attached and the
// host follower (restricted to COMMAND's process tree) is running: even a program that makes one
// request and exits is captured from its first byte and its first secret. gotlscap makes itself
// the child subreaper, so members of the tree whose parent exited are reparented to it: the tree
// has ended when the direct child was reaped and no child is left.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace gotlscap::host {
class HostFollower;
}

namespace gotlscap::cli {

struct FollowCli;

class CommandRun {
 public:
  // Forks `argv`, which waits for Release(). `stdout_to_stderr`: the capture is written to stdout,
  // so COMMAND's stdout goes to our stderr. `run_as`: a user name or uid; "" means the user who
  // ran sudo (SUDO_UID/SUDO_GID), or no change when not under sudo.
  static Result<std::unique_ptr<CommandRun>> Fork(const std::vector<std::string>& argv, const std::string& run_as,
                                                  bool stdout_to_stderr);
  // A child never released exits without running COMMAND (and is reaped).
  ~CommandRun();
  CommandRun(const CommandRun&) = delete;
  CommandRun& operator=(const CommandRun&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  // COMMAND starts (exec) now.
  void Release();
  // Reaps what exited; true once the direct child was reaped and no child of ours is left.
  bool Done();
  // COMMAND's exit code (128+signal when killed); when it has not ended (gotlscap stopped first):
  // 128+signal if a signal stopped gotlscap, else 0.
  int ExitCode() const;

  // The tree's processes, for pcap's socket owner lookups (set by StartFollowing).
  void SetFollower(const host::HostFollower* f) { follower_ = f; }
  std::vector<uint32_t> tree_pids() const;

 private:
  CommandRun() = default;
  pid_t pid_ = -1;
  int go_fd_ = -1;  // write end of the pipe the child waits on
  std::string name_;
  bool reaped_ = false;
  int status_ = 0;
  const host::HostFollower* follower_ = nullptr;
};

// From the options: nullptr when there is no `-- COMMAND`; a usage error for -e/-p with it, or
// --run-as without it; else the forked, waiting COMMAND.
Result<std::unique_ptr<CommandRun>> PrepareCommand(const FollowCli& o, bool has_targets, bool capture_on_stdout);

}  // namespace gotlscap::cli
