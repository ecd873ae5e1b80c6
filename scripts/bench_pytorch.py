#!/usr/bin/python3
"""bench_pytorch.py - the PyTorch peer of `hamnet bench`: the same training step, float32.

Runs the workload `hamnet bench` times (README "The mathematics"'s equations, pad opening, tanh or relu, dense
classifier, mean cross-entropy, Adam; synthetic data; no regulariser in either) with PyTorch's
autograd, which keeps every intermediate it needs (PyTorch has no reversible mode), and prints
the best time per step:

    scripts/bench_pytorch.py --arch hamiltonian --width 8 --depth 256 --batch 1024 [--json]

The peer is made as fast as PyTorch allows here:
  - each layer has its own parameter tensors K_j [n, n] and b_j [n] (slicing one [N, n, n]
    tensor makes autograd scatter a full-size gradient per layer: ~5x slower, an unfair peer);
  - it is run once per thread setting (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = t for each t of
    --threads, default 1 and 2; a fresh process each, since OpenBLAS reads its variable at load
    time) and with Adam's for-loop and foreach implementations; the best setting is reported.
Needs Debian's python3-torch (apt-get install python3-torch; run with /usr/bin/python3).
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
    p.add_argument("--activation", default="tanh", choices=["tanh", "relu"])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--depth", type=int, default=256)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--features", type=int, default=2)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--final-time", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=10, help="timed steps (best-of: the fastest is reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="1,2", help="comma-separated thread settings to try")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# the model: one sample per row, so K y is y @ K.T and K^T y is y @ K (as in hamnet's kernels)

def build(torch, a):
    n, N, F, C = a.width, a.depth, a.features, a.classes
    if n < F:
        raise SystemExit("bench_pytorch.py: the pad opening needs width >= features")
    g = torch.Generator().manual_seed(1)
    Ks = [torch.nn.Parameter(torch.randn(n, n, generator=g) / math.sqrt(n)) for _ in range(N)]
    bs = [torch.nn.Parameter(torch.zeros(n)) for _ in range(N)]
    W = torch.nn.Parameter(torch.randn(C, n, generator=g) / math.sqrt(n))
    mu = torch.nn.Parameter(torch.zeros(C))
    X = torch.randn(a.batch, F, generator=g)
    labels = torch.randint(0, C, (a.batch,), generator=g)
    return Ks, bs, W, mu, X, labels


def make_forward(torch, a, Ks, bs, W, mu):
    h = a.final_time / a.depth
    h2 = h * h
    act = torch.tanh if a.activation == "tanh" else torch.relu
    n, F = a.width, a.features

    def forward(X):
        y = torch.nn.functional.pad(X, (0, n - F))
        if a.arch == "hamiltonian":     # z+ = z - h s(K^T y + b); y+ = y + h s(K z+ + b)
            z = torch.zeros_like(y)
            for K, b in zip(Ks, bs):
                z = z - h * act(y @ K + b)
                y = y + h * act(z @ K.t() + b)
        elif a.arch == "leapfrog":      # y+ = 2 y - y- - h^2 K^T s(K y + b), y_{-1} = y_0
            prev = y
            for K, b in zip(Ks, bs):
                y, prev = 2 * y - prev - h2 * (act(y @ K.t() + b) @ K), y
        else:                           # y+ = y + h s(K y + b)
            for K, b in zip(Ks, bs):
                y = y + h * act(y @ K.t() + b)
        return y @ W.t() + mu

    return forward


def worker(a):
    """One thread setting (from the environment): time every Adam variant, print JSON."""
    import torch
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    results = []
    for foreach in (False, True):
        Ks, bs, W, mu, X, labels = build(torch, a)
        params = Ks + bs + [W, mu]
        opt = torch.optim.Adam(params, lr=1e-4, foreach=foreach)
        forward = make_forward(torch, a, Ks, bs, W, mu)

        def step():
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.cross_entropy(forward(X), labels)
            loss.backward()
            opt.step()
            return loss

        results.append({"threads": threads, "adam_foreach": foreach, **time_steps(step, a.warmup, a.steps)})
    print(json.dumps(results))


def main(argv):
    a = parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    runs = []
    for t in [int(s) for s in a.threads.split(",") if s]:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"] + argv,
                             env=env, stdout=subprocess.PIPE, check=True, text=True).stdout
        runs += json.loads(out.strip().splitlines()[-1])
    best = min(runs, key=lambda r: r["ms_per_step"])
    import torch
    res = {"peer": "pytorch", "torch_version": torch.__version__, "arch": a.arch, "activation": a.activation,
           "width": a.width, "depth": a.depth, "batch": a.batch, "steps": a.steps,
           "ms_per_step": best["ms_per_step"], "samples_per_s": a.batch / (best["ms_per_step"] * 1e-3),
           "threads": best["threads"], "adam_foreach": best["adam_foreach"], "runs": runs}
    one = [r for r in runs if r["threads"] == 1]
    if one:  # process CPU time with one thread: much less disturbed by other load than wall time
        res["cpu_ms_per_step_1thread"] = min(r["cpu_ms_per_step"] for r in one)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"pytorch {torch.__version__}: {a.arch} width {a.width} depth {a.depth} batch {a.batch}: "
              f"{res['ms_per_step']:.2f} ms/step, {res['samples_per_s']:.0f} samples/s "
              f"(best of {len(runs)} settings: {best['threads']} thread(s), foreach={best['adam_foreach']})")
        for r in runs:
            print(f"  threads {r['threads']} foreach {str(r['adam_foreach']):5}: best {r['ms_per_step']:.2f} ms, "
                  f"median {r['ms_median']:.2f} ms, CPU {r['cpu_ms_per_step']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
