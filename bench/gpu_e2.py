"""E2 on a GPU: the captured-graph engine against the CPU reference, one width trial at n = 1024 timed.

    python bench/gpu_e2.py                      # on a GPU machine (bash bench/gpu_e2.sh runs it first)
    python bench/gpu_e2.py --device cpu --quick # the same script off a GPU (what the tests run)

Parts:

  a  agreement, every regime, float64: ``train_batch`` on the device with its plain steps in
     segments (on CUDA: one captured CUDA graph per segment) against the CPU reference (step by
     step, network by network): status and steps equal, every loss within 1e-10 relative, the final
     parameters within 1e-10; and against the same device without segments (eager launches): equal
     (the same kernels in the same order).
  b  one E2 width trial at n = 1024 (d = 8, 8 networks, its whole step budget, NTK checks
     included, float64), timed on the device: the trial the width search repeats (goal <= 15 s).

Prints one line per check and the trial's time; exits 1 if an agreement check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from aedyn import gd
from aedyn.data import sphere
from aedyn.job import run_batch
from aedyn.model import REGIMES, Params, init_params
from aedyn.threshold import WidthSearch

TOL = 1e-10


def rel(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a = torch.as_tensor(a, dtype=torch.float64).cpu()
    b = torch.as_tensor(b, dtype=torch.float64).cpu()
    scale = float(b.abs().max()) or 1.0
    return float((a - b).abs().max()) / scale


def agreement(device: str, n: int, d: int, m: int, steps: int) -> bool:
    ok = True
    X = sphere(n, d, seed=3)
    for regime in REGIMES:
        nets = [init_params(d, m, regime=regime, seed=s) for s in range(3)]
        P = Params.stack(nets)
        etas = np.array([0.3, 0.05, 40.0])  # converges, runs to the budget, diverges
        kw = dict(lr=etas, steps=steps, target=0.1, record_every=steps + 1, ntk_every=None)
        cpu = gd.train_batch(X, P, regime, **kw)
        real = gd.use_segments
        try:
            gd.use_segments = lambda dev: True  # segments (captured graphs on CUDA; eager on the CPU)
            on = gd.train_batch(X.to(device), P.to(device), regime, sync_every=32, **kw)
            gd.use_segments = lambda dev: False  # every step launched by the host
            eager = gd.train_batch(X.to(device), P.to(device), regime, sync_every=32, **kw)
        finally:
            gd.use_segments = real
        worst_cpu = worst_eager = 0.0
        same = True
        for a, b, c in zip(on, cpu, eager, strict=True):
            same &= (a.status, a.steps) == (b.status, b.steps) == (c.status, c.steps)
            if a.status != "diverged":
                worst_cpu = max(worst_cpu, rel(a.loss, b.loss), rel(a.params.W, b.params.W))
            worst_eager = max(worst_eager, rel(a.loss, c.loss) if a.status != "diverged" else 0.0)
        good = same and worst_cpu <= TOL and worst_eager == 0.0
        ok &= good
        print(f"  a  {regime:8s} statuses {'equal' if same else 'DIFFER'}; against the CPU {worst_cpu:.1e}, "
              f"against eager {worst_eager:.1e}: {'PASS' if good else 'FAIL'}", flush=True)
    return ok


def trial(device: str, n: int, regime: str, seeds: int) -> None:
    search = WidthSearch(regime, "sphere", n, 8, seeds=seeds, max_width=16384, device=device)
    width = 2 ** round(np.log2(n) + 1)
    jobs = search.jobs(width)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run_batch(jobs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"  b  {regime} n = {n}, d = 8, m = {width}, {seeds} networks, budget {search.budget} steps "
          f"(NTK every {search.ntk_every}): {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small problems (what runs off a GPU)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here; use --device cpu --quick")
    print(f"gpu_e2: torch {torch.__version__}, {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""), flush=True)
    small = (6, 4, 24, 120) if args.quick else (32, 8, 512, 600)
    ok = agreement(args.device, *small)
    for regime in ("weak", "joint"):
        trial(args.device, 16 if args.quick else 1024, regime, 2 if args.quick else 8)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
