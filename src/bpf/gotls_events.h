/* Event layouts shared by the eBPF programs (gotls.bpf.c) and user space (capture/). Plain C with
 * fixed-width fields so both compilers agree on the layout. */
#ifndef GOTLSCAP_BPF_GOTLS_EVENTS_H
#define GOTLSCAP_BPF_GOTLS_EVENTS_H

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t gt_u8;
typedef uint16_t gt_u16;
typedef uint32_t gt_u32;
typedef uint64_t gt_u64;
typedef int32_t gt_s32;
typedef int64_t gt_s64;
#else
typedef __u8 gt_u8;
typedef __u16 gt_u16;
typedef __u32 gt_u32;
typedef __u64 gt_u64;
typedef __s32 gt_s32;
typedef __s64 gt_s64;
#endif

/* One ring-buffer record carries at most this much payload; a call's payload is split into
 * chunks that share one call_id. */
#define GOTLS_CHUNK_MAX 16384
/* Payload captured per call: 2048 chunks = 32 MiB (a net/http server hands a whole response body
 * to one Write). Beyond that the event is marked truncated and carries its true length. */
#define GOTLS_MAX_CHUNKS 2048
#define GOTLS_CAPTURE_MAX ((gt_u64)GOTLS_CHUNK_MAX * GOTLS_MAX_CHUNKS)

/* Attach cookie bits: how the probed binary passes arguments. */
#define GOTLS_COOKIE_STACK_ABI 0x1
/* setTrafficSecret gained a `level` argument in Go 1.21: its secret moved from word 2 to 3. */
#define GOTLS_COOKIE_SECRET_AFTER_LEVEL 0x2
/* (*Conn).Read RET probes without an entry probe: user space proved (disassembly) that c, b.ptr and
 * b.len sit at SP+8/+16/+24 at every RET (stack ABI arguments, register ABI spill slots). */
#define GOTLS_COOKIE_READ_RET_ONLY 0x4
/* amd64: the entry probe sits on the stack-bound check's JBE (the kernel emulates it: one trap
 * instead of two). It fires before the branch: when the branch will be taken (CF or ZF set by the
 * CMP), the goroutine grows its stack and re-runs the entry, so that hit is ignored. */
#define GOTLS_COOKIE_AT_STACK_CHECK 0x8

/* amd64: where (*Conn).Read's results are read at its deferred call instead of at a RET (user
 * space proved the layout from the disassembly: gobin::PlanReadExits). Stored in the read_exits
 * array map; the probe's attach cookie holds the index in its upper 32 bits. All offsets are from
 * SP at the call (in_callee: the probe's SP + 8, above the return address). */
#define GOTLS_READ_EXIT_SITES 8
#define GOTLS_READ_EXITS_MAX 1024
struct gotls_read_exit {
  gt_u16 to_entry; /* SP + to_entry = Read's entry SP: c, b.ptr, b.len at +8, +16, +24 */
  gt_u16 n_off;    /* n (int) */
  gt_u16 err_off;  /* err: itab, data */
  gt_u8 in_callee; /* at the deferred closure's entry: only calls returning to `sites` count */
  gt_u8 nsites;
  gt_s32 sites[GOTLS_READ_EXIT_SITES]; /* return address minus the probe's address */
};

/* CLOSE and EOF records carry no payload (total_len and chunk_len 0): the connection ended.
 * CLOSE: the process called (*Conn).Close; EOF: a Read returned io.EOF (the peer closed). */
enum gotls_dir { GOTLS_DIR_WRITE = 0, GOTLS_DIR_READ = 1, GOTLS_DIR_CLOSE = 2, GOTLS_DIR_EOF = 3 };

enum gotls_chunk_flags {
  GOTLS_CHUNK_FIRST = 0x1,
  GOTLS_CHUNK_LAST = 0x2,
  GOTLS_CHUNK_TRUNCATED = 0x4, /* the call had more bytes than were captured (max_payload or
                                  GOTLS_CAPTURE_MAX); total_len is still the call's length */
  GOTLS_CHUNK_WHOLE_CONN = 0x8, /* the connection is in whole_conns: its calls are captured up to
                                   GOTLS_CAPTURE_MAX whatever max_payload says */
};

/* whole_conns: connections exempt from max_payload (user space adds those it finds to be HTTP/2,
 * whose frame headers may sit anywhere in a call). Key: what the data records name a connection
 * by within a process. */
#define GOTLS_WHOLE_CONNS_MAX 4096
struct gotls_conn_key {
  gt_u32 tgid;
  gt_u32 pad; /* 0 */
  gt_u64 conn_ptr; /* *tls.Conn */
};

/* Indexes of the per-CPU counters map. */
enum gotls_counter {
  GOTLS_CNT_CALLS = 0,      /* calls that produced an event (close/EOF records not counted) */
  GOTLS_CNT_LOST_CHUNKS,    /* ring buffer full: chunks dropped */
  GOTLS_CNT_LOST_BYTES,     /* payload bytes in those chunks */
  GOTLS_CNT_READ_FAULTS,    /* payload that could not be read from the process */
  GOTLS_CNT_READ_NO_ENTRY,  /* a Read return without its entry (started mid-call) */
  GOTLS_CNT_PROBE_HITS,     /* every probe hit, for overhead figures */
  GOTLS_CNT_LOST_SECRETS,   /* secrets ring buffer full */
  GOTLS_CNT_LOST_CLOSES,    /* close/EOF records the ring buffer could not take */
  GOTLS_CNT_STACK_GROWTH,   /* entry hits on a stack-check JBE about to grow the stack: ignored */
  GOTLS_CNT_MAX,
};

struct gotls_data_event {
  gt_u64 call_id;    /* (tid << 32) ^ ts_ns: all chunks of one call share it */
  gt_u64 ts_ns;      /* CLOCK_MONOTONIC at the call */
  gt_u64 total_len;  /* the call's true payload length */
  gt_u64 offset;     /* of this chunk within the payload */
  gt_u64 conn_ptr;   /* *tls.Conn: identifies the connection within the process */
  gt_u64 sock_ptr;   /* kernel struct sock *, 0 if unknown: tells reused fds/Conns apart */
  gt_s64 fd;         /* poll.FD.Sysfd, -1 if the chain could not be followed */
  gt_u32 pid;        /* tgid */
  gt_u32 tid;
  gt_u32 uid;
  gt_u32 chunk_len;
  gt_u8 dir;         /* enum gotls_dir */
  gt_u8 flags;       /* enum gotls_chunk_flags */
  gt_u16 family;     /* AF_INET / AF_INET6, 0 if unknown */
  gt_u16 lport;      /* host byte order */
  gt_u16 rport;
  gt_u8 laddr[16];   /* IPv4 in the first 4 bytes */
  gt_u8 raddr[16];
  char comm[16];
  gt_u64 cgroup_id;  /* cgroup v2 id of the task (the inode number of its directory) */
  /* followed by chunk_len payload bytes */
};

/* --container: the cgroups of the wanted containers (ids as in cgroup_id), checked against the
 * task's cgroup and its ancestors up to this depth below the root. */
#define GOTLS_CONTAINER_CGROUPS_MAX 4096
#define GOTLS_CGROUP_DEPTH_MAX 16

/* A TLS secret, as (*Config).writeKeyLog receives it (NSS key log label, client random,
 * secret), or rebuilt from keysFromMasterSecret for TLS 1.2 (label CLIENT_RANDOM), which also
 * covers resumed sessions that never call writeKeyLog. Sent on the `secrets` ring buffer. */
#define GOTLS_LABEL_MAX 40
#define GOTLS_RANDOM_MAX 32
#define GOTLS_SECRET_MAX 64

enum gotls_secret_source {
  GOTLS_SECRET_KEYLOG = 0,  /* writeKeyLog: label, client random, secret */
  GOTLS_SECRET_MASTER = 1,  /* keysFromMasterSecret: CLIENT_RANDOM, client random, master secret */
  GOTLS_SECRET_TRAFFIC = 2, /* (*halfConn).setTrafficSecret: no label, no random; `half_conn` set */
};

struct gotls_secret_event {
  gt_u64 ts_ns;
  gt_u32 pid;
  gt_u32 tid;
  gt_u8 label_len;
  gt_u8 random_len;
  gt_u8 secret_len;
  gt_u8 source; /* enum gotls_secret_source */
  char comm[16];
  char label[GOTLS_LABEL_MAX];
  gt_u8 client_random[GOTLS_RANDOM_MAX];
  gt_u8 secret[GOTLS_SECRET_MAX];
  gt_u64 half_conn; /* GOTLS_SECRET_TRAFFIC: the *halfConn whose key changes */
  /* Who logged it, read in the kernel: a short-lived client may be gone from /proc by the time
   * user space sees the secret (pcap comments name uid, parent and cgroup). */
  gt_u32 uid;
  gt_u32 ppid;
  gt_u64 cgroup_id; /* cgroup v2 id (the inode number of its directory) */
};

#endif
