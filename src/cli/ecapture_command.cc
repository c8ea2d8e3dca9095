#include "cli/ecapture_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/capture_common.h"
#include "cli/keylog_command.h"
#include "cli/pcap_command.h"
#include "cli/text_command.h"

namespace gotlscap::cli {
namespace {

// eCapture flags that gotlscap accepts and ignores, with the reason it needs none of them.
struct IgnoredFlag {
  const char* name;   // CLI11 spelling
  bool takes_value;
  const char* why;
};
const IgnoredFlag kIgnored[] = {
    {"-b,--btf", true, "CO-RE against the kernel's BTF is always used"},
    {"--mapsize", true, "events go through a BPF ring buffer sized by gotlscap (text: --ringbuf-mb)"},
    {"-t,--tsize", true, "payloads are not truncated: every byte is captured (up to 32 MiB per call; gotlscap's "
                         "--max-payload BYTES captures only the first BYTES of each call)"},
    {"--perf-reorder", false, "events arrive in order through one BPF ring buffer"},
    {"--perf-reorder-lag-ms", true, "events arrive in order through one BPF ring buffer"},
    {"--nosearch", false, "gotlscap analyses the Go binary itself; there is no library to search"},
    {"--listen", true, "no HTTP configuration server: restart gotlscap with new options instead"},
    {"--ecaptureq", true, "no eCaptureQ server: events go to stdout or a file"},
    {"--eventroratesize", true, "event files are not rotated"},
    {"--eventroratetime", true, "event files are not rotated"},
};

bool IsNetworkAddress(const std::string& a) {
  return a.rfind("tcp://", 0) == 0 || a.rfind("ws://", 0) == 0 || a.rfind("wss://", 0) == 0;
}

// eCapture writes its run log to the console and to -l FILE; so does this: fd 2 becomes a pipe
// whose reader copies every line to the console and to FILE. Finish() (or the destructor) puts
// the console back and waits until the last line (the summary) is written.
class StderrTee {
 public:
  static Result<std::unique_ptr<StderrTee>> Open(const std::string& path) {
    std::unique_ptr<StderrTee> t(new StderrTee());
    t->file_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->file_ < 0) return MakeError(ErrorKind::kIo, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
    t->console_ = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    int p[2];
    if (t->console_ < 0 || pipe2(p, O_CLOEXEC) != 0)
      return MakeError(ErrorKind::kIo, fmt::format("cannot copy the log to {}: {}", path, std::strerror(errno)));
    fflush(stderr);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    t->reader_ = std::thread([in = p[0], console = t->console_, file = t->file_] {
      char buf[4096];
      for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        (void)!write(console, buf, static_cast<size_t>(n));
        (void)!write(file, buf, static_cast<size_t>(n));
      }
      close(in);
    });
    return t;
  }
  ~StderrTee() {
    fflush(stderr);
    dup2(console_, STDERR_FILENO);  // closes the pipe's last write end: the reader sees EOF
    if (reader_.joinable()) reader_.join();
    close(console_);
    close(file_);
  }

 private:
  StderrTee() = default;
  int file_ = -1, console_ = -1;
  std::thread reader_;
};

}  // namespace

void RegisterEcapture(CLI::App& app, EcaptureOptions& o) {
  auto* cmd = app.add_subcommand("gotls", "eCapture's gotls command line (text, keylog and pcap modes)");
  cmd->alias("tlsgo");
  o.cmd = cmd;
  auto one_each = [](CLI::Option* opt) {
    opt->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  };
  cmd->add_option("-m,--model", o.model, "Capture model: text, pcap/pcapng, key/keylog")
      ->transform(CLI::IsMember({"text", "pcap", "pcapng", "key", "keylog"}, CLI::ignore_case))
      ->capture_default_str();
  one_each(cmd->add_option("-e,--elfpath", o.elf_paths, "ELF path to a binary built with the Go toolchain"));
  cmd->add_option("-p,--pid", o.pid, "Only this process (0: every process running the binary)");
  cmd->add_option("-u,--uid", o.uid, "Only this user's processes (0: every user)");
  cmd->add_option("-k,--keylogfile", o.keylog_file, "Key log file (keylog model)")->capture_default_str();
  cmd->add_option("-w,--pcapfile", o.pcap_file, "pcapng file (pcap model)")->capture_default_str();
  cmd->add_option("-i,--ifname", o.ifname, "Interface to capture packets on (pcap model)");
  cmd->add_flag("--hex", o.hex, "Show payloads as hex dumps (text model)");
  cmd->add_option("-l,--logaddr", o.logaddr, "Also write the run log (and, in text model, the events) to FILE");
  cmd->add_option("--eventaddr", o.eventaddr, "Write the captured events to FILE");
  cmd->add_flag("-d,--debug", o.debug, "libbpf's debug output on stderr");
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds (gotlscap)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--cgroup_path", o.cgroup_path, "Only processes in this cgroup v2 (gotlscap's --cgroup)");
  for (const auto& f : kIgnored) {
    if (f.takes_value)
      cmd->add_option(f.name, "Accepted for eCapture compatibility; not needed")->group("Accepted, not needed");
    else
      cmd->add_flag(f.name)->description("Accepted for eCapture compatibility; not needed")->group("Accepted, not needed");
  }
  AddNatsOptions(cmd, o.nats);
  AddMaxPayloadOption(cmd, o.max_payload);
  cmd->add_option("filter", o.filter, "pcap-filter expression (pcap model), e.g. tcp port 443");
}

int RunEcapture(const EcaptureOptions& o) {
  for (const auto& f : kIgnored) {
    std::string name = f.name;
    std::string longest = name.substr(name.rfind(',') == std::string::npos ? 0 : name.rfind(',') + 1);
    if (o.cmd->count(longest) > 0) fmt::print(stderr, "gotlscap: {} ignored: {}\n", longest, f.why);
  }
  if (!o.cgroup_path.empty()) {
    if (auto cg = ResolveCgroup(o.cgroup_path); !cg.ok())
      return Fail(MakeError(ErrorKind::kUsage, "--cgroup_path " + o.cgroup_path + ": no such cgroup v2 directory"));
  }
  FollowCli follow;
  follow.cgroup = o.cgroup_path;
  for (const auto* a : {&o.logaddr, &o.eventaddr})
    if (IsNetworkAddress(*a))
      return Fail(MakeError(ErrorKind::kUsage, fmt::format("{}: only file destinations are supported", *a)));
  if (o.debug) setenv("GOTLSCAP_LIBBPF_DEBUG", "1", 1);

  std::string model = o.model;
  std::transform(model.begin(), model.end(), model.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!o.filter.empty() && model != "pcap" && model != "pcapng")
    return Fail(MakeError(ErrorKind::kUsage, fmt::format("unexpected arguments '{}': a pcap filter needs -m pcap",
                                                         o.filter.front())));
  if ((model == "pcap" || model == "pcapng") && o.nats.enabled())
    return Fail(MakeError(ErrorKind::kUsage, "--nats: the text and keylog models only"));
  if (model != "text" && o.max_payload != 0)
    return Fail(MakeError(ErrorKind::kUsage, "--max-payload: the text model only"));
  if ((model == "pcap" || model == "pcapng") && o.ifname.empty())
    return Fail(MakeError(ErrorKind::kUsage, "the pcap model needs -i IFNAME, the interface to capture on"));
  // -l FILE: in the text model the events go there (eCapture's default event destination is the
  // log address); otherwise the run log (ready and summary lines) is copied there.
  const bool events_to_logaddr = model == "text" && o.eventaddr.empty();
  std::unique_ptr<StderrTee> tee;
  if (!o.logaddr.empty() && !events_to_logaddr) {
    auto t = StderrTee::Open(o.logaddr);
    if (!t.ok()) return Fail(t.error());
    tee = std::move(*t);
  }

  std::vector<uint32_t> pids;
  if (o.pid != 0) pids.push_back(static_cast<uint32_t>(o.pid));
  std::optional<uint32_t> uid;
  if (o.uid != 0) uid = static_cast<uint32_t>(o.uid);

  if (model == "key" || model == "keylog") {
    KeylogOptions k;
    // With --nats the secrets go to the broker; eCapture's default key log file only when -k asks.
    k.keylog_file = o.nats.enabled() && o.cmd->count("--keylogfile") == 0 ? "" : o.keylog_file;
    k.nats = o.nats;
    k.elf_paths = o.elf_paths;
    k.pids = pids;
    k.uid = uid;
    k.duration = o.duration;
    k.follow = follow;
    return RunKeylog(k);
  }
  if (model == "pcap" || model == "pcapng") {
    PcapOptions p;
    p.interfaces = {o.ifname};
    p.file = o.pcap_file;
    p.elf_paths = o.elf_paths;
    p.pids = pids;
    p.uid = uid;
    p.duration = o.duration;
    p.filter = o.filter;
    p.follow = follow;
    return RunPcap(p);
  }
  TextOptions t;
  t.elf_paths = o.elf_paths;
  t.pids = pids;
  t.uid = uid;
  t.hex = o.hex;
  t.output = !o.eventaddr.empty() ? o.eventaddr : o.logaddr;
  t.duration = o.duration;
  t.follow = follow;
  t.nats = o.nats;
  t.max_payload = o.max_payload;
  return RunText(t);
}

}  // namespace gotlscap::cli
