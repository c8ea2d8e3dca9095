// Reading a gotlscap JetStream stream back (`gotlscap view`): the messages of every node, as
// the events they were cut from, in each run's order.
//
//   StreamAssembler  pure logic, unit-tested: joins the parts of split events (keyed by the
//                   Nats-Msg-Id without its /PART) and orders each run's events (HOST/BOOT/RUN)
//                   by SEQ with a small reorder buffer.
//   ReadStream      the libnats side: an ordered push consumer over the stream's subjects.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace gotlscap::fleet {

// "30s", "10m", "2h", "1d" (a positive integer and one unit) -> the duration; nullopt otherwise.
std::optional<std::chrono::seconds> ParseSince(std::string_view s);

// The stream filter subject: PREFIX.(host token | *).(type | *).
std::string ViewFilterSubject(std::string_view prefix, std::string_view host, std::string_view type);

// A message's id, split: "node/boot/run/7/2" -> run "node/boot/run", seq 7, part 2 (0: not a part).
struct MessageIdParts {
  std::string run;
  uint64_t seq = 0;
  uint32_t part = 0;
};
// `is_part`: the body carries "part" (then the id's last field is the part number).
std::optional<MessageIdParts> ParseMessageId(std::string_view id, bool is_part);

class StreamAssembler {
 public:
  // One whole event (parts joined, "part"/"parts" removed) and the run (HOST/BOOT/RUN) it came from.
  using Sink = std::function<void(const nlohmann::ordered_json& event, const std::string& run)>;
  // A run's buffered events are released in SEQ order; an event waiting for a missing SEQ (a
  // dropped event, or one resent and stored later) waits until `max_wait` later messages of
  // its run have arrived, or Flush().
  explicit StreamAssembler(Sink sink, size_t max_wait = 1000) : sink_(std::move(sink)), max_wait_(max_wait) {}

  // One message: its Nats-Msg-Id and body. An error (bad JSON, bad id) is returned and the
  // message skipped.
  Result<bool> Add(std::string_view id, std::string_view body);
  // Releases everything held (gaps that never filled, parts never completed are dropped and counted).
  void Flush();
  // Releases the events held back by a gap (the reader is idle: nothing more is on its way now);
  // parts still being joined stay.
  void ReleaseGaps();

  uint64_t incomplete() const { return incomplete_; }  // events whose parts never all arrived
  uint64_t duplicates() const { return duplicates_; }  // messages seen twice (same id)

 private:
  struct Parts {
    uint32_t n = 0;
    std::map<uint32_t, nlohmann::ordered_json> got;
  };
  struct Run {
    bool started = false;
    uint64_t next = 0;                       // the SEQ expected next
    std::map<uint64_t, nlohmann::ordered_json> held; // by SEQ
    uint64_t since_gap = 0;                  // messages of this run since the head gap began
    std::map<uint64_t, Parts> parts;         // split events being joined, by SEQ
    std::map<uint64_t, uint64_t> missing;    // [lo, hi] SEQs skipped over: a late one is still shown once
  };
  void Whole(Run& r, const std::string& run, uint64_t seq, nlohmann::ordered_json ev);
  void Release(Run& r, const std::string& run, bool all);

  Sink sink_;
  size_t max_wait_;
  std::map<std::string, Run> runs_;
  uint64_t incomplete_ = 0, duplicates_ = 0;
};

struct ViewConfig {
  std::string url;  // nats://host:port
  std::string stream = "GOTLSCAP";
  std::string subject_prefix = "gotlscap";
  std::string host;   // "" = every host
  std::string type;   // "" = every type
  std::optional<std::chrono::seconds> since;  // nullopt: everything stored
  bool follow = false;
};

// Reads the stream: every message (id, body) to `on_message`, in stream order. Without follow it
// returns once it has read what was stored when it started; with follow, when `stop` is set.
// Errors: bad URL, broker unreachable (a few seconds), stream missing.
Result<bool> ReadStream(const ViewConfig& c, const std::atomic<bool>& stop,
                        const std::function<void(std::string_view id, std::string_view body)>& on_message,
                        const std::function<void()>& on_idle);

}  // namespace gotlscap::fleet
