#!/usr/bin/env bash
# The checkpoint service under faults, with a real trainer:
#   1. the service is killed (kill -9, by a failpoint) in the middle of
#      receiving a file and started again a few seconds later: the trainer
#      reports it, keeps training, retries, and its checkpoints after the
#      restart are published; the losses equal a run without a service;
#   2. `lintrain launch` with checkpoint.service: local restarts a service that
#      was killed -9 mid-run, and the run completes exactly;
#   3. a service with a token: a trainer without it, or with a wrong one,
#      stops at start with one clear line; with it, the run works;
#   4. a service that never comes: the run trains to the end, reports every
#      failed save, and exits 1 because its final checkpoint is missing.
#   usage: test_ckpt_service.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

# tests/e2e/ckpt_small.yaml for 300 steps, a checkpoint every 25, 3 kept.
RUN="$REPO/tests/e2e/ckpt_small.yaml"
BASE=(--set run.seed=5 --set train.steps=300 --set train.eval_every=0 --set train.eval_batches=1
  --set train.log_every=100 --set schedule.warmup_steps=5 --set checkpoint.every=25 --set checkpoint.keep=3)
losses() { { grep -v '"kind"' "$1" || true; } | sed -n 's/.*"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p'; }
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/straight" --set checkpoint.every=0 >"$WORK/straight.log" 2>&1 ||
  fail "the run without checkpoints failed"
losses "$WORK/straight/metrics.jsonl" >"$WORK/straight.losses"

SERVICE_PID=""
cleanup() { [ -z "$SERVICE_PID" ] || kill -9 "$SERVICE_PID" 2>/dev/null || true; }
trap cleanup EXIT
# serve NAME [OPTIONS...]: starts a service in the background, sets SERVICE_PID and ADDR.
serve() {
  local name=$1
  shift
  rm -f "$WORK/$name.addr"
  "$LINTRAIN" ckpt serve --ready-file "$WORK/$name.addr" "$@" >>"$WORK/$name.log" 2>&1 &
  SERVICE_PID=$!
  for _ in $(seq 1 100); do
    [ -s "$WORK/$name.addr" ] && break
    sleep 0.05
  done
  [ -s "$WORK/$name.addr" ] || { cat "$WORK/$name.log"; fail "$name: the service did not start"; }
  ADDR=$(cat "$WORK/$name.addr")
}

# ---- 1. kill -9 of the service mid-file, restart ----------------------------------------
LINTRAIN_FAILPOINTS="service.mid-file@50" serve svc1 --dir "$WORK/svc1" --listen 127.0.0.1:0
victim=$SERVICE_PID
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run1" --set checkpoint.service="$ADDR" >"$WORK/run1.log" 2>&1 &
trainer=$!
for _ in $(seq 1 200); do kill -0 "$victim" 2>/dev/null || break; sleep 0.05; done
kill -0 "$victim" 2>/dev/null && fail "svc1: the failpoint did not kill the service"
grep -q "failpoint service.mid-file" "$WORK/svc1.log" || fail "svc1: the service died, but not by the failpoint"
wait "$victim" 2>/dev/null || true
sleep 2  # the trainer goes on without it meanwhile
serve svc1 --dir "$WORK/svc1" --listen "$ADDR"
wait_exit "$trainer" 240
[ "$EXIT_CODE" = 0 ] || { tail -20 "$WORK/run1.log"; fail "svc1: the trainer exited with $EXIT_CODE"; }
grep -q "checkpoint service $ADDR did not take .*retrying while training goes on" "$WORK/run1.log" ||
  fail "svc1: the trainer did not report the service away"
grep -q "checkpoint service $ADDR answers again" "$WORK/run1.log" || fail "svc1: the trainer did not report its return"
grep -q "^checkpoint step 300: $WORK/svc1/step-00000300" "$WORK/run1.log" || fail "svc1: the final checkpoint is missing"
losses "$WORK/run1/metrics.jsonl" | diff -q - "$WORK/straight.losses" >/dev/null || fail "svc1: the losses differ"
"$LINTRAIN" ckpt verify "$WORK/svc1" >"$WORK/svc1.verify" 2>&1 || { cat "$WORK/svc1.verify"; fail "svc1: a checkpoint does not verify"; }
[ "$(find "$WORK/svc1" -name '*.tmp.*' | wc -l)" -eq 0 ] || fail "svc1: temporary files left"
published=$(grep -c "^checkpoint step" "$WORK/run1.log")
abandoned=$(grep -c "was abandoned\|failed" "$WORK/run1.log" || true)
note "service killed -9 mid-file at step 50 and restarted 2 s later: $published saves published, $abandoned reported lost, losses exact"
# A restarted service resumes the run it serves: the next run continues from step 300.
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run1" --set checkpoint.service="$ADDR" --set train.steps=310 \
  >"$WORK/run1b.log" 2>&1 || fail "svc1: resuming through the service failed"
grep -q "^lintrain: resumed from $ADDR:step-00000300 at step 300" "$WORK/run1b.log" || fail "svc1: not resumed through the service"
kill "$SERVICE_PID"
wait "$SERVICE_PID" 2>/dev/null || true
SERVICE_PID=""
note "resume through the service: from step 300"

# ---- 2. lintrain launch restarts a local service killed mid-run -------------------------
command -v mpirun >/dev/null 2>&1 || skip "mpirun is not installed (the launch case needs it)"
"$LINTRAIN" launch --nproc 1 "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run2" --set checkpoint.service=local \
  >"$WORK/run2.log" 2>&1 &
launcher=$!
svc=""
for _ in $(seq 1 200); do
  svc=$(pgrep -f "ckpt serve --dir $WORK/run2/checkpoints" | head -n 1 || true)
  [ -n "$svc" ] && grep -q "^checkpoint step 25:" "$WORK/run2.log" && break
  sleep 0.05
done
[ -n "$svc" ] || { cat "$WORK/run2.log"; fail "launch: no local service found"; }
kill -9 "$svc"
wait_exit "$launcher" 240
[ "$EXIT_CODE" = 0 ] || { tail -20 "$WORK/run2.log"; fail "launch: exited with $EXIT_CODE"; }
grep -q "^lintrain launch: the checkpoint service ended (killed by signal 9 .*); restarting it on 127.0.0.1:" \
  "$WORK/run2.log" || { cat "$WORK/run2.log"; fail "launch: the service was not restarted"; }
losses "$WORK/run2/metrics.jsonl" | diff -q - "$WORK/straight.losses" >/dev/null || fail "launch: the losses differ"
"$LINTRAIN" ckpt verify "$WORK/run2/checkpoints" >/dev/null 2>&1 || fail "launch: a checkpoint does not verify"
[ -z "$(pgrep -f "ckpt serve --dir $WORK/run2/checkpoints" || true)" ] || fail "launch: the service outlived the job"
note "launch: the local service killed -9 mid-run was restarted, the run completed exactly, no service left"

# ---- 3. a token -----------------------------------------------------------------------
printf 'correct-horse-battery-staple\n' >"$WORK/token"
printf 'wrong\n' >"$WORK/wrong-token"
serve svc3 --dir "$WORK/svc3" --listen 127.0.0.1:0 --token-file "$WORK/token"
for case in none wrong; do
  extra=()
  [ "$case" = wrong ] && extra=(--set checkpoint.token_file="$WORK/wrong-token")
  code=0
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run3.$case" --set checkpoint.service="$ADDR" "${extra[@]}" \
    >"$WORK/run3.$case.log" 2>&1 || code=$?
  [ "$code" -eq 1 ] || fail "token $case: exit $code, want 1"
  [ "$(wc -l <"$WORK/run3.$case.log")" -eq 1 ] || { cat "$WORK/run3.$case.log"; fail "token $case: more than one line"; }
  grep -q "^lintrain: error: checkpoint service $ADDR refused this run: UNAUTHENTICATED: .*checkpoint.token_file" \
    "$WORK/run3.$case.log" || { cat "$WORK/run3.$case.log"; fail "token $case: unclear error"; }
done
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run3" --set checkpoint.service="$ADDR" --set train.steps=30 \
  --set checkpoint.token_file="$WORK/token" >"$WORK/run3.log" 2>&1 || fail "token: the run with the token failed"
grep -q "^checkpoint step 30: $WORK/svc3/step-00000030" "$WORK/run3.log" || fail "token: nothing saved with the token"
kill "$SERVICE_PID"
wait "$SERVICE_PID" 2>/dev/null || true
SERVICE_PID=""
# A service on a non-loopback address needs a token.
code=0
"$LINTRAIN" ckpt serve --dir "$WORK/svc4" --listen 0.0.0.0:0 >"$WORK/svc4.log" 2>&1 || code=$?
[ "$code" -eq 1 ] && grep -q "is not a loopback address: .* needs --token-file" "$WORK/svc4.log" ||
  { cat "$WORK/svc4.log"; fail "a non-loopback service without a token was not refused"; }
note "token: none and wrong refused at start (one line), the right one works; 0.0.0.0 without a token refused"

# ---- 4. a service that never comes ---------------------------------------------------
# resume: auto cannot tell whether the service holds checkpoints: refused.
code=0
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run4" --set checkpoint.service=127.0.0.1:9 \
  --set checkpoint.timeout_s=2 >"$WORK/run4.auto.log" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "no service, resume auto: exit $code, want 1"
grep -q "error: resume: auto: checkpoint service 127.0.0.1:9 .*set resume: none to start fresh" "$WORK/run4.auto.log" ||
  { cat "$WORK/run4.auto.log"; fail "no service, resume auto: unclear error"; }
# A fresh run trains on.
code=0
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/run4" --set checkpoint.service=127.0.0.1:9 --set train.steps=60 \
  --set checkpoint.every=20 --set checkpoint.timeout_s=2 --set resume=none >"$WORK/run4.log" 2>&1 || code=$?
[ "$code" -eq 1 ] || { tail "$WORK/run4.log"; fail "no service: exit $code, want 1"; }
losses "$WORK/run4/metrics.jsonl" | wc -l | grep -qx 60 || fail "no service: the run did not train its 60 steps"
grep -q "warning: checkpoint service 127.0.0.1:9 is not reachable" "$WORK/run4.log" || fail "no service: no warning at start"
grep -q "error: the final checkpoint (step 60) could not be saved" "$WORK/run4.log" || fail "no service: no final error"
note "no service: resume auto refused with the fix; resume none trains 60 steps, reports the lost saves, exits 1"
note "PASSED"
