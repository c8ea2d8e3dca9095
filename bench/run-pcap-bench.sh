#!/usr/bin/env bash
# What `gotlscap pcap` costs on loopback, and whether it keeps up: packets/s and MB/s captured,
# packets lost, user-space CPU per packet and per GB, peak RSS, in-kernel cost per packet of the
# TC programs, and dumpcap capturing the same traffic side by side as a reference.
#   bench/run-pcap-bench.sh
# Copies of the matrix's Go test server and client ($GOTLSCAP_CACHE/testprogs/go$GO_VERSION/default)
# run in a work directory (uprobes belong to a file: other users of the cached binaries are not
# traced). Per workload:
#  1. Measurement run: `gotlscap pcap -i lo -w FILE -e server -e client 'tcp port P'` and
#     `dumpcap -i lo -f 'tcp port P'` capture one client run side by side. kernel.bpf_stats_enabled
#     is set for the run (and restored at exit); the run time and run count of gotlscap's own TC
#     programs (found by the prog ids in /proc/PID/fdinfo, read with `bpftool prog show -j`) are
#     sampled before the client starts and after gotlscap has gone idle (held packets written).
#     CPU = utime+stime (/proc/PID/stat) over that window; RSS = VmHWM. Then both files are read
#     and compared packet by packet (multiset of packet bytes; timestamps differ).
#  2. Throughput: the client alone, then under a fresh gotlscap (no dumpcap), alternating
#     (U,T then T,U ...), PAIRS pairs; the client's own elapsed time.
# Workloads (WORKLOADS, default "small bulk h2"):
#   small = SMALL_N x SMALL_SIZE B POST /echo, HTTP/1.1 keep-alive, SMALL_CONC connections
#   bulk  = BULK_N x BULK_SIZE B POST /echo, HTTP/1.1, BULK_CONC connections (64 KiB GSO packets)
#   h2    = H2_N x H2_SIZE B POST /echo, HTTP/2 (one connection, H2_CONC streams at a time)
# Exit status: 1 a command failed; 3 gotlscap lost packets (ring buffer full, load faults, lost
# secrets); 4 its pcapng does not hold the packets dumpcap saw (only when dumpcap dropped none).
# Env: BUILD_DIR (default build-bench), GOTLSCAP (use this binary, no build), GO_VERSION (1.27),
#   TLS (1.3), PAIRS (3), RINGBUF_MB (gotlscap --ringbuf-mb; default: its own), DUMPCAP_BUFFER_MB
#   (64), SMALL_N (40000) SMALL_SIZE (100) SMALL_CONC (8), BULK_N (150) BULK_SIZE (1000000)
#   BULK_CONC (1), H2_N (20000) H2_SIZE (1000) H2_CONC (8), WORK_DIR (where the pcapng files go;
#   default /dev/shm, so disk speed stays out of it), KEEP=1 keeps the work directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cache=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
build=${BUILD_DIR:-$root/build-bench}
gv=${GO_VERSION:-1.27}
tls=${TLS:-1.3}
pairs=${PAIRS:-3}
workloads=${WORKLOADS:-"small bulk h2"}
dbuf=${DUMPCAP_BUFFER_MB:-64}

die() { echo "run-pcap-bench: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (eBPF, TC)"
for t in dumpcap bpftool jq python3; do command -v "$t" >/dev/null || die "needs $t"; done
[[ -x $cache/testprogs/go$gv/default/server && -x $cache/testprogs/go$gv/default/client ]] ||
  die "no go$gv test programs under $cache/testprogs (scripts/go-matrix.sh builds them)"
if [[ -n ${GOTLSCAP:-} ]]; then
  gotlscap=$GOTLSCAP
else
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGOTLSCAP_BENCH=ON -DGOTLSCAP_TESTS=OFF \
    -DGOTLSCAP_FUZZ=OFF >/dev/null
  cmake --build "$build" --target gotlscap -j"$(nproc)" >/dev/null
  gotlscap=$build/gotlscap
fi
[[ -x $gotlscap ]] || die "no gotlscap at $gotlscap"

work=$(mktemp -d "${WORK_DIR:-/dev/shm}/gotlscap-pcap-bench.XXXXXX")
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
pids=()  # every process this script started and has not reaped yet
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
  if [[ -n ${KEEP:-} ]]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget() { local keep=() p; for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; pids=("${keep[@]}"); }

tck=$(getconf CLK_TCK)
cpu_of() { awk -v t="$tck" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }  # utime+stime, s
hwm_of() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }  # kB
calc() { awk "BEGIN { print $* }"; }
# wait_idle PID: until its CPU time stops growing for 0.2 s (max 30 s)
wait_idle() {
  local c0 c1 still=0
  c0=$(cpu_of "$1")
  for _ in $(seq 300); do
    sleep 0.1; c1=$(cpu_of "$1")
    if [[ $c1 == "$c0" ]]; then ((++still >= 2)) && break; else still=0; fi
    c0=$c1
  done
}
# Go's Duration.String (1m2.5s, 1.351s, 851.2ms, 900µs) -> seconds
dur_s() {
  awk -v d="$1" 'BEGIN { s = 0
    if (match(d, /^[0-9.]+m[^s]/) || match(d, /^[0-9.]+m[0-9]/)) { split(d, a, "m"); s = a[1] * 60; d = substr(d, index(d, "m") + 1) }
    if (d ~ /ms$/) s += d / 1000; else if (d ~ /µs$|us$/) s += d / 1e6; else if (d ~ /ns$/) s += d / 1e9; else if (d ~ /s$/) s += d + 0
    printf "%.6f\n", s }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ids of the BPF programs a process holds (gotlscap's TC filter and capture programs among them)
prog_ids_of() {
  local fd
  for fd in /proc/"$1"/fd/*; do
    if [[ $(readlink "$fd" 2>/dev/null) == anon_inode:bpf-prog ]]; then
      awk '/^prog_id:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null || true
    fi
  done | sort -un | paste -sd, -
}
# tc_stats IDS -> "filter_ns filter_cnt capture_ns capture_cnt" summed over those programs.
# The filter tail-calls capture_ingress/egress: the callee's time is inside the filter's
# run_time_ns, and a tail call counts no run of its own (capture_* stay 0 unless run directly).
tc_stats() {
  bpftool prog show -j | jq -r --arg ids "$1" '
    ($ids | split(",") | map(tonumber)) as $want
    | [.[] | select(.id as $i | $want | index($i)) ] as $p
    | [($p | map(select(.name == "gotlscap_filter")) | (map(.run_time_ns // 0) | add // 0), (map(.run_cnt // 0) | add // 0)),
       ($p | map(select(.name == "capture_ingress" or .name == "capture_egress")) | (map(.run_time_ns // 0) | add // 0), (map(.run_cnt // 0) | add // 0))]
    | map(tostring) | join(" ")'
}

# Compares two pcapng files: packets, bytes (orig_len), and how many packets have identical bytes
# in both (a multiset: order and timestamps differ). Prints "n_a bytes_a n_b bytes_b common".
compare_pcapng() {
  python3 - "$1" "$2" <<'PY'
import mmap, struct, sys
from collections import Counter
def packets(path):
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    mv, off, end, order, out, nbytes = memoryview(m), 0, len(m), "<", Counter(), 0
    while off + 12 <= end:
        btype = struct.unpack_from(order + "I", m, off)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order from its magic
            order = "<" if struct.unpack_from("<I", m, off + 8)[0] == 0x1A2B3C4D else ">"
        blen = struct.unpack_from(order + "I", m, off + 4)[0]
        if blen < 12 or off + blen > end:
            sys.exit(f"{path}: bad block at {off}")
        if btype == 6:  # enhanced packet block
            cap, orig = struct.unpack_from(order + "II", m, off + 20)
            out[(orig, hash(mv[off + 28:off + 28 + cap]))] += 1
            nbytes += orig
        elif btype == 3:  # simple packet block
            orig = struct.unpack_from(order + "I", m, off + 8)[0]
            out[(orig, hash(mv[off + 12:off + 12 + min(orig, blen - 16)]))] += 1
            nbytes += orig
        off += blen
    return out, nbytes
a, ab = packets(sys.argv[1])
b, bb = packets(sys.argv[2])
print(sum(a.values()), ab, sum(b.values()), bb, sum((a & b).values()))
PY
}

# Go test programs, copied so that only our processes carry uprobes
cp "$cache/testprogs/go$gv/default/server" "$work/server"
cp "$cache/testprogs/go$gv/default/client" "$work/client"
: >"$work/server.log"
"$work/server" -addr 127.0.0.1:0 >"$work/server.log" 2>&1 &
srv_pid=$!
pids+=("$srv_pid")
for _ in $(seq 100); do grep -q '^listening ' "$work/server.log" && break; sleep 0.05; done
addr=$(awk '/^listening /{ print $2; exit }' "$work/server.log")
[[ -n $addr ]] || die "server did not start: $(cat "$work/server.log")"
port=${addr##*:}
filter="tcp port $port"

wl_args() {  # workload -> client arguments
  case $1 in
    small) echo "-n ${SMALL_N:-40000} -size ${SMALL_SIZE:-100} -concurrency ${SMALL_CONC:-8}" ;;
    bulk) echo "-n ${BULK_N:-150} -size ${BULK_SIZE:-1000000} -concurrency ${BULK_CONC:-1}" ;;
    h2) echo "-n ${H2_N:-20000} -size ${H2_SIZE:-1000} -concurrency ${H2_CONC:-8} -h2" ;;
    *) die "unknown workload $1 (small, bulk, h2)" ;;
  esac
}
# run_client WORKLOAD LOG -> prints elapsed seconds (the client's own measure); fails on an error
run_client() {
  local line
  # shellcheck disable=SC2046
  "$work/client" -url "https://$addr" -tls "$tls" $(wl_args "$1") >"$2" 2>&1 ||
    { echo "run-pcap-bench: client failed: $(cat "$2")" >&2; return 1; }
  line=$(grep '^client: ok ' "$2")
  dur_s "$(sed -n 's/.* elapsed=\([^ ]*\).*/\1/p' <<<"$line")"
}
# after a client failure: say whether the server is still there (and how it ended), then exit
client_failed() {
  local rc=0
  if kill -0 "$srv_pid" 2>/dev/null; then die "the client failed; the server is still running"; fi
  wait "$srv_pid" || rc=$?
  forget "$srv_pid"
  ((rc > 128)) && die "the server was killed by signal $((rc - 128)) ($(kill -l $((rc - 128)))); its log: $(tail -5 "$work/server.log")"
  die "the server exited with status $rc; its log: $(tail -20 "$work/server.log")"
}
# start_gotlscap OUTFILE ERRFILE -> sets gpid, after "ready"
start_gotlscap() {
  "$gotlscap" pcap -i lo -w "$1" -e "$work/server" -e "$work/client" ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"} \
    "$filter" 2>"$2" &
  gpid=$!
  pids+=("$gpid")
  for _ in $(seq 200); do grep -q '^ready' "$2" && break; kill -0 "$gpid" 2>/dev/null || break; sleep 0.05; done
  grep -q '^ready' "$2" || die "gotlscap did not start: $(cat "$2")"
}
# stop_gotlscap ERRFILE -> sets summ="written lost captured not_target unsettled" from its summary
stop_gotlscap() {
  local rc=0
  kill -INT "$gpid"
  wait "$gpid" || rc=$?
  forget "$gpid"
  [[ $rc -eq 0 ]] || die "gotlscap exited with $rc: $(cat "$1")"
  summ=$(grep '^summary:' "$1") || die "no summary from gotlscap: $(cat "$1")"
  summ=$(sed -E 's/^summary: ([0-9]+) packets written .*, [0-9]+ secrets, ([0-9]+) lost .*\(([0-9]+) packets captured, ([0-9]+) not of the targets, ([0-9]+) written before their keys.*/\1 \2 \3 \4 \5/' <<<"$summ")
  [[ $summ =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]] || die "unexpected summary: $(grep '^summary:' "$1")"
}

echo "host: $(nproc) CPUs, $(uname -r), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
echo "gotlscap: $gotlscap; go$gv server+client ($("$gotlscap" inspect --json "$work/client" | sed -n 's/.*"go_version": *"\([^"]*\)".*/\1/p')), TLS $tls, on lo ($addr)"
echo "capture: gotlscap pcap -i lo -w FILE -e server -e client${RINGBUF_MB:+ --ringbuf-mb $RINGBUF_MB} '$filter'; dumpcap -B $dbuf -f '$filter'; files in $work"
for wl in $workloads; do wl_args "$wl" >/dev/null; echo "  $wl: client $(wl_args "$wl")"; done
echo

run_client small "$work/warm.log" >/dev/null || client_failed  # warm-up, not counted: page cache, server heap
echo 1 >/proc/sys/kernel/bpf_stats_enabled

res=$work/results.tsv tput=$work/tput.tsv
: >"$res"; : >"$tput"
status=0
for wl in $workloads; do
  # 1. measurement run: gotlscap and dumpcap side by side
  g_file=$work/$wl.gotlscap.pcapng d_file=$work/$wl.dumpcap.pcapng
  start_gotlscap "$g_file" "$work/$wl.gotlscap.err"
  ids=$(prog_ids_of "$gpid")
  dumpcap -i lo -f "$filter" -B "$dbuf" -w "$d_file" -q 2>"$work/$wl.dumpcap.err" &
  dpid=$!
  pids+=("$dpid")
  for _ in $(seq 200); do grep -q '^File: ' "$work/$wl.dumpcap.err" && break; kill -0 "$dpid" 2>/dev/null || break; sleep 0.05; done
  grep -q '^File: ' "$work/$wl.dumpcap.err" || die "dumpcap did not start: $(cat "$work/$wl.dumpcap.err")"
  sleep 0.2  # dumpcap's socket and filter in place
  st=$(tc_stats "$ids"); read -r fns0 fcnt0 cns0 ccnt0 <<<"$st"
  gc0=$(cpu_of "$gpid"); dc0=$(cpu_of "$dpid")
  el=$(run_client "$wl" "$work/$wl.client-m.log") || client_failed
  sleep 0.3  # gotlscap holds packets 200 ms
  wait_idle "$gpid"
  st=$(tc_stats "$ids"); read -r fns1 fcnt1 cns1 ccnt1 <<<"$st"
  gc1=$(cpu_of "$gpid"); dc1=$(cpu_of "$dpid"); hwm=$(hwm_of "$gpid")
  stop_gotlscap "$work/$wl.gotlscap.err"; read -r written lost captured nottgt unsettled <<<"$summ"
  kill -INT "$dpid"
  wait "$dpid" || die "dumpcap exited with $?: $(cat "$work/$wl.dumpcap.err")"
  forget "$dpid"
  read -r _ ddrop < <(sed -n "s|^Packets received/dropped on interface .*: \([0-9]*\)/\([0-9]*\).*|\1 \2|p" "$work/$wl.dumpcap.err")
  cmp=$(compare_pcapng "$g_file" "$d_file") || die "cannot compare the pcapng files"
  read -r gn gb dn db common <<<"$cmp"
  [[ $gn -eq $written ]] || die "$wl: gotlscap says $written packets written, its file holds $gn"
  [[ -n ${KEEP:-} ]] || rm -f "$g_file" "$d_file"
  printf '%s\t' "$wl" "$el" "$gn" "$gb" "$lost" "$captured" "$nottgt" "$unsettled" "$(calc "$gc1 - $gc0")" "$hwm" \
    "$((fns1 - fns0))" "$((fcnt1 - fcnt0))" "$((cns1 - cns0))" "$((ccnt1 - ccnt0))" \
    "$dn" "$db" "${ddrop:-?}" "$(calc "$dc1 - $dc0")" "$common" >>"$res"
  echo >>"$res"
  printf '%-6s measured: %s packets in %.2f s; gotlscap lost %s, dumpcap dropped %s\n' "$wl" "$gn" "$el" "$lost" "${ddrop:-?}"

  # 2. throughput: client alone (U) vs under gotlscap (T), alternating
  : >"$work/$wl.u"; : >"$work/$wl.t"; : >"$work/$wl.r"
  for ((i = 0; i < pairs; i++)); do
    order="U T"; ((i % 2)) && order="T U"
    for side in $order; do
      if [[ $side == T ]]; then
        start_gotlscap "$work/$wl.tput.pcapng" "$work/$wl.tput.err"
        e_T=$(run_client "$wl" "$work/$wl.client-$i-T.log") || client_failed
        stop_gotlscap "$work/$wl.tput.err"; read -r _ tlost _ _ _ <<<"$summ"
        rm -f "$work/$wl.tput.pcapng"
        [[ $tlost -eq 0 ]] || { echo "  $wl throughput run $i: gotlscap lost $tlost" >&2; lost=$((lost + tlost)); }
        echo "$e_T" >>"$work/$wl.t"
      else
        e_U=$(run_client "$wl" "$work/$wl.client-$i-U.log") || client_failed
        echo "$e_U" >>"$work/$wl.u"
      fi
    done
    calc "$e_U / $e_T" >>"$work/$wl.r"
  done
  n=$(grep -o 'requests=[0-9]*' "$work/$wl.client-m.log" | cut -d= -f2)
  size=$(sed -n 's/.* sent=\([0-9]*\) received=\([0-9]*\).*/\1 \2/p' "$work/$wl.client-m.log" | awk '{ print $1 + $2 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$n" "$size" "$(median <"$work/$wl.u")" "$(median <"$work/$wl.t")" \
    "$(median <"$work/$wl.r")" >>"$tput"
  [[ $lost -eq 0 ]] || status=3
  if [[ ${ddrop:-1} -eq 0 && ($gn -ne $dn || $common -ne $dn) ]]; then
    echo "  $wl: MISMATCH: dumpcap saw $dn packets, gotlscap wrote $gn, $common identical" >&2
    # The filter runs once per skb on lo egress. An skb over 64 KiB (TCP on lo builds them) is
    # one run for us and two packets for dumpcap's tap (segmented after TC); gotlscap then counts
    # it "not of the targets". Fewer runs than that explains (nothing lost) = our TC hook was gone
    # for part of the run (older builds: removed with the clsact qdisc by another capture on lo).
    (( nottgt > 0 && dn - common == 2 * nottgt )) &&
      echo "  $wl: $nottgt skbs were captured but dropped as not of the targets; dumpcap holds 2 packets for each (GSO skbs over 64 KiB?)" >&2
    (( lost == 0 && fcnt1 - fcnt0 + nottgt < dn )) &&
      echo "  $wl: the TC filter ran $((fcnt1 - fcnt0)) times for dumpcap's $dn packets: gotlscap's TC hook was removed during the run?" >&2
    [[ $status -eq 0 ]] && status=4
  fi
done
echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled

echo
echo "gotlscap pcap, measurement run (one client run per workload, dumpcap capturing side by side)"
awk -F'\t' '
  BEGIN { printf "%-6s | %8s %9s %7s | %4s %6s | %7s %7s %6s | %6s | %7s %7s %7s\n", "load", "packets", "pkt/s", "MB/s",
            "lost", "notTgt", "CPU ms", "us/pkt", "s/GB", "RSS MB", "TC runs", "ns/run", "ns/pkt"
          print "-------------------------------------------------------------------------------------------------------" }
  { el = $2; n = $3 > 0 ? $3 : 1; gb = $4 / 1e9
    printf "%-6s | %8d %9.0f %7.1f | %4d %6d | %7.0f %7.2f %6.2f | %6.1f | %7d %7.0f %7.0f\n", $1, $3, $3 / el, $4 / 1e6 / el,
      $5, $7, 1000 * $9, 1e6 * $9 / n, (gb > 0 ? $9 / gb : 0), $10 / 1024, $12, ($12 > 0 ? $11 / $12 : 0), $11 / n }' "$res"
echo "packets, MB = what the pcapng holds (MB: orig lengths), per second of the client's elapsed time. lost = ring"
echo "buffer full + load faults + lost secrets. notTgt = captured but not written, as \"not of the targets\" (every"
echo "connection here is a target's). CPU = gotlscap utime+stime (/proc/PID/stat, 10 ms ticks) from before the client"
echo "to idle (200 ms hold included). RSS = VmHWM (the packet ring, mapped twice, is most of it). TC = deltas of"
echo "gotlscap_filter's run_time_ns/run_cnt (bpf_stats_enabled): capture_egress, tail-called, runs inside the filter's"
echo "time and counts no run of its own; runs include lo packets the filter rejects; ns/pkt = TC time / packets written."
echo
echo "dumpcap on the same traffic (same filter, -B $dbuf), and agreement of the two files"
awk -F'\t' '
  BEGIN { printf "%-6s | %8s %5s | %7s %7s | %8s %8s %9s %9s\n", "load", "packets", "drops", "CPU ms", "us/pkt", "gotlscap",
            "same", "only ours", "only dump"
          print "-------------------------------------------------------------------------------" }
  { n = $15 > 0 ? $15 : 1
    printf "%-6s | %8d %5s | %7.0f %7.2f | %8d %8d %9d %9d\n", $1, $15, $17, 1000 * $18, 1e6 * $18 / n, $3, $19, $3 - $19, $15 - $19 }' "$res"
echo "same = packets with identical bytes in both files (a multiset; timestamps differ). dumpcap CPU is user space"
echo "only: its in-kernel tap and filter run in the senders' context and are not counted."
echo
echo "Throughput of the traced client (median of $pairs runs each side; ratio = median of per-pair traced/untraced)"
awk -F'\t' '
  BEGIN { printf "%-6s | %8s %9s %8s | %8s %9s %8s | %5s\n", "load", "untr s", "req/s", "MB/s", "traced s", "req/s", "MB/s", "ratio"
          print "---------------------------------------------------------------------" }
  { printf "%-6s | %8.3f %9.0f %8.1f | %8.3f %9.0f %8.1f | %5.2f\n", $1, $4, $2 / $4, $3 / 1e6 / $4, $5, $2 / $5, $3 / 1e6 / $5, $6 }' "$tput"
echo "MB/s counts request + response bodies; traced = under gotlscap pcap alone (no dumpcap); 1.00 = no slowdown."
case $status in
  3) echo "LOST PACKETS: gotlscap's ring buffer overflowed (or secrets were lost); see 'lost' above" >&2 ;;
  4) echo "MISMATCH: gotlscap's pcapng does not hold the packets dumpcap saw; see the second table" >&2 ;;
esac
exit "$status"
