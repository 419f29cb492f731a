"""Roofline of one batched gradient-descent step at E2's shapes: aedyn's time per step against the
machine's floor, measured in one process.

    python bench/roofline.py                      # joint and weak, n=256, d=8, m=1024, 8 networks, float64, 1 thread
    python bench/roofline.py --threads 2 --n 512 --width 2048

The floor of a step is ``max(FLOPs / GEMM rate, bytes / bandwidth)``:

- **FLOPs**: the step's matrix products, ``2 n m d`` each per network: joint has five
  (``Z = X W^T``, ``U = A V^T``, ``dV = R^T A``, ``R V``, ``dW = P^T X``), weak four (no ``dV``);
  the elementwise work (ReLU, its derivative, the update) is not counted.
- **bytes**: what a step made of matrix products must move even with every elementwise operation
  fused into a product: the ``n x m`` activations ``A`` written once and read by each product and
  mask that uses them (joint: ``U``, ``dV`` and ReLU's derivative; weak: ``U`` and the derivative),
  the back-propagated ``n x m`` matrix ``P`` written once and read once (by ``dW``), and the
  parameters and gradients read and written once: joint ``6 B n m`` words, weak ``5 B n m``.
- **GEMM rate**: the best rate of a large square product (``--gemm`` size) in this process, at the
  same thread count; **bandwidth**: the best rate of copying a buffer far larger than the caches
  (bytes read plus bytes written).

aedyn's time per step is the slope of ``train_batch``'s wall time between ``--steps`` and twice as
many steps (``target = 0``, a fixed step size, no recording between the ends): the fixed cost of a
run (its step size, its first and last evaluation, the results) cancels. ``--profile`` also times
each part of one step alone. Goal (issue 16): at most 2x the floor. Run it on an otherwise idle
machine; each number is the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from aedyn.data import sphere
from aedyn.gd import auto_lr_batch, train_batch
from aedyn.model import Params, init_params

WORDS = {"joint": 6, "weak": 5}
PRODUCTS = {"joint": 5, "weak": 4}


def best(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """The best wall time of ``inner`` calls of ``fn`` over ``repeats`` tries, per call (after one warm-up)."""
    fn()
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out = min(out, (time.perf_counter() - t0) / inner)
    return out


def gemm_rate(size: int, dtype: torch.dtype, repeats: int) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    return 2 * size ** 3 / best(lambda: torch.matmul(a, b, out=out), repeats)


def bandwidth(mbytes: int, repeats: int) -> float:
    src = torch.ones(mbytes * 2 ** 20 // 8, dtype=torch.float64)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 8 / best(lambda: dst.copy_(src), repeats)


def step_time(X: torch.Tensor, params: Params, regime: str, steps: int, repeats: int) -> float:
    """Seconds per step: the slope of train_batch's wall time between ``steps`` and ``2 steps``."""
    eta = auto_lr_batch(params, X, regime)[0]

    def run(k: int) -> Callable[[], object]:
        return lambda: train_batch(X, params, regime, lr=eta, steps=k, target=0.0, record_every=k + 1)

    short, long = best(run(steps), repeats), best(run(2 * steps), repeats)
    return (long - short) / steps


def profile(X: torch.Tensor, params: Params, regime: str, repeats: int) -> dict[str, float]:
    """Each part of one step alone, network by network as the engine runs it on the CPU (plain
    matrix products into the workspace's buffers, whole networks: the default block at these
    shapes), seconds per step for the whole batch."""
    from aedyn.model import Workspace, evaluate

    ws = Workspace(params, X, regime)
    B = params.W.shape[0]
    W, V, A, R, G = params.W, params.V, ws.Ab, ws.R, ws.Gb
    each = range(B)
    parts: dict[str, Callable[[], object]] = {
        "Z = X W^T": lambda: [torch.matmul(X, W[b].mT, out=A) for b in each],
        "relu": lambda: [A.relu_() for b in each],
        "U = A V^T": lambda: [torch.matmul(A, V[b].mT, out=R[b]) for b in each],
        "R V": lambda: [torch.matmul(R[b], V[b], out=G) for b in each],
        "mask": lambda: [torch.ops.aten.threshold_backward.grad_input(G, A, 0.0, grad_input=G) for b in each],
        "dW = (X^T P)^T": lambda: [torch.matmul(X.mT, G, out=ws.gW[b]) for b in each],
    }
    if regime == "joint":
        parts["dV = R^T A"] = lambda: [torch.matmul(R[b].mT, A, out=ws.gV[b]) for b in each]
    parts["whole evaluation"] = lambda: evaluate(params, X, regime, check_finite=False, workspace=ws)
    return {name: best(fn, repeats, inner=5) for name, fn in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (E2 runs on one)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gemm", type=int, default=1024, help="size of the square product that measures the GEMM rate")
    ap.add_argument("--copy-mb", type=int, default=512, help="size of the buffer that measures the bandwidth")
    ap.add_argument("--regimes", default="joint,weak")
    ap.add_argument("--profile", action="store_true", help="also time each part of one step alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    size = torch.empty(0, dtype=dtype).element_size()
    rate = gemm_rate(args.gemm, dtype, args.repeats)
    bw = bandwidth(args.copy_mb, args.repeats)
    n, d, m, B = args.n, args.d, args.width, args.batch
    print(f"machine: {torch.get_num_threads()} thread(s), GEMM {rate / 1e9:.1f} GFLOP/s ({args.dtype}, "
          f"{args.gemm}^3), copy {bw / 1e9:.1f} GB/s (read + write); torch {torch.__version__}")
    print(f"shape: B = {B} networks, n = {n}, d = {d}, m = {m}, {args.dtype}")
    X = sphere(n, d, seed=0).to(dtype)
    params = Params.stack([init_params(d, m, seed=s, dtype=dtype) for s in range(B)])
    print(f"{'regime':7s} {'GFLOP':>6s} {'MB':>6s} {'flop floor':>10s} {'byte floor':>10s} {'aedyn':>9s} "
          f"{'aedyn/floor':>11s}")
    for regime in args.regimes.split(","):
        flops = PRODUCTS[regime] * 2 * n * m * d * B
        moved = WORDS[regime] * B * n * m * size + 4 * B * m * d * size
        floor_f, floor_b = flops / rate, moved / bw
        t = step_time(X, params, regime, args.steps, args.repeats)
        print(f"{regime:7s} {flops / 1e9:6.3f} {moved / 1e6:6.1f} {floor_f * 1e3:8.2f}ms {floor_b * 1e3:8.2f}ms "
              f"{t * 1e3:7.2f}ms {t / max(floor_f, floor_b):10.2f}x")
        if args.profile:
            for name, sec in profile(X, params, regime, args.repeats).items():
                print(f"    {name:18s} {sec * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
