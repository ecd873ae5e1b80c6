#!/usr/bin/python3
"""reference_forward.py - an independent forward pass over a hamnet checkpoint (numpy + h5py).

Reads the checkpoint's model schema (README "Checkpoint files") and a data set file, runs the
network exactly as README "The mathematics" writes it - one sample per column, float64 - and prints the mean
cross-entropy and the accuracy, so that anyone can check `hamnet eval` without trusting
hamnet's code:

    scripts/reference_forward.py CHECKPOINT.h5 DATA.h5 [--json]
"""
import argparse
import json
import sys

import h5py
import numpy as np


def act(name, u):
    if name == "tanh":
        return np.tanh(u)
    if name == "relu":
        return np.maximum(u, 0.0)
    raise SystemExit(f"unknown activation {name}")


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def forward(f, X):
    m = f["model"]
    arch, s = text(m.attrs["arch"]), text(m.attrs["activation"])
    opening = text(m.attrs["opening"])
    width, depth = int(m.attrs["width"]), int(m.attrs["depth"])
    T, gamma = float(m.attrs["final_time"]), float(m.attrs["gamma"])
    h = T / depth
    K = np.asarray(m["K"], dtype=np.float64)       # [depth, width, width], K[j][out][in]
    b = np.asarray(m["b"], dtype=np.float64)       # [depth, width]
    x = X.T.astype(np.float64)                     # [F, N]: one sample per column
    if opening == "pad":
        y = np.zeros((width, x.shape[1]))
        y[: x.shape[0]] = x
    else:
        y = act(s, np.asarray(m["open/K"], np.float64) @ x + np.asarray(m["open/b"], np.float64)[:, None])
    if arch == "resnet":
        for j in range(depth):
            y = y + h * act(s, K[j] @ y + b[j][:, None])
    elif arch == "antisym":
        I = np.eye(width)
        for j in range(depth):
            A = K[j] - K[j].T - gamma * I
            y = y + h * act(s, A @ y + b[j][:, None])
    elif arch == "hamiltonian":
        z = np.zeros_like(y)
        for j in range(depth):
            z = z - h * act(s, K[j].T @ y + b[j][:, None])
            y = y + h * act(s, K[j] @ z + b[j][:, None])
    elif arch == "leapfrog":
        y_prev = y.copy()
        for j in range(depth):
            y_next = 2 * y - y_prev - h * h * (K[j].T @ act(s, K[j] @ y + b[j][:, None]))
            y_prev, y = y, y_next
    else:
        raise SystemExit(f"unknown arch {arch}")
    W = np.asarray(m["cls/W"], np.float64)
    mu = np.asarray(m["cls/b"], np.float64)
    return W @ y + mu[:, None]                     # [C, N]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    with h5py.File(a.checkpoint, "r") as f, h5py.File(a.data, "r") as d:
        if text(f.attrs.get("format", "")) != "hamnet-checkpoint":
            raise SystemExit(f"{a.checkpoint} is not a hamnet checkpoint")
        X = np.asarray(d["X"]).reshape(d["X"].shape[0], -1)
        y = np.asarray(d["y"]).astype(np.int64)
        logits = forward(f, X)
    zmax = logits.max(axis=0)
    lse = zmax + np.log(np.exp(logits - zmax).sum(axis=0))
    loss = float(np.mean(lse - logits[y, np.arange(len(y))]))
    acc = float(np.mean(np.argmax(logits, axis=0) == y))
    if a.json:
        print(json.dumps({"loss": loss, "accuracy": acc, "samples": int(len(y))}))
    else:
        print(f"loss {loss:.10f} accuracy {100 * acc:.2f}% ({len(y)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
