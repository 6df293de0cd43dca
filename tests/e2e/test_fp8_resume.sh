#!/usr/bin/env bash
# FP8 training (precision.fp8) through kill and resume: for the delayed recipe
# (whose scales and amax histories are checkpoint entries) and the blockwise
# one, 12 steps straight against a kill -9 after step 7 and the same command
# again give bit-identical losses, gradient norms, FP8 counts and final
# weights; the same on 2 ranks (SP=2). An FP32 run's checkpoint resumed with
# FP8 on starts the FP8 state fresh and says so.
#   usage: test_fp8_resume.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

RUN="$REPO/tests/e2e/ckpt_small.yaml"
FP8=(--set precision.compute=bf16 --set precision.fp8.enabled=true --set precision.fp8.amax_history_len=4)

# Every training record: step, loss, grad_norm, lr and the FP8 counts, exactly as written.
records() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "kind" not in r:
        print(r["step"], repr(r["loss"]), repr(r["grad_norm"]), repr(r["lr"]),
              [r[k] for k in sorted(r) if k.startswith("fp8_")])
PY
}

kill_and_resume() {
  local name=$1 code
  shift
  local launch=()
  while [ "$1" != "--" ]; do launch+=("$1"); shift; done
  shift
  "${launch[@]}" "$RUN" "$@" --set run.out_dir="$WORK/$name.straight" >"$WORK/$name.straight.log" 2>&1 ||
    { tail -5 "$WORK/$name.straight.log"; fail "$name: the straight run failed"; }
  code=0
  LINTRAIN_FAILPOINTS="train.kill-after-step@7" "${launch[@]}" "$RUN" "$@" \
    --set run.out_dir="$WORK/$name" >"$WORK/$name.killed.log" 2>&1 || code=$?
  [ "$code" -ne 0 ] || fail "$name: the run meant to be killed at step 7 finished"
  "${launch[@]}" "$RUN" "$@" --set run.out_dir="$WORK/$name" >"$WORK/$name.resumed.log" 2>&1 ||
    { tail -5 "$WORK/$name.resumed.log"; fail "$name: the resumed run failed"; }
  grep -q "^lintrain: resumed from" "$WORK/$name.resumed.log" || fail "$name: did not resume"
  records "$WORK/$name.straight/metrics.jsonl" >"$WORK/$name.straight.records"
  records "$WORK/$name/metrics.jsonl" >"$WORK/$name.records"
  grep -q "fp8_saturated" "$WORK/$name/metrics.jsonl" || fail "$name: metrics.jsonl has no FP8 counts"
  diff -q "$WORK/$name.straight.records" "$WORK/$name.records" >/dev/null ||
    { diff "$WORK/$name.straight.records" "$WORK/$name.records" | head; fail "$name: the resumed run differs"; }
  [ "$(wc -l <"$WORK/$name.records")" -eq 12 ] || fail "$name: want 12 training records"
  cmp -s "$WORK/$name.straight/model.safetensors" "$WORK/$name/model.safetensors" ||
    fail "$name: final weights differ"
  note "$name: killed after step 7, resumed: 12 steps, FP8 counts and weights bit-identical"
}

TRAIN=("$LINTRAIN" train)
kill_and_resume delayed "${TRAIN[@]}" -- "${FP8[@]}" --set precision.fp8.recipe=delayed
kill_and_resume blockwise "${TRAIN[@]}" -- "${FP8[@]}" --set precision.fp8.recipe=blockwise

# An FP32 run's checkpoint, resumed as an FP8 run: fresh FP8 state, with a note.
"${TRAIN[@]}" "$RUN" --set train.steps=6 --set run.out_dir="$WORK/fp32" >"$WORK/fp32.log" 2>&1 ||
  fail "the FP32 run failed"
"${TRAIN[@]}" "$RUN" "${FP8[@]}" --set run.out_dir="$WORK/fp32" >"$WORK/fp32_to_fp8.log" 2>&1 ||
  { tail -5 "$WORK/fp32_to_fp8.log"; fail "resuming an FP32 checkpoint with FP8 on failed"; }
grep -q "holds no FP8 scaling state .* start fresh" "$WORK/fp32_to_fp8.log" ||
  { grep lintrain: "$WORK/fp32_to_fp8.log"; fail "the fresh FP8 state was not reported"; }
note "fp32 -> fp8: resumed with fresh FP8 state, reported"

mpirun_cmd
MPI2=("${MPIRUN[@]}" -np 2 "$LINTRAIN" train)
kill_and_resume sp2_delayed "${MPI2[@]}" -- "${FP8[@]}" --set parallel.sequence=2
note "PASSED"
