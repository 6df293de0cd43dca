#!/usr/bin/env bash
# `lintrain launch`: a 2-rank run of the example finishes with exit 0, prints
# the mpirun command it runs and writes its metrics; a failing run makes launch
# fail; bad arguments and a missing mpirun give one clear line and exit 1.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
mpirun_cmd
TINY="$REPO/examples/tiny.yaml"

# 1. Two ranks, three steps.
code=0
timeout 300 "$LINTRAIN" launch --nproc 2 "$TINY" --set train.steps=3 --set train.log_every=1 \
  --set parallel.data=2 --set run.out_dir="$WORK/run" >"$WORK/launch.out" 2>&1 || code=$?
cat "$WORK/launch.out"
[ "$code" -eq 0 ] || fail "lintrain launch --nproc 2 exited with $code"
grep -Eq '^lintrain launch: [^ ]*mpirun -np 2 .*--oversubscribe --bind-to none -x OMP_NUM_THREADS=[0-9]+ .* train ' \
  "$WORK/launch.out" || fail "launch did not print the mpirun command it runs"
[ -f "$WORK/run/metrics.jsonl" ] || fail "no $WORK/run/metrics.jsonl"
steps=$(train_losses "$WORK/run/metrics.jsonl" | wc -l)
[ "$steps" -eq 3 ] || fail "metrics.jsonl has $steps training steps, want 3"
note "launch --nproc 2: exit 0, 3 steps logged"

# 2. A run that fails on its ranks (an invalid value) fails launch too.
code=0
timeout 120 "$LINTRAIN" launch --nproc 2 "$TINY" --set train.steps=0 --set parallel.data=2 \
  --set run.out_dir="$WORK/bad" >"$WORK/bad.out" 2>&1 || code=$?
[ "$code" -ne 0 ] || { cat "$WORK/bad.out"; fail "launch of an invalid run exited 0"; }
note "a failing run: launch exit $code"

# 3. --nproc 0: one line, exit 1, nothing started.
code=0
"$LINTRAIN" launch --nproc 0 "$TINY" >"$WORK/nproc0.out" 2>&1 || code=$?
cat "$WORK/nproc0.out"
[ "$code" -eq 1 ] || fail "--nproc 0 exited with $code, want 1"
[ "$(wc -l <"$WORK/nproc0.out")" -eq 1 ] || fail "--nproc 0 printed more than one line"
grep -q "^lintrain: error: --nproc needs a positive whole number, got '0'" "$WORK/nproc0.out" ||
  fail "--nproc 0 did not say what is wrong"
if grep -q "^lintrain launch:" "$WORK/nproc0.out"; then fail "--nproc 0 started mpirun"; fi

# 4. No mpirun on PATH: the error names the Debian package.
code=0
PATH=/nonexistent "$LINTRAIN" launch --nproc 2 "$TINY" --set parallel.data=2 >"$WORK/nompirun.out" 2>&1 || code=$?
cat "$WORK/nompirun.out"
[ "$code" -eq 1 ] || fail "launch without mpirun exited with $code, want 1"
grep -q "^lintrain: error: mpirun not found.*openmpi-bin" "$WORK/nompirun.out" ||
  fail "launch without mpirun did not name the openmpi-bin package"

note "PASSED"
