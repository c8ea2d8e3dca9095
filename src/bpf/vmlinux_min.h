/* The few kernel types gotls.bpf.c uses, declared for CO-RE: only the fields read, each access
 * relocated by libbpf against the running kernel's BTF at load time, so field order and offsets
 * here do not matter (except pt_regs, the uprobe context, whose user-visible layout is ABI).
 * Used when the build machine exposes no /sys/kernel/btf/vmlinux to generate a full vmlinux.h
 * from (a container or chroot without /sys): the object then still loads on any BTF kernel. */
#ifndef GOTLSCAP_VMLINUX_MIN_H
#define GOTLSCAP_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_PERCPU_ARRAY = 6,
  BPF_MAP_TYPE_CGROUP_ARRAY = 8,
  BPF_MAP_TYPE_LRU_HASH = 9,
  BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0, BPF_RB_RING_SIZE = 1 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* x86-64 uprobe context (arch/x86/include/asm/ptrace.h). */
struct pt_regs {
  unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

struct thread_struct {
  unsigned long fsbase; /* x86-64 only */
};
struct fdtable {
  unsigned int max_fds;
  struct file **fd;
};
struct files_struct {
  struct fdtable *fdt;
};
struct task_struct {
  struct files_struct *files;
  struct thread_struct thread;
  struct task_struct *real_parent;
  int tgid;
};
struct inode {
  unsigned short i_mode;
};
struct file {
  struct inode *f_inode;
  void *private_data;
};
struct in6_addr {
  __u8 s6_addr[16];
};
struct sock_common {
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  __u16 skc_num;
  unsigned short skc_family;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
};
struct sock {
  struct sock_common __sk_common;
};
struct socket {
  struct sock *sk;
};

#pragma clang attribute pop

#endif
