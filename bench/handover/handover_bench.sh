#!/usr/bin/env bash
# Handover latency benchmark: roam vs Linux MPTCP vs plain TCP in the network-namespace test bed
# (scripts/testbed.sh). Not a test: run it by hand (as root); it prints a table and writes a CSV.
#
#   bench/handover/handover_bench.sh                 everything (about 8 minutes)
#   SYSTEMS="roam mptcp" MODES="bbm mbb" COUNT=40 bench/handover/handover_bench.sh
#
# Knobs (environment): SYSTEMS (roam mptcp tcp), MODES (bbm mbb mbb-backup outage), COUNT (30
# handovers per mode per system), TCP_COUNT (10: plain TCP dies every time, each costs BOUND_MS),
# OUTAGES (5), OUTAGE_MS (5000), GAP_MS (100, break-before-make gap), OVERLAP_MS (500, both paths
# up in make-before-break), SETTLE_MS (600), BOUND_MS (5000: no record within this = "dies"),
# RATE (1000 records/s), SIZE (64 bytes), CSV (output file), ROAM_BENCH_BUILD (build directory),
# RT_PRIO (run every benchmarked process under SCHED_FIFO at this priority), ROAM_ARGS (extra
# flags for both roam daemons, e.g. "--heartbeat 300ms"), MPTCP_PM (best | mptcpd | debian: how
# the mptcpd stand-in manages endpoints, see README), MPTCP_LIMITS ("subflows 8 add_addr_accepted
# 8", both hosts), MPTCP_EP_FLAGS ("subflow"), MPTCP_SYSCTLS (net.mptcp.* settings for both hosts,
# e.g. "stale_loss_cnt=2"; default: the kernel's).
# See bench/handover/README.md for what is measured and the targets.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/scripts/testbed.sh"

SYSTEMS=${SYSTEMS:-roam mptcp tcp}
MODES=${MODES:-bbm mbb mbb-backup outage}
COUNT=${COUNT:-30}
TCP_COUNT=${TCP_COUNT:-10}
OUTAGES=${OUTAGES:-5}
OUTAGE_MS=${OUTAGE_MS:-5000}
GAP_MS=${GAP_MS:-100}
OVERLAP_MS=${OVERLAP_MS:-500}
SETTLE_MS=${SETTLE_MS:-600}
BOUND_MS=${BOUND_MS:-5000}
RATE=${RATE:-1000}
SIZE=${SIZE:-64}
BUILD=${ROAM_BENCH_BUILD:-$ROOT/build-hbench}
ROAM_ARGS=${ROAM_ARGS:-}
CSV=${CSV:-$PWD/handover_results.csv}
MPTCP_LIMITS=${MPTCP_LIMITS:-subflows 8 add_addr_accepted 8}
MPTCP_PM=${MPTCP_PM:-best}
MPTCP_EP_FLAGS=${MPTCP_EP_FLAGS:-subflow}
MPTCP_SYSCTLS=${MPTCP_SYSCTLS:-}
# The mptcpd stand-in's policy (hb_tool --ep-*; README "MPTCP path management"):
#   best    endpoints once the route is in; a gone address's endpoint kept until the next path's
#           is in when no other path is up (its RM_ADDR then reaches the server); the old
#           endpoint demoted to backup when a better network appears (mbb); a backup network's
#           endpoint flagged backup and promoted once the primary is gone (mbb-backup)
#   mptcpd  mptcpd >= 0.12 with notify-flags check_route: endpoints once the route is in, deleted
#           as the address goes; backup networks flagged backup, nothing else
#   debian  mptcpd as Debian ships it (no check_route): endpoints as the address appears, before
#           its route
case $MPTCP_PM in
  best) MPTCP_PM_FLAGS=(--ep-order route --ep-defer-del 1 --ep-follow-metric 1 --ep-promote 1)
        MPTCP_SYS=mptcp ;;
  mptcpd) MPTCP_PM_FLAGS=(--ep-order route --ep-defer-del 0 --ep-follow-metric 0 --ep-promote 0)
        MPTCP_SYS=mptcpd ;;
  debian) MPTCP_PM_FLAGS=(--ep-order addr --ep-defer-del 0 --ep-follow-metric 0 --ep-promote 0)
        MPTCP_SYS=debian ;;
  *) echo "unknown MPTCP_PM $MPTCP_PM"; exit 1 ;;
esac

if ! reason=$(tb_available); then echo "cannot run: $reason"; exit 1; fi

if [ ! -x "$BUILD/roam" ]; then
  echo "building roam in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-restrict >/dev/null &&
    make -C "$BUILD" -j2 roam >/dev/null || { echo "build failed"; exit 1; }
fi
ROAM=$BUILD/roam
TOOL=$BUILD/hb_tool
if [ ! -x "$TOOL" ] || [ "$HERE/hb_tool.cpp" -nt "$TOOL" ]; then
  g++ -O2 -std=c++20 -Wall -Wextra -o "$TOOL" "$HERE/hb_tool.cpp" -lmnl -pthread || exit 1
fi

WORK=$(mktemp -d /tmp/roam-hbench-XXXXXX)
mkdir -p "$WORK/dump"  # per handover: every TCP segment on wifi/cell and every record arrival
# RT_PRIO=N runs every benchmarked process (senders, receivers, roam daemons) under SCHED_FIFO
# priority N, the same for every system, so that a busy machine (compilers, other jobs) cannot
# preempt them: what is left is the systems' own reaction and processing time.
RT=()
if [ -n "${RT_PRIO:-}" ]; then RT=(chrt -f "$RT_PRIO"); fi
PIDS=()
bg_in() {  # NS LOGFILE CMD... : start CMD in namespace NS in the background; its PID goes to PIDS
  local ns=$1 log=$2; shift 2
  ip netns exec "$(tb_ns "$ns")" "${RT[@]}" "$@" 2>"$log" &
  PIDS+=($!)
}
stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
cleanup() {
  stop_pids
  tb_destroy
  echo "logs kept in $WORK"
}
tb_create "hb$$-" || { echo "cannot build the test bed"; exit 1; }
trap cleanup EXIT
R=$(tb_ns rtr)

echo "system,mode,n,dir,t_ref,outcome,latency_ms,stall_ms,gap_ms,break_ms,syn_ms,synack_ms,out1_ms,in1_ms,out2_ms,in2_ms,new_conns,first_pkt_ms,holes,dups,ctl_stall_ms" >"$CSV"

wait_log() {  # FILE PATTERN
  local i
  for i in $(seq 1 100); do grep -qs "$2" "$1" && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1"; return 1
}

# The path's round trip (median TCP connect time mob -> srv), for the targets.
bg_in srv "$WORK/rtt.send.log" "$TOOL" send --listen $TB_SERVER:9300 --rate 1
wait_log "$WORK/rtt.send.log" "listening on" || exit 1
RTT_MS=$(tb_mob "$TOOL" rtt --connect $TB_SERVER:9300 --count 50)
stop_pids
echo "round trip mob <-> srv: $RTT_MS ms (median TCP connect)"

OUTAGE_START="ip netns exec $R nft 'add table inet hb_outage; add chain inet hb_outage block { type filter hook forward priority -10; policy drop; }'"
OUTAGE_STOP="ip netns exec $R nft delete table inet hb_outage"

run_modes() {  # SYSTEM TARGET [extra hb_tool flags]
  local sys=$1 target=$2; shift 2
  local mode n
  for mode in $MODES; do
    n=$COUNT
    [ "$sys" = tcp ] && n=$TCP_COUNT
    [ "$mode" = outage ] && n=$OUTAGES
    echo "== $sys $mode: $n"
    tb_mob "${RT[@]}" "$TOOL" run --connect "$target" --mode "$mode" --count "$n" --system "$sys" \
      --csv "$CSV" --gap-ms "$GAP_MS" --overlap-ms "$OVERLAP_MS" --settle-ms "$SETTLE_MS" \
      --bound-ms "$([ "$sys" = tcp ] && [ "$mode" != outage ] && echo 3000 || echo "$BOUND_MS")" \
      --outage-ms "$OUTAGE_MS" --outage-start "$OUTAGE_START" --outage-stop "$OUTAGE_STOP" \
      --dump "$WORK/dump" "$@" \
      2>>"$WORK/$sys.runs.log" || echo "   ($sys $mode: hb_tool exited with $?; see $WORK/$sys.runs.log)"
    tail -n "$n" "$WORK/$sys.runs.log" | awk '{printf "   %s\n", $0}' | tail -3
  done
}

for sys in $SYSTEMS; do
  case $sys in
    roam)
      bg_in srv "$WORK/roam.send.log" "$TOOL" send --listen 127.0.0.1:9000 --rate "$RATE" --size "$SIZE"
      # shellcheck disable=SC2086
      bg_in srv "$WORK/roam.srv.log" "$ROAM" --log-level debug server --listen 0.0.0.0:7000 \
        --forward 127.0.0.1:9000 $ROAM_ARGS
      # shellcheck disable=SC2086
      bg_in mob "$WORK/roam.cli.log" "$ROAM" --log-level debug connect $TB_SERVER:7000 \
        --local 127.0.0.1:8000 $ROAM_ARGS
      wait_log "$WORK/roam.send.log" "listening on" && wait_log "$WORK/roam.srv.log" "listening on" &&
        wait_log "$WORK/roam.cli.log" "listening on" || exit 1
      run_modes roam 127.0.0.1:8000
      stop_pids ;;
    mptcp)
      ok=1
      for ns in mob srv; do
        v=$(ip netns exec "$(tb_ns $ns)" cat /proc/sys/net/mptcp/enabled 2>/dev/null || echo missing)
        if [ "$v" != 1 ]; then
          echo "== mptcp: /proc/sys/net/mptcp/enabled is '$v' in $ns: skipping MPTCP"; ok=0
        fi
      done
      [ $ok = 1 ] || continue
      # Limits on both hosts: the kernel's maximum (8), since a limit can only refuse a join,
      # never speed one up; the server in particular still counts the subflows of paths that died
      # without telling it (bbm), and with "subflows 2" it refused the third join of a run.
      # Endpoints follow the mobile host's addresses (hb_tool --endpoints, policy MPTCP_PM).
      for ns in mob srv; do
        # shellcheck disable=SC2086
        ip netns exec "$(tb_ns $ns)" ip mptcp limits set $MPTCP_LIMITS || exit 1
        for kv in $MPTCP_SYSCTLS; do ip netns exec "$(tb_ns $ns)" sysctl -qw "net.mptcp.$kv" || exit 1; done
      done
      echo "== mptcp ($MPTCP_SYS, MPTCP_PM=$MPTCP_PM: ${MPTCP_PM_FLAGS[*]} --ep-flags $MPTCP_EP_FLAGS)" \
        "limits: $(tb_mob ip mptcp limits show | tr '\n' ' ')sysctls: $(tb_srv sh -c \
        'cd /proc/sys/net/mptcp && for f in pm_type stale_loss_cnt add_addr_timeout close_timeout; do printf "%s=%s " $f $(cat $f); done')"
      tb_mob ip mptcp endpoint flush
      bg_in srv "$WORK/mptcp.send.log" "$TOOL" send --listen $TB_SERVER:9100 --mptcp --rate "$RATE" --size "$SIZE"
      wait_log "$WORK/mptcp.send.log" "listening on" || exit 1
      run_modes "$MPTCP_SYS" $TB_SERVER:9100 --mptcp --endpoints "${MPTCP_PM_FLAGS[@]}" --ep-flags "$MPTCP_EP_FLAGS"
      stop_pids ;;
    tcp)
      bg_in srv "$WORK/tcp.send.log" "$TOOL" send --listen $TB_SERVER:9200 --rate "$RATE" --size "$SIZE"
      wait_log "$WORK/tcp.send.log" "listening on" || exit 1
      run_modes tcp $TB_SERVER:9200
      stop_pids ;;
    *) echo "unknown system $sys" ;;
  esac
done

echo
python3 "$HERE/summarize.py" "$CSV" "$WORK/roam.cli.log" "$RTT_MS" | tee "${CSV%.csv}.txt"
echo "CSV: $CSV"
