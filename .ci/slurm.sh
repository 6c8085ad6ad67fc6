#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the sweep tests (issue 17).
#   bash .ci/slurm.sh start   # installs slurm-wlm and munge, starts munged, slurmctld, slurmd
#   bash .ci/slurm.sh stop    # stops them (the caller traps it)
# Needs root. Accounting is off (no slurmdbd): tests wait through squeue and
# the task folders.
set -euo pipefail
STATE=${BILEVEL_SLURM_STATE:-/tmp/bilevel-slurm}
CONF=/etc/slurm/slurm.conf

start() {
  if [ "$(id -u)" != 0 ]; then echo "slurm.sh: needs root" >&2; exit 1; fi
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null
  fi
  mkdir -p "$STATE"/{ctld,d,log} /etc/slurm /etc/munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
  cat > "$CONF" <<CONF
ClusterName=bilevel-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MaxArraySize=10001
KillWait=30
MinJobAge=300
SchedulerParameters=defer_batch=0
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
  fi
  # A fresh controller state each time (-c): no jobs of an earlier run.
  /usr/sbin/slurmctld -c
  /usr/sbin/slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm: up ($(sinfo -h -o '%P %D %c %T' | head -1))"
      return 0
    fi
    sleep 1
  done
  echo "slurm: the node did not come up" >&2
  sinfo -N -l >&2 || true
  tail -20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if [ -s "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  sleep 1
  if [ -s /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
  rm -f "$STATE/slurmd.pid" "$STATE/slurmctld.pid"
  echo "slurm: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
