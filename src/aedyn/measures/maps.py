"""Measures of the trained map and of the trained weights: ``heldout`` and ``weights``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from aedyn.data import heldout_inputs
from aedyn.model import forward

if TYPE_CHECKING:
    from aedyn.gd import TrainResult


def best_scalar(F: torch.Tensor, Z: torch.Tensor) -> dict[str, float]:
    """How close ``F = f(Z)`` is to a multiple of the identity on the rows of ``Z``::

        c = <F, Z>_F / ||Z||_F^2                  (the least-squares scalar, all rows together)
        c_i = <f(z_i), z_i> / ||z_i||^2           (per row; c_std, c_min, c_max their spread)
        beyond_c = ||F - c Z||_F / ||F||_F        (what remains beyond c z; NaN when F = 0)
        error = ||F - Z||_F / ||Z||_F             (relative reconstruction error)
    """
    F, Z = F.double(), Z.double()
    z2 = Z.square().sum(dim=1)
    c = float((F * Z).sum() / z2.sum())
    ci = (F * Z).sum(dim=1) / z2
    fn = float(F.norm())
    return {"c": c, "c_std": float(ci.std(unbiased=False)), "c_min": float(ci.min()), "c_max": float(ci.max()),
            "beyond_c": float((F - c * Z).norm()) / fn if fn > 0 else math.nan,
            "error": float((F - Z).norm() / Z.norm())}


def _common_scale(*tensors: torch.Tensor) -> float:
    """The largest magnitude in ``tensors`` (1 when that is 0 or not finite): dividing by it keeps
    norms of weights near the float limits (``kappa = 1e-200``) from underflowing or overflowing."""
    top = max(float(x.abs().max()) if x.numel() else 0.0 for x in tensors)
    return top if math.isfinite(top) and top > 0 else 1.0


def rescaling(W: torch.Tensor, W0: torch.Tensor) -> tuple[float, float]:
    """``(c, distance)``: ``c = <W, W0>_F / ||W0||_F^2`` minimises ``||W - c W0||_F``, and
    ``distance = ||W - c W0||_F / ||W||_F`` (0 exactly when ``W`` is a multiple of ``W0``); both
    unchanged by a common scale, so computed on ``W`` and ``W0`` divided by :func:`_common_scale`."""
    scale = _common_scale(W, W0)
    W, W0 = W.double() / scale, W0.double() / scale
    c = float((W * W0).sum() / W0.square().sum())
    return c, float((W - c * W0).norm() / W.norm())


def identity_gap(F0: torch.Tensor, Z: torch.Tensor, alpha: float, width: int, kappa: float) -> float:
    """``||F0 - a Z||_F / ||a Z||_F`` with ``a = alpha m kappa^2 / 2``: the network at initialisation
    against the mean of a tied one, ``E[alpha sum_r w_r s(w_r . z)] = alpha m kappa^2 z / 2``."""
    a = alpha * width * kappa * kappa / 2
    return float((F0.double() - a * Z.double()).norm() / (a * Z.double().norm()))


def expected_identity_gap(d: int, width: int) -> float:
    """``sqrt((2d + 3) / m)``: the root-mean-square of :func:`identity_gap` over tied initialisations
    at unit inputs (any ``kappa``, any ``alpha``): per neuron ``E||w s(w.z)||^2 = kappa^4 (d+2)/2``
    (``E[g^4 1{g>0}] = 3/2`` along ``z``, ``(d - 1)/2`` across) less ``||kappa^2 z/2||^2 = kappa^4/4``."""
    return math.sqrt((2 * d + 3) / width)


def _error(F: torch.Tensor, Z: torch.Tensor) -> float:
    """``||F - Z||_F / ||Z||_F``."""
    return float((F.double() - Z.double()).norm() / Z.double().norm())


_HELD: dict[tuple, torch.Tensor] = {}
_HELD_KEPT = 8


def heldout_set(X: torch.Tensor, job: Any, *, n: int | None, per_class: int | None, seed: int) -> torch.Tensor:
    """The held-out inputs of ``job``'s data (:func:`aedyn.data.heldout_inputs`), drawn once per
    data set and draw in a process (the jobs of a batch share them; the last few are kept)."""
    key = (job.data, job.n, job.d, job.classes, job.key, job.normalize, getattr(job, "per_class", None),
           job.resolved_data_seed, str(X.dtype), str(X.device), n, per_class, seed)
    if key not in _HELD:
        if len(_HELD) >= _HELD_KEPT:
            del _HELD[next(iter(_HELD))]
        _HELD[key] = heldout_inputs(job.data, X, n, seed=seed, per_class=per_class, d=job.d, classes=job.classes,
                                    key=job.key, normalize=job.normalize)
    return _HELD[key]


def heldout(result: TrainResult, X: torch.Tensor, job: Any, *, n: int | None = None, per_class: int | None = None,
            seed: int = 1) -> dict[str, Any]:
    """The trained map on ``n_test`` held-out inputs ``Z`` (``n`` of them, or ``per_class`` of each
    digit class, drawn with ``seed``: :func:`aedyn.data.heldout_inputs`) and on the training inputs
    ``X``, with ``F = f_T(Z)`` and ``F_0 = f_0(Z)`` row-wise:

    - ``heldout_error = ||F - Z||_F / ||Z||_F``, ``initial_heldout_error`` the same for ``F_0``;
      ``train_error``, ``initial_train_error`` the same on ``X``;
    - ``c``, ``c_std``, ``c_min``, ``c_max``, ``beyond_c``: :func:`best_scalar` of ``F`` (``train_c``:
      its ``c`` on ``X``);
    - ``f0_gap``: :func:`identity_gap` of ``F_0`` (the network at initialisation against the tied
      network's mean ``alpha m kappa^2 z / 2``) and ``f0_gap_expected``, its size for a tied network,
      :func:`expected_identity_gap`.

    A diverged run's map is not finite: its values are NaN."""
    Z = heldout_set(X, job, n=n, per_class=per_class, seed=seed)
    init, final = result.init, result.params
    assert init is not None and final is not None
    regime = result.regime
    F, F0 = (forward(p, Z, regime, check_finite=False) for p in (final, init))
    FX, FX0 = (forward(p, X, regime, check_finite=False) for p in (final, init))
    test, train = best_scalar(F, Z), best_scalar(FX, X)
    width, kappa = int(init.W.shape[-2]), float(job.kappa)
    return {"n_test": int(Z.shape[0]), "heldout_error": test["error"], "initial_heldout_error": _error(F0, Z),
            "c": test["c"], "c_std": test["c_std"], "c_min": test["c_min"], "c_max": test["c_max"],
            "beyond_c": test["beyond_c"], "train_error": train["error"], "initial_train_error": _error(FX0, X),
            "train_c": train["c"], "f0_gap": identity_gap(F0, Z, init.alpha, width, kappa),
            "f0_gap_expected": expected_identity_gap(int(Z.shape[1]), width)}


def weights(result: TrainResult, X: torch.Tensor, job: Any) -> dict[str, Any]:
    """How the encoder moved, beyond the movements every row has (:data:`aedyn.gd.METRICS`):

    - ``max_neuron_rel_W = max_r ||w_r(T) - w_r(0)|| / ||w_r(0)||``;
    - ``max_neuron_change_W_rel = max_r ||w_r(T) - w_r(0)|| / (kappa sqrt(d))`` (a neuron's size at
      initialisation is about ``kappa sqrt(d)``);
    - ``rescale_c``, ``rescale_distance``: :func:`rescaling` of ``W_T`` against ``W_0`` (how far the
      trained encoder is from a multiple of the initial one), beside ``rescale_c_identity = sqrt(2 /
      (alpha m kappa^2))``, the multiple that turns a tied network's mean at initialisation,
      ``alpha c^2 m kappa^2 z / 2``, into the identity."""
    init, final = result.init, result.params
    assert init is not None and final is not None
    scale = _common_scale(init.W, final.W)
    W0, W = init.W.double() / scale, final.W.double() / scale
    width, d, kappa = int(W0.shape[-2]), int(W0.shape[-1]), float(job.kappa)
    moved = (W - W0).norm(dim=-1)
    c, distance = rescaling(W, W0)
    return {"max_neuron_rel_W": float((moved / W0.norm(dim=-1)).max()),
            "max_neuron_change_W_rel": float(moved.max()) * scale / (kappa * math.sqrt(d)),
            "rescale_c": c, "rescale_distance": distance,
            "rescale_c_identity": math.sqrt(2.0 / (init.alpha * width)) / kappa}
