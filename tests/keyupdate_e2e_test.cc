// TLS 1.3 KeyUpdate secrets (CLIENT_/SERVER_TRAFFIC_SECRET_N, N >= 1), which Go installs without
// logging: a traced Go server talks to `openssl s_client`, which asks for key updates ("K" on its
// stdin: update our key and request the peer's). OpenSSL's own key log is the oracle: its
// *_TRAFFIC_SECRET_N lines, in order, must equal ours numbered 1, 2, ...
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

struct KeyLine {
  std::string label, random, secret;
};

std::vector<KeyLine> ReadKeyLog(const std::string& path) {
  std::vector<KeyLine> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    KeyLine k;
    if (f >> k.label >> k.random >> k.secret) out.push_back(k);
  }
  return out;
}

class KeyUpdateTest : public ::testing::TestWithParam<std::string> {};

TEST_P(KeyUpdateTest, SecretsAfterKeyUpdateMatchOpenssl) {
  GOTLSCAP_REQUIRE(SkipOrFailUnlessReady(BpfProblem("KeyUpdate test")));
  if (access("/usr/bin/openssl", X_OK) != 0) {
    GOTLSCAP_REQUIRE(SkipOrFail("openssl is not installed"));
  }
  const MatrixRow* row = FindRow(GetParam(), "default", "server");
  if (!row) GOTLSCAP_REQUIRE(SkipOrFail("no " + GetParam() + " server in the matrix"));
  TempDir dir;
  const std::string server_bin = CopyBinary(dir, *row);
  const std::string ours = dir.File("ours.log"), ref = dir.File("openssl.log");

  Proc cap({GotlscapBin(), "keylog", "-k", ours, "-e", server_bin});
  ASSERT_TRUE(cap.WaitLine(2, "ready", std::chrono::seconds(30))) << cap.Describe();
  Server srv;
  ASSERT_TRUE(StartServer(server_bin, &srv));
  // Two key updates, each requesting the server's too, then one request so that both sides use
  // the new keys; the server closes the connection after answering.
  const std::string script =
      "(sleep 0.5; printf 'K\\n'; sleep 0.3; printf 'K\\n'; sleep 0.3; "
      "printf 'GET /hello HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'; sleep 1) | "
      "openssl s_client -connect " + srv.addr + " -tls1_3 -keylogfile " + ref;
  ProcRun client = RunToEnd({"sh", "-c", script}, std::chrono::seconds(30));
  ASSERT_NE(client.out.find("HTTP/1.1 200"), std::string::npos) << client.describe;
  cap.Signal(SIGINT);
  ASSERT_EQ(cap.Wait(std::chrono::seconds(30)), 0) << cap.Describe();

  std::map<std::string, std::vector<std::string>> openssl_updates;  // side -> secrets, in order
  std::string random;
  for (const auto& k : ReadKeyLog(ref)) {
    random = k.random;
    if (k.label == "CLIENT_TRAFFIC_SECRET_N") openssl_updates["CLIENT"].push_back(k.secret);
    if (k.label == "SERVER_TRAFFIC_SECRET_N") openssl_updates["SERVER"].push_back(k.secret);
  }
  ASSERT_EQ(openssl_updates["CLIENT"].size(), 2u) << "openssl did not log two client key updates";
  ASSERT_EQ(openssl_updates["SERVER"].size(), 2u) << "openssl did not log two server key updates";
  std::map<std::string, KeyLine> got;
  for (const auto& k : ReadKeyLog(ours)) got[k.label] = k;
  for (const std::string side : {"CLIENT", "SERVER"}) {
    for (size_t n = 1; n <= 2; n++) {
      const std::string label = side + "_TRAFFIC_SECRET_" + std::to_string(n);
      ASSERT_TRUE(got.count(label)) << label << " missing; ours:\n" << cap.Describe();
      EXPECT_EQ(got[label].secret, openssl_updates[side][n - 1]) << label;
      EXPECT_EQ(got[label].random, random) << label << " tied to the wrong connection";
    }
  }
}

// 1.15 (stack ABI, setTrafficSecret without `level`), 1.19 (register ABI, without `level`),
// 1.24 and 1.27 (with `level`; 1.27 reads through setReadTrafficSecret).
INSTANTIATE_TEST_SUITE_P(Toolchains, KeyUpdateTest, ::testing::Values("1.15", "1.19", "1.24", "1.27"),
                         [](const auto& info) {
                           std::string n = "go" + info.param;
                           for (char& c : n)
                             if (c == '.') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace gotlscap::testenv
