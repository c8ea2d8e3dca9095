// End-to-end test of `gotlscap view` (NatsViewE2E): the matrix's Go client and server traced by
// `gotlscap text --nats` into a real `nats-server -js` (127.0.0.1, a free port, a temporary
// store) and, side by side, by a plain `gotlscap text -o FILE`; then `gotlscap view` reads the
// stream back: --format json gives every stored event once, in capture order, the 3 MB call
// joined from its parts; --format text shows the same HTTP request and response lines as the
// plain capture. Needs root and BPF (skips otherwise, fails under CI=true), the matrix, and
// nats-server.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nats_check.h"
#include "test_env.h"
#include "test_process.h"
#include "testing/nats_server.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;
using namespace nats_check;  // NOLINT: kHost, ReadBack

void RequireEnv() {
  SkipOrFailUnlessReady(BpfProblem("capture"));
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
  if (!gotlscap::testing::NatsServerInstalled()) SkipOrFail("nats-server is not installed (scripts/install-deps.sh)");
}

std::vector<std::string> Echo(const std::string& bin, const std::string& url, int n, size_t size, uint32_t seed) {
  return {bin, "-url", url, "-mode", "echo", "-n", std::to_string(n), "-size", std::to_string(size), "-seed",
          std::to_string(seed), "-tls", "1.3"};
}

int Stop(Proc& p) {
  p.Signal(SIGINT);
  auto code = p.Wait(seconds(90));
  if (code) return *code;
  p.Signal(SIGKILL);
  p.Wait(seconds(10));
  return -1;
}

// The request and status lines of the decoded HTTP messages ("> POST /echo ...", "< HTTP/1.1 200 ..."), sorted.
std::vector<std::string> HttpLines(const std::string& text) {
  std::vector<std::string> v;
  for (const auto& line : SplitLines(text))
    if (line.rfind("> POST ", 0) == 0 || line.rfind("< HTTP/", 0) == 0) v.push_back(line);
  std::sort(v.begin(), v.end());
  return v;
}

TEST(NatsViewE2E, ViewPrintsTheStreamAsTextAndJson) {
  GOTLSCAP_REQUIRE(RequireEnv());
  GOTLSCAP_REQUIRE_MATRIX();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  gotlscap::testing::NatsServer nats(p.dir.File("store"));
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  const std::string file = p.dir.File("plain.txt");
  Proc to_nats({GotlscapBin(), "text", "-e", p.server, "-e", p.client, "--nats", nats.url(), "--nats-host", kHost,
                "--nats-drain-timeout", "40"});
  Proc plain({GotlscapBin(), "text", "-e", p.server, "-e", p.client, "-o", file});
  ASSERT_TRUE(to_nats.WaitLine(2, "ready", seconds(60))) << to_nats.Describe();
  ASSERT_TRUE(plain.WaitLine(2, "ready", seconds(60))) << plain.Describe();
  ASSERT_TRUE(to_nats.WaitLine(2, "nats: connected", seconds(20))) << to_nats.Describe();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  ProcRun r1 = RunToEnd(Echo(p.client, srv.url(), 5, 4000, 1200));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  constexpr size_t kBig = 3000000;  // split on the broker (1 MB max payload)
  ProcRun r2 = RunToEnd(Echo(p.client, srv.url(), 1, kBig, 1300));
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(Stop(to_nats), 0) << to_nats.Describe();
  ASSERT_EQ(Stop(plain), 0) << plain.Describe();
  EXPECT_EQ(SummaryLost(to_nats.Err()), 0u) << to_nats.Err();
  EXPECT_EQ(SummaryLost(plain.Err()), 0u) << plain.Err();
  NatsCounters c = ParseNatsSummary(to_nats.Err());
  ASSERT_TRUE(c.parsed) << to_nats.Err();
  EXPECT_EQ(c.failed + c.dropped, 0u) << to_nats.Err();

  // What the stream holds, joined and ordered by the test's own reader.
  Stored s = ReadBack(nats.url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  EXPECT_FALSE(s.parts_of.empty()) << "the 3 MB call was not split";

  // --format json: each event once, in capture order, equal to the stored one joined.
  ProcRun js = RunToEnd({GotlscapBin(), "view", nats.url(), "--format", "json"}, seconds(60));
  ASSERT_EQ(js.exit_code, 0) << js.describe;
  std::vector<Json> viewed;
  for (const auto& line : SplitLines(js.out)) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line.substr(0, 200);
    EXPECT_FALSE(j.contains("part") || j.contains("parts")) << line.substr(0, 200);
    viewed.push_back(std::move(j));
  }
  ASSERT_EQ(viewed.size(), s.events.size()) << js.err;
  size_t differ = 0;
  for (size_t i = 0; i < viewed.size(); i++) differ += viewed[i] != s.events[i];
  EXPECT_EQ(differ, 0u) << "events of view --format json differ from the stream's";
  const std::string big = PayloadBytes(kBig, 1300);
  size_t big_bodies = 0;
  for (const auto& e : viewed) {
    bool ok = false;
    if (e["type"] == "http" && e["kind"] == "response" && e["body_len"] == kBig)
      big_bodies += Base64Decode(e["body_b64"], &ok) == big;
  }
  EXPECT_EQ(big_bodies, 2u) << "the 3 MB response joined whole, on both sides";

  // --format text: the same decoded HTTP lines as the plain capture of the same programs.
  ProcRun tx = RunToEnd({GotlscapBin(), "view", nats.url(), "--format", "text"}, seconds(60));
  ASSERT_EQ(tx.exit_code, 0) << tx.describe;
  const auto from_view = HttpLines(tx.out), from_plain = HttpLines(ReadFileBytes(file));
  EXPECT_EQ(from_plain.size(), 2u * 2u * (5 + 1)) << "a request and a response, on each side";
  EXPECT_EQ(from_view.size(), from_plain.size());
  EXPECT_TRUE(from_view == from_plain) << "view --format text and the plain capture differ";

  // --since: everything here was stored within the hour; --follow: the same, then it waits for
  // more until Ctrl-C.
  ProcRun since = RunToEnd({GotlscapBin(), "view", nats.url(), "--format", "json", "--since", "1h"}, seconds(60));
  ASSERT_EQ(since.exit_code, 0) << since.describe;
  EXPECT_EQ(since.out, js.out);
  Proc follow({GotlscapBin(), "view", nats.url(), "--format", "json", "--follow"});
  std::this_thread::sleep_for(seconds(3));
  EXPECT_FALSE(follow.Wait(std::chrono::milliseconds(1))) << "--follow returned by itself";
  EXPECT_EQ(Stop(follow), 0) << follow.Describe();
  EXPECT_EQ(follow.Out(), js.out);

  // --host / --type filter; an unknown stream and an unreachable broker are one-line errors.
  ProcRun secrets = RunToEnd({GotlscapBin(), "view", nats.url(), "--format", "json", "--type", "secret", "--host", kHost});
  ASSERT_EQ(secrets.exit_code, 0) << secrets.describe;
  size_t n = 0;
  for (const auto& line : SplitLines(secrets.out))
    if (!line.empty()) {
      n++;
      EXPECT_NE(line.find(R"("type":"secret")"), std::string::npos) << line;
    }
  EXPECT_GE(n, 2u * 4u);
  ProcRun other = RunToEnd({GotlscapBin(), "view", nats.url(), "--host", "elsewhere", "--format", "json"});
  EXPECT_EQ(other.exit_code, 0) << other.describe;
  EXPECT_EQ(other.out, "");
  ProcRun missing = RunToEnd({GotlscapBin(), "view", nats.url(), "--stream", "NOPE"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("stream NOPE not found"), std::string::npos) << missing.err;
  const auto t0 = Clock::now();
  ProcRun down = RunToEnd({GotlscapBin(), "view", "nats://127.0.0.1:" + std::to_string(gotlscap::testing::FreeTcpPort())});
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.err.find("cannot connect"), std::string::npos) << down.err;
  EXPECT_LT(Clock::now() - t0, seconds(10));
}

}  // namespace
}  // namespace gotlscap::testenv
