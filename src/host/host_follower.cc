#include "host/host_follower.h"

#include <unistd.h>

#include <fmt/format.h>

namespace gotlscap::host {
namespace {

constexpr size_t kCommLen = 15;  // TASK_COMM_LEN - 1: what the kernel keeps of a program name

std::string Basename(const std::string& path) {
  std::string p = path;
  const std::string deleted = " (deleted)";
  if (p.size() > deleted.size() && p.compare(p.size() - deleted.size(), deleted.size(), deleted) == 0)
    p.resize(p.size() - deleted.size());
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string Readlink(const std::string& link) {
  char buf[4096];
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

HostFollower::HostFollower(capture::GoTlsProbes& probes, const FollowOptions& opts, Log log)
    : probes_(probes), opts_(opts), log_(std::move(log)) {}

HostFollower::~HostFollower() { Stop(); }

Result<std::unique_ptr<HostFollower>> HostFollower::Start(capture::GoTlsProbes& probes, const FollowOptions& opts,
                                                          Log log) {
  std::unique_ptr<HostFollower> f(new HostFollower(probes, opts, std::move(log)));
  // Watch execs first, then scan: a program started in between is seen at least once (twice is
  // harmless: the second sighting finds its binary attached).
  HostFollower* raw = f.get();
  if (opts.tree_root) {
    auto root = ReadParent(opts.tree_root);
    if (!root) return MakeError(ErrorKind::kNoProcess, fmt::format("no such process: {}", opts.tree_root));
    f->AddMember(opts.tree_root, root->start_time);
  }
  ExecWatcher::ForkCallback on_fork;
  if (opts.tree_root) on_fork = [raw](uint32_t parent, uint32_t child) { raw->OnFork(parent, child); };
  ASSIGN_OR_RETURN(f->watcher_, ExecWatcher::Start([raw](const ExecWatcher::Exec& e) { raw->OnExec(e); },
                                                   [raw](uint32_t pid) { raw->OnExecDone(pid); }, std::move(on_fork)));
  // A command's tree is its root alone, which has not exec'ed its program yet: nothing to scan.
  if (opts.tree_root) return f;

  std::unordered_map<FileKey, std::vector<ProcessInfo>, FileKeyHash> by_file;
  for (auto& p : ScanProcesses()) by_file[p.file].push_back(std::move(p));
  for (auto& [key, procs] : by_file) {
    std::vector<Proc> list;
    for (const auto& p : procs) list.push_back({p.pid, p.start_time});
    const ProcessInfo& first = procs.front();
    {
      std::lock_guard<std::mutex> l(f->mu_);
      if (f->mount_namespaces_.insert(first.mnt_ns).second) f->watcher_->WatchMountsOf(first.pid);
    }
    f->Track(list, key, first.exe_link, first.exe, first.comm, first.uid);
  }
  return f;
}

void HostFollower::Stop() {
  watcher_.reset();  // joins the fanotify thread: no attach can start after this
}

bool HostFollower::Wanted(const std::string& comm, uint32_t uid) const {
  if (opts_.uid && *opts_.uid != uid) return false;
  for (const auto& c : opts_.exclude_comms)
    if (c.substr(0, kCommLen) == comm) return false;
  if (opts_.comms.empty()) return true;
  for (const auto& c : opts_.comms)
    if (c.substr(0, kCommLen) == comm) return true;
  return false;
}

void HostFollower::OnExec(const ExecWatcher::Exec& e) {
  // The program waits for this answer: the common case (a binary already known not to be Go)
  // must cost one fstat and a cache hit, no /proc reads (a command's tree: its parent chain).
  if (opts_.tree_root && !JoinTree(e.pid)) return;
  auto key = FileKeyOfFd(e.fd);
  if (!key.ok()) return;
  const std::string path = fmt::format("/proc/self/fd/{}", e.fd);
  execs_++;  // no lock: the common path must not wait for the capture loop's Tick
  std::shared_ptr<const BinaryVerdict> v = cache_.Get(*key, path);
  if (!v || !v->tls) {
    NoteSkipped(*key, v, Readlink(path));
    return;
  }
  const std::string shown = ShownPath(e.pid, Readlink(path), *key);
  // The process keeps its pid and start time across exec; its name becomes the file's name.
  auto proc = ReadProcess(e.pid);
  if (proc) {
    std::lock_guard<std::mutex> l(mu_);
    if (mount_namespaces_.size() > 4096) mount_namespaces_.clear();  // bounded; re-marking is harmless
    if (mount_namespaces_.insert(proc->mnt_ns).second) watcher_->WatchMountsOf(e.pid);
  }
  Track({{e.pid, proc ? proc->start_time : 0}}, *key, path, shown, Basename(shown).substr(0, kCommLen),
        proc ? proc->uid : 0);
}

void HostFollower::OnExecDone(uint32_t pid) {
  // After the fact: for most programs OnExec already ran and this only records the pid; it
  // matters for programs on filesystems fanotify does not watch yet (another mount namespace).
  if (opts_.tree_root && !JoinTree(pid)) return;
  auto proc = ReadProcess(pid);
  if (!proc) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (mount_namespaces_.size() > 4096) mount_namespaces_.clear();
    if (mount_namespaces_.insert(proc->mnt_ns).second) watcher_->WatchMountsOf(pid);
  }
  Track({{proc->pid, proc->start_time}}, proc->file, proc->exe_link, proc->exe, proc->comm, proc->uid);
}

void HostFollower::OnFork(uint32_t parent, uint32_t child) {
  // Only the map: every fork of the host comes here. A child whose parent joined later (or whose
  // event was lost) is still found at its exec, by its parent chain.
  {
    std::lock_guard<std::mutex> l(tree_mu_);
    if (!tree_.count(parent)) return;
  }
  // Its program is its parent's, attached already: from now on the kernel lets its events through.
  if (auto info = ReadParent(child)) AddMember(child, info->start_time);
}

bool HostFollower::JoinTree(uint32_t pid) {
  const uint32_t self = static_cast<uint32_t>(getpid());
  uint32_t p = pid;
  for (int depth = 0; depth < 256 && p > 1; ++depth) {
    auto info = ReadParent(p);
    if (!info) return false;
    bool member = info->ppid == self;  // the root, or an orphan of the tree (we are its subreaper)
    if (!member) {
      std::lock_guard<std::mutex> l(tree_mu_);
      auto it = tree_.find(p);
      member = it != tree_.end() && it->second == info->start_time;  // not a reused pid
    }
    if (member) {
      if (p != pid) {
        auto self_info = ReadParent(pid);
        if (!self_info) return false;
        AddMember(pid, self_info->start_time);
      } else {
        AddMember(pid, info->start_time);
      }
      return true;
    }
    p = info->ppid;
  }
  return false;
}

void HostFollower::AddMember(uint32_t pid, uint64_t start_time) {
  std::lock_guard<std::mutex> l(tree_mu_);
  auto [it, added] = tree_.insert_or_assign(pid, start_time);
  if (added) probes_.AddPid(pid);
}

void HostFollower::PruneTree() {
  std::lock_guard<std::mutex> l(tree_mu_);
  for (auto it = tree_.begin(); it != tree_.end();) {
    auto info = ReadParent(it->first);
    if (info && info->start_time == it->second) {
      ++it;
    } else {
      probes_.RemovePid(it->first);  // gone (or the pid is another process's now)
      it = tree_.erase(it);
    }
  }
}

std::vector<uint32_t> HostFollower::tree_pids() const {
  std::lock_guard<std::mutex> l(tree_mu_);
  std::vector<uint32_t> out;
  for (const auto& [pid, start] : tree_) out.push_back(pid);
  return out;
}

void HostFollower::NoteSkipped(const FileKey& key, const std::shared_ptr<const BinaryVerdict>& v,
                               const std::string& shown_path) {
  std::lock_guard<std::mutex> l(skipped_mu_);
  if (skipped_logged_.size() > 4096) skipped_logged_.clear();
  if (!skipped_logged_.insert(key).second) return;
  skipped_++;
  if (!opts_.verbose) return;
  if (v && v->go)
    log_(fmt::format("skipped {} {}: {}", v->version.empty() ? "go" : v->version, shown_path, v->reason));
  else
    log_(fmt::format("skipped {}: {}", shown_path, v ? v->reason : "cannot be read"));
}

void HostFollower::Track(const std::vector<Proc>& procs, const FileKey& key, const std::string& path,
                         const std::string& shown_path, const std::string& comm, uint32_t uid) {
  auto count_into = [&](Binary& b, const std::vector<Proc>& list) {
    for (const auto& p : list) summary_.processes += b.pids.emplace(p.pid, p.start_time).second;
    b.idle_since_ns = 0;
  };
  // Under mu_: true when the binary is attached, or being attached by the other thread (which
  // then counts these processes too).
  auto known = [&]() {
    if (auto it = binaries_.find(key); it != binaries_.end()) {
      count_into(it->second, procs);
      return true;
    }
    if (auto a = attaching_.find(key); a != attaching_.end()) {
      a->second.insert(a->second.end(), procs.begin(), procs.end());
      return true;
    }
    return false;
  };
  {
    std::lock_guard<std::mutex> l(mu_);
    if (known() || !Wanted(comm, uid)) return;
  }
  std::shared_ptr<const BinaryVerdict> v = cache_.Get(key, path);  // analysis outside the lock
  if (!v || !v->tls) return NoteSkipped(key, v, shown_path);
  uint64_t group;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (known()) return;  // the other thread was faster
    attaching_[key] = procs;
    group = next_group_++;
  }
  // Attaching takes a while (a uprobe per site, each installed in every process mapping the
  // file): outside the lock, so neither execs elsewhere on the host (the fanotify thread answers
  // them, and they wait for the answer) nor the capture loop's Tick wait for it.
  auto attached = probes_.AttachGroup(*v->binary, path, group);
  std::vector<Proc> seen;
  {
    std::lock_guard<std::mutex> l(mu_);
    seen = std::move(attaching_[key]);
    attaching_.erase(key);
    if (attached.ok()) {
      Binary& b = binaries_[key];
      b.verdict = v;
      b.shown_path = shown_path;
      b.group = group;
      b.probes = *attached;
      count_into(b, seen);
      summary_.binaries_attached++;
    } else {
      summary_.skipped++;
    }
  }
  if (!attached.ok()) {
    log_(fmt::format("cannot attach to {}: {}", shown_path, attached.error().message));
    probes_.DetachGroup(group);  // the uprobes attached before the error
    return;
  }
  log_(fmt::format("attached {} {} ({} pid{})", v->version, shown_path, seen.size(), seen.size() == 1 ? "" : "s"));
}

void HostFollower::Tick(uint64_t now_ns) {
  if (now_ns < next_tick_ns_) return;
  next_tick_ns_ = now_ns + 1'000'000'000;
  // Removing uprobes is slow (RCU grace periods): done after the lock is released, so execs on
  // the host, which need the lock to be answered, never wait for it.
  std::vector<Binary> to_detach;
  TickLocked(now_ns, to_detach);
  for (Binary& b : to_detach) {
    probes_.DetachGroup(b.group);
    log_(fmt::format("detached {} {} (no process left)", b.verdict->version, b.shown_path));
  }
}

void HostFollower::TickLocked(uint64_t now_ns, std::vector<Binary>& to_detach) {
  if (opts_.tree_root) PruneTree();
  std::lock_guard<std::mutex> l(mu_);
  bool candidates = false;
  for (auto& [key, b] : binaries_) {
    for (auto p = b.pids.begin(); p != b.pids.end();) {
      auto info = ReadProcess(p->first);
      // Gone, a new process under a reused pid, or exec'ed into another program.
      bool alive = info && (p->second == 0 || info->start_time == p->second) && info->file == key;
      p = alive ? std::next(p) : b.pids.erase(p);
    }
    if (!b.pids.empty()) continue;
    if (b.idle_since_ns == 0) b.idle_since_ns = now_ns;
    if (now_ns - b.idle_since_ns >= opts_.linger_ns) candidates = true;
  }
  if (!candidates) return;
  // Before detaching, one scan: processes that forked (no exec) run the binary unseen.
  for (const auto& p : ScanProcesses()) {
    if (opts_.tree_root) {
      std::lock_guard<std::mutex> l(tree_mu_);
      if (!tree_.count(p.pid)) continue;
    }
    auto it = binaries_.find(p.file);
    if (it != binaries_.end() && it->second.pids.emplace(p.pid, p.start_time).second) {
      it->second.idle_since_ns = 0;
      summary_.processes++;
    }
  }
  for (auto it = binaries_.begin(); it != binaries_.end();) {
    Binary& b = it->second;
    if (b.pids.empty() && b.idle_since_ns && now_ns - b.idle_since_ns >= opts_.linger_ns) {
      summary_.binaries_detached++;
      to_detach.push_back(std::move(b));
      it = binaries_.erase(it);
    } else {
      ++it;
    }
  }
}

FollowSummary HostFollower::summary() const {
  std::lock_guard<std::mutex> l(mu_);
  FollowSummary s = summary_;
  s.attached_now = binaries_.size();
  s.execs = execs_.load();
  s.skipped += skipped_.load();
  return s;
}

int HostFollower::probe_count() const {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& [key, b] : binaries_) n += b.probes;
  return n;
}

}  // namespace gotlscap::host
