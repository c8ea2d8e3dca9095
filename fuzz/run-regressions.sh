#!/usr/bin/env bash
# Replays every seed and regression input once through each fuzz target (libFuzzer -runs=0 over
# the corpus directories); fails if any input crashes, hangs (>25 s) or trips a sanitizer.
#   fuzz/run-regressions.sh BUILD_FUZZ_DIR
# Inputs: fuzz/seeds/<target>/ and fuzz/regressions/<target>/ (committed, small), plus the larger
# seeds fuzz/make-seeds.sh derives from the Go toolchain matrix, generated into
# $GOTLSCAP_FUZZ_SEEDS (default: a temporary directory) when the matrix is present.
set -euo pipefail
build=${1:?usage: run-regressions.sh BUILD_FUZZ_DIR}
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

gen=${GOTLSCAP_FUZZ_SEEDS:-}
if [[ -z $gen ]]; then
  gen=$(mktemp -d); trap 'rm -rf "$gen"' EXIT
fi
if [[ -z $(ls -A "$gen" 2>/dev/null) ]]; then
  GOTLSCAP_BIN=${GOTLSCAP_BIN:-$build/gotlscap} "$here/make-seeds.sh" "$gen" \
    || echo "run-regressions: no matrix seeds (committed seeds only)" >&2
fi

status=0
for target in go_binary pclntab buildinfo http1 http2 json_output; do
  exe=
  for e in "$build/fuzz_$target" "$build/fuzz/fuzz_$target"; do [[ -x $e ]] && { exe=$e; break; }; done
  [[ -n $exe ]] || { echo "run-regressions: fuzz_$target not built in $build" >&2; status=1; continue; }
  dirs=()
  # fuzz_json_output takes whole ELF images too: the go_binary seeds are its seeds.
  corpora=("$target"); [[ $target == json_output ]] && corpora+=(go_binary)
  for d in "${corpora[@]/#/$here/seeds/}" "${corpora[@]/#/$here/regressions/}" "${corpora[@]/#/$gen/}"; do
    [[ -d $d && -n $(ls -A "$d") ]] && dirs+=("$d")
  done
  n=$(find "${dirs[@]}" -type f | wc -l)
  log=$(mktemp)
  if "$exe" -runs=0 -timeout=25 -rss_limit_mb=4096 -max_len=1048576 "${dirs[@]}" >"$log" 2>&1; then
    echo "ok    fuzz_$target: $n inputs ($(grep -o 'cov: [0-9]*' "$log" | tail -1))"
  else
    echo "FAIL  fuzz_$target: $n inputs"; tail -n 40 "$log"; status=1
  fi
  rm -f "$log"
done
exit $status
