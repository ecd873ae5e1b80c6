#!/usr/bin/env bash
# test_restart_diverge.sh - the divergence guard: a non-finite loss or gradient (a ResNet with a
# huge learning rate) stops training with exit code 3 and a message that says what to change;
# parameters that overflowed are never checkpointed; the last good checkpoint is kept bit for
# bit, and resuming from it with a sane learning rate carries on. On 2 ranks every rank stops.
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir diverge
make_data data
write_config div.ini resnet
sed -i 's/^width = 4/width = 4\nactivation = relu/; s/^lr = 0.05/lr = 0.05\ninit_scale = 3/' div.ini
run_hamnet 1 train div.ini --run-dir good --set train.max_steps=10 >/dev/null 2>&1 || true
[[ $(basename "$(newest_ckpt good)") == ckpt-0000000010.h5 ]] || fail "no checkpoint at step 10"
precision=$("$HAMNET" --version | sed -nE 's/.* (float|double) precision.*/\1/p')
# a learning rate that makes the loss non-finite within a few steps in this precision
[[ $precision == double ]] && huge=1e300 || huge=1e20

# all_finite DIR: every parameter and moment of every checkpoint in DIR is finite
all_finite() {
  "$HN_PY" - "$1" <<'EOF'
import glob, sys
import h5py, numpy as np
for p in glob.glob(sys.argv[1] + "/*.h5"):
    with h5py.File(p, "r") as f:
        for name in ["model/K", "model/b", "model/cls/W", "model/cls/b", "optimizer/m1", "optimizer/m2"]:
            if name in f:
                assert np.all(np.isfinite(f[name][()])), (p, name)
EOF
}

# 1. a non-finite loss: exit 3, message, the last good checkpoint (10) untouched, nothing newer
cp -r good d1
before=$(cksum <d1/ckpt-0000000010.h5)
expect 3 "training diverged at epoch 1, step 1[1-3]: the loss or a gradient is not finite.*The last good checkpoint in d1 is kept; lower \[train\] lr \(now ${huge/e/e\\+}\)" \
  "$HAMNET" train div.ini --run-dir d1 --set train.lr="$huge"
[[ $(basename "$(newest_ckpt d1)") == ckpt-0000000010.h5 ]] || fail "a checkpoint was written after divergence"
[[ $(cksum <d1/ckpt-0000000010.h5) == "$before" ]] || fail "the last good checkpoint changed"
all_finite d1 || fail "a checkpoint holds non-finite values"
# resuming with a sane lr continues from 10 and finishes
expect 0 "resuming from d1/ckpt-0000000010.h5.*" "$HAMNET" train div.ini --run-dir d1
grep -q "finished: 3 epochs, 39 steps" <<<"$last_output" || fail "the resumed run did not finish: $last_output"
echo "non-finite loss: exit 3, ckpt-0000000010.h5 kept, resumed with lr 0.05 and finished"

# 2. parameters that overflow in the update itself (SGD, lr * gradient beyond the largest
#    number), with a checkpoint after every step: the guard refuses to write them. In float
#    this happens in the very first update; in double the loss turns non-finite first.
[[ $precision == double ]] && big=1e308 || big=1e39
expect 3 "training diverged at (epoch 1, )?step [12]" "$HAMNET" train div.ini --run-dir d2 --set train.optimizer=sgd \
  --set train.lr="$big" --set checkpoint.every_steps=1
if [[ $precision == float ]]; then
  grep -q "training diverged at step 1: the parameters are no longer finite, so no checkpoint is written" \
    <<<"$last_output" || fail "the parameter guard did not fire: $last_output"
  [[ -z $(newest_ckpt d2) ]] || fail "a checkpoint of overflowed parameters was written"
fi
all_finite d2 || fail "a non-finite checkpoint was written"
echo "overflowing parameters ($precision, SGD lr $big, a checkpoint every step): exit 3, no non-finite checkpoint"

# 3. two ranks: both stop, exit 3
if hn_have_mpi; then
  cp -r good d3
  rc=0
  out=$(run_hamnet 2 train div.ini --run-dir d3 --set train.lr="$huge" 2>&1) || rc=$?
  [[ $rc == 3 ]] || fail "2 ranks: exit code $rc, expected 3: $out"
  [[ $(grep -c "training diverged" <<<"$out") == 2 ]] || fail "2 ranks: expected the message from both ranks: $out"
  [[ $(basename "$(newest_ckpt d3)") == ckpt-0000000010.h5 ]] || fail "2 ranks: a checkpoint was written"
  echo "2 ranks: both ranks stopped with exit 3"
fi
echo "test_restart_diverge: all checks passed"
