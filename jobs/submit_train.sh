#!/usr/bin/env bash
# jobs/submit_train.sh - submit jobs/train.sbatch with the site settings of jobs/site.env.
#
#   jobs/submit_train.sh [sbatch options] CONFIG.ini [hamnet train options]
#
# The first argument ending in .ini is the config: everything before it goes to sbatch, everything
# after it to `hamnet train`. Examples:
#   jobs/submit_train.sh jobs/swissroll_hamiltonian.ini
#   jobs/submit_train.sh --ntasks=4 --cpus-per-task=8 --time=12:00:00 jobs/swissroll_hamiltonian.ini \
#     --set model.depth=1024 --run-dir runs/deep1024
# Account / partition / QOS come from jobs/site.env (exported as SBATCH_ACCOUNT etc.; an sbatch
# option given here wins). The log goes to $HAMNET_RUNS/<job name>-<job id>.out unless you pass
# --output. Prints the job id. To continue a run that stopped (exit 75, e.g. after the requeue
# cap), submit the same command with the same --run-dir.
set -euo pipefail
HAMNET_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HAMNET_HOME
# shellcheck source=jobs/lib.sh
. "$HAMNET_HOME/jobs/lib.sh"
case ${1:-} in -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;; esac
hn_site
hn_check_bin
hn_sbatch_env

sbatch_opts=()
while [ $# -gt 0 ] && [[ $1 != *.ini ]]; do
  sbatch_opts+=("$1")
  shift
done
[ $# -gt 0 ] || hn_die "no CONFIG.ini among the arguments (usage: jobs/submit_train.sh [sbatch options] CONFIG.ini [hamnet options])"
config=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
[ -f "$config" ] || hn_die "config $config: no such file"
# Check the configuration here, before it waits in the queue.
"$HAMNET_BIN" train "$config" --print-config "$@" >/dev/null || hn_die "the configuration is invalid (see above)"

has_output=0
for o in "${sbatch_opts[@]}"; do
  case $o in -o | -o* | --output | --output=*) has_output=1 ;; esac
done
if [ $has_output = 0 ]; then
  mkdir -p "$HAMNET_RUNS"
  sbatch_opts+=("--output=$HAMNET_RUNS/%x-%j.out")
fi
sbatch --parsable "${sbatch_opts[@]}" "$HAMNET_HOME/jobs/train.sbatch" "$config" "$@"
