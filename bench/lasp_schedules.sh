#!/usr/bin/env bash
# LASP-1 (ring) against LASP-2 (AllGather) for one linear-attention layer at
# SP = 1, 2, 4, 8 (one rank per process, one thread each; above 2 ranks this
# 2-core machine is oversubscribed, so those rows measure scheduling, not
# hardware), then the alpha-beta model (bench_lasp_model) on 2 ranks.
#   usage: bench/lasp_schedules.sh [BUILD_DIR] [bench_lasp1_vs_lasp2 options...]
#   env:   WS="1 2 4 8"  MODEL=0 skips the model
set -euo pipefail
build=${1:-build}
shift || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMP_NUM_THREADS=1
log=$(mktemp)
for W in ${WS:-1 2 4 8}; do
  mpirun -np "$W" "$build/bench/bench_lasp1_vs_lasp2" "$@" | tee -a "$log"
done
echo
echo "| SP | C per rank | LASP-1 ms | LASP-2 ms | LASP-2 core ms | LASP-2 advantage | LASP-1 exchange ms | LASP-2 exchange ms | chain alone ms | allgather alone ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
python3 - "$log" <<'PY'
import sys
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"): continue
    f = dict(kv.split("=") for kv in line.split()[1:])
    W, T = int(f["W"]), int(f["T"])
    l1, l2 = float(f["lasp1_ms"]), float(f["lasp2_ms"])
    print(f"| {W} | {T // W} | {l1:.1f} | {l2:.1f} | {float(f['core_ms']):.1f} | {100 * (l1 / l2 - 1):+.1f}% | "
          f"{float(f['lasp1_exch_ms']):.1f} | {float(f['lasp2_exch_ms']):.1f} | {float(f['chain_ms']):.3f} | {float(f['allgather_ms']):.3f} |")
PY
rm -f "$log"
if [ "${MODEL:-1}" != 0 ]; then
  echo
  mpirun -np 2 "$build/bench/bench_lasp_model"
fi
