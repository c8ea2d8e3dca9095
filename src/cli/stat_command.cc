#include "cli/stat_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/session.h"
#include "cli/command_run.h"
#include "cli/exit_codes.h"
#include "decode/http_decoder.h"
#include "output/stat_report.h"
#include "stats/request_stats.h"

namespace gotlscap::cli {
namespace {

uint64_t WallNs() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

void RegisterStat(CLI::App& app, StatOptions& o) {
  auto* cmd = app.add_subcommand("stat", "Request counts, errors and latency percentiles of Go programs' HTTPS traffic");
  cmd->add_option("-e,--elfpath", o.elf_paths, "Go binary to trace (every process running it); repeatable");
  cmd->add_option("-p,--pid", o.pids, "Only these processes; alone, traces /proc/PID/exe; repeatable");
  cmd->add_option("-u,--uid", o.uid, "Only processes of this user id");
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds")->check(CLI::NonNegativeNumber);
  cmd->add_option("--interval", o.interval, "Also print the groups of every SEC seconds (figures of that interval)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--group-by", o.group_by, "One row per path, host (authority), method, status, comm, conn or remote (peer address)")
      ->check(CLI::IsMember({"path", "host", "method", "status", "comm", "conn", "remote"}));
  cmd->add_option("--sort", o.sort, "Rows by count, p50, p90, p99, max or bytes (largest first)")
      ->check(CLI::IsMember({"count", "p50", "p90", "p99", "max", "bytes"}));
  cmd->add_option("--top", o.top, "Only the first N rows (default: all)");
  cmd->add_option("--path-depth", o.path_depth, "Group paths by their first N segments (/a/b/c, 1: /a)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--keep-query", o.keep_query, "Keep query strings in paths (default: dropped)");
  cmd->add_option("--slowest", o.slowest, "Also list the N slowest requests (time, method, path, status, pid, connection)");
  cmd->add_option("--format", o.format, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("-o,--output", o.output, "Write to FILE (created mode 0600) instead of stdout");
  AddMaxPayloadOption(cmd, o.max_payload);  // default 4096 here: headers are enough
  cmd->add_option("--ringbuf-mb", o.ringbuf_mb, "Ring buffer size in MiB")->check(CLI::Range(1, 4096));
  AddFollowOptions(cmd, o.follow);
}

int RunStat(const StatOptions& o) {
  FILE* out = stdout;
  if (!o.output.empty()) {
    int fd = open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Fail(MakeError(ErrorKind::kIo, fmt::format("cannot create {}: {}", o.output, std::strerror(errno))));
    out = fdopen(fd, "w");
  }
  stats::StatOptions so_stats;
  so_stats.group_by = *stats::ParseGroupBy(o.group_by);
  so_stats.path_depth = o.path_depth;
  so_stats.keep_query = o.keep_query;
  so_stats.slowest = o.slowest;
  const stats::SortBy sort = *stats::ParseSortBy(o.sort);
  stats::RequestStats total(so_stats), interval(so_stats);

  auto targets = TargetSessionOptions(o.elf_paths, o.pids, o.uid, o.follow);
  if (!targets.ok()) return Fail(targets.error());
  capture::SessionOptions so = std::move(*targets);
  so.secrets = false;  // stat needs no keys
  so.ringbuf_bytes = o.ringbuf_mb << 20;
  so.max_payload = SessionMaxPayload(o.max_payload);
  InstallSignalHandlers();
  auto cmd = PrepareCommand(o.follow, !so.follow_host, out == stdout);
  if (!cmd.ok()) return Fail(cmd.error());
  so.pid_filter = *cmd != nullptr;

  // Headers are all stat needs: bodies are counted, never kept or decompressed.
  decode::DecoderLimits limits;
  limits.max_body = 0;
  limits.raw = true;
  uint64_t notices = 0;
  auto http = std::make_unique<decode::HttpDecoder>(
      [&](decode::DecodedMessage&& m) {
        total.Add(m);
        if (o.interval > 0) interval.Add(m);
      },
      [&](uint32_t, const std::string&, const capture::Connection&, std::string_view) { notices++; }, limits);
  auto session = capture::CaptureSession::Start(so, [&](capture::DataEvent&& ev) { http->Feed(ev); });
  if (!session.ok()) return Fail(session.error());
  capture::CaptureSession* s = session->get();
  // HTTP/2 frame headers may sit anywhere in a call (grpc-go writes 32 KiB at a time): those
  // connections are captured whole.
  http->OnHttp2([s](uint32_t pid, uint64_t conn_id) { s->CaptureWhole(pid, conn_id); });
  s->SetProcessExitHandler([&](uint32_t pid) { http->ForgetProcess(pid); });
  auto ready = AnnounceReady(*s, so.follow_host, o.follow, o.uid, cmd->get());
  if (!ready.ok()) return Fail(ready.error());
  std::unique_ptr<host::HostFollower> follower = std::move(*ready);

  const std::string_view group_by = o.group_by;
  const bool json = o.format == "json";
  bool write_failed = false;
  auto print = [&](const std::string& text) {
    if (text.empty() || write_failed) return;
    if (fwrite(text.data(), 1, text.size(), out) != text.size() || fflush(out) != 0) {
      write_failed = true;
      StopFlag().store(true);
    }
  };
  auto report = [&](stats::RequestStats& st, std::string_view period, double seconds) {
    output::StatPeriod p{period, WallNs(), seconds, st.responses(), st.untimed()};
    const auto rows = st.Rows(sort, o.top);
    const auto slow = o.slowest ? st.Slowest() : std::vector<stats::SlowRequest>{};
    if (json) {
      print(output::StatJson(p, group_by, rows));
      print(output::SlowestJson(p, slow));
    } else {
      print(output::StatTable(p, group_by, rows));
      if (o.slowest) print(output::SlowestTable(slow));
    }
  };

  const uint64_t start = capture::MonotonicNowNs();
  const uint64_t interval_ns = static_cast<uint64_t>(o.interval * 1e9);
  uint64_t next_report = interval_ns ? start + interval_ns : 0, last_report = start;
  const uint64_t deadline = DeadlineFor(o.duration);
  s->Run(StopFlag(), deadline, [&] {
    const uint64_t now = capture::MonotonicNowNs();
    if (follower) follower->Tick(now);
    if (*cmd && (*cmd)->Done()) StopFlag().store(true);
    if (next_report && now >= next_report) {
      report(interval, "interval", static_cast<double>(now - last_report) / 1e9);
      interval.Reset();
      last_report = now;
      while (next_report <= now) next_report += interval_ns;
    }
  });
  if (follower) follower->Stop();
  auto summary = s->Finish();
  http.reset();  // a response delimited by the end of its connection completes here
  report(total, "total", static_cast<double>(capture::MonotonicNowNs() - start) / 1e9);
  const auto& c = summary.counters;
  // The capture figures first, as `text` prints them (scripts parse "N truncated (... probe hits H,").
  fmt::print(stderr,
             "summary: {} events, {} bytes, {} lost, {} truncated (lost bytes {}, probe hits {}, stack growths {}, "
             "uncaptured bytes {}), {} responses, {} untimed, {} decode notices\n",
             summary.events, summary.bytes, c.lost_chunks(), summary.truncated, c.lost_bytes(), c.probe_hits(),
             c.stack_growth(), summary.uncaptured_bytes, total.responses(), total.untimed(), notices);
  if (follower) PrintFollowSummary(*follower);
  if (write_failed) {
    fmt::print(stderr, "gotlscap: cannot write to {}: {}\n", o.output.empty() ? "stdout" : o.output,
               std::strerror(errno ? errno : EIO));
    return ExitCodeFor(ErrorKind::kIo);
  }
  if (out != stdout) fclose(out);
  return *cmd ? (*cmd)->ExitCode() : 0;
}

}  // namespace gotlscap::cli
