#!/usr/bin/env bash
# go-matrix-smoke.sh — prove the binaries of scripts/go-matrix.sh work.
#
#   scripts/go-matrix-smoke.sh [MINOR...]     (default: 1.15 1.19 1.27)
#
# For each MINOR, the `default` server+client builds talk over loopback in
# HTTP/1.1 and HTTP/2 with TLS 1.2 and 1.3 (5 MB echo bodies, every endpoint,
# session resumption). Then `both` runs for every amd64 row of the manifest,
# arm64 rows must be ELF aarch64 and pie rows ET_DYN.
# Needs a built matrix (scripts/go-matrix.sh build).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$SCRIPT_DIR/go-matrix.sh" env)"
M=$GOTLSCAP_MANIFEST
[ -f "$M" ] || { echo "no manifest $M; run scripts/go-matrix.sh build" >&2; exit 1; }
MINORS=("$@"); [ ${#MINORS[@]} -gt 0 ] || MINORS=(1.15 1.19 1.27)
SIZE=$((5 * 1024 * 1024))
pass=0 fail=0
tmp=$(mktemp -d)
server_pid=""
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

ok()  { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# row MINOR VARIANT PROG FIELD -> value (fields as in the manifest header)
row() { awk -F'\t' -v m="$1" -v v="$2" -v p="$3" -v f="$4" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 == m && $3 == v && $5 == p { print $col[f] }' "$M"; }

for minor in "${MINORS[@]}"; do
  srv=$(row "$minor" default server path); cli=$(row "$minor" default client path)
  [ -n "$srv" ] || { bad "go$minor: not in manifest"; continue; }
  # Server on a free port; its first stdout line tells which.
  "$srv" -addr 127.0.0.1:0 > "$tmp/srv.out" 2> "$tmp/srv.err" &
  server_pid=$!
  for _ in $(seq 400); do grep -q '^listening ' "$tmp/srv.out" && break; sleep 0.05; done
  addr=$(sed -n 's/^listening //p' "$tmp/srv.out")
  [ -n "$addr" ] || { bad "go$minor server did not start: $(cat "$tmp/srv.out" "$tmp/srv.err")"; continue; }
  for proto in h1 h2; do
    h2=false; [ $proto = h2 ] && h2=true
    for tls in 1.2 1.3; do
      for args in "-n 3 -size $SIZE" "-n 10 -size 100000 -mode all -concurrency 4" "-n 5 -resume"; do
        # shellcheck disable=SC2086
        if out=$("$cli" -url "https://$addr" -wait-ready 5 -h2=$h2 -tls $tls $args 2>&1) \
           && grep -q "tls=$tls" <<<"$out"; then
          ok "go$minor $proto tls$tls $args: $out"
        else
          bad "go$minor $proto tls$tls $args: $out"
        fi
      done
    done
  done
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
done

# both, for every binary that runs here; cgo builds must report cgo=42
# (tlsprog.CgoMarker, returned by a C function), others cgo=0.
while IFS=$'\t' read -r _minor ver variant _goarch prog path _twin _goroot; do
  case "$variant" in
    arm64*)
      if file -b "$path" | grep -q 'ARM aarch64'; then ok "$ver $variant/$prog is aarch64"
      else bad "$ver $variant/$prog: $(file -b "$path")"; fi
      continue ;;
    pie)
      if [ "$(readelf -h "$path" | awk '/Type:/ { print $2 }')" = DYN ]; then ok "$ver pie/$prog is ET_DYN"
      else bad "$ver pie/$prog is not ET_DYN"; fi ;;
  esac
  [ "$prog" = both ] || continue
  want=0; [ "$variant" = cgo ] && want=42
  if out=$("$path" -n 4 -size 300000 -h2 -mode all 2>&1) && grep -q "cgo=$want" <<<"$out"; then
    ok "$ver $variant/both: $(tail -n1 <<<"$out")"
  else
    bad "$ver $variant/both: $out"
  fi
done < <(tail -n +2 "$M")

echo "smoke: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
