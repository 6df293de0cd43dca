#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) in
# build-fuzz/ and runs each for a bounded time on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/; the repository's corpus is never written).
#
#   bash tests/fuzz/run.sh                      # every target, FUZZ_SECONDS each
#   FUZZ_SECONDS=300 bash tests/fuzz/run.sh fuzz_safetensors
#
# Exits non-zero when a target crashes, leaks, hits undefined behaviour, runs
# an input longer than 10 s or allocates past 2 GB, printing where the
# reproducer was written; replay one with
#   build-fuzz/tests/fuzz/<target> <reproducer>
# Environment: FUZZ_SECONDS (default 30 per target; 0 replays the seeds only), JOBS (build, default 2),
# FUZZ_BUILD (build folder, default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
JOBS=${JOBS:-2}
BUILD=${FUZZ_BUILD:-build-fuzz}
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(fuzz_config fuzz_safetensors fuzz_data)

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

# Only the fuzz targets: no tests, benchmarks or CUDA. The targets compile just
# the library sources they fuzz (tests/fuzz/CMakeLists.txt), so this takes a
# minute on 2 cores. Debug keeps assertions on; the targets add -O1.
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DLINTRAIN_FUZZ=ON \
  -DLINTRAIN_CUDA=OFF -DLINTRAIN_BUILD_TESTS=OFF -DLINTRAIN_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"

# Leaks are findings here (detect_leaks=1, libFuzzer's default), unlike in the
# ASan unit tests: those link OpenMP and OpenBLAS, whose thread pools live
# until exit, while the fuzz targets link neither (no OpenMP runtime, no
# BLAS), so whatever is still allocated after an input is ours, and a parser
# that leaks per input would grow without bound in a long run or in the
# checkpoint service.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
# fuzz_config also checks that a valid run file's resolved YAML (config.yaml,
# what a resume reads) parses back to the same text.
export LINTRAIN_FUZZ_ROUNDTRIP=${LINTRAIN_FUZZ_ROUNDTRIP:-1}

work="$BUILD/fuzz-run"
rm -rf "$work"
mkdir -p "$work"
export TMPDIR="$PWD/$work/tmp"  # fuzz_data's scratch files
mkdir -p "$TMPDIR"

max_len() {
  case "$1" in
    fuzz_config) echo 4096 ;;
    fuzz_safetensors) echo 4096 ;;
    fuzz_data) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

failed=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD/tests/fuzz/$t"
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$corpus/"
  dict=()
  case "$t" in
    fuzz_config) dict=(-dict=tests/fuzz/config.dict) ;;
    fuzz_safetensors) dict=(-dict=tests/fuzz/safetensors.dict) ;;
  esac
  echo "-- $t: ${SECONDS_PER_TARGET}s on $(ls "$corpus" | wc -l) seeds (log: $work/$t.log)"
  # FUZZ_SECONDS=0 only replays the seeds (libFuzzer's -max_total_time=0 would never stop).
  budget=(-max_total_time="$SECONDS_PER_TARGET")
  [ "$SECONDS_PER_TARGET" -gt 0 ] || budget=(-runs=0)
  rc=0
  "$bin" "${dict[@]}" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -artifact_prefix="$artifacts" -print_final_stats=1 \
    "$corpus" >"$work/$t.log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/$t.log" | sed 's/^/   /' || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "FAIL $t (exit $rc); the end of its log:"
    grep -v -E "^(#[0-9]+|INFO:)" "$work/$t.log" | tail -n 40 | sed 's/^/   /'
    for f in "$artifacts"*; do
      [ -e "$f" ] && echo "   reproducer: $f   (replay: $bin $f)"
    done
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${TARGETS[*]}: no findings in ${SECONDS_PER_TARGET}s each"
