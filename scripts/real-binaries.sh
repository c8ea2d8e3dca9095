#!/usr/bin/env bash
# real-binaries.sh — a corpus of real, third-party Go binaries for the Go versions whose
# toolchains Debian does not carry (1.16-1.18, 1.20-1.23), fetched from the npm registry with
# `npm pack` (the registry npm is configured with; no address is written here), plus the
# gosym-oracle (tests/oracle/gosym, Go's own debug/buildinfo + debug/gosym) built with the
# newest cached toolchain. Everything is cached in ${GOTLSCAP_CACHE:-/var/cache/gotlscap}.
#
#   scripts/real-binaries.sh fetch   download/unpack the corpus, build the oracle, write the manifest
#
# Manifest: $CACHE/real/manifest.tsv — header, then: label, path (tab-separated).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
DIR="$CACHE/real"
ORACLE="$CACHE/oracle/gosym-oracle"

# label            npm package@version                 binary inside the package   (Go it was built with)
CORPUS=(
  "go1.16-amd64    esbuild-linux-64@0.8.57            package/bin/esbuild"  # go1.16
  "go1.17-amd64    esbuild-linux-64@0.13.15           package/bin/esbuild"  # go1.17.2
  "go1.17-arm64    esbuild-linux-arm64@0.13.15        package/bin/esbuild"  # go1.17.2, arm64 stack ABI
  "go1.18-amd64    esbuild-linux-64@0.14.39           package/bin/esbuild"  # go1.18.1
  "go1.18-arm64    esbuild-linux-arm64@0.14.39        package/bin/esbuild"  # go1.18.1, first arm64 register ABI
  "go1.20-amd64    @esbuild/linux-x64@0.19.12         package/bin/esbuild"  # go1.20.12
  "go1.21-amd64    @bufbuild/buf-linux-x64@1.27.0     package/bin/buf"      # go1.21.1
  "go1.22-amd64    @bufbuild/buf-linux-x64@1.30.0     package/bin/buf"      # go1.22.1
  "go1.23-amd64    @esbuild/linux-x64@0.25.0          package/bin/esbuild"  # go1.23.5
  "go1.23-arm64    @esbuild/linux-arm64@0.25.0        package/bin/esbuild"  # go1.23.5
)

log() { printf 'real-binaries: %s\n' "$*" >&2; }

# One npm package, fetched with a timeout and a bounded retry. On failure the one line names the
# package, npm's own last error line (its full log is kept) and how to retry; never silent.
FETCH_TRIES=${GOTLSCAP_FETCH_TRIES:-3}
FETCH_TIMEOUT=${GOTLSCAP_FETCH_TIMEOUT:-300}
fetch_one() {
  local label=$1 pkg=$2 inner=$3 dest="$DIR/$1"
  if [ -x "$dest/$inner" ] && [ "$(cat "$dest/.pkg" 2>/dev/null)" = "$pkg" ]; then return 0; fi
  rm -rf "$dest" && mkdir -p "$dest"
  local try tgz="" errlog="$DIR/$label.npm.log"
  for try in $(seq "$FETCH_TRIES"); do
    log "fetching $pkg ($label) from the npm registry (try $try/$FETCH_TRIES, ${FETCH_TIMEOUT}s limit)"
    tgz=$(cd "$dest" && timeout "$FETCH_TIMEOUT" npm pack --loglevel=error --fetch-retries=1 --fetch-timeout=60000 \
            "$pkg" 2>"$errlog" | tail -n1) || tgz=""
    [ -n "$tgz" ] && [ -f "$dest/$tgz" ] && break
    tgz=""
    [ "$try" -lt "$FETCH_TRIES" ] && sleep $((try * 5))
  done
  if [ -z "$tgz" ]; then
    local why
    # npm 9 prefixes "npm ERR!", npm 10+ "npm error"; the FetchError line says why in one line.
    why=$(grep -m1 -iE 'FetchError|reason:|certificate|ETIMEDOUT|ENOTFOUND|E404' "$errlog" 2>/dev/null || true)
    [ -n "$why" ] || why=$(grep -m1 -iE '^npm (ERR!|error)' "$errlog" 2>/dev/null || true)
    [ -n "$why" ] || why=$(grep -v '^[[:space:]]*$' "$errlog" 2>/dev/null | tail -n1 || true)
    [ -n "$why" ] || why="npm pack printed nothing (timed out after ${FETCH_TIMEOUT}s?)"
    log "error: could not fetch $pkg from the npm registry after $FETCH_TRIES tries: $why (npm's log: $errlog; retry: sudo $0 fetch)"
    return 1
  fi
  rm -f "$errlog"
  tar -xzf "$dest/$tgz" -C "$dest" && rm -f "$dest/$tgz"
  echo "$pkg" > "$dest/.pkg"
}

build_oracle() {
  local goroot
  goroot=$(ls -d "$CACHE"/go/1.27/usr/lib/go-1.27 2>/dev/null || true)
  [ -x "$goroot/bin/go" ] || "$SCRIPT_DIR/go-matrix.sh" toolchains
  goroot="$CACHE/go/1.27/usr/lib/go-1.27"
  local src="$REPO/tests/oracle/gosym" stamp="$ORACLE.src"
  local hash
  hash=$(cat "$src"/*.go "$src"/go.mod | sha256sum | cut -d' ' -f1)
  if [ -x "$ORACLE" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then return 0; fi
  mkdir -p "$(dirname "$ORACLE")"
  (cd "$src" && GOTOOLCHAIN=local GOROOT="$goroot" GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" \
     GOPROXY=off GOFLAGS= CGO_ENABLED=0 "$goroot/bin/go" build -o "$ORACLE" .)
  echo "$hash" > "$stamp"
}

cmd_fetch() {
  command -v npm >/dev/null || { log "error: npm is needed to fetch the real-binary corpus"; exit 1; }
  mkdir -p "$DIR"
  local tmp="$DIR/manifest.tsv.tmp" line label pkg inner
  printf 'label\tpath\n' > "$tmp"
  for line in "${CORPUS[@]}"; do
    read -r label pkg inner <<<"$line"
    fetch_one "$label" "$pkg" "$inner" || exit 1
    printf '%s\t%s\n' "$label" "$DIR/$label/$inner" >> "$tmp"
  done
  mv "$tmp" "$DIR/manifest.tsv"
  build_oracle
  log "${#CORPUS[@]} real binaries in $DIR, oracle $ORACLE"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  *) echo "usage: $0 fetch" >&2; exit 2 ;;
esac
