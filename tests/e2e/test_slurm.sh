#!/usr/bin/env bash
# examples/slurm/pretrain.sbatch on a real one-node Slurm (scripts/slurm-local.sh,
# skipped where Slurm cannot run): a 2-task job completes, and its losses are
# exactly those of `mpirun -np 2` on the same run file (same ranks, same data,
# same arithmetic: bit-identical). First with tests/e2e/mpi_probe in place of
# lintrain (Slurm + srun --mpi=pmix + Open MPI alone), then with lintrain;
# then a job preempted by SIGTERM, requeued, and resumed exactly.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
mpirun_cmd
JOB_LIMIT_S=300

# A private cluster under a short /tmp path (Unix socket paths are limited).
LINTRAIN_SLURM_DIR=$(mktemp -d /tmp/lintrain-slurm-test.XXXXXX)
export LINTRAIN_SLURM_DIR
SLURM_LOCAL="$REPO/scripts/slurm-local.sh"
cleanup() {
  bash "$SLURM_LOCAL" stop >/dev/null 2>&1 || true
  # Keep the daemons' logs with the test's scratch files, for a failed run.
  cp -r "$LINTRAIN_SLURM_DIR/log" "$WORK/slurm-log" 2>/dev/null || true
  rm -rf "$LINTRAIN_SLURM_DIR"
}
trap cleanup EXIT
code=0
bash "$SLURM_LOCAL" start >"$WORK/slurm-start.out" 2>&1 || code=$?
cat "$WORK/slurm-start.out"
if [ "$code" -eq 77 ]; then
  skip "$(sed -n 's/^slurm-local: cannot run Slurm here: //p' "$WORK/slurm-start.out" | head -n 1)"
fi
[ "$code" -eq 0 ] || fail "scripts/slurm-local.sh start exited with $code"
eval "$(bash "$SLURM_LOCAL" env)"

# submit NAME LINTRAIN_BIN ARGS...: submits pretrain.sbatch with 2 tasks of 1
# CPU (output in $WORK/NAME.out) and sets JOB_ID.
submit() {
  local name=$1 bin=$2
  shift 2
  JOB_ID=$(cd "$REPO" && LINTRAIN_BIN="$bin" timeout 30 sbatch --parsable --job-name="$name" --nodes=1 \
    --ntasks-per-node=2 --cpus-per-task=1 --time=10:00 --output="$WORK/$name.out" \
    examples/slurm/pretrain.sbatch "$@") || fail "$name: sbatch failed"
  note "$name: submitted job $JOB_ID"
}

# wait_job NAME SECONDS: waits for job JOB_ID to end; sets JOB_STATE to
# "JobState=... ExitCode=..." and WAITED_S.
wait_job() {
  local name=$1 limit=$2 tenths=0
  while [ -n "$(timeout 10 squeue -h -j "$JOB_ID" 2>/dev/null)" ] && [ "$tenths" -lt $((limit * 10)) ]; do
    sleep 0.2
    tenths=$((tenths + 2))
  done
  WAITED_S="$((tenths / 10)).$((tenths % 10))"
  if [ -n "$(timeout 10 squeue -h -j "$JOB_ID" 2>/dev/null)" ]; then
    timeout 10 scancel "$JOB_ID" || true
    cat "$WORK/$name.out" 2>/dev/null || true
    fail "$name: job $JOB_ID did not finish in ${limit}s"
  fi
  JOB_STATE=$(timeout 10 scontrol show job "$JOB_ID" | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | tr '\n' ' ' || true)
  JOB_STATE=${JOB_STATE% }
  cat "$WORK/$name.out" 2>/dev/null || true
  note "$name: job $JOB_ID ended after ${WAITED_S}s: $JOB_STATE"
}

expect_completed() {
  [ "$JOB_STATE" = "JobState=COMPLETED ExitCode=0:0" ] || fail "$1: job $JOB_ID ended with $JOB_STATE"
}

# 1. The probe: both tasks are ranks of one MPI job.
if [ -n "$PROBE" ]; then
  submit probe "$PROBE" examples/tiny.yaml
  wait_job probe 120
  expect_completed probe
  for r in 0 1; do
    grep -q "mpi_probe: rank $r of 2 " "$WORK/probe.out" || fail "probe: rank $r did not report"
  done
  grep -q "mpi_probe: allreduce ok 2" "$WORK/probe.out" || fail "probe: no allreduce across the two tasks"

  # A dead rank ends the job under Slurm too (srun --kill-on-bad-exit, PMIx).
  submit probe-kill "$PROBE" examples/tiny.yaml --sleep 120
  # Wait for rank 1's own line: srun forwards each task's output separately,
  # so rank 0's "allreduce ok" can arrive before it.
  for _ in $(seq 1 600); do
    grep -q "^mpi_probe: rank 1 of 2 pid" "$WORK/probe-kill.out" 2>/dev/null && break
    [ -n "$(timeout 10 squeue -h -j "$JOB_ID" 2>/dev/null)" ] || break
    sleep 0.1
  done
  victim=$(sed -n 's/^mpi_probe: rank 1 of 2 pid \([0-9]*\) .*/\1/p' "$WORK/probe-kill.out")
  [ -n "$victim" ] || { cat "$WORK/probe-kill.out"; fail "probe-kill: rank 1 did not report in 60 s"; }
  note "probe-kill: killing rank 1 (pid $victim)"
  kill -KILL "$victim"
  wait_job probe-kill 30
  case "$JOB_STATE" in
    "JobState=COMPLETED"*) fail "probe-kill: the job completed although rank 1 was killed" ;;
  esac
else
  note "no LINTRAIN_MPI_PROBE: probe check skipped"
fi

# 2. lintrain under Slurm, then the same run under mpirun.
ARGS=(--set train.steps=5 --set train.log_every=1 --set parallel.data=2)
submit train "$LINTRAIN" "$REPO/examples/tiny.yaml" "${ARGS[@]}" --set run.out_dir="$WORK/slurm-run"
wait_job train "$JOB_LIMIT_S"
expect_completed train
code=0
OMP_NUM_THREADS=1 timeout "$JOB_LIMIT_S" "${MPIRUN[@]}" -np 2 "$LINTRAIN" train "$REPO/examples/tiny.yaml" \
  "${ARGS[@]}" --set run.out_dir="$WORK/mpirun-run" >"$WORK/mpirun.out" 2>&1 || code=$?
[ "$code" -eq 0 ] || { cat "$WORK/mpirun.out"; fail "mpirun -np 2 lintrain train exited with $code"; }

for run in slurm-run mpirun-run; do
  [ -s "$WORK/$run/metrics.jsonl" ] || fail "no $WORK/$run/metrics.jsonl (rank 0 writes it)"
done
train_losses "$WORK/slurm-run/metrics.jsonl" >"$WORK/slurm.losses"
train_losses "$WORK/mpirun-run/metrics.jsonl" >"$WORK/mpirun.losses"
[ "$(wc -l <"$WORK/slurm.losses")" -eq 5 ] || fail "the Slurm run logged $(wc -l <"$WORK/slurm.losses") steps, want 5"
if ! diff "$WORK/slurm.losses" "$WORK/mpirun.losses"; then
  fail "the Slurm run's losses (<) differ from mpirun's (>)"
fi
note "5 losses identical under srun and mpirun: $(awk '{print $2}' "$WORK/slurm.losses" | tr '\n' ' ')"

# 3. Preemption: SIGTERM to the job's ranks mid-run. They finish their step,
# save a checkpoint and exit 75; pretrain.sbatch requeues the job, which
# resumes from that checkpoint and completes with exactly the losses of an
# uninterrupted run (mpirun, same layout).
PREEMPT=("$REPO/tests/e2e/ckpt_small.yaml" --set run.seed=11 --set train.steps=600 --set train.micro_batch=2
  --set train.eval_every=0 --set train.eval_batches=1 --set train.log_every=100 --set parallel.data=2
  --set checkpoint.every=100)
submit preempt "$LINTRAIN" "${PREEMPT[@]}" --set run.out_dir="$WORK/preempt-run"
for _ in $(seq 1 600); do
  grep -q "^checkpoint step 100:" "$WORK/preempt.out" 2>/dev/null && break
  sleep 0.1
done
grep -q "^checkpoint step 100:" "$WORK/preempt.out" || { cat "$WORK/preempt.out"; fail "preempt: no checkpoint in 60 s"; }
timeout 10 scancel --signal=TERM "$JOB_ID" || fail "preempt: scancel --signal=TERM failed"
note "preempt: SIGTERM sent to the ranks of job $JOB_ID"
wait_job preempt "$JOB_LIMIT_S"
expect_completed preempt
grep -q "^lintrain: stopped by SIGTERM after step [0-9]*; checkpoint .* saved" "$WORK/preempt.out" ||
  fail "preempt: the ranks did not stop with a checkpoint"
grep -q "^pretrain.sbatch: job $JOB_ID stopped with a checkpoint; requeueing it" "$WORK/preempt.out" ||
  fail "preempt: the job was not requeued"
grep -q "^lintrain: resumed from .* at step [0-9]* (written by DP 2 x SP 1;" "$WORK/preempt.out" ||
  fail "preempt: the requeued job did not resume"
stopped=$(sed -n 's/^lintrain: stopped by SIGTERM after step \([0-9]*\);.*/\1/p' "$WORK/preempt.out")
code=0
OMP_NUM_THREADS=1 timeout "$JOB_LIMIT_S" "${MPIRUN[@]}" -np 2 "$LINTRAIN" train "${PREEMPT[@]}" \
  --set run.out_dir="$WORK/preempt-straight" >"$WORK/preempt-straight.out" 2>&1 || code=$?
[ "$code" -eq 0 ] || { cat "$WORK/preempt-straight.out"; fail "the uninterrupted mpirun run exited with $code"; }
train_losses "$WORK/preempt-run/metrics.jsonl" >"$WORK/preempt.losses"
train_losses "$WORK/preempt-straight/metrics.jsonl" >"$WORK/preempt-straight.losses"
[ "$(wc -l <"$WORK/preempt.losses")" -eq 600 ] || fail "preempt: $(wc -l <"$WORK/preempt.losses") steps logged, want 600"
diff -q "$WORK/preempt.losses" "$WORK/preempt-straight.losses" >/dev/null ||
  fail "preempt: the requeued run's losses differ from the uninterrupted run's"
cmp -s "$WORK/preempt-run/model.safetensors" "$WORK/preempt-straight/model.safetensors" ||
  fail "preempt: the final weights differ from the uninterrupted run's"
note "preempt: stopped after step $stopped, requeued, resumed: 600 losses and the weights bit-identical"
note "PASSED"
