#!/usr/bin/env bash
# setup.sh — README step 1 on a fresh Debian 12: install dependencies, build, and show gotlscap
# at work on the project's own example Go HTTPS program (testdata/go, built with Go 1.27 from
# Debian's archive into the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo
echo "== Built build/gotlscap. Fetching Go 1.27 and building the example HTTPS server..."
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
GOTLSCAP_GO_MINORS=1.27 scripts/go-matrix.sh toolchains >/dev/null
GOROOT="$CACHE/go/1.27/usr/lib/go-1.27"
mkdir -p "$CACHE/example"
(cd testdata/go && GOTOOLCHAIN=local GOROOT="$GOROOT" GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" \
  GOPROXY=off CGO_ENABLED=0 "$GOROOT/bin/go" build -o "$CACHE/example/server" ./cmd/server)
echo "== gotlscap inspect $CACHE/example/server"
build/gotlscap inspect "$CACHE/example/server"
