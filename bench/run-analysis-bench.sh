#!/usr/bin/env bash
# Builds analysis_bench (Release) and the Go reference bench/gosym_ref, then compares gotlscap's
# analysis with Go's debug/buildinfo + debug/gosym on Go binaries, time and peak RSS, in one run.
#   bench/run-analysis-bench.sh [BINARY...]
# Without arguments: the largest Go executable with crypto/tls found on this machine (searched
# under / on the root file system, 8 MiB and up), plus the Go toolchain's own `go` command and a
# matrix test program for scale.
# Env: BUILD_DIR (default build-bench), GO (a go command; default: newest of
# $GOTLSCAP_CACHE/go/1.{27,26,25,24,19}), MIN_TIME (seconds per side, default 2),
# REQUIRE_SPEEDUP (e.g. 10: exit 3 when ours is not that much faster on some binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cache=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
build=${BUILD_DIR:-$root/build-bench}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGOTLSCAP_BENCH=ON -DGOTLSCAP_TESTS=OFF \
  -DGOTLSCAP_FUZZ=OFF >/dev/null
cmake --build "$build" --target analysis_bench gotlscap -j"$(nproc)" >/dev/null

go=${GO:-}
if [[ -z $go ]]; then
  for v in 1.27 1.26 1.25 1.24 1.19; do
    g=$cache/go/$v/usr/lib/go-$v/bin/go
    [[ -x $g ]] && { go=$g; break; }
  done
fi
[[ -n $go ]] || go=$(command -v go || true)
[[ -x $go ]] || { echo "run-analysis-bench: no Go toolchain (set GO)" >&2; exit 1; }
goroot=$(dirname "$(dirname "$go")")
(cd "$here/gosym_ref" && GOROOT=$goroot GOTOOLCHAIN=local GOFLAGS=-mod=mod \
   GOCACHE=${GOCACHE:-$build/go-cache} GOPATH=${GOPATH:-$build/go-path} \
   "$go" build -trimpath -o "$build/gosym_ref" .)
echo "Go reference built with $("$go" version | cut -d' ' -f3) -> $build/gosym_ref"

bins=("$@")
if [[ ${#bins[@]} -eq 0 ]]; then
  echo "searching for the largest Go binary with crypto/tls ..."
  mapfile -t cands < <(find / -xdev \( -path /proc -o -path /sys -o -path /work/.mirror \) -prune -o \
                         -type f -size +8M -perm -u+x -printf '%s %p\n' 2>/dev/null | sort -rn | cut -d' ' -f2-)
  for c in "${cands[@]}"; do
    if "$build/gotlscap" inspect "$c" >/dev/null 2>&1; then bins+=("$c"); break; fi
  done
  [[ -x $goroot/bin/go ]] && bins+=("$goroot/bin/go")
  for p in "$cache"/testprogs/go1.24/default/both "$cache"/testprogs/go1.15/default/both; do
    [[ -f $p ]] && { bins+=("$p"); break; }
  done
fi
[[ ${#bins[@]} -gt 0 ]] || { echo "run-analysis-bench: no Go binary to measure" >&2; exit 1; }

args=(--go-ref "$build/gosym_ref" --min-time "${MIN_TIME:-2}")
[[ -n ${REQUIRE_SPEEDUP:-} ]] && args+=(--require-speedup "$REQUIRE_SPEEDUP")
echo "host: $(nproc) CPUs, $(uname -r); page cache warmed before each side"
echo
exec "$build/analysis_bench" "${args[@]}" "${bins[@]}"
