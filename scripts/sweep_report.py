#!/usr/bin/python3
"""sweep_report.py - tables and plots of a depth sweep (jobs/sweep.sh, scripts/sweep_local.sh).

    /usr/bin/python3 scripts/sweep_report.py SWEEP_DIR [--noise "0.05 0.1 0.2"] [--target 0.9]
                                             [--hamnet build/hamnet] [--out DIR] [--no-eval]

Reads every element of SWEEP_DIR/plan.tsv (or, without a plan, every run folder under
SWEEP_DIR/runs/ or SWEEP_DIR/) and writes to SWEEP_DIR/report/ (or --out):

  runs.csv      one row per element (planned run): status and every measured quantity
  summary.csv   one row per architecture x depth x data fraction: mean, spread over seeds
  report.md     the tables in Markdown, with how each number was obtained
  *.png         accuracy / generalisation gap / gradient ratio / amplification / time per epoch
                against depth, accuracy against input noise and against training-data fraction

Sources, per run folder:
  newest readable ckpt-*.h5   /progress/history (one row per finished epoch: train and val
                              accuracy, seconds), /progress attributes, /config (the run's
                              resolved settings: arch, depth, fraction, seed, epochs, data files)
  jobs.log                    the job scripts' record: "finished", "failed rc=3" (= diverged), ...
  diagnostics.h5              (hamnet/diag.h) newest record: ||dL/dy_j|| for j = 0..depth
                              (/layers/grad_y_norm) and the accumulated amplification
                              (/monitor/amplification); "n/a" when the file or value is missing
  `hamnet eval --noise S`     accuracy of the final checkpoint on the validation set (training set
                              when the run has none) with N(0, S^2) added to every input
                              coordinate (seed 1); cached in RUN/report_eval.json

Honesty rules: means are over the seeds whose run FINISHED; the number of such seeds is always
shown (n=k/planned); spread is the sample standard deviation (n >= 2) and the min..max range;
a missing quantity is "n/a", never 0; runs that diverged or failed are counted and listed.
"""
import argparse
import configparser
import csv
import glob
import json
import math
import os
import re
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    sys.exit("sweep_report.py: needs h5py and numpy (Debian: python3-h5py python3-numpy); run it "
             "with /usr/bin/python3, not another python3 on PATH (%s)" % e)

NA = "n/a"
HIST_COLS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "depth"]


# ---------------------------------------------------------------------------------------------
# reading one run folder

def newest_checkpoint(run_dir):
    """(path, h5 data) of the newest ckpt-*.h5 that reads back; (None, None) when there is none."""
    paths = sorted(glob.glob(os.path.join(run_dir, "ckpt-*.h5")), reverse=True)
    for p in paths:
        try:
            with h5py.File(p, "r") as f:
                prog = dict(f["progress"].attrs)
                hist = np.array(f["progress/history"][()], dtype=float)
                cols = f["progress/history"].attrs.get("columns", ",".join(HIST_COLS))
                if isinstance(cols, bytes):
                    cols = cols.decode()
                text = f["config"].attrs["text"]
                if isinstance(text, bytes):
                    text = text.decode()
                model = dict(f["model"].attrs)
            if hist.ndim == 1:
                hist = hist.reshape(-1, len(HIST_COLS)) if hist.size else np.zeros((0, len(HIST_COLS)))
            return p, {"progress": prog, "history": hist, "columns": cols.split(","), "config": text,
                       "model": model}
        except (OSError, KeyError, ValueError) as e:
            print("sweep_report.py: warning: skipping unreadable checkpoint %s (%s)" % (p, e), file=sys.stderr)
    return None, None


def parse_config(text):
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    cp.read_string(text)
    return {"%s.%s" % (s, k): v for s in cp.sections() for k, v in cp.items(s)}


def last_job_event(run_dir):
    """The last line of RUN/jobs.log as (event text) or None."""
    path = os.path.join(run_dir, "jobs.log")
    try:
        with open(path) as f:
            lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    except OSError:
        return None, 0
    starts = sum(1 for l in lines if len(l) >= 4 and l[3].startswith("start"))
    return (lines[-1][3] if lines and len(lines[-1]) >= 4 else None), starts


def read_diagnostics(run_dir):
    """Final ||dL/dy_0|| / ||dL/dy_N|| and accumulated amplification from diagnostics.h5."""
    out = {"grad_ratio": math.nan, "amplification": math.nan, "diag_records": 0}
    path = os.path.join(run_dir, "diagnostics.h5")
    if not os.path.exists(path):
        return out
    try:
        with h5py.File(path, "r") as f:
            if "record/step" not in f:
                return out
            n = f["record/step"].shape[0]
            out["diag_records"] = n
            if n == 0:
                return out
            depth = int(f["record/depth"][n - 1]) if "record/depth" in f else None
            if "layers/grad_y_norm" in f and depth is not None:
                g = np.array(f["layers/grad_y_norm"][n - 1], dtype=float)
                if depth < g.size and g[depth] > 0 and math.isfinite(g[0]) and math.isfinite(g[depth]):
                    out["grad_ratio"] = float(g[0] / g[depth])
            elif "monitor/grad_y_ratio" in f:
                out["grad_ratio"] = float(f["monitor/grad_y_ratio"][n - 1])
            if "monitor/amplification" in f:
                out["amplification"] = float(f["monitor/amplification"][n - 1])
    except (OSError, KeyError, ValueError, IndexError) as e:
        print("sweep_report.py: warning: %s: %s (diagnostics reported as n/a)" % (path, e), file=sys.stderr)
    return out


def eval_noise(hamnet, ckpt, data, levels, run_dir, threads):
    """Accuracy of ckpt on data at each noise level: {level: accuracy or nan}. Cached per run."""
    res = {}
    if not levels:
        return res
    cache_path = os.path.join(run_dir, "report_eval.json")
    try:
        with open(cache_path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    st = os.stat(ckpt)
    key_base = "%s|%d|%d|%s" % (os.path.basename(ckpt), st.st_size, int(st.st_mtime), data)
    changed = False
    for s in levels:
        key = "%s|%r" % (key_base, s)
        if key in cache:
            res[s] = cache[key]
            continue
        acc = math.nan
        if hamnet and data and os.path.exists(data):
            cmd = [hamnet, "eval", "--checkpoint", ckpt, "--data", data, "--json", "--noise", repr(s),
                   "--seed", "1", "--threads", str(threads)]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                if p.returncode == 0:
                    acc = float(json.loads(p.stdout.strip().splitlines()[-1])["accuracy"])
                else:
                    print("sweep_report.py: warning: %s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                                        p.stderr.strip()[-500:]), file=sys.stderr)
            except (OSError, ValueError, KeyError, IndexError, subprocess.TimeoutExpired) as e:
                print("sweep_report.py: warning: eval of %s failed: %s" % (ckpt, e), file=sys.stderr)
        res[s] = acc
        if math.isfinite(acc):
            cache[key] = acc
            changed = True
    if changed:
        try:
            with open(cache_path + ".tmp", "w") as f:
                json.dump(cache, f, indent=1, sort_keys=True)
            os.replace(cache_path + ".tmp", cache_path)
        except OSError:
            pass
    return res


def read_run(run_dir, planned, args):
    """Everything about one element. planned: dict with arch, depth, fraction, seed, name (may be
    partial when there is no plan)."""
    r = dict(planned)
    r.update({"run_dir": run_dir, "status": "missing", "epochs_done": 0, "epochs": None,
              "train_acc": math.nan, "val_acc": math.nan, "best_val_acc": math.nan, "gap": math.nan,
              "epochs_to_target": math.nan, "sec_per_epoch": math.nan, "restarts": 0,
              "target_metric": "val", "checkpoint": ""})
    r.update(read_diagnostics(run_dir))
    event, starts = last_job_event(run_dir)
    r["restarts"] = max(0, starts - 1)
    ckpt, d = newest_checkpoint(run_dir) if os.path.isdir(run_dir) else (None, None)
    if d is None:
        if event and "rc=3" in event:
            r["status"] = "diverged"
        elif event and event.startswith("failed"):
            r["status"] = "failed"
        elif os.path.isdir(run_dir):
            r["status"] = "no checkpoint"
        for s in args.noise:
            r["noise_%g" % s] = math.nan
        return r
    cfg = parse_config(d["config"])
    r["checkpoint"] = ckpt
    r.setdefault("arch", cfg.get("model.arch"))
    for key, conv in (("depth", int), ("fraction", float), ("seed", int)):
        ck = {"depth": "model.depth", "fraction": "data.fraction", "seed": "train.seed"}[key]
        if r.get(key) in (None, "") and ck in cfg:
            r[key] = conv(cfg[ck])
    if not r.get("name"):
        r["name"] = os.path.basename(run_dir.rstrip("/"))
    epochs = int(cfg.get("train.epochs", "0"))
    r["epochs"] = epochs
    hist = d["history"]
    cols = {c: i for i, c in enumerate(d["columns"])}
    r["epochs_done"] = int(d["progress"].get("epoch", hist.shape[0]))
    if hist.shape[0] > 0:
        last = hist[-1]
        r["train_acc"] = float(last[cols["train_acc"]])
        r["val_acc"] = float(last[cols["val_acc"]])
        r["gap"] = r["train_acc"] - r["val_acc"]
        secs = hist[:, cols["seconds"]]
        r["sec_per_epoch"] = float(np.mean(secs))
        acc_col = hist[:, cols["val_acc"]]
        if not np.all(np.isfinite(acc_col)):
            acc_col = hist[:, cols["train_acc"]]
            r["target_metric"] = "train"
        reached = np.nonzero(acc_col >= args.target)[0]
        if reached.size:
            r["epochs_to_target"] = float(hist[reached[0], cols["epoch"]])
    bva = float(d["progress"].get("best_val_accuracy", math.nan))
    r["best_val_acc"] = bva if bva >= 0 else math.nan
    if event and "rc=3" in event:
        r["status"] = "diverged"
    elif r["epochs_done"] >= epochs > 0:
        r["status"] = "finished"
    elif event and event.startswith("failed"):
        r["status"] = "failed"
    else:
        r["status"] = "incomplete"
    r["eval_data"] = cfg.get("data.val") or cfg.get("data.train")
    for s in args.noise:
        r["noise_%g" % s] = math.nan  # filled in by run_evals
    return r


def run_evals(runs, args):
    """Accuracy under noise for every run with a checkpoint, args.jobs evaluations at a time."""
    todo = [r for r in runs if r.get("checkpoint")]
    if not todo or not args.noise or args.no_eval or not args.hamnet:
        return
    from concurrent.futures import ThreadPoolExecutor

    def one(r):
        return r, eval_noise(args.hamnet, r["checkpoint"], r["eval_data"], args.noise, r["run_dir"], args.threads)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for r, noise in ex.map(one, todo):
            for s in args.noise:
                r["noise_%g" % s] = noise.get(s, math.nan)


# ---------------------------------------------------------------------------------------------
# aggregation and formatting

def finite(xs):
    return [x for x in xs if x is not None and isinstance(x, float) and math.isfinite(x)]


def stats(xs):
    xs = finite(xs)
    if not xs:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else math.nan
    return {"n": len(xs), "mean": mean, "std": std, "min": min(xs), "max": max(xs)}


def gstats(xs):
    """Geometric mean and range of positive values (ratios spanning decades)."""
    xs = [x for x in finite(xs) if x > 0]
    if not xs:
        return {"n": 0, "gmean": math.nan, "min": math.nan, "max": math.nan}
    return {"n": len(xs), "gmean": math.exp(sum(math.log(x) for x in xs) / len(xs)), "min": min(xs),
            "max": max(xs)}


def pct(x):
    return NA if not math.isfinite(x) else "%.1f" % (100 * x)


def pm(s, scale=100.0, digits=1):
    """'mean ± std' (std only with n >= 2)."""
    if s["n"] == 0:
        return NA
    m = "%.*f" % (digits, scale * s["mean"])
    if s["n"] >= 2:
        m += " ± %.*f" % (digits, scale * s["std"])
    return m


def sci(x):
    if not math.isfinite(x):
        return NA
    return "%.3g" % x


def grange(s):
    if s["n"] == 0:
        return NA
    if s["n"] == 1 or s["min"] == s["max"]:
        return sci(s["gmean"])
    return "%s [%s..%s]" % (sci(s["gmean"]), sci(s["min"]), sci(s["max"]))


def csvnum(x):
    if x is None:
        return ""
    if isinstance(x, float):
        return "" if not math.isfinite(x) else "%.6g" % x
    return str(x)


def fraction_label(f):
    return "%g%%" % (100 * float(f))


ARCH_ORDER = ["resnet", "antisym", "hamiltonian", "leapfrog"]


def arch_key(a):
    return (ARCH_ORDER.index(a) if a in ARCH_ORDER else len(ARCH_ORDER), a)


def summarise(runs, args):
    groups = {}
    for r in runs:
        groups.setdefault((r["arch"], int(r["depth"]), float(r["fraction"])), []).append(r)
    rows = []
    for (arch, depth, frac) in sorted(groups, key=lambda k: (arch_key(k[0]), k[1], k[2])):
        g = groups[(arch, depth, frac)]
        fin = [r for r in g if r["status"] == "finished"]
        row = {"arch": arch, "depth": depth, "fraction": frac, "planned": len(g), "finished": len(fin),
               "diverged": sum(r["status"] == "diverged" for r in g),
               "failed": sum(r["status"] in ("failed", "no checkpoint", "missing") for r in g),
               "incomplete": sum(r["status"] == "incomplete" for r in g),
               "seeds": " ".join(str(r["seed"]) for r in fin)}
        for k in ("train_acc", "val_acc", "best_val_acc", "gap", "sec_per_epoch"):
            row[k] = stats([r[k] for r in fin])
        reached = [r["epochs_to_target"] for r in fin if math.isfinite(r["epochs_to_target"])]
        row["epochs_to_target"] = stats(reached)
        row["reached"] = len(reached)
        row["target_metric"] = "train" if any(r["target_metric"] == "train" for r in fin) else "val"
        row["grad_ratio"] = gstats([r["grad_ratio"] for r in fin])
        row["amplification"] = gstats([r["amplification"] for r in fin])
        for s in args.noise:
            row["noise_%g" % s] = stats([r["noise_%g" % s] for r in fin])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# output

def write_runs_csv(path, runs, args):
    cols = ["name", "arch", "depth", "fraction", "seed", "status", "epochs_done", "epochs", "restarts",
            "train_acc", "val_acc", "best_val_acc", "gap", "epochs_to_target", "target_metric",
            "sec_per_epoch", "grad_ratio", "amplification"] + ["acc_noise_%g" % s for s in args.noise] + \
           ["checkpoint"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in runs:
            vals = []
            for c in cols:
                v = r.get("noise_" + c[len("acc_noise_"):]) if c.startswith("acc_noise_") else r.get(c)
                vals.append(csvnum(v))
            w.writerow(vals)


def write_summary_csv(path, rows, args):
    cols = ["arch", "depth", "fraction", "planned", "finished", "diverged", "failed", "incomplete"]
    for k in ("train_acc", "val_acc", "best_val_acc", "gap"):
        cols += [k + "_mean", k + "_std", k + "_min", k + "_max"]
    cols += ["epochs_to_target_mean", "epochs_to_target_std", "reached_target", "target",
             "sec_per_epoch_mean", "grad_ratio_gmean", "grad_ratio_min", "grad_ratio_max",
             "amplification_gmean", "amplification_min", "amplification_max"]
    for s in args.noise:
        cols += ["acc_noise_%g_mean" % s, "acc_noise_%g_std" % s]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in rows:
            vals = [row["arch"], row["depth"], "%g" % row["fraction"], row["planned"], row["finished"],
                    row["diverged"], row["failed"], row["incomplete"]]
            for k in ("train_acc", "val_acc", "best_val_acc", "gap"):
                s = row[k]
                vals += [csvnum(s["mean"]), csvnum(s["std"]), csvnum(s["min"]), csvnum(s["max"])]
            e = row["epochs_to_target"]
            vals += [csvnum(e["mean"]), csvnum(e["std"]), row["reached"], "%g" % args.target,
                     csvnum(row["sec_per_epoch"]["mean"])]
            for k in ("grad_ratio", "amplification"):
                s = row[k]
                vals += [csvnum(s["gmean"]), csvnum(s["min"]), csvnum(s["max"])]
            for s in args.noise:
                st = row["noise_%g" % s]
                vals += [csvnum(st["mean"]), csvnum(st["std"])]
            w.writerow(vals)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def epochs_cell(row):
    n = row["finished"]
    if n == 0:
        return NA
    if row["reached"] == 0:
        return "not reached (0/%d)" % n
    e = row["epochs_to_target"]
    s = "%.1f" % e["mean"] if e["n"] > 1 else "%.0f" % e["mean"]
    return s + ("" if row["reached"] == n else " (%d/%d)" % (row["reached"], n))


def status_cell(row):
    s = "%d/%d" % (row["finished"], row["planned"])
    extra = []
    if row["diverged"]:
        extra.append("%d diverged" % row["diverged"])
    if row["failed"]:
        extra.append("%d failed" % row["failed"])
    if row["incomplete"]:
        extra.append("%d unfinished" % row["incomplete"])
    return s + (" (" + ", ".join(extra) + ")" if extra else "")


def write_markdown(path, sweep, runs, rows, args, meta, plots):
    fr = sorted({row["fraction"] for row in rows})
    archs = sorted({row["arch"] for row in rows}, key=arch_key)
    depths = sorted({row["depth"] for row in rows})
    L = ["# Depth sweep report: %s" % sweep, ""]
    L.append("%d runs planned, %d finished, %d diverged, %d failed or missing, %d unfinished. "
             % (len(runs), sum(r["status"] == "finished" for r in runs), sum(r["status"] == "diverged" for r in runs),
                sum(r["status"] in ("failed", "missing", "no checkpoint") for r in runs),
                sum(r["status"] == "incomplete" for r in runs)) +
             "Architectures: %s; depths: %s; training-data fractions: %s; seeds per cell: %s."
             % (", ".join(archs), ", ".join(str(d) for d in depths), ", ".join(fraction_label(f) for f in fr),
                "/".join(sorted({str(row["planned"]) for row in rows}))))
    if meta:
        L.append("")
        L.append("Common settings: " + meta)
    L += ["", "How to read this: accuracies are in percent, of the FINAL network (last epoch), as mean ± "
          "sample standard deviation over the seeds whose run finished (no ± with one seed); `n` is "
          "finished/planned runs. Gap = train - validation accuracy (percentage points). Epochs to "
          "%g%%: first epoch whose %s accuracy reached it, mean over the seeds that reached it. "
          "Time per epoch: mean wall time of an epoch as recorded in the checkpoint's history. "
          "Gradient ratio: ||dL/dy_0|| / ||dL/dy_N|| and accumulated amplification prod_j g_j from "
          "the newest record of diagnostics.h5 (geometric mean over seeds, [min..max]); near 1 means "
          "gradients neither vanish nor explode through the depth. n/a = not measured or no finished "
          "run." % (100 * args.target, "validation (training where a run has no validation set)"), ""]

    L += ["## Results per architecture and depth", ""]
    head = ["arch", "depth"] + (["data"] if len(fr) > 1 else []) + \
        ["n", "train acc", "val acc", "gap", "epochs to %g%%" % (100 * args.target), "s/epoch",
         "grad ratio", "amplification"]
    body = []
    for row in rows:
        body.append([row["arch"], row["depth"]] + ([fraction_label(row["fraction"])] if len(fr) > 1 else []) +
                    [status_cell(row), pm(row["train_acc"]), pm(row["val_acc"]), pm(row["gap"]), epochs_cell(row),
                     sci(row["sec_per_epoch"]["mean"]), grange(row["grad_ratio"]), grange(row["amplification"])])
    L += [md_table(head, body), ""]

    for f in fr:
        L += ["## Validation accuracy against depth%s" % (" (data %s)" % fraction_label(f) if len(fr) > 1 else ""),
              "", "The comparison the paper is about: does accuracy hold up as the network gets deeper?", ""]
        body = []
        for d in depths:
            line = [d]
            for a in archs:
                m = [row for row in rows if row["arch"] == a and row["depth"] == d and row["fraction"] == f]
                line.append(NA if not m else (pm(m[0]["val_acc"]) + ("" if m[0]["finished"] == m[0]["planned"]
                                                                     else " (%s)" % status_cell(m[0]))))
            body.append(line)
        L += [md_table(["depth"] + archs, body), ""]

    if args.noise:
        L += ["## Accuracy under input noise", "",
              "`hamnet eval --noise S --seed 1` on the final checkpoint: every input coordinate of the "
              "validation set gets N(0, S^2). S = 0 is the final validation accuracy of the training "
              "history (the same network and data without noise).", ""]
        body = []
        for row in rows:
            body.append([row["arch"], row["depth"]] + ([fraction_label(row["fraction"])] if len(fr) > 1 else []) +
                        [pm(row["val_acc"])] + [pm(row["noise_%g" % s]) for s in args.noise])
        L += [md_table(["arch", "depth"] + (["data"] if len(fr) > 1 else []) + ["S = 0"] +
                       ["S = %g" % s for s in args.noise], body), ""]

    if len(fr) > 1:
        L += ["## Validation accuracy against training-data fraction", "",
              "Each run trains on a seeded random subset (data.fraction) of the training set.", ""]
        body = []
        for a in archs:
            for d in depths:
                line = [a, d]
                for f in fr:
                    m = [row for row in rows if row["arch"] == a and row["depth"] == d and row["fraction"] == f]
                    line.append(pm(m[0]["val_acc"]) if m else NA)
                body.append(line)
        L += [md_table(["arch", "depth"] + [fraction_label(f) for f in fr], body), ""]

    bad = [r for r in runs if r["status"] != "finished"]
    if bad:
        L += ["## Runs that did not finish", ""]
        L += [md_table(["run", "status", "epochs done", "folder"],
                       [[r.get("name", ""), r["status"], "%s/%s" % (r["epochs_done"], r["epochs"] or "?"),
                         r["run_dir"]] for r in bad]), ""]
    if plots:
        L += ["## Plots", ""] + ["![%s](%s)" % (p, p) for p in plots] + [""]
    L += ["Files: `summary.csv` (one row per table row above, with min/max), `runs.csv` (one row per run).", ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


def make_plots(outdir, rows, args):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("sweep_report.py: warning: no matplotlib (%s): no plots" % e, file=sys.stderr)
        return []
    written = []
    archs = sorted({row["arch"] for row in rows}, key=arch_key)
    fr = sorted({row["fraction"] for row in rows})
    fmain = max(fr)

    def against_depth(fname, title, ylabel, get, logy=False, scale=1.0):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        any_data = False
        for k, a in enumerate(archs):
            pts = [(row["depth"], get(row)) for row in rows if row["arch"] == a and row["fraction"] == fmain]
            pts = [(d, v) for d, v in pts if v is not None and math.isfinite(v[0])]
            if not pts:
                continue
            any_data = True
            shift = 2.0 ** (0.04 * (k - (len(archs) - 1) / 2.0))  # keep the error bars apart
            d = [p[0] * shift for p in pts]
            y = [scale * p[1][0] for p in pts]
            lo = [scale * (p[1][0] - p[1][1]) for p in pts]
            hi = [scale * (p[1][2] - p[1][0]) for p in pts]
            ax.errorbar(d, y, yerr=[lo, hi], marker="o", capsize=3, label=a)
        if not any_data:
            plt.close(fig)
            return
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("depth N (final time fixed, h = T/N)")
        ax.set_ylabel(ylabel)
        ax.set_title(title + ("" if len(fr) == 1 else " (data %s)" % fraction_label(fmain)), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, fname), dpi=110)
        plt.close(fig)
        written.append(fname)

    def mean_minmax(s):
        return None if s["n"] == 0 else (s["mean"], s["min"], s["max"])

    def gmean_minmax(s):
        return None if s["n"] == 0 else (s["gmean"], s["min"], s["max"])

    against_depth("accuracy_vs_depth.png", "Final validation accuracy (mean, bars: min..max over seeds)",
                  "validation accuracy (%)", lambda r: mean_minmax(r["val_acc"]), scale=100)
    against_depth("gap_vs_depth.png", "Generalisation gap (train - val)", "gap (percentage points)",
                  lambda r: mean_minmax(r["gap"]), scale=100)
    against_depth("grad_ratio_vs_depth.png", "||dL/dy_0|| / ||dL/dy_N|| (geometric mean, min..max)",
                  "gradient ratio", lambda r: gmean_minmax(r["grad_ratio"]), logy=True)
    against_depth("amplification_vs_depth.png", "Accumulated amplification (geometric mean, min..max)",
                  "prod_j g_j", lambda r: gmean_minmax(r["amplification"]), logy=True)
    against_depth("time_per_epoch_vs_depth.png", "Time per epoch", "seconds",
                  lambda r: mean_minmax(r["sec_per_epoch"]), logy=True)

    def panels(n):
        ncol = min(4, n)
        nrow = (n + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol + 0.8, 3.2 * nrow + 0.6), sharey=True,
                                 squeeze=False)
        flat = [ax for line in axes for ax in line]
        for ax in flat[n:]:
            ax.set_visible(False)
        for line in axes:
            line[0].set_ylabel("validation accuracy (%)")
        return fig, flat[:n]

    if args.noise:
        depths = sorted({row["depth"] for row in rows})
        fig, axs = panels(len(depths))
        any_data = False
        for ax, d in zip(axs, depths):
            for a in archs:
                m = [row for row in rows if row["arch"] == a and row["depth"] == d and row["fraction"] == fmain]
                if not m or m[0]["val_acc"]["n"] == 0:
                    continue
                xs = [0.0] + list(args.noise)
                ys = [m[0]["val_acc"]["mean"]] + [m[0]["noise_%g" % s]["mean"] for s in args.noise]
                ax.plot(xs, [100 * y for y in ys], marker="o", label=a)
                any_data = True
            ax.set_title("depth %d" % d, fontsize=10)
            ax.set_xlabel("input noise S")
            ax.grid(True, alpha=0.3)
        if any_data:
            axs[-1].legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(os.path.join(outdir, "accuracy_vs_noise.png"), dpi=110)
            written.append("accuracy_vs_noise.png")
        plt.close(fig)

    if len(fr) > 1:
        depths = sorted({row["depth"] for row in rows})
        fig, axs = panels(len(depths))
        for ax, d in zip(axs, depths):
            for a in archs:
                pts = [(row["fraction"], row["val_acc"]) for row in rows if row["arch"] == a and row["depth"] == d]
                pts = [(f, s) for f, s in pts if s["n"] > 0]
                if pts:
                    ax.errorbar([100 * p[0] for p in pts], [100 * p[1]["mean"] for p in pts],
                                yerr=[[100 * (p[1]["mean"] - p[1]["min"]) for p in pts],
                                      [100 * (p[1]["max"] - p[1]["mean"]) for p in pts]],
                                marker="o", capsize=3, label=a)
            ax.set_xscale("log")
            ax.set_title("depth %d" % d, fontsize=10)
            ax.set_xlabel("training data used (%)")
            ax.grid(True, alpha=0.3)
        axs[-1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "accuracy_vs_fraction.png"), dpi=110)
        plt.close(fig)
        written.append("accuracy_vs_fraction.png")
    return written


# ---------------------------------------------------------------------------------------------

def read_plan(sweep):
    path = os.path.join(sweep, "plan.tsv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rd = csv.DictReader(f, delimiter="\t")
        plan = []
        for row in rd:
            plan.append({"index": int(row["index"]), "arch": row["arch"], "depth": int(row["depth"]),
                         "fraction": float(row["fraction"]), "seed": int(row["seed"]), "name": row["name"],
                         "run_dir": os.path.join(sweep, "runs", row["name"])})
    return plan


def common_settings(runs):
    for r in runs:
        if r.get("checkpoint"):
            try:
                with h5py.File(r["checkpoint"], "r") as f:
                    text = f["config"].attrs["text"]
                text = text.decode() if isinstance(text, bytes) else text
                c = parse_config(text)
            except (OSError, KeyError):
                continue
            keys = ["model.width", "model.final_time", "model.activation", "model.opening", "train.epochs",
                    "train.batch_size", "train.optimizer", "train.lr", "train.alpha_t", "data.train", "data.val"]
            return ", ".join("%s = %s" % (k, c.get(k, "?")) for k in keys)
    return ""


def default_jobs():
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    if os.environ.get("SLURM_CPUS_ON_NODE") and os.environ.get("SLURM_JOB_ID"):
        n = min(n, int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
    return max(1, min(8, n))


def parse_levels(s):
    out = []
    for tok in re.split(r"[,\s]+", s.strip()):
        if tok:
            v = float(tok)
            if v < 0:
                raise argparse.ArgumentTypeError("noise levels must be >= 0")
            if v > 0:
                out.append(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("sweep", help="sweep folder (with plan.tsv and runs/), or a folder of run folders")
    ap.add_argument("--out", help="output folder (default SWEEP/report)")
    ap.add_argument("--noise", default="0.05 0.1 0.2", type=parse_levels,
                    help="input-noise levels for `hamnet eval --noise` (default '0.05 0.1 0.2'; '' = none)")
    ap.add_argument("--target", type=float, default=0.9, help="accuracy for 'epochs to reach' (default 0.9)")
    ap.add_argument("--hamnet", default=os.environ.get("HAMNET_BIN", ""),
                    help="hamnet binary for the noise evaluations (default $HAMNET_BIN, else build/hamnet)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads of each evaluation (default 1)")
    ap.add_argument("--jobs", type=int, default=default_jobs(),
                    help="evaluations run at once (default: the CPUs this process may use, at most 8)")
    ap.add_argument("--no-eval", action="store_true", help="no noise evaluations (reported as n/a)")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    args = ap.parse_args(argv)
    if not 0 < args.target <= 1:
        ap.error("--target must be in (0, 1]")
    sweep = os.path.abspath(args.sweep)
    if not os.path.isdir(sweep):
        ap.error("%s is not a folder" % sweep)
    if not args.hamnet:
        guess = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "hamnet")
        args.hamnet = guess if os.path.exists(guess) else ""
    if not args.no_eval and args.noise and not (args.hamnet and os.access(args.hamnet, os.X_OK)):
        print("sweep_report.py: warning: no hamnet binary (--hamnet): accuracy under noise is n/a",
              file=sys.stderr)
        args.hamnet = ""

    plan = read_plan(sweep)
    if plan is None:
        base = os.path.join(sweep, "runs") if os.path.isdir(os.path.join(sweep, "runs")) else sweep
        dirs = sorted(d for d in glob.glob(os.path.join(base, "*")) if glob.glob(os.path.join(d, "ckpt-*.h5")))
        plan = [{"name": os.path.basename(d), "run_dir": d} for d in dirs]
        if not plan:
            sys.exit("sweep_report.py: %s has no plan.tsv and no run folders with checkpoints" % sweep)
    runs = []
    for p in plan:
        r = read_run(p["run_dir"], {k: v for k, v in p.items() if k != "run_dir"}, args)
        if r.get("arch") is None or r.get("depth") is None:
            print("sweep_report.py: warning: %s: architecture/depth unknown, left out" % p["run_dir"], file=sys.stderr)
            continue
        r.setdefault("fraction", 1.0)
        if r.get("fraction") in (None, ""):
            r["fraction"] = 1.0
        runs.append(r)
    run_evals(runs, args)
    rows = summarise(runs, args)
    outdir = os.path.abspath(args.out or os.path.join(sweep, "report"))
    os.makedirs(outdir, exist_ok=True)
    write_runs_csv(os.path.join(outdir, "runs.csv"), runs, args)
    write_summary_csv(os.path.join(outdir, "summary.csv"), rows, args)
    plots = [] if args.no_plots else make_plots(outdir, rows, args)
    write_markdown(os.path.join(outdir, "report.md"), sweep, runs, rows, args, common_settings(runs), plots)
    n_fin = sum(r["status"] == "finished" for r in runs)
    print("sweep_report.py: %d runs (%d finished) in %d table rows -> %s/{report.md, summary.csv, runs.csv}%s"
          % (len(runs), n_fin, len(rows), outdir, " + %d plots" % len(plots) if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
