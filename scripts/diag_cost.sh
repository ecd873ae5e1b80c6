#!/usr/bin/env bash
# diag_cost.sh - what the diagnostics cost: each configuration is trained with diagnostics off
# ([diagnostics] every_epochs = 0), at the default cadence (every_epochs = 1 with the default
# time budget [diagnostics] max_overhead), and with every pass in full (max_overhead = 0), REPEATS times
# interleaved in pairs (off and default back to back, their order alternating, so that slow
# drifts of the machine hit both alike); prints the best wall times, the overhead of the
# default against off as the MEDIAN OF THE PAIRED RATIOS (the README's "<= 5%" claim) with
# the range of the middle half of the pairs, what hamnet itself measured (its closing
# "diagnostics cost" line: set-up + every pass, as a share of the training time), and from
# the diagnostics files the cost of one pass and of its ScaLAPACK spectra.
#
#   scripts/diag_cost.sh [--out DIR] [--repeats R] [--full-repeats F] [--ranks P] [--hamnet BIN]
#                        [--only NAME] [--scale K]
#
# Defaults: DIR runs/diag_cost, R 3, F = R (runs with every pass in full: F of the R repeats),
# P 1, BIN build/hamnet, K 1 (--scale K trains K times the epochs below: longer runs, in which
# the fixed cost of the first pass weighs less). Configurations (NAME):
#   ham512   ellipses, hamiltonian, width 8, depth 512, T 10, 60 epochs (the depth study's network)
#   res512   the same with resnet (Euler: eigenvalues as well, about 2x the spectra)
#   anti128  peaks, antisym, width 32, depth 128, T 5, 12 epochs (8000 samples)
#   wide256  peaks, resnet, width 256, depth 8, T 1, 8 epochs (layers at the distributed width:
#            ScaLAPACK over all ranks)
# Timings on a shared or busy machine are noisy: rerun on a quiet one before quoting them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/runs/diag_cost"
repeats=3 ranks=1 only="" scale=1 full_repeats=
hamnet="$here/build/hamnet"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --repeats) repeats=$2; shift ;;
    --full-repeats) full_repeats=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --hamnet) hamnet=$2; shift ;;
    --only) only=$2; shift ;;
    --scale) scale=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "diag_cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$hamnet" ] || { echo "diag_cost.sh: no hamnet binary at $hamnet (build it, or --hamnet BIN)" >&2; exit 2; }
mkdir -p "$out"
[ -f "$out/ellipses/train.h5" ] || "$hamnet" datagen ellipses --out "$out/ellipses" --seed 1 >/dev/null
[ -f "$out/peaks/train.h5" ] || "$hamnet" datagen peaks --out "$out/peaks" --seed 1 >/dev/null

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1
launch=()
[ "$ranks" -gt 1 ] && launch=(mpirun -np "$ranks" --oversubscribe --bind-to none)

config() { # NAME -> the --set options of that configuration
  case "$1" in
    ham512) echo "data.train=$out/ellipses/train.h5 data.val=$out/ellipses/val.h5 model.arch=hamiltonian model.width=8
                  model.depth=512 model.final_time=10 model.opening=dense train.epochs=60 train.alpha_t=1e-6" ;;
    res512) echo "data.train=$out/ellipses/train.h5 data.val=$out/ellipses/val.h5 model.arch=resnet model.width=8
                  model.depth=512 model.final_time=10 model.opening=dense train.epochs=60 train.alpha_t=1e-6" ;;
    anti128) echo "data.train=$out/peaks/train.h5 data.val=$out/peaks/val.h5 model.arch=antisym model.width=32
                   model.depth=128 model.final_time=5 model.opening=dense train.epochs=12" ;;
    wide256) echo "data.train=$out/peaks/train.h5 data.val=$out/peaks/val.h5 model.arch=resnet model.width=256
                   model.depth=8 model.final_time=1 model.opening=dense train.epochs=8 train.batch_size=256" ;;
  esac
}
modes=(off default full)
mode_sets() {
  case "$1" in
    off) echo "diagnostics.every_epochs=0" ;;
    default) echo "diagnostics.every_epochs=1" ;;
    full) echo "diagnostics.every_epochs=1 diagnostics.max_overhead=0" ;;
  esac
}

[ -n "$full_repeats" ] || full_repeats=$repeats
names=(ham512 res512 anti128 wide256)
[ -n "$only" ] && names=("$only")
results="$out/results.tsv"
: >"$results"
for name in "${names[@]}"; do
  for ((r = 1; r <= repeats; r++)); do
    order=(off default)
    ((r % 2 == 0)) && order=(default off)
    ((r <= full_repeats)) && order+=(full)
    for mode in "${order[@]}"; do
      dir="$out/$name-$mode-$r"
      rm -rf "$dir"
      sets=()
      for kv in $(config "$name") $(mode_sets "$mode") checkpoint.every_epochs=0; do
        [[ $kv == train.epochs=* ]] && kv="train.epochs=$((${kv#train.epochs=} * scale))"
        sets+=(--set "$kv")
      done
      # wall and CPU (user + system, all processes) seconds: CPU time is far less disturbed by
      # other load on the machine than wall time
      /usr/bin/time -f "%e %U %S" -o "$dir.time" "${launch[@]}" "$hamnet" train /dev/null --run-dir "$dir" \
        "${sets[@]}" >"$dir.log" 2>&1 || { echo "diag_cost.sh: $name $mode failed: $(tail -3 "$dir.log")" >&2; exit 1; }
      read -r wall user sys <"$dir.time"
      cpu=$(echo "$user + $sys" | bc)
      printf '%s\t%s\t%d\t%s\t%s\t%s\n' "$name" "$mode" "$r" "$wall" "$dir" "$cpu" >>"$results"
      echo "$name $mode #$r: wall $wall s, CPU $cpu s"
    done
  done
done

/usr/bin/python3 - "$results" "$ranks" <<'EOF'
import re, sys, h5py, numpy as np
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ranks = sys.argv[2]
names = list(dict.fromkeys(r[0] for r in rows))

def self_measured(run_dir):
    """hamnet's own closing line: diagnostics cost (set-up + passes) as a share of the training time."""
    m = re.search(r"diagnostics cost: ([0-9.]+) s in all .*= ([0-9.]+)% of the", open(run_dir + ".log").read())
    return (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan"))

print(f"\n{ranks} rank(s). Wall time of `hamnet train`: best of the repeats, and the overhead of the default "
      f"cadence against diagnostics off as the median of the paired ratios (in brackets: the middle half of the "
      f"pairs); CPU time (user + system) likewise; hamnet's own measure of what the diagnostics took.\n")
print("| config | pairs | off s (best) | default s (best) | overhead, median of pairs | CPU overhead, median of pairs "
      "| hamnet's own measure (median) | full s (best) | full overhead | records (spectra) at default "
      "| one pass s | spectra s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    by = {}
    for r in rows:
        if r[0] == n:
            by.setdefault(r[1], {})[int(r[2])] = r
    pairs = sorted(set(by.get("off", {})) & set(by.get("default", {})))
    wall = lambda m, k: float(by[m][k][3])
    cpu = lambda m, k: float(by[m][k][5])
    rw = np.array([wall("default", k) / wall("off", k) - 1 for k in pairs])
    rc = np.array([cpu("default", k) / cpu("off", k) - 1 for k in pairs])
    own = np.array([self_measured(by["default"][k][4])[1] for k in pairs])
    best = {m: min(float(r[3]) for r in by[m].values()) for m in by}
    with h5py.File(by["default"][pairs[-1]][4] + "/diagnostics.h5", "r") as f:
        nrec = len(f["record/step"])
        nspec = int(np.isfinite(f["scalars/spectra_seconds"][:nrec]).sum())
    one = spec = float("nan")
    full_cell = "- | -"
    if "full" in by:
        with h5py.File(list(by["full"].values())[-1][4] + "/diagnostics.h5", "r") as f:
            n2 = len(f["record/step"])
            # median over the passes after the first (which also sets up ScaLAPACK's workspaces)
            ds = f["scalars/diag_seconds"][1:n2] if n2 > 1 else f["scalars/diag_seconds"][:n2]
            ss = f["scalars/spectra_seconds"][1:n2] if n2 > 1 else f["scalars/spectra_seconds"][:n2]
            one, spec = float(np.median(ds)), float(np.median(ss))
        full_cell = f"{best['full']:.2f} | {100 * (best['full'] / best['off'] - 1):+.1f}%"
    q = lambda a: f"{100 * np.median(a):+.1f}% [{100 * np.percentile(a, 25):+.1f}, {100 * np.percentile(a, 75):+.1f}]"
    print(f"| {n} | {len(pairs)} | {best['off']:.2f} | {best['default']:.2f} | {q(rw)} | {q(rc)} | "
          f"{np.nanmedian(own):.1f}% | {full_cell} | {nrec} ({nspec}) | "
          + (f"{one:.4f} | {spec:.4f} |" if "full" in by else "- | - |"))
print("\n'one pass s' / 'spectra s': median per pass with every pass in full (diag_seconds, spectra_seconds); "
      "hamnet's own measure: the 'diagnostics cost' line each default run logs at its end (set-up of the file and "
      "BLACS grids plus every pass, as a share of the training time; what the time budget holds below max_overhead).")
EOF
