// The bounded store between the capture thread and the broker: events wait here (as whole JSON
// bodies) until the publisher can send them, and stay (as messages, split to the broker's size)
// until JetStream acknowledges them, so an outage loses nothing that fits. Bounded by bytes: when
// full, new events are dropped and counted, the capture never waits. Thread-safe; no NATS calls
// (the publisher drives it), so its rules are unit-tested without a server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gotlscap::fleet {

struct QueueCounters {
  uint64_t events = 0;        // offered by the capture
  uint64_t dropped = 0;       // events refused: queue full (or alone larger than the queue)
  uint64_t published = 0;     // messages sent for the first time
  uint64_t acknowledged = 0;  // messages JetStream acknowledged (stored, or already stored)
  uint64_t duplicates = 0;    // ... of which JetStream already had (a resend it dropped)
  uint64_t resent = 0;        // sends after a timeout, a lost connection or a transient error
  uint64_t failed = 0;        // messages given up: refused by JetStream, unsplittable, unacked at exit
};

class PublishQueue {
 public:
  struct Message {
    std::string subject, id, body;
    enum class State { kUnsent, kInFlight, kAcked, kFailed } state = State::kUnsent;
    uint32_t attempts = 0;     // sends so far
    uint32_t rejections = 0;   // JetStream API errors so far
  };

  // `subject_prefix` "gotlscap.node1." (the type is appended), `id_prefix` "node1/boot/run".
  PublishQueue(size_t max_bytes, std::string subject_prefix, std::string id_prefix);

  // Capture thread. Never blocks on the network; false when the event was dropped (queue full).
  bool Push(std::string_view type, std::string body);

  // Publisher thread: up to `max_in_flight` messages in flight in all; events become messages
  // here, split for `max_body` bytes each. Each returned message is marked in flight; its fields
  // stay valid and unchanged until the next call of NextToSend.
  std::vector<const Message*> NextToSend(size_t max_body, size_t max_in_flight);
  // The send call itself failed (not connected, buffer full): the message waits again, as if
  // never handed out (not counted as a send).
  void SendFailed(const Message* m);
  // The client refused the message for good (larger than the server's max payload).
  void SendRefused(const Message* m);
  // Results from the broker, by Nats-Msg-Id (called on the client library's thread).
  void Acked(std::string_view id, bool duplicate);
  // A timeout, a lost connection, no responders: sent again later.
  void Retry(std::string_view id);
  // A JetStream API error: retried (a cluster may be electing a leader; the publisher pauses
  // between tries), failed after kMaxRejections.
  void Rejected(std::string_view id);

  // Events waiting plus messages not yet acknowledged.
  size_t Outstanding() const;
  size_t bytes() const;
  // At the end: whatever is still outstanding counts as failed (never silently lost).
  void FailOutstanding();
  QueueCounters counters() const;

  // Wakes the publisher: new events, acks, or Notify() (stop).
  void WaitForWork(std::chrono::milliseconds timeout);
  void Notify();

  static constexpr uint32_t kMaxRejections = 10;

 private:
  struct Event {
    uint64_t seq;
    std::string type, body;
  };
  Message* Find(std::string_view id);  // under mu_
  void Done(Message* m);               // under mu_: releases the body's bytes
  void PopFinished();                  // under mu_

  const size_t max_bytes_;
  const std::string subject_prefix_, id_prefix_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool work_ = false;
  uint64_t next_seq_ = 1;
  size_t bytes_ = 0;         // bodies of waiting events and of unfinished messages
  std::deque<Event> events_;
  std::deque<Message> window_;  // messages in send order; finished ones leave from the front
  std::unordered_map<std::string_view, Message*> by_id_;  // keys point into window_'s ids
  QueueCounters c_;
};

}  // namespace gotlscap::fleet
