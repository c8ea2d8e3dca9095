// libFuzzer target: every JSON gotlscap prints is valid JSON Lines for any input bytes.
//  - an ELF image: the whole `inspect --json` path (AnalyzeGoBinary, InspectReport, JsonLine);
//  - any input, cut at NUL bytes into strings: those strings as keys and values of a DOM through
//    JsonLine (`ps --json`), and as the names, addresses, HTTP fields, notices and secrets of
//    events through the JSON Lines event writer (`text --format json`).
// Every line must parse with nlohmann's parser, which rejects invalid UTF-8, and be one line;
// payloads and bodies must come back byte for byte from their base64. Otherwise: trap.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "elf/elf_file.h"
#include "gobin/go_binary.h"
#include "output/encoding.h"
#include "output/event_writer.h"
#include "output/json_report.h"

namespace {

using gotlscap::output::JsonLine;

nlohmann::json ParseLine(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) __builtin_trap();
  return j;
}

void CheckOneLine(const std::string& s) {
  if (s.empty() || s.back() != '\n' || s.find('\n') != s.size() - 1) __builtin_trap();
  ParseLine(std::string_view(s).substr(0, s.size() - 1));
}

std::string Base64Decode(std::string_view in) {
  std::string out;
  if (!gotlscap::output::DecodeBase64(in, &out)) __builtin_trap();
  return out;
}

void CheckInspect(const uint8_t* data, size_t size) {
  auto file = gotlscap::elf::ElfFile::FromBytes(std::string(reinterpret_cast<const char*>(data), size));
  if (!file.ok()) return;
  auto bin = gotlscap::gobin::AnalyzeGoBinary(**file, "fuzz");
  if (bin.ok()) CheckOneLine(JsonLine(gotlscap::output::InspectReport(*bin)));
}

void CheckEvents(std::string_view input, const std::vector<std::string>& f) {
  // Report DOM with hostile keys and values (ps --json builds one per process).
  nlohmann::ordered_json j;
  for (size_t i = 0; i + 1 < f.size(); i += 2) j[f[i]] = f[i + 1];
  j["list"] = f;
  CheckOneLine(JsonLine(j));

  auto at = [&](size_t i) -> const std::string& { return f[i % f.size()]; };
  const int fd = memfd_create("fuzz_json_output", 0);
  if (fd < 0) return;
  FILE* out = fdopen(fd, "w+");
  if (!out) {
    close(fd);
    return;
  }
  {
    auto w = gotlscap::output::MakeJsonWriter(out);
    gotlscap::capture::DataEvent ev;
    ev.comm = at(0);
    ev.conn.local = at(1);
    ev.conn.remote = at(2);
    ev.payload = std::string(input);
    ev.len = ev.payload.size();
    w->Write(ev);
    ev.end = gotlscap::capture::ConnEnd::kClose;
    w->Write(ev);

    gotlscap::decode::DecodedMessage m;
    m.comm = at(3);
    m.conn = ev.conn;
    m.msg.proto = at(4);
    m.msg.method = at(5);
    m.msg.path = at(6);
    m.msg.authority = at(7);
    for (size_t i = 8; i + 1 < f.size(); i += 2) m.msg.headers.emplace_back(f[i], f[i + 1]);
    m.msg.trailers.emplace_back(at(1), at(0));
    m.msg.content_encoding = at(2);
    m.msg.body = std::string(input);
    w->WriteHttp(m);
    m.msg.kind = gotlscap::decode::HttpMessage::Kind::kResponse;
    m.msg.request_method = at(5);
    m.msg.request_path = at(6);
    w->WriteHttp(m);

    w->WriteNotice(1, at(8), ev.conn, at(9));
    gotlscap::capture::SecretEvent s;
    s.comm = at(10);
    s.label = at(11);
    s.client_random = at(12);
    s.secret = std::string(input);
    w->WriteSecret(s);
    if (!w->Flush()) __builtin_trap();
  }
  fflush(out);
  std::string all;
  char buf[65536];
  rewind(out);
  for (size_t n; (n = fread(buf, 1, sizeof buf, out)) > 0;) all.append(buf, n);
  fclose(out);

  size_t lines = 0;
  for (size_t pos = 0; pos < all.size();) {
    const size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) __builtin_trap();  // every line ends in a newline
    auto line = ParseLine(std::string_view(all).substr(pos, nl - pos));
    if (line.contains("payload_b64") && Base64Decode(line["payload_b64"].get<std::string>()) != input) __builtin_trap();
    if (line.contains("body_b64") && Base64Decode(line["body_b64"].get<std::string>()) != input) __builtin_trap();
    pos = nl + 1;
    lines++;
  }
  if (lines != 6) __builtin_trap();  // data, close, 2 http, notice, secret
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckInspect(data, size);
  // The strings: the input cut at NUL bytes (an ELF gives many), at most 64 of them.
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> fields;
  for (size_t pos = 0; fields.size() < 64;) {
    const size_t nul = input.find('\0', pos);
    fields.emplace_back(input.substr(pos, nul == std::string_view::npos ? std::string_view::npos : nul - pos));
    if (nul == std::string_view::npos) break;
    pos = nul + 1;
  }
  CheckEvents(input.substr(0, 1u << 16), fields);
  return 0;
}
