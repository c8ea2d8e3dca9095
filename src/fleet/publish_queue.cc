#include "fleet/publish_queue.h"

#include "fleet/nats_message.h"

namespace gotlscap::fleet {

PublishQueue::PublishQueue(size_t max_bytes, std::string subject_prefix, std::string id_prefix)
    : max_bytes_(max_bytes), subject_prefix_(std::move(subject_prefix)), id_prefix_(std::move(id_prefix)) {}

bool PublishQueue::Push(std::string_view type, std::string body) {
  {
    std::lock_guard lock(mu_);
    c_.events++;
    // Every event takes a sequence number, dropped ones too: a gap in the ids shows the drop.
    const uint64_t seq = next_seq_++;
    if (bytes_ + body.size() > max_bytes_) {
      c_.dropped++;
      return false;
    }
    bytes_ += body.size();
    events_.push_back(Event{seq, std::string(type), std::move(body)});
    work_ = true;
  }
  cv_.notify_one();
  return true;
}

std::vector<const PublishQueue::Message*> PublishQueue::NextToSend(size_t max_body, size_t max_in_flight) {
  std::lock_guard lock(mu_);
  PopFinished();
  std::vector<const Message*> out;
  size_t in_flight = 0;
  for (auto& m : window_) {
    if (m.state == Message::State::kInFlight) in_flight++;
  }
  for (auto& m : window_) {
    if (in_flight >= max_in_flight) return out;
    if (m.state != Message::State::kUnsent) continue;
    m.state = Message::State::kInFlight;
    in_flight++;
    (m.attempts++ ? c_.resent : c_.published)++;
    out.push_back(&m);
  }
  // Events become messages only when they can be sent: split once, for the broker connected now,
  // and resent as the same messages (same ids) whatever broker comes next.
  while (in_flight < max_in_flight && !events_.empty()) {
    Event ev = std::move(events_.front());
    events_.pop_front();
    bytes_ -= ev.body.size();
    auto parts = SplitBody(ev.body, max_body);
    if (!parts) {
      c_.failed++;
      continue;
    }
    const uint32_t n = parts->size();
    for (uint32_t i = 0; i < n; i++) {
      Message& m = window_.emplace_back();
      m.subject = subject_prefix_ + ev.type;
      m.id = MessageId(id_prefix_, ev.seq, n == 1 ? 0 : i + 1);
      m.body = std::move((*parts)[i]);
      bytes_ += m.body.size();
      by_id_[m.id] = &m;
      m.state = Message::State::kInFlight;
      m.attempts = 1;
      c_.published++;
      in_flight++;
      out.push_back(&m);
    }
  }
  return out;
}

void PublishQueue::SendFailed(const Message* cm) {
  std::lock_guard lock(mu_);
  auto* m = const_cast<Message*>(cm);
  if (m->state != Message::State::kInFlight) return;
  m->state = Message::State::kUnsent;
  (--m->attempts ? c_.resent : c_.published)--;
}

void PublishQueue::SendRefused(const Message* cm) {
  std::lock_guard lock(mu_);
  auto* m = const_cast<Message*>(cm);
  if (m->state != Message::State::kInFlight) return;
  m->state = Message::State::kFailed;
  c_.failed++;
  Done(m);
}

PublishQueue::Message* PublishQueue::Find(std::string_view id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

void PublishQueue::Done(Message* m) {
  bytes_ -= m->body.size();
  std::string().swap(m->body);  // the memory goes back now, not when the front catches up
  by_id_.erase(m->id);
}

void PublishQueue::PopFinished() {
  while (!window_.empty() && (window_.front().state == Message::State::kAcked ||
                              window_.front().state == Message::State::kFailed))
    window_.pop_front();
}

void PublishQueue::Acked(std::string_view id, bool duplicate) {
  {
    std::lock_guard lock(mu_);
    Message* m = Find(id);
    if (!m || m->state != Message::State::kInFlight) return;  // a late answer to an earlier send
    m->state = Message::State::kAcked;
    c_.acknowledged++;
    c_.duplicates += duplicate;
    Done(m);
    work_ = true;
  }
  cv_.notify_one();
}

void PublishQueue::Retry(std::string_view id) {
  {
    std::lock_guard lock(mu_);
    Message* m = Find(id);
    if (!m || m->state != Message::State::kInFlight) return;
    m->state = Message::State::kUnsent;
    work_ = true;
  }
  cv_.notify_one();
}

void PublishQueue::Rejected(std::string_view id) {
  {
    std::lock_guard lock(mu_);
    Message* m = Find(id);
    if (!m || m->state != Message::State::kInFlight) return;
    if (++m->rejections >= kMaxRejections) {
      m->state = Message::State::kFailed;
      c_.failed++;
      Done(m);
    } else {
      m->state = Message::State::kUnsent;
    }
    work_ = true;
  }
  cv_.notify_one();
}

size_t PublishQueue::Outstanding() const {
  std::lock_guard lock(mu_);
  size_t n = events_.size();
  for (const auto& m : window_) n += m.state == Message::State::kUnsent || m.state == Message::State::kInFlight;
  return n;
}

size_t PublishQueue::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

void PublishQueue::FailOutstanding() {
  std::lock_guard lock(mu_);
  c_.failed += events_.size();
  for (const auto& ev : events_) bytes_ -= ev.body.size();
  events_.clear();
  for (auto& m : window_) {
    if (m.state == Message::State::kUnsent || m.state == Message::State::kInFlight) {
      m.state = Message::State::kFailed;
      c_.failed++;
      Done(&m);
    }
  }
}

QueueCounters PublishQueue::counters() const {
  std::lock_guard lock(mu_);
  return c_;
}

void PublishQueue::WaitForWork(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return work_; });
  work_ = false;
}

void PublishQueue::Notify() {
  {
    std::lock_guard lock(mu_);
    work_ = true;
  }
  cv_.notify_one();
}

}  // namespace gotlscap::fleet
