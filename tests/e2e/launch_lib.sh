# shellcheck shell=bash disable=SC2034  # variables here are used by the tests that source it
# Helpers for the launch end-to-end tests (test_launch.sh, test_kill_rank.sh,
# test_slurm.sh); sourced, not run. Each test is called by ctest as
#   bash tests/e2e/test_X.sh <lintrain binary> <scratch dir>
# and exits 0 = pass, 77 = skipped (a "SKIPPED: reason" line says why), other = fail.
# LINTRAIN_MPI_PROBE, when set (ctest sets it), is tests/e2e/mpi_probe: the
# tests first check the launch machinery with it, then with lintrain itself.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)

note() { echo "$TEST_NAME: $*"; }
fail() {
  echo "$TEST_NAME: FAILED: $*" >&2
  exit 1
}
skip() {
  echo "SKIPPED: $*"
  exit 77
}

# setup_test "$@": checks the arguments, sets LINTRAIN and WORK (emptied).
setup_test() {
  [ "$#" -eq 2 ] || fail "usage: $0 <lintrain binary> <scratch dir>"
  LINTRAIN=$1
  WORK=$2
  [ -x "$LINTRAIN" ] || fail "lintrain binary '$LINTRAIN' not found"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  PROBE=${LINTRAIN_MPI_PROBE:-}
  if [ -n "$PROBE" ] && [ ! -x "$PROBE" ]; then
    note "LINTRAIN_MPI_PROBE '$PROBE' is not an executable; probe checks skipped"
    PROBE=""
  fi
}

# expect_error NAME PATTERN -- CMD...: CMD must fail within 20 s, printing
# PATTERN (grep), and must not crash or print a raw library error.
expect_error() {
  local name=$1 pattern=$2 rc=0
  shift 3
  timeout 20 "$@" >"$WORK/$name.out" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || { cat "$WORK/$name.out"; fail "$name: hung (killed after 20 s)"; }
  [ "$rc" -ne 0 ] || { cat "$WORK/$name.out"; fail "$name: succeeded, expected an error"; }
  grep -q -- "$pattern" "$WORK/$name.out" || { cat "$WORK/$name.out"; fail "$name: no '$pattern' in the error"; }
  if grep -qiE "segmentation|core dumped|terminate called|bad_alloc|filesystem error" "$WORK/$name.out"; then
    cat "$WORK/$name.out"
    fail "$name: crashed or printed a raw library error"
  fi
  note "ok: $name ($(grep -m1 -o 'error.*' "$WORK/$name.out" | cut -c1-110))"
}

# MPIRUN: how the tests start N ranks with Open MPI on this machine.
mpirun_cmd() {
  command -v mpirun >/dev/null 2>&1 || skip "mpirun is not installed (Debian package openmpi-bin)"
  MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
  if [ "$(id -u)" -eq 0 ]; then MPIRUN+=(--allow-run-as-root); fi
}

# wait_exit PID SECONDS: waits for child PID to end, at most SECONDS; sets
# EXIT_CODE (its status, or "timeout") and WAITED_S (seconds, 0.1 s steps).
wait_exit() {
  local pid=$1 limit=$2 tenths=0
  while kill -0 "$pid" 2>/dev/null && [ "$tenths" -lt $((limit * 10)) ]; do
    sleep 0.1
    tenths=$((tenths + 1))
  done
  WAITED_S="$((tenths / 10)).$((tenths % 10))"
  if kill -0 "$pid" 2>/dev/null; then
    EXIT_CODE=timeout
    return 0
  fi
  EXIT_CODE=0
  wait "$pid" || EXIT_CODE=$?
}

# process_running PID: PID exists and is not a zombie (a dead rank whose new
# parent, init, has not reaped it yet).
process_running() {
  local state
  state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# stop_tree PID: ends PID and its children (TERM, then KILL after 5 s).
stop_tree() {
  local pid=$1 kids _
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  # shellcheck disable=SC2086  # a list of pids
  kill -KILL "$pid" $kids 2>/dev/null || true
}

# train_losses METRICS_JSONL: "step loss" for every training line (no "kind"),
# the loss exactly as written.
train_losses() {
  { grep -v '"kind"' "$1" || true; } | sed -n 's/.*"step": \([0-9]*\).*"loss": \([^,}]*\).*/\1 \2/p'
}

# rank_pid RANK: the pid of that rank among the children of JOB_PID (mpirun;
# Open MPI puts OMPI_COMM_WORLD_RANK in each rank's environment), or nothing yet.
rank_pid() {
  local pid
  for pid in $(pgrep -P "$JOB_PID" || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"
      return 0
    fi
  done
}
