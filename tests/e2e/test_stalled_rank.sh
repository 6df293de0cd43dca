#!/usr/bin/env bash
# A stopped rank does not leave the job spinning: in a 2-rank mpirun job of
# `lintrain train` with parallel.timeout_s=5, SIGSTOP rank 1 while it trains;
# rank 0's collective watchdog must abort the whole job within STALL_LIMIT_S
# seconds (not before the 5 s), non-zero, with a message naming rank 1 as not
# answering and the collective, and no process of the job may be left.
# First a healthy run with a short timeout must finish normally (the watchdog
# never fires on a job that progresses, final checkpoint barrier included),
# and a pause of rank 1 shorter than the timeout must not end the job.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
mpirun_cmd
STALL_LIMIT_S=30  # 5 s timeout + up to 1 s to notice + 5 s for answers + the kill: about 11 s
JOB_PID=""
RANK_PIDS=""
cleanup() {
  local p
  for p in $RANK_PIDS; do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ -n "$JOB_PID" ]; then stop_tree "$JOB_PID"; fi
}
trap cleanup EXIT


SMALL="$REPO/tests/e2e/ckpt_small.yaml"

# 1. Healthy: 30 steps with a checkpoint at the end and a 1 s timeout.
"${MPIRUN[@]}" -np 2 "$LINTRAIN" train "$SMALL" --set train.steps=30 --set parallel.data=2 \
  --set parallel.timeout_s=1 --set checkpoint.every=10 --set run.out_dir="$WORK/healthy" >"$WORK/healthy.out" 2>&1 &
JOB_PID=$!
wait_exit "$JOB_PID" 120
JOB_PID=""
if [ "$EXIT_CODE" != 0 ]; then
  cat "$WORK/healthy.out"
  fail "healthy: a 2-rank run with parallel.timeout_s=1 ended with $EXIT_CODE instead of 0"
fi
if grep -q "has not completed after" "$WORK/healthy.out"; then
  cat "$WORK/healthy.out"
  fail "healthy: the watchdog fired on a progressing run"
fi
note "healthy: 30 steps with parallel.timeout_s=1 finished in ${WAITED_S}s"

# 2. Stalled: SIGSTOP rank 1 once it trains.
RUN_DIR="$WORK/run"
"${MPIRUN[@]}" -np 2 "$LINTRAIN" train "$SMALL" --set train.steps=1000000 --set train.log_every=1 \
  --set train.eval_every=0 --set checkpoint.every=0 --set parallel.data=2 --set parallel.timeout_s=5 \
  --set run.out_dir="$RUN_DIR" >"$WORK/train.out" 2>&1 &
JOB_PID=$!
for _ in $(seq 1 1200); do
  [ -s "$RUN_DIR/metrics.jsonl" ] && break
  kill -0 "$JOB_PID" 2>/dev/null || { cat "$WORK/train.out"; fail "train: mpirun ended before the first step"; }
  sleep 0.1
done
[ -s "$RUN_DIR/metrics.jsonl" ] || { cat "$WORK/train.out"; fail "train: no step logged in 120 s"; }
victim=$(rank_pid 1)
survivor=$(rank_pid 0)
[ -n "$victim" ] && [ -n "$survivor" ] || { cat "$WORK/train.out"; fail "train: cannot find the ranks' pids"; }
RANK_PIDS="$victim $survivor"
# A pause shorter than the timeout is no stall: the job trains on.
kill -STOP "$victim"
sleep 2
kill -CONT "$victim"
steps_before=$(wc -l <"$RUN_DIR/metrics.jsonl")
sleep 7
kill -0 "$JOB_PID" 2>/dev/null || { cat "$WORK/train.out"; fail "a 2 s pause of rank 1 (timeout 5 s) ended the job"; }
[ "$(wc -l <"$RUN_DIR/metrics.jsonl")" -gt "$steps_before" ] || fail "no step after rank 1 was continued"
note "a 2 s pause of rank 1 (parallel.timeout_s=5): the job trains on"
note "stopping rank 1 (pid $victim) with SIGSTOP; rank 0 is pid $survivor"
kill -STOP "$victim"
wait_exit "$JOB_PID" "$STALL_LIMIT_S"
cat "$WORK/train.out"
[ "$EXIT_CODE" != timeout ] || fail "the job still runs ${STALL_LIMIT_S}s after rank 1 was stopped"
JOB_PID=""
[ "$EXIT_CODE" -ne 0 ] || fail "the job exited 0 after rank 1 was stopped"
waited_tenths=${WAITED_S/./}
[ "$waited_tenths" -ge 50 ] || fail "the job ended ${WAITED_S}s after the stop, before parallel.timeout_s (5 s)"
line=$(grep "has not completed after" "$WORK/train.out" | head -1 || true)
[ -n "$line" ] || fail "no watchdog message in the output"
echo "$line" | grep -Eq "^lintrain: error \(rank 0 on [^)]*\): (all_reduce|all_gather|reduce_scatter|broadcast|barrier) on the world group \(2 ranks\) has not completed after 5 s \(parallel.timeout_s\) at step [0-9]+" ||
  fail "the message does not name rank 0, the collective, the timeout and the step: $line"
echo "$line" | grep -q "rank 1 (host [^)]*) did not answer — it is stopped, hung or dead" ||
  fail "the message does not name rank 1 as not answering: $line"
echo "$line" | grep -q "Set parallel.timeout_s higher" || fail "the message does not say how to change the timeout"
for _ in $(seq 1 50); do  # mpirun may exit while its kill of the ranks is landing
  process_running "$victim" || process_running "$survivor" || break
  sleep 0.1
done
if process_running "$victim"; then fail "the stopped rank 1 (pid $victim) outlived the job by 5 s"; fi
if process_running "$survivor"; then fail "rank 0 (pid $survivor) outlived the job by 5 s"; fi
RANK_PIDS=""
note "the job ended ${WAITED_S}s after rank 1 was stopped, exit code $EXIT_CODE, no process left"
note "PASSED"
