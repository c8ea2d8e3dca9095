#!/bin/bash
# PID 1 of the arm64 VM once its root is mounted (started by scripts/lib/arm64-vm-init.sh).
# Mounts what gotlscap and its tests need, then runs the jobs scripts/arm64-vm.sh puts in the spool
# folder of the shared cache: JOB.job is a bash script; its output goes to JOB.out and JOB.err and
# its exit status to JOB.rc (written last, by rename, so the host never reads a half-written one).
# A file named `poweroff` in the spool ends the VM.
REPO=$1 CACHE=$2
SPOOL=$CACHE/arm64/vm/spool
cd "$REPO" || exit 1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
# busybox's mount and hostname: Debian's own are in packages the tree does not need otherwise.
mount() { busybox mount "$@"; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
# /tmp and /run stay on the root's tmpfs overlay: a tmpfs mounted on /tmp would hide a checkout
# shared under /tmp (a CI clone there).
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
echo 1 >/proc/sys/kernel/sysrq
busybox hostname gotlscap-arm64
ip link set lo up
# Unpacked, not installed: the files base-passwd's maintainer script would have made.
[ -s /etc/passwd ] || cp /usr/share/base-passwd/passwd.master /etc/passwd
[ -s /etc/group ] || cp /usr/share/base-passwd/group.master /etc/group
[ -e /bin/sh ] || ln -s dash /bin/sh
mkdir -p /root

cat /proc/sys/kernel/random/boot_id >"$SPOOL/ready.tmp" && mv "$SPOOL/ready.tmp" "$SPOOL/ready"
while [ ! -e "$SPOOL/poweroff" ]; do
  for job in "$SPOOL"/*.job; do
    [ -e "$job" ] || continue
    id=${job%.job}
    mv "$job" "$id.running"
    (
      bash "$id.running" >"$id.out" 2>"$id.err" </dev/null
      echo $? >"$id.rc.tmp" && mv "$id.rc.tmp" "$id.rc"
    ) &
  done
  sleep 0.2
done
sync
echo o >/proc/sysrq-trigger
