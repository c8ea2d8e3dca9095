#include "cli/view_command.h"

#include <cstdio>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/data_event.h"
#include "capture/secret_event.h"
#include "cli/capture_common.h"
#include "cli/exit_codes.h"
#include "decode/http_decoder.h"
#include "fleet/stream_reader.h"
#include "output/encoding.h"
#include "output/event_writer.h"
#include "output/json_report.h"

namespace gotlscap::cli {
namespace {

using Json = nlohmann::ordered_json;

template <typename T>
T Get(const Json& j, const char* k, T def = T{}) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return def;
  try {
    return it->get<T>();
  } catch (const Json::exception&) {
    return def;
  }
}


// Hex digits to bytes; a message damaged in the stream gives fewer bytes, never an exception.
std::string Unhex(std::string_view in) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i + 1 < in.size(); i += 2) {
    const int hi = nibble(in[i]), lo = nibble(in[i + 1]);
    if (hi < 0 || lo < 0) break;
    out.push_back(char(hi << 4 | lo));
  }
  return out;
}

std::shared_ptr<const CgroupInfo> CgroupOf(const Json& j) {
  if (!j.contains("cgroup")) return nullptr;
  auto cg = std::make_shared<CgroupInfo>();
  cg->path = Get<std::string>(j, "cgroup");
  if (j.contains("container")) {
    const auto& c = j["container"];
    cg->container = ContainerInfo{Get<std::string>(c, "id"), Get<std::string>(c, "runtime"), Get<std::string>(c, "pod_uid")};
  }
  return cg;
}

// A "data" or "close" event as the capture produced it.
capture::DataEvent DataEventOf(const Json& j) {
  capture::DataEvent ev;
  ev.ts_ns = Get<uint64_t>(j, "ts_ns");
  ev.pid = Get<uint32_t>(j, "pid");
  ev.tid = Get<uint32_t>(j, "tid");
  ev.uid = Get<uint32_t>(j, "uid");
  ev.comm = Get<std::string>(j, "comm");
  if (j.contains("conn")) {
    const auto& c = j["conn"];
    ev.conn.id = Get<uint64_t>(c, "id");
    ev.conn.fd = Get<int64_t>(c, "fd", -1);
    ev.conn.local = Get<std::string>(c, "local");
    ev.conn.remote = Get<std::string>(c, "remote");
  }
  ev.conn.cgroup = CgroupOf(j);
  if (Get<std::string>(j, "type") == "close") {
    const bool eof = Get<std::string>(j, "reason") == "eof";
    ev.end = eof ? capture::ConnEnd::kEof : capture::ConnEnd::kClose;
    ev.dir = eof ? capture::Direction::kRead : capture::Direction::kWrite;
    return ev;
  }
  ev.dir = Get<std::string>(j, "dir") == "read" ? capture::Direction::kRead : capture::Direction::kWrite;
  ev.len = Get<uint64_t>(j, "len");
  ev.truncated = Get<bool>(j, "truncated");
  ev.missing = Get<uint64_t>(j, "missing");
  output::DecodeBase64(Get<std::string>(j, "payload_b64"), &ev.payload);  // bad characters skipped
  return ev;
}

capture::SecretEvent SecretEventOf(const Json& j) {
  capture::SecretEvent s;
  s.ts_ns = Get<uint64_t>(j, "ts_ns");
  s.pid = Get<uint32_t>(j, "pid");
  s.tid = Get<uint32_t>(j, "tid");
  s.comm = Get<std::string>(j, "comm");
  s.label = Get<std::string>(j, "label");
  s.client_random = Unhex(Get<std::string>(j, "client_random"));
  s.secret = Unhex(Get<std::string>(j, "secret"));
  s.from_master_secret = Get<std::string>(j, "source") == "master_secret";
  s.cgroup = CgroupOf(j);
  return s;
}

}  // namespace

void RegisterView(CLI::App& app, ViewOptions& o) {
  auto* cmd = app.add_subcommand("view", "Read back the events gotlscap --nats published to NATS JetStream");
  cmd->add_option("url", o.url, "The broker: nats://HOST:PORT")->required();
  cmd->add_option("--stream", o.stream, "JetStream stream (default GOTLSCAP)");
  cmd->add_option("--subject", o.subject, "Subject prefix (default gotlscap)");
  cmd->add_option("--host", o.host, "Only events of this node");
  cmd->add_option("--type", o.type, "Only events of this type")
      ->check(CLI::IsMember({"data", "http", "secret", "close", "notice"}));
  auto* since = cmd->add_option("--since", o.since, "Only events stored in the last DURATION (30s, 10m, 2h, 1d)");
  auto* all = cmd->add_flag("--all", o.all, "Every event stored (the default)");
  since->excludes(all);
  cmd->add_flag("-f,--follow", o.follow, "Keep reading new events until Ctrl-C");
  cmd->add_option("--format", o.format, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--hex", o.hex, "Show payloads as hex dumps (text format)");
  cmd->add_flag("--raw", o.raw, "Show HTTP bodies as sent (do not undo gzip/deflate/br)");
}

int RunView(const ViewOptions& o) {
  fleet::ViewConfig c;
  c.url = o.url;
  c.stream = o.stream;
  c.subject_prefix = o.subject;
  c.host = o.host;
  c.type = o.type;
  c.follow = o.follow;
  if (!o.since.empty()) {
    c.since = fleet::ParseSince(o.since);
    if (!c.since) return Fail(MakeError(ErrorKind::kUsage, fmt::format("--since: '{}' is not a duration like 30s, 10m, 2h, 1d", o.since)));
  }
  const bool json = o.format == "json";
  auto writer = output::MakeTextWriter(stdout, o.hex);
  // Text: one HTTP decoder per run (HOST/BOOT/RUN): pids and connection ids are per node and run.
  std::map<std::string, std::unique_ptr<decode::HttpDecoder>> decoders;
  decode::DecoderLimits limits;
  limits.raw = o.raw;
  uint64_t events = 0, bad = 0;
  fleet::StreamAssembler assembler([&](const Json& ev, const std::string& run) {
    events++;
    if (json) {
      const std::string line = output::JsonLine(ev);  // the JSON output's UTF-8 rule
      fwrite(line.data(), 1, line.size(), stdout);
      return;
    }
    const std::string type = Get<std::string>(ev, "type");
    if (type == "data" || type == "close") {
      auto& d = decoders[run];
      if (!d)
        d = std::make_unique<decode::HttpDecoder>(
            [&](decode::DecodedMessage&& m) { writer->WriteHttp(m); },
            [&](uint32_t pid, const std::string& comm, const capture::Connection& conn, std::string_view n) {
              writer->WriteNotice(pid, comm, conn, n);
            },
            limits);
      auto de = DataEventOf(ev);
      if (!d->Feed(de)) writer->Write(de);
    } else if (type == "secret") {
      writer->WriteSecret(SecretEventOf(ev));
    }
    // "http" and "notice" events: the decoder above makes its own from the data events.
    writer->Flush();
  });
  InstallSignalHandlers();
  auto r = fleet::ReadStream(
      c, StopFlag(),
      [&](std::string_view id, std::string_view body) {
        auto ok = assembler.Add(id, body);
        if (!ok.ok() && bad++ < 5) fmt::print(stderr, "gotlscap: skipped a message: {}\n", ok.error().message);
      },
      [&] {
        // --follow, idle: nothing is on its way, so a gap will not fill now.
        if (!c.follow) return;
        assembler.ReleaseGaps();
        writer->Flush();
        fflush(stdout);
      });
  assembler.Flush();
  decoders.clear();  // delivers messages that end with their connection
  writer->Flush();
  fflush(stdout);
  if (!r.ok()) return Fail(r.error());
  if (assembler.incomplete() || bad)
    fmt::print(stderr, "view: {} events, {} incomplete (parts missing), {} unreadable messages\n", events,
               assembler.incomplete(), bad);
  return 0;
}

}  // namespace gotlscap::cli
