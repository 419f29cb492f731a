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
from typing import Any

import torch

from aedyn._check import check_choice, check_count, check_float, check_int, check_seed
from aedyn._seed import torch_generator
from aedyn._tensor import as_tensor
from aedyn.errors import AedynError
from aedyn.linalg import DENSE_DIM, Extremes, lanczos_extremes, lanczos_extremes_batch, lobpcg_min
from aedyn.model import Params, Tangent, as_params, check_input, decoder, features, jvp, trained_layers, vjp

DENSE_LIMIT = 4096
"""Largest ``n*d`` for which :func:`ntk_dense` is used by default (a 128 MiB float64 matrix)."""

BLOCK_BYTES = 1 << 30
"""Memory for the ``b x n x m`` intermediates of one block product; larger blocks go in groups."""

GRAM_LIMIT = 1 << 26
"""The decoder part is applied through its ``n x n`` factor while ``n^2`` is at most this."""


def operator_memory(n: int, d: int, width: int, itemsize: int, regime: str, *, which: str = "both",
                    max_iter: int = 500, drift: bool = False) -> dict[str, int]:
    """Bytes an :class:`NTKOperator` at ``n x d`` data and its eigensolvers allocate, by part.

    The operator holds ``A`` and the mask ``D`` and one product's ``n x m`` intermediates, and the
    ``n x n`` decoder Gram factor only when the decoder trains and ``n^2 <= GRAM_LIMIT``. Lanczos
    (``lambda_max``) keeps ``min(max_iter, nd)`` basis vectors; LOBPCG (``lambda_min``) a few dozen
    ``nd``-vectors, block products grouped under :data:`BLOCK_BYTES`, and the ``n x n``
    preconditioner with its Cholesky factor. With ``drift``: two dense kernels while
    ``nd <= DENSE_LIMIT``, probes above. Operators up to :data:`aedyn.linalg.DENSE_DIM` are dense.
    """
    s, nd, m = itemsize, n * d, width
    decoder_trains = trained_layers(regime)[1]
    operator = n * m * (s + 1) + 3 * n * m * s + (n * n * s if decoder_trains and n * n <= GRAM_LIMIT else 0)
    parts = {"NTK operator": operator}
    solver = 0
    if nd <= DENSE_DIM or regime == "decoder":
        solver = 3 * min(nd, n if regime == "decoder" else nd) ** 2 * s
    else:
        if which in ("max", "both"):
            solver += min(max_iter, nd) * nd * s
        if which in ("min", "both"):
            solver += 96 * nd * s + min(BLOCK_BYTES, 12 * n * m * s) + 3 * n * n * s + 2 * n * m * s
    parts["NTK eigensolvers"] = solver
    if drift:
        parts["NTK drift"] = (3 * nd * nd * s + 2 * nd * m * s if nd <= DENSE_LIMIT
                              else 16 * (2 * nd + 3 * n * m) * s)
    return parts


def _problem(params: Params, X: Any, regime: str, *, check_finite: bool = True) -> tuple[Params, torch.Tensor]:
    """One network (no batch dimension) and a non-empty ``n x d`` input: what every NTK needs."""
    params = as_params(params, regime)
    X = check_input(X, params, check_finite=check_finite)
    if X.ndim != 2 or X.shape[0] == 0:
        raise AedynError(f"the NTK needs a non-empty n x d matrix X; got shape {tuple(X.shape)}")
    if params.W.ndim != 2:
        raise AedynError("the NTK is computed for one network; got parameters with a batch dimension")
    return params, X


def ntk_dense(params: Params, X: Any, regime: str) -> torch.Tensor:
    """``Theta`` as a dense ``nd x nd`` matrix from the block formulas (small problems only).

    ``H = alpha^2 [(X X^T) ⊗ 1_dd] o (M M^T)`` with ``M[(i,k), r] = D_ir v_rk``;
    ``G = alpha^2 (A A^T) ⊗ I_d``; tied (``J[(i,k), (r,l)] = alpha (A_ir delta_kl + D_ir w_rk x_il)``,
    summed over ``r, l`` without forming ``J``)::

        Theta_tied[(i,k), (j,l)] = alpha^2 [ (A A^T)_ij delta_kl + x_jk C_ijl + x_il C_jik
                                             + (x_i . x_j) sum_r D_ir D_jr w_rk w_rl ],
        C_ijl = sum_r A_ir D_jr w_rl.

    Memory ``O((nd)^2 + n d m)``.
    """
    params, X = _problem(params, X, regime)
    n, d = X.shape
    A, D = features(params, X)
    Dd = D.to(X.dtype)
    a2 = params.alpha * params.alpha
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    enc, dec = trained_layers(regime)
    out = torch.zeros(n * d, n * d, dtype=X.dtype, device=X.device)
    if enc:  # the encoder part, with decoder W^T when tied
        M = (Dd[:, None, :] * decoder(params, regime)[None, :, :]).reshape(n * d, -1)
        out += torch.kron(X @ X.mT, torch.ones(d, d, dtype=X.dtype, device=X.device)) * (M @ M.mT)
        del M
    if dec or regime == "tied":
        out += torch.kron(A @ A.mT, eye)
    if regime == "tied":
        C = torch.empty(n, n, d, dtype=X.dtype, device=X.device)
        rows = max(1, int(BLOCK_BYTES // max(1, n * A.shape[1] * A.element_size())))
        for i in range(0, n, rows):  # C[i] = (A_i o D) W, a block of rows i at a time
            C[i:i + rows] = torch.matmul(A[i:i + rows, None, :] * Dd[None, :, :], params.W)
        cross = torch.einsum("jk,ijl->ikjl", X, C) + torch.einsum("il,jik->ikjl", X, C)
        out += cross.reshape(n * d, n * d)
    return out.mul_(a2)


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

    def __init__(self, params: Params, X: Any, regime: str, *, check_finite: bool = True) -> None:
        self.params, self.X = _problem(params, X, regime, check_finite=check_finite)
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

    def __matmul__(self, v: Any) -> torch.Tensor:
        """``Theta v`` for ``v`` (NumPy or torch) of shape ``(n, d)``, ``(b, n, d)`` or flat ``(n*d,)``."""
        v = as_tensor(v, dtype=self.X.dtype, device=self.X.device, name="v")
        flat = v.ndim == 1
        if not (tuple(v.shape) == (self.dim,) or (v.ndim in (2, 3) and tuple(v.shape[-2:]) == self.shape)):
            raise AedynError(f"Theta @ v needs v of shape {self.shape}, (b, {self.shape[0]}, {self.shape[1]}) or "
                             f"({self.dim},); got {tuple(v.shape)}")
        v2 = v.reshape(self.shape) if flat else v
        p, X, f = self.params, self.X, self.features
        if self.regime == "tied" or self._gram is None:
            out = jvp(p, X, self.regime, vjp(p, X, self.regime, v2, f, check_finite=False), f, check_finite=False)
        else:
            out = torch.matmul(self._gram, v2)
            if self.encoder_trains:
                enc_only = "weak"  # the encoder half of J, whatever the regime
                g = vjp(p, X, enc_only, v2, f, check_finite=False)
                out = out + jvp(p, X, enc_only, Tangent(g.W, None), f, check_finite=False)
        return out.reshape(-1) if flat else out

    def dense(self) -> torch.Tensor:
        """:func:`ntk_dense` of this network, computed once (small ``n*d`` only)."""
        if self._dense is None:
            self._dense = _finite(ntk_dense(self.params, self.X, self.regime), self)
        return self._dense

    def check_overflow(self) -> None:
        """An :class:`AedynError` if ``Theta`` overflows the dtype (one product with a probe of ones,
        which meets every positive entry of every block)."""
        _finite(self @ torch.ones(self.shape, dtype=self.X.dtype, device=self.X.device), self)

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
        return self.params.alpha * self.params.alpha * (A @ A.mT)

    def averaged_kernel(self, jitter: float = 0.0) -> torch.Tensor:
        """The ``n x n`` kernel ``K`` with ``Theta ≈ K ⊗ I_d``: the trace-average over output
        coordinates of each ``d x d`` block, ``K_ij = tr(Theta_ij) / d`` (exact for ``decoder``),
        plus ``jitter`` on the diagonal. Built in place: two ``n x n`` arrays at most::

            untied: K = alpha^2 [ (D diag(||v_r||^2 / d) D^T) o X X^T  (encoder)  +  A A^T  (decoder) ]
            tied:   K = alpha^2 [ (D diag(||w_r||^2 / d) D^T) o X X^T + (1 + 2/d) A A^T ]

        (tied: ``tr(A_ir D_jr x_j w_r^T) = A_ir A_jr``, twice, beside ``d A_ir A_jr`` from ``A_ir A_jr I_d``)."""
        A, D = self.features
        a2 = self.params.alpha * self.params.alpha
        K = torch.zeros(self.shape[0], self.shape[0], dtype=A.dtype, device=A.device)
        if self.encoder_trains:
            s = decoder(self.params, self.regime).square().sum(dim=0) / self.shape[1]  # ||v_r||^2 / d
            Dd = D.to(A.dtype)
            K = torch.matmul(Dd * s, Dd.mT)
            del Dd
            K.mul_(self.X @ self.X.mT).mul_(a2)
        if self.decoder_trains:
            K.addmm_(A, A.mT, alpha=a2)
        elif self.regime == "tied":  # J_ir = alpha (A_ir I + D_ir w_r x_i^T): the cross terms add (2/d) A A^T
            K.addmm_(A, A.mT, alpha=a2 * (1.0 + 2.0 / self.shape[1]))
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
        otherwise (small operators are solved densely). ``tol`` is the relative accuracy asked
        of each eigenvalue; see :class:`aedyn.linalg.Extremes` for what the error fields mean."""
        which = check_choice(which, ("min", "max", "both"), "which")
        tol, max_iter = check_solver_options(tol, max_iter)
        seed = check_seed(seed)
        self.check_overflow()
        if self.regime == "decoder":
            ev = torch.linalg.eigvalsh(self.decoder_gram())
            return Extremes(float(ev[0]), float(ev[-1]), 0, True, 0.0, 0.0)
        lo = hi = math.nan
        err_lo = err_hi = 0.0
        iters, ok = 0, True
        if which in ("max", "both"):
            top = lanczos_extremes(self.__matmul__, self.dim, dtype=self.X.dtype, device=self.X.device,
                                   which="max", tol=tol, max_iter=max_iter, seed=seed)
            hi, err_hi, iters, ok = top.max, top.error_max, top.iterations, top.converged
        if which in ("min", "both"):
            lo, err_lo, it, ok_lo = lobpcg_min(self.matmat, self.dim, dtype=self.X.dtype, device=self.X.device,
                                               precondition=self.preconditioner(), tol=tol, max_iter=max_iter,
                                               seed=seed)
            iters, ok = iters + it, ok and ok_lo
        return Extremes(lo, hi, iters, ok, err_lo, err_hi)


def check_solver_options(tol: float, max_iter: int) -> tuple[float, int]:
    """``tol`` a relative accuracy in ``(0, 1)``, ``max_iter`` a positive integer."""
    return (check_float(tol, "tol (relative accuracy of the eigenvalues)", low=0.0, high=1.0, low_open=True,
                        high_open=True),
            check_count(max_iter, "max_iter"))


def _overflow_message(params: Params) -> str:
    W = params.W
    name = str(W.dtype).removeprefix("torch.")
    return (f"the NTK overflows {name} with alpha = {params.alpha:g} and weights up to {float(W.abs().max()):.3g}: "
            "the network's scale is too large for its dtype; use smaller kappa, nu or init scale"
            + ("" if name == "float64" else " (or float64)"))


def _finite(T: torch.Tensor, op: NTKOperator) -> torch.Tensor:
    if not bool(torch.isfinite(T).all()):
        raise AedynError(_overflow_message(op.params))
    return T


def ntk_extremes(params: Params, X: Any, regime: str, *, which: str = "both", tol: float = 1e-8,
                 max_iter: int = 500, seed: int = 0) -> Extremes:
    """Extreme eigenvalues of the finite-width NTK of ``params`` at ``X`` (see :class:`NTKOperator`)."""
    return NTKOperator(params, X, regime).extremes(which=which, tol=tol, max_iter=max_iter, seed=seed)


def ntk_lambda_max_batch(params: Params, X: torch.Tensor, regime: str, *, tol: float = 1e-8,
                         max_iter: int = 500, seed: int = 0) -> list[Extremes]:
    """``lambda_max(Theta_b)`` of every network of a batch (``W`` of shape ``(B, m, d)``; ``X`` a
    checked ``n x d`` or ``B x n x d`` tensor), from one batched Lanczos run
    (:func:`aedyn.linalg.lanczos_extremes_batch`): no loop over networks.

    The product is the one :class:`NTKOperator` uses, batched: ``Theta_b v_b = J_b J_b^T v_b``
    through :func:`aedyn.model.vjp` and :func:`aedyn.model.jvp`, with the decoder part
    ``alpha^2 A_b A_b^T ⊗ I_d`` applied through its ``n x n`` factors while ``B n^2`` is at most
    :data:`GRAM_LIMIT`. For ``decoder`` the factors' eigenvalues are exact (``eigvalsh``). An
    NTK that overflows the dtype is an :class:`AedynError` naming the network.
    """
    params = as_params(params, regime)
    batch, (n, d) = params.W.shape[0], tuple(X.shape[-2:])
    feats = features(params, X)
    _, decoder_trains = trained_layers(regime)
    a2 = params.alpha * params.alpha
    gram = None
    if regime == "decoder" or (decoder_trains and batch * n * n <= GRAM_LIMIT):
        gram = a2 * torch.matmul(feats.A, feats.A.mT)

    def product(v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(batch, n, d)
        if gram is None:
            out = jvp(params, X, regime, vjp(params, X, regime, v, feats, check_finite=False), feats,
                      check_finite=False)
        else:
            out = torch.matmul(gram, v)
            if regime != "decoder":  # the encoder half of J
                g = vjp(params, X, "weak", v, feats, check_finite=False)
                out = out + jvp(params, X, "weak", Tangent(g.W, None), feats, check_finite=False)
        return out.reshape(batch, n * d)

    probe = product(torch.ones(batch, n * d, dtype=X.dtype, device=X.device))
    bad = torch.nonzero(~torch.isfinite(probe).all(dim=-1)).flatten().tolist()
    if bad:
        net = Params(params.W[bad[0]], None if params.V is None else params.V[bad[0]], params.alpha)
        raise AedynError(f"network {bad[0]} of the batch: " + _overflow_message(net))
    if regime == "decoder":
        ev = torch.linalg.eigvalsh(gram).double().cpu()  # type: ignore[arg-type]
        return [Extremes(float(ev[b, 0]), float(ev[b, -1]), 0, True, 0.0, 0.0) for b in range(batch)]
    return lanczos_extremes_batch(product, batch, n * d, dtype=X.dtype, device=X.device, which="max", tol=tol,
                                  max_iter=max_iter, seed=seed)


def ntk_drift(current: NTKOperator, initial: NTKOperator, *, probes: int = 16, seed: int = 0,
              dense_limit: int = DENSE_LIMIT) -> Drift:
    """``||Theta(t) - Theta(0)||_F / ||Theta(0)||_F`` (NaN when ``Theta(0) = 0``).

    Exact (dense kernels) while ``n*d <= dense_limit``; otherwise Hutchinson's estimator with
    Rademacher probes ``z`` (``E[z z^T] = I``), ``||M||_F^2 = E ||M z||^2``, applied to numerator
    and denominator alike: each squared norm is estimated without bias (the ratio is consistent,
    with relative error about ``sqrt(2 / probes)`` at worst).
    """
    for name, op in (("current", current), ("initial", initial)):
        if not isinstance(op, NTKOperator):
            raise AedynError(f"ntk_drift takes two NTKOperator objects; {name} is a {type(op).__name__}")
    if current.shape != initial.shape or current.regime != initial.regime:
        raise AedynError(f"ntk_drift compares kernels of one problem; got shapes {current.shape} and {initial.shape}, "
                         f"regimes {current.regime!r} and {initial.regime!r}")
    probes = check_count(probes, "probes")
    seed = check_seed(seed)
    dense_limit = check_int(dense_limit, "dense_limit", minimum=0)
    if current.dim <= dense_limit:
        T0, Tt = initial.dense(), current.dense()
        num, den = float((Tt - T0).square().sum()), float(T0.square().sum())
        method = "exact"
    else:
        gen = torch_generator(seed, "probe")
        Z = (2.0 * torch.randint(0, 2, (probes, *current.shape), generator=gen) - 1.0).to(
            dtype=current.X.dtype, device=current.X.device)
        base = initial @ Z
        num = float((current @ Z - base).square().sum())
        den = float(base.square().sum())
        method = f"hutchinson({probes} Rademacher probes)"
    return Drift(math.sqrt(num / den) if den > 0 else math.nan, method)
