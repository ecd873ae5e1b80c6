#!/usr/bin/env bash
# setup.sh - install hamnet's dependencies (Debian 12 packages) and build it.
#
#   scripts/setup.sh [--deps-only] [--test-deps] [--bench-deps] [--precision float|double] [--build-dir DIR]
#
# Idempotent and non-interactive: packages already installed are not touched (no apt-get
# update when nothing is missing). Needs root for apt-get (no sudo); on a cluster without
# root, skip this script and build with cmake directly (README "Building on a cluster").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

deps_only=0
test_deps=0
bench_deps=0
precision=float
build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deps-only) deps_only=1 ;;
    --test-deps) test_deps=1 ;;
    --bench-deps) bench_deps=1 ;;
    --precision) precision=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$build_dir" ] || build_dir="$here/build"
[ "$precision" = float ] || [ "$precision" = double ] || { echo "setup.sh: --precision float|double" >&2; exit 2; }

# Build and runtime: compilers, MPI, OpenMP-flavoured OpenBLAS (shares the OpenMP runtime, so
# BLAS and hamnet's kernels do not fight over cores), LAPACKE, ScaLAPACK, parallel HDF5, inih.
packages=(build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libscalapack-openmpi-dev
          libhdf5-openmpi-dev hdf5-tools libopenblas-openmp-dev liblapacke-dev libinih-dev
          zlib1g-dev python3-h5py python3-numpy python3-matplotlib)
# Tests: sanitizer/fuzzer runtimes (clang), a real single-node Slurm, shellcheck.
if [ "$test_deps" = 1 ]; then
  packages+=(clang libclang-rt-14-dev slurm-wlm slurmctld slurmd slurm-client munge shellcheck)
fi
# Benchmarks: the PyTorch peer of scripts/bench_pytorch.py and scripts/bench_table.sh (CPU build,
# runs on the system OpenBLAS; use /usr/bin/python3).
if [ "$bench_deps" = 1 ]; then
  packages+=(python3-torch)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing packages: ${missing[*]}" >&2
    echo "setup.sh: run as root, or install them / load the equivalent modules and build with cmake" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$deps_only" = 1 ] && exit 0

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DHAMNET_PRECISION="$precision" >/dev/null
cmake --build "$build_dir" -j "$jobs"
echo "setup.sh: built $build_dir/hamnet ($precision)"
