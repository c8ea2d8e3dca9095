#include "output/encoding.h"

#include <algorithm>
#include <cstring>
#include <ctime>

namespace gotlscap::output {

void AppendTimestamp(fmt::memory_buffer& out, uint64_t epoch_ns) {
  time_t secs = static_cast<time_t>(epoch_ns / 1000000000ull);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, epoch_ns % 1000000000ull);
}

namespace {
// Escaped form of every byte (up to 4 characters) and its length: the loop below copies 4 bytes
// and advances by the length, without branches (text output of binary bulk transfers is the
// consumer's hottest path).
struct EscapeTable {
  char text[256][4];
  uint8_t len[256];
  EscapeTable() {
    static const char kHex[] = "0123456789abcdef";
    for (int c = 0; c < 256; c++) {
      char* t = text[c];
      if ((c >= 0x20 && c < 0x7f && c != '\\') || c == '\n' || c == '\t') {
        t[0] = static_cast<char>(c);
        len[c] = 1;
      } else if (c == '\\' || c == '\r') {
        t[0] = '\\';
        t[1] = c == '\r' ? 'r' : '\\';
        len[c] = 2;
      } else {
        t[0] = '\\';
        t[1] = 'x';
        t[2] = kHex[c >> 4];
        t[3] = kHex[c & 15];
        len[c] = 4;
      }
    }
  }
};
const EscapeTable kEscape;
}  // namespace

void AppendEscaped(fmt::memory_buffer& out, std::string_view bytes) {
  const size_t start = out.size();
  out.resize(start + bytes.size() * 4 + 4);  // worst case, +4 for the last unconditional copy
  char* o = out.data() + start;
  for (unsigned char c : bytes) {
    std::memcpy(o, kEscape.text[c], 4);
    o += kEscape.len[c];
  }
  out.resize(o - out.data());
}

namespace {
// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), or 0 when it is not one.
size_t Utf8SequenceLength(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  auto cont = [&](size_t i) { return i < avail && (p[i] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}
}  // namespace

void AppendJsonString(fmt::memory_buffer& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  const size_t start = out.size();
  out.resize(start + s.size() * 6 + 2);  // worst case: every byte as \u00XX
  char* o = out.data() + start;
  *o++ = '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0, n = s.size(); i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *o++ = char(c);
      i++;
    } else if (c < 0x80) {
      *o++ = '\\';
      switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
          std::memcpy(o, "u00", 3);
          o[3] = kHex[c >> 4];
          o[4] = kHex[c & 15];
          o += 5;
      }
      i++;
    } else if (size_t len = Utf8SequenceLength(p + i, n - i)) {
      std::memcpy(o, p + i, len);
      o += len;
      i += len;
    } else {
      std::memcpy(o, "\xEF\xBF\xBD", 3);  // U+FFFD REPLACEMENT CHARACTER for each bad byte
      o += 3;
      i++;
    }
  }
  *o++ = '"';
  out.resize(size_t(o - out.data()));
}

// `hexdump -C` layout, written through a pointer into space sized once per call: formatting each
// byte through fmt took most of the text writer's time (binary bodies are dumped).
void AppendHexDump(fmt::memory_buffer& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  constexpr size_t kLine = 8 + 2 + 16 * 3 + 1 + 2 + 16 + 2;  // offset, bytes, gap, |ascii|\n
  const size_t lines = (bytes.size() + 15) / 16, start = out.size();
  out.resize(start + lines * kLine);
  char* o = out.data() + start;
  for (size_t off = 0; off < bytes.size(); off += 16) {
    for (int shift = 28; shift >= 0; shift -= 4) *o++ = kHex[(off >> shift) & 15];
    *o++ = ' ';
    *o++ = ' ';
    const size_t n = std::min<size_t>(16, bytes.size() - off);
    for (size_t i = 0; i < 16; i++) {
      if (i < n) {
        const auto c = static_cast<unsigned char>(bytes[off + i]);
        *o++ = kHex[c >> 4];
        *o++ = kHex[c & 15];
      } else {
        *o++ = ' ';
        *o++ = ' ';
      }
      *o++ = ' ';
      if (i == 7) *o++ = ' ';
    }
    *o++ = ' ';
    *o++ = '|';
    for (size_t i = 0; i < n; i++) {
      const auto c = static_cast<unsigned char>(bytes[off + i]);
      *o++ = c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
    }
    *o++ = '|';
    *o++ = '\n';
  }
  out.resize(static_cast<size_t>(o - out.data()));  // a short last line has fewer ascii characters
}

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0, n = s.size(); i < n;) {
    if (p[i] < 0x80) {
      out.push_back(char(p[i++]));
    } else if (size_t len = Utf8SequenceLength(p + i, n - i)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD for each bad byte, as AppendJsonString
      i++;
    }
  }
  return out;
}

}  // namespace gotlscap::output
