#include <array>
#include "test_env.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace gotlscap::testenv {
namespace fs = std::filesystem;

namespace {
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
}  // namespace

std::string CacheDir() {
  std::string c = Env("GOTLSCAP_CACHE");
  return c.empty() ? "/var/cache/gotlscap" : c;
}

std::string ManifestPath() {
  std::string m = Env("GOTLSCAP_MANIFEST");
  return m.empty() ? CacheDir() + "/testprogs/manifest.tsv" : m;
}

bool ManifestExists() {
  std::error_code ec;
  return fs::is_regular_file(ManifestPath(), ec);
}

bool IsCi() {
  std::string ci = Env("CI");
  return ci == "true" || ci == "1";
}

int MatrixRow::Minor() const {
  auto dot = go_minor.find('.');
  return std::atoi(go_minor.c_str() + (dot == std::string::npos ? 0 : dot + 1));
}

bool MatrixRow::IsStrippedVariant() const {
  return variant.size() >= 8 && variant.compare(variant.size() - 8, 8, "stripped") == 0;
}

std::string MatrixRow::TestName() const {
  std::string n = "go" + go_minor + "_" + variant + "_" + prog;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

std::ostream& operator<<(std::ostream& os, const MatrixRow& r) {
  return os << r.go_version << " " << r.variant << " " << r.prog << " (" << r.path << ")";
}

std::vector<MatrixRow> ReadManifest() {
  std::vector<MatrixRow> rows;
  std::ifstream in(ManifestPath());
  if (!in) return rows;
  std::string line;
  bool header = true;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    if (header) {
      header = false;
      if (line.rfind("go_minor\t", 0) != 0)
        throw std::runtime_error(ManifestPath() + ": unexpected header: " + line);
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> f = SplitTabs(line);
    if (f.size() != 8)
      throw std::runtime_error(ManifestPath() + ":" + std::to_string(lineno) + ": expected 8 columns, got " +
                               std::to_string(f.size()));
    MatrixRow row{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
    // The matrix names its arm64 builds "arm64", "arm64-pie", "arm64-stripped" (on amd64 they are
    // analysed, not run). On an arm64 machine the names swap: the arm64 builds are the native ones
    // and get the names the capture tests ask for ("default", "pie", "stripped"), and the amd64
    // builds become "amd64", "amd64-pie"..., so the same tests run unchanged there.
    if (HostGoArch() == "arm64") {
      if (row.goarch == "arm64" && row.variant.rfind("arm64", 0) == 0)
        row.variant = row.variant == "arm64" ? "default" : row.variant.substr(6);
      else if (row.goarch == "amd64")
        row.variant = row.variant == "default" ? "amd64" : "amd64-" + row.variant;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

const std::vector<MatrixRow>& ManifestRows() {
  static const std::vector<MatrixRow> rows = ReadManifest();
  return rows;
}

std::string GotlscapBin() {
  std::string b = Env("GOTLSCAP_BIN");
  if (!b.empty()) return b;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  // Test binary: build/tests/gotlscap_matrix_tests; executable: build/gotlscap.
  if (!ec) {
    for (auto dir : {self.parent_path(), self.parent_path().parent_path()}) {
      if (fs::exists(dir / "gotlscap", ec)) return (dir / "gotlscap").string();
    }
  }
  return "gotlscap";
}

std::string CommandResult::Describe() const {
  std::ostringstream os;
  os << "exit " << exit_code << "\n--- stdout (" << out.size() << " bytes) ---\n"
     << out.substr(0, 4000) << "\n--- stderr (" << err.size() << " bytes) ---\n"
     << err.substr(0, 4000);
  return os.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  CommandResult r;
  if (argv.empty()) return r;

  // Environment built before fork (no allocation in the child).
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e; e++) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  vars["LC_ALL"] = "C";
  for (const auto& kv : env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      vars.erase(kv);
    else
      vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvpe(args[0], args.data(), envp.data());
    const char msg[] = "RunCommand: exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_code = 128 + WTERMSIG(status);
  return r;
}

std::string GoBin(const MatrixRow& row) { return row.goroot + "/bin/go"; }

std::vector<std::string> GoEnv(const MatrixRow& row) {
  // The matrix build's own GOCACHE when writable (nm/objdump of Go >= 1.25 are built once
  // there); else one per test process.
  std::string gocache = CacheDir() + "/gocache/go" + row.go_minor;
  if (access(gocache.c_str(), W_OK) != 0 && access(CacheDir().c_str(), W_OK) != 0) {
    static const std::string fallback = [] {
      std::string t = (fs::temp_directory_path() / "gotlscap-test-gocache-XXXXXX").string();
      if (!mkdtemp(t.data())) return std::string("/tmp");
      return t;
    }();
    gocache = fallback + "/go" + row.go_minor;
  }
  return {"GOROOT=" + row.goroot, "GOTOOLCHAIN=local", "GOENV=off",        "GOFLAGS",  "GO111MODULE=on",
          "GOPROXY=off",          "GOTELEMETRY=off",   "GOCACHE=" + gocache, "GOOS", "GOARCH",
          "CGO_ENABLED=0"};
}

std::string HostGoArch() {
  utsname u{};
  uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  return m;
}

const MatrixRow* FindRow(const std::string& go_minor, const std::string& variant, const std::string& prog) {
  for (const auto& r : ManifestRows())
    if (r.go_minor == go_minor && r.variant == variant && r.prog == prog && r.goarch == HostGoArch()) return &r;
  return nullptr;
}

const MatrixRow* NewestRow(const std::string& variant, const std::string& prog) {
  const MatrixRow* best = nullptr;
  for (const auto& r : ManifestRows())
    if (r.variant == variant && r.prog == prog && r.goarch == HostGoArch() && (!best || r.Minor() > best->Minor()))
      best = &r;
  return best;
}

std::string ServerRowName(const ::testing::TestParamInfo<MatrixRow>& info) {
  std::string n = info.param.TestName();
  const std::string suffix = "_server";
  if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
    n.resize(n.size() - suffix.size());
  return n;
}

void SkipOrFail(const std::string& why) {
  if (IsCi()) {
    GTEST_FAIL() << why << "; CI=true, so this is a failure, not a skip";
  } else {
    GTEST_SKIP() << why;
  }
}

void SkipOrFailWithoutMatrix() {
  if (ManifestExists() && !ManifestRows().empty()) return;
  std::string why = ManifestExists() ? "Go test-program matrix manifest " + ManifestPath() + " has no rows"
                                     : "Go test-program matrix not built: " + ManifestPath() + " missing";
  why += " (run scripts/go-matrix.sh build, or set GOTLSCAP_CACHE)";
  SkipOrFail(why);
}

void SkipOrFailUnlessReady(const std::string& why) {
  if (why.empty())
    SkipOrFailWithoutMatrix();
  else
    SkipOrFail(why);
}

std::string BpfProblem(const std::string& who) {
  if (geteuid() != 0) return who + " tests need root (eBPF uprobes)";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    return who + " tests need a kernel with BTF (/sys/kernel/btf/vmlinux missing)";
  return "";
}

TempDir::TempDir() {
  std::string t = (fs::temp_directory_path() / "gotlscap-test-XXXXXX").string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
  path_ = t;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadFileRange(const std::string& path, uint64_t offset, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string buf(size, '\0');
  in.read(buf.data(), static_cast<std::streamsize>(size));
  buf.resize(static_cast<size_t>(in.gcount()));
  return buf;
}

void WriteFileBytes(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void CopyFile(const std::string& from, const std::string& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_all, fs::perm_options::add);
}

std::string CopyBinary(const TempDir& dir, const MatrixRow& row, const std::string& subdir) {
  std::string d = dir.File(subdir);
  fs::create_directories(d);
  std::string to = d + "/" + row.prog;  // keeps the name: comm is "server" / "client" / "both"
  CopyFile(row.path, to);
  return to;
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  return lines;
}

std::vector<std::string> SplitWs(const std::string& s) {
  std::vector<std::string> f;
  std::istringstream in(s);
  std::string w;
  while (in >> w) f.push_back(w);
  return f;
}

std::vector<std::string> SplitTabs(const std::string& s) {
  std::vector<std::string> f;
  size_t start = 0;
  while (true) {
    size_t tab = s.find('\t', start);
    f.push_back(s.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return f;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::optional<uint64_t> ParseU64(const std::string& s, int base) {
  if (s.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, base);
  if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
  return static_cast<uint64_t>(v);
}

std::string PayloadBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::string Base64Decode(const std::string& in, bool* ok) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) t[static_cast<unsigned char>(a[i])] = i;
    return t;
  }();
  *ok = in.size() % 4 == 0;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '=') {
      pad++;
      continue;
    }
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0 || pad) {
      *ok = false;
      return out;
    }
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2) *ok = false;
  return out;
}

::testing::AssertionResult CopyPrograms(const std::string& go_minor, Programs* p) {
  const MatrixRow* srow = go_minor.empty() ? NewestRow("default", "server") : FindRow(go_minor, "default", "server");
  if (!srow) return ::testing::AssertionFailure() << "no default server row for go" << go_minor;
  const MatrixRow* crow = FindRow(srow->go_minor, "default", "client");
  if (!crow) return ::testing::AssertionFailure() << "no default client row for go" << srow->go_minor;
  p->server = CopyBinary(p->dir, *srow);
  p->client = CopyBinary(p->dir, *crow);
  return ::testing::AssertionSuccess();
}

std::vector<MatrixRow> AbiSpanServerRows() {
  std::vector<MatrixRow> rows;
  const MatrixRow* newest = NewestRow("default", "server");
  for (const auto& r : ManifestRows())
    if (r.prog == "server" && r.variant == "default" && r.goarch == HostGoArch() &&
        (r.go_minor == "1.15" || r.go_minor == "1.19" || &r == newest))
      rows.push_back(r);
  return rows;
}

}  // namespace gotlscap::testenv
