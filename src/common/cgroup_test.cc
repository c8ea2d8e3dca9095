#include "common/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace gotlscap {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kId2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const std::string kPod = "4f1c2a3b-5d6e-4f70-8a9b-0c1d2e3f4a5b";
const std::string kPodSystemd = "4f1c2a3b_5d6e_4f70_8a9b_0c1d2e3f4a5b";

ContainerInfo C(const std::string& id, const std::string& runtime, const std::string& pod = "") {
  return ContainerInfo{id, runtime, pod};
}

TEST(ContainerOf, SystemdScopesOfEachRuntime) {
  EXPECT_EQ(ContainerOf("/system.slice/docker-" + kId + ".scope"), C(kId, "docker"));
  EXPECT_EQ(ContainerOf("/system.slice/cri-containerd-" + kId + ".scope"), C(kId, "containerd"));
  EXPECT_EQ(ContainerOf("/system.slice/crio-" + kId + ".scope"), C(kId, "cri-o"));
  EXPECT_EQ(ContainerOf("/machine.slice/libpod-" + kId + ".scope"), C(kId, "podman"));
  // podman's inner cgroup, and rootless podman under the user's manager
  EXPECT_EQ(ContainerOf("/machine.slice/libpod-" + kId + ".scope/container"), C(kId, "podman"));
  EXPECT_EQ(ContainerOf("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope"),
            C(kId, "podman"));
}

TEST(ContainerOf, KubepodsSystemdSlices) {
  const std::string burstable = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPodSystemd + ".slice/";
  EXPECT_EQ(ContainerOf(burstable + "cri-containerd-" + kId + ".scope"), C(kId, "containerd", kPod));
  EXPECT_EQ(ContainerOf(burstable + "crio-" + kId + ".scope"), C(kId, "cri-o", kPod));
  EXPECT_EQ(ContainerOf(burstable + "docker-" + kId + ".scope"), C(kId, "docker", kPod));
  EXPECT_EQ(ContainerOf("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kPodSystemd +
                        ".slice/cri-containerd-" + kId + ".scope"),
            C(kId, "containerd", kPod));
  // Guaranteed pods sit directly under kubepods.slice.
  EXPECT_EQ(ContainerOf("/kubepods.slice/kubepods-pod" + kPodSystemd + ".slice/cri-containerd-" + kId + ".scope"),
            C(kId, "containerd", kPod));
  // A static pod's UID is a 32-hex config hash.
  const std::string hash = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
  EXPECT_EQ(ContainerOf("/kubepods.slice/kubepods-pod" + hash + ".slice/crio-" + kId + ".scope"), C(kId, "cri-o", hash));
  // The pod's own slice (no container below it) names no container.
  EXPECT_EQ(ContainerOf(burstable), std::nullopt);
}

TEST(ContainerOf, CgroupfsLayouts) {
  EXPECT_EQ(ContainerOf("/docker/" + kId), C(kId, "docker"));
  EXPECT_EQ(ContainerOf("/kubepods/burstable/pod" + kPod + "/" + kId), C(kId, "", kPod));
  EXPECT_EQ(ContainerOf("/kubepods/besteffort/pod" + kPod + "/" + kId), C(kId, "", kPod));
  EXPECT_EQ(ContainerOf("/kubepods/pod" + kPod + "/" + kId), C(kId, "", kPod));
  EXPECT_EQ(ContainerOf("/kubepods/burstable/pod" + kPod + "/crio-" + kId), C(kId, "cri-o", kPod));
  EXPECT_EQ(ContainerOf("/libpod_parent/libpod-" + kId), C(kId, "podman"));
  // Only below kubepods is "pod…" a pod.
  EXPECT_EQ(ContainerOf("/pod" + kPod + "/" + kId), C(kId, ""));
}

TEST(ContainerOf, TheDeepestContainerWins) {
  EXPECT_EQ(ContainerOf("/docker/" + kId + "/docker/" + kId2), C(kId2, "docker"));
  EXPECT_EQ(ContainerOf("/system.slice/docker-" + kId + ".scope/kubepods/pod" + kPod + "/" + kId2), C(kId2, "", kPod));
}

TEST(ContainerOf, NotContainers) {
  EXPECT_EQ(ContainerOf("/"), std::nullopt);
  EXPECT_EQ(ContainerOf(""), std::nullopt);
  EXPECT_EQ(ContainerOf("/user.slice/user-1000.slice/session-3.scope"), std::nullopt);
  EXPECT_EQ(ContainerOf("/system.slice/docker.service"), std::nullopt);
  EXPECT_EQ(ContainerOf("/system.slice/containerd.service"), std::nullopt);
  EXPECT_EQ(ContainerOf("/kubepods.slice/kubepods-burstable.slice"), std::nullopt);
  EXPECT_EQ(ContainerOf("/x-" + kId + "0.scope"), std::nullopt) << "65 hex digits are not an id";
  EXPECT_EQ(ContainerOf("/docker-" + kId.substr(1) + ".scope"), std::nullopt) << "63 hex digits";
  EXPECT_EQ(ContainerOf("/docker-" + kId.substr(0, 63) + "g.scope"), std::nullopt) << "not hex";
  std::string upper = kId;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(ContainerOf("/docker-" + upper + ".scope"), std::nullopt) << "runtimes write lowercase ids";
  // conmon, podman's and CRI-O's monitor, is not the container.
  EXPECT_EQ(ContainerOf("/machine.slice/libpod-conmon-" + kId + ".scope"), std::nullopt);
  EXPECT_EQ(ContainerOf("/system.slice/crio-conmon-" + kId + ".scope"), std::nullopt);
  EXPECT_EQ(ContainerIdOf("/system.slice/session.scope"), "");
  EXPECT_EQ(ContainerIdOf("/docker/" + kId), kId);
}

TEST(ContainerOf, PodUidShapes) {
  // Too short or not hex: no pod, the container still counts.
  EXPECT_EQ(ContainerOf("/kubepods.slice/kubepods-podxyz.slice/crio-" + kId + ".scope"), C(kId, "cri-o"));
  EXPECT_EQ(ContainerOf("/kubepods/pod1234/" + kId), C(kId, ""));
}

TEST(IsContainerIdPrefix, HexOfOneTo64Digits) {
  EXPECT_TRUE(IsContainerIdPrefix("a"));
  EXPECT_TRUE(IsContainerIdPrefix("0123ABcd"));
  EXPECT_TRUE(IsContainerIdPrefix(kId));
  EXPECT_FALSE(IsContainerIdPrefix(""));
  EXPECT_FALSE(IsContainerIdPrefix(kId + "0"));
  EXPECT_FALSE(IsContainerIdPrefix("docker-0123"));
  EXPECT_FALSE(IsContainerIdPrefix("0123 "));
}

// CgroupIndex over a plain directory tree standing in for the cgroup v2 mount: ids are the
// directories' inode numbers either way.
TEST(CgroupIndex, ResolvesIdsByWalkingTheTree) {
  char tmpl[] = "/tmp/gotlscap-cgindex-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  const std::string scope = "/system.slice/docker-" + kId + ".scope";
  std::filesystem::create_directories(root + scope);
  struct stat st {};
  ASSERT_EQ(stat((root + scope).c_str(), &st), 0);
  CgroupIndex idx(root + "/");
  auto info = idx.Lookup(st.st_ino, 0);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->path, scope);
  ASSERT_TRUE(info->container.has_value());
  EXPECT_EQ(info->container->id, kId);
  EXPECT_EQ(idx.Lookup(st.st_ino, 0), info) << "kept, not resolved again";
  EXPECT_EQ(idx.Lookup(0, 0), nullptr);
  // A directory made after the walk is found by the next walk (at most one a second).
  std::filesystem::create_directories(root + "/late");
  struct stat late {};
  ASSERT_EQ(stat((root + "/late").c_str(), &late), 0);
  size_t seen = 0;
  idx.Walk([&](uint64_t id, const std::shared_ptr<const CgroupInfo>& i) {
    seen++;
    if (id == late.st_ino) {
      EXPECT_EQ(i->path, "/late");
    }
  });
  EXPECT_EQ(seen, 4u);  // root, system.slice, the scope, late
  ASSERT_NE(idx.Lookup(late.st_ino, 0), nullptr);
  EXPECT_EQ(idx.Lookup(late.st_ino, 0)->container, std::nullopt);
  std::filesystem::remove_all(root);
}

TEST(CgroupIndex, NoMountNoAnswers) {
  CgroupIndex idx("");
  EXPECT_EQ(idx.Lookup(12345, static_cast<uint32_t>(getpid())), nullptr);
}

TEST(ProcCgroupPath, ThisProcess) {
  const std::string p = ProcCgroupPath(static_cast<uint32_t>(getpid()));
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p[0], '/');
}

}  // namespace
}  // namespace gotlscap
