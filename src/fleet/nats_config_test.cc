// --nats option checks (NatsConfig*): what is wrong is found before anything is attached.
#include "fleet/nats_config.h"

#include <gtest/gtest.h>

namespace gotlscap::fleet {
namespace {

TEST(NatsConfigTest, UrlLists) {
  auto ok = ParseNatsUrls("nats://127.0.0.1:4222, tls://a.example:4443,b:1,nats://u:p@[::1]:5,c");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, (std::vector<std::string>{"nats://127.0.0.1:4222", "tls://a.example:4443", "b:1", "nats://u:p@[::1]:5", "c"}));
  for (const char* bad : {"", "nats://", "http://a:1", "nats://a:", "nats://a:0", "nats://a:65536", "nats://a:12x",
                          "a,,b", "nats://a b:1", "nats://[::1", "nats://a:1/path"})
    EXPECT_FALSE(ParseNatsUrls(bad).ok()) << bad;
}

TEST(NatsConfigTest, FilesAndNamesAreChecked) {
  NatsConfig c;
  c.servers = {"nats://127.0.0.1:4222"};
  EXPECT_TRUE(CheckNatsConfig(c).ok());
  c.creds_file = "/nonexistent/x.creds";
  auto e = CheckNatsConfig(c);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("--nats-creds /nonexistent/x.creds"), std::string::npos);
  c.creds_file = "";
  c.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(CheckNatsConfig(c).ok());
  c.tls_ca_file = "";
  c.subject_prefix = "a.>";
  EXPECT_FALSE(CheckNatsConfig(c).ok());
  c.subject_prefix = "gotlscap";
  c.stream = "A.B";
  EXPECT_FALSE(CheckNatsConfig(c).ok());
  c.stream = "GOTLSCAP";
  c.servers.clear();
  EXPECT_FALSE(CheckNatsConfig(c).ok());
}

}  // namespace
}  // namespace gotlscap::fleet
