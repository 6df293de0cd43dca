#!/usr/bin/env bash
# Sets up a fresh machine and runs lintrain's whole test suite:
#   1. installs the dependencies (scripts/install-deps.sh, idempotent)
#   2. builds Release and runs every test with ctest (unit, multi-rank, end-to-end)
#   3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
#      the unit tests under it
#   4. builds the libFuzzer targets (clang, ASan + UBSan) and runs each for
#      FUZZ_SECONDS (default 30) on its seed corpus (tests/fuzz/run.sh)
# Exits non-zero when anything fails. Build folders: build/, build-asan/, build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

bash scripts/install-deps.sh

echo "== Release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
echo "== Tests (Release)"
ctest --test-dir build --output-on-failure -j"$JOBS"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (unit tests)"
# -O1 -g1 (line tables, enough for ASan's stack traces) compiles about a third
# faster than RelWithDebInfo's -O2 -g, which keeps the whole script inside
# CI's 40 minutes on 2 cores.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINTRAIN_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DLINTRAIN_CUDA=OFF -DLINTRAIN_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
# OpenMP's runtime keeps thread pools alive at exit: not leaks of ours.
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" -L unit

echo "== Fuzzing (libFuzzer, ASan+UBSan)"
bash tests/fuzz/run.sh
