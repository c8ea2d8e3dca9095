#!/usr/bin/env bash
# arm64-vm.sh — an emulated arm64 Debian 12 machine for running gotlscap where it claims to work.
#
#   scripts/arm64-vm.sh run [--timeout SECONDS] -- CMD [ARGS...]
#        runs CMD as root inside the VM (booting it first if it is not running) from the same
#        working folder, and returns CMD's stdout, stderr and exit status. CI, GOTLSCAP_* and
#        GTEST_* variables are passed on.
#   scripts/arm64-vm.sh start | stop | status
#
# qemu-system-aarch64 -M virt under TCG (no KVM here) boots Debian's own arm64 kernel package; its
# root is the arm64 tree of scripts/arm64-root.sh, shared read-only over 9p under a tmpfs overlay.
# The checkout and the cache (Go toolchains, test programs) are shared at the paths they have
# here, so a path printed by the VM means the same file on both sides. Commands go through a spool
# folder in the cache (see scripts/lib/arm64-vm-agent.sh): no network device is needed (Debian's
# qemu lacks the option ROM of the default PCI network card). Everything lives under the cache.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
VMDIR="$CACHE/arm64/vm"
SPOOL="$VMDIR/spool"
BOOT_TIMEOUT=${GOTLSCAP_ARM64_BOOT_TIMEOUT:-300}
MEM_MB=${GOTLSCAP_ARM64_MEM_MB:-6144}
# Transparent huge pages as on the amd64 machine the other tests run on (madvise), not Debian's
# kernel default (always): with `always`, khugepaged collapsing a Go 1.15 program's heap made a
# probe's nofault read of a buffer fail now and then (counted as read faults; see README, arm64).
# GOTLSCAP_ARM64_THP=always reproduces that.
THP=${GOTLSCAP_ARM64_THP:-madvise}

log() { printf 'arm64-vm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

qemu_pid() { cat "$VMDIR/qemu.pid" 2>/dev/null || true; }
running() {
  local pid; pid=$(qemu_pid)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ -e "$SPOOL/ready" ] &&
    [ "$(cat "$VMDIR/shares" 2>/dev/null)" = "$REPO $CACHE" ]
}

# The initramfs: static busybox, /init, and the virtio, 9p and overlay modules with their
# dependencies, in load order. Rebuilt when the kernel or the init script changes.
make_initramfs() {
  local root=$1 kver=$2 stamp
  stamp="$kver $(sha256sum "$SCRIPT_DIR/lib/arm64-vm-init.sh" | cut -c1-16)"
  [ -f "$VMDIR/initrd.gz" ] && [ "$(cat "$VMDIR/initrd.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/proc" "$tmp/sys" "$tmp/dev"
  cp "$root/bin/busybox" "$tmp/bin/busybox"
  install -m 0755 "$SCRIPT_DIR/lib/arm64-vm-init.sh" "$tmp/init"
  local dep="$root/lib/modules/$kver/modules.dep" order=() seen=" "
  add_module() {  # depth-first: dependencies before the module
    local path=$1 line d
    [[ "$seen" == *" $path "* ]] && return 0
    seen+="$path "
    line=$(grep -m1 "^$path:" "$dep") || die "$path not in modules.dep"
    for d in ${line#*:}; do add_module "$d"; done
    order+=("$path")
  }
  local m
  for m in drivers/virtio/virtio_pci net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay; do
    add_module "kernel/$m.ko"
  done
  for m in "${order[@]}"; do
    cp "$root/lib/modules/$kver/$m" "$tmp/modules/"
    basename "$m" >>"$tmp/modules/order"
  done
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$VMDIR/initrd.gz.tmp"
  mv "$VMDIR/initrd.gz.tmp" "$VMDIR/initrd.gz"
  echo "$stamp" >"$VMDIR/initrd.stamp"
  rm -rf "$tmp"
}

cmd_start() {
  running && return 0
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
  command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 not found (scripts/install-deps.sh installs qemu-system-arm)"
  [[ "$REPO$CACHE" != *[[:space:]]* ]] || die "the checkout and cache paths must not contain spaces: $REPO $CACHE"
  cmd_stop 2>/dev/null || true
  local root kernel kver
  root=$("$SCRIPT_DIR/arm64-root.sh")
  kernel=$(ls "$root"/boot/vmlinuz-* | tail -n1)
  kver=${kernel##*/vmlinuz-}
  mkdir -p "$VMDIR" "$SPOOL" "$root$REPO" "$root$CACHE"
  rm -f "$SPOOL"/*
  make_initramfs "$root" "$kver"
  local t0=$SECONDS
  log "booting Debian's arm64 kernel $kver (qemu-system-aarch64, TCG, 2 cpus, ${MEM_MB} MiB)"
  qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -smp 2 -m "$MEM_MB" \
    -display none -nic none -no-reboot -daemonize -pidfile "$VMDIR/qemu.pid" \
    -serial "file:$VMDIR/console.log" \
    -kernel "$kernel" -initrd "$VMDIR/initrd.gz" \
    -append "console=ttyAMA0 panic=-1 loglevel=4 transparent_hugepage=$THP gotlscap.repo=$REPO gotlscap.cache=$CACHE" \
    -fsdev "local,id=root,path=$root,security_model=none,readonly=on" -device virtio-9p-pci,fsdev=root,mount_tag=root \
    -fsdev "local,id=repo,path=$REPO,security_model=none" -device virtio-9p-pci,fsdev=repo,mount_tag=repo \
    -fsdev "local,id=cache,path=$CACHE,security_model=none" -device virtio-9p-pci,fsdev=cache,mount_tag=cache \
    || die "qemu-system-aarch64 did not start"
  echo "$REPO $CACHE" >"$VMDIR/shares"
  while [ ! -e "$SPOOL/ready" ]; do
    local pid; pid=$(qemu_pid)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || grep -q 'FAILED\|Kernel panic' "$VMDIR/console.log"; then
      tail -n 30 "$VMDIR/console.log" >&2
      die "the VM stopped while booting (its console above; all of it in $VMDIR/console.log)"
    fi
    [ $((SECONDS - t0)) -lt "$BOOT_TIMEOUT" ] || { cmd_stop; die "the VM was not ready after ${BOOT_TIMEOUT}s ($VMDIR/console.log)"; }
    sleep 0.5
  done
  log "ready in $((SECONDS - t0))s"
}

cmd_stop() {
  local pid; pid=$(qemu_pid)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { rm -f "$VMDIR/qemu.pid"; return 0; }
  touch "$SPOOL/poweroff"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill "$pid" 2>/dev/null || true
  rm -f "$VMDIR/qemu.pid" "$SPOOL/ready" "$SPOOL/poweroff"
}

# drain FILE VAR FD: copies the bytes of FILE past offset $VAR to fd FD and moves $VAR on.
drain() {
  local file=$1 var=$2 fd=$3 off=${!2} size
  size=$(stat -c %s "$file" 2>/dev/null || echo 0)
  if [ "$size" -gt "$off" ]; then tail -c +"$((off + 1))" "$file" | head -c "$((size - off))" >&"$fd"; fi
  printf -v "$var" %s "$size"
}

cmd_run() {
  local timeout=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --timeout) timeout=$2; shift 2 ;;
      --) shift; break ;;
      *) die "usage: $0 run [--timeout SECONDS] -- CMD [ARGS...]" ;;
    esac
  done
  [ $# -gt 0 ] || die "usage: $0 run [--timeout SECONDS] -- CMD [ARGS...]"
  cmd_start
  local id v
  id="$SPOOL/$(date +%s%N)-$$"
  {
    echo "cd $(printf %q "$PWD") 2>/dev/null || cd $(printf %q "$REPO")"
    while IFS= read -r v; do
      printf 'export %s=%q\n' "$v" "${!v}"
    done < <(compgen -e | grep -E '^(CI|GOTLSCAP_[A-Z0-9_]*|GTEST_[A-Z0-9_]*)$' || true)
    printf 'exec'; printf ' %q' "$@"; printf '\n'
  } >"$id.tmp"
  mv "$id.tmp" "$id.job"
  local out=0 err=0 t0=$SECONDS pid  # out, err: offsets drain moves on
  while [ ! -e "$id.rc" ]; do
    drain "$id.out" out 1; drain "$id.err" err 2
    pid=$(qemu_pid)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || die "the VM stopped while running the command ($VMDIR/console.log)"
    if [ "$timeout" -gt 0 ] && [ $((SECONDS - t0)) -ge "$timeout" ]; then
      die "the command did not finish within ${timeout}s (the VM goes on; scripts/arm64-vm.sh stop ends it)"
    fi
    sleep 0.2
  done
  drain "$id.out" out 1; drain "$id.err" err 2
  local rc; rc=$(cat "$id.rc")
  rm -f "$id".*
  return "$rc"
}

case "${1:-}" in
  run) shift; cmd_run "$@" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if running; then echo "running (pid $(qemu_pid))"; else echo "stopped"; exit 1; fi ;;
  *) die "usage: $0 run [--timeout SECONDS] -- CMD [ARGS...] | start | stop | status" ;;
esac
