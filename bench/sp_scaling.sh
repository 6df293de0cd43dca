#!/usr/bin/env bash
# Strong scaling of sequence parallelism on one machine: the same pure-linear
# model and sequence trained by `lintrain train` on one rank with one thread
# (SP=1) and on two ranks with one thread each (mpirun -np 2, SP=2, LASP-2).
# Reports tokens/s per configuration (median over the steps after the first,
# which is a warm-up: first touch of every buffer) and the SP=2 speedup.
# Validation: both runs start from the same seed and data, so their per-step
# losses must agree (relative difference < 1e-4: LASP-2 changes only the fp32
# summation order of the chunk-boundary states); a larger difference fails.
#
#   usage: bench/sp_scaling.sh [LINTRAIN_BIN]       (default build/lintrain)
#   env:   SEQS="16384 32768"  LAYERS=4  STEPS=3  HIDDEN=512  HEADS=8
#          OUT=/tmp/lintrain-sp-scaling
#          BOUND=1  also run two independent SP=1 processes at T/2 at the same
#                   time (no communication, no LASP-2 work): what the two cores
#                   deliver together, the ceiling for SP=2.
#          FTZ=1    run every process with flush-to-zero/denormals-are-zero set
#                   (an LD_PRELOAD shim built here), to measure what denormal
#                   arithmetic costs (see RESULTS.md, issue 3).
set -euo pipefail
bin=$(realpath "${1:-build/lintrain}")
seqs=${SEQS:-"16384 32768"} layers=${LAYERS:-4} steps=${STEPS:-3}
hidden=${HIDDEN:-512} heads=${HEADS:-8} out=${OUT:-/tmp/lintrain-sp-scaling}
command -v mpirun >/dev/null || { echo "mpirun not found"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMP_NUM_THREADS=1
rm -rf "$out" && mkdir -p "$out"

preload=()
if [ "${FTZ:-0}" = 1 ]; then
  printf '#include <xmmintrin.h>\n__attribute__((constructor)) static void ftz(void) { _mm_setcsr(_mm_getcsr() | 0x8040); }\n' >"$out/ftz.c"
  cc -O2 -shared -fPIC "$out/ftz.c" -o "$out/ftz.so"
  export LD_PRELOAD="$out/ftz.so"
  preload=(-x LD_PRELOAD)
fi

ffn=$(( (hidden * 8 / 3 + 15) / 16 * 16 ))
cat >"$out/run.yaml" <<YAML
run: {name: sp-scaling, seed: 1, threads: 1}
model: {vocab_size: 256, hidden_size: $hidden, num_hidden_layers: $layers, num_attention_heads: $heads,
        intermediate_size: $ffn, layer_pattern: "L",
        linear_attention: {variant: lightning, block_size: 64}}
data: {kind: mqar, seq_len: 16384, mqar_pairs: 8}
train: {steps: $steps, micro_batch: 1, eval_every: 0, eval_batches: 1, log_every: 1}
optim: {name: adamw, lr: 1.0e-3}
schedule: {warmup_steps: 1}
YAML

# stats DIR...: median, min and max tokens/s over steps 2.. summed over the dirs
# (one dir for a single run; two for concurrent independent runs).
stats() {
  python3 - "$@" <<'PY'
import json, statistics, sys
runs = []
for d in sys.argv[1:]:
    rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if '"kind"' not in l]
    runs.append([r["tokens_per_s"] for r in rows[1:]])
tot = [sum(v) for v in zip(*runs)]
print(f"{statistics.median(tot):.0f} {min(tot):.0f} {max(tot):.0f}")
PY
}

losses_agree() {  # losses_agree REF OTHER
  python3 - "$1" "$2" <<'PY'
import json, sys
rows = lambda d: [json.loads(l)["loss"] for l in open(d + "/metrics.jsonl") if '"kind"' not in l]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{worst:.1e}")
sys.exit(0 if len(a) == len(b) and worst < 1e-4 else 1)
PY
}

echo "lintrain $bin | hidden $hidden, $layers layers (L, lightning), $heads heads, FFN $ffn, B=1, $steps steps (first = warm-up)${FTZ:+, FTZ=$FTZ}"
printf "| T | SP=1 tok/s (1 thread) | SP=2 tok/s (2 ranks x 1 thread) | speedup | loss rel. diff |%s\n" "${BOUND:+ 2 x SP=1 at T/2 concurrently | SP=2 / that |}"
status=0
for T in $seqs; do
  common=(--set data.seq_len="$T")
  "$bin" train "$out/run.yaml" "${common[@]}" --set run.out_dir="$out/sp1.$T" >"$out/sp1.$T.log" 2>&1 \
    || { echo "SP=1 T=$T failed:"; tail -3 "$out/sp1.$T.log"; exit 1; }
  mpirun -np 2 "${preload[@]}" "$bin" train "$out/run.yaml" "${common[@]}" --set parallel.sequence=2 \
    --set run.out_dir="$out/sp2.$T" >"$out/sp2.$T.log" 2>&1 \
    || { echo "SP=2 T=$T failed:"; tail -3 "$out/sp2.$T.log"; exit 1; }
  read -r s1 s1min s1max <<<"$(stats "$out/sp1.$T")"
  read -r s2 s2min s2max <<<"$(stats "$out/sp2.$T")"
  diff=$(losses_agree "$out/sp1.$T" "$out/sp2.$T") || { status=1; diff="$diff FAIL"; }
  speedup=$(python3 -c "print(f'{$s2/$s1:.2f}x')")
  bound_cols=""
  if [ -n "${BOUND:-}" ]; then
    half=$((T / 2))
    "$bin" train "$out/run.yaml" --set data.seq_len=$half --set run.out_dir="$out/half-a.$T" >"$out/half-a.$T.log" 2>&1 &
    pid=$!
    "$bin" train "$out/run.yaml" --set data.seq_len=$half --set run.seed=2 --set run.out_dir="$out/half-b.$T" >"$out/half-b.$T.log" 2>&1
    wait $pid
    read -r sb _ _ <<<"$(stats "$out/half-a.$T" "$out/half-b.$T")"
    bound_cols=" $sb | $(python3 -c "print(f'{$s2/$sb:.2f}')") |"
  fi
  echo "| $T | $s1 ($s1min-$s1max) | $s2 ($s2min-$s2max) | **$speedup** | $diff |$bound_cols"
done
echo "(tok/s: median (min-max) over steps 2..$steps from metrics.jsonl; logs in $out)"
exit $status
