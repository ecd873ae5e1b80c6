#!/usr/bin/python3
"""diag_check.py - independent numpy checks of a hamnet run folder's diagnostics.h5.

    diag_check.py spectra RUN_DIR [--tol 1e-8]
        The newest record's spectra against numpy on the parameters of the checkpoint written
        at the same step: sigma_max / sigma_min of K_j (numpy.linalg.svd), all singular values
        (/last/sv), the log norm lambda_max((A + A^T)/2) (numpy.linalg.eigvalsh), the eigenvalues
        of A (numpy.linalg.eigvals, matched as sets) for resnet / antisym, h * sigma_max, and the
        per-layer and accumulated amplification of the frozen-coefficient model. Relative
        tolerance --tol (against max(1, sigma_max)).
    diag_check.py flags RUN_DIR (stable|unstable)
        The monitor's flags of every record with spectra are all zero (stable) / the newest is
        not zero (unstable).
    diag_check.py multilevel RUN_DIR
        Records made at a coarser depth are NaN-padded beyond their depth; the depth column
        matches; every per-layer dataset has max_depth (+1) columns.
    diag_check.py steps RUN_DIR S1,S2,...
        /record/step is exactly this list.
Exit status 0 when the check passes; prints what it compared.
"""
import glob
import os
import sys

import h5py
import numpy as np


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def diag(run):
    return h5py.File(os.path.join(run, "diagnostics.h5"), "r")


def checkpoint_at(run, step):
    path = os.path.join(run, "ckpt-%010d.h5" % step)
    if not os.path.exists(path):
        fail(f"no checkpoint {path} for the newest record (have {sorted(glob.glob(run + '/ckpt-*.h5'))})")
    return h5py.File(path, "r")


def check_spectra(run, tol):
    with diag(run) as f:
        n = len(f["record/step"])
        r = n - 1
        step = int(f["record/step"][r])
        depth = int(f["record/depth"][r])
        arch = f.attrs["arch"]
        arch = arch.decode() if isinstance(arch, bytes) else arch
        T = float(f.attrs["final_time"])
        gamma = float(f.attrs["gamma"])
        width = int(f.attrs["width"])
        got = {k: f["spectra/" + k][r, :depth] for k in
               ("sv_max", "sv_min", "log_norm", "eig_re_max", "eig_abs_max", "amplification", "h_sv_max")}
        amp_total = float(f["monitor/amplification"][r])
        last_sv = f["last/sv"][:depth]
        last_re, last_im = f["last/eig_re"][:depth], f["last/eig_im"][:depth]
        if int(f["last"].attrs["step"]) != step:
            fail("/last is not from the newest record")
    with checkpoint_at(run, step) as c:
        K = np.asarray(c["model/K"][...], dtype=np.float64)
    if K.shape != (depth, width, width):
        fail(f"checkpoint K has shape {K.shape}, expected {(depth, width, width)}")
    h = T / depth
    euler = arch in ("resnet", "antisym")
    worst = 0.0
    log_total = 0.0
    for j in range(depth):
        A = K[j] - K[j].T - gamma * np.eye(width) if arch == "antisym" else K[j]
        sv = np.linalg.svd(K[j], compute_uv=False)
        scale = max(1.0, sv[0])

        def cmp(name, a, b):
            nonlocal worst
            d = abs(a - b) / scale
            worst = max(worst, d)
            if not d <= tol:
                fail(f"{run}: layer {j} {name}: hamnet {a!r} numpy {b!r} (relative difference {d:.3g} > {tol})")

        cmp("sv_max", got["sv_max"][j], sv[0])
        cmp("sv_min", got["sv_min"][j], sv[-1])
        for i in range(width):
            cmp(f"/last/sv[{i}]", last_sv[j, i], sv[i])
        cmp("h_sv_max", got["h_sv_max"][j], h * sv[0])
        if euler:
            mu = np.linalg.eigvalsh(0.5 * (A + A.T))[-1]
            cmp("log_norm", got["log_norm"][j], mu)
            ev = np.linalg.eigvals(A)
            cmp("eig_re_max", got["eig_re_max"][j], ev.real.max())
            cmp("eig_abs_max", got["eig_abs_max"][j], np.abs(ev).max())
            mine = last_re[j] + 1j * last_im[j]
            used = np.zeros(width, bool)
            for z in mine:  # match the sets
                dist = np.where(used, np.inf, np.abs(ev - z))
                k = int(np.argmin(dist))
                used[k] = True
                cmp("eigenvalue", 0.0, dist[k])
            g = np.abs(1 + h * ev).max()
            cmp("amplification", got["amplification"][j], g)
            log_total += np.log(g)
        else:
            x = h * sv[0]
            a = (x * x - 2) / 2
            g = 1.0 if x <= 2 else a + np.sqrt(a * a - 1)
            cmp("amplification", got["amplification"][j], g)
            log_total += np.log(g)
            if not (np.isnan(got["log_norm"][j]) and np.isnan(last_re[j]).all()):
                fail("log norm / eigenvalues must be NaN for Verlet architectures")
    if not abs(np.log(amp_total) - log_total) <= 1e-8 * max(1.0, abs(log_total)):
        fail(f"accumulated amplification {amp_total} vs numpy {np.exp(log_total)}")
    print(f"spectra {run}: {arch} depth {depth} width {width}: {depth} layers agree with numpy, "
          f"worst relative difference {worst:.2e} (tolerance {tol:g}); accumulated amplification {amp_total:.6g}")


def check_flags(run, want):
    with diag(run) as f:
        flags = f["monitor/flags"][:]
        has = np.isfinite(f["scalars/spectra_seconds"][:])
    if not has.any():
        fail(f"{run}: no record has spectra")
    if want == "stable" and (flags[has] != 0).any():
        fail(f"{run}: stable run has monitor flags {flags[has]}")
    if want == "unstable" and flags[has][-1] == 0:
        fail(f"{run}: unstable run has no monitor flag (flags {flags})")
    print(f"flags {run}: {want} as expected ({flags[has].tolist()})")


def check_multilevel(run):
    with diag(run) as f:
        D = int(f.attrs["max_depth"])
        depth = f["record/depth"][:]
        g = f["layers/grad_y_norm"][:]
        sv = f["spectra/sv_max"][:]
        if g.shape[1] != D + 1 or sv.shape[1] != D:
            fail(f"per-layer shapes {g.shape} {sv.shape} for max_depth {D}")
        if not (depth < D).any() or not (depth == D).any():
            fail(f"expected records at a coarser depth and at the final one, depths {depth}")
        for r, d in enumerate(depth):
            if not np.isfinite(g[r, :d + 1]).all() or np.isfinite(g[r, d + 1:]).any():
                fail(f"record {r} (depth {d}): grad_y_norm padding wrong: {g[r]}")
            if not np.isfinite(sv[r, :d]).all() or np.isfinite(sv[r, d:]).any():
                fail(f"record {r} (depth {d}): sv_max padding wrong")
    print(f"multilevel {run}: depths {depth.tolist()}, NaN padding to max_depth {D} correct")


def check_steps(run, want):
    with diag(run) as f:
        steps = f["record/step"][:].tolist()
    if steps != want:
        fail(f"{run}: /record/step is {steps}, expected {want}")
    print(f"steps {run}: {steps}")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    what, run = argv[1], argv[2]
    if what == "spectra":
        tol = float(argv[argv.index("--tol") + 1]) if "--tol" in argv else 1e-8
        check_spectra(run, tol)
    elif what == "flags":
        check_flags(run, argv[3])
    elif what == "multilevel":
        check_multilevel(run)
    elif what == "steps":
        check_steps(run, [int(s) for s in argv[3].split(",")])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
