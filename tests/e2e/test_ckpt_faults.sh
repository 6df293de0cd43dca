#!/usr/bin/env bash
# Checkpoints survive faults: after each, no partial checkpoint is visible,
# every visible one verifies, and the resumed run is exact.
#   1. kill -9 of the trainer at every point of a save (failpoints from the
#      first file written to retention);
#   2. kill -9 at random times, 50 times over, with a save every step:
#      0 corrupt loads;
#   3. a flipped byte and a truncated file: `ckpt verify` names them, resume
#      warns and falls back to the previous checkpoint;
#   4. a full disk during a save (a small tmpfs): the save fails cleanly, the
#      previous checkpoint stays loadable;
#   5. weights exported from a checkpoint equal the live weights at that step,
#      read with the independent `safetensors` package;
#   6. a NaN gradient: the step is skipped and reported, max_bad_steps in a
#      row stop the run with a clear error.
#   usage: test_ckpt_faults.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

# tests/e2e/ckpt_small.yaml without evaluations: 12 steps, a checkpoint every 3, 2 kept.
RUN="$REPO/tests/e2e/ckpt_small.yaml"
BASE=(--set run.seed=11 --set train.eval_every=0 --set train.eval_batches=1)
train() { "$LINTRAIN" train "$RUN" "${BASE[@]}" "$@"; }

losses() { { grep -v '"kind"' "$1" || true; } | sed -n 's/.*"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p'; }
train --set run.out_dir="$WORK/straight" >"$WORK/straight.log" 2>&1 || fail "the straight run failed"
losses "$WORK/straight/metrics.jsonl" >"$WORK/straight.losses"

# Every folder a reader can see is a complete checkpoint whose checksums match.
all_visible_verify() {
  local dir=$1/checkpoints
  if ls "$dir" | grep -q '^step-'; then
    "$LINTRAIN" ckpt verify "$dir" >"$1.verify" 2>&1 || { cat "$1.verify"; fail "$2: a visible checkpoint does not verify"; }
  fi
}
resumes_exactly() {  # resumes_exactly OUT WHAT
  train --set run.out_dir="$1" >"$1.resumed.log" 2>&1 || { tail -5 "$1.resumed.log"; fail "$2: the resumed run failed"; }
  losses "$1/metrics.jsonl" | diff -q - "$WORK/straight.losses" >/dev/null || fail "$2: the resumed losses differ"
  cmp -s "$1/model.safetensors" "$WORK/straight/model.safetensors" || fail "$2: the resumed weights differ"
}

# ---- 1. kill -9 at every point of the save of step 6 ----------------------------
for point in ckpt.after-part ckpt.before-part-commit ckpt.before-arrival ckpt.before-manifest ckpt.before-rename \
  ckpt.before-latest ckpt.before-retention; do
  out="$WORK/fp.$point"
  LINTRAIN_FAILPOINTS="$point@6" train --set run.out_dir="$out" >"$out.log" 2>&1 && fail "$point: not killed"
  grep -q "failpoint $point" "$out.log" || fail "$point: the failpoint did not fire"
  all_visible_verify "$out" "$point"
  case $point in
    ckpt.before-latest | ckpt.before-retention) want=yes ;;  # renamed into place already
    *) want=no ;;
  esac
  if [ -d "$out/checkpoints/step-00000006" ]; then got=yes; else got=no; fi
  [ "$got" = "$want" ] || fail "$point: step-00000006 visible: $got, expected $want"
  resumes_exactly "$out" "$point"
  from=$(sed -n 's/^lintrain: resumed from .* at step \([0-9]*\) .*/\1/p' "$out.resumed.log")
  note "kill -9 at $point: step 6 visible=$got, the rest verifies, resumed at step $from exactly"
done

# ---- 2. kill -9 at random times, with a save every step ---------------------------
out="$WORK/random"
corrupt=0
for i in $(seq 1 50); do
  # Each run starts fresh (resume: none), which is refused over complete
  # checkpoints: the last kill's go, its pending folders stay for this start.
  rm -rf "$out"/checkpoints/step-* "$out/checkpoints/latest"
  # Not through train(): a backgrounded function is a subshell, and kill -9
  # must reach lintrain itself.
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=100000 --set checkpoint.every=1 \
    --set checkpoint.keep=2 --set resume=none >"$out.$i.log" 2>&1 &
  pid=$!
  # Kill at a random moment (0 to 0.7 s) after the first save was reported,
  # so every kill lands among saves (one is in flight at almost any moment)
  # however slow start-up is on a loaded machine; a few land before it.
  if [ $((i % 10)) -ne 0 ]; then
    for _ in $(seq 1 1500); do
      grep -q "^checkpoint step" "$out.$i.log" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.02
    done
  fi
  ms=$((RANDOM % 700))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ls "$out/checkpoints" 2>/dev/null | grep -q '^step-'; then
    "$LINTRAIN" ckpt verify "$out/checkpoints" >"$out.$i.verify" 2>&1 || corrupt=$((corrupt + 1))
  fi
  # What resume would load: the newest complete checkpoint, checksums verified.
  if ls "$out/checkpoints" 2>/dev/null | grep -q '^step-'; then
    "$LINTRAIN" ckpt export "$out/checkpoints" --out "$out.export" >"$out.$i.export" 2>&1 || corrupt=$((corrupt + 1))
    grep -q "warning" "$out.$i.export" && corrupt=$((corrupt + 1))
  fi
done
[ "$corrupt" -eq 0 ] || fail "random kill -9: $corrupt corrupt checkpoints or loads in 50 kills"
# The kills must land among saves, not all before the first one.
saving=$(grep -l "^checkpoint step" "$out".[0-9]*.log | wc -l)
[ "$saving" -ge 40 ] || fail "random kill -9: only $saving of 50 runs were killed after their first save"
left=$(find "$out/checkpoints" -maxdepth 1 -name '.pending-*' | wc -l)
note "random kill -9 x50 ($saving of them among saves, one every step): 0 corrupt loads ($left pending folder(s) of the last kill left for the next start to clear)"
# The next start clears them.
rm -rf "$out"/checkpoints/step-* "$out/checkpoints/latest"
train --set run.out_dir="$out" --set train.steps=2 --set resume=none >"$out.clean.log" 2>&1 || fail "restart after the kills failed"
[ "$(find "$out/checkpoints" -maxdepth 1 -name '.pending-*' | wc -l)" -eq 0 ] || fail "stale pending folders were not removed"

# ---- 3. damaged files: detected, reported, fallen back from -----------------------
out="$WORK/damaged"
# Synchronous saves: step 9's checkpoint is surely complete when step 10 ends.
LINTRAIN_FAILPOINTS="train.kill-after-step@10" train --set run.out_dir="$out" --set checkpoint.async=false \
  >"$out.log" 2>&1 && fail "damaged: not killed"
[ -d "$out/checkpoints/step-00000009" ] || fail "damaged: no step 9 checkpoint to damage"
python3 - "$out/checkpoints/step-00000009/trainer.safetensors" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x40
open(p, "wb").write(b)
PY
code=0
"$LINTRAIN" ckpt verify "$out/checkpoints" >"$out.verify" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "ckpt verify of a flipped byte exited $code, want 1"
grep -q "step-00000009: BAD: .*trainer.safetensors has checksum" "$out.verify" || { cat "$out.verify"; fail "verify did not name the damaged file"; }
train --set run.out_dir="$out" >"$out.resumed.log" 2>&1 || fail "damaged: resume failed"
grep -q "warning: checkpoint .*step-00000009 cannot be used: .*trainer.safetensors has checksum.*; using .*step-00000006 instead" \
  "$out.resumed.log" || { grep lintrain: "$out.resumed.log"; fail "damaged: no warning naming the bad file and the fallback"; }
losses "$out/metrics.jsonl" | diff -q - "$WORK/straight.losses" >/dev/null || fail "damaged: losses after the fallback differ"
note "a flipped byte: verify names the file, resume falls back to step 6 with a warning, losses exact"
# A truncated file, the same way.
out="$WORK/truncated"
LINTRAIN_FAILPOINTS="train.kill-after-step@10" train --set run.out_dir="$out" --set checkpoint.async=false \
  >"$out.log" 2>&1 && fail "truncated: not killed"
truncate -s -100 "$out/checkpoints/step-00000009/model.safetensors"
"$LINTRAIN" ckpt ls "$out/checkpoints" | grep -q "step-00000009 .*INCOMPLETE: file 'model.safetensors' is" ||
  fail "ckpt ls does not show the truncated checkpoint as incomplete"
train --set run.out_dir="$out" >"$out.resumed.log" 2>&1 || fail "truncated: resume failed"
grep -q "using .*step-00000006 instead" "$out.resumed.log" || fail "truncated: no fallback to step 6"
note "a truncated file: ls shows it incomplete, resume falls back to step 6"

# ---- 4. a full disk during a save ---------------------------------------------------
# One checkpoint of this model is ~1.3 MB; 2 MB holds the first but not a second beside it.
tmpfs="$WORK/tmpfs"
mkdir -p "$tmpfs"
if mount -t tmpfs -o size=2m tmpfs "$tmpfs" 2>/dev/null; then
  trap 'umount "$tmpfs" 2>/dev/null || true' EXIT
  code=0
  train --set run.out_dir="$WORK/full" --set checkpoint.dir="$tmpfs/ckpt" --set checkpoint.keep=1 \
    >"$WORK/full.log" 2>&1 || code=$?
  [ "$code" -eq 1 ] || fail "full disk: exit $code, want 1 (the final checkpoint cannot be saved)"
  grep -q "warning: the checkpoint of step 6 failed: .*No space left on device; earlier checkpoints are intact" \
    "$WORK/full.log" || { grep lintrain "$WORK/full.log"; fail "full disk: no clear warning"; }
  grep -q "error: the final checkpoint (step 12) could not be saved" "$WORK/full.log" || fail "full disk: no final error"
  [ "$(find "$tmpfs/ckpt" -maxdepth 1 -name '.pending-*' | wc -l)" -eq 0 ] || fail "full disk: a pending folder was left"
  "$LINTRAIN" ckpt verify "$tmpfs/ckpt" >"$WORK/full.verify" 2>&1 || { cat "$WORK/full.verify"; fail "full disk: the kept checkpoint does not verify"; }
  grep -q "step-00000003: ok" "$WORK/full.verify" || fail "full disk: step 3 is not the kept checkpoint"
  umount "$tmpfs"
  trap - EXIT
  note "full disk: saves after step 3 fail with a warning, step 3 verifies, nothing pending left, exit 1"
else
  note "SKIPPED part 4: cannot mount a tmpfs here (needs root); the full-disk case did not run"
fi

# ---- 5. exported weights equal the live weights at that step ------------------------
out="$WORK/export"
LINTRAIN_FAILPOINTS="train.kill-after-step@6" train --set run.out_dir="$out" --set train.export_every=6 \
  --set checkpoint.async=false >"$out.log" 2>&1 && fail "export: not killed"
"$LINTRAIN" ckpt export "$out/checkpoints/step-00000006" --out "$out/from_ckpt" >/dev/null || fail "ckpt export failed"
python3 - "$out/model.safetensors" "$out/from_ckpt/model.safetensors" <<'PY' || fail "exported weights differ from the live ones"
import sys
try:
    from safetensors.numpy import load_file
except ImportError:
    print("SKIPPED: the safetensors package is not installed"); sys.exit(0)
import numpy as np
live, ckpt = load_file(sys.argv[1]), load_file(sys.argv[2])
assert sorted(live) == sorted(ckpt), "tensor names differ"
for k in live:
    assert live[k].dtype == ckpt[k].dtype and np.array_equal(live[k], ckpt[k]), k
print(f"  {len(live)} tensors equal (read with safetensors {__import__('safetensors').__version__})")
PY
cmp -s "$out/config.json" "$out/from_ckpt/config.json" || fail "exported config.json differs"
note "ckpt export of step 6 = the weights the trainer exported at step 6 (safetensors package)"

# ---- 6. a non-finite gradient: the update is skipped, too many stop the run -------
out="$WORK/nan"
LINTRAIN_FAILPOINTS="train.nan-grad@4" train --set run.out_dir="$out" >"$out.log" 2>&1 || fail "nan: the run failed"
grep -q '"step": 4, .*"skipped": 1' "$out/metrics.jsonl" || fail "nan: step 4 is not marked skipped"
grep -q "warning: step 4 not applied: the loss is finite (.*) but the gradient norm is nan" "$out.log" ||
  { grep lintrain "$out.log"; fail "nan: no warning naming the cause"; }
losses "$out/metrics.jsonl" | head -4 | diff -q - <(head -4 "$WORK/straight.losses") >/dev/null ||
  fail "nan: steps 1-4 differ from the straight run"
[ "$(losses "$out/metrics.jsonl" | sed -n 5p)" != "$(sed -n 5p "$WORK/straight.losses")" ] ||
  fail "nan: step 5 equals the straight run's, so step 4's update was applied"
code=0
LINTRAIN_FAILPOINTS="train.nan-grad@4,train.nan-grad@5" train --set run.out_dir="$out.stop" --set train.max_bad_steps=2 \
  >"$out.stop.log" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "nan: two bad steps with max_bad_steps 2 exited $code, want 1"
grep -q "error: training diverged: 2 steps in a row had a non-finite loss or gradient norm (train.max_bad_steps = 2), the last at step 5" \
  "$out.stop.log" || { grep lintrain "$out.stop.log"; fail "nan: unclear stop message"; }
"$LINTRAIN" ckpt verify "$out.stop/checkpoints" >/dev/null 2>&1 || fail "nan: the kept checkpoint does not verify"
note "a NaN gradient at step 4: skipped with a warning, training goes on; two in a row (max_bad_steps 2): exit 1"
note "PASSED"
