#!/usr/bin/python3
"""accuracy_table.py - the architecture comparison of README "Results" (issue 3, items 2 and 5).

For each data set (ellipses, swissroll, peaks) it trains, for every seed:
  * the shipped Hamiltonian example config jobs/<data>_hamiltonian.ini (depth 256);
  * resnet, antisym and leapfrog at exactly the same settings (--set model.arch=...);
  * each architecture at its own settings, where jobs/<data>_<arch>.ini exists;
  * the Hamiltonian config trained multilevel from 16 to 256 layers (--set train.levels=5).
and prints Markdown tables: final and best validation accuracy (mean, min over seeds), wall time
of the whole run, and the time until the validation accuracy first reached the data set's target.
Every run is a real `hamnet train` on one rank (OMP_NUM_THREADS=1 unless --threads).

    scripts/accuracy_table.py [--seeds 3] [--data ellipses,swissroll,peaks] [--quick]
                              [--out runs/accuracy] [--threads 1] [--hamnet build/hamnet]

--quick runs one seed with a fifth of the epochs (a smoke test of the script, not the result).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = {"ellipses": 0.995, "swissroll": 0.99, "peaks": 0.95}
TARGET_NOW = 0.0
ARCHS = ["hamiltonian", "leapfrog", "antisym", "resnet"]


def history(run_dir):
    """/progress/history of the newest checkpoint: rows (epoch, train_loss, train_acc, val_loss,
    val_acc, lr, seconds, depth, reg)."""
    ckpts = sorted(glob.glob(os.path.join(run_dir, "ckpt-*.h5")))
    if not ckpts:
        return None
    with h5py.File(ckpts[-1], "r") as f:
        return np.asarray(f["progress/history"])


def train(hamnet, config, run_dir, sets, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = [hamnet, "train", config, "--run-dir", run_dir, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    wall = time.time() - t0
    h = history(run_dir)
    if rc != 0 or h is None:
        return {"ok": False, "wall": wall, "rc": rc}
    val = h[:, 4]
    reached = np.nonzero(val >= TARGET_NOW)[0]
    return {
        "ok": True,
        "wall": wall,
        "final": float(val[-1]),
        "best": float(np.nanmax(val)),
        "t_target": float(h[: reached[0] + 1, 6].sum()) if len(reached) else None,
        "epochs": int(h[-1, 0]),
    }


def config_epochs(path):
    with open(path) as f:
        return [int(l.split("=")[1].split(";")[0]) for l in f if l.strip().startswith("epochs")][0]


def settings(path, arch=None):
    """The key = value lines of a config (comments dropped), with the arch replaced."""
    lines = []
    with open(path) as f:
        for line in f:
            line = line.split(";")[0].strip()
            if line.startswith("arch") and arch:
                line = f"arch = {arch}"
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def summarize(results):
    ok = [r for r in results if r["ok"]]
    if not ok:
        return "failed", "", "", ""
    fin = np.array([r["final"] for r in ok])
    best = np.array([r["best"] for r in ok])
    wall = np.array([r["wall"] for r in ok])
    tt = [r["t_target"] for r in ok]
    reached = [t for t in tt if t is not None]
    t_str = (f"{np.mean(reached):.1f} s" if len(reached) == len(tt) else
             f"{len(reached)}/{len(tt)} seeds" + (f", {np.mean(reached):.1f} s" if reached else ""))
    return (f"{100 * fin.mean():.2f} (min {100 * fin.min():.2f})", f"{100 * best.mean():.2f}",
            f"{wall.mean():.1f} s (max {wall.max():.1f})", t_str)


def main():
    global TARGET_NOW
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default="ellipses,swissroll,peaks")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-multilevel", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "accuracy"))
    p.add_argument("--hamnet", default=os.path.join(ROOT, "build", "hamnet"))
    a = p.parse_args()
    seeds = 1 if a.quick else a.seeds
    os.makedirs(a.out, exist_ok=True)
    all_rows = []
    for data in a.data.split(","):
        TARGET_NOW = TARGET[data]
        ddir = os.path.join(ROOT, "data", data)
        if not os.path.exists(os.path.join(ddir, "train.h5")):
            subprocess.run([a.hamnet, "datagen", data, "--out", ddir], check=True)
        base = os.path.join(ROOT, "jobs", f"{data}_hamiltonian.ini")
        variants = []
        for arch in a.archs.split(","):
            variants.append((arch, "same settings", base, [f"model.arch={arch}"]))
        for arch in a.archs.split(","):
            own = os.path.join(ROOT, "jobs", f"{data}_{arch}.ini")
            if arch != "hamiltonian" and os.path.exists(own) and settings(own) != settings(base, arch):
                variants.append((arch, "own settings", own, []))
        if not a.no_multilevel:
            # 1.5x the epochs, split over 5 levels: still far fewer layer-epochs than from scratch
            ml_epochs = (3 * config_epochs(base)) // 2
            variants.append(("hamiltonian", f"multilevel 16->256, {ml_epochs} epochs", base,
                             ["train.levels=5", f"train.epochs={ml_epochs}"]))
        for arch, label, cfg, sets in variants:
            results = []
            for seed in range(1, seeds + 1):
                extra = list(sets) + [f"train.seed={seed}", f"data.train={ddir}/train.h5", f"data.val={ddir}/val.h5",
                                      "diagnostics.every_epochs=0"]
                if a.quick:
                    extra.append(f"train.epochs={max(5, config_epochs(cfg) // 5)}")
                run = os.path.join(a.out, "runs", f"{data}-{arch}-{label.split()[0]}-{seed}")
                subprocess.run(["rm", "-rf", run])
                r = train(a.hamnet, cfg, run, extra, a.threads)
                r.update(data=data, arch=arch, settings=label, seed=seed, config=os.path.relpath(cfg, ROOT))
                results.append(r)
                print(json.dumps(r), flush=True)
            all_rows.append((data, arch, label, os.path.relpath(cfg, ROOT), summarize(results)))
    with open(os.path.join(a.out, "accuracy.md"), "w") as out:
        for w in (sys.stdout, out):
            w.write(f"\n{seeds} seed(s) per row; one rank, {a.threads} thread(s); targets: "
                    + ", ".join(f"{d} {100 * t:g}%" for d, t in TARGET.items()) + "\n\n")
            w.write("| data | arch | settings | val acc final % (min over seeds) | best % | wall time | time to target |\n")
            w.write("|---|---|---|---|---|---|---|\n")
            for data, arch, label, cfg, s in all_rows:
                w.write(f"| {data} | {arch} | {label} (`{cfg}`) | {s[0]} | {s[1]} | {s[2]} | {s[3]} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
