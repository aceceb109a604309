#!/usr/bin/env bash
# Forwarding-chain benchmark: the same two-hop chain on 127.0.0.1 built from
#   roam     tcp_blast send -> roam connect --local -> roam server -> tcp_blast sink
#   roam-enc the same with --encrypt on both (every frame SEALED): roam-enc/roam is its cost
#   socat    tcp_blast send -> socat TCP-LISTEN -> socat TCP-LISTEN -> tcp_blast sink
#   haproxy  tcp_blast send -> haproxy frontend 1 -> haproxy frontend 2 -> tcp_blast sink
#            (one haproxy process, mode tcp, option splice-request + splice-response:
#            forced splicing used less relay CPU here than splice-auto)
# plus `direct` (sender straight to the sink) for context. Runs are interleaved
# (roam, socat, haproxy, direct, roam, …); each pushes BYTES end to end (connect to the sink's
# count coming back). Prints per-chain median Gbit/s with the spread (min-max), the ratio of
# roam to the best peer (SPEC target: >= 1.0) and the relays' CPU seconds per GB (from
# /proc/PID/stat, children included).
#
# Usage: bench/chain.sh [BYTES [RUNS]]        (defaults 2G 5)
#   ROAM_BENCH_BUILD=DIR  a build directory holding roam and bench/tcp_blast (default: build one
#                         with bench/snapshot-build.sh)
# Every process this script starts is killed by PID on exit; nothing else is touched.
set -uo pipefail

BYTES=${1:-2G}
RUNS=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${ROAM_BENCH_BUILD:-}
if [[ -z $BUILD ]]; then
  BUILD=$("$here/snapshot-build.sh") || { echo "chain.sh: build failed" >&2; exit 1; }
fi
ROAM=$BUILD/roam
BLAST=$BUILD/bench/tcp_blast
[[ -x $ROAM && -x $BLAST ]] || { echo "chain.sh: $ROAM or $BLAST missing" >&2; exit 1; }

work=$(mktemp -d /tmp/roam-chain.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE contains "listening on ADDR:PORT" and prints PORT.
wait_logged_port() {
  local file=$1 i line
  for ((i = 0; i < 100; i++)); do
    line=$(grep -m1 -o 'listening on [^ ]*' "$file" 2>/dev/null) && { echo "${line##*:}"; return 0; }
    sleep 0.05
  done
  echo "chain.sh: no 'listening on' in $file:" >&2; cat "$file" >&2
  return 1
}
# Waits until something listens on 127.0.0.1:PORT (without connecting to it).
wait_listen() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    [[ -n $(ss -Htln "sport = :$port" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
  echo "chain.sh: nothing listens on port $port" >&2
  return 1
}
# CPU seconds used so far by the PIDs given and their children (reaped: cutime/cstime; live:
# utime/stime), from /proc/*/stat.
cpu_of() {
  [[ $# -gt 0 ]] || { echo 0; return; }
  # cat, not awk, opens the files: a process that exits meanwhile must not abort the sum.
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v pids=" $* " -v hz="$(getconf CLK_TCK)" '
    { line = $0; pid = $1; sub(/^[0-9]+ \(.*\) /, "", line); split(line, f, " ")
      # f[1] state, f[2] ppid, f[12..15] utime stime cutime cstime
      if (index(pids, " " pid " ")) t += f[12] + f[13] + f[14] + f[15]
      else if (index(pids, " " f[2] " ")) t += f[12] + f[13] }
    END { printf "%.3f\n", t / hz }'
}

# --- the sink ------------------------------------------------------------------------------
"$BLAST" sink 0 >"$work/sink.out" 2>"$work/sink.err" &
pids+=($!)
SINK=$(wait_logged_port "$work/sink.err") || exit 1

declare -A entry relay_pids
chains=()

# --- roam ----------------------------------------------------------------------------------
"$ROAM" server --listen 127.0.0.1:0 --forward "127.0.0.1:$SINK" 2>"$work/server.log" &
rs=$!; pids+=($rs)
if SPORT=$(wait_logged_port "$work/server.log"); then
  "$ROAM" connect "127.0.0.1:$SPORT" --local 0 2>"$work/connect.log" &
  rc=$!; pids+=($rc)
  if LPORT=$(wait_logged_port "$work/connect.log"); then
    chains+=(roam); entry[roam]=$LPORT; relay_pids[roam]="$rc $rs"
  fi
fi

# --- roam --encrypt -----------------------------------------------------------------------
"$ROAM" server --listen 127.0.0.1:0 --forward "127.0.0.1:$SINK" --encrypt 2>"$work/server-enc.log" &
es=$!; pids+=($es)
if EPORT=$(wait_logged_port "$work/server-enc.log"); then
  "$ROAM" connect "127.0.0.1:$EPORT" --local 0 --encrypt 2>"$work/connect-enc.log" &
  ec=$!; pids+=($ec)
  if ELPORT=$(wait_logged_port "$work/connect-enc.log"); then
    chains+=(roam-enc); entry[roam-enc]=$ELPORT; relay_pids[roam-enc]="$ec $es"
  fi
fi

# --- socat ---------------------------------------------------------------------------------
if command -v socat >/dev/null; then
  P1=$("$BLAST" freeport); P2=$("$BLAST" freeport)
  # -b: a 256 KiB transfer buffer (socat's default is 8 KiB), the best socat can do here.
  socat -b 262144 "TCP-LISTEN:$P2,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$SINK" 2>"$work/socat2.log" &
  s2=$!; pids+=($s2)
  socat -b 262144 "TCP-LISTEN:$P1,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$P2" 2>"$work/socat1.log" &
  s1=$!; pids+=($s1)
  if wait_listen "$P1" && wait_listen "$P2"; then
    chains+=(socat); entry[socat]=$P1; relay_pids[socat]="$s1 $s2"
  fi
else
  echo "chain.sh: socat not installed (apt-get install socat): skipping that peer" >&2
fi

# --- haproxy -------------------------------------------------------------------------------
if command -v haproxy >/dev/null; then
  H1=$("$BLAST" freeport); H2=$("$BLAST" freeport)
  cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    option splice-request
    option splice-response
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend hop1
    bind 127.0.0.1:$H1
    default_backend to_hop2
backend to_hop2
    server hop2 127.0.0.1:$H2
frontend hop2
    bind 127.0.0.1:$H2
    default_backend to_sink
backend to_sink
    server sink 127.0.0.1:$SINK
CFG
  haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  hp=$!; pids+=($hp)
  if wait_listen "$H1" && wait_listen "$H2"; then
    chains+=(haproxy); entry[haproxy]=$H1; relay_pids[haproxy]=$hp
  fi
else
  echo "chain.sh: haproxy not installed (apt-get install haproxy): skipping that peer" >&2
fi

chains+=(direct); entry[direct]=$SINK; relay_pids[direct]=""

echo "chain.sh: $BYTES per run, $RUNS interleaved runs, chains: ${chains[*]} (127.0.0.1; sink :$SINK)"
declare -A gbps cpu
for ((r = 1; r <= RUNS; r++)); do
  for c in "${chains[@]}"; do
    before=$(cpu_of ${relay_pids[$c]})
    out=$("$BLAST" send 127.0.0.1 "${entry[$c]}" "$BYTES") || { echo "  run $r $c: FAILED ($out)" >&2; continue; }
    sleep 0.2  # let per-connection children (socat fork) exit and be reaped
    after=$(cpu_of ${relay_pids[$c]})
    read -r g cpg < <(awk -v o="$out" -v b0="$before" -v b1="$after" 'BEGIN {
      split(o, kv, /[ =]/); bytes = kv[2]; secs = kv[4];
      printf "%.3f %.3f\n", bytes * 8 / secs / 1e9, (b1 - b0) / (bytes / 1e9) }')
    gbps[$c]+="$g "; cpu[$c]+="$cpg "
    printf "  run %d %-8s %7.2f Gbit/s   relays %6.3f CPU-s/GB\n" "$r" "$c" "$g" "$cpg"
  done
done

# median min max of a list of numbers
stats() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "0 0 0"; exit }
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'; }

echo
printf "%-8s %26s %32s\n" chain "Gbit/s median (min-max)" "relay CPU-s/GB median (min-max)"
declare -A med
for c in "${chains[@]}"; do
  read -r m lo hi <<<"$(echo "${gbps[$c]:-}" | stats)"
  read -r cm clo chi <<<"$(echo "${cpu[$c]:-}" | stats)"
  med[$c]=$m
  printf "%-8s %10.2f (%6.2f-%6.2f) %16.3f (%5.3f-%5.3f)\n" "$c" "$m" "$lo" "$hi" "$cm" "$clo" "$chi"
done
best=""; bestv=0
for c in "${chains[@]}"; do
  [[ $c == roam || $c == roam-enc || $c == direct ]] && continue
  if awk -v a="${med[$c]}" -v b="$bestv" 'BEGIN{exit !(a > b)}'; then best=$c; bestv=${med[$c]}; fi
done
echo
if [[ -n $best && -n ${med[roam]:-} ]]; then
  awk -v r="${med[roam]}" -v b="$bestv" -v n="$best" -v d="${med[direct]}" 'BEGIN {
    printf "roam / best peer (%s): %.3f   target >= 1.0 -> %s\n", n, r / b, (r >= b ? "MET" : "NOT MET");
    printf "roam / direct: %.3f   %s / direct: %.3f\n", r / d, n, b / d }'
else
  echo "no peer chain to compare against"
fi
if [[ -n ${med[roam-enc]:-} && -n ${med[roam]:-} ]]; then
  awk -v e="${med[roam-enc]}" -v r="${med[roam]}" 'BEGIN {
    printf "roam-enc / roam (cost of --encrypt): %.3f\n", e / r }'
fi
