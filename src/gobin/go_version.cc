#include "gobin/go_version.h"

#include <fmt/format.h>

namespace gotlscap::gobin {
namespace {
// Parses a run of decimal digits at s[*i]; nullopt if there is none or it is absurdly long.
std::optional<int> Digits(std::string_view s, size_t* i) {
  size_t start = *i;
  int v = 0;
  while (*i < s.size() && s[*i] >= '0' && s[*i] <= '9' && *i - start < 6) v = v * 10 + (s[(*i)++] - '0');
  if (*i == start) return std::nullopt;
  return v;
}
}  // namespace

std::string GoVersion::ToString() const { return fmt::format("go{}.{}.{}", major, minor, patch); }

std::optional<GoVersion> ParseGoVersion(std::string_view s) {
  for (size_t at = s.find("go"); at != std::string_view::npos; at = s.find("go", at + 1)) {
    size_t i = at + 2;
    auto major = Digits(s, &i);
    if (!major || i >= s.size() || s[i] != '.') continue;
    i++;
    auto minor = Digits(s, &i);
    if (!minor) continue;
    GoVersion v{*major, *minor, 0};
    if (i < s.size() && s[i] == '.') {
      i++;
      if (auto patch = Digits(s, &i)) v.patch = *patch;
    }
    return v;
  }
  return std::nullopt;
}

}  // namespace gotlscap::gobin
