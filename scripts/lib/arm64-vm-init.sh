#!/bin/busybox sh
# /init of the arm64 VM's initramfs (made by scripts/arm64-vm.sh): loads the virtio and 9p modules,
# which Debian's kernel builds as modules, mounts the arm64 Debian tree shared by the host (9p tag
# "root", read-only) under a tmpfs overlay so the VM can write without touching the host's copy,
# mounts the checkout and the cache at the paths they have on the host, and hands over to the
# agent script of the checkout (scripts/lib/arm64-vm-agent.sh).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

fail() { echo "arm64-vm init: $*"; echo "arm64-vm init: FAILED" ; poweroff -f; }

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^gotlscap\.$1=//p"; }
REPO=$(arg repo); CACHE=$(arg cache)

# Modules in dependency order (the list was resolved from modules.dep when the initramfs was made).
while read -r m; do
  insmod "/modules/$m" || fail "insmod $m"
done </modules/order

mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro root /lower || fail "9p root"
mount -t tmpfs tmpfs /upper || fail "tmpfs"  # half the RAM: the tests' /tmp lives here
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot || fail "overlay"
for d in "$REPO" "$CACHE"; do mkdir -p "/newroot$d"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 repo "/newroot$REPO" || fail "9p repo"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 cache "/newroot$CACHE" || fail "9p cache"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /bin/bash "$REPO/scripts/lib/arm64-vm-agent.sh" "$REPO" "$CACHE"
