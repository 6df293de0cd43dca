#!/usr/bin/env bash
# The time from `kill -9` of a training run to the first step of its resumed
# run (the same command again), for the tiny example model and a
# 100M-parameter one. The run checkpoints every 5 steps; it is killed right
# after its first checkpoint is published, then restarted, and the clock
# stops when the resumed run logs its first step in metrics.jsonl. The
# resumed run's own line says how much of that was reading and verifying
# the checkpoint. The last step before the kill and the first one after it
# are both whole steps of the model, so "first resumed step" includes one
# step time (printed).
#
#   bash bench/resume_time.sh [LINTRAIN_BIN] [WORK_DIR]
set -euo pipefail
bin=${1:-build/lintrain}
work=${2:-/tmp/lintrain-resume-time}
rm -rf "$work" && mkdir -p "$work"

cat >"$work/m100.yaml" <<'YAML'
run: {name: m100, seed: 1}
model: {vocab_size: 16384, hidden_size: 768, num_hidden_layers: 10, num_attention_heads: 12,
        intermediate_size: 2048, layer_pattern: "LLLS"}
data: {kind: text, path: /usr/share/common-licenses, seq_len: 256}
train: {steps: 1000, micro_batch: 1, eval_every: 0, log_every: 1}
optim: {name: adamw, lr: 3.0e-4}
checkpoint: {every: 5, keep: 2}
YAML

now() { date +%s.%N; }
measure() {  # measure NAME RUN.yaml
  local name=$1 run=$2 out="$work/$1" pid t_kill t_step
  "$bin" train "$run" --set run.out_dir="$out" --set train.steps=1000 --set checkpoint.every=5 \
    --set train.log_every=1 >"$out.first.log" 2>&1 &
  pid=$!
  until grep -q "^checkpoint step 5:" "$out.first.log" 2>/dev/null; do sleep 0.01; done
  kill -9 "$pid"
  t_kill=$(now)
  wait "$pid" 2>/dev/null || true
  "$bin" train "$run" --set run.out_dir="$out" --set train.steps=1000 --set checkpoint.every=5 \
    --set train.log_every=1 >"$out.resumed.log" 2>&1 &
  pid=$!
  # The first step after the checkpoint: its console line (printed and
  # flushed right after its metrics record).
  until grep -q "^step     6/1000" "$out.resumed.log" 2>/dev/null; do sleep 0.005; done
  t_step=$(now)
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  local params
  params=$(sed -n 's/^lintrain: [^|]* | \([0-9]*\) parameters.*/\1/p' "$out.resumed.log")
  printf '%s: %s parameters; kill -9 -> first resumed step %.2f s; %s\n' "$name" "$params" \
    "$(echo "$t_step - $t_kill" | bc)" \
    "$(sed -n 's/^lintrain: resumed from .*(\(written by.*\))$/\1/p' "$out.resumed.log")"
}

measure tiny "$(dirname "$0")/../examples/tiny.yaml"
measure m100 "$work/m100.yaml"
rm -rf "$work"
