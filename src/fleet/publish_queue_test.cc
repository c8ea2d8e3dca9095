// The publisher's queue (NatsPublishQueue*): bounded by bytes, drops counted, a message leaves only
// when acknowledged, resends keep their id, JetStream errors give up after a few tries.
#include "fleet/publish_queue.h"

#include <gtest/gtest.h>

#include <set>

namespace gotlscap::fleet {
namespace {

std::string Body(size_t payload_chars, char fill = 'A') {
  return R"({"type":"data","host":"h","payload_b64":")" + std::string(payload_chars, fill) + "\"}";
}

TEST(NatsPublishQueueTest, FullQueueDropsAndCountsNewEvents) {
  PublishQueue q(1000, "p.h.", "h/b/r");
  size_t pushed = 0;
  for (int i = 0; i < 10; i++) pushed += q.Push("data", Body(200));
  EXPECT_EQ(pushed, 4u);  // 4 x 239 bytes fit in 1000
  auto c = q.counters();
  EXPECT_EQ(c.events, 10u);
  EXPECT_EQ(c.dropped, 6u);
  EXPECT_LE(q.bytes(), 1000u);
  // An event alone larger than the queue is dropped too.
  PublishQueue small(100, "p.h.", "h/b/r");
  EXPECT_FALSE(small.Push("data", Body(200)));
  EXPECT_EQ(small.counters().dropped, 1u);
}

TEST(NatsPublishQueueTest, MessagesLeaveOnlyWhenAcknowledged) {
  PublishQueue q(1 << 20, "p.h.", "h/b/r");
  for (int i = 0; i < 5; i++) q.Push(i % 2 ? "secret" : "data", Body(10));
  auto batch = q.NextToSend(1 << 20, 3);
  ASSERT_EQ(batch.size(), 3u);  // the in-flight limit
  EXPECT_EQ(batch[0]->id, "h/b/r/1");
  EXPECT_EQ(batch[0]->subject, "p.h.data");
  EXPECT_EQ(batch[1]->subject, "p.h.secret");
  EXPECT_TRUE(q.NextToSend(1 << 20, 3).empty());  // nothing more until an ack
  EXPECT_EQ(q.Outstanding(), 5u);
  q.Acked("h/b/r/2", false);
  q.Acked("h/b/r/2", false);  // a second answer to the same message counts once
  auto more = q.NextToSend(1 << 20, 3);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0]->id, "h/b/r/4");
  EXPECT_EQ(q.Outstanding(), 4u);
  for (const char* id : {"h/b/r/1", "h/b/r/3", "h/b/r/4"}) q.Acked(id, false);
  auto last = q.NextToSend(1 << 20, 3);
  ASSERT_EQ(last.size(), 1u);
  q.Acked(last[0]->id, true);
  EXPECT_EQ(q.Outstanding(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
  auto c = q.counters();
  EXPECT_EQ(c.published, 5u);
  EXPECT_EQ(c.acknowledged, 5u);
  EXPECT_EQ(c.duplicates, 1u);
  EXPECT_EQ(c.resent, 0u);
}

TEST(NatsPublishQueueTest, RetriesResendTheSameMessage) {
  PublishQueue q(1 << 20, "p.h.", "h/b/r");
  q.Push("data", Body(10));
  auto first = q.NextToSend(1 << 20, 10);
  ASSERT_EQ(first.size(), 1u);
  const std::string id = first[0]->id, body = first[0]->body;
  q.Retry(id);  // timeout: no ack came
  auto again = q.NextToSend(1 << 20, 10);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0]->id, id);
  EXPECT_EQ(again[0]->body, body);
  // A send that never left (not connected) is not a resend.
  q.SendFailed(again[0]);
  ASSERT_EQ(q.NextToSend(1 << 20, 10).size(), 1u);
  auto c = q.counters();
  EXPECT_EQ(c.published, 1u);
  EXPECT_EQ(c.resent, 1u);
  q.Acked(id, true);
  EXPECT_EQ(q.Outstanding(), 0u);
}

TEST(NatsPublishQueueTest, RejectionsFailAfterMaxTries) {
  PublishQueue q(1 << 20, "p.h.", "h/b/r");
  q.Push("data", Body(10));
  for (uint32_t i = 0; i < PublishQueue::kMaxRejections; i++) {
    auto b = q.NextToSend(1 << 20, 10);
    ASSERT_EQ(b.size(), 1u) << i;
    q.Rejected(b[0]->id);
  }
  EXPECT_TRUE(q.NextToSend(1 << 20, 10).empty());
  EXPECT_EQ(q.counters().failed, 1u);
  EXPECT_EQ(q.Outstanding(), 0u);
}

TEST(NatsPublishQueueTest, BigEventsBecomePartsWithTheirOwnIds) {
  PublishQueue q(1 << 20, "p.h.", "h/b/r");
  q.Push("data", Body(10));
  q.Push("data", Body(4000, 'B'));
  q.Push("data", Body(10));
  auto b = q.NextToSend(1000, 100);
  std::vector<std::string> ids;
  for (auto* m : b) {
    ids.push_back(m->id);
    EXPECT_LE(m->body.size(), 1000u);
  }
  ASSERT_GE(ids.size(), 7u);
  EXPECT_EQ(ids.front(), "h/b/r/1");
  EXPECT_EQ(ids[1], "h/b/r/2/1");
  EXPECT_EQ(ids[ids.size() - 2].substr(0, 8), "h/b/r/2/");
  EXPECT_EQ(ids.back(), "h/b/r/3");
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST(NatsPublishQueueTest, SequenceGapsShowDrops) {
  PublishQueue q(300, "p.h.", "h/b/r");
  q.Push("data", Body(200));
  q.Push("data", Body(200));  // dropped: seq 2 never sent
  auto b = q.NextToSend(1 << 20, 10);
  ASSERT_EQ(b.size(), 1u);
  q.Acked(b[0]->id, false);
  q.Push("data", Body(200));
  b = q.NextToSend(1 << 20, 10);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]->id, "h/b/r/3");
}

TEST(NatsPublishQueueTest, OutstandingAtTheEndCountsAsFailed) {
  PublishQueue q(1 << 20, "p.h.", "h/b/r");
  for (int i = 0; i < 4; i++) q.Push("data", Body(10));
  auto b = q.NextToSend(1 << 20, 2);
  q.Acked(b[0]->id, false);
  q.FailOutstanding();
  auto c = q.counters();
  EXPECT_EQ(c.acknowledged, 1u);
  EXPECT_EQ(c.failed, 3u);  // one in flight, two never sent
  EXPECT_EQ(q.Outstanding(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace gotlscap::fleet
