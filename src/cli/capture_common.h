// Pieces every capture subcommand shares: stop on SIGINT/SIGTERM, the `ready` line, one-line errors.
#pragma once

#include <atomic>

#include "capture/session.h"
#include "common/result.h"

namespace gotlscap::cli {

// Set by SIGINT/SIGTERM (and by a command that must stop, e.g. on a write error).
std::atomic<bool>& StopFlag();
void InstallSignalHandlers();
// "ready: N uprobes on M binaries: go1.x /path (ABI), ..." on stderr: scripts wait for it.
void PrintReady(const capture::CaptureSession& session);
// Prints "gotlscap: <message>" and returns the exit code of the error's kind.
int Fail(const Error& e);
// Deadline for --duration SEC (0: none), on the session's monotonic clock.
uint64_t DeadlineFor(double seconds);

}  // namespace gotlscap::cli
