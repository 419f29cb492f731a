"""Everything worth checking on a GPU machine, in one script that finishes within a time budget.

    bash bench/gpu.sh                 # on the GPU machine, repository as the working folder
    python bench/gpu.py --quick       # small settings (on a machine without CUDA: the CPU half)

Parts, in order, each skipped with a note when the budget (--budget seconds, default 280, of a
5-minute slot) cannot fit it:

  a  CUDA against CPU, float64, every regime on a small problem: aedyn.train (loss curve at every
     step to 1e-9 relative, status and steps equal, lambda_max of lr="auto" to 1e-8), train_batch
     (three networks with their own data; each network likewise), a diverging run (status and
     step equal), ntk_extremes (lambda_min and lambda_max to 1e-8) and kernel_spectrum (to 1e-8).
  b  P1 on CUDA (bench/p1.py): one network, aedyn.train against nn.Module + autograd + SGD.
  c  P2 on CUDA (bench/p2.py): a grid of small networks, aedyn's sweep engine against one
     hand-written loop per network.
  d  lambda_min of the joint NTK (aedyn.ntk.ntk_extremes, which="min") at n=1024, d=32, m=4096,
     float64, on CUDA and, in a subprocess killed at the budget, on the CPU.

Without CUDA the script says so, computes the CPU side of (a) (nothing to compare it with) and
runs (b)-(d) on the CPU: that is how it is tested off a GPU machine (with --quick). It prints one
table at the end. Goals: (a) all pass; (b) aedyn/hand <= 1.0; (c) hand/aedyn >= 100x on a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aedyn
import p1
import p2
from aedyn.data import sphere
from aedyn.errors import AedynWarning
from aedyn.kernels import kernel_spectrum
from aedyn.model import REGIMES, Params, init_params
from aedyn.ntk import ntk_extremes

LOSS_TOL, EIG_TOL = 1e-9, 1e-8


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rel(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


# ---- (a) CUDA against CPU -----------------------------------------------------------------------

def problem(regime: str, n: int, d: int, m: int, device: str, batch: int | None = None):
    """Sphere data and a network (or a batch of networks, each with its own data) on ``device``."""
    if batch is None:
        return sphere(n, d, seed=1).to(device), init_params(d, m, regime=regime, seed=2, device=device)
    X = torch.stack([sphere(n, d, seed=10 + b) for b in range(batch)]).to(device)
    nets = [init_params(d, m, regime=regime, seed=20 + b, device=device) for b in range(batch)]
    V = None if regime == "tied" else torch.stack([q.V for q in nets])
    return X, Params(torch.stack([q.W for q in nets]), V, nets[0].alpha)


def computations(regime: str, device: str, n: int, d: int, m: int, steps: int) -> dict:
    """What (a) compares, computed on ``device``: plain numbers and lists, on the host."""
    out = {}
    X, params = problem(regime, n, d, m, device)
    r = aedyn.train(X, params, regime, lr="auto", steps=steps, target=1e-6)
    out["train"] = [(r.status, r.steps, r.loss.tolist(), r.lambda_max)]
    Xb, pb = problem(regime, n, d, m, device, batch=3)
    out["train_batch"] = [(q.status, q.steps, q.loss.tolist(), q.lambda_max)
                          for q in aedyn.train_batch(Xb, pb, regime, lr="auto", steps=steps, target=1e-6)]
    lam = r.lambda_max
    q = aedyn.train(X, params, regime, lr=8.0 / lam, steps=steps, target=1e-6)  # far past 2/lambda_max
    out["diverging"] = [(q.status, q.steps, q.loss[:q.steps].tolist(), None)]
    e = ntk_extremes(params, X, regime, which="both", tol=1e-12, max_iter=1000)
    out["ntk"] = [e.min, e.max]
    if regime != "tied":  # the tied NTK has no n x n kernel
        k = kernel_spectrum(X, regime)
        out["kernel"] = [k.lambda_0, k.mu_0, k.lambda_min, k.lambda_max]
    return out


def compare(ref: dict, got: dict) -> tuple[list[str], float, float]:
    """Differences beyond tolerance (as lines), the worst loss and the worst eigenvalue difference."""
    bad, worst_loss, worst_eig = [], 0.0, 0.0
    for key in ("train", "train_batch", "diverging"):
        for b, ((s1, k1, l1, lam1), (s2, k2, l2, lam2)) in enumerate(zip(ref[key], got[key], strict=True)):
            if (s1, k1) != (s2, k2):
                bad.append(f"{key}[{b}]: cpu {s1} after {k1} steps, cuda {s2} after {k2}")
                continue
            diff = max((rel(a, c) for a, c in zip(l1, l2, strict=True) if math.isfinite(a) or math.isfinite(c)),
                       default=0.0)
            worst_loss = max(worst_loss, diff)
            if diff > LOSS_TOL:
                bad.append(f"{key}[{b}]: loss curves differ by {diff:.1e} relative")
            if lam1 is not None:
                worst_eig = max(worst_eig, rel(lam1, lam2))
                if rel(lam1, lam2) > EIG_TOL:
                    bad.append(f"{key}[{b}]: lambda_max {lam1!r} vs {lam2!r}")
    for key in ("ntk", "kernel"):
        for i, (a, c) in enumerate(zip(ref.get(key, []), got.get(key, []), strict=True)):
            worst_eig = max(worst_eig, rel(a, c))
            if rel(a, c) > EIG_TOL:
                bad.append(f"{key}[{i}]: cpu {a!r}, cuda {c!r}")
    return bad, worst_loss, worst_eig


def part_a(cuda: bool, quick: bool, log) -> str:
    n, d, m, steps = (16, 8, 64, 60) if quick else (32, 8, 256, 300)
    failures, worst_loss, worst_eig = [], 0.0, 0.0
    for regime in REGIMES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AedynWarning)
            ref = computations(regime, "cpu", n, d, m, steps)
            if not cuda:
                log(f"  a {regime}: CPU side computed ({ref['train'][0][0]} after {ref['train'][0][1]} steps); "
                    "no CUDA to compare with")
                continue
            got = computations(regime, "cuda", n, d, m, steps)
        bad, wl, we = compare(ref, got)
        worst_loss, worst_eig = max(worst_loss, wl), max(worst_eig, we)
        failures += [f"{regime} {line}" for line in bad]
        log(f"  a {regime}: {'PASS' if not bad else 'FAIL'} (loss {wl:.1e}, eigenvalues {we:.1e})"
            + "".join(f"\n      {line}" for line in bad))
    if not cuda:
        return f"CPU side only, {len(REGIMES)} regimes (no CUDA)"
    verdict = "PASS" if not failures else f"FAIL ({len(failures)}: {failures[0]})"
    return (f"{verdict}; {len(REGIMES)} regimes, (n, d, m) = ({n}, {d}, {m}), {steps} steps; worst loss "
            f"{worst_loss:.1e}, worst eigenvalue {worst_eig:.1e}")


# ---- (b), (c) the benchmarks --------------------------------------------------------------------

def part_b(device: str, quick: bool, log) -> str:
    shapes, steps, repeats = (["small"], 3, 1) if quick else (["large", "small"], 200, 3)
    rows = p1.run(shapes, steps=steps, repeats=repeats, dtype="float32", device=device, log=log)
    log(p1.table(rows))
    return "; ".join(f"{r['name']}: aedyn {r['aedyn_s'] * 1e3:.3f} ms/step, hand {r['hand_s'] * 1e3:.3f} ms/step, "
                     f"aedyn/hand {r['ratio']:.2f}" for r in rows) + f" ({steps} steps, float32)"


def part_c(device: str, quick: bool, seeds: int, log) -> str:
    dtype = "float32" if device == "cuda" else "float64"
    steps = 30 if quick else 300
    r = p2.run(regimes=["joint"], seeds=seeds, steps=steps, target=1e-6, dtype=dtype, device=device, batch_size=64,
               log=log)
    log(p2.table(r))
    return (f"{r['runs']} runs in {r['batches']} batches, {dtype}: aedyn {r['aedyn_s']:.2f} s, "
            f"hand {r['hand_s']:.2f} s, hand/aedyn {r['ratio']:.1f}x")


# ---- (d) NTK lambda_min ------------------------------------------------------------------------

def ntk_min_time(n: int, d: int, m: int, device: str) -> dict:
    """Seconds for lambda_min of the joint NTK of one network at n x d sphere data, float64."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AedynWarning)
        small = sphere(64, 8, seed=0).to(device)  # warm-up: library handles, kernels
        ntk_extremes(init_params(8, 256, seed=0, device=device), small, "joint", which="min")
        X = sphere(n, d, seed=0).to(device)
        params = init_params(d, m, seed=0, device=device)
        sync(device)
        t = time.perf_counter()
        e = ntk_extremes(params, X, "joint", which="min")
        sync(device)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "lambda_min": e.min, "iterations": e.iterations, "converged": e.converged,
            "notes": [str(w.message) for w in caught]}


def part_d(cuda: bool, size: tuple[int, int, int], budget: float, threads: int | None, log) -> str:
    n, d, m = size
    parts = []
    gpu = None
    if cuda:
        gpu = ntk_min_time(n, d, m, "cuda")
        log(f"  d cuda: lambda_min = {gpu['lambda_min']:.12g} in {gpu['seconds']:.2f} s "
            f"({gpu['iterations']} iterations, converged={gpu['converged']})")
        parts.append(f"cuda {gpu['seconds']:.2f} s")
    limit = budget - 10.0 - (time.perf_counter() - START)  # the CPU run gets what is left
    if limit < 5:
        parts.append("cpu skipped (budget)")
        return f"(n, d, m) = {size}: " + ", ".join(parts)
    cmd = [sys.executable, os.path.abspath(__file__), "--ntk-cpu", ",".join(map(str, size))]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=True)
        cpu = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        parts.append(f"cpu over {limit:.0f} s, stopped")
        return f"(n, d, m) = {size}: " + ", ".join(parts)
    log(f"  d cpu: lambda_min = {cpu['lambda_min']:.12g} in {cpu['seconds']:.2f} s "
        f"({cpu['iterations']} iterations, converged={cpu['converged']})")
    parts.append(f"cpu {cpu['seconds']:.2f} s")
    if gpu is not None:
        parts.append(f"cpu/cuda {cpu['seconds'] / gpu['seconds']:.1f}x, lambda_min differ by "
                     f"{rel(cpu['lambda_min'], gpu['lambda_min']):.1e}")
    return f"(n, d, m) = {size}, float64: " + ", ".join(parts)


# ---- the run ------------------------------------------------------------------------------------

START = time.perf_counter()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings throughout")
    ap.add_argument("--budget", type=float, default=280.0, help="seconds for the whole script")
    ap.add_argument("--parts", default="abcd", help="which parts to run, e.g. ab")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    ap.add_argument("--ntk-cpu", default=None, help=argparse.SUPPRESS)  # n,d,m: the CPU timing of (d), in a child
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.ntk_cpu is not None:
        n, d, m = (int(v) for v in args.ntk_cpu.split(","))
        print(json.dumps(ntk_min_time(n, d, m, "cpu")))
        return

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    where = torch.cuda.get_device_name(0) if cuda else "no CUDA device: running the CPU half"
    print(f"aedyn {aedyn.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda}), {where}; "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; budget {args.budget:.0f} s"
          + (", quick" if args.quick else ""), flush=True)

    def log(line: str) -> None:
        print(line, flush=True)

    def left() -> float:
        return args.budget - (time.perf_counter() - START)

    seeds = 1 if args.quick else 32
    ntk_size = (128, 16, 512) if args.quick else (1024, 32, 4096)
    parts = {  # name, what, minimum seconds it needs, how to run it
        "a": ("CUDA vs CPU checks", 20, lambda: part_a(cuda, args.quick, log)),
        "b": (f"P1 on {device}", 20, lambda: part_b(device, args.quick, log)),
        "c": (f"P2 on {device}", 60, lambda: part_c(device, args.quick, seeds if left() > 150 else 8, log)),
        "d": (f"NTK lambda_min on {device}", 15,
              lambda: part_d(cuda, ntk_size, args.budget, args.threads, log)),
    }
    table = []
    for key, (what, need, fn) in parts.items():
        if key not in args.parts:
            continue
        if left() < (2 if args.quick else need):
            table.append((key, what, f"skipped: {left():.0f} s left of the budget, needs about {need} s", 0.0))
            continue
        log(f"[{key}] {what}")
        t = time.perf_counter()
        try:
            result = fn()
        except (Exception, SystemExit) as exc:  # one part's failure must not cost the others
            traceback.print_exc()
            result = f"ERROR: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        table.append((key, what, result, time.perf_counter() - t))

    print(f"\n==== summary ({time.perf_counter() - START:.0f} s of {args.budget:.0f}"
          + ("; quick: too small for the ratios to mean anything" if args.quick else "") + ") ====")
    width = max(len(what) for _, what, _, _ in table) if table else 10
    for key, what, result, seconds in table:
        print(f"{key}  {what:<{width}}  {seconds:6.1f} s  {result}")


if __name__ == "__main__":
    main()
