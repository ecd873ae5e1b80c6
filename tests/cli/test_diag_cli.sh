#!/usr/bin/env bash
# test_diag_cli.sh - diagnostics end to end: RUN_DIR/diagnostics.h5 from `hamnet train`, its
# spectra against numpy (1, 2 and 4 ranks; layers below and above the distributed width, so
# 1x1 grids per rank and 1x2 / 2x2 grids), the stability monitor on unstable and stable
# configurations, multilevel NaN padding, resume truncation, `hamnet inspect`, the plotting
# scripts, and the errors (a foreign diagnostics file on resume).
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
: "${HN_SOURCE_DIR:?set HN_SOURCE_DIR to the source folder}"
PY=/usr/bin/python3
CHECK="$PY $HN_SOURCE_DIR/tests/cli/diag_check.py"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_diag.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
MPI=(mpirun --oversubscribe --bind-to none)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run NAME [train options...]: train into run folder NAME, keep the output in NAME.log
run() {
  local name=$1
  shift
  "$HAMNET" train cfg.ini --run-dir "$name" "$@" >"$name.log" 2>&1 || fail "train $name exited $?:
$(cat "$name.log")"
}

"$HAMNET" datagen ellipses --out data --samples 256 --val-samples 128 >/dev/null
cat >cfg.ini <<'EOF'
[data]
train = data/train.h5
val = data/val.h5
[model]
arch = hamiltonian
width = 8
depth = 16
final_time = 4
[train]
epochs = 2
batch_size = 64
lr = 0.01
[diagnostics]
every_epochs = 1
max_overhead = 0
EOF

# --- the file and inspect -------------------------------------------------------------------
run h1
[[ -f h1/diagnostics.h5 ]] || fail "no diagnostics.h5 in the run folder"
grep -q "diagnostics epoch 2: ||dL/dy_j|| max/min" h1.log || fail "no diagnostics log line: $(cat h1.log)"
# the closing cost line: set-up + 2 passes, a share of the training time (max_overhead 0: none reduced)
grep -qE "diagnostics cost: [0-9.]+ s in all \(set-up [0-9.]+ s, 2 passes, 0 reduced or skipped by the budget\) = [0-9.]+% of the" h1.log ||
  fail "no closing diagnostics cost line: $(cat h1.log)"
out=$("$HAMNET" inspect h1/diagnostics.h5)
grep -q "kind        diagnostics (format_version 1" <<<"$out" || fail "inspect: $out"
grep -q "records     2 (epochs 1..2, steps 4..8)" <<<"$out" || fail "inspect records: $out"
grep -q "max/min dL/dy_j" <<<"$out" || fail "inspect ratio: $out"
"$HAMNET" inspect h1/diagnostics.h5 --json | $PY -c '
import json, sys
d = json.load(sys.stdin)
assert d["kind"] == "diagnostics" and d["records"] == 2 and d["arch"] == "hamiltonian", d
assert d["newest"]["grad_y_ratio"] >= 1 and d["newest"]["flags"] == 0, d["newest"]
' || fail "inspect --json"
$PY - h1/diagnostics.h5 <<'EOF' || fail "file schema"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == "hamnet-diagnostics" and f.attrs["format_version"] == 1
for k in ("record/epoch", "record/step", "scalars/train_loss", "scalars/val_accuracy", "scalars/lr",
          "scalars/samples_per_second", "scalars/comm_seconds", "scalars/recon_error", "layers/y_norm",
          "layers/z_norm", "layers/grad_y_norm", "layers/K_norm", "layers/grad_K_norm", "spectra/sv_max",
          "monitor/amplification", "monitor/flags"):
    assert f[k].shape[0] == 2, k
    assert f[k].maxshape[0] is None, k + " must be extendible"
    assert f[k].chunks is not None, k + " must be chunked"
assert f["layers/grad_y_norm"].shape == (2, 17) and f["layers/K_norm"].shape == (2, 16)
assert np.isfinite(f["layers/z_norm"][:]).all(), "hamiltonian has z"
assert list(f["record/epoch"][:]) == [1, 2]
EOF

# --- spectra against numpy: 1, 2, 4 ranks, below and above the distributed width -----------
for arch in resnet antisym hamiltonian leapfrog; do
  run s1_$arch --set model.arch=$arch
  $CHECK spectra s1_$arch
done
# width 8 >= distributed width 4: each layer block-cyclic over a 1x2 / 2x2 grid
for np in 2 4; do
  for arch in resnet antisym hamiltonian; do
    name=s${np}_$arch
    "${MPI[@]}" -np $np "$HAMNET" train cfg.ini --run-dir $name --set model.arch=$arch \
      --set diagnostics.spectra_distributed_width=4 >$name.log 2>&1 || fail "mpirun -np $np $name: $(cat $name.log)"
    grep -q "width >= 4 on a $([[ $np == 2 ]] && echo 1x2 || echo 2x2) grid" $name.log || fail "grid: $(head $name.log)"
    $CHECK spectra $name
  done
  # below the distributed width: layers spread over the ranks
  name=s${np}_spread
  "${MPI[@]}" -np $np "$HAMNET" train cfg.ini --run-dir $name --set model.arch=resnet >$name.log 2>&1 ||
    fail "mpirun -np $np $name: $(cat $name.log)"
  $CHECK spectra $name
done
# a layer above the default distributed width 256 (2 layers of 260 x 260 on a 2x2 grid)
"${MPI[@]}" -np 4 "$HAMNET" train cfg.ini --run-dir wide --set model.arch=resnet --set model.width=260 \
  --set model.depth=2 --set train.epochs=1 >wide.log 2>&1 || fail "wide: $(cat wide.log)"
grep -q "width >= 256 on a 2x2 grid" wide.log || fail "wide grid: $(head wide.log)"
$CHECK spectra wide

# --- the stability monitor --------------------------------------------------------------------
# hamiltonian with large T/N (h = 2.5) and large weights: the Verlet bound is crossed
run uh --set model.depth=8 --set model.final_time=20 --set train.init_scale=2
grep -q "warning: epoch 1: stability monitor (hamiltonian" uh.log || fail "no Verlet warning: $(cat uh.log)"
grep -q "violate the Verlet bound" uh.log || fail "Verlet wording: $(cat uh.log)"
grep -qE "must shrink by a factor of more than [0-9.]+" uh.log || fail "no shrink factor: $(cat uh.log)"
$CHECK flags uh unstable
# resnet with large init_scale: accumulated amplification above the band
run ur --set model.arch=resnet --set train.init_scale=8
grep -q "warning: epoch 1: stability monitor (resnet" ur.log || fail "no resnet warning: $(cat ur.log)"
grep -qE "above \[band_low, band_high\].*most amplifying layers: [0-9]+" ur.log || fail "layers: $(cat ur.log)"
$CHECK flags ur unstable
"$HAMNET" inspect ur/diagnostics.h5 | grep -q "flags: above_band" || fail "inspect does not show the flag"
# stable hamiltonian / leapfrog: silent
for arch in hamiltonian leapfrog; do
  run st_$arch --set model.arch=$arch --set model.depth=64
  if grep -q "stability monitor" st_$arch.log; then fail "stable $arch warned: $(cat st_$arch.log)"; fi
  $CHECK flags st_$arch stable
done

# --- multilevel: records at depth 8, then 16 ----------------------------------------------------
run ml --set train.levels=2
$CHECK multilevel ml

# --- resume: records newer than the checkpoint are dropped --------------------------------------
run rs --set train.epochs=3
$CHECK steps rs 4,8,12
rm rs/ckpt-0000000012.h5   # as if the job died after the pass of epoch 3, before its checkpoint
"$HAMNET" train cfg.ini --run-dir rs --set train.epochs=3 >rs2.log 2>&1 || fail "resume: $(cat rs2.log)"
grep -q "dropped 1 record written after step 8" rs2.log || fail "no drop message: $(cat rs2.log)"
$CHECK steps rs 4,8,12
# a foreign file in the way fails before training, naming the file and the fix
echo "not hdf5" >rs/diagnostics.h5
rc=0
"$HAMNET" train cfg.ini --run-dir rs --set train.epochs=4 >rs3.log 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "foreign diagnostics file: exit $rc, expected 1: $(cat rs3.log)"
grep -q "move rs/diagnostics.h5 away" rs3.log || fail "message: $(cat rs3.log)"

# --- spectra off: probes only, monitor off --------------------------------------------------------
run ns --set diagnostics.spectra=0
grep -q "spectra = 0: no spectra, so the stability monitor is off" ns.log || fail "spectra=0 message"
"$HAMNET" inspect ns/diagnostics.h5 | grep -q "spectra     off" || fail "inspect spectra off"

# --- the scripts ----------------------------------------------------------------------------------
out=$($PY "$HN_SOURCE_DIR/scripts/plot_diagnostics.py" h1 ur --out plots)
grep -q "max_j/min_j ||dL/dy_j|| = " <<<"$out" || fail "plot_diagnostics summary: $out"
grep -q "flags above_band" <<<"$out" || fail "plot_diagnostics flags: $out"
for f in heatmap_grad_y heatmap_y spectra training monitor; do
  [[ -s plots/h1/$f.png && -s plots/ur/$f.png ]] || fail "plot_diagnostics did not write $f.png"
done
$PY "$HN_SOURCE_DIR/scripts/plot_diagnostics.py" ml --out plots/ml >/dev/null || fail "plot multilevel run"
out=$($PY "$HN_SOURCE_DIR/scripts/plot_sweep.py" st_hamiltonian ur ml --out sweep --csv sweep/table.csv)
grep -q "^st_hamiltonian" <<<"$out" || fail "plot_sweep table: $out"
for f in grad_profile y_profile grad_ratio amplification accuracy; do
  [[ -s sweep/sweep_$f.png ]] || fail "plot_sweep did not write sweep_$f.png"
done
[[ $(wc -l <sweep/table.csv) == 4 ]] || fail "CSV rows: $(cat sweep/table.csv)"
echo "test_diag_cli: all checks passed"
