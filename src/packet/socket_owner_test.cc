#include "packet/socket_owner.h"

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace gotlscap::packet {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// The parser's own tests are in common/cgroup_test.cc; pcap comments use it through here.
TEST(ProcessInfoCache, ContainerFromTheCgroupPath) {
  ProcessInfoCache cache;
  Owner o{static_cast<uint32_t>(getpid()), ""};
  o.cgroup = "/system.slice/docker-" + kId + ".scope";
  cache.Complete(o);
  EXPECT_EQ(o.container, kId);
}

TEST(ProcessInfoCache, ThisProcess) {
  ProcessInfoCache cache;
  Owner o{static_cast<uint32_t>(getpid()), ""};
  cache.Complete(o);
  EXPECT_EQ(o.comm, CommOf(getpid()));
  ASSERT_TRUE(o.uid.has_value());
  EXPECT_EQ(*o.uid, getuid());
  EXPECT_EQ(o.ppid, static_cast<uint32_t>(getppid()));
  EXPECT_EQ(o.pcomm, CommOf(getppid()));
  EXPECT_FALSE(o.cgroup.empty());
}

}  // namespace
}  // namespace gotlscap::packet
