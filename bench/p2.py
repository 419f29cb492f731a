"""P2: a grid of small networks, aedyn's sweep engine against a hand-written loop run once per network.

    python bench/p2.py                                   # 96 joint runs, float64, CPU
    python bench/p2.py --seeds 2 --steps 50              # a quick look
    python bench/p2.py --regimes joint,weak --device cuda --dtype float32

The grid: width m in {256, 1024} x n in {16, 24, 32} x d in {8, 16} x --seeds seeds x --regimes,
sphere data, lr = "auto" (each network's 1/lambda_max of its NTK at initialisation), --steps
steps at most, stopping at --target x the initial loss.

aedyn: what ``aedyn sweep`` executes, without the store: the grid planned into TrainJobs
(aedyn.sweep.plan), grouped into batches by aedyn.job.batch_key (aedyn.sweep.make_batches, at
most --batch-size runs each), each batch through aedyn.job.run_batch (data loaded, networks
initialised and stacked, one batched Lanczos for the step sizes, one batched descent). The whole
of that is timed.

Hand-written: for each run, one at a time, the same data (aedyn.data.sphere) and initial weights
(aedyn.model.init_params, same seeds; both checked identical to what aedyn used), the
nn.Module + autograd + torch.optim.SGD loop of bench/p1.py at the step size aedyn found (given
to it for free: no eigenvalue solve on this side), reading the loss on the host at every step
(``loss.item()``) to apply the same stop rule, as a user's loop would, for at most the number of
steps aedyn's run took, so both sides do the same work. Before the timings are reported, each
run's final loss is checked to agree (relative 1e-6 in float64, 1e-3 in float32) and both to
have taken the same number of steps.

The ratio grows with the runs per batch (--seeds); on a loaded machine give --threads 1 (see
bench/p1.py). Goal: hand/aedyn >= 5x on a CPU, >= 100x on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import aedyn
from aedyn.data import sphere
from aedyn.job import Notes, run_batch
from aedyn.model import init_params
from aedyn.sweep import make_batches, parse_config, plan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from p1 import hand_train

WIDTHS, NS, DS = [256, 1024], [16, 24, 32], [8, 16]
TOLERANCE = {"float32": 1e-3, "float64": 1e-6}


def grid(*, regimes: list[str], seeds: int, steps: int, target: float, dtype: str, device: str,
         batch_size: int) -> dict:
    """The sweep's TOML tables, as a dict."""
    return {"grid": {"regime": regimes, "data": ["sphere"], "width": WIDTHS, "n": NS, "d": DS,
                     "seed": list(range(seeds))},
            "train": {"lr": "auto", "steps": steps, "target": target, "dtype": dtype, "device": device},
            "sweep": {"batch_size": batch_size}}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_aedyn(tables: dict, device: str) -> tuple[list, list, int, float]:
    """Plan, batch and train the grid as ``aedyn sweep`` does; returns runs, results, seconds."""
    sync(device)
    t0 = time.perf_counter()
    runs = plan(parse_config(tables))
    batches = make_batches(runs, tables["sweep"]["batch_size"])
    results = []
    for batch in batches:
        results.extend(run_batch([r.job for r in batch]))
    sync(device)
    return runs, results, len(batches), time.perf_counter() - t0


def hand_inputs(job: aedyn.TrainJob) -> tuple[torch.Tensor, aedyn.Params]:
    """The data and initial weights of a run, built by hand from its seeds."""
    X = sphere(job.n, job.d, seed=job.resolved_data_seed).to(device=job.device, dtype=getattr(torch, job.dtype))
    params = init_params(job.d, job.width, regime=job.regime, seed=job.seed, dtype=job.dtype, device=job.device)
    return X, params


def run_hand(runs: list, results: list, device: str) -> tuple[list[tuple[float, int]], float]:
    """Each run on its own with the hand-written loop, at aedyn's eta, for at most aedyn's steps."""
    out = []
    sync(device)
    t0 = time.perf_counter()
    for run, res in zip(runs, results, strict=True):
        X, params = hand_inputs(run.job)
        out.append(hand_train(X, params, res.lr, res.steps, regime=run.job.regime, sync_each_step=True,
                              target=run.job.target))
    sync(device)
    return out, time.perf_counter() - t0


def check(runs: list, results: list, hand: list[tuple[float, int]], dtype: str) -> float:
    """Same inputs, same steps, same final loss for every run; returns the largest relative difference."""
    worst = 0.0
    for run, res, (loss_h, steps_h) in zip(runs, results, hand, strict=True):
        X, params = hand_inputs(run.job)
        same = (torch.equal(X, run.job.load(Notes())) and torch.equal(params.W, res.init.W)
                and torch.equal(params.V, res.init.V))
        if not same:
            raise SystemExit(f"P2 run {run.run_id}: the hand-built data or weights differ from what aedyn used")
        loss_a = float(res.loss[-1])
        rel = abs(loss_a - loss_h) / abs(loss_h)
        if steps_h != res.steps or not rel <= TOLERANCE[dtype]:
            raise SystemExit(f"P2 run {run.run_id} ({run.job.regime}, m={run.job.width}, n={run.job.n}, "
                             f"d={run.job.d}, seed {run.job.seed}): aedyn {loss_a:.12g} after {res.steps} steps, hand "
                             f"{loss_h:.12g} after {steps_h}, relative {rel:.2e}")
        worst = max(worst, rel)
    return worst


def run(*, regimes: list[str], seeds: int, steps: int, target: float, dtype: str, device: str,
        batch_size: int, log=print) -> dict:
    tables = grid(regimes=regimes, seeds=seeds, steps=steps, target=target, dtype=dtype, device=device,
                  batch_size=batch_size)
    runs, results, batches, t_aedyn = run_aedyn(tables, device)
    hand, t_hand = run_hand(runs, results, device)
    worst = check(runs, results, hand, dtype)
    statuses = {}
    for res in results:
        statuses[res.status] = statuses.get(res.status, 0) + 1
    total_steps = sum(res.steps for res in results)
    log(f"  check: {len(runs)} runs, same data, weights and steps ({total_steps} in all; "
        f"{', '.join(f'{v} {k}' for k, v in sorted(statuses.items()))}), final losses within {worst:.1e} relative")
    return {"runs": len(runs), "batches": batches, "aedyn_s": t_aedyn, "hand_s": t_hand, "ratio": t_hand / t_aedyn,
            "steps": total_steps, "worst_rel": worst, "statuses": statuses}


def table(r: dict) -> str:
    return "\n".join([f"{'runs':>5} {'batches':>7}  {'aedyn s':>9}  {'hand s':>9}  {'hand/aedyn':>10}",
                      f"{r['runs']:>5} {r['batches']:>7}  {r['aedyn_s']:>9.2f}  {r['hand_s']:>9.2f}  "
                      f"{r['ratio']:>9.1f}x"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default=None, choices=["float32", "float64"],
                    help="default float64 on cpu, float32 on cuda")
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0..SEEDS-1 per grid point")
    ap.add_argument("--steps", type=int, default=300, help="step budget of each run")
    ap.add_argument("--target", type=float, default=1e-6, help="relative loss at which a run stops")
    ap.add_argument("--regimes", default="joint", help="comma-separated: joint, weak")
    ap.add_argument("--batch-size", type=int, default=64, help="networks per batch at most (the sweep's default)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice; 1 on a machine others are loading)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("float64" if args.device == "cpu" else "float32")
    regimes = [r for r in args.regimes.split(",") if r]
    if not set(regimes) <= {"joint", "weak"}:
        ap.error("--regimes takes joint and/or weak")
    print(f"P2: torch {torch.__version__}, aedyn {aedyn.__version__}, {args.device}, {dtype}, "
          f"{torch.get_num_threads()} threads; {'+'.join(regimes)}, m {WIDTHS} x n {NS} x d {DS} x {args.seeds} seeds, "
          f"lr auto, {args.steps} steps at most, target {args.target:g}; the hand-written loop gets aedyn's eta free")
    r = run(regimes=regimes, seeds=args.seeds, steps=args.steps, target=args.target, dtype=dtype, device=args.device,
            batch_size=args.batch_size)
    print(table(r))
    return r


if __name__ == "__main__":
    main()
