// JSON for the one-shot reports (`inspect --json`, `ps --json`): built as nlohmann DOMs, then
// written by JsonLine, which makes any bytes valid JSON. The event writers (writers.cc) build
// their lines by hand with AppendJsonString and follow the same rule.
//
// The rule (README "JSON output"): every string is UTF-8; each byte of an input string that is
// not part of well-formed UTF-8 (a damaged build info, a process name, a path, an HTTP header)
// becomes U+FFFD. Bytes that must survive exactly (payloads, bodies) are always base64.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gobin/go_binary.h"

namespace gotlscap::output {

// What `inspect --json` prints for one analysed binary (strings as read from the file).
nlohmann::ordered_json InspectReport(const gobin::GoBinary& b);

// One line of JSON Lines, newline included, for any DOM: strings and keys made valid UTF-8 first
// (ValidUtf8), so it never throws. Two keys of one object that become equal that way are kept
// both, the later one suffixed " #2", " #3"...
std::string JsonLine(const nlohmann::ordered_json& j);

}  // namespace gotlscap::output
