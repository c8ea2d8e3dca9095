#include "capture/session.h"

#include <bpf/libbpf.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "common/cgroup_mount.h"

namespace gotlscap::capture {
namespace {

uint64_t ClockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

uint64_t MonotonicNowNs() { return ClockNs(CLOCK_MONOTONIC); }

Result<std::unique_ptr<CaptureSession>> CaptureSession::Start(const SessionOptions& opts, EventAssembler::Sink sink,
                                                              SecretSink secret_sink) {
  for (const auto& c : opts.containers)
    if (!IsContainerIdPrefix(c))
      return MakeError(ErrorKind::kUsage, fmt::format("--container {}: not a container id (1 to 64 hex digits)", c));
  auto s = std::unique_ptr<CaptureSession>(new CaptureSession());

  // Targets: every -e path; each -p pid's executable when no -e is given.
  std::vector<std::string> paths = opts.elf_paths;
  for (uint32_t pid : opts.pids) {
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      return MakeError(ErrorKind::kNoProcess, fmt::format("no such process: {}", pid));
    if (opts.elf_paths.empty()) paths.push_back(fmt::format("/proc/{}/exe", pid));
  }
  if (paths.empty() && !opts.follow_host) return MakeError(ErrorKind::kUsage, "nothing to trace: give -e PATH or -p PID");
  std::set<std::pair<dev_t, ino_t>> seen;  // one set of uprobes per file, whatever the path
  for (const auto& path : paths) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
      return MakeError(ErrorKind::kIo, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    if (!seen.insert({st.st_dev, st.st_ino}).second) continue;
    auto bin = gobin::AnalyzeGoBinary(path);
    if (!bin.ok()) {
      const std::string& m = bin.error().message;
      return MakeError(bin.error().kind, m.rfind(path, 0) == 0 ? m : fmt::format("{}: {}", path, m));
    }
    s->targets_.push_back(Target{path, std::move(bin).value(), 0});
  }

  s->cgroups_ = std::make_unique<CgroupIndex>(CgroupV2Mount());
  if (!opts.containers.empty() && s->cgroups_->mount().empty())
    return MakeError(ErrorKind::kUsage, "--container: cgroup v2 is not mounted");
  s->log_ = opts.log ? opts.log : [](const std::string& line) {
    fmt::print(stderr, "{}\n", line);
    fflush(stderr);
  };
  for (auto c : opts.containers) {
    for (char& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    s->container_prefixes_.push_back(c);
  }

  ProbeOptions po;
  po.data = opts.data;
  po.secrets = opts.secrets;
  po.ringbuf_bytes = opts.ringbuf_bytes;
  po.uid = opts.uid;
  po.pids = opts.pids;
  po.pid_filter = opts.pid_filter;
  po.cgroup = opts.cgroup;
  po.container_filter = !opts.containers.empty();
  po.max_payload = opts.max_payload;
  ASSIGN_OR_RETURN(s->probes_, GoTlsProbes::Load(po));
  if (po.container_filter) s->ScanContainers(true);  // before any uprobe: the filter is ready
  for (auto& t : s->targets_) {
    ASSIGN_OR_RETURN(t.probes, s->probes_->Attach(t.binary, t.path));
  }

  const int64_t mono_to_epoch = int64_t(ClockNs(CLOCK_REALTIME)) - int64_t(ClockNs(CLOCK_MONOTONIC));
  s->sink_ = std::move(sink);
  s->secret_sink_ = std::move(secret_sink);
  s->mono_to_epoch_ = mono_to_epoch;
  CaptureSession* raw = s.get();
  s->assembler_ = std::make_unique<EventAssembler>(
      [raw](DataEvent&& ev) {
        // One hash lookup per event; /proc or the hierarchy only for an id seen for the first time.
        ev.conn.cgroup = raw->cgroups_->Lookup(ev.cgroup_id, ev.pid);
        if (ev.closed()) {
          raw->summary_.closes++;  // not a call: the summary's events and bytes are data only
          if (ev.end == ConnEnd::kClose && !raw->whole_conns_.empty()) raw->EndCaptureWhole(ev.pid, ev.conn.id);
        } else {
          raw->summary_.events++;
          raw->summary_.bytes += ev.payload.size() - ev.missing;
          if (ev.truncated) {
            raw->summary_.truncated++;
            raw->summary_.uncaptured_bytes += ev.len - ev.payload.size();
          }
        }
        raw->sink_(std::move(ev));
      },
      mono_to_epoch, opts.max_payload);
  s->rb_ = std::make_unique<RingReader>();
  if (auto r = s->rb_->Add(s->probes_->ringbuf_fd(), &CaptureSession::OnRecord, raw); !r.ok()) return r.error();
  if (auto r = s->rb_->Add(s->probes_->secrets_fd(), &CaptureSession::OnSecret, raw); !r.ok()) return r.error();
  return s;
}

CaptureSession::~CaptureSession() = default;

int CaptureSession::probe_count() const {
  int n = 0;
  for (const auto& t : targets_) n += t.probes;
  return n;
}

bool CaptureSession::CaptureWhole(uint32_t pid, uint64_t conn_id) {
  if (whole_conns_.count({pid, conn_id})) return true;
  auto ptr = assembler_->ConnPointer(pid, conn_id);
  if (!ptr) return false;
  if (probes_->max_payload() >= GOTLS_CAPTURE_MAX) return true;  // every call is whole already
  if (whole_conns_.size() >= 4 * GOTLS_WHOLE_CONNS_MAX) {
    // Connections whose close never came (lost, or dropped by the assembler's bound): the kernel's
    // LRU has let them go; so does this.
    for (auto it = whole_conns_.begin(); it != whole_conns_.end();) {
      if (assembler_->ConnPointer(it->first.first, it->first.second)) {
        ++it;
        continue;
      }
      auto key = whole_keys_.find({it->first.first, it->second});
      if (--key->second == 0) whole_keys_.erase(key);
      it = whole_conns_.erase(it);
    }
  }
  if (!probes_->SetCaptureWhole(pid, *ptr)) return false;
  whole_conns_.emplace(std::make_pair(pid, conn_id), *ptr);
  whole_keys_[{pid, *ptr}]++;
  return true;
}

// The connection closed: the kernel removed its entry at Close already, unless CaptureWhole came
// after that (the close reaches user space later); then it goes now.
void CaptureSession::EndCaptureWhole(uint32_t pid, uint64_t conn_id) {
  auto it = whole_conns_.find({pid, conn_id});
  if (it == whole_conns_.end()) return;
  auto key = whole_keys_.find({pid, it->second});
  if (--key->second == 0) {
    probes_->ClearCaptureWhole(pid, it->second);
    whole_keys_.erase(key);
  }
  whole_conns_.erase(it);
}

void CaptureSession::ForgetCaptureWhole(uint32_t pid) {
  for (auto it = whole_conns_.lower_bound({pid, 0}); it != whole_conns_.end() && it->first.first == pid;) {
    probes_->ClearCaptureWhole(pid, it->second);
    whole_keys_.erase({pid, it->second});
    it = whole_conns_.erase(it);
  }
}

int CaptureSession::OnRecord(void* ctx, void* data, size_t size) {
  static_cast<CaptureSession*>(ctx)->assembler_->OnRecord({static_cast<const uint8_t*>(data), size});
  return 0;
}

int CaptureSession::OnSecret(void* ctx, void* data, size_t size) {
  auto* self = static_cast<CaptureSession*>(ctx);
  gotls_secret_event e;
  if (size < sizeof e) return 0;
  std::memcpy(&e, data, sizeof e);
  SecretEvent s;
  s.ts_ns = e.ts_ns + self->mono_to_epoch_;
  s.pid = e.pid;
  s.tid = e.tid;
  s.comm.assign(e.comm, strnlen(e.comm, sizeof e.comm));
  s.uid = e.uid;
  s.ppid = e.ppid;
  s.cgroup_id = e.cgroup_id;
  s.cgroup = self->cgroups_->Lookup(e.cgroup_id, e.pid);
  s.label.assign(e.label, std::min<size_t>(e.label_len, GOTLS_LABEL_MAX));
  s.client_random.assign(reinterpret_cast<const char*>(e.client_random), std::min<size_t>(e.random_len, GOTLS_RANDOM_MAX));
  s.secret.assign(reinterpret_cast<const char*>(e.secret), std::min<size_t>(e.secret_len, GOTLS_SECRET_MAX));
  s.from_master_secret = e.source == GOTLS_SECRET_MASTER;
  if (e.source == GOTLS_SECRET_TRAFFIC) {
    auto update = self->key_updates_.OnTrafficSecret(s, e.half_conn);
    if (!update) return 0;
    s = std::move(*update);
  } else {
    self->key_updates_.OnKeyLog(s);
  }
  self->summary_.secrets++;
  if (self->secret_sink_) self->secret_sink_(std::move(s));
  return 0;
}

void CaptureSession::Run(const std::atomic<bool>& stop, uint64_t deadline_ns, const std::function<void()>& on_idle) {
  uint64_t last_flush = MonotonicNowNs();
  while (!stop.load()) {
    const uint64_t now = MonotonicNowNs();
    if (deadline_ns && now >= deadline_ns) break;
    // The eBPF side wakes us only when the ring fills up (or for secrets); otherwise records are
    // collected every 10 ms: poll() returns on a wakeup or the timeout, consume() drains quietly
    // written records.
    int timeout_ms = 10;
    if (deadline_ns) timeout_ms = static_cast<int>(std::min<uint64_t>(10, (deadline_ns - now) / 1000000 + 1));
    int n = rb_->Poll(timeout_ms);
    if (n < 0 && n != -EINTR) break;
    assembler_->DeliverHeldCloses(MonotonicNowNs());
    // A call whose last chunk was lost would wait forever: give each call a second.
    if (now - last_flush > 1000000000ull) {
      assembler_->FlushOlderThan(now - 1000000000ull);
      last_flush = now;
      if (!container_prefixes_.empty()) ScanContainers(false);  // containers started since
      // Processes that exited without closing their connections (a short-lived client): their
      // connection state goes, so memory does not grow with the processes that came and went.
      std::vector<uint32_t> gone;
      for (uint32_t pid : assembler_->Pids())
        if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) gone.push_back(pid);
      if (!gone.empty()) {
        // A dead process's records are all in the ring: read them first. A close it sent just
        // before exiting, after the poll above, found its connection forgotten (seen once in CI:
        // a client's last connection without its close event).
        rb_->Consume();
        for (uint32_t pid : gone) {
          assembler_->ForgetProcess(pid);
          if (!whole_conns_.empty()) ForgetCaptureWhole(pid);
          if (on_process_exit_) on_process_exit_(pid);
        }
      }
    }
    on_idle();
  }
}

// Walks the cgroup v2 hierarchy for the directories of containers matching a --container prefix
// and makes the kernel's container_cgroups map hold exactly those (ids of removed cgroups go).
void CaptureSession::ScanContainers(bool first) {
  std::set<uint64_t> now;
  std::vector<bool> matched(container_prefixes_.size());
  cgroups_->Walk([&](uint64_t id, const std::shared_ptr<const CgroupInfo>& info) {
    if (!info->container) return;
    for (size_t i = 0; i < container_prefixes_.size(); i++) {
      if (info->container->id.compare(0, container_prefixes_[i].size(), container_prefixes_[i]) != 0) continue;
      matched[i] = true;
      now.insert(id);
      if (!container_cgroups_.count(id)) {
        if (!probes_->AddContainerCgroup(id)) {
          log_(fmt::format("container {}: cannot add its cgroup to the filter (more than {} container cgroups)",
                           info->container->id.substr(0, 12), GOTLS_CONTAINER_CGROUPS_MAX));
          now.erase(id);
          break;
        }
        log_(fmt::format("container {}: capturing{}{} ({})", info->container->id.substr(0, 12),
                         info->container->runtime.empty() ? "" : " ", info->container->runtime, info->path));
      }
      break;
    }
  });
  for (uint64_t id : container_cgroups_)
    if (!now.count(id)) probes_->RemoveContainerCgroup(id);
  container_cgroups_ = std::move(now);
  if (first)
    for (size_t i = 0; i < container_prefixes_.size(); i++)
      if (!matched[i])
        log_(fmt::format("container {}: no such container yet; its processes are captured once it starts",
                         container_prefixes_[i]));
}

SessionSummary CaptureSession::Finish() {
  probes_->DetachAll();
  while (rb_->Consume() > 0) {
  }
  assembler_->FlushAll();
  summary_.incomplete = assembler_->incomplete_events();
  summary_.counters = probes_->ReadCounters();
  return summary_;
}

Result<bool> CaptureSession::AddRingBuffer(int map_fd, int (*fn)(void* ctx, void* data, size_t size), void* ctx) {
  return rb_->Add(map_fd, fn, ctx);
}

}  // namespace gotlscap::capture
