#include "fleet/nats_exporter.h"

#include <nats/nats.h>

#include <chrono>

#include <fmt/format.h>

#include "fleet/nats_message.h"
#include "output/encoding.h"

namespace gotlscap::fleet {
namespace {

constexpr int64_t kAckWaitMs = 5000;        // an unanswered publish is resent after this
constexpr size_t kMaxInFlight = 1024;       // messages awaiting their ack
constexpr int64_t kNoResponderPauseMs = 500;
constexpr int64_t kRejectedPauseMs = 1000;  // x PublishQueue::kMaxRejections: ~10 s for a cluster to recover
constexpr size_t kHeaderRoom = 96;           // "NATS/1.0\r\nNats-Msg-Id: " ... beside the id

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string ConnectedUrl(natsConnection* nc) {
  char buf[256] = {};
  if (natsConnection_GetConnectedUrl(nc, buf, sizeof buf) != NATS_OK || !buf[0]) return "?";
  return buf;
}

std::string JsonQuoted(std::string_view s) {
  fmt::memory_buffer b;
  output::AppendJsonString(b, s);
  return fmt::to_string(b);
}

}  // namespace

NatsExporter::NatsExporter(const NatsConfig& c, Log log, std::string host)
    : config_(c),
      log_(std::move(log)),
      host_(std::move(host)),
      host_json_(JsonQuoted(host_)),
      id_prefix_(fmt::format("{}/{}/{}", host_, ReadBootId(), NewRunId())),
      queue_(c.buffer_bytes, fmt::format("{}.{}.", c.subject_prefix, SubjectToken(host_)), id_prefix_) {}

Result<std::unique_ptr<NatsExporter>> NatsExporter::Start(const NatsConfig& c, Log log) {
  if (auto ok = CheckNatsConfig(c); !ok.ok()) return ok.error();
  std::unique_ptr<NatsExporter> e(new NatsExporter(c, std::move(log), c.host.empty() ? LocalHostName() : c.host));
  auto fail = [&](const std::string& what, natsStatus s) {
    return MakeError(ErrorKind::kUsage, fmt::format("--nats: {}: {}", what, natsStatus_GetText(s)));
  };
  natsStatus s = natsOptions_Create(&e->opts_);
  if (s != NATS_OK) return fail("client options", s);
  std::vector<const char*> urls;
  for (const auto& u : c.servers) urls.push_back(u.c_str());
  if ((s = natsOptions_SetServers(e->opts_, urls.data(), int(urls.size()))) != NATS_OK) return fail("server list", s);
  natsOptions_SetName(e->opts_, fmt::format("gotlscap {}", e->host_).c_str());
  natsOptions_SetNoRandomize(e->opts_, true);     // the order given is the order tried
  natsOptions_SetMaxReconnect(e->opts_, -1);      // reconnect forever
  natsOptions_SetReconnectWait(e->opts_, 1000);
  natsOptions_SetPingInterval(e->opts_, 5000);    // a dead peer (no RST) is noticed in ~10 s
  natsOptions_SetMaxPingsOut(e->opts_, 2);
  // Nothing is published while disconnected (the queue holds it), so the client's own
  // reconnect buffer only ever holds a few racing messages.
  natsOptions_SetRetryOnFailedConnect(e->opts_, true, &NatsExporter::OnConnected, e.get());
  natsOptions_SetDisconnectedCB(e->opts_, &NatsExporter::OnDisconnected, e.get());
  natsOptions_SetReconnectedCB(e->opts_, &NatsExporter::OnReconnected, e.get());
  if (!c.token.empty() && (s = natsOptions_SetToken(e->opts_, c.token.c_str())) != NATS_OK) return fail("token", s);
  if (!c.creds_file.empty() &&
      (s = natsOptions_SetUserCredentialsFromFiles(e->opts_, c.creds_file.c_str(), nullptr)) != NATS_OK)
    return fail("--nats-creds " + c.creds_file, s);
  if (!c.tls_ca_file.empty()) {
    if ((s = natsOptions_SetSecure(e->opts_, true)) != NATS_OK) return fail("TLS", s);
    if ((s = natsOptions_LoadCATrustedCertificates(e->opts_, c.tls_ca_file.c_str())) != NATS_OK)
      return fail("--nats-tls-ca " + c.tls_ca_file, s);
  }
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

NatsExporter::~NatsExporter() {
  Stop();
  if (opts_) natsOptions_Destroy(opts_);
}

void NatsExporter::Line(output::EventType type, std::string_view json_line) {
  queue_.Push(output::EventTypeName(type), BodyWithHost(json_line, host_json_));
}

void NatsExporter::OnConnected(natsConnection* nc, void* self) {
  auto* e = static_cast<NatsExporter*>(self);
  e->log_(fmt::format("nats: connected to {}", ConnectedUrl(nc)));
  e->queue_.Notify();
}

void NatsExporter::OnDisconnected(natsConnection*, void* self) {
  auto* e = static_cast<NatsExporter*>(self);
  if (e->stop_.load()) return;
  e->log_("nats: disconnected, reconnecting (events are queued)");
}

void NatsExporter::OnReconnected(natsConnection* nc, void* self) {
  auto* e = static_cast<NatsExporter*>(self);
  e->stream_ready_.store(false);  // the broker may have come back without our stream
  e->log_(fmt::format("nats: reconnected to {}", ConnectedUrl(nc)));
  e->queue_.Notify();
}

void NatsExporter::OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) {
  auto* e = static_cast<NatsExporter*>(self);
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) {
    if (pa) {
      e->queue_.Acked(id, pa->Duplicate);
    } else if (pae && pae->ErrCode != 0) {
      // JetStream answered with an error (cluster without a leader, limits, ...).
      if (e->rejections_logged_.fetch_add(1) < 5)
        e->log_(fmt::format("nats: JetStream refused {}: {} ({})", id, pae->ErrText ? pae->ErrText : "?",
                            int(pae->ErrCode)));
      e->pause_until_ms_.store(NowMs() + kRejectedPauseMs);
      e->queue_.Rejected(id);
    } else {
      // Timeout or no responders (stream missing, server starting): resent with the same id.
      if (pae && pae->Err == NATS_NO_RESPONDERS) {
        e->pause_until_ms_.store(NowMs() + kNoResponderPauseMs);
        e->stream_ready_.store(false);
      }
      e->queue_.Retry(id);
    }
  }
  natsMsg_Destroy(msg);
}

bool NatsExporter::EnsureStream() {
  if (stream_ready_.load()) return true;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&si, js_, config_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    stream_ready_.store(true);
    return true;
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    log_(fmt::format("nats: stream {}: {} (will retry)", config_.stream, natsStatus_GetText(s)));
    pause_until_ms_.store(NowMs() + 1000);
    return false;
  }
  const std::string subjects = config_.subject_prefix + ".>";
  const char* subj[] = {subjects.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = config_.stream.c_str();
  cfg.Subjects = subj;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
  if (s == NATS_OK || jerr == JSStreamNameExistErr) {  // another node may have just made it
    if (si) jsStreamInfo_Destroy(si);
    log_(fmt::format("nats: created stream {} (subjects {}, file storage)", config_.stream, subjects));
    stream_ready_.store(true);
    return true;
  }
  log_(fmt::format("nats: cannot create stream {}: {} (will retry)", config_.stream,
                   nats_GetLastError(nullptr) ? nats_GetLastError(nullptr) : natsStatus_GetText(s)));
  pause_until_ms_.store(NowMs() + 1000);
  return false;
}

void NatsExporter::SendBatch() {
  const int64_t max_payload = natsConnection_GetMaxPayload(nc_);
  const size_t max_body = size_t(std::max<int64_t>(max_payload, 4096)) - id_prefix_.size() - kHeaderRoom;
  auto batch = queue_.NextToSend(max_body, kMaxInFlight);
  for (size_t i = 0; i < batch.size(); i++) {
    const auto* m = batch[i];
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, m->subject.c_str(), nullptr, m->body.data(), int(m->body.size()));
    if (s == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = m->id.c_str();
      po.MaxWait = kAckWaitMs;
      s = js_PublishMsgAsync(js_, &msg, &po);
    }
    natsMsg_Destroy(msg);  // a no-op when the library took it
    if (s == NATS_MAX_PAYLOAD) {
      queue_.SendRefused(m);
      continue;
    }
    if (s != NATS_OK) {
      // Disconnected meanwhile, or too many in flight: this and the rest of the batch wait.
      for (size_t j = i; j < batch.size(); j++) queue_.SendFailed(batch[j]);
      pause_until_ms_.store(NowMs() + 100);
      return;
    }
  }
}

void NatsExporter::Run() {
  natsStatus s = natsConnection_Connect(&nc_, opts_);
  std::string urls;
  for (const auto& u : config_.servers) urls += (urls.empty() ? "" : ",") + u;
  if (s == NATS_NOT_YET_CONNECTED) {
    log_(fmt::format("nats: connecting to {} (will retry; events are queued)", urls));
  } else if (s != NATS_OK) {
    log_(fmt::format("nats: cannot connect to {}: {}; events are not exported", urls,
                     nats_GetLastError(nullptr) ? nats_GetLastError(nullptr) : natsStatus_GetText(s)));
    nc_ = nullptr;
  } else {
    log_(fmt::format("nats: connected to {}", ConnectedUrl(nc_)));
  }
  if (nc_) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = int64_t(kMaxInFlight) * 2;
    jo.PublishAsync.AckHandler = &NatsExporter::OnAck;
    jo.PublishAsync.AckHandlerClosure = this;
    jo.Wait = kAckWaitMs;
    if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK) js_ = nullptr;
  }
  int64_t deadline = 0;
  while (true) {
    if (stop_.load()) {
      if (!deadline) deadline = NowMs() + int64_t(config_.drain_timeout_s * 1000);
      if (queue_.Outstanding() == 0 || NowMs() >= deadline || !js_) break;
    }
    if (js_ && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED && NowMs() >= pause_until_ms_.load() &&
        EnsureStream())
      SendBatch();
    queue_.WaitForWork(std::chrono::milliseconds(50));
  }
  queue_.FailOutstanding();
  if (nc_) natsConnection_Close(nc_);
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
  js_ = nullptr;
  nc_ = nullptr;
}

void NatsExporter::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  queue_.Notify();
  thread_.join();
}

std::string FormatCounters(const QueueCounters& c) {
  return fmt::format("nats: {} published, {} acknowledged ({} duplicates), {} resent, {} dropped (queue full), {} failed",
                     c.published, c.acknowledged, c.duplicates, c.resent, c.dropped, c.failed);
}

}  // namespace gotlscap::fleet
