#!/usr/bin/env bash
# A real single-node SLURM cluster on 127.0.0.1 for the tests marked `slurm`.
#
#   tests/slurm/cluster.sh up      install the Debian packages if needed, start munge, MariaDB,
#                                  slurmdbd (so that sacct works), slurmctld and slurmd with two
#                                  fake GPUs; idempotent: a running cluster is left as it is
#   tests/slurm/cluster.sh down    stop every daemon by the PID it recorded, remove the state
#   tests/slurm/cluster.sh status  the daemons' PIDs and the node's state
#
# Needs root (it writes /etc/slurm). All state lives under $GCBENCH_SLURM_ROOT
# (default /tmp/gcbench-slurm); nothing is stopped by name, so it never touches other daemons.
set -euo pipefail

ROOT="${GCBENCH_SLURM_ROOT:-/tmp/gcbench-slurm}"
HOST="$(hostname -s)"
DB_PORT="${GCBENCH_SLURM_DB_PORT:-3317}"
DAEMONS=(slurmd slurmctld slurmdbd mariadb munged) # stop order; start order is the reverse

log() { echo "cluster.sh: $*" >&2; }
pid_of() { cat "$ROOT/run/$1.pid" 2>/dev/null || true; }
alive() {
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out waiting for $what; logs are in $ROOT/log"
      tail -n 20 "$ROOT"/log/* >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sbatch munged slurmdbd mariadbd; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  log "installing SLURM, munge and MariaDB (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
}

start_munge() {
  alive munged && return
  install -d -o munge -g munge -m 0700 "$ROOT/munge"
  [ -f "$ROOT/munge/munge.key" ] || mungekey --create --keyfile="$ROOT/munge/munge.key"
  chown munge:munge "$ROOT/munge/munge.key"
  chmod 0600 "$ROOT/munge/munge.key"
  # The socket directory must be reachable by every user that submits jobs.
  install -d -o munge -g munge -m 0755 "$ROOT/munge-socket"
  runuser -u munge -- munged --key-file="$ROOT/munge/munge.key" \
    --socket="$ROOT/munge-socket/munge.socket" --pid-file="$ROOT/munge/munged.pid" \
    --log-file="$ROOT/munge/munged.log" --seed-file="$ROOT/munge/munged.seed"
  wait_for 10 munged test -S "$ROOT/munge-socket/munge.socket"
  cp "$ROOT/munge/munged.pid" "$ROOT/run/munged.pid"
}

start_mariadb() {
  alive mariadb && return
  if [ ! -d "$ROOT/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$ROOT/mysql" --auth-root-authentication-method=socket \
      >"$ROOT/log/mariadb-install.log" 2>&1
  fi
  mariadbd --user=root --datadir="$ROOT/mysql" --socket="$ROOT/run/mysqld.sock" \
    --pid-file="$ROOT/run/mariadb.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --skip-name-resolve --innodb-buffer-pool-size=64M --log-error="$ROOT/log/mariadb.log" \
    2>>"$ROOT/log/mariadb.log" &
  disown
  wait_for 60 MariaDB mariadb --socket="$ROOT/run/mysqld.sock" -e "select 1"
  mariadb --socket="$ROOT/run/mysqld.sock" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

write_configs() {
  local hardware
  hardware="$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]* //")"
  install -d -m 0755 /etc/slurm "$ROOT/spool/ctld" "$ROOT/spool/d"
  # slurmdbd reads slurmdbd.conf beside slurm.conf; it has no option to point elsewhere.
  cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
AuthInfo=socket=$ROOT/munge-socket/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$ROOT/run/slurmdbd.pid
LogFile=$ROOT/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 0600 /etc/slurm/slurmdbd.conf
  cat >/etc/slurm/slurm.conf <<EOF
# Written by gcbench tests/slurm/cluster.sh: a single-node test cluster on loopback.
ClusterName=gcbench
SlurmctldHost=$HOST(127.0.0.1)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$ROOT/munge-socket/munge.socket,cred_expire=10
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
SlurmdSpoolDir=$ROOT/spool/d
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$ROOT/munge-socket/munge.socket
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 Gres=gpu:2 $hardware State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  # Two fake GPUs (a device file each; without File= the node goes INVAL): two single-GPU
  # jobs at once, or one two-task data-parallel job.
  cat >/etc/slurm/gres.conf <<EOF
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
EOF
}

start_slurm() {
  if ! alive slurmdbd; then
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
  fi
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx gcbench; then
    sacctmgr -i add cluster gcbench >/dev/null
  fi
  alive slurmctld || slurmctld
  wait_for 30 slurmctld scontrol ping
  alive slurmd || slurmd -N "$HOST"
  wait_for 30 "node $HOST idle" sh -c "sinfo -h -n $HOST -o %T | grep -qx idle"
  wait_for 30 "sacct" sacct -n -X -S now
}

up() {
  [ "$(id -u)" -eq 0 ] || {
    log "must run as root (it writes /etc/slurm and starts daemons)"
    exit 1
  }
  install_packages
  install -d -m 0755 "$ROOT" "$ROOT/run" "$ROOT/log"
  start_munge
  start_mariadb
  write_configs
  start_slurm
  log "up: node $HOST idle with gpu:2 (fake); state in $ROOT"
}

down() {
  local pid
  for daemon in "${DAEMONS[@]}"; do
    pid="$(pid_of "$daemon")"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for daemon in "${DAEMONS[@]}"; do
    pid="$(pid_of "$daemon")"
    [ -n "$pid" ] || continue
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$ROOT" /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf
  log "down"
}

status() {
  for daemon in "${DAEMONS[@]}"; do
    if alive "$daemon"; then echo "$daemon running (pid $(pid_of "$daemon"))"; else echo "$daemon stopped"; fi
  done
  alive slurmctld && sinfo -N -o "%N %T %G" || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
