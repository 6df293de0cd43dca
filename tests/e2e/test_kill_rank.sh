#!/usr/bin/env bash
# A dead rank ends the job: in a 2-rank mpirun job, SIGKILL rank 1 and the
# whole job (mpirun and rank 0) must be gone within KILL_LIMIT_S seconds with a
# non-zero exit code, instead of rank 0 waiting forever in a collective.
# First with tests/e2e/mpi_probe (the MPI machinery alone), then with
# `lintrain train` on a run long enough to still be training when killed.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
mpirun_cmd
KILL_LIMIT_S=15  # measured about 1 s on 2 cores; generous for a loaded CI machine
JOB_PID=""
trap '[ -n "$JOB_PID" ] && stop_tree "$JOB_PID"' EXIT


# kill_rank_1_and_check NAME OUTPUT_FILE: SIGKILLs rank 1 of the running job
# JOB_PID and checks that mpirun ends in time, non-zero, and takes rank 0 along.
kill_rank_1_and_check() {
  local name=$1 out=$2 victim survivor
  victim=$(rank_pid 1)
  survivor=$(rank_pid 0)
  if [ -z "$victim" ] || [ -z "$survivor" ]; then
    cat "$out"
    fail "$name: cannot find the ranks' pids"
  fi
  note "$name: killing rank 1 (pid $victim); rank 0 is pid $survivor"
  kill -KILL "$victim"
  wait_exit "$JOB_PID" "$KILL_LIMIT_S"
  cat "$out"
  [ "$EXIT_CODE" != timeout ] || fail "$name: mpirun still running ${KILL_LIMIT_S}s after rank 1 was killed"
  [ "$EXIT_CODE" -ne 0 ] || fail "$name: mpirun exited 0 after rank 1 was killed"
  for _ in $(seq 1 50); do  # mpirun may exit while its SIGKILL of rank 0 is landing
    process_running "$survivor" || break
    sleep 0.1
  done
  if process_running "$survivor"; then fail "$name: rank 0 (pid $survivor) outlived the job by 5 s"; fi
  note "$name: the job ended ${WAITED_S}s after the kill with exit code $EXIT_CODE"
  JOB_PID=""
}

# 1. The probe: both ranks report, then sleep; kill one.
if [ -n "$PROBE" ]; then
  "${MPIRUN[@]}" -np 2 "$PROBE" --sleep 120 >"$WORK/probe.out" 2>&1 &
  JOB_PID=$!
  for _ in $(seq 1 300); do
    [ "$(grep -c 'mpi_probe: rank' "$WORK/probe.out")" -eq 2 ] && grep -q 'allreduce ok 2' "$WORK/probe.out" && break
    kill -0 "$JOB_PID" 2>/dev/null || { cat "$WORK/probe.out"; fail "probe: mpirun ended early"; }
    sleep 0.1
  done
  grep -q 'allreduce ok 2' "$WORK/probe.out" || { cat "$WORK/probe.out"; fail "probe: ranks did not start in 30 s"; }
  kill_rank_1_and_check probe "$WORK/probe.out"
else
  note "no LINTRAIN_MPI_PROBE: probe check skipped"
fi

# 2. lintrain: wait until training has logged a step, then kill rank 1.
RUN_DIR="$WORK/run"
"${MPIRUN[@]}" -np 2 "$LINTRAIN" train "$REPO/examples/tiny.yaml" --set train.steps=100000 \
  --set train.log_every=1 --set train.eval_every=0 --set parallel.data=2 \
  --set run.out_dir="$RUN_DIR" >"$WORK/train.out" 2>&1 &
JOB_PID=$!
for _ in $(seq 1 1200); do
  [ -s "$RUN_DIR/metrics.jsonl" ] && break
  kill -0 "$JOB_PID" 2>/dev/null || { cat "$WORK/train.out"; fail "train: mpirun ended before the first step"; }
  sleep 0.1
done
[ -s "$RUN_DIR/metrics.jsonl" ] || { cat "$WORK/train.out"; fail "train: no step logged in 120 s"; }
kill_rank_1_and_check train "$WORK/train.out"

note "PASSED"
