// `--max-payload BYTES`: the kernel copies only the first BYTES of each crypto/tls call and counts
// the rest. `gotlscap text --format json --decode none --max-payload 4096` traces the matrix's newest Go server
// and client exchanging 1 MB and small echo bodies (HTTP/1.1 and HTTP/2):
//   - every data event has `len` = the call's true length (per connection, the lengths one side
//     wrote add up to what the other side read), `captured` = min(len, 4096), `truncated` exactly
//     when len > 4096, nothing missing;
//   - each captured prefix is the start of what the peer's side shows at that offset of the stream
//     (every write's prefix is covered by the peer's captured reads: a Read never spans records);
//   - the 1 MB bodies' prefixes are the known payload's bytes;
//   - the summary line counts the truncated events and their uncaptured bytes.
// CaptureSession::CaptureWhole as `text` uses it: the HTTP decoder exempts each connection it finds
// to speak HTTP/2; from its first whole call over 4096 bytes on, that connection's calls (both
// ends) come whole, while an HTTP/1.1 connection's stay capped; every message is decoded.
// Usage errors: a negative value, or one over the 32 MiB limit, is a one-line error (exit 2).
// Needs root and BPF (skips otherwise, fails under CI=true) and the matrix.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;

constexpr uint64_t kCap = 4096;
constexpr uint64_t kCaptureMax = 32ull << 20;  // GOTLS_CAPTURE_MAX
constexpr int kExitUsage = 2;
constexpr size_t kMb = 1048576;

struct Ev {
  uint64_t ts_ns = 0;
  uint32_t pid = 0;
  std::string dir, local, remote;
  uint64_t len = 0, captured = 0, missing = 0, conn_id = 0;
  bool truncated = false;
  std::string payload;
};

std::string Str(const Ev& e) {
  return "pid " + std::to_string(e.pid) + " conn " + std::to_string(e.conn_id) + " " + e.local + " -> " + e.remote +
         " " + e.dir + " len " + std::to_string(e.len) + " captured " + std::to_string(e.captured) +
         (e.truncated ? " truncated" : "") + " missing " + std::to_string(e.missing);
}

// The data events of gotlscap's JSON output, in output order; bad lines go to `pr`.
std::vector<Ev> DataEvents(const std::string& out, Problems& pr) {
  std::vector<Ev> evs;
  for (const auto& line : SplitLines(out)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      pr.Add("not a JSON object: " + line.substr(0, 200));
      continue;
    }
    if (j.value("type", "") != "data") continue;
    Ev e;
    try {
      e.ts_ns = j.at("ts_ns");
      e.pid = j.at("pid");
      e.dir = j.at("dir");
      e.len = j.at("len");
      e.captured = j.at("captured");
      e.missing = j.at("missing");
      e.truncated = j.at("truncated");
      e.conn_id = j.at("conn").at("id");
      e.local = j.at("conn").at("local");
      e.remote = j.at("conn").at("remote");
      bool ok = false;
      e.payload = Base64Decode(j.at("payload_b64").get<std::string>(), &ok);
      if (!ok) pr.Add("bad base64: " + line.substr(0, 200));
    } catch (const std::exception& ex) {
      pr.Add(std::string("data event without a field: ") + ex.what() + ": " + line.substr(0, 200));
      continue;
    }
    if (e.payload.size() != e.captured) pr.Add("payload size != captured: " + Str(e));
    evs.push_back(std::move(e));
  }
  return evs;
}

uint64_t SummaryField(const std::string& err, const std::string& re) {
  std::smatch m;
  for (const auto& l : SplitLines(err))
    if (l.rfind("summary: ", 0) == 0 && std::regex_search(l, m, std::regex(re))) return std::stoull(m[1].str());
  return UINT64_MAX;
}

// One direction of one TCP connection as one process saw it: the calls in order, each at its
// offset in the true stream (sum of the true lengths before it).
struct Side {
  struct Call {
    uint64_t offset, len;
    const std::string* payload;
  };
  std::vector<Call> calls;
  uint64_t total = 0;
  void Add(const Ev& e) {
    calls.push_back({total, e.len, &e.payload});
    total += e.len;
  }
};
using ConnKey = std::tuple<uint32_t, std::string, std::string>;  // pid, local, remote
struct Conn {
  Side wrote, read;
};

// Where the writer's and the reader's captured bytes both cover an offset, they agree; every
// write's captured prefix is fully covered by the reader's captured bytes (a Read returns bytes
// of one TLS record, and each write call starts a record: a Read starts at each write's offset).
void CompareSides(const Side& w, const Side& r, const std::string& what, Problems& pr) {
  if (w.total != r.total) {
    pr.Add(what + ": writer's call lengths add up to " + std::to_string(w.total) + ", reader's to " +
           std::to_string(r.total));
    return;
  }
  std::string bytes(r.total, '\0');
  std::vector<bool> known(r.total, false);
  for (const auto& c : r.calls)
    for (size_t i = 0; i < c.payload->size(); i++) {
      bytes[c.offset + i] = (*c.payload)[i];
      known[c.offset + i] = true;
    }
  for (const auto& c : w.calls) {
    for (size_t i = 0; i < c.payload->size(); i++) {
      if (!known[c.offset + i]) {
        pr.Add(what + ": write at " + std::to_string(c.offset) + " (len " + std::to_string(c.len) + "): byte " +
               std::to_string(i) + " of its prefix is in no captured read");
        break;
      }
      if (bytes[c.offset + i] != (*c.payload)[i]) {
        pr.Add(what + ": write at " + std::to_string(c.offset) + " (len " + std::to_string(c.len) + "): byte " +
               std::to_string(i) + " differs from the reader's");
        break;
      }
    }
  }
}

// Pairs each connection's two ends (local/remote swapped) and compares both directions.
void CheckStreams(const std::vector<Ev>& evs, Problems& pr, int* pairs) {
  std::map<ConnKey, Conn> conns;
  for (const auto& e : evs) {
    Conn& c = conns[{e.pid, e.local, e.remote}];
    (e.dir == "write" ? c.wrote : c.read).Add(e);
  }
  *pairs = 0;
  for (const auto& [key, a] : conns)
    for (const auto& [key2, b] : conns) {
      if (std::get<1>(key) != std::get<2>(key2) || std::get<2>(key) != std::get<1>(key2)) continue;
      if (std::get<0>(key) == std::get<0>(key2) || !(key < key2)) continue;
      ++*pairs;
      const std::string name = std::get<1>(key) + " <-> " + std::get<2>(key);
      CompareSides(a.wrote, b.read, name + " (" + std::to_string(std::get<0>(key)) + " wrote)", pr);
      CompareSides(b.wrote, a.read, name + " (" + std::to_string(std::get<0>(key2)) + " wrote)", pr);
    }
}

std::vector<std::string> Client(const std::string& bin, const Server& srv, int n, size_t size, uint32_t seed,
                                std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {bin,  "-url", srv.url(), "-mode", "echo", "-n", std::to_string(n), "-size",
                                std::to_string(size), "-seed", std::to_string(seed), "-tls", "1.3"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(MaxPayloadE2E, CapsEachCallAndCountsTheRest) {
  GOTLSCAP_REQUIRE(SkipOrFailUnlessReady(BpfProblem("capture")));
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  // --decode none: no decoder, so no HTTP/2 connection is exempted (Http2ConnectionsComeWhole).
  Proc cap({GotlscapBin(), "text", "--format", "json", "--decode", "none", "--max-payload", std::to_string(kCap), "-e",
            p.server, "-e", p.client});
  ASSERT_TRUE(cap.WaitLine(2, "ready", seconds(60))) << cap.Describe();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  struct Run {
    int n;
    size_t size;
    uint32_t seed;
    bool h2;
  };
  const std::vector<Run> runs = {{3, kMb, 100, false}, {5, 100, 200, false}, {2, kMb, 300, true}, {3, 3000, 400, true}};
  std::vector<uint32_t> client_pids;
  for (const auto& r : runs) {
    ProcRun c = RunToEnd(Client(p.client, srv, r.n, r.size, r.seed, r.h2 ? std::vector<std::string>{"-h2"}
                                                                           : std::vector<std::string>{}));
    ASSERT_EQ(c.exit_code, 0) << c.describe;
    client_pids.push_back(uint32_t(c.pid));
  }
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  cap.Signal(SIGINT);
  ASSERT_EQ(cap.Wait(seconds(60)), 0) << cap.Describe();

  Problems pr;
  const std::vector<Ev> evs = DataEvents(cap.Out(), pr);
  ASSERT_GT(evs.size(), 0u) << cap.Describe();
  uint64_t truncated = 0, uncaptured = 0, bytes = 0;
  for (const auto& e : evs) {
    if (e.captured != std::min(e.len, kCap)) pr.Add("captured != min(len, 4096): " + Str(e));
    if (e.truncated != (e.len > kCap)) pr.Add("truncated should be len > 4096: " + Str(e));
    if (e.missing != 0) pr.Add("bytes missing: " + Str(e));
    if (e.len == 0) pr.Add("a data event of length 0: " + Str(e));
    truncated += e.truncated;
    uncaptured += e.len - e.captured;
    bytes += e.captured;
  }
  int pairs = 0;
  CheckStreams(evs, pr, &pairs);
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  EXPECT_GE(pairs, int(runs.size())) << "one connection per client run, both ends traced";

  // Each 1 MB body: some capped write of the client (the request) and of the server (the echo)
  // carries bytes of it, over 1 MB long calls in total on each side.
  // (HTTP/1.1: HTTP/2's frame headers are more than its prefixes' last KiB may hold.)
  for (size_t i = 0; i < runs.size(); i++) {
    if (runs[i].size != kMb || runs[i].h2) continue;
    for (int k = 0; k < runs[i].n; k++) {
      const std::string body = PayloadBytes(kMb, runs[i].seed + uint32_t(k));
      bool client_has = false, server_has = false;
      for (const auto& e : evs) {
        if (e.dir != "write" || !e.truncated || e.payload.size() < 1024) continue;
        // The part of a prefix that is body: an HTTP/1 header may come first, an HTTP/2 frame
        // header every 16 KiB.
        const bool has = body.find(e.payload.substr(e.payload.size() - 1024)) != std::string::npos;
        if (e.pid == client_pids[i]) client_has |= has;
        if (e.pid == uint32_t(srv.pid())) server_has |= has;
      }
      EXPECT_TRUE(client_has) << "run " << i << " body " << k << ": no capped client write carries its bytes";
      EXPECT_TRUE(server_has) << "run " << i << " body " << k << ": no capped server write carries its bytes";
    }
  }
  EXPECT_GT(truncated, 10u);
  EXPECT_GT(uncaptured, 4 * kMb) << "the bodies were mostly not copied";
  const std::string err = cap.Err();
  EXPECT_EQ(SummaryField(err, R"(, (\d+) truncated \()"), truncated) << err;
  EXPECT_EQ(SummaryField(err, R"([(,] uncaptured bytes (\d+)[,)])"), uncaptured) << err;
  EXPECT_EQ(SummaryField(err, R"(, (\d+) bytes,)"), bytes) << err;
  EXPECT_EQ(SummaryField(err, R"(, (\d+) lost,)"), 0u) << err;
  RecordProperty("events", int(evs.size()));
  RecordProperty("uncaptured_bytes", std::to_string(uncaptured));
}

// HTTP/2 connections are exempted (CaptureWhole) once the decoder recognises them; HTTP/1.1 ones
// are not.
TEST(MaxPayloadE2E, Http2ConnectionsComeWhole) {
  GOTLSCAP_REQUIRE(SkipOrFailUnlessReady(BpfProblem("capture")));
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  const uint32_t spid = uint32_t(srv.pid());
  Proc cap({GotlscapBin(), "text", "--format", "json", "--max-payload", std::to_string(kCap), "-e", p.server, "-e",
            p.client});
  ASSERT_TRUE(cap.WaitLine(2, "ready", seconds(60))) << cap.Describe();
  // One connection per client run, many bodies: the exemption (user space, after the connection
  // was recognised) is in place long before the last ones.
  const int n = 12;
  ProcRun h2 = RunToEnd(Client(p.client, srv, n, kMb, 500, {"-h2"}));
  ASSERT_EQ(h2.exit_code, 0) << h2.describe;
  ProcRun h1 = RunToEnd(Client(p.client, srv, n, kMb, 600));
  ASSERT_EQ(h1.exit_code, 0) << h1.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  cap.Signal(SIGINT);
  ASSERT_EQ(cap.Wait(seconds(60)), 0) << cap.Describe();

  Problems pr;
  const std::vector<Ev> evs = DataEvents(cap.Out(), pr);
  const std::string err = cap.Err();
  // Calls over the cap, per (pid, connection): (kernel time, whole).
  std::map<std::pair<uint32_t, uint64_t>, std::vector<std::pair<uint64_t, bool>>> big;
  std::map<uint32_t, int> whole_big;  // per pid
  int h1_capped = 0;
  for (const auto& e : evs) {
    if (e.missing != 0) pr.Add("bytes missing: " + Str(e));
    if (e.pid != spid && e.pid != uint32_t(h1.pid) && e.pid != uint32_t(h2.pid)) {
      pr.Add("event of another process: " + Str(e));
      continue;
    }
    if (e.len <= kCap) {
      if (e.captured != e.len || e.truncated) pr.Add("short call not whole: " + Str(e));
      continue;
    }
    if (e.pid == uint32_t(h1.pid)) {  // HTTP/1.1: never exempted
      if (e.captured != kCap || !e.truncated) pr.Add("HTTP/1.1 client call not capped: " + Str(e));
      h1_capped++;
      continue;
    }
    big[{e.pid, e.conn_id}].push_back({e.ts_ns, !e.truncated});
    if (e.truncated) {
      if (e.captured != kCap) pr.Add("capped call not at 4096: " + Str(e));
      continue;
    }
    if (e.captured != e.len) pr.Add("not truncated but not whole: " + Str(e));
    whole_big[e.pid]++;
  }
  // The exemption takes effect at one instant: no capped call after the first whole one (calls
  // whose probes ran within a millisecond of it may go either way). The server's HTTP/1.1
  // connection has no whole call at all.
  int server_capped_conns = 0;
  for (auto& [key, calls] : big) {
    std::sort(calls.begin(), calls.end());
    uint64_t first_whole = UINT64_MAX;
    for (const auto& [ts, whole] : calls) {
      if (whole) first_whole = std::min(first_whole, ts);
      if (!whole && first_whole != UINT64_MAX && ts > first_whole + 1'000'000)
        pr.Add("pid " + std::to_string(key.first) + " conn " + std::to_string(key.second) + ": a call capped " +
               std::to_string(ts - first_whole) + " ns after the connection came whole");
    }
    if (first_whole == UINT64_MAX) server_capped_conns++;
  }
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  EXPECT_GT(whole_big[uint32_t(h2.pid)], n / 2) << "the HTTP/2 client's calls over 4096 bytes did not come whole\n" << err;
  EXPECT_GT(whole_big[spid], n / 2) << "the HTTP/2 server's calls over 4096 bytes did not come whole\n" << err;
  EXPECT_EQ(server_capped_conns, 1) << "the server's HTTP/1.1 connection, capped throughout";
  EXPECT_GT(h1_capped, n / 2) << "the HTTP/1.1 client's body writes stay capped";
  EXPECT_EQ(SummaryField(err, R"(, (\d+) lost,)"), 0u) << err;
  // Every message decoded on both sides, bodies counted whole.
  int http = 0;
  for (const auto& line : SplitLines(cap.Out())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.value("type", "") == "notice") pr.Add("notice: " + j.dump());
    if (j.value("type", "") != "http") continue;
    http++;
    if (j["body_wire_len"] != kMb) pr.Add("body_wire_len: " + j.dump().substr(0, 300));
  }
  EXPECT_EQ(http, 4 * 2 * n);  // requests and responses, both sides, both runs
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  RecordProperty("server_whole_calls_over_cap", whole_big[spid]);
}

TEST(MaxPayloadE2E, OutOfRangeValuesAreUsageErrors) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  const std::vector<std::vector<std::string>> bad = {
      {"text", "--max-payload", "-1", "-e", row->path},
      {"text", "--max-payload", std::to_string(kCaptureMax + 1), "-e", row->path},
      {"text", "--max-payload", "lots", "-e", row->path},
      {"gotls", "--max-payload", "-1", "--elfpath", row->path},
      {"gotls", "--max-payload", std::to_string(kCaptureMax + 1), "--elfpath", row->path},
      {"gotls", "-m", "keylog", "--max-payload", "100", "--elfpath", row->path},
  };
  for (const auto& args : bad) {
    std::vector<std::string> argv = {GotlscapBin()};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCommand(argv);
    std::string what;
    for (const auto& a : args) what += " " + a;
    SCOPED_TRACE(what);
    EXPECT_EQ(r.exit_code, kExitUsage) << r.Describe();
    EXPECT_EQ(SplitLines(r.err).size(), 1u) << r.Describe();
    EXPECT_EQ(r.err.rfind("gotlscap: ", 0), 0u) << r.Describe();
    EXPECT_NE(r.err.find("max-payload"), std::string::npos) << r.Describe();
    EXPECT_EQ(r.out, "") << r.Describe();
  }
}

}  // namespace
}  // namespace gotlscap::testenv
