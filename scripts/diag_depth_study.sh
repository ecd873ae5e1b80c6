#!/usr/bin/env bash
# diag_depth_study.sh - vanishing / exploding gradients at depth 512: a hamiltonian and a resnet
# network with the same final time T, width, init_scale and seed, trained on ellipses with a
# diagnostics record every epoch; then the per-run figures (plot_diagnostics.py), the comparison
# (plot_sweep.py) and the verdict: max_j/min_j ||dL/dy_j|| must stay within 10 for hamiltonian
# (exit status 1 if it does not); for resnet it is reported.
#
#   scripts/diag_depth_study.sh [--out DIR] [--depth N] [--final-time T] [--init-scale S]
#                               [--epochs E] [--width W] [--ranks P] [--hamnet BIN]
#
# Defaults: DIR runs/diag_depth_study, N 512, T 10, S 1, E 30, W 8, P 1 (P > 1: mpirun),
# BIN build/hamnet. About a minute on 2 cores. Outputs: DIR/{hamiltonian,resnet}/ (run folders
# with diagnostics.h5 and plots/*.png), DIR/compare/*.png and DIR/compare/table.csv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/runs/diag_depth_study"
depth=512 final_time=10 init_scale=1 epochs=30 width=8 ranks=1
hamnet="$here/build/hamnet"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --depth) depth=$2; shift ;;
    --final-time) final_time=$2; shift ;;
    --init-scale) init_scale=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --width) width=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --hamnet) hamnet=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "diag_depth_study.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$hamnet" ] || { echo "diag_depth_study.sh: no hamnet binary at $hamnet (build it, or --hamnet BIN)" >&2; exit 2; }
mkdir -p "$out"
data="$out/data"
[ -f "$data/train.h5" ] || "$hamnet" datagen ellipses --out "$data" --seed 1 >/dev/null

cat >"$out/study.ini" <<EOF
; written by scripts/diag_depth_study.sh
[data]
train = data/train.h5
val = data/val.h5
[model]
width = $width
depth = $depth
final_time = $final_time
activation = tanh
opening = dense
[train]
epochs = $epochs
batch_size = 64
optimizer = adam
lr = 0.01
alpha_t = 1e-6
seed = 1
init_scale = $init_scale
[checkpoint]
every_epochs = 0
[diagnostics]
every_epochs = 1
spectra = 1
; every pass in full: the study wants a record every epoch, whatever it costs
max_overhead = 0
EOF

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1
launch=()
[ "$ranks" -gt 1 ] && launch=(mpirun -np "$ranks" --oversubscribe --bind-to none)
for arch in hamiltonian resnet; do
  rm -rf "${out:?}/$arch"
  echo "=== $arch: depth $depth, T $final_time, width $width, init_scale $init_scale, $epochs epochs, $ranks rank(s)"
  "${launch[@]}" "$hamnet" train "$out/study.ini" --run-dir "$out/$arch" --set model.arch=$arch --quiet \
    2>&1 | tee "$out/$arch.log" | grep -E "warning|error" || true
  [ -f "$out/$arch/diagnostics.h5" ] || { echo "diag_depth_study.sh: $arch produced no diagnostics" >&2; exit 1; }
done

py=/usr/bin/python3
$py "$here/scripts/plot_diagnostics.py" "$out/hamiltonian" "$out/resnet"
$py "$here/scripts/plot_sweep.py" "$out/hamiltonian" "$out/resnet" --out "$out/compare" --csv "$out/compare/table.csv" \
  --title "depth $depth, T $final_time"
$py - "$out" "$here/scripts" <<'EOF'
import sys
sys.path.insert(0, sys.argv[2])
import plot_diagnostics as p
out = sys.argv[1]
res = {a: p.summary(p.load(f"{out}/{a}")) for a in ("hamiltonian", "resnet")}
for a, s in res.items():
    print(f"{a:12s} max_j/min_j ||dL/dy_j||: newest {s['grad_ratio']:.3g}, largest over {s['records']} records "
          f"{s['grad_ratio_max']:.3g}; ||dL/dy_0|| {s['grad_y0']:.3g}, ||dL/dy_N|| {s['grad_yN']:.3g}; "
          f"accumulated amplification {s['amplification']:.3g}; val accuracy {s['val_accuracy']:.3f}")
h = res["hamiltonian"]["grad_ratio_max"]
verdict = "PASS" if h <= 10 else "FAIL"
print(f"{verdict}: hamiltonian max_j/min_j ||dL/dy_j|| stays {'within' if h <= 10 else 'ABOVE'} 10 over all "
      f"records (largest {h:.3g}); resnet reaches {res['resnet']['grad_ratio_max']:.3g}")
sys.exit(0 if h <= 10 else 1)
EOF
