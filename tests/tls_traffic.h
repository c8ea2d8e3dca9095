// Shared pieces of the end-to-end tests that make TLS traffic with the matrix's Go server and
// client and check it with Wireshark's tools (keylog_e2e_test.cc, pcap_e2e_test.cc): the client
// runs of each scenario, tshark's tally of what it decrypted, and a "sentinel" that proves a
// capture file written by another process (dumpcap) already holds everything sent before it.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_process.h"

namespace gotlscap::testenv {

// ------------------------------------------------------------------------------------------
// Environment and files
// ------------------------------------------------------------------------------------------

// `tool` is an executable in some PATH directory.
bool InPath(const std::string& tool);

// Permission bits (07777) of `path`; 0 when it cannot be stat'ed.
mode_t FileMode(const std::string& path);

// Counts the TCP packets to or from `port` in a pcapng file that dumpcap may still be writing
// (a truncated last block ends the walk). Handles what dumpcap writes for `lo` and veth:
// Ethernet (linktype 1) or Linux cooked (113, 276) framing of IPv4, in this machine's byte order.
int CountTcpPackets(const std::string& path, int port);

// A TCP connection of our own whose port is in the capture filter: once its packets are in the
// pcap file, everything sent before them is too (dumpcap writes what the kernel hands it in
// batches, and its "Capturing on" line comes before the capture is really running).
class Sentinel {
 public:
  // A listener on 127.0.0.1 (kernel-chosen port); pings are loopback connections to it.
  Sentinel();
  // No listener: pings are connection attempts to `ip`:`port` (a refused attempt, SYN and RST,
  // is enough), so that the packets cross the interface that leads to `ip` (e.g. a veth).
  Sentinel(const std::string& ip, int port);
  ~Sentinel();
  Sentinel(const Sentinel&) = delete;
  Sentinel& operator=(const Sentinel&) = delete;
  int port() const { return port_; }

  // Pings until a packet of the sentinel port is in `pcap` (false after `timeout`).
  bool WaitCaptured(const std::string& pcap, Clock::duration timeout);

 private:
  void Ping();
  int fd_ = -1, port_ = 0;
  std::string ip_ = "127.0.0.1";
};

// dumpcap on `ifname` with `filter`, writing `file`: the reference capture the e2e tests compare
// with or decrypt. Started (and stopped) with a Sentinel, so the file provably holds everything
// sent after Start() and before Stop().
class Dumpcap {
 public:
  Dumpcap(const std::string& ifname, const std::string& filter, const std::string& file);
  // Ready once `sentinel`'s packet is in the file.
  ::testing::AssertionResult Start(Sentinel& sentinel);
  // Once `sentinel` is in the file, everything sent before it is: then SIGINT.
  ::testing::AssertionResult Stop(Sentinel& sentinel);

 private:
  std::string file_;
  Proc proc_;
};

// A capture filter for every port of `ports`: "tcp port A or tcp port B ...".
std::string PortFilter(const std::vector<int>& ports);

// Waits (up to 10 s) until no TCP socket of this network namespace on one of `ports` is in a
// state that still sends packets (only LISTEN, TIME_WAIT and CLOSE left): the clients have
// exited, but the server closes its ends, and the last ACKs cross, a moment later. Only then
// does a sentinel prove that dumpcap has every packet of the connections.
bool WaitConnectionsClosed(const std::vector<int>& ports);

// ------------------------------------------------------------------------------------------
// tshark
// ------------------------------------------------------------------------------------------

// What tshark decrypted for one server port.
struct PortTally {
  int http1_requests = 0, http1_responses = 0, http1_ok = 0;
  int h2_requests = 0, h2_responses = 0, h2_ok = 0;
  std::set<int> streams_with_request;      // TCP streams in which a request was decrypted
  std::vector<std::string> client_randoms;  // of every ClientHello to the port
  std::set<int> hello_streams;
};

std::vector<std::string> SplitComma(const std::string& s);

// The pieces of Tshark() for a tshark run by other means (reading a pipe): its arguments after
// the input ("-r FILE"), its environment, and the tally of its output.
std::vector<std::string> TsharkTallyArgs(const std::string& keyfile, const std::vector<int>& ports);
const std::vector<std::string>& TsharkEnv();
// report_odd: a line that is not tshark's 9 fields is a test failure (false while tshark is
// still writing: the last line may be cut).
std::map<int, PortTally> TallyTsharkFields(const std::string& out, const std::vector<int>& ports,
                                           bool report_odd = true);

// Runs tshark over `pcap` and tallies, per server port, the decrypted HTTP/1.1 and HTTP/2
// requests and responses and the ClientHellos. `keyfile` is an NSS key log for tshark, or ""
// for none: then only secrets inside the file (pcapng Decryption Secrets Blocks) can decrypt.
// Wireshark preferences are never read (a profile's key log would decrypt without ours).
// tshark's stdout goes to *raw (for failure messages).
std::map<int, PortTally> Tshark(const std::string& pcap, const std::string& keyfile, const std::vector<int>& ports,
                                std::string* raw);

// ------------------------------------------------------------------------------------------
// Client runs
// ------------------------------------------------------------------------------------------

struct Scenario {
  const char* name;
  const char* tls;  // pinned version
  bool h2, resume;
  int n;  // requests, cycling echo, bytes, chunked, gzip, hello (-mode all)
};
inline constexpr Scenario kScenarios[] = {
    {"http1_tls12", "1.2", false, false, 5},
    {"http1_tls13", "1.3", false, false, 5},
    {"http2_tls13", "1.3", true, false, 5},
    {"http1_tls12_resume", "1.2", false, true, 5},
};
inline constexpr int kBodySize = 10000;  // > one TLS record for chunked/gzip; several DATA frames

struct ClientRun {
  pid_t pid = -1;
  int exit_code = -1;
  std::string out, describe;
  int resumed = -1;       // the client's "resumed=N", -1 if it printed none
  std::string reference;  // the client's own -keylog file
};

// Runs `client` against https://127.0.0.1:`port` (or the base `url`) for scenario `s`, the
// client's own key log appended to `reflog`.
ClientRun RunClient(const std::string& client, int port, const Scenario& s, const std::string& reflog);
ClientRun RunClient(const std::string& client, const std::string& url, const Scenario& s, const std::string& reflog);

}  // namespace gotlscap::testenv
