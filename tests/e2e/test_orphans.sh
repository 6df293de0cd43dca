#!/usr/bin/env bash
# No orphans: the processes of a `lintrain launch --nproc 2` job (the
# launcher, mpirun, any orted, both ranks) die together.
#   1. SIGKILL the launcher while the ranks train: within ORPHAN_LIMIT_S no
#      process of the job may be left (mpirun gets SIGTERM from the kernel and
#      ends the ranks).
#   2. SIGKILL mpirun itself: the ranks must go too (each rank started by a
#      launcher dies with its parent), and the launcher exits non-zero.
#   3. A plain `lintrain train` started from a shell that then exits keeps
#      running (nohup-style runs are not tied to their shell).
# The job's processes are found by a tag in their environment that only the
# launcher and its descendants carry.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
mpirun_cmd
ORPHAN_LIMIT_S=10  # measured well under 1 s on 2 cores
TAG="LINTRAIN_ORPHAN_TEST=$WORK"
LAUNCHER=""
trap 'kill_tagged' EXIT

# tagged_pids: every live (not zombie) process whose environment holds TAG.
tagged_pids() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" != "$$" ] || continue
    if tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "$TAG" && process_running "$pid"; then echo "$pid"; fi
  done
}
kill_tagged() {
  local p
  for p in $(tagged_pids); do kill -KILL "$p" 2>/dev/null || true; done
}
describe() {
  local p
  for p in "$@"; do echo "  $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"; done
}

SMALL="$REPO/tests/e2e/ckpt_small.yaml"
# start_job NAME: starts the launcher in the background (LAUNCHER) and waits
# until the ranks have logged a step.
start_job() {
  local run_dir="$WORK/$1"
  env "$TAG" "$LINTRAIN" launch --nproc 2 --threads-per-rank 1 "$SMALL" --set train.steps=1000000 \
    --set train.eval_every=0 --set checkpoint.every=0 --set parallel.data=2 \
    --set run.out_dir="$run_dir" >"$WORK/$1.out" 2>&1 &
  LAUNCHER=$!
  for _ in $(seq 1 1200); do
    [ -s "$run_dir/metrics.jsonl" ] && break
    kill -0 "$LAUNCHER" 2>/dev/null || { cat "$WORK/$1.out"; fail "$1: the launcher ended before the first step"; }
    sleep 0.1
  done
  [ -s "$run_dir/metrics.jsonl" ] || { cat "$WORK/$1.out"; fail "$1: no step logged in 120 s"; }
}

# expect_all_gone NAME: waits up to ORPHAN_LIMIT_S for every tagged process to end.
expect_all_gone() {
  local name=$1 tenths=0 left
  left=$(tagged_pids)
  while [ -n "$left" ] && [ "$tenths" -lt $((ORPHAN_LIMIT_S * 10)) ]; do
    sleep 0.1
    tenths=$((tenths + 1))
    left=$(tagged_pids)
  done
  if [ -n "$left" ]; then
    # shellcheck disable=SC2086  # a list of pids
    describe $left
    fail "$name: processes of the job still run ${ORPHAN_LIMIT_S}s later"
  fi
  GONE_S="$((tenths / 10)).$((tenths % 10))"
}

# 1. kill -9 the launcher.
start_job launcher
# shellcheck disable=SC2207
pids=($(tagged_pids))
[ "${#pids[@]}" -ge 4 ] || { describe "${pids[@]}"; fail "launcher: expected launcher, mpirun and 2 ranks, found ${#pids[@]}"; }
note "launcher: the job is ${#pids[@]} processes; killing the launcher (pid $LAUNCHER) with SIGKILL"
kill -KILL "$LAUNCHER"
wait "$LAUNCHER" 2>/dev/null || true
expect_all_gone launcher
note "launcher: no process of the job left ${GONE_S}s after the kill"

# 2. kill -9 mpirun: the ranks go with it, the launcher fails.
start_job mpirun
mpirun_pid=$(pgrep -P "$LAUNCHER" mpirun || true)
[ -n "$mpirun_pid" ] || fail "mpirun: cannot find mpirun among the launcher's children"
note "mpirun: killing mpirun (pid $mpirun_pid) with SIGKILL"
kill -KILL "$mpirun_pid"
wait_exit "$LAUNCHER" "$ORPHAN_LIMIT_S"
[ "$EXIT_CODE" != timeout ] || fail "mpirun: the launcher still runs ${ORPHAN_LIMIT_S}s after mpirun was killed"
[ "$EXIT_CODE" -ne 0 ] || fail "mpirun: the launcher exited 0 after mpirun was killed"
expect_all_gone mpirun
note "mpirun: launcher exited $EXIT_CODE, no process of the job left ${GONE_S}s after the kill"

# 3. A shell starts `lintrain train` in the background and exits: it keeps training.
bash -c 'env "$1" "$2" train "$3" --set train.steps=1000000 --set train.eval_every=0 --set checkpoint.every=0 \
  --set run.out_dir="$4" >"$4.out" 2>&1 &' _ "$TAG" "$LINTRAIN" "$SMALL" "$WORK/plain"
for _ in $(seq 1 600); do
  [ -s "$WORK/plain/metrics.jsonl" ] && break
  sleep 0.1
done
[ -s "$WORK/plain/metrics.jsonl" ] || { cat "$WORK/plain.out" 2>/dev/null; fail "plain: no step logged in 60 s"; }
sleep 1
[ -n "$(tagged_pids)" ] || { cat "$WORK/plain.out"; fail "plain: lintrain train died with the shell that started it"; }
note "plain: lintrain train outlives the shell that started it"
kill_tagged

note "PASSED"
