// Shared helpers of the end-to-end tests (capture_e2e_test.cc, keylog_e2e_test.cc): child
// processes that run alongside the test (gotlscap, the Go test servers and clients, dumpcap),
// with their output collected as it comes and every wait bounded by a timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace gotlscap::testenv {

using Clock = std::chrono::steady_clock;

// A child process with stdout and stderr collected by a reader thread; waits have timeouts and
// the destructor SIGKILLs a child that is still running, so a failed assertion never leaves
// processes (or attached uprobes) behind. argv[0] is looked up in PATH; stdin is /dev/null.
class Proc {
 public:
  explicit Proc(std::vector<std::string> argv);
  ~Proc();
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  pid_t pid() const { return pid_; }
  std::string Out();
  std::string Err();
  std::string Describe();  // argv, status and the start of both streams, for failure messages

  // The first line of stdout (fd 1) or stderr (fd 2) starting with `needle` (or containing it
  // anywhere, with anywhere=true); nullopt on timeout or when the stream ends without one.
  std::optional<std::string> WaitLine(int fd, const std::string& needle, Clock::duration timeout,
                                      bool anywhere = false);

  // Exit code (128+signal when killed), nullopt if still running after `timeout`.
  std::optional<int> Wait(Clock::duration timeout);

  void Signal(int sig);  // nothing once the child has been waited for

 private:
  void ReadLoop();

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1, pidfd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;
  bool out_eof_ = false, err_eof_ = false;
  std::optional<int> status_;
};

// A test server (`server` binary of testdata/go) on 127.0.0.1:0 (the kernel picks a free port,
// so no port race); ready once it printed its address.
struct Server {
  std::unique_ptr<Proc> proc;
  std::string addr;  // "127.0.0.1:PORT"
  int port = 0;      // PORT
  pid_t pid() const { return proc->pid(); }
  std::string url() const { return "https://" + addr; }
};

// Starts `bin [bin_args...] -addr 127.0.0.1:0 [extra...]` and waits for its `listening` line.
// `bin_args` follow `bin` before the server flags: StartServer("/usr/bin/env", s, {}, {"GOGC=1",
// server}) runs the server with GOGC=1 (env execs it: same pid).
::testing::AssertionResult StartServer(const std::string& bin, Server* s, std::vector<std::string> extra = {},
                                       std::vector<std::string> bin_args = {});

struct ProcRun {
  pid_t pid = -1;
  int exit_code = -1;
  std::string out, err;
  std::string describe;
};

// Runs a program to completion (timeout: killed, exit_code -1).
ProcRun RunToEnd(const std::vector<std::string>& argv, Clock::duration timeout = std::chrono::seconds(120));

// Records the seconds since `since` as the test property `key`.
void RecordSeconds(const char* key, Clock::time_point since);

}  // namespace gotlscap::testenv
