#!/usr/bin/env bash
# bench_memory.sh - reversible mode's memory does not grow with depth; stored mode's grows as
# predicted; and how far reversible gradients are from stored ones at large depth.
#
#   scripts/bench_memory.sh [--hamnet BIN] [--hamnet-double BIN] [--arch A] [--width n] [--batch B]
#                           [--depths "64 128 256 512 1024 2048"] [--compare-depths "1024 2048"]
#                           [--final-time T] [--threads T]
#
# Part 1, one `hamnet bench --steps 1` process per depth and mode (peak RSS is per process):
# hamnet's own counters of activation bytes (states kept between the passes) against the
# prediction of model.h (stored mode: per layer and sample 4 n values for hamiltonian - y, z and
# two activation derivatives -, 2 n for leapfrog; reversible mode: one copy of y_0), the
# workspace (scratch reused every layer), parameters, gradients, optimiser state and the peak
# RSS. Part 2: `hamnet bench --compare-reversible` - the gradients of one batch in stored and in
# reversible mode, their largest difference relative to the largest gradient and the relative
# 2-norm of the difference, in the float build (--hamnet) and the double build (--hamnet-double).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmdline="scripts/bench_memory.sh $*"

hamnet="$here/build/hamnet"
hamnet_double=""
arch=hamiltonian
width=64
batch=512
depths="64 128 256 512 1024 2048"
compare_depths="1024 2048"
final_time=5
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --hamnet) hamnet=$2; shift ;;
    --hamnet-double) hamnet_double=$2; shift ;;
    --arch) arch=$2; shift ;;
    --width) width=$2; shift ;;
    --batch) batch=$2; shift ;;
    --depths) depths=$2; shift ;;
    --compare-depths) compare_depths=$2; shift ;;
    --final-time) final_time=$2; shift ;;
    --threads) threads=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_memory.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$hamnet" ] || { echo "bench_memory.sh: no hamnet binary at $hamnet (build it, or pass --hamnet)" >&2; exit 1; }
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

# one table row from a `hamnet bench --json` line on stdin
read -r -d '' mem_row <<'EOF' || true
import json, sys
d = json.load(sys.stdin)
m = d["mem_peak_mb"]
mode = "reversible" if d["reversible"] else "stored"
print("| %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |" % (
    d["depth"], mode, d["activation_bytes"] / 2**20, d["predicted_activation_bytes"] / 2**20, m["workspace"],
    m["params"], m["grads"], m["optim"], d["peak_rss_mb"], d["ms_per_step"]))
EOF
read -r -d '' compare_row <<'EOF' || true
import json, sys
d = json.load(sys.stdin)
print("| %d | %s | %.3g | %.3g | %.3g |" % (d["depth"], d["precision"], d["max_rel_diff"], d["norm_rel_diff"],
                                         d["recon_error"]))
EOF

echo "\`$cmdline\`"
echo
echo "Memory, $arch width $width batch $batch (MiB; activations = states kept between forward and backward):"
echo
echo "| depth | mode | activations (counter) | predicted | workspace | parameters | gradients | optimizer | peak RSS | ms/step |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for depth in $depths; do
  for rev in on off; do
    "$hamnet" bench --arch "$arch" --width "$width" --batch "$batch" --depth "$depth" --final-time "$final_time" \
      --reversible "$rev" --steps 1 --warmup 0 --no-roofline --json | /usr/bin/python3 -c "$mem_row"
  done
done

echo
echo "Reversible against stored gradients, one batch, $arch width $width batch $batch, T = $final_time:"
echo
echo "| depth | precision | max abs difference / max abs gradient | relative 2-norm | reconstruction error |"
echo "|---|---|---|---|---|"
for depth in $compare_depths; do
  for bin in "$hamnet" $hamnet_double; do
    "$bin" bench --compare-reversible --arch "$arch" --width "$width" --batch "$batch" --depth "$depth" \
      --final-time "$final_time" --json | /usr/bin/python3 -c "$compare_row"
  done
done
