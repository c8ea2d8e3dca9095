// `--nats` settings and their checks: everything that can be wrong with them is found here,
// before anything is attached (a broker that is down is not wrong: the exporter waits for it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace gotlscap::fleet {

struct NatsConfig {
  std::vector<std::string> servers;  // nats://host:port, tls://host:port, host:port
  std::string subject_prefix = "gotlscap";
  std::string stream = "GOTLSCAP";
  std::string creds_file;   // --nats-creds: a .creds file (JWT + NKey seed)
  std::string token;        // --nats-token
  std::string tls_ca_file;  // --nats-tls-ca: CA bundle for tls:// servers
  std::string host;         // the node's name in subjects, ids and bodies (default: gethostname)
  uint64_t buffer_bytes = 64ull << 20;  // --nats-buffer-mb
  double drain_timeout_s = 10;           // --nats-drain-timeout
};

// "nats://a:4222,tls://b:4443" -> each URL checked: scheme nats:// or tls:// (or none), optional
// user info, a host, an optional port 1..65535, nothing after it.
Result<std::vector<std::string>> ParseNatsUrls(std::string_view list);
// Every field: URLs present, prefix and stream name valid, creds and CA files readable.
Result<bool> CheckNatsConfig(const NatsConfig& c);

}  // namespace gotlscap::fleet
