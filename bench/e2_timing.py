"""Time E2's width search (aedyn.threshold.least_width) trial by trial, on any device:

    python bench/e2_timing.py --device cuda --regime weak --n 64 --d 16
    python bench/e2_timing.py --device cuda --regime joint --n 512 --d 16 --criteria reach --limit 90

Prints one line per trained width (seconds, steps of each seed, share passing each criterion)
and m* at the end; stops starting new widths after --limit seconds.
"""

from __future__ import annotations

import argparse
import time

from aedyn.experiments import small_problems
from aedyn.threshold import least_width


class _OutOfTime(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--regime", default="weak")
    ap.add_argument("--data", default="sphere")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--criteria", default="reach,lambda0")
    ap.add_argument("--max-width", type=int, default=16384)
    ap.add_argument("--limit", type=float, default=120.0, help="seconds after which no new width starts")
    args = ap.parse_args()
    start = last = time.perf_counter()

    def on_trial(trial) -> None:
        nonlocal last
        now = time.perf_counter()
        fractions = ", ".join(f"{c} {trial.fraction(c):.2f}" for c in trial.passed)
        print(f"  m = {trial.width:6d}: {now - last:7.2f} s  steps {min(trial.steps)}-{max(trial.steps)}  {fractions}",
              flush=True)
        last = now
        if now - start > args.limit:
            raise _OutOfTime

    print(f"{args.regime} {args.data} n = {args.n}, d = {args.d}, {args.seeds} seeds on {args.device}", flush=True)
    with small_problems(args.device):
        try:
            th = least_width(args.regime, args.data, args.n, args.d, seeds=args.seeds,
                             criteria=args.criteria.split(","), max_width=args.max_width, device=args.device,
                             on_trial=on_trial)
        except _OutOfTime:
            print(f"  stopped after {time.perf_counter() - start:.1f} s (--limit)")
            return
    print(f"  budget {th.budget} steps; m* {th.m_star}; {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
