// What one captured event becomes on the broker: subject, message id and body(ies). Pure string
// work, no NATS calls, so every rule here is unit-tested without a server.
//
//   subject  <prefix>.<host token>.<type>          gotlscap.node-1_example.data
//   id       <host>/<boot id>/<run id>/<seq>[/<part>]   (header Nats-Msg-Id)
//   body     the JSON writer's object with "host" after "type"; a split event's parts add
//            "part":i,"parts":n just before their slice of "payload_b64" / "body_b64"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gotlscap::fleet {

// A host name as one subject token: '.', ' ', '*', '>' and control bytes become '_' (a dot would
// add a token, the others are not allowed); empty becomes "unknown".
std::string SubjectToken(std::string_view host);
// Tokens of printable ASCII without ' ', '*', '>' separated by single dots ("gotlscap", "a.b").
bool ValidSubjectPrefix(std::string_view prefix);

// The JSON writer's line `{"type":"data",...}\n` as a message body: the newline dropped and
// "host":<host> placed after the type. `host_json` is the quoted JSON string.
std::string BodyWithHost(std::string_view json_line, std::string_view host_json);

// Splits `body` into bodies of at most `max_bytes` each: every part keeps every field of the event
// and carries "part" (1..n), "parts" (n) and a slice of the base64 payload cut on a 4-character
// (3-byte) boundary, so each slice decodes on its own and the slices joined are the payload.
// One element, `body` itself, when it fits; nullopt when it cannot be split small enough (no
// base64 field at the end, or the fields alone are too big).
std::optional<std::vector<std::string>> SplitBody(std::string_view body, size_t max_bytes);

// "<host>/<boot>/<run>/<seq>", with "/<part>" for a part of a split event (part >= 1).
std::string MessageId(std::string_view id_prefix, uint64_t seq, uint32_t part);

// /proc/sys/kernel/random/boot_id ("unknown-boot" when unreadable).
std::string ReadBootId();
// 16 random hex digits: two runs on one boot never share an id.
std::string NewRunId();
// gethostname(), or "unknown".
std::string LocalHostName();

}  // namespace gotlscap::fleet
