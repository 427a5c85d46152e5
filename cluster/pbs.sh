#!/bin/bash
# tessera on PBS Pro / Torque: one rank per core, one BLAS thread per rank.
#   qsub -v CONFIG=configs/poster.ini cluster/pbs.sh
# At the walltime limit PBS sends SIGTERM; resubmit the same job to resume.
#PBS -N tessera
#PBS -l select=4:ncpus=32:mpiprocs=32:mem=96gb
#PBS -l walltime=12:00:00
#PBS -j oe
set -eu
cd "${PBS_O_WORKDIR:-.}"
: "${CONFIG:?qsub -v CONFIG=configs/poster.ini cluster/pbs.sh}"
# module load openmpi openblas     # site specific: see cluster/README.md
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpirun -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS --hostfile "$PBS_NODEFILE" \
	tessera --config "$CONFIG" --threads 1
