#include "host/exec_watcher.h"

#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

namespace gotlscap::host {
namespace {

// Filesystems that hold no programs: marking them would only cost.
bool PseudoFs(const std::string& type) {
  static const std::set<std::string> kPseudo = {
      "proc",   "sysfs",    "cgroup",     "cgroup2",   "devpts",      "mqueue",  "tracefs",
      "debugfs", "securityfs", "bpf",     "pstore",    "hugetlbfs",   "configfs", "fusectl",
      "binfmt_misc", "autofs", "nsfs",    "rpc_pipefs", "efivarfs",   "selinuxfs", "devtmpfs"};
  return kPseudo.count(type) > 0;
}

// mountinfo escapes spaces and the like as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The process connector: a netlink socket on which the kernel reports every exec (and fork,
// exit...) once subscribed. -1 when the kernel has none.
int OpenProcConnector() {
  int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd < 0) return -1;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = CN_IDX_PROC;
  sa.nl_pid = 0;  // let the kernel pick a unique port id
  // nlmsghdr + cn_msg + the subscribe operation, laid out by hand (cn_msg ends in a flexible array).
  alignas(nlmsghdr) char msg[NLMSG_SPACE(sizeof(cn_msg) + sizeof(proc_cn_mcast_op))] = {};
  auto* nl = reinterpret_cast<nlmsghdr*>(msg);
  nl->nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_cn_mcast_op));
  nl->nlmsg_type = NLMSG_DONE;
  auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nl));
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->len = sizeof(proc_cn_mcast_op);
  const proc_cn_mcast_op op = PROC_CN_MCAST_LISTEN;
  std::memcpy(cn->data, &op, sizeof op);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || send(fd, msg, nl->nlmsg_len, 0) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<ExecWatcher>> ExecWatcher::Start(Callback cb, DoneCallback on_exec_done,
                                                        ForkCallback on_fork) {
  std::unique_ptr<ExecWatcher> w(new ExecWatcher());
  w->cb_ = std::move(cb);
  w->done_cb_ = std::move(on_exec_done);
  w->fork_cb_ = std::move(on_fork);
  w->proc_fd_ = OpenProcConnector();
  // FAN_CLASS_CONTENT: permission events; the event's fd is opened read-only for analysis.
  w->fan_fd_ = fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (w->fan_fd_ < 0) {
    int err = errno;
    if (err == EPERM) return MakeError(ErrorKind::kPermission, "following new programs needs root (CAP_SYS_ADMIN)");
    return MakeError(ErrorKind::kInternal, fmt::format("fanotify: {}", std::strerror(err)));
  }
  w->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::ifstream mi("/proc/self/mountinfo");
  std::stringstream ss;
  ss << mi.rdbuf();
  w->MarkMounts("", ss.str());
  if (w->filesystems() == 0)
    return MakeError(ErrorKind::kInternal, "fanotify: no filesystem could be watched for new programs");
  w->thread_ = std::thread([raw = w.get()] { raw->Loop(); });
  return w;
}

ExecWatcher::~ExecWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (fan_fd_ >= 0) close(fan_fd_);  // the kernel allows whatever is still pending
  if (proc_fd_ >= 0) close(proc_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

int ExecWatcher::filesystems() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(marked_devs_.size());
}

void ExecWatcher::MarkMounts(const std::string& root_prefix, const std::string& mountinfo) {
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
    std::istringstream f(line);
    std::string id, parent, devnum, root, mount_point, opts, field;
    if (!(f >> id >> parent >> devnum >> root >> mount_point >> opts)) continue;
    while (f >> field && field != "-") {
    }
    std::string type;
    if (!(f >> type) || PseudoFs(type)) continue;
    const std::string path = root_prefix + Unescape(mount_point);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!marked_devs_.insert(st.st_dev).second) continue;
    }
    // A whole filesystem (every bind mount of it, in any namespace) when the kernel can; a mount
    // otherwise (filesystems without an fsid).
    if (fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, AT_FDCWD, path.c_str()) != 0 &&
        fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, AT_FDCWD, path.c_str()) != 0) {
      std::lock_guard<std::mutex> l(mu_);
      marked_devs_.erase(st.st_dev);
    }
  }
}

void ExecWatcher::WatchMountsOf(uint32_t pid) {
  std::ifstream mi(fmt::format("/proc/{}/mountinfo", pid));
  if (!mi) return;
  std::stringstream ss;
  ss << mi.rdbuf();
  MarkMounts(fmt::format("/proc/{}/root", pid), ss.str());
}

void ExecWatcher::Loop() {
  alignas(fanotify_event_metadata) char buf[8192];
  pollfd fds[3] = {{fan_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}, {proc_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, proc_fd_ >= 0 ? 3 : 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (proc_fd_ >= 0 && fds[2].revents) ReadProcEvents();
    if (!(fds[0].revents & POLLIN)) continue;
    ssize_t n = read(fan_fd_, buf, sizeof buf);
    if (n <= 0) continue;
    auto* m = reinterpret_cast<fanotify_event_metadata*>(buf);
    for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      if (m->vers != FANOTIFY_METADATA_VERSION) continue;
      if (m->fd < 0) continue;
      if (m->mask & FAN_OPEN_EXEC_PERM) {
        events_++;
        try {
          cb_(Exec{static_cast<uint32_t>(m->pid), m->fd});
        } catch (...) {
          // Never leave a program waiting: the answer below goes out whatever happened.
        }
        fanotify_response r{m->fd, FAN_ALLOW};
        (void)!write(fan_fd_, &r, sizeof r);
      }
      close(m->fd);
    }
  }
}

void ExecWatcher::ReadProcEvents() {
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = recv(proc_fd_, buf, sizeof buf, 0);
    if (n <= 0) return;  // EAGAIN: drained (ENOBUFS: events lost; the next exec or scan catches up)
    for (auto* nl = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nl, static_cast<unsigned>(n));
         nl = NLMSG_NEXT(nl, n)) {
      auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nl));
      if (cn->id.idx != CN_IDX_PROC || cn->len < sizeof(proc_event)) continue;
      auto* ev = reinterpret_cast<proc_event*>(cn->data);
      // Only whole processes: a thread of a process exec'ing reports the process's tgid.
      if (ev->what == proc_event::PROC_EVENT_EXEC) done_cb_(static_cast<uint32_t>(ev->event_data.exec.process_tgid));
      // A new process, not a new thread (whose pid differs from its tgid).
      if (ev->what == proc_event::PROC_EVENT_FORK && fork_cb_ &&
          ev->event_data.fork.child_pid == ev->event_data.fork.child_tgid)
        fork_cb_(static_cast<uint32_t>(ev->event_data.fork.parent_tgid),
                 static_cast<uint32_t>(ev->event_data.fork.child_tgid));
    }
  }
}

}  // namespace gotlscap::host
