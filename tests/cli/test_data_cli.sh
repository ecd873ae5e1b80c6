#!/usr/bin/env bash
# test_data_cli.sh - `hamnet datagen`, `hamnet import` and `hamnet inspect` end to end:
# outputs, summaries, error messages and exit codes (0 ok, 1 error, 2 usage).
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_data.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect CODE REGEX command...: the command exits with CODE and its stdout+stderr matches REGEX.
expect() {
  local want=$1 pattern=$2
  shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc == "$want" ]] || fail "'$*' exited $rc, expected $want; output:
$out"
  grep -qE -- "$pattern" <<<"$out" || fail "'$*': output lacks /$pattern/:
$out"
  last_output=$out
}

# --- datagen --------------------------------------------------------------------------------
expect 0 "--val-samples" "$HAMNET" datagen --help
for opt in --out --samples --seed --noise ellipses swissroll peaks; do
  grep -q -- "$opt" <<<"$last_output" || fail "datagen --help does not mention $opt"
done

expect 0 "wrote d/e/train.h5: 1000 samples, 2 features, 2 classes, per class 500 500" \
  "$HAMNET" datagen ellipses --out d/e
grep -q "wrote d/e/val.h5: 1000 samples" <<<"$last_output" || fail "no summary line for val.h5"
[[ -f d/e/train.h5 && -f d/e/val.h5 ]] || fail "datagen did not write both files"
[[ ! -e d/e/train.h5.tmp ]] || fail "temporary file left behind"

expect 0 "wrote p/train.h5: 500 samples, 2 features, 5 classes, per class 100 100 100 100 100" \
  "$HAMNET" datagen peaks --out p --samples 500 --val-samples=100 --seed 7 --noise 0.05
grep -q "wrote p/val.h5: 100 samples, 2 features, 5 classes, per class 20 20 20 20 20" <<<"$last_output" ||
  fail "peaks validation summary: $last_output"
expect 0 "wrote s/train.h5: 513 samples, 2 features, 2 classes, per class 257 256" \
  "$HAMNET" datagen swissroll --out s --noise 0.01

# the same seed gives the same data (compare the summaries, which cover every value)
"$HAMNET" datagen ellipses --out r1 --seed 5 --samples 64 >/dev/null
"$HAMNET" datagen ellipses --out r2 --seed 5 --samples 64 >/dev/null
"$HAMNET" datagen ellipses --out r3 --seed 6 --samples 64 >/dev/null
j1=$("$HAMNET" inspect --json r1/train.h5 | sed 's/"file": "[^"]*"//')
j2=$("$HAMNET" inspect --json r2/train.h5 | sed 's/"file": "[^"]*"//')
j3=$("$HAMNET" inspect --json r3/train.h5 | sed 's/"file": "[^"]*"//')
[[ "$j1" == "$j2" ]] || fail "same seed, different data: $j1 / $j2"
[[ "$j1" != "$j3" ]] || fail "different seeds, same data"

# usage errors: exit 2 and a message naming the problem
expect 2 "fixed size" "$HAMNET" datagen swissroll --out s2 --samples 100
[[ ! -e s2 ]] || fail "a refused datagen created its directory"
expect 2 "missing KIND" "$HAMNET" datagen --out x
expect 2 "unknown KIND 'circles'" "$HAMNET" datagen circles --out x
expect 2 "missing --out" "$HAMNET" datagen ellipses
expect 2 "--samples needs a whole number" "$HAMNET" datagen ellipses --out x --samples abc
expect 2 "--samples needs a whole number" "$HAMNET" datagen ellipses --out x --samples 0
expect 2 "--noise needs a number >= 0" "$HAMNET" datagen ellipses --out x --noise -1
expect 2 "--seed needs an unsigned integer" "$HAMNET" datagen ellipses --out x --seed -3
expect 2 "--out needs a directory" "$HAMNET" datagen ellipses --out
expect 2 "unknown option '--bogus'" "$HAMNET" datagen ellipses --out x --bogus
expect 2 "one KIND only" "$HAMNET" datagen ellipses peaks --out x
grep -q "Try 'hamnet datagen --help'" <<<"$last_output" || fail "usage error without the --help hint"
touch plainfile
expect 1 "plainfile" "$HAMNET" datagen ellipses --out plainfile/sub

# --- inspect --------------------------------------------------------------------------------
expect 0 "--json" "$HAMNET" inspect --help
expect 0 "samples +1000" "$HAMNET" inspect d/e/train.h5
for pattern in "sample +\[2\] = 2 features" "classes +2 \(n_classes attribute\)" "per class +0:500 1:500" \
  "checksums +fletcher32" "X +float32, min"; do
  grep -qE -- "$pattern" <<<"$last_output" || fail "inspect output lacks /$pattern/: $last_output"
done
expect 0 '"samples": 500' "$HAMNET" inspect p/train.h5 --json
json=$last_output
[[ $(wc -l <<<"$json") == 1 ]] || fail "--json printed more than one line"
if command -v python3 >/dev/null 2>&1; then
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["kind"] == "dataset" and d["samples"] == 500 and d["n_classes"] == 5, d
assert d["class_counts"] == [100] * 5 and d["sample_shape"] == [2] and d["checksummed"] is True, d
assert -3.5 < d["x_min"] < d["x_mean"] < d["x_max"] < 3.5, d
' "$json" || fail "inspect --json is not the expected JSON: $json"
fi
expect 1 "No such file" "$HAMNET" inspect missing.h5
echo "not hdf5" >text.h5
expect 1 "not an HDF5 file" "$HAMNET" inspect text.h5
expect 2 "missing FILE" "$HAMNET" inspect
expect 2 "one FILE only" "$HAMNET" inspect a.h5 b.h5
expect 2 "unknown option '--yaml'" "$HAMNET" inspect --yaml d/e/train.h5

# --- import csv -----------------------------------------------------------------------------
expect 0 "label-column" "$HAMNET" import --help
for opt in --header --delimiter --n-classes --text-labels idx; do
  grep -q -- "$opt" <<<"$last_output" || fail "import --help does not mention $opt"
done
printf 'x1,x2,label\n0.5,1.5,1\n-2,3e-1,0\n\n4,5,1\n7,8,0\n' >good.csv
expect 0 "wrote good.h5: 4 samples, sample shape \[2\] \(2 features\), 2 classes, per class 2 2" \
  "$HAMNET" import csv good.csv --out good.h5
expect 0 "min -2, max 8" "$HAMNET" inspect good.h5

printf '1;0.5;1.5\r\n0;2;3\r\n2;4;4\r\n' >semi.csv
expect 0 "3 samples, sample shape \[2\] \(2 features\), 5 classes, per class 1 1 1 0 0" \
  "$HAMNET" import csv semi.csv --out semi.h5 --label-column 0 --delimiter ';' --header no --n-classes 5

printf 'f,animal\n1,dog\n2,cat\n3,ant\n' >text.csv
expect 0 "class 0 = ant" "$HAMNET" import csv text.csv --out text_labels.h5 --text-labels
grep -q "class 2 = dog" <<<"$last_output" || fail "label mapping not printed"
expect 1 "text.csv:2: column 2: label 'dog' is not a non-negative integer" \
  "$HAMNET" import csv text.csv --out nope.h5

printf '1,2,0\n3,4,1\n5,6\n' >ragged.csv
expect 1 "ragged.csv:3: 2 columns, expected 3 \(as on line 1\)" "$HAMNET" import csv ragged.csv --out bad.h5
printf '1,2,0\n3,abc,1\n' >nonnum.csv
expect 1 "nonnum.csv:2: column 2: 'abc' is not a number" "$HAMNET" import csv nonnum.csv --out bad.h5
printf 'a,b,c\n1,2,0\n' >hdr.csv
expect 1 "hdr.csv:1: column 1: 'a' is not a number" "$HAMNET" import csv hdr.csv --out bad.h5 --header no
: >empty.csv
expect 1 "empty.csv: no data rows" "$HAMNET" import csv empty.csv --out bad.h5
[[ ! -e bad.h5 && ! -e bad.h5.tmp ]] || fail "a failed import wrote its output"
# a failed import leaves an existing output untouched
cp good.h5 keep.h5
before=$(cksum <keep.h5)
expect 1 "ragged.csv:3" "$HAMNET" import csv ragged.csv --out keep.h5
[[ $(cksum <keep.h5) == "$before" ]] || fail "a failed import changed the existing output"

expect 2 "label column 9 is outside" "$HAMNET" import csv good.csv --out bad.h5 --label-column 9
expect 2 "--header needs yes, no or auto" "$HAMNET" import csv good.csv --out bad.h5 --header maybe
expect 2 "--delimiter needs one character" "$HAMNET" import csv good.csv --out bad.h5 --delimiter ',,'
expect 2 "--n-classes needs a whole number" "$HAMNET" import csv good.csv --out bad.h5 --n-classes 0
expect 2 "missing --out" "$HAMNET" import csv good.csv
expect 2 "import csv needs the input FILE" "$HAMNET" import csv --out bad.h5
expect 2 "missing the input format" "$HAMNET" import
expect 2 "unknown input format 'xml'" "$HAMNET" import xml a.xml --out bad.h5
expect 1 "cannot open missing.csv" "$HAMNET" import csv missing.csv --out bad.h5
[[ ! -e bad.h5 ]] || fail "a failed import wrote its output"

# --- import idx -----------------------------------------------------------------------------
# 2 images of 2 x 3 pixels, labels 1 and 0
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03\x00\x33\x66\x99\xcc\xff\xff\xcc\x99\x66\x33\x00' >img.idx
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x00' >lbl.idx
gzip -c img.idx >img.idx.gz
gzip -c lbl.idx >lbl.idx.gz
expect 0 "wrote mnist.h5: 2 samples, sample shape \[1, 2, 3\] \(6 features\), 2 classes, per class 1 1" \
  "$HAMNET" import idx img.idx lbl.idx --out mnist.h5
expect 0 "wrote mnistgz.h5: 2 samples, sample shape \[1, 2, 3\]" "$HAMNET" import idx img.idx.gz lbl.idx.gz --out mnistgz.h5
expect 0 "X +float32, min 0, max 1, mean 0.5" "$HAMNET" inspect mnistgz.h5
expect 1 "swapped" "$HAMNET" import idx lbl.idx img.idx --out bad.h5
head -c 20 img.idx >short.idx
expect 1 "short.idx: truncated" "$HAMNET" import idx short.idx lbl.idx --out bad.h5
printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x00\x01' >lbl3.idx
expect 1 "has 2 images but lbl3.idx has 3 labels" "$HAMNET" import idx img.idx lbl3.idx --out bad.h5
[[ ! -e bad.h5 ]] || fail "a failed import wrote its output"
expect 2 "import idx needs two files" "$HAMNET" import idx img.idx --out bad.h5
expect 2 "options of import csv" "$HAMNET" import idx img.idx lbl.idx --out bad.h5 --header yes

# --- several ranks: only rank 0 writes and prints ---------------------------------------------
# (Open MPI flags; skipped where mpiexec is another implementation or missing)
if command -v mpiexec >/dev/null 2>&1 && mpiexec --version 2>&1 | grep -q "Open MPI"; then
  out=$(mpiexec --allow-run-as-root --oversubscribe -n 2 "$HAMNET" datagen ellipses --out mpi --samples 10 2>&1) ||
    fail "datagen under mpiexec failed: $out"
  [[ $(grep -c "wrote mpi/train.h5" <<<"$out") == 1 ]] || fail "expected one summary from rank 0: $out"
  [[ -f mpi/train.h5 ]] || fail "datagen under mpiexec wrote nothing"
fi

echo "test_data_cli: all checks passed"
