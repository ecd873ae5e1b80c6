#!/usr/bin/env bash
# test_signals.sh - SIGUSR1 / SIGTERM / SIGINT: the step under way is finished, a checkpoint is
# written, exit code 75, and resuming ends bitwise where the uninterrupted run ends; all ranks
# stop after the same step when only one rank is signalled; further signals during the
# checkpoint write change nothing; the SIGTERM deadline (HAMNET_TERM_DEADLINE) skips a
# checkpoint that cannot finish in time and a watchdog ends a rank that is blocked (its peer
# stopped or dead) instead of hanging. Prints the measured stop latencies.
set -euo pipefail
# shellcheck source=tests/cli/restart_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_lib.sh"
hn_workdir signals
export OMP_NUM_THREADS=1
"$HAMNET" datagen ellipses --out data --samples 1200 --val-samples 60 --seed 5 >/dev/null
# 24 steps per epoch, 10 epochs, of a net deep enough for steps of some ms; checkpoints every 6 steps.
cat >med.ini <<EOF
[data]
train = $PWD/data/train.h5
val = $PWD/data/val.h5
[model]
arch = hamiltonian
width = 16
depth = 128
final_time = 2
[train]
epochs = 10
batch_size = 50
lr = 0.02
seed = 3
[checkpoint]
every_steps = 6
keep = 2
best = 0
[diagnostics]
every_epochs = 0
EOF
total_steps=240
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NP DIR [env...]: hamnet train med.ini in the background; $pid, output in DIR.log.
start() {
  local np=$1 dir=$2
  shift 2
  if [[ $np == 1 ]]; then
    env "$@" "$HAMNET" train med.ini --run-dir "$dir" >"$dir.log" 2>&1 &
  else
    env "$@" mpiexec -n "$np" --oversubscribe --bind-to none "$HAMNET" train med.ini --run-dir "$dir" \
      >"$dir.log" 2>&1 &
  fi
  pid=$!
  bg_pids+=("$pid")
}

# wait_for FILE REGEX [SECONDS]: until FILE matches REGEX.
wait_for() {
  local file=$1 pattern=$2 limit=${3:-60} i
  for ((i = 0; i < limit * 20; i++)); do
    grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { grep -qE -- "$pattern" "$file" 2>/dev/null && return 0; fail "the run ended before /$pattern/ appeared in $file: $(cat "$file")"; }
    sleep 0.05
  done
  fail "timed out waiting for /$pattern/ in $file: $(cat "$file")"
}

# finish PID: wait for it; $rc, $t_end.
finish() {
  rc=0
  wait "$1" || rc=$?
  t_end=$(now)
}

# resume_and_compare DIR REFERENCE [NP]: finish the run and compare with the reference.
resume_and_compare() {
  local out rc2=0
  out=$(run_hamnet "${3:-1}" train med.ini --run-dir "$1" 2>&1) || rc2=$?
  [[ $rc2 == 0 ]] || fail "$1: resume exited $rc2: $out"
  same_ckpt "$(newest_ckpt "$2")" "$(newest_ckpt "$1")" || fail "$1: resumed run differs from $2"
  same_steps "$2/steps.tsv" "$1/steps.tsv" || fail "$1: steps.tsv differs from $2"
}

fmt() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }

# --- reference runs ----------------------------------------------------------------------------
run_hamnet 1 train med.ini --run-dir ref1 >ref1.log 2>&1 || fail "reference run failed: $(cat ref1.log)"
secs=$(sed -nE 's/.*finished: .* ([0-9]+) steps in ([0-9.]+) s.*/\2/p' ref1.log)
[[ -n $secs ]] || fail "no timing in ref1.log"
step=$(awk -v s="$secs" -v n="$total_steps" 'BEGIN { printf "%.4f", s / n }')
echo "reference: $total_steps steps in $secs s: $step s per step (1 rank)"

# --- each signal on one rank: stop within one step, checkpoint, 75, exact resume -----------------
for sig in USR1 TERM INT; do
  dir=sig_$sig
  start 1 "$dir"
  wait_for "$dir.log" "checkpoint .*ckpt-0000000012.h5"
  sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
  t_sig=$(now)
  kill -s "$sig" "$pid"
  finish "$pid"
  [[ $rc == 75 ]] || fail "SIG$sig: exit code $rc, expected 75: $(cat "$dir.log")"
  grep -qE "stop requested by SIG$sig \(received [0-9.]+ s ago on this rank\): writing a checkpoint after step [0-9]+" \
    "$dir.log" || fail "SIG$sig: no stop message: $(cat "$dir.log")"
  latency=$(sed -nE 's/.*received ([0-9.]+) s ago.*/\1/p' "$dir.log")
  at=$(sed -nE 's/.*writing a checkpoint after step ([0-9]+).*/\1/p' "$dir.log")
  ck=$(newest_ckpt "$dir")
  [[ $(basename "$ck") == "$(printf 'ckpt-%010d.h5' "$at")" ]] || fail "SIG$sig: newest checkpoint $ck, stopped at $at"
  [[ $(tail -n 1 "$dir/steps.tsv" | cut -f1) == "$at" ]] || fail "SIG$sig: steps.tsv does not end at step $at"
  "$HAMNET" inspect "$ck" >/dev/null || fail "SIG$sig: the stop checkpoint does not verify"
  # the stop comes at the end of the step under way: well within 3 steps of time even on a busy machine
  awk -v l="$latency" -v s="$step" 'BEGIN { exit !(l <= 3 * s + 0.5) }' ||
    fail "SIG$sig: stopped $latency s after the signal, a step takes $step s"
  echo "SIG$sig: step $at finished $(fmt "$latency") s after the signal (a step takes $step s); exit 75 after" \
    "$(fmt "$(awk -v a="$t_end" -v b="$t_sig" 'BEGIN { print a - b }')") s incl. the checkpoint"
  resume_and_compare "$dir" ref1
done

# --- further signals while the stop checkpoint is written: ignored, the file is complete ----------
# Every checkpoint write pauses 2 s before its rename. USR1 arrives during the first (regular)
# write; once the stop is under way (logged), the stop checkpoint's write pauses too, and INT,
# TERM and a second USR1 arrive during it. The first USR1 must have been handled before the
# others are sent: the kernel merges a second USR1 into one still pending, so the count of 3
# is only exact then.
dir=second
start 1 "$dir" HAMNET_FAULT_CKPT=pause_before_rename=2
wait_for "$dir.log" "pausing 2 s before rename of .*ckpt-0000000006.h5"
kill -s USR1 "$pid"
wait_for "$dir.log" "stop requested by SIGUSR1"
for ((i = 0; i < 1200; i++)); do
  sed -n '/stop requested by SIGUSR1/,$p' "$dir.log" | grep -q "pausing 2 s before rename" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
sed -n '/stop requested by SIGUSR1/,$p' "$dir.log" | grep -q "pausing 2 s before rename" ||
  fail "second signals: the stop checkpoint's write was not reached: $(cat "$dir.log")"
kill -s INT "$pid"
kill -s TERM "$pid"
kill -s USR1 "$pid"
finish "$pid"
[[ $rc == 75 ]] || fail "second signals: exit code $rc: $(cat "$dir.log")"
grep -q "3 further stop signals arrived and were ignored" "$dir.log" || fail "second signals not reported: $(cat "$dir.log")"
ls "$dir"/*.tmp >/dev/null 2>&1 && fail "second signals: a .tmp file was left"
"$HAMNET" inspect "$(newest_ckpt "$dir")" >/dev/null || fail "second signals: the checkpoint does not verify"
resume_and_compare "$dir" ref1
echo "3 signals during a checkpoint write: ignored, checkpoint complete"

# --- SIGTERM deadline: no time for a checkpoint -> stop at once without one ------------------------
# Every checkpoint write takes 4 s (injected pause); with a 6 s deadline a SIGTERM leaves less
# than twice that: stop at the next step boundary without writing (after the write under way,
# if the signal came during one).
dir=deadline_skip
start 1 "$dir" HAMNET_FAULT_CKPT=pause_before_rename=4 HAMNET_TERM_DEADLINE=6
wait_for "$dir.log" "checkpoint .*ckpt-0000000006.h5"
t_sig=$(now)
kill -s TERM "$pid"
finish "$pid"
el=$(awk -v a="$t_end" -v b="$t_sig" 'BEGIN { print a - b }')
[[ $rc == 75 ]] || fail "deadline skip: exit code $rc: $(cat "$dir.log")"
grep -q "leaves too little time for a checkpoint (the last one took 4" "$dir.log" ||
  fail "deadline skip: no message: $(cat "$dir.log")"
! grep -q "writing a checkpoint after step" "$dir.log" || fail "deadline skip: a stop checkpoint was written"
grep -q "SIGTERM deadline of 6 s (HAMNET_TERM_DEADLINE) expired" "$dir.log" && fail "deadline skip: the watchdog fired"
awk -v e="$el" 'BEGIN { exit !(e < 6) }' || fail "deadline skip took $el s"
resume_and_compare "$dir" ref1
echo "SIGTERM with a 6 s deadline and 4 s checkpoints: stopped without one, exit 75 after $(fmt "$el") s"

# --- SIGTERM deadline: the watchdog ends a checkpoint write that takes too long -------------------
dir=deadline_watchdog
run_hamnet 1 train med.ini --run-dir "$dir" --set train.max_steps=30 >/dev/null 2>&1 || true
[[ $(basename "$(newest_ckpt "$dir")") == ckpt-0000000030.h5 ]] || fail "watchdog: no checkpoint at step 30"
start 1 "$dir" HAMNET_FAULT_CKPT=pause_before_rename=60@1 HAMNET_TERM_DEADLINE=2
wait_for "$dir.log" "resuming from"
sleep 0.2
t_sig=$(now)
kill -s TERM "$pid"
finish "$pid"
el=$(awk -v a="$t_end" -v b="$t_sig" 'BEGIN { print a - b }')
[[ $rc == 75 ]] || fail "watchdog: exit code $rc: $(cat "$dir.log")"
grep -q "SIGTERM deadline of 2 s (HAMNET_TERM_DEADLINE) expired before the orderly stop finished" "$dir.log" ||
  fail "watchdog: no message: $(cat "$dir.log")"
awk -v e="$el" 'BEGIN { exit !(e >= 1.5 && e < 5) }' || fail "watchdog: exit after $el s, deadline 2 s"
ls "$dir"/ckpt-*.h5.tmp >/dev/null 2>&1 || fail "watchdog: expected the interrupted write's .tmp file"
[[ $(basename "$(newest_ckpt "$dir")") == ckpt-0000000030.h5 ]] || fail "watchdog: newest checkpoint changed"
out=$("$HAMNET" train med.ini --run-dir "$dir" 2>&1) || fail "watchdog: resume failed: $out"
grep -q "resuming from $dir/ckpt-0000000030.h5" <<<"$out" || fail "watchdog: did not resume from step 30: $out"
same_ckpt "$(newest_ckpt ref1)" "$(newest_ckpt "$dir")" || fail "watchdog: resumed run differs"
echo "SIGTERM during a checkpoint write that would take 60 s, deadline 2 s: exit 75 after $(fmt "$el") s," \
  "previous checkpoint kept and resumed from"

# --- two ranks -------------------------------------------------------------------------------------
if ! hn_have_mpi; then
  echo "SKIP (2 ranks): no Open MPI mpiexec"
  echo "test_signals: all checks passed"
  exit 0
fi
run_hamnet 2 train med.ini --run-dir ref2 >ref2.log 2>&1 || fail "2-rank reference run failed: $(cat ref2.log)"

# rank_pid LAUNCHER_PID RANK: the pid of that rank (a child of mpiexec with OMPI_COMM_WORLD_RANK).
rank_pid() {
  local p i
  for ((i = 0; i < 200; i++)); do
    for p in $(pgrep -P "$1" 2>/dev/null); do
      if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
        echo "$p"
        return 0
      fi
    done
    sleep 0.05
  done
  return 1
}

# SIGUSR1 to mpiexec (it forwards it to every rank)
dir=mpi_usr1
start 2 "$dir"
wait_for "$dir.log" "checkpoint .*ckpt-0000000012.h5"
kill -s USR1 "$pid"
finish "$pid"
[[ $rc == 75 ]] || fail "2 ranks, SIGUSR1 to mpiexec: exit code $rc: $(cat "$dir.log")"
resume_and_compare "$dir" ref2 2
echo "2 ranks, SIGUSR1 to mpiexec: exit 75, exact resume"

# SIGUSR1 to rank 1 only: rank 0 learns of it in the per-step reduction; both stop after the same step
dir=mpi_rank1
start 2 "$dir"
wait_for "$dir.log" "checkpoint .*ckpt-0000000012.h5"
r1=$(rank_pid "$pid" 1) || fail "cannot find rank 1"
kill -s USR1 "$r1"
finish "$pid"
[[ $rc == 75 ]] || fail "2 ranks, SIGUSR1 to rank 1: exit code $rc: $(cat "$dir.log")"
grep -q "stop requested by SIGUSR1" "$dir.log" || fail "rank 0 did not report the stop: $(cat "$dir.log")"
at=$(sed -nE 's/.*writing a checkpoint after step ([0-9]+).*/\1/p' "$dir.log")
[[ $(basename "$(newest_ckpt "$dir")") == "$(printf 'ckpt-%010d.h5' "$at")" ]] || fail "2 ranks: no checkpoint at $at"
resume_and_compare "$dir" ref2 2
echo "2 ranks, SIGUSR1 to rank 1 only: both stopped after step $at, exact resume"

# A rank blocked for good (SIGSTOP: alive but never reaching the reduction) and SIGTERM to the other:
# the watchdog ends rank 0 after the deadline instead of waiting forever in MPI_Allreduce.
dir=mpi_stuck
start 2 "$dir" HAMNET_TERM_DEADLINE=2
wait_for "$dir.log" "checkpoint .*ckpt-0000000012.h5"
r0=$(rank_pid "$pid" 0) || fail "cannot find rank 0"
r1=$(rank_pid "$pid" 1) || fail "cannot find rank 1"
bg_pids+=("$r0" "$r1")
kill -s STOP "$r1"
t_sig=$(now)
kill -s TERM "$r0"
finish "$pid"
kill -9 "$r1" 2>/dev/null || true
el=$(awk -v a="$t_end" -v b="$t_sig" 'BEGIN { print a - b }')
[[ $rc != 0 ]] || fail "stuck peer: mpiexec exited 0"
grep -q "rank 0: SIGTERM deadline of 2 s (HAMNET_TERM_DEADLINE) expired" "$dir.log" ||
  fail "stuck peer: no watchdog message: $(cat "$dir.log")"
awk -v e="$el" 'BEGIN { exit !(e < 15) }' || fail "stuck peer: the job took $el s to end"
resume_and_compare "$dir" ref2 2
echo "2 ranks, rank 1 stopped, SIGTERM to rank 0 (deadline 2 s): job ended after $(fmt "$el") s (mpiexec $rc)," \
  "exact resume from the last checkpoint"

# SIGKILL of one rank: mpiexec ends the job; the run folder holds only valid checkpoints
dir=mpi_kill
start 2 "$dir"
wait_for "$dir.log" "checkpoint .*ckpt-0000000012.h5"
r1=$(rank_pid "$pid" 1) || fail "cannot find rank 1"
t_sig=$(now)
kill -9 "$r1"
finish "$pid"
el=$(awk -v a="$t_end" -v b="$t_sig" 'BEGIN { print a - b }')
[[ $rc != 0 ]] || fail "killed rank: mpiexec exited 0"
awk -v e="$el" 'BEGIN { exit !(e < 25) }' || fail "killed rank: the job took $el s to end"
resume_and_compare "$dir" ref2 2
echo "2 ranks, SIGKILL of rank 1: job ended after $(fmt "$el") s (mpiexec $rc), exact resume"

echo "test_signals: all checks passed"
