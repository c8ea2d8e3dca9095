#include "capture/key_update_tracker.h"

#include <fmt/format.h>

namespace gotlscap::capture {

void KeyUpdateTracker::Bind(uint32_t pid, uint64_t half_conn, const std::string& client_random,
                            const std::string& side) {
  Bound(bound_);
  bound_[{pid, half_conn}] = Binding{client_random, side, 0};
}

void KeyUpdateTracker::OnKeyLog(const SecretEvent& s) {
  std::string side;
  if (s.label == "CLIENT_TRAFFIC_SECRET_0") side = "CLIENT";
  if (s.label == "SERVER_TRAFFIC_SECRET_0") side = "SERVER";
  if (side.empty()) return;
  const auto key = std::make_pair(s.pid, s.secret);
  // setTrafficSecret may have come first (Go installs the read key before logging it).
  if (auto it = unmatched_.find(key); it != unmatched_.end()) {
    Bind(s.pid, it->second, s.client_random, side);
    unmatched_.erase(it);
    return;
  }
  Bound(zero_);
  zero_[key] = {s.client_random, side};
}

std::optional<SecretEvent> KeyUpdateTracker::OnTrafficSecret(const SecretEvent& s, uint64_t half_conn) {
  const auto key = std::make_pair(s.pid, s.secret);
  if (auto it = zero_.find(key); it != zero_.end()) {  // the first application secret
    Bind(s.pid, half_conn, it->second.first, it->second.second);
    zero_.erase(it);
    return std::nullopt;
  }
  auto b = bound_.find({s.pid, half_conn});
  if (b == bound_.end()) {
    // A handshake secret, or an application secret whose writeKeyLog is still to come.
    Bound(unmatched_);
    unmatched_[key] = half_conn;
    return std::nullopt;
  }
  Binding& bind = b->second;
  bind.generation++;
  SecretEvent out = s;
  out.label = fmt::format("{}_TRAFFIC_SECRET_{}", bind.side, bind.generation);
  out.client_random = bind.client_random;
  return out;
}

}  // namespace gotlscap::capture
