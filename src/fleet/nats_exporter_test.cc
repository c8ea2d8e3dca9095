// NatsExporter against a real `nats-server -js` started by the test (NatsExporter*): events go
// through the JSON writer into JetStream and are read back by sequence. The broker is down at the
// start, SIGKILLed and restarted mid-run, or too slow to come back for a small queue; each time
// every event is stored exactly once or counted as dropped, never lost silently, never twice.
// Skips when nats-server is not installed (scripts/install-deps.sh installs it).
#include "fleet/nats_exporter.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "output/encoding.h"
#include "testing/nats_server.h"

namespace gotlscap::fleet {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/gotlscap-nats-XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { (void)!system(("rm -rf '" + path + "'").c_str()); }
};

struct Logs {
  std::mutex mu;
  std::vector<std::string> lines;
  NatsExporter::Log fn() {
    return [this](const std::string& l) {
      std::lock_guard lock(mu);
      lines.push_back(l);
    };
  }
  std::string all() {
    std::lock_guard lock(mu);
    std::string s;
    for (auto& l : lines) s += l + "\n";
    return s;
  }
};

capture::DataEvent Event(uint64_t i, size_t size) {
  capture::DataEvent ev;
  ev.ts_ns = 1000 + i;
  ev.pid = 10;
  ev.tid = uint32_t(i);  // the event's number, to check what was stored
  ev.comm = "client";
  ev.dir = capture::Direction::kWrite;
  ev.payload.assign(size, char('a' + i % 26));
  ev.len = size;
  ev.conn = {1, 5, "127.0.0.1:1", "127.0.0.1:2"};
  return ev;
}

class NatsExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::NatsServerInstalled()) GTEST_SKIP() << "nats-server is not installed (scripts/install-deps.sh)";
    server_ = std::make_unique<testing::NatsServer>(dir_.path + "/store", extra_config_);
  }
  std::unique_ptr<NatsExporter> Start(uint64_t buffer_bytes = 64ull << 20, double drain = 20) {
    NatsConfig c;
    c.servers = {server_->url()};
    c.host = "node.1";
    c.buffer_bytes = buffer_bytes;
    c.drain_timeout_s = drain;
    auto e = NatsExporter::Start(c, logs_.fn());
    EXPECT_TRUE(e.ok()) << e.error().message;
    return e.ok() ? std::move(*e) : nullptr;
  }
  // tid (event number) -> stored bodies, checked for ids and subjects on the way.
  std::map<uint32_t, std::vector<nlohmann::json>> Stored(std::vector<testing::StoredMsg>* raw = nullptr) {
    std::string err;
    auto msgs = testing::ReadStream(server_->url(), "GOTLSCAP", &err);
    EXPECT_EQ(err, "");
    std::set<std::string> ids;
    std::map<uint32_t, std::vector<nlohmann::json>> out;
    for (const auto& m : msgs) {
      EXPECT_TRUE(ids.insert(m.id).second) << "stored twice: " << m.id;
      EXPECT_EQ(m.subject, "gotlscap.node_1.data");
      EXPECT_EQ(m.id.rfind("node.1/", 0), 0u) << m.id;
      auto j = nlohmann::json::parse(m.data);
      EXPECT_EQ(j["host"], "node.1");
      out[j["tid"].get<uint32_t>()].push_back(j);
    }
    if (raw) *raw = msgs;
    return out;
  }

  TempDir dir_;
  std::string extra_config_;
  std::unique_ptr<testing::NatsServer> server_;
  Logs logs_;
};

TEST_F(NatsExporterTest, EveryEventStoredOnceWithHostSubjectAndId) {
  ASSERT_TRUE(server_->Start());
  auto e = Start();
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  for (uint64_t i = 1; i <= 300; i++) w->Write(Event(i, 100));
  e->Stop();
  auto c = e->counters();
  EXPECT_EQ(c.published, 300u);
  EXPECT_EQ(c.acknowledged, 300u);
  EXPECT_EQ(c.dropped + c.failed + c.resent, 0u);
  auto stored = Stored();
  ASSERT_EQ(stored.size(), 300u) << logs_.all();
  for (auto& [tid, v] : stored) {
    ASSERT_EQ(v.size(), 1u) << tid;
    EXPECT_EQ(v[0]["payload_b64"].get<std::string>().size(), 136u);  // 100 bytes
  }
  EXPECT_NE(logs_.all().find("created stream GOTLSCAP"), std::string::npos) << logs_.all();
}

TEST_F(NatsExporterTest, BrokerDownAtStartEventsWaitAndArrive) {
  auto e = Start();
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  for (uint64_t i = 1; i <= 100; i++) w->Write(Event(i, 50));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(e->counters().acknowledged, 0u);
  EXPECT_NE(logs_.all().find("will retry"), std::string::npos) << logs_.all();
  ASSERT_TRUE(server_->Start());
  e->Stop();
  EXPECT_EQ(e->counters().acknowledged, 100u) << logs_.all();
  EXPECT_EQ(Stored().size(), 100u);
}

// The broker dies (SIGKILL) while events flow and comes back on the same store: every event is
// stored once; messages in flight at the kill are resent with their id and deduplicated.
TEST_F(NatsExporterTest, BrokerKilledAndRestartedLosesNothingStoresNothingTwice) {
  ASSERT_TRUE(server_->Start());
  auto e = Start();
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  constexpr uint64_t kEvents = 3000;
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(700));
    server_->Kill();
    std::this_thread::sleep_for(milliseconds(1500));
    EXPECT_TRUE(server_->Start());
  });
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 1; i <= kEvents; i++) {
    w->Write(Event(i, 2000));
    std::this_thread::sleep_for(std::chrono::microseconds(1000));
  }
  // The capture side never waited for the broker: 3000 pushes with 1 ms pauses.
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
  killer.join();
  e->Stop();
  auto c = e->counters();
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_EQ(c.failed, 0u) << logs_.all();
  EXPECT_EQ(c.acknowledged, kEvents);
  auto stored = Stored();
  EXPECT_EQ(stored.size(), kEvents);
  for (auto& [tid, v] : stored) EXPECT_EQ(v.size(), 1u) << "event " << tid << " stored twice";
  EXPECT_NE(logs_.all().find("reconnected"), std::string::npos) << logs_.all();
  RecordProperty("resent", std::to_string(c.resent));
  RecordProperty("duplicates", std::to_string(c.duplicates));
}

TEST_F(NatsExporterTest, SmallQueueDropsAndCountsDuringOutage) {
  auto e = Start(1 << 20);
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  for (uint64_t i = 1; i <= 3000; i++) w->Write(Event(i, 1000));  // ~4 MB of JSON for a 1 MiB queue
  auto c = e->counters();
  EXPECT_GT(c.dropped, 0u);
  EXPECT_LT(c.dropped, 3000u);
  ASSERT_TRUE(server_->Start());
  e->Stop();
  c = e->counters();
  auto stored = Stored();
  EXPECT_EQ(stored.size() + c.dropped, 3000u) << logs_.all();
  EXPECT_EQ(c.failed, 0u);
  // The events that fitted are the first ones.
  EXPECT_TRUE(stored.count(1));
  EXPECT_FALSE(stored.count(3000));
}

TEST_F(NatsExporterTest, NoBrokerDrainTimeoutBoundsTheExit) {
  auto e = Start(64ull << 20, 1);
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  for (uint64_t i = 1; i <= 10; i++) w->Write(Event(i, 10));
  const auto t0 = std::chrono::steady_clock::now();
  e->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(4));
  EXPECT_EQ(e->counters().failed, 10u);
}

class NatsExporterSmallPayloadTest : public NatsExporterTest {
 protected:
  void SetUp() override {
    extra_config_ = "max_payload: 65536";
    NatsExporterTest::SetUp();
  }
};

TEST_F(NatsExporterSmallPayloadTest, EventOverMaxPayloadIsSplitIntoParts) {
  ASSERT_TRUE(server_->Start());
  auto e = Start();
  ASSERT_TRUE(e);
  auto w = output::MakeJsonWriter(e.get());
  capture::DataEvent big = Event(1, 0);
  for (size_t i = 0; i < 1000003; i++) big.payload.push_back(char(i * 7919 >> 3));
  big.len = big.payload.size();
  w->Write(big);
  w->Write(Event(2, 10));
  e->Stop();
  std::vector<testing::StoredMsg> raw;
  auto stored = Stored(&raw);
  ASSERT_EQ(stored.size(), 2u);
  auto& parts = stored[1];
  ASSERT_GE(parts.size(), 16u);  // 1.33 MB of base64 in 64 KiB messages
  std::string b64;
  for (size_t i = 0; i < parts.size(); i++) {
    EXPECT_EQ(parts[i]["part"], i + 1);
    EXPECT_EQ(parts[i]["parts"], parts.size());
    EXPECT_EQ(parts[i]["len"], 1000003);
    b64 += parts[i]["payload_b64"].get<std::string>();
  }
  for (const auto& m : raw) EXPECT_LE(m.data.size(), 65536u);
  fmt::memory_buffer want;
  output::AppendBase64Portable(want, big.payload);
  EXPECT_TRUE(b64 == fmt::to_string(want));
  EXPECT_EQ(stored[2].size(), 1u);
  EXPECT_FALSE(stored[2][0].contains("part"));
}

}  // namespace
}  // namespace gotlscap::fleet
