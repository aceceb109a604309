#!/usr/bin/env bash
# Quick start, part 2: the whole test suite, tier by tier.
#   1. unit + sim (+ fuzz corpus replay)   fast, no I/O
#   2. loopback                            real processes on 127.0.0.1
#   3. netns                               network namespaces (skip with a reason without root)
#   4. the first two tiers again under AddressSanitizer + UndefinedBehaviorSanitizer
#   5. each fuzzer for a short while (clang/libFuzzer)
# Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh || exit 1
JOBS=$(nproc)
FUZZ_SECONDS=${ROAM_FUZZ_SECONDS:-10}
passed=0
failed=0
status=0

tally() {  # reads a ctest log, adds its counts
  local log=$1 line total fails
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -n "$line" ]; then
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    fails=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
    passed=$((passed + total - fails))
    failed=$((failed + fails))
  fi
}

run_tier() {  # build-dir label-regex name
  local dir=$1 labels=$2 name=$3 log
  log=$(mktemp)
  echo "=== tier: $name ($dir, labels $labels)"
  (cd "$dir" && ctest -L "$labels" --output-on-failure --timeout 600 -j1) 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  tally "$log"
  rm -f "$log"
  if [ "$rc" -ne 0 ]; then status=1; fi
}

# ccache (installed by deps.sh) makes a rebuild on the same machine cheap; results are the same.
# Paths are made relative to the checkout, so a clone in another folder hits the same cache.
LAUNCHER=()
if command -v ccache >/dev/null; then
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi

echo "=== build (RelWithDebInfo, g++)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" >/dev/null &&
  cmake --build build -j"$JOBS" || exit 1
run_tier build '^(unit|sim)$' "unit + sim"
run_tier build '^loopback$' "loopback"
run_tier build '^netns$' "netns"

echo "=== build (ASan + UBSan, g++)"
# Only what the unit and sim tiers run (the loopback and netns tiers use the plain build).
# Every executable a test labelled unit or sim runs must be listed here (ctest fails a test whose
# executable was not built).
ASAN_TARGETS="roam_unit_tests roam_sim_tests roam_vector_tests roam_status_unit_tests
  roam_adversarial_unit_tests fuzz_frames_replay fuzz_handshake_replay fuzz_session_replay
  fuzz_socks5_replay fuzz_dispatch_replay fuzz_policy_replay fuzz_known_hosts_replay"
if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DROAM_SANITIZE=ON -DROAM_BENCH=OFF "${LAUNCHER[@]}" >/dev/null &&
   cmake --build build-asan -j"$JOBS" --target $ASAN_TARGETS; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_tier build-asan '^(unit|sim)$' "unit + sim under ASan+UBSan"
else
  echo "sanitizer build failed"; status=1; failed=$((failed + 1))
fi

echo "=== fuzzers (clang-14 libFuzzer, ${FUZZ_SECONDS}s each)"
if command -v clang++-14 >/dev/null; then
  if CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DROAM_FUZZ=ON -DROAM_BENCH=OFF "${LAUNCHER[@]}" \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build-fuzz -j"$JOBS" --target fuzzers; then
    for f in build-fuzz/fuzz/fuzz_*; do
      [ -x "$f" ] || continue
      t=$(basename "$f")
      corpus=$(mktemp -d)
      cp -r "fuzz/corpus/$t/." "$corpus/" 2>/dev/null || true
      if "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus" >"$corpus.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -E 'stat::number_of_executed_units' "$corpus.log" | awk '{print $2}') runs)"
        passed=$((passed + 1))
      else
        echo "fuzz $t: FAILED"; tail -40 "$corpus.log"; failed=$((failed + 1)); status=1
      fi
      rm -rf "$corpus" "$corpus.log"
    done
  else
    echo "fuzzer build failed"; status=1; failed=$((failed + 1))
  fi
else
  echo "fuzzers skipped: clang++-14 not installed"
fi

echo
echo "total: $passed passed, $failed failed"
exit $status
