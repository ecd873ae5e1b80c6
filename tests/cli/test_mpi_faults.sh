#!/usr/bin/env bash
# test_mpi_faults.sh - an error on any one rank ends the whole job within seconds, with a
# message and a non-zero exit code, never a hang (issue 5). Faults are injected with the
# test-only HAMNET_FAULT / HAMNET_FAULT_RANK / HAMNET_FAULT_STEP (hamnet/parallel.h):
#   data   the data files are unreadable on that rank only (collective MPI-IO reader)
#   oom    allocating that rank's share of the epoch fails
#   nan    that rank's gradient becomes NaN at step 3          -> exit 3 (diverged) everywhere
#   error  that rank's forward/backward pass fails at step 3
#   exit   that rank dies at step 3 without a word             -> mpirun ends the job
# Each runs on 2 ranks (fault on rank 1) and on 4 ranks (fault on rank 3), under a 120 s
# timeout that only a hang would reach; each must end in < 30 s.
# Also: `exit` under a launcher that does NOT end the job when a rank dies (mpirun --mca
# orte_abort_on_non_zero_status 0, like srun without --kill-on-bad-exit): the node-shared gradient
# exchange notices the dead peer, names it, and the job ends through HAMNET_EXIT_DEADLINE.
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_faults.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_mpi_yield_when_idle=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HAMNET_EXIT_DEADLINE=5

"$HAMNET" datagen ellipses --out data --samples 400 --val-samples 100 --seed 2 >/dev/null
cat >c.ini <<'EOF'
[data]
train = data/train.h5
val = data/val.h5
[model]
arch = hamiltonian
width = 8
depth = 8
[train]
epochs = 3
batch_size = 50
optimizer = adam
lr = 0.01
[diagnostics]
every_epochs = 0
EOF

# expect FAULT NP RANK CODE REGEX: the run exits with CODE ("any" = any non-zero) and its output
# matches REGEX.
# LAUNCH_OPTS: extra mpirun options.
expect() {
  local fault=$1 np=$2 rank=$3 want=$4 pattern=$5 rc=0 start=$SECONDS
  HAMNET_FAULT=$fault HAMNET_FAULT_RANK=$rank HAMNET_FAULT_STEP=3 timeout 120 \
    mpirun --oversubscribe --bind-to none ${LAUNCH_OPTS:-} -np "$np" -x HAMNET_FAULT -x HAMNET_FAULT_RANK \
    -x HAMNET_FAULT_STEP "$HAMNET" train c.ini --run-dir "run_${fault}_$np" >"$fault$np.log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  [[ $rc != 124 ]] || fail "$fault on rank $rank of $np: the job hung (killed by timeout):
$(tail -20 "$fault$np.log")"
  [[ $rc != 0 ]] || fail "$fault on rank $rank of $np: exit code 0"
  [[ $want == any || $rc == "$want" ]] || fail "$fault on rank $rank of $np: exit code $rc, expected $want:
$(tail -20 "$fault$np.log")"
  grep -qE -- "$pattern" "$fault$np.log" || fail "$fault on rank $rank of $np: output lacks /$pattern/:
$(tail -20 "$fault$np.log")"
  ((took < 30)) || fail "$fault on rank $rank of $np: took $took s to end the job"
  echo "$fault on rank $rank of $np ranks: exit $rc after $took s"
}

for np in 2 4; do
  r=$((np - 1))
  expect data $np $r 1 "error \[rank 0\]: rank $r failed \(I/O error\): cannot open .*(train|val).h5 on rank $r: injected"
  grep -q "error \[rank $r\]: cannot open" "data$np.log" || fail "rank $r does not report its own error"
  expect oom $np $r 1 "error \[rank 0\]: rank $r failed \(out of memory\)"
  expect nan $np $r 3 "error \[rank 0\]: training diverged at epoch 1, step 3"
  grep -q "error \[rank $r\]: training diverged" "nan$np.log" || fail "rank $r does not report the divergence"
  expect error $np $r 1 "error \[rank 0\]: rank $r failed \(internal error\): forward/backward pass failed at step 3"
  expect exit $np $r any "rank $r: dying at step 3"
done
LAUNCH_OPTS="--mca orte_abort_on_non_zero_status 0" expect exit 2 1 any \
  "error \[rank 0\]: rank 1 \(process [0-9]+ on this node\) died while rank 0 waited for it in the gradient exchange"
echo "test_mpi_faults: all checks passed"
