"""The ``linearised`` measure: a run's measured rate against linearised gradient descent.

The **measured rate** is the per-step contraction of the loss, ``exp(slope)`` of the least-squares
line through ``log L(k)`` over the window ``[last/2, last]``, ``last`` the final step before the
rounding floor (:func:`aedyn.gd.fit_linear_rate`; ``r2`` is that fit's R^2). The **predictions** are
fitted the same way, over the same window, to linearised gradient descent ``R(k) = (I - eta K)^k
R(0)`` started from the network's own initial residual ``R(0) = f_0(X) - X`` (a fit over the last
half of a run still mixes several decaying modes, so the linearised curve over the same steps is the
fair prediction, not ``1 - eta lambda_min``):

- ``predicted_finite``: ``K`` the ``n x n`` coordinate average of ``Theta(0)``
  (:meth:`aedyn.ntk.NTKOperator.averaged_kernel`, ``Theta(0) ≈ K ⊗ I_d``);
- ``predicted_exact``: the full ``nd x nd`` ``Theta(0)`` (dense; only while ``n d <= exact_limit``,
  otherwise ``None``), ``0.5 ||(I - eta Theta)^k vec R(0)||^2`` from its eigenpairs;
- ``predicted_infinite``: ``K`` the infinite-width regime kernel (:func:`aedyn.kernels.regime_kernel`);
  ``None`` for ``tied``, whose limit is not ``K ⊗ I_d``;
- ``predicted_bound``: ``(1 - eta lambda_min(Theta(0)))^2``, the slowest mode's contraction of the
  loss (a bound for the linearised dynamics, not a fitted curve).

The curves (measured and linearised) are kept at about ``curve_points`` steps, evenly spaced."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aedyn.gd import fit_linear_rate, rounding_floor
from aedyn.kernels import regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.model import Params, forward
from aedyn.ntk import NTKOperator, ntk_dense, ntk_extremes

if TYPE_CHECKING:
    from aedyn.gd import TrainResult

EXACT_LIMIT = 2048
"""``predicted_exact`` while ``n d`` is at most this (a dense ``nd x nd`` eigendecomposition)."""
CURVE_POINTS = 200


def _fitted(curve: np.ndarray, start: int, stop: int) -> float | None:
    fit = fit_linear_rate(curve, start, stop)
    return None if fit is None else fit.rate


def _subsample(last: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(0, last, max(2, points)).round().astype(int))


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def exact_curve(evals: torch.Tensor, evecs: torch.Tensor, R0: torch.Tensor, eta: float, steps: int) -> np.ndarray:
    """``0.5 ||(I - eta Theta)^k vec R(0)||^2`` for ``k = 0..steps`` from ``Theta``'s eigenpairs."""
    energy = (evecs.mT @ R0.reshape(-1)).double().square()
    base = (1 - eta * evals.double()).abs().clamp_min(1e-300).log()
    k = torch.arange(steps + 1, dtype=torch.float64, device=energy.device)
    return (0.5 * torch.exp(2 * k[:, None] * base[None, :]) @ energy).cpu().numpy()


_THETA: dict[tuple, dict[str, Any]] = {}
_THETA_KEPT = 16


def theta_at_init(params: Params, X: torch.Tensor, regime: str, exact_limit: int, key: tuple) -> dict[str, Any]:
    """``Theta(0)``'s extremes, its averaged kernel and, while ``n d <= exact_limit``, its eigenpairs
    (``method`` says ``dense`` or ``lanczos/lobpcg``); kept per ``key`` (the network's identity) in
    this process, so the runs of one network under several step rules compute it once."""
    if key in _THETA:
        return _THETA[key]
    op = NTKOperator(params, X, regime)
    out: dict[str, Any] = {"averaged": op.averaged_kernel().double().cpu(), "evals": None, "evecs": None}
    if X.shape[0] * X.shape[1] <= exact_limit:
        evals, evecs = torch.linalg.eigh(ntk_dense(params, X, regime).double())
        out.update(evals=evals, evecs=evecs, lambda_min=float(evals[0]), lambda_max=float(evals[-1]),
                   method="dense")
    else:
        ex = ntk_extremes(params, X, regime)
        out.update(lambda_min=float(ex.min), lambda_max=float(ex.max), method="lanczos/lobpcg")
    if len(_THETA) >= _THETA_KEPT:
        del _THETA[next(iter(_THETA))]
    _THETA[key] = out
    return out


def linearised(result: TrainResult, X: torch.Tensor, job: Any, *, exact_limit: int = EXACT_LIMIT,
               curve_points: int = CURVE_POINTS) -> dict[str, Any]:
    """The measured rate and the linearised-GD predictions over the same window (see the module
    docstring): ``lambda_min0``, ``lambda_max0`` of ``Theta(0)`` (``lambda_method``), the
    infinite-width kernel's extremes (``lambda_min_inf``, ``lambda_max_inf``; ``None`` for tied), the
    window (``window_start``, ``window_stop``), ``measured_rate``, ``r2``, ``predicted_finite``,
    ``predicted_exact``, ``predicted_infinite``, ``predicted_bound``, and the curves at
    ``curve_steps`` (``curve_measured``, ``curve_predicted_finite``, ``curve_predicted_exact``,
    ``curve_predicted_infinite``)."""
    init = result.init
    assert init is not None
    regime, eta = result.regime, float(result.lr)
    loss = np.asarray(result.loss, dtype=np.float64)
    floor = rounding_floor(float(X.square().sum()), str(X.dtype).removeprefix("torch."))
    fit = fit_linear_rate(loss, floor=floor)
    last = len(loss) - 1 if fit is None or fit.floor_step is None else fit.floor_step
    start, stop = (last // 2, last) if fit is None else (fit.start, fit.stop)
    key = (regime, job.data, job.n, job.d, job.classes, job.key, job.normalize, job.resolved_data_seed, job.seed,
           job.width, str(job.init_scale), job.kappa, job.nu, job.decoder_init, job.dtype, job.device, exact_limit)
    theta = theta_at_init(init, X, regime, int(exact_limit), key)
    inf = None
    if regime != "tied":
        K = regime_kernel(X, regime, kappa=job.kappa, nu=job.nu).double().cpu()
        ev = torch.linalg.eigvalsh(K)
        inf = {"K": K, "lambda_min": float(ev[0]), "lambda_max": float(ev[-1])}
    R0 = (forward(init, X, regime) - X).double()
    finite = LinearisedGD(theta["averaged"], eta).loss_curve(R0, last)
    exact = None if theta["evals"] is None else exact_curve(theta["evals"], theta["evecs"], R0, eta, last)
    infinite = None if inf is None else LinearisedGD(inf["K"], eta).loss_curve(R0, last)
    at = _subsample(last, int(curve_points))
    lam_min = theta["lambda_min"]
    return {
        "lambda_min0": lam_min, "lambda_max0": theta["lambda_max"], "lambda_method": theta["method"],
        "lambda_min_inf": None if inf is None else inf["lambda_min"],
        "lambda_max_inf": None if inf is None else inf["lambda_max"],
        "window_start": int(start), "window_stop": int(stop),
        "measured_rate": None if fit is None else fit.rate, "r2": None if fit is None else fit.r2,
        "predicted_finite": _fitted(finite, start, stop),
        "predicted_exact": None if exact is None else _fitted(exact, start, stop),
        "predicted_infinite": None if infinite is None else _fitted(infinite, start, stop),
        "predicted_bound": float((1.0 - eta * lam_min) ** 2),
        "curve_steps": at.tolist(), "curve_measured": _floats(loss[at]), "curve_predicted_finite": _floats(finite[at]),
        "curve_predicted_exact": None if exact is None else _floats(exact[at]),
        "curve_predicted_infinite": None if infinite is None else _floats(infinite[at]),
    }
