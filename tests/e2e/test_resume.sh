#!/usr/bin/env bash
# Kill-and-resume is exact: N steps straight against k steps, a kill -9
# (the failpoint train.kill-after-step: SIGKILL right after step k), and the
# same command again give bit-identical losses, gradient norms, learning
# rates and final weights; metrics.jsonl holds every step once. For every
# optimizer, with a GaLore projector refresh, a SPAM reset and a FRUGAL
# subspace change after the resume point; with 2 ranks (SP=2, and DP=2)
# killed the same way; and a DP=2 checkpoint resumed on SP=2 (and back)
# continues with losses equal to the straight run within the SP tolerance.
#   usage: test_resume.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

RUN="$REPO/tests/e2e/ckpt_small.yaml"

# Every training record as "step loss grad_norm lr", exactly as written.
records() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "kind" not in r:
        print(r["step"], repr(r["loss"]), repr(r["grad_norm"]), repr(r["lr"]))
PY
}

# same_run A B: A and B (out dirs) logged the same steps with the same values and ended with the same weights.
same_run() {
  records "$1/metrics.jsonl" >"$1.records"
  records "$2/metrics.jsonl" >"$2.records"
  diff -q "$1.records" "$2.records" >/dev/null || { diff "$1.records" "$2.records" | head; fail "$2 differs from $1"; }
  [ "$(wc -l <"$2.records")" -eq 12 ] || fail "$2/metrics.jsonl has $(wc -l <"$2.records") training records, want 12"
  cmp -s "$1/model.safetensors" "$2/model.safetensors" || fail "$2's final weights differ from $1's"
}

# kill_and_resume NAME KILL_STEP LAUNCH... -- SETS...: the straight run, then
# the killed one and its re-run, compared.
kill_and_resume() {
  local name=$1 kill_at=$2 code
  shift 2
  local launch=()
  while [ "$1" != "--" ]; do launch+=("$1"); shift; done
  shift
  "${launch[@]}" "$RUN" "$@" --set run.out_dir="$WORK/$name.straight" >"$WORK/$name.straight.log" 2>&1 ||
    { tail -5 "$WORK/$name.straight.log"; fail "$name: the straight run failed"; }
  code=0
  LINTRAIN_FAILPOINTS="train.kill-after-step@$kill_at" "${launch[@]}" "$RUN" "$@" \
    --set run.out_dir="$WORK/$name" >"$WORK/$name.killed.log" 2>&1 || code=$?
  [ "$code" -ne 0 ] || fail "$name: the run meant to be killed at step $kill_at finished"
  grep -q "failpoint train.kill-after-step" "$WORK/$name.killed.log" || fail "$name: not killed by the failpoint"
  "${launch[@]}" "$RUN" "$@" --set run.out_dir="$WORK/$name" >"$WORK/$name.resumed.log" 2>&1 ||
    { tail -5 "$WORK/$name.resumed.log"; fail "$name: the resumed run failed"; }
  # The newest published checkpoint: step 6, or 3 when the kill came while
  # step 6's asynchronous save was still being written.
  local from
  from=$(sed -n 's/^lintrain: resumed from .*step-[0-9]* at step \([0-9]*\) .*/\1/p' "$WORK/$name.resumed.log")
  [ "$from" = 6 ] || [ "$from" = 3 ] ||
    { grep lintrain: "$WORK/$name.resumed.log"; fail "$name: did not resume from step 3 or 6"; }
  same_run "$WORK/$name.straight" "$WORK/$name"
  note "$name: killed after step $kill_at, resumed at $from: 12 steps and the weights bit-identical"
}

TRAIN=("$LINTRAIN" train)
# Optimizer events after the resume point (step 3 or 6): GaLore refreshes its
# projector every 4 steps (at 8), SPAM resets every 5 (at 10), FRUGAL changes
# subspace every 4 (at 8), and FRUGAL's random subspaces draw from its RNG.
kill_and_resume adamw 7 "${TRAIN[@]}" -- --set optim.name=adamw
kill_and_resume lion 8 "${TRAIN[@]}" -- --set optim.name=lion
kill_and_resume galore 8 "${TRAIN[@]}" -- --set optim.name=galore --set optim.galore.rank=8 \
  --set optim.galore.update_proj_gap=4
kill_and_resume spam 8 "${TRAIN[@]}" -- --set optim.name=spam --set optim.spam.reset_interval=5 \
  --set optim.spam.warmup=2 --set optim.spam.clip_delay=1
kill_and_resume frugal 8 "${TRAIN[@]}" -- --set optim.name=frugal --set optim.frugal.update_gap=4 \
  --set optim.frugal.proj_type=random

mpirun_cmd
MPI2=("${MPIRUN[@]}" -np 2 "$LINTRAIN" train)
# Every rank reaches the failpoint; the first SIGKILL makes mpirun end the job.
kill_and_resume sp2 8 "${MPI2[@]}" -- --set parallel.sequence=2
kill_and_resume dp2 8 "${MPI2[@]}" -- --set parallel.data=2 --set train.micro_batch=2

# Another layout, same global batch (4 sequences): DP=2 x micro_batch 2
# resumed on SP=2 x micro_batch 4, and back. SP reassociates sums, so the
# losses agree to the tolerance of test_parallel_losses (1e-5 relative).
reshard() {
  local name=$1 from=$2 to=$3
  # shellcheck disable=SC2086  # word lists of --set options
  LINTRAIN_FAILPOINTS="train.kill-after-step@7" "${MPI2[@]}" "$RUN" $from --set run.out_dir="$WORK/$name" \
    >"$WORK/$name.first.log" 2>&1 || true
  # shellcheck disable=SC2086
  "${MPI2[@]}" "$RUN" $to --set run.out_dir="$WORK/$name" >"$WORK/$name.second.log" 2>&1 ||
    { tail -5 "$WORK/$name.second.log"; fail "$name: the resumed run failed"; }
  grep -q "the layout changes from DP .* with the same global batch" "$WORK/$name.second.log" ||
    { grep lintrain: "$WORK/$name.second.log"; fail "$name: the layout change was not reported"; }
  python3 - "$WORK/adamw.straight/metrics.jsonl" "$WORK/$name/metrics.jsonl" <<'PY' || fail "$name: losses differ"
import json, sys
rows = lambda p: [json.loads(l) for l in open(p) if '"kind"' not in l]
ref, got = rows(sys.argv[1]), rows(sys.argv[2])
assert [r["step"] for r in got] == list(range(1, 13)), [r["step"] for r in got]
worst = max(abs(r["loss"] - g["loss"]) / abs(r["loss"]) for r, g in zip(ref, got))
print(f"  max relative loss difference to the single-rank run: {worst:.2e}")
sys.exit(0 if worst < 1e-5 else 1)
PY
  note "$name: resumed on another layout, losses within 1e-5 of the straight run"
}
reshard dp2_to_sp2 "--set parallel.data=2 --set train.micro_batch=2" "--set parallel.sequence=2"
reshard sp2_to_dp2 "--set parallel.sequence=2" "--set parallel.data=2 --set train.micro_batch=2"

# A finished run resumed again trains nothing and says so.
"${TRAIN[@]}" "$RUN" --set run.out_dir="$WORK/adamw" >"$WORK/again.log" 2>&1 || fail "re-running a finished run failed"
grep -q "the run is complete at step 12" "$WORK/again.log" || fail "re-running a finished run did not say it is complete"
# A change a checkpoint cannot carry over is refused with what differs.
code=0
"${TRAIN[@]}" "$RUN" --set run.out_dir="$WORK/adamw" --set model.hidden_size=32 --set train.steps=20 \
  >"$WORK/refused.log" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "resuming with another model size exited $code, want 1"
grep -q "model.hidden_size: 64 -> 32" "$WORK/refused.log" || { cat "$WORK/refused.log"; fail "the refusal does not name the key"; }
note "PASSED"
