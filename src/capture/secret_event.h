// SecretEvent: one TLS secret of a traced program, in NSS key log terms.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/cgroup.h"

namespace gotlscap::capture {

struct SecretEvent {
  uint64_t ts_ns = 0;  // Unix epoch, nanoseconds
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  std::optional<uint32_t> uid;  // read in the kernel with the secret (unset in hand-made events)
  uint32_t ppid = 0;            // 0: unknown
  uint64_t cgroup_id = 0;       // cgroup v2 id, 0: unknown
  std::shared_ptr<const CgroupInfo> cgroup;  // its path and container, when known
  std::string label;          // "CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0", ...
  std::string client_random;  // raw bytes (32)
  std::string secret;         // raw bytes
  bool from_master_secret = false;  // rebuilt from keysFromMasterSecret (TLS 1.2)
};

// "<label> <client_random hex> <secret hex>", the NSS key log line (no newline).
std::string KeyLogLine(const SecretEvent& s);
std::string Hex(const std::string& bytes);

}  // namespace gotlscap::capture
