"""Measures read off the NTK records of a run with ``ntk_every`` (:data:`aedyn.gd.METRICS`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from aedyn.gd import TrainResult


def _value(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def ntk_path(result: TrainResult, X: torch.Tensor, job: Any) -> dict[str, Any]:
    """What a width search judges a run by (:func:`aedyn.threshold.judge`): ``ntk_lambda_min_0`` and
    ``ntk_lambda_max_0`` (``Theta(0)``'s extremes), ``ntk_lambda_min_low = min_t lambda_min(Theta(t))``
    over the checks (and the stop), and ``below_rate_line``: whether ``L(k) <= L(0) rho^(k/2)`` at
    every step, ``rho = (1 - eta lambda_min(Theta(0)))^2`` (the theorem's rate conclusion; a relative
    slack of ``1e-9`` absorbs rounding)."""
    lam_min = np.asarray(result.metrics["ntk_lambda_min"], dtype=np.float64)
    lam_max = np.asarray(result.metrics["ntk_lambda_max"], dtype=np.float64)
    loss = np.asarray(result.loss, dtype=np.float64)
    rho = (1.0 - result.lr * float(lam_min[0])) ** 2
    line = loss[0] * np.power(rho, np.arange(len(loss)) / 2.0) * (1 + 1e-9)
    return {"ntk_lambda_min_0": float(lam_min[0]), "ntk_lambda_max_0": float(lam_max[0]),
            "ntk_lambda_min_low": float(np.min(lam_min)), "below_rate_line": bool(np.all(loss <= line))}


def ntk_ends(result: TrainResult, X: torch.Tensor, job: Any) -> dict[str, Any]:
    """The finite-width NTK at the two ends of the run:

    - ``lambda_min0``, ``lambda_max0``: ``Theta(0)``'s extremes (the first check);
    - ``ntk_checked_at``: the step of the last check;
    - ``lambda_minT``, ``lambda_maxT``, ``ntk_drift_at_stop = ||Theta(T) - Theta(0)||_F /
      ||Theta(0)||_F``: at the stopping step ``T``, ``None`` unless the last check was at ``T``
      (a run that stops off the cadence gets a check there, :func:`aedyn.gd.train_batch`);
    - ``lambda_min_ratio = lambda_min(Theta(last check)) / lambda_min(Theta(0))`` (``None`` with one
      check or a ``Theta(0)`` that is not positive definite);
    - ``ntk_drift_method``: ``exact`` or the probe estimate's name."""
    m = result.metrics
    lam_min, lam_max, at = m.get("ntk_lambda_min"), m.get("ntk_lambda_max"), m.get("ntk_step")
    checked = None if at is None or not len(at) else int(at[-1])
    fresh = checked is not None and checked == int(result.steps)

    def end(values: Any, index: int) -> float | None:
        return None if values is None or not len(values) else _value(values[index])

    low0, lowT = end(lam_min, 0), end(lam_min, -1)
    return {"lambda_min0": low0, "lambda_max0": end(lam_max, 0), "ntk_checked_at": checked,
            "lambda_minT": lowT if fresh else None, "lambda_maxT": end(lam_max, -1) if fresh else None,
            "ntk_drift_at_stop": end(m.get("ntk_drift"), -1) if fresh else None,
            "lambda_min_ratio": None if lam_min is None or len(lam_min) < 2 or low0 is None or not low0 > 0
            or lowT is None else lowT / low0,
            "ntk_drift_method": result.config.get("ntk_drift_method")}
