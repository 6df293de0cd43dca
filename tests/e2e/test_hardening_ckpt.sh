#!/usr/bin/env bash
# Issue 12, checkpoints and the launcher, through the CLI as a user meets them:
#   1. resume: auto when every checkpoint in checkpoint.dir is damaged stops
#      with one line naming each and the fix, and touches nothing (before: a
#      fresh start from step 0 that truncated metrics.jsonl and whose saves
#      replaced the repairable checkpoints); with one damaged it falls back,
#      and retention keeps the damaged newer one;
#   2. a second `ckpt serve` on a port in use is refused (gRPC's SO_REUSEPORT
#      let both listen and split the trainers between two directories);
#   3. `ckpt export --out` inside a checkpoint folder or directory is refused
#      and the checkpoint still verifies; a dangling link as --out is named;
#   4. a checkpoint.dir that cannot be created says "permission denied"
#      (run as nobody), not "No such file or directory";
#   5. resume: auto with nothing listening at checkpoint.service says it waits
#      and fails within seconds (not after checkpoint.timeout_s, 600 s);
#   6. Ctrl-C to `lintrain launch` (SIGINT to its process group, as a
#      terminal sends it) checkpoints and exits 75 like SIGTERM;
#   7. launch --nproc far above the cores is refused before mpirun starts.
#   usage: test_hardening_ckpt.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1
RUN="$REPO/tests/e2e/ckpt_small.yaml"
BASE=(--set train.eval_every=0 --set train.log_every=1 --set checkpoint.every=3 --set checkpoint.keep=2)
# flip FILE: changes one byte near its end (a checksum mismatch, the size unchanged).
flip() { python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[-10]^=1; open(p,'wb').write(b)" "$1"; }
SERVICE_PIDS=()
cleanup() { for p in "${SERVICE_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ---- 1. every checkpoint damaged ---------------------------------------------------------------
out="$WORK/damaged"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=6 >"$out.log" 2>&1 ||
  { cat "$out.log"; fail "damaged: the first run failed"; }
flip "$out/checkpoints/step-00000003/trainer.safetensors"
flip "$out/checkpoints/step-00000006/trainer.safetensors"
cp "$out/metrics.jsonl" "$WORK/metrics.before"
expect_error damaged-all "holds 2 checkpoints, none of which can be used" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=9
for want in "step-00000006/trainer.safetensors has checksum" "step-00000003/trainer.safetensors has checksum" \
  "lintrain ckpt verify $out/checkpoints" "--set resume=none"; do
  grep -qF -- "$want" "$WORK/damaged-all.out" || { cat "$WORK/damaged-all.out"; fail "damaged: no '$want' in the error"; }
done
cmp -s "$out/metrics.jsonl" "$WORK/metrics.before" || fail "damaged: metrics.jsonl was changed by the refused run"
for step in step-00000003 step-00000006; do
  [ -d "$out/checkpoints/$step" ] || fail "damaged: the damaged checkpoint $step was removed"
done
note "every checkpoint damaged: refused naming both, metrics.jsonl and the checkpoints untouched"

# One damaged: the run falls back to step 3 and trains on; the damaged step 6
# (after its latest) is neither deleted nor counted by retention until its
# step is saved again.
out="$WORK/one"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=6 >"$out.log" 2>&1 ||
  fail "one damaged: the first run failed"
flip "$out/checkpoints/step-00000006/trainer.safetensors"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=5 --set checkpoint.every=1 \
  --set checkpoint.keep=2 >"$out.2.log" 2>&1 || { cat "$out.2.log"; fail "one damaged: the resumed run failed"; }
grep -q "warning: checkpoint $out/checkpoints/step-00000006 cannot be used: .*checksum.*; using $out/checkpoints/step-00000003 instead" \
  "$out.2.log" || { cat "$out.2.log"; fail "one damaged: no fallback warning"; }
grep -q "resumed from $out/checkpoints/step-00000003 at step 3" "$out.2.log" || fail "one damaged: not resumed from step 3"
listing=$(cd "$out/checkpoints" && echo step-*)
[ "$listing" = "step-00000004 step-00000005 step-00000006" ] || fail "one damaged: checkpoints left: $listing"
note "one damaged: fell back to step 3; retention kept steps 4, 5 and the damaged step 6"

# ---- 2. two services on one port -------------------------------------------------------------
"$LINTRAIN" ckpt serve --dir "$WORK/svcA" --listen 127.0.0.1:0 --ready-file "$WORK/svcA.addr" >"$WORK/svcA.log" 2>&1 &
SERVICE_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/svcA.addr" ] && break; sleep 0.05; done
[ -s "$WORK/svcA.addr" ] || { cat "$WORK/svcA.log"; fail "service A did not start"; }
addr=$(cat "$WORK/svcA.addr")
expect_error second-service "checkpoint service: port in use: another process listens on $addr; stop it or choose another --listen" -- \
  "$LINTRAIN" ckpt serve --dir "$WORK/svcB" --listen "$addr"
[ "$(grep -c . "$WORK/second-service.out")" -eq 1 ] || { cat "$WORK/second-service.out"; fail "second service: more than one line"; }
kill "${SERVICE_PIDS[0]}"
wait "${SERVICE_PIDS[0]}" 2>/dev/null || true
SERVICE_PIDS=()

# ---- 3. ckpt export into a checkpoint ----------------------------------------------------------
out="$WORK/export"
"$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=3 >"$out.log" 2>&1 || fail "export: the run failed"
expect_error export-into-folder "is inside the checkpoint folder" -- \
  "$LINTRAIN" ckpt export "$out/checkpoints" --out "$out/checkpoints/step-00000003"
expect_error export-into-dir "is inside the checkpoint directory" -- \
  "$LINTRAIN" ckpt export "$out/checkpoints" --out "$out/checkpoints/exported"
"$LINTRAIN" ckpt verify "$out/checkpoints" >"$out.verify" 2>&1 || { cat "$out.verify"; fail "export: the checkpoint no longer verifies"; }
"$LINTRAIN" ckpt export "$out/checkpoints" --out "$out/exported" >/dev/null || fail "export: a plain export failed"
ln -s "$WORK/no-such-dir" "$WORK/dangling"
expect_error export-dangling "ckpt export --out '$WORK/dangling' is a symbolic link to '$WORK/no-such-dir', which does not exist" -- \
  "$LINTRAIN" ckpt export "$out/checkpoints" --out "$WORK/dangling"

# ---- 4. checkpoint.dir without permission --------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
  mkdir -p "$WORK/perm/out" "$WORK/perm/locked"
  chmod o+x "$WORK"
  chmod 755 "$WORK/perm"
  chmod 777 "$WORK/perm/out"
  chmod 555 "$WORK/perm/locked"
  expect_error ckpt-dir-denied "cannot create '$WORK/perm/locked/ckpt' (on the path of checkpoint directory '$WORK/perm/locked/ckpt/run'): permission denied" -- \
    runuser -u nobody -- "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/perm/out" \
    --set checkpoint.dir="$WORK/perm/locked/ckpt/run"
  grep -q "No such file" "$WORK/ckpt-dir-denied.out" && fail "checkpoint.dir: permission denied reported as missing"
else
  note "SKIPPED part 4: needs root and the user nobody to test a permission error"
fi

# ---- 5. a checkpoint service that is not there ----------------------------------------------------
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
t0=$(date +%s)
expect_error no-service "resume: auto: checkpoint service 127.0.0.1:$port is not running: nothing listens there" -- \
  "$LINTRAIN" train "$RUN" "${BASE[@]}" --set run.out_dir="$WORK/nosvc" --set checkpoint.service="127.0.0.1:$port" \
  --set checkpoint.timeout_s=600
took=$(($(date +%s) - t0))
grep -q "waiting for the checkpoint service at 127.0.0.1:$port (up to 600 s" "$WORK/no-service.out" ||
  { cat "$WORK/no-service.out"; fail "no service: it did not say it waits"; }
grep -q "set resume: none to start fresh" "$WORK/no-service.out" || fail "no service: no fix in the error"
note "no service: said it waits, failed after ${took} s (checkpoint.timeout_s is 600)"

# ---- 6 and 7. the launcher ---------------------------------------------------------------------------
expect_error nproc-huge "launch --nproc 100000 is far more ranks than" -- \
  "$LINTRAIN" launch --nproc 100000 "$RUN" --set parallel.data=100000 --set run.out_dir="$WORK/huge"
grep -q -- "--oversubscribe" "$WORK/nproc-huge.out" || fail "nproc: the opt-in is not named"
command -v mpirun >/dev/null 2>&1 || skip "mpirun is not installed (the Ctrl-C case needs it)"
command -v setsid >/dev/null 2>&1 || skip "setsid is not installed (the Ctrl-C case needs a process group)"
out="$WORK/ctrlc"
# A process group of its own, as a shell's job: SIGINT to the group is what Ctrl-C sends.
setsid "$LINTRAIN" launch --nproc 1 "$RUN" "${BASE[@]}" --set run.out_dir="$out" --set train.steps=100000 \
  --set checkpoint.every=0 >"$out.log" 2>&1 &
launcher=$!
for _ in $(seq 1 300); do
  grep -q '"step": 5,' "$out/metrics.jsonl" 2>/dev/null && break
  sleep 0.1
done
grep -q '"step": 5,' "$out/metrics.jsonl" 2>/dev/null || { cat "$out.log"; fail "ctrl-c: the run did not start training"; }
[ "$(ps -o pgid= -p "$launcher" | tr -d ' ')" = "$launcher" ] || fail "ctrl-c: setsid did not make the launcher a group leader"
kill -INT -- "-$launcher"
wait_exit "$launcher" 60
[ "$EXIT_CODE" = 75 ] || { tail -20 "$out.log"; fail "ctrl-c: lintrain launch exited $EXIT_CODE, want 75"; }
grep -q "^checkpoint step [0-9]*: $out/checkpoints/step-" "$out.log" || { cat "$out.log"; fail "ctrl-c: no checkpoint saved"; }
"$LINTRAIN" ckpt verify "$out/checkpoints" >/dev/null 2>&1 || fail "ctrl-c: the checkpoint does not verify"
note "ctrl-c: launch saved a checkpoint and exited 75"
note "PASSED"
