#include "packet/socket_owner.h"

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace gotlscap::packet {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ContainerIdOf, ScopesOfTheUsualRuntimes) {
  EXPECT_EQ(ContainerIdOf("/system.slice/docker-" + kId + ".scope"), kId);
  EXPECT_EQ(ContainerIdOf("/docker/" + kId), kId);
  EXPECT_EQ(ContainerIdOf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-" +
                          kId + ".scope"),
            kId);
  EXPECT_EQ(ContainerIdOf("/machine.slice/libpod-" + kId + ".scope/container"), kId);
  EXPECT_EQ(ContainerIdOf("/user.slice/user-1000.slice/session-3.scope"), "");
  EXPECT_EQ(ContainerIdOf("/"), "");
  EXPECT_EQ(ContainerIdOf("/x-" + kId + "0.scope"), "") << "65 hex digits are not an id";
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
