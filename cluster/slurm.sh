#!/bin/bash
# tessera on Slurm: one rank per core, one BLAS thread per rank.
#   sbatch cluster/slurm.sh configs/poster.ini [tessera options]
#   sbatch --array=0-9 cluster/slurm.sh 'prints/print{task}.ini'     # many prints
#
# Launcher: srun --mpi=pmix (Debian/Ubuntu's Open MPI has no Slurm PMI of its own, so a
# plain srun fails with "OMPI was not built with SLURM's PMI support"); where Slurm has
# no PMIx plugin, mpirun inside the allocation.  Set TESSERA_LAUNCHER=srun|mpirun to
# choose, TESSERA to the binary (default: tessera on PATH).
#
# Time limit: two minutes before it Slurm signals this script (USR1); the script passes
# it on to the ranks, which finish or drop their tile (or save the state of their
# global level's iteration) and exit with 75; the script then requeues the job, which
# resumes from its checkpoints.  The log is appended to, not truncated, across runs.
#SBATCH --job-name=tessera
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=32
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=3G
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=tessera-%j.log
set -u
config=${1:?usage: sbatch cluster/slurm.sh CONFIG.ini [tessera options]}
shift
# a job array: {task} in the config's name is the array index
config=${config//\{task\}/${SLURM_ARRAY_TASK_ID:-}}
# module load openmpi openblas     # site specific: see cluster/README.md
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
bin=${TESSERA:-tessera}
launcher=${TESSERA_LAUNCHER:-}
if [ -z "$launcher" ]; then
	if srun --mpi=list 2>&1 | grep -qw pmix; then launcher=srun; else launcher=mpirun; fi
fi
echo "tessera job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-?}: $launcher, $(date)"
if [ "$launcher" = srun ]; then
	srun --mpi=pmix --kill-on-bad-exit=1 "$bin" --config "$config" --threads 1 --progress on "$@" &
else
	mpirun "$bin" --config "$config" --threads 1 --progress on "$@" &
fi
pid=$!
# the time limit's USR1 (or a TERM to this script) goes on to the ranks as USR1:
# both launchers forward it, and it stops tessera like SIGTERM
trap 'kill -USR1 $pid 2>/dev/null' USR1 TERM
while :; do
	wait $pid
	rc=$?
	# a trapped signal interrupts wait with a status above 128: wait again
	kill -0 $pid 2>/dev/null || break
done
if [ $rc -eq 75 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
	echo "tessera stopped before the end (75): requeueing job $SLURM_JOB_ID to resume"
	scontrol requeue "$SLURM_JOB_ID"
fi
exit $rc
