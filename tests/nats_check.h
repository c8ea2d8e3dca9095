// Read-back and checks of the NATS end-to-end tests (nats_e2e_test.cc): the `nats: ...` counters
// line, every stored message checked (subject, host, id, stored once), split events joined, events
// put back in capture order, and the exchanges of the Go test programs verified on both sides.
#pragma once

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "testing/nats_server.h"

namespace gotlscap::testenv::nats_check {

using Json = nlohmann::json;

constexpr const char* kHost = "e2e.node";  // --nats-host: dots become '_' in subjects

// "nats: P published, A acknowledged (D duplicates), R resent, X dropped (queue full), F failed"
struct NatsCounters {
  bool parsed = false;
  uint64_t published = 0, acknowledged = 0, duplicates = 0, resent = 0, dropped = 0, failed = 0;
};
inline NatsCounters ParseNatsSummary(const std::string& err) {
  static const std::regex re(
      R"(nats: (\d+) published, (\d+) acknowledged \((\d+) duplicates\), (\d+) resent, (\d+) dropped \(queue full\), (\d+) failed)");
  NatsCounters c;
  std::smatch m;
  for (const auto& line : SplitLines(err))
    if (std::regex_search(line, m, re)) {
      c.parsed = true;
      c.published = std::stoull(m[1]), c.acknowledged = std::stoull(m[2]), c.duplicates = std::stoull(m[3]);
      c.resent = std::stoull(m[4]), c.dropped = std::stoull(m[5]), c.failed = std::stoull(m[6]);
    }
  return c;
}
inline uint64_t SummaryLost(const std::string& err) {
  static const std::regex re(R"(summary: \d+ events, \d+ bytes, (\d+) lost)");
  std::smatch m;
  for (const auto& line : SplitLines(err))
    if (std::regex_search(line, m, re)) return std::stoull(m[1]);
  return ~0ull;
}

// The stream read back: messages checked one by one, parts joined into their events.
struct Stored {
  std::vector<gotlscap::testing::StoredMsg> msgs;
  // Parts joined ("part"/"parts" gone, payload whole), in capture order: by the id's sequence
  // number (a resent message is stored after those sent meanwhile).
  std::vector<Json> events;
  std::map<std::string, size_t> parts_of;  // event id -> number of parts (split events only)
  Problems problems;
};

// "host/boot/run/SEQ[/PART]" -> SEQ
inline uint64_t SeqOf(const std::string& id) {
  std::vector<std::string> f;
  for (size_t at = 0;;) {
    const size_t slash = id.find('/', at);
    f.push_back(id.substr(at, slash - at));
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  return f.size() >= 4 ? ParseU64(f[3], 10).value_or(0) : 0;
}

inline Stored ReadBack(const std::string& url) {
  Stored s;
  std::vector<std::pair<uint64_t, Json>> by_seq;
  std::string err;
  s.msgs = gotlscap::testing::ReadStream(url, "GOTLSCAP", &err);
  if (!err.empty()) s.problems.Add("reading the stream: " + err);
  std::set<std::string> ids, bodies;
  std::map<std::string, std::vector<Json>> pending;  // event id -> parts so far
  const std::string subject_prefix = std::string("gotlscap.e2e_node.");
  for (const auto& m : s.msgs) {
    if (!ids.insert(m.id).second) s.problems.Add("Nats-Msg-Id stored twice: " + m.id);
    if (!bodies.insert(m.data).second) s.problems.Add("same body stored twice: " + m.data.substr(0, 200));
    Json j = Json::parse(m.data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      s.problems.Add("message " + std::to_string(m.seq) + " is not a JSON object");
      continue;
    }
    const std::string type = j.value("type", "");
    if (m.subject != subject_prefix + type) s.problems.Add("type " + type + " on subject " + m.subject);
    if (j.value("host", "") != kHost) s.problems.Add("host is not " + std::string(kHost) + ": " + m.data.substr(0, 120));
    if (m.id.rfind(std::string(kHost) + "/", 0) != 0) s.problems.Add("id without the host: " + m.id);
    if (!j.contains("part")) {
      by_seq.emplace_back(SeqOf(m.id), std::move(j));
      continue;
    }
    // A part: id "<event id>/<part>". A part resent after a reconnect may be stored after a later
    // one, so parts are put in order by their number before joining.
    const std::string event_id = m.id.substr(0, m.id.rfind('/'));
    if (m.id != event_id + "/" + j["part"].dump()) s.problems.Add("part id " + m.id + " for part " + j["part"].dump());
    pending[event_id].push_back(std::move(j));
  }
  for (auto it = pending.begin(); it != pending.end();) {
    auto& [event_id, v] = *it;
    std::sort(v.begin(), v.end(), [](const Json& a, const Json& b) { return a["part"] < b["part"]; });
    const size_t n = v.front()["parts"].get<size_t>();
    bool complete = v.size() == n;
    for (size_t i = 0; complete && i < n; i++) complete = v[i]["part"] == i + 1;
    if (!complete) {
      ++it;
      continue;
    }
    const char* key = v.front().contains("payload_b64") ? "payload_b64" : "body_b64";
    Json whole = v.front();
    std::string b64;
    for (auto& p : v) {
      const std::string slice = p[key];
      if (slice.size() % 4 != 0) s.problems.Add("a slice of " + event_id + " does not decode on its own");
      b64 += slice;
      Json a = p, b = whole;
      for (Json* x : {&a, &b}) x->erase("part"), x->erase(key);
      if (a != b) s.problems.Add("parts of " + event_id + " differ in their fields");
    }
    whole.erase("part");
    whole.erase("parts");
    whole[key] = b64;
    s.parts_of[event_id] = n;
    by_seq.emplace_back(SeqOf(event_id), std::move(whole));
    it = pending.erase(it);
  }
  std::sort(by_seq.begin(), by_seq.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < by_seq.size(); i++) {
    if (by_seq[i].first == 0) s.problems.Add("no sequence number in an id");
    if (i && by_seq[i].first == by_seq[i - 1].first) s.problems.Add("event " + std::to_string(by_seq[i].first) + " stored twice");
    s.events.push_back(std::move(by_seq[i].second));
  }
  for (const auto& [id, v] : pending) s.problems.Add("event " + id + " has " + std::to_string(v.size()) + " parts of " + v.front()["parts"].dump());
  return s;
}

// Per TCP connection (pid, local, remote): what each side wrote and read, from the data events.
struct Stream {
  std::string wrote, read;
};
inline std::map<std::tuple<uint32_t, std::string, std::string>, Stream> Streams(const std::vector<Json>& events, Problems* p) {
  std::map<std::tuple<uint32_t, std::string, std::string>, Stream> m;
  for (const auto& e : events) {
    if (e["type"] != "data") continue;
    bool ok = false;
    std::string bytes = Base64Decode(e["payload_b64"], &ok);
    if (!ok) p->Add("payload_b64 is not base64");
    if (bytes.size() != e["captured"].get<size_t>()) p->Add("payload has " + std::to_string(bytes.size()) + " bytes, captured " + e["captured"].dump());
    Stream& s = m[{e["pid"].get<uint32_t>(), e["conn"]["local"], e["conn"]["remote"]}];
    (e["dir"] == "write" ? s.wrote : s.read) += bytes;
  }
  return m;
}

// Every connection to the server: the client's writes are the server's reads and the other way
// round, byte for byte; and every echo body of `rounds` (n, size, seed) is in the client's writes,
// the server's writes and the client's reads.
inline void CheckExchanges(const std::vector<Json>& events, const std::string& server_addr,
                    const std::vector<std::tuple<int, size_t, uint32_t>>& rounds) {
  Problems p;
  auto streams = Streams(events, &p);
  std::string client_wrote, client_read, server_wrote;
  size_t pairs = 0;
  for (const auto& [key, s] : streams) {
    const auto& [pid, local, remote] = key;
    if (remote != server_addr) continue;
    auto it = std::find_if(streams.begin(), streams.end(), [&](const auto& kv) {
      return std::get<1>(kv.first) == remote && std::get<2>(kv.first) == local;
    });
    if (it == streams.end()) {
      p.Add("no server side for " + local + " -> " + remote);
      continue;
    }
    pairs++;
    if (s.wrote != it->second.read) p.Add("client " + local + " wrote != server read (" + std::to_string(s.wrote.size()) + " vs " + std::to_string(it->second.read.size()) + " bytes)");
    if (s.read != it->second.wrote) p.Add("server wrote != client " + local + " read (" + std::to_string(it->second.wrote.size()) + " vs " + std::to_string(s.read.size()) + " bytes)");
    client_wrote += s.wrote;
    client_read += s.read;
    server_wrote += it->second.wrote;
  }
  if (pairs == 0) p.Add("no connection to " + server_addr + " in the stream");
  for (const auto& [n, size, seed] : rounds)
    for (int i = 0; i < n; i++) {
      const std::string body = PayloadBytes(size, seed + uint32_t(i));
      const std::string what = "echo seed " + std::to_string(seed + i) + " (" + std::to_string(size) + " bytes)";
      if (client_wrote.find(body) == std::string::npos) p.Add(what + ": not in the client's writes");
      if (server_wrote.find(body) == std::string::npos) p.Add(what + ": not in the server's writes");
      if (client_read.find(body) == std::string::npos) p.Add(what + ": not in the client's reads");
    }
  EXPECT_EQ(p.size(), 0u) << "exchange problems:\n" << p.str();
}

}  // namespace gotlscap::testenv::nats_check
