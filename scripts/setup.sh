#!/usr/bin/env bash
# setup.sh — README step 1 on a fresh Debian 12: install dependencies, build, then show gotlscap
# at work: a few seconds of capture on the project's own example Go HTTPS server and client
# (testdata/go, built with Go 1.27 from Debian's archive into the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
echo
echo "== Built build/gotlscap. Fetching Go 1.27 and building the example HTTPS server and client..."
GOTLSCAP_GO_MINORS=1.27 scripts/go-matrix.sh toolchains
GOROOT="$CACHE/go/1.27/usr/lib/go-1.27"
EX="$CACHE/example"
mkdir -p "$EX"
(cd testdata/go && GOTOOLCHAIN=local GOROOT="$GOROOT" GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" \
  GOPROXY=off CGO_ENABLED=0 "$GOROOT/bin/go" build -o "$EX/" ./cmd/server ./cmd/client)

echo "== What gotlscap sees in the server binary (gotlscap inspect):"
build/gotlscap inspect "$EX/server"

echo
echo "== Capturing for a few seconds while the example client talks HTTPS to the example server:"
log=$(mktemp)
trap 'kill "$srv" "$cap" 2>/dev/null || true; rm -f "$log"' EXIT
build/gotlscap text -e "$EX/server" -e "$EX/client" --duration 8 2>"$log" &
cap=$!
for _ in $(seq 100); do grep -q '^ready' "$log" && break; kill -0 "$cap" 2>/dev/null || break; sleep 0.1; done
if ! grep -q '^ready' "$log"; then
  # The build is done; only the live demo needs a BPF-capable kernel with /sys (not every chroot
  # or container has them).
  echo "== Capture demo skipped: $(tail -n 1 "$log")" >&2
  exit 0
fi
"$EX/server" -addr 127.0.0.1:0 >"$log.srv" 2>&1 &
srv=$!
for _ in $(seq 50); do grep -q listening "$log.srv" && break; sleep 0.1; done
addr=$(awk '/listening/ {print $2}' "$log.srv")
"$EX/client" -url "https://$addr" -mode all -n 3 -size 64 -wait-ready 5 >/dev/null
kill "$srv"
wait "$cap"
cat "$log" >&2
rm -f "$log.srv"
