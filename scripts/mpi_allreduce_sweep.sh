#!/usr/bin/env bash
# mpi_allreduce_sweep.sh - time MPI allreduce over message sizes on this node (issue 5, the
# on-node alpha-beta fit of the scaling model).
#
#   scripts/mpi_allreduce_sweep.sh [--ranks P] [--min BYTES] [--max BYTES] [--reps N] [--out FILE]
#
# Runs `test_exchange --sweep` (tests/mpi/test_exchange.c) from $BUILD (default build/) on P
# ranks (default 2, bound to cores): for message sizes doubling from --min to --max, the best
# and median (over N repetitions, max over ranks) of MPI_Allreduce, of MPI_Iallreduce + Wait
# (not in place: what the gradient exchange calls) and of one whole hn_exchange in 1 MiB
# buckets. TSV on stdout and in FILE (default allreduce_sweep_P.tsv).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$here/build}
ranks=2
min=8
max=$((64 << 20))
reps=30
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift ;;
    --min) min=$2; shift ;;
    --max) max=$2; shift ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "mpi_allreduce_sweep.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
tool="$build/tests/test_exchange"
[ -x "$tool" ] || { echo "mpi_allreduce_sweep.sh: $tool not built (cmake --build $build)" >&2; exit 1; }
[ -n "$out" ] || out="allreduce_sweep_$ranks.tsv"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bind=(--bind-to core)
if [ "$ranks" -gt "$(nproc)" ]; then
  echo "mpi_allreduce_sweep.sh: $ranks ranks on $(nproc) cores: oversubscribed, times are not meaningful" >&2
  bind=(--oversubscribe --bind-to none)
  export OMPI_MCA_mpi_yield_when_idle=1
fi
mpirun -np "$ranks" "${bind[@]}" "$tool" --sweep --min "$min" --max "$max" --reps "$reps" | tee "$out"
