"""Infinite-width kernels of the autoencoder (``alpha = 1/sqrt(m)``, ``m -> infinity``, at initialisation).

With ``theta_ij`` the angle between ``x_i`` and ``x_j``::

    K0_ij = (x_i . x_j) (pi - theta_ij) / (2 pi)                       = (x_i . x_j) P(w.x_i > 0, w.x_j > 0)
    K1_ij = ||x_i|| ||x_j|| (sin theta_ij + (pi - theta_ij) cos theta_ij) / (2 pi)   = E[relu(w.x_i) relu(w.x_j)]

for ``w ~ N(0, I)``. The regime kernels are ``K_reg = nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1``
(joint), ``kappa^2 K1`` (decoder); the full infinite-width NTK is ``K_reg ⊗ I_d`` (``nd x nd``), so
every output coordinate evolves on its own ``n x n`` problem and nothing here forms the Kronecker
product. ``lambda_0 = lambda_min(K0)``, ``mu_0 = lambda_min(K1)``.

The angle is ``theta = atan2(sqrt(max(0, |x|^2 |y|^2 - (x.y)^2)), x.y)`` (``arccos`` of a clipped
cosine loses half the digits near 0 and pi); written without dividing by norms, so zero inputs
are safe, and ``K(X)`` uses the exact squared norms on its diagonal (``theta_ii = 0`` exactly).
The weight-tied network has no such limit under NTK scaling (its output at initialisation grows
like ``sqrt(m)``), so ``tied`` has no regime kernel here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from aedyn._tensor import as_tensor
from aedyn.errors import AedynError

KERNEL_REGIMES = ("weak", "joint", "decoder")


def _pairs(X: Any, Y: Any | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x.y, |x|^2 |y|^2 - (x.y)^2 clipped at 0, |x||y|, theta)`` for all pairs."""
    X = as_tensor(X, name="X")
    if X.ndim != 2:
        raise AedynError(f"kernel inputs must be 2-D (n x d); got shape {tuple(X.shape)}")
    same = Y is None or Y is X
    Yt = X if same else as_tensor(Y, dtype=X.dtype, device=X.device, name="Y")
    if Yt.ndim != 2 or Yt.shape[1] != X.shape[1]:
        raise AedynError(f"kernel inputs must share d; got shapes {tuple(X.shape)} and {tuple(Yt.shape)}")
    nx2 = X.square().sum(dim=1)
    ny2 = nx2 if same else Yt.square().sum(dim=1)
    dot = X @ Yt.T
    if same:
        dot.diagonal().copy_(nx2)
    prod2 = nx2[:, None] * ny2[None, :]
    cross = (prod2 - dot.square()).clamp_min(0)
    if same:
        cross.diagonal().zero_()
    s = cross.sqrt()
    theta = torch.atan2(s, dot)
    return dot, s, prod2.sqrt(), theta


def k0(X: Any, Y: Any | None = None) -> torch.Tensor:
    """``K0(x, y) = (x . y) (pi - theta) / (2 pi)`` for all rows of ``X`` against all rows of ``Y``
    (``Y = X`` by default). Scales with the inner product."""
    dot, _, _, theta = _pairs(X, Y)
    return dot * (math.pi - theta) / (2 * math.pi)


def k1(X: Any, Y: Any | None = None) -> torch.Tensor:
    """``K1(x, y) = (|x||y| sin theta + (pi - theta) x . y) / (2 pi)``: the arc-cosine kernel of
    degree 1, ``E[relu(w.x) relu(w.y)]``, ``w ~ N(0, I)``. Scales with the norms."""
    dot, s, _, theta = _pairs(X, Y)
    return (s + (math.pi - theta) * dot) / (2 * math.pi)


def regime_kernel(X: Any, regime: str, *, kappa: float = 1.0, nu: float = 1.0, Y: Any | None = None) -> torch.Tensor:
    """``K_reg(X, Y)``: ``nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1`` (joint), ``kappa^2 K1`` (decoder).
    The infinite-width NTK is ``K_reg ⊗ I_d``."""
    if regime not in KERNEL_REGIMES:
        if regime == "tied":
            raise AedynError("the weight-tied network has no infinite-width NTK under NTK scaling (its output "
                             "at initialisation grows like sqrt(m)); use the finite-width kernel (--width)")
        raise AedynError(f"unknown regime {regime!r}; use one of: {', '.join(KERNEL_REGIMES)}")
    out = 0
    if regime in ("weak", "joint"):
        out = out + nu ** 2 * k0(X, Y)
    if regime in ("joint", "decoder"):
        out = out + kappa ** 2 * k1(X, Y)
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class KernelSpectrum:
    """Extremes of the infinite-width kernels at ``X``: ``lambda_0 = lambda_min(K0)``,
    ``mu_0 = lambda_min(K1)`` and the regime kernel's extremes and condition number."""

    regime: str
    n: int
    lambda_0: float
    mu_0: float
    lambda_min: float
    lambda_max: float
    condition_number: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kernel_spectrum(X: Any, regime: str = "joint", *, kappa: float = 1.0, nu: float = 1.0) -> KernelSpectrum:
    """Dense ``eigvalsh`` of the ``n x n`` kernels (cheap: ``n`` is the number of samples)."""
    X = as_tensor(X, dtype=torch.float64, name="X")
    ev0 = torch.linalg.eigvalsh(k0(X))
    ev1 = torch.linalg.eigvalsh(k1(X))
    ev = torch.linalg.eigvalsh(regime_kernel(X, regime, kappa=kappa, nu=nu))
    lo, hi = float(ev[0]), float(ev[-1])
    cond = hi / lo if lo > 0 else math.inf
    return KernelSpectrum(regime, int(X.shape[0]), float(ev0[0]), float(ev1[0]), lo, hi, cond)
