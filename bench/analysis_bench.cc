// analysis_bench: time and memory of gotlscap's analysis of a Go binary, against Go's own
// libraries doing the lookup part of it (bench/gosym_ref: debug/elf + debug/buildinfo +
// debug/gosym, what eCapture does), in one run.
//
//   analysis_bench [--go-ref PATH] [--min-time SEC] [--require-speedup X] BINARY...
//
// For each BINARY (page cache warmed first, for both sides):
//   ours  AnalyzeGoBinary(path): mmap + libelf headers, build info, pclntab, lookup of every hook
//         target, moduledata/textStart, Capstone scan of each function for its RET sites.
//   Go    gosym_ref run as a subprocess: it times its own iterations (so process start-up and
//         Go runtime init are not counted) and reports its peak RSS.
// Peak RSS of one analysis is measured in a fresh process for each side (ours: this program
// re-executed with --rss-once), since VmHWM never goes down within a process.
// Exit status: 1 if an analysis fails or the two sides disagree on a function address; 3 if
// --require-speedup is given and not met.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gobin/go_binary.h"

namespace {

using Clock = std::chrono::steady_clock;

long VmKiB(const char* field) {  // VmHWM / VmRSS of this process, in KiB
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') v = std::strtol(line + n + 1, nullptr, 10);
  std::fclose(f);
  return v;
}

// Reads the file once so both sides measure with a warm page cache.
uint64_t WarmPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (ssize_t r; (r = ::read(fd, buf.data(), buf.size())) > 0;) total += static_cast<uint64_t>(r);
  ::close(fd);
  return total;
}

std::string Shell(const std::string& s) {  // single-quoted for /bin/sh
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a command, returns its stdout (empty + ok=false on failure).
std::string Run(const std::string& cmd, bool* ok) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    *ok = false;
    return out;
  }
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *ok = ::pclose(p) == 0;
  return out;
}

std::map<std::string, std::string> KeyValues(const std::string& text) {
  std::map<std::string, std::string> kv;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "func") {  // "func=NAME 0xADDR"
      size_t sp = value.rfind(' ');
      kv["func:" + value.substr(0, sp)] = value.substr(sp + 1);
    } else {
      kv[key] = value;
    }
  }
  return kv;
}

struct Stats {
  double best_ms = 0, median_ms = 0, mean_ms = 0;
  size_t n = 0;
};

Stats Summarise(std::vector<double> ms) {
  Stats s;
  s.n = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.best_ms = ms.front();
  s.median_ms = ms[ms.size() / 2];
  double sum = 0;
  for (double m : ms) sum += m;
  s.mean_ms = sum / ms.size();
  return s;
}

std::string Mib(double kib) { return fmt::format("{:.1f} MiB", kib / 1024.0); }

// --rss-once: one analysis in this fresh process; prints baseline and peak RSS.
int RssOnce(const std::string& path) {
  long base_hwm = VmKiB("VmHWM");
  auto r = gotlscap::gobin::AnalyzeGoBinary(path);
  long hwm = VmKiB("VmHWM");
  if (!r.ok()) {
    std::fprintf(stderr, "analysis failed: %s\n", r.error().message.c_str());
    return 1;
  }
  std::printf("baseline_kib=%ld\npeak_kib=%ld\n", base_hwm, hwm);
  return 0;
}

int BenchOne(const std::string& path, const std::string& self, const std::string& go_ref, double min_time,
             double require_speedup) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fmt::print(stderr, "{}: {}\n", path, std::strerror(errno));
    return 1;
  }
  const double file_kib = st.st_size / 1024.0;
  WarmPageCache(path);

  // --- ours: timing -----------------------------------------------------------------------
  auto first = gotlscap::gobin::AnalyzeGoBinary(path);  // also the warm-up
  if (!first.ok()) {
    fmt::print(stderr, "{}: gotlscap analysis failed: {}\n", path, first.error().message);
    return 1;
  }
  std::vector<double> ours;
  auto start = Clock::now();
  while (ours.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < min_time) {
    auto t0 = Clock::now();
    auto r = gotlscap::gobin::AnalyzeGoBinary(path);
    ours.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r.ok()) return 1;
    if (ours.size() >= 100000) break;
  }
  Stats us = Summarise(ours);

  // --- ours: peak RSS of one analysis, in a fresh process ------------------------------------
  bool ok = false;
  auto rss = KeyValues(Run(Shell(self) + " --rss-once " + Shell(path), &ok));
  double our_base = ok ? std::atof(rss["baseline_kib"].c_str()) : -1;
  double our_peak = ok ? std::atof(rss["peak_kib"].c_str()) : -1;

  const auto& b = *first;
  size_t rets = 0;
  for (const auto& f : b.functions) rets += f.ret_offsets.size();
  fmt::print("binary     {}\n", path);
  fmt::print("           {} ({} bytes), {} {}, {} functions, pclntab {} at {:#x}\n", Mib(file_kib), st.st_size,
             b.version_string, gotlscap::gobin::ArchName(b.machine), b.function_count,
             gotlscap::gobin::PclntabFormatName(b.pclntab_format), b.pclntab_address);
  fmt::print("ours       AnalyzeGoBinary: build info + pclntab + {} lookups + Capstone RET scan ({} functions, {} RETs)\n",
             gotlscap::gobin::HookTargets().size(), b.functions.size(), rets);
  fmt::print("           time/analysis  best {:.3f} ms  median {:.3f} ms  mean {:.3f} ms  ({} runs)\n", us.best_ms,
             us.median_ms, us.mean_ms, us.n);
  if (our_peak > 0)
    fmt::print("           peak RSS       {} (process baseline {}, analysis +{} = {:.2f}% of the file)\n", Mib(our_peak),
               Mib(our_base), Mib(our_peak - our_base), 100.0 * (our_peak - our_base) / file_kib);
  else
    fmt::print("           peak RSS       (not measured: --rss-once failed)\n");

  // --- Go reference ---------------------------------------------------------------------------
  if (go_ref.empty()) {
    fmt::print("go         (skipped: no --go-ref)\n\n");
    return 0;
  }
  // One analysis in a fresh process: peak RSS, and an estimate to size the timed run.
  auto once = KeyValues(Run(Shell(go_ref) + " -warmup 0 -n 1 " + Shell(path), &ok));
  if (!ok) {
    fmt::print("go         gosym_ref failed on this binary\n\n");
    return 1;
  }
  double go_once_ms = std::atof(once["best_ns"].c_str()) / 1e6;
  int n = static_cast<int>(std::clamp(std::ceil(min_time * 1000 / std::max(go_once_ms, 1e-3)), 3.0, 200.0));
  auto go = KeyValues(Run(Shell(go_ref) + " -warmup 1 -n " + std::to_string(n) + " " + Shell(path), &ok));
  if (!ok) {
    fmt::print("go         gosym_ref failed on this binary\n\n");
    return 1;
  }
  double go_best = std::atof(go["best_ns"].c_str()) / 1e6, go_mean = std::atof(go["mean_ns"].c_str()) / 1e6;
  double go_rss_once = std::atof(once["peak_rss_kib"].c_str()), go_rss_loop = std::atof(go["peak_rss_kib"].c_str());
  fmt::print("go         debug/elf + debug/buildinfo + debug/gosym NewTable + 4 LookupFunc (no RET scan), {} functions\n",
             go["functions"]);
  fmt::print("           time/analysis  best {:.3f} ms  mean {:.3f} ms  ({} runs + 1 warm-up)\n", go_best, go_mean,
             go["iterations"]);
  fmt::print("           peak RSS       {} one analysis, {} over {} runs ({:.0f}% of the file)\n", Mib(go_rss_once),
             Mib(go_rss_loop), n + 1, 100.0 * go_rss_once / file_kib);

  // Same answer? (entry addresses of the four required functions)
  int mismatches = 0;
  for (const auto& [key, value] : go) {
    if (key.rfind("func:", 0) != 0) continue;
    const auto* f = b.Function(key.substr(5));
    uint64_t go_addr = std::strtoull(value.c_str(), nullptr, 0);
    if (!f || f->address != go_addr) {
      fmt::print("MISMATCH   {}: ours {:#x}, Go {:#x}\n", key.substr(5), f ? f->address : 0, go_addr);
      mismatches++;
    }
  }
  double speed_best = go_best / us.best_ms, speed_mean = go_mean / us.mean_ms;
  fmt::print("ratio      Go/ours time   {:.1f}x (best)  {:.1f}x (mean);  peak RSS Go/ours {:.1f}x (analysis part: {:.0f}x)\n",
             speed_best, speed_mean, go_rss_once / our_peak, go_rss_once / std::max(our_peak - our_base, 1.0));
  fmt::print("addresses  {}\n\n", mismatches ? "DIFFER" : "identical for the 4 required functions");
  if (mismatches) return 1;
  if (require_speedup > 0 && speed_best < require_speedup) {
    fmt::print("FAIL       speed-up {:.1f}x below the required {:.1f}x\n\n", speed_best, require_speedup);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string go_ref;
  double min_time = 2.0, require_speedup = 0;
  std::vector<std::string> binaries;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--rss-once") return RssOnce(next());
    if (a == "--go-ref") go_ref = next();
    else if (a == "--min-time") min_time = std::atof(next().c_str());
    else if (a == "--require-speedup") require_speedup = std::atof(next().c_str());
    else if (a == "-h" || a == "--help") {
      fmt::print("usage: analysis_bench [--go-ref PATH] [--min-time SEC] [--require-speedup X] BINARY...\n");
      return 0;
    } else binaries.push_back(a);
  }
  if (binaries.empty()) {
    fmt::print(stderr, "usage: analysis_bench [--go-ref PATH] [--min-time SEC] [--require-speedup X] BINARY...\n");
    return 2;
  }
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = 0;
  int status = 0;
  for (const auto& b : binaries) status = std::max(status, BenchOne(b, self, go_ref, min_time, require_speedup));
  return status;
}
