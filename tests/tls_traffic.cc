#include "tls_traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "test_env.h"

namespace gotlscap::testenv {

using std::chrono::milliseconds;
using std::chrono::seconds;

bool InPath(const std::string& tool) {
  const char* p = std::getenv("PATH");
  std::stringstream ss(p ? p : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':'))
    if (!dir.empty() && access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
  return false;
}

mode_t FileMode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

int CountTcpPackets(const std::string& path, int port) {
  std::string f;
  try {
    f = ReadFileBytes(path);
  } catch (...) {
    return 0;
  }
  auto u32 = [&](size_t off) {
    uint32_t v;
    memcpy(&v, f.data() + off, 4);
    return v;
  };
  auto be16 = [&](size_t off) { return (uint8_t(f[off]) << 8) | uint8_t(f[off + 1]); };
  std::vector<uint16_t> linktypes;
  int n = 0;
  for (size_t off = 0; off + 12 <= f.size();) {
    const uint32_t type = u32(off), len = u32(off + 4);
    if (len < 12 || len % 4 != 0 || off + len > f.size()) break;
    if (type == 0x0A0D0D0A) {
      linktypes.clear();  // new section
    } else if (type == 1 && len >= 20) {
      uint16_t lt;
      memcpy(&lt, f.data() + off + 8, 2);
      linktypes.push_back(lt);
    } else if (type == 6 && len >= 32) {
      const uint32_t iface = u32(off + 8), caplen = u32(off + 20);
      const size_t data = off + 28;
      if (iface < linktypes.size() && data + caplen <= off + len) {
        const uint16_t lt = linktypes[iface];
        size_t ip = lt == 1 ? 14 : lt == 113 ? 16 : lt == 276 ? 20 : SIZE_MAX;
        size_t ethertype_at = lt == 1 ? 12 : lt == 113 ? 14 : 0;
        if (ip != SIZE_MAX && caplen >= ip + 24 && be16(data + ethertype_at) == 0x0800) {
          const size_t ihl = (uint8_t(f[data + ip]) & 15) * 4;
          if (uint8_t(f[data + ip + 9]) == 6 && caplen >= ip + ihl + 4) {
            const int sp = be16(data + ip + ihl), dp = be16(data + ip + ihl + 2);
            n += sp == port || dp == port;
          }
        }
      }
    }
    off += len;
  }
  return n;
}

// ------------------------------------------------------------------------------------------
// Sentinel
// ------------------------------------------------------------------------------------------

Sentinel::Sentinel() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 64) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &al) != 0)
    throw std::runtime_error("sentinel listener failed");
  port_ = ntohs(a.sin_port);
}

Sentinel::Sentinel(const std::string& ip, int port) : port_(port), ip_(ip) {}

Sentinel::~Sentinel() {
  if (fd_ >= 0) close(fd_);
}

bool Sentinel::WaitCaptured(const std::string& pcap, Clock::duration timeout) {
  const int before = CountTcpPackets(pcap, port_);
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    Ping();
    for (int i = 0; i < 10; i++) {
      std::this_thread::sleep_for(milliseconds(20));
      if (CountTcpPackets(pcap, port_) > before) return true;
    }
  }
  return false;
}

void Sentinel::Ping() {
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) return;
  // A peer that drops instead of refusing must not hang the test: the SYN is out either way.
  timeval tv{0, 200000};
  setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip_.c_str(), &a.sin_addr);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && fd_ >= 0) {
    int s = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (s >= 0) close(s);
  }
  close(c);
}

// ------------------------------------------------------------------------------------------
// dumpcap, capture filters, connection ends
// ------------------------------------------------------------------------------------------

Dumpcap::Dumpcap(const std::string& ifname, const std::string& filter, const std::string& file)
    : file_(file), proc_({"dumpcap", "-i", ifname, "-f", filter, "-w", file, "-q"}) {}

::testing::AssertionResult Dumpcap::Start(Sentinel& sentinel) {
  if (!proc_.WaitLine(2, "Capturing on", seconds(30), true))
    return ::testing::AssertionFailure() << "dumpcap did not start: " << proc_.Describe();
  if (!sentinel.WaitCaptured(file_, seconds(20)))
    return ::testing::AssertionFailure() << "dumpcap captures nothing: " << proc_.Describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Dumpcap::Stop(Sentinel& sentinel) {
  if (!sentinel.WaitCaptured(file_, seconds(20)))
    return ::testing::AssertionFailure() << "dumpcap stopped capturing: " << proc_.Describe();
  proc_.Signal(SIGINT);
  auto code = proc_.Wait(seconds(30));
  if (!code || *code != 0) return ::testing::AssertionFailure() << "dumpcap failed: " << proc_.Describe();
  return ::testing::AssertionSuccess();
}

std::string PortFilter(const std::vector<int>& ports) {
  std::string f;
  for (int p : ports) f += (f.empty() ? "" : " or ") + std::string("tcp port ") + std::to_string(p);
  return f;
}

bool WaitConnectionsClosed(const std::vector<int>& ports) {
  const auto deadline = Clock::now() + seconds(10);
  const std::set<int> want(ports.begin(), ports.end());
  while (true) {
    bool busy = false;
    std::ifstream in("/proc/net/tcp");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      auto f = SplitWs(line);
      if (f.size() < 4) continue;
      auto port = [](const std::string& a) {
        auto c = a.find(':');
        return c == std::string::npos ? 0 : static_cast<int>(std::strtol(a.c_str() + c + 1, nullptr, 16));
      };
      const std::string& st = f[3];
      if ((want.count(port(f[1])) || want.count(port(f[2]))) && st != "0A" && st != "06" && st != "07") busy = true;
    }
    if (!busy) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
}

// ------------------------------------------------------------------------------------------
// tshark
// ------------------------------------------------------------------------------------------

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(x);
  return out;
}

std::vector<std::string> TsharkTallyArgs(const std::string& keyfile, const std::vector<int>& ports) {
  std::vector<std::string> argv = {"-n"};
  if (!keyfile.empty()) {
    argv.push_back("-o");
    argv.push_back("tls.keylog_file:" + keyfile);
  }
  for (int p : ports) {
    argv.push_back("-d");
    argv.push_back("tcp.port==" + std::to_string(p) + ",tls");
  }
  for (const char* a : {"-Y", "http.request or http.response or http2.type == 1 or tls.handshake.type == 1", "-T",
                        "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "tcp.srcport", "-e", "tcp.dstport",
                        "-e", "tcp.stream", "-e", "tls.handshake.type", "-e", "tls.handshake.random", "-e",
                        "http.request.method", "-e", "http.response.code", "-e", "http2.headers.method", "-e",
                        "http2.headers.status"})
    argv.push_back(a);
  return argv;
}

const std::vector<std::string>& TsharkEnv() {
  // No personal preferences (an SSLKEYLOGFILE set in a profile would decrypt without our keys).
  static const std::vector<std::string> env = {"WIRESHARK_CONFIG_DIR=/nonexistent-gotlscap-test",
                                               "HOME=/nonexistent"};
  return env;
}

std::map<int, PortTally> TallyTsharkFields(const std::string& out, const std::vector<int>& ports, bool report_odd) {
  std::map<int, PortTally> t;
  for (const auto& line : SplitLines(out)) {
    const std::vector<std::string> f = SplitTabs(line);
    if (f.size() != 9) {
      if (report_odd) ADD_FAILURE() << "odd tshark line: " << line;
      continue;
    }
    const int src = std::atoi(f[0].c_str()), dst = std::atoi(f[1].c_str()), stream = std::atoi(f[2].c_str());
    const bool to_server = std::find(ports.begin(), ports.end(), dst) != ports.end();
    PortTally& p = t[to_server ? dst : src];
    auto hs_types = SplitComma(f[3]);
    auto randoms = SplitComma(f[4]);
    if (to_server && !hs_types.empty() && hs_types[0] == "1" && !randoms.empty()) {
      p.client_randoms.push_back(randoms[0]);
      p.hello_streams.insert(stream);
    }
    const auto m1 = SplitComma(f[5]), c1 = SplitComma(f[6]), m2 = SplitComma(f[7]), c2 = SplitComma(f[8]);
    if (to_server) {
      p.http1_requests += static_cast<int>(m1.size());
      p.h2_requests += static_cast<int>(m2.size());
      if (!m1.empty() || !m2.empty()) p.streams_with_request.insert(stream);
    } else {
      p.http1_responses += static_cast<int>(c1.size());
      p.h2_responses += static_cast<int>(c2.size());
      for (const auto& c : c1) p.http1_ok += c == "200";
      for (const auto& c : c2) p.h2_ok += c == "200";
    }
  }
  return t;
}

std::map<int, PortTally> Tshark(const std::string& pcap, const std::string& keyfile, const std::vector<int>& ports,
                                std::string* raw) {
  std::vector<std::string> argv = {"tshark", "-r", pcap};
  for (auto& a : TsharkTallyArgs(keyfile, ports)) argv.push_back(std::move(a));
  CommandResult r = RunCommand(argv, TsharkEnv());
  *raw = r.out;
  EXPECT_EQ(r.exit_code, 0) << "tshark failed: " << r.Describe();
  return TallyTsharkFields(r.out, ports);
}

// ------------------------------------------------------------------------------------------
// Client runs
// ------------------------------------------------------------------------------------------

ClientRun RunClient(const std::string& client, int port, const Scenario& s, const std::string& reflog) {
  return RunClient(client, "https://127.0.0.1:" + std::to_string(port), s, reflog);
}

ClientRun RunClient(const std::string& client, const std::string& url, const Scenario& s, const std::string& reflog) {
  std::vector<std::string> argv = {client, "-url", url, "-n", std::to_string(s.n), "-size", std::to_string(kBodySize),
                                   "-tls", s.tls, "-mode", "all", "-keylog", reflog};
  if (s.h2) argv.push_back("-h2");
  if (s.resume) argv.push_back("-resume");
  const ProcRun p = RunToEnd(argv, seconds(120));
  ClientRun r;
  r.pid = p.pid;
  r.exit_code = p.exit_code;
  r.out = p.out;
  r.describe = p.describe;
  std::smatch m;
  static const std::regex re(R"(resumed=(\d+))");
  if (std::regex_search(r.out, m, re)) r.resumed = std::stoi(m[1]);
  r.reference = reflog;
  return r;
}

}  // namespace gotlscap::testenv
