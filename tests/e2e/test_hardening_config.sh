#!/usr/bin/env bash
# Issue 12, the run file and the command line: inputs that used to be
# accepted without a word although they cannot be what the user meant, each
# now refused before anything runs, naming the key or option, the value and
# the fix (the probe's R11 cases, through the CLI as a user meets them):
#   1. a key given twice in one file in two spellings, a rule field twice;
#   2. an optim.groups glob that matches no tensor;
#   3. --init-from empty, given twice, or swallowing the next option;
#      options of another command (train --doc);
#   4. data.path next to data.kind mqar; a warm-up longer than the run;
#      an absurd lr_scale;
#   5. a NUL byte in the file, a key that is ~, nesting 3000 levels deep.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
CFG="$REPO/tests/e2e/ckpt_small.yaml"
export OMP_NUM_THREADS=1
RUN=(--set train.steps=2 --set checkpoint.every=0 --set run.out_dir="$WORK/out")

# ---- 1. a key twice --------------------------------------------------------------------------
{ cat "$CFG"; echo 'model.hidden_size: 128'; } >"$WORK/dup.yaml"
expect_error dup-key "'model.hidden_size' is given twice, on line 6 as 'model: hidden_size' and on line 13" -- \
  "$LINTRAIN" config "$WORK/dup.yaml"
expect_error dup-field "'optim.groups\[0\].lr_scale' is given twice" -- \
  "$LINTRAIN" memory "$CFG" --set 'optim.groups=[{match: "*", lr_scale: 1, lr_scale: 100}]'

# ---- 2. a glob that matches nothing --------------------------------------------------------
expect_error glob "optim.groups\[0\].match: 'model.layer.\*' matches no tensor of this model" -- \
  "$LINTRAIN" memory "$CFG" --set 'optim.groups=[{match: "model.layer.*", lr_scale: 10}]'

# ---- 3. the command line -------------------------------------------------------------------
expect_error init-empty "--init-from needs a file; got an empty value" -- "$LINTRAIN" train "$CFG" "${RUN[@]}" --init-from ""
expect_error init-swallow "--init-from needs a file; got the option '--set'" -- \
  "$LINTRAIN" train "$CFG" --init-from --set train.steps=2
expect_error init-twice "--init-from is given twice" -- "$LINTRAIN" train "$CFG" --init-from a --init-from b
expect_error train-doc "train does not take --doc" -- "$LINTRAIN" train "$CFG" "${RUN[@]}" --doc --table
expect_error config-init "config does not take --init-from" -- "$LINTRAIN" config "$CFG" --init-from x
expect_error memory-init "memory does not take --init-from" -- "$LINTRAIN" memory "$CFG" --init-from x

# ---- 4. values another key makes meaningless -----------------------------------------------
expect_error mqar-path "data.path is /nonexistent, but data.kind mqar generates its sequences and does not read it" -- \
  "$LINTRAIN" train "$CFG" "${RUN[@]}" --set data.kind=mqar --set data.path=/nonexistent
expect_error warmup "schedule.warmup_steps 1000 is more than train.steps 3" -- \
  "$LINTRAIN" train "$CFG" --set train.steps=3 --set schedule.warmup_steps=1000 --set run.out_dir="$WORK/out"
expect_error lr-scale "optim.groups\[0\].lr_scale 1e+06 times optim.lr 0.003 is a learning rate of 3000" -- \
  "$LINTRAIN" memory "$CFG" --set 'optim.groups=[{match: "*", lr_scale: 1e6}]'

# ---- 5. text yaml-cpp says little about ----------------------------------------------------
printf 'data: {kind: mqar}\nrun: {name: a\0b}\n' >"$WORK/nul.yaml"
expect_error nul "nul.yaml:2:14: the file holds a NUL byte" -- "$LINTRAIN" config "$WORK/nul.yaml"
printf 'data: {kind: mqar}\n~: 3\n' >"$WORK/null-key.yaml"
expect_error null-key "null-key.yaml:2: a key at the top level is empty" -- "$LINTRAIN" config "$WORK/null-key.yaml"
{ printf 'data: {kind: mqar}\nmodel: '; head -c 3000 /dev/zero | tr '\0' '['; echo; } >"$WORK/deep.yaml"
expect_error deep "deep.yaml:[0-9]*:[0-9]*: YAML syntax error: lists and mappings nest too deeply" -- "$LINTRAIN" config "$WORK/deep.yaml"

# A shortened try of a run file keeps its warm-up (ckpt_small has 2 steps of it).
"$LINTRAIN" config "$CFG" --set train.steps=1 >/dev/null || fail "train.steps=1 on ckpt_small.yaml was refused"
note "passed"
