#!/usr/bin/env bash
# Builds roam and the benchmarks from a snapshot of the sources, so that edits that others make
# while a benchmark runs neither break the build nor change what is measured.
#   ROAM_BENCH_SOURCE=worktree (default)  the working tree as it is now
#   ROAM_BENCH_SOURCE=head                the last commit (git HEAD)
#   ROAM_BENCH_CMAKE_FLAGS=...            extra cmake flags
# Usage: bench/snapshot-build.sh [SNAPSHOT_DIR]   (prints the build directory on stdout)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
snap=${1:-/tmp/roam-bench-snapshot}
rm -rf "$snap/src"
mkdir -p "$snap/src"
if [[ ${ROAM_BENCH_SOURCE:-worktree} == head ]]; then
  git -C "$repo" archive HEAD | tar -x -C "$snap/src"
  rm -rf "$snap/src/bench" && cp -r "$repo/bench" "$snap/src/bench"
else
  tar -C "$repo" --exclude='./build*' --exclude=./.git -cf - . | tar -x -C "$snap/src"
fi
cmake -S "$snap/src" -B "$snap/build" -DCMAKE_BUILD_TYPE=Release ${ROAM_BENCH_CMAKE_FLAGS:-} >/dev/null
make -C "$snap/build" -j2 roam roam_bench_throughput roam_bench_latency tcp_blast >&2
echo "$snap/build"
