#include "fleet/stream_reader.h"

#include <nats/nats.h>

#include <cctype>
#include <charconv>
#include <thread>

#include <fmt/format.h>

#include "fleet/nats_config.h"
#include "fleet/nats_message.h"

namespace gotlscap::fleet {

std::optional<std::chrono::seconds> ParseSince(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, n);
  if (ec != std::errc() || p != s.data() + s.size() - 1 || n == 0 || n > 100ull * 365 * 86400) return std::nullopt;
  switch (s.back()) {
    case 's': return std::chrono::seconds(n);
    case 'm': return std::chrono::seconds(n * 60);
    case 'h': return std::chrono::seconds(n * 3600);
    case 'd': return std::chrono::seconds(n * 86400);
    default: return std::nullopt;
  }
}

std::string ViewFilterSubject(std::string_view prefix, std::string_view host, std::string_view type) {
  return fmt::format("{}.{}.{}", prefix, host.empty() ? std::string("*") : SubjectToken(host),
                     type.empty() ? std::string_view("*") : type);
}

std::optional<MessageIdParts> ParseMessageId(std::string_view id, bool is_part) {
  auto last_number = [](std::string_view& s) -> std::optional<uint64_t> {
    auto slash = s.rfind('/');
    if (slash == std::string_view::npos) return std::nullopt;
    uint64_t n = 0;
    auto f = s.substr(slash + 1);
    auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), n);
    if (f.empty() || ec != std::errc() || p != f.data() + f.size()) return std::nullopt;
    s = s.substr(0, slash);
    return n;
  };
  MessageIdParts r;
  if (is_part) {
    auto part = last_number(id);
    if (!part || *part == 0 || *part > UINT32_MAX) return std::nullopt;
    r.part = uint32_t(*part);
  }
  auto seq = last_number(id);
  if (!seq || id.empty()) return std::nullopt;
  r.seq = *seq;
  r.run = std::string(id);
  return r;
}

namespace {

void MarkMissing(std::map<uint64_t, uint64_t>& m, uint64_t lo, uint64_t hi) {
  if (lo <= hi) m[lo] = hi;
}

// true (and removes it) when `seq` is in one of the skipped ranges.
bool TakeMissing(std::map<uint64_t, uint64_t>& m, uint64_t seq) {
  auto it = m.upper_bound(seq);
  if (it == m.begin()) return false;
  --it;
  auto [lo, hi] = *it;
  if (seq > hi) return false;
  m.erase(it);
  if (lo < seq) m[lo] = seq - 1;
  if (seq < hi) m[seq + 1] = hi;
  return true;
}

}  // namespace

Result<bool> StreamAssembler::Add(std::string_view id, std::string_view body) {
  nlohmann::ordered_json ev = nlohmann::ordered_json::parse(body, nullptr, false);
  if (ev.is_discarded() || !ev.is_object()) return MakeError(ErrorKind::kCorrupt, fmt::format("{}: body is not a JSON object", id));
  const bool is_part = ev.contains("part") && ev.contains("parts");
  auto ids = ParseMessageId(id, is_part);
  if (!ids) return MakeError(ErrorKind::kCorrupt, fmt::format("bad message id '{}'", id));
  Run& r = runs_[ids->run];
  if (!is_part) {
    Whole(r, ids->run, ids->seq, std::move(ev));
    return true;
  }
  const uint64_t n = ev["parts"].is_number_unsigned() ? ev["parts"].get<uint64_t>() : 0;
  if (n == 0 || n > 1000000 || ids->part > n)
    return MakeError(ErrorKind::kCorrupt, fmt::format("{}: bad part {} of {}", id, ids->part, n));
  Parts& p = r.parts[ids->seq];
  p.n = uint32_t(n);
  if (!p.got.emplace(ids->part, std::move(ev)).second) duplicates_++;
  if (p.got.size() < p.n) return true;
  // Every part is here: the first part's fields, every slice of the base64 field in part order.
  const char* field = p.got.begin()->second.contains("payload_b64") ? "payload_b64" : "body_b64";
  std::string b64;
  for (auto& [i, part] : p.got)
    if (part.contains(field) && part[field].is_string()) b64 += part[field].get_ref<const std::string&>();
  nlohmann::ordered_json whole = std::move(p.got.begin()->second);
  whole.erase("part");
  whole.erase("parts");
  whole[field] = std::move(b64);
  r.parts.erase(ids->seq);
  Whole(r, ids->run, ids->seq, std::move(whole));
  return true;
}

void StreamAssembler::Whole(Run& r, const std::string& run, uint64_t seq, nlohmann::ordered_json ev) {
  if (!r.started) {
    r.started = true;
    r.next = seq;
    MarkMissing(r.missing, 1, seq - 1);  // read from mid-run (--since): earlier ones may still come
  }
  if (seq < r.next) {
    // Skipped over as missing, now here: shown (late) once; otherwise a second copy.
    if (TakeMissing(r.missing, seq)) sink_(ev, run);
    else duplicates_++;
    return;
  }
  if (!r.held.emplace(seq, std::move(ev)).second) {
    duplicates_++;
    return;
  }
  r.since_gap++;
  Release(r, run, false);
}

void StreamAssembler::Release(Run& r, const std::string& run, bool all) {
  while (!r.held.empty()) {
    auto it = r.held.begin();
    if (it->first != r.next) {
      if (!all && r.since_gap <= max_wait_) return;
      MarkMissing(r.missing, r.next, it->first - 1);  // give up waiting for the gap
    }
    r.next = it->first + 1;
    sink_(it->second, run);
    r.held.erase(it);
    r.since_gap = 0;
  }
  r.since_gap = 0;
}

void StreamAssembler::ReleaseGaps() {
  for (auto& [run, r] : runs_) Release(r, run, true);
}

void StreamAssembler::Flush() {
  for (auto& [run, r] : runs_) {
    incomplete_ += r.parts.size();
    r.parts.clear();
    Release(r, run, true);
  }
}

namespace {

std::string LastError(natsStatus s) {
  const char* e = nats_GetLastError(nullptr);
  return e && *e ? e : natsStatus_GetText(s);
}

int64_t UnixNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<bool> ReadStream(const ViewConfig& c, const std::atomic<bool>& stop,
                        const std::function<void(std::string_view id, std::string_view body)>& on_message,
                        const std::function<void()>& on_idle) {
  auto urls = ParseNatsUrls(c.url);
  if (!urls.ok()) {
    Error e = urls.error();
    if (e.message.rfind("--nats: ", 0) == 0) e.message.erase(0, 8);
    return e;
  }
  if (!ValidSubjectPrefix(c.subject_prefix))
    return MakeError(ErrorKind::kUsage, fmt::format("--subject: '{}' is not a valid subject prefix", c.subject_prefix));
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;
  jsStreamInfo* si = nullptr;
  auto cleanup = [&] {
    if (sub) natsSubscription_Destroy(sub);
    if (si) jsStreamInfo_Destroy(si);
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
    if (opts) natsOptions_Destroy(opts);
  };
  auto fail = [&](ErrorKind k, std::string what) {
    cleanup();
    return MakeError(k, std::move(what));
  };
  natsStatus s = natsOptions_Create(&opts);
  if (s != NATS_OK) return fail(ErrorKind::kIo, "nats: client options");
  std::vector<const char*> u;
  for (const auto& x : *urls) u.push_back(x.c_str());
  natsOptions_SetServers(opts, u.data(), int(u.size()));
  natsOptions_SetName(opts, "gotlscap view");
  natsOptions_SetTimeout(opts, 3000);  // the broker must be up: a few seconds, then an error
  natsOptions_SetMaxReconnect(opts, c.follow ? -1 : 0);
  natsOptions_SetReconnectWait(opts, 1000);
  if ((s = natsConnection_Connect(&nc, opts)) != NATS_OK)
    return fail(ErrorKind::kIo, fmt::format("cannot connect to {}: {}", c.url, natsStatus_GetText(s)));
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
    return fail(ErrorKind::kIo, fmt::format("JetStream: {}", LastError(s)));
  jsErrCode jerr = jsErrCode(0);
  s = js_GetStreamInfo(&si, js, c.stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
    return fail(ErrorKind::kNoProcess, fmt::format("stream {} not found on {}", c.stream, c.url));
  if (s != NATS_OK) return fail(ErrorKind::kIo, fmt::format("stream {}: {}", c.stream, LastError(s)));
  const uint64_t last_seq = si->State.LastSeq;
  if (last_seq == 0 && !c.follow) {
    cleanup();
    return true;
  }
  const std::string filter = ViewFilterSubject(c.subject_prefix, c.host, c.type);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = c.stream.c_str();
  so.Ordered = true;
  if (c.since) {
    so.Config.DeliverPolicy = js_DeliverByStartTime;
    so.Config.OptStartTime = UnixNowNs() - int64_t(c.since->count()) * 1000000000;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  if ((s = js_SubscribeSync(&sub, js, filter.c_str(), nullptr, &so, &jerr)) != NATS_OK)
    return fail(ErrorKind::kIo, fmt::format("cannot read {} from stream {}: {}", filter, c.stream, LastError(s)));
  natsSubscription_SetPendingLimits(sub, -1, 512 << 20);
  while (!stop.load()) {
    natsMsg* msg = nullptr;
    s = natsSubscription_NextMsg(&msg, sub, 500);
    if (s == NATS_TIMEOUT) {
      if (on_idle) on_idle();
      if (c.follow) continue;
      // Nothing came: is anything matching left to deliver?
      jsConsumerInfo* ci = nullptr;
      if (natsSubscription_GetConsumerInfo(&ci, sub, nullptr, &jerr) == NATS_OK) {
        int queued = 0;
        natsSubscription_GetPending(sub, &queued, nullptr);
        const bool done = ci->NumPending == 0 && queued == 0;
        jsConsumerInfo_Destroy(ci);
        if (done) break;
      }
      continue;
    }
    if (s != NATS_OK) {
      if (c.follow && s == NATS_CONNECTION_DISCONNECTED) {  // reconnecting: the consumer is recreated
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      return fail(ErrorKind::kIo, fmt::format("reading stream {}: {}", c.stream, LastError(s)));
    }
    const char* id = nullptr;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    jsMsgMetaData* meta = nullptr;
    uint64_t stream_seq = 0, pending = 1;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      stream_seq = meta->Sequence.Stream;
      pending = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
    }
    on_message(id ? id : "", std::string_view(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg))));
    natsMsg_Destroy(msg);
    if (!c.follow && (pending == 0 || stream_seq >= last_seq)) break;
  }
  cleanup();
  return true;
}

}  // namespace gotlscap::fleet
