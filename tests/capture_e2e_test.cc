// End-to-end capture tests: `gotlscap text --format json` runs as a child process while the
// Go test programs of the toolchain matrix (testdata/go: server, client, both) talk HTTPS over
// 127.0.0.1, and the captured plaintext is checked against itself and against what the programs
// provably sent (the payload generator is deterministic, see PayloadBytes below):
//   - per connection, what the client wrote is byte for byte what the server read, and the
//     reverse (the two ends are paired by their local/remote addresses);
//   - every request/response body appears in the right stream;
//   - event metadata (pid, comm, uid, fd, addresses) names the right process;
//   - the summary line agrees with the events and reports nothing lost.
// Needs root and BPF (skips otherwise, fails under CI=true) and the matrix (scripts/go-matrix.sh).
//
// Every test copies the binaries it traces into its own temporary directory: uprobes attach to
// an inode, so tests running in parallel (ctest -j) never see each other's processes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using ::testing::HasSubstr;

// Exit codes (src/cli/exit_codes.h), spelled out so a renumbering is caught.
constexpr int kExitUsage = 2, kExitNotGo = 5, kExitPermission = 10, kExitNoProcess = 11;
constexpr uint64_t kCaptureMax = 32ull << 20;  // GOTLS_CAPTURE_MAX (bpf/gotls_events.h)
constexpr const char* kHelloText = "hello from gotlscap test server\n";  // tlsprog.HelloText

// ------------------------------------------------------------------------------------------
// Environment checks
// ------------------------------------------------------------------------------------------

// Root + BTF + the matrix, or a skip (a failure under CI=true).
void RequireCaptureEnv() { SkipOrFailUnlessReady(BpfProblem("capture")); }

#define REQUIRE_CAPTURE_ENV() GOTLSCAP_REQUIRE(RequireCaptureEnv())

// ------------------------------------------------------------------------------------------
// Deterministic payloads (testdata/go/internal/tlsprog/payload.go)
// ------------------------------------------------------------------------------------------


size_t Find(const std::string& hay, const std::string& needle, size_t from = 0) {
  if (needle.empty()) return from;
  if (from >= hay.size()) return std::string::npos;
  auto it = std::search(hay.begin() + static_cast<std::ptrdiff_t>(from), hay.end(),
                        std::boyer_moore_horspool_searcher(needle.begin(), needle.end()));
  return it == hay.end() ? std::string::npos : static_cast<size_t>(it - hay.begin());
}

bool Contains(const std::string& hay, const std::string& needle) { return Find(hay, needle) != std::string::npos; }

// "first difference at byte N (sizes A vs B)" for stream comparisons.
std::string DescribeDiff(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) i++;
  std::ostringstream os;
  os << "sizes " << a.size() << " vs " << b.size();
  if (i < n || a.size() != b.size()) os << ", first difference at byte " << i;
  return os.str();
}


// ------------------------------------------------------------------------------------------
// gotlscap as a child
// ------------------------------------------------------------------------------------------

struct Event {
  uint64_t ts_ns = 0;
  uint32_t pid = 0, tid = 0, uid = 0;
  std::string comm, dir;
  uint64_t len = 0, captured = 0, missing = 0;
  bool truncated = false;
  uint64_t conn_id = 0;
  int64_t fd = -1;
  std::string local, remote;
  std::string payload;
};

struct Summary {
  bool parsed = false;
  uint64_t events = 0, bytes = 0, lost = 0, truncated = 0, lost_bytes = 0, incomplete = 0, read_faults = 0,
           no_entry = 0, probe_hits = 0, stack_growths = 0;
};

struct Capture {
  int exit_code = -1;
  std::string err;  // gotlscap's stderr
  Summary summary;
  std::vector<Event> events;
  size_t other_lines = 0;  // JSON lines of other types (e.g. "secret")
  std::map<std::pair<uint32_t, uint64_t>, int> closes;  // close events per (pid, conn id)
  std::vector<std::string> parse_errors;
};

std::string TypeOf(const nlohmann::json& j, const char* key) { return j.contains(key) ? j[key].type_name() : "absent"; }

constexpr const char* kNotData = "(not a data event)";

// One JSON line → Event; "" on success, kNotData for other event types, else what is wrong.
std::string ParseEvent(const std::string& line, Event* e) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "not a JSON object";
  if (!j.contains("type") || !j["type"].is_string()) return "type: " + TypeOf(j, "type");
  if (j["type"] != "data") return kNotData;  // e.g. "secret" lines (keylog): not checked here
  for (const char* k : {"ts_ns", "pid", "tid", "uid", "len", "captured", "missing"})
    if (!j.contains(k) || !j[k].is_number_unsigned()) return std::string(k) + ": " + TypeOf(j, k);
  for (const char* k : {"type", "comm", "dir", "payload_b64"})
    if (!j.contains(k) || !j[k].is_string()) return std::string(k) + ": " + TypeOf(j, k);
  if (!j.contains("truncated") || !j["truncated"].is_boolean()) return "truncated: " + TypeOf(j, "truncated");
  if (!j.contains("conn") || !j["conn"].is_object()) return "conn: " + TypeOf(j, "conn");
  const auto& c = j["conn"];
  if (!c.contains("id") || !c["id"].is_number_unsigned()) return "conn.id: " + TypeOf(c, "id");
  if (!c.contains("fd") || !c["fd"].is_number_integer()) return "conn.fd: " + TypeOf(c, "fd");
  if (!c.contains("local") || !c["local"].is_string()) return "conn.local: " + TypeOf(c, "local");
  if (!c.contains("remote") || !c["remote"].is_string()) return "conn.remote: " + TypeOf(c, "remote");
  if (j["type"] != "data") return "type is not \"data\"";
  e->ts_ns = j["ts_ns"];
  e->pid = j["pid"];
  e->tid = j["tid"];
  e->uid = j["uid"];
  e->comm = j["comm"];
  e->dir = j["dir"];
  e->len = j["len"];
  e->captured = j["captured"];
  e->missing = j["missing"];
  e->truncated = j["truncated"];
  e->conn_id = c["id"];
  e->fd = c["fd"];
  e->local = c["local"];
  e->remote = c["remote"];
  bool ok = false;
  e->payload = Base64Decode(j["payload_b64"].get_ref<const std::string&>(), &ok);
  if (!ok) return "payload_b64 is not valid base64";
  if (e->payload.size() != e->captured)
    return "payload has " + std::to_string(e->payload.size()) + " bytes, captured says " + std::to_string(e->captured);
  return "";
}

// The `summary:` line, field by field (fields may be added to it; these must be there).
bool ParseSummary(const std::string& err, Summary* s) {
  std::string line;
  for (const auto& l : SplitLines(err))
    if (l.rfind("summary: ", 0) == 0) line = l;
  if (line.empty()) return false;
  struct Field {
    const char* re;
    uint64_t* v;
  } fields[] = {{R"(summary: (\d+) events,)", &s->events},
                {R"(, (\d+) bytes,)", &s->bytes},
                {R"(, (\d+) lost,)", &s->lost},
                {R"(, (\d+) truncated \()", &s->truncated},
                {R"(\(lost bytes (\d+)[,)])", &s->lost_bytes},
                {R"([(,] incomplete events (\d+)[,)])", &s->incomplete},
                {R"([(,] read faults (\d+)[,)])", &s->read_faults},
                {R"([(,] reads without entry (\d+)[,)])", &s->no_entry},
                {R"([(,] probe hits (\d+)[,)])", &s->probe_hits},
                {R"([(,] stack growths (\d+)[,)])", &s->stack_growths}};
  for (const auto& f : fields) {
    std::smatch m;
    if (!std::regex_search(line, m, std::regex(f.re))) return false;
    *f.v = std::stoull(m[1].str());
  }
  s->parsed = true;
  return true;
}

class Gotlscap {
 public:
  // `gotlscap text --format json -o <dir>/capture-N.jsonl ARGS...`; the output file is removed
  // first so a stale one can never be read.
  Gotlscap(const TempDir& dir, const std::vector<std::string>& args) {
    static int counter = 0;
    out_path_ = dir.File("capture-" + std::to_string(++counter) + ".jsonl");
    unlink(out_path_.c_str());
    std::vector<std::string> argv = {GotlscapBin(), "text", "--format", "json", "-o", out_path_};
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Proc>(argv);
  }

  ::testing::AssertionResult WaitReady(Clock::duration timeout = seconds(30)) {
    auto t0 = Clock::now();
    auto line = proc_->WaitLine(2, "ready", timeout);
    ready_seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!line) return ::testing::AssertionFailure() << "gotlscap did not print `ready`: " << proc_->Describe();
    ready_line_ = *line;
    return ::testing::AssertionSuccess();
  }

  // SIGINT, wait for the drain and exit, parse the summary and every event.
  Capture Stop(Clock::duration timeout = seconds(90)) {
    Capture c;
    proc_->Signal(SIGINT);
    auto code = proc_->Wait(timeout);
    if (!code) {
      c.parse_errors.push_back("gotlscap did not exit within the timeout after SIGINT: " + proc_->Describe());
      proc_->Signal(SIGKILL);
      proc_->Wait(seconds(10));
    }
    c.exit_code = code ? *code : -1;
    c.err = proc_->Err();
    if (!ParseSummary(c.err, &c.summary)) c.parse_errors.push_back("no summary line on stderr: " + c.err);
    std::string data;
    try {
      data = ReadFileBytes(out_path_);
    } catch (const std::exception& e) {
      c.parse_errors.push_back(e.what());
    }
    size_t start = 0;
    int lineno = 0;
    while (start < data.size()) {
      size_t nl = data.find('\n', start);
      if (nl == std::string::npos) {
        c.parse_errors.push_back("output does not end with a newline");
        break;
      }
      lineno++;
      Event e;
      std::string why = ParseEvent(data.substr(start, nl - start), &e);
      if (why == kNotData) {
        c.other_lines++;
        auto j = nlohmann::json::parse(data.substr(start, nl - start), nullptr, false);
        if (j.is_object() && j.value("type", "") == "close" && j.contains("pid") && j.contains("conn"))
          c.closes[{j["pid"].get<uint32_t>(), j["conn"].value("id", uint64_t{0})}]++;
      } else if (!why.empty())
        c.parse_errors.push_back("line " + std::to_string(lineno) + ": " + why);
      else
        c.events.push_back(std::move(e));
      start = nl + 1;
    }
    return c;
  }

  pid_t pid() const { return proc_->pid(); }
  const std::string& ready_line() const { return ready_line_; }
  double ready_seconds() const { return ready_seconds_; }
  const std::string& out_path() const { return out_path_; }

 private:
  std::string out_path_;
  std::unique_ptr<Proc> proc_;
  std::string ready_line_;
  double ready_seconds_ = 0;
};

// ------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------


std::string EventStr(const Event& e) {
  std::ostringstream os;
  os << "{pid " << e.pid << " tid " << e.tid << " comm " << e.comm << " " << e.dir << " len " << e.len
     << " captured " << e.captured << " missing " << e.missing << " truncated " << e.truncated << " conn " << e.conn_id
     << " fd " << e.fd << " " << e.local << " -> " << e.remote << "}";
  return os.str();
}

struct CaptureExpect {
  std::map<uint32_t, std::string> comm_of_pid;  // every pid that may appear, and its comm
  bool allow_truncated = false;                  // events over 32 MiB may be truncated
  uint64_t t_begin_ns = 0, t_end_ns = 0;         // wall-clock window of the test
};

uint64_t WallNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// Exit 0, a parsed summary that agrees with the events, nothing lost, and every event's metadata.
void CheckCapture(const Capture& c, const CaptureExpect& x) {
  EXPECT_EQ(c.exit_code, 0) << c.err;
  ASSERT_TRUE(c.parse_errors.empty()) << c.parse_errors.size() << " problem(s), first: " << c.parse_errors.front();
  ASSERT_TRUE(c.summary.parsed);
  const auto& s = c.summary;
  EXPECT_EQ(s.events, c.events.size()) << c.err;
  uint64_t bytes = 0, truncated = 0;
  for (const auto& e : c.events) {
    bytes += e.captured - std::min(e.captured, e.missing);
    truncated += e.truncated;
  }
  EXPECT_EQ(s.bytes, bytes) << c.err;
  EXPECT_EQ(s.truncated, truncated) << c.err;
  EXPECT_EQ(s.lost, 0u) << c.err;
  EXPECT_EQ(s.lost_bytes, 0u) << c.err;
  EXPECT_EQ(s.incomplete, 0u) << c.err;
  EXPECT_EQ(s.read_faults, 0u) << c.err;
  EXPECT_GE(s.probe_hits, s.events) << c.err;

  Problems p;
  for (const auto& e : c.events) {
    const std::string es = EventStr(e);
    auto it = x.comm_of_pid.find(e.pid);
    if (it == x.comm_of_pid.end()) {
      p.Add("event of an unexpected pid: " + es);
    } else if (e.comm != it->second) {
      p.Add("comm should be " + it->second + ": " + es);
    }
    if (e.tid == 0) p.Add("tid 0: " + es);
    if (e.uid != geteuid()) p.Add("uid should be " + std::to_string(geteuid()) + ": " + es);
    if (e.dir != "write" && e.dir != "read") p.Add("bad dir: " + es);
    if (e.len == 0) p.Add("empty event: " + es);
    if (e.missing != 0) p.Add("missing bytes: " + es);
    if (e.fd < 0) p.Add("fd unknown: " + es);
    if (e.local.rfind("127.0.0.1:", 0) != 0 || e.local.size() <= 10) p.Add("bad local address: " + es);
    if (e.remote.rfind("127.0.0.1:", 0) != 0 || e.remote.size() <= 10) p.Add("bad remote address: " + es);
    if (e.conn_id == 0) p.Add("conn id 0: " + es);
    if (x.t_begin_ns && (e.ts_ns + 1000000000ull < x.t_begin_ns || e.ts_ns > x.t_end_ns + 1000000000ull))
      p.Add("ts_ns outside the test's time window: " + es);
    if (e.len > kCaptureMax) {
      if (!x.allow_truncated) p.Add("unexpectedly large event: " + es);
      if (!e.truncated) p.Add("over 32 MiB but not truncated: " + es);
      if (e.captured != kCaptureMax) p.Add("truncated event should carry exactly 32 MiB: " + es);
    } else {
      if (e.truncated) p.Add("truncated though <= 32 MiB: " + es);
      if (e.captured != e.len) p.Add("captured != len: " + es);
    }
  }
  EXPECT_EQ(p.size(), 0u) << "event problems:\n" << p.str();
}

// The plaintext of one TCP connection as one process saw it. Streams are keyed by (pid, local,
// remote), not by the conn id gotlscap assigns, so that a wrong id shows up as one precise
// failure (CheckConnIds) instead of garbling every comparison. The kernel may give a later
// connection the same address pair (on loopback a client port is reused while the server holds
// the old connection in TIME_WAIT): a new conn id after the pair's earlier one ended starts a new
// `generation` of the key; an id that comes back after another one began is reported.
struct Stream {
  uint32_t pid = 0;
  std::string comm, local, remote;
  std::set<int64_t> fds;
  std::set<uint64_t> ids;  // conn ids gotlscap gave this connection's events: exactly one
  std::string wrote, read;
  size_t events = 0;
  bool gaps = false;  // a truncated event: the concatenation is not the whole stream
  int generation = 0;    // n-th connection with this address pair in this process
  bool interleaved = false;  // an earlier conn id of the pair came back after a later one began
};

using StreamKey = std::tuple<uint32_t, std::string, std::string, int>;  // pid, local, remote, generation
using StreamMap = std::map<StreamKey, Stream>;

StreamMap Streams(const std::vector<Event>& events) {
  StreamMap m;
  // Per (pid, local, remote): the conn ids in order of first appearance.
  std::map<std::tuple<uint32_t, std::string, std::string>, std::vector<uint64_t>> ids;
  for (const auto& e : events) {
    auto& seen = ids[{e.pid, e.local, e.remote}];
    auto at = std::find(seen.begin(), seen.end(), e.conn_id);
    bool back = false;
    if (at == seen.end()) {
      seen.push_back(e.conn_id);
      at = std::prev(seen.end());
    } else if (std::next(at) != seen.end()) {
      back = true;  // not the pair's latest id: counted with the latest, and reported
      at = std::prev(seen.end());
    }
    const int gen = static_cast<int>(at - seen.begin());
    Stream& s = m[{e.pid, e.local, e.remote, gen}];
    s.generation = gen;
    if (back) {
      s.interleaved = true;
      s.ids.insert(e.conn_id);
    }
    s.pid = e.pid;
    s.comm = e.comm;
    s.local = e.local;
    s.remote = e.remote;
    s.fds.insert(e.fd);
    s.ids.insert(e.conn_id);
    (e.dir == "write" ? s.wrote : s.read) += e.payload;
    s.gaps |= e.truncated;
    s.events++;
  }
  return m;
}

// conn.id identifies one connection within a run: one id per TCP connection, never shared by
// two (the fd too stays the same for the connection's life).
void CheckConnIds(const StreamMap& streams) {
  Problems p;
  std::map<uint64_t, std::vector<const Stream*>> by_id;
  for (const auto& [key, s] : streams) {
    for (uint64_t id : s.ids) by_id[id].push_back(&s);
    // The ids and fds seen tell a reused address pair (two real connections) from an event
    // attributed to the wrong connection.
    if (s.ids.size() != 1)
      p.Add("connection " + s.local + " -> " + s.remote + " (pid " + std::to_string(s.pid) + ") has " +
            std::to_string(s.ids.size()) + " conn ids: " + fmt::format("{}", fmt::join(s.ids, ",")) + ", fds " +
            fmt::format("{}", fmt::join(s.fds, ",")) + ", " + std::to_string(s.events) + " events");
    if (s.fds.size() != 1)
      p.Add("connection " + s.local + " -> " + s.remote + " changed fd: " + fmt::format("{}", fmt::join(s.fds, ",")));
    if (s.interleaved)
      p.Add("connection " + s.local + " -> " + s.remote + " (pid " + std::to_string(s.pid) +
            "): an earlier conn id of the address pair came back after a new one began");
  }
  for (const auto& [id, v] : by_id)
    if (v.size() > 1) {
      std::string what = "conn id " + std::to_string(id) + " is shared by " + std::to_string(v.size()) +
                         " TCP connections:";
      for (const Stream* s : v) what += " [pid " + std::to_string(s->pid) + " " + s->local + " -> " + s->remote + "]";
      p.Add(what);
    }
  EXPECT_EQ(p.size(), 0u) << "conn id problems:\n" << p.str();
}

struct Pair {
  const Stream* client;
  const Stream* server;
};

// Pairs each client-side stream (remote == a server address) with the server's stream of the
// same TCP connection; every stream whose both ends are traced must find its partner. When
// `compare`, the two directions must be equal byte for byte. A server stream that read nothing
// may lack a client side: Go's HTTP/2 transport sometimes dials a spare connection that it
// closes without using (the server has sent its SETTINGS; the client sent and read nothing).
std::vector<Pair> PairStreams(const StreamMap& streams, const std::set<std::string>& server_addrs,
                              bool compare = true) {
  CheckConnIds(streams);
  std::vector<Pair> pairs;
  Problems p;
  // (local, remote, generation): the n-th connection of an address pair is the n-th on both ends.
  std::map<std::tuple<std::string, std::string, int>, std::vector<const Stream*>> by_addr;
  for (const auto& [key, s] : streams) by_addr[{s.local, s.remote, s.generation}].push_back(&s);
  for (const auto& [key, v] : by_addr)
    if (v.size() != 1)
      p.Add(std::to_string(v.size()) + " processes with connection " + std::get<0>(key) + " -> " + std::get<1>(key));
  std::set<const Stream*> paired;
  for (const auto& [key, s] : streams) {
    bool is_client = server_addrs.count(s.remote) > 0;
    bool is_server = server_addrs.count(s.local) > 0;
    if (!is_client && !is_server) {
      p.Add("connection " + s.local + " -> " + s.remote + " touches no test server");
      continue;
    }
    if (!is_client) continue;
    auto it = by_addr.find({s.remote, s.local, s.generation});
    if (it == by_addr.end()) {
      p.Add("no server side for client connection " + s.local + " -> " + s.remote + " (pid " + std::to_string(s.pid) +
            ")");
      continue;
    }
    const Stream* srv = it->second.front();
    pairs.push_back({&s, srv});
    paired.insert(srv);
    if (!compare) continue;
    if (s.wrote != srv->read)
      p.Add("client " + s.local + " wrote != server read: " + DescribeDiff(s.wrote, srv->read));
    if (srv->wrote != s.read)
      p.Add("server wrote != client " + s.local + " read: " + DescribeDiff(srv->wrote, s.read));
  }
  for (const auto& [key, s] : streams)
    if (server_addrs.count(s.local) && !paired.count(&s) && !s.read.empty())
      p.Add("server connection " + s.local + " <- " + s.remote + " read " + std::to_string(s.read.size()) +
            " bytes but has no client side");
  EXPECT_EQ(p.size(), 0u) << "stream pairing problems:\n" << p.str();
  return pairs;
}

// All bytes one process read, over all its connections.
std::string AllRead(const StreamMap& streams, uint32_t pid) {
  std::string s;
  for (const auto& [key, st] : streams)
    if (st.pid == pid) s += st.read;
  return s;
}

// Both directions of every connection of one client process, concatenated (a keep-alive client
// may, rarely, also dial a second connection: Go's transport races a dial against the idle
// connection coming back).
struct Sides {
  std::string client_wrote, client_read, server_wrote, server_read;
  size_t conns = 0;
};
Sides Collect(const std::vector<Pair>& pairs, uint32_t client_pid) {
  Sides x;
  for (const auto& pr : pairs)
    if (pr.client->pid == client_pid) {
      x.client_wrote += pr.client->wrote;
      x.client_read += pr.client->read;
      x.server_wrote += pr.server->wrote;
      x.server_read += pr.server->read;
      x.conns++;
    }
  return x;
}

std::string Trunc(const std::string& s) { return s.size() > 200 ? s.substr(0, 200) + "..." : s; }

// What `client -mode all|echo -n N -size SIZE -seed SEED` provably put on the wire: each request
// line, each echo body (in the client's writes and back in the server's writes), each generated
// response body in the server's writes (/chunked piece by piece in order, 4096-byte pieces).
void CheckClientPayloads(const std::string& client_wrote, const std::string& client_read, const std::string& server_wrote,
                         const std::string& mode, int n, size_t size, uint32_t seed, bool h2) {
  static const char* paths[] = {"echo", "bytes", "chunked", "gzip", "hello"};
  Problems p;
  for (int i = 0; i < n; i++) {
    std::string path = mode == "all" ? paths[i % 5] : "echo";
    std::string body = PayloadBytes(size, seed + uint32_t(i));
    std::string what = "request " + std::to_string(i) + " /" + path;
    if (!h2) {  // HTTP/2 headers are HPACK-encoded
      std::string line = path == "echo"    ? "POST /echo HTTP/1.1\r\n"
                         : path == "hello" ? "GET /hello HTTP/1.1\r\n"
                                           : "GET /" + path + "?n=" + std::to_string(size) +
                                                 "&seed=" + std::to_string(seed + uint32_t(i)) + " HTTP/1.1\r\n";
      if (!Contains(client_wrote, line)) p.Add(what + ": request line not in the client's writes: " + Trunc(line));
    }
    if (path == "echo") {
      if (!Contains(client_wrote, body)) p.Add(what + ": body not in the client's writes");
      if (!Contains(server_wrote, body)) p.Add(what + ": echoed body not in the server's writes");
      if (!Contains(client_read, body)) p.Add(what + ": echoed body not in the client's reads");
    } else if (path == "bytes") {
      if (!Contains(server_wrote, body)) p.Add(what + ": body not in the server's writes");
    } else if (path == "chunked") {
      size_t at = 0;
      for (size_t off = 0; off < body.size(); off += 4096) {
        std::string piece = body.substr(off, 4096);
        size_t f = Find(server_wrote, piece, at);
        if (f == std::string::npos) {
          p.Add(what + ": piece at " + std::to_string(off) + " not in the server's writes (in order)");
          break;
        }
        at = f + piece.size();
      }
    } else if (path == "hello") {
      if (!Contains(server_wrote, kHelloText)) p.Add(what + ": hello text not in the server's writes");
    }
  }
  if (mode == "all" && n > 3 && !h2 && !Contains(server_wrote, "Content-Encoding: gzip\r\n"))
    p.Add("no gzip response header in the server's writes");
  EXPECT_EQ(p.size(), 0u) << "payload problems:\n" << p.str();
}

std::vector<std::string> ClientArgs(const std::string& bin, const std::string& url, const std::string& mode, int n,
                                    size_t size, uint32_t seed, std::vector<std::string> extra) {
  std::vector<std::string> a = {bin,    "-url",  url,    "-mode", mode, "-n", std::to_string(n), "-size",
                                std::to_string(size), "-seed", std::to_string(seed)};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// ------------------------------------------------------------------------------------------
// 1 + 2. Toolchain matrix: separate server and client processes
// ------------------------------------------------------------------------------------------

// Rows of the server program that the matrix test runs: every toolchain x {default, pie,
// stripped} on this machine's architecture, plus cgo (external linking) for the oldest and the
// newest toolchain.
std::vector<MatrixRow> CaptureMatrixRows() {
  std::vector<MatrixRow> rows;
  const MatrixRow *cgo_old = nullptr, *cgo_new = nullptr;
  for (const auto& r : ManifestRows()) {
    if (r.prog != "server" || r.goarch != HostGoArch()) continue;
    if (r.variant == "default" || r.variant == "pie" || r.variant == "stripped") rows.push_back(r);
    if (r.variant == "cgo") {
      if (!cgo_old || r.Minor() < cgo_old->Minor()) cgo_old = &r;
      if (!cgo_new || r.Minor() > cgo_new->Minor()) cgo_new = &r;
    }
  }
  if (cgo_old) rows.push_back(*cgo_old);
  if (cgo_new && cgo_new != cgo_old) rows.push_back(*cgo_new);
  return rows;
}

class CaptureMatrixTest : public ::testing::TestWithParam<MatrixRow> {};

// HTTP/1.1 over TLS 1.3: 10 requests cycling every endpoint (echo, bytes, chunked, gzip, hello)
// on one keep-alive connection, then a 3 MB echo from a second client process.
TEST_P(CaptureMatrixTest, ServerAndClientStreamsMatch) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow& row = GetParam();
  const MatrixRow* crow = FindRow(row.go_minor, row.variant, "client");
  ASSERT_NE(crow, nullptr) << "no client row for " << row;
  TempDir dir;
  const std::string server_bin = CopyBinary(dir, row), client_bin = CopyBinary(dir, *crow);
  const uint64_t t0 = WallNs();
  const auto start = Clock::now();

  Gotlscap cap(dir, {"-e", server_bin, "-e", client_bin});
  ASSERT_TRUE(cap.WaitReady());
  RecordSeconds("ready_seconds", start);
  EXPECT_THAT(cap.ready_line(), HasSubstr(row.go_version));
  EXPECT_THAT(cap.ready_line(), HasSubstr(row.go_minor == "1.15" ? "stack ABI" : "register ABI"));

  Server srv;
  ASSERT_TRUE(StartServer(server_bin, &srv));
  const size_t kSmall = 10000, kBig = 3000000;
  ProcRun c1 = RunToEnd(ClientArgs(client_bin, srv.url(), "all", 10, kSmall, 1, {"-tls", "1.3"}));
  ASSERT_EQ(c1.exit_code, 0) << c1.describe;
  EXPECT_THAT(c1.out, HasSubstr("proto=HTTP/1.1 tls=1.3"));
  ProcRun c2 = RunToEnd(ClientArgs(client_bin, srv.url(), "echo", 1, kBig, 1000, {"-tls", "1.3"}));
  ASSERT_EQ(c2.exit_code, 0) << c2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));

  Capture c = cap.Stop();
  RecordSeconds("total_seconds", start);
  CheckCapture(c, {{{uint32_t(srv.pid()), "server"}, {uint32_t(c1.pid), "client"}, {uint32_t(c2.pid), "client"}},
                   false,
                   t0,
                   WallNs()});
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {srv.addr});
  const Sides s1 = Collect(pairs, uint32_t(c1.pid)), s2 = Collect(pairs, uint32_t(c2.pid));
  EXPECT_GE(s1.conns, 1u);
  EXPECT_EQ(s2.conns, 1u) << "one request: one connection";
  EXPECT_GE(c.events.size(), 10u);
  CheckClientPayloads(s1.client_wrote, s1.client_read, s1.server_wrote, "all", 10, kSmall, 1, false);
  CheckClientPayloads(s2.client_wrote, s2.client_read, s2.server_wrote, "echo", 1, kBig, 1000, false);
}

INSTANTIATE_TEST_SUITE_P(Matrix, CaptureMatrixTest, ::testing::ValuesIn(CaptureMatrixRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CaptureMatrixTest);

// Every way of placing the probes must capture the same exact streams (the client's requests are
// deterministic, so the server's read stream is byte-identical across runs but for the server's
// port in Host headers), with no Read return missing its arguments:
//  - default: entry probes on the emulated stack-check JBE, Read read at its deferred call
//    (amd64: a CALL in Read for Go 1.15, the deferred closure's entry from 1.17);
//  - GOTLSCAP_READ_EXIT=ret: Read read at its RETs (c and b from their proven slots);
//  - GOTLSCAP_READ_PATH=entry + GOTLSCAP_ENTRY_PROBE=body: the fallback of everything -- entry
//    probes after the stack check, Read's entry probe keyed by goroutine for its RET probes.
// On the stack-ABI toolchain, an early register-ABI one and the newest (three closure shapes).
struct ReadPathRun {
  std::string server_read, server_wrote;
  uint64_t probe_hits = 0, events = 0, stack_growths = 0;
};
ReadPathRun RunReadPath(const MatrixRow& row, const std::vector<std::pair<const char*, const char*>>& env) {
  ReadPathRun out;
  std::string placement = "default probes";
  for (const auto& [k, v] : env) placement += std::string(" ") + k + "=" + v;
  SCOPED_TRACE(placement);
  Programs p;  // row is a default server (AbiSpanServerRows): its toolchain's pair
  if (auto copied = CopyPrograms(row.go_minor, &p); !copied) {
    ADD_FAILURE() << copied.message();
    return out;
  }
  const uint64_t t0 = WallNs();
  // gotlscap inherits the test's environment (the server and client ignore the variables).
  for (auto [k, v] : env) setenv(k, v, 1);
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  for (auto [k, v] : env) unsetenv(k);
  EXPECT_TRUE(cap.WaitReady());
  Server srv;
  EXPECT_TRUE(StartServer(p.server, &srv));
  const size_t kSmall = 10000, kBig = 3000000;
  ProcRun c1 = RunToEnd(ClientArgs(p.client, srv.url(), "all", 10, kSmall, 1, {"-tls", "1.3"}));
  EXPECT_EQ(c1.exit_code, 0) << c1.describe;
  ProcRun c2 = RunToEnd(ClientArgs(p.client, srv.url(), "echo", 1, kBig, 1000, {"-tls", "1.3"}));
  EXPECT_EQ(c2.exit_code, 0) << c2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(srv.pid()), "server"}, {uint32_t(c1.pid), "client"}, {uint32_t(c2.pid), "client"}},
                   false,
                   t0,
                   WallNs()});
  EXPECT_EQ(c.summary.no_entry, 0u) << c.err;
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {srv.addr});
  const Sides s1 = Collect(pairs, uint32_t(c1.pid)), s2 = Collect(pairs, uint32_t(c2.pid));
  CheckClientPayloads(s1.client_wrote, s1.client_read, s1.server_wrote, "all", 10, kSmall, 1, false);
  CheckClientPayloads(s2.client_wrote, s2.client_read, s2.server_wrote, "echo", 1, kBig, 1000, false);
  out.server_read = s1.server_read + s2.server_read;
  out.server_wrote = s1.server_wrote + s2.server_wrote;
  // The listening port (in Host headers) is the only thing that differs between runs (the
  // responses carry a Date: CheckClientPayloads compares them with what the client received).
  for (size_t at = 0; (at = out.server_read.find(srv.addr, at)) != std::string::npos;)
    out.server_read.replace(at, srv.addr.size(), "HOST:PORT");
  out.probe_hits = c.summary.probe_hits;
  out.events = c.summary.events;
  out.stack_growths = c.summary.stack_growths;
  return out;
}

class CaptureReadPathTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(CaptureReadPathTest, EveryProbePlacementCapturesTheSameStreams) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow& row = GetParam();
  auto inspect = RunCommand({GotlscapBin(), "inspect", "--json", row.path});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.Describe();
  const auto read = nlohmann::json::parse(inspect.out)["functions"]["crypto/tls.(*Conn).Read"];
  ASSERT_EQ(read["read_path"], "ret-only") << "every matrix toolchain's Read is proven: " << inspect.out;
  if (HostGoArch() == "arm64") {
    // arm64 reads Read's results at its RETs (the kernel simulates RET: one trap, as a deferred
    // call's probe would cost), so the default run and GOTLSCAP_READ_EXIT=ret probe the same sites.
    ASSERT_TRUE(read["exits"].empty()) << read.dump();
    ASSERT_FALSE(read["ret_probes"].empty()) << read.dump();
  } else {
    // amd64: every return path that can carry data is read at the deferred call.
    ASSERT_FALSE(read["exits"].empty()) << read.dump();
    EXPECT_TRUE(read["ret_probes"].size() <= 1u) << "at most the handshake-error RET keeps a RET probe: " << read.dump();
    EXPECT_EQ(read["exits"][0]["in_callee"], row.go_minor != "1.15")
        << "Go 1.15: a direct CALL; later: a closure " << read.dump();
  }

  const ReadPathRun exits = RunReadPath(row, {});
  const ReadPathRun rets = RunReadPath(row, {{"GOTLSCAP_READ_EXIT", "ret"}});
  const ReadPathRun fallback = RunReadPath(row, {{"GOTLSCAP_READ_PATH", "entry"}, {"GOTLSCAP_ENTRY_PROBE", "body"}});
  ASSERT_FALSE(exits.server_read.empty());
  for (const ReadPathRun* other : {&rets, &fallback}) {
    EXPECT_EQ(exits.server_read.size(), other->server_read.size());
    EXPECT_TRUE(exits.server_read == other->server_read)
        << "the server's read streams differ: " << DescribeDiff(exits.server_read, other->server_read);
  }
  // The fallback's entry probes sit after the stack check: it never sees a growth.
  EXPECT_EQ(fallback.stack_growths, 0u);
  // Read's entry probe adds a hit per Read to its RET probe's.
  EXPECT_GT(fallback.probe_hits, rets.probe_hits) << "ret " << rets.probe_hits << ", fallback " << fallback.probe_hits;
  RecordProperty("probe_hits_exits", std::to_string(exits.probe_hits));
  RecordProperty("probe_hits_ret", std::to_string(rets.probe_hits));
  RecordProperty("probe_hits_fallback", std::to_string(fallback.probe_hits));
  RecordProperty("stack_growths", std::to_string(exits.stack_growths));
}

INSTANTIATE_TEST_SUITE_P(Toolchains, CaptureReadPathTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CaptureReadPathTest);

// Calls that grow the goroutine's stack. Entry probes sit on the stack check's JBE, which a call
// that must grow its stack runs twice (before and after runtime.morestack); the eBPF program
// ignores the first by the CMP's flags. The test client's "deep" mode makes each Write, Read and
// Close the first crypto/tls call of a new goroutine at a swept recursion depth, one connection
// per request, so some of them grow the stack in their prologue: every request and response must
// be captured once, byte for byte on both ends, every connection closed once, and the summaries
// must report growths (else the test tested nothing). Default probes and Read's entry+RET path.
class CaptureStackGrowthTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(CaptureStackGrowthTest, CallsThatGrowTheStackAreCapturedOnce) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow& row = GetParam();
  Programs p;  // row is a default server (AbiSpanServerRows): its toolchain's pair
  ASSERT_TRUE(CopyPrograms(row.go_minor, &p));
  const int kN = 300;
  const size_t kSize = 100;
  const uint32_t kSeed = 5;
  std::set<std::string> want_requests;
  for (int i = 0; i < kN; i++) {
    const std::string body = PayloadBytes(kSize, kSeed + uint32_t(i));
    want_requests.insert("POST /echo HTTP/1.1\r\nHost: gotlscap-test\r\nContent-Length: " + std::to_string(kSize) +
                         "\r\n\r\n" + body);
  }
  uint64_t growths = 0;
  for (const bool entry_path : {false, true}) {
    SCOPED_TRACE(entry_path ? "GOTLSCAP_READ_PATH=entry" : "default probes");
    const uint64_t t0 = WallNs();
    if (entry_path) setenv("GOTLSCAP_READ_PATH", "entry", 1);
    Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
    unsetenv("GOTLSCAP_READ_PATH");
    ASSERT_TRUE(cap.WaitReady());
    Server srv;
    ASSERT_TRUE(StartServer(p.server, &srv));
    ProcRun cl = RunToEnd(ClientArgs(p.client, srv.url(), "deep", kN, kSize, kSeed, {"-tls", "1.3"}));
    ASSERT_EQ(cl.exit_code, 0) << cl.describe;
    srv.proc->Signal(SIGTERM);
    srv.proc->Wait(seconds(10));
    Capture c = cap.Stop();
    CheckCapture(c, {{{uint32_t(srv.pid()), "server"}, {uint32_t(cl.pid), "client"}}, false, t0, WallNs()});
    growths += c.summary.stack_growths;
    RecordProperty(entry_path ? "stack_growths_entry_path" : "stack_growths", std::to_string(c.summary.stack_growths));
    auto streams = Streams(c.events);
    auto pairs = PairStreams(streams, {srv.addr});  // both ends equal byte for byte
    std::set<std::string> requests;
    size_t conns = 0;
    for (const auto& pr : pairs) {
      if (pr.client->pid != uint32_t(cl.pid)) continue;
      conns++;
      EXPECT_TRUE(requests.insert(pr.client->wrote).second) << "a request captured twice: " << Trunc(pr.client->wrote);
      const std::string body = pr.client->wrote.substr(pr.client->wrote.size() - std::min(pr.client->wrote.size(), kSize));
      EXPECT_TRUE(pr.client->read.size() >= kSize &&
                  pr.client->read.compare(pr.client->read.size() - kSize, kSize, body) == 0)
          << "response of " << Trunc(pr.client->wrote) << ": " << Trunc(pr.client->read);
    }
    EXPECT_EQ(conns, size_t(kN)) << "one connection per request";
    EXPECT_TRUE(requests == want_requests) << requests.size() << " distinct requests captured, want " << kN;
    // One close per connection, none twice (a Close that grew its stack hit its probe twice).
    size_t closed = 0;
    for (const auto& [key, n] : c.closes) {
      if (key.first != uint32_t(cl.pid)) continue;
      closed++;
      EXPECT_EQ(n, 1) << "connection " << key.second << " closed " << n << " times";
    }
    EXPECT_EQ(closed, size_t(kN)) << "closed connections";
  }
  if (HostGoArch() == "arm64") {
    // arm64 entry probes sit after the stack check's B.LS, which a call that grows its stack
    // runs again after runtime.morestack: the probe itself runs once, so no growth is seen there,
    // and the assertions above (every call captured once) are the check of that placement.
    EXPECT_EQ(growths, 0u) << "an arm64 probe counted a stack growth: is a probe on a stack check?";
  } else {
    EXPECT_GT(growths, 0u) << "no call grew its stack at a probe: the test did not test the stack-check probes";
  }
}

INSTANTIATE_TEST_SUITE_P(Toolchains, CaptureStackGrowthTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CaptureStackGrowthTest);

// HTTP/2 with 4 concurrent streams on one connection (TLS 1.3), then TLS 1.2 with session
// resumption (a new, resumed connection per request): on the stack-ABI toolchain (1.15), an
// early register-ABI one (1.19) and the newest.

class CaptureProtocolTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(CaptureProtocolTest, Http2ConcurrentAndTls12Resumption) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow& row = GetParam();
  const MatrixRow* crow = FindRow(row.go_minor, row.variant, "client");
  ASSERT_NE(crow, nullptr);
  TempDir dir;
  const std::string server_bin = CopyBinary(dir, row), client_bin = CopyBinary(dir, *crow);
  const uint64_t t0 = WallNs();

  Gotlscap cap(dir, {"-e", server_bin, "-e", client_bin});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(server_bin, &srv));
  const size_t kH2Size = 8000, kResumeSize = 6000;
  ProcRun h2 = RunToEnd(ClientArgs(client_bin, srv.url(), "all", 20, kH2Size, 7, {"-h2", "-concurrency", "4", "-tls", "1.3"}));
  ASSERT_EQ(h2.exit_code, 0) << h2.describe;
  EXPECT_THAT(h2.out, HasSubstr("proto=HTTP/2.0 tls=1.3"));
  ProcRun res = RunToEnd(ClientArgs(client_bin, srv.url(), "all", 5, kResumeSize, 300, {"-tls", "1.2", "-resume"}));
  ASSERT_EQ(res.exit_code, 0) << res.describe;
  EXPECT_THAT(res.out, HasSubstr("tls=1.2 resumed=4"));
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));

  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(srv.pid()), "server"}, {uint32_t(h2.pid), "client"}, {uint32_t(res.pid), "client"}},
                   false,
                   t0,
                   WallNs()});
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {srv.addr});
  const Sides sh = Collect(pairs, uint32_t(h2.pid)), sr = Collect(pairs, uint32_t(res.pid));
  // HTTP/2 multiplexes the 4 workers on one connection (Go may dial a spare one it never uses).
  EXPECT_GE(sh.conns, 1u);
  EXPECT_EQ(sr.conns, 5u) << "-resume: one TLS connection per request";
  for (const auto& pr : pairs)
    if (pr.client->pid == uint32_t(h2.pid)) {
      EXPECT_EQ(pr.client->wrote.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0), 0u) << "HTTP/2 client preface first";
    }
  CheckClientPayloads(sh.client_wrote, sh.client_read, sh.server_wrote, "all", 20, kH2Size, 7, true);
  CheckClientPayloads(sr.client_wrote, sr.client_read, sr.server_wrote, "all", 5, kResumeSize, 300, false);
}

INSTANTIATE_TEST_SUITE_P(Protocols, CaptureProtocolTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CaptureProtocolTest);

// ------------------------------------------------------------------------------------------
// 3. One process holding both ends; tracing only one side
// ------------------------------------------------------------------------------------------

// Also the "target starts after gotlscap" case: `both` is started once the probes are attached.
TEST(CaptureE2E, BothEndsInOneProcess) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow* row = NewestRow("default", "both");
  ASSERT_NE(row, nullptr);
  TempDir dir;
  const std::string bin = CopyBinary(dir, *row);
  const uint64_t t0 = WallNs();
  Gotlscap cap(dir, {"-e", bin});
  ASSERT_TRUE(cap.WaitReady());
  Proc both({bin, "-mode", "all", "-n", "10", "-size", "20000", "-seed", "50", "-tls", "1.3"});
  auto listening = both.WaitLine(1, "listening ", seconds(30));
  ASSERT_TRUE(listening) << both.Describe();
  auto code = both.Wait(seconds(60));
  ASSERT_EQ(code, std::optional<int>(0)) << both.Describe();
  EXPECT_THAT(both.Out(), HasSubstr("both: ok"));
  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(both.pid()), "both"}}, false, t0, WallNs()});
  auto streams = Streams(c.events);
  const std::string addr = listening->substr(strlen("listening "));
  auto pairs = PairStreams(streams, {addr});
  const Sides x = Collect(pairs, uint32_t(both.pid()));
  ASSERT_GE(x.conns, 1u);
  CheckClientPayloads(x.client_wrote, x.client_read, x.server_wrote, "all", 10, 20000, 50, false);
}

// -e client only (a) / -e server only (b): the other program runs untraced; only the traced
// program's events appear, and they still carry everything it sent and received.
void OneSideOnly(bool trace_client) {
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const TempDir& dir = progs.dir;
  const std::string &server_bin = progs.server, &client_bin = progs.client;
  const uint64_t t0 = WallNs();
  Gotlscap cap(dir, {"-e", trace_client ? client_bin : server_bin});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(server_bin, &srv));
  const int n = 6;
  const size_t size = 50000;
  ProcRun cl = RunToEnd(ClientArgs(client_bin, srv.url(), "all", n, size, 900, {"-tls", "1.3"}));
  ASSERT_EQ(cl.exit_code, 0) << cl.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Capture c = cap.Stop();
  const uint32_t traced = trace_client ? uint32_t(cl.pid) : uint32_t(srv.pid());
  CheckCapture(c, {{{traced, trace_client ? "client" : "server"}}, false, t0, WallNs()});
  ASSERT_FALSE(c.events.empty());
  auto streams = Streams(c.events);
  CheckConnIds(streams);
  ASSERT_GE(streams.size(), 1u);
  Stream s;  // all connections (normally one: keep-alive)
  for (const auto& [key, st] : streams) {
    EXPECT_EQ(trace_client ? st.remote : st.local, srv.addr);
    s.wrote += st.wrote;
    s.read += st.read;
  }
  // One side: what the client wrote is what the server read and vice versa, so check the
  // bodies against the traced side's two directions.
  if (trace_client) {
    CheckClientPayloads(s.wrote, s.read, /*server_wrote=*/s.read, "all", n, size, 900, false);
  } else {
    CheckClientPayloads(/*client_wrote=*/s.read, /*client_read=*/s.wrote, s.wrote, "all", n, size, 900, false);
  }
}

TEST(CaptureE2E, ClientOnlyTrace) {
  REQUIRE_CAPTURE_ENV();
  OneSideOnly(true);
}

TEST(CaptureE2E, ServerOnlyTrace) {
  REQUIRE_CAPTURE_ENV();
  OneSideOnly(false);
}

// A server handling many short-lived connections (TLS 1.2 resumption, one request each) under
// memory pressure: the Go allocator hands a freed *tls.Conn's address to a later connection and
// the kernel reuses the freed struct sock, so (pid, *tls.Conn, sock) alone does not identify a
// connection. Each TCP connection must still get its own conn id. GOGC=1 makes the reuse
// (otherwise seen now and then) happen in practically every run.
TEST(CaptureE2E, ConnIdIsPerTcpConnection) {
  REQUIRE_CAPTURE_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const TempDir& dir = progs.dir;
  const std::string &server_bin = progs.server, &client_bin = progs.client;
  const uint64_t t0 = WallNs();
  Gotlscap cap(dir, {"-e", server_bin});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer("/usr/bin/env", &srv, {}, {"GOGC=1", server_bin}));
  const int n = 100;
  ProcRun cl = RunToEnd(ClientArgs(client_bin, srv.url(), "all", n, 6000, 1, {"-tls", "1.2", "-resume"}));
  ASSERT_EQ(cl.exit_code, 0) << cl.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(srv.pid()), "server"}}, false, t0, WallNs()});
  auto streams = Streams(c.events);
  EXPECT_EQ(streams.size(), size_t(n)) << "one connection per request";
  CheckConnIds(streams);
}

// ------------------------------------------------------------------------------------------
// 4. Per-call capture limit (32 MiB)
// ------------------------------------------------------------------------------------------

// A 40 MB echo: the calls that hand over more than 32 MiB at once (the server's response body,
// and depending on the Go version the client's request body) are marked truncated with their
// true length and exactly 32 MiB captured, which is the body's prefix; the reads (one TLS record
// each) carry the whole body. A 20 MB echo in the same capture is not truncated at all.
TEST(CaptureE2E, CallsOver32MiBAreTruncated) {
  REQUIRE_CAPTURE_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const TempDir& dir = progs.dir;
  const std::string &server_bin = progs.server, &client_bin = progs.client;
  const uint64_t t0 = WallNs();
  // 256 MiB ring buffer: a 32 MiB call plus the other side's reads of the same body can overflow
  // the default 64 MiB while the consumer is still encoding (seen: ~1 run in 3 loses chunks).
  Gotlscap cap(dir, {"-e", server_bin, "-e", client_bin, "--ringbuf-mb", "256"});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(server_bin, &srv));
  const size_t kHuge = 40000000, kLarge = 20000000;
  ProcRun huge = RunToEnd(ClientArgs(client_bin, srv.url(), "echo", 1, kHuge, 4000, {"-tls", "1.3"}));
  ASSERT_EQ(huge.exit_code, 0) << huge.describe;
  ProcRun large = RunToEnd(ClientArgs(client_bin, srv.url(), "echo", 1, kLarge, 2000, {"-tls", "1.3"}));
  ASSERT_EQ(large.exit_code, 0) << large.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Capture c = cap.Stop();
  const uint32_t spid = uint32_t(srv.pid()), hpid = uint32_t(huge.pid), lpid = uint32_t(large.pid);
  CheckCapture(c, {{{spid, "server"}, {hpid, "client"}, {lpid, "client"}}, true, t0, WallNs()});

  const std::string huge_body = PayloadBytes(kHuge, 4000);
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {srv.addr}, /*compare=*/false);
  ASSERT_EQ(pairs.size(), 2u);
  int truncated = 0, server_truncated = 0;
  std::map<uint32_t, uint64_t> left_out;  // per pid: bytes the capture limit left out
  for (const auto& e : c.events) {
    if (!e.truncated) continue;
    truncated++;
    EXPECT_EQ(e.dir, "write") << EventStr(e);
    // The body, less what net/http's buffered writer had already taken with the header.
    EXPECT_GT(e.len, kHuge - 65536) << "the true length of the body write: " << EventStr(e);
    EXPECT_LE(e.len, kHuge) << EventStr(e);
    EXPECT_EQ(e.captured, kCaptureMax) << EventStr(e);
    EXPECT_TRUE(e.pid == spid || e.pid == hpid) << EventStr(e);
    if (e.len <= kHuge && e.len > kCaptureMax) {
      EXPECT_TRUE(e.payload == huge_body.substr(kHuge - e.len, kCaptureMax))
          << "truncated payload is not the first 32 MiB of what was written: " << EventStr(e);
      left_out[e.pid] += e.len - e.captured;
    }
    server_truncated += e.pid == spid;
  }
  EXPECT_EQ(server_truncated, 1) << "the server echoes the 40 MB body with one Write";
  EXPECT_EQ(c.summary.truncated, uint64_t(truncated));

  for (const auto& pr : pairs) {
    const bool is_huge = pr.client->pid == hpid;
    const std::string body = is_huge ? huge_body : PayloadBytes(kLarge, 2000);
    // Reads are never truncated: both ends read the whole body.
    EXPECT_TRUE(Contains(pr.server->read, body)) << "server read the whole body, huge=" << is_huge;
    EXPECT_TRUE(Contains(pr.client->read, body)) << "client read the whole echo, huge=" << is_huge;
    if (is_huge) {
      EXPECT_TRUE(pr.server->gaps);
      // The truncated write is the 32 MiB prefix; what follows it in the reader's stream is the
      // part the capture limit left out.
      EXPECT_EQ(pr.server->wrote.size() + left_out[spid], pr.client->read.size());
      if (!pr.client->gaps) {
        EXPECT_TRUE(pr.client->wrote == pr.server->read) << DescribeDiff(pr.client->wrote, pr.server->read);
      }
    } else {
      EXPECT_FALSE(pr.client->gaps || pr.server->gaps) << "20 MB is under the limit";
      EXPECT_TRUE(pr.client->wrote == pr.server->read) << DescribeDiff(pr.client->wrote, pr.server->read);
      EXPECT_TRUE(pr.server->wrote == pr.client->read) << DescribeDiff(pr.server->wrote, pr.client->read);
      EXPECT_TRUE(Contains(pr.client->wrote, body));
      EXPECT_TRUE(Contains(pr.server->wrote, body));
    }
  }
}

// ------------------------------------------------------------------------------------------
// 5. Target lifecycle
// ------------------------------------------------------------------------------------------

struct Programs {
  TempDir dir;
  std::string server, client;
  std::string go_version;
};

::testing::AssertionResult NewestPrograms(Programs* p) {
  const MatrixRow* srow = NewestRow("default", "server");
  if (!srow) return ::testing::AssertionFailure() << "no default server row";
  const MatrixRow* crow = FindRow(srow->go_minor, "default", "client");
  if (!crow) return ::testing::AssertionFailure() << "no default client row";
  p->server = CopyBinary(p->dir, *srow);
  p->client = CopyBinary(p->dir, *crow);
  p->go_version = srow->go_version;
  return ::testing::AssertionSuccess();
}

// (a) The server runs before gotlscap starts (its uprobes are installed into a live process).
TEST(CaptureLifecycle, TargetAlreadyRunning) {
  REQUIRE_CAPTURE_ENV();
  Programs p;
  ASSERT_TRUE(NewestPrograms(&p));
  const uint64_t t0 = WallNs();
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  // An exchange before the capture (its connection is idle afterwards: the client exited).
  ProcRun before = RunToEnd(ClientArgs(p.client, srv.url(), "echo", 2, 3000, 10, {}));
  ASSERT_EQ(before.exit_code, 0) << before.describe;

  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  ASSERT_TRUE(cap.WaitReady());
  ProcRun cl = RunToEnd(ClientArgs(p.client, srv.url(), "all", 5, 30000, 20, {"-tls", "1.3"}));
  ASSERT_EQ(cl.exit_code, 0) << cl.describe;
  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(srv.pid()), "server"}, {uint32_t(cl.pid), "client"}}, false, t0, WallNs()});
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {srv.addr});
  const Sides x = Collect(pairs, uint32_t(cl.pid));
  ASSERT_GE(x.conns, 1u);
  for (const auto& pr : pairs) EXPECT_EQ(pr.server->pid, uint32_t(srv.pid()));
  CheckClientPayloads(x.client_wrote, x.client_read, x.server_wrote, "all", 5, 30000, 20, false);
  EXPECT_FALSE(Contains(AllRead(streams, uint32_t(srv.pid())), PayloadBytes(3000, 10)))
      << "an exchange from before the capture started";
}

// (c) The server exits and a new one (new pid) starts while gotlscap runs: both are captured.
TEST(CaptureLifecycle, TargetRestartsDuringCapture) {
  REQUIRE_CAPTURE_ENV();
  Programs p;
  ASSERT_TRUE(NewestPrograms(&p));
  const uint64_t t0 = WallNs();
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  ASSERT_TRUE(cap.WaitReady());

  Server first;
  ASSERT_TRUE(StartServer(p.server, &first));
  ProcRun c1 = RunToEnd(ClientArgs(p.client, first.url(), "echo", 3, 40000, 100, {"-tls", "1.3"}));
  ASSERT_EQ(c1.exit_code, 0) << c1.describe;
  first.proc->Signal(SIGTERM);
  ASSERT_TRUE(first.proc->Wait(seconds(10)));

  Server second;
  ASSERT_TRUE(StartServer(p.server, &second));
  ASSERT_NE(first.pid(), second.pid());
  ProcRun c2 = RunToEnd(ClientArgs(p.client, second.url(), "echo", 3, 40000, 200, {"-tls", "1.2"}));
  ASSERT_EQ(c2.exit_code, 0) << c2.describe;
  second.proc->Signal(SIGTERM);
  second.proc->Wait(seconds(10));

  Capture c = cap.Stop();
  CheckCapture(c,
               {{{uint32_t(first.pid()), "server"},
                 {uint32_t(second.pid()), "server"},
                 {uint32_t(c1.pid), "client"},
                 {uint32_t(c2.pid), "client"}},
                false,
                t0,
                WallNs()});
  auto streams = Streams(c.events);
  auto pairs = PairStreams(streams, {first.addr, second.addr});
  for (const auto& pr : pairs)
    EXPECT_EQ(pr.server->pid, uint32_t(pr.client->pid == uint32_t(c1.pid) ? first.pid() : second.pid()));
  for (const bool is_first : {true, false}) {
    const Sides x = Collect(pairs, uint32_t(is_first ? c1.pid : c2.pid));
    EXPECT_GE(x.conns, 1u) << (is_first ? "first" : "second") << " server";
    CheckClientPayloads(x.client_wrote, x.client_read, x.server_wrote, "echo", 3, 40000, is_first ? 100 : 200, false);
  }
}

// Two servers of one binary, `wanted` traced and `other` not: one echo client run against each
// (payload seeds `seed_wanted` / `seed_other`), then only the wanted server's streams, exact.
void ExpectOnlyWantedServerCaptured(const Programs& p, Gotlscap& cap, const Server& wanted, const Server& other,
                                    uint32_t seed_wanted, uint32_t seed_other, uint64_t t0) {
  ProcRun c1 = RunToEnd(ClientArgs(p.client, wanted.url(), "echo", 2, 20000, seed_wanted, {"-tls", "1.3"}));
  ASSERT_EQ(c1.exit_code, 0) << c1.describe;
  ProcRun c2 = RunToEnd(ClientArgs(p.client, other.url(), "echo", 2, 20000, seed_other, {"-tls", "1.3"}));
  ASSERT_EQ(c2.exit_code, 0) << c2.describe;
  Capture c = cap.Stop();
  CheckCapture(c, {{{uint32_t(wanted.pid()), "server"}}, false, t0, WallNs()});
  ASSERT_FALSE(c.events.empty());
  auto streams = Streams(c.events);
  CheckConnIds(streams);
  ASSERT_GE(streams.size(), 1u);
  std::string wrote, read;
  for (const auto& [key, st] : streams) {
    EXPECT_EQ(st.local, wanted.addr);
    wrote += st.wrote;
    read += st.read;
  }
  CheckClientPayloads(read, wrote, wrote, "echo", 2, 20000, seed_wanted, false);
  EXPECT_FALSE(Contains(read, PayloadBytes(20000, seed_other))) << "the other server's request";
}

// (d) `-p PID` alone traces /proc/PID/exe, and only that process, though a second process runs
// the same file.
TEST(CaptureLifecycle, PidAloneTracesOnlyThatProcess) {
  REQUIRE_CAPTURE_ENV();
  Programs p;
  ASSERT_TRUE(NewestPrograms(&p));
  const uint64_t t0 = WallNs();
  Server wanted, other;
  ASSERT_TRUE(StartServer(p.server, &wanted));
  ASSERT_TRUE(StartServer(p.server, &other));
  Gotlscap cap(p.dir, {"-p", std::to_string(wanted.pid())});
  ASSERT_TRUE(cap.WaitReady());
  EXPECT_THAT(cap.ready_line(), HasSubstr("/proc/" + std::to_string(wanted.pid()) + "/exe"));
  EXPECT_THAT(cap.ready_line(), HasSubstr("1 binary"));
  ExpectOnlyWantedServerCaptured(p, cap, wanted, other, 500, 600, t0);
}

// --cgroup: of two processes running the same binary, only the one inside the cgroup (v2) is
// traced; the path may be given relative to the cgroup v2 mount.
TEST(CaptureLifecycle, CgroupTracesOnlyItsProcesses) {
  REQUIRE_CAPTURE_ENV();
  std::string root;
  for (const auto& line : SplitLines(ReadFileBytes("/proc/self/mounts"))) {
    auto f = SplitWs(line);
    if (f.size() > 2 && f[2] == "cgroup2") {
      root = f[1];
      break;
    }
  }
  if (root.empty()) GTEST_SKIP() << "cgroup v2 is not mounted";
  const std::string name = "gotlscap-test-" + std::to_string(getpid());
  const std::string dir = root + "/" + name;
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir << ": " << std::strerror(errno);
  struct RemoveCgroup {
    std::string dir;
    ~RemoveCgroup() {
      for (int i = 0; i < 50 && rmdir(dir.c_str()) != 0 && errno == EBUSY; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } cleanup{dir};
  Programs p;
  ASSERT_TRUE(NewestPrograms(&p));
  const uint64_t t0 = WallNs();
  Server wanted, other;
  {
    // The shell moves itself into the cgroup, then execs the server (same pid).
    const std::string script = "echo $$ > " + dir + "/cgroup.procs && exec \"$0\" \"$@\"";
    ASSERT_TRUE(StartServer("/bin/sh", &wanted, {}, {"-c", script, p.server}));
    ASSERT_TRUE(StartServer(p.server, &other));
  }
  Gotlscap cap(p.dir, {"-e", p.server, "--cgroup", name});
  ASSERT_TRUE(cap.WaitReady());
  ExpectOnlyWantedServerCaptured(p, cap, wanted, other, 700, 800, t0);
  // Both servers end before the cgroup is removed.
  wanted.proc->Signal(SIGTERM);
  other.proc->Signal(SIGTERM);
  wanted.proc->Wait(seconds(10));
  other.proc->Wait(seconds(10));
}

// (e) A pid that does not exist: exit 11 at once, one line on stderr.
TEST(CaptureLifecycle, NonexistentPid) {
  REQUIRE_CAPTURE_ENV();
  pid_t pid = 999999;
  while (kill(pid, 0) == 0 || errno != ESRCH) pid++;
  TempDir dir;
  auto t = Clock::now();
  ProcRun r = RunToEnd({GotlscapBin(), "text", "--format", "json", "-o", dir.File("x.jsonl"), "-p", std::to_string(pid)},
                   seconds(20));
  const double secs = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_EQ(r.exit_code, kExitNoProcess) << r.describe;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe;
  EXPECT_THAT(r.err, HasSubstr(std::to_string(pid)));
  EXPECT_LT(secs, 5.0) << "should fail before attaching anything";
}

// ------------------------------------------------------------------------------------------
// 6. Error paths and the output file
// ------------------------------------------------------------------------------------------

void ExpectOneLineError(const ProcRun& r, int code) {
  EXPECT_EQ(r.exit_code, code) << r.describe;
  EXPECT_EQ(r.out, "") << r.describe;
  ASSERT_FALSE(r.err.empty()) << r.describe;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe;
  EXPECT_EQ(r.err.rfind("gotlscap: ", 0), 0u) << r.describe;
}

// No -e/-p: the whole host is followed (tests/host_e2e_test.cc checks the capture itself). A
// --comm no program has keeps this run from attaching to other tests' programs.
TEST(CaptureCli, NoTargetFollowsTheHost) {
  REQUIRE_CAPTURE_ENV();
  const ProcRun r = RunToEnd({GotlscapBin(), "text", "--duration", "1", "--comm", "no-such-program"}, seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_THAT(r.err, HasSubstr("ready: following the host")) << r.describe;
  EXPECT_THAT(r.err, HasSubstr("host: 0 binaries attached")) << r.describe;
}

// --cgroup that is not a cgroup v2 directory: a usage error before anything is attached.
TEST(CaptureCli, CgroupMustExist) {
  ExpectOneLineError(RunToEnd({GotlscapBin(), "text", "-e", "/bin/ls", "--cgroup", "no-such-cgroup-here"}, seconds(20)),
                     kExitUsage);
}

TEST(CaptureCli, NotGoBinary) {
  ExpectOneLineError(RunToEnd({GotlscapBin(), "text", "-e", "/bin/ls"}, seconds(20)), kExitNotGo);
}

TEST(CaptureCli, NonRootIsPermissionError) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to an unprivileged user";
  REQUIRE_CAPTURE_ENV();
  if (access("/usr/bin/setpriv", X_OK) != 0 && access("/bin/setpriv", X_OK) != 0)
    GTEST_SKIP() << "setpriv (util-linux) not installed";
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  // The unprivileged user must reach both executables: copies in a world-readable directory.
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const std::string target = CopyBinary(dir, *row);
  const std::string self = dir.File("gotlscap");
  CopyFile(GotlscapBin(), self);
  for (const auto& f : {target, self, dir.File("bin")})
    fs::permissions(f, fs::perms::others_read | fs::perms::others_exec | fs::perms::group_read | fs::perms::group_exec,
                    fs::perm_options::add);
  ProcRun r = RunToEnd({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", self, "text", "-e", target},
                   seconds(30));
  ExpectOneLineError(r, kExitPermission);
  EXPECT_TRUE(r.err.find("root") != std::string::npos || r.err.find("CAP_BPF") != std::string::npos) << r.err;
}

// -o FILE is created owner-only (plaintext is as sensitive as keys), even with a lax umask, and
// an existing file is truncated.
TEST(CaptureCli, OutputFileIsOwnerOnly) {
  REQUIRE_CAPTURE_ENV();
  const MatrixRow* row = NewestRow("default", "client");
  ASSERT_NE(row, nullptr);
  TempDir dir;
  const std::string bin = CopyBinary(dir, *row);
  const std::string out = dir.File("events.jsonl");
  const mode_t old = umask(0);
  ProcRun r = RunToEnd({GotlscapBin(), "text", "-o", out, "-e", bin, "--duration", "0.2"}, seconds(30));
  umask(old);
  EXPECT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_THAT(r.err, HasSubstr("summary: 0 events"));
  struct stat st {};
  ASSERT_EQ(stat(out.c_str(), &st), 0) << "output file not created";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_size, 0);
}

}  // namespace
}  // namespace gotlscap::testenv
