#include "test_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace gotlscap::testenv {

using std::chrono::milliseconds;
using std::chrono::seconds;

Proc::Proc(std::vector<std::string> argv) : argv_(std::move(argv)) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(wake_, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  std::vector<char*> args;
  for (auto& s : argv_) args.push_back(s.data());
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid_ == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvp(args[0], args.data());
    const char msg[] = "Proc: exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  // Wait() polls the pidfd (no busy sleeping); without pidfd_open (Linux < 5.3) it sleeps 5 ms.
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  reader_ = std::thread([this] { ReadLoop(); });
}

Proc::~Proc() {
  if (!Wait(milliseconds(0))) {
    kill(pid_, SIGKILL);
    Wait(seconds(30));
  }
  (void)!write(wake_[1], "x", 1);
  reader_.join();
  for (int fd : {out_fd_, err_fd_, wake_[0], wake_[1], pidfd_})
    if (fd >= 0) close(fd);
}

std::string Proc::Out() {
  std::lock_guard<std::mutex> l(mu_);
  return out_;
}

std::string Proc::Err() {
  std::lock_guard<std::mutex> l(mu_);
  return err_;
}

std::string Proc::Describe() {
  std::lock_guard<std::mutex> l(mu_);
  std::ostringstream os;
  os << "[pid " << pid_ << ":";
  for (const auto& a : argv_) os << " " << a;
  os << "] status " << (status_ ? std::to_string(*status_) : std::string("running")) << "\n--- stdout ---\n"
     << out_.substr(0, 4000) << "\n--- stderr ---\n"
     << err_.substr(0, 4000);
  return os.str();
}

std::optional<std::string> Proc::WaitLine(int fd, const std::string& needle, Clock::duration timeout,
                                          bool anywhere) {
  std::unique_lock<std::mutex> l(mu_);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const std::string& s = fd == 1 ? out_ : err_;
    size_t start = 0;
    while (true) {
      size_t nl = s.find('\n', start);
      if (nl == std::string::npos) break;
      const std::string_view line(s.data() + start, nl - start);
      if (anywhere ? line.find(needle) != std::string_view::npos : line.starts_with(needle)) return std::string(line);
      start = nl + 1;
    }
    if (fd == 1 ? out_eof_ : err_eof_) return std::nullopt;
    if (cv_.wait_until(l, deadline) == std::cv_status::timeout && Clock::now() >= deadline) return std::nullopt;
  }
}

std::optional<int> Proc::Wait(Clock::duration timeout) {
  if (status_) return status_;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      std::unique_lock<std::mutex> l(mu_);
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      // Everything the child wrote is in the pipes: wait until the reader has all of it.
      cv_.wait_for(l, seconds(5), [this] { return out_eof_ && err_eof_; });
      return status_;
    }
    if (r < 0 && errno != EINTR) return status_ = -1;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    } else {
      std::this_thread::sleep_for(milliseconds(std::min<long long>(left, 5)));
    }
  }
}

void Proc::Signal(int sig) {
  if (!status_) kill(pid_, sig);
}

void Proc::ReadLoop() {
  pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
  char buf[65536];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents) break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      std::lock_guard<std::mutex> l(mu_);
      if (n > 0) {
        (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        (i == 0 ? out_eof_ : err_eof_) = true;
      }
      cv_.notify_all();
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  out_eof_ = err_eof_ = true;
  cv_.notify_all();
}

::testing::AssertionResult StartServer(const std::string& bin, Server* s, std::vector<std::string> extra,
                                       std::vector<std::string> bin_args) {
  static const std::string kPrefix = "listening ", kHost = "127.0.0.1:";
  std::vector<std::string> argv = {bin};
  argv.insert(argv.end(), bin_args.begin(), bin_args.end());
  argv.insert(argv.end(), {"-addr", "127.0.0.1:0"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  s->proc = std::make_unique<Proc>(argv);
  auto line = s->proc->WaitLine(1, kPrefix, seconds(30));
  if (!line) return ::testing::AssertionFailure() << "server did not print `listening`: " << s->proc->Describe();
  s->addr = line->substr(kPrefix.size());
  if (s->addr.rfind(kHost, 0) != 0) return ::testing::AssertionFailure() << "odd address: " << *line;
  s->port = std::atoi(s->addr.c_str() + kHost.size());
  if (s->port <= 0) return ::testing::AssertionFailure() << "odd address: " << *line;
  return ::testing::AssertionSuccess();
}

ProcRun RunToEnd(const std::vector<std::string>& argv, Clock::duration timeout) {
  Proc p(argv);
  ProcRun r;
  r.pid = p.pid();
  auto code = p.Wait(timeout);
  r.exit_code = code ? *code : -1;
  if (!code) p.Signal(SIGKILL);
  p.Wait(seconds(10));
  r.out = p.Out();
  r.err = p.Err();
  r.describe = p.Describe();
  return r;
}

void RecordSeconds(const char* key, Clock::time_point since) {
  ::testing::Test::RecordProperty(key, std::to_string(std::chrono::duration<double>(Clock::now() - since).count()));
}

}  // namespace gotlscap::testenv
