#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for
# SECONDS (default 60), then prints one line per target and exits non-zero if
# any target crashed (or leaked, timed out, ran out of memory).
#
#   bash tests/fuzz/run.sh [SECONDS]        env: FUZZ_BUILD_DIR (build-fuzz), FUZZ_JOBS (2),
#                                                FUZZ_TARGETS ("job_spec idx_reader checkpoint shard_index safetensors")
#
# Inputs: the seeds in tests/fuzz/corpus/<target>/ and every past crash in
# tests/fuzz/regressions/<target>/ (both read-only); what the fuzzer learns
# goes to build-fuzz/fuzz-corpus/<target>/ and is reused by the next run.
# A crashing input lands in build-fuzz/fuzz-artifacts/<target>/: fix the code,
# then copy the input to tests/fuzz/regressions/<target>/ so the unit test
# fuzz_regressions_test replays it forever.
set -uo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"job_spec idx_reader checkpoint shard_index safetensors"}
mkdir -p "$build"

if [[ -f "$build/CMakeCache.txt" ]] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang' "$build/CMakeCache.txt"; then
  echo "run.sh: $build was configured with another compiler; remove it or set FUZZ_BUILD_DIR" >&2
  exit 2
fi
if ! CC=clang CXX=clang++ cmake -S . -B "$build" -DDTRAIN_FUZZ=ON -DDTRAIN_NO_CUDA=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/fuzz-configure.log" 2>&1; then
  tail -30 "$build/fuzz-configure.log" >&2
  echo "run.sh: configuring $build failed (log: $build/fuzz-configure.log)" >&2
  exit 2
fi
build_targets=()
for t in $targets; do build_targets+=("fuzz_$t"); done
if ! cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${build_targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  grep -E "error|Error" "$build/fuzz-build.log" | head -30 >&2
  echo "run.sh: building the fuzz targets failed (log: $build/fuzz-build.log)" >&2
  exit 2
fi

rows=()
failed=0
for t in $targets; do
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  log="$build/fuzz-logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  rm -f "$artifacts"/*
  dict=()
  [[ -f "tests/fuzz/$t.dict" ]] && dict=(-dict="tests/fuzz/$t.dict")
  echo "== fuzz_$t for ${seconds}s (log: $log)"
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 "${dict[@]}" -artifact_prefix="$artifacts/" \
    "$corpus" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | awk '{print $2 " edges, " $4 " features"}')
  corp=$(grep -oE 'corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1 | awk '{print $2}')
  crashes=$(find "$artifacts" -type f | wc -l)
  if [[ $rc -ne 0 && $crashes -eq 0 ]]; then crashes=1; fi
  if [[ $crashes -ne 0 ]]; then
    failed=1
    grep -m1 -E "ERROR: |SUMMARY: |deadly signal|what\(\)" "$log" | sed "s/^/   $t: /"
    find "$artifacts" -type f | sed "s/^/   input: /"
  fi
  rows+=("$(printf '%-12s %12s %10s  %-28s %-12s %7s' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${corp:-?}" "$crashes")")
done

echo
printf '%-12s %12s %10s  %-28s %-12s %7s\n' target runs exec/s coverage corpus crashes
for r in "${rows[@]}"; do echo "$r"; done
exit $failed
