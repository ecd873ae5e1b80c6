#!/usr/bin/env bash
# mpi_bench.sh - data-parallel step times (issue 5, figures 2 and 3).
#
#   scripts/mpi_bench.sh [--steps S] [--reps R] [--out DIR] [--workloads "wide medium"] [--bind core|none]
#                        [--exchange "shared mpi"]
#
# For each workload (hamiltonian, tanh, adam; global batch 512):
#   wide    width 512, depth 32        medium  width 64, depth 256
# times `hamnet train` steps (the trainer's own per-step timer: the median of steps 2..S,
# printed in its "steps:" line) in four placements on one node of 2 cores:
#   1x2        1 rank  x 2 OpenMP threads
#   2x1        2 ranks x 1 thread, overlapped bucketed allreduce ([parallel] overlap = 1)
#   2x1_noov   2 ranks x 1 thread, every bucket started after the backward pass (overlap = 0)
#   2x1_skip   2 ranks x 1 thread, no gradient exchange at all (HAMNET_BENCH_SKIP_EXCHANGE=1)
#   2x1_cycle  2 ranks x 1 thread, 5 S + 1 steps cycling through overlapped / not overlapped / no
#              exchange in blocks of 3 steps, the first of each block left out (it pays for what the
#              previous mode left behind) (HAMNET_BENCH_EXCHANGE_CYCLE=1): the exposed communication
#              with and without overlap measured within one run, immune to drifts between runs
# The 2-rank placements run once per exchange engine in --exchange (default: both; rows
# "wide/shared", "wide/mpi"; [parallel] exchange, see hamnet/parallel.h),
# and prints per workload: the 2x1 / 1x2 ratio (goal <= 1.10) and the exposed communication
# per step = step(2x1) - step(2x1_skip), with and without overlap (goal: overlap halves it).
# Each configuration runs R times, interleaved; the best (lowest) median is reported, since
# on a shared machine other processes only ever add time. Raw rows: DIR/runs.tsv; table:
# DIR/table.md. Data: synthetic `peaks` (2 features, 5 classes), S batches per run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hamnet=${HAMNET:-$here/build/hamnet}
steps=8
reps=2
out=""
workloads="wide medium"
engines="shared mpi"
bind=core
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --bind) bind=$2; shift ;;
    --exchange) engines=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "mpi_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$hamnet" ] || { echo "mpi_bench.sh: no hamnet binary at $hamnet (set HAMNET or run scripts/setup.sh)" >&2; exit 1; }
[ -n "$out" ] || out="$here/bench-mpi-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
unset OMPI_MCA_mpi_yield_when_idle  # 2 ranks on 2 cores are not oversubscribed: let them poll

batch=512
"$hamnet" datagen peaks --out "$out/data" --samples $((batch * steps)) --val-samples 10 --seed 1 >/dev/null
"$hamnet" datagen peaks --out "$out/data_cycle" --samples $((batch * (5 * steps + 1))) --val-samples 10 --seed 1 >/dev/null

params() {
  case "$1" in
    wide) echo "512 32" ;;
    medium) echo "64 256" ;;
    *) echo "mpi_bench.sh: unknown workload $1" >&2; exit 2 ;;
  esac
}

# run WORKLOAD CONFIG REP ENGINE: one timed training run; appends a row to runs.tsv (workload
# column: WORKLOAD/ENGINE)
run() {
  local w=$1 c=$2 rep=$3 engine=$4
  read -r width depth <<<"$(params "$w")"
  local dir="$out/run_${w}_${c}_${engine}_$rep" log="$out/${w}_${c}_${engine}_$rep.log"
  rm -rf "$dir"
  local data=$out/data
  [ "$c" = 2x1_cycle ] && data=$out/data_cycle
  local args=(train /dev/null --run-dir "$dir" --set data.train="$data/train.h5" --set model.arch=hamiltonian
              --set model.activation=tanh --set model.width="$width" --set model.depth="$depth"
              --set train.optimizer=adam --set train.lr=0.001 --set train.batch_size=$batch --set train.epochs=1
              --set train.seed=1 --set checkpoint.keep=1 --set checkpoint.best=0 --set diagnostics.every_epochs=0)
  local ranks=2 threads=1 overlap=1 skip=0 cycle=0
  case "$c" in
    1x2) ranks=1; threads=2 ;;
    2x1) ;;
    2x1_noov) overlap=0 ;;
    2x1_skip) skip=1 ;;
    2x1_cycle) cycle=1 ;;
  esac
  args+=(--set parallel.overlap=$overlap --set parallel.exchange="$engine" --threads $threads)
  local label=$w/$engine
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=$threads "$hamnet" "${args[@]}" >"$log" 2>&1
  else
    OMP_NUM_THREADS=$threads HAMNET_BENCH_SKIP_EXCHANGE=$skip HAMNET_BENCH_EXCHANGE_CYCLE=$cycle mpirun -np $ranks \
      --bind-to "$bind" --map-by core -x OMP_NUM_THREADS -x HAMNET_BENCH_SKIP_EXCHANGE -x HAMNET_BENCH_EXCHANGE_CYCLE \
      -x OPENBLAS_NUM_THREADS "$hamnet" "${args[@]}" >"$log" 2>&1
  fi
  local line median mean wait
  if [ "$c" = 2x1_cycle ]; then
    line=$(grep -E "exchange cycle \(HAMNET_BENCH_EXCHANGE_CYCLE" "$log" | tail -1)
    [ -n "$line" ] || { echo "mpi_bench.sh: no exchange cycle line in $log" >&2; exit 1; }
    local on off none
    on=$(sed -E 's/.*: overlapped ([0-9.]+) ms.*/\1/' <<<"$line")
    off=$(sed -E 's/.*not overlapped ([0-9.]+) ms.*/\1/' <<<"$line")
    none=$(sed -E 's/.*no exchange ([0-9.]+) ms.*/\1/' <<<"$line")
    printf "%s\t%d\t%s\t%s\t%s\n" "$label" "$rep" "$on" "$off" "$none" >>"$out/cycle.tsv"
    rm -rf "$dir"
    echo "  $label $c rep $rep: step medians overlapped $on, not overlapped $off, no exchange $none ms"
    return
  fi
  line=$(grep -E "\] steps: [0-9]+, median" "$log" | tail -1)
  median=$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$line")
  mean=$(sed -E 's/.*mean ([0-9.]+) ms.*/\1/' <<<"$line")
  wait=$(grep -oE "waited [0-9.]+ ms per step" <<<"$line" | grep -oE "[0-9.]+" || echo 0)
  mpi=$(grep -oE "[0-9.]+ ms per step in the exchange's calls" <<<"$line" | grep -oE "^[0-9.]+" || echo 0)
  cpu=$(sed -E 's/.*CPU time per step ([0-9.]+) ms.*/\1/' <<<"$line")
  printf "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n" "$label" "$c" "$rep" "$ranks" "$threads" "$median" "$mean" \
    "$cpu" "$wait" "$mpi" "$(cut -d' ' -f1 /proc/loadavg)" >>"$out/runs.tsv"
  rm -rf "$dir"
  echo "  $label $c rep $rep: median $median ms/step, CPU $cpu ms/step (exchange: waited $wait, in the exchange's calls $mpi ms/step; load" \
    "$(cut -d' ' -f1 /proc/loadavg))"
}

printf "workload\tconfig\trep\tranks\tthreads\tmedian_ms\tmean_ms\tcpu_ms\twait_ms\tmpi_ms\tloadavg\n" >"$out/runs.tsv"
printf "workload\trep\toverlapped_ms\tnot_overlapped_ms\tno_exchange_ms\n" >"$out/cycle.tsv"
echo "mpi_bench: $steps steps per run, $reps repetitions, output in $out"
read -r -a engine_list <<<"$engines"
for rep in $(seq 1 "$reps"); do
  for w in $workloads; do
    # 1 rank and no exchange: the same for every engine - run once, the row copied to each engine
    for c in 1x2 2x1_skip; do
      run "$w" "$c" "$rep" "${engine_list[0]}"
      row=$(tail -1 "$out/runs.tsv")
      for e in "${engine_list[@]:1}"; do
        printf "%s\n" "$w/$e${row#"$w/${engine_list[0]}"}" >>"$out/runs.tsv"
      done
    done
    for e in "${engine_list[@]}"; do
      for c in 2x1 2x1_noov 2x1_cycle; do
        run "$w" "$c" "$rep" "$e"
      done
    done
  done
done

/usr/bin/python3 - "$out" <<'EOF'
import csv, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/runs.tsv"), delimiter="\t"))
def table(col, title, per_thread=1):
    best, mpi = {}, {}
    for r in rows:
        k = (r["workload"], r["config"])
        v = float(r[col])
        if v < best.get(k, float("inf")):  # the run with the best median, and its exchange figures
            best[k], mpi[k] = v, (float(r["wait_ms"]), float(r["mpi_ms"]))
    lines = [f"{title}", "",
             "| workload | 1 rank x 2 threads | 2 ranks x 1 thread | ratio (goal <= 1.10) | no exchange | "
             "exposed = step - no-exchange step, overlap on / off | overlap cuts it by | time in the exchange's calls "
             "(wait + calls), overlap on / off |",
             "|---|---|---|---|---|---|---|---|"]
    for w in dict.fromkeys(r["workload"] for r in rows):
        a, b, c, s = (best.get((w, x)) for x in ("1x2", "2x1", "2x1_noov", "2x1_skip"))
        a /= per_thread
        on, off = b - s, c - s
        cut = f"{off / on:.1f}x" if on > 0 else "all (<= 0 left)"
        m_on, m_off = mpi[(w, "2x1")][1], mpi[(w, "2x1_noov")][1]
        ratio = f"{m_off / m_on:.1f}x" if m_on > 0 else "-"
        lines.append(f"| {w} | {a:.1f} ms | {b:.1f} ms | {b / a:.3f} | {s:.1f} ms | {on:.1f} / {off:.1f} ms | {cut} | "
                     f"{m_on:.1f} / {m_off:.1f} ms ({ratio}) |")
    return "\n".join(lines)


def paired():
    """Per repetition the four placements ran back to back: ratios and differences within a
    repetition, then the median over the repetitions (robust to the machine's slow drifts)."""
    import statistics as st
    lines = ["Paired: within each repetition (the four runs back to back), then the median over the "
             "repetitions [min .. max]", "",
             "| workload | reps | 2x1 / 1x2 (goal <= 1.10) | exposed, overlap on | exposed, overlap off | "
             "overlap cuts it by (ratio of the medians) |", "|---|---|---|---|---|---|"]
    for w in dict.fromkeys(r["workload"] for r in rows):
        by = {}
        for r in rows:
            if r["workload"] == w:
                by.setdefault(r["rep"], {})[r["config"]] = float(r["median_ms"])
        reps = [v for v in by.values() if len(v) == 4]
        ratio = [v["2x1"] / v["1x2"] for v in reps]
        on = [v["2x1"] - v["2x1_skip"] for v in reps]
        off = [v["2x1_noov"] - v["2x1_skip"] for v in reps]
        f = lambda a, u="": f"{st.median(a):.3g}{u} [{min(a):.3g} .. {max(a):.3g}]"
        mo, mf = st.median(on), st.median(off)
        cut = f"{mf / mo:.1f}x" if mo > 0 else "all (<= 0 left)"
        lines.append(f"| {w} | {len(reps)} | {f(ratio)} | {f(on, ' ms')} | {f(off, ' ms')} | {cut} |")
    return "\n".join(lines)


def cycle():
    """2x1_cycle: the three exchange modes interleaved step by step within each run."""
    import statistics as st
    crows = list(csv.DictReader(open(f"{out}/cycle.tsv"), delimiter="\t"))
    lines = ["Within one run (2x1_cycle: overlapped, not overlapped and no exchange step by step; per run the "
             "median step of each mode; then the median over the runs [min .. max])", "",
             "| workload | runs | exposed, overlap on | exposed, overlap off | overlap cuts it by (ratio of the medians) |",
             "|---|---|---|---|---|"]
    for w in dict.fromkeys(r["workload"] for r in crows):
        rs = [r for r in crows if r["workload"] == w]
        on = [float(r["overlapped_ms"]) - float(r["no_exchange_ms"]) for r in rs]
        off = [float(r["not_overlapped_ms"]) - float(r["no_exchange_ms"]) for r in rs]
        f = lambda a: f"{st.median(a):.3g} ms [{min(a):.3g} .. {max(a):.3g}]"
        mo, mf = st.median(on), st.median(off)
        cut = f"{mf / mo:.2f}x" if mo > 0 else "all (<= 0 left)"
        lines.append(f"| {w} | {len(rs)} | {f(on)} | {f(off)} | {cut} |")
    return "\n".join(lines)


load = [float(r["loadavg"]) for r in rows]
text = (paired() + "\n\n" + cycle() + "\n\n" + table("median_ms", "Wall time per step (median of each run, best run)") + "\n\n" +
        table("cpu_ms", "CPU time per step (per process, max over ranks; 1 rank x 2 threads: half the sum of its two "
                        "threads, so that both columns are per core)", per_thread=2) +
        f"\n\nload average during the runs: {min(load):.1f} .. {max(load):.1f} on {__import__('os').cpu_count()} cores\n")
open(f"{out}/table.md", "w").write(text)
print(text)
EOF
