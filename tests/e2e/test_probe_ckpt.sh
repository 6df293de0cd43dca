#!/usr/bin/env bash
# Checkpoint findings of the second hostile probe, through the CLI:
#   F1/F2. resume: none into a checkpoint.dir that already holds a run's
#      checkpoints is refused at start, naming the newest and the fixes; the
#      old checkpoints, `latest` and metrics.jsonl stay untouched (before: B's
#      saves replaced some of A's, a later resume: auto took A's newer step
#      and metrics.jsonl mixed the two runs);
#   F3. the same through a shared `ckpt serve`: a second run with resume:
#      none is refused instead of replacing the first run's published steps;
#      the service itself refuses a save over another job's step from a run
#      that did not resume from it (here: resumed from another run's
#      checkpoint), naming the step, the job and the fixes; a run that went
#      back to an older checkpoint of the service replaces it as before;
#   F2. resume: auto follows `latest`: a newer checkpoint another job wrote
#      (left by a run that went back with resume: PATH) is skipped with a
#      warning naming it and how to continue it (before: silently taken);
#   F6. checkpoint.dir/latest being a directory is refused at start (before:
#      every save "failed" with a raw "rename failed: Is a directory");
#   F8. a service address that is not HOST:PORT (LINTRAIN_CKPT_SERVICE for
#      checkpoint.service: local, `ckpt ls HOST:PORT`) is refused at once,
#      naming where it came from (before: a wait, then raw DEADLINE_EXCEEDED);
#   F12. a flag given twice to `lintrain ckpt` (export --out e1 --out e2) is
#      refused (before: one was silently dropped); `ckpt ls` of a checkpoint
#      folder lists it and names its directory, of a run folder lists its
#      checkpoints/ (before: "(no checkpoints)");
#   F14. `ckpt ls 127.0.0.1:1` (nothing listens) says so at once, naming
#      ckpt serve (before: 10 s, then raw DEADLINE_EXCEEDED); `ckpt ls` of a
#      service that wants a token names --token-file, not checkpoint.token_file;
#   F7. a save every step to a live service: none abandoned;
#   F15. `ckpt serve --token-file /nonexist` names a token file, not a
#      "checkpoint file"; a resume that changes optim.no_decay names that key
#      first, then a few of the tensors it moved (before: ~69 tensor names).
#   usage: test_probe_ckpt.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1
RUN="$REPO/tests/e2e/ckpt_small.yaml"
BASE=(--set train.eval_every=0 --set train.log_every=1 --set checkpoint.every=3)

# ---- F1/F2. resume: none over an earlier run's checkpoints ------------------------------
out="$WORK/a"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=9 >"$out.log" 2>&1 ||
  { cat "$out.log"; fail "F1: the first run failed"; }
cp "$out/metrics.jsonl" "$WORK/metrics.before"
cp "$out/checkpoints/latest" "$WORK/latest.before"
expect_error resume-none-over "resume: none, but .* already holds" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=4 --set resume=none
for want in "step-00000009" "run.out_dir" "rm -r $out/checkpoints" "resume: auto"; do
  grep -qF -- "$want" "$WORK/resume-none-over.out" || fail "F1: no '$want' in the error"
done
cmp -s "$out/metrics.jsonl" "$WORK/metrics.before" || fail "F1: metrics.jsonl was changed by the refused run"
cmp -s "$out/checkpoints/latest" "$WORK/latest.before" || fail "F1: latest was changed by the refused run"
# The fixes the message names work: another out_dir, or the old checkpoints removed.
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/b" --set train.steps=4 --set resume=none \
  >"$WORK/b.log" 2>&1 || { cat "$WORK/b.log"; fail "F1: resume: none into a fresh out_dir failed"; }
rm -r "$out/checkpoints"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=4 --set resume=none \
  >"$out.2.log" 2>&1 || { cat "$out.2.log"; fail "F1: resume: none after rm -r failed"; }
note "F1: resume: none over an earlier run's checkpoints refused naming step-00000009 and the fixes; nothing touched"

# ---- F15. a resume that changes optim.no_decay ------------------------------------------
expect_error no-decay-changed "step-00000004 does not fit this run's optimizer state because this run changes optim.no_decay" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/b" --set train.steps=6 --set 'optim.no_decay=["*"]'
grep -qF '(["*norm*"] -> ["*"])' "$WORK/no-decay-changed.out" || fail "F15: the change is not shown"
grep -q "and [0-9]* more" "$WORK/no-decay-changed.out" || fail "F15: no 'and N more'"
[ "$(grep -o "tensor '" "$WORK/no-decay-changed.out" | wc -l)" -le 4 ] || fail "F15: more than 4 tensor names"
note "F15: a resume changing optim.no_decay names the key first, four tensors at most"

# ---- F3. resume: none through a service that holds another run's checkpoints ---------------
port=$((17000 + $$ % 2000))
"$LINTRAIN" ckpt serve --dir "$WORK/sv" --listen "127.0.0.1:$port" --ready-file "$WORK/sv.ready" >"$WORK/sv.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -e "$WORK/sv.ready" ] && break; sleep 0.1; done
[ -e "$WORK/sv.ready" ] || { cat "$WORK/sv.log"; fail "F3: ckpt serve did not start"; }
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/sa" --set train.steps=6 \
  --set checkpoint.service="127.0.0.1:$port" >"$WORK/sa.log" 2>&1 || { cat "$WORK/sa.log"; fail "F3: run A failed"; }
cp "$WORK/sv/step-00000006/MANIFEST.json" "$WORK/sv.manifest"
expect_error service-none-over "resume: none, but checkpoint service 127.0.0.1:$port already holds 2 checkpoints" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/sb" --set train.steps=6 \
  --set checkpoint.service="127.0.0.1:$port" --set resume=none
cmp -s "$WORK/sv/step-00000006/MANIFEST.json" "$WORK/sv.manifest" || fail "F3: run A's step 6 was replaced"
note "F3: resume: none through a service holding run A's checkpoints refused; A's step 6 untouched"
# Past the start check (resumed from another run's checkpoint), the service refuses the save itself.
expect_error service-foreign-save "step 6 already holds job [0-9a-f]*'s complete checkpoint" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/sc" --set train.steps=6 \
  --set checkpoint.service="127.0.0.1:$port" --set resume="$WORK/b/checkpoints/step-00000003"
for want in "did not resume from this directory" "lintrain ckpt serve --dir DIR" "resume: auto"; do
  grep -qF -- "$want" "$WORK/service-foreign-save.out" || fail "F3: no '$want' in the error"
done
cmp -s "$WORK/sv/step-00000006/MANIFEST.json" "$WORK/sv.manifest" || fail "F3: run A's step 6 was replaced by run C"
# Run A going back to its step 3 on the service replaces its step 6, as before.
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/sa" --set train.steps=6 \
  --set checkpoint.service="127.0.0.1:$port" --set resume="$WORK/sv/step-00000003" >"$WORK/sa.back.log" 2>&1 ||
  { cat "$WORK/sa.back.log"; fail "F3: run A going back to step 3 failed"; }
if grep -q "failed" "$WORK/sa.back.log"; then cat "$WORK/sa.back.log"; fail "F3: run A's save after going back failed"; fi
cmp -s "$WORK/sv/step-00000006/MANIFEST.json" "$WORK/sv.manifest" && fail "F3: step 6 was not replaced by run A going back"
note "F3: a save over run A's step 6 by a run not resumed from the service refused; A going back replaces it"

# F7. A live service loses no save: a save every step (each due while the last
# one still waits for its answer) is never abandoned.
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
"$LINTRAIN" ckpt serve --dir "$WORK/sv7" --listen "127.0.0.1:$port" --ready-file "$WORK/sv7.ready" >"$WORK/sv7.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do [ -e "$WORK/sv7.ready" ] && break; sleep 0.1; done
[ -e "$WORK/sv7.ready" ] || { cat "$WORK/sv7.log"; fail "F7: ckpt serve did not start"; }
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/every1" --set train.steps=30 --set checkpoint.every=1 \
  --set checkpoint.keep=40 --set checkpoint.service="127.0.0.1:$port" >"$WORK/every1.log" 2>&1 ||
  { cat "$WORK/every1.log"; fail "F7: the run failed"; }
if grep -q "abandoned\|failed" "$WORK/every1.log"; then cat "$WORK/every1.log"; fail "F7: a save to a live service was lost"; fi
[ "$(find "$WORK/sv7" -maxdepth 1 -name 'step-*' | wc -l)" -eq 30 ] || fail "F7: not 30 checkpoints published"
kill "$serve_pid" 2>/dev/null || true
note "F7: 30 saves, one per step, to a live service: none abandoned"

# ---- F2. resume: auto follows latest over a newer checkpoint of another history -----------
out="$WORK/back"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=9 --set checkpoint.keep=5 >"$out.log" 2>&1 ||
  { cat "$out.log"; fail "F2: the first run failed"; }
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=5 \
  --set resume="$out/checkpoints/step-00000003" >"$out.2.log" 2>&1 || { cat "$out.2.log"; fail "F2: resume: PATH failed"; }
grep -qx "step-00000005" "$out/checkpoints/latest" || fail "F2: latest does not name step 5"
[ -d "$out/checkpoints/step-00000009" ] || fail "F2: the other history's step 9 was removed"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=7 >"$out.3.log" 2>&1 ||
  { cat "$out.3.log"; fail "F2: resume: auto failed"; }
grep -q "resumed from $out/checkpoints/step-00000005 at step 5" "$out.3.log" || { cat "$out.3.log"; fail "F2: auto did not follow latest"; }
grep -q "warning: checkpoint $out/checkpoints/step-00000009 is newer than .*step-00000005, which .latest. names, but was written by another job.*set resume: $out/checkpoints/step-00000009" "$out.3.log" ||
  { cat "$out.3.log"; fail "F2: no warning naming the skipped newer checkpoint"; }
note "F2: resume: auto followed latest (step 5) and named the other history's step 9 it skipped"

# ---- F6. latest is a directory --------------------------------------------------------
out="$WORK/latestdir"
mkdir -p "$out/checkpoints/latest"
expect_error latest-is-dir "checkpoints/latest' is a directory, but it must be the file" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=6
grep -qF "rm -r $out/checkpoints/latest" "$WORK/latest-is-dir.out" || fail "F6: no fix in the error"
if compgen -G "$out/checkpoints/step-*" >/dev/null; then fail "F6: a checkpoint was written before the refusal"; fi
note "F6: checkpoint.dir/latest as a directory refused at start with the fix"

# ---- F8. service addresses validated, naming their origin -------------------------------
LINTRAIN_CKPT_SERVICE=garbage expect_error env-garbage "LINTRAIN_CKPT_SERVICE (set by lintrain launch.*'garbage' is not a checkpoint service address: want HOST:PORT" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/f8" --set checkpoint.service=local
expect_error ls-port-range "ckpt ls: 'localhost:99999' is not a checkpoint service address: its port must be a number from 1 to 65535" -- \
  "$LINTRAIN" ckpt ls localhost:99999
note "F8: LINTRAIN_CKPT_SERVICE=garbage and ckpt ls localhost:99999 refused at once, naming the origin"

expect_error token-missing "token file '$WORK/no-such-token' does not exist" -- \
  "$LINTRAIN" ckpt serve --dir "$WORK/svc" --token-file "$WORK/no-such-token"
note "F15: a missing --token-file is named as the token file"

expect_error export-out-twice "\-\-out is given twice ('$WORK/e1' and '$WORK/e2'); give it once" -- \
  "$LINTRAIN" ckpt export "$WORK/b/checkpoints" --out "$WORK/e1" --out "$WORK/e2"
if [ -e "$WORK/e1" ] || [ -e "$WORK/e2" ]; then fail "F12: the refused export wrote something"; fi
note "F12: ckpt export --out twice refused"
"$LINTRAIN" ckpt ls "$WORK/b/checkpoints/step-00000003" >"$WORK/ls-step.out" 2>&1 || { cat "$WORK/ls-step.out"; fail "F12: ckpt ls STEP failed"; }
grep -qF "is one checkpoint; its directory is $WORK/b/checkpoints" "$WORK/ls-step.out" || { cat "$WORK/ls-step.out"; fail "F12: ckpt ls STEP does not name its directory"; }
grep -q "^step-00000003 .* complete" "$WORK/ls-step.out" || { cat "$WORK/ls-step.out"; fail "F12: ckpt ls STEP does not list it"; }
"$LINTRAIN" ckpt ls "$WORK/b" >"$WORK/ls-run.out" 2>&1 || { cat "$WORK/ls-run.out"; fail "F12: ckpt ls RUN failed"; }
grep -qF "listing $WORK/b/checkpoints, its checkpoint directory" "$WORK/ls-run.out" || { cat "$WORK/ls-run.out"; fail "F12: ckpt ls RUN does not say what it lists"; }
grep -q "^step-00000004 .*<- latest" "$WORK/ls-run.out" || { cat "$WORK/ls-run.out"; fail "F12: ckpt ls RUN does not list its checkpoints"; }
if grep -q "no checkpoints" "$WORK/ls-step.out" "$WORK/ls-run.out"; then fail "F12: ckpt ls says (no checkpoints)"; fi
note "F12: ckpt ls of a checkpoint folder and of a run folder list what they hold"

expect_error ls-nothing-listens "ckpt ls: nothing listens on 127.0.0.1:1 (connection refused); start .lintrain ckpt serve" -- \
  "$LINTRAIN" ckpt ls 127.0.0.1:1
note "F14: ckpt ls to a port where nothing listens says so"
printf 'open sesame\n' >"$WORK/token"
"$LINTRAIN" ckpt serve --dir "$WORK/svt" --listen "127.0.0.1:$port" --token-file "$WORK/token" \
  --ready-file "$WORK/svt.ready" >"$WORK/svt.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do [ -e "$WORK/svt.ready" ] && break; sleep 0.1; done
[ -e "$WORK/svt.ready" ] || { cat "$WORK/svt.log"; fail "F14: ckpt serve --token-file did not start"; }
expect_error ls-no-token "UNAUTHENTICATED: .*give the file holding the service's token with --token-file FILE" -- \
  "$LINTRAIN" ckpt ls "127.0.0.1:$port"
if grep -q "checkpoint.token_file" "$WORK/ls-no-token.out"; then fail "F14: ckpt ls names the trainer's key"; fi
"$LINTRAIN" ckpt ls "127.0.0.1:$port" --token-file "$WORK/token" >"$WORK/ls-token.out" 2>&1 ||
  { cat "$WORK/ls-token.out"; fail "F14: ckpt ls --token-file failed"; }
kill "$serve_pid" 2>/dev/null || true
note "F14: ckpt ls of a service that wants a token names --token-file; with it, it lists"
note "PASSED"
