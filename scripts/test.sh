#!/usr/bin/env bash
# test.sh — README step 2: every test. Installs what is missing, builds, provides the Go
# toolchain matrix and its test programs (scripts/go-matrix.sh) and the real-binary corpus
# (scripts/real-binaries.sh), both cached outside the clone, then runs ctest (unit, matrix,
# real-binary and CLI tests) and the fuzz regression corpus. Under CI=true nothing may skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/go-matrix.sh build
scripts/real-binaries.sh fetch

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
(cd build && ctest --output-on-failure -j"$(nproc)") 2>&1 | tee "$log" || status=1

# Fuzz targets (clang + libFuzzer + sanitizers) replay their seed and regression corpora.
[ -f build-fuzz/CMakeCache.txt ] || cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DGOTLSCAP_FUZZ=ON -DGOTLSCAP_TESTS=OFF -DGOTLSCAP_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_go_binary fuzz_pclntab fuzz_buildinfo fuzz_http1 fuzz_http2 >/dev/null
GOTLSCAP_BIN=build/gotlscap fuzz/run-regressions.sh build-fuzz || status=1

if [ "${CI:-}" = "true" ] && grep -Eq '\*\*\*Skipped|[1-9][0-9]* tests? skipped|\[  SKIPPED \]' "$log"; then
  echo "test.sh: tests were skipped under CI=true; CI must run everything" >&2
  status=1
fi
exit $status
