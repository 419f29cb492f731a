"""Matrix-free symmetric eigenvalue estimates (Lanczos with full reorthogonalisation).

Used for the extreme eigenvalues of neural tangent kernels that are too large to form: only a
function ``v -> A v`` is needed. Runs on whatever device the vectors live on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aedyn.errors import AedynWarning


@dataclass(frozen=True)
class Extremes:
    """Smallest and largest eigenvalue estimates of a symmetric operator and how they were found.

    ``residual_min``/``residual_max`` bound ``||A y - theta y||`` for the unit Ritz vectors ``y``; for
    a symmetric matrix the eigenvalue error is at most that residual (and at most residual^2 / gap).
    """

    min: float
    max: float
    iterations: int
    converged: bool
    residual_min: float
    residual_max: float


def lanczos_extremes(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, dtype: torch.dtype,
                     device: torch.device | str = "cpu", which: str = "both", tol: float = 1e-8,
                     max_iter: int = 500, seed: int = 0, check_every: int = 5) -> Extremes:
    """Extreme eigenvalues of a symmetric positive semi-definite (or any symmetric) operator.

    Lanczos from a seeded random start, with full reorthogonalisation (two Gram-Schmidt passes,
    so the basis stays orthonormal to working precision). Stops when the residual bound of the
    requested extreme Ritz value(s) falls below ``tol * max(|theta|, eps * ||T||)``, on an
    invariant subspace, or after ``max_iter`` steps (then ``converged`` is false and a warning is
    issued). ``which`` is ``"max"``, ``"min"`` or ``"both"``. Memory: ``max_iter`` vectors of ``dim``.
    """
    if which not in ("min", "max", "both"):
        raise ValueError(f"which must be 'min', 'max' or 'both'; got {which!r}")
    max_iter = max(1, min(max_iter, dim))
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    q /= q.norm()
    Q = torch.empty(max_iter, dim, dtype=dtype, device=device)
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(dtype).eps
    theta = torch.zeros(1, dtype=torch.float64)
    res = torch.zeros(1, dtype=torch.float64)
    converged = False
    k = 0
    for k in range(1, max_iter + 1):
        Q[k - 1] = q
        w = matvec(q)
        a = float(torch.dot(w, q))
        alphas.append(a)
        basis = Q[:k]
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - basis.mT @ (basis @ w)
        b = float(w.norm())
        done = k == max_iter
        scale = max(abs(x) for x in alphas) if alphas else 1.0
        invariant = b <= eps * max(scale, 1e-300) * math.sqrt(dim)
        if invariant or done or k % check_every == 0:
            T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if k > 1:
                off = torch.tensor(betas, dtype=torch.float64)
                T += torch.diag(off, 1) + torch.diag(off, -1)
            theta, S = torch.linalg.eigh(T)
            res = (0.0 if invariant else b) * S[-1].abs()
            norm_T = float(theta.abs().max())
            floor = eps * norm_T
            ok_min = float(res[0]) <= tol * max(abs(float(theta[0])), floor)
            ok_max = float(res[-1]) <= tol * max(abs(float(theta[-1])), floor)
            converged = invariant or {"min": ok_min, "max": ok_max, "both": ok_min and ok_max}[which]
            if converged or done:
                break
        betas.append(b)
        q = w / b
    if not converged:
        warnings.warn(AedynWarning(
            f"Lanczos stopped after {k} iterations without reaching tol={tol:g} (residuals "
            f"{float(res[0]):.2e}, {float(res[-1]):.2e}); raise max_iter or loosen tol"), stacklevel=2)
    return Extremes(float(theta[0]), float(theta[-1]), k, converged, float(res[0]), float(res[-1]))
