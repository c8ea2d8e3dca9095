#include "host/binary_cache.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace gotlscap::host {
namespace {

// A temporary file with `content`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/gotlscap-bincache-XXXXXX";
    int fd = ::mkstemp(tmpl);
    path_ = tmpl;
    if (fd >= 0) {
      if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) path_.clear();
      ::close(fd);
    }
  }
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  FileKey key() const { return *FileKeyOfPath(path_); }

 private:
  std::string path_;
};

// Rows of the toolchain matrix (scripts/go-matrix.sh build), read without the e2e helpers: unit
// tests skip what needs it when it is absent.
struct Row {
  std::string minor, version, variant, goarch, prog, path, goroot;
};
std::vector<Row> Manifest() {
  const char* cache = std::getenv("GOTLSCAP_CACHE");
  std::string path = std::string(cache && *cache ? cache : "/var/cache/gotlscap") + "/testprogs/manifest.tsv";
  if (const char* m = std::getenv("GOTLSCAP_MANIFEST"); m && *m) path = m;
  std::ifstream f(path);
  std::vector<Row> out;
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    Row r;
    std::string twin;
    if (std::getline(ss, r.minor, '\t') && std::getline(ss, r.version, '\t') && std::getline(ss, r.variant, '\t') &&
        std::getline(ss, r.goarch, '\t') && std::getline(ss, r.prog, '\t') && std::getline(ss, r.path, '\t') &&
        std::getline(ss, twin, '\t') && std::getline(ss, r.goroot, '\t'))
      out.push_back(r);
  }
  return out;
}
std::string HostGoArch() {
  struct utsname u;
  ::uname(&u);
  std::string m = u.machine;
  return m == "x86_64" ? "amd64" : m == "aarch64" ? "arm64" : m;
}
const Row* FindServer(const std::string& minor) {  // "" = newest
  static const std::vector<Row> rows = Manifest();
  const Row* best = nullptr;
  for (const auto& r : rows) {
    if (r.variant != "default" || r.prog != "server" || r.goarch != HostGoArch()) continue;
    if (!minor.empty() && r.minor == minor) return &r;
    if (minor.empty() && (!best || std::stoi(r.minor.substr(2)) > std::stoi(best->minor.substr(2)))) best = &r;
  }
  return best;
}

TEST(BinaryCacheTest, ScriptIsNotGoAndCheap) {
  TempFile script("#!/bin/sh\necho hi\n");
  ASSERT_FALSE(script.path().empty());
  BinaryCache cache;
  auto v = cache.Get(script.key(), script.path());
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->go);
  EXPECT_FALSE(v->tls);
  EXPECT_EQ(v->reason, "not an ELF file");
  EXPECT_EQ(v->version, "");
  EXPECT_EQ(v->key, script.key());
  EXPECT_FALSE(v->binary);

  // Uncached analysis of a script: open + 4-byte read. Generous bound (sanitizers, busy CI).
  constexpr int kRounds = 200;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; i++) ASSERT_FALSE(AnalyzeExecutable(script.path()).go);
  auto per_call = (std::chrono::steady_clock::now() - start) / kRounds;
  EXPECT_LT(per_call, std::chrono::microseconds(200));
  RecordProperty("script_analysis_ns", std::to_string(std::chrono::nanoseconds(per_call).count()));
}

TEST(BinaryCacheTest, EmptyFileAndMissingFile) {
  TempFile empty("");
  BinaryCache cache;
  auto v = cache.Get(empty.key(), empty.path());
  EXPECT_FALSE(v->go);
  EXPECT_EQ(v->reason, "not an ELF file");

  FileKey bogus{1, 2, 3, 4};
  auto missing = cache.Get(bogus, "/nonexistent/gotlscap-test");
  EXPECT_FALSE(missing->go);
  EXPECT_NE(missing->reason.find("cannot open"), std::string::npos) << missing->reason;
  EXPECT_EQ(missing->key, bogus);
  EXPECT_EQ(cache.size(), 1u);  // the unopenable file is not cached (it may be transient)
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(BinaryCacheTest, BinTrueIsNotGo) {
  auto key = FileKeyOfPath("/bin/true");
  ASSERT_TRUE(key.ok());
  BinaryCache cache;
  auto v = cache.Get(*key, "/bin/true");
  EXPECT_FALSE(v->go);
  EXPECT_FALSE(v->tls);
  EXPECT_EQ(v->reason, "not a Go binary");
  EXPECT_EQ(v->abi, "");
  EXPECT_EQ(v->key, *key);
}

TEST(BinaryCacheTest, HitsMissesAndSharing) {
  auto key = FileKeyOfPath("/bin/true");
  ASSERT_TRUE(key.ok());
  BinaryCache cache;
  auto a = cache.Get(*key, "/bin/true");
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 0u);
  // Cached: the path is not even opened.
  auto b = cache.Get(*key, "/nonexistent/other-path-same-key");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.size(), 1u);

  // Many threads asking at once for a new key: one analysis, the rest hits.
  TempFile script("#!/bin/sh\n");
  std::vector<std::thread> threads;
  std::atomic<int> same{0};
  for (int i = 0; i < 8; i++)
    threads.emplace_back([&] {
      if (cache.Get(script.key(), script.path())->reason == "not an ELF file") same++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(same.load(), 8);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.hits(), 8u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(BinaryCacheTest, ReplacedFileIsReportedUnderItsOwnKey) {
  TempFile before("#!/bin/sh\n");
  FileKey stale = before.key();
  stale.mtime_ns -= 1;  // as if the file changed since the caller's stat
  BinaryCache cache;
  auto v = cache.Get(stale, before.path());
  EXPECT_EQ(v->key, before.key());
  auto again = cache.Get(before.key(), before.path());
  EXPECT_EQ(v.get(), again.get());
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(BinaryCacheTest, LeastRecentlyUsedIsEvicted) {
  std::vector<std::unique_ptr<TempFile>> files;
  for (int i = 0; i < 4; i++) files.push_back(std::make_unique<TempFile>("#!/bin/sh\n# " + std::to_string(i) + "\n"));
  BinaryCache cache(3);
  for (int i = 0; i < 3; i++) cache.Get(files[i]->key(), files[i]->path());
  EXPECT_EQ(cache.size(), 3u);
  cache.Get(files[0]->key(), files[0]->path());  // 0 is now the most recent; 1 the least
  EXPECT_EQ(cache.hits(), 1u);
  cache.Get(files[3]->key(), files[3]->path());  // evicts 1
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.misses(), 4u);

  cache.Get(files[0]->key(), files[0]->path());
  cache.Get(files[2]->key(), files[2]->path());
  cache.Get(files[3]->key(), files[3]->path());
  EXPECT_EQ(cache.hits(), 4u);
  EXPECT_EQ(cache.misses(), 4u);
  cache.Get(files[1]->key(), files[1]->path());  // was evicted: analysed again
  EXPECT_EQ(cache.misses(), 5u);
  EXPECT_EQ(cache.size(), 3u);

  BinaryCache tiny(0);  // taken as 1
  tiny.Get(files[0]->key(), files[0]->path());
  tiny.Get(files[1]->key(), files[1]->path());
  EXPECT_EQ(tiny.size(), 1u);
}

void ExpectAttachable(const Row& row, const std::string& abi) {
  auto key = FileKeyOfPath(row.path);
  ASSERT_TRUE(key.ok()) << key.error().message;
  BinaryCache cache;
  auto v = cache.Get(*key, row.path);
  EXPECT_TRUE(v->go) << row.path;
  EXPECT_TRUE(v->tls) << row.path << ": " << v->reason;
  EXPECT_EQ(v->reason, "");
  EXPECT_EQ(v->version, row.version);
  EXPECT_EQ(v->abi, abi);
  ASSERT_TRUE(v->binary);
  EXPECT_EQ(v->binary->path, row.path);
  EXPECT_NE(v->binary->Function("crypto/tls.(*Conn).Read"), nullptr);
}

TEST(BinaryCacheTest, MatrixGoServersAreAttachable) {
  const Row* newest = FindServer("");
  if (!newest) GTEST_SKIP() << "no toolchain matrix (scripts/go-matrix.sh build)";
  ExpectAttachable(*newest, "register");
  if (HostGoArch() == "amd64") {
    if (const Row* old = FindServer("1.15")) ExpectAttachable(*old, "stack");
  }
}

TEST(BinaryCacheTest, GoWithoutCryptoTlsIsGoButNotAttachable) {
  const Row* newest = FindServer("");
  if (!newest) GTEST_SKIP() << "no toolchain matrix (scripts/go-matrix.sh build)";
  const std::string gofmt = newest->goroot + "/bin/gofmt";  // a Go program without crypto/tls
  auto key = FileKeyOfPath(gofmt);
  if (!key.ok()) GTEST_SKIP() << "no " << gofmt;
  BinaryCache cache;
  auto v = cache.Get(*key, gofmt);
  EXPECT_TRUE(v->go);
  EXPECT_FALSE(v->tls);
  EXPECT_FALSE(v->binary);
  EXPECT_NE(v->reason.find("crypto/tls"), std::string::npos) << v->reason;
  EXPECT_EQ(v->version.rfind("go1.", 0), 0u) << v->version;
  EXPECT_EQ(v->abi, "register");
}

}  // namespace
}  // namespace gotlscap::host
