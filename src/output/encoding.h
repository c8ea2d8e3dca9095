// Small encoders for output: base64 (RFC 4648), RFC 3339 timestamps, escaped text, hex dumps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gotlscap::output {

void AppendBase64(fmt::memory_buffer& out, std::string_view bytes);
// "2026-11-26T12:00:00.123456789Z"
void AppendTimestamp(fmt::memory_buffer& out, uint64_t epoch_ns);
// Printable ASCII, \n and \t as they are; everything else as \xNN (so binary never garbles a terminal).
void AppendEscaped(fmt::memory_buffer& out, std::string_view bytes);
// `hexdump -C` layout: offset, 16 bytes in hex, the printable ones.
void AppendHexDump(fmt::memory_buffer& out, std::string_view bytes);

}  // namespace gotlscap::output
