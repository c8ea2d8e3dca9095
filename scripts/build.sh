#!/usr/bin/env bash
# build.sh — configures (once) and builds gotlscap into build/ (build/gotlscap).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
