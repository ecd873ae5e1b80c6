#!/usr/bin/env bash
# fashion_run.sh - the Fashion-MNIST experiment of issue 9: a convolutional Hamiltonian network and
# the ResNet baseline side by side, model selection on the validation split, the test accuracy
# once at the end, and (optionally) the deepest Hamiltonian network that still reaches 90%.
#
#   scripts/fashion_run.sh [--out DIR] [--threads T | --ranks P] [--nets "hamiltonian resnet"]
#                          [--depths "3 8 16"] [--depth-epochs E] [--set section.key=value ...]
#
#   1. data: scripts/fashion_data.sh (data/fashion: 55000 training, 5000 validation = the last 5000
#      training images, 10000 test);
#   2. for each net N of --nets: `hamnet train jobs/fashion_N.ini --run-dir DIR/N` (the configs
#      hold every setting; --set overrides are passed on), timed; a run folder that is complete is
#      not trained again;
#   3. model selection: DIR/N/best.h5, the checkpoint of the best validation accuracy; its test
#      accuracy is measured once, here, with `hamnet eval` (test.h5 is read nowhere else);
#   4. --depths "L1 L2 ...": Hamiltonian networks with stages 16xL,32xL,64xL (3 L layers), each
#      trained for --depth-epochs epochs (default 8) with the settings of
#      jobs/fashion_hamiltonian.ini, in DIR/depth_L;
#   5. prints the table (layers, parameters, epochs, training time, best validation accuracy and
#      its epoch, test accuracy) and the validation curves, and writes DIR/results.md and
#      DIR/results.json.
# Threads: --threads T (default 2) runs one process with OMP_NUM_THREADS=T; --ranks P runs P ranks
# under mpirun with one thread each. Timings are wall-clock: run it on a quiet machine.
# $HAMNET names the binary (default: build/hamnet of the repository).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/runs/fashion"
threads=2
ranks=0
nets="hamiltonian resnet"
depths=""
depth_epochs=8
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --threads) threads=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --nets) nets=$2; shift ;;
    --depths) depths=$2; shift ;;
    --depth-epochs) depth_epochs=$2; shift ;;
    --set) sets+=(--set "$2"); shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "fashion_run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
hamnet=${HAMNET:-$here/build/hamnet}
[ -x "$hamnet" ] || { echo "fashion_run.sh: no hamnet binary at $hamnet (scripts/setup.sh, or set HAMNET)" >&2; exit 1; }
export HAMNET=$hamnet OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
data="$here/data/fashion"
"$here/scripts/fashion_data.sh" --out "$data"
mkdir -p "$out"

run() { # run DIR hamnet-arguments...: one training, timed (seconds in DIR.seconds)
  local dir=$1
  shift
  if [ -f "$dir/best.h5" ] && [ -f "$dir.seconds" ]; then
    echo "fashion_run.sh: $dir is complete (remove it to train again)"
    return 0
  fi
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$ranks" -gt 0 ]; then
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun -np "$ranks" --bind-to none --oversubscribe \
      "$hamnet" train "$@" --run-dir "$dir"
  else
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$hamnet" train "$@" --run-dir "$dir"
  fi
  t1=$(date +%s.%N)
  /usr/bin/python3 -c "print(round($t1 - $t0, 1))" >"$dir.seconds"
}

paths=(--set "data.train=$data/train.h5" --set "data.val=$data/val.h5")
for net in $nets; do
  echo "=== $net"
  run "$out/$net" "$here/jobs/fashion_$net.ini" "${paths[@]}" ${sets[@]+"${sets[@]}"}
done
for L in $depths; do
  echo "=== hamiltonian, stages 16x$L,32x$L,64x$L"
  run "$out/depth_$L" "$here/jobs/fashion_hamiltonian.ini" "${paths[@]}" --set "model.stages=16x$L,32x$L,64x$L" \
    --set "train.epochs=$depth_epochs" ${sets[@]+"${sets[@]}"}
done

# the test set, once per selected model
for dir in "$out"/*/; do
  dir=${dir%/}
  [ -f "$dir/best.h5" ] || continue
  [ -f "$dir.test.json" ] || OMP_NUM_THREADS=$threads "$hamnet" eval --checkpoint "$dir/best.h5" \
    --data "$data/test.h5" --json >"$dir.test.json"
done

/usr/bin/python3 - "$out" <<'EOF'
import glob, json, os, sys
import h5py
out = sys.argv[1]
rows, curves = [], {}
for best in sorted(glob.glob(os.path.join(out, "*", "best.h5"))):
    d = os.path.dirname(best)
    name = os.path.basename(d)
    ckpts = sorted(glob.glob(os.path.join(d, "ckpt-*.h5")))
    with h5py.File(ckpts[-1] if ckpts else best, "r") as f:
        m = dict(f["model"].attrs)
        hist = f["progress/history"][...]
        params = int(f.attrs["n_params"])
        stages = m.get("stages", "")
    test = json.load(open(d + ".test.json"))
    seconds = float(open(d + ".seconds").read()) if os.path.exists(d + ".seconds") else float(hist[:, 6].sum())
    ib = int(hist[:, 4].argmax())
    rows.append({"run": name, "arch": m["arch"], "stages": stages, "layers": int(m["depth"]), "params": params,
                 "epochs": int(hist[-1, 0]), "train_seconds": round(seconds, 1),
                 "best_val_accuracy": float(hist[ib, 4]), "best_epoch": int(hist[ib, 0]),
                 "test_accuracy": test["accuracy"], "test_loss": test["loss"]})
    curves[name] = [(int(r[0]), float(r[4]), float(r[2]), float(r[6])) for r in hist]
lines = ["| run | arch | stages | layers | parameters | epochs | training time | best val acc (epoch) | test acc |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['run']} | {r['arch']} | {r['stages']} | {r['layers']} | {r['params']} | {r['epochs']} | "
                 f"{r['train_seconds'] / 60:.1f} min | {100 * r['best_val_accuracy']:.2f}% ({r['best_epoch']}) | "
                 f"{100 * r['test_accuracy']:.2f}% |")
lines += ["", "Validation accuracy per epoch (training accuracy, epoch seconds):", ""]
names = list(curves)
lines.append("| epoch | " + " | ".join(names) + " |")
lines.append("|---" * (len(names) + 1) + "|")
for e in range(1, max(len(c) for c in curves.values()) + 1):
    cells = []
    for n in names:
        c = [x for x in curves[n] if x[0] == e]
        cells.append(f"{100 * c[0][1]:.2f}% ({100 * c[0][2]:.1f}%, {c[0][3]:.0f} s)" if c else "")
    lines.append(f"| {e} | " + " | ".join(cells) + " |")
deep = [r for r in rows if r["run"].startswith("depth_") and r["test_accuracy"] >= 0.90]
if deep:
    d = max(deep, key=lambda r: r["layers"])
    lines += ["", f"Deepest Hamiltonian network with >= 90% test accuracy: {d['layers']} layers "
              f"(stages {d['stages']}): {100 * d['test_accuracy']:.2f}%"]
text = "\n".join(lines)
print(text)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
json.dump({"runs": rows, "curves": curves}, open(os.path.join(out, "results.json"), "w"), indent=1)
EOF
