#include "fleet/nats_message.h"

#include <sys/random.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

namespace gotlscap::fleet {
namespace {
bool SubjectChar(unsigned char c) { return c > 0x20 && c < 0x7f && c != '.' && c != '*' && c != '>'; }
}  // namespace

std::string SubjectToken(std::string_view host) {
  std::string out;
  for (unsigned char c : host) out.push_back(SubjectChar(c) ? char(c) : '_');
  return out.empty() ? "unknown" : out;
}

bool ValidSubjectPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.front() == '.' || prefix.back() == '.') return false;
  for (size_t i = 0; i < prefix.size(); i++) {
    const unsigned char c = prefix[i];
    if (c == '.') {
      if (prefix[i - 1] == '.') return false;
    } else if (!SubjectChar(c)) {
      return false;
    }
  }
  return true;
}

std::string BodyWithHost(std::string_view line, std::string_view host_json) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  // The writer starts every object with "type" whose value has no comma: the first comma ends it.
  const size_t comma = line.find(',');
  std::string out;
  out.reserve(line.size() + host_json.size() + 8);
  if (comma == std::string_view::npos) {  // `{"type":"x"}`: never written, kept valid anyway
    out.append(line.substr(0, line.size() - 1)).append(",\"host\":").append(host_json).append("}");
    return out;
  }
  out.append(line.substr(0, comma + 1)).append("\"host\":").append(host_json).push_back(',');
  out.append(line.substr(comma + 1));
  return out;
}

std::optional<std::vector<std::string>> SplitBody(std::string_view body, size_t max_bytes) {
  if (body.size() <= max_bytes) return std::vector<std::string>{std::string(body)};
  // The base64 field is the writer's last one. A quote inside a string value is always escaped,
  // so the key (unescaped quotes) cannot occur inside another field's value: the first match is
  // the field itself. Searched forward: it sits after a few hundred bytes of fields, while a
  // backward search (rfind) compared at every byte of the megabytes of base64 before reaching it
  // (60% of gotlscap's CPU when exporting 1 MB bodies).
  size_t key = std::string_view::npos;
  std::string_view key_text;
  for (std::string_view k : {",\"payload_b64\":\"", ",\"body_b64\":\""}) {
    const size_t at = body.find(k);
    if (at < key) key = at, key_text = k;
  }
  if (key == std::string_view::npos || body.size() < key + key_text.size() + 2 || body.substr(body.size() - 2) != "\"}")
    return std::nullopt;
  const std::string_view head = body.substr(0, key);
  const std::string_view b64 = body.substr(key + key_text.size(), body.size() - 2 - key - key_text.size());
  // ,"part":N,"parts":N with N of at most 20 digits.
  constexpr size_t kPartFields = sizeof(",\"part\":,\"parts\":") - 1 + 40;
  const size_t fixed = head.size() + kPartFields + key_text.size() + 2;
  if (fixed + 4 > max_bytes) return std::nullopt;
  const size_t slice = (max_bytes - fixed) / 4 * 4;
  const size_t n = (b64.size() + slice - 1) / slice;
  std::vector<std::string> parts;
  parts.reserve(n);
  for (size_t i = 0; i < n; i++) {
    std::string p;
    const std::string_view s = b64.substr(i * slice, slice);
    p.reserve(fixed + s.size());
    p.append(head);
    fmt::format_to(std::back_inserter(p), ",\"part\":{},\"parts\":{}", i + 1, n);
    p.append(key_text).append(s).append("\"}");
    parts.push_back(std::move(p));
  }
  return parts;
}

std::string MessageId(std::string_view id_prefix, uint64_t seq, uint32_t part) {
  return part ? fmt::format("{}/{}/{}", id_prefix, seq, part) : fmt::format("{}/{}", id_prefix, seq);
}

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown-boot" : id;
}

std::string NewRunId() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint64_t(getpid()) << 32) ^ uint64_t(time(nullptr));
  return fmt::format("{:016x}", r);
}

std::string LocalHostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "unknown";
  return buf;
}

}  // namespace gotlscap::fleet
