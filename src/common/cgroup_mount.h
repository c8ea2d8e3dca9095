// Where cgroup v2 is mounted on this host: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
// hosts; "" when it is not mounted. Read from /proc/self/mounts each call (mounts can change).
#pragma once

#include <mntent.h>

#include <string>

namespace gotlscap {

inline std::string CgroupV2Mount() {
  std::string root;
  if (FILE* m = setmntent("/proc/self/mounts", "r")) {
    while (mntent* e = getmntent(m))
      if (std::string(e->mnt_type) == "cgroup2") {
        root = e->mnt_dir;
        break;
      }
    endmntent(m);
  }
  return root;
}

}  // namespace gotlscap
