#!/usr/bin/env bash
# bench_table.sh - hamnet against PyTorch on the same training steps, side by side, one run.
#
#   scripts/bench_table.sh [--hamnet BIN] [--hamnet-double BIN] [--rows narrow,medium,wide]
#                          [--archs hamiltonian,leapfrog] [--threads "1 2"] [--steps N] [--repeat R]
#                          [--out DIR]
#
# Rows (tanh, Adam, synthetic data, hamnet's float build against PyTorch float32):
#   narrow  width   8, depth 256, batch 1024   goal: >= 12x PyTorch's samples/s
#   medium  width  64, depth 256, batch  512   goal: >= 3x
#   wide    width 512, depth  32, batch  512   goal: >= 1.4x, and stored mode >= 85% of the roofline
# For each row and architecture: PyTorch once (scripts/bench_pytorch.py: best of its thread
# settings and Adam variants; autograd stores every state, it has no reversible mode), then
# `hamnet bench` in reversible and stored mode, each the best of the --threads settings (same
# rule as for PyTorch), right after each other so that both see the same machine load. With
# --hamnet-double the double build is timed too (its own column; the ratio is the float build's).
# Prints a Markdown table and the command line; raw JSON lines go to --out (default: a temp dir).
# On a machine shared with other work wall-clock ratios are noisy; the table also gives the ratio
# of process CPU times with one thread (both sides run a 1-thread setting), which such load
# disturbs much less, and the roofline fraction in CPU time. --repeat R runs the whole set R
# times, one round after the other; each round's ratio is formed within the round, and the
# table gives the median over the rounds [min .. max], how many rounds met the goal, and judges
# the goal on the median (R = 1: the single round).
# Needs python3-torch (scripts/setup.sh --bench-deps) and a built hamnet (default build/hamnet).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmdline="scripts/bench_table.sh $*"

hamnet="$here/build/hamnet"
hamnet_double=""
rows="narrow,medium,wide"
archs="hamiltonian,leapfrog"
threads="1 2"
steps=10
repeat=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hamnet) hamnet=$2; shift ;;
    --hamnet-double) hamnet_double=$2; shift ;;
    --rows) rows=$2; shift ;;
    --archs) archs=$2; shift ;;
    --threads) threads=$2; shift ;;
    --steps) steps=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench_table.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$hamnet" ] || { echo "bench_table.sh: no hamnet binary at $hamnet (build it, or pass --hamnet)" >&2; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "bench_table.sh: PyTorch missing: scripts/setup.sh --deps-only --bench-deps (python3-torch)" >&2; exit 1; }
[ -n "$out" ] || out=$(mktemp -d /tmp/hamnet-bench.XXXXXX)
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

shape() {
  case "$1" in
    narrow) shape_args=(--width 8 --depth 256 --batch 1024) ;;
    medium) shape_args=(--width 64 --depth 256 --batch 512) ;;
    wide) shape_args=(--width 512 --depth 32 --batch 512) ;;
    *) echo "bench_table.sh: unknown row $1 (narrow, medium, wide)" >&2; exit 2 ;;
  esac
}

# Best (lowest ms_per_step) of the thread settings; prints that run's JSON, with the 1-thread
# run's CPU times added (cpu_ms_1thread, roofline_cpu_ms_1thread) when 1 is among the settings.
hamnet_best() {
  local bin=$1; shift
  local all="" t
  for t in $threads; do
    all+=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$bin" bench "$@" --threads "$t" --steps "$steps" --json)
    all+=$'\n'
  done
  printf '%s' "$all" | /usr/bin/python3 -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
best = min(runs, key=lambda r: r["ms_per_step"])
one = [r for r in runs if r["threads"] == 1]
if one:
    best["cpu_ms_1thread"] = one[0]["cpu_ms_per_step"]
    best["roofline_cpu_ms_1thread"] = one[0]["roofline_cpu_ms"]
print(json.dumps(best))'
}

[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "bench_table.sh: --repeat needs a positive integer (got $repeat)" >&2; exit 2; }
for round in $(seq 1 "$repeat"); do
  for row in ${rows//,/ }; do
    for arch in ${archs//,/ }; do
      shape "$row"
      args=(--arch "$arch" "${shape_args[@]}")
      echo "bench_table.sh: round $round/$repeat: $row / $arch: PyTorch ..." >&2
      py=$("$here/scripts/bench_pytorch.py" "${args[@]}" --steps "$steps" --threads "${threads// /,}" --json)
      for rev in on off; do
        echo "bench_table.sh: round $round/$repeat: $row / $arch: hamnet reversible $rev ..." >&2
        hf=$(hamnet_best "$hamnet" "${args[@]}" --reversible $rev)
        hd="null"
        [ -z "$hamnet_double" ] || hd=$(hamnet_best "$hamnet_double" "${args[@]}" --reversible $rev --no-roofline)
        printf '{"round": %d, "row": "%s", "arch": "%s", "reversible": "%s", "pytorch": %s, "hamnet": %s, "hamnet_double": %s}\n' \
          "$round" "$row" "$arch" "$rev" "$py" "$hf" "$hd" >> "$results"
      done
    done
  done
done

/usr/bin/python3 - "$results" "$cmdline" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
goal = {"narrow": 12.0, "medium": 3.0, "wide": 1.4}
groups = {}
for r in rows:  # one group per (row, arch, mode), its rounds in order
    groups.setdefault((r["row"], r["arch"], r["reversible"]), []).append(r)
rounds = max(len(g) for g in groups.values())

def spread(values, fmt):
    """the median, with [min .. max] when there are several rounds"""
    m = statistics.median(values)
    return fmt.format(m) + (f" [{fmt.format(min(values))} .. {fmt.format(max(values))}]" if len(values) > 1 else "")

print(f"\n`{sys.argv[2]}`\n")
if rounds > 1:
    print(f"{rounds} rounds; per round the ratio of that round's PyTorch and hamnet times; median [min .. max] "
          "over the rounds; the goal is judged on the medians.\n")
print("| row | arch | mode | hamnet ms/step (threads, path) | PyTorch ms/step (threads) | ratio | goal | "
      + ("rounds meeting it | " if rounds > 1 else "") +
      "ratio, CPU time, 1 thread | GFLOP/s | roofline GFLOP/s | % roofline (CPU, 1 thread) | peak RSS MiB | "
      "double ms/step |")
print("|---|---|---|---|---|---|---|" + ("---|" if rounds > 1 else "") + "---|---|---|---|---|---|")
for (row, arch, rev), rs in groups.items():
    g = goal[row]
    need_roofline = row == "wide" and rev == "off"
    ratios, fracs, cpu_ratios, cpu_fracs, met = [], [], [], [], 0
    for r in rs:
        h, p = r["hamnet"], r["pytorch"]
        ratio = p["ms_per_step"] / h["ms_per_step"]
        frac = 100 * h["gflops"] / h["roofline_gflops"] if h["roofline_gflops"] > 0 else float("nan")
        ratios.append(ratio)
        fracs.append(frac)
        if "cpu_ms_1thread" in h and "cpu_ms_per_step_1thread" in p:
            cpu_ratios.append(p["cpu_ms_per_step_1thread"] / h["cpu_ms_1thread"])
        if h.get("roofline_cpu_ms_1thread", 0) > 0:
            cpu_fracs.append(100 * h["roofline_cpu_ms_1thread"] / h["cpu_ms_1thread"])
        met += ratio >= g and (not need_roofline or frac >= 85)
    # the round with the median ratio (the lower one for an even count) gives the single-run columns
    mid = sorted(range(len(rs)), key=lambda i: ratios[i])[(len(rs) - 1) // 2]
    h, p, d = rs[mid]["hamnet"], rs[mid]["pytorch"], rs[mid]["hamnet_double"]
    ok = statistics.median(ratios) >= g and (not need_roofline or statistics.median(fracs) >= 85)
    goal_txt = f">= {g:g}x" + (" & 85%" if need_roofline else "")
    mode = "reversible" if rev == "on" else "stored"
    dbl = spread([r["hamnet_double"]["ms_per_step"] for r in rs if r["hamnet_double"]], "{:.1f}") if d else "-"
    cpu_ratio = spread(cpu_ratios, "{:.1f}") + "x" if cpu_ratios else "-"
    cpu_frac = f" ({statistics.median(cpu_fracs):.0f}%)" if cpu_fracs else ""
    print(f"| {row} | {arch} | {mode} | {spread([r['hamnet']['ms_per_step'] for r in rs], '{:.2f}')} "
          f"({h['threads']}, {h['kernel']}) | {spread([r['pytorch']['ms_per_step'] for r in rs], '{:.2f}')} "
          f"({p['threads']}) | {spread(ratios, '{:.2f}')}x | {goal_txt} {'met' if ok else 'MISSED'} | "
          + (f"{met} of {len(rs)} | " if rounds > 1 else "") +
          f"{cpu_ratio} | {h['gflops']:.1f} | {h['roofline_gflops']:.1f} | {statistics.median(fracs):.0f}%{cpu_frac} | "
          f"{h['peak_rss_mb']:.0f} | {dbl} |")
print(f"\nraw results: {sys.argv[1]}")
EOF
