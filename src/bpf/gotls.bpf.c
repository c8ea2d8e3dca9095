// SPDX-License-Identifier: GPL-2.0
/* uprobes on Go's crypto/tls: the plaintext a Go program writes and reads.
 *
 *   (*Conn).writeRecordLocked entry  -> data written (record type 23 only)
 *   (*Conn).Read entry               -> remember c and b, keyed by (tgid, goroutine)
 *   (*Conn).Read at every RET        -> n bytes of b were read; an io.EOF result -> EOF record
 *                                       (ret-only: no entry probe, c and b read from their stack
 *                                       slots, where user space proved they are at every RET)
 *   (*Conn).Close entry              -> CLOSE record (no payload): the connection ends
 *
 * Never uretprobes: they rewrite return addresses on goroutine stacks, which Go moves.
 * Arguments come from registers (register ABI: amd64 Go 1.17+, arm64 Go 1.18+) or from the
 * stack (older); the attach cookie says which. Payloads are copied into the ring buffer in
 * chunks of GOTLS_CHUNK_MAX bytes, up to GOTLS_CAPTURE_MAX per call (or max_payload, except for
 * the connections in whole_conns); every chunk the ring buffer cannot take is counted. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "gotls_events.h"


char LICENSE[] SEC("license") = "GPL";

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10
#define RECORD_TYPE_APPLICATION_DATA 23

/* Set by user space before load. */
const volatile __u32 filter_uid = (__u32)-1; /* -1: any user */
const volatile bool filter_pids = false;      /* only tgids in target_pids */
const volatile bool filter_cgroup = false;    /* only tasks under the cgroup in target_cgroup */
const volatile bool filter_containers = false; /* only tasks in (below) a cgroup of container_cgroups */
/* --max-payload: bytes captured per call (the rest is counted in total_len, not copied), except on
 * the connections of whole_conns. GOTLS_CAPTURE_MAX: no cap, whole_conns never looked at (the
 * verifier drops that code: rodata is frozen). */
const volatile __u64 max_payload = GOTLS_CAPTURE_MAX;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, __u8);
} target_pids SEC(".maps");

/* --cgroup: the cgroup v2 directory whose tasks (and its descendants') are traced. */
struct {
  __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} target_cgroup SEC(".maps");

/* --container: cgroup ids of the matching containers' directories; user space adds containers as
 * they appear (it rescans the hierarchy each second). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, GOTLS_CONTAINER_CGROUPS_MAX);
  __type(key, __u64);
  __type(value, __u8);
} container_cgroups SEC(".maps");

/* Connections whose calls are captured whole despite max_payload (user space: CaptureWhole).
 * An entry goes at the connection's Close, or by LRU. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, GOTLS_WHOLE_CONNS_MAX);
  __type(key, struct gotls_conn_key);
  __type(value, __u8);
} whole_conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 32 << 20); /* resized by user space */
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 << 10); /* secrets are few: a handful per handshake */
} secrets SEC(".maps");

struct counters {
  __u64 v[GOTLS_CNT_MAX];
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct counters);
} counters SEC(".maps");

/* Read's arguments between its entry and its RET. Keyed by goroutine, not thread: a goroutine
 * blocked in Read may resume on another thread. LRU: a Read left by a panic never returns. */
struct read_key {
  __u32 tgid;
  __u32 pad;
  __u64 g;
};
struct read_args {
  __u64 conn;
  __u64 buf;
  __u64 len;
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct read_key);
  __type(value, struct read_args);
} reads SEC(".maps");

/* Read exit layouts (gotls_read_exit), indexed by the upper half of the attach cookie. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, GOTLS_READ_EXITS_MAX);
  __type(key, __u32);
  __type(value, struct gotls_read_exit);
} read_exits SEC(".maps");

static __always_inline void count(int idx, __u64 n) {
  __u32 zero = 0;
  struct counters *c = bpf_map_lookup_elem(&counters, &zero);
  if (c && idx >= 0 && idx < GOTLS_CNT_MAX) c->v[idx] += n;
}

/* ---- Go calling conventions ------------------------------------------------------------ */

#if defined(__TARGET_ARCH_arm64)
/* arm64 pt_regs begins with user_pt_regs; declared here so one vmlinux.h serves both arches. */
struct gotls_arm64_regs {
  __u64 regs[31];
  __u64 sp;
  __u64 pc;
  __u64 pstate;
};
#define REGS(ctx) ((struct gotls_arm64_regs *)(ctx))
#endif

static __always_inline __u64 stack_pointer(struct pt_regs *ctx) {
#if defined(__TARGET_ARCH_x86)
  return ctx->sp;
#else
  return REGS(ctx)->sp;
#endif
}

/* Integer argument/result i of the register ABI (amd64: RAX RBX RCX RDI RSI R8 R9 R10 R11;
 * arm64: R0-R15). i must be a constant. */
static __always_inline __u64 reg_arg(struct pt_regs *ctx, int i) {
#if defined(__TARGET_ARCH_x86)
  switch (i) {
    case 0: return ctx->ax;
    case 1: return ctx->bx;
    case 2: return ctx->cx;
    case 3: return ctx->di;
    case 4: return ctx->si;
    case 5: return ctx->r8;
    case 6: return ctx->r9;
    case 7: return ctx->r10;
    default: return ctx->r11;
  }
#else
  return REGS(ctx)->regs[i];
#endif
}

/* Word i of the stack ABI's argument/result area: at SP+8 upwards at entry and at RET (amd64:
 * above the return address; arm64: Go keeps the same layout with the link register). */
static __always_inline __u64 stack_word(struct pt_regs *ctx, int i) {
  __u64 v = 0;
  bpf_probe_read_user(&v, sizeof(v), (void *)(stack_pointer(ctx) + 8 * (i + 1)));
  return v;
}

/* The current goroutine (runtime.g): R14 (amd64 register ABI), R28 (arm64, both ABIs), or
 * thread-local storage at FS base - 8 (amd64 stack ABI). */
static __always_inline __u64 current_g(struct pt_regs *ctx, bool stack_abi) {
#if defined(__TARGET_ARCH_x86)
  if (!stack_abi) return ctx->r14;
  struct task_struct *task = bpf_get_current_task_btf();
  __u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
  __u64 g = 0;
  bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase - 8));
  return g;
#else
  return REGS(ctx)->regs[28];
#endif
}

static __always_inline bool stack_abi(struct pt_regs *ctx) {
  return bpf_get_attach_cookie(ctx) & GOTLS_COOKIE_STACK_ABI;
}

/* An entry probe on the stack-bound check's JBE (GOTLS_COOKIE_AT_STACK_CHECK) whose branch is
 * about to be taken: CF or ZF from the CMP. The goroutine grows its stack and re-runs the entry,
 * where the probe fires again with the branch not taken: that is the call's one hit. */
static __always_inline bool growing_stack(struct pt_regs *ctx) {
#if defined(__TARGET_ARCH_x86)
  if (!(bpf_get_attach_cookie(ctx) & GOTLS_COOKIE_AT_STACK_CHECK) || !(ctx->flags & 0x41 /* CF | ZF */)) return false;
  count(GOTLS_CNT_STACK_GROWTH, 1);
  return true;
#else
  return false;
#endif
}

/* ---- filters ----------------------------------------------------------------------------- */

/* The task's cgroup or one of its ancestors is a wanted container's: a container's processes may
 * sit in a cgroup below its scope (podman's libpod-ID.scope/container). */
static __always_inline bool in_containers(void) {
  for (int level = 1; level <= GOTLS_CGROUP_DEPTH_MAX; level++) {
    __u64 id = bpf_get_current_ancestor_cgroup_id(level);
    if (!id) return false; /* above the task's own cgroup */
    if (bpf_map_lookup_elem(&container_cgroups, &id)) return true;
  }
  return false;
}

static __always_inline bool wanted(__u32 tgid) {
  if (filter_uid != (__u32)-1 && (__u32)bpf_get_current_uid_gid() != filter_uid) return false;
  if (filter_pids && !bpf_map_lookup_elem(&target_pids, &tgid)) return false;
  if (filter_cgroup && bpf_current_task_under_cgroup(&target_cgroup, 0) != 1) return false;
  if (filter_containers && !in_containers()) return false;
  return true;
}

/* Every probe's first steps: the hit is counted, then a stack-growth re-entry and a process the
 * filters exclude stop there. Returns the process's tgid, or 0 for a hit to ignore (no user
 * process has tgid 0). */
static __always_inline __u32 wanted_hit(struct pt_regs *ctx) {
  count(GOTLS_CNT_PROBE_HITS, 1);
  if (growing_stack(ctx)) return 0;
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  return wanted(tgid) ? tgid : 0;
}

/* ---- connection identity ----------------------------------------------------------------- */

/* tls.Conn.conn (net.Conn interface: itab, data) -> *net.TCPConn -> *netFD -> poll.FD.Sysfd
 * (+16). Identical from Go 1.15 to 1.27 on both arches; a wrong type gives a value the kernel
 * check below rejects. */
static __always_inline __s64 conn_fd(__u64 conn) {
  __u64 data = 0, netfd = 0;
  __s64 fd = -1;
  if (bpf_probe_read_user(&data, sizeof(data), (void *)(conn + 8)) || !data) return -1;
  if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)data) || !netfd) return -1;
  if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + 16))) return -1;
  return fd >= 0 && fd < (1 << 24) ? fd : -1;
}

/* Addresses of the socket behind fd, from the kernel's own socket (right in any netns). */
static __always_inline void fill_socket(struct gotls_data_event *ev) {
  ev->sock_ptr = 0;
  ev->family = 0;
  if (ev->fd < 0) return;
  struct task_struct *task = bpf_get_current_task_btf();
  struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
  if (!fdt || (__u64)ev->fd >= BPF_CORE_READ(fdt, max_fds)) goto bad;
  struct file **fds = BPF_CORE_READ(fdt, fd);
  struct file *file = 0;
  bpf_probe_read_kernel(&file, sizeof(file), &fds[ev->fd]);
  if (!file) goto bad;
  if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK) goto bad;
  struct socket *sock = BPF_CORE_READ(file, private_data);
  struct sock *sk = BPF_CORE_READ(sock, sk);
  if (!sk) goto bad;
  ev->sock_ptr = (__u64)sk;
  ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
  ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
  ev->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (ev->family == AF_INET) {
    bpf_core_read(ev->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
    bpf_core_read(ev->raddr, 4, &sk->__sk_common.skc_daddr);
  } else if (ev->family == AF_INET6) {
    bpf_core_read(ev->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
    bpf_core_read(ev->raddr, 16, &sk->__sk_common.skc_v6_daddr);
  }
  return;
bad:
  ev->fd = -1; /* not a socket: the Go value was not what we took it for */
}

/* ---- payload emission -------------------------------------------------------------------- */

/* Each chunk is built directly in a ring-buffer reservation. No per-CPU staging buffer: uprobe
 * programs run with migration disabled but can be preempted, so another probe hit on the same
 * CPU could overwrite a shared buffer mid-event. Reservations must have a constant size: calls
 * of up to 512 or 4096 bytes get a record of that size in one piece, larger ones go out in
 * GOTLS_CHUNK_MAX records. Each size lives in its own function so that clang cannot merge their
 * bounds checks (the verifier needs each copy's size proven against its record). */
#define DEFINE_RECORD(SZ)        \
  struct record_##SZ {           \
    struct gotls_data_event hdr; \
    __u8 data[SZ];               \
  };
DEFINE_RECORD(512)
DEFINE_RECORD(4096)
DEFINE_RECORD(16384) /* GOTLS_CHUNK_MAX */

/* Waking user space for every record costs the traced thread a context switch (measured: 0.77
 * wakeups per event, small-request throughput 0.58 -> 0.69 of untraced without them). User space
 * reads the ring every 10 ms anyway, so wake it only when the ring is filling up. */
static __always_inline __u64 wakeup_flag(void) {
  __u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
  __u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
  return avail > size / 8 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

struct emit_ctx {
  struct gotls_data_event hdr; /* common to every chunk of the call */
  __u64 src;
  __u64 len; /* bytes to capture (<= max_payload or GOTLS_CAPTURE_MAX) */
};

/* Emits payload [off, off + n) of the call in a record of size SZ (n <= SZ). */
#define DEFINE_EMIT(SZ)                                                                         \
  static __noinline int emit_##SZ(struct emit_ctx *c, __u64 off, __u32 n, __u8 flags) {         \
    if (n > SZ) n = SZ;                                                                         \
    struct record_##SZ *r = bpf_ringbuf_reserve(&events, sizeof(struct record_##SZ), 0);        \
    if (!r) {                                                                                   \
      count(GOTLS_CNT_LOST_CHUNKS, 1);                                                          \
      count(GOTLS_CNT_LOST_BYTES, n);                                                           \
      return 0;                                                                                 \
    }                                                                                           \
    r->hdr = c->hdr;                                                                            \
    r->hdr.offset = off;                                                                        \
    r->hdr.flags = flags;                                                                       \
    r->hdr.chunk_len = n;                                                                       \
    if (bpf_probe_read_user(r->data, n, (void *)(c->src + off))) {                              \
      count(GOTLS_CNT_READ_FAULTS, n);                                                          \
      r->hdr.chunk_len = 0; /* user space sees the gap and reports it */                        \
    }                                                                                           \
    bpf_ringbuf_submit(r, wakeup_flag());                                                       \
    return 0;                                                                                   \
  }
DEFINE_EMIT(512)
DEFINE_EMIT(4096)
DEFINE_EMIT(16384)
_Static_assert(GOTLS_CHUNK_MAX == 16384, "emit_16384 carries the largest chunks");

static long emit_chunk(__u32 i, struct emit_ctx *c) {
  __u64 off = (__u64)i * GOTLS_CHUNK_MAX;
  if (off >= c->len) return 1;
  __u64 left = c->len - off;
  __u32 n = left > GOTLS_CHUNK_MAX ? GOTLS_CHUNK_MAX : (__u32)left;
  __u8 flags = c->hdr.flags | (i == 0 ? GOTLS_CHUNK_FIRST : 0) | (off + n >= c->len ? GOTLS_CHUNK_LAST : 0);
  emit_16384(c, off, n, flags);
  return 0;
}

/* The header fields every record of a call shares: who, when, which connection. */
static __always_inline void fill_header(struct gotls_data_event *h, __u32 tgid, __u8 dir, __u64 conn, __u64 len) {
  __u64 id = bpf_get_current_pid_tgid();
  h->ts_ns = bpf_ktime_get_ns();
  /* A thread cannot start two calls in the same nanosecond: (tid, ts) names the call. */
  h->call_id = ((__u64)(__u32)id << 32) ^ h->ts_ns;
  h->total_len = len;
  h->conn_ptr = conn;
  h->pid = tgid;
  h->tid = (__u32)id;
  h->uid = (__u32)bpf_get_current_uid_gid();
  h->dir = dir;
  bpf_get_current_comm(h->comm, sizeof(h->comm));
  h->cgroup_id = bpf_get_current_cgroup_id();
  h->fd = conn_fd(conn);
  fill_socket(h);
}

/* A CLOSE or EOF record: a header alone, with the same connection fields as the data records
 * (the fd is still open at Close entry and at Read's return), so user space names the same
 * connection. */
static __noinline int emit_end(__u32 tgid, __u8 dir, __u64 conn) {
  struct gotls_data_event *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
  if (!r) {
    count(GOTLS_CNT_LOST_CLOSES, 1);
    return 0;
  }
  __builtin_memset(r, 0, sizeof(*r));
  fill_header(r, tgid, dir, conn, 0);
  r->flags = GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST;
  bpf_ringbuf_submit(r, wakeup_flag());
  return 0;
}

static __always_inline void emit(__u32 tgid, __u8 dir, __u64 conn, __u64 buf, __u64 len) {
  if (len == 0) return;
  struct emit_ctx c = {.src = buf, .len = len};
  fill_header(&c.hdr, tgid, dir, conn, len);
  count(GOTLS_CNT_CALLS, 1);
  __u64 limit = GOTLS_CAPTURE_MAX;
  if (max_payload < GOTLS_CAPTURE_MAX) {
    /* Only the prefix of a longer call, unless the connection is exempt (HTTP/2). */
    struct gotls_conn_key k = {.tgid = tgid, .conn_ptr = conn};
    if (len > max_payload) {
      if (bpf_map_lookup_elem(&whole_conns, &k))
        c.hdr.flags = GOTLS_CHUNK_WHOLE_CONN;
      else
        limit = max_payload;
    }
  }
  if (len > limit) {
    c.len = limit;
    c.hdr.flags |= GOTLS_CHUNK_TRUNCATED;
  }
  const __u8 whole = c.hdr.flags | GOTLS_CHUNK_FIRST | GOTLS_CHUNK_LAST;
  if (c.len <= 512) {
    emit_512(&c, 0, c.len, whole);
  } else if (c.len <= 4096) {
    emit_4096(&c, 0, c.len, whole);
  } else {
    __u32 chunks = (c.len + GOTLS_CHUNK_MAX - 1) / GOTLS_CHUNK_MAX;
    bpf_loop(chunks, emit_chunk, &c, 0);
  }
}

/* ---- probes ------------------------------------------------------------------------------ */

/* Whether an error interface's data word is io.EOF: an *errors.errorString whose text is "EOF"
 * (io.EOF = errors.New("EOF"), the same layout from Go 1.0 to 1.27). Other error types in a
 * Read result (*net.OpError, timeouts of the net/http server's background read, alerts) start
 * with other words; only the literal text "EOF" of length 3 matches. Two small reads, and only
 * when Read returns an error. */
static __always_inline bool is_eof(__u64 err_data) {
  struct {
    __u64 ptr, len;
  } s = {};
  if (!err_data || bpf_probe_read_user(&s, sizeof(s), (void *)err_data) || s.len != 3 || !s.ptr) return false;
  char text[4] = {};
  if (bpf_probe_read_user(text, 3, (void *)s.ptr)) return false;
  return text[0] == 'E' && text[1] == 'O' && text[2] == 'F';
}

/* func (c *Conn) writeRecordLocked(typ recordType, data []byte) (int, error) */
SEC("uprobe")
int gotls_write_record(struct pt_regs *ctx) {
  __u32 tgid = wanted_hit(ctx);
  if (!tgid) return 0;
  bool st = stack_abi(ctx);
  __u64 typ = st ? stack_word(ctx, 1) : reg_arg(ctx, 1);
  if ((typ & 0xff) != RECORD_TYPE_APPLICATION_DATA) return 0;
  __u64 conn = st ? stack_word(ctx, 0) : reg_arg(ctx, 0);
  __u64 buf = st ? stack_word(ctx, 2) : reg_arg(ctx, 2);
  __u64 len = st ? stack_word(ctx, 3) : reg_arg(ctx, 3);
  emit(tgid, GOTLS_DIR_WRITE, conn, buf, len);
  return 0;
}

/* func (c *Conn) Read(b []byte) (int, error): entry */
SEC("uprobe")
int gotls_read_entry(struct pt_regs *ctx) {
  __u32 tgid = wanted_hit(ctx);
  if (!tgid) return 0;
  bool st = stack_abi(ctx);
  struct read_key k = {.tgid = tgid, .g = current_g(ctx, st)};
  struct read_args a = {
      .conn = st ? stack_word(ctx, 0) : reg_arg(ctx, 0),
      .buf = st ? stack_word(ctx, 1) : reg_arg(ctx, 1),
      .len = st ? stack_word(ctx, 2) : reg_arg(ctx, 2),
  };
  bpf_map_update_elem(&reads, &k, &a, BPF_ANY);
  return 0;
}

/* func (c *Conn) Read(b []byte) (int, error): at each RET. n is RAX/R0, or the word after c and
 * b (c, b.ptr, b.len, b.cap, n) on the stack. With GOTLS_COOKIE_READ_RET_ONLY, c, b.ptr and b.len
 * are the words at SP+8/+16/+24: SP is back at its entry value at a RET, and user space proved from
 * the disassembly that the stack ABI's arguments / the register ABI's spill slots (stored at
 * entry) are never overwritten. One trap per Read instead of two, and no map. */
SEC("uprobe")
int gotls_read_return(struct pt_regs *ctx) {
  __u32 tgid = wanted_hit(ctx); /* a RET probe: never at a stack check */
  if (!tgid) return 0;
  __u64 cookie = bpf_get_attach_cookie(ctx);
  bool st = cookie & GOTLS_COOKIE_STACK_ABI;
  struct read_args args = {};
  if (cookie & GOTLS_COOKIE_READ_RET_ONLY) {
    if (bpf_probe_read_user(&args, sizeof(args), (void *)(stack_pointer(ctx) + 8))) {
      count(GOTLS_CNT_READ_FAULTS, 1);
      return 0;
    }
  } else {
    struct read_key k = {.tgid = tgid, .g = current_g(ctx, st)};
    struct read_args *a = bpf_map_lookup_elem(&reads, &k);
    if (!a) {
      count(GOTLS_CNT_READ_NO_ENTRY, 1);
      return 0;
    }
    args = *a;
    bpf_map_delete_elem(&reads, &k);
  }
  __s64 n = (__s64)(st ? stack_word(ctx, 4) : reg_arg(ctx, 0));
  if (n > 0) {
    if ((__u64)n > args.len) n = args.len; /* never more than the buffer */
    emit(tgid, GOTLS_DIR_READ, args.conn, args.buf, (__u64)n);
  }
  /* err (itab, data) follows n. Read returns io.EOF, with or without bytes, once the peer sent
   * close_notify or closed TCP at a record boundary, and keeps returning it. */
  __u64 err_itab = st ? stack_word(ctx, 5) : reg_arg(ctx, 1);
  __u64 err_data = st ? stack_word(ctx, 6) : reg_arg(ctx, 2);
  if (err_itab && is_eof(err_data)) emit_end(tgid, GOTLS_DIR_EOF, args.conn);
  return 0;
}

/* (*Conn).Read's deferred call (`defer c.in.Unlock()`) on a return path (amd64): the results are
 * in their frame slots there, c and b in their spill/argument slots (user space proved both from
 * the disassembly), so one emulated probe -- a direct CALL in Read, or the deferred closure's
 * stack-check JBE -- replaces a RET probe, which the kernel must single-step (two traps). */
SEC("uprobe")
int gotls_read_exit(struct pt_regs *ctx) {
  __u32 tgid = wanted_hit(ctx);
  if (!tgid) return 0;
  __u32 idx = bpf_get_attach_cookie(ctx) >> 32;
  struct gotls_read_exit *x = bpf_map_lookup_elem(&read_exits, &idx);
  if (!x) return 0;
  __u64 sp = stack_pointer(ctx);
  if (x->in_callee) {
#if defined(__TARGET_ARCH_x86)
    /* Only a call from one of Read's return paths: the runtime also runs the closure while a
     * panic unwinds, from its own frames. */
    __u64 ret = 0;
    if (bpf_probe_read_user(&ret, sizeof(ret), (void *)sp)) return 0;
    __s64 site = (__s64)(ret - ctx->ip);
    bool from_read = false;
    for (int i = 0; i < GOTLS_READ_EXIT_SITES; i++)
      if (i < x->nsites && x->sites[i] == site) from_read = true;
    if (!from_read) return 0;
    sp += 8;
#else
    return 0;
#endif
  }
  struct read_args args = {};
  struct {
    __s64 n;
  } res = {};
  struct {
    __u64 itab, data;
  } err = {};
  if (bpf_probe_read_user(&args, sizeof(args), (void *)(sp + x->to_entry + 8)) ||
      bpf_probe_read_user(&res, sizeof(res), (void *)(sp + x->n_off)) ||
      bpf_probe_read_user(&err, sizeof(err), (void *)(sp + x->err_off))) {
    count(GOTLS_CNT_READ_FAULTS, 1);
    return 0;
  }
  if (res.n > 0) emit(tgid, GOTLS_DIR_READ, args.conn, args.buf, (__u64)res.n > args.len ? args.len : (__u64)res.n);
  if (err.itab && is_eof(err.data)) emit_end(tgid, GOTLS_DIR_EOF, args.conn);
  return 0;
}

/* func (c *Conn) Close() error: entry (after the stack-growth check). Every Go version's net/http
 * closes each connection it is done with through here; the fd is still open. */
SEC("uprobe")
int gotls_close(struct pt_regs *ctx) {
  __u32 tgid = wanted_hit(ctx);
  if (!tgid) return 0;
  bool st = stack_abi(ctx);
  __u64 conn = st ? stack_word(ctx, 0) : reg_arg(ctx, 0);
  if (!conn) return 0;
  if (max_payload < GOTLS_CAPTURE_MAX) {
    struct gotls_conn_key k = {.tgid = tgid, .conn_ptr = conn};
    bpf_map_delete_elem(&whole_conns, &k); /* the address may be reused by a later connection */
  }
  emit_end(tgid, GOTLS_DIR_CLOSE, conn);
  return 0;
}

/* ---- secrets ----------------------------------------------------------------------------- */

/* Argument word i in either convention: the register ABI assigns these functions' integer
 * arguments to consecutive registers in exactly the order the stack ABI lays them out in words. */
static __always_inline __u64 arg_word(struct pt_regs *ctx, bool st, int i) {
  return st ? stack_word(ctx, i) : reg_arg(ctx, i);
}

/* keysFromMasterSecret's secrets get this label. A literal, not a named constant: clang 14 emits
 * wrong BTF for a static const array placed in .rodata.str, and the kernel then rejects the BTF. */
#define CLIENT_RANDOM_LABEL "CLIENT_RANDOM"

/* Sends one secret. `label` is a Go string in the process (writeKeyLog), or 0 for CLIENT_RANDOM. */
static __always_inline void emit_secret(__u8 source, __u64 label, __u64 label_len, __u64 random,
                                        __u64 random_len, __u64 secret, __u64 secret_len, __u64 half_conn) {
  if ((label_len == 0 && source != GOTLS_SECRET_TRAFFIC) || label_len > GOTLS_LABEL_MAX ||
      random_len > GOTLS_RANDOM_MAX || secret_len == 0 || secret_len > GOTLS_SECRET_MAX)
    return;
  struct gotls_secret_event *e = bpf_ringbuf_reserve(&secrets, sizeof(*e), 0);
  if (!e) {
    count(GOTLS_CNT_LOST_SECRETS, 1);
    return;
  }
  __u64 id = bpf_get_current_pid_tgid();
  e->ts_ns = bpf_ktime_get_ns();
  e->pid = id >> 32;
  e->tid = (__u32)id;
  e->source = source;
  e->half_conn = half_conn;
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  e->uid = (__u32)bpf_get_current_uid_gid();
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  e->ppid = BPF_CORE_READ(task, real_parent, tgid);
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->label_len = label_len;
  e->random_len = random_len;
  e->secret_len = secret_len;
  /* Each length is clamped again and passed through barrier_var on both sides of the clamp: the
   * compiler knows the lengths are in range from the check above, so without the barriers it drops
   * the clamp or passes another copy of the length (spilled before the check, or not
   * zero-extended), whose bounds Linux 6.1's verifier does not know ("R2 min value is negative",
   * seen on arm64; newer verifiers track such copies). */
  __u64 n = label_len;
  barrier_var(n);
  if (n > GOTLS_LABEL_MAX) n = GOTLS_LABEL_MAX;
  barrier_var(n);
  if (source == GOTLS_SECRET_MASTER) {
    __builtin_memcpy(e->label, CLIENT_RANDOM_LABEL, sizeof(CLIENT_RANDOM_LABEL));
  } else if (label_len && bpf_probe_read_user(e->label, n, (void *)label)) {
    /* A Go string: not NUL-terminated, read exactly its length. */
    goto fail;
  }
  n = random_len;
  barrier_var(n);
  if (n > GOTLS_RANDOM_MAX) n = GOTLS_RANDOM_MAX;
  barrier_var(n);
  if (n && bpf_probe_read_user(e->client_random, n, (void *)random)) goto fail;
  n = secret_len;
  barrier_var(n);
  if (n > GOTLS_SECRET_MAX) n = GOTLS_SECRET_MAX;
  barrier_var(n);
  if (bpf_probe_read_user(e->secret, n, (void *)secret)) goto fail;
  bpf_ringbuf_submit(e, 0);
  return;
fail:
  count(GOTLS_CNT_READ_FAULTS, 1);
  bpf_ringbuf_discard(e, 0);
}

/* func (c *Config) writeKeyLog(label string, clientRandom, secret []byte) error
 * Called unconditionally in every Go version (the KeyLogWriter nil check is inside). */
SEC("uprobe")
int gotls_write_key_log(struct pt_regs *ctx) {
  if (!wanted_hit(ctx)) return 0;
  bool st = stack_abi(ctx);
  emit_secret(GOTLS_SECRET_KEYLOG, arg_word(ctx, st, 1), arg_word(ctx, st, 2), arg_word(ctx, st, 3),
              arg_word(ctx, st, 4), arg_word(ctx, st, 6), arg_word(ctx, st, 7), 0);
  return 0;
}

/* func keysFromMasterSecret(version uint16, suite *cipherSuite, masterSecret, clientRandom,
 *                           serverRandom []byte, macLen, keyLen, ivLen int) (...)
 * TLS 1.2 key derivation, full and resumed handshakes alike: CLIENT_RANDOM <random> <master>. */
SEC("uprobe")
int gotls_keys_from_master(struct pt_regs *ctx) {
  if (!wanted_hit(ctx)) return 0;
  bool st = stack_abi(ctx);
  __u64 random_len = arg_word(ctx, st, 6);
  if (random_len != GOTLS_RANDOM_MAX) return 0;
  emit_secret(GOTLS_SECRET_MASTER, 0, sizeof(CLIENT_RANDOM_LABEL) - 1, arg_word(ctx, st, 5), random_len,
              arg_word(ctx, st, 2), arg_word(ctx, st, 3), 0);
  return 0;
}

/* func (hc *halfConn) setTrafficSecret(suite *cipherSuiteTLS13, [level QUICEncryptionLevel,]
 *                                      secret []byte)
 * Every TLS 1.3 key change of one direction of a connection, KeyUpdate included. The secret
 * carries no label or client random: user space ties it to its connection by matching the first
 * application secret against the one writeKeyLog reported, then counts the updates. */
SEC("uprobe")
int gotls_set_traffic_secret(struct pt_regs *ctx) {
  if (!wanted_hit(ctx)) return 0;
  bool st = stack_abi(ctx);
  bool after_level = bpf_get_attach_cookie(ctx) & GOTLS_COOKIE_SECRET_AFTER_LEVEL;
  /* Load all three words, then choose: a variable register index would turn into a computed
   * offset into ctx, which the verifier refuses. */
  __u64 w2 = arg_word(ctx, st, 2), w3 = arg_word(ctx, st, 3), w4 = arg_word(ctx, st, 4);
  asm volatile("" : "+r"(w2), "+r"(w3), "+r"(w4));
  __u64 secret = after_level ? w3 : w2;
  __u64 secret_len = after_level ? w4 : w3;
  emit_secret(GOTLS_SECRET_TRAFFIC, 0, 0, 0, 0, secret, secret_len, arg_word(ctx, st, 0));
  return 0;
}
