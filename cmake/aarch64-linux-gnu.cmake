# aarch64-linux-gnu.cmake — CMake toolchain file: gotlscap for arm64 (Debian 12), built on amd64.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DGOTLSCAP_ARM64_SYSROOT="$(scripts/arm64-root.sh)"      (scripts/build.sh --arch arm64)
#
# The route: Debian's own cross compiler (g++-aarch64-linux-gnu) plus a sysroot in which the
# :arm64 -dev packages of every library we link are unpacked (scripts/arm64-root.sh, mmdebstrap
# --variant=extract). So the build machine needs no `dpkg --add-architecture arm64` (its dpkg and
# /usr stay amd64-only), and the very same tree is the root file system of the emulated arm64
# machine (scripts/arm64-vm.sh) that runs the result: what we link against is what runs.
#
# Only the C/C++ code is cross-compiled. The eBPF objects are still made by the host's clang
# (-target bpf) and bpftool, found as programs on the host (src/bpf/CMakeLists.txt picks the arm64
# object for the skeleton from CMAKE_SYSTEM_PROCESSOR).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)   # find_package looks in <root>/usr/lib/aarch64-linux-gnu/cmake

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The sysroot: -DGOTLSCAP_ARM64_SYSROOT=..., else the environment variable of that name. Cached,
# so a re-run of cmake (from the build, without the environment) keeps it; handed on to the
# try_compile projects CMake makes while it checks the compiler.
if(NOT GOTLSCAP_ARM64_SYSROOT AND DEFINED ENV{GOTLSCAP_ARM64_SYSROOT})
  set(GOTLSCAP_ARM64_SYSROOT "$ENV{GOTLSCAP_ARM64_SYSROOT}")
endif()
set(GOTLSCAP_ARM64_SYSROOT "${GOTLSCAP_ARM64_SYSROOT}" CACHE PATH "arm64 Debian 12 sysroot (scripts/arm64-root.sh)")
if(NOT IS_DIRECTORY "${GOTLSCAP_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "aarch64-linux-gnu.cmake: no arm64 sysroot at '${GOTLSCAP_ARM64_SYSROOT}'; "
                      "set GOTLSCAP_ARM64_SYSROOT to the path scripts/arm64-root.sh prints")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES GOTLSCAP_ARM64_SYSROOT)

# --sysroot for compiling and linking. With it the cross gcc and ld already search the sysroot's
# /lib/aarch64-linux-gnu and /usr/lib/aarch64-linux-gnu (ld's SEARCH_DIRs are "="-prefixed), also for
# the libraries our libraries need (libbpf -> libelf, libz), so no -Wl,-rpath-link is needed.
# Note the cross gcc still puts its own arm64-cross packages (/usr/aarch64-linux-gnu: libstdc++ and
# glibc headers, libstdc++.so/libgcc) before the sysroot: they are the same Debian 12 releases as the
# sysroot's, and everything the executable NEEDs is in the sysroot.
set(CMAKE_SYSROOT "${GOTLSCAP_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${GOTLSCAP_ARM64_SYSROOT}")

# Libraries, headers and CMake packages only from the sysroot; programs (clang, bpftool,
# pkg-config) only from the host.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (the host's) reads the sysroot's .pc files only and prefixes the paths they give.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${GOTLSCAP_ARM64_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR} "${GOTLSCAP_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${GOTLSCAP_ARM64_SYSROOT}/usr/share/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})
