#!/usr/bin/env bash
# Derives small fuzz seeds from the Go toolchain matrix (scripts/go-matrix.sh build):
#   OUTDIR/go_binary/  miniature Go ELFs (~5-15 KiB): real crypto/tls code from a matrix binary,
#                      synthetic pclntab of each format (go1.2/1.16/1.18/1.20) and layout variant
#                      (.gopclntab section; no section headers; PIE with RELATIVE relocs and a
#                      zero header textStart; .symtab runtime.text)
#   OUTDIR/pclntab/    bare synthetic tables of each format + the first 64 KiB of real tables
#   OUTDIR/buildinfo/  real .go.buildinfo blobs + synthetic inline / pointer-format blobs
#   stress-*           multi-MiB inputs that were quadratic before the fuzz fixes (regressions)
# Usage: fuzz/make-seeds.sh OUTDIR
# Env: GOTLSCAP_CACHE (default /var/cache/gotlscap), GOTLSCAP_BIN (a gotlscap executable, default
# build-fuzz/gotlscap or build/gotlscap). Sources that are missing are skipped; exits 1 if none.
set -euo pipefail
out=${1:?usage: make-seeds.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cache=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
bin=${GOTLSCAP_BIN:-}
if [[ -z $bin ]]; then
  for b in "$root/build-fuzz/gotlscap" "$root/build/gotlscap"; do [[ -x $b ]] && { bin=$b; break; }; done
fi
[[ -x $bin ]] || { echo "make-seeds: no gotlscap executable (set GOTLSCAP_BIN)" >&2; exit 1; }

mkdir -p "$out"/{go_binary,pclntab,buildinfo}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
# name:path  — one source per pclntab format and architecture.
sources=(
  "go115:$cache/testprogs/go1.15/default/client"
  "go119:$cache/testprogs/go1.19/default/client"
  "go119-arm64:$cache/testprogs/go1.19/arm64/client"
  "go124:$cache/testprogs/go1.24/default/client"
  "go124-pie:$cache/testprogs/go1.24/pie/client"
  "go127-cmd:$cache/go/1.27/usr/lib/go-1.27/bin/go"
)
for s in "${sources[@]}"; do
  name=${s%%:*} path=${s#*:}
  [[ -f $path ]] || { echo "make-seeds: skip $name (no $path)" >&2; continue; }
  if ! ASAN_OPTIONS=detect_leaks=0 "$bin" inspect --json "$path" >"$tmp/$name.json" 2>"$tmp/$name.err"; then
    echo "make-seeds: skip $name ($(head -c 200 "$tmp/$name.err"))" >&2; continue
  fi
  python3 "$here/seedgen.py" elf "$path" "$tmp/$name.json" "$out/go_binary" "$name"
  python3 "$here/seedgen.py" pcln "$path" "$tmp/$name.json" "$out/pclntab" "$name"
  python3 "$here/seedgen.py" bi "$path" "$tmp/$name.json" "$out/buildinfo" "$name"
  n=$((n + 1))
done
# Big inputs that once made the readers quadratic (no matrix needed; a few MiB, not committed).
python3 "$here/seedgen.py" stress "$out"
[[ $n -gt 0 ]] || { echo "make-seeds: no source binary found under $cache" >&2; exit 1; }
echo "make-seeds: $n sources -> $(find "$out" -type f | wc -l) seeds, $(du -sh "$out" | cut -f1) in $out"
