#!/usr/bin/python3
"""plot_diagnostics.py - PNG figures and a one-line summary from a hamnet diagnostics file.

    scripts/plot_diagnostics.py RUN [RUN ...] [--out DIR] [--no-plots]

RUN is a run folder (holding diagnostics.h5) or a diagnostics.h5 file. For each run it writes,
into DIR (default RUN/plots):
  heatmap_grad_y.png   log10 ||dL/dy_j|| over layer time t_j = j h (rows) and record (columns)
  heatmap_y.png        log10 ||y_j|| (and ||z_j|| for hamiltonian) likewise
  spectra.png          newest spectra per layer: sigma_max / sigma_min of K_j, h*sigma_max against
                       the Verlet bound 2 or the per-layer Euler amplification, log norms,
                       eigenvalues 1 + h*lambda against the unit circle (resnet / antisym), and
                       h*sigma_max (Verlet) / amplification (Euler) over layers and records
  training.png         train / validation loss and accuracy, learning rate
  monitor.png          accumulated amplification against the band, max_j/min_j ||dL/dy_j||
and prints one line per run: the newest record's max_j/min_j ||dL/dy_j|| (and the largest over
all records) and the accumulated amplification with the monitor's flags.

The file can be read while the job runs (hamnet closes it between passes); a read that
collides with a pass is retried. Uses Debian's h5py, numpy, matplotlib (Agg backend).
Other scripts import load() and summary() from here (scripts/plot_sweep.py).
"""
import argparse
import os
import sys
import time

import h5py
import numpy as np

FLAG_NAMES = {1: "above_band", 2: "below_band", 4: "verlet_bound", 8: "nonfinite"}


def flag_text(f):
    if not np.isfinite(f) or int(f) == 0:
        return "none"
    return ",".join(name for bit, name in FLAG_NAMES.items() if int(f) & bit)


def find_file(path):
    if os.path.isdir(path):
        path = os.path.join(path, "diagnostics.h5")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no diagnostics file (was the run made with [diagnostics] every_epochs > 0?)")
    return path


def _open(path):
    try:  # no file lock: hamnet's writer takes none either, and a lock must never block training
        return h5py.File(path, "r", locking=False)
    except TypeError:  # h5py < 3.5
        return h5py.File(path, "r")


def _read(path):
    with _open(path) as f:
        fmt = f.attrs.get("format", "")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != "hamnet-diagnostics":
            raise ValueError(f"{path}: format is '{fmt}', not hamnet-diagnostics")
        run = {"path": path, "attrs": {}}
        for k, v in f.attrs.items():
            run["attrs"][k] = v.decode() if isinstance(v, bytes) else v
        n = len(f["record/step"])  # written last: the number of complete records
        run["records"] = n
        for group in ("record", "scalars", "layers", "spectra", "monitor"):
            for name, ds in f[group].items():
                run[f"{group}/{name}"] = np.asarray(ds[:n], dtype=float)
        for name in ("sv", "eig_re", "eig_im"):
            run[f"last/{name}"] = np.asarray(f["last/" + name][...], dtype=float)
        run["last_attrs"] = {k: int(v) for k, v in f["last"].attrs.items()}
    return run


def load(path, tries=5):
    """Read a diagnostics file (or run folder) into a dict of numpy arrays, keyed 'group/name'."""
    path = find_file(path)
    for attempt in range(tries):
        try:
            return _read(path)
        except (OSError, KeyError):
            if attempt == tries - 1:
                raise
            time.sleep(0.5)  # hamnet may be writing a record right now


def summary(run):
    """Per-run figures the README and the sweep report quote."""
    n = run["records"]
    out = {"path": run["path"], "arch": run["attrs"]["arch"], "width": int(run["attrs"]["width"]),
           "max_depth": int(run["attrs"]["max_depth"]), "final_time": float(run["attrs"]["final_time"]),
           "records": n}
    if n == 0:
        return out
    g = run["layers/grad_y_norm"]
    ratios = np.nanmax(g, axis=1) / np.nanmin(g, axis=1)
    amp = run["monitor/amplification"]
    flags = run["monitor/flags"]
    with_spectra = np.isfinite(amp)
    last_sp = int(np.nonzero(with_spectra)[0][-1]) if with_spectra.any() else -1
    out.update({
        "epoch": int(run["record/epoch"][-1]), "step": int(run["record/step"][-1]),
        "depth": int(run["record/depth"][-1]),
        "grad_ratio": float(ratios[-1]), "grad_ratio_max": float(np.nanmax(ratios)),
        "grad_y0": float(g[-1, 0]), "grad_yN": float(g[-1, int(run["record/depth"][-1])]),
        "amplification": float(amp[last_sp]) if last_sp >= 0 else float("nan"),
        "amplification_epoch": int(run["record/epoch"][last_sp]) if last_sp >= 0 else -1,
        "flags": int(flags[last_sp]) if last_sp >= 0 else 0,
        "flagged_records": int(np.sum((flags > 0) & with_spectra)),
        "max_h_sv_max": float(np.nanmax(run["spectra/h_sv_max"][last_sp])) if last_sp >= 0 else float("nan"),
        "val_accuracy": float(run["scalars/val_accuracy"][-1]),
        "train_accuracy": float(run["scalars/train_accuracy"][-1]),
        "diag_seconds": float(np.nansum(run["scalars/diag_seconds"])),
        "epoch_seconds": float(np.nansum(run["scalars/epoch_seconds"])),
    })
    return out


def summary_line(s):
    if s["records"] == 0:
        return f"{s['path']}: no records yet"
    return (f"{s['path']}: {s['arch']} width {s['width']} depth {s['depth']} T {s['final_time']:g}, "
            f"{s['records']} records, epoch {s['epoch']}: max_j/min_j ||dL/dy_j|| = {s['grad_ratio']:.4g} "
            f"(largest over records {s['grad_ratio_max']:.4g}); accumulated amplification "
            f"{s['amplification']:.4g} (epoch {s['amplification_epoch']}, flags {flag_text(s['flags'])}, "
            f"flagged in {s['flagged_records']} records)")


# ------------------------------------------------------------------------------------------------
# figures

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def layer_time_grid(run, key, states=True):
    """Per-layer rows resampled onto the finest depth's layer times t = j T / max_depth, so that
    records made at coarser multilevel depths line up. Returns (t, values [records, points])."""
    T = float(run["attrs"]["final_time"])
    D = int(run["attrs"]["max_depth"])
    npts = D + 1 if states else D
    t = np.arange(npts) * T / D + (0 if states else 0.5 * T / D)
    vals = run[key]
    out = np.full((run["records"], npts), np.nan)
    for r in range(run["records"]):
        d = int(run["record/depth"][r])
        m = d + 1 if states else d
        tr = np.arange(m) * T / d + (0 if states else 0.5 * T / d)
        row = vals[r, :m]
        if np.isfinite(row).any():
            out[r] = np.interp(t, tr, row)
    return t, out


def heatmap(ax, run, key, title, states=True):
    t, v = layer_time_grid(run, key, states)
    epochs = run["record/epoch"]
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.log10(v.T)
    x = np.arange(len(epochs) + 1) - 0.5
    im = ax.pcolormesh(x, np.append(t, t[-1] + (t[1] - t[0] if len(t) > 1 else 1)) - (t[1] - t[0]) / 2
                       if len(t) > 1 else [0, 1], lv, shading="flat", cmap="viridis")
    ticks = np.linspace(0, len(epochs) - 1, min(len(epochs), 8)).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(int(epochs[i])) for i in ticks])
    ax.set_xlabel("epoch (record)")
    ax.set_ylabel("layer time t = j h")
    ax.set_title(title)
    return im


def plot_run(run, out_dir):
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    arch = run["attrs"]["arch"]
    name = os.path.basename(os.path.dirname(os.path.abspath(run["path"]))) or run["path"]
    files = []
    if run["records"] == 0:
        return files
    # heat maps
    fig, ax = plt.subplots(figsize=(8, 5))
    im = heatmap(ax, run, "layers/grad_y_norm", f"{name}: log10 ||dL/dy_j|| ({arch})")
    fig.colorbar(im, ax=ax)
    files.append(os.path.join(out_dir, "heatmap_grad_y.png"))
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    ham = np.isfinite(run["layers/z_norm"]).any()
    fig, axes = plt.subplots(1, 2 if ham else 1, figsize=(14 if ham else 8, 5), squeeze=False)
    im = heatmap(axes[0, 0], run, "layers/y_norm", f"{name}: log10 ||y_j||")
    fig.colorbar(im, ax=axes[0, 0])
    if ham:
        im = heatmap(axes[0, 1], run, "layers/z_norm", f"{name}: log10 ||z_j||")
        fig.colorbar(im, ax=axes[0, 1])
    files.append(os.path.join(out_dir, "heatmap_y.png"))
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # spectra of the newest record that has them
    amp = run["monitor/amplification"]
    have = np.nonzero(np.isfinite(run["scalars/spectra_seconds"]))[0]
    if len(have):
        r = int(have[-1])
        d = int(run["record/depth"][r])
        h = float(run["record/h"][r])
        euler = arch in ("resnet", "antisym")
        j = np.arange(d)
        fig, axes = plt.subplots(2, 2, figsize=(13, 9))
        ax = axes[0, 0]
        ax.semilogy(j, run["spectra/sv_max"][r, :d], label="sigma_max(K_j)")
        ax.semilogy(j, run["spectra/sv_min"][r, :d], label="sigma_min(K_j)")
        ax.set_xlabel("layer j")
        ax.set_title(f"singular values, epoch {int(run['record/epoch'][r])}")
        ax.legend()
        ax = axes[0, 1]
        if euler:
            ax.plot(j, run["spectra/amplification"][r, :d], label="max_i |1 + h lambda_i(A_j)|")
            ax.plot(j, run["spectra/log_norm"][r, :d] * h + 1, label="1 + h mu(A_j) (log norm)")
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
            ax.set_title(f"per-layer amplification (accumulated {amp[r]:.3g})")
        else:
            ax.plot(j, run["spectra/h_sv_max"][r, :d], label="h sigma_max(K_j)")
            ax.axhline(2.0, color="r", lw=1, ls="--", label="Verlet bound 2")
            ax.set_title("Verlet criterion h sigma_max < 2")
        ax.set_xlabel("layer j")
        ax.legend()
        ax = axes[1, 0]
        la = run["last_attrs"]
        if euler and la.get("depth", 0) > 0:
            dl = la["depth"]
            er, ei = run["last/eig_re"][:dl].ravel(), run["last/eig_im"][:dl].ravel()
            c = np.repeat(np.arange(dl), run["last/eig_re"].shape[1])
            sc = ax.scatter(er, ei, c=c, s=6, cmap="plasma")
            ax.axvline(0.0, color="k", lw=0.8)
            ax.set_xlabel("Re lambda")
            ax.set_ylabel("Im lambda")
            fig.colorbar(sc, ax=ax, label="layer j")
            ax.set_title(f"eigenvalues of A_j, epoch {la.get('epoch', '?')} (Re > 0 grows)")
        elif la.get("depth", 0) > 0:
            dl = la["depth"]
            im = ax.imshow(run["last/sv"][:dl].T, aspect="auto", origin="lower", cmap="viridis")
            fig.colorbar(im, ax=ax)
            ax.set_xlabel("layer j")
            ax.set_ylabel("index")
            ax.set_title(f"all singular values of K_j, epoch {la.get('epoch', '?')}")
        ax = axes[1, 1]
        key = "spectra/amplification" if euler else "spectra/h_sv_max"
        t, v = layer_time_grid(run, key, states=False)
        im = ax.pcolormesh(np.arange(run["records"] + 1) - 0.5, np.append(t - t[0], t[-1] + t[0]), v.T,
                           shading="flat", cmap="magma")
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("record")
        ax.set_ylabel("layer time t")
        ax.set_title(("amplification" if euler else "h sigma_max") + " over layers and records")
        files.append(os.path.join(out_dir, "spectra.png"))
        fig.tight_layout()
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)

    # training curves
    e = run["record/epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(e, run["scalars/train_loss"], label="train")
    axes[0].plot(e, run["scalars/val_loss"], label="validation")
    axes[0].set_title("loss")
    axes[1].plot(e, run["scalars/train_accuracy"], label="train")
    axes[1].plot(e, run["scalars/val_accuracy"], label="validation")
    axes[1].set_title("accuracy")
    axes[2].plot(e, run["scalars/lr"])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend()
    axes[1].legend()
    files.append(os.path.join(out_dir, "training.png"))
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # monitor
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    ok = np.isfinite(amp)
    if ok.any():
        axes[0].semilogy(e[ok], amp[ok], "o-", label="accumulated amplification")
        axes[0].axhline(float(run["attrs"]["band_low"]), color="r", ls="--", lw=1, label="band")
        axes[0].axhline(float(run["attrs"]["band_high"]), color="r", ls="--", lw=1)
        bad = ok & (run["monitor/flags"] > 0)
        if bad.any():
            axes[0].semilogy(e[bad], amp[bad], "rx", ms=10, label="flagged")
        axes[0].legend()
    axes[0].set_title("stability monitor (frozen coefficients)")
    g = run["layers/grad_y_norm"]
    axes[1].semilogy(e, np.nanmax(g, axis=1) / np.nanmin(g, axis=1), "o-")
    axes[1].set_title("max_j / min_j ||dL/dy_j||")
    for ax in axes:
        ax.set_xlabel("epoch")
    files.append(os.path.join(out_dir, "monitor.png"))
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or diagnostics.h5")
    p.add_argument("--out", help="folder for the PNGs (default RUN/plots; with several runs, OUT/<run name>)")
    p.add_argument("--no-plots", action="store_true", help="only print the summaries")
    a = p.parse_args(argv)
    status = 0
    for path in a.runs:
        try:
            run = load(path)
        except (OSError, ValueError, KeyError) as e:
            print(f"plot_diagnostics: {e}", file=sys.stderr)
            status = 1
            continue
        print(summary_line(summary(run)))
        if a.no_plots:
            continue
        folder = os.path.dirname(os.path.abspath(run["path"]))
        if a.out:
            out = a.out if len(a.runs) == 1 else os.path.join(a.out, os.path.basename(folder))
        else:
            out = os.path.join(folder, "plots")
        for f in plot_run(run, out):
            print(f"  wrote {f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
