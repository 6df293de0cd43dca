#!/usr/bin/env bash
# How a run starts and ends when something gets in the way (issue 12):
#   1. a stop signal during the final evaluation: the weights are exported,
#      exit 75; the rerun finishes the evaluation (once) and exits 0; one cut
#      short mid-run is run first by the resumed run;
#   2. kill -9 between the final checkpoint and the export: the rerun writes
#      the export, byte for byte the one an undisturbed run writes;
#   3. the final export fails with checkpoint.every = 0: a checkpoint of the
#      last step is saved, the error says so, the rerun exports from it; a
#      failing periodic export only warns;
#   4. stop signals during start-up and a second SIGTERM while stopping exit 75;
#   5. a second run on a busy run.out_dir is refused before it writes there;
#   6. a run none of whose steps was applied fails, exporting nothing;
#   7. what the run folder cannot be: a dangling link, a FIFO as metrics.jsonl,
#      a directory where the export goes; more eval batches than the split holds.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
CFG="$REPO/tests/e2e/ckpt_small.yaml"
export OMP_NUM_THREADS=1

# run_rc NAME CMD...: runs CMD (at most 120 s), output in $WORK/NAME.out, sets RC.
run_rc() {
  local name=$1
  shift
  RC=0
  timeout 120 "$@" >"$WORK/$name.out" 2>&1 || RC=$?
  [ "$RC" -ne 124 ] || { cat "$WORK/$name.out"; fail "$name: hung"; }
}
expect_rc() { [ "$RC" -eq "$1" ] || { cat "$WORK/$2.out"; fail "$2: exit code $RC, expected $1"; }; }
expect_out() { grep -q -- "$2" "$WORK/$1.out" || { cat "$WORK/$1.out"; fail "$1: no '$2' in the output"; }; }
evals_at() { grep -c "\"step\": $2, .*\"kind\": \"eval\"" "$1/metrics.jsonl" || true; }

# The undisturbed run every variant is compared with.
RUN=(--set train.steps=4 --set checkpoint.every=2)
run_rc straight "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$WORK/straight"
expect_rc 0 straight
grep -q '"kind": "eval"' "$WORK/straight/metrics.jsonl" || fail "straight: no eval record (metrics format changed?)"

# ---- 1. stop signal during the final evaluation ---------------------------------------------
O="$WORK/evalcut"
LINTRAIN_FAILPOINTS=train.sigterm-before-eval@4 run_rc evalcut1 "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$O"
expect_rc 75 evalcut1
expect_out evalcut1 "during the final evaluation of step 4"
[ -f "$O/model.safetensors" ] || fail "evalcut: the trained weights were not exported"
[ "$(evals_at "$O" 4)" -eq 0 ] || fail "evalcut: an evaluation record of the cut evaluation"
run_rc evalcut2 "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$O"
expect_rc 0 evalcut2
expect_out evalcut2 "final evaluation runs now"
[ "$(evals_at "$O" 4)" -eq 1 ] || fail "evalcut: the rerun did not record the final evaluation once"
cmp -s "$O/model.safetensors" "$WORK/straight/model.safetensors" || fail "evalcut: export differs from the straight run's"
run_rc evalcut3 "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$O"
expect_rc 0 evalcut3
[ "$(evals_at "$O" 4)" -eq 1 ] || fail "evalcut: a complete run evaluated again"
note "ok: stop during the final evaluation -> export + 75; rerun evaluates once, exits 0"

# A periodic evaluation cut short is run by the resumed run first, with the
# loss an undisturbed run records.
O="$WORK/periodic-eval"
EV=(--set train.eval_every=2)
run_rc straight-ev "$LINTRAIN" train "$CFG" "${RUN[@]}" "${EV[@]}" --set run.out_dir="$WORK/straight-ev"
expect_rc 0 straight-ev
LINTRAIN_FAILPOINTS=train.sigterm-before-eval@2 run_rc pevalcut1 "$LINTRAIN" train "$CFG" "${RUN[@]}" "${EV[@]}" \
  --set run.out_dir="$O"
expect_rc 75 pevalcut1
[ "$(evals_at "$O" 2)" -eq 0 ] || fail "periodic eval: a record of the cut evaluation"
run_rc pevalcut2 "$LINTRAIN" train "$CFG" "${RUN[@]}" "${EV[@]}" --set run.out_dir="$O"
expect_rc 0 pevalcut2
expect_out pevalcut2 "the evaluation of step 2 was cut short by the stop; it runs now"
for s in 2 4; do
  [ "$(evals_at "$O" $s)" -eq 1 ] || fail "periodic eval: step $s evaluated $(evals_at "$O" $s) times"
  want=$(grep "\"step\": $s, .*\"kind\": \"eval\"" "$WORK/straight-ev/metrics.jsonl")
  got=$(grep "\"step\": $s, .*\"kind\": \"eval\"" "$O/metrics.jsonl")
  [ "$want" = "$got" ] || fail "periodic eval: step $s record '$got', undisturbed '$want'"
done
note "ok: a periodic evaluation cut short runs first on resume, with the undisturbed loss"

# ---- 2. kill -9 after the final checkpoint, before the export --------------------------------
O="$WORK/killed"
LINTRAIN_FAILPOINTS=train.kill-after-step@4 run_rc killed1 "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$O"
expect_rc 137 killed1
[ ! -e "$O/model.safetensors" ] || fail "killed: an export before the failpoint (test is not testing)"
run_rc killed2 "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$O"
expect_rc 0 killed2
expect_out killed2 "the run is complete at step 4"
cmp -s "$O/model.safetensors" "$WORK/straight/model.safetensors" || fail "killed: rerun's export differs"
note "ok: killed before the export -> the rerun exports the same bytes"

# ---- 3. failing exports lose no training ------------------------------------------------------
O="$WORK/exportfail"
LINTRAIN_FAILPOINTS=train.export-fails@4 run_rc exportfail1 "$LINTRAIN" train "$CFG" --set train.steps=4 \
  --set checkpoint.every=0 --set run.out_dir="$O"
expect_rc 1 exportfail1
expect_out exportfail1 "The training is not lost: checkpoint .*step-00000004 holds it"
run_rc exportfail2 "$LINTRAIN" train "$CFG" --set train.steps=4 --set checkpoint.every=0 --set run.out_dir="$O"
expect_rc 0 exportfail2
cmp -s "$O/model.safetensors" "$WORK/straight/model.safetensors" || fail "exportfail: rerun's export differs"
O="$WORK/periodic"
LINTRAIN_FAILPOINTS=train.export-fails@2 run_rc periodic "$LINTRAIN" train "$CFG" "${RUN[@]}" \
  --set train.export_every=2 --set run.out_dir="$O"
expect_rc 0 periodic
expect_out periodic "warning: the export of step 2 failed"
cmp -s "$O/model.safetensors" "$WORK/straight/model.safetensors" || fail "periodic: final export differs"
note "ok: a failing final export saves a checkpoint and the rerun exports; a periodic one warns"

# ---- 4. stop signals at start and twice -------------------------------------------------------
LINTRAIN_FAILPOINTS=train.sigterm-at-start run_rc startsig "$LINTRAIN" train "$CFG" "${RUN[@]}" \
  --set run.out_dir="$WORK/startsig"
expect_rc 75 startsig
expect_out startsig "stopped by SIGTERM before the first step"
O="$WORK/twice"
"$LINTRAIN" train "$CFG" --set train.steps=1000000 --set checkpoint.every=0 --set run.out_dir="$O" >"$WORK/twice.out" 2>&1 &
PID=$!
for _ in $(seq 1 200); do grep -q "step " "$WORK/twice.out" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$PID"
for _ in $(seq 1 300); do grep -q "exit code 75" "$WORK/twice.out" && break; sleep 0.01; done
kill -TERM "$PID" 2>/dev/null || true
wait_exit "$PID" 60
[ "$EXIT_CODE" = 75 ] || { cat "$WORK/twice.out"; fail "second SIGTERM while stopping: exit $EXIT_CODE, expected 75"; }
note "ok: SIGTERM at start-up and a second SIGTERM while stopping exit 75"

# ---- 5. a busy run folder -----------------------------------------------------------------------
O="$WORK/busy"
"$LINTRAIN" train "$CFG" --set train.steps=1000000 --set checkpoint.every=0 --set run.out_dir="$O" >"$WORK/busy1.out" 2>&1 &
PID=$!
for _ in $(seq 1 200); do grep -q "step " "$WORK/busy1.out" 2>/dev/null && break; sleep 0.1; done
cp "$O/config.yaml" "$WORK/busy-config.yaml"
expect_error busy2 "is in use by another run (lintrain train, pid $PID" -- \
  "$LINTRAIN" train "$CFG" --set train.steps=3 --set optim.lr=1 --set run.out_dir="$O"
cmp -s "$O/config.yaml" "$WORK/busy-config.yaml" || fail "busy: the refused run changed config.yaml"
kill -TERM "$PID"
wait_exit "$PID" 60
[ "$EXIT_CODE" = 75 ] || fail "busy: first run exit $EXIT_CODE after SIGTERM"
note "ok: a second run on a busy run.out_dir is refused and writes nothing"

# ---- 6. no step applied -------------------------------------------------------------------------
expect_error allskipped "no step of this run was applied: all 3" -- "$LINTRAIN" train "$CFG" --set train.steps=3 \
  --set model.initializer_range=1e10 --set checkpoint.every=0 --set run.out_dir="$WORK/allskipped"
[ ! -e "$WORK/allskipped/model.safetensors" ] || fail "allskipped: untrained weights were exported"

# ---- 7. what the run folder cannot be -----------------------------------------------------------
ln -s "$WORK/nowhere" "$WORK/dangling"
expect_error dangling "is a symbolic link to '$WORK/nowhere', which does not exist" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$WORK/dangling"
mkdir -p "$WORK/fifo" && mkfifo "$WORK/fifo/metrics.jsonl"
expect_error fifo-metrics "metrics.jsonl' is a FIFO" -- "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$WORK/fifo"
mkdir -p "$WORK/direxport/model.safetensors"
expect_error dir-export "model.safetensors' is a directory" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.out_dir="$WORK/direxport"
expect_error eval-batches "train.eval_batches = 100000 is more than the validation split holds" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set train.eval_batches=100000 --set run.out_dir="$WORK/evalb"
note "PASSED"
