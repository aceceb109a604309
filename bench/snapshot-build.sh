#!/usr/bin/env bash
# Builds the benchmarks against the last *committed* sources (git HEAD) plus the working tree's
# bench/, in a snapshot directory, so that edits in progress elsewhere in the tree neither break
# nor change what is measured. Usage: bench/snapshot-build.sh [SNAPSHOT_DIR]  (prints the build dir)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
snap=${1:-/tmp/roam-bench-snapshot}
mkdir -p "$snap/src"
git -C "$repo" archive HEAD | tar -x -C "$snap/src"
rm -rf "$snap/src/bench" && cp -r "$repo/bench" "$snap/src/bench"
cmake -S "$snap/src" -B "$snap/build" -DCMAKE_BUILD_TYPE=Release ${ROAM_BENCH_CMAKE_FLAGS:-} >/dev/null
make -C "$snap/build" -j2 roam roam_bench_throughput roam_bench_latency tcp_blast >&2
echo "$snap/build"
