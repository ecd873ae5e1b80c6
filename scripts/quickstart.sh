#!/usr/bin/env bash
# quickstart.sh - README command 1: install, build, generate data, train a deep Hamiltonian
# network on 2 MPI ranks, report the accuracy, and leave a run folder with checkpoints.
#
#   scripts/quickstart.sh [--ranks P] [--threads T] [--run-dir DIR] [hamnet train options]
#
# Defaults: 2 ranks x 1 thread, data in data/swissroll, run folder runs/quickstart.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ranks=2
threads=1
run_dir="$here/runs/quickstart"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift ;;
    --threads) threads=$2; shift ;;
    --run-dir) run_dir=$2; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done

"$here/scripts/setup.sh"
hamnet="$here/build/hamnet"
data="$here/data/swissroll"
[ -f "$data/train.h5" ] || "$hamnet" datagen swissroll --out "$data" --seed 1

# Open MPI as root needs these; oversubscription is harmless at 2 ranks on 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=$threads
mpirun -np "$ranks" --oversubscribe --bind-to none "$hamnet" train "$here/jobs/quickstart.ini" \
  --run-dir "$run_dir" --set data.train="$data/train.h5" --set data.val="$data/val.h5" "${extra[@]}"
"$hamnet" eval --checkpoint "$run_dir/best.h5" --data "$data/val.h5"
echo "run folder: $run_dir"
ls -l "$run_dir"
