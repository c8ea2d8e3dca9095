#include "cli/capture_common.h"

#include <signal.h>

#include <fmt/format.h>

#include "cli/exit_codes.h"

namespace gotlscap::cli {
namespace {
void OnSignal(int) { StopFlag().store(true); }
}  // namespace

std::atomic<bool>& StopFlag() {
  static std::atomic<bool> stop{false};
  return stop;
}

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: the ring-buffer poll returns at once
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

uint64_t DeadlineFor(double seconds) {
  return seconds > 0 ? capture::MonotonicNowNs() + static_cast<uint64_t>(seconds * 1e9) : 0;
}

}  // namespace gotlscap::cli
