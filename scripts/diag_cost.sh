#!/usr/bin/env bash
# diag_cost.sh - what the diagnostics cost: each configuration is trained with diagnostics off
# ([diagnostics] every_epochs = 0), at the default cadence (every_epochs = 1 with the default
# time budget max_overhead = 0.04), and with every pass in full (max_overhead = 0), REPEATS times
# interleaved; prints the best wall times, the overhead of the default against off (the
# README's "<= 5%" claim), and from the diagnostics files the cost of one pass and of its
# ScaLAPACK spectra.
#
#   scripts/diag_cost.sh [--out DIR] [--repeats R] [--ranks P] [--hamnet BIN] [--only NAME] [--scale K]
#
# Defaults: DIR runs/diag_cost, R 3, P 1, BIN build/hamnet, K 1 (--scale K trains K times the
# epochs below: longer runs, in which the fixed cost of the first pass weighs less). Configurations (NAME):
#   ham512   ellipses, hamiltonian, width 8, depth 512, T 10, 60 epochs (the depth study's network)
#   res512   the same with resnet (Euler: eigenvalues as well, about 2x the spectra)
#   anti128  peaks, antisym, width 32, depth 128, T 5, 12 epochs (8000 samples)
#   wide256  peaks, resnet, width 256, depth 8, T 1, 8 epochs (layers at the distributed width:
#            ScaLAPACK over all ranks)
# Timings on a shared or busy machine are noisy: rerun on a quiet one before quoting them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/runs/diag_cost"
repeats=3 ranks=1 only="" scale=1
hamnet="$here/build/hamnet"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --repeats) repeats=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --hamnet) hamnet=$2; shift ;;
    --only) only=$2; shift ;;
    --scale) scale=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

names=(ham512 res512 anti128 wide256)
[ -n "$only" ] && names=("$only")
results="$out/results.tsv"
: >"$results"
for name in "${names[@]}"; do
  for ((r = 1; r <= repeats; r++)); do
    for mode in "${modes[@]}"; do
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
        "${sets[@]}" --quiet >"$dir.log" 2>&1 || { echo "diag_cost.sh: $name $mode failed: $(tail -3 "$dir.log")" >&2; exit 1; }
      read -r wall user sys <"$dir.time"
      cpu=$(echo "$user + $sys" | bc)
      printf '%s\t%s\t%d\t%s\t%s\t%s\n' "$name" "$mode" "$r" "$wall" "$dir" "$cpu" >>"$results"
      echo "$name $mode #$r: wall $wall s, CPU $cpu s"
    done
  done
done

/usr/bin/python3 - "$results" "$ranks" <<'EOF'
import sys, h5py, numpy as np
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ranks = sys.argv[2]
names = list(dict.fromkeys(r[0] for r in rows))
print(f"\n{ranks} rank(s). Wall and CPU time of `hamnet train`, the best of the repeats (the least disturbed by "
      f"other load; every run in results.tsv); overhead against diagnostics off.")
print("| config | off s | default s | overhead | full s | overhead | CPU off s | CPU default s | CPU overhead | records (spectra) at default | one pass s | spectra s | in-run share (default) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    t = {m: min(float(r[3]) for r in rows if r[0] == n and r[1] == m) for m in ("off", "default", "full")}
    c = {m: min(float(r[5]) for r in rows if r[0] == n and r[1] == m) for m in ("off", "default", "full")}
    dflt = [r[4] for r in rows if r[0] == n and r[1] == "default"][-1]
    full = [r[4] for r in rows if r[0] == n and r[1] == "full"][-1]
    with h5py.File(dflt + "/diagnostics.h5", "r") as f:
        nrec = len(f["record/step"])
        nspec = int(np.isfinite(f["scalars/spectra_seconds"][:nrec]).sum())
        share = float(f["scalars/diag_overhead"][nrec - 1]) if nrec else float("nan")
    with h5py.File(full + "/diagnostics.h5", "r") as f:
        n2 = len(f["record/step"])
        # median over the passes after the first (which also sets up ScaLAPACK's workspaces)
        ds = f["scalars/diag_seconds"][1:n2] if n2 > 1 else f["scalars/diag_seconds"][:n2]
        ss = f["scalars/spectra_seconds"][1:n2] if n2 > 1 else f["scalars/spectra_seconds"][:n2]
        one, spec = float(np.median(ds)), float(np.median(ss))
    print(f"| {n} | {t['off']:.2f} | {t['default']:.2f} | {100 * (t['default'] / t['off'] - 1):+.1f}% | "
          f"{t['full']:.2f} | {100 * (t['full'] / t['off'] - 1):+.1f}% | {c['off']:.2f} | {c['default']:.2f} | "
          f"{100 * (c['default'] / c['off'] - 1):+.1f}% | {nrec} ({nspec}) | {one:.4f} | {spec:.4f} | "
          f"{100 * share:.1f}% |")
print("\n'one pass s' / 'spectra s': median per pass with every pass in full (diag_seconds, spectra_seconds); "
      "'in-run share': the time budget's own measure (diag_overhead of the last record).")
EOF
