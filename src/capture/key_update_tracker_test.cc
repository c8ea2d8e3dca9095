#include "capture/key_update_tracker.h"

#include <gtest/gtest.h>

namespace gotlscap::capture {
namespace {

SecretEvent Secret(const std::string& label, const std::string& secret, uint32_t pid = 7) {
  SecretEvent s;
  s.pid = pid;
  s.label = label;
  s.client_random = label.empty() ? "" : std::string(32, 'r');
  s.secret = secret;
  return s;
}

TEST(KeyUpdateTracker, NumbersUpdatesOfATiedHalfConn) {
  KeyUpdateTracker t;
  // Go installs the read key before logging it, the write key after: both orders occur.
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "s0"), 0x100));  // server's read key, not yet logged
  t.OnKeyLog(Secret("CLIENT_TRAFFIC_SECRET_0", "s0"));
  t.OnKeyLog(Secret("SERVER_TRAFFIC_SECRET_0", "w0"));
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "w0"), 0x200));
  auto u1 = t.OnTrafficSecret(Secret("", "s1"), 0x100);
  ASSERT_TRUE(u1);
  EXPECT_EQ(u1->label, "CLIENT_TRAFFIC_SECRET_1");
  EXPECT_EQ(u1->client_random, std::string(32, 'r'));
  EXPECT_EQ(u1->secret, "s1");
  auto w1 = t.OnTrafficSecret(Secret("", "w1"), 0x200);
  ASSERT_TRUE(w1);
  EXPECT_EQ(w1->label, "SERVER_TRAFFIC_SECRET_1");
  auto u2 = t.OnTrafficSecret(Secret("", "s2"), 0x100);
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->label, "CLIENT_TRAFFIC_SECRET_2");
}

TEST(KeyUpdateTracker, InventsNothingForUntiedSecrets) {
  KeyUpdateTracker t;
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "handshake"), 0x100));
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "other"), 0x100));
  // Same halfConn address in another process is another connection.
  t.OnKeyLog(Secret("CLIENT_TRAFFIC_SECRET_0", "s0", 1));
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "s0", 2), 0x300));
  EXPECT_FALSE(t.OnTrafficSecret(Secret("", "s1", 2), 0x300));
}

}  // namespace
}  // namespace gotlscap::capture
