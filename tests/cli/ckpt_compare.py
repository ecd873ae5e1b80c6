#!/usr/bin/python3
"""ckpt_compare.py - are two hamnet checkpoints the same training state, bit for bit?

    ckpt_compare.py [--ignore-info] A.h5 B.h5    exit 0 if equal, 1 (listing the differences) if not

Compares every dataset (model, optimizer moments, history) byte for byte and every attribute of
/, /model, /optimizer and /progress, except what legitimately differs between an uninterrupted
and a resumed run: wall-clock seconds (history column `seconds`, /progress epoch_seconds) and
the build's git hash. The config text is compared without the keys that stop or checkpoint a
run and do not change the arithmetic (max_steps, every_epochs, every_steps, keep, best).
--ignore-info also ignores the informational root strings hamnet_version and precision (which,
like every variable-length string in HDF5, are stored without a checksum). Used by the restart tests
(tests/cli/test_restart*.sh, test_kill*.sh, test_signals*.sh)."""
import re
import sys

import h5py
import numpy as np

SAFE_KEYS = re.compile(r"^(max_steps|every_epochs|every_steps|keep|best)\s*=")
IGNORED_ATTRS = {"/": {"git_hash"}, "progress": {"epoch_seconds"}}


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def config_without_safe_keys(f):
    if "config" not in f:
        return None
    text = f["config"].attrs["text"]
    text = text.decode() if isinstance(text, bytes) else text
    return "\n".join(line for line in text.splitlines() if not SAFE_KEYS.match(line))


def compare(pa, pb, ignore_info=False):
    diffs = []
    with h5py.File(pa, "r") as a, h5py.File(pb, "r") as b:
        da, db = datasets(a), datasets(b)
        for name in sorted(set(da) | set(db)):
            if name not in da or name not in db:
                diffs.append(f"dataset {name} only in {pa if name in da else pb}")
                continue
            x, y = da[name][()], db[name][()]
            if name == "progress/history" and x.ndim == 2 and y.ndim == 2:
                cols = str(da[name].attrs.get("columns", "")).split(",")
                if "seconds" in cols:
                    k = cols.index("seconds")
                    x, y = np.delete(x, k, axis=1), np.delete(y, k, axis=1)
            if x.dtype != y.dtype or x.shape != y.shape:
                diffs.append(f"dataset {name}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
            elif x.tobytes() != y.tobytes():
                bx = np.frombuffer(x.tobytes(), np.uint8).reshape(x.size, -1)
                by = np.frombuffer(y.tobytes(), np.uint8).reshape(y.size, -1)
                n = int((bx != by).any(axis=1).sum())
                with np.errstate(all="ignore"):
                    worst = float(np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0
                diffs.append(f"dataset {name}: {n} of {x.size} values differ (max |diff| {worst:.3g})")
        for group in ["/", "model", "optimizer", "progress"]:
            if (group in a) != (group in b):
                diffs.append(f"group {group} only in one file")
                continue
            if group != "/" and group not in a:
                continue
            ga, gb = a[group], b[group]
            ignored = IGNORED_ATTRS.get(group, set())
            if ignore_info and group == "/":
                ignored = ignored | {"hamnet_version", "precision"}
            for key in sorted(set(ga.attrs) | set(gb.attrs)):
                if key in ignored:
                    continue
                if key not in ga.attrs or key not in gb.attrs:
                    diffs.append(f"attribute {group}:{key} only in one file")
                    continue
                va, vb = np.asarray(ga.attrs[key]), np.asarray(gb.attrs[key])
                if va.dtype != vb.dtype or va.tobytes() != vb.tobytes():
                    diffs.append(f"attribute {group}:{key}: {ga.attrs[key]!r} vs {gb.attrs[key]!r}")
        if config_without_safe_keys(a) != config_without_safe_keys(b):
            diffs.append("config text differs (beyond max_steps and [checkpoint] keys)")
    return diffs


def main():
    args = sys.argv[1:]
    ignore_info = "--ignore-info" in args
    args = [a for a in args if a != "--ignore-info"]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    diffs = compare(args[0], args[1], ignore_info)
    for d in diffs:
        print(f"{args[0]} vs {args[1]}: {d}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
