#!/usr/bin/env bash
# test_corrupt.sh - damaged checkpoints through the command line: a truncated or empty file,
# flipped bytes (in parameters, optimiser moments, superblock, an object header), a wrong or
# newer schema version, a missing or misshapen dataset, implausible header values, a text file.
# `hamnet inspect` and `hamnet eval` fail cleanly (exit 1, a message naming the file and the
# problem, never a crash); `hamnet train` skips the damaged newest checkpoint with a warning,
# resumes from the previous one, sets the damaged file aside and ends bitwise where the
# undamaged run ends. A run folder whose checkpoints are all unreadable is refused, unchanged.
# Random byte flips: every flipped file either fails verification or holds exactly the original
# state (a flip in unused bytes); none is ever loaded with different contents.
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir corrupt
export OMP_NUM_THREADS=1
RANDOM=${HN_CORRUPT_SEED:-777}
make_data data
write_config run.ini hamiltonian
sed -i 's/^keep = 3/keep = 5/' run.ini # checkpoints at 5, 10, 13 (epoch end), 15, 20 are kept
run_hamnet 1 train run.ini --run-dir ref >ref.log 2>&1 || fail "reference run failed: $(cat ref.log)"
run_hamnet 1 train run.ini --run-dir base --set train.max_steps=20 >/dev/null 2>&1 || true
for s in 10 15 20; do [[ -f base/ckpt-00000000$s.h5 ]] || fail "base: no checkpoint at step $s"; done
corrupted=0

# corrupt KIND FILE: damage FILE in place.
corrupt() {
  "$HN_PY" - "$1" "$2" <<'EOF'
import os, sys
import h5py, numpy as np
kind, path = sys.argv[1], sys.argv[2]

def flip(offset, n=4):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = bytearray(f.read(n))
        f.seek(offset)
        f.write(bytes(x ^ 0x5A for x in b))

def chunk_offset(name):
    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(0).byte_offset

size = os.path.getsize(path)
if kind == "truncated":
    os.truncate(path, size // 2)
elif kind == "empty":
    os.truncate(path, 0)
elif kind == "tail":            # the last 100 bytes cut off
    os.truncate(path, size - 100)
elif kind == "flip_K":          # inside the chunk of /model/K: fletcher32 fails
    flip(chunk_offset("model/K") + 37)
elif kind == "flip_m2":         # inside the Adam second moments (train and inspect read them, eval does not)
    flip(chunk_offset("optimizer/m2") + 11)
elif kind == "flip_super":      # the superblock (its checksum)
    flip(20)
elif kind == "flip_header":     # the object header of /model (its checksum)
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f["model"].id).addr
    flip(addr + 12)
elif kind == "version99":
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = np.int32(99)
elif kind == "version0":
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = np.int32(0)
elif kind == "not_ckpt":
    with h5py.File(path, "r+") as f:
        f.attrs["format"] = "hamnet-dataset"
elif kind == "no_b":
    with h5py.File(path, "r+") as f:
        del f["model/b"]
elif kind == "no_m1":
    with h5py.File(path, "r+") as f:
        del f["optimizer/m1"]
elif kind == "shape_K":
    with h5py.File(path, "r+") as f:
        k = f["model/K"][()]
        del f["model/K"]
        f["model/K"] = k[:-1]
elif kind == "int_K":
    with h5py.File(path, "r+") as f:
        k = f["model/K"][()]
        del f["model/K"]
        f["model/K"] = k.astype(np.int32)
elif kind == "huge_depth":
    with h5py.File(path, "r+") as f:
        f["model"].attrs["depth"] = np.int32(1 << 30)
elif kind == "neg_width":
    with h5py.File(path, "r+") as f:
        f["model"].attrs["width"] = np.int32(-4)
elif kind == "huge_params":
    with h5py.File(path, "r+") as f:
        f.attrs["n_params"] = np.int64(1 << 50)
elif kind == "text":
    with open(path, "w") as f:
        f.write("this is not a checkpoint\n")
else:
    sys.exit("unknown kind " + kind)
EOF
}

# kind : what `hamnet inspect` must say (extended regex)
cases=(
  "truncated:truncated|cannot (be read|open) as HDF5"
  "empty:not an HDF5 file|truncated|cannot (be read|open)"
  "tail:truncated|cannot (be read|open)|cannot read"
  "flip_K:checksum mismatch in /model/K"
  "flip_m2:checksum mismatch in /optimizer/m2"
  "flip_super:truncated or corrupted|cannot (be read|open)|not an HDF5 file"
  "flip_header:cannot|corrupted"
  "version99:format_version 99 is newer than this hamnet supports"
  "version0:format_version 0 is invalid"
  "not_ckpt:missing dataset /X"
  "no_b:dataset /model/b is missing"
  "no_m1:dataset /optimizer/m1 is missing"
  "shape_K:/model/K has shape \[7, 4, 4\]; the /model attributes imply \[8, 4, 4\]"
  "int_K:/model/K has type int32; expected floating point"
  "huge_depth:depth"
  "neg_width:width"
  "huge_params:n_params"
  "text:not an HDF5 file"
)
for c in "${cases[@]}"; do
  kind=${c%%:*}
  pattern=${c#*:}
  dir=c_$kind
  rm -rf "$dir"
  cp -r base "$dir"
  f=$dir/ckpt-0000000020.h5
  corrupt "$kind" "$f" || fail "$kind: could not corrupt the file"
  corrupted=$((corrupted + 1))
  # inspect: exit 1 with a message naming the file
  rc=0
  out=$("$HAMNET" inspect "$f" 2>&1) || rc=$?
  [[ $rc == 1 ]] || fail "$kind: inspect exited $rc, expected 1: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "$kind: inspect message lacks /$pattern/: $out"
  grep -q "ckpt-0000000020.h5" <<<"$out" || fail "$kind: inspect message does not name the file: $out"
  msg=$(grep -m1 "error" <<<"$out" | cut -c1-160) || true
  # eval: exit 1 (the moments are not read by eval: flip_m2 evaluates fine)
  rc=0
  out=$("$HAMNET" eval --checkpoint "$f" --data data/val.h5 2>&1) || rc=$?
  if [[ $kind == flip_m2 ]]; then
    [[ $rc == 0 ]] || fail "$kind: eval of intact parameters exited $rc: $out"
  else
    [[ $rc == 1 ]] || fail "$kind: eval exited $rc, expected 1: $out"
    grep -q "ckpt-0000000020.h5" <<<"$out" || fail "$kind: eval message does not name the file: $out"
  fi
  # train: skip it (warning with the reason), resume from step 15, set the file aside, finish exactly
  rc=0
  out=$("$HAMNET" train run.ini --run-dir "$dir" 2>&1) || rc=$?
  [[ $rc == 0 ]] || fail "$kind: train exited $rc: $out"
  grep -q "skipping corrupt checkpoint $f" <<<"$out" || fail "$kind: no skip warning: $out"
  grep -q "resuming from $dir/ckpt-0000000015.h5" <<<"$out" || fail "$kind: did not resume from step 15: $out"
  [[ -f $f.corrupt ]] || fail "$kind: the damaged file was not set aside as .corrupt"
  same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt "$dir")" || fail "$kind: final checkpoint differs"
  same_steps ref/steps.tsv "$dir/steps.tsv" || fail "$kind: steps.tsv differs"
  echo "$kind: $msg | train resumed from 15, exact"
done

# several damaged: the two newest; resumes from the next one (13, the end of epoch 1)
dir=c_two
cp -r base "$dir"
corrupt flip_K "$dir/ckpt-0000000020.h5"
corrupt truncated "$dir/ckpt-0000000015.h5"
corrupted=$((corrupted + 2))
expect 0 "resuming from $dir/ckpt-0000000013.h5" "$HAMNET" train run.ini --run-dir "$dir"
[[ $(grep -c "skipping corrupt checkpoint" <<<"$last_output") == 2 ]] || fail "two skips expected: $last_output"
same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt "$dir")" || fail "c_two: final checkpoint differs"

# all damaged: refused, nothing changed
dir=c_all
cp -r base "$dir"
n=0
for f in "$dir"/ckpt-*.h5; do
  corrupt flip_K "$f"
  n=$((n + 1))
done
corrupted=$((corrupted + n))
listing=$(ls -l --time-style=full-iso "$dir"; cksum "$dir"/*)
expect 1 "c_all holds $n checkpoint files but none reads back completely" "$HAMNET" train run.ini --run-dir "$dir"
[[ $(ls -l --time-style=full-iso "$dir"; cksum "$dir"/*) == "$listing" ]] || fail "c_all: the refused run changed the folder"

# a leftover .tmp (a write that was killed) is never considered, whatever it holds
dir=c_tmp
cp -r base "$dir"
cp "$dir/ckpt-0000000020.h5" "$dir/ckpt-0000000030.h5.tmp"
head -c 1000 "$dir/ckpt-0000000020.h5" >"$dir/ckpt-0000000025.h5.tmp"
expect 0 "resuming from $dir/ckpt-0000000020.h5" "$HAMNET" train run.ini --run-dir "$dir"
! grep -q "skipping" <<<"$last_output" || fail "c_tmp: a .tmp file was looked at: $last_output"

# --- random byte flips ----------------------------------------------------------------------------
# Each flipped file must fail `hamnet inspect` (exit 1, a message) or still hold exactly the
# original training state (the flip hit unused bytes, or the informational strings hamnet_version /
# precision, which HDF5 keeps without checksum); exit codes >= 128 (crashes) fail the test.
src=base/ckpt-0000000020.h5
size=$(stat -c %s "$src")
detected=0 harmless=0
for ((i = 0; i < ${HN_CORRUPT_FLIPS:-30}; i++)); do
  cp "$src" flip.h5
  nbytes=$((1 + RANDOM % 3))
  offsets=()
  for ((j = 0; j < nbytes; j++)); do offsets+=("$(((RANDOM * 32768 + RANDOM) % size))"); done
  "$HN_PY" - flip.h5 "${offsets[@]}" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    for off in map(int, sys.argv[2:]):
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))
EOF
  corrupted=$((corrupted + 1))
  rc=0
  out=$("$HAMNET" inspect flip.h5 2>&1) || rc=$?
  if [[ $rc == 0 ]]; then
    "$HN_PY" "$HN_SOURCE_DIR/tests/cli/ckpt_compare.py" --ignore-info "$src" flip.h5 >/dev/null ||
      fail "flip at ${offsets[*]}: the file verifies but its contents changed (undetected corruption)"
    harmless=$((harmless + 1))
  else
    [[ $rc == 1 ]] || fail "flip at ${offsets[*]}: inspect exited $rc (crash?): $out"
    grep -q "flip.h5" <<<"$out" || fail "flip at ${offsets[*]}: message does not name the file: $out"
    detected=$((detected + 1))
  fi
done
echo "random flips: $detected detected, $harmless in unused bytes (contents unchanged)"
echo "test_corrupt: $corrupted checkpoint files corrupted; all checks passed"
