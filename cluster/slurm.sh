#!/bin/bash
# tessera on Slurm: one rank per core, one BLAS thread per rank.
#   sbatch cluster/slurm.sh configs/poster.ini
# At the time limit Slurm sends SIGTERM: every rank drops or finishes its tile and
# exits; submit the same script again and the job resumes from its tile checkpoints.
#SBATCH --job-name=tessera
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=32
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=3G
#SBATCH --time=12:00:00
#SBATCH --signal=TERM@120          # SIGTERM two minutes before the limit
#SBATCH --output=tessera-%j.log
set -eu
config=${1:?usage: sbatch cluster/slurm.sh CONFIG.ini [tessera options]}
shift
# module load openmpi openblas     # site specific: see cluster/README.md
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
srun --kill-on-bad-exit=1 tessera --config "$config" --threads 1 "$@"
