#!/usr/bin/env bash
# build.sh — configures (once) and builds gotlscap.
#   scripts/build.sh [--arch amd64]   native build into build/ (build/gotlscap, tests, benchmarks)
#   scripts/build.sh --arch arm64     cross build on this amd64 machine into build-arm64/: only
#                                     build-arm64/gotlscap and build-arm64/gotlscap_matrix_tests,
#                                     which run in the emulated arm64 machine (scripts/arm64-vm.sh);
#                                     unit tests, fuzz targets and benchmarks are run natively.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=amd64
case "${1:-}" in
  "") ;;
  --arch) arch=${2:-} ;;
  --arch=*) arch=${1#--arch=} ;;
  *) arch=invalid ;;
esac

case "$arch" in
  amd64)
    [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build -j"$(nproc)"
    ;;
  arm64)
    # The arm64 Debian tree (made or refreshed here, cached) is the sysroot: Debian's cross
    # compiler links against its :arm64 -dev packages (cmake/aarch64-linux-gnu.cmake).
    sysroot=$(scripts/arm64-root.sh)
    [ -f build-arm64/CMakeCache.txt ] ||
      cmake -S . -B build-arm64 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DGOTLSCAP_ARM64_SYSROOT="$sysroot" \
            -DGOTLSCAP_BENCH=OFF
    cmake --build build-arm64 -j"$(nproc)" --target gotlscap gotlscap_matrix_tests
    ;;
  *)
    echo "usage: $0 [--arch amd64|arm64]" >&2
    exit 2
    ;;
esac
