// End-to-end tests of `--nats` (NatsE2E*): gotlscap traces the matrix's Go server and client while
// publishing into a real `nats-server -js` started here (127.0.0.1, a free port, a store in a
// temporary directory; never systemd), then every stored message is read back by sequence with
// the C client and checked against what the programs provably sent:
//   (a) the broker is SIGKILLed during traffic and restarted on the same store: every request's
//       bytes on both sides of each connection, secrets on their .secret subject, a 3 MB call
//       whole across its parts, no message stored twice (by Nats-Msg-Id and by content);
//   (b) a 1 MiB queue during an outage drops and counts, the capture neither blocks nor loses;
//   (c) -o FILE beside --nats: the same events in the file as in the stream;
//   (d) keylog --nats (no -k): every secret the programs logged themselves, on .secret;
//   (e) a 3-node JetStream cluster on loopback (stream replicas 3), the node gotlscap is
//       connected to SIGKILLed mid-run: nothing lost, nothing twice.
// Needs root and BPF (skips otherwise, fails under CI=true), the matrix, and nats-server.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"
#include "nats_check.h"
#include "testing/nats_server.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

void RequireEnv() {
  SkipOrFailUnlessReady(BpfProblem("capture"));
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
  if (!gotlscap::testing::NatsServerInstalled()) SkipOrFail("nats-server is not installed (scripts/install-deps.sh)");
}
#define REQUIRE_NATS_ENV()         \
  GOTLSCAP_REQUIRE(RequireEnv()); \
  GOTLSCAP_REQUIRE_MATRIX()

using namespace nats_check;  // NOLINT: the checks of this file

std::vector<std::string> EchoArgs(const std::string& bin, const std::string& url, int n, size_t size, uint32_t seed) {
  return {bin, "-url", url, "-mode", "echo", "-n", std::to_string(n), "-size", std::to_string(size), "-seed",
          std::to_string(seed), "-tls", "1.3"};
}

struct CaptureRun {
  std::unique_ptr<Proc> proc;
  ::testing::AssertionResult WaitReady() {
    if (!proc->WaitLine(2, "ready", seconds(60)))
      return ::testing::AssertionFailure() << "gotlscap did not print `ready`: " << proc->Describe();
    return ::testing::AssertionSuccess();
  }
  int Stop() {
    proc->Signal(SIGINT);
    auto code = proc->Wait(seconds(90));
    if (!code) {
      proc->Signal(SIGKILL);
      proc->Wait(seconds(10));
      return -1;
    }
    return *code;
  }
};

CaptureRun StartCapture(const Programs& p, const std::string& url, std::vector<std::string> extra) {
  std::vector<std::string> argv = {GotlscapBin(), "text", "-e", p.server, "-e", p.client, "--nats", url, "--nats-host",
                                   kHost, "--nats-drain-timeout", "40"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return CaptureRun{std::make_unique<Proc>(argv)};
}

// (a)
TEST(NatsE2E, BrokerKilledAndRestartedNothingLostNothingTwice) {
  REQUIRE_NATS_ENV();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  gotlscap::testing::NatsServer nats(p.dir.File("store"));
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  CaptureRun cap = StartCapture(p, nats.url(), {});
  ASSERT_TRUE(cap.WaitReady());
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: connected", seconds(20))) << cap.proc->Describe();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));

  ProcRun r1 = RunToEnd(EchoArgs(p.client, srv.url(), 10, 5000, 100));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  // Traffic while the broker hangs (SIGSTOP: messages sent, never acknowledged), then dies
  // (SIGKILL: no clean shutdown) and stays away: those messages must be resent, once stored.
  nats.Pause();
  ProcRun during = RunToEnd(EchoArgs(p.client, srv.url(), 30, 20000, 200));
  ASSERT_EQ(during.exit_code, 0) << during.describe;
  std::this_thread::sleep_for(milliseconds(300));
  nats.Kill();
  ProcRun r2 = RunToEnd(EchoArgs(p.client, srv.url(), 10, 5000, 300));
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  std::this_thread::sleep_for(milliseconds(1500));
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: reconnected", seconds(30))) << cap.proc->Describe();
  // A 3 MB call: each side's data event (and the http events) over the 1 MB max payload.
  constexpr size_t kBig = 3000000;
  ProcRun r3 = RunToEnd(EchoArgs(p.client, srv.url(), 1, kBig, 400));
  ASSERT_EQ(r3.exit_code, 0) << r3.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(cap.Stop(), 0) << cap.proc->Describe();

  const std::string err = cap.proc->Err();
  EXPECT_EQ(cap.proc->Out(), "") << "--nats alone prints nothing on stdout";
  EXPECT_EQ(SummaryLost(err), 0u) << err;
  NatsCounters c = ParseNatsSummary(err);
  ASSERT_TRUE(c.parsed) << err;
  EXPECT_EQ(c.dropped, 0u) << err;
  EXPECT_EQ(c.failed, 0u) << err;
  EXPECT_EQ(c.acknowledged, c.published) << err;
  EXPECT_GT(c.resent, 0u) << "nothing was resent: the messages sent to the hung broker were lost?\n" << err;

  Stored s = ReadBack(nats.url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  // Each acknowledged message is stored once: a "duplicate" ack answers a resend of one stored by
  // an earlier attempt whose ack was lost (ReadBack reports any id stored twice).
  EXPECT_EQ(s.msgs.size(), c.acknowledged) << err;
  CheckExchanges(s.events, srv.addr, {{10, 5000, 100}, {30, 20000, 200}, {10, 5000, 300}, {1, kBig, 400}});
  // The 3 MB call: one Write of the server (the echoed body, but for the few KB net/http's
  // buffer took with the headers) stored in parts and whole again once joined; and the decoded
  // response (an http event) carries the body entire.
  const std::string big = PayloadBytes(kBig, 400);
  size_t big_calls = 0, big_bodies = 0;
  std::string sizes;
  for (const auto& e : s.events) {
    bool ok = false;
    if (e["type"] == "data" && e["len"].get<size_t>() > kBig - 65536) {
      const std::string bytes = Base64Decode(e["payload_b64"], &ok);
      sizes += " " + e["dir"].get<std::string>() + ":" + std::to_string(bytes.size());
      if (ok && bytes.size() == e["len"].get<size_t>() && big.size() >= bytes.size() &&
          big.compare(big.size() - bytes.size(), bytes.size(), bytes) == 0)
        big_calls++;
    }
    if (e["type"] == "http" && e["kind"] == "response" && e["body_len"] == kBig)
      big_bodies += Base64Decode(e["body_b64"], &ok) == big;
  }
  EXPECT_GE(big_calls, 1u) << "no single data event of ~3 MB holds the end of the echoed body; large calls:" << sizes;
  EXPECT_EQ(big_bodies, 2u) << "the 3 MB response decoded whole on both sides";
  EXPECT_FALSE(s.parts_of.empty()) << "nothing was split";
  for (const auto& [id, n] : s.parts_of) EXPECT_GE(n, 2u) << id;
  // Secrets on their own subject (checked per message in ReadBack): both ends' TLS 1.3 secrets.
  size_t secrets = 0;
  for (const auto& e : s.events) secrets += e["type"] == "secret";
  EXPECT_GE(secrets, 4u * 4u) << "4 client runs x >= 4 TLS 1.3 secrets";
  size_t http = 0;
  for (const auto& e : s.events) http += e["type"] == "http";
  EXPECT_EQ(http, 2u * 2u * (10 + 30 + 10 + 1)) << "a request and a response, on each side";
  RecordProperty("messages", std::to_string(s.msgs.size()));
  RecordProperty("resent", std::to_string(c.resent));
  RecordProperty("duplicates", std::to_string(c.duplicates));
}

// (b)
TEST(NatsE2E, SmallQueueDropsAndCountsDuringOutageNeverBlocks) {
  REQUIRE_NATS_ENV();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  gotlscap::testing::NatsServer nats(p.dir.File("store"));  // not started: the broker is down
  CaptureRun cap = StartCapture(p, nats.url(), {"--nats-buffer-mb", "1"});
  ASSERT_TRUE(cap.WaitReady());
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: connecting to", seconds(20), true)) << cap.proc->Describe();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  // ~40 x 100 KB each way, base64 in data and http events: far more than 1 MiB.
  const auto t0 = Clock::now();
  ProcRun r = RunToEnd(EchoArgs(p.client, srv.url(), 40, 100000, 500));
  const auto took = Clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_LT(took, seconds(30)) << "the traced client was slowed down";
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: connected", seconds(30))) << cap.proc->Describe();
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(cap.Stop(), 0) << cap.proc->Describe();
  const std::string err = cap.proc->Err();
  EXPECT_EQ(SummaryLost(err), 0u) << "the ring buffer lost events: the capture was blocked\n" << err;
  NatsCounters c = ParseNatsSummary(err);
  ASSERT_TRUE(c.parsed) << err;
  EXPECT_GT(c.dropped, 0u) << err;
  EXPECT_EQ(c.failed, 0u) << err;
  EXPECT_GT(c.acknowledged, 0u) << "the events that fitted were not stored\n" << err;
  Stored s = ReadBack(nats.url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  // Each acknowledged message is stored once: a "duplicate" ack answers a resend of one stored by
  // an earlier attempt whose ack was lost (ReadBack reports any id stored twice).
  EXPECT_EQ(s.msgs.size(), c.acknowledged) << err;
  EXPECT_FALSE(s.events.empty());
}

// (c)
TEST(NatsE2E, OutputFileBesideNatsHasTheSameEvents) {
  REQUIRE_NATS_ENV();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  gotlscap::testing::NatsServer nats(p.dir.File("store"));
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  const std::string file = p.dir.File("events.jsonl");
  CaptureRun cap = StartCapture(p, nats.url(), {"--format", "json", "-o", file});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  ProcRun r1 = RunToEnd(EchoArgs(p.client, srv.url(), 5, 4000, 600));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  ProcRun r2 = RunToEnd(EchoArgs(p.client, srv.url(), 1, 2000000, 700));  // split on the broker, whole in the file
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(cap.Stop(), 0) << cap.proc->Describe();
  NatsCounters c = ParseNatsSummary(cap.proc->Err());
  ASSERT_TRUE(c.parsed) << cap.proc->Err();
  EXPECT_EQ(c.failed + c.dropped, 0u) << cap.proc->Err();

  std::vector<std::string> from_file;
  for (const auto& line : SplitLines(ReadFileBytes(file))) {
    Json j = Json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line.substr(0, 200);
    from_file.push_back(j.dump());
  }
  Stored s = ReadBack(nats.url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  EXPECT_FALSE(s.parts_of.empty()) << "the 2 MB call was not split";
  std::vector<std::string> from_stream;
  for (auto e : s.events) {
    e.erase("host");
    from_stream.push_back(e.dump());
  }
  ASSERT_GT(from_file.size(), 20u);
  // The same events (one JSON writer's format feeds both; compared as sets of lines).
  std::sort(from_file.begin(), from_file.end());
  std::sort(from_stream.begin(), from_stream.end());
  EXPECT_EQ(from_file.size(), from_stream.size());
  EXPECT_TRUE(from_file == from_stream) << "the file and the stream differ";
  CheckExchanges(s.events, srv.addr, {{5, 4000, 600}, {1, 2000000, 700}});
}

// (d)
TEST(NatsE2E, KeylogSecretsOnTheirSubject) {
  REQUIRE_NATS_ENV();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  gotlscap::testing::NatsServer nats(p.dir.File("store"));
  ASSERT_TRUE(nats.Start()) << ReadFileBytes(nats.log_path());
  CaptureRun cap{std::make_unique<Proc>(std::vector<std::string>{
      GotlscapBin(), "keylog", "-e", p.server, "-e", p.client, "--nats", nats.url(), "--nats-host", kHost})};
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  // The client logs its own secrets (Go's KeyLogWriter): what the stream must hold.
  const std::string own = p.dir.File("client-keys.log");
  for (const char* tls : {"1.2", "1.3"}) {
    auto args = EchoArgs(p.client, srv.url(), 3, 1000, 800);
    args.back() = tls;
    args.insert(args.end(), {"-keylog", own});
    ProcRun r = RunToEnd(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe;
  }
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(cap.Stop(), 0) << cap.proc->Describe();
  EXPECT_EQ(cap.proc->Out(), "");
  NatsCounters c = ParseNatsSummary(cap.proc->Err());
  ASSERT_TRUE(c.parsed) << cap.proc->Err();
  EXPECT_EQ(c.failed + c.dropped, 0u);
  Stored s = ReadBack(nats.url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  std::set<std::string> stored;
  for (const auto& e : s.events) {
    EXPECT_EQ(e["type"], "secret") << e.dump().substr(0, 200);
    stored.insert(e["label"].get<std::string>() + " " + e["client_random"].get<std::string>() + " " +
                  e["secret"].get<std::string>());
  }
  Problems missing;
  size_t lines = 0;
  for (const auto& line : SplitLines(ReadFileBytes(own))) {
    if (line.empty() || line[0] == '#') continue;
    lines++;
    if (!stored.count(line)) missing.Add(line.substr(0, 80));
  }
  EXPECT_GE(lines, 1u + 4u) << "one keep-alive connection each: TLS 1.2 CLIENT_RANDOM, TLS 1.3 four secrets";
  EXPECT_EQ(missing.size(), 0u) << "secrets the client logged but the stream lacks:\n" << missing.str();
}

// (e)
TEST(NatsE2E, ThreeNodeClusterOneNodeKilledLosesNothing) {
  REQUIRE_NATS_ENV();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  const int cluster_ports[3] = {gotlscap::testing::FreeTcpPort(), gotlscap::testing::FreeTcpPort(),
                                gotlscap::testing::FreeTcpPort()};
  std::vector<std::unique_ptr<gotlscap::testing::NatsServer>> nodes;
  for (int i = 0; i < 3; i++) {
    std::string conf = "server_name: n" + std::to_string(i + 1) + "\ncluster {\n  name: c\n  listen: 127.0.0.1:" +
                       std::to_string(cluster_ports[i]) + "\n  routes: [";
    for (int k = 0, n = 0; k < 3; k++)
      if (k != i) conf += std::string(n++ ? ", " : " ") + "\"nats-route://127.0.0.1:" + std::to_string(cluster_ports[k]) + "\"";
    conf += " ]\n}\n";
    nodes.push_back(std::make_unique<gotlscap::testing::NatsServer>(p.dir.File("store" + std::to_string(i + 1)), conf));
  }
  // Started together: JetStream answers once the cluster has a meta leader.
  std::vector<std::thread> starting;
  bool up[3] = {};
  for (int i = 0; i < 3; i++) starting.emplace_back([&, i] { up[i] = nodes[i]->Start(); });
  for (auto& t : starting) t.join();
  for (int i = 0; i < 3; i++) ASSERT_TRUE(up[i]) << ReadFileBytes(nodes[i]->log_path());
  {  // The operator's stream: replicas 3 (gotlscap uses an existing stream as it is).
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, nodes[1]->url().c_str()), NATS_OK);
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"gotlscap.>"};
    cfg.Name = "GOTLSCAP";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 3;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr{};
    natsStatus st = NATS_ERR;
    for (int tries = 0; tries < 50 && st != NATS_OK; tries++) {
      st = js_AddStream(&si, js, &cfg, nullptr, &jerr);
      if (st != NATS_OK) std::this_thread::sleep_for(milliseconds(200));
    }
    ASSERT_EQ(st, NATS_OK) << "js_AddStream replicas 3: " << int(jerr);
    EXPECT_EQ(si->Config->Replicas, 3);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  const std::string urls = nodes[0]->url() + "," + nodes[1]->url() + "," + nodes[2]->url();
  CaptureRun cap = StartCapture(p, urls, {});
  ASSERT_TRUE(cap.WaitReady());
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: connected to " + nodes[0]->url(), seconds(20))) << cap.proc->Describe();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  ProcRun r1 = RunToEnd(EchoArgs(p.client, srv.url(), 10, 5000, 900));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  // The node gotlscap publishes to hangs while a client runs (its messages go unanswered), then
  // dies; the other two keep the quorum and take the resends.
  nodes[0]->Pause();
  ProcRun during = RunToEnd(EchoArgs(p.client, srv.url(), 30, 20000, 1000));
  ASSERT_EQ(during.exit_code, 0) << during.describe;
  std::this_thread::sleep_for(milliseconds(300));
  nodes[0]->Kill();
  ASSERT_TRUE(cap.proc->WaitLine(2, "nats: reconnected", seconds(30))) << cap.proc->Describe();
  ProcRun r3 = RunToEnd(EchoArgs(p.client, srv.url(), 10, 5000, 1100));
  ASSERT_EQ(r3.exit_code, 0) << r3.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  ASSERT_EQ(cap.Stop(), 0) << cap.proc->Describe();
  const std::string err = cap.proc->Err();
  NatsCounters c = ParseNatsSummary(err);
  ASSERT_TRUE(c.parsed) << err;
  EXPECT_EQ(c.dropped, 0u) << err;
  EXPECT_EQ(c.failed, 0u) << err;
  EXPECT_EQ(c.acknowledged, c.published) << err;
  EXPECT_GT(c.resent, 0u) << err;
  Stored s = ReadBack(nodes[2]->url());
  EXPECT_EQ(s.problems.size(), 0u) << s.problems.str();
  // Each acknowledged message is stored once: a "duplicate" ack answers a resend of one stored by
  // an earlier attempt whose ack was lost (ReadBack reports any id stored twice).
  EXPECT_EQ(s.msgs.size(), c.acknowledged) << err;
  CheckExchanges(s.events, srv.addr, {{10, 5000, 900}, {30, 20000, 1000}, {10, 5000, 1100}});
  RecordProperty("messages", std::to_string(s.msgs.size()));
  RecordProperty("resent", std::to_string(c.resent));
  RecordProperty("duplicates", std::to_string(c.duplicates));
}

}  // namespace
}  // namespace gotlscap::testenv
