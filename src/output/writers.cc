// Text and JSON Lines writers. Each event is formatted into one memory buffer and handed to
// stdio in one fwrite; the FILE has a large buffer, flushed between ring-buffer polls.
#include <cerrno>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "output/encoding.h"
#include "output/event_writer.h"

namespace gotlscap::output {
namespace {

class BufferedWriter : public EventWriter {
 public:
  explicit BufferedWriter(FILE* out) : out_(out) {}
  bool Flush() override { return !failed_ && fflush(out_) == 0 && !ferror(out_); }
  // The same secret reaches us from writeKeyLog and keysFromMasterSecret: show it once per process.
  bool FirstTime(const capture::SecretEvent& s) { return seen_.emplace(s.pid, s.label, s.client_random).second; }

 protected:
  void Put(const fmt::memory_buffer& b) {
    if (fwrite(b.data(), 1, b.size(), out_) != b.size()) failed_ = true;
  }
  FILE* out_;
  bool failed_ = false;
  std::set<std::tuple<uint32_t, std::string, std::string>> seen_;
};

class TextWriter : public BufferedWriter {
 public:
  TextWriter(FILE* out, bool hex) : BufferedWriter(out), hex_(hex) {}
  void Write(const capture::DataEvent& ev) override {
    fmt::memory_buffer b;
    auto it = std::back_inserter(b);
    AppendTimestamp(b, ev.ts_ns);
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
