"""Matrix-free symmetric eigenvalue estimates (Lanczos with full reorthogonalisation).

Used for the extreme eigenvalues of neural tangent kernels that are too large to form: only a
function ``v -> A v`` is needed. Runs on whatever device the vectors live on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from aedyn._check import check_choice, check_count, check_float, check_seed
from aedyn._seed import torch_generator
from aedyn.errors import AedynWarning

DENSE_DIM = 64
"""Operators of at most this dimension are applied to the identity and solved with ``eigvalsh``:
exact, cheaper than iterating, and free of the breakdowns of tiny Krylov and LOBPCG bases."""


@dataclass(frozen=True)
class Extremes:
    """Smallest and largest eigenvalue estimates of a symmetric operator and how they were found.

    ``error_min``/``error_max`` say how far each value may be off, and mean different things by
    method: from Lanczos, the residual norm ``||A y - theta y||`` of the unit Ritz vector ``y``, a
    rigorous bound (a symmetric ``A`` has an eigenvalue within it of ``theta``); from LOBPCG, a
    Kato-Temple-style estimate ``||R||^2 / gap`` whose gap is taken from Ritz values, an estimate
    and not a bound (see :func:`lobpcg_min`); ``0`` from a dense solve.
    """

    min: float
    max: float
    iterations: int
    converged: bool
    error_min: float
    error_max: float


def _dense_extremes(apply: Callable[[torch.Tensor], torch.Tensor], dim: int, dtype: torch.dtype,
                    device: torch.device | str) -> torch.Tensor:
    """All eigenvalues of the operator, from ``apply(I)`` (columns) symmetrised, ascending."""
    A = apply(torch.eye(dim, dtype=dtype, device=device))
    return torch.linalg.eigvalsh(0.5 * (A + A.mT))


def _check_solver(dim: int, tol: float, max_iter: int, seed: int) -> tuple[int, float, int, int]:
    return (check_count(dim, "dim"),
            check_float(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True),
            check_count(max_iter, "max_iter"), check_seed(seed))


def lanczos_extremes(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, dtype: torch.dtype,
                     device: torch.device | str = "cpu", which: str = "both", tol: float = 1e-8,
                     max_iter: int = 500, seed: int = 0, check_every: int = 5) -> Extremes:
    """Extreme eigenvalues of one symmetric operator ``v -> A v`` (``v`` of shape ``(dim,)``):
    :func:`lanczos_extremes_batch` with a batch of one."""
    return lanczos_extremes_batch(lambda V: matvec(V[0])[None], 1, dim, dtype=dtype, device=device, which=which,
                                  tol=tol, max_iter=max_iter, seed=seed, check_every=check_every)[0]


def lanczos_extremes_batch(matvec: Callable[[torch.Tensor], torch.Tensor], batch: int, dim: int, *,
                           dtype: torch.dtype, device: torch.device | str = "cpu", which: str = "both",
                           tol: float = 1e-8, max_iter: int = 500, seed: int = 0,
                           check_every: int = 5) -> list[Extremes]:
    """Extreme eigenvalues of ``batch`` independent symmetric operators at once.

    ``matvec`` maps a ``(batch, dim)`` block to ``(A_b v_b)_b``: operator ``b`` acts on row ``b``.
    Lanczos from a seeded random start (the same for every operator, so an operator gets the same
    answer alone or in any batch), with full reorthogonalisation (two Gram-Schmidt passes, so the
    basis stays orthonormal to working precision). Operator ``b`` stops when the residual bound
    of its requested extreme Ritz value(s) falls below ``tol * max(|theta|, eps * ||T_b||)``, on an
    invariant subspace, or after ``max_iter`` steps (then ``converged`` is false and a warning is
    issued); a stopped operator is carried along frozen until all have stopped. ``which`` is
    ``"max"``, ``"min"`` or ``"both"``. Memory: ``batch * max_iter`` vectors of ``dim``.
    """
    which = check_choice(which, ("min", "max", "both"), "which")
    dim, tol, max_iter, seed = _check_solver(dim, tol, max_iter, seed)
    batch = check_count(batch, "batch")
    check_every = check_count(check_every, "check_every")
    if dim <= DENSE_DIM:
        eye = torch.eye(dim, dtype=dtype, device=device)
        A = torch.stack([matvec(eye[j].expand(batch, dim).contiguous()) for j in range(dim)], dim=-1)
        ev = torch.linalg.eigvalsh(0.5 * (A + A.mT)).double().cpu()
        return [Extremes(float(ev[b, 0]), float(ev[b, -1]), dim, True, 0.0, 0.0) for b in range(batch)]
    max_iter = max(1, min(max_iter, dim))
    gen = torch_generator(seed, "solver")
    q = torch.randn(dim, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    q = (q / q.norm()).expand(batch, dim).contiguous()
    Q = torch.empty(batch, max_iter, dim, dtype=dtype, device=device)
    alphas = np.zeros((batch, max_iter))
    betas = np.zeros((batch, max_iter))
    eps = torch.finfo(dtype).eps
    results: list[Extremes | None] = [None] * batch
    running = np.ones(batch, dtype=bool)
    for k in range(1, max_iter + 1):
        Q[:, k - 1] = q
        w = matvec(q)
        a = (w * q).sum(dim=-1)
        basis = Q[:, :k]
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - torch.matmul(basis.mT, torch.matmul(basis, w[..., None]))[..., 0]
        b = w.norm(dim=-1)
        host = torch.stack([a, b]).double().cpu().numpy()  # one transfer per iteration
        alphas[:, k - 1] = host[0]
        done = k == max_iter
        scale = np.abs(alphas[:, :k]).max(axis=1)
        invariant = host[1] <= eps * np.maximum(scale, 1e-300) * math.sqrt(dim)
        check = np.flatnonzero(running & (invariant | done | (k % check_every == 0)))
        if check.size:
            T = torch.zeros(check.size, k, k, dtype=torch.float64)
            T.diagonal(dim1=-2, dim2=-1).copy_(torch.from_numpy(alphas[check, :k]))
            if k > 1:
                off = torch.from_numpy(betas[check, :k - 1])
                T.diagonal(1, dim1=-2, dim2=-1).copy_(off)
                T.diagonal(-1, dim1=-2, dim2=-1).copy_(off)
            theta, S = torch.linalg.eigh(T)
            last = torch.from_numpy(np.where(invariant[check], 0.0, host[1][check]))
            res = last[:, None] * S[:, -1, :].abs()
            floor = eps * theta.abs().amax(dim=-1)
            ok_min = res[:, 0] <= tol * torch.maximum(theta[:, 0].abs(), floor)
            ok_max = res[:, -1] <= tol * torch.maximum(theta[:, -1].abs(), floor)
            ok = {"min": ok_min, "max": ok_max, "both": ok_min & ok_max}[which]
            for j, net in enumerate(check):
                converged = bool(invariant[net] or ok[j])
                if not (converged or done):
                    continue
                running[net] = False
                results[net] = Extremes(float(theta[j, 0]), float(theta[j, -1]), k, converged, float(res[j, 0]),
                                        float(res[j, -1]))
                if not converged:
                    which_net = f" (network {net} of {batch})" if batch > 1 else ""
                    warnings.warn(AedynWarning(
                        f"Lanczos stopped after {k} iterations without reaching tol={tol:g}{which_net} (residuals "
                        f"{float(res[j, 0]):.2e}, {float(res[j, -1]):.2e}); raise max_iter or loosen tol"),
                        stacklevel=3)
        if not running.any():
            break
        betas[:, k - 1] = host[1]
        q = w / torch.where(b > 0, b, torch.ones_like(b))[:, None]  # a stopped operator may have b = 0
    return results  # type: ignore[return-value]


def _orthonormalize(S: torch.Tensor, drop: float, AS: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Orthonormal basis of the columns of ``S`` (``dim x k``) by eigen-decomposition of the Gram
    matrix (SVQB), twice; directions with relative weight below ``drop`` are dropped. ``AS``
    (``A S``), when given, receives the same column transformation, so no product is recomputed."""
    for _ in range(2):
        ev, U = torch.linalg.eigh(S.mT @ S)
        keep = ev > drop * ev[-1].clamp_min(torch.finfo(S.dtype).tiny)
        C = U[:, keep] / ev[keep].sqrt()
        S = S @ C
        AS = None if AS is None else AS @ C
    return S, AS


def _error_estimate(R: torch.Tensor, theta: torch.Tensor, theta_next: float) -> float:
    """Error estimate of the smallest Ritz value ``theta_1`` from the block residuals ``R``.

    ``||r_1||`` always bounds it. A cluster of ``j`` Ritz values separated by ``gap_j`` from the
    next one gives the Kato-Temple-type estimate ``||R_{:, :j}||_F^2 / gap_j`` (``gap_j = theta_{j+1} -
    theta_1``, ``theta_{b+1}`` from the last Rayleigh-Ritz step standing in for ``lambda_{j+1}``);
    the smallest of these is returned, so a tight cluster does not hide a converged value.
    """
    sq = R.square().sum(dim=0).cumsum(0)
    best = math.sqrt(float(sq[0]))
    nxt = [*(float(t) for t in theta[1:]), theta_next]
    for j, t in enumerate(nxt):
        gap = t - float(theta[0])
        if gap > 0 and math.isfinite(gap):
            best = min(best, float(sq[j]) / gap)
    return best


def lobpcg_min(matmat: Callable[[torch.Tensor], torch.Tensor], dim: int, *, dtype: torch.dtype,
               device: torch.device | str = "cpu", precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
               block: int = 4, tol: float = 1e-8, max_iter: int = 500, seed: int = 0) -> tuple[float, float, int, bool]:
    """Smallest eigenvalue of a symmetric positive semi-definite operator by block LOBPCG
    (Knyazev 2001) with an optional preconditioner ``T ~ A^{-1}``.

    ``matmat`` maps a ``dim x b`` block to ``A`` times it. Each iteration takes the Rayleigh-Ritz
    minimum over ``span[X, T R, P]`` (current block, preconditioned residuals, previous step
    direction). It stops when the error estimate of the smallest Ritz value (see
    :func:`_error_estimate`) is at most ``tol * theta`` (``tol * sqrt(eps) * theta_max`` for an
    operator singular to working precision). Returns
    ``(lambda_min, error estimate, iterations, converged)``. The estimate uses Ritz values in
    place of the unknown eigenvalues, so it is not a bound; the test against exact
    eigenvalues of ill-conditioned operators is what supports it.
    """
    dim, tol, max_iter, seed = _check_solver(dim, tol, max_iter, seed)
    block = check_count(block, "block")
    if dim <= DENSE_DIM:
        return float(_dense_extremes(matmat, dim, dtype, device)[0]), 0.0, dim, True
    block = max(1, min(block, dim // 3))
    gen = torch_generator(seed, "solver")
    X = torch.randn(dim, block, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    drop = 1e2 * torch.finfo(dtype).eps
    X, _ = _orthonormalize(X, drop)
    AX = matmat(X)
    theta, C = torch.linalg.eigh(X.mT @ AX)
    X, AX = X @ C, AX @ C
    theta_top = float(theta.abs().max())
    P = AP = None
    res = theta_next = math.inf
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        R = AX - X * theta
        res = _error_estimate(R, theta, theta_next)
        # relative to theta_1, or for a (near-)singular operator to sqrt(eps) * the largest Ritz value seen
        if res <= tol * max(float(theta[0]), math.sqrt(torch.finfo(dtype).eps) * theta_top):
            converged = True
            break
        W = precondition(R) if precondition is not None else R
        W = W - X @ (X.mT @ W)
        W, _ = _orthonormalize(W, drop)
        AW = matmat(W)
        if P is None:
            S, AS = W, AW
        else:  # P and A P are carried along, so only the new directions W cost products
            S, AS = torch.cat([W, P], dim=1), torch.cat([AW, AP], dim=1)
            for _ in range(2):
                c = X.mT @ S
                S, AS = S - X @ c, AS - AX @ c
            S, AS = _orthonormalize(S, drop, AS)
        Q = torch.cat([X, S], dim=1)
        AQ = torch.cat([AX, AS], dim=1)
        T = Q.mT @ AQ
        theta_all, Y = torch.linalg.eigh(0.5 * (T + T.mT))
        theta_next = float(theta_all[block]) if len(theta_all) > block else math.inf
        theta_top = max(theta_top, float(theta_all[-1]))
        theta, Y = theta_all[:block], Y[:, :block]
        X_new, AX_new = Q @ Y, AQ @ Y
        overlap = X.mT @ X_new
        P, AP = X_new - X @ overlap, AX_new - AX @ overlap
        X, AX = X_new, AX_new
    if not converged:
        warnings.warn(AedynWarning(f"LOBPCG stopped after {it} iterations with error estimate {res:.2e} "
                                   f"(tol {tol:g}); raise max_iter or loosen tol"), stacklevel=2)
    return float(theta[0]), res, it, converged
