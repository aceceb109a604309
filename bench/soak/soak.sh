#!/usr/bin/env bash
# Soak: SESSIONS checked bidirectional streams — half through Migrate (roam connect --local →
# roam server → service), half through MSOCKS (roam socks → roam proxy → service) — for DURATION
# seconds while the network-namespace test bed (scripts/testbed.sh) hands over (break-before-make
# and make-before-break), renumbers, blackholes (nftables outages shorter than the wait) and
# rebinds the NAT at random, seeded moments. Not a test (never run by ctest): run it by hand, as
# root, on an otherwise quiet machine.
#
#   bench/soak/soak.sh [DURATION_S [SESSIONS]]       defaults 600 and 100
#   env: SEED (printed; random when unset), ROAM_BENCH_BUILD (default build-scale: roam and
#        bench/roam_loadgen), RATE (bytes/s per session and direction, default 16K), GAP_MIN /
#        GAP_MAX (seconds between network events, default 2 / 8), OUTAGE_MAX (s, default 8),
#        SAMPLE_S (daemon RSS/fd sampling period, default 2), FLOOR_WINDOW (s, default 30: the
#        flatness check's window, see below), HB (heartbeat, default 1s: roam's),
#        MALLINFO_SO (bench's libroam_mallinfo.so: also sample each daemon's live heap),
#        KINDS (the network events to draw from, default "bbm mbb renumber outage rebind"; e.g.
#        KINDS=outage for back-to-back outages),
#        KEEP=1 (keep the logs).
#
# Checks (exit 0 only if all hold): every session's bytes arrive exact in both directions (each
# direction is a seeded pseudo-random sequence checked byte by byte at its receiver, so loss,
# duplication and reordering are caught where they happen, and at the end each side's received
# count equals the other's sent count); every session is alive until the end of the run and ends
# cleanly; all four daemons are still running; their VmRSS, live heap (with MALLINFO_SO) and open
# descriptors are flat: the level each returns to between network events does not rise (see
# "Memory and descriptors" below for the exact criterion). Prints a summary: sessions, bytes each
# way, network events by kind, migrations, errors, and RSS/heap/fds per daemon.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../scale/lib.sh"
source "$HERE/../../scripts/testbed.sh"

DURATION=${1:-600}
SESSIONS=${2:-100}
SEED=${SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}
RATE=${RATE:-16K}
GAP_MIN=${GAP_MIN:-2}
GAP_MAX=${GAP_MAX:-8}
OUTAGE_MAX=${OUTAGE_MAX:-8}
SAMPLE_S=${SAMPLE_S:-2}
HB=${HB:-1s}
read -r -a KIND_LIST <<< "${KINDS:-bbm mbb renumber outage rebind}"
if ! reason=$(tb_available); then echo "soak: cannot run: $reason"; exit 1; fi
command -v conntrack >/dev/null || { echo "soak: needs conntrack (NAT rebinding)"; exit 1; }

RANDOM=$SEED
echo "soak: seed $SEED (SEED=$SEED $0 $DURATION $SESSIONS reproduces the event sequence)"
bl_init soak
tb_create "sk$$-" || { echo "soak: cannot build the test bed"; exit 1; }
trap bl_cleanup EXIT   # tb_create installed its own

T_START=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $T_START" | bc; }
log() { printf '[%7.1fs] %s\n' "$(elapsed)" "$*" | tee -a "$WORK/events.log"; }
wait_for() { bl_wait_for "$@" || exit 1; }
# Seeded random numbers, set in this shell (never in a $(...) subshell, whose RANDOM would not
# advance this one's): R = an integer in [lo, hi]; RS = seconds in [lo, hi] in 0.1 s steps.
rnd() { R=$(( $1 + RANDOM % ($2 - $1 + 1) )); }
rnd_s() { local t=$(( $1 * 10 + RANDOM % (($2 - $1) * 10 + 1) )); RS=$((t / 10)).$((t % 10)); }

HALF=$((SESSIONS / 2))
tb_nat_on
tb_cell_down
# With MALLINFO_SO (bench's libroam_mallinfo.so) each daemon also reports its live heap.
heap_env() {
  if [ -n "${MALLINFO_SO:-}" ]; then echo "LD_PRELOAD=$MALLINFO_SO ROAM_MALLINFO_FILE=$WORK/$1.mallinfo"; fi
}
# Daemons at roam's defaults (wait 10m) except the heartbeat.
tb_srv "$LOADGEN" serve --listen 0.0.0.0:9000 --rate "$RATE" --report "$WORK/server.report" \
  2>"$WORK/loadgen_srv.log" &
PIDS+=($!)
tb_srv env $(heap_env server) "$ROAM" server --listen 0.0.0.0:7000 --forward 127.0.0.1:9000 --heartbeat "$HB" 2>"$WORK/server.log" &
PIDS+=($!); SRV=$!
tb_prx env $(heap_env proxy) "$ROAM" proxy --listen 0.0.0.0:1080 --allow-dest $TB_SRV_NET.0/24 --heartbeat "$HB" 2>"$WORK/proxy.log" &
PIDS+=($!); PRX=$!
tb_mob env $(heap_env connect) "$ROAM" connect $TB_SERVER:7000 --local 127.0.0.1:8000 --heartbeat "$HB" 2>"$WORK/connect.log" &
PIDS+=($!); CLI=$!
tb_mob env $(heap_env socks) "$ROAM" socks --proxy $TB_PROXY:1080 --listen 127.0.0.1:1080 --heartbeat "$HB" 2>"$WORK/socks.log" &
PIDS+=($!); AGT=$!
wait_for "grep -qs 'listening on' '$WORK/loadgen_srv.log' && grep -qs 'listening on' '$WORK/server.log' && grep -qs 'listening on' '$WORK/proxy.log' && grep -qs 'listening on' '$WORK/connect.log' && grep -qs 'listening on' '$WORK/socks.log'" 10 "the daemons"
# `ip netns exec` forks: the daemons are its children (sampled and stopped by these PIDs).
SRV=$(bl_child_of $SRV); PRX=$(bl_child_of $PRX); CLI=$(bl_child_of $CLI); AGT=$(bl_child_of $AGT)
[ -n "$SRV" ] && [ -n "$PRX" ] && [ -n "$CLI" ] && [ -n "$AGT" ] || { log "cannot find the daemons' PIDs"; exit 1; }
PIDS+=($SRV $PRX $CLI $AGT)
log "daemons up: roam server $SRV, roam proxy $PRX, roam connect $CLI, roam socks $AGT"

tb_mob "$LOADGEN" connect --to 127.0.0.1:8000 --sessions $HALF --first-id 0 --seed "$SEED" \
  --rate "$RATE" --duration "$DURATION" --drain 120 --report "$WORK/migrate.report" >"$WORK/lg_migrate.out" 2>&1 &
PIDS+=($!); LG_M=$!
tb_mob "$LOADGEN" connect --socks 127.0.0.1:1080 --to $TB_SERVER:9000 --sessions $((SESSIONS - HALF)) \
  --first-id $HALF --seed "$SEED" --rate "$RATE" --duration "$DURATION" --drain 120 \
  --report "$WORK/msocks.report" >"$WORK/lg_msocks.out" 2>&1 &
PIDS+=($!); LG_S=$!
log "$SESSIONS sessions starting ($HALF Migrate, $((SESSIONS - HALF)) MSOCKS), $RATE/s each way each"

# Daemon memory and descriptors every SAMPLE_S seconds: "t name rss_kib fds heap_kib|-".
sample() {
  local name pid rss fds t
  while :; do
    t=$(elapsed)
    for name in server:$SRV proxy:$PRX connect:$CLI socks:$AGT; do
      pid=${name#*:}
      rss=$(awk '/^VmRSS:/{print $2}' /proc/$pid/status 2>/dev/null) || continue
      fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
      heap=$(awk '{print int($1 / 1024)}' "$WORK/${name%%:*}.mallinfo" 2>/dev/null)
      echo "$t ${name%%:*} ${rss:-0} $fds ${heap:--}"
    done >> "$WORK/samples"
    sleep "$SAMPLE_S"
  done
}
sample &
PIDS+=($!); SAMPLER=$!

# Random network events until shortly before the streams end.
declare -A EVENTS=()
ACTIVE=wifi
WIFI_ADDR=$TB_WIFI_NET.2
CELL_ADDR=$TB_CELL_NET.2
other() { [ "$1" = wifi ] && echo cell || echo wifi; }
iface_up() { if [ "$1" = wifi ]; then tb_wifi_up "$WIFI_ADDR"; else tb_cell_up "$CELL_ADDR"; fi; }
iface_down() { if [ "$1" = wifi ]; then tb_wifi_down; else tb_cell_down; fi; }
END_EVENTS=$(echo "$DURATION - 4" | bc)
while [ "$(echo "$(elapsed) < $END_EVENTS" | bc)" -eq 1 ]; do
  rnd_s "$GAP_MIN" "$GAP_MAX"; sleep "$RS"
  [ "$(echo "$(elapsed) < $END_EVENTS" | bc)" -eq 1 ] || break
  kill -0 $LG_M 2>/dev/null && kill -0 $LG_S 2>/dev/null || { log "a load generator ended early"; break; }
  rnd 0 $(( ${#KIND_LIST[@]} - 1 ))
  case ${KIND_LIST[R]} in
    bbm) rnd_s 0 1; gap=$RS; new=$(other $ACTIVE)
       log "bbm: $ACTIVE down, ${gap}s, $new up"
       iface_down $ACTIVE; sleep "$gap"; iface_up "$new"; ACTIVE=$new; EVENTS[bbm]=$(( ${EVENTS[bbm]:-0} + 1 )) ;;
    mbb) rnd_s 0 2; overlap=$RS; new=$(other $ACTIVE)
       log "mbb: $new up, ${overlap}s both, $ACTIVE down"
       iface_up "$new"; sleep "$overlap"; iface_down $ACTIVE; ACTIVE=$new; EVENTS[mbb]=$(( ${EVENTS[mbb]:-0} + 1 )) ;;
    renumber) if [ $ACTIVE = wifi ]; then
         rnd 10 250; WIFI_ADDR=$TB_WIFI_NET.$R; log "renumber: wifi → $WIFI_ADDR"; tb_renumber_wifi "$WIFI_ADDR"
       else
         rnd 10 250; CELL_ADDR=$TB_CELL_NET.$R; log "renumber: cell → $CELL_ADDR"; tb_cell_down; tb_cell_up "$CELL_ADDR"
       fi
       EVENTS[renumber]=$(( ${EVENTS[renumber]:-0} + 1 )) ;;
    outage) rnd_s 0 "$OUTAGE_MAX"; len=$RS
       log "outage: everything through the router dropped for ${len}s"
       tb_outage_start; sleep "$len"; tb_outage_stop; EVENTS[outage]=$(( ${EVENTS[outage]:-0} + 1 )) ;;
    rebind) log "nat rebind: conntrack flushed"
       tb_nat_rebind; EVENTS[rebind]=$(( ${EVENTS[rebind]:-0} + 1 )) ;;
    *) log "unknown event kind '${KIND_LIST[R]}' in KINDS"; exit 1 ;;
  esac
done
log "no more network events; waiting for the streams to end (duration ${DURATION}s, then half-close)"

wait_for "! kill -0 $LG_M 2>/dev/null && ! kill -0 $LG_S 2>/dev/null" $((DURATION + 180)) "the load generators to end"
wait $LG_M; RC_M=$?
wait $LG_S; RC_S=$?
sessions_reported() { cat "$WORK/server.report" 2>/dev/null | wc -l; }
wait_for "[ \$(sessions_reported) -ge $SESSIONS ]" 30 "the service to see every session end"
sleep 3  # two heartbeats with no sessions: the daemons free what the sessions held (measured below)
kill -0 $SRV $PRX $CLI $AGT 2>/dev/null; DAEMONS_ALIVE=$?
kill $SAMPLER 2>/dev/null
log "streams ended (load generators exited $RC_M and $RC_S)"

echo
echo "=== soak summary (seed $SEED, ${DURATION}s, $SESSIONS sessions) ==="
FAIL=0
# Join both ends of every session: client sent = server received and back, both "ok".
awk -v half=$HALF '
  $1 == "C" { cs[$2] = $5; cr[$2] = $7; cst[$2] = substr($0, index($0, $8)) }
  $1 == "S" { ss[$2] = $5; sr[$2] = $7; sst[$2] = substr($0, index($0, $8)) }
  END {
    bad = 0
    for (id in cs) {
      path = (id + 0 < half) ? "Migrate" : "MSOCKS"
      n[path]++
      up[path] += cs[id]; down[path] += cr[id]
      why = ""
      if (cst[id] != "ok") why = "client: " cst[id]
      else if (!(id in ss)) why = "the service never saw it end"
      else if (sst[id] != "ok") why = "service: " sst[id]
      else if (cs[id] != sr[id]) why = "up: sent " cs[id] " received " sr[id]
      else if (ss[id] != cr[id]) why = "down: sent " ss[id] " received " cr[id]
      if (why != "") { bad++; printf "  session %d (%s) FAILED: %s\n", id, path, why }
      else ok[path]++
    }
    for (p in n)
      printf "  %-8s %4d sessions, %4d exact and alive to the end; %.1f MiB up, %.1f MiB down\n",
             p, n[p], ok[p], up[p] / 1048576, down[p] / 1048576
    exit bad > 0
  }' "$WORK/migrate.report" "$WORK/msocks.report" "$WORK/server.report" || FAIL=1
n_reported=$(cat "$WORK/migrate.report" "$WORK/msocks.report" | wc -l)
[ "$n_reported" -eq "$SESSIONS" ] || { echo "  only $n_reported of $SESSIONS sessions reported"; FAIL=1; }
[ $RC_M -eq 0 ] && [ $RC_S -eq 0 ] || FAIL=1
printf '  network events:'; for k in bbm mbb renumber outage rebind; do printf ' %s %d' $k "${EVENTS[$k]:-0}"; done; echo
for d in connect socks server proxy; do
  printf '  %-8s migrations %5d  warnings %4d  errors %4d\n' "$d" \
    "$(grep -c '\] migrated to' "$WORK/$d.log")" "$(grep -c ' warning: ' "$WORK/$d.log")" "$(grep -c ' error: ' "$WORK/$d.log")"
done
echo "  most frequent warnings/errors:"
cat "$WORK"/{connect,socks,server,proxy}.log | grep -E ' (warning|error): ' | sed -E 's/^.*(warning|error): //; s/\[[0-9a-f]+\]//g; s/[0-9]+(\.[0-9]+)?/N/g' |
  sort | uniq -c | sort -rn | head -8 | sed 's/^/   /'
[ $DAEMONS_ALIVE -eq 0 ] || { echo "  a daemon died"; FAIL=1; }
# Memory and descriptors. Buffers legitimately grow while an event asks for it (an outage's
# backlog is retained until it is acknowledged, bounded by --buffer per session) and must give it
# back afterwards; a leak, or capacity kept after a burst, raises the level the process returns to
# between events. So the check is on that level, the FLOOR: after the warm-up (a quarter of the
# run, at most 60 s: every session is up) the samples taken while the streams ran are cut into
# windows of FLOOR_WINDOW s (default 30: every window has a quiet moment, events last <= 8 s) and
# each window's minimum is its floor (for descriptors, which drop while paths are down, the
# window's median). A daemon is flat when, for RSS, live heap (with MALLINFO_SO) and descriptors
# alike,
#   (1) the end level <= the start level + slack, where the start level is the lower floor of the
#       first two windows and the end level that of the last two (one window can be all outages
#       back to back), and
#   (2) the floors of the second half of the run have no upward trend: their Theil-Sen slope (the
#       median of the slopes between every two windows, so one busy window is not a trend) times
#       the length of that half <= slack (not judged with fewer than 3 windows in that half);
# slack = 2 MiB + 10% for RSS, 1 MiB + 10% for the heap, 4 descriptors. Resolution: a leak
# slower than the slack per run (e.g. < 2 MiB in 10 minutes) is not seen; a longer run sees it.
WARM=$(( DURATION / 4 < 60 ? DURATION / 4 : 60 ))
RUN_END=$(( DURATION - 6 ))  # the last events are over and no stream has ended yet
FLOOR_WINDOW=${FLOOR_WINDOW:-$(( (RUN_END - WARM) / 4 < 30 ? (RUN_END - WARM) / 4 : 30 ))}
echo "  daemon    RSS MiB start/max/end/closed  floor first→last  trend/half    heap MiB start/max/end/closed  floor first→last  trend/half    fds start/max/end/closed  floor first→last"
for d in server proxy connect socks; do
  awk -v d=$d -v dur="$DURATION" -v run_end="$RUN_END" -v warm="$WARM" -v win="$FLOOR_WINDOW" '
    function trend(t) { return t == "" ? "n/a" : sprintf("%+.1f", t / 1024) }
    function floors(col, slack_abs, slack_rel, name,    w, k, i, j, n, nx, x, y, sl, ns, tmp, first, last, slope, ok, mid) {
      # col: 3 RSS (KiB), 4 fds, 5 heap (KiB). Sets F (first level), L (last level), T (trend,
      # "" when the second half has fewer than 3 windows).
      mid = warm + (run_end - warm) / 2
      n = 0; nx = 0
      for (w = 0; w <= maxw; w++) {
        if (cnt[w] < 3) continue
        y[n++] = fl[col, w]
        if (warm + (w + 0.5) * win >= mid) { x[nx] = warm + (w + 0.5) * win; sl[nx++] = fl[col, w] }
      }
      # Levels: the lower floor of the first two windows and of the last two (one window may be
      # all outages back to back).
      first = (n > 1 && y[1] < y[0]) ? y[1] : y[0]
      last = (n > 1 && y[n - 2] < y[n - 1]) ? y[n - 2] : y[n - 1]
      # Trend: Theil-Sen slope (the median of the slopes between every two windows of the second
      # half; one busy window does not make a trend) times the length of that half.
      T = ""
      if (nx >= 3) {
        ns = 0
        for (i = 0; i < nx; i++) for (j = i + 1; j < nx; j++) tmp[ns++] = (sl[j] - sl[i]) / (x[j] - x[i])
        for (i = 1; i < ns; i++) for (j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) { k = tmp[j]; tmp[j] = tmp[j - 1]; tmp[j - 1] = k }
        slope = (ns % 2) ? tmp[int(ns / 2)] : (tmp[ns / 2 - 1] + tmp[ns / 2]) / 2
        T = slope * (run_end - mid)
      }
      ok = (last <= first + slack_abs + first * slack_rel) && (T == "" || T <= slack_abs + first * slack_rel)
      if (!ok) bad = bad " " name
      F = first; L = last
      return ok
    }
    $2 == d {
      t = $1; h = ($5 == "-") ? -1 : $5  # KiB
      if (t >= warm && !started) { started = 1; r0 = $3; f0 = $4; h0 = h }
      if ($3 > rm) rm = $3; if ($4 > fm) fm = $4; if (h > hm) hm = h
      if (t <= dur) { r1 = $3; f1 = $4; h1 = h }
      r2 = $3; f2 = $4; h2 = h
      if (t < warm || t > run_end) next
      w = int((t - warm) / win); if (w > maxw) maxw = w
      if (!(w in cnt)) { fl[3, w] = $3; fl[5, w] = h }
      fdv[w, cnt[w]++] = $4
      if ($3 < fl[3, w]) fl[3, w] = $3
      if (h < fl[5, w]) fl[5, w] = h
    }
    END {
      # Descriptors drop while paths are down and rise while they reconnect: their level is the
      # median of the window, not its minimum.
      for (w = 0; w <= maxw; w++) {
        for (i = 1; i < cnt[w]; i++) for (j = i; j > 0 && fdv[w, j - 1] > fdv[w, j]; j--) { k = fdv[w, j]; fdv[w, j] = fdv[w, j - 1]; fdv[w, j - 1] = k }
        fl[4, w] = fdv[w, int(cnt[w] / 2)]
      }
      bad = ""
      floors(3, 2048, 0.10, "RSS"); rF = F; rL = L; rT = T
      if (h0 >= 0) { floors(5, 1024, 0.10, "heap"); hF = F; hL = L; hT = T }
      floors(4, 4, 0, "fds"); fF = F; fL = L
      printf "  %-8s %5.1f/%5.1f/%5.1f/%5.1f  %5.1f → %5.1f  %6s      ", d, r0/1024, rm/1024, r1/1024, r2/1024, rF/1024, rL/1024, trend(rT)
      if (h0 >= 0) printf "%5.1f/%5.1f/%5.1f/%5.1f  %5.1f → %5.1f  %6s      ", h0/1024, hm/1024, h1/1024, h2/1024, hF/1024, hL/1024, trend(hT)
      else printf "%-28s%-17s%-12s", "-", "-", "-"
      printf "%4d/%4d/%4d/%4d  %4d → %4d  %s\n", f0, fm, f1, f2, fF, fL, bad == "" ? "flat" : "GROWS:" bad
      exit bad != ""
    }' "$WORK/samples" || FAIL=1
done
echo "  (start = first sample ${WARM}s in, end = last while the streams ran, closed = after every session ended; floor = minimum (fds: median) per ${FLOOR_WINDOW}s"
echo "   window from ${WARM}s to ${RUN_END}s, first/last = lower of the first/last two; flat: last ≤ first + slack and second-half trend (Theil-Sen) ≤ slack,"
echo "   slack 2 MiB + 10% RSS, 1 MiB + 10% heap,"
echo "   4 fds; samples every ${SAMPLE_S}s in $WORK/samples)"
# Memory around each outage (the event that asks most of the buffers): per daemon, the most during
# it and the 6 s after (the backlog drains), and the level 10 s after it ended.
if grep -q 'outage: ' "$WORK/events.log"; then
  echo "  memory around outages (RSS/heap MiB: peak during the outage → 10 s after it ended):"
  awk '
    FNR == NR {
      if ($0 ~ /outage: /) { t = $2; sub(/s\]/, "", t); l = $NF; sub(/s$/, "", l); n++; ot[n] = t + 0; ol[n] = l + 0 }
      next
    }
    {
      d = $2; t = $1
      for (i = 1; i <= n; i++) {
        if (t >= ot[i] && t <= ot[i] + ol[i] + 6) {
          if ($3 > pr[d, i]) pr[d, i] = $3
          if ($5 != "-" && $5 > ph[d, i]) ph[d, i] = $5
        }
        if (t >= ot[i] + ol[i] + 10 && !((d, i) in ar)) { ar[d, i] = $3; ah[d, i] = $5 }
      }
    }
    END {
      printf "  %-14s", "outage at/len"
      for (k = 1; k <= 4; k++) printf "  %-28s", names[k]
      print ""
      for (i = 1; i <= n; i++) {
        printf "  %6.1fs %4.1fs", ot[i], ol[i]
        for (k = 1; k <= 4; k++) {
          d = names[k]
          if ((d, i) in ar)
            printf "  %5.1f/%5.1f → %5.1f/%5.1f    ", pr[d, i] / 1024, ph[d, i] / 1024, ar[d, i] / 1024, ah[d, i] / 1024
          else
            printf "  %5.1f/%5.1f → (ran out)      ", pr[d, i] / 1024, ph[d, i] / 1024
        }
        print ""
      }
    }
    BEGIN { names[1] = "server"; names[2] = "proxy"; names[3] = "connect"; names[4] = "socks" }
  ' "$WORK/events.log" "$WORK/samples"
fi
if [ $FAIL -eq 0 ]; then echo "soak: PASS"; else echo "soak: FAIL (KEEP=1 keeps the logs)"; fi
exit $FAIL
