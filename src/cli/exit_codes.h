// Process exit codes: one per error kind, so scripts can branch on what went wrong.
#pragma once

#include "common/result.h"

namespace gotlscap::cli {

inline int ExitCodeFor(ErrorKind k) {
  switch (k) {
    case ErrorKind::kUsage: return 2;
    case ErrorKind::kIo: return 3;
    case ErrorKind::kNotElf: return 4;
    case ErrorKind::kNotGo: return 5;
    case ErrorKind::kUnsupportedArch: return 6;
    case ErrorKind::kCorrupt: return 7;
    case ErrorKind::kMissingFunction: return 8;
    case ErrorKind::kNoReturn: return 9;
    case ErrorKind::kPermission: return 10;
    case ErrorKind::kNoProcess: return 11;
    case ErrorKind::kInternal: return 1;
  }
  return 1;
}

}  // namespace gotlscap::cli
