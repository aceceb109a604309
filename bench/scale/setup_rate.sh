#!/usr/bin/env bash
# New sessions per second per core: server-side CPU time per session set-up, handshake included,
# beside a raw-TCP baseline and the cost of one X25519, all measured in this run on 127.0.0.1.
# Not a test (never run by ctest).
#
#   bench/scale/setup_rate.sh [SESSIONS_PER_RUN [RUNS]]      defaults 5000 and 5
#   env: CONCURRENCY (set-ups in flight, default 32), ROAM_BENCH_BUILD (default build-scale),
#        LINGER_WAIT (seconds, default 62; 0 skips the all-in figure, see below),
#        SYSCALLS=1 (afterwards, one more run of each daemon under `strace -c -f`: the system
#        calls it makes per session, by name; strace slows it, so no CPU figure from that run)
#
# Each set-up is one connection from roam_loadgen (--kind echo): it sends a 24-byte hello, the
# service answers one byte, the load generator closes. Interleaved, RUNS times:
#   raw      loadgen → service directly: the service's CPU per connection (accept, read, write,
#            close: what any TCP server pays; the baseline)
#   migrate  loadgen → roam connect --local → roam server → service: roam server's CPU per
#            session (accept, handshake with X25519, connect to the service, relay, close)
#   msocks   loadgen → roam socks → roam proxy → service: roam proxy's CPU per session (the same
#            plus the SOCKS request inside the session)
# CPU = the measured process's own CPU time over the run (user + system, kernel work on its behalf
# included: what getrusage(RUSAGE_SELF) reports), read from /proc/PID/task/*/schedstat in
# nanoseconds (the clock-tick counters of /proc/PID/stat are 10 ms coarse: ±20% on the raw
# baseline), divided by the set-ups. Printed per run and as median (min–max) with the ratio to raw
# (the median of each run's ratio to its own interleaved raw run). Target (SPEC): ≤ 200 µs per
# session, i.e. ≥ 5,000 new sessions per second per core. The load generator and the client-side
# daemon share the machine's cores, so wall-clock set-ups per second are lower than per core.
#
# A session that ended cleanly stays on the server side for its linger (min(60 s, wait):
# docs/PROTOCOL.md) to answer a late migrate request; its descriptors are closed at once, but its
# timer, teardown and frees run 60 s later, mostly after the run that created it. So after the
# runs the script waits LINGER_WAIT seconds, checks with `roam status` that no session is left,
# and prints the all-in figure: each daemon's whole CPU from before the warm-up to then, divided
# by every session it served. That is the number the target is judged on.
set -u
source "$(dirname "$0")/lib.sh"
M=${1:-5000}
RUNS=${2:-5}
CONC=${CONCURRENCY:-32}
bl_init setup_rate
ulimit -n "$(ulimit -Hn)"

# start NAME CMD...: runs CMD with stderr to $WORK/NAME.log; sets PID and PORT (from "listening on").
start() {
  local name=$1; shift
  "$@" 2>"$WORK/$name.log" &
  PID=$!; PIDS+=($PID)
  local deadline=$((SECONDS + 10))
  until PORT=$(grep -so 'listening on 127\.0\.0\.1:[0-9]*' "$WORK/$name.log" | head -1 | sed 's/.*://') && [ -n "$PORT" ]; do
    [ $SECONDS -lt $deadline ] || { echo "setup_rate: $name did not start: $(cat "$WORK/$name.log")"; exit 1; }
    sleep 0.05
  done
}
# cpu_ns PID: CPU time of every live thread of PID so far, in nanoseconds (sum_exec_runtime, the
# total that getrusage splits into user and system time). %.0f, not %d: mawk's %d stops at 2^31.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f\n", t}'; }

start service "$LOADGEN" serve --listen 127.0.0.1:0; SVC=$PID; SVC_PORT=$PORT
mkdir -m 700 "$WORK/ctl"   # control sockets of the measured daemons, for `roam status`
start server "$ROAM" server --listen 127.0.0.1:0 --forward 127.0.0.1:$SVC_PORT --control-dir "$WORK/ctl"
SRV=$PID; SRV_PORT=$PORT
start connect "$ROAM" connect 127.0.0.1:$SRV_PORT --local 127.0.0.1:0; CLI_PORT=$PORT
start proxy "$ROAM" proxy --listen 127.0.0.1:0 --allow-dest 127.0.0.0/8 --control-dir "$WORK/ctl"
PRX=$PID; PRX_PORT=$PORT
start socks "$ROAM" socks --proxy 127.0.0.1:$PRX_PORT --listen 127.0.0.1:0; AGT_PORT=$PORT

# args_of VARIANT / measured_of VARIANT: the load generator's arguments and the measured PID.
args_of() {
  case $1 in
    raw) echo --to 127.0.0.1:$SVC_PORT ;;
    migrate) echo --to 127.0.0.1:$CLI_PORT ;;
    msocks) echo --socks 127.0.0.1:$AGT_PORT --to 127.0.0.1:$SVC_PORT ;;
  esac
}
measured_of() { case $1 in raw) echo $SVC ;; migrate) echo $SRV ;; msocks) echo $PRX ;; esac; }
# churn VARIANT N: N set-ups through VARIANT; prints the load generator's set-ups per second.
churn() {
  local out
  # shellcheck disable=SC2046
  out=$("$LOADGEN" connect $(args_of "$1") --kind echo --sessions "$2" --concurrency "$CONC") ||
    { echo "setup_rate: $1 run failed: $out" >&2; exit 1; }
  echo "$out" | sed -n 's/.*: \([0-9]*\) per second/\1/p'
}
# run VARIANT: one run of M set-ups; prints "µs-per-set-up set-ups-per-second".
run() {
  local measured c0 c1 rate
  measured=$(measured_of "$1")
  c0=$(cpu_ns "$measured")
  rate=$(churn "$1" "$M")
  c1=$(cpu_ns "$measured")
  echo "$(awk -v d=$((c1 - c0)) -v m="$M" 'BEGIN {printf "%.1f", d / 1000 / m}') $rate"
}
echo "setup_rate: $M set-ups per run, $CONC in flight, $RUNS interleaved runs of raw / migrate / msocks"
"$LOADGEN" x25519 20000 | sed 's/^/  /'
all0_migrate=$(cpu_ns $SRV); all0_msocks=$(cpu_ns $PRX)
for v in raw migrate msocks; do run $v >/dev/null; done   # warm-up: caches, rings, allocator
for r in $(seq 1 "$RUNS"); do
  line="  run $r:"
  for v in raw migrate msocks; do
    read -r us rate < <(run $v)
    [ "$v" = raw ] && raw_us=$us
    ratio=$(awk -v a="$us" -v b="$raw_us" 'BEGIN {printf "%.1f", (b > 0) ? a / b : 0}')
    echo "$v $us $ratio $rate" >> "$WORK/results"
    if [ "$v" = raw ]; then line="$line raw ${us} µs (${rate}/s)"; else line="$line, $v ${us} µs = ${ratio}× raw (${rate}/s)"; fi
  done
  echo "$line"
done
echo "CPU of the accepting process per set-up: median (min–max) over $RUNS runs, × raw (median of the"
echo "per-run ratios), and the set-ups per second per core it implies:"
for v in raw migrate msocks; do
  awk -v v=$v '$1 == v {print $2, $3}' "$WORK/results" | awk -v v=$v '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { us[NR] = $1; r[NR] = $2; lo = (NR == 1 || $1 < lo) ? $1 : lo; hi = (NR == 1 || $1 > hi) ? $1 : hi }
    END {
      m = median(us, NR); q = median(r, NR)
      name = "roam proxy"; if (v == "raw") name = "raw TCP"; if (v == "migrate") name = "roam server"
      note = "   (target ≤ 200 µs: NOT met)"; if (m <= 200) note = "   (target ≤ 200 µs: met)"
      if (v == "raw") note = "   (baseline: accept, 24 bytes in, 1 out, close)"
      printf "  %-12s %6.1f µs (%.1f–%.1f)  %5.1f× raw  → %6.0f per second per core%s\n",
        name, m, lo, hi, q, 1e6 / ((m > 0) ? m : 1), note
    }'
done

# All-in: once the last session's linger is over, everything each daemon spent, per session.
LINGER_WAIT=${LINGER_WAIT:-62}
if [ "$LINGER_WAIT" -gt 0 ]; then
  echo "all-in CPU per session (warm-up + $RUNS runs = $((M * (RUNS + 1))) sessions per daemon, set-up and the"
  echo "teardown at the end of each session's 60 s linger; waited $LINGER_WAIT s for the last ones):"
  sleep "$LINGER_WAIT"   # the linger is a fixed protocol period: nothing to poll that costs nothing
  left=$("$ROAM" status --json --control-dir "$WORK/ctl" 2>/dev/null | grep -c '"role"')
  for v in migrate msocks; do
    c=$(cpu_ns "$(measured_of $v)"); c0=$([ $v = migrate ] && echo "$all0_migrate" || echo "$all0_msocks")
    awk -v d=$((c - c0)) -v n=$((M * (RUNS + 1))) -v v=$v 'BEGIN {
      us = d / 1000 / n; name = (v == "migrate") ? "roam server" : "roam proxy"
      note = (us <= 200) ? "(target ≤ 200 µs: met)" : "(target ≤ 200 µs: NOT met)"
      printf "  %-12s %6.1f µs  → %6.0f per second per core   %s\n", name, us, 1e6 / us, note }'
  done
  [ "$left" -eq 0 ] || echo "  ($left sessions still held after the wait: the all-in figure misses their teardown)"
fi

# SYSCALLS=1: one more run of each roam daemon under strace, counting its system calls by name.
if [ -n "${SYSCALLS:-}" ]; then
  command -v strace >/dev/null || { echo "setup_rate: SYSCALLS=1 needs strace"; exit 1; }
  for v in migrate msocks; do
    n=$((M < 2000 ? M : 2000))
    strace -c -f -p "$(measured_of $v)" -o "$WORK/strace-$v" 2>/dev/null &
    tracer=$!
    sleep 1   # strace attaches asynchronously; nothing to wait on but its own start
    churn $v $n >/dev/null
    kill -INT $tracer && wait $tracer
    echo "system calls of $( [ $v = migrate ] && echo roam server || echo roam proxy) per session ($n set-ups under strace -c -f):"
    # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    awk -v n=$n '(NF == 5 || NF == 6) && $4 ~ /^[0-9]+$/ && $NF != "total" {
        printf "%s %.2f\n", $NF, $4 / n; total += $4 / n }
      END { printf "TOTAL %.1f\n", total }' "$WORK/strace-$v" | sort -k2 -nr |
      awk '{printf "%s%s %s", (NR == 1 ? "  " : ", "), $1, $2} END {print ""}'
  done
fi
