#include "cli/keylog_command.h"

#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/session.h"
#include "cli/capture_common.h"
#include "cli/command_run.h"
#include "cli/exit_codes.h"
#include "output/event_writer.h"
#include "output/keylog_file.h"

namespace gotlscap::cli {

void RegisterKeylog(CLI::App& app, KeylogOptions& o) {
  auto* cmd = app.add_subcommand("keylog", "Write the TLS secrets of Go programs to an SSLKEYLOGFILE");
  cmd->add_option("-k,--keylogfile", o.keylog_file,
                  "Key log file (NSS format; created mode 0600, appended to); required unless --nats");
  cmd->add_option("-e,--elfpath", o.elf_paths, "Go binary to trace (every process running it); repeatable");
  cmd->add_option("-p,--pid", o.pids, "Only these processes; alone, traces /proc/PID/exe; repeatable");
  cmd->add_option("-u,--uid", o.uid, "Only processes of this user id");
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds")->check(CLI::NonNegativeNumber);
  AddFollowOptions(cmd, o.follow);
  AddNatsOptions(cmd, o.nats);
}

int RunKeylog(const KeylogOptions& o) {
  if (o.keylog_file.empty() && !o.nats.enabled())
    return Fail(MakeError(ErrorKind::kUsage, "keylog needs -k FILE or --nats URL (or both)"));
  auto nats = StartNats(o.nats);
  if (!nats.ok()) return Fail(nats.error());
  // Secrets as the JSON writer's "secret" events (one per label and client random per process).
  std::unique_ptr<output::EventWriter> nats_writer;
  if (*nats) nats_writer = output::MakeJsonWriter(nats->get());
  // Opened before anything is attached: a bad path fails fast and clearly.
  std::unique_ptr<output::KeyLogFile> file;
  if (!o.keylog_file.empty()) {
    auto f = output::KeyLogFile::Open(o.keylog_file);
    if (!f.ok()) return Fail(f.error());
    file = std::move(*f);
  }

  auto targets = TargetSessionOptions(o.elf_paths, o.pids, o.uid, o.follow);
  if (!targets.ok()) return Fail(targets.error());
  capture::SessionOptions so = std::move(*targets);
  so.data = false;  // keys only: no plaintext probes, no cost on Read/Write
  InstallSignalHandlers();
  auto cmd = PrepareCommand(o.follow, !so.follow_host, false);
  if (!cmd.ok()) return Fail(cmd.error());
  so.pid_filter = *cmd != nullptr;
  auto session = capture::CaptureSession::Start(so, [](capture::DataEvent&&) {}, [&](capture::SecretEvent&& s) {
    if (nats_writer) nats_writer->WriteSecret(s);
    if (file && !file->Write(s) && file->failed()) StopFlag().store(true);
  });
  if (!session.ok()) return Fail(session.error());
  auto ready = AnnounceReady(**session, so.follow_host, o.follow, o.uid, cmd->get());
  if (!ready.ok()) return Fail(ready.error());
  std::unique_ptr<host::HostFollower> follower = std::move(*ready);
  (*session)->Run(StopFlag(), DeadlineFor(o.duration), [&] {
    if (follower) follower->Tick(capture::MonotonicNowNs());
    if (*cmd && (*cmd)->Done()) StopFlag().store(true);
  });
  if (follower) follower->Stop();
  auto s = (*session)->Finish();
  if (file)
    fmt::print(stderr,
               "summary: {} secrets written to {}, {} duplicates skipped, {} lost (not written {}, read faults {}, "
               "probe hits {})\n",
               file->written(), o.keylog_file, file->duplicates(), s.counters.lost_secrets() + file->not_written(),
               file->not_written(), s.counters.read_faults(), s.counters.probe_hits());
  else
    fmt::print(stderr, "summary: {} secrets, {} lost (read faults {}, probe hits {})\n", s.secrets,
               s.counters.lost_secrets(), s.counters.read_faults(), s.counters.probe_hits());
  if (follower) PrintFollowSummary(*follower);
  FinishNats(nats->get());
  if (file && file->failed()) {
    fmt::print(stderr, "gotlscap: cannot write to {}: {}\n", o.keylog_file, std::strerror(file->last_errno()));
    return ExitCodeFor(ErrorKind::kIo);
  }
  return *cmd ? (*cmd)->ExitCode() : 0;
}

}  // namespace gotlscap::cli
