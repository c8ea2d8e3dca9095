#!/usr/bin/env bash
# go-matrix.sh — Go toolchain matrix for gotlscap tests.
#
# Provides several Debian-packaged Go toolchains and builds the TLS test
# programs of testdata/go with each of them in several build variants.
# Everything is cached OUTSIDE the clone, in ${GOTLSCAP_CACHE:-/var/cache/gotlscap},
# so a warm run takes seconds.
#
#   scripts/go-matrix.sh toolchains   fetch + unpack the toolchains (private apt config)
#   scripts/go-matrix.sh build        toolchains, then build all programs; writes manifest.tsv
#   scripts/go-matrix.sh env          print GOTLSCAP_CACHE=... and GOTLSCAP_MANIFEST=...
#
# The toolchains come from Debian's archive through a private apt configuration
# (own state/cache/sources under $CACHE/apt): the system's apt sources are never
# modified. The archive URI is read from the machine's own apt sources at run time.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SRC_DIR="$REPO/testdata/go"
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
MANIFEST="$CACHE/testprogs/manifest.tsv"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Bump when the build recipe changes so stamps from older recipes are invalid.
RECIPE_VERSION=1
# Bump when verify_twin changes so cached check results are redone.
TWIN_CHECK_VERSION=2

# minor  suite (pinned per toolchain so the choice is deterministic)
TOOLCHAINS=(
  "1.15 bullseye"
  "1.19 bookworm"
  "1.24 trixie"
  "1.25 trixie-backports"
  "1.26 trixie-backports"
  "1.27 sid"
)
SUITES=(bullseye bookworm trixie trixie-backports sid)
VARIANTS=(default pie stripped cgo trimpath arm64 arm64-pie arm64-stripped)
PROGS=(server client both)

log() { printf 'go-matrix: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

goroot_of() { echo "$CACHE/go/$1/usr/lib/go-$1"; }

# archive_uri: the Debian archive of the machine's own apt sources.
# shellcheck source=lib/debian-archive.sh
. "$SCRIPT_DIR/lib/debian-archive.sh"

# --- private apt configuration ------------------------------------------------
APT_ROOT="$CACHE/apt"
apt_opts() {
  local R=$APT_ROOT
  echo "-o Dir::Etc=$R/etc -o Dir::State=$R/state -o Dir::Cache=$R/cache" \
       "-o Dir::Etc::SourceList=$R/etc/sources.list -o Dir::Etc::SourceParts=$R/etc/sources.list.d" \
       "-o Dir::Etc::Preferences=$R/etc/preferences -o Dir::Etc::PreferencesParts=$R/etc/preferences.d" \
       "-o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0 -o Acquire::Retries=3 -o Acquire::http::Timeout=60 -q"
}

apt_setup() {
  local R=$APT_ROOT uri s
  uri=$(archive_uri)
  mkdir -p "$R/etc/sources.list.d" "$R/etc/preferences.d" "$R/state/lists/partial" \
           "$R/cache/archives/partial" "$R/debs"
  : > "$R/etc/preferences"
  {
    for s in "${SUITES[@]}"; do
      echo "deb [signed-by=$KEYRING] $uri $s main"
    done
  } > "$R/etc/sources.list.new"
  mv "$R/etc/sources.list.new" "$R/etc/sources.list"
  touch "$R/state/status"
}

# A toolchain is present when its stamp exists and its go binary runs.
toolchain_ok() {
  local minor=$1 gr
  gr=$(goroot_of "$minor")
  [ -f "$CACHE/go/$minor/.stamp" ] && [ -x "$gr/bin/go" ] && [ -d "$gr/src/runtime" ]
}

cmd_toolchains() {
  mkdir -p "$CACHE/go"
  local missing=() entry minor suite
  for entry in "${TOOLCHAINS[@]}"; do
    read -r minor suite <<<"$entry"
    # GOTLSCAP_GO_MINORS="1.27" limits the work to some toolchains (setup.sh needs only one).
    if [ -n "${GOTLSCAP_GO_MINORS:-}" ] && [[ " $GOTLSCAP_GO_MINORS " != *" $minor "* ]]; then continue; fi
    toolchain_ok "$minor" || missing+=("$entry")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "toolchains: all ${#TOOLCHAINS[@]} present"
    return 0
  fi

  apt_setup
  local O; O=$(apt_opts)
  log "toolchains: apt-get update (private config)"
  # shellcheck disable=SC2086
  apt-get $O update >"$APT_ROOT/update.log" 2>&1 || { cat "$APT_ROOT/update.log" >&2; die "apt-get update of the private apt configuration failed (the archive's indexes for the Go toolchains; apt's errors above; retry: sudo $0 toolchains)"; }

  for entry in "${missing[@]}"; do
    read -r minor suite <<<"$entry"
    local dl="$APT_ROOT/debs/$minor" dest="$CACHE/go/$minor"
    rm -rf "$dl" "$dest.tmp"; mkdir -p "$dl" "$dest.tmp"
    log "toolchains: downloading golang-$minor-{go,src}/$suite"
    # shellcheck disable=SC2086
    (cd "$dl" && apt-get $O download "golang-$minor-go/$suite" "golang-$minor-src/$suite") \
      >"$dl/download.log" 2>&1 || { cat "$dl/download.log" >&2; die "could not download golang-$minor-go and golang-$minor-src from suite $suite (apt's errors above; retry: sudo $0 toolchains)"; }
    local deb
    for deb in "$dl"/*.deb; do dpkg -x "$deb" "$dest.tmp"; done
    local gr="$dest.tmp/usr/lib/go-$minor" ver
    ver=$(GOROOT="$gr" GOTOOLCHAIN=local "$gr/bin/go" version) || die "go $minor does not run"
    ver=$(awk '{print $3}' <<<"$ver")
    case "$ver" in go"$minor"*) ;; *) die "go $minor reports unexpected version '$ver'";; esac
    # Record exactly which packages were unpacked.
    { echo "go_version=$ver"; for deb in "$dl"/*.deb; do echo "deb=$(basename "$deb")"; done; } > "$dest.tmp/.stamp"
    rm -rf "$dest"; mv "$dest.tmp" "$dest"
    rm -rf "$dl"
    log "toolchains: $minor -> $ver"
  done
}

go_version_of() { sed -n 's/^go_version=//p' "$CACHE/go/$1/.stamp"; }

# --- building -----------------------------------------------------------------
# Hash of the test-program sources plus this script (the recipe).
source_hash() {
  (cd "$SRC_DIR" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name '*.c' -o -name '*.h' \) -print0 \
     | LC_ALL=C sort -z | xargs -0 sha256sum; echo "recipe=$RECIPE_VERSION") | sha256sum | cut -c1-16
}

variant_goarch() { case "$1" in arm64*) echo arm64;; *) echo amd64;; esac; }

# Build all programs of one (toolchain, variant). Runs in a subshell/background job.
build_one() {
  local minor=$1 variant=$2 hash=$3
  local gr out stamp want ver
  gr=$(goroot_of "$minor")
  ver=$(go_version_of "$minor")
  out="$CACHE/testprogs/go$minor/$variant"
  stamp="$out/.stamp"
  want="src=$hash toolchain=$ver variant=$variant"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    local p ok=1
    for p in "${PROGS[@]}"; do [ -x "$out/$p" ] || ok=0; done
    [ $ok = 1 ] && { echo skip; return 0; }
  fi

  local cgo=0 goarch flags=()
  goarch=$(variant_goarch "$variant")
  case "$variant" in
    default|arm64)            ;;
    pie|arm64-pie)            flags=(-buildmode=pie) ;;
    stripped|arm64-stripped)  flags=("-ldflags=-s -w") ;;
    cgo)                      cgo=1; flags=(-ldflags=-linkmode=external) ;;
    trimpath)                 flags=(-trimpath) ;;
    *) die "unknown variant $variant" ;;
  esac

  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local pkgs=() p
  for p in "${PROGS[@]}"; do pkgs+=("./cmd/$p"); done
  # Isolated environment: GOPATH/GOCACHE under the cache; no network, no
  # toolchain switching, no user GOFLAGS.
  if ! (cd "$SRC_DIR" && env -u GOFLAGS -u GOENV -u GOBIN \
          GOROOT="$gr" PATH="$gr/bin:$PATH" GOTOOLCHAIN=local GO111MODULE=on GOPROXY=off \
          GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache/go$minor" GOMODCACHE="$CACHE/gopath/pkg/mod" \
          GOENV=off GOOS=linux GOARCH="$goarch" CGO_ENABLED=$cgo XDG_CONFIG_HOME="$CACHE/xdg" \
          "$gr/bin/go" build "${flags[@]}" -o "$out.tmp/" "${pkgs[@]}") >"$out.tmp.log" 2>&1; then
    cat "$out.tmp.log" >&2
    die "build failed: go$minor $variant"
  fi
  rm -f "$out.tmp.log"
  echo "$want" > "$out.tmp/.stamp"
  rm -rf "$out"; mv "$out.tmp" "$out"
  echo built
}

# Build the helper that lists function entries from .gopclntab (works on
# stripped binaries), with the newest toolchain.
pclnsyms_tool() {
  local newest gr bin src
  newest=$(read -r m _ <<<"${TOOLCHAINS[-1]}"; echo "$m")
  gr=$(goroot_of "$newest")
  src="$SCRIPT_DIR/go-matrix-pclnsyms.go"
  bin="$CACHE/bin/pclnsyms-$(sha256sum "$src" | cut -c1-12)-go$newest"
  if [ ! -x "$bin" ]; then
    mkdir -p "$CACHE/bin"
    (cd "$SCRIPT_DIR" && env -u GOFLAGS GOROOT="$gr" GOTOOLCHAIN=local GO111MODULE=on GOPROXY=off GOENV=off \
       GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache/go$newest" CGO_ENABLED=0 XDG_CONFIG_HOME="$CACHE/xdg" \
       "$gr/bin/go" build -o "$bin.tmp" "$src") >&2
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

# Verify that a stripped build has the same function layout as its unstripped
# twin: every function entry that `go tool nm` reports for the twin must be at
# the same address in the stripped file's pclntab (and vice versa), and the
# .text section must start at the same address with the same size.
# Result cached next to the binary (keyed by both files' hashes).
# "ADDR SIZE" of the .text section.
text_section() {
  readelf -SW "$1" | awk '{ sub(/^ *\[ *[0-9]+\] /, "") } $1 == ".text" { print $3, $5 }'
}

verify_twin() {
  local minor=$1 stripped=$2 twin=$3 gr tool key cachef
  gr=$(goroot_of "$minor")
  key="$(sha256sum "$stripped" "$twin" | awk '{print $1}' | sha256sum | cut -c1-16)-v$TWIN_CHECK_VERSION"
  cachef="$stripped.twincheck"
  if [ -f "$cachef" ] && [ "$(head -n1 "$cachef")" = "$key" ]; then
    [ "$(sed -n 2p "$cachef")" = ok ]; return
  fi
  tool=$(pclnsyms_tool)
  local tmp; tmp=$(mktemp -d)
  local res=ok
  # Text symbols of the twin from the oracle the tests use ("ADDR NAME";
  # names may contain spaces).
  GOROOT="$gr" GOTOOLCHAIN=local "$gr/bin/go" tool nm "$twin" \
    | awk '$2 == "T" || $2 == "t" { a = $1; sub(/^ *[0-9a-f]+ [Tt] /, ""); print a, $0 }' \
    | LC_ALL=C sort -u > "$tmp/nm"
  "$tool" "$stripped" | LC_ALL=C sort -u > "$tmp/pcln-stripped"
  "$tool" "$twin" | LC_ALL=C sort -u > "$tmp/pcln-twin"
  # 1. The pclntabs of both must list the same functions at the same addresses.
  cmp -s "$tmp/pcln-stripped" "$tmp/pcln-twin" || res="pclntab-differs"
  # 2. Every function address of the stripped file must be a text symbol of
  #    the twin per `go tool nm` (names differ in spelling for some runtime
  #    symbols, e.g. nm's ".abi0" suffixes, so compare addresses here) ...
  if [ "$res" = ok ]; then
    local missing
    missing=$(LC_ALL=C comm -23 <(cut -d' ' -f1 "$tmp/pcln-stripped" | LC_ALL=C sort -u) \
                                <(cut -d' ' -f1 "$tmp/nm" | LC_ALL=C sort -u) | wc -l)
    [ "$missing" -eq 0 ] || res="addr-not-in-nm($missing)"
  fi
  # 3. ... and every crypto/tls function of nm must be in the stripped
  #    file's pclntab under the same name and address.
  if [ "$res" = ok ]; then
    local ntls missing_tls
    ntls=$(grep -c ' crypto/tls\.' "$tmp/nm" || true)
    missing_tls=$(LC_ALL=C comm -23 <(grep ' crypto/tls\.' "$tmp/nm") "$tmp/pcln-stripped" | wc -l)
    [ "$ntls" -gt 100 ] && [ "$missing_tls" -eq 0 ] || res="crypto/tls-mismatch($missing_tls of $ntls)"
  fi
  if [ "$res" = ok ]; then
    grep -q ' crypto/tls.(\*Conn).Write$' "$tmp/pcln-stripped" || res="no-crypto/tls.(*Conn).Write"
  fi
  if [ "$res" = ok ]; then
    local a b
    a=$(text_section "$stripped"); b=$(text_section "$twin")
    [ -n "$a" ] && [ "$a" = "$b" ] || res="text-section-differs"
  fi
  rm -rf "$tmp"
  printf '%s\n%s\n' "$key" "$res" > "$cachef"
  [ "$res" = ok ] || log "twin check FAILED go$minor $(basename "$(dirname "$stripped")")/$(basename "$stripped"): $res"
  [ "$res" = ok ]
}

cmd_build() {
  cmd_toolchains
  [ -f "$SRC_DIR/go.mod" ] || die "missing $SRC_DIR/go.mod"
  local hash; hash=$(source_hash)
  mkdir -p "$CACHE/testprogs" "$CACHE/gopath" "$CACHE/gocache"
  local t0=$SECONDS entry minor suite variant n_built=0 n_skip=0
  local logd; logd=$(mktemp -d)
  # Two jobs at a time (2 cores). Each job is one go invocation building all
  # programs of one (toolchain, variant).
  local running=0 i=0 fail=0
  for entry in "${TOOLCHAINS[@]}"; do
    read -r minor suite <<<"$entry"
    for variant in "${VARIANTS[@]}"; do
      i=$((i + 1))
      build_one "$minor" "$variant" "$hash" > "$logd/$i" &
      running=$((running + 1))
      if [ $running -ge 2 ]; then wait -n || fail=1; running=$((running - 1)); fi
      [ $fail = 0 ] || break 2
    done
  done
  while [ $running -gt 0 ]; do wait -n || fail=1; running=$((running - 1)); done
  [ $fail = 0 ] || die "a build failed"
  n_built=$(cat "$logd"/* | grep -c '^built$' || true)
  n_skip=$(cat "$logd"/* | grep -c '^skip$' || true)
  rm -rf "$logd"

  # Manifest: regenerated every time (cheap), atomically.
  local tmpm="$MANIFEST.tmp" rows=0 twin_fail=0
  printf 'go_minor\tgo_version\tvariant\tgoarch\tprog\tpath\ttwin\tgoroot\n' > "$tmpm"
  for entry in "${TOOLCHAINS[@]}"; do
    read -r minor suite <<<"$entry"
    local ver gr; ver=$(go_version_of "$minor"); gr=$(goroot_of "$minor")
    for variant in "${VARIANTS[@]}"; do
      local p path twin goarch
      goarch=$(variant_goarch "$variant")
      for p in "${PROGS[@]}"; do
        path="$CACHE/testprogs/go$minor/$variant/$p"
        case "$variant" in
          stripped)       twin="$CACHE/testprogs/go$minor/default/$p" ;;
          arm64-stripped) twin="$CACHE/testprogs/go$minor/arm64/$p" ;;
          *)              twin="$path" ;;
        esac
        if [ "$twin" != "$path" ] && ! verify_twin "$minor" "$path" "$twin"; then
          twin=""; twin_fail=$((twin_fail + 1))
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$minor" "$ver" "$variant" "$goarch" "$p" "$path" "$twin" "$gr" >> "$tmpm"
        rows=$((rows + 1))
      done
    done
  done
  mv "$tmpm" "$MANIFEST"
  echo "go-matrix: ${#TOOLCHAINS[@]} toolchains x ${#VARIANTS[@]} variants x ${#PROGS[@]} programs: $rows binaries ($n_built builds run, $n_skip cached, twin-check failures: $twin_fail) in $((SECONDS - t0))s -> $MANIFEST"
}

cmd_env() {
  echo "GOTLSCAP_CACHE=$CACHE"
  echo "GOTLSCAP_MANIFEST=$MANIFEST"
}

# Serialize concurrent invocations on the same cache.
with_lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  "$@"
}

case "${1:-}" in
  toolchains) with_lock cmd_toolchains ;;
  build)      with_lock cmd_build ;;
  env)        cmd_env ;;
  *) echo "usage: $0 {toolchains|build|env}" >&2; exit 2 ;;
esac
