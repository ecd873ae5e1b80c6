#!/usr/bin/env bash
# jobs/sweep.sh - submit a depth sweep to Slurm: one job array over depths x architectures x
# seeds (x training-data fractions), each element its own run folder, at most N elements at once,
# then a report job that runs after the whole array (--dependency=afterany).
#
#   jobs/sweep.sh CONFIG.ini --out SWEEP_DIR [options] [-- extra sbatch options for the array]
#
# Sweep (lists take spaces or commas; A..B doubles from A to B):
#   --depths LIST      model.depth values      (default 16..1024 = 16 32 64 128 256 512 1024)
#   --archs LIST       model.arch values       (default "resnet antisym hamiltonian leapfrog")
#   --seeds LIST       train.seed values       (default "1 2 3")
#   --fractions LIST   data.fraction values    (default 1; e.g. "0.05 0.1 0.25 0.5 1")
#   --set KEY=VALUE    any other key, for every element (repeatable)
# Resources:
#   --ranks R          MPI ranks per element (default 1)
#   --threads T        OpenMP threads per rank = --cpus-per-task (default 1)
#   --time HH:MM:SS    time limit per element (default 01:00:00; elements that hit it checkpoint,
#                      requeue themselves and resume)
#   --concurrent N     at most N elements at once (--array=...%N; default HAMNET_SWEEP_CONCURRENT)
#   --report-time T    time limit of the report job (default 00:30:00)
# Report (scripts/sweep_report.py):
#   --noise LIST       input-noise levels for `hamnet eval --noise` (default "0.05 0.1 0.2")
#   --target ACC       accuracy for "epochs to reach" (default 0.9)
#   --dry-run          write the plan, print the sbatch commands, submit nothing
#
# Writes SWEEP_DIR/{config.ini, plan.tsv, sweep.env} (see jobs/lib.sh), submits, and writes the job
# ids to SWEEP_DIR/jobs.env (ARRAY_JOB=..., REPORT_JOB=...). Logs: SWEEP_DIR/logs/. Submitting the
# same sweep again (same plan) resumes unfinished elements; finished ones end at once. The same
# sweep without Slurm: scripts/sweep_local.sh with the same options.
set -euo pipefail
HAMNET_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HAMNET_HOME
# shellcheck source=jobs/lib.sh
. "$HAMNET_HOME/jobs/lib.sh"
case ${1:-} in -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;; esac
hn_site
hn_sbatch_env

# split off "-- sbatch options"
args=()
sbatch_extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then
    shift
    sbatch_extra=("$@")
    break
  fi
  args+=("$1")
  shift
done
hn_sweep_parse "${args[@]}"
time_limit=01:00:00 report_time=00:30:00 concurrent=$HAMNET_SWEEP_CONCURRENT dry_run=0
set -- "${HN_SWEEP_REST[@]}"
while [ $# -gt 0 ]; do
  case $1 in
    --time) time_limit=${2:?--time needs HH:MM:SS}; shift ;;
    --report-time) report_time=${2:?--report-time needs HH:MM:SS}; shift ;;
    --concurrent) concurrent=${2:?--concurrent needs a number}; shift ;;
    --dry-run) dry_run=1 ;;
    *) hn_die "unknown argument '$1' (see jobs/sweep.sh --help)" ;;
  esac
  shift
done
[[ $concurrent =~ ^[1-9][0-9]*$ ]] || hn_die "--concurrent needs a positive whole number"

hn_sweep_plan
out=$HN_SWEEP_OUT
last=$((HN_SWEEP_N - 1))
array_cmd=(sbatch --parsable "--array=0-$last%$concurrent" "--job-name=hamnet-sweep"
  "--ntasks=$HN_SWEEP_RANKS" "--cpus-per-task=$HN_SWEEP_THREADS" "--time=$time_limit"
  "--output=$out/logs/%x-%A_%a.out" "${sbatch_extra[@]}" "$HAMNET_HOME/jobs/sweep_element.sbatch" "$out")
report_cmd=(sbatch --parsable "--job-name=hamnet-report" "--time=$report_time" --kill-on-invalid-dep=no
  "--output=$out/logs/%x-%j.out")
if [ $dry_run = 1 ]; then
  hn_log "plan: $out/plan.tsv ($HN_SWEEP_N elements); would run:"
  echo "${array_cmd[*]}"
  echo "${report_cmd[*]} --dependency=afterany:<array job id> $HAMNET_HOME/jobs/report.sbatch $out"
  exit 0
fi
array_id=$("${array_cmd[@]}")
array_id=${array_id%%;*}
report_id=$("${report_cmd[@]}" "--dependency=afterany:$array_id" "$HAMNET_HOME/jobs/report.sbatch" "$out")
report_id=${report_id%%;*}
printf 'ARRAY_JOB=%s\nREPORT_JOB=%s\n' "$array_id" "$report_id" >"$out/jobs.env"
hn_log "sweep $out: $HN_SWEEP_N elements in array job $array_id (at most $concurrent at once), report job $report_id after it"
echo "ARRAY_JOB=$array_id"
echo "REPORT_JOB=$report_id"
