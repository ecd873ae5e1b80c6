#!/usr/bin/env bash
# test_slurm_jobs.sh - jobs/ on a REAL Slurm: starts munged + slurmctld + slurmd (Debian's
# packages) as a private single-node cluster for this test only, runs the job scripts on it, and
# stops every daemon again (trap EXIT).
#
#   1. jobs/train.sbatch with 2 ranks (srun --mpi=pmix) runs to completion; so does the same job
#      with HAMNET_LAUNCHER=mpirun, with a bit-identical result;
#   2. the time-limit signal (`scancel --batch --signal=USR1`, what --signal=B:USR1@T sends):
#      hamnet checkpoints, the job requeues itself, resumes, and finishes with parameters and
#      optimiser state bit-identical to the uninterrupted run of 1.; with HAMNET_MAX_REQUEUES=0
#      the job does not requeue (exit 75) and a resubmission resumes; a rank that dies ends
#      the step (--kill-on-bad-exit) instead of leaving the other rank hanging;
#   3. jobs/sweep.sh: a job array of 3 depths x 2 architectures with %2, and its report job
#      (afterany); the report's tables have one row per cell / per run; the same sweep run with
#      scripts/sweep_local.sh gives bit-identical networks;
#   4. shellcheck passes on jobs/ and the sweep scripts.
# Skips (exit 77) only when Slurm / munge / shellcheck are missing and cannot be installed.
# Environment: HAMNET (the binary), HN_SOURCE_DIR (the repository). HN_KEEP_SLURM_TEST=1 keeps
# the scratch folder. Ports, cluster name and job ids are random, so two runs do not collide.
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"
src=${HN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=/usr/bin/python3
SKIP=77
t_start=$(date +%s)

say() { printf '[%3ds] %s\n' $(($(date +%s) - t_start)) "$*"; }

# --- 0. dependencies: install them if we can, skip if we cannot ------------------------------
tools=(munged slurmctld slurmd sbatch scontrol scancel squeue sinfo srun shellcheck setpriv)
missing_tools() {
  local t
  for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 || echo "$t"; done
}
export PATH=$PATH:/usr/sbin:/sbin
if [ -n "$(missing_tools)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Slurm, munge and shellcheck (scripts/setup.sh --deps-only --test-deps)"
    "$src/scripts/setup.sh" --deps-only --test-deps >/dev/null 2>&1 || true
  fi
  m=$(missing_tools | tr '\n' ' ')
  if [ -n "$m" ]; then
    echo "SKIP: Slurm test needs $m and they cannot be installed here (needs root and Debian's apt: scripts/setup.sh --test-deps)"
    exit $SKIP
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: the private Slurm of this test runs munged as user munge and slurmd as root: run it as root"
  exit $SKIP
fi
id munge >/dev/null 2>&1 || { echo "SKIP: no 'munge' user (the munge package is broken or missing)"; exit $SKIP; }
if ! "$PY" -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
  echo "FAIL: $PY with h5py, numpy, matplotlib is needed (scripts/setup.sh installs them)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hn_slurm.XXXXXX")
chmod 755 "$work"
pids=() # daemons we started, stopped in reverse order

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$work"/log/*.log "$work"/*.out "$work"/sweep/logs/*.out; do
    [ -f "$f" ] || continue
    echo "----- tail of $f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -f "${SLURM_CONF}" ] && [ ${#pids[@]} -ge 2 ]; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null
      for _ in $(seq 1 60); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 1 50); do
      kill -0 "${pids[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "${pids[$i]}" 2>/dev/null
    wait "${pids[$i]}" 2>/dev/null
  done
  if [ "${HN_KEEP_SLURM_TEST:-0}" = 1 ] || [ $rc != 0 ]; then
    echo "scratch folder kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 4 (first, it is quick). shellcheck --------------------------------------------------------
say "shellcheck jobs/ scripts/sweep_local.sh tests/slurm/"
(cd "$src" && shellcheck -x jobs/*.sh jobs/*.sbatch jobs/site.env scripts/sweep_local.sh tests/slurm/*.sh) ||
  fail "shellcheck found problems (above)"

# --- the cluster ------------------------------------------------------------------------------
# free TCP port pair: nothing listens on p and p+1
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 100); do
  port=$((20000 + RANDOM % 40000))
  port_free "$port" && port_free $((port + 1)) && break
done
host=$(hostname -s)
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || ncpu=2 # two ranks need two CPUs; config_overrides lets slurmd accept it
mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
first_id=$((1000 + (RANDOM * 32768 + RANDOM) % 50000000))
cluster="hn$RANDOM"

mkdir -p "$work/munge" "$work/munge-run" "$work/state" "$work/spool" "$work/log" "$work/tmp"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$work/munge" "$work/munge-run"
chmod 700 "$work/munge"
chmod 600 "$work/munge/munge.key"
chmod 755 "$work/munge-run"
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
  --socket="$work/munge-run/munge.sock" --key-file="$work/munge/munge.key" \
  --log-file="$work/munge/munged.log" --pid-file="$work/munge-run/munged.pid" \
  --seed-file="$work/munge/munged.seed" >"$work/log/munged.log" 2>&1 &
pids+=($!)

cat >"$work/slurm.conf" <<EOF
# private single-node cluster of tests/slurm/test_slurm_jobs.sh
ClusterName=$cluster
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge-run/munge.sock,cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
FirstJobId=$first_id
SchedulerParameters=sched_min_interval=0,sched_interval=2,bf_interval=1
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
TmpFS=$work/tmp
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/slurm.conf
for _ in $(seq 1 50); do [ -S "$work/munge-run/munge.sock" ] && break; sleep 0.1; done
[ -S "$work/munge-run/munge.sock" ] || fail "munged did not start"
slurmctld -D -i -f "$SLURM_CONF" >"$work/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$work/log/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.2
done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not become idle: $(sinfo 2>&1)"
say "cluster $cluster up: ports $port/$((port + 1)), $ncpu CPUs, first job id $first_id"

# --- data, config, environment of the jobs ---------------------------------------------------
cd "$work"
"$HAMNET" datagen ellipses --out "$work/data" --samples 256 --val-samples 128 --seed 3 >/dev/null
cat >"$work/tiny.ini" <<EOF
[data]
train = $work/data/train.h5
val = $work/data/val.h5
[model]
arch = hamiltonian
width = 4
depth = 8
[train]
epochs = 6
batch_size = 32
lr = 0.05
[diagnostics]
every_epochs = 1
spectra = 0
EOF
export HAMNET_HOME=$src HAMNET_BIN=$HAMNET HAMNET_RUNS=$work/runs HAMNET_PYTHON=$PY
unset HAMNET_FAULT_CKPT HAMNET_MAX_REQUEUES HAMNET_SITE_ENV HAMNET_MODULES

job_state() { scontrol show job -o "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | head -n 1 | cut -d= -f2; }
job_field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# wait_job ID SECONDS: until the job has ended (a requeued job passes through PENDING again)
wait_job() {
  local id=$1 limit=$2 t0 st
  t0=$(date +%s)
  while :; do
    st=$(job_state "$id")
    case $st in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        return 0 ;;
    esac
    [ $(($(date +%s) - t0)) -lt "$limit" ] || fail "job $id still '$st' after ${limit}s"
    sleep 0.3
  done
}
wait_for_line() { # FILE REGEX SECONDS
  local t0
  t0=$(date +%s)
  until grep -qE -- "$2" "$1" 2>/dev/null; do
    [ $(($(date +%s) - t0)) -lt "$3" ] || fail "no /$2/ in $1 after $3 s"
    sleep 0.1
  done
}
newest_ckpt() { find "$1" -maxdepth 1 -name 'ckpt-*.h5' | sort | tail -n 1; }

# compare_ckpt A B: the same training state (every /model and /optimizer array bit for bit, the
# /progress attributes, and the history's validation columns; epoch seconds and the train
# loss/accuracy of an epoch split by a restart are allowed to differ)
compare_ckpt() {
  "$PY" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
bad = []
def arrays(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) and n.split("/")[0] in ("model", "optimizer") else None)
    return out
A, B = arrays(a), arrays(b)
if sorted(A) != sorted(B) or not A:
    bad.append("datasets differ: %s vs %s" % (sorted(A), sorted(B)))
for k in sorted(set(A) & set(B)):
    x, y = A[k][()], B[k][()]
    if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
        bad.append("%s differs (max |diff| %g)" % (k, float(np.max(np.abs(x.astype(float) - y.astype(float))))))
for g in ("optimizer", "progress"):
    pa, pb = dict(a[g].attrs), dict(b[g].attrs)
    if pa != pb:
        bad.append("/%s attributes differ: %s vs %s" % (g, pa, pb))
cols = str(a["progress/history"].attrs["columns"]).split(",")
keep = [cols.index(c) for c in ("epoch", "val_loss", "val_acc", "lr", "depth")]
ha, hb = a["progress/history"][()][:, keep], b["progress/history"][()][:, keep]
if ha.tobytes() != hb.tobytes():
    bad.append("history (epoch, val_loss, val_acc, lr, depth) differs:\n%s\n%s" % (ha, hb))
print("\n".join(bad) if bad else "identical: %d arrays" % len(A))
sys.exit(1 if bad else 0)
EOF
}

# --- 1. a training job with 2 ranks runs to completion ----------------------------------------
say "1. jobs/train.sbatch, 2 ranks"
id1=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=00:30:00 --output="$work/train-%j.out" \
  "$src/jobs/train.sbatch" "$work/tiny.ini")
wait_job "$id1" 120
log1=$work/train-$id1.out
[ "$(job_state "$id1")" = COMPLETED ] || fail "job $id1 ended $(job_state "$id1") (exit $(job_field "$id1" ExitCode))"
[ "$(job_field "$id1" ExitCode)" = 0:0 ] || fail "job $id1 exit code $(job_field "$id1" ExitCode)"
[ "$(job_field "$id1" Restarts)" = 0 ] || fail "job $id1 restarted without a signal"
grep -q "2 ranks x 1 thread" "$log1" || fail "job $id1 did not run 2 ranks x 1 thread: $(grep -m1 'hamnet 0' "$log1")"
grep -q -- "srun --mpi=pmix --kill-on-bad-exit=1 --ntasks=2 --cpus-per-task=1" "$log1" || fail "job $id1 did not start the ranks with srun --mpi=pmix --kill-on-bad-exit"
grep -q "finished: 6 epochs" "$log1" || fail "job $id1 did not finish 6 epochs"
run1=$HAMNET_RUNS/hamnet-train-$id1
ref=$(newest_ckpt "$run1")
[ -n "$ref" ] || fail "no checkpoint in the run folder $run1"
[ -f "$run1/diagnostics.h5" ] || say "   (no diagnostics.h5 in $run1: the diagnostics module writes none yet)"
say "   job $id1 COMPLETED; run folder $run1, final checkpoint $(basename "$ref")"

say "1b. the same job with HAMNET_LAUNCHER=mpirun (Open MPI's launcher inside the allocation)"
id1b=$(HAMNET_LAUNCHER=mpirun sbatch --parsable --ntasks=2 --time=00:30:00 --output="$work/train-%j.out" \
  "$src/jobs/train.sbatch" "$work/tiny.ini")
wait_job "$id1b" 120
[ "$(job_state "$id1b")" = COMPLETED ] || fail "mpirun job $id1b ended $(job_state "$id1b") (exit $(job_field "$id1b" ExitCode))"
grep -q "mpirun -np 2 --map-by slot:PE=1 --bind-to core" "$work/train-$id1b.out" || fail "job $id1b did not use mpirun"
grep -q "2 ranks x 1 thread" "$work/train-$id1b.out" || fail "mpirun job $id1b did not run 2 ranks x 1 thread"
out=$(compare_ckpt "$ref" "$(newest_ckpt "$HAMNET_RUNS/hamnet-train-$id1b")") || fail "mpirun run differs from the srun run: $out"
say "   job $id1b COMPLETED: $out (same as the srun job)"

# --- 2. time-limit signal -> checkpoint -> requeue -> resume -> identical result --------------
# A fault hook (hamnet/checkpoint.h) holds the first checkpoint write for 2 s, so the signal
# surely arrives while training is under way; it delays only the file rename, not the arithmetic.
say "2. USR1 to the batch shell (as --signal=B:USR1@T does): checkpoint, requeue, resume"
id2=$(HAMNET_FAULT_CKPT=pause_before_rename=2@1 sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=00:30:00 \
  --output="$work/train-%j.out" "$src/jobs/train.sbatch" "$work/tiny.ini")
log2=$work/train-$id2.out
wait_for_line "$log2" "HAMNET_FAULT_CKPT: pausing" 60
scancel --batch --signal=USR1 "$id2"
wait_job "$id2" 180
[ "$(job_state "$id2")" = COMPLETED ] || fail "job $id2 ended $(job_state "$id2") (exit $(job_field "$id2" ExitCode))"
[ "$(job_field "$id2" Restarts)" = 1 ] || fail "job $id2 restarts = $(job_field "$id2" Restarts), expected 1"
for pattern in "start 1 \(SLURM_RESTART_COUNT=0\)" "received SIGUSR1" "stop requested by (signal 10|SIGUSR1)" \
  "requeueing job $id2 \(restart 1 of at most" "start 2 \(SLURM_RESTART_COUNT=1\)" \
  "resuming from .*/ckpt-0*9\.h5" "finished: 6 epochs"; do
  grep -qE -- "$pattern" "$log2" || fail "job $id2's log (appended over both runs) lacks /$pattern/"
done
run2=$HAMNET_RUNS/hamnet-train-$id2
if ! grep -qE $'\trequeue 1/' "$run2/jobs.log" || [ "$(grep -c $'\tstart ' "$run2/jobs.log")" != 2 ]; then
  fail "run folder's jobs.log: $(cat "$run2/jobs.log")"
fi
out=$(compare_ckpt "$ref" "$(newest_ckpt "$run2")") ||
  fail "interrupted + resumed run differs from the uninterrupted one: $out"
say "   job $id2 requeued once, resumed from step 9, finished: $out (same as job $id1)"

say "2b. HAMNET_MAX_REQUEUES=0: no requeue (exit 75); resubmitting resumes"
id3=$(HAMNET_MAX_REQUEUES=0 HAMNET_FAULT_CKPT=pause_before_rename=2@1 sbatch --parsable --ntasks=2 \
  --time=00:30:00 --output="$work/train-%j.out" "$src/jobs/train.sbatch" "$work/tiny.ini" --run-dir "$work/runs/capped")
wait_for_line "$work/train-$id3.out" "HAMNET_FAULT_CKPT: pausing" 60
scancel --batch --signal=USR1 "$id3"
wait_job "$id3" 120
if [ "$(job_state "$id3")" != FAILED ] || [ "$(job_field "$id3" ExitCode)" != 75:0 ]; then
  fail "capped job $id3: $(job_state "$id3") exit $(job_field "$id3" ExitCode), expected FAILED 75:0"
fi
[ "$(job_field "$id3" Restarts)" = 0 ] || fail "capped job $id3 was requeued"
grep -q "HAMNET_MAX_REQUEUES=0): not requeueing" "$work/train-$id3.out" || fail "capped job's log does not say why it did not requeue"
# resubmitted with the wrapper (site settings, config checked before queueing, log next to the runs)
id4=$("$src/jobs/submit_train.sh" --ntasks=2 --time=00:30:00 "$work/tiny.ini" --run-dir "$work/runs/capped")
wait_job "$id4" 120
[ "$(job_state "$id4")" = COMPLETED ] || fail "resubmitted job $id4 ended $(job_state "$id4")"
grep -q "resuming from" "$HAMNET_RUNS/hamnet-train-$id4.out" || fail "resubmitted job $id4 did not resume"
out=$(compare_ckpt "$ref" "$(newest_ckpt "$work/runs/capped")") || fail "capped + resubmitted run differs: $out"
say "   job $id3 stopped with 75, job $id4 resumed it: $out"

say "2c. a rank that dies ends the step (--kill-on-bad-exit), no requeue"
id5=$(HAMNET_FAULT_CKPT=die_before_rename@1 sbatch --parsable --ntasks=2 --time=00:30:00 \
  --output="$work/train-%j.out" "$src/jobs/train.sbatch" "$work/tiny.ini" --run-dir "$work/runs/dies")
wait_job "$id5" 90
[ "$(job_state "$id5")" = FAILED ] || fail "job $id5 with a dying rank ended $(job_state "$id5"), expected FAILED"
[ "$(job_field "$id5" Restarts)" = 0 ] || fail "job $id5 with a dying rank was requeued"
grep -q "failed with exit code" "$work/train-$id5.out" || fail "job $id5's log does not report the failure"
say "   job $id5 FAILED at once (exit $(job_field "$id5" ExitCode)), not requeued"

# --- 3. a sweep array + report job, and the same sweep without Slurm ---------------------------
say "3. jobs/sweep.sh: 3 depths x 2 archs, %2, report job afterany"
sweep_args=("$work/tiny.ini" --depths "4 8 16" --archs "resnet,hamiltonian" --seeds 1 --noise "0.1 0.3"
  --target 0.8 --set train.epochs=3)
"$src/jobs/sweep.sh" "${sweep_args[@]}" --out "$work/sweep" --concurrent 2 --time 00:30:00 >"$work/sweep-submit.out" 2>&1 ||
  fail "jobs/sweep.sh failed: $(cat "$work/sweep-submit.out")"
# shellcheck source=/dev/null
. "$work/sweep/jobs.env"
if [ -z "${ARRAY_JOB:-}" ] || [ -z "${REPORT_JOB:-}" ]; then
  fail "jobs.env lacks the job ids: $(cat "$work/sweep/jobs.env")"
fi
dep=$(job_field "$REPORT_JOB" Dependency)
case $dep in afterany:"$ARRAY_JOB"* | "(null)") ;; *) fail "report job dependency '$dep', expected afterany:$ARRAY_JOB" ;; esac
throttle=$(scontrol show job -o "$ARRAY_JOB" | grep -oE 'ArrayTaskThrottle=[0-9]+' | head -n 1)
[ "$throttle" = ArrayTaskThrottle=2 ] || fail "array job $ARRAY_JOB: '$throttle', expected ArrayTaskThrottle=2"
wait_job "$REPORT_JOB" 240
[ "$(job_state "$REPORT_JOB")" = COMPLETED ] || fail "report job $REPORT_JOB ended $(job_state "$REPORT_JOB")"
n_done=$(scontrol show job -o "$ARRAY_JOB" | grep -c 'JobState=COMPLETED' || true)
[ "$n_done" = 6 ] || fail "$n_done of 6 array elements COMPLETED: $(scontrol show job -o "$ARRAY_JOB" | grep -oE 'JobId=[0-9]+ ArrayJobId=[0-9]+ ArrayTaskId=[0-9]+|JobState=[A-Z]+')"
rep=$work/sweep/report
for f in report.md summary.csv runs.csv accuracy_vs_depth.png gap_vs_depth.png accuracy_vs_noise.png; do
  [ -s "$rep/$f" ] || fail "report file $rep/$f missing or empty"
done
[ "$(wc -l <"$rep/summary.csv")" = 7 ] || fail "summary.csv has $(wc -l <"$rep/summary.csv") lines, expected 1 + 6"
[ "$(wc -l <"$rep/runs.csv")" = 7 ] || fail "runs.csv has $(wc -l <"$rep/runs.csv") lines, expected 1 + 6"
n_md=$(grep -cE '^\| (resnet|hamiltonian) \| (4|8|16) \| 1/1 \|' "$rep/report.md" || true)
[ "$n_md" = 6 ] || fail "report.md's main table has $n_md finished rows, expected 6"
"$PY" - "$rep/runs.csv" "$rep/summary.csv" <<'EOF' || fail "report numbers do not match the checkpoints (above)"
import csv, sys, h5py
runs = list(csv.DictReader(open(sys.argv[1])))
summ = list(csv.DictReader(open(sys.argv[2])))
assert sorted((r["arch"], int(r["depth"])) for r in runs) == sorted((a, d) for a in ("hamiltonian", "resnet") for d in (4, 8, 16)), runs
for r in runs:
    assert r["status"] == "finished", r
    with h5py.File(r["checkpoint"], "r") as f:
        h = f["progress/history"][()]
        c = str(f["progress/history"].attrs["columns"]).split(",")
    va, ta = h[-1, c.index("val_acc")], h[-1, c.index("train_acc")]
    assert abs(float(r["val_acc"]) - va) < 1e-6 and abs(float(r["train_acc"]) - ta) < 1e-6, (r, h[-1])
    for k in ("acc_noise_0.1", "acc_noise_0.3"):
        assert 0 <= float(r[k]) <= 1, (k, r)
for s in summ:
    assert s["planned"] == "1" and s["finished"] == "1", s
    r = [x for x in runs if x["arch"] == s["arch"] and x["depth"] == s["depth"]][0]
    assert abs(float(s["val_acc_mean"]) - float(r["val_acc"])) < 1e-6, (s, r)
print("report numbers match the checkpoints")
EOF
say "   array $ARRAY_JOB: 6 elements COMPLETED; report job $REPORT_JOB: summary 6 rows, runs 6 rows, plots"

say "3b. the same sweep with scripts/sweep_local.sh (no Slurm), 2 at a time"
(unset SLURM_CONF && "$src/scripts/sweep_local.sh" "${sweep_args[@]}" --out "$work/sweep_local" --parallel 2 \
  --no-report >"$work/sweep-local.out" 2>&1) || fail "sweep_local.sh failed: $(tail -n 20 "$work/sweep-local.out")"
cmp -s "$work/sweep/plan.tsv" "$work/sweep_local/plan.tsv" || fail "local and Slurm sweeps planned different elements"
while IFS=$'\t' read -r index _ _ _ _ name; do
  [ "$index" = index ] && continue
  out=$(compare_ckpt "$(newest_ckpt "$work/sweep/runs/$name")" "$(newest_ckpt "$work/sweep_local/runs/$name")") ||
    fail "element $name: Slurm and local runs differ: $out"
done <"$work/sweep/plan.tsv"
say "   all 6 local elements identical to the Slurm ones"

say "PASS ($(($(date +%s) - t_start)) s)"
