#!/usr/bin/env bash
# `lintrain plan` end to end:
#   1. the report of examples/tiny.yaml has its key lines; at SP 2 (--nodes 1
#      --gpus-per-node 4) the LASP-2 / LASP-2H / all-reduce lines appear; a
#      small --device-memory gives "does NOT fit" and the smallest SP that fits;
#   2. bad flags are refused with exit 2 and a reason;
#   3. the plan's memory against a real short run's peak RSS (/usr/bin/time -v)
#      on three configs (linear, hybrid, hybrid + GaLore), within 10%.
#      Peak RSS also holds what the plan does not model: the binary and its
#      libraries (OpenBLAS, Open MPI, gRPC, yaml-cpp), the loaded text data and
#      the allocator's slack, about 27 MiB here. So the compared figure is the
#      growth over a baseline run of a one-layer, 16-wide model on the same
#      data: RSS(config) - RSS(baseline) against plan(config) - plan(baseline).
#      The raw ratio RSS / plan is printed too.
#   4. the plan's FLOPs per token against the trainer's GEMM counter
#      (metrics.jsonl: gflops x step_time_s / tokens of the step, step 1),
#      within 10%: the attention cores' products run through the same GEMM.
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
CFG="$REPO/examples/tiny.yaml"
export OMP_NUM_THREADS=1

# bytes_of "832.22 MiB" -> bytes
bytes_of() {
  awk -v v="$1" -v u="$2" 'BEGIN { m = 1; if (u == "KiB") m = 1024; if (u == "MiB") m = 1048576;
                                   if (u == "GiB") m = 1073741824; printf "%.0f\n", v * m }'
}
planned_total() {  # planned_total ARGS...: the plan's total per rank, bytes
  local line
  line=$("$LINTRAIN" plan "$CFG" "$@" | grep -E '^  total ')
  # shellcheck disable=SC2086
  bytes_of $(echo "$line" | awk '{ print $2, $3 }')
}

# 1. the report
"$LINTRAIN" plan "$CFG" >"$WORK/tiny.out"
for key in "^plan tiny: 1 rank" "parameters .* 906.4K params" "gradients" "optimizer state" "    adamw " \
           "linear attention" "softmax attention" "MLP" "loss / head" "FP8 state .* not enabled" "^  total " \
           ": fits" "FLOPs per token" "none (one rank)" "smallest parallel.sequence that fits data.seq_len 256"; do
  grep -q -- "$key" "$WORK/tiny.out" || { cat "$WORK/tiny.out"; fail "tiny: no '$key' in the plan"; }
done
"$LINTRAIN" plan "$CFG" --set parallel.sequence=2 --nodes 1 --gpus-per-node 4 --device-memory 80GiB >"$WORK/sp2.out"
for key in "4 rank(s) = SP 2 x DP 2" "8 x 128 tokens" "LASP-2 all-gather of memory states .*3 layers" \
           "LASP-2H all-gather of K|V" "LASP-2H reduce-scatter of dK|dV" "gradient all-reduce" "80.00 GiB (--device-memory): fits"; do
  grep -q -- "$key" "$WORK/sp2.out" || { cat "$WORK/sp2.out"; fail "sp2: no '$key' in the plan"; }
done
"$LINTRAIN" plan "$CFG" --set data.seq_len=4096 --nodes 2 --gpus-per-node 4 --device-memory 400MiB >"$WORK/long.out"
grep -q "does NOT fit" "$WORK/long.out" || { cat "$WORK/long.out"; fail "long: 4096 tokens at SP 1 should not fit 400 MiB"; }
grep -q "smallest parallel.sequence that fits data.seq_len 4096 in 400.00 MiB: [248] " "$WORK/long.out" ||
  { cat "$WORK/long.out"; fail "long: no smallest SP"; }
note "ok: report ($(grep smallest "$WORK/long.out"))"

# 2. bad flags
expect_error unknown-flag "unknown option '--frobnicate'" -- "$LINTRAIN" plan "$CFG" --frobnicate
expect_error bad-size "--device-memory 'lots' is not a size" -- "$LINTRAIN" plan "$CFG" --device-memory lots
expect_error nodes-alone "give --nodes and --gpus-per-node together" -- "$LINTRAIN" plan "$CFG" --nodes 2
expect_error bad-count "--gpus-per-node needs a whole number" -- "$LINTRAIN" plan "$CFG" --nodes 1 --gpus-per-node 0
expect_error table "plan does not take --table" -- "$LINTRAIN" plan "$CFG" --table
expect_error no-file "plan needs a run file" -- "$LINTRAIN" plan
expect_error twice "--nodes is given twice" -- "$LINTRAIN" plan "$CFG" --nodes 1 --nodes 2 --gpus-per-node 1
expect_error sp-world "does not divide the world of 3 ranks" -- \
  "$LINTRAIN" plan "$CFG" --set parallel.sequence=2 --nodes 1 --gpus-per-node 3

# 3. against a real run's peak RSS
[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed (Debian package time): the RSS comparison needs it"
COMMON=(--set train.steps=2 --set train.log_every=1 --set train.eval_every=0 --set checkpoint.every=0
        --set train.eval_batches=1)
BASE=(--set model.hidden_size=16 --set model.num_hidden_layers=1 --set model.intermediate_size=16
      --set model.layer_pattern=L --set data.seq_len=16 --set train.micro_batch=1)
BIG=(--set model.hidden_size=512 --set model.num_hidden_layers=8 --set model.intermediate_size=1376
     --set data.seq_len=256 --set train.micro_batch=4)
peak_rss() {  # peak_rss NAME ARGS...: trains, prints the peak RSS in bytes
  local name=$1
  shift
  /usr/bin/time -v "$LINTRAIN" train "$CFG" "${COMMON[@]}" "$@" --set run.out_dir="$WORK/$name" \
    >"$WORK/$name.train" 2>"$WORK/$name.time" || { cat "$WORK/$name.train" "$WORK/$name.time"; fail "$name: train failed"; }
  awk '/Maximum resident set size/ { printf "%.0f\n", $6 * 1024 }' "$WORK/$name.time"
}
base_rss=$(peak_rss base "${BASE[@]}")
base_plan=$(planned_total "${COMMON[@]}" "${BASE[@]}")
check_config() {  # check_config NAME ARGS...
  local name=$1 rss plan
  shift
  rss=$(peak_rss "$name" "${BIG[@]}" "$@")
  plan=$(planned_total "${COMMON[@]}" "${BIG[@]}" "$@")
  awk -v n="$name" -v r="$rss" -v p="$plan" -v br="$base_rss" -v bp="$base_plan" 'BEGIN {
    dm = r - br; dp = p - bp; e = (dm - dp) / dp
    printf "%s: plan %.1f MiB, peak RSS %.1f MiB (raw %.3f); over the baseline (RSS %.1f MiB, plan %.1f MiB): plan %.1f MiB, measured %.1f MiB, %+.1f%%\n",
           n, p / 1048576, r / 1048576, r / p, br / 1048576, bp / 1048576, dp / 1048576, dm / 1048576, 100 * e
    exit (e < -0.10 || e > 0.10) ? 1 : 0 }' | tee -a "$WORK/rss.txt" || fail "$name: the plan is more than 10% off the measured memory"
  local planned_flops counted_flops
  planned_flops=$("$LINTRAIN" plan "$CFG" "${COMMON[@]}" "${BIG[@]}" "$@" | sed -n 's/^FLOPs per token (forward + backward): \([^ ]*\) .*/\1/p')
  counted_flops=$(head -1 "$WORK/$name/metrics.jsonl" |
    sed -n 's/.*"gflops": \([^,]*\), "step_time_s": \([^,}]*\).*/\1 \2/p' | awk '{ printf "%.6g\n", $1 * 1e9 * $2 / (4 * 256) }')
  awk -v n="$name" -v p="$planned_flops" -v c="$counted_flops" 'BEGIN {
    e = (c - p) / p; printf "%s: FLOPs per token planned %.4g, counted by GEMM %.4g, %+.1f%%\n", n, p, c, 100 * e
    exit (e < -0.10 || e > 0.10) ? 1 : 0 }' | tee -a "$WORK/rss.txt" || fail "$name: FLOPs per token more than 10% off"
}
check_config linear --set model.layer_pattern=L
check_config hybrid --set model.layer_pattern=LLLS
check_config hybrid-galore --set model.layer_pattern=LLLS --set optim.name=galore --set optim.galore.rank=64
check_config hybrid-fp8 --set model.layer_pattern=LLLS --set precision.compute=bf16 --set precision.fp8.enabled=true
note "PASSED"
