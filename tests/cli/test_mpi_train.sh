#!/usr/bin/env bash
# test_mpi_train.sh - data-parallel training end to end (issue 5): results independent of the
# rank and thread count, sharded evaluation, resume on another rank count, and cross-rank
# consistency checks.
#
#   1. P = 1, 2, 4 ranks (oversubscribed) and 2 ranks x 2 threads, the same global batch:
#      the loss of every step (steps.tsv) agrees to 1e-10 (double build) / 1e-4 (float) over
#      55 steps, and the final training and validation accuracies are equal. The data set and
#      batch are chosen so that nothing divides evenly: 902 samples in batches of 90 (the last
#      batch of each epoch has 2 samples, so 2 of 4 ranks get none), 333 validation samples.
#   2. `hamnet eval` of the same checkpoint on 1, 2 and 4 ranks: the same loss and accuracy.
#   3. Train 23 steps on 2 ranks (stops inside an epoch), resume on 1 rank and on 4 ranks x 2
#      threads: the same trajectory as the uninterrupted run.
#   4. An MPMD launch whose ranks got different --set values fails on every rank with a clear
#      message (no hang); so does one where only one rank's config is invalid.
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/hn_cli_mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1 HAMNET_EXIT_DEADLINE=5
MPIRUN=(mpirun --oversubscribe --bind-to none)

precision=$("$HAMNET" --version | grep -oE '(float|double) precision' | cut -d' ' -f1)
case "$precision" in
  double) rtol=1e-10 ;;
  float) rtol=1e-4 ;;
  *) fail "cannot tell the build precision from: $("$HAMNET" --version)" ;;
esac
echo "precision $precision: relative tolerance $rtol"

"$HAMNET" datagen peaks --out data --samples 902 --val-samples 333 --seed 4 >/dev/null
cat >c.ini <<'EOF'
[data]
train = data/train.h5
val = data/val.h5
[model]
arch = hamiltonian
width = 12
depth = 8
final_time = 2
activation = tanh
opening = dense
[train]
epochs = 5
batch_size = 90
optimizer = adam
lr = 0.01
seed = 7
[checkpoint]
keep = 2
best = 1
[diagnostics]
every_epochs = 0
[parallel]
bucket_kb = 4
EOF

# train NAME RANKS THREADS [extra hamnet train options]: output in NAME.log, run folder NAME
train() {
  local name=$1 np=$2 threads=$3
  shift 3
  local rc=0
  OMP_NUM_THREADS=$threads timeout 300 "${MPIRUN[@]}" -np "$np" "$HAMNET" train c.ini --run-dir "$name" \
    --threads "$threads" "$@" >"$name.log" 2>&1 || rc=$?
  echo "$rc"
}

# compare A B: every step's loss within rtol, the same number of steps (>= 50)
compare_steps() {
  awk -F'\t' -v rtol="$rtol" -v a="$1" -v b="$2" '
    FNR == 1 { next }
    NR == FNR { loss[$1] = $5; acc[$1] = $6; n++; next }
    { m++
      if (!($1 in loss)) { printf "step %s missing in %s\n", $1, a; bad = 1; next }
      d = $5 - loss[$1]; if (d < 0) d = -d
      s = loss[$1] < 0 ? -loss[$1] : loss[$1]
      if (d / s > worst) worst = d / s
      if (d > rtol * s) { printf "step %s: loss %s vs %s\n", $1, loss[$1], $5; bad = 1 } }
    END { printf "%s vs %s: %d / %d steps, worst relative difference %.3g\n", a, b, n, m, worst
          if (n != m || n < 50) { print "different or too few steps"; bad = 1 }
          exit bad }' "$1/steps.tsv" "$2/steps.tsv"
}

final_line() { grep "finished:" "$1.log" | sed -E 's/.*\| train loss [0-9.]+ (acc [0-9.]+%) \| val loss [0-9.]+ (acc [0-9.]+%).*/\1 \2/'; }

# --- 1. the same trajectory on 1, 2, 4 ranks and 2 ranks x 2 threads -----------------------------
# (the node-shared exchange engine, hamnet's default here; p2mpi: the MPI_Iallreduce engine; p4n2: 4
# ranks as 2 "nodes" of 2, so that the shared engine also allreduces across nodes)
for cfg in "p1 1 1" "p2 2 1" "p4 4 1" "p2t2 2 2" "p2mpi 2 1 --set parallel.exchange=mpi"; do
  set -- $cfg
  rc=$(train "$@")
  [[ $rc == 0 ]] || fail "training on $2 ranks x $3 threads ($1) exited $rc:
$(tail -20 "$1.log")"
done
rc=$(HAMNET_EXCHANGE_NODE_SIZE=2 train p4n2 4 1)
[[ $rc == 0 ]] || fail "training on 4 ranks as 2 nodes exited $rc:
$(tail -20 p4n2.log)"
grep -q "4 ranks x 1 thread" p4.log || fail "banner does not show 4 ranks: $(head -3 p4.log)"
grep -qE "gradient exchange: [0-9]+ buckets? of 4 KiB, shared engine, overlap on: waited" p2.log ||
  fail "no exchange summary naming the shared engine in the 2-rank log"
grep -qE "gradient exchange: [0-9]+ buckets? of 4 KiB, mpi engine, overlap on: waited" p2mpi.log ||
  fail "no exchange summary naming the MPI engine in the p2mpi log"
grep -q "gradient exchange: node-shared buffers (2 ranks per node x 2 nodes)" p4n2.log ||
  fail "4 ranks as 2 nodes did not use the shared engine across nodes: $(grep 'gradient exchange' p4n2.log)"
grep -qE "epoch 1: waited [0-9.]+ s for the gradient exchange" p2.log || fail "no per-epoch exchange line"
for run in p2 p4 p2t2 p2mpi p4n2; do
  compare_steps p1 "$run" || fail "the loss trajectory on $run differs from one rank"
  [[ "$(final_line p1)" == "$(final_line "$run")" ]] ||
    fail "final accuracies differ: p1 '$(final_line p1)' vs $run '$(final_line "$run")'"
done
echo "final accuracies (train, val): $(final_line p1) on 1, 2, 4 ranks, 2 ranks x 2 threads, the MPI engine and 2 nodes"

# --- 2. sharded evaluation ----------------------------------------------------------------------
for np in 1 2 4; do
  timeout 120 "${MPIRUN[@]}" -np $np "$HAMNET" eval --checkpoint p1/best.h5 --data data/val.h5 --json \
    >"eval$np.json" 2>"eval$np.err" || fail "eval on $np ranks failed: $(cat "eval$np.err")"
done
/usr/bin/python3 - <<'EOF' || fail "evaluation differs between rank counts"
import json
r = [json.load(open(f"eval{p}.json")) for p in (1, 2, 4)]
for p, x in zip((2, 4), r[1:]):
    assert x["ranks"] == p, x
    assert x["correct"] == r[0]["correct"] and x["samples"] == r[0]["samples"] == 333, (x, r[0])
    assert abs(x["loss"] - r[0]["loss"]) <= 1e-12 * abs(r[0]["loss"]), (x["loss"], r[0]["loss"])
print("eval on 1, 2, 4 ranks: loss %.15g, accuracy %.6f" % (r[0]["loss"], r[0]["accuracy"]))
EOF

# --- 3. resume on another number of ranks / threads ----------------------------------------------
for to in "1 1" "4 2"; do
  set -- $to
  name=resume_to_$1x$2
  rc=$(train "$name" 2 1 --set train.max_steps=23)
  [[ $rc == 75 ]] || fail "the 23-step run exited $rc, expected 75 (stopped, resume me): $(tail -5 "$name.log")"
  mv "$name.log" "$name.first.log"
  rc=$(train "$name" "$1" "$2")
  [[ $rc == 0 ]] || fail "resuming on $1 ranks x $2 threads exited $rc: $(tail -20 "$name.log")"
  grep -q "resuming from" "$name.log" || fail "$name did not resume: $(head -20 "$name.log")"
  compare_steps p1 "$name" || fail "resumed on $1 ranks x $2 threads: trajectory differs"
  [[ "$(final_line p1)" == "$(final_line "$name")" ]] || fail "resumed run: final accuracies differ"
done

# --- 4. inconsistent ranks fail together, quickly -------------------------------------------------
start=$SECONDS
rc=0
timeout 120 mpirun --oversubscribe --bind-to none -np 1 "$HAMNET" train c.ini --run-dir mm --set train.lr=0.1 : \
  -np 1 "$HAMNET" train c.ini --run-dir mm --set train.lr=0.2 >mm.log 2>&1 || rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "MPMD with different --set values exited $rc: $(cat mm.log)"
for r in 0 1; do
  grep -q "error \[rank $r\]: the configuration differs between rank 0 and rank 1" mm.log ||
    fail "rank $r does not report the configuration mismatch: $(cat mm.log)"
done
(( SECONDS - start < 60 )) || fail "the mismatch took $((SECONDS - start)) s to end the job"

rc=0
timeout 120 mpirun --oversubscribe --bind-to none -np 1 "$HAMNET" train c.ini --run-dir mm2 : \
  -np 1 "$HAMNET" train c.ini --run-dir mm2 --set train.lr=-1 >mm2.log 2>&1 || rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "MPMD with one invalid config exited $rc (124 = hang): $(cat mm2.log)"
grep -q "aborting the whole job" mm2.log || fail "the failing rank did not abort the job: $(cat mm2.log)"

rc=0
timeout 120 mpirun --oversubscribe --bind-to none -np 1 "$HAMNET" eval --checkpoint p1/best.h5 --data data/val.h5 : \
  -np 1 "$HAMNET" eval --checkpoint p1/best.h5 --data data/train.h5 >mm3.log 2>&1 || rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "eval with different --data per rank exited $rc: $(cat mm3.log)"
grep -q "the data file name differs between rank 0 and rank 1" mm3.log || fail "eval mismatch message: $(cat mm3.log)"

# --- 5. benchmark mode: the exchange cycle, set on one rank only, is agreed by both ------------
rc=0
timeout 120 mpirun --oversubscribe --bind-to none -np 1 env HAMNET_BENCH_EXCHANGE_CYCLE=1 "$HAMNET" train c.ini \
  --run-dir cyc --set train.epochs=1 --set train.kernel=wide : \
  -np 1 "$HAMNET" train c.ini --run-dir cyc --set train.epochs=1 --set train.kernel=wide >cyc.log 2>&1 || rc=$?
[[ $rc == 0 ]] || fail "exchange cycle run exited $rc: $(cat cyc.log)"
# 902 samples in batches of 90: steps 1..11, the first left out; step s runs mode (s / 3) % 3 and
# the first step of each block of 3 is not counted: mode 0 steps 2, 10, 11; mode 1 4, 5; mode 2 7, 8
grep -qE "exchange cycle \(HAMNET_BENCH_EXCHANGE_CYCLE, medians of 3 / 2 / 2 steps, blocks of 3, the first of each left out\): overlapped [0-9.]+ ms, not overlapped [0-9.]+ ms, no exchange [0-9.]+ ms" cyc.log ||
  fail "no exchange cycle report: $(cat cyc.log)"
echo "test_mpi_train: all checks passed"
