// `gotlscap stat` end to end (issue 22): the matrix's newest Go server, whose endpoints have
// known delays and failures (/delay/0, /delay/80, /status/503, a gRPC-style call answered with
// grpc-status 13), driven by the Go client (`-mode stat`) over HTTP/1.1 and HTTP/2, both traced.
// Per path and side: counts exact, errors exact, the server's p50 of /delay/80 within a few
// milliseconds of 80 ms (its own view: request read → response written), the client's at least
// 80 ms; body bytes exact; interval rows add up to the total. Also `-- COMMAND`, and 1 MB bodies
// under the kernel's --max-payload cap: every message still counted, timed and sized.
// Needs root and BPF (skips otherwise, fails under CI=true) and the Go toolchain matrix.
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host_test_lock.h"
#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;

void RequireCaptureEnv() { SkipOrFailUnlessReady(BpfProblem("stat")); }
#define REQUIRE_CAPTURE_ENV() GOTLSCAP_REQUIRE(RequireCaptureEnv())

constexpr int kDelayMs = 80;

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  for (const auto& line : SplitLines(text)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// "side group" → the row of the given period.
std::map<std::string, nlohmann::json> Rows(const std::vector<nlohmann::json>& lines, const std::string& period) {
  std::map<std::string, nlohmann::json> rows;
  for (const auto& j : lines)
    if (j.value("type", "") == "stat" && j.value("period", "") == period)
      rows[j["side"].get<std::string>() + " " + j["group"].get<std::string>()] = j;
  return rows;
}

std::string Dump(const std::map<std::string, nlohmann::json>& rows) {
  std::string s;
  for (const auto& [k, v] : rows) s += v.dump() + "\n";
  return s;
}

// `gotlscap stat -o FILE ARGS...` as a child.
struct Stat {
  Stat(const TempDir& dir, std::vector<std::string> args) : path(dir.File("stat-" + std::to_string(++n) + ".out")) {
    std::vector<std::string> argv = {GotlscapBin(), "stat", "-o", path};
    argv.insert(argv.end(), args.begin(), args.end());
    proc = std::make_unique<Proc>(argv);
  }
  ::testing::AssertionResult WaitReady() {
    if (!proc->WaitLine(2, "ready", seconds(30)))
      return ::testing::AssertionFailure() << "no `ready`: " << proc->Describe();
    return ::testing::AssertionSuccess();
  }
  std::string Stop() {
    proc->Signal(SIGINT);
    code = proc->Wait(seconds(60));
    return ReadFileBytes(path);
  }
  static inline int n = 0;
  std::string path;
  std::unique_ptr<Proc> proc;
  std::optional<int> code;
};

std::vector<std::string> StatClient(const std::string& client, const std::string& url, int n, bool h2) {
  std::vector<std::string> a = {client, "-url", url, "-mode", "stat", "-n", std::to_string(n), "-size", "100",
                                "-delay-ms", std::to_string(kDelayMs), "-tls", "1.3"};
  if (h2) a.push_back("-h2");
  return a;
}

class StatE2E : public ::testing::TestWithParam<bool> {};

TEST_P(StatE2E, CountsErrorsAndLatencyPerPathOnBothSides) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  const bool h2 = GetParam();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Stat st(p.dir, {"--format", "json", "--interval", "1", "--slowest", "3", "-e", p.server, "-e", p.client});
  ASSERT_TRUE(st.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  constexpr int kN = 12;  // 3 of each of the 4 kinds of request
  ProcRun c = RunToEnd(StatClient(p.client, srv.url(), kN, h2));
  ASSERT_EQ(c.exit_code, 0) << c.describe;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // an interval report after the traffic
  const std::string out = st.Stop();
  ASSERT_EQ(st.code, std::optional<int>(0)) << st.proc->Describe();
  const auto lines = JsonLines(out);
  const auto total = Rows(lines, "total");
  const std::string all = Dump(total);
  for (const std::string side : {"server", "client"}) {
    SCOPED_TRACE(side);
    for (const std::string path : {"/delay/0", "/delay/80", "/status/503", "/grpc"}) {
      auto it = total.find(side + " " + path);
      ASSERT_NE(it, total.end()) << side << " " << path << " missing:\n" << all;
      const auto& r = it->second;
      EXPECT_EQ(r["count"], kN / 4) << r.dump();
      EXPECT_EQ(r["timed"], kN / 4) << r.dump();
      EXPECT_EQ(r["errors"], path == "/status/503" || path == "/grpc" ? kN / 4 : 0) << r.dump();
      if (path.rfind("/delay/", 0) == 0) {
        EXPECT_EQ(r["resp_bytes"], 3 * kN / 4) << r.dump();  // "ok\n"
      }
    }
    const auto& slow = total.find(side + " /delay/80")->second;
    const double p50 = slow["p50_ms"].get<double>();
    if (side == "server") {
      EXPECT_GE(p50, kDelayMs) << slow.dump();
      EXPECT_LE(p50, kDelayMs + 8) << slow.dump();
    } else {
      EXPECT_GE(p50, kDelayMs) << slow.dump();
      EXPECT_LE(p50, kDelayMs + 500) << slow.dump();
    }
    EXPECT_LT(total.find(side + " /delay/0")->second["p50_ms"].get<double>(), kDelayMs / 2) << all;
  }
  EXPECT_EQ(total.size(), 8u) << all;
  // Interval rows: the same responses, spread over the intervals.
  std::map<std::string, int> interval_counts;
  for (const auto& j : lines)
    if (j.value("type", "") == "stat" && j.value("period", "") == "interval")
      interval_counts[j["side"].get<std::string>() + " " + j["group"].get<std::string>()] += j["count"].get<int>();
  EXPECT_FALSE(interval_counts.empty()) << out.substr(0, 2000);
  for (const auto& [k, n] : interval_counts) {
    auto it = total.find(k);
    ASSERT_NE(it, total.end()) << k;
    EXPECT_EQ(n, it->second["count"].get<int>()) << k;
  }
  // The slowest: the 80 ms requests.
  int slowest = 0;
  for (const auto& j : lines)
    if (j.value("type", "") == "slow" && j.value("period", "") == "total") {
      slowest++;
      EXPECT_EQ(j["path"], "/delay/80") << j.dump();
      EXPECT_GE(j["latency_ms"].get<double>(), kDelayMs) << j.dump();
      EXPECT_EQ(j["method"], "GET");
      EXPECT_EQ(j["status"], 200);
    }
  EXPECT_EQ(slowest, 3) << out;
  EXPECT_NE(st.proc->Err().find("summary: "), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Proto, StatE2E, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Http2" : "Http1"; });

TEST(StatCliE2E, TextTableGroupByPathDepthAndCommand) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));  // not traced: only the command's side is seen
  TempDir dir;
  const std::string file = dir.File("table.txt");
  std::vector<std::string> argv = {GotlscapBin(), "stat", "--path-depth", "1", "--sort", "max", "-o", file, "--"};
  auto client = StatClient(p.client, srv.url(), 8, false);
  argv.insert(argv.end(), client.begin(), client.end());
  ProcRun r = RunToEnd(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const std::string t = ReadFileBytes(file);
  auto lines = SplitLines(t);
  ASSERT_GE(lines.size(), 5u) << t;
  EXPECT_NE(lines[0].find("total"), std::string::npos) << t;
  EXPECT_NE(lines[0].find("8 responses (0 untimed"), std::string::npos) << t;
  EXPECT_EQ(lines[1].rfind("SIDE", 0), 0u) << t;
  const size_t col = lines[1].find("PATH");
  ASSERT_NE(col, std::string::npos) << t;
  // --path-depth 1: /delay/0 and /delay/80 in one group, first when sorted by max (80 ms).
  EXPECT_EQ(lines[2].substr(col), "/delay") << t;
  EXPECT_EQ(lines[2].rfind("client", 0), 0u) << t;
  auto cells = SplitWs(lines[2]);
  ASSERT_GE(cells.size(), 10u) << t;
  EXPECT_EQ(cells[1], "4") << t;  // count
  EXPECT_EQ(cells[2], "0") << t;  // errors
  bool status = false, grpc = false;
  for (const auto& l : lines) {
    if (l.size() > col && l.substr(col) == "/status") status = SplitWs(l)[2] == "2";
    if (l.size() > col && l.substr(col) == "/grpc") grpc = SplitWs(l)[2] == "2";
  }
  EXPECT_TRUE(status && grpc) << t;
}

// No -e/-p: the whole host, narrowed to two program names only this test uses (programs started
// after `ready` are attached as they exec).
TEST(StatCliE2E, WholeHost) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  HOST_TEST_LOCK(lock);
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  const std::string server = p.dir.File("stathostsrv"), client = p.dir.File("stathostcli");
  CopyFile(p.server, server);
  CopyFile(p.client, client);
  Stat st(p.dir, {"--format", "json", "--comm", "stathostsrv", "--comm", "stathostcli"});
  ASSERT_TRUE(st.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(server, &srv));
  ProcRun c = RunToEnd(StatClient(client, srv.url(), 8, false));
  ASSERT_EQ(c.exit_code, 0) << c.describe;
  const auto total = Rows(JsonLines(st.Stop()), "total");
  ASSERT_EQ(st.code, std::optional<int>(0)) << st.proc->Describe();
  for (const std::string side : {"server", "client"})
    for (const std::string path : {"/delay/0", "/delay/80", "/status/503", "/grpc"}) {
      auto it = total.find(side + " " + path);
      ASSERT_NE(it, total.end()) << side << " " << path << ":\n" << Dump(total);
      EXPECT_EQ(it->second["count"], 2) << it->second.dump();
    }
  EXPECT_EQ(total.size(), 8u) << Dump(total);
}

// curl (not Go: only the traced server's side), HTTP/1.1 and HTTP/2, several URLs per connection.
TEST(StatCliE2E, CurlAgainstTracedServer) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  CommandResult ver = RunCommand({"curl", "--version"});
  if (ver.exit_code != 0) GOTLSCAP_REQUIRE(SkipOrFail("curl is not installed (scripts/install-deps.sh)"));
  const bool curl_h2 = ver.out.find("HTTP2") != std::string::npos;
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Stat st(p.dir, {"--format", "json", "--group-by", "path", "-e", p.server});
  ASSERT_TRUE(st.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  std::vector<std::string> protos = {"--http1.1"};
  if (curl_h2) protos.push_back("--http2");
  for (const auto& proto : protos) {
    CommandResult c = RunCommand({"curl", "-sk", proto, "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                                  srv.url() + "/delay/" + std::to_string(kDelayMs), srv.url() + "/delay/0",
                                  srv.url() + "/status/503"});
    ASSERT_EQ(c.exit_code, 0) << c.Describe();
  }
  const auto total = Rows(JsonLines(st.Stop()), "total");
  ASSERT_EQ(st.code, std::optional<int>(0)) << st.proc->Describe();
  const int n = static_cast<int>(protos.size());
  for (const std::string path : {"/delay/80", "/delay/0", "/status/503"}) {
    auto it = total.find("server " + path);
    ASSERT_NE(it, total.end()) << path << ":\n" << Dump(total);
    EXPECT_EQ(it->second["count"], n) << it->second.dump();
    EXPECT_EQ(it->second["errors"], path == "/status/503" ? n : 0) << it->second.dump();
  }
  const double p50 = total.find("server /delay/80")->second["p50_ms"].get<double>();
  EXPECT_GE(p50, kDelayMs);
  EXPECT_LE(p50, kDelayMs + 8);
  EXPECT_EQ(total.size(), 3u) << Dump(total);
}

// 1 MB bodies under the default 4 KiB cap (stat) and under `text --max-payload 4096`: every
// message counted, timed and sized; far fewer bytes captured than exchanged.
TEST(StatCliE2E, BulkBodiesUnderMaxPayload) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  constexpr int kN = 4;
  constexpr int kSize = 1 << 20;
  for (const bool h2 : {false, true}) {
    SCOPED_TRACE(h2 ? "HTTP/2" : "HTTP/1.1");
    Stat st(p.dir, {"--format", "json", "-e", p.server, "-e", p.client});
    ASSERT_TRUE(st.WaitReady());
    TempDir dir;
    const std::string text_file = dir.File("text.jsonl");
    Proc text({GotlscapBin(), "text", "--format", "json", "--max-payload", "4096", "-o", text_file, "-e", p.server,
               "-e", p.client});
    ASSERT_TRUE(text.WaitLine(2, "ready", seconds(30))) << text.Describe();
    Server srv;
    ASSERT_TRUE(StartServer(p.server, &srv));
    std::vector<std::string> args = {p.client, "-url", srv.url(), "-mode", "echo", "-n", std::to_string(kN),
                                     "-size", std::to_string(kSize), "-tls", "1.3"};
    if (h2) args.push_back("-h2");
    ProcRun c = RunToEnd(args);
    ASSERT_EQ(c.exit_code, 0) << c.describe;
    srv.proc->Signal(SIGTERM);
    srv.proc->Wait(seconds(10));
    const auto total = Rows(JsonLines(st.Stop()), "total");
    ASSERT_EQ(st.code, std::optional<int>(0)) << st.proc->Describe();
    text.Signal(SIGINT);
    ASSERT_EQ(text.Wait(seconds(60)), std::optional<int>(0)) << text.Describe();
    for (const std::string side : {"server", "client"}) {
      auto it = total.find(side + " /echo");
      ASSERT_NE(it, total.end()) << Dump(total);
      EXPECT_EQ(it->second["count"], kN) << it->second.dump();
      EXPECT_EQ(it->second["timed"], kN) << it->second.dump();
      EXPECT_EQ(it->second["req_bytes"], int64_t{kN} * kSize) << it->second.dump();
      EXPECT_EQ(it->second["resp_bytes"], int64_t{kN} * kSize) << it->second.dump();
    }
    // HTTP/1.1 bodies are cut in the kernel; HTTP/2 connections are kept whole.
    const std::string err = st.proc->Err();
    EXPECT_NE(err.find(" 0 decode notices"), std::string::npos) << err;
    if (!h2) {
      EXPECT_EQ(err.find(" 0 truncated"), std::string::npos) << err;
    }
    // text --max-payload: every HTTP message decoded, bodies counted whole, responses timed.
    int responses = 0, requests = 0;
    for (const auto& j : JsonLines(ReadFileBytes(text_file))) {
      if (j.value("type", "") == "notice") ADD_FAILURE() << j.dump();
      if (j.value("type", "") != "http") continue;
      EXPECT_EQ(j["body_wire_len"], kSize) << j.dump().substr(0, 400);
      if (j["kind"] == "response") {
        responses++;
        EXPECT_TRUE(j.contains("latency_ns")) << j.dump().substr(0, 400);
      } else {
        requests++;
      }
    }
    EXPECT_EQ(responses, 2 * kN);
    EXPECT_EQ(requests, 2 * kN);
  }
}

}  // namespace
}  // namespace gotlscap::testenv
