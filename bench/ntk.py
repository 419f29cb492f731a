"""lambda_min of the joint finite-width NTK: aedyn's matrix-free path against the full kernel.

    python bench/ntk.py                       # (n, d, m) = (256, 32, 8192), then nd = 100,000
    python bench/ntk.py --size 64,16,2048 --full-alternative --no-large

aedyn: preconditioned LOBPCG on Theta v = J (J^T v) (no nd x nd matrix). The obvious alternative:
the Jacobian from torch.func.jacrev, Theta = J J^T, then torch.linalg.eigvalsh. At the default
size J alone is nd x 2md = 8192 x 524288 float64 = 34 GB, so the alternative builds Theta from
Jacobians of neuron chunks (Theta = sum_c J_c J_c^T, exact because f is a sum over neurons);
without --full-alternative it times the first chunk and the eigvalsh and scales the chunk time
by the number of chunks (said in the output). Peak memory is the process's resident high-water
mark, reset before each method (Linux /proc/self/clear_refs). float64 throughout.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import torch

from aedyn.data import sphere
from aedyn.errors import AedynWarning
from aedyn.model import init_params
from aedyn.ntk import NTKOperator


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return math.nan


def aedyn_lambda_min(n: int, d: int, m: int, tol: float, max_iter: int = 500) -> dict:
    X = sphere(n, d, seed=0)
    p = init_params(d, m, seed=0)
    reset_peak()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AedynWarning)
        ext = NTKOperator(p, X, "joint").extremes(which="min", tol=tol, max_iter=max_iter)
    return {"lambda_min": ext.min, "seconds": time.perf_counter() - t, "peak_gib": peak_gib(),
            "iterations": ext.iterations, "converged": ext.converged, "warnings": [str(w.message) for w in caught]}


def alternative_lambda_min(n: int, d: int, m: int, chunk: int, full: bool) -> dict:
    X = sphere(n, d, seed=0)
    p = init_params(d, m, seed=0)
    alpha = p.alpha

    def f(W, V):
        return (alpha * torch.relu(X @ W.T) @ V.T).reshape(-1)

    reset_peak()
    t = time.perf_counter()
    theta = torch.zeros(n * d, n * d, dtype=torch.float64)
    chunks = range(0, m, chunk)
    done = 0
    for start in chunks:
        JW, JV = torch.func.jacrev(f, argnums=(0, 1))(p.W[start:start + chunk], p.V[:, start:start + chunk])
        J = torch.cat([JW.reshape(n * d, -1), JV.reshape(n * d, -1)], dim=1)
        theta += J @ J.T
        del J, JW, JV
        done += 1
        if not full:
            break
    t_chunks = time.perf_counter() - t
    t_kernel = t_chunks * len(chunks) / done
    t = time.perf_counter()
    ev = torch.linalg.eigvalsh(theta)
    t_eig = time.perf_counter() - t
    return {"lambda_min": float(ev[0]) if full else math.nan, "seconds": t_kernel + t_eig, "kernel_s": t_kernel,
            "eigvalsh_s": t_eig, "peak_gib": peak_gib(), "estimated": not full,
            "chunks": f"{done} of {len(chunks)} chunks of {chunk} neurons"}


def compare(n: int, d: int, m: int, args: argparse.Namespace) -> None:
    print(f"(n, d, m) = ({n}, {d}, {m}), nd = {n * d}, dense Theta = {(n * d) ** 2 * 8 / 2**30:.2f} GiB, "
          f"full Jacobian = {n * d * 2 * m * d * 8 / 2**30:.1f} GiB")
    a = aedyn_lambda_min(n, d, m, args.tol)
    print(f"aedyn matrix-free  lambda_min = {a['lambda_min']:.12g}  {a['seconds']:8.2f} s  peak {a['peak_gib']:.2f} GiB"
          f"  ({a['iterations']} LOBPCG iterations, converged={a['converged']})")
    b = alternative_lambda_min(n, d, m, args.chunk, args.full_alternative)
    how = f"estimated from {b['chunks']}" if b["estimated"] else b["chunks"]
    print(f"jacrev + eigvalsh  lambda_min = {b['lambda_min']:.12g}  {b['seconds']:8.2f} s  peak {b['peak_gib']:.2f} GiB"
          f"  (kernel {b['kernel_s']:.1f} s {how}; eigvalsh {b['eigvalsh_s']:.1f} s)")
    if not math.isnan(b["lambda_min"]):
        print(f"relative difference of lambda_min: {abs(a['lambda_min'] - b['lambda_min']) / b['lambda_min']:.2e}")
    print(f"speed-up: {b['seconds'] / a['seconds']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256,32,8192", help="n,d,m")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--chunk", type=int, default=256, help="neurons per Jacobian chunk of the alternative")
    ap.add_argument("--full-alternative", action="store_true", help="run every chunk (slow), not an estimate")
    ap.add_argument("--large", default="1563,64,8192", help="n,d,m of the large aedyn-only run")
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--large-max-iter", type=int, default=500,
                    help="LOBPCG iteration cap of the large run (a few suffice to measure its memory)")
    ap.add_argument("--no-compare", action="store_true", help="only the large run")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    n, d, m = (int(v) for v in args.size.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64; joint NTK, sphere data, seed 0")
    if not args.no_compare:
        compare(n, d, m, args)
    if not args.no_large:
        n2, d2, m2 = (int(v) for v in args.large.split(","))
        c = aedyn_lambda_min(n2, d2, m2, args.tol, args.large_max_iter)
        print(f"large: (n, d, m) = ({n2}, {d2}, {m2}), nd = {n2 * d2}: lambda_min = {c['lambda_min']:.10g} in "
              f"{c['seconds']:.1f} s, peak {c['peak_gib']:.2f} GiB ({c['iterations']} iterations, "
              f"converged={c['converged']}, {c['seconds'] / max(c['iterations'], 1):.2f} s per iteration); "
              f"the dense kernel would need {(n2 * d2) ** 2 * 8 / 1e9:.0f} GB")
        for w in c["warnings"]:
            print("  note:", w)


if __name__ == "__main__":
    main()
