#!/usr/bin/env bash
# Quality of each optimizer beside AdamW on the same tiny pretraining task and
# token budget: examples/tiny.yaml's model and data (byte-level text), STEPS
# optimizer steps of 8 x 256 tokens, the same seed and data order for every
# run. Reports the final validation loss (EVAL_BATCHES held-out batches), the
# optimizer-state bytes each run holds (from its startup report) and the mean
# step time, and checks the issue's targets:
#   GaLore   val loss within 3% of AdamW, with <= half of AdamW's state on the
#            projected weights
#   FRUGAL   (density 0.25) val loss <= GaLore's, at about GaLore's memory
#   SPAM     val loss <= AdamW's
# Each optimizer runs at its paper's recommended settings relative to AdamW
# (listed below with the reason); all other keys are the example's.
#
#   usage: bench/optim_quality.sh [LINTRAIN_BIN]     (default build/lintrain)
#   env:   STEPS=1000  EVAL_BATCHES=40  OUT=/tmp/lintrain-optim-quality  ONLY="adamw galore"
set -euo pipefail
bin=$(realpath "${1:-build/lintrain}")
steps=${STEPS:-1000} eval_batches=${EVAL_BATCHES:-40} out=${OUT:-/tmp/lintrain-optim-quality}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"

common=(--set train.steps="$steps" --set train.eval_every=0 --set train.eval_batches="$eval_batches"
        --set train.log_every=100 --set train.export_every=0)
# label | overrides (the example's AdamW: lr 3e-3, betas (0.9, 0.95), wd 0.01)
declare -A runs=(
  [adamw]=""
  # Lion paper: lr 3-10x smaller and weight decay 3-10x larger than AdamW's.
  [lion]="optim.name=lion optim.lr=3.0e-4 optim.weight_decay=0.1 optim.lion.betas=[0.9,0.99]"
  # SPAM: AdamW's lr and betas; its defaults for reset (500), warm-up (150), theta (5000).
  [spam]="optim.name=spam optim.spam.betas=[0.9,0.95]"
  # GaLore paper (60M): rank = hidden/4, gap 200, scale 0.25, lr 10x AdamW's on
  # every tensor (0.01 vs 0.001); here the projected weights get lr x scale.
  [galore]="optim.name=galore optim.lr=1.0e-2 optim.galore.rank=32 optim.galore.betas=[0.9,0.95]"
  # FRUGAL paper: density 0.25 state-full (SVD subspace, gap 200), signSGD on the rest, AdamW's lr.
  [frugal]="optim.name=frugal optim.frugal.density=0.25 optim.frugal.betas=[0.9,0.95]"
  [frugal_blockwise]="optim.name=frugal optim.frugal.proj_type=blockwise optim.frugal.betas=[0.9,0.95]"
)
order=(adamw lion spam galore frugal frugal_blockwise)
[ -n "${ONLY:-}" ] && read -r -a order <<<"$ONLY"

printf '%-18s %10s %12s %14s %18s %10s\n' optimizer val_loss "state MiB" "vs AdamW state" "own group B/param" "step ms"
for name in "${order[@]}"; do
  sets=()
  for kv in ${runs[$name]}; do sets+=(--set "$kv"); done
  dir="$out/$name"
  (cd "$root" && "$bin" train examples/tiny.yaml "${common[@]}" --set run.out_dir="$dir" --set run.name="$name" \
     "${sets[@]}") >"$out/$name.log" 2>&1 || { echo "$name: training failed, see $out/$name.log"; exit 1; }
  val=$(grep '"kind": "eval"' "$dir/metrics.jsonl" | tail -1 | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/')
  state=$(grep -o 'optimizer state [0-9.]* MiB = [0-9.]* B/param (AdamW on every tensor: [0-9.]* MiB' "$out/$name.log" |
          awk '{print $3, $12}' | head -1)
  # B/param of the group the optimizer itself updates (GaLore/FRUGAL: the projected weights).
  opt=$(grep -o 'optimizer [a-z]*:' "$out/$name.log" | head -1 | awk '{print $2}' | tr -d :)
  own=$(awk -v o="$opt" '$1 == o && $2 == o {print $(NF-1)}' "$out/$name.log" | head -1)
  step_ms=$(grep -v '"kind"' "$dir/metrics.jsonl" | awk -F'"step_time_s": ' 'NR>1 {split($2,a,"}"); s+=a[1]; n++} END {printf "%.1f", 1000*s/n}')
  read -r mib adamw_mib <<<"$state"
  printf '%-18s %10s %12s %13.1f%% %18s %10s\n' "$name" "$val" "$mib" "$(echo "100*$mib/$adamw_mib" | bc -l)" \
    "${own:--}" "$step_ms"
  echo "$name $val $mib ${own:--} $step_ms" >>"$out/summary.txt"
done
