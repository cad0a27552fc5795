#!/usr/bin/env bash
# A second, two-node SLURM cluster on 127.0.0.1, beside the one tests/slurm/cluster.sh starts
# (whose munge and slurmdbd it shares), for the multi-node test:
#
#   tests/slurm/cluster.sh up && tests/slurm/two_nodes.sh up
#   SLURM_CONF=/tmp/gcbench-slurm2/slurm.conf pytest -m slurm tests/test_slurm.py -k two_nodes
#   tests/slurm/two_nodes.sh down
#
# Two slurmd (nodes $HOST and ${HOST}2, one fake GPU each) run on this one host on ports
# 17001-17002, with their own slurmctld on 6917; nothing in /etc/slurm is touched (the cluster
# is reached through SLURM_CONF). Node names sort with $HOST first, so the rendezvous address
# submitit takes (the first node of SLURM_JOB_NODELIST) resolves. Stopped by recorded PIDs.
set -euo pipefail

MAIN="${GCBENCH_SLURM_ROOT:-/tmp/gcbench-slurm}"
ROOT="${GCBENCH_SLURM2_ROOT:-/tmp/gcbench-slurm2}"
HOST="$(hostname -s)"
NODES=("$HOST" "${HOST}2")
export SLURM_CONF="$ROOT/slurm.conf"

log() { echo "two_nodes.sh: $*" >&2; }

up() {
  [ -S "$MAIN/munge-socket/munge.socket" ] || {
    log "start the main test cluster first (tests/slurm/cluster.sh up): its munge and slurmdbd are shared"
    exit 1
  }
  if [ -f "$ROOT/run/slurmctld.pid" ] && kill -0 "$(cat "$ROOT/run/slurmctld.pid")" 2>/dev/null; then
    log "already up"
    return
  fi
  install -d -m 0755 "$ROOT/run" "$ROOT/log" "$ROOT/spool/ctld"
  local hardware
  hardware="$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]* //; s/RealMemory=[0-9]*/RealMemory=4000/")"
  cat >"$SLURM_CONF" <<CONF
# Written by gcbench tests/slurm/two_nodes.sh: two nodes on one host, on loopback.
ClusterName=gcbench2
# Job ids start anew with every cluster; a fresh range keeps sacct from mixing in old jobs.
FirstJobId=$(( $(date +%s) % 60000000 + 1000 ))
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=6917
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$MAIN/munge-socket/munge.socket,cred_expire=10
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_interval=1
KillWait=5
MinJobAge=300
ReturnToService=2
StateSaveLocation=$ROOT/spool/ctld
SlurmdSpoolDir=$ROOT/spool/%n
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd-%n.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd-%n.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$MAIN/munge-socket/munge.socket
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=${NODES[0]} NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17001 Gres=gpu:1 $hardware State=UNKNOWN
NodeName=${NODES[1]} NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17002 Gres=gpu:1 $hardware State=UNKNOWN
PartitionName=two Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE State=UP
CONF
  cat >"$ROOT/gres.conf" <<CONF
NodeName=${NODES[0]} Name=gpu File=/dev/null
NodeName=${NODES[1]} Name=gpu File=/dev/zero
CONF
  sacctmgr -n -P list cluster format=cluster | grep -qx gcbench2 || sacctmgr -i add cluster gcbench2 >/dev/null
  slurmctld -f "$SLURM_CONF"
  for node in "${NODES[@]}"; do slurmd -f "$SLURM_CONF" -N "$node"; done
  for _ in $(seq 60); do
    [ "$(sinfo -h -t idle -o %D 2>/dev/null || echo 0)" = 2 ] && {
      log "up: nodes ${NODES[*]} idle; use SLURM_CONF=$SLURM_CONF"
      return
    }
    sleep 0.5
  done
  log "nodes did not come up; logs in $ROOT/log"
  exit 1
}

down() {
  local pid
  for file in "$ROOT"/run/slurmd-*.pid "$ROOT/run/slurmctld.pid"; do
    [ -f "$file" ] || continue
    pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  done
  rm -rf "$ROOT"
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
