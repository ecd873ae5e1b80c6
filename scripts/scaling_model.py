#!/usr/bin/python3
"""scaling_model.py - the data-parallel scaling model of hamnet (issue 5, figure 4).

  scripts/scaling_model.py --sweep SWEEP.tsv (--core-sample-ms T | --train-log LOG --batch B) [options]

Measured inputs (scripts/mpi_scaling.sh produces both):
  * SWEEP.tsv  from `test_exchange --sweep` on the ranks of one node
               (scripts/mpi_allreduce_sweep.sh): best time of MPI_Iallreduce + MPI_Wait (not in
               place, as the gradient exchange calls it) per message size. Fitted by least
               squares on relative errors over --fit-min .. --fit-max bytes (the bucket sizes):
                   T_node(m) = alpha_node + m / bw_node          (on-node alpha-beta model)
  * the compute time per sample of ONE CORE (--core-sample-ms, or from a `hamnet train` log of
    1 rank x 1 thread: its "steps: ... median X ms" line over --batch samples per step).

Model of one training step on P nodes, R ranks per node (R = 1: one rank per node with OpenMP
threads on all C cores, the recommended hybrid layout), global batch G, b = G / P per node:
  T_comp     = b * t_core / (C * e_omp)        (e_omp: threading efficiency, default 1 - stated)
  per bucket of m bytes:
    ring allreduce across nodes (assumed interconnect, labelled in the output):
      T_ring(m) = 2 (P-1) alpha_net + 2 (P-1)/P * m / bw_net + (P-1)/P * m / bw_reduce
    plus, for R > 1, the on-node allreduce before/after it: T_node(m) (measured fit)
  T_comm     = K * T_bucket(M / K)             M gradient bytes in K = ceil(M / bucket) buckets
  overlap: buckets run during the backward pass, a fraction f of the step (measured from the
  bucket timeline of a 2-rank run); the last bucket (opening and first layers) cannot hide:
  T_exposed  = max(T_bucket, T_comm - f * T_comp)
  efficiency E = T_comp / (T_comp + T_exposed)
For each node count the bucket size (64 KiB .. 64 MiB) that needs the smallest per-node batch
for E >= --target is chosen (the ring's latency term grows with P times the number of buckets,
so large jobs want larger buckets: [parallel] bucket_kb).
"""
import argparse
import math
import re
import sys


def read_sweep(path, column, fit_min, fit_max):
    sizes, times = [], []
    header = None
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        cells = line.split()
        if header is None:
            header = cells
            if column not in header:
                sys.exit(f"{path}: no column {column} (have {', '.join(header)})")
            continue
        m = float(cells[0])
        t = float(cells[header.index(column)])
        if fit_min <= m <= fit_max:
            sizes.append(m)
            times.append(t)
    if len(sizes) < 2:
        sys.exit(f"{path}: fewer than 2 message sizes in {fit_min:g}..{fit_max:g} bytes to fit")
    return sizes, times


def fit_alpha_beta(sizes, times):
    """Least squares on relative errors: minimise sum ((a + b m - t) / t)^2."""
    s11 = s12 = s22 = r1 = r2 = 0.0
    for m, t in zip(sizes, times):
        w = 1.0 / (t * t)
        s11 += w
        s12 += w * m
        s22 += w * m * m
        r1 += w * t
        r2 += w * m * t
    det = s11 * s22 - s12 * s12
    a = (r1 * s22 - r2 * s12) / det
    b = (s11 * r2 - s12 * r1) / det
    if a < 0:  # latency below resolution: refit through the origin
        a, b = 0.0, r2 / s22
    return a, b


def core_ms_from_log(path, batch):
    """Per-sample time of a 1 rank x 1 thread run: its CPU time per step when the log has it (on a
    shared machine the wall time also counts the time the process waited for a core), else the
    wall-time median."""
    text = open(path).read()
    cpu = re.findall(r"CPU time per step ([0-9.]+) ms", text)
    wall = re.findall(r"steps: \d+, median ([0-9.]+) ms", text)
    if not cpu and not wall:
        sys.exit(f"{path}: no 'steps: N, median X ms' line (a hamnet train log is needed)")
    return (float(cpu[-1]) if cpu else float(wall[-1])) / batch, "CPU time" if cpu else "wall time"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, help="TSV from test_exchange --sweep on one node")
    p.add_argument("--column", default="iallreduce_best_s", help="sweep column to fit (default %(default)s)")
    p.add_argument("--fit-min", type=float, default=4096, help="smallest message size fitted, bytes")
    p.add_argument("--fit-max", type=float, default=4 << 20, help="largest message size fitted, bytes")
    p.add_argument("--core-sample-ms", type=float, help="compute time per sample on one core, ms")
    p.add_argument("--train-log", help="hamnet train log of 1 rank x 1 thread to take it from")
    p.add_argument("--batch", type=int, default=128, help="samples per step in --train-log")
    p.add_argument("--cores", type=int, default=2, help="cores per node (C)")
    p.add_argument("--omp-efficiency", type=float, default=1.0, help="threading efficiency on a node (e_omp)")
    p.add_argument("--ranks-per-node", type=int, default=1, help="R; > 1 adds the measured on-node allreduce")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=256)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--bytes-per-param", type=int, default=4, help="4 for float builds, 8 for double")
    p.add_argument("--alpha-us", type=float, default=1.5, help="interconnect latency per message, us")
    p.add_argument("--bw-gbs", type=float, default=23.0, help="interconnect bandwidth per direction, GB/s")
    p.add_argument("--reduce-gbs", type=float, default=5.0, help="local summing of received data, GB/s")
    p.add_argument("--net-label", default="HDR InfiniBand 200 Gb/s - assumed: alpha_net = 1.5 us MPI latency, "
                                          "bw_net = 23 GB/s per direction; bw_reduce = 5 GB/s (one core summing)")
    p.add_argument("--overlap-fraction", type=float,
                   help="f: share of the step during which buckets can run (backward pass after the first "
                        "bucket), measured from HAMNET_EXCHANGE_TRACE; default 0.7 (assumed)")
    p.add_argument("--target", type=float, default=0.8, help="efficiency goal")
    p.add_argument("--nodes", default="1,2,8,64,512", help="node counts of the table")
    p.add_argument("--global-batches", default="512,4096", help="global batches for the strong-scaling columns")
    p.add_argument("--max-global-batch", type=int, default=8192,
                   help="largest global batch considered trainable without retuning (for the 'largest node count')")
    a = p.parse_args()
    f_label = "measured" if a.overlap_fraction is not None else "assumed"
    if a.overlap_fraction is None:
        a.overlap_fraction = 0.7

    sizes, times = read_sweep(a.sweep, a.column, a.fit_min, a.fit_max)
    alpha_node, beta_node = fit_alpha_beta(sizes, times)
    worst = max(abs(alpha_node + beta_node * m - t) / t for m, t in zip(sizes, times))
    source = "given"
    if a.core_sample_ms is None:
        if not a.train_log:
            sys.exit("give --core-sample-ms or --train-log")
        a.core_sample_ms, source = core_ms_from_log(a.train_log, a.batch)
    t_sample = a.core_sample_ms / 1e3 / (a.cores * a.omp_efficiency)  # per sample, one node

    n, N, C = a.width, a.depth, a.classes
    params = N * (n * n + n) + C * n + C
    M = params * a.bytes_per_param
    alpha_net, bw_net, bw_red = a.alpha_us * 1e-6, a.bw_gbs * 1e9, a.reduce_gbs * 1e9
    buckets_kb = [64 << i for i in range(11)]  # 64 KiB .. 64 MiB

    def t_bucket(P, m):
        t = 0.0
        if a.ranks_per_node > 1:
            t += alpha_node + beta_node * m
        if P > 1:
            t += 2 * (P - 1) * alpha_net + 2 * (P - 1) / P * m / bw_net + (P - 1) / P * m / bw_red
        return t

    def comm(P, kb):
        K = max(1, math.ceil(M / (kb * 1024)))
        tb = t_bucket(P, M / K)
        return K * tb, tb

    def eff(P, b, kb):
        tc = b * t_sample
        total, tb = comm(P, kb)
        exposed = max(tb, total - a.overlap_fraction * tc) if total > 0 else 0.0
        return tc / (tc + exposed)

    def min_batch(P, kb):
        if eff(P, 1, kb) >= a.target:
            return 1
        b = 1
        while eff(P, b, kb) < a.target:
            b *= 2
            if b > 1 << 30:
                return None
        lo, hi = b // 2, b
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if eff(P, mid, kb) >= a.target else (mid, hi)
        return hi

    def best_bucket(P):
        """(kb, per-node batch) of the bucket size that reaches the target with the smallest batch."""
        best = None
        for kb in buckets_kb:
            b = min_batch(P, kb)
            if b is not None and (best is None or b < best[1]):
                best = (kb, b)
        return best

    tpr = a.cores // a.ranks_per_node
    layout = (f"{a.ranks_per_node} ranks x {tpr} thread{'s' if tpr > 1 else ''}" if a.ranks_per_node > 1
              else f"1 rank x {a.cores} thread{'s' if a.cores > 1 else ''}")
    print(f"# hamnet scaling model: width {n}, depth {N} ({params} parameters, {M / 1e6:.1f} MB of gradient at "
          f"{a.bytes_per_param} bytes); nodes of {a.cores} cores, {layout} per node")
    print(f"- measured on-node allreduce ({a.column}, {len(sizes)} sizes {int(sizes[0])}..{int(sizes[-1])} B): "
          f"alpha_node = {alpha_node * 1e6:.1f} us, bw_node = {1 / beta_node / 1e9:.2f} GB/s (worst fit error "
          f"{100 * worst:.0f}%)" + ("" if a.ranks_per_node > 1 else " - not used with 1 rank per node"))
    print(f"- measured compute: {a.core_sample_ms:.3f} ms per sample on one core ({source}) -> "
          f"{t_sample * 1e3:.4f} ms per sample per node (C = {a.cores}, e_omp = {a.omp_efficiency:g})")
    print(f"- interconnect: {a.net_label}; ring allreduce")
    print(f"- overlap fraction f = {a.overlap_fraction:g} ({f_label})")
    Gs = [int(x) for x in a.global_batches.split(",") if x]
    head = ("| nodes | T_comm, 1 MiB buckets | best bucket | T_comm, best bucket | "
            + " | ".join(f"E at G = {G}" for G in Gs)
            + f" | per-node batch for E >= {a.target:.0%} | global batch it needs |")
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for P in [int(x) for x in a.nodes.split(",") if x]:
        bb = best_bucket(P)
        kb = bb[0] if bb else 1024
        cells = [f"{eff(P, G / P, kb):.1%}" if G >= P else "G < P" for G in Gs]
        need, glob = (f"{bb[1]}", f"{bb[1] * P}") if bb else ("unreachable", "-")
        kb_text = f"{kb} KiB" if P > 1 or a.ranks_per_node > 1 else "-"
        print(f"| {P} | {comm(P, 1024)[0] * 1e3:.2f} ms | {kb_text} | {comm(P, kb)[0] * 1e3:.2f} ms | "
              + " | ".join(cells) + f" | {need} | {glob} |")
    print()
    for G in Gs:
        best = 1
        P = 1
        while P <= G:
            bb = best_bucket(P)
            if bb and eff(P, G / P, bb[0]) >= a.target:
                best = P
            P *= 2
        print(f"- strong scaling at global batch {G}: E >= {a.target:.0%} up to {best} nodes ({G / best:g} samples "
              f"per node)")
    P, best = 1, (1, best_bucket(1))
    while P <= 1 << 16:
        bb = best_bucket(P)
        if bb and bb[1] * P <= a.max_global_batch:
            best = (P, bb)
        P *= 2
    P, (kb, b) = best
    print(f"- largest power-of-two node count with E >= {a.target:.0%} at a global batch <= {a.max_global_batch}: "
          f"{P} nodes, global batch {b * P} ({b} per node, buckets of {kb} KiB)")


if __name__ == "__main__":
    main()
