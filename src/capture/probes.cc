#include "capture/probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "gotls.skel.h"

namespace gotlscap::capture {
namespace {

// libbpf's own messages are multi-line dumps; keep the last warning for our one-line errors
// and print everything only with GOTLSCAP_LIBBPF_DEBUG set.
std::string g_last_libbpf_warning;
int LibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  static char buf[1 << 16];  // verifier logs come in one large piece
  vsnprintf(buf, sizeof buf, format, args);
  if (getenv("GOTLSCAP_LIBBPF_DEBUG")) fputs(buf, stderr);
  if (level == LIBBPF_WARN) {
    g_last_libbpf_warning = buf;
    while (!g_last_libbpf_warning.empty() && g_last_libbpf_warning.back() == '\n') g_last_libbpf_warning.pop_back();
  }
  return 0;
}

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 4096;
  while (p < v) p <<= 1;
  return p;
}

// Loading needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN). Checked up front because the kernel
// answers EPERM/EACCES both for missing privileges and for a verifier rejection.
}  // namespace

bool HasBpfPrivileges() {
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return geteuid() == 0;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
  fclose(f);
  auto has = [&](int cap) { return (eff >> cap) & 1; };
  return has(21 /*CAP_SYS_ADMIN*/) || (has(39 /*CAP_BPF*/) && has(38 /*CAP_PERFMON*/));
}

static Error PermissionError() {
  return MakeError(ErrorKind::kPermission, "capturing needs root (or the CAP_BPF and CAP_PERFMON capabilities)");
}

Error BpfLoadError(int err) {
  if ((err == -EPERM || err == -EACCES) && !HasBpfPrivileges()) return PermissionError();
  // The last libbpf line names the failing step; the full verifier log is behind GOTLSCAP_LIBBPF_DEBUG=1.
  std::string last = g_last_libbpf_warning.substr(0, g_last_libbpf_warning.find('\n'));
  return MakeError(ErrorKind::kInternal, fmt::format("the kernel refused the eBPF programs: {} ({}; details with "
                                                     "GOTLSCAP_LIBBPF_DEBUG=1)", std::strerror(-err), last));
}

Result<std::unique_ptr<GoTlsProbes>> GoTlsProbes::Load(const ProbeOptions& opts) {
  libbpf_set_print(LibbpfPrint);
  if (opts.max_payload == 0 || opts.max_payload > GOTLS_CAPTURE_MAX)
    return MakeError(ErrorKind::kUsage, fmt::format("max payload {}: not in 1..{}", opts.max_payload, GOTLS_CAPTURE_MAX));
  if (!HasBpfPrivileges()) return PermissionError();
  auto p = std::unique_ptr<GoTlsProbes>(new GoTlsProbes());
  p->opts_ = opts;
  p->skel_ = gotls_bpf__open();
  if (!p->skel_) return BpfLoadError(-errno);
  if (opts.uid) p->skel_->rodata->filter_uid = *opts.uid;
  p->skel_->rodata->filter_pids = !opts.pids.empty() || opts.pid_filter;
  p->skel_->rodata->filter_cgroup = !opts.cgroup.empty();
  p->skel_->rodata->filter_containers = opts.container_filter;
  p->skel_->rodata->max_payload = opts.max_payload;
  // Without data probes the data ring buffer stays minimal.
  bpf_map__set_max_entries(p->skel_->maps.events, opts.data ? RoundUpPow2(opts.ringbuf_bytes) : 4096);
  if (int err = gotls_bpf__load(p->skel_)) return BpfLoadError(err);
  if (!opts.cgroup.empty()) {
    int cg = open(opts.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint32_t zero = 0;
    int err = cg < 0 ? errno : 0;
    if (cg >= 0 && bpf_map__update_elem(p->skel_->maps.target_cgroup, &zero, sizeof zero, &cg, sizeof cg, BPF_ANY) != 0)
      err = errno;
    if (cg >= 0) close(cg);  // the map holds its own reference
    if (err)
      return MakeError(ErrorKind::kUsage, fmt::format("--cgroup {}: not a cgroup v2 directory ({})", opts.cgroup,
                                                      std::strerror(err)));
  }
  for (uint32_t pid : opts.pids) p->AddPid(pid);
  return p;
}

void GoTlsProbes::AddPid(uint32_t pid) {
  uint8_t one = 1;
  bpf_map__update_elem(skel_->maps.target_pids, &pid, sizeof pid, &one, sizeof one, BPF_ANY);
}

void GoTlsProbes::RemovePid(uint32_t pid) { bpf_map__delete_elem(skel_->maps.target_pids, &pid, sizeof pid, 0); }

bool GoTlsProbes::AddContainerCgroup(uint64_t id) {
  uint8_t one = 1;
  return bpf_map__update_elem(skel_->maps.container_cgroups, &id, sizeof id, &one, sizeof one, BPF_ANY) == 0;
}

void GoTlsProbes::RemoveContainerCgroup(uint64_t id) {
  bpf_map__delete_elem(skel_->maps.container_cgroups, &id, sizeof id, 0);
}

bool GoTlsProbes::SetCaptureWhole(uint32_t pid, uint64_t conn_ptr) {
  if (opts_.max_payload >= GOTLS_CAPTURE_MAX) return true;  // the kernel never looks at the map
  gotls_conn_key k = {};
  k.tgid = pid;
  k.conn_ptr = conn_ptr;
  uint8_t one = 1;
  return bpf_map__update_elem(skel_->maps.whole_conns, &k, sizeof k, &one, sizeof one, BPF_ANY) == 0;
}

void GoTlsProbes::ClearCaptureWhole(uint32_t pid, uint64_t conn_ptr) {
  if (opts_.max_payload >= GOTLS_CAPTURE_MAX) return;
  gotls_conn_key k = {};
  k.tgid = pid;
  k.conn_ptr = conn_ptr;
  bpf_map__delete_elem(skel_->maps.whole_conns, &k, sizeof k, 0);
}

GoTlsProbes::~GoTlsProbes() {
  DetachAll();
  if (skel_) gotls_bpf__destroy(skel_);
}

Result<int> GoTlsProbes::Attach(const gobin::GoBinary& bin, const std::string& path) {
  return AttachGroup(bin, path, 0);
}

Result<int> GoTlsProbes::AttachLinks(const gobin::GoBinary& bin, const std::string& path,
                                     std::vector<bpf_link*>& made) {
  const uint64_t cookie = bin.abi == gobin::Abi::kStack ? GOTLS_COOKIE_STACK_ABI : 0;
  int attached = 0;
  auto attach = [&](bpf_program* prog, uint64_t offset, uint64_t extra_cookie = 0) -> Result<int> {
    LIBBPF_OPTS(bpf_uprobe_opts, o, .bpf_cookie = cookie | extra_cookie, .retprobe = false);
    bpf_link* link = bpf_program__attach_uprobe_opts(prog, -1, path.c_str(), offset, &o);
    if (!link) {
      int err = errno;
      if ((err == EPERM || err == EACCES) && !HasBpfPrivileges()) return PermissionError();
      return MakeError(ErrorKind::kInternal,
                       fmt::format("cannot attach a uprobe to {} at offset {:#x}: {}", path, offset, std::strerror(err)));
    }
    made.push_back(link);
    return ++attached;
  };
  auto site = [&](const char* name) { return bin.Function(name); };
  // An entry probe: on the emulated stack-check branch where there is one (FindEntryProbe).
  auto attach_entry = [&](bpf_program* prog, const gobin::FunctionSite& fn, uint64_t extra_cookie = 0) {
    return attach(prog, fn.file_offset + fn.entry_probe_offset,
                  extra_cookie | (fn.entry_probe_at_check ? GOTLS_COOKIE_AT_STACK_CHECK : 0));
  };
  if (opts_.data) {
    const gobin::FunctionSite* write = site("crypto/tls.(*Conn).writeRecordLocked");
    const gobin::FunctionSite* read = site("crypto/tls.(*Conn).Read");
    if (!write || !read)
      return MakeError(ErrorKind::kMissingFunction, fmt::format("{}: crypto/tls functions missing", path));
    // Entry hooks fire once per call: after the stack-growth check, or on its branch when it is
    // not taken (a call that grows its stack re-runs the entry).
    if (auto r = attach_entry(skel_->progs.gotls_write_record, *write); !r.ok())
      return r.error();
    // Read: RET probes alone where the analysis proved c and b are in their stack slots at every
    // RET (gobin::ReadPath); else an entry probe stashes them for the RETs.
    const bool ret_only = bin.read_path == gobin::ReadPath::kRetOnly;
    if (!ret_only)
      if (auto r = attach_entry(skel_->progs.gotls_read_entry, *read); !r.ok())
        return r.error();
    // amd64: most return paths are read at Read's deferred call (gobin::PlanReadExits); RETs that
    // return n == 0 have nothing to capture; the others keep a RET probe.
    std::vector<uint64_t> rets = bin.read_ret_probes;
    for (const auto& exit : bin.read_exits) {
      auto idx = ReadExitIndex(exit);
      if (!idx.ok()) {  // the layout table is full: this binary's RETs get their probes back
        rets.insert(rets.end(), exit.rets.begin(), exit.rets.end());
        continue;
      }
      if (auto r = attach(skel_->progs.gotls_read_exit, exit.file_offset,
                          uint64_t{*idx} << 32 | (exit.at_check ? GOTLS_COOKIE_AT_STACK_CHECK : 0));
          !r.ok())
        return r.error();
    }
    for (uint64_t ret : rets)
      if (auto r = attach(skel_->progs.gotls_read_return, read->file_offset + ret,
                          ret_only ? GOTLS_COOKIE_READ_RET_ONLY : 0);
          !r.ok())
        return r.error();
    // Connection ends (close events). Optional: a program without it still has its data captured.
    if (const auto* close = site("crypto/tls.(*Conn).Close"))
      if (auto r = attach_entry(skel_->progs.gotls_close, *close); !r.ok())
        return r.error();
  }
  if (opts_.secrets) {
    const gobin::FunctionSite* keylog = site("crypto/tls.(*Config).writeKeyLog");
    if (!keylog)
      return MakeError(ErrorKind::kMissingFunction, fmt::format("{}: crypto/tls.(*Config).writeKeyLog missing", path));
    if (auto r = attach_entry(skel_->progs.gotls_write_key_log, *keylog); !r.ok())
      return r.error();
    // Present in every version, but a client-only program may have it dead-code eliminated.
    if (const auto* kms = site("crypto/tls.keysFromMasterSecret"))
      if (auto r = attach_entry(skel_->progs.gotls_keys_from_master, *kms); !r.ok())
        return r.error();
    // TLS 1.3 key changes (KeyUpdate). Go 1.21 added a `level` argument before the secret.
    if (const auto* sts = site("crypto/tls.(*halfConn).setTrafficSecret")) {
      const bool after_level = bin.version && bin.version->AtLeast(1, 21);
      if (auto r = attach_entry(skel_->progs.gotls_set_traffic_secret, *sts,
                                after_level ? GOTLS_COOKIE_SECRET_AFTER_LEVEL : 0);
          !r.ok())
        return r.error();
    }
  }
  return attached;
}

namespace {
// Removing a uprobe waits for an RCU grace period (tens of ms, ~0.1 s on a busy machine), one
// after the other when done in a loop: a binary's 13 uprobes took over a second. In parallel the
// waits overlap.
void DestroyLinks(const std::vector<bpf_link*>& links) {
  if (links.size() <= 1) {
    for (bpf_link* l : links) bpf_link__destroy(l);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(links.size());
  for (bpf_link* l : links) threads.emplace_back([l] { bpf_link__destroy(l); });
  for (auto& t : threads) t.join();
}
}  // namespace

void GoTlsProbes::DetachAll() {
  std::vector<bpf_link*> gone;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    gone.swap(links_);
    groups_.clear();
  }
  DestroyLinks(gone);
}

Result<uint32_t> GoTlsProbes::ReadExitIndex(const gobin::GoBinary::ReadExitProbe& e) {
  gotls_read_exit v = {};
  v.to_entry = e.to_entry;
  v.n_off = e.n_off;
  v.err_off = e.err_off;
  v.in_callee = e.in_callee;
  v.nsites = static_cast<uint8_t>(std::min<size_t>(e.return_sites.size(), GOTLS_READ_EXIT_SITES));
  for (size_t i = 0; i < v.nsites; i++) v.sites[i] = e.return_sites[i];
  const std::string key(reinterpret_cast<const char*>(&v), sizeof v);
  std::lock_guard<std::mutex> l(read_exit_mu_);
  if (auto it = read_exit_ids_.find(key); it != read_exit_ids_.end()) return it->second;
  // Never freed: a layout is 44 bytes and binaries of one build share theirs.
  if (read_exit_ids_.size() >= GOTLS_READ_EXITS_MAX)
    return MakeError(ErrorKind::kInternal, fmt::format("more than {} different Go binaries traced", GOTLS_READ_EXITS_MAX));
  const uint32_t idx = static_cast<uint32_t>(read_exit_ids_.size());
  if (bpf_map__update_elem(skel_->maps.read_exits, &idx, sizeof idx, &v, sizeof v, BPF_ANY) != 0)
    return MakeError(ErrorKind::kInternal, fmt::format("cannot store a Read exit layout: {}", std::strerror(errno)));
  read_exit_ids_.emplace(key, idx);
  return idx;
}

int GoTlsProbes::ringbuf_fd() const { return bpf_map__fd(skel_->maps.events); }
int GoTlsProbes::secrets_fd() const { return bpf_map__fd(skel_->maps.secrets); }

ProbeCounters GoTlsProbes::ReadCounters() const {
  ProbeCounters out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu) * GOTLS_CNT_MAX);
  uint32_t zero = 0;
  if (bpf_map__lookup_elem(skel_->maps.counters, &zero, sizeof zero, vals.data(), vals.size() * sizeof(uint64_t), 0))
    return out;
  for (int c = 0; c < ncpu; c++)
    for (int i = 0; i < GOTLS_CNT_MAX; i++) out.v[i] += vals[static_cast<size_t>(c) * GOTLS_CNT_MAX + i];
  return out;
}

Result<int> GoTlsProbes::AttachGroup(const gobin::GoBinary& binary, const std::string& path, uint64_t group) {
  std::vector<bpf_link*> made;
  auto n = AttachLinks(binary, path, made);
  std::lock_guard<std::mutex> l(links_mu_);
  links_.insert(links_.end(), made.begin(), made.end());
  // On failure too: the uprobes attached before the error belong to the group, to be detached.
  if (group != 0) groups_[group] = std::move(made);
  return n;
}

void GoTlsProbes::DetachGroup(uint64_t group) {
  std::vector<bpf_link*> gone;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    auto it = groups_.find(group);
    if (it == groups_.end()) return;
    gone = std::move(it->second);
    groups_.erase(it);
    for (bpf_link* link : gone) links_.erase(std::remove(links_.begin(), links_.end(), link), links_.end());
  }
  DestroyLinks(gone);  // outside the lock: other binaries attach meanwhile
}

}  // namespace gotlscap::capture
