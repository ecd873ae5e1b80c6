#!/usr/bin/env bash
# test_restart.sh - exact restart: for every architecture, on 1 rank and on 2 ranks, a run
# stopped (inside an epoch, at an epoch boundary) and resumed ends with parameters, optimiser
# state, progress and history that are bitwise those of the uninterrupted run, and the same
# steps.tsv; also across a multilevel prolongation. Resuming may change safe keys (epochs, lr,
# checkpoint cadence); a resume with a different network is refused, naming what differs.
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir restart
make_data data
compared=0

# run_straight NP DIR CONFIG: the uninterrupted run (its output in DIR.log).
run_straight() {
  run_hamnet "$1" train "$3" --run-dir "$2" >"$2.log" 2>&1 || fail "uninterrupted run $2 failed: $(cat "$2.log")"
}

# run_in_pieces NP DIR CONFIG STOP...: stop after each STOP (total steps, via
# --set train.max_steps, exit 75 each time), then finish the run.
run_in_pieces() {
  local np=$1 dir=$2 cfg=$3 stop rc out
  shift 3
  for stop in "$@"; do
    rc=0
    out=$(run_hamnet "$np" train "$cfg" --run-dir "$dir" --set train.max_steps="$stop" 2>&1) || rc=$?
    [[ $rc == 75 ]] || fail "$dir: stop at $stop exited $rc, expected 75: $out"
    grep -q "reached \[train\] max_steps = $stop" <<<"$out" || fail "$dir: no max_steps message: $out"
    [[ $(tail -n 1 "$dir/steps.tsv" | cut -f1) == "$stop" ]] || fail "$dir: steps.tsv does not end at $stop"
  done
  rc=0
  out=$(run_hamnet "$np" train "$cfg" --run-dir "$dir" --set train.max_steps=0 2>&1) || rc=$?
  [[ $rc == 0 ]] || fail "$dir: the final resume exited $rc: $out"
  grep -q "resuming from" <<<"$out" || fail "$dir: the final run did not resume: $out"
}

# check_same A B: final checkpoints, best.h5 and steps.tsv bitwise equal.
check_same() {
  local a b
  a=$(newest_ckpt "$1")
  b=$(newest_ckpt "$2")
  [[ -n $a && $(basename "$a") == $(basename "$b") ]] || fail "final checkpoints differ in name: '$a' '$b'"
  same_ckpt "$a" "$b" || fail "$1 and $2: final checkpoints differ"
  if [[ -f $1/best.h5 || -f $2/best.h5 ]]; then
    same_ckpt "$1/best.h5" "$2/best.h5" || fail "$1 and $2: best.h5 differ"
  fi
  same_steps "$1/steps.tsv" "$2/steps.tsv" || fail "$1 and $2: steps.tsv differ"
  compared=$((compared + 1))
}

# --- every architecture, 1 and 2 ranks ---------------------------------------------------------
# 3 epochs x 13 steps. Stops: step 7 (inside epoch 1, between checkpoints at 5 and 10), step 26
# (an epoch boundary), step 31 (inside epoch 3). The architectures are the ones this build
# accepts (`hamnet train --list-keys`), each with other optimiser / schedule / opening settings.
# shellcheck disable=SC2016
archs=$("$HAMNET" train --list-keys 2>/dev/null |
  sed -nE 's/^\| `\[model\]` \| `arch` \|.*\| one of: ([^|]*) \|.*/\1/p' | tr -d ' ' | tr ',' ' ')
[[ -n $archs ]] || archs="resnet antisym hamiltonian leapfrog"
for arch in $archs; do
  write_config "$arch.ini" "$arch"
  case $arch in
    resnet) sed -i 's/^optimizer = adam/optimizer = sgd\nmomentum = 0.9\nnesterov = 1\nlr_schedule = cosine\nlr_min = 0.001/' resnet.ini ;;
    antisym) sed -i 's/^width = 4/width = 4\nopening = dense\ngamma = 0.05/' antisym.ini ;;
    hamiltonian) sed -i 's/^lr = 0.05/lr = 0.05\nlr_schedule = step\nlr_step_epochs = 1\nlr_step_factor = 0.5/' hamiltonian.ini ;;
    leapfrog) sed -i 's/^optimizer = adam/optimizer = sgd\nmomentum = 0.5/' leapfrog.ini ;;
  esac
done
echo "architectures: $archs"

ranks=(1)
if hn_have_mpi; then ranks+=(2); else echo "SKIP (2 ranks): no Open MPI mpiexec"; fi
for arch in $archs; do
  for np in "${ranks[@]}"; do
    note "$arch on $np rank(s)"
    run_straight "$np" "${arch}_np${np}_a" "$arch.ini"
    run_in_pieces "$np" "${arch}_np${np}_b" "$arch.ini" 7 26 31
    check_same "${arch}_np${np}_a" "${arch}_np${np}_b"
    [[ $(tail -n 1 "${arch}_np${np}_a/steps.tsv" | cut -f1) == 39 ]] || fail "$arch: expected 39 steps"
  done
done

# --- multilevel: stops inside stage 1, at its end (just before the prolongation), in stage 2 ---
# levels = 2, depth 8: stage 1 trains depth 4 for 2 epochs (26 steps), stage 2 depth 8.
write_config ml.ini hamiltonian
sed -i 's/^epochs = 3/epochs = 4\nlevels = 2/' ml.ini
for np in "${ranks[@]}"; do
  note "multilevel on $np rank(s)"
  run_straight "$np" "ml_np${np}_a" ml.ini
  grep -q "prolonged to depth 8" "ml_np${np}_a.log" || fail "multilevel run did not prolong"
  run_in_pieces "$np" "ml_np${np}_b" ml.ini 20 26 33
  check_same "ml_np${np}_a" "ml_np${np}_b"
  awk -F'\t' 'NR > 1 && $1 <= 26 && $4 != 4 { bad = 1 } NR > 1 && $1 > 26 && $4 != 8 { bad = 1 } END { exit bad }' \
    "ml_np${np}_b/steps.tsv" || fail "multilevel steps.tsv: wrong depth column"
done
"$HN_PY" - "ml_np1_a" <<'EOF' || fail "multilevel: final checkpoint not at stage 2 / depth 8"
import h5py, sys, glob
f = h5py.File(sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5"))[-1], "r")
assert f["progress"].attrs["level"] == 1 and f["model"].attrs["depth"] == 8, dict(f["progress"].attrs)
EOF

# --- stop at the very last step of an epoch through max_steps = 13 ------------------------------
note "stop at an epoch's last step"
run_in_pieces 1 last_b hamiltonian.ini 13
check_same hamiltonian_np1_a last_b

# --- safe keys may change on resume ----------------------------------------------------------
note "resume with changed epochs, lr, checkpoint cadence"
rc=0
out=$("$HAMNET" train hamiltonian.ini --run-dir safe --set train.max_steps=10 2>&1) || rc=$?
[[ $rc == 75 ]] || fail "safe: first part exited $rc: $out"
expect 0 "resuming from .*ckpt-0000000010.h5" "$HAMNET" train hamiltonian.ini --run-dir safe \
  --set train.epochs=5 --set train.lr=0.02 --set checkpoint.every_steps=4 --set checkpoint.keep=2
for key in "\[train\] epochs: 3 -> 5" "\[train\] lr: 0.05 -> 0.02" "\[checkpoint\] every_steps: 5 -> 4" \
  "finished: 5 epochs, 65 steps"; do
  grep -qE "$key" <<<"$last_output" || fail "safe resume output lacks /$key/: $last_output"
done
[[ $(find safe -name 'ckpt-*.h5' | wc -l) == 2 ]] || fail "checkpoint.keep = 2 not applied on resume"
# (lr_schedule = step halves it every epoch: steps 11..13 are the rest of epoch 1)
awk -F'\t' 'NR > 1 && $1 > 10 && $1 <= 13 && $7 + 0 != 0.02 { bad = 1 } END { exit bad }' \
  safe/steps.tsv || fail "lr 0.02 not used after the resume"

# --- incompatible changes are refused, naming every difference; nothing is touched -------------
note "incompatible resume refused"
ck=$(newest_ckpt safe)
before=$(cksum <"$ck")
files_before=$(ls safe)
expect 2 "cannot resume from .*different settings of model.width model.depth" "$HAMNET" train hamiltonian.ini \
  --run-dir safe --set train.epochs=6 --set model.width=6 --set model.depth=16
grep -q "Use a new --run-dir" <<<"$last_output" || fail "no fix suggested: $last_output"
expect 2 "different settings of model.arch" "$HAMNET" train hamiltonian.ini --run-dir safe --set train.epochs=6 \
  --set model.arch=leapfrog
expect 2 "different settings of train.seed" "$HAMNET" train hamiltonian.ini --run-dir safe --set train.epochs=6 \
  --set train.seed=12
expect 2 "different settings of train.batch_size" "$HAMNET" train hamiltonian.ini --run-dir safe \
  --set train.epochs=6 --set train.batch_size=8
expect 2 "different settings of train.optimizer" "$HAMNET" train hamiltonian.ini --run-dir safe \
  --set train.epochs=6 --set train.optimizer=sgd
cp data/train.h5 other.h5
expect 2 "different settings of data.train" "$HAMNET" train hamiltonian.ini --run-dir safe --set train.epochs=6 \
  --set data.train="$PWD/other.h5"
[[ $(cksum <"$ck") == "$before" && $(ls safe) == "$files_before" ]] || fail "a refused resume changed the run folder"

# a finished run started again does nothing and says so
expect 0 "finished: 5 epochs, 65 steps" "$HAMNET" train hamiltonian.ini --run-dir safe \
  --set train.epochs=5 --set train.lr=0.02 --set checkpoint.every_steps=4 --set checkpoint.keep=2
[[ $(cksum <"$ck") == "$before" ]] || fail "re-running a finished run changed its checkpoint"

echo "test_restart: $compared bitwise comparisons of resumed vs uninterrupted runs passed"
echo "test_restart: all checks passed"
