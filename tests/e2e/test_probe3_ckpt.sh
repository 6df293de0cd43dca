#!/usr/bin/env bash
# Checkpoint and start-up findings of the third hostile probe, through the CLI:
#   X1. a checkpoint file past the file-size limit (ulimit -f): the save fails
#      with a warning naming the limit and training goes on; the run whose
#      final checkpoint failed exits 1 with no "done" line (before: SIGXFSZ
#      killed the trainer, exit 153, no word, a .pending folder left);
#   X2. a file-size limit below what MPI's shared-memory segment needs is
#      refused before MPI starts, naming ulimit -f, its value and the fix
#      (before: MPI_Init_thread died in PMIx's words);
#   X3. the final save to a checkpoint service that is not there: SIGTERM cuts
#      the wait short (exit 75, "it was not saved", how to rerun) instead of
#      waiting checkpoint.timeout_s and then printing "done";
#   X4. `latest` naming a checkpoint that is not there is warned, naming it
#      and what is done instead (resume from the newest, or start from step 0);
#   X6. a second `ckpt serve` on a directory another service holds names
#      --dir as the fix, not the trainer's checkpoint.dir.
#   usage: test_probe3_ckpt.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1
RUN="$REPO/tests/e2e/ckpt_small.yaml"

# ---- X1. a checkpoint past ulimit -f (6000 blocks: MPI starts, a 6.9 MB checkpoint does not fit) ----
rc=0
(ulimit -f 6000; exec timeout 90 "$LINTRAIN" train "$REPO/examples/tiny.yaml" --set train.steps=2 \
  --set checkpoint.every=1 --set train.eval_batches=1 --set run.out_dir="$WORK/xfsz") >"$WORK/xfsz.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/xfsz.log"; fail "X1: exit $rc, expected 1 (153 is SIGXFSZ)"; }
grep -q "warning: the checkpoint of step 1 failed: .*ulimit -f = 6000" "$WORK/xfsz.log" ||
  { cat "$WORK/xfsz.log"; fail "X1: no warning naming ulimit -f = 6000"; }
grep -q "step     2/2" "$WORK/xfsz.log" || { cat "$WORK/xfsz.log"; fail "X1: training did not go on"; }
grep -q "error: the final checkpoint (step 2) could not be saved" "$WORK/xfsz.log" ||
  { cat "$WORK/xfsz.log"; fail "X1: no error for the final checkpoint"; }
! grep -q "done in" "$WORK/xfsz.log" || { cat "$WORK/xfsz.log"; fail "X1: 'done' printed though the final save failed"; }
[ -z "$(ls -A "$WORK/xfsz/checkpoints" | grep '^\.pending' || true)" ] || fail "X1: a .pending folder is left"
note "X1: a checkpoint past ulimit -f warns naming it; the failed final save exits 1 without 'done'"

# ---- X2. ulimit -f below MPI's shared-memory segment -------------------------------------------
expect_error fsize-mpi "ulimit -f = 3000 blocks.*ulimit -f unlimited" -- \
  bash -c "ulimit -f 3000; exec \"\$@\"" _ "$LINTRAIN" train "$RUN" --set train.steps=2 --set run.out_dir="$WORK/fs"
! grep -q "PMIX" "$WORK/fsize-mpi.out" || fail "X2: MPI's own text printed"

# ---- X3. SIGTERM during the final save to an absent service ------------------------------------
port=$((19000 + $$ % 900))
start=$SECONDS rc=0
timeout --preserve-status -k 60 6 "$LINTRAIN" train "$RUN" --set train.steps=2 --set run.out_dir="$WORK/svdown" \
  --set checkpoint.service="127.0.0.1:$port" --set resume=none >"$WORK/svdown.log" 2>&1 || rc=$?
took=$((SECONDS - start))
[ "$rc" -eq 75 ] || { cat "$WORK/svdown.log"; fail "X3: exit $rc, expected 75"; }
[ "$took" -lt 30 ] || fail "X3: took $took s after SIGTERM at 6 s"
grep -q "stopped by SIGTERM while saving the final checkpoint (step 2): it was not saved" "$WORK/svdown.log" ||
  { cat "$WORK/svdown.log"; fail "X3: no line saying the final checkpoint was not saved"; }
grep -q "Run the same command again" "$WORK/svdown.log" || fail "X3: no rerun advice"
! grep -q "done in" "$WORK/svdown.log" || { cat "$WORK/svdown.log"; fail "X3: 'done' printed"; }
note "X3: SIGTERM cuts the final save's wait short ($took s, exit 75)"

# ---- X4. `latest` naming a checkpoint that is not there ---------------------------------------
"$LINTRAIN" train "$RUN" --set run.out_dir="$WORK/lat" --set train.steps=6 >"$WORK/lat1.log" 2>&1 ||
  { cat "$WORK/lat1.log"; fail "X4: first run failed"; }
echo step-00000099 >"$WORK/lat/checkpoints/latest"
"$LINTRAIN" train "$RUN" --set run.out_dir="$WORK/lat" --set train.steps=8 >"$WORK/lat2.log" 2>&1 ||
  { cat "$WORK/lat2.log"; fail "X4: resumed run failed"; }
grep -q "warning: \`latest\` in .* names step-00000099, which is not there; resuming from .*step-00000006" \
  "$WORK/lat2.log" || { cat "$WORK/lat2.log"; fail "X4: no warning when resuming past latest"; }
mkdir -p "$WORK/lat0/checkpoints" && echo step-00000099 >"$WORK/lat0/checkpoints/latest"
"$LINTRAIN" train "$RUN" --set run.out_dir="$WORK/lat0" --set train.steps=2 >"$WORK/lat0.log" 2>&1 ||
  { cat "$WORK/lat0.log"; fail "X4: fresh run failed"; }
grep -q "step-00000099, which is not there; it holds no checkpoint, so the run starts from step 0" "$WORK/lat0.log" ||
  { cat "$WORK/lat0.log"; fail "X4: no warning when starting fresh"; }
note "X4: latest naming a missing checkpoint is warned, resuming or starting fresh"

# ---- X6. a second ckpt serve on a held directory ------------------------------------------------
port=$((19000 + ($$ + 1) % 900))
"$LINTRAIN" ckpt serve --dir "$WORK/sv" --listen "127.0.0.1:$port" --ready-file "$WORK/sv.ready" >"$WORK/sv.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -e "$WORK/sv.ready" ] && break; sleep 0.1; done
[ -e "$WORK/sv.ready" ] || { cat "$WORK/sv.log"; fail "X6: ckpt serve did not start"; }
expect_error serve-same-dir "choose another --dir" -- \
  "$LINTRAIN" ckpt serve --dir "$WORK/sv" --listen "127.0.0.1:$((port + 1))"
! grep -qF "checkpoint.dir" "$WORK/serve-same-dir.out" || fail "X6: names checkpoint.dir"
kill "$serve_pid" 2>/dev/null || true
note "passed"
