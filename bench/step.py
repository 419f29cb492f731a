"""One full-batch GD step: aedyn's analytic path against a hand-written nn.Module + autograd + SGD.

    python bench/step.py                 # both default sizes, float32, CPU
    python bench/step.py --sizes 4096,64,256 --repeats 9 --device cuda

Both steps compute the same update (checked before timing) in the same process on the same data;
each time is the median of ``--repeats`` steps after ``--warmup`` untimed ones. Ratio < 1 means
aedyn is faster.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from aedyn.data import sphere
from aedyn.model import evaluate, init_params


class HandWritten(nn.Module):
    """The obvious alternative: f(x) = alpha * V relu(W x) as two bias-free Linear layers."""

    def __init__(self, W: torch.Tensor, V: torch.Tensor, alpha: float) -> None:
        super().__init__()
        self.enc = nn.Linear(W.shape[1], W.shape[0], bias=False)
        self.dec = nn.Linear(W.shape[0], W.shape[1], bias=False)
        with torch.no_grad():
            self.enc.weight.copy_(W)
            self.dec.weight.copy_(V)
        self.alpha = alpha

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.dec(torch.relu(self.enc(X)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_times(steps: dict, repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median wall time of each step function; the functions take turns so drift hits both alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench(m: int, d: int, n: int, *, dtype: torch.dtype, device: torch.device, repeats: int, warmup: int,
          lr: float) -> dict:
    X = sphere(n, d, seed=0).to(device=device, dtype=dtype)
    p = init_params(d, m, seed=0, dtype=dtype, device=device)
    model = HandWritten(p.W, p.V, p.alpha).to(device=device, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * (model(X) - X).pow(2).sum()
        loss.backward()
        opt.step()

    def aedyn_step() -> None:  # the update of aedyn.gd's loop, theta <- theta - eta * grad
        grads = evaluate(p, X, "joint").grads
        p.W.sub_(grads.W, alpha=lr)
        p.V.sub_(grads.V, alpha=lr)

    # same update: one step of each from the same point
    aedyn_step()
    torch_step()
    with torch.no_grad():
        err = max(float((p.W - model.enc.weight).abs().max() / p.W.abs().max()),
                  float((p.V - model.dec.weight).abs().max() / p.V.abs().max()))
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    assert err < tol, f"aedyn and the autograd step disagree (relative {err:.2e})"
    t = median_times({"autograd": torch_step, "aedyn": aedyn_step}, repeats, warmup, device)
    t_torch, t_aedyn = t["autograd"], t["aedyn"]
    return {"m": m, "d": d, "n": n, "aedyn_s": t_aedyn, "autograd_s": t_torch, "ratio": t_aedyn / t_torch,
            "gflops_aedyn": 10 * m * d * n / t_aedyn / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["16384,784,512", "4096,64,256"], help="m,d,n triples")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.device}, {args.dtype}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} steps")
    print(f"{'m':>6} {'d':>4} {'n':>4}  {'aedyn':>10}  {'autograd+SGD':>12}  {'ratio':>6}  {'GFLOP/s':>8}")
    for size in args.sizes:
        m, d, n = (int(v) for v in size.split(","))
        r = bench(m, d, n, dtype=dtype, device=device, repeats=args.repeats, warmup=args.warmup, lr=args.lr)
        print(f"{m:>6} {d:>4} {n:>4}  {r['aedyn_s'] * 1e3:>8.2f}ms  {r['autograd_s'] * 1e3:>10.2f}ms  "
              f"{r['ratio']:>6.3f}  {r['gflops_aedyn']:>8.1f}")


if __name__ == "__main__":
    main()
