#!/usr/bin/env bash
# clean-root-check.sh — runs the README's two commands as a newcomer meets them: in a fresh
# Debian 12 root (mmdebstrap minbase + git, sudo, ca-certificates), on a clone of the committed
# HEAD, so that a package the build or the tests need but scripts/install-deps.sh forgets fails
# here, not on a user's machine (this machine has many packages already: a green run here proves
# nothing about them).
#
#   sudo scripts/clean-root-check.sh [--share-cache] [--setup-only]
#
# What a fresh machine here has and a bare bootstrap lacks is copied in: the machine's apt
# sources and apt settings (Check-Valid-Until) and its extra CA certificates (the npm registry
# is served through them). The root lives in ${GOTLSCAP_CLEAN_ROOT:-/var/cache/gotlscap-clean-root}
# and is made again at every run; proc, sys, dev, cgroup2, bpffs and tracefs are mounted in it
# (eBPF works from the chroot) and unmounted at the end.
#   --share-cache  bind-mount the host's Go toolchains, test programs and real-binary corpus
#                  ($GOTLSCAP_CACHE) instead of fetching and building them again (packages are
#                  still installed from scratch: that is what this check is for)
#   --setup-only   run the first command only (install, build, capture demo)
# Logs: $ROOT/root/setup.log and $ROOT/root/test.log. Exit status: the first failing command's.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ROOT=${GOTLSCAP_CLEAN_ROOT:-/var/cache/gotlscap-clean-root}
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
share_cache=0 setup_only=0
for a in "$@"; do
  case $a in
    --share-cache) share_cache=1 ;;
    --setup-only) setup_only=1 ;;
    *) echo "usage: $0 [--share-cache] [--setup-only]" >&2; exit 2 ;;
  esac
done
log() { printf 'clean-root-check: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

# --- mirrors from the machine's own apt sources (no host name written here) -------------------
sources=()
for f in /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] || continue
  while IFS= read -r line; do sources+=("$line"); done < <(awk 'BEGIN { RS = "" }
    { uris = ""; suites = ""; comps = ""
      n = split($0, l, "\n")
      for (i = 1; i <= n; i++) {
        if (l[i] ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l[i]); uris = l[i] }
        if (l[i] ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", l[i]); suites = l[i] }
        if (l[i] ~ /^Components:/) { sub(/^Components:[ \t]*/, "", l[i]); comps = l[i] }
      }
      split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
      for (j = 1; j <= m; j++) if (s[j] ~ /^bookworm/) print "deb " u[1] " " s[j] " " comps }' "$f")
done
if [ ${#sources[@]} -eq 0 ] && [ -r /etc/apt/sources.list ]; then
  while IFS= read -r line; do sources+=("$line"); done < <(grep -E '^deb .* bookworm' /etc/apt/sources.list || true)
fi
[ ${#sources[@]} -gt 0 ] || die "no bookworm entries in the machine's apt sources"

command -v mmdebstrap >/dev/null || {
  log "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null
}

mounts=(var/cache/gotlscap sys/kernel/tracing sys/fs/bpf sys/fs/cgroup sys dev proc "")
umount_all() {
  for m in "${mounts[@]}"; do umount -l "$ROOT/$m" 2>/dev/null || true; done
}
trap umount_all EXIT
umount_all
# Never delete through a mount that is still there (the shared cache, /dev).
if grep -q " $ROOT[/ ]" /proc/self/mounts; then die "$ROOT still has mounts; unmount them first"; fi
rm -rf "$ROOT"
log "bootstrapping a fresh Debian 12 root in $ROOT"
mmdebstrap --quiet --variant=minbase --include=git,sudo,ca-certificates bookworm "$ROOT" "${sources[@]}" \
  || die "mmdebstrap failed"
cp /etc/resolv.conf "$ROOT/etc/" 2>/dev/null || true
for f in $(grep -l 'Check-Valid-Until' /etc/apt/apt.conf.d/* 2>/dev/null); do cp "$f" "$ROOT/etc/apt/apt.conf.d/"; done
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || log "update-ca-certificates failed in the root"
fi

# A root that is a mount point of its own, as on a real machine (`ip netns`, `unshare -m` need it).
mount --bind "$ROOT" "$ROOT" && mount --make-private "$ROOT"
mnt() { mkdir -p "$ROOT/$2"; mount $1 "$ROOT/$2"; }
mnt "-t proc proc" proc
mnt "--rbind /dev" dev
mnt "-t sysfs sys" sys
mnt "-t cgroup2 cgroup2" sys/fs/cgroup
mnt "-t bpf bpf" sys/fs/bpf
mnt "-t tracefs tracefs" sys/kernel/tracing || true
if [ $share_cache -eq 1 ]; then
  mkdir -p "$CACHE" "$ROOT/var/cache/gotlscap"
  mount --bind "$CACHE" "$ROOT/var/cache/gotlscap"
fi

git clone -q "$REPO" "$ROOT/root/project"
log "checkout $(git -C "$ROOT/root/project" log --oneline -1 | cut -c1-72)"

start=$(date +%s)
log "README step 1: sudo ./scripts/setup.sh (log: $ROOT/root/setup.log)"
if ! chroot "$ROOT" bash -lc 'cd /root/project && sudo ./scripts/setup.sh' >"$ROOT/root/setup.log" 2>&1; then
  tail -n 40 "$ROOT/root/setup.log" >&2
  die "setup.sh failed in the clean root after $(( $(date +%s) - start )) s"
fi
grep -q '^summary: ' "$ROOT/root/setup.log" || { tail -n 40 "$ROOT/root/setup.log" >&2; die "setup.sh showed no capture"; }
log "setup.sh ok in $(( $(date +%s) - start )) s: $(grep '^summary: ' "$ROOT/root/setup.log" | cut -c1-100)"
[ $setup_only -eq 1 ] && exit 0

start=$(date +%s)
log "README step 2: sudo ./scripts/test.sh (log: $ROOT/root/test.log)"
if ! chroot "$ROOT" bash -lc "cd /root/project && sudo CI=${CI:-} ./scripts/test.sh" >"$ROOT/root/test.log" 2>&1; then
  grep -E 'FAILED|Failed|\*\*\*|error' "$ROOT/root/test.log" | tail -n 40 >&2 || true
  die "test.sh failed in the clean root after $(( $(date +%s) - start )) s"
fi
log "test.sh ok in $(( $(date +%s) - start )) s: $(grep -E 'tests passed' "$ROOT/root/test.log" | tail -n1)"
