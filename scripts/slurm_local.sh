#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for tests and for trying `trajforge slurm`.
#   scripts/slurm_local.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld and slurmd; prints SLURM_CONF=...
#   scripts/slurm_local.sh stop DIR
# Needs the Debian packages slurm-wlm and munge (scripts/setup.sh installs them when run as root with
# TRAJFORGE_SLURM=1) and root (slurmd runs jobs as the submitting user). Ports: $SLURM_PORT and $SLURM_PORT+1.
set -euo pipefail
action=${1:?usage: slurm_local.sh start|stop DIR}
dir=$(mkdir -p "${2:?usage: slurm_local.sh start|stop DIR}" && cd "$2" && pwd)
conf="$dir/slurm.conf"

stop() {
  for daemon in slurmd slurmctld; do
    if [ -f "$dir/$daemon.pid" ]; then
      kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
      rm -f "$dir/$daemon.pid"
    fi
  done
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "unknown action $action" >&2; exit 2; }
for cmd in slurmctld slurmd munged sinfo; do
  command -v "$cmd" >/dev/null || { echo "slurm_local.sh: $cmd not found (apt-get install slurm-wlm munge)" >&2; exit 3; }
done

port=${SLURM_PORT:-16817}
host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool"
cat > "$conf" <<CONF
ClusterName=trajforge
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  munged --force
fi
stop
export SLURM_CONF="$conf"
slurmctld -i
slurmd
for _ in $(seq 1 100); do
  if sinfo --noheader --states=idle 2>/dev/null | grep -q idle; then echo "SLURM_CONF=$conf"; exit 0; fi
  sleep 0.2
done
echo "slurm_local.sh: the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1
