#!/usr/bin/env bash
# New sessions per second per core: server-side CPU time per session set-up, handshake included,
# beside a raw-TCP baseline and the cost of one X25519, all measured in this run on 127.0.0.1.
# Not a test (never run by ctest).
#
#   bench/scale/setup_rate.sh [SESSIONS_PER_RUN [RUNS]]      defaults 5000 and 5
#   env: CONCURRENCY (set-ups in flight, default 32), ROAM_BENCH_BUILD (default build-scale)
#
# Each set-up is one connection from roam_loadgen (--kind echo): it sends a 24-byte hello, the
# service answers one byte, the load generator closes. Interleaved, RUNS times:
#   raw      loadgen → service directly: the service's CPU per connection (accept, read, write,
#            close: what any TCP server pays; the baseline)
#   migrate  loadgen → roam connect --local → roam server → service: roam server's CPU per
#            session (accept, handshake with X25519, connect to the service, relay, close)
#   msocks   loadgen → roam socks → roam proxy → service: roam proxy's CPU per session (the same
#            plus the SOCKS request inside the session)
# CPU = utime + stime of the measured process from /proc/PID/stat (kernel work on its behalf
# included) over the run, divided by the set-ups. Target (SPEC): ≤ 200 µs per session, i.e.
# ≥ 5,000 new sessions per second per core. The load generator and the client-side daemon share
# the machine's two cores, so wall-clock set-ups per second are lower than the per-core figure.
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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

start service "$LOADGEN" serve --listen 127.0.0.1:0; SVC=$PID; SVC_PORT=$PORT
start server "$ROAM" server --listen 127.0.0.1:0 --forward 127.0.0.1:$SVC_PORT; SRV=$PID; SRV_PORT=$PORT
start connect "$ROAM" connect 127.0.0.1:$SRV_PORT --local 127.0.0.1:0; CLI_PORT=$PORT
start proxy "$ROAM" proxy --listen 127.0.0.1:0 --allow-dest 127.0.0.0/8; PRX=$PID; PRX_PORT=$PORT
start socks "$ROAM" socks --proxy 127.0.0.1:$PRX_PORT --listen 127.0.0.1:0; AGT_PORT=$PORT

# run VARIANT: one run of M set-ups; prints "µs-per-set-up set-ups-per-second".
run() {
  local measured args
  case $1 in
    raw) measured=$SVC; args=(--to 127.0.0.1:$SVC_PORT) ;;
    migrate) measured=$SRV; args=(--to 127.0.0.1:$CLI_PORT) ;;
    msocks) measured=$PRX; args=(--socks 127.0.0.1:$AGT_PORT --to 127.0.0.1:$SVC_PORT) ;;
  esac
  local c0 c1 out
  c0=$(cpu_ticks $measured)
  out=$("$LOADGEN" connect "${args[@]}" --kind echo --sessions "$M" --concurrency "$CONC") ||
    { echo "setup_rate: $1 run failed: $out" >&2; exit 1; }
  c1=$(cpu_ticks $measured)
  local rate; rate=$(echo "$out" | sed -n 's/.*: \([0-9]*\) per second/\1/p')
  echo "$(( (c1 - c0) * 1000000 / TCK / M )) $rate"
}
echo "setup_rate: $M set-ups per run, $CONC in flight, $RUNS interleaved runs of raw / migrate / msocks"
"$LOADGEN" x25519 20000 | sed 's/^/  /'
for v in raw migrate msocks; do run $v >/dev/null; done   # warm-up: caches, rings, allocator
for r in $(seq 1 "$RUNS"); do
  line="  run $r:"
  for v in raw migrate msocks; do
    read -r us rate < <(run $v)
    echo "$v $us $rate" >> "$WORK/results"
    line="$line $v ${us} µs (${rate}/s)"
  done
  echo "$line"
done
echo "median (min–max) CPU of the accepting process per set-up, and the implied set-ups per second per core:"
for v in raw migrate msocks; do
  awk -v v=$v '$1 == v {print $2}' "$WORK/results" | sort -n | awk -v v=$v '{x[NR] = $1} END {
    m = (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
    printf "  %-8s %6.0f µs (%d–%d)  → %6.0f per second per core%s\n", v, m, x[1], x[NR], 1e6 / (m > 0 ? m : 1),
      (v == "raw") ? "   (baseline: TCP accept + 1 byte + close)" : (m <= 200 ? "   (target ≤ 200 µs: met)" : "   (target ≤ 200 µs: NOT met)")
  }'
done
