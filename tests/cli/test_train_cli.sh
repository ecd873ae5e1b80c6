#!/usr/bin/env bash
# test_train_cli.sh - `hamnet train` and `hamnet eval` end to end: usage and config errors
# (exit 2, file:line:key in the message, nothing written), a tiny training run and its run
# folder, eval --json, and eval against an independent numpy forward pass over the checkpoint
# schema for every architecture and opening (scripts/reference_forward.py).
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
: "${HN_SOURCE_DIR:?set HN_SOURCE_DIR to the source tree}"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_train.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=1

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
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

"$HAMNET" datagen ellipses --out data --samples 240 --val-samples 120 >/dev/null
cat >tiny.ini <<'INI'
[data]
train = data/train.h5
val = data/val.h5
[model]
arch = hamiltonian
width = 4
depth = 8
final_time = 2
[train]
epochs = 3
batch_size = 32
[checkpoint]
every_epochs = 1
keep = 2
INI

# --- usage and config errors: exit 2, clear message, nothing written --------------------------
expect 0 "--run-dir" "$HAMNET" train --help
for opt in --set --threads --print-config --list-keys; do
  grep -q -- "$opt" <<<"$last_output" || fail "train --help does not mention $opt"
done
expect 2 "missing CONFIG" "$HAMNET" train
expect 2 "unknown option '--bogus'" "$HAMNET" train tiny.ini --bogus
expect 2 "--set needs" "$HAMNET" train tiny.ini --set
expect 2 "model.depht" "$HAMNET" train tiny.ini --set model.depht=3
grep -q "depth" <<<"$last_output" || fail "no suggestion for a misspelt key: $last_output"
expect 2 "arch" "$HAMNET" train tiny.ini --set model.arch=transformer
grep -q "hamiltonian" <<<"$last_output" || fail "allowed values not listed: $last_output"
printf '[model]\nwidth = 4\ndepth = -3\n' >bad.ini
expect 2 "bad.ini:3" "$HAMNET" train bad.ini --run-dir never
grep -q "depth" <<<"$last_output" || fail "message does not name the key"
[[ ! -e never ]] || fail "a refused config created its run folder"
printf '[model]\nwidth = 4\n' >nodata.ini
expect 2 "train" "$HAMNET" train nodata.ini --run-dir never
[[ ! -e never ]] || fail "missing [data] train created the run folder"
expect 1 "missing.h5" "$HAMNET" train tiny.ini --set data.train=missing.h5 --run-dir r-missing
expect 2 "pad needs width >= " "$HAMNET" train tiny.ini --set model.width=1 --run-dir r-narrow
expect 0 "depth = 8" "$HAMNET" train tiny.ini --print-config
for cfg in "$HN_SOURCE_DIR"/jobs/*.ini; do # every shipped example config is valid
  "$HAMNET" train "$cfg" --print-config >/dev/null || fail "shipped config $cfg does not parse"
done
expect 0 "\\| \`\\[train\\]\` \\| \`lr\` \\|" "$HAMNET" train --list-keys

# --- a tiny run: banner, progress, run folder ---------------------------------------------------
expect 0 "finished: 3 epochs" "$HAMNET" train tiny.ini --run-dir run1
for pattern in "precision (float|double)" "1 rank x 1 thread" "model: hamiltonian" "epoch +3/3 depth 8 \\|"; do
  grep -qE -- "$pattern" <<<"$last_output" || fail "train output lacks /$pattern/: $last_output"
done
[[ -f run1/best.h5 && -f run1/steps.tsv ]] || fail "run folder incomplete: $(ls run1)"
[[ $(ls run1/ckpt-*.h5 | wc -l) == 2 ]] || fail "checkpoint.keep = 2 not honoured: $(ls run1)"
[[ $(($(wc -l <run1/steps.tsv) - 1)) == 24 ]] || fail "steps.tsv should have 3 epochs x 8 steps"
# running it again finds the finished run and does nothing more
expect 0 "resuming from" "$HAMNET" train tiny.ini --run-dir run1
# a different network in the same folder is refused, naming what differs
expect 2 "model.depth" "$HAMNET" train tiny.ini --run-dir run1 --set model.depth=16 --set train.epochs=4

# --- eval -------------------------------------------------------------------------------------
expect 0 "--predictions" "$HAMNET" eval --help
expect 2 "--checkpoint and --data are required" "$HAMNET" eval --data data/val.h5
expect 2 "--noise needs" "$HAMNET" eval --checkpoint run1/best.h5 --data data/val.h5 --noise -1
expect 1 "nothere.h5" "$HAMNET" eval --checkpoint nothere.h5 --data data/val.h5
expect 0 '"accuracy"' "$HAMNET" eval --checkpoint run1/best.h5 --data data/val.h5 --json
[[ $(wc -l <<<"$last_output") == 1 ]] || fail "eval --json printed more than the object: $last_output"
grep -q '"samples": 120' <<<"$last_output" || fail "eval --json samples: $last_output"
expect 0 "accuracy" "$HAMNET" eval --checkpoint run1/best.h5 --data data/val.h5 --noise 0.5 --seed 2
expect 0 "accuracy" "$HAMNET" eval --checkpoint run1/best.h5 --data data/val.h5 --predictions pred.h5
[[ -f pred.h5 ]] || fail "no predictions file"
expect 0 "checkpoint" "$HAMNET" inspect run1/best.h5

# --- the checkpoint schema is a contract: a numpy forward pass gives the same loss ----------
if /usr/bin/python3 -c "import h5py, numpy" 2>/dev/null; then
  for arch in resnet antisym hamiltonian leapfrog; do
    for opening in pad dense; do
      for act in tanh relu; do
        run="run-$arch-$opening-$act"
        "$HAMNET" train tiny.ini --run-dir "$run" --quiet --set model.arch=$arch --set model.opening=$opening \
          --set model.activation=$act --set train.epochs=2 --set model.gamma=0.05 >/dev/null
        ours=$("$HAMNET" eval --checkpoint "$run/best.h5" --data data/val.h5 --json)
        theirs=$(/usr/bin/python3 "$HN_SOURCE_DIR/scripts/reference_forward.py" "$run/best.h5" data/val.h5 --json)
        /usr/bin/python3 - "$ours" "$theirs" "$arch/$opening/$act" <<'PY' || fail "eval differs from numpy"
import json, sys
a, b, what = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rel = abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-12)
print(f"{what:28s} hamnet loss {a['loss']:.9f}  numpy {b['loss']:.9f}  rel. diff {rel:.1e}")
assert rel < 1e-5, f"{what}: relative difference {rel}"
assert abs(a["accuracy"] - b["accuracy"]) <= 1.0 / a["samples"] + 1e-12, (a, b)
PY
      done
    done
  done
else
  echo "SKIPPED numpy comparison: /usr/bin/python3 with h5py and numpy is not installed"
fi
# the README's configuration table is the output of --list-keys (documentation that cannot drift)
if [[ -n ${HN_SOURCE_DIR:-} && -f $HN_SOURCE_DIR/README.md ]]; then
  readme_table=$(sed -n '/^| Section | Key | Default/,/^$/p' "$HN_SOURCE_DIR/README.md" | sed '/^$/d')
  diff <("$HAMNET" train --list-keys) <(printf '%s\n' "$readme_table") >readme_keys.diff ||
    fail "README.md's configuration table differs from 'hamnet train --list-keys' (paste its output into the README): $(cat readme_keys.diff)"
fi
echo "test_train_cli: all checks passed"
