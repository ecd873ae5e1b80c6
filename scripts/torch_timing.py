"""torch_timing.py - the timing loop the PyTorch peers share (bench_pytorch.py, bench_conv_pytorch.py):
the same protocol as `hamnet bench` - warm-up steps untimed, then the best (and median) wall time
and the best process CPU time of the timed steps."""
import time


def time_steps(step, warmup, steps):
    """Run step() warmup times, then steps times timed. step returns the loss tensor.
    Returns {"ms_per_step" (best), "ms_median", "cpu_ms_per_step" (best), "loss" (the last)}."""
    for _ in range(warmup):
        step()
    times, cpu = [], []
    loss = None
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"ms_per_step": 1e3 * min(times), "ms_median": 1e3 * sorted(times)[len(times) // 2],
            "cpu_ms_per_step": 1e3 * min(cpu), "loss": float(loss)}
