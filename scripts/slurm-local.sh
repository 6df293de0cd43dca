#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for lintrain's launch tests and
# for trying examples/slurm/pretrain.sbatch without a cluster:
#
#   scripts/slurm-local.sh start    # munged + slurmctld + slurmd, waits for the node to be idle
#   eval "$(scripts/slurm-local.sh env)"   # export SLURM_CONF for sinfo/srun/sbatch/squeue
#   sbatch examples/slurm/pretrain.sbatch examples/tiny.yaml
#   scripts/slurm-local.sh status
#   scripts/slurm-local.sh stop     # cancels jobs, stops the daemons
#
# Everything lives in one private folder, LINTRAIN_SLURM_DIR (default
# /tmp/lintrain-slurm-$UID): its own munge key and socket, slurm.conf, state,
# spool and logs (log/). Nothing under /etc is read or changed, so it can run
# beside a system Slurm or another copy of itself (each picks free ports).
# The daemons are addressed on 127.0.0.1 only (slurmctld and slurmd still
# listen on all interfaces, as Slurm has no listen-address setting, but no
# traffic leaves loopback).
#
# Choices that make it run in containers: proctrack/linuxproc and task/none
# (no cgroups), select/cons_tres with CR_CPU (CPUs are the only consumable:
# memory is not enforced), SlurmUser=root. MpiDefault=pmix when Slurm has the
# PMIx plugin (srun --mpi=list), else none.
#
# Both start and stop are idempotent. Exit codes: 0 ok; 77 = Slurm cannot run
# here (not root, a package missing, a daemon that will not start; the reason
# is printed), so tests can skip; 3 = status found it not running; 2 = usage.
set -euo pipefail

DIR=${LINTRAIN_SLURM_DIR:-/tmp/lintrain-slurm-$(id -u)}
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
START_TIMEOUT=${LINTRAIN_SLURM_START_TIMEOUT:-30}

say() { echo "slurm-local: $*"; }
cannot_run() {
  say "cannot run Slurm here: $*" >&2
  exit 77
}

pid_alive() {  # pid_alive FILE: the pid in FILE is a live process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# The whole cluster answers: every daemon alive and slurmctld replying.
running() {
  [ -f "$CONF" ] && pid_alive "$DIR/run/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" &&
    pid_alive "$DIR/run/slurmd.pid" && SLURM_CONF="$CONF" timeout 10 sinfo -h >/dev/null 2>&1
}

# stop_pid NAME FILE: SIGTERM, up to 10 s for it to go, then SIGKILL.
stop_pid() {
  local name=$1 file=$2 pid _
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

show_log() {  # the last lines of a daemon's log, to say why it failed
  [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 15 "$1" >&2; }
  return 0
}

port_free() {
  if command -v ss >/dev/null 2>&1; then
    [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    return 1  # something accepted a connection
  fi
}

# Two consecutive free ports (slurmctld, slurmd): 16817/16818 or the next free pair.
pick_ports() {
  local base=${LINTRAIN_SLURM_PORT:-16817} p
  for p in $(seq "$base" 2 $((base + 200))); do
    if port_free "$p" && port_free $((p + 1)); then
      echo "$p"
      return 0
    fi
  done
  return 1
}

do_stop() {
  if [ -f "$CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
    # Cancel jobs first so that slurmd ends their steps (bounded wait).
    SLURM_CONF="$CONF" timeout 10 scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do
      [ -z "$(SLURM_CONF="$CONF" timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid slurmd "$DIR/run/slurmd.pid"
  stop_pid slurmctld "$DIR/run/slurmctld.pid"
  stop_pid munged "$DIR/run/munged.pid"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
}

write_conf() {
  local ctld_port=$1 cpus mem_total mem
  cpus=$(nproc)
  mem_total=$(free -m | awk '/^Mem:/ {print $2}')
  # Keep a margin: slurmd drains a node that reports less than RealMemory.
  mem=$((mem_total - (mem_total / 10 > 512 ? mem_total / 10 : 512)))
  [ "$mem" -ge 1 ] || mem=1
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a one-node test cluster on loopback.
ClusterName=lintrain-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default
# 120 s); short, so that the requeue test of pretrain.sbatch does not wait minutes.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$DIR/tmp
# No cgroups in containers: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
# Keep finished jobs visible to scontrol for 10 minutes (tests read their state).
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Default=YES Nodes=localhost MaxTime=INFINITE State=UP
EOF
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local secs=$1 what=$2 _
  shift 2
  for _ in $(seq 1 $((secs * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  say "timed out after ${secs}s waiting for $what" >&2
  return 1
}

node_idle() {
  local state
  state=$(SLURM_CONF="$CONF" timeout 5 sinfo -h -n localhost -o %t 2>/dev/null) || return 1
  [ "$state" = "idle" ]
}

do_start() {
  if running; then
    say "already running (SLURM_CONF=$CONF)"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || cannot_run "the daemons must run as root (SlurmUser=root); run as root"
  local tool
  for tool in munged mungekey slurmctld slurmd sinfo srun sbatch squeue scontrol scancel; do
    command -v "$tool" >/dev/null 2>&1 ||
      cannot_run "'$tool' is not installed (Debian packages: munge slurm-wlm; scripts/install-deps.sh)"
  done
  # Unix sockets (munge, slurmstepd) live under DIR and have a 107-byte limit.
  [ "${#DIR}" -le 60 ] || cannot_run "LINTRAIN_SLURM_DIR '$DIR' is too long for Unix socket paths (60 characters at most)"
  do_stop  # whatever is left of an earlier, partly dead instance

  mkdir -p "$DIR"/{etc,munge,run,log,tmp}
  chmod 700 "$DIR" "$DIR/munge"
  # A fresh cluster each start: no jobs or node states carried over.
  rm -rf "$DIR/state" "$DIR/spool"
  mkdir -p "$DIR/state" "$DIR/spool"

  if [ ! -s "$DIR/munge/munge.key" ]; then
    mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1 ||
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 600 "$DIR/munge/munge.key"

  local port
  port=$(pick_ports) || cannot_run "no two free TCP ports from ${LINTRAIN_SLURM_PORT:-16817} on"
  write_conf "$port"
  # srun --mpi=list needs a readable slurm.conf but no daemon.
  if SLURM_CONF="$CONF" timeout 10 srun --mpi=list 2>&1 | grep -qw pmix; then
    sed -i 's/^MpiDefault=none$/MpiDefault=pmix/' "$CONF"
  fi

  # --force: run even where munged finds the folders' permissions too loose.
  if ! munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/run/munged.pid" --seed-file="$DIR/munge/munged.seed" \
    --log-file="$DIR/log/munged.log" </dev/null >>"$DIR/log/munged.out" 2>&1; then
    show_log "$DIR/log/munged.out"
    show_log "$DIR/log/munged.log"
    cannot_run "munged did not start"
  fi
  if ! wait_for 10 "munged" test -S "$MUNGE_SOCKET"; then
    show_log "$DIR/log/munged.log"
    do_stop
    cannot_run "munged did not create its socket"
  fi

  # The daemons fork into the background; their output goes to files so that
  # no pipe of the caller (ctest) stays open.
  if ! slurmctld -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 ||
    ! wait_for 10 "slurmctld" pid_alive "$DIR/run/slurmctld.pid"; then
    show_log "$DIR/log/slurmctld.out"
    show_log "$DIR/log/slurmctld.log"
    do_stop
    cannot_run "slurmctld did not start"
  fi
  if ! slurmd -f "$CONF" -N localhost </dev/null >>"$DIR/log/slurmd.out" 2>&1 ||
    ! wait_for 10 "slurmd" pid_alive "$DIR/run/slurmd.pid"; then
    show_log "$DIR/log/slurmd.out"
    show_log "$DIR/log/slurmd.log"
    do_stop
    cannot_run "slurmd did not start"
  fi
  if ! wait_for "$START_TIMEOUT" "node localhost to be idle" node_idle; then
    SLURM_CONF="$CONF" timeout 5 sinfo -N -l >&2 || true
    show_log "$DIR/log/slurmctld.log"
    show_log "$DIR/log/slurmd.log"
    do_stop
    cannot_run "the node did not become idle"
  fi
  say "running: cluster lintrain-test, node localhost ($(nproc) CPUs), ports $port-$((port + 1))"
  say "use it with: export SLURM_CONF=$CONF"
}

do_status() {
  local name
  for name in munged slurmctld slurmd; do
    if pid_alive "$DIR/run/$name.pid"; then say "$name running (pid $(cat "$DIR/run/$name.pid"))"
    else say "$name not running"; fi
  done
  if running; then
    SLURM_CONF="$CONF" timeout 10 sinfo
    return 0
  fi
  return 3
}

case "${1:-}" in
  start) do_start ;;
  stop)
    do_stop
    say "stopped"
    ;;
  status) do_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *)
    echo "usage: $0 start|stop|status|env   (folder: LINTRAIN_SLURM_DIR, default /tmp/lintrain-slurm-\$UID)" >&2
    exit 2
    ;;
esac
