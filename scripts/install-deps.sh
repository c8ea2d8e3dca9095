#!/usr/bin/env bash
# install-deps.sh — installs, from Debian 12's own archive, every package gotlscap's build and
# tests need. Idempotent: does nothing (not even `apt-get update`) when all are present.
set -euo pipefail

PACKAGES=(
  # build
  cmake g++ make pkg-config clang llvm
  libelf-dev zlib1g-dev libbrotli-dev libcapstone-dev libfmt-dev nlohmann-json3-dev libcli11-dev libnghttp2-dev
  libbpf-dev bpftool libpcap-dev
  # --nats: the NATS C client (pkg-config libnats); the tests start nats-server -js themselves
  libnats-dev nats-server
  # fuzz targets (test.sh replays their corpora): clang's libFuzzer and sanitizer runtimes
  libclang-rt-14-dev
  # tests and benchmarks: GoogleTest/Benchmark, oracles (binutils, llvm-objdump, file),
  # Go toolchain download (apt-get download + dpkg -x), the real-binary corpus (npm)
  libgtest-dev libgmock-dev libbenchmark-dev binutils file ca-certificates
  debian-archive-keyring gcc libc6-dev util-linux
  # keylog/pcap tests: packet capture and decryption by Wireshark's own tools
  tshark openssl
  # pcap tests: network namespaces, veth pairs, tc (qdisc/filter checks)
  iproute2
  curl
  # arm64: cross build and the emulated arm64 machine (scripts/build.sh --arch arm64, scripts/arm64-vm.sh)
  g++-aarch64-linux-gnu qemu-system-arm mmdebstrap kmod cpio
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (sudo $0)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the real-binary corpus; any npm will do (a NodeSource node ships its own).
command -v npm >/dev/null || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
