#!/usr/bin/env bash
# test_corrupt_data.sh - bad input everywhere gives a clear error and changes nothing:
# data files with NaN / Inf, wrong ranks / types, mismatched or missing datasets, implausible
# n_classes, labels out of range, crafted huge dimensions (refused before allocating), an
# empty, truncated, byte-flipped or non-HDF5 file - through `hamnet train` (resuming runs too:
# their checkpoints are untouched) and `hamnet eval`; and a run folder that cannot be written
# (a path under a file; a read-only tmpfs when mount is permitted).
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir corrupt_data
export OMP_NUM_THREADS=1
mounted=""
cleanup() {
  [[ -z $mounted ]] || umount "$mounted" 2>/dev/null || true
  cd /
  rm -rf "$work"
}
trap cleanup EXIT
make_data data

"$HN_PY" - <<'EOF'
import os, shutil
import h5py, numpy as np
with h5py.File("data/train.h5", "r") as f:
    X, y = f["X"][()], f["y"][()]

def w(name, X, y, **attrs):
    with h5py.File(name, "w") as f:
        if X is not None:
            f["X"] = X
        if y is not None:
            f["y"] = y
        for k, v in attrs.items():
            f.attrs[k] = v

Xn = X.copy(); Xn[17, 1] = np.nan; w("nan.h5", Xn, y)
Xi = X.copy(); Xi[3, 0] = -np.inf; w("inf.h5", Xi, y)
Xb = X.astype(np.float64); Xb[8, 1] = 1e300; w("f64big.h5", Xb, y)   # beyond float32
w("x1d.h5", X[:, 0].copy(), y)
w("xint.h5", X.astype(np.int32), y)
w("yfloat.h5", X, y.astype(np.float32))
w("y2d.h5", X, y.reshape(-1, 1))
w("nmis.h5", X, y[:-1])
w("noy.h5", X, None)
w("nox.h5", None, y)
w("ncneg.h5", X, y, n_classes=np.int32(-3))
w("nchuge.h5", X, y, n_classes=np.int64(2**40))
w("ncstr.h5", X, y, n_classes="two")
yn = y.copy(); yn[5] = -1; w("yneg.h5", X, yn)
yb = y.copy(); yb[9] = 7; w("ybig.h5", X, yb, n_classes=np.int32(2))
w("feat3.h5", np.concatenate([X, X[:, :1]], axis=1), y)
with h5py.File("huge.h5", "w") as f:   # 2^40 x 2^10 floats: 4 PiB promised by a 10 KB file
    f.create_dataset("X", shape=(2**40, 2**10), dtype="f4", chunks=(1, 1024))
    f.create_dataset("y", shape=(2**40,), dtype="i4", chunks=(1024,))
with h5py.File("hugefeat.h5", "w") as f:
    f.create_dataset("X", shape=(10, 2**28), dtype="f4", chunks=(1, 1024))
    f["y"] = np.zeros(10, "i4")
with h5py.File("zero.h5", "w") as f:
    f.create_dataset("X", shape=(0, 2), dtype="f4")
    f.create_dataset("y", shape=(0,), dtype="i4")
shutil.copy("data/train.h5", "trunc.h5")
os.truncate("trunc.h5", os.path.getsize("trunc.h5") // 2)
shutil.copy("data/train.h5", "flip.h5")
with h5py.File("flip.h5", "r") as f:
    off = f["X"].id.get_chunk_info(0).byte_offset
with open("flip.h5", "r+b") as f:
    f.seek(off + 100)
    b = f.read(2)
    f.seek(off + 100)
    f.write(bytes(x ^ 0x5A for x in b))
open("text.h5", "w").write("x1,x2,label\n")
open("empty.h5", "w").close()
EOF

# name : message (extended regex). Each must name the file.
cases=(
  "nan:/X\[17, 1\] = nan is not finite \(fix or drop sample 17\)"
  "inf:/X\[3, 0\] = -inf is not finite"
  "f64big:/X\[8, 1\] = .*inf.* is not finite|beyond|range"
  "x1d:/X: expected float32 \[N, F\] or \[N, C, H, W\], got rank 1"
  "xint:/X has type int32; expected floating point"
  "yfloat:/y has type float32; expected integer class labels"
  "y2d:/y: expected int32 labels \[N\], got rank 2"
  "nmis:/X has 200 samples but /y has 199 labels"
  "noy:missing dataset /y"
  "nox:missing dataset /X"
  "ncneg:n_classes = -3 is outside 1\.\.1048576"
  "nchuge:n_classes = 1099511627776 is outside"
  "ncstr:n_classes"
  "yneg:/y\[5\] = -1: labels must be non-negative"
  "ybig:/y\[9\] = 7 is out of range 0\.\.1"
  "huge:is more than the 64 GiB limit per data set"
  "hugefeat:268435456 features per sample"
  "zero:/X has no samples"
  "trunc:truncated"
  "flip:Fletcher32|checksum"
  "text:not an HDF5 file"
  "empty:not an HDF5 file|truncated|cannot open"
  "missing:cannot open|No such file"
  "data:is a directory|cannot open|not an HDF5"
)

# A resumable run to point at bad data: its checkpoints must stay untouched.
write_config run.ini hamiltonian
run_hamnet 1 train run.ini --run-dir keep --set train.max_steps=10 >/dev/null 2>&1 || true
ck=$(newest_ckpt keep)
[[ -n $ck ]] || fail "no checkpoint to resume from"
state=$(ls -l --time-style=full-iso keep; cksum keep/*)
n=0
for c in "${cases[@]}"; do
  name=${c%%:*}
  pattern=${c#*:}
  file=$PWD/$name.h5
  [[ $name == data ]] && file=$PWD/data
  [[ $name == missing ]] && file=$PWD/missing.h5
  # a fresh run: exit 1, the message, no run folder left behind (for errors found at start-up)
  expect 1 "$pattern" "$HAMNET" train run.ini --run-dir "fresh_$name" --set data.train="$file" --set data.val=
  grep -qF "$(basename "$file")" <<<"$last_output" || fail "$name: the message does not name the file: $last_output"
  msg=$(grep -m1 "error" <<<"$last_output" | cut -c1-150)
  # as validation set of a resumed run: refused, the run folder is not changed
  if [[ $name != feat3 ]]; then
    expect 1 "$pattern" "$HAMNET" train run.ini --run-dir keep --set data.val="$file"
    [[ $(ls -l --time-style=full-iso keep; cksum keep/*) == "$state" ]] || fail "$name: the refused resume changed the run folder"
  fi
  # eval with a good checkpoint
  expect 1 "$pattern" "$HAMNET" eval --checkpoint "$ck" --data "$file"
  n=$((n + 1))
  echo "$name: $msg"
done
# a data set with a different number of features than the checkpoint / the run
expect 1 "3 features" "$HAMNET" train run.ini --run-dir keep --set data.val="$PWD/feat3.h5"
expect 1 "features" "$HAMNET" eval --checkpoint "$ck" --data "$PWD/feat3.h5"
[[ $(ls -l --time-style=full-iso keep; cksum keep/*) == "$state" ]] || fail "the run folder changed"
n=$((n + 1))

# --- a run folder that cannot be written --------------------------------------------------------
# (root ignores permission bits: use a path below a plain file, and a read-only mount)
touch plainfile
expect 1 "cannot create (run )?folder .*plainfile.*Not a directory" "$HAMNET" train run.ini --run-dir plainfile/run
mkdir -p ro
if mount -t tmpfs -o size=1m tmpfs ro 2>/dev/null; then
  mounted=$PWD/ro
  cp -r keep ro/run
  mount -o remount,ro "$mounted"
  expect 1 "not writable|Read-only file system" "$HAMNET" train run.ini --run-dir ro/run
  expect 1 "cannot create (run )?folder .*Read-only file system" "$HAMNET" train run.ini --run-dir ro/new
  [[ $(cd ro/run && ls; cksum ./*) == $(cd keep && ls; cksum ./*) ]] || fail "read-only run folder changed"
  umount "$mounted"
  mounted=""
  echo "read-only run folder: refused with a message"
else
  echo "SKIP (read-only run folder): mount -t tmpfs is not permitted here"
fi
echo "test_corrupt_data: $n bad data files refused by train, resume and eval; all checks passed"
