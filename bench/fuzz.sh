#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS] [TARGET...] — build the libFuzzer targets with clang-14 and run each for
# SECONDS (default 60) over a copy of its checked-in corpus; print per target the executions,
# exec/s, coverage (cov = edges, ft = features, from libFuzzer's final stats), corpus size and
# crashes. Exits non-zero if any target crashed (the reproducer is kept and named).
#
# Builds in build-fuzz-sh (its own build dir: -DROAM_FUZZ=ON, clang-14, ASan + UBSan in the fuzzed
# core). Only the fuzz targets are built. The checked-in corpora are never modified: new inputs
# land in a temporary directory (set ROAM_FUZZ_KEEP=1 to keep it and merge by hand).
#   ROAM_FUZZ_JOBS   build parallelism (default 2)
#   ROAM_FUZZ_BUILD  build directory (default build-fuzz-sh)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
build=${ROAM_FUZZ_BUILD:-$here/build-fuzz-sh}
jobs=${ROAM_FUZZ_JOBS:-2}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # Every target fuzz/CMakeLists.txt builds (the `fuzzers` custom target lists them).
  mapfile -t targets < <(sed -n 's/^foreach(target \(.*\))$/\1/p' "$here/fuzz/CMakeLists.txt" | tr ' ' '\n')
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found in fuzz/CMakeLists.txt" >&2; exit 1; }

command -v clang++-14 >/dev/null || { echo "clang++-14 is not installed (apt-get install clang-14)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$build/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$here" -B "$build" -G Ninja -DROAM_FUZZ=ON -DROAM_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
fi
ninja -C "$build" -j"$jobs" "${targets[@]}" >/dev/null

work=$(mktemp -d /tmp/roam-fuzz.XXXXXX)
cleanup() { [ "${ROAM_FUZZ_KEEP:-0}" = 1 ] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT

printf '%-16s %8s %12s %10s %8s %8s %8s %8s\n' target seconds executions exec/s cov ft corpus crashes
status=0
for t in "${targets[@]}"; do
  bin=$(find "$build/fuzz" -maxdepth 1 -type f -name "$t" -perm -u+x | head -n1)
  [ -n "$bin" ] || { echo "$t: not built" >&2; status=1; continue; }
  corpus="$work/$t/corpus"
  artifacts="$work/$t/artifacts/"
  mkdir -p "$corpus" "$artifacts"
  cp -r "$here/fuzz/corpus/$t/." "$corpus/" 2>/dev/null || true
  log="$work/$t/log"
  set +e
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts" \
    -timeout=10 -rss_limit_mb=2048 "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  # libFuzzer's final stats: stat::number_of_executed_units, stat::average_exec_per_sec; the last
  # "#N ... cov: C ft: F corp: K/..." line has the coverage.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$artifacts" -type f | wc -l)
  printf '%-16s %8s %12s %10s %8s %8s %8s %8s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    mkdir -p "$here/fuzz-crashes/$t"
    cp "$artifacts"* "$here/fuzz-crashes/$t/" 2>/dev/null || true
    echo "  $t: exit $rc; reproducers in fuzz-crashes/$t/; last lines of its log:" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
  fi
done
exit $status
