#!/bin/bash
# tessera on PBS Pro / Torque: one rank per core, one BLAS thread per rank.
#   qsub -v CONFIG=configs/poster.ini cluster/pbs.sh
# Before the walltime limit have PBS signal the job with USR1 (`qsig -s USR1 JOBID`, or
# a site's pre-termination signal): the script passes it on to mpirun, which forwards it
# to the ranks; they stop cleanly and exit with 75, and the script asks PBS to rerun the
# job (qrerun), which resumes from the checkpoints.  (A SIGTERM to mpirun itself makes
# Open MPI 4.1 return 1 whatever the ranks do; the checkpoints are kept either way.)
#PBS -N tessera
#PBS -l select=4:ncpus=32:mpiprocs=32:mem=96gb
#PBS -l walltime=12:00:00
#PBS -j oe
#PBS -r y
set -u
cd "${PBS_O_WORKDIR:-.}"
: "${CONFIG:?qsub -v CONFIG=configs/poster.ini cluster/pbs.sh}"
# module load openmpi openblas     # site specific: see cluster/README.md
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpirun -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS --hostfile "$PBS_NODEFILE" \
	"${TESSERA:-tessera}" --config "$CONFIG" --threads 1 --progress on &
pid=$!
trap 'kill -USR1 $pid 2>/dev/null' USR1 TERM
while :; do
	wait $pid
	rc=$?
	kill -0 $pid 2>/dev/null || break
done
if [ $rc -eq 75 ] && [ -n "${PBS_JOBID:-}" ]; then
	echo "tessera stopped before the end (75): rerunning $PBS_JOBID to resume"
	qrerun "$PBS_JOBID" || echo "qrerun failed: submit the same job again to resume"
fi
exit $rc
