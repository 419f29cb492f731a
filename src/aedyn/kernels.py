"""Infinite-width kernels of the autoencoder (``alpha = 1/sqrt(m)``, ``m -> infinity``, at initialisation).

With ``theta_ij`` the angle between ``x_i`` and ``x_j``::

    K0_ij = (x_i . x_j) (pi - theta_ij) / (2 pi)                       = (x_i . x_j) P(w.x_i > 0, w.x_j > 0)
    K1_ij = ||x_i|| ||x_j|| (sin theta_ij + (pi - theta_ij) cos theta_ij) / (2 pi)   = E[relu(w.x_i) relu(w.x_j)]

for ``w ~ N(0, I)``. The regime kernels are ``K_reg = nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1``
(joint), ``kappa^2 K1`` (decoder); the full infinite-width NTK is ``K_reg ⊗ I_d`` (``nd x nd``), so
every output coordinate evolves on its own ``n x n`` problem and nothing here forms the Kronecker
product. ``lambda_0 = lambda_min(K0)``, ``mu_0 = lambda_min(K1)``.

The angle is computed as Kahan's ``pi - theta = 2 atan2(||u + v||, ||u - v||)`` for the unit
vectors ``u, v``: ``arccos`` of a clipped cosine loses half the digits near 0 and pi, and so does
SPEC.md's ``atan2(sqrt(|x|^2 |y|^2 - (x.y)^2), x.y)`` once the difference under the root is formed
from rounded Gram entries (about ``1e-8`` in ``theta`` for parallel rows); differences of unit
vectors keep full precision, and taking ``pi - theta`` directly keeps it near antipodal inputs
too. Zero inputs give zero rows. Cost ``O(n n' d)``.

The weight-tied network's NTK also has an infinite-width limit (SPEC.md, "Weight tying"), but it
is not of the form ``K ⊗ I_d``: its blocks couple output coordinates through ``x_i x_j^T`` terms,
so it has no ``n x n`` regime kernel and ``tied`` is refused by :func:`regime_kernel`; the dense
``nd x nd`` limit is :func:`tied_ntk_limit`. (What diverges with ``m`` for
tied networks is the output at initialisation, ``f_0 ≈ sqrt(m) kappa^2 x / 2``, which is why
training them cannot stay lazy.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from aedyn._check import check_choice, check_float, check_positive
from aedyn._tensor import as_tensor
from aedyn.errors import AedynError

KERNEL_REGIMES = ("weak", "joint", "decoder")


def _pairs(X: Any, Y: Any | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x.y, |x||y|, phi = pi - theta)`` for all pairs of rows, with Kahan's angle
    ``phi = 2 atan2(||u + v||, ||u - v||)`` of the unit vectors ``u, v`` (differences taken
    directly, not through Gram matrices): accurate to a few ulps at every angle, 0 and pi included."""
    X = as_tensor(X, name="X", finite=True)
    if X.ndim != 2 or X.shape[1] == 0:
        raise AedynError(f"kernel inputs must be n x d matrices with d >= 1; got shape {tuple(X.shape)}")
    Yt = X if Y is None else as_tensor(Y, dtype=X.dtype, device=X.device, name="Y", finite=True)
    if Yt.ndim != 2 or Yt.shape[1] != X.shape[1]:
        raise AedynError(f"kernel inputs must share d; got shapes {tuple(X.shape)} and {tuple(Yt.shape)}")
    nx, ny = X.norm(dim=1), Yt.norm(dim=1)
    U = X / torch.where(nx > 0, nx, 1.0)[:, None]
    V = Yt / torch.where(ny > 0, ny, 1.0)[:, None]
    minus = torch.cdist(U, V, compute_mode="donot_use_mm_for_euclid_dist")
    plus = torch.cdist(U, -V, compute_mode="donot_use_mm_for_euclid_dist")
    return X @ Yt.mT, nx[:, None] * ny[None, :], 2 * torch.atan2(plus, minus)


SERIES_CUTOFF = 1.0
"""Below this ``phi``, ``sin(phi) - phi cos(phi)`` is summed as a series (see :func:`_sin_minus_phi_cos`)."""

_SERIES = tuple((-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) for k in range(1, 11))
"""``sin(phi) - phi cos(phi) = sum_k c_k phi^(2k+1)``, ``c_k = (-1)^(k+1) 2k / (2k+1)!``: 1/3, -1/30, 1/840, ..."""


def _sin_minus_phi_cos(phi: torch.Tensor) -> torch.Tensor:
    """``sin(phi) - phi cos(phi)`` to a few ulps for every ``phi`` in ``[0, pi]``.

    The direct difference cancels for small ``phi`` (it is ``phi^3/3`` while each term is about
    ``phi``), losing about ``3 eps / phi^2`` relative: 6e-12 at ``phi = 0.01``, 7e-16 at ``phi = 1``.
    Below ``phi = 1`` the series ``sum_k c_k phi^(2k+1)`` (``k = 1..10``, Horner in ``phi^2``) is
    used instead: its terms alternate and fall by ``phi^2 / 2k`` or faster, and the first one
    left out is below ``4e-19`` relative there."""
    p2 = phi * phi
    series = torch.full_like(phi, _SERIES[-1])
    for c in reversed(_SERIES[:-1]):
        series = series * p2 + c
    return torch.where(phi < SERIES_CUTOFF, phi * p2 * series, torch.sin(phi) - phi * torch.cos(phi))


def _k0(dot: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    return dot * phi / (2 * math.pi)


def _k1(norms: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    return norms * _sin_minus_phi_cos(phi) / (2 * math.pi)


def k0(X: Any, Y: Any | None = None) -> torch.Tensor:
    """``K0(x, y) = (x . y) (pi - theta) / (2 pi)`` for all rows of ``X`` against all rows of ``Y``
    (``Y = X`` by default). Scales with the inner product."""
    dot, _, phi = _pairs(X, Y)
    return _k0(dot, phi)


def k1(X: Any, Y: Any | None = None) -> torch.Tensor:
    """``K1(x, y) = |x||y| (sin theta + (pi - theta) cos theta) / (2 pi)``: the arc-cosine kernel of
    degree 1, ``E[relu(w.x) relu(w.y)]``, ``w ~ N(0, I)``. Scales with the norms. Computed as
    ``|x||y| (sin phi - phi cos phi) / (2 pi)`` with ``phi = pi - theta``, which near antipodal
    inputs cancels and is taken from its Taylor series (:func:`_sin_minus_phi_cos`)."""
    _, norms, phi = _pairs(X, Y)
    return _k1(norms, phi)


def check_kernel_options(regime: str, kappa: float = 1.0, nu: float = 1.0) -> tuple[float, float]:
    """The regime has an ``n x n`` kernel; ``kappa > 0`` and ``nu >= 0`` are finite."""
    if regime == "tied":
        raise AedynError("the tied NTK's infinite-width limit couples output coordinates (it is not K ⊗ I_d), so it "
                         "has no n x n regime kernel; use the finite-width kernel (--width)")
    check_choice(regime, KERNEL_REGIMES, "regime")
    kappa = check_positive(kappa, "kappa (encoder init scale)")
    nu = check_float(nu, "nu (decoder init scale)", low=0.0)
    used = {"weak": (("nu", nu),), "decoder": (("kappa", kappa),), "joint": (("kappa", kappa), ("nu", nu))}[regime]
    for name, value in used:
        if not math.isfinite(value * value):  # the kernel scales with the square
            raise AedynError(f"{name} = {value:g} makes the kernel overflow ({name}^2 is beyond float64); "
                             f"use {name} below 1e154")
    return kappa, nu


def _finite(K: torch.Tensor, kappa: float, nu: float) -> torch.Tensor:
    """``K`` (or its eigenvalues), or an :class:`AedynError` if they overflowed (scales near the float limit)."""
    if not bool(torch.isfinite(K).all()):
        raise AedynError(f"the kernel overflows float64 with kappa = {kappa:g}, nu = {nu:g} (nu^2 K0 + kappa^2 K1 "
                         "beyond 1.8e308); use smaller scales")
    return K


def _combine(K0: torch.Tensor | None, K1: torch.Tensor | None, regime: str, kappa: float, nu: float) -> torch.Tensor:
    """``nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1`` (joint), ``kappa^2 K1`` (decoder)."""
    if regime == "weak":
        return nu * nu * K0  # type: ignore[operator]
    if regime == "decoder":
        return kappa * kappa * K1  # type: ignore[operator]
    return nu * nu * K0 + kappa * kappa * K1  # type: ignore[operator]


def regime_kernel(X: Any, regime: str, *, kappa: float = 1.0, nu: float = 1.0, Y: Any | None = None) -> torch.Tensor:
    """``K_reg(X, Y)``: ``nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1`` (joint), ``kappa^2 K1`` (decoder).
    The infinite-width NTK is ``K_reg ⊗ I_d``. The angles are computed once for both kernels."""
    kappa, nu = check_kernel_options(regime, kappa, nu)
    dot, norms, phi = _pairs(X, Y)
    K0 = _k0(dot, phi) if regime != "decoder" else None
    K1 = _k1(norms, phi) if regime != "weak" else None
    return _finite(_combine(K0, K1, regime, kappa, nu), kappa, nu)


def init_output_kernel(X: Any, *, kappa: float = 1.0, nu: float = 1.0, Y: Any | None = None) -> torch.Tensor:
    """``Sigma(X, Y) = nu^2 kappa^2 K1(X, Y)``: the covariance of every output coordinate of the
    network at initialisation in the infinite-width limit (``alpha = 1/sqrt(m)``), for every
    regime with its own decoder (not ``tied``: there ``V = W^T`` and ``f_0 ≈ sqrt(m) kappa^2 x / 2``)
    and for Gaussian or Rademacher decoders alike::

        E[f_0(x)_j f_0(y)_j] = alpha^2 m nu^2 E[relu(w.x) relu(w.y)] = nu^2 kappa^2 K1(x, y),  w ~ N(0, kappa^2 I)

    (``f_0`` tends to a centred Gaussian process with this kernel, independent across ``j``)."""
    kappa = check_positive(kappa, "kappa (encoder init scale)")
    nu = check_float(nu, "nu (decoder init scale)", low=0.0)
    return _finite(nu * nu * kappa * kappa * k1(X, Y), kappa, nu)


TIED_PARALLEL = 1e-7
"""Below this ``sin(theta)``, the term of :func:`tied_ntk_limit` that divides by it (and tends to 0
like ``sin(theta) / (2 pi)``) is taken as its limit, 0."""


def tied_ntk_limit(X: Any, *, kappa: float = 1.0) -> torch.Tensor:
    """The infinite-width NTK of the weight-tied autoencoder (``V = W^T``, ``alpha = 1/sqrt(m)``,
    ``w ~ N(0, kappa^2 I)``), the dense ``nd x nd`` matrix (row ``i d + a``: output coordinate
    ``a`` of sample ``i``, as :func:`aedyn.ntk.ntk_dense`). Not of the form ``K ⊗ I_d``: with
    ``J_ir = alpha (A_ir I_d + D_ir w_r x_i^T)`` (SPEC.md, "Weight tying"), block ``(i, j)`` is::

        E[s(w.x_i) s(w.x_j)] I + x_j E[s(w.x_i) 1{w.x_j>0} w]^T + E[1{w.x_i>0} s(w.x_j) w] x_i^T
            + (x_i . x_j) E[1{w.x_i>0} 1{w.x_j>0} w w^T]

    and with ``theta`` the angle between ``x_i`` and ``x_j`` (Stein's lemma, ``E[g(u) u] = E[grad g]``
    for ``u ~ N(0, I)``)::

        E[s(w.x_i) s(w.x_j)]           = kappa^2 K1_ij
        E[s(w.x_i) 1{w.x_j>0} w]       = kappa^2 ((pi - theta) x_i + |x_i| sin(theta) x_j / |x_j|) / (2 pi)
        E[1{w.x_i>0} 1{w.x_j>0} w w^T] = kappa^2 ((pi - theta) I + C_ij) / (2 pi),
        C_ij = (u v^T + v u^T - cos(theta) (u u^T + v v^T)) / sin(theta)

    for the unit vectors ``u = x_i/|x_i|``, ``v = x_j/|x_j|`` (the last term tends to 0 as
    ``theta -> 0`` or ``pi``; below :data:`TIED_PARALLEL` it is taken as 0). On the diagonal
    (``theta = 0``) the middle expectation is ``kappa^2 x / 2``: ``E[w s(w.x)] = kappa^2 x / 2``.
    Zero inputs give zero blocks. Memory ``O(n^2 d^2)``: small problems only."""
    kappa = check_positive(kappa, "kappa (encoder init scale)")
    dot, _, phi = _pairs(X, None)  # phi = pi - theta
    X = as_tensor(X, name="X", finite=True)
    n, d = X.shape
    nx = X.norm(dim=1)
    safe = torch.where(nx > 0, nx, 1.0)
    U = X / safe[:, None] * (nx > 0)[:, None]
    sin = torch.sin(phi)
    cos_theta = -torch.cos(phi)
    two_pi = 2 * math.pi
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    # E[s(w.x_i) 1{w.x_j>0} w] / kappa^2, indexed [i, j, :]
    ratio = nx[:, None] / safe[None, :] * (nx[None, :] > 0)
    e_ij = (phi[:, :, None] * X[:, None, :] + (ratio * sin)[:, :, None] * X[None, :, :]) / two_pi
    e_ji = e_ij.transpose(0, 1)  # E[1{w.x_i>0} s(w.x_j) w] / kappa^2
    outer = torch.einsum("ia,jb->ijab", U, U)
    sym = outer + outer.transpose(2, 3)  # u v^T + v u^T
    own = torch.einsum("ia,ib->iab", U, U)
    cross = sym - cos_theta[:, :, None, None] * (own[:, None] + own[None, :])
    cross = torch.where((sin > TIED_PARALLEL)[:, :, None, None], cross / torch.where(sin > TIED_PARALLEL, sin, 1.0)
                        [:, :, None, None], torch.zeros_like(cross))
    M = (phi[:, :, None, None] * eye + cross) / two_pi
    blocks = (k1(X)[:, :, None, None] * eye
              + torch.einsum("ja,ijb->ijab", X, e_ij)
              + torch.einsum("ija,ib->ijab", e_ji, X)
              + dot[:, :, None, None] * M)
    return _finite(kappa * kappa * blocks.permute(0, 2, 1, 3).reshape(n * d, n * d), kappa, 1.0)


def spectrum_memory(n: int) -> int:
    """Bytes :func:`kernel_spectrum` allocates at ``n`` samples: about a dozen ``n x n`` float64
    arrays (Gram, norms, both Kahan distances, the angle, both kernels, their sum, three
    eigensolver inputs and their workspace)."""
    return 12 * n * n * 8


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
    kappa, nu = check_kernel_options(regime, kappa, nu)
    X = as_tensor(X, dtype=torch.float64, name="X")
    if X.ndim != 2 or X.shape[0] == 0:
        raise AedynError(f"kernel_spectrum needs a non-empty n x d matrix; got shape {tuple(X.shape)}")
    dot, norms, phi = _pairs(X, None)
    K0, K1 = _k0(dot, phi), _k1(norms, phi)
    ev0, ev1 = torch.linalg.eigvalsh(K0), torch.linalg.eigvalsh(K1)
    ev = _finite(torch.linalg.eigvalsh(_finite(_combine(K0, K1, regime, kappa, nu), kappa, nu)), kappa, nu)
    lo, hi = float(ev[0]), float(ev[-1])
    cond = hi / lo if lo > 0 else math.inf
    return KernelSpectrum(regime, int(K0.shape[0]), float(ev0[0]), float(ev1[0]), lo, hi, cond)
