#!/usr/bin/env bash
# The probe's config findings, through the CLI as a user meets them:
#   F9  a key of a section the run does not use is warned about, once, by
#       config, memory and train (not refused: --set optim.name=X on a file
#       tuned for another optimizer is a normal comparison);
#   F10 config and memory refuse what train refuses from the config alone
#       (FP8, a GaLore rank above a matrix's smaller side);
#   F11 a u32 token file read as u16 is refused;
#   F13 a TMPDIR that is not a writable directory is named before MPI starts;
#   F15 OMP_NUM_THREADS that is not a count is refused; the f32-underflow
#       advice names a value the key takes;
#       a glob of optim.no_decay that matches no tensor is refused, naming it
#       and some tensor names, as an optim.groups glob is.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
CFG="$REPO/tests/e2e/ckpt_small.yaml"
export OMP_NUM_THREADS=1
RUN=(--set train.steps=1 --set checkpoint.every=0 --set run.out_dir="$WORK/out")

# F9: one warning line per key, on each command; the run still goes.
WARN="warning: --set optim.galore.rank=4: optim.galore.rank = 4 is set but optim.name is adamw (and no optim.groups rule uses galore): it has no effect"
for cmd in config memory train; do
  extra=()
  [ "$cmd" = train ] && extra=("${RUN[@]}")
  "$LINTRAIN" "$cmd" "$CFG" --set optim.galore.rank=4 "${extra[@]}" >"$WORK/w_$cmd.out" 2>"$WORK/w_$cmd.err" ||
    { cat "$WORK/w_$cmd.err"; fail "$cmd with an unused key failed"; }
  [ "$(grep -cF -- "$WARN" "$WORK/w_$cmd.err")" -eq 1 ] || { cat "$WORK/w_$cmd.err"; fail "$cmd: no single warning"; }
  rm -rf "$WORK/out"
done
"$LINTRAIN" config "$CFG" --set schedule.kind=constant --set schedule.min_lr_ratio=0.5 2>&1 >/dev/null |
  grep -q "schedule.min_lr_ratio = 0.5 is set but schedule.kind is constant" || fail "min_lr_ratio: no warning"
"$LINTRAIN" config "$CFG" --set precision.fp8.recipe=current 2>&1 >/dev/null |
  grep -q "precision.fp8.recipe = current is set but precision.fp8.enabled is false" || fail "fp8.recipe: no warning"
[ -z "$("$LINTRAIN" config "$CFG" 2>&1 >/dev/null)" ] || fail "ckpt_small.yaml warns"
note "ok: unused keys warned"

# F10: config and memory refuse before train would.
for cmd in config memory; do
  # FP8 trains now: config and memory accept it as train does.
  "$LINTRAIN" "$cmd" "$CFG" --set precision.fp8.enabled=true >/dev/null 2>&1 || fail "fp8_$cmd: refused"
  expect_error "galore_$cmd" "optim.galore.rank 65 on '" -- \
    "$LINTRAIN" "$cmd" "$CFG" --set optim.name=galore --set optim.galore.rank=65
  # Rank 64 on (64, 64) matrices is not above their side, but its projector and
  # moments outweigh AdamW's moments (125.8%): refused the same way.
  expect_error "galore_full_$cmd" "optim.galore.rank 64 on '" -- \
    "$LINTRAIN" "$cmd" "$CFG" --set optim.name=galore --set optim.galore.rank=64
done

# F11: u32 ids under the default u16.
python3 -c "import struct;open('$WORK/t32.bin','wb').write(b''.join(struct.pack('<I',1+i%200) for i in range(20000)))"
expect_error u32_as_u16 "looks like u32 tokens (every second u16 is 0).*set data.token_dtype: u32" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set data.kind=tokens --set data.path="$WORK/t32.bin"
rm -rf "$WORK/out"

# F13: TMPDIR before MPI.
expect_error tmpdir_file "TMPDIR = '/dev/null' is not a directory" -- \
  env TMPDIR=/dev/null "$LINTRAIN" train "$CFG" "${RUN[@]}"
expect_error tmpdir_missing "TMPDIR = '$WORK/none'" -- env TMPDIR="$WORK/none" "$LINTRAIN" train "$CFG" "${RUN[@]}"

# F15: OMP_NUM_THREADS and the underflow advice.
expect_error omp_garbage "OMP_NUM_THREADS = 'abc' is not a positive thread count" -- \
  env OMP_NUM_THREADS=abc "$LINTRAIN" train "$CFG" "${RUN[@]}" --set run.threads=0
rm -rf "$WORK/out"
expect_error eps_tiny "underflows f32.*use a value >= 1.2e-38" -- "$LINTRAIN" config "$CFG" --set model.rms_norm_eps=1e-40
if grep -q "use 0" "$WORK/eps_tiny.out"; then fail "rms_norm_eps advice names 0, which the key refuses"; fi
for cmd in config train; do
  extra=()
  [ "$cmd" = train ] && extra=("${RUN[@]}")
  expect_error "no_decay_typo_$cmd" "optim.no_decay\[1\]: '\*bais\*' matches no tensor of this model.*names are like model\." -- \
    "$LINTRAIN" "$cmd" "$CFG" "${extra[@]}" --set 'optim.no_decay=["*norm*", "*bais*"]'
done
[ ! -e "$WORK/out/metrics.jsonl" ] || fail "a refused no_decay glob trained"

# Probe 3: a TAB or spaces-only name, an extra ckpt argument, a launch flag twice.
expect_error tab_name "run.name: the value holds a control character (code 9)" -- \
  "$LINTRAIN" config "$CFG" --set "run.name=$(printf 'x\ty')"
expect_error spaces_out_dir "run.out_dir: must not be only spaces" -- "$LINTRAIN" config "$CFG" --set "run.out_dir=   "
expect_error ckpt_extra "but was also given 'extra'" -- "$LINTRAIN" ckpt verify "$WORK" extra
expect_error nproc_twice "--nproc is given twice (.1. and .2.); give it once" -- "$LINTRAIN" launch --nproc 1 --nproc 2 "$CFG"
expect_error threads_far "launch --threads-per-rank 999 is far above" -- \
  "$LINTRAIN" launch --nproc 1 --threads-per-rank 999 "$CFG" "${RUN[@]}"
# A density that selects less than one element would be clamped to one (FRUGAL rank 1, SPAM one entry).
expect_error frugal_tiny "optim.frugal.density 1e-30 selects less than one row or column of '.*so it would run as rank 1; use optim.frugal.density >= 0.00782" -- \
  "$LINTRAIN" memory "$CFG" --set optim.name=frugal --set optim.frugal.density=1e-30
expect_error frugal_block_tiny "optim.frugal.density 1e-30 selects less than one of the" -- \
  "$LINTRAIN" memory "$CFG" --set optim.name=frugal --set optim.frugal.proj_type=blockwise --set optim.frugal.density=1e-30
expect_error spam_tiny "optim.spam.density 1e-30 keeps less than one of the .*use optim.spam.density >= " -- \
  "$LINTRAIN" memory "$CFG" --set optim.name=spam --set optim.spam.density=1e-30
"$LINTRAIN" memory "$CFG" --set optim.name=frugal --set optim.frugal.density=0.01 >/dev/null ||
  fail "optim.frugal.density 0.01 (rank 1 of 64, not clamped) was refused"
# A data directory whose text is partly in a subdirectory: refused, naming it (it was silently not read).
mkdir -p "$WORK/textdir/sub"
printf 'hello world\n' >"$WORK/textdir/a.txt"
printf 'more text\n' >"$WORK/textdir/sub/b.txt"
expect_error data_subdir "data.path '$WORK/textdir' holds 'sub' (a directory), which lintrain would not read" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set data.path="$WORK/textdir"
expect_error threads_both "but the run sets run.threads = 1" -- \
  "$LINTRAIN" launch --nproc 1 --threads-per-rank 2 "$CFG" "${RUN[@]}" --set run.threads=1
note "passed"
