#!/usr/bin/env bash
# fashion_data.sh - Fashion-MNIST as hamnet data sets: training, validation and test split.
#
#   scripts/fashion_data.sh [--out DIR] [--val N] [--force]
#
# Installs Debian's dataset-fashion-mnist when it is missing (root; apt-get), converts its IDX
# files with `hamnet import idx` (images [N, 1, 28, 28] scaled to [0, 1], 10 classes) and holds
# out the LAST N (default 5000) of the 60000 training images as the validation set for model
# selection: DIR/train.h5 (55000), DIR/val.h5 (5000), DIR/test.h5 (the 10000 test images, to be
# looked at once, at the end). DIR defaults to data/fashion in the repository. Existing files are
# kept unless --force. The split is done by a few lines of h5py (/usr/bin/python3, Debian's
# python3-h5py), writing hamnet's format (float32 /X, int32 /y, n_classes, fletcher32 checksums).
# $HAMNET names the binary (default: build/hamnet of the repository).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/data/fashion"
val=5000
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --val) val=$2; shift ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "fashion_data.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
hamnet=${HAMNET:-$here/build/hamnet}
[ -x "$hamnet" ] || { echo "fashion_data.sh: no hamnet binary at $hamnet (build it: scripts/setup.sh, or set HAMNET)" >&2; exit 1; }
src=/usr/share/datasets/fashion-mnist
if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "fashion_data.sh: $src is missing; install Debian's dataset-fashion-mnist (as root: apt-get install dataset-fashion-mnist)" >&2
    exit 1
  fi
  echo "fashion_data.sh: installing dataset-fashion-mnist"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null ||
    { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; }
fi
if [ "$force" = 0 ] && [ -f "$out/train.h5" ] && [ -f "$out/val.h5" ] && [ -f "$out/test.h5" ]; then
  echo "fashion_data.sh: $out/{train,val,test}.h5 exist (--force to rebuild)"
  exit 0
fi
mkdir -p "$out"
"$hamnet" import idx "$src/t10k-images-idx3-ubyte.gz" "$src/t10k-labels-idx1-ubyte.gz" --out "$out/test.h5"
"$hamnet" import idx "$src/train-images-idx3-ubyte.gz" "$src/train-labels-idx1-ubyte.gz" --out "$out/all.h5"
/usr/bin/python3 - "$out" "$val" <<'EOF'
import os, sys
import h5py, numpy as np
out, n_val = sys.argv[1], int(sys.argv[2])
with h5py.File(os.path.join(out, "all.h5"), "r") as f:
    X, y, C = f["X"][...], f["y"][...], int(f.attrs["n_classes"])
assert 0 < n_val < len(y), "--val must be between 1 and the number of training images - 1"
def write(name, Xs, ys):
    tmp = os.path.join(out, name + ".tmp")
    with h5py.File(tmp, "w") as g:
        g.attrs["format"] = "hamnet-dataset"
        g.attrs["format_version"] = np.int32(1)
        g.attrs["n_classes"] = np.int32(C)
        g.create_dataset("X", data=Xs.astype("float32"), chunks=(min(len(ys), 256),) + Xs.shape[1:], fletcher32=True)
        g.create_dataset("y", data=ys.astype("int32"), chunks=(min(len(ys), 65536),), fletcher32=True)
    os.replace(tmp, os.path.join(out, name))
write("train.h5", X[:-n_val], y[:-n_val])
write("val.h5", X[-n_val:], y[-n_val:])
print("fashion_data.sh: %s/train.h5 %d images, val.h5 %d (the last %d of the training set), classes %d"
      % (out, len(y) - n_val, n_val, n_val, C))
EOF
rm -f "$out/all.h5"
"$hamnet" inspect "$out/test.h5" | head -3
