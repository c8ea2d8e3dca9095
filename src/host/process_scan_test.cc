#include "host/process_scan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace gotlscap::host {
namespace {

std::string SelfExe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST(FileKeyProcessTest, FdAndPathAgreeAndHashIsStable) {
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto by_fd = FileKeyOfFd(fd);
  ::close(fd);
  auto by_link = FileKeyOfPath("/proc/self/exe");
  auto by_path = FileKeyOfPath(SelfExe());
  ASSERT_TRUE(by_fd.ok()) << by_fd.error().message;
  ASSERT_TRUE(by_link.ok()) << by_link.error().message;
  ASSERT_TRUE(by_path.ok()) << by_path.error().message;
  EXPECT_EQ(*by_fd, *by_link);
  EXPECT_EQ(*by_fd, *by_path);
  EXPECT_NE(by_fd->ino, 0u);
  EXPECT_GT(by_fd->size, 0u);
  EXPECT_EQ(FileKeyHash{}(*by_fd), FileKeyHash{}(*by_path));

  struct stat st;
  ASSERT_EQ(::stat(SelfExe().c_str(), &st), 0);
  EXPECT_EQ(by_fd->ino, st.st_ino);
  EXPECT_EQ(by_fd->size, static_cast<uint64_t>(st.st_size));
  EXPECT_EQ(by_fd->mtime_ns, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
}

TEST(FileKeyProcessTest, ChangesWithContentAndIdentity) {
  char tmpl[] = "/tmp/gotlscap-filekey-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string path = tmpl;
  ASSERT_EQ(::write(fd, "abc", 3), 3);
  auto a = FileKeyOfFd(fd);
  ASSERT_EQ(::write(fd, "d", 1), 1);  // size changes
  auto b = FileKeyOfFd(fd);
  ::close(fd);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->ino, b->ino);
  EXPECT_EQ(b->size, 4u);

  std::string copy = path + ".2";  // same content, other inode
  { std::ofstream(copy) << "abcd"; }
  auto c = FileKeyOfPath(copy);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*b, *c);
  ::unlink(copy.c_str());
  ::unlink(path.c_str());

  auto gone = FileKeyOfPath(path);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().kind, ErrorKind::kNoProcess);  // ENOENT
  EXPECT_FALSE(FileKeyOfFd(-1).ok());
}

TEST(ReadProcessTest, ReadsTheTestProcessItself) {
  auto p = ReadProcess(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(p->ppid, static_cast<uint32_t>(::getppid()));
  EXPECT_EQ(p->uid, static_cast<uint32_t>(::geteuid()));
  EXPECT_EQ(p->exe, SelfExe());
  EXPECT_EQ(p->exe_link, "/proc/" + std::to_string(::getpid()) + "/exe");
  EXPECT_EQ(p->comm, std::string(SelfExe().substr(SelfExe().rfind('/') + 1)).substr(0, 15));
  auto key = FileKeyOfPath("/proc/self/exe");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(p->file, *key);
  EXPECT_GT(p->start_time, 0u);
  struct stat ns;
  ASSERT_EQ(::stat("/proc/self/ns/mnt", &ns), 0);
  EXPECT_EQ(p->mnt_ns, ns.st_ino);

  // Stable while the process lives: the same start time on a second read.
  auto again = ReadProcess(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->start_time, p->start_time);
}

// A kernel thread's pid (PF_KTHREAD in field 9 of /proc/PID/stat), 0 when none is visible (a
// container's own pid namespace).
uint32_t SomeKernelThread() {
  for (uint32_t pid = 2; pid < 200; pid++) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string field;
    uint64_t flags = 0;
    for (int i = 3; i <= 9 && rest >> field; i++)
      if (i == 9) flags = std::stoull(field);
    if (flags & 0x00200000) return pid;
  }
  return 0;
}

TEST(ReadProcessTest, KernelThreadsAndMissingPidsAreSkipped) {
  if (uint32_t kthread = SomeKernelThread()) {
    EXPECT_FALSE(ReadProcess(kthread).has_value()) << kthread;
  }
  EXPECT_FALSE(ReadProcess(0).has_value());
  EXPECT_FALSE(ReadProcess(4000000000u).has_value());
}

TEST(ScanProcessesTest, FindsTheTestProcessSortedAndWithoutKernelThreads) {
  auto all = ScanProcesses();
  ASSERT_FALSE(all.empty());
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; }));
  bool self = false;
  for (const auto& p : all) {
    if (p.pid == static_cast<uint32_t>(::getpid())) self = true;
    EXPECT_FALSE(p.exe.empty()) << p.pid;
    EXPECT_NE(p.file.ino, 0u) << p.pid;
  }
  EXPECT_TRUE(self);
}

}  // namespace
}  // namespace gotlscap::host
