# shellcheck shell=bash disable=SC2034  # (HN_* variables are set here for the scripts that source this)
# jobs/lib.sh - shared functions of hamnet's job scripts; sourced, never run.
#
# Used by jobs/train.sbatch, jobs/sweep_element.sbatch, jobs/report.sbatch, jobs/submit_train.sh,
# jobs/sweep.sh and scripts/sweep_local.sh, so that all of them start ranks, handle the
# time-limit signal, requeue, and lay out sweeps in the same way.
#
#   hn_find_home            set HAMNET_HOME (repository root), also inside a running job
#   hn_site                 read jobs/site.env (+ $HAMNET_SITE_ENV), load the modules
#   hn_sbatch_env           export SBATCH_ACCOUNT / SBATCH_PARTITION / SBATCH_QOS from the site
#   hn_launch_prefix R T    fill the array HN_LAUNCH with the command that starts R ranks x T threads
#   hn_run_step CMD...      run CMD in the background, forward USR1/TERM/INT to it, wait for it
#   hn_after_step RC DIR    requeue the job if it was stopped by the time-limit signal (RC 75)
#   hn_sweep_*              sweep options, plan file and per-element command (see below)
#
# Exit codes of `hamnet train` (src/cli/cmd_train.c): 0 finished, 1 error, 2 usage/config,
# 3 diverged, 75 stopped by SIGUSR1/SIGTERM/SIGINT after writing a checkpoint - run the same
# command again (same --run-dir) and it resumes from that checkpoint.

HN_EXIT_RESUME=75

hn_log() { printf '%s hamnet-job: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
hn_die() {
  hn_log "ERROR: $*" >&2
  exit 2
}

# The repository root. Inside a batch job the script runs from a copy in Slurm's spool folder, so
# its own path says nothing: use $HAMNET_HOME if set (the submit wrappers export it), else the
# submit folder or its parent when it holds jobs/lib.sh, else the path Slurm recorded for the
# job's script (`scontrol show job`: Command=.../jobs/X.sbatch).
hn_find_home() {
  if [ -n "${HAMNET_HOME:-}" ] && [ -f "$HAMNET_HOME/jobs/lib.sh" ]; then
    HAMNET_HOME=$(cd "$HAMNET_HOME" && pwd)
    export HAMNET_HOME
    return 0
  fi
  local d cmd
  for d in "${SLURM_SUBMIT_DIR:-$PWD}" "${SLURM_SUBMIT_DIR:-$PWD}/.."; do
    if [ -f "$d/jobs/lib.sh" ]; then
      HAMNET_HOME=$(cd "$d" && pwd)
      export HAMNET_HOME
      return 0
    fi
  done
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    cmd=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p')
    d=$(dirname "$(dirname "${cmd:-/nonexistent/x/y}")")
    if [ -f "$d/jobs/lib.sh" ]; then
      HAMNET_HOME=$d
      export HAMNET_HOME
      return 0
    fi
  fi
  return 1
}

# Site settings and modules. Exports what jobs need.
hn_site() {
  [ -n "${HAMNET_HOME:-}" ] || hn_find_home || hn_die "cannot find the hamnet repository: set HAMNET_HOME"
  # shellcheck source=jobs/site.env
  . "$HAMNET_HOME/jobs/site.env"
  if [ -n "${HAMNET_SITE_ENV:-}" ]; then
    [ -f "$HAMNET_SITE_ENV" ] || hn_die "HAMNET_SITE_ENV=$HAMNET_SITE_ENV: no such file"
    # shellcheck disable=SC1090
    . "$HAMNET_SITE_ENV"
  fi
  if [ -n "$HAMNET_MODULES" ]; then
    command -v module >/dev/null 2>&1 || hn_die "HAMNET_MODULES is set but there is no 'module' command"
    local m
    for m in $HAMNET_MODULES; do
      module load "$m" || hn_die "module load $m failed"
    done
  fi
  export HAMNET_HOME HAMNET_BIN HAMNET_PYTHON HAMNET_LAUNCHER HAMNET_SRUN_MPI HAMNET_SRUN_FLAGS \
    HAMNET_MPIRUN_FLAGS HAMNET_OMP_PLACES HAMNET_OMP_PROC_BIND HAMNET_RUNS HAMNET_MAX_REQUEUES \
    HAMNET_ACCOUNT HAMNET_PARTITION HAMNET_QOS HAMNET_SWEEP_CONCURRENT HAMNET_MODULES
}

hn_check_bin() {
  [ -x "$HAMNET_BIN" ] || hn_die "hamnet binary $HAMNET_BIN not found or not executable (build it with scripts/setup.sh, or set HAMNET_BIN in jobs/site.env)"
}

# For submitters: account / partition / QOS from the site settings, unless already set.
hn_sbatch_env() {
  if [ -n "$HAMNET_ACCOUNT" ] && [ -z "${SBATCH_ACCOUNT:-}" ]; then export SBATCH_ACCOUNT=$HAMNET_ACCOUNT; fi
  if [ -n "$HAMNET_PARTITION" ] && [ -z "${SBATCH_PARTITION:-}" ]; then export SBATCH_PARTITION=$HAMNET_PARTITION; fi
  if [ -n "$HAMNET_QOS" ] && [ -z "${SBATCH_QOS:-}" ]; then export SBATCH_QOS=$HAMNET_QOS; fi
}

# hn_launch_prefix RANKS THREADS: HN_LAUNCH=(command that starts RANKS ranks of THREADS OpenMP
# threads each). Inside a Slurm allocation: srun --mpi=pmix (or mpirun, HAMNET_LAUNCHER), with
# --kill-on-bad-exit so that one failing rank ends the whole step. Outside Slurm: nothing for one
# rank, mpirun for several.
hn_launch_prefix() {
  local ranks=$1 threads=$2
  export OMP_NUM_THREADS=$threads
  export OMP_PLACES=${OMP_PLACES:-$HAMNET_OMP_PLACES}
  export OMP_PROC_BIND=${OMP_PROC_BIND:-$HAMNET_OMP_PROC_BIND}
  local -a extra
  if [ -n "${SLURM_JOB_ID:-}" ] && [ "$HAMNET_LAUNCHER" = srun ]; then
    read -r -a extra <<<"$HAMNET_SRUN_FLAGS"
    # Slurm >= 22.05: srun does not inherit --cpus-per-task from the batch job; pass it.
    HN_LAUNCH=(srun "--mpi=$HAMNET_SRUN_MPI" --kill-on-bad-exit=1 "--ntasks=$ranks"
      "--cpus-per-task=$threads" "${extra[@]}")
  elif [ -n "${SLURM_JOB_ID:-}" ] || [ "$ranks" -gt 1 ]; then
    [ "$HAMNET_LAUNCHER" = srun ] || [ "$HAMNET_LAUNCHER" = mpirun ] ||
      hn_die "HAMNET_LAUNCHER must be srun or mpirun, not '$HAMNET_LAUNCHER'"
    read -r -a extra <<<"$HAMNET_MPIRUN_FLAGS"
    # Open MPI aborts the whole job when a rank exits non-zero (the mpirun analogue of
    # --kill-on-bad-exit). PE=threads gives each rank its own cores for its threads.
    HN_LAUNCH=(mpirun -np "$ranks" --map-by "slot:PE=$threads" --bind-to core
      -x OMP_NUM_THREADS -x OMP_PLACES -x OMP_PROC_BIND "${extra[@]}")
  else
    HN_LAUNCH=()
  fi
}

# --- the step and the time-limit signal -----------------------------------------------------
# Slurm's --signal=B:USR1@T sends USR1 to the batch shell only, T seconds before the time limit.
# Bash runs a trap only between commands, so the step runs in the background and the shell
# `wait`s for it: the wait returns at once when the signal comes, the trap forwards it to the
# step (srun and mpirun pass USR1 on to every rank), and the shell waits again for the step's
# real exit status. hamnet then finishes its current step, writes a checkpoint and exits 75.

HN_GOT_SIGNAL=""
HN_STEP_PID=""

hn__on_signal() {
  HN_GOT_SIGNAL=$1
  hn_log "received SIG$1$([ -n "$HN_STEP_PID" ] && echo ": asking the ranks to checkpoint and stop")"
  if [ -n "$HN_STEP_PID" ]; then
    kill -USR1 "$HN_STEP_PID" 2>/dev/null || true
  fi
}

hn_install_traps() {
  trap 'hn__on_signal USR1' USR1
  trap 'hn__on_signal TERM' TERM
  trap 'hn__on_signal INT' INT
}

# hn_run_step CMD... : returns CMD's exit status.
hn_run_step() {
  hn_install_traps
  if [ -n "$HN_GOT_SIGNAL" ]; then
    hn_log "SIG$HN_GOT_SIGNAL came before the step started: not starting it"
    return $HN_EXIT_RESUME
  fi
  "$@" &
  HN_STEP_PID=$!
  local rc
  while :; do
    rc=0
    wait "$HN_STEP_PID" || rc=$?
    # interrupted by a trapped signal: the step is still there (running or not yet reaped)
    kill -0 "$HN_STEP_PID" 2>/dev/null || break
  done
  HN_STEP_PID=""
  return "$rc"
}

# Append one line to RUN_DIR/jobs.log: time, job id, restart count, event, detail.
hn_run_log() {
  local dir=$1
  shift
  mkdir -p "$dir" 2>/dev/null || return 0
  printf '%s\t%s\t%s\t%s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "${SLURM_JOB_ID:-local-$$}" \
    "${SLURM_RESTART_COUNT:-0}" "$*" >>"$dir/jobs.log"
}

# hn_after_step RC RUN_DIR: what to do after `hamnet train` returned RC. Never returns when the
# job requeues itself; otherwise returns the exit code the job should end with.
#   0   finished: done (a finished run never requeues)
#   75  stopped after a checkpoint. If the batch shell got the time-limit signal (or TERM), the
#       job requeues itself with `scontrol requeue`, unless it has already been restarted
#       HAMNET_MAX_REQUEUES times (SLURM_RESTART_COUNT). Slurm then runs the same script again
#       under the same job id: same run folder, hamnet resumes, the log is appended to.
#       If only the ranks were signalled (someone ran `scancel --signal=USR1 JOB` without
#       --batch), the stop was deliberate: no requeue.
#   138, 143 (killed by USR1 / TERM) after the batch shell got the signal: the signal reached
#       the ranks before hamnet had installed its handler (during start-up); nothing since the
#       newest checkpoint is lost but that run's start-up, and checkpoints are written
#       atomically, so this is treated like 75.
#   other: an error (3 = diverged): no requeue, the job fails with that code.
hn_after_step() {
  local rc=$1 dir=$2 restarts=${SLURM_RESTART_COUNT:-0}
  if [ -n "$HN_GOT_SIGNAL" ] && { [ "$rc" = 138 ] || [ "$rc" = 143 ]; }; then
    hn_log "hamnet was killed by the signal before it could handle it (exit $rc, during start-up); it resumes from its newest checkpoint"
    rc=$HN_EXIT_RESUME
  fi
  case $rc in
    0)
      hn_log "finished (run folder $dir)"
      hn_run_log "$dir" "finished"
      return 0
      ;;
    "$HN_EXIT_RESUME")
      if [ -z "$HN_GOT_SIGNAL" ]; then
        hn_log "hamnet stopped after a checkpoint (exit 75) without a time-limit signal to this job: not requeueing. Resubmit, or rerun the same command, to resume."
        hn_run_log "$dir" "stopped rc=75 (no requeue: signal not from the batch shell)"
        return "$rc"
      fi
      if [ -z "${SLURM_JOB_ID:-}" ]; then
        hn_run_log "$dir" "stopped rc=75 (not a Slurm job)"
        return "$rc"
      fi
      if [ "$restarts" -ge "$HAMNET_MAX_REQUEUES" ]; then
        hn_log "stopped after a checkpoint; already restarted $restarts times (HAMNET_MAX_REQUEUES=$HAMNET_MAX_REQUEUES): not requeueing again. Resubmit to continue."
        hn_run_log "$dir" "stopped rc=75 (requeue cap $HAMNET_MAX_REQUEUES reached)"
        return "$rc"
      fi
      hn_log "stopped by SIG$HN_GOT_SIGNAL after a checkpoint: requeueing job $SLURM_JOB_ID (restart $((restarts + 1)) of at most $HAMNET_MAX_REQUEUES); it resumes from $dir"
      hn_run_log "$dir" "requeue $((restarts + 1))/$HAMNET_MAX_REQUEUES"
      if scontrol requeue "$SLURM_JOB_ID"; then
        # Slurm ends this shell now; whatever it exits with is not recorded.
        exit 0
      fi
      hn_log "scontrol requeue $SLURM_JOB_ID failed (was the job submitted with --no-requeue?). Resubmit to continue."
      return "$rc"
      ;;
    *)
      hn_log "hamnet failed with exit code $rc$([ "$rc" = 3 ] && echo ' (diverged)'): not requeueing"
      hn_run_log "$dir" "failed rc=$rc"
      return "$rc"
      ;;
  esac
}

# Banner at every (re)start of a job, into the (appended) job log.
hn_job_banner() {
  hn_log "job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}) start $((${SLURM_RESTART_COUNT:-0} + 1))" \
    "(SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0}) on $(hostname -s): ${SLURM_NTASKS:-1} task(s) x" \
    "${SLURM_CPUS_PER_TASK:-1} cpu(s); launcher ${HAMNET_LAUNCHER}; hamnet $HAMNET_BIN"
}

# --- sweeps ---------------------------------------------------------------------------------
# A sweep is a folder SWEEP with
#   config.ini   the resolved configuration (`hamnet train CONFIG --print-config` with the
#                sweep's --set options): every key, absolute data paths; each element is this
#                plus its own --set model.arch / model.depth / data.fraction / train.seed
#   plan.tsv     one line per element: index arch depth fraction seed name
#   sweep.env    ranks, threads and report settings (bash)
#   runs/NAME/   the element's run folder (NAME = ARCH_dDEPTH_fFRACTION_sSEED)
#   logs/        the elements' logs
#   report/      scripts/sweep_report.py's tables and plots
# jobs/sweep.sh submits it as a Slurm job array, scripts/sweep_local.sh runs it here; the
# option parser, the plan and the element command are these functions, shared by both.

# Expand a list: "16..1024" doubles from 16 to 1024; commas and spaces separate items.
hn_expand_list() {
  local item a b
  for item in ${1//,/ }; do
    if [[ $item =~ ^([0-9]+)\.\.([0-9]+)$ ]]; then
      a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
      if [ "$a" -lt 1 ] || [ "$a" -gt "$b" ]; then
        hn_die "bad range '$item' (want A..B with 1 <= A <= B; doubles from A)"
      fi
      while [ "$a" -le "$b" ]; do
        printf '%s\n' "$a"
        a=$((a * 2))
      done
    else
      printf '%s\n' "$item"
    fi
  done
}

# Options common to jobs/sweep.sh and scripts/sweep_local.sh. Sets HN_SWEEP_* variables;
# unknown options are left in HN_SWEEP_REST for the caller.
hn_sweep_parse() {
  HN_SWEEP_CONFIG="" HN_SWEEP_OUT="" HN_SWEEP_DEPTHS="16..1024" HN_SWEEP_ARCHS="resnet antisym hamiltonian leapfrog"
  HN_SWEEP_SEEDS="1 2 3" HN_SWEEP_FRACTIONS="1" HN_SWEEP_RANKS=1 HN_SWEEP_THREADS=1
  HN_SWEEP_NOISE="0.05 0.1 0.2" HN_SWEEP_TARGET=0.9
  HN_SWEEP_SETS=() HN_SWEEP_REST=()
  while [ $# -gt 0 ]; do
    case $1 in
      --out) HN_SWEEP_OUT=${2:?--out needs a folder}; shift ;;
      --depths) HN_SWEEP_DEPTHS=${2:?--depths needs a list}; shift ;;
      --archs) HN_SWEEP_ARCHS=${2:?--archs needs a list}; shift ;;
      --seeds) HN_SWEEP_SEEDS=${2:?--seeds needs a list}; shift ;;
      --fractions) HN_SWEEP_FRACTIONS=${2:?--fractions needs a list}; shift ;;
      --ranks) HN_SWEEP_RANKS=${2:?--ranks needs a number}; shift ;;
      --threads) HN_SWEEP_THREADS=${2:?--threads needs a number}; shift ;;
      --noise) HN_SWEEP_NOISE=${2?--noise needs a list}; shift ;;
      --target) HN_SWEEP_TARGET=${2:?--target needs an accuracy in (0, 1]}; shift ;;
      --set) HN_SWEEP_SETS+=("${2:?--set needs SECTION.KEY=VALUE}"); shift ;;
      --set=*) HN_SWEEP_SETS+=("${1#--set=}") ;;
      -*) HN_SWEEP_REST+=("$1") ;;
      *)
        if [ -z "$HN_SWEEP_CONFIG" ]; then HN_SWEEP_CONFIG=$1; else HN_SWEEP_REST+=("$1"); fi
        ;;
    esac
    shift
  done
  [ -n "$HN_SWEEP_CONFIG" ] || hn_die "missing CONFIG.ini"
  [ -f "$HN_SWEEP_CONFIG" ] || hn_die "config $HN_SWEEP_CONFIG: no such file"
  [ -n "$HN_SWEEP_OUT" ] || hn_die "missing --out SWEEP_DIR"
  [[ $HN_SWEEP_RANKS =~ ^[1-9][0-9]*$ ]] || hn_die "--ranks needs a positive whole number"
  [[ $HN_SWEEP_THREADS =~ ^[1-9][0-9]*$ ]] || hn_die "--threads needs a positive whole number"
  local s
  for s in "${HN_SWEEP_SETS[@]}"; do
    case $s in
      model.arch=* | model.depth=* | data.fraction=* | train.seed=*)
        hn_die "--set $s: the sweep sets this key per element; use --archs / --depths / --fractions / --seeds" ;;
    esac
  done
}

# Write SWEEP/config.ini, plan.tsv and sweep.env, and check every element's configuration with
# `hamnet train --print-config` (so a bad depth fails now, not in element 97 of the array).
# An existing sweep folder is reused only if its plan and config are the same (rerunning a
# sweep resumes unfinished elements and skips finished ones).
hn_sweep_plan() {
  hn_check_bin
  local out=$HN_SWEEP_OUT
  mkdir -p "$out/runs" "$out/logs" || hn_die "cannot create $out"
  out=$(cd "$out" && pwd)
  HN_SWEEP_OUT=$out
  local -a sets=()
  local s
  for s in "${HN_SWEEP_SETS[@]}"; do sets+=(--set "$s"); done
  local cfg_new="$out/config.ini.new" plan_new="$out/plan.tsv.new"
  if ! "$HAMNET_BIN" train "$HN_SWEEP_CONFIG" --print-config "${sets[@]}" >"$cfg_new" 2>"$out/logs/plan.err"; then
    cat "$out/logs/plan.err" >&2
    rm -f "$cfg_new"
    hn_die "the sweep's configuration is invalid (see above)"
  fi
  local -a archs depths fractions seeds
  local list
  for list in "$HN_SWEEP_ARCHS" "$HN_SWEEP_DEPTHS" "$HN_SWEEP_FRACTIONS" "$HN_SWEEP_SEEDS"; do
    hn_expand_list "$list" >/dev/null # in this shell, so that a bad range ends the script
  done
  mapfile -t archs < <(hn_expand_list "$HN_SWEEP_ARCHS")
  mapfile -t depths < <(hn_expand_list "$HN_SWEEP_DEPTHS")
  mapfile -t fractions < <(hn_expand_list "$HN_SWEEP_FRACTIONS")
  mapfile -t seeds < <(hn_expand_list "$HN_SWEEP_SEEDS")
  if [ ${#archs[@]} = 0 ] || [ ${#depths[@]} = 0 ] || [ ${#fractions[@]} = 0 ] || [ ${#seeds[@]} = 0 ]; then
    hn_die "empty --archs, --depths, --fractions or --seeds"
  fi
  local a d f seed i=0
  # every arch x depth once, every fraction once: hamnet checks ranges and cross-key rules
  for a in "${archs[@]}"; do
    for d in "${depths[@]}"; do
      "$HAMNET_BIN" train "$cfg_new" --print-config --set "model.arch=$a" --set "model.depth=$d" \
        --set "data.fraction=${fractions[0]}" >/dev/null 2>"$out/logs/plan.err" ||
        { cat "$out/logs/plan.err" >&2; hn_die "element arch=$a depth=$d is invalid (see above)"; }
    done
  done
  for f in "${fractions[@]}"; do
    "$HAMNET_BIN" train "$cfg_new" --print-config --set "data.fraction=$f" >/dev/null 2>"$out/logs/plan.err" ||
      { cat "$out/logs/plan.err" >&2; hn_die "data.fraction=$f is invalid (see above)"; }
  done
  for s in "${seeds[@]}"; do
    [[ $s =~ ^[0-9]+$ ]] || hn_die "seed '$s' is not a whole number"
  done
  rm -f "$out/logs/plan.err"
  printf 'index\tarch\tdepth\tfraction\tseed\tname\n' >"$plan_new"
  for a in "${archs[@]}"; do
    for d in "${depths[@]}"; do
      for f in "${fractions[@]}"; do
        for seed in "${seeds[@]}"; do
          printf '%d\t%s\t%s\t%s\t%s\t%s_d%s_f%s_s%s\n' "$i" "$a" "$d" "$f" "$seed" "$a" "$d" "$f" "$seed" >>"$plan_new"
          i=$((i + 1))
        done
      done
    done
  done
  HN_SWEEP_N=$i
  local new old
  for new in "$cfg_new" "$plan_new"; do
    old=${new%.new}
    if [ -f "$old" ] && ! cmp -s "$old" "$new"; then
      rm -f "$cfg_new" "$plan_new"
      hn_die "$out already holds a different sweep ($(basename "$old") differs); use another --out"
    fi
    mv -f "$new" "$old"
  done
  {
    echo "# written by jobs/lib.sh hn_sweep_plan; read by the element and report jobs"
    printf 'HN_SWEEP_RANKS=%q\nHN_SWEEP_THREADS=%q\nHN_SWEEP_NOISE=%q\nHN_SWEEP_TARGET=%q\nHN_SWEEP_N=%q\n' \
      "$HN_SWEEP_RANKS" "$HN_SWEEP_THREADS" "$HN_SWEEP_NOISE" "$HN_SWEEP_TARGET" "$HN_SWEEP_N"
  } >"$out/sweep.env"
}

# hn_sweep_element SWEEP INDEX: HN_ELEMENT_NAME, HN_ELEMENT_DIR and HN_ELEMENT_ARGS (the
# `hamnet train` arguments) of element INDEX.
hn_sweep_element() {
  local out=$1 idx=$2 line
  line=$(awk -F'\t' -v i="$idx" 'NR > 1 && $1 == i' "$out/plan.tsv")
  [ -n "$line" ] || hn_die "$out/plan.tsv has no element $idx"
  local index arch depth fraction seed name
  IFS=$'\t' read -r index arch depth fraction seed name <<<"$line"
  HN_ELEMENT_NAME=$name
  HN_ELEMENT_DIR="$out/runs/$name"
  HN_ELEMENT_ARGS=(train "$out/config.ini" --run-dir "$HN_ELEMENT_DIR" --set "model.arch=$arch"
    --set "model.depth=$depth" --set "data.fraction=$fraction" --set "train.seed=$seed")
  : "$index"
}

# Report: /usr/bin/python3 scripts/sweep_report.py SWEEP with the sweep's noise levels and target.
hn_sweep_report() {
  local out=$1
  # shellcheck source=/dev/null
  . "$out/sweep.env"
  "$HAMNET_PYTHON" "$HAMNET_HOME/scripts/sweep_report.py" "$out" --hamnet "$HAMNET_BIN" \
    --noise "$HN_SWEEP_NOISE" --target "$HN_SWEEP_TARGET"
}
