#!/usr/bin/env bash
# Issue 12 end to end, through the CLI as a user meets it:
#   1. ranks started with different settings (an MPMD mpirun) stop at once,
#      naming the keys, instead of crashing in MPI or training apart, and so
#      do ranks whose one data.path names different files;
#   2. a FIFO given as the run file, the data or the --init-from file is
#      refused at once (no hang), and so is a device;
#   3. values that pass the schema but cannot be meant are refused: an
#      unclosed quote that swallowed the file, an f32 underflow, a layer
#      pattern longer than the layers, a GaLore rank above the matrices,
#      threads far above the cores, a model that cannot fit in memory;
#   4. --init-from weights of another layer pattern are refused;
#   5. stale temporary files of a killed writer are removed at start;
#   6. metrics.jsonl on a disk that fills up (a small tmpfs): no record cut
#      in half, the held records written once space returns, every step once;
#   7. a path that cannot be read says "permission denied" (run as nobody).
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
CFG="$REPO/tests/e2e/ckpt_small.yaml"
export OMP_NUM_THREADS=1

# ---- 1. ranks that disagree ----------------------------------------------------------------
if command -v mpirun >/dev/null 2>&1; then
  mpirun_cmd
  expect_error ranks "differs from rank 0 (data.seq_len is 64 on rank 0 but 128 on rank 1; optim.lr" -- \
    "${MPIRUN[@]}" -np 1 "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/ranks" --set parallel.data=2 : \
    -np 1 "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/ranks" --set parallel.data=2 --set optim.lr=0.01 \
    --set data.seq_len=128
  # One data.path naming different files on the two ranks (two working directories).
  mkdir -p "$WORK/wa/data" "$WORK/wb/data"
  cat /usr/share/common-licenses/GPL-3 >"$WORK/wa/data/x"
  cat /usr/share/common-licenses/Apache-2.0 >"$WORK/wb/data/x"
  expect_error ranks-data "the ranks loaded different training data: data.path 'data/x' holds" -- \
    "${MPIRUN[@]}" -np 1 -wdir "$WORK/wa" "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/ranks" --set parallel.data=2 \
    --set data.path=data/x : -np 1 -wdir "$WORK/wb" "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/ranks" \
    --set parallel.data=2 --set data.path=data/x
else
  note "SKIPPED part 1: mpirun is not installed"
fi

# ---- 2. inputs that would block ----------------------------------------------------------
mkfifo "$WORK/fifo"
expect_error fifo-run "is a FIFO (named pipe), not a regular file" -- "$LINTRAIN" train "$WORK/fifo"
expect_error fifo-data "data.path '$WORK/fifo' is a FIFO" -- \
  "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/f" --set data.path="$WORK/fifo"
expect_error fifo-init "is a FIFO" -- "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/f" --init-from "$WORK/fifo"
expect_error device-data "is a character device" -- \
  "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/f" --set data.kind=tokens --set data.path=/dev/zero

# ---- 3. values that cannot be meant ---------------------------------------------------------
printf 'run:\n  name: "tiny\nmodel:\n  hidden_size: 64\n' >"$WORK/quote.yaml"
expect_error quote "run.name: the quoted value \"tiny is not closed on its line" -- "$LINTRAIN" train "$WORK/quote.yaml"
expect_error eps "optim.adamw.eps: 1e-50 underflows f32" -- "$LINTRAIN" train "$CFG" --set optim.adamw.eps=1e-50
expect_error pattern "model.layer_pattern 'LLLSLS' has 6 letters but model.num_hidden_layers is 2" -- \
  "$LINTRAIN" train "$CFG" --set model.layer_pattern=LLLSLS
expect_error galore "so GaLore would cost more memory than AdamW" -- \
  "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/g" --set optim.name=galore
expect_error threads "run.threads = 100000 is far above the" -- \
  "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/t" --set run.threads=100000
expect_error memory "the run needs about" -- "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/m" \
  --set model.hidden_size=65536 --set model.intermediate_size=262144 --set model.num_attention_heads=512
grep -q "model.hidden_size 65536" "$WORK/memory.out" || fail "memory: the message does not name model.hidden_size"

# ---- 4. --init-from of another layer pattern --------------------------------------------------
"$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/src" --set train.steps=2 --set checkpoint.every=0 \
  --set model.linear_attention.output_gate=false >"$WORK/src.out" 2>&1 || { cat "$WORK/src.out"; fail "source run failed"; }
expect_error init-kinds "the file's lintrain.layer_kinds is 'LS' but this model's is 'SL'" -- \
  "$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/dst" --set model.layer_pattern=SL \
  --set model.linear_attention.output_gate=false --init-from "$WORK/src/model.safetensors"

# ---- 5. stale temporary files ---------------------------------------------------------------
mkdir -p "$WORK/stale"
echo partial >"$WORK/stale/model.safetensors.tmp.999999999.0"
touch -d '2 hours ago' "$WORK/stale/model.safetensors.tmp.999999999.0"
"$LINTRAIN" train "$CFG" --set run.out_dir="$WORK/stale" --set train.steps=1 --set checkpoint.every=0 \
  >"$WORK/stale.out" 2>&1 || { cat "$WORK/stale.out"; fail "stale: the run failed"; }
[ ! -e "$WORK/stale/model.safetensors.tmp.999999999.0" ] || fail "stale: the temporary file is still there"
grep -q "a temporary file left by a killed writer" "$WORK/stale.out" || fail "stale: the removal was not reported"
note "ok: stale temporary file removed and reported"

# ---- 6. metrics.jsonl on a disk that fills up ----------------------------------------------------
# check_jsonl FILE STEPS: every line parses and the train records are steps 1..STEPS, once each.
check_jsonl() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if "kind" not in json.loads(l)]
want = list(range(1, int(sys.argv[2]) + 1))
assert steps == want[:len(steps)], f"steps out of order or repeated: {steps[:5]}..."
print(len(steps))
EOF
}
tmpfs="$WORK/tmpfs"
mkdir -p "$tmpfs"
if mount -t tmpfs -o size=1m tmpfs "$tmpfs" 2>/dev/null; then
  trap 'umount "$tmpfs" 2>/dev/null || true' EXIT
  # Leave 12 KiB: config.yaml and the first records fit, the rest of 150 steps do not.
  dd if=/dev/zero of="$tmpfs/filler" bs=1k count=$((1024 - 12)) status=none
  "$LINTRAIN" train "$CFG" --set run.out_dir="$tmpfs/run" --set train.steps=150 --set checkpoint.every=0 \
    --set train.eval_every=0 >"$WORK/full.out" 2>&1 &
  run=$!
  for _ in $(seq 1 300); do  # until the disk is full, then free it
    grep -q "cannot write $tmpfs/run/metrics.jsonl" "$WORK/full.out" && break
    sleep 0.1
  done
  grep -q "No space left on device" "$WORK/full.out" || { kill $run; cat "$WORK/full.out"; fail "full disk: no warning"; }
  n_full=$(check_jsonl "$tmpfs/run/metrics.jsonl" 150) || fail "full disk: metrics.jsonl is not valid JSONL while full"
  rm "$tmpfs/filler"
  wait $run || { cat "$WORK/full.out"; fail "full disk: the run failed after space returned"; }
  grep -q "can be written again" "$WORK/full.out" || fail "full disk: the recovery was not reported"
  n=$(check_jsonl "$tmpfs/run/metrics.jsonl" 150) || fail "full disk: metrics.jsonl is not valid JSONL"
  [ "$n" -eq 150 ] || fail "full disk: $n of 150 step records in metrics.jsonl"
  note "ok: metrics on a full disk ($n_full records while full, all 150 after space returned)"
  # A disk that stays full: the run ends with an error (the export cannot be
  # written), metrics.jsonl stays valid and the missing records are counted.
  rm -rf "$tmpfs/run"
  dd if=/dev/zero of="$tmpfs/filler" bs=1k count=$((1024 - 12)) status=none
  rc=0
  "$LINTRAIN" train "$CFG" --set run.out_dir="$tmpfs/run" --set train.steps=150 --set checkpoint.every=0 \
    --set train.eval_every=0 >"$WORK/full2.out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "still full: the run reported success"
  grep -q "metrics records could not be written" "$WORK/full2.out" || { cat "$WORK/full2.out"; fail "still full: lost records not counted"; }
  check_jsonl "$tmpfs/run/metrics.jsonl" 150 >/dev/null || fail "still full: metrics.jsonl is not valid JSONL"
  note "ok: a disk that stays full ends the run with an error and a valid metrics.jsonl"
  umount "$tmpfs"
  trap - EXIT
else
  note "SKIPPED part 6: cannot mount a tmpfs here (needs root); the full-disk case did not run"
fi

# ---- 7. permission denied, not "does not exist" ----------------------------------------------------
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
  mkdir -p "$WORK/locked"
  cp "$CFG" "$WORK/locked/run.yaml"
  chmod 700 "$WORK/locked"
  chmod o+x "$WORK"
  expect_error denied "permission denied" -- runuser -u nobody -- "$LINTRAIN" config "$WORK/locked/run.yaml"
else
  note "SKIPPED part 7: needs root and the user nobody to test a permission error"
fi
note "PASSED"
