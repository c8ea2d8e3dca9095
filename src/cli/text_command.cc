#include "cli/text_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/session.h"
#include "cli/capture_common.h"
#include "cli/command_run.h"
#include "cli/exit_codes.h"
#include "cli/nats_cli.h"
#include "decode/http_decoder.h"
#include "output/event_writer.h"

namespace gotlscap::cli {

void RegisterText(CLI::App& app, TextOptions& o) {
  auto* cmd = app.add_subcommand("text", "Capture the plaintext Go programs write and read over TLS");
  cmd->add_option("-e,--elfpath", o.elf_paths, "Go binary to trace (every process running it); repeatable");
  cmd->add_option("-p,--pid", o.pids, "Only these processes; alone, traces /proc/PID/exe; repeatable");
  cmd->add_option("-u,--uid", o.uid, "Only processes of this user id");
  cmd->add_option("--format", o.format, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--hex", o.hex, "Show payloads as hex dumps (text format)");
  cmd->add_option("-o,--output", o.output, "Write events to FILE (created mode 0600) instead of stdout");
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds")->check(CLI::NonNegativeNumber);
  cmd->add_option("--ringbuf-mb", o.ringbuf_mb, "Ring buffer size in MiB (default 32; raise it if the summary reports lost events)")->check(CLI::Range(1, 4096));
  cmd->add_option("--decode", o.decode, "Decode HTTP/1.x and HTTP/2 (text: instead of raw bytes; json: as extra "
                                        "\"http\" events)")
      ->check(CLI::IsMember({"none", "http"}));
  cmd->add_flag("--raw", o.raw, "Show HTTP bodies as sent (do not undo gzip/deflate/br)");
  AddMaxPayloadOption(cmd, o.max_payload);
  AddFollowOptions(cmd, o.follow);
  AddNatsOptions(cmd, o.nats);
}

int RunText(const TextOptions& o) {
  // Before any file or probe: a bad --nats option is a one-line error; a broker that is down is not.
  auto nats = StartNats(o.nats);
  if (!nats.ok()) return Fail(nats.error());
  std::unique_ptr<output::EventWriter> nats_writer;
  if (*nats) nats_writer = output::MakeJsonWriter(nats->get());

  FILE* out = stdout;
  if (!o.output.empty()) {
    // Plaintext of TLS connections is as sensitive as the keys: owner-only.
    int fd = open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Fail(MakeError(ErrorKind::kIo, fmt::format("cannot create {}: {}", o.output, std::strerror(errno))));
    out = fdopen(fd, "w");
  }
  // --nats alone: nothing on stdout. Otherwise stdout or -o FILE, beside the export.
  std::unique_ptr<output::EventWriter> file_writer;
  if (!nats_writer || !o.output.empty())
    file_writer = o.format == "json" ? output::MakeJsonWriter(out) : output::MakeTextWriter(out, o.hex);
  const bool json = o.format == "json";
  std::vector<output::EventWriter*> all, raw_json;  // every writer; those that keep every data event (JSON)
  for (auto* w : {file_writer.get(), nats_writer.get()}) {
    if (!w) continue;
    all.push_back(w);
    if (w == nats_writer.get() || json) raw_json.push_back(w);
  }
  auto writer = output::MakeTeeWriter(all);
  auto raw_writer = output::MakeTeeWriter(raw_json);
  output::EventWriter* text_writer = json ? nullptr : file_writer.get();

  auto targets = TargetSessionOptions(o.elf_paths, o.pids, o.uid, o.follow);
  if (!targets.ok()) return Fail(targets.error());
  capture::SessionOptions so = std::move(*targets);
  so.ringbuf_bytes = o.ringbuf_mb << 20;
  so.max_payload = SessionMaxPayload(o.max_payload);
  InstallSignalHandlers();
  auto cmd = PrepareCommand(o.follow, !so.follow_host, file_writer && out == stdout);
  if (!cmd.ok()) return Fail(cmd.error());
  so.pid_filter = *cmd != nullptr;
  uint64_t http_messages = 0;
  std::unique_ptr<decode::HttpDecoder> http;
  if (o.decode == "http") {
    decode::DecoderLimits limits;
    limits.raw = o.raw;
    http = std::make_unique<decode::HttpDecoder>(
        [&](decode::DecodedMessage&& m) {
          http_messages++;
          writer->WriteHttp(m);
        },
        [&](uint32_t pid, const std::string& comm, const capture::Connection& conn, std::string_view n) {
          writer->WriteNotice(pid, comm, conn, n);
        },
        limits);
  }
  auto session = capture::CaptureSession::Start(
      so,
      [&](capture::DataEvent&& ev) {
        // JSON (files and the export) keeps every raw event (machines may want both); text shows
        // decoded HTTP instead.
        raw_writer->Write(ev);
        const bool decoded = http && http->Feed(ev);
        if (text_writer && !decoded) text_writer->Write(ev);
      },
      [&](capture::SecretEvent&& s) { writer->WriteSecret(s); });
  if (!session.ok()) return Fail(session.error());
  // --max-payload: HTTP/2 frame headers may sit anywhere in a call (grpc-go writes 32 KiB at a
  // time), so the decoders could lose the framing: HTTP/2 connections are captured whole.
  if (http && so.max_payload < GOTLS_CAPTURE_MAX) {
    capture::CaptureSession* s = session->get();
    http->OnHttp2([s](uint32_t pid, uint64_t conn_id) { s->CaptureWhole(pid, conn_id); });
  }

  (*session)->SetProcessExitHandler([&](uint32_t pid) {
    if (http) http->ForgetProcess(pid);
  });
  auto ready = AnnounceReady(**session, so.follow_host, o.follow, o.uid, cmd->get());
  if (!ready.ok()) return Fail(ready.error());
  std::unique_ptr<host::HostFollower> follower = std::move(*ready);
  const uint64_t deadline = DeadlineFor(o.duration);
  bool write_failed = false;
  (*session)->Run(StopFlag(), deadline, [&] {
    if (follower) follower->Tick(capture::MonotonicNowNs());
    if (*cmd && (*cmd)->Done()) StopFlag().store(true);
    if (!writer->Flush()) {
      write_failed = true;
      StopFlag().store(true);
    }
  });
  if (follower) follower->Stop();
  auto s = (*session)->Finish();
  http.reset();  // delivers messages that end with the connection, before the last flush
  if (!writer->Flush()) write_failed = true;
  const auto& c = s.counters;
  fmt::print(stderr,
             "summary: {} events, {} bytes, {} lost, {} truncated (lost bytes {}, incomplete events {}, "
             "read faults {}, reads without entry {}, secrets {}, lost secrets {}, probe hits {}, stack growths {}, "
             "uncaptured bytes {}, http messages {})\n",
             s.events, s.bytes, c.lost_chunks() + c.lost_secrets(), s.truncated, c.lost_bytes(), s.incomplete,
             c.read_faults(), c.read_no_entry(), s.secrets, c.lost_secrets(), c.probe_hits(), c.stack_growth(),
             s.uncaptured_bytes, http_messages);
  if (follower) PrintFollowSummary(*follower);
  FinishNats(nats->get());
  if (write_failed) {
    fmt::print(stderr, "gotlscap: cannot write events to {}: {}\n", o.output.empty() ? "stdout" : o.output,
               std::strerror(errno ? errno : EIO));
    return ExitCodeFor(ErrorKind::kIo);
  }
  if (out != stdout) fclose(out);
  return *cmd ? (*cmd)->ExitCode() : 0;
}

}  // namespace gotlscap::cli
