#include "cli/pcap_command.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "capture/session.h"
#include "cli/capture_common.h"
#include "cli/command_run.h"
#include "cli/exit_codes.h"
#include "cli/pcap_interfaces.h"
#include "output/pcapng_writer.h"
#include "packet/gso_split.h"
#include "packet/net_interface.h"
#include "packet/packet_capture.h"
#include "packet/packet_sequencer.h"
#include "packet/pcap_filter.h"
#include "packet/socket_owner.h"

namespace gotlscap::cli {
namespace {

// CLOCK_REALTIME - CLOCK_MONOTONIC: BPF stamps packets with the monotonic clock, pcapng wants
// wall-clock time.
int64_t MonoToEpochNs() {
  timespec rt{}, mono{};
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (int64_t{rt.tv_sec} - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
}

// Owner lookup for connections the secrets did not name: among the -p pids and every process
// running a -e binary (looked up at each call: processes come and go).
class TargetOwners {
 public:
  TargetOwners(const capture::CaptureSession& session, const std::vector<uint32_t>& pids) : pids_(pids) {
    for (const auto& t : session.targets()) {
      struct stat st {};
      if (stat(t.path.c_str(), &st) == 0) files_.emplace_back(st.st_dev, st.st_ino);
    }
  }
  std::optional<packet::Owner> Find(const packet::ConnKey& key) const {
    std::vector<uint32_t> pids = pids_;
    if (pids.empty()) pids = packet::PidsRunning(files_);
    return packet::FindSocketOwner(key, pids);
  }

 private:
  std::vector<uint32_t> pids_;
  std::vector<std::pair<dev_t, ino_t>> files_;
};

// SIGUSR1: print the counters so far (tcpdump prints its counts), without stopping.
std::atomic<bool> g_usr1{false};
void OnUsr1(int) { g_usr1.store(true); }

}  // namespace

void RegisterPcap(CLI::App& app, PcapOptions& o) {
  auto* cmd = app.add_subcommand(
      "pcap", "Write packets and the TLS secrets of Go programs to a pcapng file Wireshark decrypts by itself");
  // One value per flag: the trailing words are the filter, not more interfaces or paths.
  auto one_each = [](CLI::Option* opt) { opt->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll); };
  one_each(cmd->add_option("-i,--ifname", o.interfaces,
                           "Network interface to capture on; repeatable; 'any': every interface, new ones too")
               ->required());
  cmd->add_option("-w,--pcapfile", o.file, "pcapng file to write ('-' for stdout; created mode 0600)")->required();
  cmd->add_option("-c", o.count, "Stop after writing N packets")->check(CLI::PositiveNumber);
  cmd->add_option("-C", o.file_size_mb,
                  "Start a new file when the current one is over SIZE million bytes: FILE, FILE1, FILE2...")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-W", o.file_count, "With -C: at most COUNT files, FILE0..FILE<COUNT-1> reused in turn")
      ->check(CLI::Range(1u, 100000u));
  cmd->add_option("-Q,--direction", o.direction, "Packets sent (out), received (in) or both (inout)")
      ->check(CLI::IsMember({"in", "out", "inout"}));
  one_each(cmd->add_option("-e,--elfpath", o.elf_paths, "Go binary to trace (every process running it); repeatable"));
  one_each(cmd->add_option("-p,--pid", o.pids, "Only these processes; alone, traces /proc/PID/exe; repeatable"));
  cmd->add_option("-u,--uid", o.uid, "Only processes of this user id");
  cmd->add_option("-s,--snaplen", o.snaplen, "Bytes kept of each packet (default: whole packets, up to 262144)")
      ->check(CLI::Range(1u, 262144u));
  cmd->add_option("--duration", o.duration, "Stop after SEC seconds")->check(CLI::NonNegativeNumber);
  cmd->add_option("--ringbuf-mb", o.ringbuf_mb, "Packet ring buffer size in MiB")->check(CLI::Range(1u, 4096u));
  AddFollowOptions(cmd, o.follow);
  cmd->add_option("filter", o.filter, "pcap-filter expression, as tcpdump takes it (e.g. tcp port 443)");
}

int RunPcap(const PcapOptions& o) {
  // No -e/-p: every Go program on the host, and every packet the filter lets through.
  const bool follow_host = o.elf_paths.empty() && o.pids.empty();
  std::string filter;
  for (const auto& w : o.filter) filter += (filter.empty() ? "" : " ") + w;

  // Everything that can be checked before attaching is checked first: interfaces, the filter
  // (against each interface's link type), the output file.
  if (o.file_count > 0 && o.file_size_mb <= 0) return Fail(MakeError(ErrorKind::kUsage, "-W needs -C"));
  if (o.file_size_mb > 0 && o.file == "-") return Fail(MakeError(ErrorKind::kUsage, "-C needs a file, not -w -"));
  const packet::Direction dir = o.direction == "in"    ? packet::Direction::kIn
                                : o.direction == "out" ? packet::Direction::kOut
                                                       : packet::Direction::kInOut;
  auto ifs = PcapInterfaces::Resolve(o.interfaces, filter, o.snaplen, dir);
  if (!ifs.ok()) return Fail(ifs.error());
  output::PcapngWriter::Rotation rotation;
  rotation.size_bytes = static_cast<uint64_t>(o.file_size_mb * 1e6);
  rotation.max_files = o.file_count;
  auto writer = output::PcapngWriter::Open(o.file, rotation);
  if (!writer.ok()) return Fail(writer.error());
  output::PcapngWriter& out = **writer;
  // A capture that never started leaves no file behind (a header-only file would pass for an
  // empty capture).
  auto fail_before_start = [&](const Error& e) {
    if (o.file != "-") unlink(out.current_path().c_str());
    return Fail(e);
  };

  // -- COMMAND: forked now, run once everything is attached; only its tree's packets are written.
  auto cmd = PrepareCommand(o.follow, !follow_host, o.file == "-");
  if (!cmd.ok()) return fail_before_start(cmd.error());
  packet::SequencerOptions sopts;
  sopts.targets_only = !follow_host || *cmd;
  std::unique_ptr<TargetOwners> owners;
  // Whole host: connections opened before the start are named from one /proc snapshot.
  std::optional<packet::SocketSnapshot> snapshot;
  if (follow_host && !*cmd) snapshot = packet::SocketSnapshot::Take();
  packet::ProcessInfoCache process_info;
  sopts.complete_owner = [&](packet::Owner& owner) { process_info.Complete(owner); };
  auto find_owner = [&](const packet::ConnKey& key) -> std::optional<packet::Owner> {
    if (snapshot) return snapshot->Find(key);
    if (*cmd) return packet::FindSocketOwner(key, (*cmd)->tree_pids());
    return owners ? owners->Find(key) : std::nullopt;
  };
  sopts.lookup_owner = [&](const packet::ConnKey& key) {
    auto owner = find_owner(key);
    if (owner) process_info.Complete(*owner);
    return owner;
  };
  uint64_t written = 0, beyond_count = 0;
  packet::PacketSequencer seq(
      sopts,
      [&](packet::Packet&& p) {
        if (o.count > 0 && written >= o.count) {  // -c N: exactly N in the file
          ++beyond_count;
          return;
        }
        out.WritePacket(p.interface_id, p.ts_ns, p.data, p.orig_len,
                        p.egress ? output::PcapngWriter::Dir::kOutbound : output::PcapngWriter::Dir::kInbound,
                        p.comment);
        if (++written == o.count) StopFlag().store(true);
      },
      [&](std::string_view keylog) { out.WriteSecrets(keylog); });
  // A new file (-C) starts with the keys of the connections still open.
  out.set_repeat_secrets([&] { return seq.SecretsForNewFile(); });

  const int64_t mono_to_epoch = MonoToEpochNs();
  uint64_t cut_by_snaplen = 0;
  auto targets = TargetSessionOptions(o.elf_paths, o.pids, o.uid, o.follow);
  if (!targets.ok()) return fail_before_start(targets.error());
  capture::SessionOptions so = std::move(*targets);
  so.data = false;  // secrets only: packets carry the data
  so.pid_filter = *cmd != nullptr;
  InstallSignalHandlers();
  auto session = capture::CaptureSession::Start(so, [](capture::DataEvent&&) {}, [&](capture::SecretEvent&& s) {
    seq.AddSecret(s);
  });
  if (!session.ok()) return fail_before_start(session.error());
  owners = std::make_unique<TargetOwners>(**session, o.pids);

  packet::PacketCaptureOptions popts;
  popts.snaplen = o.snaplen;
  popts.ringbuf_bytes = uint64_t{o.ringbuf_mb} << 20;
  auto pc = packet::PacketCapture::Open(popts, [&](const packet::RawPacket& r) {
    const PcapInterfaces::Known* itf = (*ifs)->Find(r.ifindex);
    if (!itf) return;
    packet::Packet p;
    p.ts_ns = static_cast<uint64_t>(static_cast<int64_t>(r.mono_ns) + mono_to_epoch);
    p.interface_id = itf->id;
    p.linktype = itf->itf.linktype;
    p.orig_len = r.orig_len;
    // Loopback is hooked at egress only; its packets are received by this host as well, and
    // under -Q in they are flagged so.
    p.egress = r.egress && !(itf->itf.loopback && dir == packet::Direction::kIn);
    p.write = !packet::PeekOnly(dir, r.egress, itf->itf.loopback);
    p.data.assign(r.data);
    if (r.vlan_present && p.linktype == 1 && p.data.size() >= 12) {
      // Re-insert the 802.1Q tag the device offloaded, as libpcap does for tcpdump.
      const char tag[4] = {static_cast<char>(r.vlan_proto_be & 0xff), static_cast<char>(r.vlan_proto_be >> 8),
                           static_cast<char>(r.vlan_tci >> 8), static_cast<char>(r.vlan_tci & 0xff)};
      p.data.insert(12, tag, 4);
      p.orig_len += 4;
    }
    if (r.orig_len > r.data.size()) ++cut_by_snaplen;
    if (r.gso_size != 0 && p.data.size() > 65535 && p.orig_len == p.data.size()) {
      // A TCP GSO packet over 64 KiB: the kernel segments it before packet sockets see it, so
      // write the segments dumpcap records (packet/gso_split.h), all with this timestamp.
      auto segs = packet::SplitOversizedGso(p.linktype, p.data, r.gso_size);
      p.data.clear();
      for (auto& seg : segs) {
        packet::Packet s = p;
        s.orig_len = static_cast<uint32_t>(seg.size());
        s.data = std::move(seg);
        seq.AddPacket(std::move(s));
      }
      return;
    }
    seq.AddPacket(std::move(p));
  });
  if (!pc.ok()) return fail_before_start(pc.error());
  if (auto r = (*session)->AddRingBuffer((*pc)->ringbuf_fd(), packet::PacketCapture::OnRecord, pc->get()); !r.ok())
    return fail_before_start(r.error());
  if (auto n = (*ifs)->Start(**pc, out); !n.ok()) return fail_before_start(n.error());
  struct sigaction usr1 {};
  usr1.sa_handler = OnUsr1;  // no SA_RESTART: the poll returns at once
  sigaction(SIGUSR1, &usr1, nullptr);
  fmt::print(stderr, "capturing on {}{}{}\n", (*ifs)->Describe(), filter.empty() ? "" : ", filter: ", filter);
  auto ready = AnnounceReady(**session, follow_host, o.follow, o.uid, cmd->get());
  if (!ready.ok()) return fail_before_start(ready.error());
  std::unique_ptr<host::HostFollower> follower = std::move(*ready);

  const std::string file_name = o.file == "-" ? "stdout" : o.file;
  auto counters = [&](const capture::ProbeCounters& sc) {
    const auto pcnt = (*pc)->ReadCounters();
    const auto& c = seq.counters();
    std::string files = out.files_opened() > 1 ? fmt::format(" ({} files, the last {})", out.files_opened(),
                                                             out.current_path())
                                               : "";
    return fmt::format(
        "{} packets written to {}{}, {} secrets, {} lost (ring buffer full {}, load faults {}, lost secrets {}) "
        "({} packets captured, {} not of the targets, {} written before their keys, {} cut by the snap length{})",
        written, file_name, files, c.secrets_written, pcnt.lost() + pcnt.load_faults() + sc.lost_secrets(),
        pcnt.lost(), pcnt.load_faults(), sc.lost_secrets(), pcnt.packets(), c.packets_dropped_not_target,
        c.released_unsettled + c.released_over_memory, cut_by_snaplen,
        beyond_count > 0 ? fmt::format(", {} past -c", beyond_count) : "");
  };

  auto now_epoch = [&] { return capture::MonotonicNowNs() + mono_to_epoch; };
  (*session)->Run(StopFlag(), DeadlineFor(o.duration), [&] {
    (*ifs)->Poll();
    if (g_usr1.exchange(false)) {
      fmt::print(stderr, "counters: {}\n", counters((*session)->probes().ReadCounters()));
      fflush(stderr);
    }
    if (follower) follower->Tick(capture::MonotonicNowNs());
    if (*cmd && (*cmd)->Done()) StopFlag().store(true);
    seq.Poll(now_epoch());
    if (!out.Flush()) StopFlag().store(true);
  });
  // Stop the packets, drain both rings (Finish), and only then release every held packet, so no
  // packet is written before a secret that was on its way.
  if (follower) follower->Stop();
  (*ifs)->Stop();
  (*pc)->DetachAll();
  auto s = (*session)->Finish();
  seq.Flush();
  out.Flush();

  fmt::print(stderr, "summary: {}\n", counters(s.counters));
  if (follower) PrintFollowSummary(*follower);
  if (out.failed()) {
    fmt::print(stderr, "gotlscap: cannot write to {}: {}\n", o.file, std::strerror(out.last_errno()));
    return ExitCodeFor(ErrorKind::kIo);
  }
  return *cmd ? (*cmd)->ExitCode() : 0;
}

}  // namespace gotlscap::cli
