// End-to-end tests of HTTP decoding (`gotlscap text`, decoding on by default): the Go test server
// and client of the toolchain matrix talk HTTPS (HTTP/1.1 and HTTP/2) over 127.0.0.1 while
// gotlscap traces both, and the "http" events of `--format json` are checked against what the
// programs provably sent (testdata/go/internal/tlsprog: deterministic payloads):
//   - every request the client made appears exactly once on each side (client wrote it, server
//     read it) with its method, path and authority, and every response with status 200, the
//     request it answers and the body the handler sent (chunking and gzip removed);
//   - `--decode none` emits no http events and the same data events;
//   - the text format shows decoded requests and responses;
//   - requests of curl (another HTTP/1.1 and HTTP/2 implementation) to a traced Go server;
//   - HTTP/2 header blocks over 16 KiB (HEADERS + CONTINUATION) both ways, and a header repeated
//     on every request (HPACK dynamic-table references), with the frames checked in the capture;
//   - a gRPC-style exchange (length-prefixed messages, grpc-status trailers), JSON and text;
//   - the Go client against openssl s_server (a non-Go TLS server), HTTP/1.1;
//   - connection ends: a "close" event after the last event of every connection, and an HTTP/1.0
//     body that runs to the end of its connection decoded while the capture still runs.
// Needs root and BPF (skips otherwise, fails under CI=true) and the matrix (scripts/go-matrix.sh).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr const char* kHelloText = "hello from gotlscap test server\n";  // tlsprog.HelloText
const char* const kAllPaths[] = {"echo", "bytes", "chunked", "gzip", "hello"};  // tlsprog.allPaths

void RequireCaptureEnv() { SkipOrFailUnlessReady(BpfProblem("capture")); }
#define REQUIRE_CAPTURE_ENV() GOTLSCAP_REQUIRE(RequireCaptureEnv())



std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ------------------------------------------------------------------------------------------
// Parsed output
// ------------------------------------------------------------------------------------------

struct HttpEv {
  uint32_t pid = 0;
  std::string comm, proto, kind;
  uint64_t conn_id = 0;
  std::string local, remote;
  uint64_t stream = 0;
  bool has_stream = false;
  std::string method, path, authority;  // requests
  int status = 0;                       // responses
  std::string req_method, req_path;     // responses
  std::vector<std::pair<std::string, std::string>> headers, trailers;
  std::vector<uint64_t> grpc_messages;
  uint64_t body_len = 0, body_wire_len = 0;
  std::string content_encoding;
  bool body_decoded = false, body_truncated = false;
  std::string body;
  std::string line;  // the JSON line, for failure messages (body cut)
  size_t seq = 0;    // line number in the output

  std::string Header(const std::string& name) const {  // first value, case-insensitive name
    for (const auto& [k, v] : headers)
      if (Lower(k) == Lower(name)) return v;
    return "";
  }
  std::string Brief() const {
    std::ostringstream os;
    os << comm << "[" << pid << "] conn " << conn_id << " " << proto << " " << kind;
    if (has_stream) os << " stream " << stream;
    if (kind == "request")
      os << " " << method << " " << path << " authority=" << authority;
    else
      os << " " << status << " (to " << req_method << " " << req_path << ")";
    os << " body_len=" << body_len << " wire=" << body_wire_len;
    return os.str();
  }
};

struct DataEv {
  uint32_t pid = 0, tid = 0;
  std::string dir, local, remote, payload;
  uint64_t conn_id = 0, len = 0;
  int64_t fd = -1;
  size_t seq = 0;  // line number in the output (not compared)
  bool operator<(const DataEv& o) const {
    return std::tie(pid, tid, conn_id, fd, local, remote, dir, len, payload) <
           std::tie(o.pid, o.tid, o.conn_id, o.fd, o.local, o.remote, o.dir, o.len, o.payload);
  }
  bool operator==(const DataEv& o) const { return !(*this < o) && !(o < *this); }
};

// {"type":"close"}: the end of a connection (reason "close": the process called Close; "eof": a
// Read returned io.EOF).
struct CloseEv {
  uint32_t pid = 0, tid = 0;
  std::string comm, reason, local, remote;
  uint64_t conn_id = 0;
  int64_t fd = -1;
  size_t seq = 0;
  std::string line;
};

struct Output {
  int exit_code = -1;
  std::string err, raw;
  std::vector<HttpEv> http;
  std::vector<DataEv> data;
  std::vector<CloseEv> closes;
  std::vector<std::string> notices;
  size_t secrets = 0;
  std::vector<std::string> parse_errors;
};

std::string ParseHttp(const nlohmann::json& j, HttpEv* e) {
  try {
    e->pid = j.at("pid").get<uint32_t>();
    e->comm = j.at("comm").get<std::string>();
    e->proto = j.at("proto").get<std::string>();
    e->kind = j.at("kind").get<std::string>();
    const auto& c = j.at("conn");
    e->conn_id = c.at("id").get<uint64_t>();
    e->local = c.at("local").get<std::string>();
    e->remote = c.at("remote").get<std::string>();
    if (j.contains("stream")) {
      e->has_stream = true;
      e->stream = j["stream"].get<uint64_t>();
    }
    if (e->kind == "request") {
      e->method = j.at("method").get<std::string>();
      e->path = j.at("path").get<std::string>();
      e->authority = j.at("authority").get<std::string>();
    } else if (e->kind == "response") {
      e->status = j.at("status").get<int>();
      e->req_method = j.at("request").at("method").get<std::string>();
      e->req_path = j.at("request").at("path").get<std::string>();
    } else {
      return "bad kind " + e->kind;
    }
    for (const auto& h : j.at("headers")) {
      if (!h.is_array() || h.size() != 2) return "header is not a [name, value] pair";
      e->headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    }
    if (j.contains("trailers"))
      for (const auto& h : j["trailers"]) {
        if (!h.is_array() || h.size() != 2) return "trailer is not a [name, value] pair";
        e->trailers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
      }
    if (j.contains("grpc_messages")) e->grpc_messages = j["grpc_messages"].get<std::vector<uint64_t>>();
    e->body_len = j.at("body_len").get<uint64_t>();
    e->body_wire_len = j.at("body_wire_len").get<uint64_t>();
    if (j.contains("content_encoding")) e->content_encoding = j["content_encoding"].get<std::string>();
    e->body_decoded = j.at("body_decoded").get<bool>();
    e->body_truncated = j.at("body_truncated").get<bool>();
    bool ok = false;
    e->body = Base64Decode(j.at("body_b64").get<std::string>(), &ok);
    if (!ok) return "body_b64 is not valid base64";
    if (e->body.size() != e->body_len)
      return "body_b64 has " + std::to_string(e->body.size()) + " bytes, body_len " + std::to_string(e->body_len);
  } catch (const std::exception& ex) {
    return std::string("http event: ") + ex.what();
  }
  return "";
}

void ParseOutput(Output* o) {
  size_t start = 0;
  int lineno = 0;
  while (start < o->raw.size()) {
    size_t nl = o->raw.find('\n', start);
    if (nl == std::string::npos) {
      o->parse_errors.push_back("output does not end with a newline");
      break;
    }
    lineno++;
    std::string line = o->raw.substr(start, nl - start);
    start = nl + 1;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    auto err = [&](const std::string& why) { o->parse_errors.push_back("line " + std::to_string(lineno) + ": " + why); };
    if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
      err("not a typed JSON object");
      continue;
    }
    const std::string type = j["type"];
    if (type == "http") {
      HttpEv e;
      std::string why = ParseHttp(j, &e);
      if (!why.empty()) {
        err(why);
        continue;
      }
      e.line = line.substr(0, 600);
      e.seq = size_t(lineno);
      o->http.push_back(std::move(e));
    } else if (type == "data") {
      try {
        DataEv d;
        d.pid = j.at("pid");
        d.tid = j.at("tid");
        d.dir = j.at("dir");
        d.len = j.at("len");
        d.conn_id = j.at("conn").at("id");
        d.fd = j.at("conn").at("fd");
        d.local = j.at("conn").at("local");
        d.remote = j.at("conn").at("remote");
        d.seq = size_t(lineno);
        bool ok = false;
        d.payload = Base64Decode(j.at("payload_b64").get<std::string>(), &ok);
        if (!ok) err("payload_b64 is not base64");
        o->data.push_back(std::move(d));
      } catch (const std::exception& ex) {
        err(std::string("data event: ") + ex.what());
      }
    } else if (type == "close") {
      try {
        CloseEv c;
        c.pid = j.at("pid");
        c.tid = j.at("tid");
        c.comm = j.at("comm");
        c.reason = j.at("reason");
        c.conn_id = j.at("conn").at("id");
        c.fd = j.at("conn").at("fd");
        c.local = j.at("conn").at("local");
        c.remote = j.at("conn").at("remote");
        c.seq = size_t(lineno);
        c.line = line;
        if (!j.at("ts_ns").is_number_unsigned() || !j.at("uid").is_number_unsigned()) err("close: ts_ns/uid");
        if (c.reason != "close" && c.reason != "eof") err("close: reason " + c.reason);
        o->closes.push_back(std::move(c));
      } catch (const std::exception& ex) {
        err(std::string("close event: ") + ex.what());
      }
    } else if (type == "notice") {
      o->notices.push_back(line);
    } else if (type == "secret") {
      o->secrets++;
    } else {
      err("unknown type " + type);
    }
  }
}

// `gotlscap text -o FILE ARGS...` as a child (json unless `text_format`).
class Gotlscap {
 public:
  // env: VAR=VALUE settings for gotlscap (through env(1)).
  Gotlscap(const TempDir& dir, const std::vector<std::string>& args, bool text_format = false,
           const std::vector<std::string>& env = {}) {
    static int counter = 0;
    out_path_ = dir.File("http-capture-" + std::to_string(++counter) + (text_format ? ".txt" : ".jsonl"));
    unlink(out_path_.c_str());
    std::vector<std::string> argv;
    if (!env.empty()) {
      argv.push_back("/usr/bin/env");
      argv.insert(argv.end(), env.begin(), env.end());
    }
    argv.insert(argv.end(), {GotlscapBin(), "text"});
    if (!text_format) argv.insert(argv.end(), {"--format", "json"});
    argv.insert(argv.end(), {"-o", out_path_});
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Proc>(argv);
  }

  ::testing::AssertionResult WaitReady(Clock::duration timeout = seconds(30)) {
    if (!proc_->WaitLine(2, "ready", timeout))
      return ::testing::AssertionFailure() << "gotlscap did not print `ready`: " << proc_->Describe();
    return ::testing::AssertionSuccess();
  }

  Output Stop(bool parse = true) {
    Output o;
    proc_->Signal(SIGINT);
    auto code = proc_->Wait(seconds(60));
    if (!code) {
      o.parse_errors.push_back("gotlscap did not exit after SIGINT: " + proc_->Describe());
      proc_->Signal(SIGKILL);
      proc_->Wait(seconds(10));
    }
    o.exit_code = code ? *code : -1;
    o.err = proc_->Err();
    try {
      o.raw = ReadFileBytes(out_path_);
    } catch (const std::exception& e) {
      o.parse_errors.push_back(e.what());
    }
    if (parse) ParseOutput(&o);
    return o;
  }

  // The output written so far (whole lines), while gotlscap keeps running.
  Output Peek() {
    Output o;
    try {
      o.raw = ReadFileBytes(out_path_);
    } catch (const std::exception&) {
      return o;
    }
    o.raw.resize(o.raw.rfind('\n') == std::string::npos ? 0 : o.raw.rfind('\n') + 1);
    ParseOutput(&o);
    return o;
  }

 private:
  std::string out_path_;
  std::unique_ptr<Proc> proc_;
};

std::vector<std::string> ClientArgs(const std::string& bin, const std::string& url, int n, size_t size, uint32_t seed,
                                    std::vector<std::string> extra) {
  std::vector<std::string> a = {bin, "-url", url, "-mode", "all", "-n", std::to_string(n), "-size", std::to_string(size),
                                "-seed", std::to_string(seed)};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// ------------------------------------------------------------------------------------------
// Expected exchanges of `client -mode all`
// ------------------------------------------------------------------------------------------

struct Exchange {
  std::string method, path, req_body, resp_body;
  std::string name;  // "echo", "bytes", ...
};

std::vector<Exchange> ExpectedAll(int n, size_t size, uint32_t seed0) {
  std::vector<Exchange> v;
  for (int i = 0; i < n; i++) {
    const std::string name = kAllPaths[i % 5];
    const uint32_t seed = seed0 + uint32_t(i);
    Exchange x;
    x.name = name;
    if (name == "echo") {
      x.method = "POST";
      x.path = "/echo";
      x.req_body = x.resp_body = PayloadBytes(size, seed);
    } else if (name == "hello") {
      x.method = "GET";
      x.path = "/hello";
      x.resp_body = kHelloText;
    } else {
      x.method = "GET";
      x.path = "/" + name + "?n=" + std::to_string(size) + "&seed=" + std::to_string(seed);
      x.resp_body = PayloadBytes(size, seed);
    }
    v.push_back(std::move(x));
  }
  return v;
}


// Checks one side's (client's or server's) http events of one client run: exactly one request
// and one response event per exchange, matched as a multiset (HTTP/2 with concurrency may
// complete them in any order).
void CheckSide(const std::string& side, const std::vector<const HttpEv*>& evs, const std::vector<Exchange>& want,
               const std::string& proto, const std::string& authority, Problems* p) {
  std::vector<const HttpEv*> reqs, resps;
  for (const HttpEv* e : evs) (e->kind == "request" ? reqs : resps).push_back(e);
  if (reqs.size() != want.size())
    p->Add(side + ": " + std::to_string(reqs.size()) + " request events, want " + std::to_string(want.size()));
  if (resps.size() != want.size())
    p->Add(side + ": " + std::to_string(resps.size()) + " response events, want " + std::to_string(want.size()));
  for (const HttpEv* e : evs) {
    if (e->proto != proto) p->Add(side + ": proto " + e->proto + ", want " + proto + ": " + e->Brief());
    if (e->body_truncated) p->Add(side + ": body_truncated: " + e->Brief());
    if (proto == "HTTP/2" && (!e->has_stream || e->stream % 2 != 1))
      p->Add(side + ": HTTP/2 event without an odd stream id: " + e->Brief());
    if (proto != "HTTP/2" && e->has_stream) p->Add(side + ": HTTP/1 event with a stream: " + e->Brief());
  }
  // HTTP/2: each response answers the request of the same stream on the same connection.
  if (proto == "HTTP/2") {
    std::map<std::pair<uint64_t, uint64_t>, const HttpEv*> by_stream;
    for (const HttpEv* r : reqs)
      if (!by_stream.emplace(std::make_pair(r->conn_id, r->stream), r).second)
        p->Add(side + ": two requests on one stream: " + r->Brief());
    for (const HttpEv* r : resps) {
      auto it = by_stream.find({r->conn_id, r->stream});
      if (it == by_stream.end())
        p->Add(side + ": response on a stream without request: " + r->Brief());
      else if (it->second->method != r->req_method || it->second->path != r->req_path)
        p->Add(side + ": response names " + r->req_method + " " + r->req_path + ", stream's request is " +
               it->second->Brief());
    }
  }
  std::vector<bool> used_req(reqs.size()), used_resp(resps.size());
  for (const Exchange& x : want) {
    // Request
    bool found = false;
    for (size_t k = 0; k < reqs.size() && !found; k++) {
      const HttpEv& e = *reqs[k];
      if (used_req[k] || e.method != x.method || e.path != x.path || e.body != x.req_body) continue;
      used_req[k] = found = true;
      if (e.authority != authority) p->Add(side + ": authority " + e.authority + ", want " + authority + ": " + e.Brief());
      if (proto == "HTTP/2") {
        if (e.Header(":method") != x.method || e.Header(":path") != x.path || e.Header(":scheme") != "https")
          p->Add(side + ": pseudo-headers do not match: " + e.line);
      }
      if (x.name == "gzip" && Lower(e.Header("accept-encoding")) != "gzip")
        p->Add(side + ": /gzip request without Accept-Encoding: gzip: " + e.line);
    }
    if (!found) {
      std::string cands;
      for (size_t k = 0; k < reqs.size(); k++)
        if (!used_req[k] && reqs[k]->path == x.path)
          cands += "\n      candidate: " + reqs[k]->Brief();
      p->Add(side + ": no request event " + x.method + " " + x.path + " with a " + std::to_string(x.req_body.size()) +
             "-byte body" + cands);
    }
    // Response
    found = false;
    for (size_t k = 0; k < resps.size() && !found; k++) {
      const HttpEv& e = *resps[k];
      if (used_resp[k] || e.req_method != x.method || e.req_path != x.path || e.body != x.resp_body) continue;
      used_resp[k] = found = true;
      if (e.status != 200) p->Add(side + ": status " + std::to_string(e.status) + ": " + e.Brief());
      if (proto == "HTTP/2" && e.Header(":status") != "200") p->Add(side + ": no :status 200 header: " + e.line);
      if (x.name == "gzip") {
        if (!e.body_decoded || e.content_encoding != "gzip" || e.body_wire_len == e.body_len ||
            e.body_wire_len == 0)
          p->Add(side + ": /gzip response: want content_encoding gzip, body_decoded, wire length != body length: " +
                 e.line);
      } else {
        if (e.body_decoded || !e.content_encoding.empty() || e.body_wire_len != e.body_len)
          p->Add(side + ": " + x.name + " response: want no content coding and body_wire_len == body_len: " + e.Brief());
      }
      if (x.name == "chunked" && proto == "HTTP/1.1" && Lower(e.Header("transfer-encoding")) != "chunked")
        p->Add(side + ": /chunked HTTP/1.1 response without Transfer-Encoding: chunked: " + e.line);
    }
    if (!found) {
      std::string cands;
      for (size_t k = 0; k < resps.size(); k++)
        if (!used_resp[k] && resps[k]->req_path == x.path)
          cands += "\n      candidate: " + resps[k]->Brief() + " (body " +
                   (resps[k]->body == x.resp_body ? "equal" : "differs") + ")";
      p->Add(side + ": no response event to " + x.method + " " + x.path + " with the expected " +
             std::to_string(x.resp_body.size()) + "-byte body" + cands);
    }
  }
}

struct ClientRun {
  std::string label;
  ProcRun run;
  std::vector<Exchange> want;
  std::string proto;
};

// Splits `o`'s http events by client run (client: its pid; server: connections whose remote
// address is one of that client's local addresses) and checks both sides of each.
void CheckRuns(const Output& o, pid_t server_pid, const Server& srv, const std::vector<ClientRun>& runs) {
  Problems p(20);
  std::set<std::string> claimed_server_remotes;
  for (const auto& r : runs) {
    std::vector<const HttpEv*> client, server;
    std::set<std::string> locals;
    for (const auto& d : o.data)
      if (d.pid == uint32_t(r.run.pid)) locals.insert(d.local);
    for (const auto& e : o.http) {
      if (e.pid == uint32_t(r.run.pid)) {
        client.push_back(&e);
        if (e.remote != srv.addr) p.Add(r.label + ": client event with remote " + e.remote + ": " + e.Brief());
      }
      if (e.pid == uint32_t(server_pid) && locals.count(e.remote)) server.push_back(&e);
    }
    if (locals.empty()) p.Add(r.label + ": no data events of the client (pid " + std::to_string(r.run.pid) + ")");
    CheckSide(r.label + " client", client, r.want, r.proto, srv.addr, &p);
    CheckSide(r.label + " server", server, r.want, r.proto, srv.addr, &p);
    for (const auto* e : client)
      if (e->comm != "client") p.Add(r.label + ": comm " + e->comm);
    for (const auto* e : server)
      if (e->comm != "server") p.Add(r.label + ": comm " + e->comm);
    claimed_server_remotes.insert(locals.begin(), locals.end());
  }
  // Nothing else: no http events of other processes or connections.
  size_t other = 0;
  for (const auto& e : o.http) {
    bool ours = false;
    for (const auto& r : runs) ours |= e.pid == uint32_t(r.run.pid);
    ours |= e.pid == uint32_t(server_pid) && claimed_server_remotes.count(e.remote);
    if (!ours && other++ < 3) p.Add("unexpected http event: " + e.Brief());
  }
  EXPECT_EQ(p.size(), 0u) << p.str();
}

void ExpectCleanOutput(const Output& o) {
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(o.parse_errors.empty()) << ::testing::PrintToString(o.parse_errors);
  EXPECT_THAT(o.err, HasSubstr(" 0 lost,")) << o.err;
}

// Decoder notices other than RST_STREAM(CANCEL) by a client: Go 1.15's HTTP/2 client really
// resets streams whose response body it closed (or read to the end) before seeing END_STREAM,
// depending on timing; nothing else is expected from these runs.
std::vector<std::string> UnexpectedNotices(const Output& o) {
  std::vector<std::string> unexpected;
  for (const auto& n : o.notices)
    if (n.find("reset by the client (CANCEL)") == std::string::npos) unexpected.push_back(n);
  return unexpected;
}


// ------------------------------------------------------------------------------------------
// 1. Every exchange of `client -mode all`, both sides, HTTP/1.1 and HTTP/2, three toolchains
// ------------------------------------------------------------------------------------------


class HttpDecodeMatrixTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(HttpDecodeMatrixTest, EveryExchangeDecodedOnBothSides) {
  REQUIRE_CAPTURE_ENV();
  const auto start = Clock::now();
  Programs p;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &p));
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  const size_t kSize = 10000;  // > 4096: /chunked sends 3 chunks
  std::vector<ClientRun> runs;
  auto run = [&](const std::string& label, uint32_t seed, std::vector<std::string> extra, const std::string& proto) {
    ClientRun r{label, RunToEnd(ClientArgs(p.client, srv.url(), 10, kSize, seed, extra)), ExpectedAll(10, kSize, seed),
                proto};
    EXPECT_EQ(r.run.exit_code, 0) << r.run.describe;
    runs.push_back(std::move(r));
  };
  run("h1/tls1.3", 1, {"-tls", "1.3"}, "HTTP/1.1");
  run("h1/tls1.2", 100, {"-tls", "1.2"}, "HTTP/1.1");
  run("h2", 200, {"-h2", "-tls", "1.3"}, "HTTP/2");
  run("h2/concurrency4", 300, {"-h2", "-concurrency", "4", "-tls", "1.2"}, "HTTP/2");
  ASSERT_FALSE(HasFailure());
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output o = cap.Stop();
  RecordSeconds("total_seconds", start);
  ExpectCleanOutput(o);
  EXPECT_THAT(UnexpectedNotices(o), ::testing::IsEmpty());
  EXPECT_EQ(o.http.size(), 4u * 10u * 2u * 2u) << "runs x requests x (request, response) x sides";
  CheckRuns(o, srv.pid(), srv, runs);
}

INSTANTIATE_TEST_SUITE_P(Toolchains, HttpDecodeMatrixTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HttpDecodeMatrixTest);

// ------------------------------------------------------------------------------------------
// 2. --decode none: no http events, the same data events as with decoding
// ------------------------------------------------------------------------------------------

TEST(HttpDecodeE2E, DecodeNoneEmitsOnlyDataEvents) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  // Two captures of the same programs at once: one decoding, one not.
  Gotlscap none(p.dir, {"--decode", "none", "-e", p.server, "-e", p.client});
  Gotlscap http(p.dir, {"-e", p.server, "-e", p.client});
  ASSERT_TRUE(none.WaitReady());
  ASSERT_TRUE(http.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  ProcRun h1 = RunToEnd(ClientArgs(p.client, srv.url(), 5, 6000, 7, {"-tls", "1.3"}));
  ASSERT_EQ(h1.exit_code, 0) << h1.describe;
  ProcRun h2 = RunToEnd(ClientArgs(p.client, srv.url(), 5, 6000, 70, {"-h2", "-tls", "1.3"}));
  ASSERT_EQ(h2.exit_code, 0) << h2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output a = none.Stop(), b = http.Stop();
  ExpectCleanOutput(a);
  ExpectCleanOutput(b);
  EXPECT_TRUE(a.http.empty()) << a.http.size() << " http events with --decode none, first: " << a.http.front().line;
  EXPECT_TRUE(a.notices.empty()) << a.notices.size() << " notices with --decode none";
  EXPECT_EQ(b.http.size(), 2u * 5u * 2u * 2u);
  ASSERT_FALSE(a.data.empty());
  // The data events: the same multiset (the two captures' connection ids are their own, so they
  // are compared without them; payload, pid, tid, fd and addresses identify each call).
  auto key = [](std::vector<DataEv> v) {
    for (auto& d : v) d.conn_id = 0;
    std::sort(v.begin(), v.end());
    return v;
  };
  auto ka = key(a.data), kb = key(b.data);
  EXPECT_EQ(ka.size(), kb.size());
  EXPECT_TRUE(ka == kb) << "data events differ between --decode none and --decode http";
  uint64_t bytes_a = 0, bytes_b = 0;
  for (const auto& d : a.data) bytes_a += d.payload.size();
  for (const auto& d : b.data) bytes_b += d.payload.size();
  EXPECT_EQ(bytes_a, bytes_b);
}

// ------------------------------------------------------------------------------------------
// 3. Text format shows the decoded messages
// ------------------------------------------------------------------------------------------

TEST(HttpDecodeE2E, TextFormatShowsDecodedMessages) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client}, /*text_format=*/true);
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  ProcRun h1 = RunToEnd(ClientArgs(p.client, srv.url(), 5, 3000, 11, {"-tls", "1.3"}));
  ASSERT_EQ(h1.exit_code, 0) << h1.describe;
  ProcRun h2 = RunToEnd(ClientArgs(p.client, srv.url(), 5, 3000, 12, {"-h2", "-tls", "1.3"}));
  ASSERT_EQ(h2.exit_code, 0) << h2.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output o = cap.Stop(/*parse=*/false);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const std::string& t = o.raw;
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t pos = t.find(needle); pos != std::string::npos; pos = t.find(needle, pos + 1)) n++;
    return n;
  };
  const std::string head = t.substr(0, 3000);
  // -n 5 -mode all: echo, bytes, chunked, gzip, hello, each shown by both sides.
  EXPECT_EQ(count("\n> POST /echo HTTP/1.1\n"), 2u) << head;
  EXPECT_EQ(count("\n< HTTP/1.1 200\n"), 10u) << head;
  EXPECT_EQ(count("\n> GET /hello HTTP/1.1\n"), 2u) << head;
  EXPECT_THAT(t, HasSubstr("\n> Host: " + srv.addr + "\n"));
  // HTTP/2: pseudo-headers as header lines.
  EXPECT_EQ(count("\n> :method: GET\n"), 8u) << head;
  EXPECT_EQ(count("\n> :method: POST\n"), 2u) << head;
  EXPECT_EQ(count("\n< :status: 200\n"), 10u) << head;
  EXPECT_THAT(t, HasSubstr("\n> :authority: " + srv.addr + "\n"));
  EXPECT_THAT(t, HasSubstr("HTTP/2 response stream "));
  EXPECT_THAT(t, HasSubstr(kHelloText));
}

// ------------------------------------------------------------------------------------------
// 4. curl (HTTP/1.1 and HTTP/2) against a traced Go server
// ------------------------------------------------------------------------------------------

TEST(HttpDecodeE2E, CurlRequestsToTracedServer) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  CommandResult ver = RunCommand({"curl", "--version"});
  if (ver.exit_code != 0) GOTLSCAP_REQUIRE(SkipOrFail("curl is not installed (scripts/install-deps.sh)"));
  const bool curl_h2 = ver.out.find("HTTP2") != std::string::npos;
  std::string ua = "curl/";
  {
    auto w = SplitWs(ver.out);
    ASSERT_GE(w.size(), 2u) << ver.Describe();
    ua += w[1];  // "curl 7.88.1 (...)"
  }
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  Gotlscap cap(p.dir, {"-e", p.server});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  const std::string post_body = "curl says hello over h2";
  CommandResult c1 = RunCommand({"curl", "-sk", "--http1.1", "-o", "/dev/null", "-w", "%{http_version}", srv.url() + "/hello"});
  EXPECT_EQ(c1.exit_code, 0) << c1.Describe();
  EXPECT_EQ(c1.out, "1.1");
  CommandResult c2;
  if (curl_h2) {
    c2 = RunCommand({"curl", "-sk", "--http2", "--data-binary", post_body, "-o", "/dev/null", "-w", "%{http_version}",
                     srv.url() + "/echo?from=curl"});
    EXPECT_EQ(c2.exit_code, 0) << c2.Describe();
    EXPECT_EQ(c2.out, "2");
  }
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output o = cap.Stop();
  ExpectCleanOutput(o);
  EXPECT_THAT(UnexpectedNotices(o), ::testing::IsEmpty());
  Problems pr(20);
  auto check = [&](const std::string& proto, const std::string& method, const std::string& path,
                   const std::string& req_body, const std::string& resp_body) {
    int nreq = 0, nresp = 0;
    for (const auto& e : o.http) {
      if (e.proto != proto) continue;
      if (e.pid != uint32_t(srv.pid())) pr.Add("event of another process: " + e.Brief());
      if (e.kind == "request") {
        nreq++;
        if (e.method != method || e.path != path || e.authority != srv.addr || e.body != req_body)
          pr.Add(proto + " request: want " + method + " " + path + " authority " + srv.addr + ": " + e.Brief());
        if (e.Header("user-agent") != ua) pr.Add(proto + " request: user-agent '" + e.Header("user-agent") + "', want " + ua);
        if (e.Header("accept") != "*/*") pr.Add(proto + " request: accept '" + e.Header("accept") + "'");
      } else {
        nresp++;
        if (e.status != 200 || e.req_method != method || e.req_path != path || e.body != resp_body)
          pr.Add(proto + " response: " + e.Brief());
      }
    }
    if (nreq != 1 || nresp != 1)
      pr.Add(proto + ": " + std::to_string(nreq) + " requests and " + std::to_string(nresp) + " responses, want 1 and 1");
  };
  check("HTTP/1.1", "GET", "/hello", "", kHelloText);
  if (curl_h2) check("HTTP/2", "POST", "/echo?from=curl", post_body, post_body);
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  EXPECT_EQ(o.http.size(), curl_h2 ? 4u : 2u);
}


// ------------------------------------------------------------------------------------------
// Helpers of the header, gRPC and openssl tests
// ------------------------------------------------------------------------------------------

// tlsprog.HeaderValue: the payload mapped onto [a-z0-9].
std::string HeaderValue(size_t n, uint32_t seed) {
  static const std::string kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";  // tlsprog.headerAlphabet
  std::string v = PayloadBytes(n, seed);
  for (char& c : v) c = kAlphabet[static_cast<unsigned char>(c) % kAlphabet.size()];
  return v;
}
const size_t kRepeatLen = 300;                                             // tlsprog.RepeatLen
const std::string& RepeatValue() {
  static const std::string v = HeaderValue(kRepeatLen, 0x5eed);  // tlsprog.RepeatValue
  return v;
}

// One length-prefixed gRPC message (compressed flag 0, 4-byte big-endian length).
std::string GrpcFrame(const std::string& m) {
  const uint32_t n = static_cast<uint32_t>(m.size());
  std::string f = {'\0', char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  return f + m;
}
std::vector<uint64_t> GrpcSizes(size_t size) { return {3, size, 0, 17}; }  // tlsprog.GrpcSizes

// Requests of `client -mode headers -header-size hs`.
std::vector<Exchange> ExpectedHeaders(int n, size_t hs, uint32_t seed0) {
  std::vector<Exchange> v;
  for (int i = 0; i < n; i++) {
    const uint32_t seed = seed0 + uint32_t(i);
    v.push_back({"GET", "/headers?n=" + std::to_string(hs) + "&seed=" + std::to_string(seed), "",
                 hs ? HeaderValue(hs, seed) : "", "headers"});
  }
  return v;
}

// Requests of `client -mode grpc -size size`: message j is Payload(GrpcSizes[j], seed+j); the
// server answers each with "ok:" + message.
std::vector<Exchange> ExpectedGrpc(int n, size_t size, uint32_t seed0) {
  std::vector<Exchange> v;
  for (int i = 0; i < n; i++) {
    const uint32_t seed = seed0 + uint32_t(i);
    Exchange x{"POST", "/grpc", "", "", "grpc"};
    const auto sizes = GrpcSizes(size);
    for (size_t j = 0; j < sizes.size(); j++) {
      const std::string m = PayloadBytes(sizes[j], seed + uint32_t(j));
      x.req_body += GrpcFrame(m);
      x.resp_body += GrpcFrame("ok:" + m);
    }
    v.push_back(std::move(x));
  }
  return v;
}

// The http events of one client run: the client's own, and the server's on the connections
// whose remote address is one of the client's local addresses.
std::vector<const HttpEv*> RunEvents(const Output& o, pid_t server_pid, const ProcRun& run) {
  std::set<std::string> locals;
  for (const auto& d : o.data)
    if (d.pid == uint32_t(run.pid)) locals.insert(d.local);
  std::vector<const HttpEv*> v;
  for (const auto& e : o.http)
    if (e.pid == uint32_t(run.pid) || (e.pid == uint32_t(server_pid) && locals.count(e.remote))) v.push_back(&e);
  return v;
}

// The HTTP/2 frames one process wrote on one connection (its write events, in order).
struct WrittenH2 {
  std::vector<uint64_t> header_blocks;  // header block fragment bytes of each HEADERS + CONTINUATIONs
  size_t headers = 0, continuations = 0;
  std::string error;
};

WrittenH2 WrittenFrames(const Output& o, uint32_t pid, uint64_t conn_id) {
  std::string b;
  for (const auto& d : o.data)
    if (d.pid == pid && d.conn_id == conn_id && d.dir == "write") b += d.payload;
  static const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  WrittenH2 w;
  size_t pos = b.compare(0, kPreface.size(), kPreface) == 0 ? kPreface.size() : 0;
  while (pos + 9 <= b.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(b.data()) + pos;
    const uint32_t len = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
    const uint8_t type = p[3], flags = p[4];
    if (pos + 9 + len > b.size()) break;
    if (type == 1) {  // HEADERS
      uint64_t frag = len;
      if (flags & 0x8) frag -= 1 + p[9];
      if (flags & 0x20) frag -= 5;
      w.headers++;
      w.header_blocks.push_back(frag);
    } else if (type == 9) {  // CONTINUATION
      w.continuations++;
      if (w.header_blocks.empty()) w.error = "CONTINUATION before HEADERS";
      else w.header_blocks.back() += len;
    }
    pos += 9 + len;
  }
  if (pos != b.size()) w.error = std::to_string(b.size() - pos) + " bytes after the last whole frame";
  return w;
}

// The connections (ids) of `pid` among `evs`.
std::set<uint64_t> ConnsOf(const std::vector<const HttpEv*>& evs, uint32_t pid) {
  std::set<uint64_t> c;
  for (const HttpEv* e : evs)
    if (e->pid == pid) c.insert(e->conn_id);
  return c;
}

// ------------------------------------------------------------------------------------------
// 5. Connection ends: close events, and decoder state dropped when the connection closes
// ------------------------------------------------------------------------------------------

// Three client runs, every one ending all its connections with (*tls.Conn).Close (-close-idle):
// HTTP/1.1 keep-alive (TLS 1.2), HTTP/2, and `-mode toclose`, whose responses are HTTP/1.0
// without Content-Length written by the server on the hijacked connection, which it then
// closes: the body ends with the connection. While gotlscap still runs (its output read from
// the file as it is flushed), every connection of both sides must have ended with a "close"
// event after its last data event, and the toclose responses must already be decoded on both
// sides: the server's at its Close, the client's at its io.EOF (the server's close_notify). At
// the end no data event of a connection follows its close, and the totals are exact.
// Twice: by default Read's `return 0, err` RETs are not probed (no trap for the net/http server's
// aborted background reads), so an io.EOF returned there gives no "eof" event and the client's
// toclose body ends at its Close; with GOTLSCAP_READ_ALL_RETS=1 every RET is probed and the
// client's io.EOF is an "eof" event before its close.
TEST_P(HttpDecodeMatrixTest, CloseEndsEveryConnectionAndItsDecoderState) {
  REQUIRE_CAPTURE_ENV();
  for (const bool all_rets : {false, true}) {
    SCOPED_TRACE(all_rets ? "GOTLSCAP_READ_ALL_RETS=1" : "default probes");
    const auto start = Clock::now();
    Programs p;
    ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &p));
    std::vector<std::string> env;
    if (all_rets) env.push_back("GOTLSCAP_READ_ALL_RETS=1");
    Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client}, false, env);
    ASSERT_TRUE(cap.WaitReady());
    Server srv;
    ASSERT_TRUE(StartServer(p.server, &srv));
    const size_t kSize = 5000;
    const int kToClose = 3;
    const uint32_t kSeed = 400;
    struct Run {
      std::string label;
      ProcRun run;
      size_t conns;  // TCP connections the run opens
    };
    std::vector<Run> runs;
    auto run = [&](const std::string& label, int n, uint32_t seed, std::vector<std::string> extra, size_t conns) {
      extra.push_back("-close-idle");
      runs.push_back({label, RunToEnd(ClientArgs(p.client, srv.url(), n, kSize, seed, extra)), conns});
      EXPECT_EQ(runs.back().run.exit_code, 0) << runs.back().run.describe;
    };
    run("toclose", kToClose, kSeed, {"-mode", "toclose", "-tls", "1.3"}, kToClose);
    run("h1", 5, 500, {"-tls", "1.2"}, 1);
    run("h2", 5, 600, {"-h2", "-tls", "1.3"}, 1);
    ASSERT_FALSE(HasFailure());

    // Per side and connection: data events, close events, and the toclose responses.
    struct ConnSeen {
      size_t data = 0, closes = 0, eofs = 0;
      size_t last_data_seq = 0, close_seq = 0, eof_seq = 0;
      std::string local, remote;
    };
    using Side = std::map<uint64_t, ConnSeen>;  // conn id -> what was seen
    auto sides = [&](const Output& o, Side* client, Side* server, Problems* pr) {
      std::set<std::string> client_locals;  // the server's view: remote address of our clients
      std::set<uint32_t> client_pids;
      for (const auto& r : runs) client_pids.insert(uint32_t(r.run.pid));
      for (const auto& d : o.data)
        if (client_pids.count(d.pid)) client_locals.insert(d.local);
      auto side_of = [&](uint32_t pid, const std::string& remote) -> Side* {
        if (client_pids.count(pid)) return client;
        if (pid == uint32_t(srv.pid()) && client_locals.count(remote)) return server;
        return nullptr;
      };
      for (const auto& d : o.data)
        if (Side* s = side_of(d.pid, d.remote)) {
          ConnSeen& c = (*s)[d.conn_id];
          c.data++;
          c.last_data_seq = std::max(c.last_data_seq, d.seq);
          c.local = d.local;
          c.remote = d.remote;
        }
      for (const auto& e : o.closes) {
        Side* s = side_of(e.pid, e.remote);
        if (!s) {
          if (pr) pr->Add("close event of another process or connection: " + e.line);
          continue;
        }
        auto it = s->find(e.conn_id);
        if (it == s->end()) {
          if (pr) pr->Add("close event of a connection without data events: " + e.line);
          continue;
        }
        ConnSeen& c = it->second;
        if (e.reason == "close") {
          c.closes++;
          c.close_seq = e.seq;
        } else {
          c.eofs++;
          c.eof_seq = e.seq;
        }
        if (pr && (e.local != c.local || e.remote != c.remote || e.fd < 0))
          pr->Add("close event with other connection fields than its data events: " + e.line);
        if (pr && e.comm != (s == client ? "client" : "server")) pr->Add("close event comm: " + e.line);
      }
    };
    auto toclose_responses = [&](const Output& o, uint32_t pid) {
      size_t n = 0;
      for (const auto& e : o.http) {
        if (e.pid != pid || e.kind != "response" || e.req_path.rfind("/toclose?", 0) != 0) continue;
        const size_t at = e.req_path.find("&seed=");
        const auto seed = at == std::string::npos ? std::nullopt : ParseU64(e.req_path.substr(at + 6), 10);
        if (e.proto == "HTTP/1.0" && e.status == 200 && seed && e.body == PayloadBytes(kSize, uint32_t(*seed)) &&
            e.body_wire_len == kSize)
          n++;
      }
      return n;
    };
    size_t want_conns = 0;
    for (const auto& r : runs) want_conns += r.conns;
    auto all_closed = [&](const Side& s) {
      if (s.size() != want_conns) return false;
      for (const auto& [id, c] : s)
        if (c.closes == 0) return false;
      return true;
    };

    // While the capture runs: wait until everything ended and was decoded.
    Output live;
    Side live_client, live_server;
    size_t resp_client = 0, resp_server = 0;
    for (const auto deadline = Clock::now() + seconds(20); Clock::now() < deadline;) {
      live = cap.Peek();
      live_client.clear();
      live_server.clear();
      sides(live, &live_client, &live_server, nullptr);
      uint32_t client_pid = uint32_t(runs[0].run.pid);
      resp_client = toclose_responses(live, client_pid);
      resp_server = toclose_responses(live, uint32_t(srv.pid()));
      if (all_closed(live_client) && all_closed(live_server) && resp_client == kToClose && resp_server == kToClose)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(resp_client, size_t(kToClose))
        << "toclose responses decoded by the client side before the capture stopped";
    EXPECT_EQ(resp_server, size_t(kToClose))
        << "toclose responses decoded by the server side before the capture stopped";
    EXPECT_TRUE(all_closed(live_client)) << live_client.size() << " client connections, want " << want_conns
                                         << ", each with a close event, before the capture stopped";
    EXPECT_TRUE(all_closed(live_server)) << live_server.size() << " server connections, want " << want_conns
                                         << ", each with a close event, before the capture stopped";

    srv.proc->Signal(SIGTERM);
    srv.proc->Wait(seconds(10));
    Output o = cap.Stop();
    RecordSeconds("total_seconds", start);
    ExpectCleanOutput(o);
    Problems pr(20);
    Side client, server;
    sides(o, &client, &server, &pr);
    for (const auto* side : {&client, &server}) {
      const std::string name = side == &client ? "client" : "server";
      if (side->size() != want_conns)
        pr.Add(name + ": " + std::to_string(side->size()) + " connections, want " + std::to_string(want_conns));
      for (const auto& [id, c] : *side) {
        const std::string conn = name + " conn " + std::to_string(id) + " (" + c.local + " -> " + c.remote + ")";
        if (c.closes != 1) pr.Add(conn + ": " + std::to_string(c.closes) + " close events, want 1");
        if (c.eofs > 1) pr.Add(conn + ": " + std::to_string(c.eofs) + " eof events, want at most 1");
        if (c.closes && c.close_seq < c.last_data_seq) pr.Add(conn + ": a data event follows the close event");
        if (c.eofs && c.closes && c.close_seq < c.eof_seq) pr.Add(conn + ": eof after close");
      }
    }
    // The toclose connections: the server closes them (its close follows its write); the client
    // reads io.EOF (the server's close_notify), then closes.
    std::set<std::string> toclose_locals;
    for (const auto& e : o.http)
      if (e.pid == uint32_t(runs[0].run.pid) && e.kind == "request" && e.path.rfind("/toclose?", 0) == 0)
        toclose_locals.insert(e.local);
    EXPECT_EQ(toclose_locals.size(), size_t(kToClose));
    for (const auto& [id, c] : client)
      if (all_rets && toclose_locals.count(c.local) && c.eofs != 1)
        pr.Add("client toclose conn " + std::to_string(id) + ": no eof event");
    // Decoding is unchanged by the ends: every exchange once per side.
    EXPECT_EQ(toclose_responses(o, uint32_t(runs[0].run.pid)), size_t(kToClose));
    EXPECT_EQ(toclose_responses(o, uint32_t(srv.pid())), size_t(kToClose));
    EXPECT_EQ(o.http.size(), (size_t(kToClose) + 5 + 5) * 2 * 2) << "requests x (request, response) x sides";
    EXPECT_EQ(pr.size(), 0u) << pr.str();
  }
}

// ------------------------------------------------------------------------------------------
// 6. HTTP/2 header blocks > 16 KiB (CONTINUATION) and HPACK dynamic-table reuse
// ------------------------------------------------------------------------------------------

// `client -mode headers`: every request carries a big header (40 000 characters: its HPACK block
// exceeds the default SETTINGS_MAX_FRAME_SIZE, so it is split into HEADERS + CONTINUATION) and/or
// the same 300-character header on every request (indexed by Go's HPACK encoder: later requests
// refer to the dynamic table); the server answers with a big header of its own and echoes the
// repeated one (its encoder indexes it too). Every decoded request and response, on both sides,
// must carry exactly the values sent. The frames in the captured plaintext prove the shapes:
// Go's server splits header blocks at 16 KiB; Go's client splits at the server's announced
// frame size, which only Go >= 1.24 lets the test server set to 16 KiB (-h2-max-frame).
TEST_P(HttpDecodeMatrixTest, LargeHeadersContinuationAndHpackReuse) {
  REQUIRE_CAPTURE_ENV();
  const auto start = Clock::now();
  const bool client_continuation = GetParam().Minor() >= 24;
  Programs p;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &p));
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv,
                          client_continuation ? std::vector<std::string>{"-h2-max-frame", "16384"}
                                              : std::vector<std::string>{}));
  const size_t kBig = 40000;
  struct Run {
    ClientRun r;
    size_t header_size;
    bool repeat;
  };
  std::vector<Run> runs;
  auto run = [&](const std::string& label, int n, size_t hs, bool repeat, uint32_t seed, std::vector<std::string> extra,
                 const std::string& proto) {
    std::vector<std::string> a = {p.client, "-url", srv.url(), "-mode", "headers", "-n", std::to_string(n),
                                  "-header-size", std::to_string(hs), "-seed", std::to_string(seed), "-tls", "1.3"};
    if (repeat) a.push_back("-repeat-header");
    a.insert(a.end(), extra.begin(), extra.end());
    Run r{ClientRun{label, RunToEnd(a), ExpectedHeaders(n, hs, seed), proto}, hs, repeat};
    EXPECT_EQ(r.r.run.exit_code, 0) << r.r.run.describe;
    runs.push_back(std::move(r));
  };
  run("h2/big+repeat", 3, kBig, true, 10, {"-h2"}, "HTTP/2");
  run("h2/repeat", 5, 0, true, 20, {"-h2"}, "HTTP/2");
  run("h1/big+repeat", 2, kBig, true, 30, {}, "HTTP/1.1");
  ASSERT_FALSE(HasFailure());
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output o = cap.Stop();
  RecordSeconds("total_seconds", start);
  ExpectCleanOutput(o);
  EXPECT_THAT(UnexpectedNotices(o), ::testing::IsEmpty());
  {
    std::vector<ClientRun> plain;
    for (const auto& r : runs) plain.push_back(r.r);
    CheckRuns(o, srv.pid(), srv, plain);  // paths, bodies (the echoed big header), both sides
  }
  Problems pr(20);
  for (const Run& r : runs) {
    const auto evs = RunEvents(o, srv.pid(), r.r.run);
    for (const HttpEv* e : evs) {
      const std::string side = r.r.label + (e->pid == uint32_t(srv.pid()) ? " server" : " client");
      const auto q = e->kind == "request" ? e->path : e->req_path;
      const size_t at = q.find("&seed=");
      const auto seed = at == std::string::npos ? std::nullopt : ParseU64(q.substr(at + 6), 10);
      if (!seed) {
        pr.Add(side + ": no seed in " + q);
        continue;
      }
      const std::string big_name = e->kind == "request" ? "x-gotlscap-big" : "x-gotlscap-big-response";
      const std::string big = r.header_size ? HeaderValue(r.header_size, e->kind == "request" ? uint32_t(*seed)
                                                                                              : ~uint32_t(*seed))
                                            : "";
      if (e->Header(big_name) != big)
        pr.Add(side + " " + e->kind + ": " + big_name + " has " + std::to_string(e->Header(big_name).size()) +
               " bytes, want the " + std::to_string(big.size()) + " sent: " + e->Brief());
      if (e->Header("x-gotlscap-repeat") != (r.repeat ? RepeatValue() : ""))
        pr.Add(side + " " + e->kind + ": x-gotlscap-repeat is '" + e->Header("x-gotlscap-repeat").substr(0, 40) +
               "...', want the repeated value: " + e->Brief());
    }
    if (r.r.proto != "HTTP/2") continue;
    // The frames: CONTINUATION where the blocks exceed 16 KiB; with the repeated header alone,
    // the first block of each side holds its value (>= 188 bytes even Huffman-coded: 5 bits at
    // least per character) and every later block is smaller than that: an index reference.
    const auto client_conns = ConnsOf(evs, uint32_t(r.r.run.pid)), server_conns = ConnsOf(evs, uint32_t(srv.pid()));
    if (client_conns.size() != 1 || server_conns.size() != 1) {
      pr.Add(r.r.label + ": " + std::to_string(client_conns.size()) + " client and " +
             std::to_string(server_conns.size()) + " server connections, want 1 and 1");
      continue;
    }
    const WrittenH2 cw = WrittenFrames(o, uint32_t(r.r.run.pid), *client_conns.begin());
    const WrittenH2 sw = WrittenFrames(o, uint32_t(srv.pid()), *server_conns.begin());
    for (const auto* w : {&cw, &sw})
      if (!w->error.empty()) pr.Add(r.r.label + ": frames written: " + w->error);
    const size_t n = r.r.want.size();
    if (cw.headers != n || sw.headers != n)
      pr.Add(r.r.label + ": " + std::to_string(cw.headers) + " request and " + std::to_string(sw.headers) +
             " response HEADERS frames, want " + std::to_string(n));
    if (r.header_size) {
      if (sw.continuations < n)
        pr.Add(r.r.label + ": server wrote " + std::to_string(sw.continuations) + " CONTINUATION frames, want >= " +
               std::to_string(n));
      if (client_continuation && cw.continuations < n)
        pr.Add(r.r.label + ": client wrote " + std::to_string(cw.continuations) + " CONTINUATION frames, want >= " +
               std::to_string(n));
    } else {
      for (const auto* w : {&cw, &sw}) {
        const bool ok = w->header_blocks.size() == n && w->header_blocks[0] >= kRepeatLen * 5 / 8 &&
                        std::all_of(w->header_blocks.begin() + 1, w->header_blocks.end(),
                                    [](uint64_t b) { return b < kRepeatLen * 5 / 8; });
        if (!ok)
          pr.Add(r.r.label + ": " + (w == &cw ? "request" : "response") +
                 " header block sizes do not show the repeated header indexed: " +
                 ::testing::PrintToString(w->header_blocks));
      }
    }
  }
  EXPECT_EQ(pr.size(), 0u) << pr.str();
}

// ------------------------------------------------------------------------------------------
// 7. gRPC-style exchange: length-prefixed messages, trailers
// ------------------------------------------------------------------------------------------

// `client -mode grpc -h2`: POST /grpc, content-type application/grpc, body = 4 length-prefixed
// messages (3, 20000, 0 and 17 bytes: the large one spans DATA frames); the server answers each
// with "ok:" + message and ends with the trailers grpc-message and grpc-status. JSON: the message
// sizes in "grpc_messages", the trailers in "trailers" (not in "headers"); text (a second capture
// at the same time): one "[gRPC message i: N bytes]" line per message, trailers after the body.
TEST_P(HttpDecodeMatrixTest, GrpcStyleMessagesAndTrailers) {
  REQUIRE_CAPTURE_ENV();
  const auto start = Clock::now();
  Programs p;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &p));
  Gotlscap cap(p.dir, {"-e", p.server, "-e", p.client});
  Gotlscap text(p.dir, {"-e", p.server, "-e", p.client}, /*text_format=*/true);
  ASSERT_TRUE(cap.WaitReady());
  ASSERT_TRUE(text.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServer(p.server, &srv));
  const size_t kSize = 20000;
  const int kN = 4;
  std::vector<std::string> a = {p.client, "-url", srv.url(), "-mode", "grpc", "-h2", "-n", std::to_string(kN),
                                "-concurrency", "2", "-size", std::to_string(kSize), "-seed", "40", "-tls", "1.3"};
  ClientRun r{"grpc", RunToEnd(a), ExpectedGrpc(kN, kSize, 40), "HTTP/2"};
  ASSERT_EQ(r.run.exit_code, 0) << r.run.describe;
  srv.proc->Signal(SIGTERM);
  srv.proc->Wait(seconds(10));
  Output o = cap.Stop();
  Output t = text.Stop(/*parse=*/false);
  RecordSeconds("total_seconds", start);
  ExpectCleanOutput(o);
  EXPECT_THAT(UnexpectedNotices(o), ::testing::IsEmpty());
  CheckRuns(o, srv.pid(), srv, {r});  // bodies byte for byte, both sides
  EXPECT_EQ(o.http.size(), size_t(kN) * 2 * 2);
  std::vector<uint64_t> req_sizes = GrpcSizes(kSize), resp_sizes;
  for (uint64_t n : req_sizes) resp_sizes.push_back(n + 3);
  // In the order Go writes them (sorted by name).
  const std::vector<std::pair<std::string, std::string>> trailers = {
      {"grpc-message", std::to_string(req_sizes.size()) + " messages"}, {"grpc-status", "0"}};
  Problems pr(20);
  for (const auto& e : o.http) {
    const bool req = e.kind == "request";
    const std::string what = (e.pid == uint32_t(srv.pid()) ? "server " : "client ") + e.kind + ": ";
    if (e.grpc_messages != (req ? req_sizes : resp_sizes))
      pr.Add(what + "grpc_messages " + ::testing::PrintToString(e.grpc_messages) + ": " + e.Brief());
    if (e.Header("content-type") != "application/grpc") pr.Add(what + "content-type: " + e.line);
    if (req && e.Header("te") != "trailers") pr.Add(what + "te: " + e.line);
    if (e.trailers != (req ? decltype(trailers){} : trailers))
      pr.Add(what + "trailers " + ::testing::PrintToString(e.trailers));
    if (!e.Header("grpc-status").empty()) pr.Add(what + "grpc-status among the headers: " + e.line);
  }
  EXPECT_EQ(pr.size(), 0u) << pr.str();
  // Text: both sides show every message's boundaries and the trailers.
  EXPECT_EQ(t.exit_code, 0) << t.err;
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t pos = t.raw.find(needle); pos != std::string::npos; pos = t.raw.find(needle, pos + 1)) n++;
    return n;
  };
  const std::string head = t.raw.substr(0, 3000);
  EXPECT_EQ(count(", 4 gRPC messages]\n"), size_t(kN) * 4) << head;
  EXPECT_EQ(count("\n[gRPC message 2: 20000 bytes]\n"), size_t(kN) * 2) << head;
  EXPECT_EQ(count("\n[gRPC message 2: 20003 bytes]\n"), size_t(kN) * 2) << head;
  EXPECT_EQ(count("\n[gRPC message 4: 17 bytes]\n"), size_t(kN) * 2) << head;
  EXPECT_EQ(count("\n< grpc-message: 4 messages\n< grpc-status: 0\n\n"), size_t(kN) * 2) << head;
}

// ------------------------------------------------------------------------------------------
// 8. The Go client against a non-Go TLS server: openssl s_server -HTTP
// ------------------------------------------------------------------------------------------

// openssl s_server -HTTP serves files of its working directory as whole HTTP responses: a file
// per request path (`bytes?n=20000&seed=S`), each an HTTP/1.1 response with a 20000-byte body.
// Only the client is traced: its decoded requests and responses must be exactly what it sent and
// what the files hold. TLS 1.3 and 1.2 (openssl's own stack on the other end).
TEST(HttpDecodeE2E, GoClientAgainstOpensslServer) {
  REQUIRE_CAPTURE_ENV();
  GOTLSCAP_REQUIRE_MATRIX();
  CommandResult ver = RunCommand({"openssl", "version"});
  if (ver.exit_code != 0) GOTLSCAP_REQUIRE(SkipOrFail("openssl is not installed (scripts/install-deps.sh)"));
  Programs p;
  ASSERT_TRUE(CopyPrograms("", &p));
  TempDir www;
  CommandResult key = RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                  "-nodes", "-keyout", www.File("key.pem"), "-out", www.File("cert.pem"), "-subj",
                                  "/CN=localhost", "-days", "1"});
  ASSERT_EQ(key.exit_code, 0) << key.Describe();
  const size_t kSize = 20000;
  const int kN = 3;
  const uint32_t kSeeds[2] = {50, 60};  // TLS 1.3 run, TLS 1.2 run
  auto response_head = [&](size_t len) {
    return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(len) +
           "\r\nX-Served-By: openssl s_server\r\nConnection: close\r\n\r\n";
  };
  for (uint32_t s0 : kSeeds)
    for (int i = 0; i < kN; i++)
      WriteFileBytes(www.File("bytes?n=" + std::to_string(kSize) + "&seed=" + std::to_string(s0 + i)),
                     response_head(kSize) + PayloadBytes(kSize, s0 + i));
  Gotlscap cap(p.dir, {"-e", p.client});
  ASSERT_TRUE(cap.WaitReady());
  // env -C: s_server serves files relative to its working directory (env execs it: same pid).
  Proc ossl({"env", "-C", www.path(), "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", "cert.pem", "-key",
             "key.pem", "-HTTP"});
  auto line = ossl.WaitLine(1, "ACCEPT 127.0.0.1:", seconds(30));
  ASSERT_TRUE(line) << ossl.Describe();
  const std::string addr = line->substr(std::string("ACCEPT ").size());
  std::vector<ProcRun> runs;
  for (const char* tls : {"1.3", "1.2"}) {
    const uint32_t s0 = kSeeds[runs.size()];
    runs.push_back(RunToEnd({p.client, "-url", "https://" + addr, "-mode", "bytes", "-n", std::to_string(kN), "-size",
                             std::to_string(kSize), "-seed", std::to_string(s0), "-tls", tls}));
    EXPECT_EQ(runs.back().exit_code, 0) << runs.back().describe;
  }
  ossl.Signal(SIGTERM);
  ossl.Wait(seconds(10));
  Output o = cap.Stop();
  ExpectCleanOutput(o);
  EXPECT_THAT(UnexpectedNotices(o), ::testing::IsEmpty());
  Problems pr(20);
  const std::vector<std::pair<std::string, std::string>> want_resp_headers = {
      {"Content-Type", "application/octet-stream"},
      {"Content-Length", std::to_string(kSize)},
      {"X-Served-By", "openssl s_server"},
      {"Connection", "close"}};
  size_t nreq = 0, nresp = 0;
  for (size_t k = 0; k < runs.size(); k++) {
    std::set<std::string> seen_req, seen_resp;
    for (const auto& e : o.http) {
      if (e.pid != uint32_t(runs[k].pid)) continue;
      if (e.proto != "HTTP/1.1" || e.remote != addr || e.comm != "client") pr.Add("odd event: " + e.Brief());
      const std::string& path = e.kind == "request" ? e.path : e.req_path;
      const size_t at = path.find("&seed=");
      const auto seed = at == std::string::npos ? std::nullopt : ParseU64(path.substr(at + 6), 10);
      if (path.rfind("/bytes?n=" + std::to_string(kSize) + "&seed=", 0) != 0 || !seed || *seed < kSeeds[k] ||
          *seed >= kSeeds[k] + kN) {
        pr.Add("unexpected path: " + e.Brief());
        continue;
      }
      if (e.kind == "request") {
        nreq++;
        if (!seen_req.insert(path).second) pr.Add("request twice: " + e.Brief());
        if (e.method != "GET" || e.authority != addr || !e.body.empty() || e.Header("Host") != addr ||
            e.Header("User-Agent") != "Go-http-client/1.1")
          pr.Add("request: " + e.line);
      } else {
        nresp++;
        if (!seen_resp.insert(path).second) pr.Add("response twice: " + e.Brief());
        if (e.status != 200 || e.req_method != "GET" || e.headers != want_resp_headers ||
            e.body != PayloadBytes(kSize, uint32_t(*seed)) || e.body_wire_len != kSize || e.body_decoded)
          pr.Add("response: " + e.line);
      }
    }
  }
  EXPECT_EQ(nreq, runs.size() * kN);
  EXPECT_EQ(nresp, runs.size() * kN);
  EXPECT_EQ(o.http.size(), runs.size() * kN * 2);
  EXPECT_EQ(pr.size(), 0u) << pr.str();
}

}  // namespace
}  // namespace gotlscap::testenv
