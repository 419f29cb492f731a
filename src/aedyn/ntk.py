"""The finite-width neural tangent kernel ``Theta = J J^T`` (``nd x nd``), dense and matrix-free.

Order the ``n*d`` outputs as (sample ``i``, coordinate ``k``). Block ``(i, j)`` is ``d x d``::

    encoder part  H_ij = alpha^2 (x_i . x_j) sum_r D_ir D_jr v_r v_r^T
    decoder part  G_ij = alpha^2 (sum_r A_ir A_jr) I_d            (G = alpha^2 (A A^T) ⊗ I_d)
    weak: Theta = H     joint: Theta = H + G     decoder: Theta = G
    tied: Theta = J J^T with d f(x_i)/d w_r = alpha (A_ir I_d + D_ir w_r x_i^T)

Matrix-free, ``Theta v = J (J^T v)`` costs ``O(m n d)`` through :func:`aedyn.model.vjp` and
:func:`aedyn.model.jvp`; the decoder part is applied through its ``n x n`` factor
``alpha^2 A A^T`` (built once, ``O(n^2 m)``), and the ``nd x nd`` matrix is never formed.
``lambda_max`` comes from Lanczos; ``lambda_min`` from block LOBPCG preconditioned with the
inverse of the coordinate-averaged ``n x n`` kernel (``Theta`` is close to ``K ⊗ I_d`` at large
width, so a handful of iterations suffice).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aedyn._seed import torch_generator
from aedyn.errors import AedynError
from aedyn.linalg import Extremes, lanczos_extremes, lobpcg_min
from aedyn.model import Params, Tangent, as_params, decoder, features, jvp, trained_layers, vjp

DENSE_LIMIT = 4096
"""Largest ``n*d`` for which :func:`ntk_dense` is used by default (a 128 MiB float64 matrix)."""

BLOCK_BYTES = 1 << 30
"""Memory for the ``b x n x m`` intermediates of one block product; larger blocks go in groups."""

GRAM_LIMIT = 1 << 26
"""The decoder part is applied through its ``n x n`` factor while ``n^2`` is at most this."""


def ntk_dense(params: Params, X: torch.Tensor, regime: str) -> torch.Tensor:
    """``Theta`` as a dense ``nd x nd`` matrix from the block formulas (small problems only).

    ``H = alpha^2 [(X X^T) ⊗ 1_dd] o (M M^T)`` with ``M[(i,k), r] = D_ir v_rk``;
    ``G = alpha^2 (A A^T) ⊗ I_d``; tied: ``J[(i,k), (r,l)] = alpha (A_ir delta_kl + D_ir w_rk x_il)``.
    """
    params = as_params(params, regime)
    X = X.to(dtype=params.W.dtype, device=params.W.device)
    n, d = X.shape
    A, D = features(params, X)
    a2 = params.alpha ** 2
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    if regime == "tied":
        W = params.W
        J = torch.einsum("ir,kl->ikrl", A, eye) + torch.einsum("ir,rk,il->ikrl", D.to(X.dtype), W, X)
        J = params.alpha * J.reshape(n * d, -1)
        return J @ J.mT
    enc, dec = trained_layers(regime)
    out = torch.zeros(n * d, n * d, dtype=X.dtype, device=X.device)
    if enc:
        M = (D.to(X.dtype)[:, None, :] * params.V[None, :, :]).reshape(n * d, -1)  # type: ignore[index]
        gram_x = torch.kron(X @ X.mT, torch.ones(d, d, dtype=X.dtype, device=X.device))
        out += a2 * gram_x * (M @ M.mT)
    if dec:
        out += torch.kron(a2 * (A @ A.mT), eye)
    return out


@dataclass(frozen=True)
class Drift:
    """``||Theta(t) - Theta(0)||_F / ||Theta(0)||_F``: exact, or a random-probe estimate."""

    value: float
    method: str


class NTKOperator:
    """``Theta`` of one network at one input set, as a linear map on ``n x d`` output arrays
    (or a batch ``b x n x d`` of them, or flat ``(n*d,)`` vectors).

    The hidden features, and for ``joint``/``decoder`` the ``n x n`` decoder Gram factor, are
    computed once; each product then costs two ``n m d`` GEMMs per trained encoder pass.
    """

    def __init__(self, params: Params, X: torch.Tensor, regime: str) -> None:
        self.params = as_params(params, regime)
        self.X = X.to(dtype=params.W.dtype, device=params.W.device)
        self.regime = regime
        self.features = features(self.params, self.X)
        self.shape = tuple(self.X.shape)
        self.encoder_trains, self.decoder_trains = trained_layers(regime)
        n = self.shape[0]
        self._gram = None
        self._dense: torch.Tensor | None = None
        if self.decoder_trains and n * n <= GRAM_LIMIT:
            self._gram = self.decoder_gram()

    @property
    def dim(self) -> int:
        """``n * d``, the side of ``Theta``."""
        return self.shape[0] * self.shape[1]

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """``Theta v`` for ``v`` of shape ``(n, d)``, ``(b, n, d)`` or flat ``(n*d,)``."""
        flat = v.ndim == 1
        v2 = v.reshape(self.shape) if flat else v
        if self.regime == "tied" or self._gram is None:
            out = jvp(self.params, self.X, self.regime, vjp(self.params, self.X, self.regime, v2, self.features),
                      self.features)
        else:
            out = torch.matmul(self._gram, v2)
            if self.encoder_trains:
                enc_only = "weak"  # the encoder half of J, whatever the regime
                g = vjp(self.params, self.X, enc_only, v2, self.features)
                out = out + jvp(self.params, self.X, enc_only, Tangent(g.W, None), self.features)
        return out.reshape(-1) if flat else out

    def dense(self) -> torch.Tensor:
        """:func:`ntk_dense` of this network, computed once (small ``n*d`` only)."""
        if self._dense is None:
            self._dense = ntk_dense(self.params, self.X, self.regime)
        return self._dense

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``Theta`` applied to the columns of a ``(n*d) x b`` block, in groups of columns whose
        ``group x n x m`` intermediates stay within :data:`BLOCK_BYTES`."""
        b = V.shape[1]
        A = self.features.A
        group = max(1, int(BLOCK_BYTES // (A.numel() * A.element_size())))
        cols = [(self @ V[:, j:j + group].mT.reshape(-1, *self.shape)).reshape(-1, self.dim).mT
                for j in range(0, b, group)]
        return cols[0] if len(cols) == 1 else torch.cat(cols, dim=1)

    def decoder_gram(self) -> torch.Tensor:
        """``alpha^2 A A^T`` (``n x n``): the decoder part is this matrix ``⊗ I_d``."""
        A = self.features.A
        return self.params.alpha ** 2 * (A @ A.mT)

    def averaged_kernel(self, jitter: float = 0.0) -> torch.Tensor:
        """The ``n x n`` kernel ``K`` with ``Theta ≈ K ⊗ I_d``: the trace-average over output
        coordinates of each ``d x d`` block, ``K_ij = tr(Theta_ij) / d`` (exact for ``decoder``),
        plus ``jitter`` on the diagonal. Built in place: two ``n x n`` arrays at most."""
        A, D = self.features
        a2 = self.params.alpha ** 2
        K = torch.zeros(self.shape[0], self.shape[0], dtype=A.dtype, device=A.device)
        if self.encoder_trains:
            s = decoder(self.params, self.regime).square().sum(dim=0) / self.shape[1]  # ||v_r||^2 / d
            Dd = D.to(A.dtype)
            K = torch.matmul(Dd * s, Dd.mT)
            del Dd
            K.mul_(self.X @ self.X.mT).mul_(a2)
        if self.decoder_trains or self.regime == "tied":
            K.addmm_(A, A.mT, alpha=a2)
        K.diagonal().add_(jitter)
        return K

    def preconditioner(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``r -> (K + delta I)^{-1} r`` per output coordinate, ``K`` the averaged kernel and
        ``delta = 1e-10 tr(K) / n`` so the Cholesky factorisation exists; ``None`` if it fails."""
        K = self.averaged_kernel()
        K.diagonal().add_(1e-10 * float(K.diagonal().mean()))
        L, info = torch.linalg.cholesky_ex(K)
        del K
        if int(info) != 0:
            return None
        shape = self.shape

        def apply(R: torch.Tensor) -> torch.Tensor:
            # one n x (b d) right-hand side, so L is never broadcast over the block
            b = R.shape[1]
            rhs = R.reshape(shape[0], shape[1] * b)  # row i holds (k, column) pairs of sample i
            return torch.cholesky_solve(rhs, L).reshape(shape[0] * shape[1], b)

        return apply

    def extremes(self, *, which: str = "both", tol: float = 1e-8, max_iter: int = 500, seed: int = 0) -> Extremes:
        """Smallest/largest eigenvalue of ``Theta``: exact ``eigvalsh`` of the ``n x n`` factor for
        ``decoder``; Lanczos for ``lambda_max`` and preconditioned LOBPCG for ``lambda_min``
        otherwise. ``tol`` bounds the relative residual of the Ritz pairs."""
        if which not in ("min", "max", "both"):
            raise AedynError(f"which must be 'min', 'max' or 'both'; got {which!r}")
        if self.regime == "decoder":
            ev = torch.linalg.eigvalsh(self.decoder_gram())
            return Extremes(float(ev[0]), float(ev[-1]), 0, True, 0.0, 0.0)
        lo = hi = math.nan
        res_lo = res_hi = 0.0
        iters, ok = 0, True
        if which in ("max", "both"):
            top = lanczos_extremes(self.__matmul__, self.dim, dtype=self.X.dtype, device=self.X.device,
                                   which="max", tol=tol, max_iter=max_iter, seed=seed)
            hi, res_hi, iters, ok = top.max, top.residual_max, top.iterations, top.converged
        if which in ("min", "both"):
            lo, res_lo, it, ok_lo = lobpcg_min(self.matmat, self.dim, dtype=self.X.dtype, device=self.X.device,
                                               precondition=self.preconditioner(), tol=tol, max_iter=max_iter,
                                               seed=seed)
            iters, ok = iters + it, ok and ok_lo
        return Extremes(lo, hi, iters, ok, res_lo, res_hi)


def ntk_extremes(params: Params, X: torch.Tensor, regime: str, *, which: str = "both", tol: float = 1e-8,
                 max_iter: int = 500, seed: int = 0) -> Extremes:
    """Extreme eigenvalues of the finite-width NTK of ``params`` at ``X`` (see :class:`NTKOperator`)."""
    return NTKOperator(params, X, regime).extremes(which=which, tol=tol, max_iter=max_iter, seed=seed)


def ntk_drift(current: NTKOperator, initial: NTKOperator, *, probes: int = 16, seed: int = 0,
              dense_limit: int = DENSE_LIMIT) -> Drift:
    """``||Theta(t) - Theta(0)||_F / ||Theta(0)||_F``.

    Exact (dense kernels) while ``n*d <= dense_limit``; otherwise Hutchinson's estimator with
    Rademacher probes ``z`` (``E[z z^T] = I``), ``||M||_F^2 = E ||M z||^2``, applied to numerator
    and denominator alike: each squared norm is estimated without bias (the ratio is consistent,
    with relative error about ``sqrt(2 / probes)`` at worst).
    """
    if current.dim <= dense_limit:
        T0, Tt = initial.dense(), current.dense()
        return Drift(float((Tt - T0).norm() / T0.norm()), "exact")
    gen = torch_generator(seed, "probe")
    Z = (2.0 * torch.randint(0, 2, (probes, *current.shape), generator=gen) - 1.0).to(
        dtype=current.X.dtype, device=current.X.device)
    base = initial @ Z
    num = float((current @ Z - base).square().sum())
    den = float(base.square().sum())
    return Drift(math.sqrt(num / den), f"hutchinson({probes} Rademacher probes)")
