// Small encoders for output: base64 (RFC 4648), RFC 3339 timestamps, escaped text, hex dumps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gotlscap::output {

// RFC 4648 with padding; vectorised where the CPU has AVX2 (see base64.cc).
void AppendBase64(fmt::memory_buffer& out, std::string_view bytes);
// The reverse (RFC 4648, padding optional): the bytes of `b64`'s valid characters; false when it
// held any other character before the padding (those are skipped).
bool DecodeBase64(std::string_view b64, std::string* out);
// The same without SIMD (for tests on any machine).
void AppendBase64Portable(fmt::memory_buffer& out, std::string_view bytes);
// "2026-11-26T12:00:00.123456789Z"
void AppendTimestamp(fmt::memory_buffer& out, uint64_t epoch_ns);
// Printable ASCII, \n and \t as they are; everything else as \xNN (so binary never garbles a terminal).
void AppendEscaped(fmt::memory_buffer& out, std::string_view bytes);
// A JSON string literal, quotes included: UTF-8 kept as is, control characters escaped, each byte
// that is not part of well-formed UTF-8 replaced by U+FFFD (the rule of every JSON output: README
// "JSON output").
void AppendJsonString(fmt::memory_buffer& out, std::string_view s);
// The same rule without the quotes and escapes: `s` with each byte that is not part of well-formed
// UTF-8 replaced by U+FFFD (for names put into a JSON DOM; see json_report.h).
std::string ValidUtf8(std::string_view s);
// `hexdump -C` layout: offset, 16 bytes in hex, the printable ones.
void AppendHexDump(fmt::memory_buffer& out, std::string_view bytes);

}  // namespace gotlscap::output
