#!/usr/bin/env bash
# mpi_scaling.sh - measure what the scaling model needs on this node and print its table
# (issue 5, figure 4).
#
#   scripts/mpi_scaling.sh [--out DIR] [--steps S] [scaling_model.py options]
#
#   1. compute time per sample on ONE core of the model's network (hamiltonian, tanh, width 256,
#      depth 256, adam, batch 128): `hamnet train`'s per-step median on 1 rank x 1 thread (one
#      core is measured because OpenMP teams slow down badly on a shared, loaded machine; the
#      model scales it to C cores with a stated threading efficiency);
#   2. the same network on 2 ranks with HAMNET_EXCHANGE_TRACE: the overlap fraction (share of
#      the step between the first bucket's start and the end of the backward pass);
#   3. the allreduce sweep on 2 ranks (scripts/mpi_allreduce_sweep.sh), 4 KiB .. 64 MiB;
#   4. scripts/scaling_model.py twice: nodes like this one (2 cores, 2 ranks per node: the
#      measured on-node allreduce included) and 64-core nodes with 1 rank x 64 threads.
# Everything lands in DIR (default scaling-<date>): train.log, trace.log, sweep.tsv, model.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$here/build}
hamnet=${HAMNET:-$build/hamnet}
out=""
steps=5
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --steps) steps=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[ -n "$out" ] || out="$here/scaling-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
cores=$(nproc)
batch=128
precision=$("$hamnet" --version | grep -oE '(float|double) precision' | cut -d' ' -f1)
bpp=4
[ "$precision" = double ] && bpp=8

"$hamnet" datagen peaks --out "$out/data" --samples $((batch * steps)) --val-samples 10 --seed 1 >/dev/null
common=(train /dev/null --set data.train="$out/data/train.h5" --set model.arch=hamiltonian --set model.activation=tanh
        --set model.width=256 --set model.depth=256 --set train.optimizer=adam --set train.lr=0.001
        --set train.batch_size=$batch --set train.epochs=1 --set checkpoint.best=0 --set diagnostics.every_epochs=0)
echo "1/3 compute: width 256, depth 256, batch $batch on 1 rank x 1 thread"
OMP_NUM_THREADS=1 "$hamnet" "${common[@]}" --run-dir "$out/run1" --threads 1 >"$out/train.log" 2>&1
grep "steps:" "$out/train.log"
echo "2/3 overlap fraction: the same network on 2 ranks with the bucket trace"
HAMNET_EXCHANGE_TRACE=1 OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core -x HAMNET_EXCHANGE_TRACE -x OMP_NUM_THREADS \
  "$hamnet" "${common[@]}" --run-dir "$out/run2" --threads 1 >"$out/trace.log" 2>&1
overlap=$(/usr/bin/python3 - "$out/trace.log" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
step = re.findall(r"steps: \d+, median ([0-9.]+) ms", text)
fr = []
for m in re.finditer(r"step (\d+): finish entered ([0-9.]+) ms, waited ([0-9.]+) ms; bucket start/done ms: 0:([0-9.]+)/", text):
    if int(m.group(1)) > 1:  # the first step pays first touches
        fr.append((float(m.group(2)) - float(m.group(4))) / float(step[-1]))
fr.sort()
print(f"{fr[len(fr) // 2]:.3f}" if fr else "0.7")
EOF
)
echo "   overlap fraction (median over steps and ranks): $overlap"
rm -rf "$out/run1" "$out/run2"
echo "3/3 allreduce sweep on 2 ranks"
BUILD=$build "$here/scripts/mpi_allreduce_sweep.sh" --ranks 2 --min 4096 --max $((64 << 20)) --reps 30 \
  --out "$out/sweep.tsv" >/dev/null
model=(/usr/bin/python3 "$here/scripts/scaling_model.py" --sweep "$out/sweep.tsv" --train-log "$out/train.log"
       --batch $batch --bytes-per-param $bpp --overlap-fraction "$overlap")
{
  "${model[@]}" --cores "$cores" --ranks-per-node "$cores" "${extra[@]}"
  echo
  "${model[@]}" --cores 64 --ranks-per-node 1 "${extra[@]}"
} | tee "$out/model.md"
