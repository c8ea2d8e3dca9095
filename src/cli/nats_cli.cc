#include "cli/nats_cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace gotlscap::cli {

void AddNatsOptions(CLI::App* cmd, NatsCli& o) {
  const char* g = "Fleet export (NATS JetStream)";
  cmd->add_option("--nats", o.urls,
                  "Publish every event (JSON) to NATS JetStream at URL[,URL...] (nats:// or tls://); "
                  "alone, nothing goes to stdout")
      ->group(g);
  cmd->add_option("--nats-subject", o.subject, "Subject prefix: PREFIX.<host>.<type> (default gotlscap)")->group(g);
  cmd->add_option("--nats-stream", o.stream, "Stream to publish into, created over PREFIX.> if absent (default GOTLSCAP)")
      ->group(g);
  cmd->add_option("--nats-creds", o.creds, "NATS credentials file (JWT and NKey seed)")->group(g);
  cmd->add_option("--nats-token", o.token, "NATS authentication token")->group(g);
  cmd->add_option("--nats-tls-ca", o.tls_ca, "CA certificates (PEM) for tls:// servers")->group(g);
  cmd->add_option("--nats-host", o.host, "This node's name in subjects and events (default: the host name)")->group(g);
  cmd->add_option("--nats-buffer-mb", o.buffer_mb,
                  "Events kept for the broker (outage, unacknowledged) in MiB; beyond, new events are dropped and "
                  "counted (default 64)")
      ->check(CLI::Range(1, 65536))
      ->group(g);
  cmd->add_option("--nats-drain-timeout", o.drain_timeout,
                  "At exit, wait up to SEC seconds for the last acknowledgements (default 10)")
      ->check(CLI::NonNegativeNumber)
      ->group(g);
}

Result<std::unique_ptr<fleet::NatsExporter>> StartNats(const NatsCli& o) {
  if (!o.enabled()) return std::unique_ptr<fleet::NatsExporter>();
  fleet::NatsConfig c;
  auto urls = fleet::ParseNatsUrls(o.urls);
  if (!urls.ok()) return urls.error();
  c.servers = *urls;
  c.subject_prefix = o.subject;
  c.stream = o.stream;
  c.creds_file = o.creds;
  c.token = o.token;
  c.tls_ca_file = o.tls_ca;
  c.host = o.host;
  c.buffer_bytes = o.buffer_mb << 20;
  c.drain_timeout_s = o.drain_timeout;
  return fleet::NatsExporter::Start(c, [](const std::string& line) {
    fmt::print(stderr, "{}\n", line);
    fflush(stderr);
  });
}

void FinishNats(fleet::NatsExporter* e) {
  if (!e) return;
  e->Stop();
  fmt::print(stderr, "{}\n", fleet::FormatCounters(e->counters()));
}

}  // namespace gotlscap::cli
