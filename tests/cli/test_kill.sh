#!/usr/bin/env bash
# test_kill.sh - nothing is lost when training dies: SIGKILL at random moments (20 times on one
# rank, at least 5 of them inside a checkpoint write, held there by HAMNET_FAULT_CKPT=pause_*; and
# 4 times on 2 ranks), each time resumed; the run always finishes with parameters, optimiser
# state and steps.tsv bitwise equal to the uninterrupted run's, and no invalid checkpoint is ever
# in place or loaded. Write errors injected at every point of the checkpoint write
# (HAMNET_FAULT_CKPT=fail_*) and a full disk (a small tmpfs, when mount is permitted) stop
# training with a message that says what happened, and the previous checkpoint survives.
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir kill
export OMP_NUM_THREADS=1
RANDOM=${HN_KILL_SEED:-20240611}
"$HAMNET" datagen ellipses --out data --samples 1000 --val-samples 50 --seed 3 >/dev/null
# 50 steps per epoch of a few ms each, a checkpoint every 4 steps (~85 KB each).
cat >kill.ini <<EOF
[data]
train = $PWD/data/train.h5
val = $PWD/data/val.h5
[model]
arch = leapfrog
width = 8
depth = 64
final_time = 2
[train]
epochs = 12
batch_size = 20
optimizer = adam
lr = 0.01
seed = 7
[checkpoint]
every_steps = 4
keep = 2
[diagnostics]
every_epochs = 0
EOF
total_steps=600
mounted=""
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [[ -z $mounted ]] || umount "$mounted" 2>/dev/null || true
  cd /
  rm -rf "$work"
}
trap cleanup EXIT

# verify_all DIR: every ckpt-*.h5 and best.h5 in DIR reads back completely with h5py (all
# datasets, so every fletcher32 checksum). Prints the number of files checked.
verify_all() {
  "$HN_PY" - "$1" <<'EOF'
import glob, sys
import h5py
n = 0
for p in sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5")) + glob.glob(sys.argv[1] + "/best.h5"):
    with h5py.File(p, "r") as f:
        assert f.attrs["format"] == "hamnet-checkpoint", p
        f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        f["config"].attrs["text"]
    n += 1
print(n)
EOF
}

run_hamnet 1 train kill.ini --run-dir ref >ref.log 2>&1 || fail "reference run failed: $(cat ref.log)"
[[ $(tail -n 1 ref/steps.tsv | cut -f1) == "$total_steps" ]] || fail "reference: expected $total_steps steps"

# --- 20 SIGKILLs on one rank ---------------------------------------------------------------------
# Kinds, in turn: R = at a random moment after the start (start-up and resume included),
# T = a random moment after the first checkpoint of this run, W = inside a checkpoint write
# (paused at create / write (half the bytes written) / fsync / rename / dirsync of the N-th write).
kinds=(R W T R W T R W T R W T R W T R W T W W)
points=(create write fsync rename dirsync write rename)
kills=0 in_write=0 loaded=0 verified=0 campaigns=0 point_i=0
dir=k0
while ((kills < 20)); do
  kind=${kinds[$kills]}
  env_fault=()
  if [[ $kind == W ]]; then
    point=${points[$((point_i % ${#points[@]}))]}
    nth=$((1 + RANDOM % 3))
    env_fault=(HAMNET_FAULT_CKPT="pause_before_$point=30@$nth")
  fi
  env "${env_fault[@]}" "$HAMNET" train kill.ini --run-dir "$dir" >"$dir.log.$kills" 2>&1 &
  pid=$!
  bg_pids+=("$pid")
  case $kind in
    R) sleep "0.$((RANDOM % 9))$((RANDOM % 10))" ;;
    T) for ((i = 0; i < 600; i++)); do
         grep -q "checkpoint .*ckpt-" "$dir.log.$kills" 2>/dev/null && break
         kill -0 "$pid" 2>/dev/null || break
         sleep 0.02
       done
       sleep "0.0$((RANDOM % 10))" ;;
    W) for ((i = 0; i < 1500; i++)); do
         grep -q "HAMNET_FAULT_CKPT: pausing 30 s before $point" "$dir.log.$kills" 2>/dev/null && break
         kill -0 "$pid" 2>/dev/null || break
         sleep 0.02
       done ;;
  esac
  kill -9 "$pid" 2>/dev/null || true
  rc=0
  { wait "$pid"; } 2>/dev/null || rc=$?
  log=$dir.log.$kills
  if grep -q "skipping corrupt checkpoint" "$log"; then fail "a corrupt checkpoint was in place: $(cat "$log")"; fi
  if [[ $rc == 0 ]]; then
    # finished before the kill: compare, then start a new campaign in a fresh folder
    same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt "$dir")" || fail "$dir: final checkpoint differs after $kills kills"
    same_steps ref/steps.tsv "$dir/steps.tsv" || fail "$dir: steps.tsv differs"
    campaigns=$((campaigns + 1))
    dir=k$campaigns
    continue
  fi
  [[ $rc == 137 ]] || fail "kill $kills ($kind): exit code $rc, expected 137 (SIGKILL): $(cat "$log")"
  if [[ $kind == W ]]; then
    grep -q "pausing 30 s before $point" "$log" || fail "kill $kills: the write was not reached: $(cat "$log")"
    in_write=$((in_write + 1))
    point_i=$((point_i + 1))
  fi
  kills=$((kills + 1))
  # what the killed run resumed from, if anything, must verify (when it has not been pruned since)
  from=$(sed -nE 's/.*resuming from ([^:]+): epoch.*/\1/p' "$log")
  if [[ -n $from && -f $from ]]; then
    "$HAMNET" inspect "$from" >/dev/null 2>&1 || fail "kill $kills: the run resumed from $from, which does not verify"
    loaded=$((loaded + 1))
  fi
  n=$(verify_all "$dir") || fail "kill $kills ($kind): a checkpoint in place does not read back"
  verified=$((verified + n))
  printf 'kill %2d (%s%s): newest %s\n' "$kills" "$kind" "${env_fault[*]:+ ${env_fault[*]}}" \
    "$(basename "$(newest_ckpt "$dir")" 2>/dev/null || echo none)"
done
out=$("$HAMNET" train kill.ini --run-dir "$dir" 2>&1) || fail "final resume failed: $out"
! grep -q "skipping corrupt checkpoint" <<<"$out" || fail "final resume skipped a corrupt checkpoint: $out"
same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt "$dir")" || fail "$dir: final checkpoint differs from the reference"
same_ckpt ref/best.h5 "$dir/best.h5" || fail "$dir: best.h5 differs from the reference"
same_steps ref/steps.tsv "$dir/steps.tsv" || fail "$dir: steps.tsv differs from the reference"
campaigns=$((campaigns + 1))
echo "SIGKILL x $kills (1 rank; $in_write inside a checkpoint write): $campaigns run(s) finished bitwise equal" \
  "to the uninterrupted one; $loaded resumed-from checkpoints and $verified checkpoint files in place verified"

# --- SIGKILL on 2 ranks: a random rank, or mpiexec itself ------------------------------------------
if hn_have_mpi; then
  # 2000 steps; each of the four runs is killed within 0.2 s of its first checkpoint, so the
  # campaign never reaches the end, however fast the kernels get.
  long=(--set train.epochs=40)
  run_hamnet 2 train kill.ini --run-dir ref2 "${long[@]}" >ref2.log 2>&1 || fail "2-rank reference failed: $(cat ref2.log)"
  dir=m0
  mkills=0
  while ((mkills < 4)); do
    mpiexec -n 2 --oversubscribe --bind-to none "$HAMNET" train kill.ini --run-dir "$dir" "${long[@]}" >"$dir.log" 2>&1 &
    pid=$!
    bg_pids+=("$pid")
    # kill at a random moment once this run has made progress (its first checkpoint line): a
    # fixed delay would find the run finished on a fast machine, or not yet started on a slow one
    for ((i = 0; i < 1500; i++)); do
      grep -q "checkpoint .*ckpt-" "$dir.log" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.02
    done
    sleep "0.$((RANDOM % 2))$((RANDOM % 10))"
    target=$pid
    if ((mkills % 2 == 0)); then
      for p in $(pgrep -P "$pid" 2>/dev/null); do target=$p; done # a rank
    fi
    kill -9 "$target" 2>/dev/null || true
    rc=0
    { wait "$pid"; } 2>/dev/null || rc=$?
    for p in $(pgrep -f "$HAMNET train kill.ini --run-dir $dir" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ! grep -q "skipping corrupt checkpoint" "$dir.log" || fail "2 ranks: a corrupt checkpoint was in place"
    [[ $rc != 0 ]] || fail "2 ranks: finished before the kill (make the run longer)"
    mkills=$((mkills + 1))
    verify_all "$dir" >/dev/null || fail "2 ranks, kill $mkills: a checkpoint in place does not read back"
  done
  out=$(run_hamnet 2 train kill.ini --run-dir "$dir" "${long[@]}" 2>&1) || fail "2 ranks: final resume failed: $out"
  same_ckpt "$(newest_ckpt ref2)" "$(newest_ckpt "$dir")" || fail "2 ranks: final checkpoint differs"
  same_steps ref2/steps.tsv "$dir/steps.tsv" || fail "2 ranks: steps.tsv differs"
  echo "SIGKILL x $mkills (2 ranks: a rank or mpiexec): finished bitwise equal to the uninterrupted run"
else
  echo "SKIP (2 ranks): no Open MPI mpiexec"
fi

# --- injected write errors: at every point of the write ---------------------------------------------
# A run stopped at step 20 (checkpoints 16, 20); the resumed run's 2nd write (step 28) fails.
run_hamnet 1 train kill.ini --run-dir base --set train.max_steps=20 >/dev/null 2>&1 || true
[[ $(basename "$(newest_ckpt base)") == ckpt-0000000020.h5 ]] || fail "base run: no checkpoint at 20"
faults=0
for point in create write fsync rename dirsync; do
  rm -rf "f_$point"
  cp -r base "f_$point"
  rc=0
  out=$(HAMNET_FAULT_CKPT="fail_$point@2" "$HAMNET" train kill.ini --run-dir "f_$point" 2>&1) || rc=$?
  [[ $rc == 1 ]] || fail "fail_$point: exit code $rc, expected 1: $out"
  grep -q "injected by HAMNET_FAULT_CKPT=fail_$point@2" <<<"$out" || fail "fail_$point: message: $out"
  ls "f_$point"/*.tmp >/dev/null 2>&1 && fail "fail_$point: a .tmp file was left"
  if [[ $point == dirsync ]]; then
    grep -q "(it is in place, but may not survive a crash of the machine): .*dirsync failed" <<<"$out" ||
      fail "dirsync: $out"
    want=ckpt-0000000028.h5
  else
    grep -q "the previous checkpoint is kept" <<<"$out" || fail "fail_$point: message lacks 'previous kept': $out"
    [[ ! -e f_$point/ckpt-0000000028.h5 ]] || fail "fail_$point: the failed checkpoint is in place"
    want=ckpt-0000000024.h5
  fi
  [[ $(basename "$(newest_ckpt "f_$point")") == "$want" ]] || fail "fail_$point: newest is not $want"
  faults=$((faults + 1))
  out=$("$HAMNET" train kill.ini --run-dir "f_$point" 2>&1) || fail "fail_$point: resume failed: $out"
  grep -q "resuming from f_$point/$want" <<<"$out" || fail "fail_$point: did not resume from $want: $out"
  same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt "f_$point")" || fail "fail_$point: final checkpoint differs"
  same_steps ref/steps.tsv "f_$point/steps.tsv" || fail "fail_$point: steps.tsv differs"
  echo "fail_$point: exit 1, $want is the newest checkpoint, exact resume"
done

# the checkpoint after a stop signal fails: exit 1 (not 75), the previous checkpoint survives
rm -rf f_stop
cp -r base f_stop
# (no other checkpoint may come first: no step / epoch / best cadence)
HAMNET_FAULT_CKPT=fail_write@1 "$HAMNET" train kill.ini --run-dir f_stop --set checkpoint.every_steps=0 \
  --set checkpoint.every_epochs=0 --set checkpoint.best=0 >f_stop.log 2>&1 &
pid=$!
bg_pids+=("$pid")
for ((i = 0; i < 500; i++)); do grep -q "resuming from" f_stop.log && break; sleep 0.02; done
kill -s USR1 "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc == 1 ]] || fail "failed stop checkpoint: exit code $rc, expected 1: $(cat f_stop.log)"
grep -q "stop requested by SIGUSR1" f_stop.log || fail "failed stop checkpoint: $(cat f_stop.log)"
grep -q "injected by HAMNET_FAULT_CKPT=fail_write@1" f_stop.log || fail "failed stop checkpoint: $(cat f_stop.log)"
[[ $(basename "$(newest_ckpt f_stop)") == ckpt-0000000020.h5 ]] || fail "failed stop checkpoint: 20 not kept"
faults=$((faults + 1))
echo "SIGUSR1, then the stop checkpoint's write fails: exit 1 with the reason, ckpt-0000000020.h5 kept"

# --- full disk: the run folder on a tmpfs too small for the next checkpoint -------------------------
mkdir -p full
if mount -t tmpfs -o size=300k tmpfs full 2>/dev/null; then
  mounted=$PWD/full
  rc=0
  out=$("$HAMNET" train kill.ini --run-dir full/run 2>&1) || rc=$?
  [[ $rc == 1 ]] || fail "full disk: exit code $rc, expected 1: $out"
  grep -qE "No space left on device" <<<"$out" || fail "full disk: message: $out"
  last_ok=$(newest_ckpt full/run)
  [[ -n $last_ok ]] || fail "full disk: no checkpoint survived"
  ! ls full/run/*.tmp >/dev/null 2>&1 || fail "full disk: a .tmp file was left"
  "$HAMNET" inspect "$last_ok" >/dev/null || fail "full disk: the surviving checkpoint does not verify"
  msg=$(grep -m1 "error" <<<"$out")
  mount -o remount,size=4m "$mounted" || fail "cannot grow the tmpfs"
  out=$("$HAMNET" train kill.ini --run-dir full/run 2>&1) || fail "full disk: resume failed: $out"
  same_ckpt "$(newest_ckpt ref)" "$(newest_ckpt full/run)" || fail "full disk: final checkpoint differs"
  same_steps ref/steps.tsv full/run/steps.tsv || fail "full disk: steps.tsv differs"
  umount "$mounted"
  mounted=""
  faults=$((faults + 1))
  echo "full disk (300 KiB tmpfs): $msg; $(basename "$last_ok") survived; exact resume after growing it"
else
  echo "SKIP (full disk): mount -t tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)"
fi

echo "test_kill: $kills + ${mkills:-0} SIGKILLs, $faults injected or real write failures; all checks passed"
