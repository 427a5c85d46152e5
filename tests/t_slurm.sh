#!/usr/bin/env bash
# cluster/slurm.sh on a real one-node Slurm (Debian's slurm-wlm and munge): a private
# munged, slurmctld and slurmd with a slurm.conf in a temporary folder (their own
# ports, socket and state; stopped at the end by pid, exactly those), the job
# submitted with sbatch, stopped with `scancel --signal=TERM` in its last level, the
# script requeues it (exit 75), and the requeued job finishes: the output equals an
# uninterrupted run's bit for bit and the job-completion log says COMPLETED.  Where
# Slurm or munge is missing or the daemons cannot start, it says why and skips (exit
# 0); every wait is bounded.
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
here=$(cd "$(dirname "$0")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
skip() { echo "SKIP t_slurm: $*"; exit 0; }
for c in munged slurmctld slurmd sbatch scancel scontrol sinfo srun; do
	command -v $c >/dev/null 2>&1 || skip "$c not installed (Debian: slurm-wlm, munge)"
done
[ "$(id -u)" -eq 0 ] || skip "the daemons are started as root"
d=$(mktemp -d)
pids=() # the daemons started here, read from their pid files once they are up
remember() { [ -f "$d/$1.pid" ] && pids+=("$(cat "$d/$1.pid")"); }
stop_daemons() {
	[ ${#pids[@]} -gt 0 ] || return 0
	kill "${pids[@]}" 2>/dev/null
	for _ in $(seq 1 100); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && return 0
		sleep 0.1
	done
	kill -9 "${pids[@]}" 2>/dev/null
}
trap 'stop_daemons; pkill -9 -f "$d/run" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$d/state" "$d/spool" "$d/run"

# munge with a key of its own on a socket of its own
dd if=/dev/urandom of="$d/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$d/munge.key"
munged --force --key-file="$d/munge.key" --socket="$d/munge.sock" --pid-file="$d/munged.pid" \
	--log-file="$d/munged.log" --seed-file="$d/munged.seed" ||
	skip "munged does not start: $(tail -n 2 "$d/munged.log" 2>/dev/null)"
remember munged
cat >"$d/slurm.conf" <<EOF
ClusterName=tessera-test
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$d/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/filetxt
JobCompLoc=$d/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=5
MinJobAge=600
NodeName=$host CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$d/slurm.conf
slurmctld -i || skip "slurmctld does not start: $(tail -n 3 "$d/slurmctld.log" 2>/dev/null)"
for _ in $(seq 1 50); do [ -f "$d/slurmctld.pid" ] && break; sleep 0.1; done
remember slurmctld
slurmd || skip "slurmd does not start: $(tail -n 3 "$d/slurmd.log" 2>/dev/null)"
for _ in $(seq 1 50); do [ -f "$d/slurmd.pid" ] && break; sleep 0.1; done
remember slurmd
up=0
for _ in $(seq 1 100); do
	sinfo -h -o %T 2>/dev/null | grep -q idle && { up=1; break; }
	sleep 0.2
done
[ $up -eq 1 ] || skip "the node never became idle: $(tail -n 3 "$d/slurmd.log")"
echo "ok   munged, slurmctld and slurmd up (port $port)"

# the job: the tiled renderer's heavy test job, 2 ranks
cd "$d/run" || exit 1
"$MK" photo.png paint.png || exit 1
cat >job.ini <<EOF
[input]
content = photo.png
style = paint.png
[output]
out = out.tif
width = 208
[tiles]
tile = 64
overlap = 16
job-dir = job
[optimizer]
level-iterations = 6,4,150
[network]
builtin-width = 8
EOF
mpirun -np 2 --oversubscribe "$T" --config job.ini --out ref.tif --job-dir ref.job \
	--threads 1 --progress off >ref.log 2>&1 || { fail "reference run"; cat ref.log; }
jid=$(TESSERA=$T sbatch --parsable -N1 -n2 --ntasks-per-node=2 --mem-per-cpu=500M --time=10 \
	--output="$d/run/job.log" --export=ALL "$here/cluster/slurm.sh" job.ini) ||
	{ fail "sbatch"; exit 1; }
echo "job $jid submitted"
state() { scontrol show job "$jid" 2>/dev/null | grep -o "JobState=[A-Z_]*" | cut -d= -f2; }
# the last level started: stop it as a time limit would
for _ in $(seq 1 600); do
	grep -q "^level 2: [1-9]" job.log 2>/dev/null && break
	[ "$(state)" = COMPLETED ] && break
	sleep 0.1
done
scancel --signal=TERM "$jid"
# exit 75, the script requeues: pending again, then (made eligible now instead of
# Slurm's requeue delay) running, then completed
requeued=0
for _ in $(seq 1 300); do
	grep -q "requeueing job $jid" job.log 2>/dev/null && { requeued=1; break; }
	sleep 0.1
done
[ $requeued -eq 1 ] && echo "ok   stopped with 75 and requeued itself" || { fail "no requeue"; cat job.log; }
for _ in $(seq 1 100); do
	[ "$(state)" = PENDING ] && break
	sleep 0.2
done
# the previous run's step must be gone from the node before the job starts again
for _ in $(seq 1 100); do
	pgrep -f "slurmstepd: \[$jid\." >/dev/null || break
	sleep 0.2
done
sleep 3
scontrol update JobId="$jid" StartTime=now 2>/dev/null
for _ in $(seq 1 900); do
	s=$(state)
	case "$s" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
	sleep 0.2
done
[ "$(state)" = COMPLETED ] && echo "ok   the requeued job completed" || { fail "job state $(state)"; tail -n 20 job.log; }
[ "$(grep -c "^tessera job $jid" job.log)" -ge 2 ] && echo "ok   the log was appended to across the runs" ||
	fail "the log was truncated (open mode)"
grep -q "stopped by a signal" job.log || fail "no clean stop in the log"
grep -q "JobId=$jid .*JobState=COMPLETED" "$d/jobcomp.log" 2>/dev/null &&
	echo "ok   the job-completion log says COMPLETED" || { fail "jobcomp log"; cat "$d/jobcomp.log"; }
cmp -s ref.tif out.tif && echo "ok   stopped, requeued and resumed output identical to an uninterrupted run" ||
	fail "the resumed output differs"
[ $fails -eq 0 ]
