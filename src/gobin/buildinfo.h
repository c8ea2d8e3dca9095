// Reader for Go's build information blob (section .go.buildinfo, or found by its magic in a
// writable segment when section headers are gone). Written by hand: no C/C++ library reads it.
// Layouts (Go's debug/buildinfo and cmd/link buildinfo()):
//   [0:14] "\xff Go buildinf:"  [14] pointer size  [15] flags (bit1: inline strings, Go 1.18+)
//   pointer format (<1.18): two pointers to Go string headers {ptr,len}: version, modinfo
//   inline format (1.18+):  at +32, uvarint-length-prefixed version, then modinfo
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace gotlscap::gobin {

struct BuildInfo {
  uint64_t address = 0;          // virtual address of the header
  bool inline_format = false;    // Go 1.18+ layout
  std::string version;           // runtime.buildVersion, verbatim ("go1.27.3 X:...")
  std::string main_path;         // "path" line: the main package
  std::string module_path;       // "mod" line: the main module path
  std::string module_version;    // "mod" line: its version ("(devel)" for local builds)
  std::vector<std::pair<std::string, std::string>> settings;  // "build" lines, in order
  size_t dependency_count = 0;   // "dep" lines

  std::optional<std::string> Setting(const std::string& key) const;
};

// nullopt when the file has no build info at all; kCorrupt when it has a damaged one.
Result<std::optional<BuildInfo>> ReadBuildInfo(const elf::ElfFile& file);

// Parses the modinfo text (after sentinel removal) into `out`. Exposed for tests.
void ParseModInfo(std::string_view modinfo, BuildInfo& out);

}  // namespace gotlscap::gobin
