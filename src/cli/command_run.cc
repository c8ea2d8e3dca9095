#include "cli/command_run.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "cli/capture_common.h"
#include "host/host_follower.h"

namespace gotlscap::cli {
namespace {

struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;  // "" when the uid has no passwd entry: no supplementary groups
  std::string home;
};

std::optional<uint32_t> ParseId(const char* s) {
  if (!s || !*s) return std::nullopt;
  uint32_t v = 0;
  auto r = std::from_chars(s, s + strlen(s), v);
  if (r.ec != std::errc() || *r.ptr) return std::nullopt;
  return v;
}

User FromPasswd(const passwd* pw) { return User{pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir}; }

// Who COMMAND runs as; nullopt: as we are.
Result<std::optional<User>> ResolveRunAs(const std::string& run_as) {
  if (!run_as.empty()) {
    if (const passwd* pw = getpwnam(run_as.c_str())) return std::optional<User>(FromPasswd(pw));
    if (auto uid = ParseId(run_as.c_str())) {
      if (const passwd* pw = getpwuid(*uid)) return std::optional<User>(FromPasswd(pw));
      return std::optional<User>(User{*uid, *uid, "", ""});
    }
    return MakeError(ErrorKind::kUsage, fmt::format("--run-as {}: no such user", run_as));
  }
  // Under sudo: the user who ran it. SUDO_UID is only trusted when we really are root.
  auto uid = ParseId(getenv("SUDO_UID"));
  if (!uid || geteuid() != 0 || *uid == 0) return std::optional<User>();
  User u{*uid, *uid, "", ""};
  if (const passwd* pw = getpwuid(*uid)) u = FromPasswd(pw);
  if (auto gid = ParseId(getenv("SUDO_GID"))) u.gid = *gid;
  return std::optional<User>(u);
}

// In the child, between fork and exec (gotlscap is single-threaded at this point, but only
// async-signal-safe calls are used anyway, apart from initgroups).
[[noreturn]] void ChildExit(const char* what, const char* arg, int code) {
  const char* err = strerror(errno);
  std::string m = fmt::format("gotlscap: {}{}{}: {}\n", what, arg ? " " : "", arg ? arg : "", err);
  (void)!write(STDERR_FILENO, m.data(), m.size());
  _exit(code);
}

}  // namespace

Result<std::unique_ptr<CommandRun>> CommandRun::Fork(const std::vector<std::string>& argv, const std::string& run_as,
                                                     bool stdout_to_stderr) {
  ASSIGN_OR_RETURN(auto user, ResolveRunAs(run_as));
  if (user && geteuid() != 0 && user->uid != geteuid())
    return MakeError(ErrorKind::kPermission, "--run-as: changing user needs root");
  // Orphans of the tree are reparented to us: the tree's end can be seen, and its members found.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    return MakeError(ErrorKind::kInternal, fmt::format("PR_SET_CHILD_SUBREAPER: {}", strerror(errno)));
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) return MakeError(ErrorKind::kInternal, fmt::format("pipe: {}", strerror(errno)));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(go[0]);
    close(go[1]);
    return MakeError(ErrorKind::kInternal, fmt::format("fork: {}", strerror(e)));
  }
  if (pid == 0) {
    close(go[1]);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    char c = 0;
    ssize_t n;
    do n = read(go[0], &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);  // gotlscap failed (or died) before the capture started
    if (stdout_to_stderr && dup2(STDERR_FILENO, STDOUT_FILENO) < 0) ChildExit("dup2", nullptr, 127);
    if (user) {
      if ((user->name.empty() ? setgroups(1, &user->gid) : initgroups(user->name.c_str(), user->gid)) != 0)
        ChildExit("--run-as: setting the groups of", user->name.empty() ? nullptr : user->name.c_str(), 126);
      if (setgid(user->gid) != 0) ChildExit("--run-as: setgid", nullptr, 126);
      if (setuid(user->uid) != 0) ChildExit("--run-as: setuid", nullptr, 126);
      if (!user->name.empty()) {
        setenv("HOME", user->home.c_str(), 1);
        setenv("USER", user->name.c_str(), 1);
        setenv("LOGNAME", user->name.c_str(), 1);
      }
    }
    execvp(args[0], args.data());
    ChildExit("cannot run", args[0], errno == ENOENT ? 127 : 126);
  }
  close(go[0]);
  std::unique_ptr<CommandRun> r(new CommandRun());
  r->pid_ = pid;
  r->go_fd_ = go[1];
  r->name_ = argv[0];
  ForwardSignalsTo(pid);
  return r;
}

CommandRun::~CommandRun() {
  if (go_fd_ >= 0) {
    close(go_fd_);  // the child reads EOF and exits without running COMMAND
    int st;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  ForwardSignalsTo(0);
}

void CommandRun::Release() {
  if (go_fd_ < 0) return;
  char c = 'g';
  (void)!write(go_fd_, &c, 1);
  close(go_fd_);
  go_fd_ = -1;
}

bool CommandRun::Done() {
  for (;;) {
    int st = 0;
    pid_t r = waitpid(-1, &st, WNOHANG);
    if (r > 0) {
      if (r == pid_) {
        reaped_ = true;
        status_ = st;
        ForwardSignalsTo(0);  // nothing to forward to any more: a signal stops us
      }
      continue;  // an orphan of the tree, reparented to us
    }
    if (r < 0 && errno == EINTR) continue;
    return r < 0 && reaped_;  // ECHILD: no child left
  }
}

int CommandRun::ExitCode() const {
  if (reaped_) return WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : WEXITSTATUS(status_);
  return StopSignal() ? 128 + StopSignal() : 0;
}

std::vector<uint32_t> CommandRun::tree_pids() const {
  return follower_ ? follower_->tree_pids() : std::vector<uint32_t>{static_cast<uint32_t>(pid_)};
}

Result<std::unique_ptr<CommandRun>> PrepareCommand(const FollowCli& o, bool has_targets, bool capture_on_stdout) {
  if (o.command.empty()) {
    if (!o.run_as.empty()) return MakeError(ErrorKind::kUsage, "--run-as needs a command: ... -- COMMAND [ARGS...]");
    return std::unique_ptr<CommandRun>();
  }
  if (has_targets)
    return MakeError(ErrorKind::kUsage, "-- COMMAND follows the command's own processes: give no -e/-p with it");
  return CommandRun::Fork(o.command, o.run_as, capture_on_stdout);
}

}  // namespace gotlscap::cli
