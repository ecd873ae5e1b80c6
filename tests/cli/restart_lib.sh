# shellcheck shell=bash
# restart_lib.sh - helpers shared by the checkpoint / restart / signal / kill / corruption CLI
# tests (tests/cli/test_restart*.sh, test_signals*.sh, test_kill*.sh, test_corrupt*.sh).
# Source it after `set -euo pipefail`; needs $HAMNET (the binary) and $HN_SOURCE_DIR.
: "${HAMNET:?set HAMNET to the hamnet binary}"
: "${HN_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
HN_PY=/usr/bin/python3
[[ -x $HN_PY ]] || HN_PY=python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1
unset HAMNET_FAULT_CKPT

# hn_workdir NAME: a fresh temporary folder, removed on exit; cd into it.
hn_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/hn_$1.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  cd "$work" || exit 1
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

note() { echo "--- $*"; }

# expect CODE REGEX command...: exits with CODE and stdout+stderr matches REGEX (extended).
expect() {
  local want=$1 pattern=$2
  shift 2
  local rc=0
  last_output=$("$@" 2>&1) || rc=$?
  [[ $rc == "$want" ]] || fail "'$*' exited $rc, expected $want; output:
$last_output"
  grep -qE -- "$pattern" <<<"$last_output" || fail "'$*': output lacks /$pattern/:
$last_output"
}

# hn_have_mpi: Open MPI's mpiexec is there (the 2-rank variants are skipped otherwise).
# (`mpiexec --version` prints "mpiexec (OpenRTE) 4.1.x"; no `| grep -q`, which breaks pipefail.)
hn_have_mpi() {
  command -v mpiexec >/dev/null 2>&1 || return 1
  local v
  v=$(mpiexec --version 2>&1) || return 1
  [[ $v == *OpenRTE* || $v == *"Open MPI"* ]]
}

# run_hamnet NP args...: `hamnet args` on NP ranks (NP = 1: no mpiexec).
run_hamnet() {
  local np=$1
  shift
  if [[ $np == 1 ]]; then
    "$HAMNET" "$@"
  else
    mpiexec -n "$np" --oversubscribe --bind-to none "$HAMNET" "$@"
  fi
}

# make_data DIR [datagen args...]: a small 2-class data set (200 + 50 samples by default).
make_data() {
  local dir=$1
  shift
  "$HAMNET" datagen ellipses --out "$dir" --samples 200 --val-samples 50 --seed 3 "$@" >/dev/null ||
    fail "datagen for $dir failed"
}

# write_config FILE ARCH [extra INI lines...]: a tiny network trained on data/ for 3 epochs of
# 13 steps (200 samples, batch 16), checkpoints every 5 steps; diagnostics off.
write_config() {
  local file=$1 arch=$2
  shift 2
  {
    printf '[data]\ntrain = %s/data/train.h5\nval = %s/data/val.h5\n' "$PWD" "$PWD"
    printf '[model]\narch = %s\nwidth = 4\ndepth = 8\nfinal_time = 2\n' "$arch"
    printf '[train]\nepochs = 3\nbatch_size = 16\noptimizer = adam\nlr = 0.05\nseed = 11\n'
    printf '[checkpoint]\nevery_steps = 5\nkeep = 3\n'
    printf '[diagnostics]\nevery_epochs = 0\n'
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } >"$file"
}

# newest_ckpt DIR: the path of the newest ckpt-*.h5 in DIR ("" if none).
newest_ckpt() { find "$1" -maxdepth 1 -name 'ckpt-*.h5' 2>/dev/null | sort | tail -n 1; }

# same_ckpt A B: bitwise-equal training state (tests/cli/ckpt_compare.py).
same_ckpt() { "$HN_PY" "$HN_SOURCE_DIR/tests/cli/ckpt_compare.py" "$1" "$2"; }

# same_steps A B: identical steps.tsv files (every step's loss, accuracy, lr, reconstruction).
same_steps() {
  cmp -s "$1" "$2" || {
    diff "$1" "$2" | head -n 10 >&2
    return 1
  }
}

# Seconds since the epoch with fractions.
now() { date +%s.%N; }
