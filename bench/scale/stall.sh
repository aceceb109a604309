#!/usr/bin/env bash
# Recovery of many sessions after their server-side daemon stalled (a VM pause, a CPU-starved
# host): N sessions on 127.0.0.1, `roam server` (or `roam proxy`) is stopped with SIGSTOP for
# PAUSE seconds — longer than 3 heartbeats, so every client-side session declares its path dead at
# the same moment — then continued. Not a test (never run by ctest).
#
#   bench/scale/stall.sh [N [PAUSE_S]]            defaults 2000 and 4
#   env: PATHS=migrate|msocks (default msocks), ROAM_BENCH_BUILD (default build-scale), KEEP=1
#
# Every session carries a record per second from the service (roam_loadgen --kind ticks). Prints
# the time from SIGCONT until every session delivered a record sent after it (median / p90 / max),
# the peak descriptor count of the client-side daemon and of the server-side one while they
# recover (each reconnection attempt is a descriptor), and how many unfinished connections the
# server side evicted (its cap is 4,096).
set -u
source "$(dirname "$0")/lib.sh"
N=${1:-2000}
PAUSE=${2:-4}
PATHS=${PATHS:-msocks}
bl_init stall
ulimit -n "$(ulimit -Hn)"
wait_for() { bl_wait_for "$@" || exit 1; }
port_of() { grep -so 'listening on 127\.0\.0\.1:[0-9]*' "$WORK/$1.log" | head -1 | sed 's/.*://'; }

"$LOADGEN" serve --listen 127.0.0.1:0 --interval 1000 2>"$WORK/service.log" &
PIDS+=($!)
wait_for "[ -n \"\$(port_of service)\" ]" 10 "the service"
if [ "$PATHS" = msocks ]; then
  "$ROAM" proxy --listen 127.0.0.1:0 --allow-dest 127.0.0.0/8 2>"$WORK/server.log" &
  PIDS+=($!); SRV=$!
  wait_for "[ -n \"\$(port_of server)\" ]" 10 "roam proxy"
  "$ROAM" socks --proxy 127.0.0.1:$(port_of server) --listen 127.0.0.1:0 2>"$WORK/client.log" &
  PIDS+=($!); CLI=$!
  wait_for "[ -n \"\$(port_of client)\" ]" 10 "roam socks"
  TARGET=(--socks 127.0.0.1:$(port_of client) --to 127.0.0.1:$(port_of service))
else
  "$ROAM" server --listen 127.0.0.1:0 --forward 127.0.0.1:$(port_of service) 2>"$WORK/server.log" &
  PIDS+=($!); SRV=$!
  wait_for "[ -n \"\$(port_of server)\" ]" 10 "roam server"
  "$ROAM" connect 127.0.0.1:$(port_of server) --local 127.0.0.1:0 2>"$WORK/client.log" &
  PIDS+=($!); CLI=$!
  wait_for "[ -n \"\$(port_of client)\" ]" 10 "roam connect"
  TARGET=(--to 127.0.0.1:$(port_of client))
fi
mkfifo "$WORK/ctl"
"$LOADGEN" connect "${TARGET[@]}" --kind ticks --sessions "$N" --control "$WORK/ctl" >"$WORK/loadgen.out" 2>&1 &
PIDS+=($!)
exec 3>"$WORK/ctl"
echo "event setup $(date +%s%N)" >&3
wait_for "grep -q '^event setup' '$WORK/loadgen.out'" 60 "every session to deliver"
echo "stall: $N sessions ($PATHS) up: $(grep '^event setup' "$WORK/loadgen.out" | sed 's/;.*//; s/^[^:]*: //')"
kill -STOP $SRV
sleep "$PAUSE"   # the stall itself
kill -CONT $SRV
echo "event resume $(date +%s%N)" >&3
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
peak_c=0 peak_s=0
deadline=$((SECONDS + 60))
until grep -q '^event resume' "$WORK/loadgen.out" || [ $SECONDS -ge $deadline ]; do
  c=$(fds $CLI) s=$(fds $SRV)
  [ "$c" -gt $peak_c ] && peak_c=$c
  [ "$s" -gt $peak_s ] && peak_s=$s
  sleep 0.2
done
grep -q '^event resume' "$WORK/loadgen.out" || { echo report >&3; wait_for "grep -q '^event resume' '$WORK/loadgen.out'" 5 "a report"; }
echo "after a ${PAUSE}s stall of the server side: $(grep '^event resume' "$WORK/loadgen.out" | sed 's/^[^:]*: //')"
echo "  peak descriptors while recovering: client side $peak_c, server side $peak_s (idle: ~2 per session each)"
echo "  unfinished connections evicted by the server side: $(grep -c 'evicting the oldest' "$WORK/server.log")"
echo "  client-side paths declared dead: $(grep -c 'path lost' "$WORK/client.log")"
