// The JetStream side of `--nats`: a LineSink that turns every JSON event into JetStream messages,
// published from a thread of its own. The capture thread only formats and queues (PublishQueue);
// connecting, reconnecting (forever), creating the stream, publishing, acknowledgements and
// resends all happen on the publisher thread and the client library's threads, so a broker that
// is slow or gone never stalls the capture or the ring buffer.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "fleet/nats_config.h"
#include "fleet/publish_queue.h"
#include "output/event_writer.h"

// libnats types (nats/nats.h), kept out of this header.
typedef struct __natsConnection natsConnection;
typedef struct __natsOptions natsOptions;
typedef struct __natsMsg natsMsg;
typedef struct __jsCtx jsCtx;
typedef struct jsPubAck jsPubAck;
typedef struct jsPubAckErr jsPubAckErr;

namespace gotlscap::fleet {

class NatsExporter : public output::LineSink {
 public:
  using Log = std::function<void(const std::string&)>;
  // Checks `config` (CheckNatsConfig) and builds the client options, then starts the publisher
  // thread, which connects in the background: a broker that is down is waited for, not an error.
  static Result<std::unique_ptr<NatsExporter>> Start(const NatsConfig& config, Log log);
  ~NatsExporter() override;

  // Capture thread: one event, queued (or dropped and counted when the queue is full).
  void Line(output::EventType type, std::string_view json_line) override;

  // Waits until every queued event is acknowledged or `drain_timeout_s` has passed, then closes
  // the connection; what is still unacknowledged counts as failed. Idempotent.
  void Stop();
  QueueCounters counters() const { return queue_.counters(); }
  const std::string& host() const { return host_; }

 private:
  NatsExporter(const NatsConfig& c, Log log, std::string host);
  void Run();
  bool EnsureStream();
  void SendBatch();
  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self);
  static void OnDisconnected(natsConnection* nc, void* self);
  static void OnReconnected(natsConnection* nc, void* self);
  static void OnConnected(natsConnection* nc, void* self);

  const NatsConfig config_;
  const Log log_;
  const std::string host_, host_json_, id_prefix_;
  PublishQueue queue_;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stream_ready_{false};       // checked (or created) since the last (re)connect
  std::atomic<int64_t> pause_until_ms_{0};      // back off after "no responders"
  std::atomic<uint64_t> rejections_logged_{0};
};

// "nats: P published, A acknowledged (D duplicates), R resent, X dropped (queue full), F failed"
std::string FormatCounters(const QueueCounters& c);

}  // namespace gotlscap::fleet
