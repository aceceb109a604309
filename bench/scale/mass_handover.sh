#!/usr/bin/env bash
# 1,000 sessions migrating at once (a whole access point failing), in the network-namespace test
# bed (scripts/testbed.sh). Not a test: run it by hand, as root.
#
#   bench/scale/mass_handover.sh [SESSIONS [ROUNDS]]        defaults 1000 and 3
#   env: PATHS=migrate|msocks (default migrate: roam connect --local → roam server; msocks:
#        roam socks → roam proxy), INTERVAL (ms between records per session, default 50),
#        GAP (s between Wi-Fi down and cellular up in BBM, default 0.1), HB (heartbeat, default
#        roam's 1s), BOUND (s an event may take before it counts as failed, default 15),
#        ROAM_BENCH_BUILD (default build-scale), KEEP=1 (keep logs).
#
# SESSIONS connections on the mobile host, all in one roam_loadgen process, each through its own
# roam session from ONE `roam connect` (or `roam socks`) process on the mobile host's Wi-Fi. The
# service on the server host sends every session a 16-byte record (sequence number, send time)
# every INTERVAL ms; the load generator checks every session's sequence for holes, duplicates and
# reordering. Each round:
#   bbm        Wi-Fi's address and route go away, GAP later cellular comes up; T0 = cellular's
#              route is in (the new address is usable)
#   wifi-back  Wi-Fi returns (preferred metric) while cellular works; T0 = Wi-Fi's route is in
#   mbb        cellular is up and Wi-Fi's address goes away (cellular takes over); T0 = just before
#              the address is removed
#   wifi-back  again (then cellular goes down)
# For every session and event: the time from T0 to the arrival of the first record sent at or
# after T0 (it cannot have used the lost path; resolution INTERVAL) and to the first arrival of
# any record after T0 (for bbm this is the first byte delivered on the new path: nothing can
# arrive on the old one). Reports median / p90 / max per kind over all rounds; the target is every
# session within 1 s.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
source "$HERE/../../scripts/testbed.sh"

SESSIONS=${1:-1000}
ROUNDS=${2:-3}
PATHS=${PATHS:-migrate}
INTERVAL=${INTERVAL:-50}
GAP=${GAP:-0.1}
HB=${HB:-1s}
BOUND=${BOUND:-15}
if ! reason=$(tb_available); then echo "mass_handover: cannot run: $reason"; exit 1; fi

bl_init mass_handover
tb_create "mh$$-" || { echo "mass_handover: cannot build the test bed"; exit 1; }
trap bl_cleanup EXIT   # tb_create installed its own
wait_for() { bl_wait_for "$@" || exit 1; }

tb_srv "$LOADGEN" serve --listen 0.0.0.0:9000 --interval "$INTERVAL" 2>"$WORK/service.log" &
PIDS+=($!)
if [ "$PATHS" = msocks ]; then
  tb_prx "$ROAM" proxy --listen 0.0.0.0:1080 --allow-dest $TB_SRV_NET.0/24 --heartbeat "$HB" 2>"$WORK/server.log" &
  PIDS+=($!); SRV=$!
  tb_mob "$ROAM" socks --proxy $TB_PROXY:1080 --listen 127.0.0.1:1080 --heartbeat "$HB" 2>"$WORK/client.log" &
  PIDS+=($!); CLI=$!
  TARGET=(--socks 127.0.0.1:1080 --to $TB_SERVER:9000)
else
  tb_srv "$ROAM" server --listen 0.0.0.0:7000 --forward 127.0.0.1:9000 --heartbeat "$HB" 2>"$WORK/server.log" &
  PIDS+=($!); SRV=$!
  tb_mob "$ROAM" connect $TB_SERVER:7000 --local 127.0.0.1:8000 --heartbeat "$HB" 2>"$WORK/client.log" &
  PIDS+=($!); CLI=$!
  TARGET=(--to 127.0.0.1:8000)
fi
wait_for "grep -qs 'listening on' '$WORK/service.log' && grep -qs 'listening on' '$WORK/server.log' && grep -qs 'listening on' '$WORK/client.log'" 10 "the daemons"
SRV=$(bl_child_of $SRV); CLI=$(bl_child_of $CLI)
PIDS+=($SRV $CLI)

mkfifo "$WORK/ctl"
tb_mob "$LOADGEN" connect "${TARGET[@]}" --kind ticks --sessions "$SESSIONS" --control "$WORK/ctl" \
  --latencies "$WORK/latencies" --report "$WORK/client.report" >"$WORK/loadgen.out" 2>&1 &
PIDS+=($!); LG=$!
exec 3>"$WORK/ctl"   # returns once the load generator has opened its end
now_ns() { date +%s%N; }
# measure NAME T0: announce the event and wait for every session to deliver after it.
N_EVENT=0
measure() {
  N_EVENT=$((N_EVENT + 1))
  local name="$1#$N_EVENT"
  echo "event $name $2" >&3
  local deadline=$((SECONDS + BOUND))
  until grep -q "^event $name:" "$WORK/loadgen.out"; do
    if [ $SECONDS -ge $deadline ]; then echo report >&3; wait_for "grep -q '^event $name:' '$WORK/loadgen.out'" 5 "a report"; break; fi
    sleep 0.05
  done
  printf '  %-14s %s\n' "$1" "$(grep "^event $name:" "$WORK/loadgen.out" | sed 's/^[^:]*: //')"
}
echo "mass_handover: $SESSIONS sessions ($PATHS), a record every ${INTERVAL} ms each, $ROUNDS rounds"
T_SET=$(date +%s.%N)
measure setup "$(now_ns)"   # every session established and delivering
echo "  (all $SESSIONS sessions up and delivering $(echo "$(date +%s.%N) - $T_SET" | bc | cut -c1-5) s after the first connect)"
for r in $(seq 1 "$ROUNDS"); do
  tb_wifi_down; sleep "$GAP"; tb_cell_up; measure bbm "$(now_ns)"
  tb_wifi_up; measure wifi-back "$(now_ns)"
  t=$(now_ns); tb_wifi_down; measure mbb "$t"
  tb_wifi_up; measure wifi-back "$(now_ns)"
  tb_cell_down
done
echo quit >&3
wait_for "! kill -0 $LG 2>/dev/null" 10 "the load generator to end"
wait $LG; RC=$?
grep -E "^final|error" "$WORK/loadgen.out" | sed 's/^/  /'
echo "summary over $ROUNDS rounds, per kind (ms; each session once per event):"
FAIL=0
for kind in bbm mbb wifi-back; do
  for col in 3 4; do
    what=$([ $col -eq 3 ] && echo "to the first record sent after T0" || echo "to the first arrival after T0  ")
    awk -v k="$kind" -v c=$col '$1 ~ "^" k "#" {print $c}' "$WORK/latencies" | sort -n |
      awk -v k="$kind" -v w="$what" '{v[NR] = $1} END {
        if (NR == 0) { printf "  %-10s %s: none\n", k, w; exit }
        m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; x = v[NR]
        printf "  %-10s %s: n %5d  median %7.1f  p90 %7.1f  max %7.1f  %s\n", k, w, NR, m, p, x, (x <= 1000 ? "(all within 1 s)" : "(SOME OVER 1 s)")
      }'
  done
done
expected=$(( SESSIONS * (4 * ROUNDS + 1) ))
got=$(wc -l < "$WORK/latencies")
[ "$got" -eq "$expected" ] || { echo "  only $got of $expected session-events delivered within ${BOUND}s"; FAIL=1; }
awk '$3 > 1000 {n++} END {exit n > 0}' "$WORK/latencies" || FAIL=1
[ $RC -eq 0 ] || { echo "  the load generator saw errors (holes, duplicates or dead sessions)"; FAIL=1; }
printf '  migrations logged by the client: %d; server CPU %s s, client CPU %s s\n' \
  "$(grep -c '\] migrated to' "$WORK/client.log")" \
  "$(awk '{print ($14 + $15) / 100}' /proc/$SRV/stat)" "$(awk '{print ($14 + $15) / 100}' /proc/$CLI/stat)"
[ $FAIL -eq 0 ] && echo "mass_handover: PASS" || echo "mass_handover: FAIL (KEEP=1 keeps the logs)"
exit $FAIL
