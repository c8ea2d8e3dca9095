// `--nats` and its options, shared by text, keylog and gotls (-m text|keylog): the command line
// side of fleet::NatsExporter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "fleet/nats_exporter.h"

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct NatsCli {
  std::string urls;  // --nats URL[,URL...]; empty: no export
  std::string subject = "gotlscap";
  std::string stream = "GOTLSCAP";
  std::string creds, token, tls_ca, host;
  uint64_t buffer_mb = 64;
  double drain_timeout = 10;
  bool enabled() const { return !urls.empty(); }
};

void AddNatsOptions(CLI::App* cmd, NatsCli& o);
// Checks the options (bad URL, unreadable creds: a usage or I/O error) and starts the exporter;
// null without --nats. Call it before anything is attached.
Result<std::unique_ptr<fleet::NatsExporter>> StartNats(const NatsCli& o);
// Waits for the last acknowledgements (bounded by --nats-drain-timeout) and prints the counters
// line on stderr. Nothing without an exporter.
void FinishNats(fleet::NatsExporter* e);

}  // namespace gotlscap::cli
