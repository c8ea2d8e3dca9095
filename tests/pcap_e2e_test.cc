// End-to-end tests of `gotlscap pcap`: the Go server and client of the toolchain matrix talk
// HTTPS while gotlscap writes a pcapng of their packets and TLS secrets and, side by side,
// Wireshark's dumpcap records the same interface with the same capture filter. Then:
//   - tshark decrypts every request and response from our file alone (no key file: the
//     secrets are Decryption Secrets Blocks inside it, ahead of the packets that need them),
//     and nothing from dumpcap's file (so decryption really came from our secrets);
//   - both files hold the same packets, byte for byte (a multiset: loopback delivers every
//     packet on egress and ingress, ours must still hold it once, as dumpcap does);
//   - packet comments name the process (pid, comm) that owns the connection;
//   - the file is mode 0600 and the summary line reports nothing lost.
// For Go 1.15 (stack ABI), 1.19 and the newest toolchain; TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2,
// resumed sessions. Also: a filter that matches nothing (no packets, the secrets still written),
// a second capture on the same interface that outlives the first, the clsact fallback of kernels
// without tcx (GOTLSCAP_TC_CLSACT=1: nothing left on the interface, an existing qdisc kept), bad
// filters (libpcap's message, exit 2, nothing attached, no file), `-w -` piped live into tshark,
// and a veth pair into a network namespace (a real device, not loopback). As tcpdump users expect:
// -C rotation (every file decrypts alone), -c N (exactly N), -i any following a veth created after
// the start, -Q in/out, SIGUSR1 counters.
//
// Needs root, BPF, the matrix, tshark/dumpcap and iproute2: skips otherwise, fails under CI=true.
// Every test copies the binaries it traces into its own directory (uprobes attach to an inode)
// and names its interfaces and namespace after its pid, so parallel ctest runs never collide.
#include <dlfcn.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_env.h"
#include "test_process.h"
#include "tls_traffic.h"

namespace gotlscap::testenv {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// Exit codes (src/cli/exit_codes.h), spelled out so a renumbering is caught.
constexpr int kExitUsage = 2;

// ------------------------------------------------------------------------------------------
// Environment
// ------------------------------------------------------------------------------------------

// Root + BTF + tshark/dumpcap (+ ip) + the matrix, or a skip (a failure under CI=true).
void RequirePcapEnv(bool iproute = false) {
  std::string why = BpfProblem("pcap");
  if (why.empty() && (!InPath("tshark") || !InPath("dumpcap")))
    why = "pcap tests need tshark and dumpcap (apt-get install tshark)";
  if (why.empty() && iproute && (!InPath("ip") || !InPath("tc")))
    why = "pcap interface tests need ip and tc (apt-get install iproute2)";
  SkipOrFailUnlessReady(why);
}

#define REQUIRE_PCAP_ENV(...) GOTLSCAP_REQUIRE(RequirePcapEnv(__VA_ARGS__))

// ------------------------------------------------------------------------------------------
// pcapng, read by hand: the test must not share a reader (or a bug) with the writer
// ------------------------------------------------------------------------------------------

struct PcapngPacket {
  uint32_t iface = 0;
  uint32_t orig_len = 0;
  std::string data;     // captured bytes
  std::string comment;  // opt_comment (code 1), "" if none
  uint32_t flags = 0;   // epb_flags (code 2); bits 0-1: 1 inbound, 2 outbound
};

struct Pcapng {
  std::string error;  // "" when every block is whole and well formed
  std::vector<uint16_t> linktypes;
  std::vector<std::string> if_names;  // if_name (code 2) of each IDB
  std::vector<std::string> if_comments;  // opt_comment (code 1) of each IDB
  std::vector<PcapngPacket> packets;
  std::string first_secrets;  // the DSBs before the first packet
  std::string secrets;  // every TLS key log DSB's data, in file order
  int dsb_count = 0;
};

// The options of a block from `off` to `end`; calls f(code, value) for each.
template <typename F>
void ForEachOption(const std::string& b, size_t off, size_t end, F f) {
  while (off + 4 <= end) {
    uint16_t code, len;
    memcpy(&code, b.data() + off, 2);
    memcpy(&len, b.data() + off + 2, 2);
    if (code == 0 || off + 4 + len > end) return;
    f(code, b.substr(off + 4, len));
    off += 4 + ((len + 3u) & ~3u);
  }
}

// Reads a complete pcapng file of this machine's byte order (what both dumpcap and gotlscap
// write). Anything cut short or malformed is reported in `error`: the file must be valid after
// SIGINT, so a truncated block is a test failure here, not something to skip over.
Pcapng ReadPcapng(const std::string& path) {
  Pcapng p;
  std::string f;
  try {
    f = ReadFileBytes(path);
  } catch (const std::exception& e) {
    p.error = e.what();
    return p;
  }
  auto u32 = [&](size_t off) {
    uint32_t v;
    memcpy(&v, f.data() + off, 4);
    return v;
  };
  if (f.size() < 28 || u32(0) != 0x0A0D0D0A || u32(8) != 0x1A2B3C4D) {
    p.error = "does not start with a Section Header Block of this byte order (" + std::to_string(f.size()) + " bytes)";
    return p;
  }
  size_t off = 0;
  while (off < f.size()) {
    if (off + 12 > f.size()) {
      p.error = "truncated block header at offset " + std::to_string(off);
      return p;
    }
    const uint32_t type = u32(off), len = u32(off + 4);
    if (len < 12 || len % 4 != 0 || off + len > f.size() || u32(off + len - 4) != len) {
      p.error = "bad block (type " + std::to_string(type) + ", length " + std::to_string(len) + ") at offset " +
                std::to_string(off) + " of " + std::to_string(f.size());
      return p;
    }
    const size_t end = off + len - 4;
    if (type == 0x0A0D0D0A) {
      p.linktypes.clear();
      p.if_names.clear();
      p.if_comments.clear();
    } else if (type == 1 && len >= 20) {
      uint16_t lt;
      memcpy(&lt, f.data() + off + 8, 2);
      p.linktypes.push_back(lt);
      std::string name, comment;
      ForEachOption(f, off + 16, end, [&](uint16_t code, const std::string& v) {
        if (code == 2) name = v;
        if (code == 1) comment = v;
      });
      p.if_names.push_back(name);
      p.if_comments.push_back(comment);
    } else if (type == 6 && len >= 32) {
      PcapngPacket pk;
      pk.iface = u32(off + 8);
      const uint32_t caplen = u32(off + 20);
      pk.orig_len = u32(off + 24);
      const size_t data = off + 28;
      if (data + caplen > end || pk.iface >= p.linktypes.size()) {
        p.error = "bad Enhanced Packet Block at offset " + std::to_string(off);
        return p;
      }
      pk.data = f.substr(data, caplen);
      ForEachOption(f, data + ((caplen + 3u) & ~3u), end, [&](uint16_t code, const std::string& v) {
        if (code == 1) pk.comment = v;
        if (code == 2 && v.size() == 4) memcpy(&pk.flags, v.data(), 4);
      });
      p.packets.push_back(std::move(pk));
    } else if (type == 0x0A && len >= 20) {
      const uint32_t stype = u32(off + 8), slen = u32(off + 12);
      if (off + 16 + slen > end) {
        p.error = "bad Decryption Secrets Block at offset " + std::to_string(off);
        return p;
      }
      if (stype == 0x544c534b) {  // "TLSK": NSS key log
        p.dsb_count++;
        p.secrets += f.substr(off + 16, slen);
        if (p.packets.empty()) p.first_secrets += f.substr(off + 16, slen);
      }
    }
    off += len;
  }
  return p;
}

// One packet's IPv4/TCP facts, for filtering and for readable failure messages.
struct TcpInfo {
  bool ok = false;
  size_t ip_offset = 0;
  std::string src, dst;
  int sport = 0, dport = 0;
  uint8_t flags = 0;
  size_t payload = 0;
};

// Offset of the network header for the link types dumpcap and gotlscap write on lo and veth.
std::optional<size_t> NetworkOffset(uint16_t linktype) {
  switch (linktype) {
    case 1: return 14;    // Ethernet
    case 113: return 16;  // Linux cooked v1
    case 276: return 20;  // Linux cooked v2
    case 101: return 0;   // raw IP
    case 0: return 4;     // BSD loopback
  }
  return std::nullopt;
}

TcpInfo ParseTcp(uint16_t linktype, const std::string& d) {
  TcpInfo t;
  auto off = NetworkOffset(linktype);
  if (!off || d.size() < *off + 20 || (uint8_t(d[*off]) >> 4) != 4) return t;
  const size_t ip = *off, ihl = (uint8_t(d[ip]) & 15) * 4u;
  if (uint8_t(d[ip + 9]) != 6 || d.size() < ip + ihl + 20) return t;
  auto be16 = [&](size_t o) { return (uint8_t(d[o]) << 8) | uint8_t(d[o + 1]); };
  auto addr = [&](size_t o) {
    return std::to_string(uint8_t(d[o])) + "." + std::to_string(uint8_t(d[o + 1])) + "." +
           std::to_string(uint8_t(d[o + 2])) + "." + std::to_string(uint8_t(d[o + 3]));
  };
  const size_t tcp = ip + ihl, doff = (uint8_t(d[tcp + 12]) >> 4) * 4u;
  const size_t total = static_cast<size_t>(be16(ip + 2));
  t.ok = true;
  t.ip_offset = ip;
  t.src = addr(ip + 12);
  t.dst = addr(ip + 16);
  t.sport = be16(tcp);
  t.dport = be16(tcp + 2);
  t.flags = uint8_t(d[tcp + 13]);
  t.payload = total > ihl + doff ? total - ihl - doff : 0;  // total 0 (TSO): reported as 0
  return t;
}

std::string Describe(uint16_t linktype, const PcapngPacket& p) {
  TcpInfo t = ParseTcp(linktype, p.data);
  if (!t.ok) return "non-TCP packet of " + std::to_string(p.data.size()) + " bytes";
  std::string fl;
  const char* names[] = {"FIN", "SYN", "RST", "PSH", "ACK"};
  for (int i = 0; i < 5; i++)
    if (t.flags & (1 << i)) fl += (fl.empty() ? "" : ",") + std::string(names[i]);
  return t.src + ":" + std::to_string(t.sport) + " > " + t.dst + ":" + std::to_string(t.dport) + " [" + fl +
         "] payload " + std::to_string(t.payload) + ", " + std::to_string(p.data.size()) + " bytes captured";
}

bool HasPort(const TcpInfo& t, const std::set<int>& ports) { return ports.count(t.sport) || ports.count(t.dport); }

// Compares the packets of `ours` with those of `theirs` that are not of `skip_ports` (the
// sentinels: not a target's connection, so only dumpcap has them) as multisets of bytes: whole
// frames when both files use the same link type, else from the IP header on. Timestamps are not
// compared (two captures stamp at different points). Returns "" or what differs.
std::string ComparePackets(const Pcapng& ours, const Pcapng& theirs, const std::set<int>& skip_ports) {
  if (ours.linktypes.empty() || theirs.linktypes.empty()) return "a file has no interface";
  const bool same_link = ours.linktypes == std::vector<uint16_t>(ours.linktypes.size(), theirs.linktypes[0]) &&
                         theirs.linktypes == std::vector<uint16_t>(theirs.linktypes.size(), theirs.linktypes[0]);
  struct Seen {
    int ours = 0, theirs = 0;
    std::string what;
  };
  std::map<std::string, Seen> seen;
  auto key = [&](uint16_t lt, const std::string& d) -> std::string {
    if (same_link) return d;
    auto off = NetworkOffset(lt);
    return off && d.size() >= *off ? d.substr(*off) : "?" + d;
  };
  for (const auto& p : ours.packets) {
    const uint16_t lt = ours.linktypes[p.iface];
    Seen& s = seen[key(lt, p.data)];
    s.ours++;
    s.what = Describe(lt, p);
  }
  for (const auto& p : theirs.packets) {
    const uint16_t lt = theirs.linktypes[p.iface];
    if (HasPort(ParseTcp(lt, p.data), skip_ports)) continue;
    Seen& s = seen[key(lt, p.data)];
    s.theirs++;
    s.what = Describe(lt, p);
  }
  Problems probs(20);
  for (const auto& [k, s] : seen)
    if (s.ours != s.theirs)
      probs.Add(s.what + ": " + std::to_string(s.ours) + "x in ours, " + std::to_string(s.theirs) + "x in dumpcap's");
  if (probs.size() == 0) return "";
  return std::to_string(probs.size()) + " packets differ (" + std::to_string(ours.packets.size()) + " in ours, " +
         std::to_string(theirs.packets.size()) + " in dumpcap's incl. sentinels):\n" + probs.str();
}

// ------------------------------------------------------------------------------------------
// gotlscap pcap as a child
// ------------------------------------------------------------------------------------------

struct PcapSummary {
  bool parsed = false;
  uint64_t packets = 0, secrets = 0, lost = 0;
  std::string file;
};

struct PcapRun {
  int exit_code = -1;
  std::string err;
  PcapSummary summary;
  std::string describe;
};

PcapSummary ParseSummary(const std::string& err) {
  static const std::regex re(R"(summary: (\d+) packets written to (.+?), (\d+) secrets, (\d+) lost \()");
  std::smatch m;
  PcapSummary s;
  if (std::regex_search(err, m, re)) s = {true, std::stoull(m[1]), std::stoull(m[3]), std::stoull(m[4]), m[2]};
  return s;
}

class PcapCapture {
 public:
  // `gotlscap pcap ARGS...`, or with `argv_prefix` (a shell redirecting stdout to a FIFO) before it.
  explicit PcapCapture(const std::vector<std::string>& args, const std::vector<std::string>& argv_prefix = {}) {
    std::vector<std::string> argv = argv_prefix;
    argv.push_back(GotlscapBin());
    argv.push_back("pcap");
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Proc>(argv);
  }
  // Waits for "capturing on" and then "ready" (filters and uprobes attached).
  ::testing::AssertionResult WaitReady() {
    if (!proc_->WaitLine(2, "capturing on", seconds(60)) || !proc_->WaitLine(2, "ready", seconds(60)))
      return ::testing::AssertionFailure() << "gotlscap pcap never became ready: " << proc_->Describe();
    return ::testing::AssertionSuccess();
  }
  // SIGINT, then the exit code and the parsed summary.
  PcapRun Stop() {
    proc_->Signal(SIGINT);
    PcapRun r;
    auto code = proc_->Wait(seconds(30));
    r.exit_code = code ? *code : -1;
    r.err = proc_->Err();
    r.describe = proc_->Describe();
    r.summary = ParseSummary(r.err);
    return r;
  }
  Proc& proc() { return *proc_; }

 private:
  std::unique_ptr<Proc> proc_;
};

// tshark decrypted every request and response of scenario `s` and nothing else.
void ExpectAllDecrypted(const Scenario& s, const PortTally& t, const std::string& raw) {
  if (s.h2) {
    EXPECT_EQ(t.h2_requests, s.n) << raw;
    EXPECT_EQ(t.h2_responses, s.n) << raw;
    EXPECT_EQ(t.h2_ok, s.n);
    EXPECT_EQ(t.http1_requests + t.http1_responses, 0);
  } else {
    EXPECT_EQ(t.http1_requests, s.n) << raw;
    EXPECT_EQ(t.http1_responses, s.n) << raw;
    EXPECT_EQ(t.http1_ok, s.n);
    EXPECT_EQ(t.h2_requests + t.h2_responses, 0);
  }
  EXPECT_FALSE(t.client_randoms.empty()) << "no ClientHello: " << raw;
  EXPECT_EQ(t.streams_with_request, t.hello_streams) << "a connection was not decrypted";
  if (s.resume) {
    EXPECT_EQ(t.client_randoms.size(), size_t(s.n)) << "-resume: one connection per request";
  }
}

int Decrypted(const PortTally& t) { return t.http1_requests + t.http1_responses + t.h2_requests + t.h2_responses; }

PortTally At(const std::map<int, PortTally>& m, int port) { return m.count(port) ? m.at(port) : PortTally{}; }

// Every line of the client's own key log (Go's KeyLogWriter: full handshakes) is in `secrets`.
void ExpectReferenceKeys(const std::string& secrets, const std::string& reflog) {
  std::set<std::string> ours;
  for (const auto& l : SplitLines(secrets)) ours.insert(l);
  const auto ref = SplitLines(ReadFileBytes(reflog));
  EXPECT_FALSE(ref.empty()) << "Go's KeyLogWriter wrote nothing to " << reflog;
  for (const auto& l : ref) EXPECT_TRUE(ours.count(l)) << "client's key log line missing from our DSBs: " << l;
}

// The comments of our packets: "pid=N [tid=T ]comm=X uid=U ppid=P pcomm=Q cgroup=PATH" naming a
// server (comm "server") or a client (comm "client"), both children of this test (ppid, pcomm),
// run as our uid; every packet that carries data has one, and so has every connection.
void ExpectComments(const Pcapng& ours, const std::set<pid_t>& server_pids, const std::set<pid_t>& client_pids) {
  static const std::regex re(
      R"(^pid=(\d+)(?: tid=\d+)? comm=(\S+) uid=(\d+) ppid=(\d+) pcomm=(.+?)(?: cgroup=(\S+))?(?: container=[0-9a-f]{64})?$)");
  const std::string my_comm = Trim(ReadFileBytes("/proc/self/comm"));
  Problems probs;
  int with = 0;
  std::set<std::string> conns, conns_with;
  for (const auto& p : ours.packets) {
    const uint16_t lt = ours.linktypes[p.iface];
    TcpInfo t = ParseTcp(lt, p.data);
    const std::string conn = t.sport < t.dport ? std::to_string(t.sport) + "-" + std::to_string(t.dport)
                                               : std::to_string(t.dport) + "-" + std::to_string(t.sport);
    conns.insert(conn);
    if (p.comment.empty()) {
      if (t.payload > 0) probs.Add("no comment on a packet with data: " + Describe(lt, p));
      continue;
    }
    with++;
    conns_with.insert(conn);
    std::smatch m;
    if (!std::regex_match(p.comment, m, re)) {
      probs.Add("comment `" + p.comment + "` is not `pid=N [tid=T ]comm=X uid=U ppid=P pcomm=Q cgroup=C`: " +
                Describe(lt, p));
      continue;
    }
    const pid_t pid = std::stoi(m[1]);
    const std::string comm = m[2];
    if (std::stoul(m[3]) != getuid()) probs.Add("comment `" + p.comment + "`: uid is not ours");
    if (std::stoi(m[4]) != getpid() || m[5] != my_comm)
      probs.Add("comment `" + p.comment + "`: the parent is not this test (" + std::to_string(getpid()) + " " +
                my_comm + ")");
    if (server_pids.count(pid)) {
      if (comm != "server") probs.Add("server pid with comm " + comm);
    } else if (client_pids.count(pid)) {
      if (comm != "client") probs.Add("client pid with comm " + comm);
    } else {
      probs.Add("comment names pid " + std::to_string(pid) + " (" + comm + "), neither server nor client: " +
                Describe(lt, p));
    }
  }
  EXPECT_EQ(probs.size(), 0u) << probs.str();
  EXPECT_EQ(conns_with, conns) << "every connection has its owner named";
  EXPECT_GT(with, 0);
}

// ------------------------------------------------------------------------------------------
// 1. Toolchains: ours decrypts alone and holds what dumpcap holds
// ------------------------------------------------------------------------------------------

class PcapToolchainTest : public ::testing::TestWithParam<MatrixRow> {};

TEST_P(PcapToolchainTest, DecryptsAloneAndMatchesDumpcap) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms(GetParam().go_minor, &progs));
  const std::string ours_file = progs.dir.File("ours.pcapng"), theirs_file = progs.dir.File("theirs.pcapng");
  const auto start = Clock::now();

  // One server per scenario: the server port tells the runs apart. The servers run before the
  // capture starts, as they would for a user: their connections must still be found.
  std::vector<Server> servers(std::size(kScenarios));
  std::vector<int> ports;
  for (auto& s : servers) {
    ASSERT_TRUE(StartServer(progs.server, &s));
    ports.push_back(s.port);
  }
  Sentinel sentinel_start, sentinel_end;
  std::vector<int> filter_ports = ports;
  filter_ports.push_back(sentinel_start.port());
  filter_ports.push_back(sentinel_end.port());
  const std::string filter = PortFilter(filter_ports);

  PcapCapture cap({"-i", "lo", "-w", ours_file, "-e", progs.server, "-e", progs.client, filter});
  ASSERT_TRUE(cap.WaitReady());
  RecordSeconds("ready_seconds", start);
  Dumpcap dumpcap("lo", filter, theirs_file);
  ASSERT_TRUE(dumpcap.Start(sentinel_start));

  std::vector<ClientRun> runs;
  std::set<pid_t> server_pids, client_pids;
  for (const auto& s : servers) server_pids.insert(s.pid());
  for (size_t i = 0; i < std::size(kScenarios); i++) {
    const Scenario& s = kScenarios[i];
    runs.push_back(RunClient(progs.client, ports[i], s, progs.dir.File(std::string("ref-") + s.name + ".log")));
    ASSERT_EQ(runs.back().exit_code, 0) << s.name << ": " << runs.back().describe;
    client_pids.insert(runs.back().pid);
  }
  EXPECT_TRUE(WaitConnectionsClosed(ports)) << "connections still open 10 s after the clients exited";
  ASSERT_TRUE(dumpcap.Stop(sentinel_end));
  PcapRun pr = cap.Stop();
  for (auto& s : servers) s.proc->Signal(SIGTERM);
  RecordSeconds("capture_seconds", start);

  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  ASSERT_TRUE(pr.summary.parsed) << pr.describe;
  EXPECT_EQ(pr.summary.lost, 0u) << pr.err;
  EXPECT_EQ(pr.summary.file, ours_file) << pr.err;
  EXPECT_EQ(FileMode(ours_file), 0600u) << "the pcapng holds secrets";

  const Pcapng ours = ReadPcapng(ours_file), theirs = ReadPcapng(theirs_file);
  ASSERT_EQ(ours.error, "") << ours_file;
  ASSERT_EQ(theirs.error, "") << theirs_file;
  EXPECT_EQ(ours.linktypes, std::vector<uint16_t>{1}) << "one interface, lo, Ethernet framing";
  EXPECT_EQ(ours.if_names, std::vector<std::string>{"lo"});
  ::testing::Test::RecordProperty("packets", std::to_string(ours.packets.size()));
  ::testing::Test::RecordProperty("dumpcap_packets", std::to_string(theirs.packets.size()));
  EXPECT_EQ(ours.packets.size(), pr.summary.packets) << pr.err;
  EXPECT_EQ(SplitLines(ours.secrets).size(), pr.summary.secrets) << "summary counts the key log lines written";
  EXPECT_GT(ours.dsb_count, 0);

  // Both files, tshark without any key file: ours decrypts, dumpcap's does not.
  std::string raw_ours, raw_theirs;
  auto f_theirs = std::async(std::launch::async, [&] { return Tshark(theirs_file, "", ports, &raw_theirs); });
  const auto t_ours = Tshark(ours_file, "", ports, &raw_ours);
  const auto t_theirs = f_theirs.get();
  for (size_t i = 0; i < std::size(kScenarios); i++) {
    const Scenario& s = kScenarios[i];
    SCOPED_TRACE(std::string(s.name) + " (server port " + std::to_string(ports[i]) + ")");
    const PortTally t = At(t_ours, ports[i]), none = At(t_theirs, ports[i]);
    ExpectAllDecrypted(s, t, raw_ours);
    EXPECT_EQ(Decrypted(none), 0) << "dumpcap's file decrypts without keys?\n" << raw_theirs;
    auto sorted = [](std::vector<std::string> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    EXPECT_EQ(sorted(none.client_randoms), sorted(t.client_randoms)) << "the same handshakes in both files";
    ExpectReferenceKeys(ours.secrets, runs[i].reference);
  }

  // The same packets, each once; only dumpcap has the sentinels'.
  const std::set<int> sentinel_ports = {sentinel_start.port(), sentinel_end.port()};
  int ours_sentinel = 0;
  for (const auto& p : ours.packets) ours_sentinel += HasPort(ParseTcp(1, p.data), sentinel_ports);
  EXPECT_EQ(ours_sentinel, 0) << "the sentinels' connections are no target's";
  EXPECT_EQ(ComparePackets(ours, theirs, sentinel_ports), "");

  ExpectComments(ours, server_pids, client_pids);
}

INSTANTIATE_TEST_SUITE_P(Toolchains, PcapToolchainTest, ::testing::ValuesIn(AbiSpanServerRows()), ServerRowName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PcapToolchainTest);

// ------------------------------------------------------------------------------------------
// 2. A filter that matches none of the traffic: no packets, but the secrets
// ------------------------------------------------------------------------------------------

// Secrets are not tied to packets being written: a user filtering out the handshake still gets
// the keys (e.g. to merge with another capture).
TEST(PcapE2E, FilterExcludingTrafficKeepsSecrets) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const std::string file = progs.dir.File("none.pcapng"), reflog = progs.dir.File("ref.log");
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  PcapCapture cap({"-i", "lo", "-w", file, "-e", progs.server, "-e", progs.client, "tcp", "port", "1"});
  ASSERT_TRUE(cap.WaitReady());
  for (const char* tls : {"1.2", "1.3"}) {
    ClientRun r = RunClient(progs.client, srv.port, Scenario{"excluded", tls, false, false, 1}, reflog);
    ASSERT_EQ(r.exit_code, 0) << r.describe;
  }
  PcapRun pr = cap.Stop();
  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  ASSERT_TRUE(pr.summary.parsed) << pr.describe;
  EXPECT_EQ(pr.summary.packets, 0u) << pr.err;
  EXPECT_EQ(pr.summary.secrets, 5u) << "one TLS 1.2 (1 line) and one TLS 1.3 connection (4 lines): " << pr.err;
  EXPECT_EQ(pr.summary.lost, 0u) << pr.err;
  EXPECT_EQ(FileMode(file), 0600u);
  const Pcapng p = ReadPcapng(file);
  ASSERT_EQ(p.error, "") << file;
  EXPECT_EQ(p.linktypes, std::vector<uint16_t>{1});
  EXPECT_EQ(p.packets.size(), 0u);
  EXPECT_GT(p.dsb_count, 0) << "secrets must be written without packets";
  EXPECT_EQ(SplitLines(p.secrets).size(), 5u) << p.secrets;
  ExpectReferenceKeys(p.secrets, reflog);
}

// ------------------------------------------------------------------------------------------
// 2b. Two captures on one interface
// ------------------------------------------------------------------------------------------

// Two users (or two parallel tests) capture on lo; the first to start stops first. The second
// must keep capturing: stopping one capture must not detach the other's programs (the clsact
// qdisc they share holds both; removing it removes every filter on the interface).
TEST(PcapE2E, SecondCaptureSurvivesTheFirstStopping) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  const std::string first_file = progs.dir.File("first.pcapng"), second_file = progs.dir.File("second.pcapng");
  PcapCapture first({"-i", "lo", "-w", first_file, "-e", progs.server, "-e", progs.client, "tcp", "port", "1"});
  ASSERT_TRUE(first.WaitReady());
  PcapCapture second({"-i", "lo", "-w", second_file, "-e", progs.server, "-e", progs.client, PortFilter({srv.port})});
  ASSERT_TRUE(second.WaitReady());
  PcapRun r1 = first.Stop();
  ASSERT_EQ(r1.exit_code, 0) << r1.describe;
  const Scenario& s = kScenarios[0];
  ClientRun run = RunClient(progs.client, srv.port, s, progs.dir.File("ref.log"));
  ASSERT_EQ(run.exit_code, 0) << run.describe;
  PcapRun r2 = second.Stop();
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  ASSERT_TRUE(r2.summary.parsed) << r2.describe;
  EXPECT_GT(r2.summary.packets, 0u) << "the second capture lost its filters when the first stopped: " << r2.err;
  std::string raw;
  const auto t = Tshark(second_file, "", {srv.port}, &raw);
  ExpectAllDecrypted(s, At(t, srv.port), raw);
}

// ------------------------------------------------------------------------------------------
// 2c. The clsact fallback (kernels without tcx)
// ------------------------------------------------------------------------------------------

// The program ids of the gotlscap filters `tc filter show dev IF DIRECTION` lists
// ("... gotlscap_filter direct-action not_in_hw id 123 tag ..."): a filter without an id is
// listed as "?" so that it is still counted.
std::set<std::string> GotlscapTcFilters(const std::string& ifname, const std::string& direction, std::string* raw) {
  CommandResult r = RunCommand({"tc", "filter", "show", "dev", ifname, direction});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  *raw = r.out;
  std::set<std::string> ids;
  for (const auto& line : SplitLines(r.out)) {
    if (line.find("gotlscap_filter") == std::string::npos) continue;
    const auto w = SplitWs(line);
    auto id = std::find(w.begin(), w.end(), "id");
    ids.insert(id != w.end() && id + 1 != w.end() ? *(id + 1) : "?");
  }
  return ids;
}

bool HasClsact(const std::string& ifname) {
  return RunCommand({"tc", "qdisc", "show", "dev", ifname}).out.find("qdisc clsact") != std::string::npos;
}

// A clsact qdisc on `ifname` for the duration of a test: added if there was none (and then removed
// at the end), left alone if there was one.
class ClsactQdisc {
 public:
  explicit ClsactQdisc(std::string ifname) : ifname_(std::move(ifname)) {
    if (HasClsact(ifname_)) return;
    CommandResult r = RunCommand({"tc", "qdisc", "add", "dev", ifname_, "clsact"});
    added_ = r.exit_code == 0;
    error_ = r.Describe();
  }
  ~ClsactQdisc() {
    if (added_) RunCommand({"tc", "qdisc", "del", "dev", ifname_, "clsact"});
  }
  ClsactQdisc(const ClsactQdisc&) = delete;
  ClsactQdisc& operator=(const ClsactQdisc&) = delete;
  const std::string& error() const { return error_; }

 private:
  std::string ifname_, error_;
  bool added_ = false;
};

// GOTLSCAP_TC_CLSACT=1 makes gotlscap attach classic TC filters to a clsact qdisc, as it does on
// kernels older than 6.6 (no tcx). The capture must be as good as with tcx (decrypts alone, the
// same packets as dumpcap), its filter must really sit on the qdisc while it runs, and be gone
// after gotlscap exits; the clsact qdisc, which was there before (another tool's), stays.
TEST(PcapE2E, ClsactFallbackDecryptsAndLeavesNoFilter) {
  REQUIRE_PCAP_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  ClsactQdisc qdisc("lo");
  ASSERT_TRUE(HasClsact("lo")) << "cannot add a clsact qdisc to lo: " << qdisc.error();
  std::string raw_before, raw_ingress;
  const std::set<std::string> before = GotlscapTcFilters("lo", "egress", &raw_before);
  if (!before.empty()) std::cerr << "[ NOTE ] gotlscap filters on lo before the test (a killed run?):\n" << raw_before;
  const std::set<std::string> ingress_before = GotlscapTcFilters("lo", "ingress", &raw_ingress);

  const std::string ours_file = progs.dir.File("ours.pcapng"), theirs_file = progs.dir.File("theirs.pcapng");
  const Scenario& s = kScenarios[1];  // HTTP/1.1 on TLS 1.3
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  Sentinel sentinel_start, sentinel_end;
  const std::string filter = PortFilter({srv.port, sentinel_start.port(), sentinel_end.port()});
  {
    // `env` execs gotlscap: the Proc's pid is gotlscap's, SIGINT reaches it.
    PcapCapture cap({"-i", "lo", "-w", ours_file, "-e", progs.server, "-e", progs.client, filter},
                    {"env", "GOTLSCAP_TC_CLSACT=1"});
    // A failed assertion must not SIGKILL gotlscap (Proc's destructor): a killed capture leaves its
    // clsact filter behind, which is what this test looks for.
    struct StopGently {
      Proc& p;
      ~StopGently() {
        p.Signal(SIGINT);
        p.Wait(seconds(30));
      }
    } stop_gently{cap.proc()};
    ASSERT_TRUE(cap.WaitReady());
    std::string raw_during;
    const std::set<std::string> during = GotlscapTcFilters("lo", "egress", &raw_during);
    std::set<std::string> ours_ids;
    std::set_difference(during.begin(), during.end(), before.begin(), before.end(),
                        std::inserter(ours_ids, ours_ids.end()));
    EXPECT_EQ(ours_ids.size(), 1u) << "one clsact filter of ours on lo egress while capturing (the fallback was "
                                      "not used?):\n"
                                   << raw_during;
    EXPECT_EQ(GotlscapTcFilters("lo", "ingress", &raw_ingress), ingress_before)
        << "loopback: egress only\n"
        << raw_ingress;
    Dumpcap dumpcap("lo", filter, theirs_file);
    ASSERT_TRUE(dumpcap.Start(sentinel_start));
    ClientRun run = RunClient(progs.client, srv.port, s, progs.dir.File("ref.log"));
    ASSERT_EQ(run.exit_code, 0) << run.describe;
    EXPECT_TRUE(WaitConnectionsClosed({srv.port})) << "connections still open 10 s after the client exited";
    ASSERT_TRUE(dumpcap.Stop(sentinel_end));
    PcapRun pr = cap.Stop();
    ASSERT_EQ(pr.exit_code, 0) << pr.describe;
    ASSERT_TRUE(pr.summary.parsed) << pr.describe;
    EXPECT_EQ(pr.summary.lost, 0u) << pr.err;
    EXPECT_EQ(FileMode(ours_file), 0600u);

    // Nothing of ours left behind; the qdisc that was there before is kept.
    std::string raw_after;
    const std::set<std::string> after = GotlscapTcFilters("lo", "egress", &raw_after);
    for (const auto& id : ours_ids)
      EXPECT_FALSE(after.count(id)) << "filter id " << id << " left on lo:\n" << raw_after;
    EXPECT_EQ(after, before) << raw_after;
    if (before.empty()) {
      EXPECT_THAT(raw_after, Not(HasSubstr("gotlscap_filter")));
    }
    EXPECT_TRUE(HasClsact("lo")) << "the clsact qdisc that existed before the capture was deleted";

    const Pcapng ours = ReadPcapng(ours_file), theirs = ReadPcapng(theirs_file);
    ASSERT_EQ(ours.error, "") << ours_file;
    ASSERT_EQ(theirs.error, "") << theirs_file;
    EXPECT_EQ(ours.packets.size(), pr.summary.packets) << pr.err;
    EXPECT_GT(ours.packets.size(), 0u) << pr.err;
    EXPECT_EQ(ComparePackets(ours, theirs, {sentinel_start.port(), sentinel_end.port()}), "");
    std::string raw;
    const auto t = Tshark(ours_file, "", {srv.port}, &raw);
    ExpectAllDecrypted(s, At(t, srv.port), raw);
    ExpectReferenceKeys(ours.secrets, run.reference);
  }
}

// ------------------------------------------------------------------------------------------
// 3. Bad filters: libpcap's message, exit 2, nothing attached, no file
// ------------------------------------------------------------------------------------------

// libpcap's own message for `expr` (Ethernet, as for lo and a dummy device), loaded at run time so
// the test binary needs no libpcap at link time; gotlscap links the same library.
std::string LibpcapError(const std::string& expr) {
  void* h = nullptr;
  for (const char* name : {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"})
    if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!h) return "";
  struct BpfProgram {
    unsigned bf_len;
    void* bf_insns;
  };
  auto open_dead = reinterpret_cast<void* (*)(int, int)>(dlsym(h, "pcap_open_dead"));
  auto compile = reinterpret_cast<int (*)(void*, BpfProgram*, const char*, int, uint32_t)>(dlsym(h, "pcap_compile"));
  auto geterr = reinterpret_cast<char* (*)(void*)>(dlsym(h, "pcap_geterr"));
  auto close_fn = reinterpret_cast<void (*)(void*)>(dlsym(h, "pcap_close"));
  std::string msg;
  if (open_dead && compile && geterr && close_fn) {
    void* p = open_dead(1, 262144);
    BpfProgram prog{};
    if (p && compile(p, &prog, expr.c_str(), 1, 0xffffffffu) != 0) msg = geterr(p);
    if (p) close_fn(p);
  }
  dlclose(h);
  return msg;
}

// An interface of this test only (a veth pair: the dummy driver is not in every kernel): after a
// failed run, it must have no clsact qdisc (on lo, parallel tests attach their own filters, so
// "nothing attached" could not be checked there).
class ScratchLink {
 public:
  ScratchLink() : name_("gtcs" + std::to_string(getpid())) {
    CommandResult r = RunCommand({"ip", "link", "add", name_, "type", "veth", "peer", "name", name_ + "p"});
    created_ = r.exit_code == 0;
    error_ = r.Describe();
    if (created_) RunCommand({"ip", "link", "set", name_, "up"});
  }
  ~ScratchLink() {
    if (created_) RunCommand({"ip", "link", "del", name_});  // and its peer
  }
  ScratchLink(const ScratchLink&) = delete;
  ScratchLink& operator=(const ScratchLink&) = delete;
  bool created() const { return created_; }
  const std::string& name() const { return name_; }
  const std::string& error() const { return error_; }

 private:
  std::string name_, error_;
  bool created_ = false;
};

TEST(PcapE2E, BadFilterFailsBeforeAttaching) {
  REQUIRE_PCAP_ENV(true);
  const MatrixRow* row = NewestRow("default", "server");
  ASSERT_NE(row, nullptr);
  ScratchLink link;
  ASSERT_TRUE(link.created()) << link.error();
  TempDir dir;
  const std::vector<std::vector<std::string>> filters = {{"tcp port"}, {"foo", "bar"}, {"tcp", "port", "99999"}};
  for (const auto& words : filters) {
    std::string expr;
    for (const auto& w : words) expr += (expr.empty() ? "" : " ") + w;
    const std::string libpcap = LibpcapError(expr);
    ASSERT_NE(libpcap, "") << "libpcap accepts `" << expr << "`?";
    for (const bool to_stdout : {false, true}) {
      SCOPED_TRACE("filter `" + expr + "`" + (to_stdout ? ", -w -" : ""));
      const std::string file = dir.File("bad.pcapng");
      std::vector<std::string> argv = {GotlscapBin(), "pcap",   "-i", link.name(), "-w", to_stdout ? "-" : file,
                                       "-e",          row->path, "--duration", "20"};
      argv.insert(argv.end(), words.begin(), words.end());
      const auto t0 = Clock::now();
      CommandResult r = RunCommand(argv);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      EXPECT_EQ(r.exit_code, kExitUsage) << r.Describe();
      EXPECT_EQ(SplitLines(r.err).size(), 1u) << "one line: " << r.Describe();
      EXPECT_THAT(r.err, HasSubstr(libpcap)) << "libpcap's message";
      EXPECT_THAT(r.err, HasSubstr("filter")) << "says what was bad";
      EXPECT_THAT(r.err, Not(HasSubstr("ready")));
      EXPECT_THAT(r.err, Not(HasSubstr("capturing on")));
      EXPECT_LT(secs, 3.0) << "a bad filter must fail before any uprobe is attached";
      EXPECT_EQ(r.out, "") << "not even a section header on stdout";
      EXPECT_FALSE(fs::exists(file)) << "no file is created for a run that cannot start";
      CommandResult tc = RunCommand({"tc", "qdisc", "show", "dev", link.name()});
      EXPECT_THAT(tc.out, Not(HasSubstr("clsact"))) << "nothing attached to the interface";
    }
  }
}

// ------------------------------------------------------------------------------------------
// 4. -w -: piped live into tshark
// ------------------------------------------------------------------------------------------

// gotlscap writes to a FIFO that tshark reads (`gotlscap pcap -w - | tshark -r -`, without a
// shell's pipeline so both pids are known). The requests must be decrypted while gotlscap still
// runs (packets are not held back until exit), and all of them once it stops.
TEST(PcapE2E, StdoutPipedIntoTsharkDecryptsLive) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const std::string fifo = progs.dir.File("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const Scenario scenarios[] = {kScenarios[0], kScenarios[2]};  // HTTP/1.1 on TLS 1.2, HTTP/2 on TLS 1.3
  std::vector<Server> servers(std::size(scenarios));
  std::vector<int> ports;
  for (auto& s : servers) {
    ASSERT_TRUE(StartServer(progs.server, &s));
    ports.push_back(s.port);
  }
  // `sh -c 'exec "$@" < "$0"' FIFO tshark ...`: the shell opens the FIFO, then becomes tshark.
  std::vector<std::string> targv = {"env"};
  targv.insert(targv.end(), TsharkEnv().begin(), TsharkEnv().end());
  for (const char* a : {"sh", "-c", "exec \"$@\" < \"$0\""}) targv.push_back(a);
  targv.push_back(fifo);
  for (const char* a : {"tshark", "-r", "-", "-l"}) targv.push_back(a);
  for (auto& a : TsharkTallyArgs("", ports)) targv.push_back(a);
  Proc tshark(targv);
  // The shell backstop --duration: a test that dies never leaves a capture running.
  PcapCapture cap({"-i", "lo", "-w", "-", "-e", progs.server, "-e", progs.client, "--duration", "60", PortFilter(ports)},
                  {"sh", "-c", "exec \"$@\" > \"$0\"", fifo});
  ASSERT_TRUE(cap.WaitReady()) << tshark.Describe();
  for (size_t i = 0; i < std::size(scenarios); i++) {
    ClientRun r = RunClient(progs.client, ports[i], scenarios[i], progs.dir.File("ref.log"));
    ASSERT_EQ(r.exit_code, 0) << r.describe;
  }
  // Live: everything decrypted before gotlscap stops.
  auto all_decrypted = [&](const std::map<int, PortTally>& t) {
    for (size_t i = 0; i < std::size(scenarios); i++)
      if (Decrypted(At(t, ports[i])) < 2 * scenarios[i].n) return false;
    return true;
  };
  bool live = false;
  for (const auto deadline = Clock::now() + seconds(15); !live && Clock::now() < deadline;) {
    std::string out = tshark.Out();
    out.resize(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    live = all_decrypted(TallyTsharkFields(out, ports, false));
    if (!live) std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_TRUE(live) << "tshark had not decrypted everything 15 s after the clients exited: packets held back?\n"
                    << tshark.Out();
  PcapRun pr = cap.Stop();
  auto tcode = tshark.Wait(seconds(30));
  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  ASSERT_TRUE(pr.summary.parsed) << pr.describe;
  EXPECT_EQ(pr.summary.file, "stdout");
  EXPECT_EQ(pr.summary.lost, 0u) << pr.err;
  ASSERT_TRUE(tcode.has_value()) << "tshark did not see the end of the stream: " << tshark.Describe();
  EXPECT_EQ(*tcode, 0) << tshark.Describe();
  const auto t = TallyTsharkFields(tshark.Out(), ports);
  for (size_t i = 0; i < std::size(scenarios); i++) {
    SCOPED_TRACE(scenarios[i].name);
    ExpectAllDecrypted(scenarios[i], At(t, ports[i]), tshark.Out());
  }
}

// ------------------------------------------------------------------------------------------
// 5. A veth pair into a network namespace
// ------------------------------------------------------------------------------------------

// A namespace and a veth pair of this test, removed even when an assertion fails: host side
// `gtc<pid>a` 10.213.X.1/24, namespace side `gtc<pid>b` 10.213.X.2/24, with X free on this host.
class VethNamespace {
 public:
  VethNamespace() : ns_("gotlscap-test-" + std::to_string(getpid())), host_if_("gtc" + std::to_string(getpid()) + "a"),
                    ns_if_("gtc" + std::to_string(getpid()) + "b") {}
  ~VethNamespace() {
    if (link_) RunCommand({"ip", "link", "del", host_if_});  // removes the peer too
    if (netns_) RunCommand({"ip", "netns", "del", ns_});
  }
  VethNamespace(const VethNamespace&) = delete;
  VethNamespace& operator=(const VethNamespace&) = delete;

  ::testing::AssertionResult Setup() {
    const std::string routes = RunCommand({"ip", "-4", "route", "show", "table", "all"}).out;
    int x = static_cast<int>(getpid() % 250) + 1;
    for (int tries = 0; tries < 250 && routes.find("10.213." + std::to_string(x) + ".") != std::string::npos; tries++)
      x = x % 250 + 1;
    const std::string net = "10.213." + std::to_string(x) + ".";
    host_ip_ = net + "1";
    ns_ip_ = net + "2";
    auto run = [&](const std::vector<std::string>& argv, bool* created = nullptr) -> ::testing::AssertionResult {
      CommandResult r = RunCommand(argv);
      if (r.exit_code != 0) return ::testing::AssertionFailure() << r.Describe();
      if (created) *created = true;
      return ::testing::AssertionSuccess();
    };
    ::testing::AssertionResult ok = run({"ip", "netns", "add", ns_}, &netns_);
    if (ok) ok = run({"ip", "link", "add", host_if_, "type", "veth", "peer", "name", ns_if_}, &link_);
    if (ok) ok = run({"ip", "link", "set", ns_if_, "netns", ns_});
    if (ok) ok = run({"ip", "addr", "add", host_ip_ + "/24", "dev", host_if_});
    if (ok) ok = run({"ip", "link", "set", host_if_, "up"});
    if (ok) ok = run({"ip", "netns", "exec", ns_, "ip", "addr", "add", ns_ip_ + "/24", "dev", ns_if_});
    if (ok) ok = run({"ip", "netns", "exec", ns_, "ip", "link", "set", ns_if_, "up"});
    if (ok) ok = run({"ip", "netns", "exec", ns_, "ip", "link", "set", "lo", "up"});
    return ok;
  }
  const std::string& ns() const { return ns_; }
  const std::string& host_if() const { return host_if_; }
  const std::string& ns_ip() const { return ns_ip_; }

 private:
  std::string ns_, host_if_, ns_if_, host_ip_, ns_ip_;
  bool netns_ = false, link_ = false;
};

// The server inside the namespace: `ip netns exec NS server -addr IP:0` (ip execs the server
// without forking, so the Proc's pid is the server's).
::testing::AssertionResult StartServerInNetns(const VethNamespace& v, const std::string& server, Server* s) {
  const std::string host = v.ns_ip() + ":";
  s->proc = std::make_unique<Proc>(std::vector<std::string>{"ip", "netns", "exec", v.ns(), server, "-addr", host + "0"});
  auto line = s->proc->WaitLine(1, "listening ", seconds(30));
  if (!line) return ::testing::AssertionFailure() << "server did not print `listening`: " << s->proc->Describe();
  s->addr = line->substr(std::string("listening ").size());
  if (s->addr.rfind(host, 0) != 0) return ::testing::AssertionFailure() << "odd address: " << *line;
  s->port = std::atoi(s->addr.c_str() + host.size());
  if (s->port <= 0) return ::testing::AssertionFailure() << "odd address: " << *line;
  return ::testing::AssertionSuccess();
}

// On a veth, egress and ingress are different packets (no loopback doubling), the link is a real
// Ethernet device, and the server's socket lives in another namespace: every packet must still be
// in our file exactly once, as in dumpcap's on the same device, and decrypt.
TEST(PcapE2E, VethIntoNamespaceMatchesDumpcap) {
  REQUIRE_PCAP_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  VethNamespace veth;  // declared before the servers: torn down after they are killed
  ASSERT_TRUE(veth.Setup());
  const std::string ours_file = progs.dir.File("ours.pcapng"), theirs_file = progs.dir.File("theirs.pcapng");
  const Scenario scenarios[] = {kScenarios[0], kScenarios[2]};  // HTTP/1.1 on TLS 1.2, HTTP/2 on TLS 1.3
  std::vector<Server> servers(std::size(scenarios));
  std::vector<int> ports;
  std::set<pid_t> server_pids, client_pids;
  for (auto& s : servers) {
    ASSERT_TRUE(StartServerInNetns(veth, progs.server, &s));
    ports.push_back(s.port);
    server_pids.insert(s.pid());
  }
  // Sentinel: connection attempts to a closed port in the namespace (SYN out, RST back), which
  // cross the veth like the traffic does.
  constexpr int kSentinelPort = 9;
  Sentinel sentinel(veth.ns_ip(), kSentinelPort);
  std::vector<int> filter_ports = ports;
  filter_ports.push_back(kSentinelPort);
  const std::string filter = PortFilter(filter_ports);

  PcapCapture cap({"-i", veth.host_if(), "-w", ours_file, "-e", progs.server, "-e", progs.client, filter});
  ASSERT_TRUE(cap.WaitReady());
  Dumpcap dumpcap(veth.host_if(), filter, theirs_file);
  ASSERT_TRUE(dumpcap.Start(sentinel));
  std::vector<ClientRun> runs;
  for (size_t i = 0; i < std::size(scenarios); i++) {
    runs.push_back(RunClient(progs.client, "https://" + servers[i].addr, scenarios[i],
                             progs.dir.File(std::string("ref-") + scenarios[i].name + ".log")));
    ASSERT_EQ(runs.back().exit_code, 0) << runs.back().describe;
    client_pids.insert(runs.back().pid);
  }
  // The client's sockets are in this namespace: once they are closed or in TIME_WAIT, the last
  // ACK has crossed the veth.
  EXPECT_TRUE(WaitConnectionsClosed(ports)) << "connections still open 10 s after the clients exited";
  ASSERT_TRUE(dumpcap.Stop(sentinel));
  PcapRun pr = cap.Stop();
  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  ASSERT_TRUE(pr.summary.parsed) << pr.describe;
  EXPECT_EQ(pr.summary.lost, 0u) << pr.err;
  EXPECT_EQ(FileMode(ours_file), 0600u);

  const Pcapng ours = ReadPcapng(ours_file), theirs = ReadPcapng(theirs_file);
  ASSERT_EQ(ours.error, "") << ours_file;
  ASSERT_EQ(theirs.error, "") << theirs_file;
  EXPECT_EQ(ours.if_names, std::vector<std::string>{veth.host_if()});
  EXPECT_EQ(ours.linktypes, std::vector<uint16_t>{1});
  ::testing::Test::RecordProperty("packets", std::to_string(ours.packets.size()));
  ::testing::Test::RecordProperty("dumpcap_packets", std::to_string(theirs.packets.size()));
  EXPECT_EQ(ours.packets.size(), pr.summary.packets) << pr.err;
  EXPECT_GT(ours.packets.size(), 0u) << pr.err;
  EXPECT_EQ(ComparePackets(ours, theirs, {kSentinelPort}), "");

  std::string raw;
  const auto t = Tshark(ours_file, "", ports, &raw);
  for (size_t i = 0; i < std::size(scenarios); i++) {
    SCOPED_TRACE(scenarios[i].name);
    ExpectAllDecrypted(scenarios[i], At(t, ports[i]), raw);
    ExpectReferenceKeys(ours.secrets, runs[i].reference);
  }
  ExpectComments(ours, server_pids, client_pids);
}


// ------------------------------------------------------------------------------------------
// 6. What tcpdump users expect: -C rotation, -c, -i any, -Q, SIGUSR1
// ------------------------------------------------------------------------------------------

// Per TCP stream of one file (tshark, no key file): whether its ClientHello is in the file, and
// the frames whose TLS records stayed encrypted ("Application Data", "Encrypted Alert").
struct StreamDecryption {
  bool hello = false;
  int frames = 0, encrypted = 0, http = 0;
};

std::map<int, StreamDecryption> TlsStreams(const std::string& pcap, const std::vector<int>& ports, std::string* raw) {
  std::vector<std::string> argv = {"tshark", "-r", pcap, "-n"};
  for (int p : ports) {
    argv.push_back("-d");
    argv.push_back("tcp.port==" + std::to_string(p) + ",tls");
  }
  for (const char* a : {"-Y", "tls", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "tcp.stream",
                        "-e", "tls.handshake.type", "-e", "http.request.method", "-e", "_ws.col.Info"})
    argv.push_back(a);
  CommandResult r = RunCommand(argv, TsharkEnv());
  *raw = r.out;
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  std::map<int, StreamDecryption> out;
  for (const auto& line : SplitLines(r.out)) {
    const auto f = SplitTabs(line);
    if (f.size() < 4 || f[0].empty()) continue;
    StreamDecryption& d = out[std::stoi(f[0])];
    d.frames++;
    for (const auto& t : SplitComma(f[1])) d.hello |= t == "1";
    d.http += !f[2].empty();
    d.encrypted += f[3].find("Application Data") != std::string::npos || f[3].find("Encrypted Alert") != std::string::npos;
  }
  return out;
}

std::vector<std::string> KeyLines(const std::string& keylog, const std::string& label) {
  std::vector<std::string> out;
  for (const auto& l : SplitLines(keylog))
    if (l.rfind(label + " ", 0) == 0) out.push_back(l);
  return out;
}

// -C: traffic spread over several files (tcpdump's names: FILE, FILE1, FILE2...). Every file
// decrypts alone: each TLS connection whose handshake is in a file has every application data
// record of it in that file decrypted by tshark from that file only. (A connection continuing
// from an earlier file cannot be decrypted by Wireshark without its handshake, whatever the keys:
// so a file after the first instead starts with a DSB holding the keys of every connection still
// open, checked here for a long connection that crosses every file.)
TEST(PcapE2E, RotationEveryFileDecryptsAlone) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server long_srv, short_srv;
  ASSERT_TRUE(StartServer(progs.server, &long_srv));
  ASSERT_TRUE(StartServer(progs.server, &short_srv));
  const std::vector<int> ports = {long_srv.port, short_srv.port};
  const std::string base = progs.dir.File("rot.pcapng");
  PcapCapture cap({"-i", "lo", "-w", base, "-C", "0.05", "-e", progs.server, "-e", progs.client, "--duration", "60",
                   PortFilter(ports)});
  ASSERT_TRUE(cap.WaitReady());
  // One keep-alive TLS 1.3 connection (about 450 kB: every file) and, meanwhile, short TLS 1.2
  // connections (one per request) that start and end in various files.
  const std::string long_ref = progs.dir.File("ref-long.log"), short_ref = progs.dir.File("ref-short.log");
  auto long_run = std::async(std::launch::async, [&] {
    return RunClient(progs.client, long_srv.port, Scenario{"long", "1.3", false, false, 20}, long_ref);
  });
  ClientRun short_run = RunClient(progs.client, short_srv.port, Scenario{"short", "1.2", false, true, 10}, short_ref);
  ClientRun lr = long_run.get();
  ASSERT_EQ(lr.exit_code, 0) << lr.describe;
  ASSERT_EQ(short_run.exit_code, 0) << short_run.describe;
  EXPECT_TRUE(WaitConnectionsClosed(ports));
  PcapRun pr = cap.Stop();
  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  ASSERT_TRUE(pr.summary.parsed) << pr.describe;
  EXPECT_EQ(pr.summary.lost, 0u) << pr.err;

  std::vector<std::string> files = {base};
  for (int i = 1; fs::exists(base + std::to_string(i)); i++) files.push_back(base + std::to_string(i));
  ::testing::Test::RecordProperty("files", std::to_string(files.size()));
  ASSERT_GE(files.size(), 3u) << "traffic over at least 3 files: " << pr.err;
  EXPECT_THAT(pr.err, HasSubstr("(" + std::to_string(files.size()) + " files, the last " + files.back() + ")"));
  const auto long_keys = KeyLines(ReadFileBytes(long_ref), "CLIENT_TRAFFIC_SECRET_0");
  ASSERT_EQ(long_keys.size(), 1u);
  uint64_t packets = 0;
  int hellos = 0, decrypted_requests = 0;
  for (size_t i = 0; i < files.size(); i++) {
    SCOPED_TRACE(files[i]);
    EXPECT_EQ(FileMode(files[i]), 0600u);
    const Pcapng p = ReadPcapng(files[i]);
    ASSERT_EQ(p.error, "");
    EXPECT_EQ(p.if_names, std::vector<std::string>{"lo"}) << "every file has its interface";
    packets += p.packets.size();
    EXPECT_GT(p.packets.size(), 0u);
    // The long connection is open across every file but the last ones it may have ended in.
    bool has_long = false;
    for (const auto& pk : p.packets) has_long |= HasPort(ParseTcp(1, pk.data), {long_srv.port});
    if (i > 0 && has_long) {
      EXPECT_THAT(p.first_secrets, HasSubstr(long_keys[0])) << "the open connection's keys start the file";
    }
    std::string raw;
    const auto streams = TlsStreams(files[i], ports, &raw);
    for (const auto& [stream, d] : streams) {
      if (!d.hello) continue;
      hellos++;
      decrypted_requests += d.http;
      EXPECT_EQ(d.encrypted, 0) << "stream " << stream << " has its handshake in this file, and "
                                << d.encrypted << " of its frames stayed encrypted:\n" << raw;
    }
  }
  EXPECT_EQ(packets, pr.summary.packets) << pr.err;
  EXPECT_EQ(hellos, 11) << "1 + 10 connections, each ClientHello in one file";
  // (A request whose bytes run into the next file is not decrypted anywhere: the test asserts no
  // number, only that decryption did happen.)
  EXPECT_GT(decrypted_requests, 0);
}

// -c N: exactly N packets, and gotlscap stops by itself (exit 0). SIGUSR1 before that prints a
// counters line (the summary's fields) and the capture goes on.
TEST(PcapE2E, CountStopsAtExactlyNAndUsr1PrintsCounters) {
  REQUIRE_PCAP_ENV();
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  Server srv;
  ASSERT_TRUE(StartServer(progs.server, &srv));
  const std::string file = progs.dir.File("count.pcapng");
  constexpr int kCount = 25;
  PcapCapture cap({"-i", "lo", "-w", file, "-c", std::to_string(kCount), "-e", progs.server, "-e", progs.client,
                   "--duration", "60", PortFilter({srv.port})});
  ASSERT_TRUE(cap.WaitReady());
  cap.proc().Signal(SIGUSR1);
  auto line = cap.proc().WaitLine(2, "counters: ", seconds(10));
  ASSERT_TRUE(line.has_value()) << cap.proc().Describe();
  EXPECT_THAT(*line, HasSubstr("counters: 0 packets written to " + file + ", 0 secrets, 0 lost ("));
  const Scenario& s = kScenarios[0];  // well over 25 packets
  ClientRun run = RunClient(progs.client, srv.port, s, progs.dir.File("ref.log"));
  ASSERT_EQ(run.exit_code, 0) << run.describe;
  auto code = cap.proc().Wait(seconds(20));
  ASSERT_TRUE(code.has_value()) << "gotlscap did not stop after -c " << kCount << ": " << cap.proc().Describe();
  EXPECT_EQ(*code, 0) << cap.proc().Describe();
  const PcapSummary sum = ParseSummary(cap.proc().Err());
  ASSERT_TRUE(sum.parsed) << cap.proc().Describe();
  EXPECT_EQ(sum.packets, uint64_t(kCount));
  const Pcapng p = ReadPcapng(file);
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.packets.size(), size_t(kCount));
  EXPECT_GT(p.dsb_count, 0);
}

// -i any: a veth pair into a network namespace, both created after the `ready` line, is captured
// (its own IDB, named, with a comment naming gotlscap's network namespace), and decrypts.
TEST(PcapE2E, AnyCapturesVethCreatedAfterStart) {
  REQUIRE_PCAP_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  const std::string file = progs.dir.File("any.pcapng");
  // The filter names no port (it is not known yet): the targets' connections only are written.
  PcapCapture cap({"-i", "any", "-w", file, "-e", progs.server, "-e", progs.client, "--duration", "60", "tcp"});
  ASSERT_TRUE(cap.WaitReady());
  VethNamespace veth;
  ASSERT_TRUE(veth.Setup());
  ASSERT_TRUE(cap.proc().WaitLine(2, "capturing on " + veth.host_if() + " (new interface)", seconds(10)))
      << cap.proc().Describe();
  Server srv;
  ASSERT_TRUE(StartServerInNetns(veth, progs.server, &srv));
  const Scenario& s = kScenarios[1];  // HTTP/1.1 on TLS 1.3
  ClientRun run = RunClient(progs.client, "https://" + srv.addr, s, progs.dir.File("ref.log"));
  ASSERT_EQ(run.exit_code, 0) << run.describe;
  EXPECT_TRUE(WaitConnectionsClosed({srv.port}));
  PcapRun pr = cap.Stop();
  ASSERT_EQ(pr.exit_code, 0) << pr.describe;
  const Pcapng p = ReadPcapng(file);
  ASSERT_EQ(p.error, "");
  const std::string netns = "netns " + fs::read_symlink("/proc/self/ns/net").string();
  auto it = std::find(p.if_names.begin(), p.if_names.end(), veth.host_if());
  ASSERT_NE(it, p.if_names.end()) << "no IDB for " << veth.host_if() << ": " << pr.err;
  const uint32_t id = static_cast<uint32_t>(it - p.if_names.begin());
  EXPECT_EQ(p.if_comments[id], netns);
  EXPECT_TRUE(std::find(p.if_names.begin(), p.if_names.end(), "lo") != p.if_names.end());
  for (const auto& c : p.if_comments) EXPECT_EQ(c, netns);
  int on_veth = 0;
  for (const auto& pk : p.packets) {
    const TcpInfo t = ParseTcp(p.linktypes[pk.iface], pk.data);
    if (t.ok && (t.sport == srv.port || t.dport == srv.port)) {
      on_veth++;
      EXPECT_EQ(pk.iface, id) << "the server's packets cross the veth only";
    }
  }
  EXPECT_GT(on_veth, 0) << pr.err;
  std::string raw;
  const auto t = Tshark(file, "", {srv.port}, &raw);
  ExpectAllDecrypted(s, At(t, srv.port), raw);
  ExpectComments(p, {srv.pid()}, {run.pid});
}

// -Q in / -Q out on a veth: only the packets received (server to client) or sent (client to
// server), flagged so; two captures side by side over the same traffic.
TEST(PcapE2E, DirectionInOutOnVeth) {
  REQUIRE_PCAP_ENV(true);
  Programs progs;
  ASSERT_TRUE(CopyPrograms("", &progs));
  VethNamespace veth;
  ASSERT_TRUE(veth.Setup());
  Server srv;
  ASSERT_TRUE(StartServerInNetns(veth, progs.server, &srv));
  const std::string in_file = progs.dir.File("in.pcapng"), out_file = progs.dir.File("out.pcapng");
  const std::string filter = PortFilter({srv.port});
  PcapCapture in_cap({"-i", veth.host_if(), "-Q", "in", "-w", in_file, "-e", progs.server, "-e", progs.client,
                      "--duration", "60", filter});
  PcapCapture out_cap({"-i", veth.host_if(), "-Q", "out", "-w", out_file, "-e", progs.server, "-e", progs.client,
                       "--duration", "60", filter});
  ASSERT_TRUE(in_cap.WaitReady());
  ASSERT_TRUE(out_cap.WaitReady());
  ClientRun run = RunClient(progs.client, "https://" + srv.addr, kScenarios[0], progs.dir.File("ref.log"));
  ASSERT_EQ(run.exit_code, 0) << run.describe;
  EXPECT_TRUE(WaitConnectionsClosed({srv.port}));
  PcapRun in_r = in_cap.Stop(), out_r = out_cap.Stop();
  ASSERT_EQ(in_r.exit_code, 0) << in_r.describe;
  ASSERT_EQ(out_r.exit_code, 0) << out_r.describe;
  for (const bool in : {true, false}) {
    SCOPED_TRACE(in ? "-Q in" : "-Q out");
    const Pcapng p = ReadPcapng(in ? in_file : out_file);
    ASSERT_EQ(p.error, "");
    EXPECT_GT(p.packets.size(), 0u) << (in ? in_r.err : out_r.err);
    Problems probs;
    for (const auto& pk : p.packets) {
      const TcpInfo t = ParseTcp(p.linktypes[pk.iface], pk.data);
      if ((pk.flags & 3) != (in ? 1u : 2u)) probs.Add("flags " + std::to_string(pk.flags) + ": " + Describe(1, pk));
      if (!t.ok || (in ? t.sport : t.dport) != srv.port) probs.Add("wrong direction: " + Describe(1, pk));
    }
    EXPECT_EQ(probs.size(), 0u) << probs.str();
  }
}

}  // namespace
}  // namespace gotlscap::testenv
