#include "cli/text_command.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/session.h"
#include "cli/exit_codes.h"
#include "output/event_writer.h"

namespace gotlscap::cli {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: the ring-buffer poll returns at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed pipe shows up as a write error instead
}

int Fail(const Error& e) {
  fmt::print(stderr, "gotlscap: {}\n", e.message);
  return ExitCodeFor(e.kind);
}

}  // namespace

void RegisterText(CLI::App& app, TextOptions& o) {
  auto* cmd = app.add_subcommand("text", "Capture the plaintext Go programs write and read over TLS");
  cmd->add_option("-e,--elfpath", o.elf_paths, "Go binary to trace (every process running it); repeatable");
  cmd->add_option("-p,--pid", o.pids, "Only these processes; alone, traces /proc/PID/exe; repeatable");
  cmd->add_option("-u,--uid", o.uid, "Only processes of this user id");
  cmd->add_option("--format", o.format, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--hex", o.hex, "Show payloads as hex dumps (text format)");
  cmd->add_option("-o,--output", o.output, "Write events to FILE (created mode 0600) instead of stdout");
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds")->check(CLI::NonNegativeNumber);
  cmd->add_option("--ringbuf-mb", o.ringbuf_mb, "Ring buffer size in MiB")->check(CLI::Range(1, 4096));
}

int RunText(const TextOptions& o) {
  if (o.elf_paths.empty() && o.pids.empty())
    return Fail(MakeError(ErrorKind::kUsage, "text: give -e PATH or -p PID (see --help)"));

  FILE* out = stdout;
  if (!o.output.empty()) {
    // Plaintext of TLS connections is as sensitive as the keys: owner-only.
    int fd = open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Fail(MakeError(ErrorKind::kIo, fmt::format("cannot create {}: {}", o.output, std::strerror(errno))));
    out = fdopen(fd, "w");
  }
  static char buf[1 << 20];
  setvbuf(out, buf, _IOFBF, sizeof buf);
  auto writer = o.format == "json" ? output::MakeJsonWriter(out) : output::MakeTextWriter(out, o.hex);

  capture::SessionOptions so;
  so.elf_paths = o.elf_paths;
  so.pids = o.pids;
  so.uid = o.uid;
  so.ringbuf_bytes = o.ringbuf_mb << 20;
  InstallSignalHandlers();
  auto session = capture::CaptureSession::Start(so, [&](capture::DataEvent&& ev) { writer->Write(ev); });
  if (!session.ok()) return Fail(session.error());

  std::string what;
  for (const auto& t : (*session)->targets())
    what += fmt::format("{}{} {} ({} ABI)", what.empty() ? "" : ", ", t.binary.version_string, t.path,
                        gobin::AbiName(t.binary.abi));
  fmt::print(stderr, "ready: {} uprobes on {} binar{}: {}\n", (*session)->probe_count(), (*session)->targets().size(),
             (*session)->targets().size() == 1 ? "y" : "ies", what);
  fflush(stderr);

  const uint64_t deadline = o.duration > 0 ? capture::MonotonicNowNs() + uint64_t(o.duration * 1e9) : 0;
  bool write_failed = false;
  (*session)->Run(g_stop, deadline, [&] {
    if (!writer->Flush()) {
      write_failed = true;
      g_stop.store(true);
    }
  });
  auto s = (*session)->Finish();
  if (!writer->Flush()) write_failed = true;
  const auto& c = s.counters;
  fmt::print(stderr,
             "summary: {} events, {} bytes, {} lost, {} truncated (lost bytes {}, incomplete events {}, "
             "read faults {}, reads without entry {}, probe hits {})\n",
             s.events, s.bytes, c.lost_chunks(), s.truncated, c.lost_bytes(), s.incomplete, c.read_faults(), c.read_no_entry(),
             c.probe_hits());
  if (write_failed) {
    fmt::print(stderr, "gotlscap: cannot write events to {}: {}\n", o.output.empty() ? "stdout" : o.output,
               std::strerror(errno ? errno : EIO));
    return ExitCodeFor(ErrorKind::kIo);
  }
  if (out != stdout) fclose(out);
  return 0;
}

}  // namespace gotlscap::cli
