#!/usr/bin/python3
"""plot_sweep.py - compare the diagnostics of several hamnet runs in a few PNG figures.

    scripts/plot_sweep.py RUN [RUN ...] --out DIR [--labels L1,L2,...] [--csv FILE] [--title TEXT]

RUN is a run folder (holding diagnostics.h5) or a diagnostics.h5 file. Writes into DIR:
  sweep_grad_profile.png   ||dL/dy_j|| over layer time t_j / T at each run's newest record
  sweep_y_profile.png      ||y_j|| likewise
  sweep_grad_ratio.png     max_j/min_j ||dL/dy_j|| over the epochs
  sweep_amplification.png  the monitor's accumulated amplification over the epochs, with the band
  sweep_accuracy.png       validation (else training) accuracy over the epochs
and prints one table row per run (label, arch, depth, T, records, newest max_j/min_j
||dL/dy_j|| and its largest value over the records, accumulated amplification and flags,
accuracy). --csv writes the same table as CSV for reports. Runs without records are listed
and left out of the figures. Uses plot_diagnostics.load / summary.
"""
import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_diagnostics as pdg  # noqa: E402

COLUMNS = ["label", "arch", "width", "depth", "final_time", "records", "epoch", "grad_ratio", "grad_ratio_max",
           "grad_y0", "grad_yN", "amplification", "flags", "flagged_records", "max_h_sv_max", "val_accuracy",
           "train_accuracy", "path"]


def label_of(path):
    p = os.path.abspath(path)
    return os.path.basename(os.path.dirname(p)) if p.endswith(".h5") else os.path.basename(p.rstrip("/"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("runs", nargs="+", metavar="RUN")
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--labels", help="comma-separated labels, one per run (default: the run folder names)")
    ap.add_argument("--csv", help="also write the table as CSV")
    ap.add_argument("--title", default="", help="prefix for the figure titles")
    a = ap.parse_args(argv)
    labels = a.labels.split(",") if a.labels else [label_of(r) for r in a.runs]
    if len(labels) != len(a.runs):
        ap.error(f"--labels has {len(labels)} entries for {len(a.runs)} runs")
    runs, rows, status = [], [], 0
    for path, label in zip(a.runs, labels):
        try:
            run = pdg.load(path)
        except (OSError, ValueError, KeyError) as e:
            print(f"plot_sweep: {e}", file=sys.stderr)
            status = 1
            continue
        s = pdg.summary(run)
        s["label"] = label
        rows.append(s)
        if run["records"] > 0:
            runs.append((label, run))

    # table
    hdr = f"{'run':<24} {'arch':<12} {'depth':>5} {'T':>6} {'rec':>4} {'max/min dL/dy':>14} {'(largest)':>10} " \
          f"{'amplification':>13} {'flags':<14} {'val acc':>7}"
    print(hdr)
    for s in rows:
        if s["records"] == 0:
            print(f"{s['label']:<24} {s['arch']:<12} {s['max_depth']:>5} {s['final_time']:>6g}    0  (no records)")
            continue
        print(f"{s['label']:<24} {s['arch']:<12} {s['depth']:>5} {s['final_time']:>6g} {s['records']:>4} "
              f"{s['grad_ratio']:>14.4g} {s['grad_ratio_max']:>10.4g} {s['amplification']:>13.4g} "
              f"{pdg.flag_text(s['flags']):<14} {s['val_accuracy']:>7.4f}")
    if a.csv:
        os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            for s in rows:
                w.writerow({k: s.get(k, "") for k in COLUMNS})
        print(f"wrote {a.csv}")
    if not runs:
        return status or 1

    plt = pdg._plt()
    os.makedirs(a.out, exist_ok=True)
    t = a.title + ": " if a.title else ""

    def save(fig, name):
        path = os.path.join(a.out, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {path}")

    for key, name, title in (("layers/grad_y_norm", "sweep_grad_profile.png", "||dL/dy_j|| (newest record)"),
                             ("layers/y_norm", "sweep_y_profile.png", "||y_j|| (newest record)")):
        fig, ax = plt.subplots(figsize=(9, 5))
        for label, run in runs:
            d = int(run["record/depth"][-1])
            ax.semilogy(np.arange(d + 1) / d, run[key][-1, :d + 1], label=f"{label} (depth {d})")
        ax.set_xlabel("t_j / T = j / depth")
        ax.set_title(t + title)
        ax.legend(fontsize=8)
        save(fig, name)

    fig, ax = plt.subplots(figsize=(9, 5))
    for label, run in runs:
        g = run["layers/grad_y_norm"]
        ax.semilogy(run["record/epoch"], np.nanmax(g, axis=1) / np.nanmin(g, axis=1), "o-", ms=3, label=label)
    ax.axhline(10.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_title(t + "max_j / min_j ||dL/dy_j||")
    ax.legend(fontsize=8)
    save(fig, "sweep_grad_ratio.png")

    fig, ax = plt.subplots(figsize=(9, 5))
    bands = set()
    for label, run in runs:
        amp = run["monitor/amplification"]
        ok = np.isfinite(amp)
        if ok.any():
            ax.semilogy(run["record/epoch"][ok], amp[ok], "o-", ms=3, label=label)
        bands.add((float(run["attrs"]["band_low"]), float(run["attrs"]["band_high"])))
    for lo, hi in bands:
        ax.axhline(lo, color="r", ls="--", lw=1)
        ax.axhline(hi, color="r", ls="--", lw=1)
    ax.set_xlabel("epoch")
    ax.set_title(t + "accumulated amplification (frozen coefficients); red: band")
    ax.legend(fontsize=8)
    save(fig, "sweep_amplification.png")

    fig, ax = plt.subplots(figsize=(9, 5))
    for label, run in runs:
        acc = run["scalars/val_accuracy"]
        which = "val"
        if not np.isfinite(acc).any():
            acc, which = run["scalars/train_accuracy"], "train"
        ax.plot(run["record/epoch"], acc, "o-", ms=3, label=f"{label} ({which})")
    ax.set_xlabel("epoch")
    ax.set_title(t + "accuracy")
    ax.legend(fontsize=8)
    save(fig, "sweep_accuracy.png")
    return status


if __name__ == "__main__":
    sys.exit(main())
