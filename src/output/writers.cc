// Text and JSON Lines writers. Every event is formatted straight into one buffer that lives as
// long as the writer (no allocation per event once it has grown), and that buffer goes to the
// file descriptor with write(2) when it passes 1 MiB or at Flush() (between ring-buffer polls,
// every 10 ms at most): one copy of each byte between the event and the kernel, few syscalls.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <tuple>

#include <fmt/compile.h>

#include "output/encoding.h"
#include "output/event_writer.h"
#include "common/recent_set.h"

namespace gotlscap::output {
namespace {

class BufferedWriter : public EventWriter {
 public:
  explicit BufferedWriter(FILE* out) : fd_(fileno(out)) {
    fflush(out);  // whatever stdio holds goes first
    b_.reserve(kWorkingSize);  // grown once
  }
  // Sink mode: each finished event goes to `sink` whole, nothing to a file.
  explicit BufferedWriter(LineSink* sink) : fd_(-1), sink_(sink) { b_.reserve(kWorkingSize); }
  bool Flush() override {
    if (!sink_) WriteOut();
    return !failed_;
  }
  // The same secret reaches us from writeKeyLog and keysFromMasterSecret: show it once per process.
  bool FirstTime(const capture::SecretEvent& s) { return seen_.insert({s.pid, s.label, s.client_random}); }

 protected:
  // Called after each event (and each base64 slice): large output goes out without waiting for
  // the next poll, so the buffer stays near 1 MiB (plus one slice, or one text event).
  void EventDone() {
    if (!sink_ && b_.size() >= kWriteAt) WriteOut();
  }
  // The end of one JSON event: a sink gets the line now (a file waits for EventDone's 1 MiB).
  void LineDone(EventType type) {
    if (!sink_) return EventDone();
    sink_->Line(type, std::string_view(b_.data(), b_.size()));
    Reset();
  }
  // A payload in base64, a slice at a time, written out whenever the buffer passes kWriteAt: a
  // 1 MB body never needs a 1.4 MB buffer (nor a 32 MiB call a 43 MiB one). Slices are a multiple
  // of 3 bytes, so their encodings join into the encoding of the whole.
  void Base64(std::string_view bytes) {
    while (bytes.size() > kBase64Slice) {
      AppendBase64(b_, bytes.substr(0, kBase64Slice));
      bytes.remove_prefix(kBase64Slice);
      EventDone();
    }
    AppendBase64(b_, bytes);
  }
  void WriteOut() {
    size_t off = 0;
    while (!failed_ && off < b_.size()) {
      const ssize_t n = write(fd_, b_.data() + off, b_.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed_ = true;  // errno tells why (ENOSPC, EPIPE); the caller reports it
        break;
      }
      off += size_t(n);
    }
    Reset();
  }
  void Reset() {
    b_.clear();  // keeps its capacity, but not that of a rare huge event (a text dump of 32 MiB)
    if (b_.capacity() > (8u << 20)) {
      b_ = fmt::memory_buffer();
      b_.reserve(kWorkingSize);
    }
  }
  static constexpr size_t kWriteAt = 1u << 20;
  static constexpr size_t kBase64Slice = 3u << 16;  // 192 KiB in, 256 KiB out
  static constexpr size_t kWorkingSize = kWriteAt + kBase64Slice / 3 * 4 + 4096;  // + one event's JSON fields
  fmt::memory_buffer b_;
  int fd_;
  LineSink* sink_ = nullptr;
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
  fmt::format_to(it, FMT_COMPILE("[body: {} bytes{}{}{}{}]\n"), m.body.size(),
                 m.body_decoded ? fmt::format(", {} decoded from {} bytes", m.content_encoding, m.body_wire_len) : "",
                 m.body_truncated ? ", truncated" : "",
                 m.grpc_messages.empty() ? "" : fmt::format(", {} gRPC messages", m.grpc_messages.size()), "");
  // gRPC message boundaries: one line per message, the first kGrpcShown of them.
  constexpr size_t kGrpcShown = 64;
  for (size_t i = 0; i < m.grpc_messages.size() && i < kGrpcShown; i++)
    fmt::format_to(it, FMT_COMPILE("[gRPC message {}: {} bytes]\n"), i + 1, m.grpc_messages[i]);
  if (m.grpc_messages.size() > kGrpcShown)
    fmt::format_to(it, FMT_COMPILE("[... {} more gRPC messages]\n"), m.grpc_messages.size() - kGrpcShown);
  constexpr size_t kShown = 4096;
  const std::string_view shown = std::string_view(m.body).substr(0, kShown);
  if (printable == m.body.size()) {
    AppendEscaped(b, shown);
    if (!shown.empty() && shown.back() != '\n') b.push_back('\n');
  } else {
    AppendHexDump(b, shown.substr(0, 256));
  }
  if (m.body.size() > shown.size()) fmt::format_to(it, FMT_COMPILE("[... {} more bytes]\n"), m.body.size() - shown.size());
}

// " container=<first 12 hex digits>" when the process is in a container (text headers stay short;
// JSON carries the whole id, the runtime, the pod and the cgroup path).
void AppendContainerTag(fmt::memory_buffer& b, const std::shared_ptr<const CgroupInfo>& cg) {
  if (!cg || !cg->container) return;
  b.append(std::string_view(" container="));
  b.append(std::string_view(cg->container->id).substr(0, 12));
}

class TextWriter : public BufferedWriter {
 public:
  TextWriter(FILE* out, bool hex) : BufferedWriter(out), hex_(hex) {}
  void Write(const capture::DataEvent& ev) override {
    auto& b = b_;
    auto it = std::back_inserter(b);
    AppendTimestamp(b, ev.ts_ns);
    AppendContainerTag(b, ev.conn.cgroup);
    if (ev.closed()) {
      // One line: "... conn 3 fd 7 127.0.0.1:443 -- 127.0.0.1:50000 close" (or "eof": the peer
      // closed and a Read returned io.EOF).
      fmt::format_to(it, FMT_COMPILE(" pid {} ({}) tid {} conn {} fd {} {} -- {} {}\n\n"), ev.pid, ev.comm, ev.tid, ev.conn.id,
                     ev.conn.fd, ev.conn.local.empty() ? "?" : ev.conn.local,
                     ev.conn.remote.empty() ? "?" : ev.conn.remote, capture::ConnEndName(ev.end));
      EventDone();
      return;
    }
    const bool w = ev.dir == capture::Direction::kWrite;
    fmt::format_to(it, FMT_COMPILE(" pid {} ({}) tid {} conn {} fd {} {} {} {} {} {} bytes"), ev.pid, ev.comm, ev.tid, ev.conn.id,
                   ev.conn.fd, ev.conn.local.empty() ? "?" : ev.conn.local, w ? "->" : "<-",
                   ev.conn.remote.empty() ? "?" : ev.conn.remote, capture::DirectionName(ev.dir), ev.len);
    if (ev.truncated) fmt::format_to(it, FMT_COMPILE(" (truncated: first {} captured)"), ev.payload.size());
    if (ev.missing) fmt::format_to(it, FMT_COMPILE(" ({} bytes lost)"), ev.missing);
    b.push_back('\n');
    if (hex_) {
      AppendHexDump(b, ev.payload);
    } else {
      AppendEscaped(b, ev.payload);
      if (ev.payload.empty() || ev.payload.back() != '\n') b.push_back('\n');
    }
    b.push_back('\n');
    EventDone();
  }

  // Like `curl -v`: "> " for a request's lines, "< " for a response's, then the body.
  void WriteHttp(const decode::DecodedMessage& d) override {
    const auto& m = d.msg;
    const bool req = m.kind == decode::HttpMessage::Kind::kRequest;
    auto& b = b_;
    auto it = std::back_inserter(b);
    AppendTimestamp(b, m.ts_ns);
    AppendContainerTag(b, d.conn.cgroup);
    fmt::format_to(it, FMT_COMPILE(" pid {} ({}) conn {} {} -> {} {} {}"), d.pid, d.comm, d.conn.id,
                   d.conn.local.empty() ? "?" : d.conn.local, d.conn.remote.empty() ? "?" : d.conn.remote, m.proto,
                   req ? "request" : "response");
    if (m.stream) fmt::format_to(it, FMT_COMPILE(" stream {}"), m.stream);
    if (!req && !m.request_method.empty()) fmt::format_to(it, FMT_COMPILE(" (to {} {})"), m.request_method, m.request_path);
    if (auto latency = decode::LatencyNs(m)) {
      fmt::format_to(it, FMT_COMPILE(" latency {:.3f} ms"), static_cast<double>(*latency) / 1e6);
      if (auto wait = decode::WaitNs(m)) fmt::format_to(it, FMT_COMPILE(" wait {:.3f} ms"), static_cast<double>(*wait) / 1e6);
    }
    b.push_back('\n');
    const char* mark = req ? "> " : "< ";
    if (m.proto != "HTTP/2") {
      if (req)
        fmt::format_to(it, FMT_COMPILE("{}{} {} {}\n"), mark, m.method, m.path, m.proto);
      else
        fmt::format_to(it, FMT_COMPILE("{}{} {}\n"), mark, m.proto, m.status);
    }
    for (const auto& [k, v] : m.headers) fmt::format_to(it, FMT_COMPILE("{}{}: {}\n"), mark, k, v);
    b.append(std::string_view(mark));
    b.push_back('\n');
    AppendBody(b, m);
    // Trailers after the body, as they were sent.
    for (const auto& [k, v] : m.trailers) fmt::format_to(it, FMT_COMPILE("{}{}: {}\n"), mark, k, v);
    b.push_back('\n');
    EventDone();
  }

  void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                   std::string_view notice) override {
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE("pid {} ({}) conn {} decode: {}\n\n"), pid, comm, conn.id, notice);
    EventDone();
  }

  void WriteSecret(const capture::SecretEvent& s) override {
    if (!FirstTime(s)) return;
    AppendTimestamp(b_, s.ts_ns);
    AppendContainerTag(b_, s.cgroup);
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE(" pid {} ({}) tid {} secret {}\n\n"), s.pid, s.comm, s.tid,
                   capture::KeyLogLine(s));
    EventDone();
  }

 private:
  bool hex_;
};

// JSON Lines assembled by hand (no DOM per event): strings through AppendJsonString, payloads
// base64-encoded once, straight into the output buffer.
class JsonWriter : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void Write(const capture::DataEvent& ev) override {
    auto it = std::back_inserter(b_);
    if (ev.closed()) {
      // {"type":"close","reason":"close"|"eof",...}: the connection's last event.
      fmt::format_to(it, FMT_COMPILE(R"({{"type":"close","ts_ns":{},"pid":{},"tid":{},"uid":{},"comm":)"), ev.ts_ns, ev.pid,
                     ev.tid, ev.uid);
      AppendJsonString(b_, ev.comm);
      fmt::format_to(it, FMT_COMPILE(R"(,"reason":"{}",)"), capture::ConnEndName(ev.end));
      Conn(ev.conn);
      Cgroup(ev.conn.cgroup);
      Append("}\n");
      LineDone(EventType::kClose);
      return;
    }
    fmt::format_to(it, FMT_COMPILE(R"({{"type":"data","ts_ns":{},"pid":{},"tid":{},"uid":{},"comm":)"), ev.ts_ns, ev.pid, ev.tid,
                   ev.uid);
    AppendJsonString(b_, ev.comm);
    fmt::format_to(it, FMT_COMPILE(R"(,"dir":"{}","len":{},"truncated":{},"captured":{},"missing":{},)"),
                   capture::DirectionName(ev.dir), ev.len, ev.truncated ? "true" : "false", ev.payload.size(),
                   ev.missing);
    Conn(ev.conn);
    Cgroup(ev.conn.cgroup);
    Append(R"(,"payload_b64":")");
    Base64(ev.payload);
    Append("\"}\n");
    LineDone(EventType::kData);
  }

  void WriteHttp(const decode::DecodedMessage& d) override {
    const auto& m = d.msg;
    const bool req = m.kind == decode::HttpMessage::Kind::kRequest;
    auto it = std::back_inserter(b_);
    fmt::format_to(it, FMT_COMPILE(R"({{"type":"http","ts_ns":{},"pid":{},"comm":)"), m.ts_ns, d.pid);
    AppendJsonString(b_, d.comm);
    Append(R"(,"proto":)");
    AppendJsonString(b_, m.proto);
    fmt::format_to(it, FMT_COMPILE(R"(,"kind":"{}",)"), req ? "request" : "response");
    Conn(d.conn);
    Cgroup(d.conn.cgroup);
    if (m.stream) fmt::format_to(it, FMT_COMPILE(R"(,"stream":{})"), m.stream);
    if (req) {
      Field("method", m.method);
      Field("path", m.path);
      Field("authority", m.authority);
    } else {
      fmt::format_to(it, FMT_COMPILE(R"(,"status":{},"request":{{"method":)"), m.status);
      AppendJsonString(b_, m.request_method);
      Append(R"(,"path":)");
      AppendJsonString(b_, m.request_path);
      if (!m.request_authority.empty()) Field("authority", m.request_authority);
      if (m.request_first_ts_ns) fmt::format_to(it, FMT_COMPILE(R"(,"body_wire_len":{})"), m.request_body_len);
      Append("}");
      if (auto latency = decode::LatencyNs(m)) fmt::format_to(it, FMT_COMPILE(R"(,"latency_ns":{})"), *latency);
      if (auto wait = decode::WaitNs(m)) fmt::format_to(it, FMT_COMPILE(R"(,"wait_ns":{})"), *wait);
    }
    Pairs("headers", m.headers);
    if (!m.trailers.empty()) Pairs("trailers", m.trailers);
    fmt::format_to(it, FMT_COMPILE(R"(,"body_len":{},"body_wire_len":{})"), m.body.size(), m.body_wire_len);
    if (!m.content_encoding.empty()) Field("content_encoding", m.content_encoding);
    fmt::format_to(it, FMT_COMPILE(R"(,"body_decoded":{},"body_truncated":{})"), m.body_decoded, m.body_truncated);
    if (m.body_uncaptured) fmt::format_to(it, FMT_COMPILE(R"(,"body_uncaptured":{})"), m.body_uncaptured);
    if (!m.grpc_messages.empty()) fmt::format_to(it, R"(,"grpc_messages":[{}])", fmt::join(m.grpc_messages, ","));
    Append(R"(,"body_b64":")");
    Base64(m.body);
    Append("\"}\n");
    LineDone(EventType::kHttp);
  }

  void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                   std::string_view notice) override {
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE(R"({{"type":"notice","pid":{},"comm":)"), pid);
    AppendJsonString(b_, comm);
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE(R"(,"conn":{{"id":{}}})"), conn.id);
    Cgroup(conn.cgroup);
    Field("notice", notice);
    Append("}\n");
    LineDone(EventType::kNotice);
  }

  void WriteSecret(const capture::SecretEvent& s) override {
    if (!FirstTime(s)) return;
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE(R"({{"type":"secret","ts_ns":{},"pid":{},"tid":{},"comm":)"), s.ts_ns,
                   s.pid, s.tid);
    AppendJsonString(b_, s.comm);
    Field("label", s.label);
    Field("client_random", capture::Hex(s.client_random));
    Field("secret", capture::Hex(s.secret));
    Field("source", s.from_master_secret ? "master_secret" : "keylog");
    Cgroup(s.cgroup);
    Append("}\n");
    LineDone(EventType::kSecret);
  }

 private:
  void Append(std::string_view s) { b_.append(s); }
  // ,"name":"value"
  void Field(std::string_view name, std::string_view value) {
    b_.push_back(',');
    AppendJsonString(b_, name);
    b_.push_back(':');
    AppendJsonString(b_, value);
  }
  // "conn":{"id":..,"fd":..,"local":"..","remote":".."}
  void Conn(const capture::Connection& c) {
    fmt::format_to(std::back_inserter(b_), FMT_COMPILE(R"("conn":{{"id":{},"fd":{},"local":)"), c.id, c.fd);
    AppendJsonString(b_, c.local);
    Append(R"(,"remote":)");
    AppendJsonString(b_, c.remote);
    b_.push_back('}');
  }
  // ,"cgroup":"/path","container":{"id":"<64 hex>","runtime":"docker","pod_uid":"…"}: nothing when
  // the cgroup is unknown, no container when the path names none, runtime and pod_uid when known.
  void Cgroup(const std::shared_ptr<const CgroupInfo>& cg) {
    if (!cg) return;
    Field("cgroup", cg->path);
    if (!cg->container) return;
    Append(R"(,"container":{"id":)");
    AppendJsonString(b_, cg->container->id);
    if (!cg->container->runtime.empty()) Field("runtime", cg->container->runtime);
    if (!cg->container->pod_uid.empty()) Field("pod_uid", cg->container->pod_uid);
    b_.push_back('}');
  }
  // ,"name":[["k","v"],...]
  void Pairs(std::string_view name, const std::vector<std::pair<std::string, std::string>>& kv) {
    b_.push_back(',');
    AppendJsonString(b_, name);
    Append(":[");
    for (size_t i = 0; i < kv.size(); i++) {
      Append(i ? ",[" : "[");
      AppendJsonString(b_, kv[i].first);
      b_.push_back(',');
      AppendJsonString(b_, kv[i].second);
      b_.push_back(']');
    }
    b_.push_back(']');
  }
};

}  // namespace

std::unique_ptr<EventWriter> MakeTextWriter(FILE* out, bool hex) { return std::make_unique<TextWriter>(out, hex); }
std::unique_ptr<EventWriter> MakeJsonWriter(FILE* out) { return std::make_unique<JsonWriter>(out); }
std::unique_ptr<EventWriter> MakeJsonWriter(LineSink* sink) { return std::make_unique<JsonWriter>(sink); }

std::string_view EventTypeName(EventType t) {
  switch (t) {
    case EventType::kData: return "data";
    case EventType::kHttp: return "http";
    case EventType::kSecret: return "secret";
    case EventType::kClose: return "close";
    case EventType::kNotice: return "notice";
  }
  return "unknown";
}

namespace {
class TeeWriter : public EventWriter {
 public:
  explicit TeeWriter(std::vector<EventWriter*> w) : w_(std::move(w)) {}
  void Write(const capture::DataEvent& ev) override {
    for (auto* w : w_) w->Write(ev);
  }
  void WriteSecret(const capture::SecretEvent& s) override {
    for (auto* w : w_) w->WriteSecret(s);
  }
  void WriteHttp(const decode::DecodedMessage& m) override {
    for (auto* w : w_) w->WriteHttp(m);
  }
  void WriteNotice(uint32_t pid, const std::string& comm, const capture::Connection& conn,
                   std::string_view notice) override {
    for (auto* w : w_) w->WriteNotice(pid, comm, conn, notice);
  }
  bool Flush() override {
    bool ok = true;
    for (auto* w : w_) ok = w->Flush() && ok;
    return ok;
  }

 private:
  std::vector<EventWriter*> w_;
};
}  // namespace

std::unique_ptr<EventWriter> MakeTeeWriter(std::vector<EventWriter*> writers) {
  return std::make_unique<TeeWriter>(std::move(writers));
}

}  // namespace gotlscap::output
