// End-to-end tests of `gotlscap gotls`, eCapture's `gotls` command line: eCapture's documented
// example command lines, word for word with only the paths, the interface and the port changed,
// run against the Go server and client of the toolchain matrix:
//   1. `gotls --elfpath=/path/to/go_binary` (text): stdout shows every request and response the
//      Go client made, decoded (method, path, status, body: its length and its first bytes);
//   2. `gotls -m keylog -k /tmp/keys.log --elfpath=/path/to/go_binary --pid=1234`: tshark
//      decrypts, with that key file, every request and response to the process 1234 (dumpcap
//      records the packets alongside), and nothing of another process of the same binary;
//   3. `gotls -m pcap -w capture.pcapng -i eth0 --elfpath=/path/to/go_binary tcp port 443`:
//      tshark decrypts every request from capture.pcapng alone; the filter keeps other ports out.
// For Go 1.15 (stack ABI), 1.19 and the newest toolchain; TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2,
// resumed sessions. Then, with the newest toolchain:
//   4. the defaults, in an empty working directory: ./ecapture_gotls_key.log (keylog, also
//      spelled `-m key`) and ./ecapture_gotls.pcapng (pcap, also `-m pcapng`), mode 0600, and
//      nothing else; `--flag=value` and `--flag value` alike;
//   5. flags gotlscap does not need (`--btf`, `--mapsize`, `-t`, `--perf-reorder`): one notice
//      line each, and the capture works; `-l FILE` (the run log copied in keylog mode, the events
//      in text mode); usage errors (an unknown flag, `-m pcap` without `-i`, `--cgroup_path`):
//      exit 2, one line, nothing created.
//
// Needs root, BPF, the matrix and tshark/dumpcap: skips otherwise, fails under CI=true. Every
// test copies the binaries it traces into its own directory (uprobes attach to an inode), so
// tests running in parallel never see each other's processes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_env.h"
#include "test_process.h"
#include "tls_traffic.h"

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// Exit codes (src/cli/exit_codes.h), spelled out so a renumbering is caught.
constexpr int kExitUsage = 2;

// testdata/go/internal/tlsprog: the paths `-mode all` cycles through, and /hello's body.
const char* const kAllPaths[] = {"echo", "bytes", "chunked", "gzip", "hello"};
const std::string kHelloText = "hello from gotlscap test server\n";

// eCapture's default file names, in the working directory.
const std::string kDefaultKeyLog = "ecapture_gotls_key.log";
const std::string kDefaultPcap = "ecapture_gotls.pcapng";

// ------------------------------------------------------------------------------------------
// Environment
// ------------------------------------------------------------------------------------------

// Root + BTF (+ tshark and dumpcap) + the matrix, or a skip (a failure under CI=true).
void RequireEcaptureEnv(bool wireshark) {
  std::string why = BpfProblem("gotls");
  if (why.empty() && wireshark && (!InPath("tshark") || !InPath("dumpcap")))
    why = "gotls keylog/pcap tests need tshark and dumpcap (apt-get install tshark)";
  SkipOrFailUnlessReady(why);
}

#define REQUIRE_ECAPTURE_ENV(wireshark) GOTLSCAP_REQUIRE(RequireEcaptureEnv(wireshark))

// ------------------------------------------------------------------------------------------
// gotlscap gotls as a child
// ------------------------------------------------------------------------------------------

// `gotlscap gotls ARGS...`, in `cwd` when given: `env -C CWD gotlscap ...` (env changes
// directory and execs, so the Proc's pid is gotlscap's and SIGINT reaches it).
std::vector<std::string> GotlsArgv(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv;
  if (!cwd.empty()) argv = {"env", "-C", cwd};
  argv.push_back(GotlscapBin());
  argv.push_back("gotls");
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

struct GotlsRun {
  int exit_code = -1;
  std::string out, err, describe;
};

class Gotls {
 public:
  explicit Gotls(const std::vector<std::string>& args, const std::string& cwd = "")
      : proc_(std::make_unique<Proc>(GotlsArgv(args, cwd))) {}
  // Waits for the `ready` line (every probe and, in pcap mode, every TC program attached).
  ::testing::AssertionResult WaitReady() {
    if (!proc_->WaitLine(2, "ready", seconds(60)))
      return ::testing::AssertionFailure() << "gotlscap gotls never became ready: " << proc_->Describe();
    return ::testing::AssertionSuccess();
  }
  // SIGINT (Ctrl-C, as eCapture is stopped), then the exit code and both streams.
  GotlsRun Stop() {
    proc_->Signal(SIGINT);
    GotlsRun r;
    auto code = proc_->Wait(seconds(30));
    r.exit_code = code ? *code : -1;
    r.out = proc_->Out();
    r.err = proc_->Err();
    r.describe = proc_->Describe();
    return r;
  }

 private:
  std::unique_ptr<Proc> proc_;
};

// The first line of `err` that starts with `prefix`, or "".
std::string LineStarting(const std::string& err, const std::string& prefix) {
  for (const auto& l : SplitLines(err))
    if (l.rfind(prefix, 0) == 0) return l;
  return "";
}

struct TextSummary {
  bool parsed = false;
  uint64_t events = 0, lost = 0, truncated = 0, http = 0;
};
TextSummary ParseTextSummary(const std::string& err) {
  static const std::regex re(
      R"(summary: (\d+) events, \d+ bytes, (\d+) lost, (\d+) truncated \(.*http messages (\d+)\))");
  std::smatch m;
  TextSummary s;
  if (std::regex_search(err, m, re))
    s = {true, std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[3]), std::stoull(m[4])};
  return s;
}

struct KeylogSummary {
  bool parsed = false;
  uint64_t written = 0, lost = 0;
  std::string file;
};
KeylogSummary ParseKeylogSummary(const std::string& err) {
  static const std::regex re(R"(summary: (\d+) secrets written to (.+?), \d+ duplicates skipped, (\d+) lost)");
  std::smatch m;
  KeylogSummary s;
  if (std::regex_search(err, m, re)) s = {true, std::stoull(m[1]), std::stoull(m[3]), m[2]};
  return s;
}

struct PcapSummary {
  bool parsed = false;
  uint64_t packets = 0, secrets = 0, lost = 0;
  std::string file;
};
PcapSummary ParsePcapSummary(const std::string& err) {
  static const std::regex re(R"(summary: (\d+) packets written to (.+?), (\d+) secrets, (\d+) lost \()");
  std::smatch m;
  PcapSummary s;
  if (std::regex_search(err, m, re)) s = {true, std::stoull(m[1]), std::stoull(m[3]), std::stoull(m[4]), m[2]};
  return s;
}

// The names in a directory (no recursion).
std::set<std::string> DirEntries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// ------------------------------------------------------------------------------------------
// Text output, read back
// ------------------------------------------------------------------------------------------

// One decoded HTTP message of the text output:
//   2026-...Z pid 17278 (client) conn 1 127.0.0.1:41498 -> 127.0.0.1:43933 HTTP/1.1 response (to POST /echo) latency 0.486 ms wait 0.195 ms
//   < HTTP/1.1 200            (HTTP/2: "< :status: 200"; requests "> POST /echo HTTP/1.1" or
//   < Content-Length: 100      "> :method: POST" and "> :path: /echo")
//   <
//   [body: 100 bytes]
//   00000000  3c 5e 81 b4 ...  |<^...|     (binary bodies: a hex dump of the start; text as is)
struct TextMessage {
  pid_t pid = 0;
  std::string comm, local, remote, proto, kind, to;  // to: "METHOD PATH" a response answers
  std::string method, path;                           // requests
  int status = 0;                                     // responses
  bool has_body = false;
  uint64_t body_len = 0;
  std::string body_hex;   // bytes of the hex dump, as lowercase hex
  std::string body_text;  // the body's lines when it is shown as text
  int RemotePort() const {
    auto c = remote.rfind(':');
    return c == std::string::npos ? 0 : std::atoi(remote.c_str() + c + 1);
  }
};

// Lowercase hex of the first `n` bytes of `s`.
std::string HexPrefix(const std::string& s, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (size_t i = 0; i < s.size() && i < n; i++) {
    h += d[static_cast<unsigned char>(s[i]) >> 4];
    h += d[static_cast<unsigned char>(s[i]) & 15];
  }
  return h;
}

// The HTTP messages of a text output; `notices` gets every "decode:" notice line.
std::vector<TextMessage> ParseTextMessages(const std::string& out, std::vector<std::string>* notices) {
  static const std::regex head(R"(^\S+ pid (\d+) \((.*)\) conn \d+ (\S+) -> (\S+) (HTTP/\S+) (request|response))"
                               R"((?: stream \d+)?(?: \(to (\S+ \S+)\))?(?: latency \S+ ms(?: wait \S+ ms)?)?$)");
  static const std::regex hexline(R"(^[0-9a-f]{8}  ([0-9a-f ]+) \|.*\|$)");
  static const std::regex body(R"(^\[body: (\d+) bytes)");
  std::vector<TextMessage> msgs;
  TextMessage* cur = nullptr;
  bool in_body = false;
  for (const auto& line : SplitLines(out)) {
    std::smatch m;
    if (line.find(" decode: ") != std::string::npos && line.rfind("pid ", 0) == 0) notices->push_back(line);
    if (std::regex_match(line, m, head)) {
      msgs.emplace_back();
      cur = &msgs.back();
      in_body = false;
      cur->pid = std::stoi(m[1]);
      cur->comm = m[2];
      cur->local = m[3];
      cur->remote = m[4];
      cur->proto = m[5];
      cur->kind = m[6];
      cur->to = m[7];
      continue;
    }
    if (!cur) continue;
    if (line.empty()) {  // a message ends with an empty line
      cur = nullptr;
      continue;
    }
    if (in_body) {
      if (std::regex_match(line, m, hexline)) {
        for (const auto& b : SplitWs(m[1])) cur->body_hex += b;
      } else if (line.rfind("[... ", 0) != 0) {
        cur->body_text += line + "\n";
      }
      continue;
    }
    if (std::regex_search(line, m, body)) {
      cur->has_body = true;
      cur->body_len = std::stoull(m[1]);
      in_body = true;
      continue;
    }
    const std::string mark = cur->kind == "request" ? "> " : "< ";
    if (line.rfind(mark, 0) != 0) continue;
    const std::string l = line.substr(2);
    const auto w = SplitWs(l);
    if (l.rfind(":method: ", 0) == 0) cur->method = l.substr(9);
    if (l.rfind(":path: ", 0) == 0) cur->path = l.substr(7);
    if (l.rfind(":status: ", 0) == 0) cur->status = std::atoi(l.c_str() + 9);
    if (cur->kind == "request" && w.size() == 3 && w[2].rfind("HTTP/", 0) == 0 && cur->method.empty()) {
      cur->method = w[0];
      cur->path = w[1];
    }
    if (cur->kind == "response" && w.size() == 2 && w[0].rfind("HTTP/", 0) == 0 && cur->status == 0)
      cur->status = std::atoi(w[1].c_str());
  }
  return msgs;
}

// A message in one line, for comparing what was shown with what the client did.
std::string Brief(const TextMessage& m) {
  std::string s = m.proto + " " + m.kind + " ";
  s += m.kind == "request" ? m.method + " " + m.path : std::to_string(m.status) + " to " + m.to;
  if (!m.has_body) return s + ", no body";
  s += ", body " + std::to_string(m.body_len) + " bytes";
  if (!m.body_hex.empty()) return s + " starting " + m.body_hex;
  return s + " text `" + m.body_text + "`";
}

std::string BodyBrief(const std::string& body) {
  // Binary bodies are shown as a hex dump of their first 256 bytes; /hello's as text.
  if (body == kHelloText) return ", body " + std::to_string(body.size()) + " bytes text `" + body + "`";
  return ", body " + std::to_string(body.size()) + " bytes starting " + HexPrefix(body, 256);
}

// What the client of scenario `s` sent and received (testdata/go/internal/tlsprog/client.go,
// `-mode all`: request i goes to kAllPaths[i % 5] with seed 1 + i), as Brief() puts it.
std::vector<std::string> ExpectedMessages(const Scenario& s) {
  const std::string proto = s.h2 ? "HTTP/2" : "HTTP/1.1";
  std::vector<std::string> v;
  for (int i = 0; i < s.n; i++) {
    const std::string p = kAllPaths[i % 5];
    const uint32_t seed = 1 + static_cast<uint32_t>(i);
    const std::string payload = PayloadBytes(kBodySize, seed);
    std::string method = "GET", path, req_body, resp_body = payload;
    if (p == "echo") {
      method = "POST";
      path = "/echo";
      req_body = payload;
    } else if (p == "hello") {
      path = "/hello";
      resp_body = kHelloText;
    } else {
      path = "/" + p + "?n=" + std::to_string(kBodySize) + "&seed=" + std::to_string(seed);
    }
    v.push_back(proto + " request " + method + " " + path + (req_body.empty() ? ", no body" : BodyBrief(req_body)));
    v.push_back(proto + " response 200 to " + method + " " + path + BodyBrief(resp_body));
  }
  return v;
}

// The text output holds exactly the messages of each client run (one server port per run),
// each shown once, all from the client's process.
void ExpectMessagesOfRuns(const std::vector<TextMessage>& msgs, const std::vector<Scenario>& scenarios,
                          const std::vector<int>& ports, const std::vector<ClientRun>& runs, const std::string& out) {
  ASSERT_EQ(scenarios.size(), ports.size());
  ASSERT_EQ(scenarios.size(), runs.size());
  const std::string head = out.substr(0, 3000);
  size_t expected_total = 0;
  for (size_t i = 0; i < scenarios.size(); i++) {
    SCOPED_TRACE(std::string(scenarios[i].name) + " (server port " + std::to_string(ports[i]) + ")");
    std::vector<std::string> want = ExpectedMessages(scenarios[i]), got;
    expected_total += want.size();
    Problems probs;
    for (const auto& m : msgs) {
      if (m.RemotePort() != ports[i]) continue;
      got.push_back(Brief(m));
      if (m.pid != runs[i].pid || m.comm != "client")
        probs.Add("message of pid " + std::to_string(m.pid) + " (" + m.comm + "), not the client's " +
                  std::to_string(runs[i].pid) + ": " + Brief(m));
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    std::vector<std::string> missing, extra;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
    for (const auto& x : missing) probs.Add("missing: " + x);
    for (const auto& x : extra) probs.Add("unexpected: " + x);
    EXPECT_EQ(probs.size(), 0u) << probs.str() << "start of the output:\n" << head;
  }
  EXPECT_EQ(msgs.size(), expected_total) << "messages of no client run in the output";
}

// Decode notices of a clean run: none, but RST_STREAM(CANCEL): Go 1.15's HTTP/2 client really
// resets streams whose response body it closed (e.g. /gzip) before seeing END_STREAM.
void ExpectNoDecodeProblems(const std::vector<std::string>& notices) {
  std::vector<std::string> unexpected;
  for (const auto& n : notices)
    if (n.find("reset by the client (CANCEL)") == std::string::npos) unexpected.push_back(n);
  EXPECT_THAT(unexpected, ::testing::IsEmpty()) << "every connection decoded";
}

// ------------------------------------------------------------------------------------------
// tshark tallies
// ------------------------------------------------------------------------------------------

PortTally At(const std::map<int, PortTally>& m, int port) { return m.count(port) ? m.at(port) : PortTally{}; }

int Decrypted(const PortTally& t) { return t.http1_requests + t.http1_responses + t.h2_requests + t.h2_responses; }

// tshark decrypted every request and response of `scenarios`, all run against one server port,
// and every connection to it.
void ExpectAllDecrypted(const std::vector<Scenario>& scenarios, const PortTally& t, const std::string& raw) {
  int h1 = 0, h2 = 0;
  for (const auto& s : scenarios) (s.h2 ? h2 : h1) += s.n;
  EXPECT_EQ(t.http1_requests, h1) << raw;
  EXPECT_EQ(t.http1_responses, h1) << raw;
  EXPECT_EQ(t.http1_ok, h1);
  EXPECT_EQ(t.h2_requests, h2) << raw;
  EXPECT_EQ(t.h2_responses, h2) << raw;
  EXPECT_EQ(t.h2_ok, h2);
  EXPECT_FALSE(t.client_randoms.empty()) << "no ClientHello: " << raw;
  EXPECT_EQ(t.streams_with_request, t.hello_streams) << "a connection was not decrypted";
}

// Every line of each client's own key log (Go's KeyLogWriter) is in `keys`.
void ExpectReferenceLines(const std::string& keys, const std::vector<ClientRun>& runs) {
  std::set<std::string> ours;
  for (const auto& l : SplitLines(keys)) ours.insert(l);
  for (const auto& r : runs) {
    const auto ref = SplitLines(ReadFileBytes(r.reference));
    EXPECT_FALSE(ref.empty()) << "Go's KeyLogWriter wrote nothing to " << r.reference;
    for (const auto& l : ref) EXPECT_TRUE(ours.count(l)) << "client's key log line missing from ours: " << l;
  }
}

std::vector<ClientRun> RunScenarios(const std::string& client, int port, const std::vector<Scenario>& scenarios,
                                    const TempDir& dir) {
  std::vector<ClientRun> runs;
  for (const auto& s : scenarios) {
    runs.push_back(RunClient(client, port, s, dir.File(std::string("ref-") + s.name + ".log")));
    EXPECT_EQ(runs.back().exit_code, 0) << s.name << ": " << runs.back().describe;
  }
  return runs;
}

const std::vector<Scenario> kAllScenarios(std::begin(kScenarios), std::end(kScenarios));
// HTTP/1.1 on TLS 1.2 and HTTP/2 on TLS 1.3.
const std::vector<Scenario> kTwoScenarios = {kScenarios[0], kScenarios[2]};

// ------------------------------------------------------------------------------------------
// 1-3. eCapture's documented examples, for three toolchains
// ------------------------------------------------------------------------------------------

class EcaptureExampleTest : public ::testing::TestWithParam<MatrixRow> {};

// `ecapture gotls --elfpath=/path/to/go_binary`: the Go client's traffic, decoded, on stdout.
TEST_P(EcaptureExampleTest, TextElfpathShowsEveryRequestAndResponse) {
  REQUIRE_ECAPTURE_ENV(false);
  Programs progs;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &progs));
  std::vector<Server> servers(kAllScenarios.size());
  std::vector<int> ports;
  for (auto& s : servers) {
    ASSERT_TRUE(StartServer(progs.server, &s));
    ports.push_back(s.port);
  }
  Gotls cap({"--elfpath=" + progs.client});
  ASSERT_TRUE(cap.WaitReady());
  std::vector<ClientRun> runs;
  for (size_t i = 0; i < kAllScenarios.size(); i++) {
    runs.push_back(RunClient(progs.client, ports[i], kAllScenarios[i], progs.dir.File("ref.log")));
    ASSERT_EQ(runs.back().exit_code, 0) << runs.back().describe;
  }
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const TextSummary sum = ParseTextSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  EXPECT_EQ(sum.truncated, 0u) << r.err;
  std::vector<std::string> notices;
  const auto msgs = ParseTextMessages(r.out, &notices);
  ExpectNoDecodeProblems(notices);
  EXPECT_EQ(sum.http, msgs.size()) << "the summary counts the messages shown: " << r.err;
  ExpectMessagesOfRuns(msgs, kAllScenarios, ports, runs, r.out);
}

// `ecapture gotls -m keylog -k /tmp/keys.log --elfpath=/path/to/go_binary --pid=1234`: the
// secrets of process 1234 only; dumpcap's capture of lo decrypts with them.
TEST_P(EcaptureExampleTest, KeylogWithPidDecryptsEveryRequest) {
  REQUIRE_ECAPTURE_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &progs));
  const std::string keys = progs.dir.File("keys.log"), pcap = progs.dir.File("dumpcap.pcapng");
  Server srv, other;  // the same binary: --pid selects the first
  ASSERT_TRUE(StartServer(progs.server, &srv));
  ASSERT_TRUE(StartServer(progs.server, &other));
  Gotls cap({"-m", "keylog", "-k", keys, "--elfpath=" + progs.server, "--pid=" + std::to_string(srv.pid())});
  ASSERT_TRUE(cap.WaitReady());
  Sentinel sentinel_start, sentinel_end;
  Dumpcap dumpcap("lo", PortFilter({srv.port, other.port, sentinel_start.port(), sentinel_end.port()}), pcap);
  ASSERT_TRUE(dumpcap.Start(sentinel_start));
  const std::vector<ClientRun> runs = RunScenarios(progs.client, srv.port, kAllScenarios, progs.dir);
  ClientRun other_run = RunClient(progs.client, other.port, Scenario{"other_pid", "1.3", false, false, 1},
                                  progs.dir.File("ref-other.log"));
  ASSERT_EQ(other_run.exit_code, 0) << other_run.describe;
  EXPECT_TRUE(WaitConnectionsClosed({srv.port, other.port})) << "connections still open 10 s after the clients exited";
  ASSERT_TRUE(dumpcap.Stop(sentinel_end));
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const KeylogSummary sum = ParseKeylogSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  EXPECT_EQ(sum.file, keys);
  EXPECT_EQ(FileMode(keys), 0600u) << "the key file";
  const std::string key_text = ReadFileBytes(keys);
  EXPECT_EQ(SplitLines(key_text).size(), sum.written) << r.err;

  std::string raw;
  const auto t = Tshark(pcap, keys, {srv.port, other.port}, &raw);
  ExpectAllDecrypted(kAllScenarios, At(t, srv.port), raw);
  ExpectReferenceLines(key_text, runs);
  // Another process of the same binary: its handshake was captured, not its secrets.
  EXPECT_EQ(At(t, other.port).client_randoms.size(), 1u) << raw;
  EXPECT_EQ(Decrypted(At(t, other.port)), 0) << "--pid: the other server's secrets were written\n" << raw;
  for (const auto& l : SplitLines(ReadFileBytes(other_run.reference)))
    EXPECT_THAT(key_text, Not(HasSubstr(SplitWs(l).at(1)))) << "a secret of the other process: " << l;
}

// `ecapture gotls -m pcap -w capture.pcapng -i eth0 --elfpath=/path/to/go_binary tcp port 443`
// (relative file name: the working directory), with lo and the server's port.
TEST_P(EcaptureExampleTest, PcapWithFilterDecryptsFromTheFileAlone) {
  REQUIRE_ECAPTURE_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &progs));
  Server srv, other;  // both traced (--elfpath): only the filter keeps the other's packets out
  ASSERT_TRUE(StartServer(progs.server, &srv));
  ASSERT_TRUE(StartServer(progs.server, &other));
  Gotls cap({"-m", "pcap", "-w", "capture.pcapng", "-i", "lo", "--elfpath=" + progs.server, "tcp", "port",
             std::to_string(srv.port)},
            progs.dir.path());
  ASSERT_TRUE(cap.WaitReady());
  const std::vector<ClientRun> runs = RunScenarios(progs.client, srv.port, kAllScenarios, progs.dir);
  ClientRun other_run = RunClient(progs.client, other.port, Scenario{"other_port", "1.3", false, false, 1},
                                  progs.dir.File("ref-other.log"));
  ASSERT_EQ(other_run.exit_code, 0) << other_run.describe;
  EXPECT_TRUE(WaitConnectionsClosed({srv.port, other.port})) << "connections still open 10 s after the clients exited";
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const PcapSummary sum = ParsePcapSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  EXPECT_GT(sum.packets, 0u) << r.err;
  EXPECT_EQ(sum.file, "capture.pcapng") << r.err;
  const std::string file = progs.dir.File("capture.pcapng");
  ASSERT_TRUE(fs::exists(file)) << "not written in the working directory: " << r.describe;
  EXPECT_EQ(FileMode(file), 0600u) << "the pcapng holds secrets";

  std::string raw;
  const auto t = Tshark(file, "", {srv.port, other.port}, &raw);
  ExpectAllDecrypted(kAllScenarios, At(t, srv.port), raw);
  EXPECT_TRUE(At(t, other.port).client_randoms.empty()) << "packets outside `tcp port " << srv.port << "`\n" << raw;
  EXPECT_EQ(Decrypted(At(t, other.port)), 0) << raw;
}

INSTANTIATE_TEST_SUITE_P(Toolchains, EcaptureExampleTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EcaptureExampleTest);

// ------------------------------------------------------------------------------------------
// 4. Defaults, in an empty working directory
// ------------------------------------------------------------------------------------------

struct Spelling {
  std::string name;
  std::vector<std::string> args;
  std::string cwd;
};

// `-m keylog --elfpath=BIN` and `-m key --elfpath BIN`, each in an empty directory of its own,
// trace one server side by side: each writes ./ecapture_gotls_key.log (0600), and nothing else,
// with which tshark decrypts dumpcap's capture.
TEST(EcaptureE2E, KeylogDefaultsToKeyLogFileInWorkingDirectory) {
  REQUIRE_ECAPTURE_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  std::vector<Spelling> spellings = {{"-m keylog --elfpath=BIN", {"-m", "keylog", "--elfpath=" + progs.server}, ""},
                                     {"-m key --elfpath BIN", {"-m", "key", "--elfpath", progs.server}, ""}};
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  std::vector<std::unique_ptr<Gotls>> caps;
  for (size_t i = 0; i < spellings.size(); i++) {
    spellings[i].cwd = progs.dir.File("cwd" + std::to_string(i));
    fs::create_directories(spellings[i].cwd);
    caps.push_back(std::make_unique<Gotls>(spellings[i].args, spellings[i].cwd));
  }
  for (size_t i = 0; i < caps.size(); i++) ASSERT_TRUE(caps[i]->WaitReady()) << spellings[i].name;
  const std::string pcap = progs.dir.File("dumpcap.pcapng");
  Sentinel sentinel_start, sentinel_end;
  Dumpcap dumpcap("lo", PortFilter({srv.port, sentinel_start.port(), sentinel_end.port()}), pcap);
  ASSERT_TRUE(dumpcap.Start(sentinel_start));
  const std::vector<ClientRun> runs = RunScenarios(progs.client, srv.port, kTwoScenarios, progs.dir);
  EXPECT_TRUE(WaitConnectionsClosed({srv.port})) << "connections still open 10 s after the clients exited";
  ASSERT_TRUE(dumpcap.Stop(sentinel_end));
  std::vector<std::string> files;
  for (size_t i = 0; i < caps.size(); i++) {
    SCOPED_TRACE(spellings[i].name);
    GotlsRun r = caps[i]->Stop();
    EXPECT_EQ(r.exit_code, 0) << r.describe;
    const KeylogSummary sum = ParseKeylogSummary(r.err);
    EXPECT_TRUE(sum.parsed) << r.describe;
    EXPECT_EQ(sum.lost, 0u) << r.err;
    EXPECT_GT(sum.written, 0u) << r.err;
    EXPECT_EQ(DirEntries(spellings[i].cwd), std::set<std::string>{kDefaultKeyLog}) << "only the default key file";
    files.push_back(spellings[i].cwd + "/" + kDefaultKeyLog);
    EXPECT_EQ(FileMode(files.back()), 0600u);
  }
  std::vector<std::string> raws(files.size());
  std::vector<std::future<std::map<int, PortTally>>> tallies;
  for (size_t i = 0; i < files.size(); i++)
    tallies.push_back(std::async(std::launch::async, [&, i] { return Tshark(pcap, files[i], {srv.port}, &raws[i]); }));
  for (size_t i = 0; i < files.size(); i++) {
    SCOPED_TRACE(spellings[i].name);
    ExpectAllDecrypted(kTwoScenarios, At(tallies[i].get(), srv.port), raws[i]);
    ExpectReferenceLines(ReadFileBytes(files[i]), runs);
  }
}

// `-m pcap -i lo --elfpath=BIN` and `-m pcapng --ifname=lo --elfpath BIN` side by side, each in
// an empty directory: ./ecapture_gotls.pcapng (0600), and nothing else, decrypting alone.
TEST(EcaptureE2E, PcapDefaultsToPcapngFileInWorkingDirectory) {
  REQUIRE_ECAPTURE_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  std::vector<Spelling> spellings = {
      {"-m pcap -i lo --elfpath=BIN", {"-m", "pcap", "-i", "lo", "--elfpath=" + progs.server}, ""},
      {"-m pcapng --ifname=lo --elfpath BIN", {"-m", "pcapng", "--ifname=lo", "--elfpath", progs.server}, ""}};
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  std::vector<std::unique_ptr<Gotls>> caps;
  for (size_t i = 0; i < spellings.size(); i++) {
    spellings[i].cwd = progs.dir.File("cwd" + std::to_string(i));
    fs::create_directories(spellings[i].cwd);
    caps.push_back(std::make_unique<Gotls>(spellings[i].args, spellings[i].cwd));
  }
  for (size_t i = 0; i < caps.size(); i++) ASSERT_TRUE(caps[i]->WaitReady()) << spellings[i].name;
  RunScenarios(progs.client, srv.port, kTwoScenarios, progs.dir);
  EXPECT_TRUE(WaitConnectionsClosed({srv.port})) << "connections still open 10 s after the clients exited";
  std::vector<std::string> files;
  for (size_t i = 0; i < caps.size(); i++) {
    SCOPED_TRACE(spellings[i].name);
    GotlsRun r = caps[i]->Stop();
    EXPECT_EQ(r.exit_code, 0) << r.describe;
    const PcapSummary sum = ParsePcapSummary(r.err);
    EXPECT_TRUE(sum.parsed) << r.describe;
    EXPECT_EQ(sum.lost, 0u) << r.err;
    EXPECT_GT(sum.packets, 0u) << r.err;
    EXPECT_EQ(DirEntries(spellings[i].cwd), std::set<std::string>{kDefaultPcap}) << "only the default pcapng";
    files.push_back(spellings[i].cwd + "/" + kDefaultPcap);
    EXPECT_EQ(FileMode(files.back()), 0600u);
  }
  std::vector<std::string> raws(files.size());
  std::vector<std::future<std::map<int, PortTally>>> tallies;
  for (size_t i = 0; i < files.size(); i++)
    tallies.push_back(std::async(std::launch::async, [&, i] { return Tshark(files[i], "", {srv.port}, &raws[i]); }));
  for (size_t i = 0; i < files.size(); i++) {
    SCOPED_TRACE(spellings[i].name);
    ExpectAllDecrypted(kTwoScenarios, At(tallies[i].get(), srv.port), raws[i]);
  }
}

// ------------------------------------------------------------------------------------------
// 5. Flags gotlscap does not need, -l, usage errors
// ------------------------------------------------------------------------------------------

// --btf, --mapsize, -t (--tsize) and --perf-reorder: one notice line each on stderr (and no
// other line but `ready` and the summary); the capture is the same as without them.
TEST(EcaptureE2E, UnneededFlagsPrintOneNoticeEachAndCaptureWorks) {
  REQUIRE_ECAPTURE_ENV(false);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  Gotls cap({"--btf=1", "--mapsize", "2048", "-t", "100", "--perf-reorder", "--elfpath=" + progs.client});
  ASSERT_TRUE(cap.WaitReady());
  const Scenario& s = kScenarios[2];  // HTTP/2 on TLS 1.3
  std::vector<ClientRun> runs = {RunClient(progs.client, srv.port, s, progs.dir.File("ref.log"))};
  ASSERT_EQ(runs[0].exit_code, 0) << runs[0].describe;
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const TextSummary sum = ParseTextSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  std::vector<std::string> notices, other;
  for (const auto& l : SplitLines(r.err))
    if (l.rfind("ready", 0) != 0 && l.rfind("summary:", 0) != 0) other.push_back(l);
  EXPECT_EQ(other.size(), 4u) << "one notice per flag, nothing else:\n" << r.err;
  const std::vector<std::pair<std::string, std::regex>> flags = {
      {"--btf", std::regex(R"(--btf\b)")},
      {"--mapsize", std::regex(R"(--mapsize\b)")},
      {"-t", std::regex(R"((^|\s)(-t|--tsize)\b)")},
      {"--perf-reorder", std::regex(R"(--perf-reorder($|[^-]))")}};
  for (const auto& [flag, re] : flags) {
    int n = 0;
    for (const auto& l : other) n += std::regex_search(l, re);
    EXPECT_EQ(n, 1) << flag << ": one notice line naming it\n" << r.err;
  }
  ExpectMessagesOfRuns(ParseTextMessages(r.out, &notices), {s}, {srv.port}, runs, r.out);
  ExpectNoDecodeProblems(notices);
}

// -l FILE in keylog mode: eCapture's log address; the run log (`ready` and the summary) goes to
// FILE as well as to stderr.
TEST(EcaptureE2E, LogaddrInKeylogModeCopiesTheRunLog) {
  REQUIRE_ECAPTURE_ENV(false);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const std::string keys = progs.dir.File("keys.log"), log = progs.dir.File("gotls.log");
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  Gotls cap({"-m", "keylog", "-k", keys, "-l", log, "--elfpath=" + progs.server});
  ASSERT_TRUE(cap.WaitReady());
  ClientRun run =
      RunClient(progs.client, srv.port, Scenario{"logaddr", "1.3", false, false, 1}, progs.dir.File("ref.log"));
  ASSERT_EQ(run.exit_code, 0) << run.describe;
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const KeylogSummary sum = ParseKeylogSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  EXPECT_GT(sum.written, 0u) << r.err;
  ExpectReferenceLines(ReadFileBytes(keys), {run});
  const std::string ready = LineStarting(r.err, "ready"), summary = LineStarting(r.err, "summary:");
  ASSERT_NE(ready, "") << r.err;
  ASSERT_NE(summary, "") << r.err;
  ASSERT_TRUE(fs::exists(log)) << r.describe;
  const std::string text = ReadFileBytes(log);
  const auto lines = SplitLines(text);
  EXPECT_THAT(lines, ::testing::Contains(ready)) << text;
  EXPECT_THAT(lines, ::testing::Contains(summary)) << text;
  EXPECT_THAT(text, Not(HasSubstr("CLIENT_TRAFFIC_SECRET"))) << "the log holds no secrets";
}

// -l FILE in text mode: the events go to FILE (created 0600 whatever the umask), not to stdout.
TEST(EcaptureE2E, LogaddrInTextModeWritesTheEvents) {
  REQUIRE_ECAPTURE_ENV(false);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const std::string events = progs.dir.File("events.log");
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  const mode_t old = umask(0);
  Gotls cap({"--elfpath=" + progs.client, "-l", events});
  umask(old);
  ASSERT_TRUE(cap.WaitReady());
  const Scenario& s = kScenarios[1];  // HTTP/1.1 on TLS 1.3
  std::vector<ClientRun> runs = {RunClient(progs.client, srv.port, s, progs.dir.File("ref.log"))};
  ASSERT_EQ(runs[0].exit_code, 0) << runs[0].describe;
  GotlsRun r = cap.Stop();
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const TextSummary sum = ParseTextSummary(r.err);
  ASSERT_TRUE(sum.parsed) << r.describe;
  EXPECT_EQ(sum.lost, 0u) << r.err;
  EXPECT_EQ(r.out, "") << "the events go to the -l file";
  ASSERT_TRUE(fs::exists(events)) << r.describe;
  EXPECT_EQ(FileMode(events), 0600u) << "plaintext is as sensitive as keys";
  const std::string text = ReadFileBytes(events);
  std::vector<std::string> notices;
  ExpectMessagesOfRuns(ParseTextMessages(text, &notices), {s}, {srv.port}, runs, text);
  ExpectNoDecodeProblems(notices);
}

// A usage error, run in an empty working directory: exit 2, one line on stderr, nothing on
// stdout, nothing attached (no `ready`, well under the time attaching takes) and no file created.
struct UsageRun {
  CommandResult r;
  double seconds = 0;
  std::set<std::string> left;  // what the working directory holds afterwards
};

UsageRun RunUsageError(const std::vector<std::string>& args) {
  TempDir cwd;
  UsageRun u;
  const auto t0 = Clock::now();
  u.r = RunCommand(GotlsArgv(args, cwd.path()));
  u.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  u.left = DirEntries(cwd.path());
  return u;
}

void ExpectUsageError(const UsageRun& u, const std::string& names) {
  EXPECT_EQ(u.r.exit_code, kExitUsage) << u.r.Describe();
  EXPECT_EQ(SplitLines(u.r.err).size(), 1u) << "one line on stderr: " << u.r.Describe();
  EXPECT_THAT(u.r.err, HasSubstr(names)) << "the error names what is wrong";
  EXPECT_THAT(u.r.err, Not(HasSubstr("ready")));
  EXPECT_EQ(u.r.out, "");
  EXPECT_LT(u.seconds, 3.0) << "a usage error is reported before anything is attached";
  EXPECT_THAT(u.left, ::testing::IsEmpty()) << "a usage error creates no file";
}

TEST(EcaptureCli, UnknownFlagIsUsageErrorNamingIt) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  ExpectUsageError(RunUsageError({"--foo", "--elfpath=" + row->path}), "--foo");
  ExpectUsageError(RunUsageError({"-m", "keylog", "--foo=1", "--elfpath=" + row->path}), "--foo");
}

TEST(EcaptureCli, PcapWithoutInterfaceIsUsageError) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  for (const char* model : {"pcap", "pcapng"}) {
    SCOPED_TRACE(model);
    UsageRun u = RunUsageError({"-m", model, "--elfpath=" + row->path});
    ExpectUsageError(u, "-i");
    EXPECT_FALSE(u.left.count(kDefaultPcap));
  }
}

// --cgroup_path is gotlscap's --cgroup (tests/capture_e2e_test.cc checks the filtering itself):
// a path that is no cgroup v2 directory is a usage error naming the flag.
TEST(EcaptureCli, CgroupPathMustBeACgroup) {
  GOTLSCAP_REQUIRE_MATRIX();
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  ExpectUsageError(RunUsageError({"--cgroup_path=/x", "--elfpath=" + row->path}), "--cgroup_path");
  ExpectUsageError(RunUsageError({"-m", "keylog", "--cgroup_path", "/x", "--elfpath=" + row->path}), "--cgroup_path");
}

}  // namespace
}  // namespace gotlscap::testenv
