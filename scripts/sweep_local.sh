#!/usr/bin/env bash
# sweep_local.sh - run a depth sweep on this machine, without Slurm: the same elements, run
# folders and report as jobs/sweep.sh, one element after another or a few at a time.
#
#   scripts/sweep_local.sh CONFIG.ini --out SWEEP_DIR [options]
#
# Sweep options as jobs/sweep.sh (lists take spaces or commas; A..B doubles from A to B):
#   --depths LIST --archs LIST --seeds LIST --fractions LIST --set KEY=VALUE
#   --ranks R          MPI ranks per element (default 1; R > 1 starts them with mpirun)
#   --threads T        OpenMP threads per rank (default 1)
#   --noise LIST --target ACC   report settings (scripts/sweep_report.py)
# Local options:
#   --parallel J       run J elements at once (default 1). Mind the cores: J x R x T of them.
#   --no-report        do not run scripts/sweep_report.py at the end
#
# Each element logs to SWEEP_DIR/logs/NAME.log. Ctrl-C stops the running elements after a
# checkpoint (hamnet exits 75) and starts no new ones; run the same command again to go on:
# finished elements end at once, stopped ones resume. Exit status 0 when every element finished,
# 1 otherwise (the report is written either way).
set -uo pipefail
HAMNET_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HAMNET_HOME
# shellcheck source=jobs/lib.sh
. "$HAMNET_HOME/jobs/lib.sh"
case ${1:-} in -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;; esac
hn_site
hn_sweep_parse "$@"
parallel=1 report=1
set -- "${HN_SWEEP_REST[@]}"
while [ $# -gt 0 ]; do
  case $1 in
    --parallel) parallel=${2:?--parallel needs a number}; shift ;;
    --no-report) report=0 ;;
    *) hn_die "unknown argument '$1' (see scripts/sweep_local.sh --help)" ;;
  esac
  shift
done
[[ $parallel =~ ^[1-9][0-9]*$ ]] || hn_die "--parallel needs a positive whole number"
# A local run is not a Slurm job, even when started inside an allocation's shell.
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_RESTART_COUNT

hn_sweep_plan
out=$HN_SWEEP_OUT
hn_log "sweep $out: $HN_SWEEP_N elements, $parallel at a time, $HN_SWEEP_RANKS rank(s) x $HN_SWEEP_THREADS thread(s) each"

stop=0
trap 'stop=1; hn_log "interrupted: the running elements checkpoint and stop; no new ones start"' INT TERM

declare -A running=() # pid -> element index
failed=0

# run_element INDEX (in a subshell in the background): train, log, record in jobs.log
run_element() {
  local idx=$1 rc
  hn_sweep_element "$out" "$idx"
  hn_launch_prefix "$HN_SWEEP_RANKS" "$HN_SWEEP_THREADS"
  hn_run_log "$HN_ELEMENT_DIR" "start element=$idx ranks=$HN_SWEEP_RANKS threads=$HN_SWEEP_THREADS (local)"
  "${HN_LAUNCH[@]}" "$HAMNET_BIN" "${HN_ELEMENT_ARGS[@]}" >>"$out/logs/$HN_ELEMENT_NAME.log" 2>&1
  rc=$?
  case $rc in
    0) hn_run_log "$HN_ELEMENT_DIR" "finished" ;;
    75) hn_run_log "$HN_ELEMENT_DIR" "stopped rc=75 (local; rerun to resume)" ;;
    *) hn_run_log "$HN_ELEMENT_DIR" "failed rc=$rc" ;;
  esac
  exit "$rc"
}

# wait until at least one element has ended, and reap those (polling: works with bash 4)
reap() {
  local pid rc
  while :; do
    for pid in "${!running[@]}"; do
      kill -0 "$pid" 2>/dev/null && continue
      rc=0
      wait "$pid" || rc=$?
      hn_sweep_element "$out" "${running[$pid]}"
      if [ "$rc" = 0 ]; then
        hn_log "done   [${running[$pid]}] $HN_ELEMENT_NAME"
      else
        hn_log "FAILED [${running[$pid]}] $HN_ELEMENT_NAME: exit $rc (log $out/logs/$HN_ELEMENT_NAME.log)"
        failed=$((failed + 1))
      fi
      unset "running[$pid]"
      return 0
    done
    sleep 0.2
  done
}

for ((i = 0; i < HN_SWEEP_N; i++)); do
  [ $stop = 0 ] || break
  while [ ${#running[@]} -ge "$parallel" ]; do reap; done
  [ $stop = 0 ] || break
  hn_sweep_element "$out" "$i"
  hn_log "start  [$i] $HN_ELEMENT_NAME"
  run_element "$i" &
  running[$!]=$i
done
while [ ${#running[@]} -gt 0 ]; do reap; done
not_run=$((HN_SWEEP_N - i))

status=0
if [ $failed -gt 0 ] || [ $stop = 1 ]; then status=1; fi
if [ $report = 1 ]; then
  hn_sweep_report "$out" || status=1
fi
if [ $stop = 1 ]; then
  hn_log "stopped: $failed element(s) did not finish, $not_run not started; rerun the same command to go on"
elif [ $failed -gt 0 ]; then
  hn_log "$failed of $HN_SWEEP_N elements failed"
else
  hn_log "all $HN_SWEEP_N elements finished; report in $out/report"
fi
exit $status
