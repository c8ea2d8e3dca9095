#!/usr/bin/env bash
# What capture costs the traced program: paired traced vs untraced copies of the test server.
#   bench/run-capture-bench.sh
# Two copies of $GOTLSCAP_CACHE/testprogs/go1.NN/default/server run side by side at different paths;
# `gotlscap text -e COPY_T` traces only the copy "T" (the client and the other copy "U" stay
# untraced: uprobes belong to a file). The untraced test client then alternates between them
# (U,T then T,U, ...), PAIRS pairs per scenario, and the median of each side and of the per-pair
# ratios are printed. One gotlscap process per scenario (workload x output format), so its
# summary, CPU time (utime+stime from /proc/PID/stat between "ready" and SIGINT) and peak RSS
# (VmHWM) belong to that scenario alone.
# Scenarios GOVER:LOAD:FORMAT[:entry|:step]: go1.27 bulk (150 x 1 MB echo), small (10,000 x 100 B,
# HTTP/1.1 keep-alive) and h2small (the same over HTTP/2), go1.15 (stack ABI) small. A trailing ":entry" runs gotlscap with
# GOTLSCAP_READ_PATH=entry: (*Conn).Read keeps its entry probe (2 hits per Read) even where the
# analysis proved the ret-only path (1 hit), so the default list measures both paths side by side;
# "read path" in the tables says which one ran (from `gotlscap inspect`). A trailing ":step" puts
# every probe back on a single-stepped instruction (GOTLSCAP_ENTRY_PROBE=body GOTLSCAP_READ_EXIT=ret:
# entries after the stack check, Read at its RETs), to measure what emulated probe sites save. Format "count"
# attaches the same probes with a uid filter nobody matches (-u 65534): every hit is trapped and
# counted, nothing is emitted, so its ratio is the price of the traps alone. Format "nats" exports
# the JSON events to a NATS JetStream (`--nats`, nothing written locally) that the script starts
# (`nats-server -js`, file storage in the work directory): compare it with "json" and OUT=DIR
# (a local file) for what the export costs the traced program; "s/GB" is then gotlscap's CPU per
# GB exported, and the nats counters line is printed under the scenario. Format "jsoncap" is json
# with --max-payload 4096: only each call's first 4 KiB is copied (the rest counted), what a
# header-only consumer (gotlscap stat) pays; compare it with "json" under bulk. Its "MB" is the
# payload captured, "uncapt MB" the bytes counted, not copied; "s/GB" is CPU per GB the traced calls
# carried (both), so the formats compare per GB of traffic. Format "stat" runs `gotlscap stat
# --format json` instead of `text` (headers decoded and timed, each call capped at 4 KiB by
# default, one table at the end): compare it with "json" under bulk for what stat saves.
# After each traced run the script waits until gotlscap's CPU time stops growing (it drained the
# ring buffer), so its backlog never runs during an untraced run; "drain s" is the longest wait.
# Env: BUILD_DIR (default build-bench), GOTLSCAP (use this gotlscap binary, no build), PAIRS (5),
#   BULK_N (150) BULK_SIZE (1000000) SMALL_N (10000) SMALL_SIZE (100) CONCURRENCY (1),
#   OUT (where gotlscap writes events; default /dev/null; a directory = one file per scenario
#   there, e.g. OUT=/dev/shm, deleted afterwards), SCENARIOS (default: see `scenarios=` below),
#   KEEP=1 keeps the work directory (gotlscap stderr, client outputs),
#   PIN=1 runs the servers and the client on CPU 0 and gotlscap and nats-server on CPU 1 (taskset):
#   on a node the broker runs elsewhere, so this is how "nats" vs a local file is compared without
#   the broker's own CPU landing on the traced program's core (both formats are pinned alike).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cache=${GOTLSCAP_CACHE:-/var/cache/gotlscap}
build=${BUILD_DIR:-$root/build-bench}
pairs=${PAIRS:-5}
bulk_n=${BULK_N:-150} bulk_size=${BULK_SIZE:-1000000}
small_n=${SMALL_N:-10000} small_size=${SMALL_SIZE:-100}
conc=${CONCURRENCY:-1}
out=${OUT:-/dev/null}
scenarios=${SCENARIOS:-"1.27:bulk:count:step 1.27:bulk:count 1.27:bulk:json:step 1.27:bulk:json 1.27:small:count:step 1.27:small:count 1.27:small:json:step 1.27:small:json 1.27:small:text 1.27:h2small:json 1.15:small:count:step 1.15:small:count 1.15:small:json"}

[[ $(id -u) -eq 0 ]] || { echo "run-capture-bench: needs root (eBPF uprobes)" >&2; exit 1; }
if [[ -n ${GOTLSCAP:-} ]]; then
  gotlscap=$GOTLSCAP
else
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGOTLSCAP_BENCH=ON -DGOTLSCAP_TESTS=OFF \
    -DGOTLSCAP_FUZZ=OFF >/dev/null
  cmake --build "$build" --target gotlscap -j"$(nproc)" >/dev/null
  gotlscap=$build/gotlscap
fi
[[ -x $gotlscap ]] || { echo "run-capture-bench: no gotlscap at $gotlscap" >&2; exit 1; }

work=$(mktemp -d /tmp/gotlscap-capture-bench.XXXXXX)
pids=()  # every process this script started and has not reaped yet
nats_pid=""
cleanup() {
  [[ -n $nats_pid ]] && { kill "$nats_pid" 2>/dev/null || true; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${KEEP:-} ]] && echo "work directory kept: $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin_app=() pin_tool=()
[[ ${PIN:-} == 1 ]] && { pin_app=(taskset -c 0); pin_tool=(taskset -c 1); }

tck=$(getconf CLK_TCK)
# utime+stime of a process in seconds
cpu_of() { awk -v t="$tck" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
hwm_of() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }  # kB
vcsw_of() { awk '/^voluntary_ctxt_switches:/ { print $2 }' "/proc/$1/status"; }  # sleeps = wakeups
now_s() { awk '{ print $1 }' /proc/uptime; }
# wait_idle PID: until its CPU time stops growing for 0.2 s (max 60 s); prints the seconds waited
wait_idle() {
  local t0 c0 c1 still=0
  t0=$(now_s); c0=$(cpu_of "$1")
  for _ in $(seq 600); do
    sleep 0.1; c1=$(cpu_of "$1")
    if [[ $c1 == "$c0" ]]; then ((++still >= 2)) && break; else still=0; fi
    c0=$c1
  done
  awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f\n", b - a - 0.2 }'
}
# Go's Duration.String (1m2.5s, 1.351s, 851.2ms, 900µs) -> seconds
dur_s() {
  awk -v d="$1" 'BEGIN { s = 0
    if (match(d, /^[0-9.]+m[^s]/) || match(d, /^[0-9.]+m[0-9]/)) { split(d, a, "m"); s = a[1] * 60; d = substr(d, index(d, "m") + 1) }
    if (d ~ /ms$/) s += d / 1000; else if (d ~ /µs$|us$/) s += d / 1e6; else if (d ~ /ns$/) s += d / 1e9; else if (d ~ /s$/) s += d + 0
    printf "%.6f\n", s }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# start_server GOVER LABEL -> sets srv_addr; the copy lives at $work/go$GOVER/server-$LABEL
start_server() {
  local dir=$work/go$1 bin=$work/go$1/server-$2 log=$work/go$1/server-$2.log
  mkdir -p "$dir"
  [[ -f $bin ]] || cp "$cache/testprogs/go$1/default/server" "$bin"
  "${pin_app[@]}" "$bin" -addr 127.0.0.1:0 >"$log" 2>&1 &
  pids+=($!)
  eval "srv_pid_$2=$!"
  for _ in $(seq 100); do grep -q '^listening ' "$log" && break; sleep 0.05; done
  srv_addr=$(awk '/^listening /{ print $2; exit }' "$log")
  [[ -n $srv_addr ]] || { echo "run-capture-bench: server go$1 did not start: $(cat "$log")" >&2; exit 1; }
}

# run_client GOVER ADDR N SIZE LOG [CLIENT FLAGS] -> prints elapsed seconds; fails on a client error
run_client() {
  local line
  "${pin_app[@]}" "$cache/testprogs/go$1/default/client" -url "https://$2" -n "$3" -size "$4" -concurrency "$conc" "${@:6}" \
    -wait-ready 10 >"$5" 2>&1 || { echo "run-capture-bench: client failed: $(cat "$5")" >&2; return 1; }
  line=$(grep '^client: ok ' "$5")
  dur_s "$(sed -n 's/.* elapsed=\([^ ]*\).*/\1/p' <<<"$line")"
}

# A JetStream for the "nats" scenarios, on a free loopback port.
nats_url=""
if [[ " $scenarios " == *:nats* ]]; then
  command -v nats-server >/dev/null || { echo "run-capture-bench: nats scenarios need nats-server" >&2; exit 1; }
  nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${pin_tool[@]}" nats-server -js -a 127.0.0.1 -p "$nport" -sd "$work/jetstream" >"$work/nats-server.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 100); do grep -q "Server is ready" "$work/nats-server.log" && break; sleep 0.05; done
  grep -q "Server is ready" "$work/nats-server.log" || { echo "run-capture-bench: nats-server: $(cat "$work/nats-server.log")" >&2; exit 1; }
  nats_url=nats://127.0.0.1:$nport
fi

echo "host: $(nproc) CPUs, $(uname -r), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
echo "gotlscap: $gotlscap; events to ${out}; $pairs pairs per scenario, client concurrency $conc"
[[ ${PIN:-} == 1 ]] && echo "pinned: servers and client on CPU 0; gotlscap and nats-server on CPU 1"
echo "traced: the SERVER only (copy T of the server binary; copy U and the client are untraced)"
echo "workloads: bulk = $bulk_n x $bulk_size B POST /echo; small = $small_n x $small_size B POST /echo;"
echo "  HTTP/1.1 keep-alive, TLS 1.3, one client process per run (its own elapsed time, handshake included)"
echo

results=$work/results.tsv
: >"$results"
started_go=""
for sc in $scenarios; do
  IFS=: read -r gv wl fmt rpath <<<"$sc"
  genv=()
  [[ $rpath == entry ]] && genv=(GOTLSCAP_READ_PATH=entry)
  # step: every probe where it sat before probes moved to emulated instructions (entries after the
  # stack check, Read at its RETs): each hit single-stepped by the kernel.
  [[ $rpath == step ]] && genv=(GOTLSCAP_READ_EXIT=ret GOTLSCAP_ENTRY_PROBE=body)
  case $wl in
    bulk) n=$bulk_n size=$bulk_size ;;
    small) n=$small_n size=$small_size ;;
    h2small) n=$small_n size=$small_size ;;
    *) echo "run-capture-bench: bad scenario $sc" >&2; exit 2 ;;
  esac
  cflags=()
  [[ $wl == h2small ]] && cflags=(-h2)
  [[ -x $cache/testprogs/go$gv/default/server ]] || { echo "skip $sc: no go$gv test programs" >&2; continue; }
  if [[ $started_go != "$gv" ]]; then
    # Servers of the previous Go version are no longer needed.
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
    start_server "$gv" U; addr_U=$srv_addr
    start_server "$gv" T; addr_T=$srv_addr
    started_go=$gv
    gover=$("$gotlscap" inspect --json "$work/go$gv/server-T" | sed -n 's/.*"go_version": *"\([^"]*\)".*/\1/p')
    echo "go$gv Read path: $("$gotlscap" inspect "$work/go$gv/server-T" | sed -n 's/^ *read path *//p')"
    # warm-up, not counted: page cache, server heaps
    run_client "$gv" "$addr_U" 200 "$small_size" "$work/warm.log" >/dev/null
    run_client "$gv" "$addr_T" 200 "$small_size" "$work/warm.log" >/dev/null
  fi
  tag=go$gv-$wl-$fmt${rpath:+-$rpath}
  rp=$(env "${genv[@]}" "$gotlscap" inspect --json "$work/go$gv/server-T" | sed -n 's/.*"read_path": *"\([^"]*\)".*/\1/p')
  [[ $rpath == step ]] && rp=step
  dest=$out
  [[ -d $out ]] && dest=$out/gotlscap-bench-$tag.out
  gerr=$work/$tag.gotlscap.err
  gargs=(--format "$fmt" ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"})
  [[ $fmt == count ]] && gargs=(--format json -u 65534 ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"})
  [[ $fmt == jsoncap ]] && gargs=(--format json --max-payload 4096 ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"})
  sub=text
  [[ $fmt == stat ]] && { sub=stat; gargs=(--format json ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"}); }
  # nats: the events go to the JetStream only (a stream per scenario, created by gotlscap).
  [[ $fmt == nats ]] && gargs=(--format json --nats "$nats_url" --nats-subject "bench_$(tr -c 'a-zA-Z0-9\n' _ <<<"$tag")" \
    --nats-stream "BENCH_$(tr -c 'a-zA-Z0-9\n' _ <<<"$tag")" --nats-drain-timeout 60 ${RINGBUF_MB:+--ringbuf-mb "$RINGBUF_MB"})
  oargs=(-o "$dest"); [[ $fmt == nats ]] && oargs=()
  env "${genv[@]}" "${pin_tool[@]}" "$gotlscap" "$sub" "${gargs[@]}" "${oargs[@]}" -e "$work/go$gv/server-T" 2>"$gerr" >/dev/null &
  gpid=$!
  pids+=("$gpid")
  for _ in $(seq 600); do grep -q '^ready' "$gerr" && break; kill -0 "$gpid" 2>/dev/null || break; sleep 0.05; done
  grep -q '^ready' "$gerr" || { echo "run-capture-bench: gotlscap did not attach: $(cat "$gerr")" >&2; exit 1; }
  cpu0=$(cpu_of "$gpid"); vcsw0=$(vcsw_of "$gpid"); drain_max=0
  printf '%-32s' "$tag:"
  : >"$work/$tag.u"; : >"$work/$tag.t"; : >"$work/$tag.r"; : >"$work/$tag.su"; : >"$work/$tag.st"
  for ((i = 0; i < pairs; i++)); do
    order="U T"; ((i % 2)) && order="T U"
    for side in $order; do
      addr=addr_$side spid=srv_pid_$side
      s0=$(cpu_of "${!spid}")
      e=$(run_client "$gv" "${!addr}" "$n" "$size" "$work/$tag.client-$i-$side.log" "${cflags[@]}")
      s1=$(cpu_of "${!spid}")
      echo "$e" >>"$work/$tag.$(tr UT ut <<<"$side")"
      awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }' >>"$work/$tag.s$(tr UT ut <<<"$side")"
      eval "e_$side=$e"
      if [[ $side == T ]]; then
        d=$(wait_idle "$gpid")
        drain_max=$(awk -v a="$drain_max" -v b="$d" 'BEGIN { print (b > a ? b : a) }')
      fi
    done
    # ratio traced/untraced throughput = untraced time / traced time
    awk -v u="$e_U" -v t="$e_T" 'BEGIN { printf "%.4f\n", u / t }' >>"$work/$tag.r"
    printf ' %s/%s' "$(printf '%.2f' "$e_U")" "$(printf '%.2f' "$e_T")"
  done
  echo "  (s, untraced/traced)"
  cpu1=$(cpu_of "$gpid"); vcsw1=$(vcsw_of "$gpid")
  hwm=$(hwm_of "$gpid")
  kill -INT "$gpid"
  wait "$gpid" || { echo "run-capture-bench: gotlscap exited with $?: $(cat "$gerr")" >&2; exit 1; }
  keep=(); for p in "${pids[@]}"; do [[ $p == "$gpid" ]] || keep+=("$p"); done; pids=("${keep[@]}")
  [[ -d $out ]] && rm -f "$dest"
  summ=$(grep '^summary:' "$gerr")
  read -r ev by lost trunc hits < <(sed -E 's/^summary: ([0-9]+) events, ([0-9]+) bytes, ([0-9]+) lost, ([0-9]+) truncated .*probe hits ([0-9]+)[,)].*/\1 \2 \3 \4 \5/' <<<"$summ")
  unc=$(sed -nE 's/.*[(,] uncaptured bytes ([0-9]+)[,)].*/\1/p' <<<"$summ"); unc=${unc:-0}
  tsum=$(awk '{ s += $1 } END { print s }' "$work/$tag.t")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$gover" "$wl" "$fmt" "$n" "$size" \
    "$(median <"$work/$tag.u")" "$(median <"$work/$tag.t")" "$(median <"$work/$tag.r")" \
    "$ev" "$by" "$lost" "$trunc" "$hits" "$tsum" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" "$hwm" \
    "$(median <"$work/$tag.su")" "$(median <"$work/$tag.st")" "$((vcsw1 - vcsw0))" "$drain_max" "$rp" \
    "$(sort -g "$work/$tag.r" | head -1)" "$(sort -g "$work/$tag.r" | tail -1)" "$unc" >>"$results"
  echo "  $summ"
  grep '^nats:.*published' "$gerr" | sed 's/^/  /' || true
done

echo
echo "Throughput of the traced program (median of $pairs runs each side; ratio = median of per-pair traced/untraced; 1.00 = no slowdown)"
awk -F'\t' -v pairs="$pairs" '
  BEGIN { printf "%-9s %-7s %-7s %-9s | %9s %8s | %9s %8s | %5s %9s | %14s %11s\n", "go", "load", "fmt", "read path", "untr req/s", "MB/s", "traced req/s", "MB/s", "ratio", "pairs", "srv CPU ms/run U/T", "+srv us/req"
          print "-------------------------------------------------------------------------------------------------------------------------------------" }
  { mb = 2 * $4 * $5 / 1e6  # request + response bodies
    printf "%-9s %-7s %-7s %-9s | %10.0f %8.1f | %12.0f %8.1f | %5.2f %4.2f-%4.2f | %7.0f / %-7.0f %11.1f\n", $1, $2, $3, $21, $4 / $6, mb / $6, $4 / $7, mb / $7, $8, $22, $23, 1000 * $17, 1000 * $18, 1e6 * ($18 - $17) / $4 }' "$results"
echo "MB/s counts request + response bodies; pairs = lowest-highest per-pair ratio (the spread between runs here);"
echo "srv CPU = the server copy's utime+stime during one run (median); +srv us/req = the traced copy's extra CPU per"
echo "request (user + kernel: traps and BPF programs run in its threads), the least noisy figure of the cost."
echo
echo "gotlscap itself (one process per scenario, over its $pairs traced runs)"
awk -F'\t' -v pairs="$pairs" '
  BEGIN { printf "%-9s %-7s %-7s %-9s | %8s | %8s %7s | %8s %7s %9s | %5s %5s | %7s %6s %8s %7s | %9s | %7s | %6s\n", "go", "load", "fmt", "read path", "hits/req", "events", "ev/req", "MB", "MB/s", "uncapt MB", "lost", "trunc", "CPU s", "%wall", "us/event", "s/GB", "wakeup/ev", "drain s", "RSS MB"
          print "--------------------------------------------------------------------------------------------------------------------------------------------------" }
  { req = pairs * $4; ev = $9 > 0 ? $9 : 1; seen = $10 + $24
    printf "%-9s %-7s %-7s %-9s | %8.2f | %8d %7.2f | %8.1f %7.1f %9.1f | %5d %5d | %7.2f %5.0f%% %8.1f %7s | %9.2f | %7.1f | %6.1f\n", $1, $2, $3, $21, $13 / req, $9, $9 / req, $10 / 1e6, $10 / 1e6 / $14, $24 / 1e6, $11, $12, $15, 100 * $15 / $14, ($9 > 0 ? 1e6 * $15 / ev : 0), (seen > 1e6 ? sprintf("%.2f", $15 / (seen / 1e9)) : "-"), ($9 > 0 ? $19 / ev : 0), $20, $16 / 1024 }' "$results"
echo "hits/req = probe hits / requests (traced server only; includes the client's wait-ready handshakes); MB = payload"
echo "bytes delivered; uncapt MB = bytes of truncated calls counted, not copied (jsoncap: beyond --max-payload 4096);"
echo "MB/s = MB / traced wall time; CPU s = gotlscap utime+stime between ready and SIGINT, %wall"
echo "of the traced runs' wall time (backlog drained after a run included); wakeup/ev = gotlscap's voluntary context"
echo "switches per event; drain s = longest wait after a traced run until gotlscap was idle; RSS = VmHWM (peak,"
echo "includes the ring buffer's pages, mapped once); s/GB = CPU s per GB of payload the calls carried (MB + uncapt MB). Format count: probes"
echo "only (-u 65534), nothing emitted. Read path: ret-only = 1 hit per Read (proven), entry+ret = 2 (\":entry\")."
lost_total=$(awk -F'\t' '{ s += $11 } END { print s + 0 }' "$results")
[[ $lost_total -eq 0 ]] || { echo "LOST EVENTS: $lost_total chunks lost in total" >&2; exit 3; }
