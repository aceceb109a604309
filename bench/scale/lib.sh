# shellcheck shell=bash
# Shared by bench/soak/soak.sh and bench/scale/*.sh (source it): the binaries under test, the
# processes a script started, waiting with a deadline. Sets ROOT, BUILD, ROAM, LOADGEN, WORK, PIDS.
#
#   bl_init NAME            find the build (ROAM_BENCH_BUILD, default build-scale), check roam and
#                           roam_loadgen, make WORK=/tmp/roam-NAME-XXXXXX, install the traps
#   bl_cleanup              (the EXIT trap) stop every PID in PIDS, last started first (daemons
#                           before the `ip netns exec` wrappers), tear down the test bed if one was
#                           built, remove WORK unless KEEP=1
#   bl_wait_for COND SECS WHAT   poll COND every 50 ms; on timeout print and return 1
#   bl_child_of PID         the child of PID (`ip netns exec` forks: the daemon is its child)
BL_NAME=bench
bl_init() {
  BL_NAME=$1
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  BUILD=$(cd "${ROAM_BENCH_BUILD:-$ROOT/build-scale}" && pwd) || exit 1
  ROAM=$BUILD/roam
  LOADGEN=$BUILD/bench/roam_loadgen
  local b
  for b in "$ROAM" "$LOADGEN"; do
    [ -x "$b" ] || { echo "$BL_NAME: $b missing (ninja -C $BUILD roam roam_loadgen)"; exit 1; }
  done
  WORK=$(mktemp -d "/tmp/roam-$BL_NAME-XXXXXX")
  PIDS=()
  trap bl_cleanup EXIT
  trap 'echo "$BL_NAME: interrupted"; exit 130' INT TERM
}

bl_cleanup() {
  trap - EXIT INT TERM
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do wait "${PIDS[i]}" 2>/dev/null; done
  if declare -F tb_destroy >/dev/null; then
    tb_outage_stop 2>/dev/null
    tb_destroy
  fi
  if [ -n "${KEEP:-}" ]; then echo "$BL_NAME: logs kept in $WORK"; else rm -rf "$WORK"; fi
}

bl_wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1"; do
    if [ $SECONDS -ge $deadline ]; then echo "$BL_NAME: timed out waiting for $3"; return 1; fi
    sleep 0.05
  done
}

bl_child_of() { awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null; }
