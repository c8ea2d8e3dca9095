// End-to-end tests of container naming and --container (`gotlscap text --format json`). There is
// no container runtime here: the tests make cgroup v2 directories of the shapes docker,
// containerd, CRI-O, podman and the kubelet make (systemd and cgroupfs drivers) under a directory
// of their own in the cgroup v2 mount, and start the matrix's Go server and clients in them (a
// shell writes its pid into cgroup.procs, then execs the program: same pid, same cgroup):
//   - every data, close, http and secret event of each process names its cgroup path and the
//     container the path says (id, runtime, pod UID), and a process outside any container has
//     its cgroup and no container;
//   - --container PREFIX (repeatable) captures the matching containers' processes only, checked
//     in the kernel; a container that starts after gotlscap (no match at start: a note) is
//     picked up by the once-a-second rescan.
// Needs root and BPF (skips otherwise, fails under CI=true) and the matrix (scripts/go-matrix.sh).
#include <dirent.h>
#include <mntent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/cgroup_mount.h"
#include "test_env.h"
#include "test_process.h"

namespace gotlscap::testenv {
namespace {

using std::chrono::seconds;


std::string RandomHex(std::mt19937_64& rng, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) s.push_back(kHex[rng() % 16]);
  return s;
}

// A directory of the test's own in the cgroup v2 mount; the cgroups made under it are removed at
// the end (their processes moved back to the root first).
class CgroupSandbox {
 public:
  CgroupSandbox() {
    mount_ = CgroupV2Mount();
    if (mount_.empty()) return;
    base_rel_ = "/gotlscap-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter_);
    if (mkdir((mount_ + base_rel_).c_str(), 0755) != 0) {
      error_ = "mkdir " + mount_ + base_rel_ + ": " + std::strerror(errno);
      base_rel_.clear();
    }
  }
  ~CgroupSandbox() {
    if (base_rel_.empty()) return;
    // Deepest first: a cgroup with children cannot be removed.
    std::sort(made_.begin(), made_.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    made_.push_back(base_rel_);
    for (const auto& rel : made_) {
      const std::string dir = mount_ + rel;
      for (int attempt = 0; attempt < 50; attempt++) {
        std::ifstream procs(dir + "/cgroup.procs");
        std::string pid;
        bool any = false;
        while (std::getline(procs, pid)) {
          any = true;
          std::ofstream(mount_ + "/cgroup.procs") << pid << "\n";
        }
        if (rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
        if (!any) usleep(100000);  // an exiting process leaves a moment later
      }
    }
  }
  bool ok() const { return !mount_.empty() && !base_rel_.empty(); }
  std::string problem() const {
    if (mount_.empty()) return "cgroup v2 is not mounted";
    return error_;
  }
  // Makes base/rel (and its parents); returns its path relative to the mount, as events show it.
  std::string Make(const std::string& rel) {
    std::string path = base_rel_;
    size_t start = 0;
    while (start < rel.size()) {
      size_t slash = rel.find('/', start);
      if (slash == std::string::npos) slash = rel.size();
      path += "/" + rel.substr(start, slash - start);
      if (mkdir((mount_ + path).c_str(), 0755) == 0) made_.push_back(path);
      start = slash + 1;
    }
    return path;
  }
  std::string Abs(const std::string& rel_to_mount) const { return mount_ + rel_to_mount; }

 private:
  static inline int counter_ = 0;
  std::string mount_, base_rel_, error_;
  std::vector<std::string> made_;
};

// argv running `argv` inside the cgroup `abs_dir`: the shell moves itself, then execs the program.
std::vector<std::string> InCgroup(const std::string& abs_dir, std::vector<std::string> argv) {
  std::vector<std::string> a = {"/bin/sh", "-c", "echo $$ > \"" + abs_dir + "/cgroup.procs\" && exec \"$0\" \"$@\""};
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

// A server started in the cgroup `abs_dir` (StartServer runs /bin/sh with these first).
::testing::AssertionResult StartServerIn(const std::string& abs_dir, const std::string& server, Server* s) {
  std::vector<std::string> a = InCgroup(abs_dir, {server});
  return StartServer(a[0], s, {}, std::vector<std::string>(a.begin() + 1, a.end()));
}

struct Ev {
  std::string type;
  uint32_t pid = 0;
  std::string line;
  bool has_cgroup = false, has_container = false;
  std::string cgroup, id, runtime, pod_uid;
  bool has_runtime = false, has_pod = false;
};

std::vector<Ev> ParseEvents(const std::string& raw, Problems* p) {
  std::vector<Ev> out;
  for (const auto& line : SplitLines(raw)) {
    if (line.empty()) continue;
    Ev e;
    e.line = line.substr(0, 400);
    try {
      auto j = nlohmann::json::parse(line);
      e.type = j.at("type").get<std::string>();
      e.pid = j.at("pid").get<uint32_t>();
      if (j.contains("cgroup")) {
        e.has_cgroup = true;
        e.cgroup = j["cgroup"].get<std::string>();
      }
      if (j.contains("container")) {
        const auto& c = j["container"];
        e.has_container = true;
        e.id = c.at("id").get<std::string>();
        if (c.contains("runtime")) {
          e.has_runtime = true;
          e.runtime = c["runtime"].get<std::string>();
        }
        if (c.contains("pod_uid")) {
          e.has_pod = true;
          e.pod_uid = c["pod_uid"].get<std::string>();
        }
      }
    } catch (const std::exception& ex) {
      p->Add(std::string("bad JSON line: ") + ex.what() + ": " + e.line);
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// `gotlscap text --format json -o FILE ARGS...`
class Gotlscap {
 public:
  Gotlscap(const TempDir& dir, const std::vector<std::string>& args) {
    static int counter = 0;
    out_ = dir.File("container-capture-" + std::to_string(++counter) + ".jsonl");
    std::vector<std::string> argv = {GotlscapBin(), "text", "--format", "json", "-o", out_};
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Proc>(argv);
  }
  ::testing::AssertionResult WaitReady() {
    if (!proc_->WaitLine(2, "ready", seconds(60)))
      return ::testing::AssertionFailure() << "gotlscap did not print `ready`: " << proc_->Describe();
    return ::testing::AssertionSuccess();
  }
  Proc& proc() { return *proc_; }
  // Stops gotlscap; its output file.
  std::string Stop(int* exit_code) {
    proc_->Signal(SIGINT);
    auto code = proc_->Wait(seconds(60));
    *exit_code = code ? *code : -1;
    return ReadFileBytes(out_);
  }

 private:
  std::string out_;
  std::unique_ptr<Proc> proc_;
};

// A process placed in a cgroup, and what its events must say.
struct Placement {
  std::string label;
  std::string rel;      // under the sandbox
  std::string id;       // expected container id, "" for none
  std::string runtime;  // "" : no "runtime" field
  std::string pod;      // "" : no "pod_uid" field
  std::string cgroup;   // set by Place: the path relative to the mount, as events show it
  uint32_t pid = 0;
};

void Place(CgroupSandbox& sb, Placement* p) { p->cgroup = sb.Make(p->rel); }

// Every event of p's pid names p's cgroup and container; returns the event types seen.
std::map<std::string, int> CheckEvents(const std::vector<Ev>& evs, const Placement& p, Problems* probs) {
  std::map<std::string, int> types;
  for (const auto& e : evs) {
    if (e.pid != p.pid) continue;
    types[e.type]++;
    const std::string where = p.label + " " + e.type + " event: ";
    if (!e.has_cgroup || e.cgroup != p.cgroup) {
      probs->Add(where + "cgroup " + (e.has_cgroup ? e.cgroup : "(none)") + ", want " + p.cgroup + ": " + e.line);
      continue;
    }
    if (p.id.empty()) {
      if (e.has_container) probs->Add(where + "a container outside any: " + e.line);
      continue;
    }
    if (!e.has_container) {
      probs->Add(where + "no container: " + e.line);
      continue;
    }
    if (e.id != p.id) probs->Add(where + "container id " + e.id + ", want " + p.id);
    if (e.has_runtime != !p.runtime.empty() || e.runtime != p.runtime)
      probs->Add(where + "runtime '" + e.runtime + "', want '" + p.runtime + "'");
    if (e.has_pod != !p.pod.empty() || e.pod_uid != p.pod)
      probs->Add(where + "pod_uid '" + e.pod_uid + "', want '" + p.pod + "'");
  }
  return types;
}

std::vector<std::string> ClientArgs(const std::string& client, const std::string& url) {
  return {client, "-url", url, "-mode", "all", "-n", "3", "-size", "300", "-close-idle"};
}

class ContainerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    GOTLSCAP_REQUIRE(SkipOrFailUnlessReady(BpfProblem("capture")));
    GOTLSCAP_REQUIRE_MATRIX();
    if (!sb_.ok()) GOTLSCAP_REQUIRE(SkipOrFail("no cgroup v2 directory to work in: " + sb_.problem()));
    ASSERT_TRUE(CopyPrograms("", &progs_));
  }
  std::mt19937_64 rng_{std::random_device{}()};
  std::string Id() { return RandomHex(rng_, 64); }
  std::string Uuid() {
    return RandomHex(rng_, 8) + "-" + RandomHex(rng_, 4) + "-" + RandomHex(rng_, 4) + "-" + RandomHex(rng_, 4) + "-" +
           RandomHex(rng_, 12);
  }
  static std::string Underscored(std::string s) {
    std::replace(s.begin(), s.end(), '-', '_');
    return s;
  }
  // Runs a client in p's cgroup to its end; records its pid.
  void RunClient(Placement& p, const Server& srv) {
    ProcRun r = RunToEnd(InCgroup(sb_.Abs(p.cgroup), ClientArgs(progs_.client, srv.url())), seconds(120));
    p.pid = static_cast<uint32_t>(r.pid);
    EXPECT_EQ(r.exit_code, 0) << p.label << ": " << r.describe;
  }
  // The cgroup sandbox outlives every process below (declared first, destroyed last).
  CgroupSandbox sb_;
  Programs progs_;
};

// 1. Every layout: each event names the process's cgroup and the container the path says.
TEST_F(ContainerE2E, EveryEventNamesItsContainer) {
  const std::string pod1 = Uuid(), pod2 = Uuid(), pod3 = Uuid();
  Placement server{"server (docker, systemd)", "system.slice/docker-" + Id() + ".scope"};
  server.id = server.rel.substr(server.rel.find('-') + 1, 64);
  server.runtime = "docker";
  std::vector<Placement> clients;
  auto add = [&](std::string label, std::string rel_prefix, std::string rel_suffix, std::string runtime,
                 std::string pod) {
    Placement p;
    p.label = std::move(label);
    p.id = Id();
    p.rel = rel_prefix + p.id + rel_suffix;
    p.runtime = std::move(runtime);
    p.pod = std::move(pod);
    clients.push_back(std::move(p));
  };
  add("containerd in a burstable pod (systemd)",
      "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + Underscored(pod1) + ".slice/cri-containerd-",
      ".scope", "containerd", pod1);
  add("CRI-O in a besteffort pod (systemd)",
      "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + Underscored(pod2) + ".slice/crio-", ".scope",
      "cri-o", pod2);
  add("podman (systemd, inner cgroup)", "machine.slice/libpod-", ".scope/container", "podman", "");
  add("kubelet cgroupfs, besteffort pod", "kubepods/besteffort/pod" + pod3 + "/", "", "", pod3);
  add("docker cgroupfs", "docker/", "", "docker", "");
  Placement plain{"no container", "user.slice/session-7.scope"};
  Place(sb_, &server);
  for (auto& c : clients) Place(sb_, &c);
  Place(sb_, &plain);

  Gotlscap cap(progs_.dir, {"-e", progs_.server, "-e", progs_.client});
  ASSERT_TRUE(cap.WaitReady());
  Server srv;
  ASSERT_TRUE(StartServerIn(sb_.Abs(server.cgroup), progs_.server, &srv));
  server.pid = static_cast<uint32_t>(srv.pid());
  for (auto& c : clients) RunClient(c, srv);
  RunClient(plain, srv);
  usleep(500000);  // closes are held 50 ms; the server's EOFs follow the clients' closes
  int code = -1;
  const std::string raw = cap.Stop(&code);
  ASSERT_EQ(code, 0) << cap.proc().Describe();

  Problems probs;
  auto evs = ParseEvents(raw, &probs);
  std::map<std::string, int> all;
  for (const Placement* p : [&] {
         std::vector<const Placement*> v = {&server, &plain};
         for (const auto& c : clients) v.push_back(&c);
         return v;
       }()) {
    auto types = CheckEvents(evs, *p, &probs);
    for (const char* t : {"data", "secret", "close"})
      if (!types.count(t)) probs.Add(p->label + " (pid " + std::to_string(p->pid) + "): no " + t + " event");
    for (const auto& [t, n] : types) all[t] += n;
  }
  for (const char* t : {"data", "close", "http", "secret"})
    if (!all.count(t)) probs.Add(std::string("no ") + t + " event at all");
  EXPECT_EQ(probs.size(), 0u) << probs.str() << "stderr:\n" << cap.proc().Err();
}

// 2. --container: only the matching containers' processes, checked in the kernel (the summary's
// event count is the output's: nothing was dropped in user space); a container that starts later
// is picked up; other containers' and the host's processes are not captured.
TEST_F(ContainerE2E, ContainerFilterInTheKernel) {
  const std::string pod = Uuid();
  Placement server{"server (docker, systemd; not wanted)", "system.slice/docker-" + Id() + ".scope"};
  Placement wanted{"containerd in a pod (wanted)", ""};
  wanted.id = Id();
  wanted.rel = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + Underscored(pod) +
               ".slice/cri-containerd-" + wanted.id + ".scope";
  wanted.runtime = "containerd";
  wanted.pod = pod;
  Placement other{"docker cgroupfs (not wanted)", ""};
  other.id = Id();
  other.rel = "docker/" + other.id;
  Placement late{"CRI-O, started after gotlscap (wanted)", ""};
  late.id = Id();
  late.rel = "system.slice/crio-" + late.id + ".scope";
  late.runtime = "cri-o";
  Place(sb_, &server);
  Place(sb_, &wanted);
  Place(sb_, &other);

  // Prefixes: 12 digits, and 7 in upper case (prefixes are hex, any case).
  std::string late_prefix = late.id.substr(0, 7);
  for (auto& c : late_prefix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Gotlscap cap(progs_.dir, {"-e", progs_.server, "-e", progs_.client, "--container", wanted.id.substr(0, 12),
                            "--container", late_prefix});
  ASSERT_TRUE(cap.WaitReady());
  EXPECT_TRUE(cap.proc().WaitLine(2, "container " + wanted.id.substr(0, 12) + ": capturing containerd", seconds(1)))
      << cap.proc().Err();
  EXPECT_TRUE(cap.proc().WaitLine(2, "container " + late.id.substr(0, 7) + ": no such container yet", seconds(1)))
      << cap.proc().Err();
  Server srv;
  ASSERT_TRUE(StartServerIn(sb_.Abs(server.cgroup), progs_.server, &srv));
  server.pid = static_cast<uint32_t>(srv.pid());
  RunClient(wanted, srv);
  RunClient(other, srv);
  // The late container's cgroup appears now: the next rescan (within a second) adds it.
  Place(sb_, &late);
  ASSERT_TRUE(cap.proc().WaitLine(2, "container " + late.id.substr(0, 12) + ": capturing cri-o", seconds(10)))
      << cap.proc().Err();
  RunClient(late, srv);
  usleep(500000);
  int code = -1;
  const std::string raw = cap.Stop(&code);
  ASSERT_EQ(code, 0) << cap.proc().Describe();

  Problems probs;
  auto evs = ParseEvents(raw, &probs);
  for (const Placement* p : {&wanted, &late}) {
    auto types = CheckEvents(evs, *p, &probs);
    for (const char* t : {"data", "secret", "close"})
      if (!types.count(t)) probs.Add(p->label + " (pid " + std::to_string(p->pid) + "): no " + t + " event");
  }
  size_t data = 0;
  for (const auto& e : evs) {
    if (e.type == "data") data++;
    if (e.pid != wanted.pid && e.pid != late.pid)
      probs.Add("an event of pid " + std::to_string(e.pid) + " (server " + std::to_string(server.pid) + ", other " +
                std::to_string(other.pid) + "): " + e.line);
  }
  // "summary: N events": the kernel sent only what was printed.
  const std::string err = cap.proc().Err();
  const size_t at = err.find("summary: ");
  if (at == std::string::npos)
    probs.Add("no summary line");
  else if (std::stoull(err.substr(at + 9)) != data)
    probs.Add("the summary counts " + err.substr(at + 9, err.find(' ', at + 9) - at - 9) + " events, the output has " +
              std::to_string(data) + " data events: events were dropped after the kernel");
  EXPECT_EQ(probs.size(), 0u) << probs.str() << "stderr:\n" << err;
}

// 3. A --container that is not hex: a one-line usage error (exit code 2), before anything runs.
TEST(ContainerCli, PrefixMustBeHex) {
  for (const char* bad : {"docker-0123", "xyz", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"}) {
    ProcRun r = RunToEnd({GotlscapBin(), "text", "-e", "/bin/ls", "--container", bad}, seconds(20));
    EXPECT_EQ(r.exit_code, 2) << r.describe;
    EXPECT_EQ(r.err, std::string("gotlscap: --container ") + bad + ": not a container id (1 to 64 hex digits)\n")
        << r.describe;
  }
}

}  // namespace
}  // namespace gotlscap::testenv
