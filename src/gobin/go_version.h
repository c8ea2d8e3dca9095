// GoVersion: the toolchain release a binary was built with, parsed from runtime.buildVersion
// ("go1.19.8", "go1.27.3 X:nocoverageredesign", "go1.22-20231128-RC02 cl/...", "go1.21rc2").
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gotlscap::gobin {

struct GoVersion {
  int major = 1;
  int minor = 0;
  int patch = 0;
  bool AtLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
  std::string ToString() const;
};

// Finds "go1.N[.P]" in a version string; nullopt when there is none.
std::optional<GoVersion> ParseGoVersion(std::string_view s);

}  // namespace gotlscap::gobin
