// Text and JSON Lines writers. Each event is formatted into one memory buffer and handed to
// stdio in one fwrite; the FILE has a large buffer, flushed between ring-buffer polls.
#include <algorithm>
#include <cerrno>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "output/encoding.h"
#include "output/event_writer.h"
#include "common/recent_set.h"

namespace gotlscap::output {
namespace {

class BufferedWriter : public EventWriter {
 public:
  explicit BufferedWriter(FILE* out) : out_(out) {}
  bool Flush() override { return !failed_ && fflush(out_) == 0 && !ferror(out_); }
  // The same secret reaches us from writeKeyLog and keysFromMasterSecret: show it once per process.
  bool FirstTime(const capture::SecretEvent& s) { return seen_.insert({s.pid, s.label, s.client_random}); }

 protected:
  void Put(const fmt::memory_buffer& b) {
    if (fwrite(b.data(), 1, b.size(), out_) != b.size()) failed_ = true;
  }
  FILE* out_;
  bool failed_ = false;
  RecentSet<std::tuple<uint32_t, std::string, std::string>> seen_{4096};  // duplicates come close together
};

// A body as text when it is text, else a hex dump of its start: binary bodies never garble the
// terminal, and a multi-megabyte body does not flood it.
void AppendBody(fmt::memory_buffer& b, const decode::HttpMessage& m) {
  auto it = std::back_inserter(b);
  if (m.body.empty() && m.body_wire_len == 0) return;
  const size_t printable = std::count_if(m.body.begin(), m.body.end(), [](unsigned char c) {
    return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t' || c >= 0x80;
  });
  fmt::format_to(it, "[body: {} bytes{}{}{}{}]\n", m.body.size(),
                 m.body_decoded ? fmt::format(", {} decoded from {} bytes", m.content_encoding, m.body_wire_len) : "",
                 m.body_truncated ? ", truncated" : "",
                 m.grpc_messages.empty() ? "" : fmt::format(", {} gRPC messages", m.grpc_messages.size()), "");
  // gRPC message boundaries: one line per message, the first kGrpcShown of them.
  constexpr size_t kGrpcShown = 64;
  for (size_t i = 0; i < m.grpc_messages.size() && i < kGrpcShown; i++)
    fmt::format_to(it, "[gRPC message {}: {} bytes]\n", i + 1, m.grpc_messages[i]);
  if (m.grpc_messages.size() > kGrpcShown)
    fmt::format_to(it, "[... {} more gRPC messages]\n", m.grpc_messages.size() - kGrpcShown);
  constexpr size_t kShown = 4096;
  const std::string_view shown = std::string_view(m.body).substr(0, kShown);
  if (printable == m.body.size()) {
    AppendEscaped(b, shown);
    if (!shown.empty() && shown.back() != '\n') b.push_back('\n');
  } else {
    AppendHexDump(b, shown.substr(0, 256));
  }
  if (m.body.size() > shown.size()) fmt::format_to(it, "[... {} more bytes]\n", m.body.size() - shown.size());
}

class TextWriter : public BufferedWriter {
 public:
  TextWriter(FILE* out, bool hex) : BufferedWriter(out), hex_(hex) {}
  void Write(const capture::DataEvent& ev) override {
    fmt::memory_buffer b;
    auto it = std::back_inserter(b);
    AppendTimestamp(b, ev.ts_ns);
    if (ev.closed()) {
      // One line: "... conn 3 fd 7 127.0.0.1:443 -- 127.0.0.1:50000 close" (or "eof": the peer
      // closed and a Read returned io.EOF).
      fmt::format_to(it, " pid {} ({}) tid {} conn {} fd {} {} -- {} {}\n\n", ev.pid, ev.comm, ev.tid, ev.conn.id,
                     ev.conn.fd, ev.conn.local.empty() ? "?" : ev.conn.local,
                     ev.conn.remote.empty() ? "?" : ev.conn.remote, capture::ConnEndName(ev.end));
      Put(b);
      return;
    }
    const bool w = ev.dir == capture::Direction::kWrite;
    fmt::format_to(it, " pid {} ({}) tid {} conn {} fd {} {} {} {} {} {} bytes", ev.pid, ev.comm, ev.tid, ev.conn.id,
                   ev.conn.fd, ev.conn.local.empty() ? "?" : ev.conn.local, w ? "->" : "<-",
                   ev.conn.remote.empty() ? "?" : ev.conn.remote, capture::DirectionName(ev.dir), ev.len);
    if (ev.truncated) fmt::format_to(it, " (truncated: first {} captured)", ev.payload.size());
    if (ev.missing) fmt::format_to(it, " ({} bytes lost)", ev.missing);
    b.push_back('\n');
    if (hex_) {
      AppendHexDump(b, ev.payload);
    } else {
      AppendEscaped(b, ev.payload);
      if (ev.payload.empty() || ev.payload.back() != '\n') b.push_back('\n');
    }
    b.push_back('\n');
    Put(b);
  }

  // Like `curl -v`: "> " for a request's lines, "< " for a response's, then the body.
  void WriteHttp(const decode::DecodedMessage& d) override {
    const auto& m = d.msg;
    const bool req = m.kind == decode::HttpMessage::Kind::kRequest;
    fmt::memory_buffer b;
    auto it = std::back_inserter(b);
    AppendTimestamp(b, m.ts_ns);
    fmt::format_to(it, " pid {} ({}) conn {} {} -> {} {} {}", d.pid, d.comm, d.conn.id,
                   d.conn.local.empty() ? "?" : d.conn.local, d.conn.remote.empty() ? "?" : d.conn.remote, m.proto,
                   req ? "request" : "response");
    if (m.stream) fmt::format_to(it, " stream {}", m.stream);
    if (!req && !m.request_method.empty()) fmt::format_to(it, " (to {} {})", m.request_method, m.request_path);
    b.push_back('\n');
    const char* mark = req ? "> " : "< ";
    if (m.proto != "HTTP/2") {
      if (req)
        fmt::format_to(it, "{}{} {} {}\n", mark, m.method, m.path, m.proto);
      else
        fmt::format_to(it, "{}{} {}\n", mark, m.proto, m.status);
    }
    for (const auto& [k, v] : m.headers) fmt::format_to(it, "{}{}: {}\n", mark, k, v);
    b.append(std::string_view(mark));
    b.push_back('\n');
    AppendBody(b, m);
    // Trailers after the body, as they were sent.
    for (const auto& [k, v] : m.trailers) fmt::format_to(it, "{}{}: {}\n", mark, k, v);
    b.push_back('\n');
    Put(b);
  }

  void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                   std::string_view notice) override {
    fmt::memory_buffer b;
    fmt::format_to(std::back_inserter(b), "pid {} ({}) conn {} decode: {}\n\n", pid, comm, conn.id, notice);
    Put(b);
  }

  void WriteSecret(const capture::SecretEvent& s) override {
    if (!FirstTime(s)) return;
    fmt::memory_buffer b;
    AppendTimestamp(b, s.ts_ns);
    fmt::format_to(std::back_inserter(b), " pid {} ({}) tid {} secret {}\n\n", s.pid, s.comm, s.tid,
                   capture::KeyLogLine(s));
    Put(b);
  }

 private:
  bool hex_;
};

class JsonWriter : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void Write(const capture::DataEvent& ev) override {
    // Hand-assembled around the payload so a 4 MiB body is base64-encoded once, in place.
    fmt::memory_buffer b;
    auto it = std::back_inserter(b);
    nlohmann::json comm = ev.comm, local = ev.conn.local, remote = ev.conn.remote;
    if (ev.closed()) {
      // {"type":"close","reason":"close"|"eof",...}: the connection's last event.
      fmt::format_to(it,
                     R"({{"type":"close","ts_ns":{},"pid":{},"tid":{},"uid":{},"comm":{},"reason":"{}",)"
                     R"("conn":{{"id":{},"fd":{},"local":{},"remote":{}}}}})"
                     "\n",
                     ev.ts_ns, ev.pid, ev.tid, ev.uid,
                     comm.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                     capture::ConnEndName(ev.end), ev.conn.id, ev.conn.fd, local.dump(), remote.dump());
      Put(b);
      return;
    }
    fmt::format_to(it,
                   R"({{"type":"data","ts_ns":{},"pid":{},"tid":{},"uid":{},"comm":{},"dir":"{}","len":{},)"
                   R"("truncated":{},"captured":{},"missing":{},"conn":{{"id":{},"fd":{},"local":{},"remote":{}}},"payload_b64":")",
                   ev.ts_ns, ev.pid, ev.tid, ev.uid, comm.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                   capture::DirectionName(ev.dir), ev.len, ev.truncated ? "true" : "false", ev.payload.size(),
                   ev.missing, ev.conn.id, ev.conn.fd, local.dump(), remote.dump());
    AppendBase64(b, ev.payload);
    b.append(std::string_view("\"}\n"));
    Put(b);
  }

  void WriteHttp(const decode::DecodedMessage& d) override {
    const auto& m = d.msg;
    const bool req = m.kind == decode::HttpMessage::Kind::kRequest;
    nlohmann::ordered_json headers = nlohmann::ordered_json::array();
    for (const auto& [k, v] : m.headers) headers.push_back({k, v});
    nlohmann::ordered_json j = {{"type", "http"}, {"ts_ns", m.ts_ns}, {"pid", d.pid}, {"comm", d.comm},
                                {"proto", m.proto}, {"kind", req ? "request" : "response"},
                                {"conn", {{"id", d.conn.id}, {"fd", d.conn.fd}, {"local", d.conn.local}, {"remote", d.conn.remote}}}};
    if (m.stream) j["stream"] = m.stream;
    if (req) {
      j["method"] = m.method;
      j["path"] = m.path;
      j["authority"] = m.authority;
    } else {
      j["status"] = m.status;
      j["request"] = {{"method", m.request_method}, {"path", m.request_path}};
    }
    j["headers"] = headers;
    if (!m.trailers.empty()) {
      nlohmann::ordered_json trailers = nlohmann::ordered_json::array();
      for (const auto& [k, v] : m.trailers) trailers.push_back({k, v});
      j["trailers"] = trailers;
    }
    j["body_len"] = m.body.size();
    j["body_wire_len"] = m.body_wire_len;
    if (!m.content_encoding.empty()) j["content_encoding"] = m.content_encoding;
    j["body_decoded"] = m.body_decoded;
    j["body_truncated"] = m.body_truncated;
    if (!m.grpc_messages.empty()) j["grpc_messages"] = m.grpc_messages;
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line.pop_back();  // reopen the object to append the body without a second copy
    fmt::memory_buffer b;
    b.append(line);
    b.append(std::string_view(",\"body_b64\":\""));
    AppendBase64(b, m.body);
    b.append(std::string_view("\"}\n"));
    Put(b);
  }

  void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                   std::string_view notice) override {
    nlohmann::ordered_json j = {{"type", "notice"}, {"pid", pid}, {"comm", comm}, {"conn", {{"id", conn.id}}},
                                {"notice", notice}};
    fmt::memory_buffer b;
    b.append(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    b.push_back('\n');
    Put(b);
  }

  void WriteSecret(const capture::SecretEvent& s) override {
    if (!FirstTime(s)) return;
    nlohmann::ordered_json j = {{"type", "secret"},
                                {"ts_ns", s.ts_ns},
                                {"pid", s.pid},
                                {"tid", s.tid},
                                {"comm", s.comm},
                                {"label", s.label},
                                {"client_random", capture::Hex(s.client_random)},
                                {"secret", capture::Hex(s.secret)},
                                {"source", s.from_master_secret ? "master_secret" : "keylog"}};
    fmt::memory_buffer b;
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    b.append(line);
    b.push_back('\n');
    Put(b);
  }
};

}  // namespace

std::unique_ptr<EventWriter> MakeTextWriter(FILE* out, bool hex) { return std::make_unique<TextWriter>(out, hex); }
std::unique_ptr<EventWriter> MakeJsonWriter(FILE* out) { return std::make_unique<JsonWriter>(out); }

}  // namespace gotlscap::output
