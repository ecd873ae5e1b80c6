#!/usr/bin/env bash
# bench_conv_table.sh - convolutional training step, hamnet against PyTorch (issue 9, item 3):
# the same network (hamnet/convnet.h; scripts/bench_conv_pytorch.py builds it from PyTorch
# modules), float32, the same batch, each side at its best of 1 and 2 threads, side by side.
#
#   scripts/bench_conv_table.sh [--stages 16x3,32x3,64x3] [--batch 128] [--archs "hamiltonian resnet"]
#                               [--steps 10] [--out DIR]
#
# Rows: per architecture, hamnet in stored mode and (hamiltonian, leapfrog) in reversible mode.
# PyTorch computes K^T y as conv2d with the flipped, transposed kernel - the faster of its two
# ways, so the fair peer; for hamiltonian and leapfrog a last column shows conv_transpose2d.
# Columns: ms per step (best of --steps, after 2 warm-up steps) and the thread setting that gave
# it; the ratio PyTorch / hamnet (goal >= 1.5x); the same ratio in CPU time with one thread on
# both sides (robust to other load on the machine); hamnet with im2col + GEMM instead of its
# default Winograd products (--conv-algorithm im2col) and the speed-up Winograd gives; peak RSS. Writes DIR/conv_bench.md and the
# raw JSON lines (default DIR: runs/bench_conv). $HAMNET names the binary (default build/hamnet).
# Needs Debian's python3-torch (scripts/setup.sh --bench-deps). Run it on a quiet machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stages=16x3,32x3,64x3
batch=128
archs="hamiltonian resnet"
steps=10
out=$here/runs/bench_conv
while [ $# -gt 0 ]; do
  case "$1" in
    --stages) stages=$2; shift ;;
    --batch) batch=$2; shift ;;
    --archs) archs=$2; shift ;;
    --steps) steps=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench_conv_table.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
hamnet=${HAMNET:-$here/build/hamnet}
[ -x "$hamnet" ] || { echo "bench_conv_table.sh: no hamnet binary at $hamnet (scripts/setup.sh, or set HAMNET)" >&2; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "bench_conv_table.sh: PyTorch is missing (scripts/setup.sh --bench-deps installs python3-torch)" >&2; exit 1; }
mkdir -p "$out"
raw=$out/conv_bench.jsonl
: >"$raw"
for arch in $archs; do
  modes=off
  case $arch in hamiltonian | leapfrog) modes="off on" ;; esac
  for rev in $modes; do
    for algorithm in auto im2col; do
      for t in 1 2; do
        echo "hamnet $arch reversible=$rev threads=$t conv-algorithm=$algorithm" >&2
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$hamnet" bench --arch "$arch" --activation relu --stages "$stages" \
          --batch "$batch" --reversible "$rev" --threads "$t" --steps "$steps" --conv-algorithm "$algorithm" --json |
          sed 's/^{/{"side": "hamnet", /' >>"$raw"
      done
    done
  done
  adjoints=conv2d
  case $arch in hamiltonian | leapfrog) adjoints="conv2d transpose" ;; esac
  for adjoint in $adjoints; do
    echo "pytorch $arch adjoint=$adjoint" >&2
    /usr/bin/python3 "$here/scripts/bench_conv_pytorch.py" --arch "$arch" --activation relu --stages "$stages" \
      --batch "$batch" --steps "$steps" --threads 1,2 --adjoint "$adjoint" --json |
      sed 's/^{/{"side": "pytorch", /' >>"$raw"
  done
done
/usr/bin/python3 - "$raw" "$out/conv_bench.md" "$stages" "$batch" <<'EOF'
import json, sys
raw, md, stages, batch = sys.argv[1:]
rows = [json.loads(l) for l in open(raw) if l.strip()]
lines = [f"Convolutional training step (stages {stages}, batch {batch}, relu, batch normalisation, Adam, float32):", "",
         "| arch | hamnet mode | hamnet ms/step (threads) | PyTorch ms/step (threads) | ratio (goal >= 1.5x) | ratio, CPU time, 1 thread | PyTorch with conv_transpose2d: ms/step, ratio | hamnet with im2col: ms/step, Winograd's speed-up | hamnet peak RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|"]
for arch in dict.fromkeys(r["arch"] for r in rows):
    peer = next(r for r in rows if r["side"] == "pytorch" and r["arch"] == arch and r["adjoint"] == "conv2d")
    slow = [r for r in rows if r["side"] == "pytorch" and r["arch"] == arch and r["adjoint"] == "transpose"]
    for rev in (False, True):
        mine = [r for r in rows if r["side"] == "hamnet" and r["arch"] == arch and r["reversible"] == rev
                and r.get("conv_algorithm", "auto") == "auto"]
        im2col = [r for r in rows if r["side"] == "hamnet" and r["arch"] == arch and r["reversible"] == rev
                  and r.get("conv_algorithm") == "im2col"]
        if not mine:
            continue
        best = min(mine, key=lambda r: r["ms_per_step"])
        one = next(r for r in mine if r["threads"] == 1)
        ratio = peer["ms_per_step"] / best["ms_per_step"]
        cpu_ratio = peer["cpu_ms_per_step_1thread"] / one["cpu_ms_per_step"]
        im2col_best = min(im2col, key=lambda r: r["ms_per_step"]) if im2col else None
        im2col_text = (f"{im2col_best['ms_per_step']:.1f} ({im2col_best['threads']}), "
                       f"{im2col_best['ms_per_step'] / best['ms_per_step']:.2f}x" if im2col_best else "-")
        other = (f"{slow[0]['ms_per_step']:.1f} ({slow[0]['threads']}), {slow[0]['ms_per_step'] / best['ms_per_step']:.2f}x"
                 if slow else "-")
        lines.append(f"| {arch} | {'reversible' if rev else 'stored'} | {best['ms_per_step']:.1f} ({best['threads']}) | "
                     f"{peer['ms_per_step']:.1f} ({peer['threads']}) | {ratio:.2f}x {'met' if ratio >= 1.5 else 'MISSED'} | "
                     f"{cpu_ratio:.2f}x | {other} | {im2col_text} | {best['peak_rss_mb']:.0f} |")
lines += ["", "PyTorch computes K^T y as conv2d with the flipped, transposed kernel (the faster of its two ways;",
          "the last PyTorch column uses conv_transpose2d instead). Ratio = PyTorch ms / hamnet ms, each at its best",
          "thread setting."]
text = "\n".join(lines)
print(text)
open(md, "w").write(text + "\n")
EOF
