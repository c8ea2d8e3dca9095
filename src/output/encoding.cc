#include "output/encoding.h"

#include <ctime>

namespace gotlscap::output {

void AppendBase64(fmt::memory_buffer& out, std::string_view in) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t n = in.size(), i = 0;
  out.reserve(out.size() + (n + 2) / 3 * 4);
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    char q[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], kAlphabet[v & 63]};
    out.append(q, q + 4);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t(p[i]) << 16;
    char q[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
    out.append(q, q + 4);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8);
    char q[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
    out.append(q, q + 4);
  }
}

void AppendTimestamp(fmt::memory_buffer& out, uint64_t epoch_ns) {
  time_t secs = static_cast<time_t>(epoch_ns / 1000000000ull);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, epoch_ns % 1000000000ull);
}

void AppendEscaped(fmt::memory_buffer& out, std::string_view bytes) {
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char c : bytes) {
    if ((c >= 0x20 && c < 0x7f && c != '\\') || c == '\n' || c == '\t') {
      out.push_back(static_cast<char>(c));
    } else if (c == '\\') {
      out.append(std::string_view("\\\\"));
    } else if (c == '\r') {
      out.append(std::string_view("\\r"));
    } else {
      char e[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      out.append(e, e + 4);
    }
  }
}

void AppendHexDump(fmt::memory_buffer& out, std::string_view bytes) {
  auto it = std::back_inserter(out);
  for (size_t off = 0; off < bytes.size(); off += 16) {
    fmt::format_to(it, "{:08x}  ", off);
    for (size_t i = 0; i < 16; i++) {
      if (off + i < bytes.size())
        fmt::format_to(it, "{:02x} ", static_cast<unsigned char>(bytes[off + i]));
      else
        out.append(std::string_view("   "));
      if (i == 7) out.push_back(' ');
    }
    out.append(std::string_view(" |"));
    for (size_t i = 0; i < 16 && off + i < bytes.size(); i++) {
      unsigned char c = bytes[off + i];
      out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
    }
    out.append(std::string_view("|\n"));
  }
}

}  // namespace gotlscap::output
