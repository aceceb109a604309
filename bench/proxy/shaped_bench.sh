#!/usr/bin/env bash
# Proxy throughput on a rate-limited path, where the CPU is not the bottleneck (SPEC: at least 90%
# of direct). Builds the namespace test bed (scripts/testbed.sh), shapes the router's port towards
# the mobile host with tbf, and downloads a file from the server host with curl: directly, through
# `roam proxy` as a plain SOCKS5 proxy, and through `roam socks` → `roam proxy` (MSOCKS).
# Interleaved rounds; medians and spread. Run as root.
#
# usage: bench/proxy/shaped_bench.sh [ROAM_BIN] [RATE] [MB] [ROUNDS]   (build/roam, 1gbit, 200, 5)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROAM=$(realpath "${1:-$HERE/../../build/roam}")
RATE=${2:-1gbit}
MB=${3:-200}
ROUNDS=${4:-5}
source "$HERE/../../scripts/testbed.sh"
reason=$(tb_available) || { echo "shaped_bench: $reason"; exit 1; }
WORK=$(mktemp -d /tmp/roam-shaped-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  tb_destroy
  rm -rf "$WORK"
}
tb_create "rs$$-" || exit 1
trap cleanup EXIT
tb_rate wifi-m "$RATE"
mkdir -p "$WORK/www"
head -c $((MB * 1000000)) /dev/urandom > "$WORK/www/file"
tb_srv python3 -m http.server 8080 --bind $TB_SERVER --directory "$WORK/www" 2>/dev/null &
PIDS+=($!)
tb_prx "$ROAM" proxy --listen 0.0.0.0:1080 --allow-dest $TB_SRV_NET.0/24 2>"$WORK/proxy.log" &
PIDS+=($!)
tb_mob "$ROAM" socks --proxy $TB_PROXY:1080 --listen 127.0.0.1:1080 2>"$WORK/socks.log" &
PIDS+=($!)
for _ in $(seq 100); do
  grep -qs "listening on" "$WORK/proxy.log" && grep -qs "listening on" "$WORK/socks.log" &&
    tb_srv ss -Hltn 'sport = :8080' | grep -q 8080 && break
  sleep 0.1
done
URL=http://$TB_SERVER:8080/file
declare -A RES
run() {  # name curl-args...
  local name=$1; shift
  local bps
  bps=$(tb_mob curl -s -o /dev/null -w '%{speed_download}' "$@" "$URL") || bps=0
  RES[$name]+="$(awk -v b="$bps" 'BEGIN{printf "%.3f ", b*8/1e9}')"
}
for r in $(seq "$ROUNDS"); do
  run direct
  run "roam proxy" --socks5-hostname $TB_PROXY:1080
  run "roam socks" --socks5-hostname 127.0.0.1:1080
  echo "round $r: direct ${RES[direct]##* } …" >/dev/null
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{printf "%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'; }
d=$(echo "${RES[direct]}" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
printf "%-12s %s Gbit/s (tbf %s, %s MB, %s rounds)\n" direct "$(echo "${RES[direct]}" | med)" "$RATE" "$MB" "$ROUNDS"
for n in "roam proxy" "roam socks"; do
  m=$(echo "${RES[$n]}" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  printf "%-12s %s Gbit/s  = %.1f%% of direct (target >= 90%%)\n" "$n" "$(echo "${RES[$n]}" | med)" "$(awk -v a="$m" -v b="$d" 'BEGIN{print 100*a/b}')"
done
