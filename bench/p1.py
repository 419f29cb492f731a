"""P1: one network, aedyn.train against a hand-written nn.Module + autograd + torch.optim.SGD loop.

    python bench/p1.py                                  # large and small shape, float32, CPU
    python bench/p1.py --shapes small --steps 50 --repeats 5
    python bench/p1.py --device cuda --steps 200

Both sides run full-batch gradient descent on the same objective, L = 0.5 * ||f(X) - X||_F^2
summed, f(x) = alpha * V relu(W x) with alpha = 1/sqrt(m), joint regime (both layers move), from
the same initial weights (aedyn's init_params, copied into two bias-free Linear layers), at the
same fixed step size eta (1/lambda_max of the NTK at initialisation, estimated once by aedyn
before any timing) for the same number of steps: aedyn.train gets target=0, so it never stops
early. aedyn.train is timed whole (its loss at every step, its metrics every 10 steps, its
bookkeeping); the hand-written loop keeps its loss at every step as a detached tensor. Before
timing, the final losses of both are checked to agree (relative 1e-3 in float32, 1e-9 in
float64): timing two different computations would mean nothing.

Shapes (m, d, n): large (8192, 256, 512), GEMM-bound; small (256, 64, 4096), many samples
through a narrow network. Each time is the best of --repeats runs after one warm-up run of each
side, the sides taking turns. aedyn.train has a fixed cost worth about three steps (its initial
loss with gradients, the activation masks and metrics at the start and the end), so the ratio
falls with --steps. On a machine other processes are loading, give --threads 1: oversubscribed
OpenMP threads stall every operation, and hit the side with more small operations harder.
Goal: ratio aedyn/hand <= 1.0 (aedyn no slower than the obvious loop).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import aedyn
from aedyn.data import sphere
from aedyn.gd import auto_lr
from aedyn.model import Params, init_params

SHAPES = {"large": (8192, 256, 512), "small": (256, 64, 4096)}  # (m, d, n)
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}


class HandWritten(nn.Module):
    """The obvious alternative: f(x) = alpha * V relu(W x) as two bias-free Linear layers."""

    def __init__(self, W: torch.Tensor, V: torch.Tensor, alpha: float) -> None:
        super().__init__()
        self.enc = nn.Linear(W.shape[1], W.shape[0], bias=False, device=W.device, dtype=W.dtype)
        self.dec = nn.Linear(W.shape[0], W.shape[1], bias=False, device=W.device, dtype=W.dtype)
        with torch.no_grad():
            self.enc.weight.copy_(W)
            self.dec.weight.copy_(V)
        self.alpha = alpha

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.dec(torch.relu(self.enc(X)))


def hand_train(X: torch.Tensor, params: Params, eta: float, steps: int, *, regime: str = "joint",
               sync_each_step: bool = False, target: float = 0.0) -> tuple[float, int]:
    """The hand-written loop: ``steps`` SGD updates at ``eta`` (and the loss after the last), the
    loss of every step kept; ``regime`` joint trains both layers, weak the encoder only. With
    ``sync_each_step`` the loss is read on the host at every step and the loop stops once
    ``L <= target * L(0)``, as a user's stop rule would. Returns the final loss and the number of
    updates taken."""
    model = HandWritten(params.W, params.V, params.alpha)
    if regime == "weak":
        model.dec.weight.requires_grad_(False)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=eta)
    history = []
    first = None
    for k in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * (model(X) - X).square().sum()
        history.append(loss.detach())
        if sync_each_step:
            value = loss.item()
            first = value if first is None else first
            if value <= target * first:
                return value, k
        if k == steps:
            break
        loss.backward()
        opt.step()
    return float(torch.stack(history)[-1]), steps


def aedyn_train(X: torch.Tensor, params: Params, eta: float, steps: int) -> tuple[float, int]:
    """aedyn's whole training call at a fixed step; target 0, so it takes exactly ``steps`` steps."""
    result = aedyn.train(X, params, "joint", lr=eta, steps=steps, target=0.0)
    return float(result.loss[-1]), result.steps


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(fns: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` calls, the functions taking turns."""
    times: dict[str, float] = {name: math.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name] = min(times[name], time.perf_counter() - t)
    return times


def bench(m: int, d: int, n: int, *, steps: int, repeats: int, dtype: str, device: str) -> dict:
    """One shape: check that both loops agree, then time them. Returns the row of the table."""
    dev = torch.device(device)
    X = sphere(n, d, seed=0).to(device=dev, dtype=getattr(torch, dtype))
    params = init_params(d, m, regime="joint", seed=0, dtype=dtype, device=dev)
    eta = 1.0 / auto_lr(params, X, "joint", max_iter=30, tol=1e-3)[1]  # not timed; the same eta for both

    # the check (also the warm-up run of each side)
    loss_a, steps_a = aedyn_train(X, params, eta, steps)
    loss_h, steps_h = hand_train(X, params, eta, steps)
    rel = abs(loss_a - loss_h) / abs(loss_h)
    if steps_a != steps or steps_h != steps or not rel <= TOLERANCE[dtype]:
        raise SystemExit(f"P1 {(m, d, n)}: aedyn and the hand-written loop disagree after {steps} steps: "
                         f"loss {loss_a:.9g} ({steps_a} steps) vs {loss_h:.9g} ({steps_h} steps), relative {rel:.2e}")

    t = best_times({"aedyn": lambda: aedyn_train(X, params, eta, steps),
                    "hand": lambda: hand_train(X, params, eta, steps)}, repeats, dev)
    return {"shape": (m, d, n), "steps": steps, "eta": eta, "loss_aedyn": loss_a, "loss_hand": loss_h, "rel": rel,
            "aedyn_s": t["aedyn"] / steps, "hand_s": t["hand"] / steps, "ratio": t["aedyn"] / t["hand"]}


def run(shapes: list[str], *, steps: int, repeats: int, dtype: str, device: str,
        log=print) -> list[dict]:
    rows = []
    for name in shapes:
        m, d, n = SHAPES[name]
        row = bench(m, d, n, steps=steps, repeats=repeats, dtype=dtype, device=device)
        row["name"] = name
        log(f"  check {name} (m, d, n) = {row['shape']}: eta = {row['eta']:.4g}, loss after {steps} steps "
            f"aedyn {row['loss_aedyn']:.9g}, hand {row['loss_hand']:.9g} (relative {row['rel']:.1e}): same")
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'shape':<6} {'(m, d, n)':<18} {'steps':>5}  {'aedyn s/step':>12}  {'hand s/step':>12}  "
             f"{'aedyn/hand':>10}"]
    for r in rows:
        lines.append(f"{r['name']:<6} {r['shape']!s:<18} {r['steps']:>5}  {r['aedyn_s']:>12.5f}  "
                     f"{r['hand_s']:>12.5f}  {r['ratio']:>10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timed runs")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--shapes", default="large,small", help=f"comma-separated, of: {', '.join(SHAPES)}")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice; 1 on a machine others are loading)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shape {unknown[0]!r}; use {', '.join(SHAPES)}")
    print(f"P1: torch {torch.__version__}, aedyn {aedyn.__version__}, {args.device}, {args.dtype}, "
          f"{torch.get_num_threads()} threads, joint, best of {args.repeats}")
    rows = run(shapes, steps=args.steps, repeats=args.repeats, dtype=args.dtype, device=args.device)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
