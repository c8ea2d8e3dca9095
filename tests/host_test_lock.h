// One whole-host test at a time, across the test files that run a whole-host gotlscap (it attaches
// to every Go program of the host: one test's capture would take part in another's checks).
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "test_process.h"

namespace gotlscap::testenv {

// flock: released if the test dies.
class HostTestLock {
 public:
  HostTestLock() {
    const std::string path = (std::filesystem::temp_directory_path() / "gotlscap-host-e2e.lock").string();
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return;
    const auto deadline = Clock::now() + std::chrono::seconds(900);
    while (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (Clock::now() > deadline) {
        close(fd_);
        fd_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    locked_ = true;
  }
  ~HostTestLock() {
    if (fd_ >= 0) close(fd_);
  }
  bool locked() const { return locked_; }

 private:
  int fd_ = -1;
  bool locked_ = false;
};

#define HOST_TEST_LOCK(name) \
  HostTestLock name;         \
  ASSERT_TRUE(name.locked()) << "cannot take the whole-host test lock (another test held it for 15 minutes?)"

}  // namespace gotlscap::testenv
