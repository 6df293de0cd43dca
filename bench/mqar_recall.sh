#!/usr/bin/env bash
# Recall at a fixed state size: multi-query associative recall (data.kind mqar,
# Zoology-style: PAIRS key-value pairs, then queries; only the answers are
# scored) learned by pure linear-attention models whose memory is the same
# size for every variant (2 layers, 2 heads of d = 32: one 32 x 32 state per
# head), so what differs is only how the state is written and forgotten. Each
# variant runs SEEDS seeds; the figure is the final eval accuracy over
# EVAL_BATCHES held-out batches (chance: 1 / (vocab/2) = 1/32), mean and spread.
# The GLA and Gated DeltaNet papers' qualitative claim: the gated variants
# recall more than a fixed-decay one at the same state size.
#
#   usage: bench/mqar_recall.sh [LINTRAIN_BIN]     (default build/lintrain)
#   env:   STEPS=600 PAIRS=16 SEQ=128 SEEDS="1 2 3" VARIANTS="lightning retnet gla"
#          EVAL_BATCHES=16 JOBS=2 OUT=/tmp/lintrain-mqar
set -euo pipefail
bin=$(realpath "${1:-build/lintrain}")
steps=${STEPS:-600} pairs=${PAIRS:-16} seq=${SEQ:-128} seeds=${SEEDS:-1 2 3}
variants=${VARIANTS:-lightning retnet gla} eval_batches=${EVAL_BATCHES:-16} jobs=${JOBS:-2}
out=${OUT:-/tmp/lintrain-mqar}
mkdir -p "$out"
export OMP_NUM_THREADS=1

cat > "$out/mqar.yaml" <<YAML
run: {name: mqar, threads: 1}
model: {vocab_size: 64, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2,
        intermediate_size: 128, layer_pattern: L, linear_attention: {block_size: 64}}
data: {kind: mqar, seq_len: $seq, mqar_pairs: $pairs}
train: {steps: $steps, micro_batch: 32, log_every: 100, eval_every: 0, eval_batches: $eval_batches}
optim: {name: adamw, lr: 3.0e-3}
schedule: {warmup_steps: 30}
YAML

jobs_list=()
for v in $variants; do for s in $seeds; do jobs_list+=("$v $s"); done; done
printf '%s\n' "${jobs_list[@]}" | xargs -P "$jobs" -L 1 bash -c '
  v=$0 s=$1 dir='"$out"'/$0.seed$1
  rm -rf "$dir"
  '"$bin"' train '"$out"'/mqar.yaml --set run.out_dir="$dir" --set run.seed="$s" \
    --set model.linear_attention.variant="$v" > "$dir.log" 2>&1 || { echo "run $v seed $s failed"; tail -3 "$dir.log"; exit 1; }'

python3 - "$out" "$variants" "$seeds" "$steps" "$pairs" "$seq" <<'PY'
import json, statistics, sys
out, variants, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
steps, pairs, seq = sys.argv[4:7]
print(f"MQAR, {pairs} pairs in {seq} tokens, {steps} steps x 32 sequences, seeds {' '.join(seeds)}")
print("| variant | accuracy per seed | mean | min-max |")
print("|---|---|---|---|")
for v in variants:
    accs = []
    for s in seeds:
        rows = [json.loads(l) for l in open(f"{out}/{v}.seed{s}/metrics.jsonl")]
        evals = [r for r in rows if r.get("kind") == "eval" and "accuracy" in r]
        accs.append(evals[-1]["accuracy"])
    print(f"| {v} | {', '.join(f'{a:.3f}' for a in accs)} | {statistics.mean(accs):.3f} | "
          f"{min(accs):.3f}-{max(accs):.3f} |")
PY
