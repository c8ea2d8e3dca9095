#!/usr/bin/env bash
# arm64-root.sh — one arm64 Debian 12 tree, cached outside the clone, that serves twice:
#   - as the sysroot of the cross build (scripts/build.sh --arch arm64): the :arm64 -dev packages
#     of every library gotlscap and its tests link;
#   - as the root file system of the emulated arm64 machine (scripts/arm64-vm.sh): Debian's arm64
#     kernel and modules, busybox for init, and the run-time tools the tests call (tshark, ip).
#
# Made by `mmdebstrap --variant=extract`: packages and their dependencies are unpacked, not
# installed, so no arm64 code runs on this amd64 machine (no qemu-user, no binfmt) and the
# machine's own dpkg is never given a foreign architecture. The archive's address comes from the
# machine's own apt sources.
#
#   scripts/arm64-root.sh          make it (if missing or its package list changed); print its path
#   scripts/arm64-root.sh path     print its path only
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
ROOT="$CACHE/arm64/root"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'arm64-root: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=lib/debian-archive.sh
. "$SCRIPT_DIR/lib/debian-archive.sh"

PACKAGES=(
  # cross-build sysroot: C and C++ runtime and every library CMakeLists.txt looks for
  libc6-dev libstdc++-12-dev libgcc-12-dev
  libelf-dev zlib1g-dev libbrotli-dev libcapstone-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libnghttp2-dev libbpf-dev libpcap-dev libnats-dev libgtest-dev libgmock-dev
  # the emulated machine: kernel (BTF, BPF JIT, uprobes, cls_act built in; 9p as modules), init
  linux-image-arm64 busybox-static kmod base-files base-passwd
  # what the tests run inside it
  bash dash coreutils grep sed findutils util-linux mount iproute2 tshark openssl procps
)
# Bump when the way the tree is made changes.
RECIPE=1

stamp_text() { printf 'recipe=%s\npackages=%s\n' "$RECIPE" "${PACKAGES[*]}"; }

make_root() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found (scripts/install-deps.sh installs it)"
  local uri tmp="$ROOT.tmp"
  uri=$(archive_uri)
  rm -rf "$tmp"; mkdir -p "$(dirname "$ROOT")"
  log "unpacking ${#PACKAGES[@]} arm64 packages and their dependencies into $ROOT (mmdebstrap, extract)"
  local list; list=$(IFS=,; echo "${PACKAGES[*]}")
  mmdebstrap --quiet --variant=extract --arch=arm64 --include="$list" bookworm "$tmp" \
      "deb [signed-by=$KEYRING] $uri bookworm main" >"$tmp.log" 2>&1 \
    || { tail -n 30 "$tmp.log" >&2; die "mmdebstrap failed (its last lines above)"; }
  # Absolute symlinks in the tree (e.g. lib*.so -> /lib/aarch64-linux-gnu/...) would point into this
  # machine's own root when the tree is a sysroot: make them relative.
  find "$tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' l; do
    local target; target=$(readlink "$l")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$tmp$target")" "$l"
  done
  # modules.dep, which dpkg's trigger would have made: the VM loads 9p and virtio through it, and
  # the kernel's own module requests (veth, sch_ingress...) go to modprobe.
  local kver; kver=$(basename "$(ls -d "$tmp"/lib/modules/*)")
  depmod -b "$tmp" "$kver" || die "depmod failed for $kver"
  stamp_text > "$tmp/.gotlscap-stamp"
  rm -rf "$ROOT"; mv "$tmp" "$ROOT"; rm -f "$tmp.log"
  log "ready: $(du -sh "$ROOT" | cut -f1)"
}

case "${1:-make}" in
  path) echo "$ROOT" ;;
  make)
    if [ "$(cat "$ROOT/.gotlscap-stamp" 2>/dev/null)" != "$(stamp_text)" ]; then
      [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
      # One maker at a time (the cross build and the VM may both ask); the second finds it made.
      mkdir -p "$(dirname "$ROOT")"
      exec 9>"$(dirname "$ROOT")/.root.lock"
      flock 9
      [ "$(cat "$ROOT/.gotlscap-stamp" 2>/dev/null)" = "$(stamp_text)" ] || make_root
    fi
    echo "$ROOT" ;;
  *) die "usage: $0 [make|path]" ;;
esac
