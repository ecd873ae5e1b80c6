#!/usr/bin/env bash
# test_conv_cli.sh - convolutional networks end to end (issue 9), on a small synthetic image set
# (2-channel 8x8 images, 4 classes: a horizontal or vertical bar in channel 0 or 1 at a random
# place, noisy; made with h5py; global average pooling makes conv nets blind to position):
#   1. hamiltonian (reversible) and resnet (stored) conv nets with augmentation learn the task
#      (validation accuracy >= 80% after 6 epochs); the checkpoint is format_version 2 with the
#      stages; `hamnet eval` of it gives the validation accuracy the training reported;
#   2. the same on 2 ranks x 1 thread: trains, and `hamnet eval` on 1 and 2 ranks agree;
#   3. stopped inside an epoch (max_steps) and resumed: the final checkpoint equals the
#      uninterrupted run's bit for bit (parameters, running statistics, optimizer, history);
#   4. diagnostics: per-layer norms and sigma_max of each convolution (h sigma_max finite) in
#      diagnostics.h5, `hamnet inspect` reads it;
#   5. clear errors: stages on vector data, augmentation on vector data, multilevel with stages.
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_conv.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1 HAMNET_EXIT_DEADLINE=5
MPIRUN=(mpirun --oversubscribe --bind-to none)

/usr/bin/python3 - <<'EOF'
import h5py, numpy as np
rng = np.random.default_rng(3)
def make(n, name):
    y = rng.integers(0, 4, n).astype("int32")
    X = 0.3 * rng.standard_normal((n, 2, 8, 8)).astype("float32")
    for i, c in enumerate(y):  # the class: a horizontal or vertical bar in channel 0 or 1, anywhere
        r, q = rng.integers(1, 5, 2)
        if c // 2 == 0:
            X[i, c % 2, r + 1, q:q + 3] += 1.5
        else:
            X[i, c % 2, r:r + 3, q + 1] += 1.5
    with h5py.File(name, "w") as f:
        f["X"] = X
        f["y"] = y
        f.attrs["n_classes"] = 4
make(512, "train.h5")
make(200, "val.h5")
EOF

cat >ham.ini <<'EOF'
[data]
train = train.h5
val = val.h5
[model]
arch = hamiltonian
stages = 8x2,16x2
activation = relu
final_time = 1
[train]
epochs = 6
batch_size = 32
optimizer = adam
lr = 0.01
alpha_t = 1e-4
alpha_w = 1e-4
augment_crop = 1
augment_flip = 1
[checkpoint]
keep = 2
best = 0
[diagnostics]
every_epochs = 0
EOF
sed -e 's/^arch = hamiltonian/arch = resnet/' -e 's/^stages = 8x2,16x2/stages = 8x3,16x3/' ham.ini >resnet.ini

val_acc() { # last validation accuracy in a run folder's newest checkpoint
  /usr/bin/python3 -c "import h5py,glob; f=h5py.File(sorted(glob.glob('$1/ckpt-*.h5'))[-1],'r'); print(f['progress/history'][-1,4])"
}
eval_acc() { # accuracy from `hamnet eval --json`
  /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['accuracy'])"
}
same_num() { /usr/bin/python3 -c "import sys; sys.exit(0 if float('$1') == float('$2') else 1)"; }

# --- 1. both architectures learn; checkpoint v2; eval agrees ----------------------------------
for arch in ham resnet; do
  OMP_NUM_THREADS=2 "$HAMNET" train $arch.ini --run-dir run_$arch --quiet >log_$arch.txt 2>&1 ||
    { cat log_$arch.txt; fail "$arch: training failed"; }
  acc=$(val_acc run_$arch)
  echo "$arch: validation accuracy $acc"
  /usr/bin/python3 -c "import sys; sys.exit(0 if $acc >= 0.8 else 1)" || fail "$arch: validation accuracy $acc < 0.8"
  ckpt=$(ls run_$arch/ckpt-*.h5 | tail -1)
  "$HAMNET" inspect --json "$ckpt" | grep -q '"format_version": 2' || fail "$arch: not format_version 2"
  "$HAMNET" inspect "$ckpt" | grep -q "convolutional   stages" || fail "$arch: inspect shows no stages"
  e=$("$HAMNET" eval --checkpoint "$ckpt" --data val.h5 --json | eval_acc)
  same_num "$e" "$acc" || fail "$arch: eval accuracy $e differs from the training's $acc"
done

# --- 2. two ranks; sharded eval ------------------------------------------------------------------
OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np 2 "$HAMNET" train ham.ini --run-dir run_np2 --quiet >log_np2.txt 2>&1 ||
  { cat log_np2.txt; fail "2 ranks: training failed"; }
acc2=$(val_acc run_np2)
echo "hamiltonian on 2 ranks: validation accuracy $acc2"
/usr/bin/python3 -c "import sys; sys.exit(0 if $acc2 >= 0.8 else 1)" || fail "2 ranks: validation accuracy $acc2"
ckpt=$(ls run_np2/ckpt-*.h5 | tail -1)
e1=$(OMP_NUM_THREADS=2 "$HAMNET" eval --checkpoint "$ckpt" --data val.h5 --json | eval_acc)
e2=$(OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np 2 "$HAMNET" eval --checkpoint "$ckpt" --data val.h5 --json | eval_acc)
same_num "$e1" "$acc2" && same_num "$e2" "$acc2" || fail "2 ranks: eval $e1 (1 rank) / $e2 (2 ranks) vs training $acc2"

# --- 3. exact resume inside an epoch -----------------------------------------------------------
for np in 1 2; do
  run=("$HAMNET")
  [ $np = 1 ] || run=("${MPIRUN[@]}" -np $np "$HAMNET")
  export OMP_NUM_THREADS=$((3 - np))
  "${run[@]}" train ham.ini --run-dir full_$np --set checkpoint.every_steps=21 --quiet >/dev/null 2>&1 ||
    fail "np $np: uninterrupted run failed"
  "${run[@]}" train ham.ini --run-dir part_$np --set checkpoint.every_steps=21 --set train.max_steps=21 --quiet \
    >/dev/null 2>&1 || [ $? = 75 ] || fail "np $np: interrupted run failed"
  "${run[@]}" train ham.ini --run-dir part_$np --set checkpoint.every_steps=21 --quiet >/dev/null 2>&1 ||
    fail "np $np: resumed run failed"
  a=$(ls full_$np/ckpt-*.h5 | tail -1)
  b=$(ls part_$np/ckpt-*.h5 | tail -1)
  /usr/bin/python3 "$here/ckpt_compare.py" "$a" "$b" || fail "np $np: resumed run differs from the uninterrupted one"
  echo "resume on $np rank(s): identical final checkpoint"
done
unset OMP_NUM_THREADS

# --- 4. diagnostics ------------------------------------------------------------------------------
OMP_NUM_THREADS=2 "$HAMNET" train ham.ini --run-dir run_diag --set train.epochs=2 --set diagnostics.every_epochs=1 \
  --set diagnostics.max_overhead=0 --quiet >log_diag.txt 2>&1 || { cat log_diag.txt; fail "diagnostics run failed"; }
/usr/bin/python3 - run_diag/diagnostics.h5 <<'EOF' || fail "diagnostics file"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    K = f["layers/K_norm"][...]
    g = f["layers/grad_y_norm"][...]
    sv = f["spectra/sv_max"][...]
    hsv = f["spectra/h_sv_max"][...]
    assert K.shape == (2, 4) and np.all(np.isfinite(K)) and np.all(K > 0), K
    assert np.all(np.isfinite(g)) and np.all(g > 0), g
    assert np.all(np.isfinite(sv)) and np.all(sv > 0) and np.allclose(hsv, 0.5 * sv), (sv, hsv)
    print("diagnostics: ||K_j|| %s, sigma_max %s" % (np.round(K[-1], 3), np.round(sv[-1], 3)))
EOF
"$HAMNET" inspect run_diag/diagnostics.h5 >/dev/null || fail "inspect of the diagnostics file"

# --- 5. errors -----------------------------------------------------------------------------------
"$HAMNET" datagen ellipses --out vec --samples 64 --val-samples 32 >/dev/null
expect_error() { # expect_error PATTERN ARGS...
  local pattern=$1
  shift
  local out
  if out=$("$@" 2>&1); then fail "expected an error: $*"; fi
  grep -q -- "$pattern" <<<"$out" || fail "message '$out' lacks '$pattern'"
}
expect_error "needs images" "$HAMNET" train ham.ini --run-dir e1 --set data.train=vec/train.h5 \
  --set data.val=vec/val.h5 --set train.augment_crop=0 --set train.augment_flip=0
expect_error "augment_crop / augment_flip need images" "$HAMNET" train ham.ini --run-dir e2 \
  --set data.train=vec/train.h5 --set data.val=vec/val.h5 --set model.stages=
expect_error "multilevel training is for dense networks" "$HAMNET" train ham.ini --run-dir e3 --set train.levels=2
expect_error "stage 2: expected CHANNELSxLAYERS" "$HAMNET" train ham.ini --run-dir e4 --set model.stages=4x2,8
echo "test_conv_cli: all checks passed"
