#!/usr/bin/env bash
# FP8 training quality and the CPU cost of its emulation on examples/tiny.yaml
# (issue 14): fp32, bf16, and bf16 + each FP8 recipe (format hybrid), over
# SEEDS, the same steps and data order for every run. Prints, per setting, the
# final validation loss of each seed, their mean and spread (max - min), and
# the median step time (metrics.jsonl step_time_s, steps after the first 2; the median, as shared cores make the mean noisy).
#
#   usage: bench/fp8_quality.sh [LINTRAIN_BIN]   (default build/lintrain)
#   env:   STEPS=400 SEEDS="1234 1 2" ONLY="fp32 bf16 delayed current blockwise"
#          OUT=/tmp/lintrain-fp8-quality THREADS=0 (run.threads)
set -euo pipefail
bin=$(realpath "${1:-build/lintrain}")
root=$(cd "$(dirname "$0")/.." && pwd)
steps=${STEPS:-400} seeds=${SEEDS:-"1234 1 2"} only=${ONLY:-"fp32 bf16 delayed current blockwise"}
out=${OUT:-/tmp/lintrain-fp8-quality} threads=${THREADS:-0}
mkdir -p "$out"
settings() {
  case $1 in
    fp32) echo "--set precision.compute=fp32" ;;
    bf16) echo "--set precision.compute=bf16" ;;
    *) echo "--set precision.compute=bf16 --set precision.fp8.enabled=true --set precision.fp8.recipe=$1" ;;
  esac
}
for label in $only; do
  for seed in $seeds; do
    dir=$out/$label-$seed
    [ -f "$dir/metrics.jsonl" ] && grep -q '"kind": *"eval"' "$dir/metrics.jsonl" && \
      [ "$(grep -c '"kind": *"eval"' "$dir/metrics.jsonl")" -ge 1 ] && [ -f "$dir/model.safetensors" ] && continue
    rm -rf "$dir"
    # shellcheck disable=SC2046
    "$bin" train "$root/examples/tiny.yaml" $(settings "$label") --set run.seed="$seed" \
      --set train.steps="$steps" --set train.eval_every=0 --set run.threads="$threads" \
      --set run.out_dir="$dir" --set checkpoint.every=0 --set resume=none > "$dir.log" 2>&1
  done
done
python3 - "$out" "$steps" "$seeds" "$only" <<'PY'
import json, sys, statistics
out, steps, seeds, only = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print(f"{'setting':10} {'val-loss per seed':36} {'mean':>7} {'spread':>7} {'s/step':>7}")
for label in only:
    vals, times = [], []
    for seed in seeds:
        rows = [json.loads(l) for l in open(f"{out}/{label}-{seed}/metrics.jsonl")]
        vals.append([r["loss"] for r in rows if r.get("kind") == "eval"][-1])
        times += [r["step_time_s"] for r in rows if "step_time_s" in r and r["step"] > 2]
    print(f"{label:10} {' '.join(f'{v:.4f}' for v in vals):36} {statistics.mean(vals):7.4f} "
          f"{max(vals) - min(vals):7.4f} {statistics.median(times):7.3f}")
PY
