#!/usr/bin/python3
"""bench_conv_pytorch.py - the PyTorch peer of `hamnet bench --stages`: the same convolutional
training step, float32, and a check of hamnet's forward pass against PyTorch's.

Timing (the default) - the network of hamnet/convnet.h built from PyTorch's own modules, on a
synthetic batch (inputs N(0, 1), uniform labels), mean cross-entropy, Adam (as `hamnet bench`),
best time per step:

    scripts/bench_conv_pytorch.py --arch hamiltonian --stages 16x3,32x3,64x3 --batch 128 [--json]

  opening      conv2d 3x3 (C_in -> c_0, no bias) + BatchNorm2d + activation
  stage layer  hamiltonian: z = z - h s(K^T y + b); y = y + h s(conv2d(z, K) + b);
               resnet: y = y + h s(conv2d(y, K) + b); leapfrog: y, y- = 2 y - y- - h^2 K^T s(conv2d(y, K) + b), y
               K^T y (the adjoint): --adjoint conv2d (default) = conv2d with K.transpose(0, 1).flip(2, 3);
               --adjoint transpose = conv_transpose2d with K. Same numbers; conv2d is ~4x faster in
               PyTorch 1.13 on CPU, so it is the fair peer.
  connective   conv2d 1x1 (no bias) + BatchNorm2d + activation + avg_pool2d(2)
  classifier   global average pooling + linear
PyTorch keeps every intermediate for autograd (it has no reversible mode). Each layer has its own
parameter tensors. Each thread setting of --threads (default 1,2) runs in a fresh process with
OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = t and torch.set_num_threads(t); the
best setting is reported (and the CPU time per step of the 1-thread run, which other load on the
machine disturbs least).

Check (--check CHECKPOINT --data FILE.h5 [--samples N]): loads a hamnet checkpoint of a
convolutional network (format_version 2: /model/params in the layout of hamnet/convnet.h and the
running statistics in /model/state), builds the same network in PyTorch in evaluation mode,
runs the first N samples of FILE through it and compares the logits with `--logits FILE.h5`
(from `hamnet eval --predictions`): prints the largest difference relative to the largest logit
and exits 1 if it exceeds --tol (default 1e-4).

Needs Debian's python3-torch (scripts/setup.sh --bench-deps; run with /usr/bin/python3).
"""
import argparse
import json
import math
import os
import subprocess
import sys

from torch_timing import time_steps


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="hamiltonian", choices=["hamiltonian", "leapfrog", "resnet"])
    p.add_argument("--activation", default="relu", choices=["tanh", "relu"])
    p.add_argument("--stages", default="16x3,32x3,64x3")
    p.add_argument("--image", default="1x28x28", help="CxHxW")
    p.add_argument("--norm", default="batch", choices=["batch", "none"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--final-time", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=10, help="timed steps (the fastest is reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="1,2", help="comma-separated thread settings to try")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--check", metavar="CHECKPOINT", help="compare hamnet's forward pass with PyTorch's")
    p.add_argument("--data", help="--check: the data set (hamnet HDF5)")
    p.add_argument("--logits", help="--check: hamnet eval --predictions output for the same data")
    p.add_argument("--samples", type=int, default=256, help="--check: the first N samples")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--adjoint", default="conv2d", choices=["conv2d", "transpose"],
                   help="how K^T is computed: conv2d with the flipped, transposed kernel (default; the faster "
                        "in PyTorch 1.13 on CPU) or conv_transpose2d")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def parse_stages(text):
    return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]


# ---------------------------------------------------------------------------------------------
# the network

def build(torch, arch, act_name, stages, image, norm, classes, T, adjoint="conv2d"):
    nn, F = torch.nn, torch.nn.functional
    act = torch.relu if act_name == "relu" else torch.tanh

    def adj(y, K, b=None):
        """K^T y: conv_transpose2d with K, or (the same numbers, faster kernels in PyTorch 1.13 on
        CPU) conv2d with K's channels swapped and its taps flipped."""
        if adjoint == "transpose":
            return F.conv_transpose2d(y, K, b, padding=1)
        return F.conv2d(y, K.transpose(0, 1).flip(2, 3), b, padding=1)
    C_in = image[0]

    class Normed(nn.Module):
        """conv (3x3 opening or 1x1 connective) + batch norm or bias + activation (+ pool)."""

        def __init__(self, cin, cout, k, pool):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=norm == "none")
            self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1) if norm == "batch" else None
            self.pool = pool

        def forward(self, x):
            u = self.conv(x)
            if self.bn is not None:
                u = self.bn(u)
            u = act(u)
            return F.avg_pool2d(u, 2) if self.pool else u

    class Stage(nn.Module):
        def __init__(self, c, layers):
            super().__init__()
            self.h = T / layers
            self.K = nn.ParameterList([nn.Parameter(torch.randn(c, c, 3, 3) / math.sqrt(9 * c)) for _ in range(layers)])
            self.b = nn.ParameterList([nn.Parameter(torch.zeros(c)) for _ in range(layers)])

        def forward(self, y):
            h = self.h
            if arch == "hamiltonian":
                z = torch.zeros_like(y)
                for K, b in zip(self.K, self.b):
                    z = z - h * act(adj(y, K, b))
                    y = y + h * act(F.conv2d(z, K, b, padding=1))
            elif arch == "leapfrog":
                prev = y
                for K, b in zip(self.K, self.b):
                    s = act(F.conv2d(y, K, b, padding=1))
                    y, prev = 2 * y - prev - h * h * adj(s, K), y
            else:
                for K, b in zip(self.K, self.b):
                    y = y + h * act(F.conv2d(y, K, b, padding=1))
            return y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.opening = Normed(C_in, stages[0][0], 3, False)
            self.stages = nn.ModuleList([Stage(c, l) for c, l in stages])
            self.connectives = nn.ModuleList([Normed(stages[s][0], stages[s + 1][0], 1, True)
                                              for s in range(len(stages) - 1)])
            self.cls = nn.Linear(stages[-1][0], classes)

        def forward(self, x):
            y = self.opening(x)
            for s, stage in enumerate(self.stages):
                y = stage(y)
                if s < len(self.connectives):
                    y = self.connectives[s](y)
            return self.cls(y.mean(dim=(2, 3)))

    return Net()


# ---------------------------------------------------------------------------------------------
# timing

def worker(a):
    import torch
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    image = tuple(int(v) for v in a.image.split("x"))
    net = build(torch, a.arch, a.activation, parse_stages(a.stages), image, a.norm, a.classes, a.final_time,
                a.adjoint)
    X = torch.randn((a.batch,) + image)
    labels = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    net.train()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(net(X), labels)
        loss.backward()
        opt.step()
        return loss

    print(json.dumps({"threads": threads, **time_steps(step, a.warmup, a.steps)}))


def bench(a, argv):
    runs = []
    for t in [int(s) for s in a.threads.split(",") if s]:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"] + argv, env=env,
                             stdout=subprocess.PIPE, check=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["ms_per_step"])
    import torch
    res = {"peer": "pytorch", "torch_version": torch.__version__, "arch": a.arch, "activation": a.activation,
           "stages": a.stages, "image": a.image, "norm": a.norm, "batch": a.batch, "steps": a.steps,
           "adjoint": a.adjoint,
           "ms_per_step": best["ms_per_step"], "samples_per_s": a.batch / (best["ms_per_step"] * 1e-3),
           "threads": best["threads"], "runs": runs}
    one = [r for r in runs if r["threads"] == 1]
    if one:
        res["cpu_ms_per_step_1thread"] = min(r["cpu_ms_per_step"] for r in one)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"pytorch {torch.__version__}: {a.arch} stages {a.stages} on {a.image}, batch {a.batch}: "
              f"{res['ms_per_step']:.1f} ms/step, {res['samples_per_s']:.0f} samples/s (best of {len(runs)} settings: "
              f"{best['threads']} thread(s))")
        for r in runs:
            print(f"  threads {r['threads']}: best {r['ms_per_step']:.1f} ms, median {r['ms_median']:.1f} ms, "
                  f"CPU {r['cpu_ms_per_step']:.1f} ms")
    return 0


# ---------------------------------------------------------------------------------------------
# forward check against a hamnet checkpoint

def check(a):
    import h5py
    import numpy as np
    import torch
    with h5py.File(a.check, "r") as f:
        m = f["model"].attrs
        if m.get("network", "dense") != "conv":
            raise SystemExit(f"{a.check}: not a convolutional network")
        stages = parse_stages(m["stages"])
        image = (int(m["image_channels"]), int(m["image_height"]), int(m["image_width"]))
        norm = m["norm"]
        params = f["model/params"][...].astype("float64")
        state = f["model/state"][...].astype("float64") if "state" in f["model"] else None
        net = build(torch, m["arch"], m["activation"], stages, image, norm, int(m["n_classes"]), float(m["final_time"]))
        if m["arch"] == "antisym":
            raise SystemExit("--check: antisym is not built here")
    net = net.double()
    off, st = 0, 0

    def take(count, shape):
        nonlocal off
        block = torch.from_numpy(params[off:off + count].reshape(shape).copy())
        off += count
        return block

    def load_normed(mod, cin, cout, k):
        nonlocal st
        mod.conv.weight.data = take(cout * cin * k * k, (cout, cin, k, k))
        if norm == "batch":
            mod.bn.weight.data = take(cout, (cout,))
            mod.bn.bias.data = take(cout, (cout,))
            mod.bn.running_mean.data = torch.from_numpy(state[st:st + cout].copy())
            mod.bn.running_var.data = torch.from_numpy(state[st + cout:st + 2 * cout].copy())
            st += 2 * cout
        else:
            mod.conv.bias.data = take(cout, (cout,))

    load_normed(net.opening, image[0], stages[0][0], 3)
    for s, (c, layers) in enumerate(stages):
        for j in range(layers):
            net.stages[s].K[j].data = take(9 * c * c, (c, c, 3, 3))
            net.stages[s].b[j].data = take(c, (c,))
        if s + 1 < len(stages):
            load_normed(net.connectives[s], c, stages[s + 1][0], 1)
    C = net.cls.out_features
    net.cls.weight.data = take(C * stages[-1][0], (C, stages[-1][0]))
    net.cls.bias.data = take(C, (C,))
    if off != len(params):
        raise SystemExit(f"layout mismatch: {off} of {len(params)} parameters used")
    net.eval()
    with h5py.File(a.data, "r") as f:
        X = torch.from_numpy(f["X"][:a.samples].astype("float64"))
    with torch.no_grad():
        ref = net(X.reshape((-1,) + image)).numpy()
    with h5py.File(a.logits, "r") as f:
        got = f["logits"][:a.samples].astype("float64")
    err = float(np.max(np.abs(got - ref)) / max(1e-30, np.max(np.abs(ref))))
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    print(f"hamnet vs PyTorch forward (evaluation mode, {len(got)} samples): max |difference| / max |logit| = "
          f"{err:.2e}, predictions agree on {100 * agree:.1f}%")
    return 0 if err <= a.tol else 1


def main(argv):
    a = parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    if a.check:
        if not a.data or not a.logits:
            raise SystemExit("--check needs --data and --logits")
        return check(a)
    return bench(a, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
