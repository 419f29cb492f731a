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
the textbook ``atan2(sqrt(|x|^2 |y|^2 - (x.y)^2), x.y)`` once the difference under the root is formed
from rounded Gram entries (about ``1e-8`` in ``theta`` for parallel rows); differences of unit
vectors keep full precision, and taking ``pi - theta`` directly keeps it near antipodal inputs
too. Zero inputs give zero rows. Cost ``O(n n' d)``.

The weight-tied network's NTK also has an infinite-width limit (docs/math/tied.md), but it
is not of the form ``K ⊗ I_d``: its blocks couple output coordinates through ``x_i x_j^T`` terms,
so it has no ``n x n`` regime kernel (:func:`check_kernel_options` and :func:`kernel_spectrum`
refuse ``tied``); ``regime_kernel(X, "tied")`` returns the dense ``nd x nd`` limit
(:func:`tied_ntk_limit`, small problems) and :class:`TiedNTKLimit` applies it matrix-free in
``O(n^2 d)`` per product. (What diverges with ``m`` for
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
    """The regime has an ``n x n`` kernel (``tied`` is refused: its limit is ``nd x nd``, see
    :func:`regime_kernel`); ``kappa > 0`` and ``nu >= 0`` are finite."""
    if regime == "tied":
        raise AedynError("the tied NTK's infinite-width limit couples output coordinates (it is not K ⊗ I_d), so it "
                         "has no n x n regime kernel; its nd x nd limit is regime_kernel(X, 'tied') (small nd) or "
                         "aedyn.kernels.TiedNTKLimit (matrix-free), or use the finite-width kernel (--width)")
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
    """``K_reg(X, Y)``: ``nu^2 K0`` (weak), ``nu^2 K0 + kappa^2 K1`` (joint), ``kappa^2 K1`` (decoder),
    ``n x n'``; the infinite-width NTK is ``K_reg ⊗ I_d``. The angles are computed once for both kernels.

    ``tied`` is different: its limit is not ``K ⊗ I_d``, and this returns the whole ``nd x n'd``
    matrix (:func:`tied_ntk_limit`; ``nu`` plays no part, the decoder is ``W^T``), refused when
    ``n*d`` is above :data:`TIED_DENSE_LIMIT`; the matrix-free :class:`TiedNTKLimit` applies it to
    ``n' x d`` arrays at any size."""
    if regime == "tied":
        return tied_ntk_limit(X, kappa=kappa, Y=Y)
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


TIED_DENSE_LIMIT = 2048
"""Largest ``n*d`` (of either argument) for which the dense tied limit (:func:`tied_ntk_limit`,
``regime_kernel(X, "tied")``) is built: a 32 MiB float64 matrix, and a few times that while its
blocks are summed. Above, use the matrix-free :class:`TiedNTKLimit`."""

TIED_NEAR = 1e-2
"""Pairs of inputs whose unit vectors are this close to parallel or antipodal
(``0 < min(||u - v||, ||u + v||) < TIED_NEAR``) get the ``C_ij`` term of :class:`TiedNTKLimit`'s
product from the explicit vectors ``u + v``, ``u - v`` rather than from its expansion in ``u`` and
``v``, which cancels there (error about ``eps / ||u -+ v||`` relative)."""


@dataclass(frozen=True)
class _TiedPairs:
    """What every block ``(i, j)`` of the tied limit is made of (``kappa = 1``), for rows ``x_i`` of
    ``X`` (``n x d``) and ``y_j`` of ``Y`` (``n' x d``), with unit vectors ``u_i``, ``v_j`` (zero for
    zero rows), ``phi = pi - theta`` and ``s = u + v``, ``t = u - v``::

        block_ij = K1_ij I + y_j e_ij^T + e'_ij x_i^T + (x_i . y_j) ((phi I + C_ij) / (2 pi))
        e_ij  = E[s(w.x_i) 1{w.y_j>0} w] = (phi x_i + |x_i| sin(theta) y_j / |y_j|) / (2 pi)
        e'_ij = E[1{w.x_i>0} s(w.y_j) w] = (phi y_j + |y_j| sin(theta) x_i / |x_i|) / (2 pi)
        C_ij  = (u v^T + v u^T - cos(theta) (u u^T + v v^T)) / sin(theta)
              = sin(theta) (s s^T / |s|^2 - t t^T / |t|^2)
              = a_ij s s^T - b_ij t t^T,   a_ij = |t| / (2 |s|),  b_ij = |s| / (2 |t|)

    (``|s| = 2 cos(theta/2)``, ``|t| = 2 sin(theta/2)``, ``sin(theta) = |s| |t| / 2``). The last form
    has no cancellation at any angle: ``s`` and ``t`` are differences of unit vectors, taken
    directly; at ``t = 0`` (parallel, the diagonal included) or ``s = 0`` (antipodal) the term is
    exactly 0 and its coefficient is set to 0. ``sin_ij`` is ``|s| |t| / 2``."""

    X: torch.Tensor
    Y: torch.Tensor
    nx: torch.Tensor
    ny: torch.Tensor
    U: torch.Tensor
    V: torch.Tensor
    dot: torch.Tensor
    phi: torch.Tensor
    sin: torch.Tensor
    K1: torch.Tensor
    plus: torch.Tensor
    minus: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor

    @classmethod
    def of(cls, X: Any, Y: Any | None) -> _TiedPairs:
        dot, norms, phi = _pairs(X, Y)  # validates both
        X = as_tensor(X, name="X", finite=True)
        Y = X if Y is None else as_tensor(Y, dtype=X.dtype, device=X.device, name="Y", finite=True)
        nx, ny = X.norm(dim=1), Y.norm(dim=1)
        U = X / torch.where(nx > 0, nx, 1.0)[:, None]
        V = Y / torch.where(ny > 0, ny, 1.0)[:, None]
        minus = torch.cdist(U, V, compute_mode="donot_use_mm_for_euclid_dist")  # |t|
        plus = torch.cdist(U, -V, compute_mode="donot_use_mm_for_euclid_dist")  # |s|
        ok = (plus > 0) & (minus > 0)
        a = torch.where(ok, minus / (2 * torch.where(ok, plus, 1.0)), 0.0)
        b = torch.where(ok, plus / (2 * torch.where(ok, minus, 1.0)), 0.0)
        return cls(X, Y, nx, ny, U, V, dot, phi, plus * minus / 2, _k1(norms, phi), plus, minus, a, b)

    def ratios(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``|x_i| / |y_j|`` and ``|y_j| / |x_i|`` (0 where the divisor is 0: the term they scale is
        then multiplied by a zero vector)."""
        sx = torch.where(self.nx > 0, self.nx, 1.0)
        sy = torch.where(self.ny > 0, self.ny, 1.0)
        return self.nx[:, None] / sy[None, :] * (self.ny > 0)[None, :], \
            self.ny[None, :] / sx[:, None] * (self.nx > 0)[:, None]


def _check_tied_dense(n: int, n2: int, d: int) -> None:
    if max(n, n2) * d > TIED_DENSE_LIMIT:
        raise AedynError(f"the dense tied limit would be {n * d} x {n2 * d} (n*d above {TIED_DENSE_LIMIT}); use the "
                         "matrix-free aedyn.kernels.TiedNTKLimit(X, kappa=...) and its products (@, matmat)")


def tied_ntk_limit(X: Any, *, kappa: float = 1.0, Y: Any | None = None) -> torch.Tensor:
    """The infinite-width NTK of the weight-tied autoencoder (``V = W^T``, ``alpha = 1/sqrt(m)``,
    ``w ~ N(0, kappa^2 I)``), the dense ``nd x n'd`` matrix between the outputs at the rows of ``X``
    and at the rows of ``Y`` (default ``X``; row ``i d + a``: output coordinate ``a`` of sample
    ``i``, as :func:`aedyn.ntk.ntk_dense`). Not of the form ``K ⊗ I_d``: with
    ``J_ir = alpha (A_ir I_d + D_ir w_r x_i^T)`` (docs/math/tied.md), block ``(i, j)`` is::

        E[s(w.x_i) s(w.y_j)] I + y_j E[s(w.x_i) 1{w.y_j>0} w]^T + E[1{w.x_i>0} s(w.y_j) w] x_i^T
            + (x_i . y_j) E[1{w.x_i>0} 1{w.y_j>0} w w^T]

    and with ``theta`` the angle between ``x_i`` and ``y_j`` (Stein's lemma, ``E[g(u) u] = E[grad g]``
    for ``u ~ N(0, I)``)::

        E[s(w.x) s(w.y)]           = kappa^2 K1(x, y)
        E[s(w.x) 1{w.y>0} w]       = kappa^2 ((pi - theta) x + |x| sin(theta) y / |y|) / (2 pi)
        E[1{w.x>0} 1{w.y>0} w w^T] = kappa^2 ((pi - theta) I + C) / (2 pi),
        C = (u v^T + v u^T - cos(theta) (u u^T + v v^T)) / sin(theta) = sin(theta) (s s^T/|s|^2 - t t^T/|t|^2)

    for the unit vectors ``u = x/|x|``, ``v = y/|y|``, ``s = u + v``, ``t = u - v``; the last form is
    used (no cancellation near ``theta = 0`` or ``pi``, where ``C`` tends to 0; see
    :class:`_TiedPairs`). On the diagonal (``theta = 0``) the middle expectation is
    ``kappa^2 x / 2``: ``E[w s(w.x)] = kappa^2 x / 2``. Zero inputs give zero blocks. Memory
    ``O(n n' d^2)``: refused above :data:`TIED_DENSE_LIMIT` (use :class:`TiedNTKLimit`)."""
    kappa = check_positive(kappa, "kappa (encoder init scale)")
    p = _TiedPairs.of(X, Y)
    (n, d), n2 = p.X.shape, p.Y.shape[0]
    _check_tied_dense(n, n2, d)
    two_pi = 2 * math.pi
    eye = torch.eye(d, dtype=p.X.dtype, device=p.X.device)
    rx, ry = p.ratios()
    e = (p.phi[:, :, None] * p.X[:, None, :] + (rx * p.sin)[:, :, None] * p.Y[None, :, :]) / two_pi
    e2 = (p.phi[:, :, None] * p.Y[None, :, :] + (ry * p.sin)[:, :, None] * p.X[:, None, :]) / two_pi
    s = p.U[:, None, :] + p.V[None, :, :]
    t = p.U[:, None, :] - p.V[None, :, :]
    C = (p.a[:, :, None, None] * torch.einsum("ija,ijb->ijab", s, s)
         - p.b[:, :, None, None] * torch.einsum("ija,ijb->ijab", t, t))
    blocks = (p.K1[:, :, None, None] * eye
              + torch.einsum("ja,ijb->ijab", p.Y, e)
              + torch.einsum("ija,ib->ijab", e2, p.X)
              + (p.dot / two_pi)[:, :, None, None] * (p.phi[:, :, None, None] * eye + C))
    return _finite(kappa * kappa * blocks.permute(0, 2, 1, 3).reshape(n * d, n2 * d), kappa, 1.0)


class TiedNTKLimit:
    """The infinite-width tied NTK (:func:`tied_ntk_limit`) as a matrix-free linear map: ``T @ R``
    for an ``n' x d`` array ``R`` (one output vector per row of ``Y``; or a batch ``b x n' x d``, or
    flat ``(n'*d,)``) is ``sum_j block_ij r_j`` (``n x d``), in ``O(b n n' d)`` time and
    ``O(b n n' + (n + n') d)`` memory, never forming a ``d x d`` block. From the same pair quantities
    as the dense matrix (:class:`_TiedPairs`), with ``P_ij = x_i . r_j``, ``Q_ij = u_i . r_j`` and
    ``c_j = v_j . r_j``::

        block_ij r_j = K1_ij r_j + y_j (e_ij . r_j) + e'_ij P_ij + (x_i . y_j) (phi r_j + C_ij r_j) / (2 pi)
        e_ij . r_j   = (phi P_ij + |x_i| sin c_j) / (2 pi),   e'_ij P_ij = (phi P_ij y_j + |y_j| sin P_ij u_i) / (2 pi)
        C_ij r_j     = a (Q + c) (u_i + v_j) - b (Q - c) (u_i - v_j)

    each summed over ``j`` as an ``n x n'`` coefficient matrix times ``Y``, ``V`` or ``R``, or a
    row sum times ``u_i``. For pairs within :data:`TIED_NEAR` of parallel or antipodal the ``C``
    term is taken from the explicit ``s = u_i + v_j``, ``t = u_i - v_j`` instead (its expansion
    cancels there), in chunks of pairs. Everything is multiplied by ``kappa^2``.

    ``Y=None`` (the kernel of ``X`` with itself) makes the operator symmetric positive
    semi-definite; :meth:`extremes` then gives its extreme eigenvalues by Lanczos."""

    NEAR_CHUNK = 1 << 14
    """Near pairs handled at once (their ``s``, ``t`` are ``chunk x d`` arrays)."""

    def __init__(self, X: Any, *, kappa: float = 1.0, Y: Any | None = None) -> None:
        self.kappa = check_positive(kappa, "kappa (encoder init scale)")
        self.symmetric = Y is None
        self.pairs = p = _TiedPairs.of(X, Y)
        self.X, self.Y = p.X, p.Y
        self.shape = (int(p.X.shape[0]), int(p.X.shape[1]))
        self.input_shape = (int(p.Y.shape[0]), int(p.Y.shape[1]))
        near = (torch.minimum(p.plus, p.minus) < TIED_NEAR) & (p.a > 0) & (p.b > 0)
        self._near = near.nonzero()  # (k, 2) index pairs
        self._a = torch.where(near, 0.0, p.a)
        self._b = torch.where(near, 0.0, p.b)
        self._rx = p.ratios()[0]
        self._w = p.dot / (2 * math.pi)

    @property
    def dim(self) -> int:
        """``n * d``, the number of rows (the side, when ``Y`` is ``X``)."""
        return self.shape[0] * self.shape[1]

    def dense(self) -> torch.Tensor:
        """The dense matrix (:func:`tied_ntk_limit`; small problems only)."""
        return tied_ntk_limit(self.X, kappa=self.kappa, Y=None if self.symmetric else self.Y)

    def __matmul__(self, v: Any) -> torch.Tensor:
        """``T v`` for ``v`` of shape ``(n', d)``, ``(b, n', d)`` or flat ``(n'*d,)``."""
        p = self.pairs
        v = as_tensor(v, dtype=p.X.dtype, device=p.X.device, name="v")
        n2, d = self.input_shape
        flat = v.ndim == 1
        if not (tuple(v.shape) == (n2 * d,) or (v.ndim in (2, 3) and tuple(v.shape[-2:]) == (n2, d))):
            raise AedynError(f"T @ v needs v of shape {(n2, d)}, (b, {n2}, {d}) or ({n2 * d},); got {tuple(v.shape)}")
        R = v.reshape(1, n2, d) if flat else (v[None] if v.ndim == 2 else v)
        out = self._apply(R)
        return out.reshape(-1) if flat else (out[0] if v.ndim == 2 else out)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``T`` applied to the columns of an ``(n'*d) x b`` block."""
        n2, d = self.input_shape
        b = V.shape[1]
        return self._apply(V.mT.reshape(b, n2, d)).reshape(b, -1).mT

    def _apply(self, R: torch.Tensor) -> torch.Tensor:
        p = self.pairs
        two_pi = 2 * math.pi
        P = torch.einsum("ia,bja->bij", p.X, R)  # x_i . r_j
        Q = torch.einsum("ia,bja->bij", p.U, R)  # u_i . r_j
        c = torch.einsum("ja,bja->bj", p.V, R)[:, None, :]  # v_j . r_j
        phi, sin, w = p.phi, p.sin, self._w
        coef_y = (2 * phi * P + p.nx[:, None] * sin * c) / two_pi  # terms 2 and 3, along y_j
        along_u = (p.ny[None, :] * sin * P).sum(-1) / two_pi  # term 3, along u_i
        plus, minus = self._a * (Q + c), self._b * (Q - c)
        along_u = along_u + (w * (plus - minus)).sum(-1)
        coef_v = w * (plus + minus)
        out = (torch.matmul(p.K1 + w * phi, R) + torch.matmul(coef_y, p.Y) + torch.matmul(coef_v, p.V)
               + along_u[:, :, None] * p.U)
        if len(self._near):
            out = out + self._near_part(R)
        return self.kappa * self.kappa * out

    def _near_part(self, R: torch.Tensor) -> torch.Tensor:
        """``sum_j w_ij (a s (s . r_j) - b t (t . r_j))`` over the near pairs, from explicit ``s``, ``t``."""
        p = self.pairs
        out = torch.zeros(R.shape[0], *self.shape, dtype=R.dtype, device=R.device)
        for k in range(0, len(self._near), self.NEAR_CHUNK):
            i, j = self._near[k:k + self.NEAR_CHUNK].unbind(1)
            s, t = p.U[i] + p.V[j], p.U[i] - p.V[j]  # chunk x d
            r = R[:, j]  # b x chunk x d
            w = self._w[i, j]
            term = ((w * p.a[i, j])[None, :, None] * (r * s).sum(-1, keepdim=True) * s
                    - (w * p.b[i, j])[None, :, None] * (r * t).sum(-1, keepdim=True) * t)
            out.index_add_(1, i, term)
        return out

    def extremes(self, *, tol: float = 1e-8, max_iter: int = 500, seed: int = 0) -> Any:
        """Smallest and largest eigenvalue (Lanczos, :func:`aedyn.linalg.lanczos_extremes`); only
        for the symmetric operator (``Y`` not given)."""
        from aedyn.linalg import lanczos_extremes

        if not self.symmetric:
            raise AedynError("extremes need the square kernel of X with itself; build TiedNTKLimit(X) without Y")
        return lanczos_extremes(lambda v: self @ v, self.dim, dtype=self.X.dtype, device=self.X.device,
                                which="both", tol=tol, max_iter=max_iter, seed=seed)


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
