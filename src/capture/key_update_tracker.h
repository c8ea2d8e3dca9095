// KeyUpdateTracker: names the TLS 1.3 traffic secrets that Go installs without logging them
// (KeyUpdate: CLIENT_TRAFFIC_SECRET_N / SERVER_TRAFFIC_SECRET_N, N >= 1).
//
// (*halfConn).setTrafficSecret reports every key change of one direction of a connection, keyed
// by the halfConn's address, but without label or client random. writeKeyLog reports
// CLIENT_/SERVER_TRAFFIC_SECRET_0 with both. The two are tied by the secret's value (Go calls
// them next to each other, in either order); each later secret on that halfConn is the next
// generation. Secrets that cannot be tied to a connection are not invented.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "capture/secret_event.h"

namespace gotlscap::capture {

class KeyUpdateTracker {
 public:
  // A secret from writeKeyLog (any label; only *_TRAFFIC_SECRET_0 matter here).
  void OnKeyLog(const SecretEvent& s);
  // A setTrafficSecret call. Returns the KeyUpdate secret it names, if any.
  std::optional<SecretEvent> OnTrafficSecret(const SecretEvent& s, uint64_t half_conn);

 private:
  struct Binding {
    std::string client_random;
    std::string side;  // "CLIENT" or "SERVER"
    unsigned generation = 0;
  };
  void Bind(uint32_t pid, uint64_t half_conn, const std::string& client_random, const std::string& side);
  template <typename M>
  static void Bound(M& m) {
    if (m.size() > 4096) m.clear();  // connections come and go: never grow without limit
  }

  std::map<std::pair<uint32_t, std::string>, std::pair<std::string, std::string>> zero_;  // (pid, secret) -> (random, side)
  std::map<std::pair<uint32_t, std::string>, uint64_t> unmatched_;  // (pid, secret) -> halfConn
  std::map<std::pair<uint32_t, uint64_t>, Binding> bound_;          // (pid, halfConn)
};

}  // namespace gotlscap::capture
