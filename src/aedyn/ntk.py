"""The finite-width neural tangent kernel ``Theta = J J^T`` (``nd x nd``), matrix-free.

Order the ``n*d`` outputs as (sample ``i``, coordinate ``k``). Block ``(i, j)`` is ``d x d``::

    encoder part  H_ij = alpha^2 (x_i . x_j) sum_r D_ir D_jr v_r v_r^T
    decoder part  G_ij = alpha^2 (sum_r A_ir A_jr) I_d            (G = alpha^2 (A A^T) ⊗ I_d)
    weak: Theta = H     joint: Theta = H + G     decoder: Theta = G
    tied: Theta = J J^T with d f(x_i)/d w_r = alpha (A_ir I_d + D_ir w_r x_i^T)

``Theta v = J (J^T v)`` costs ``O(m n d)`` through :func:`aedyn.model.vjp` and
:func:`aedyn.model.jvp`; the ``nd x nd`` matrix is never formed. For ``decoder`` the spectrum is
that of the ``n x n`` matrix ``alpha^2 A A^T``.
"""

from __future__ import annotations

import torch

from aedyn.linalg import Extremes, lanczos_extremes
from aedyn.model import Params, as_params, features, jvp, vjp


class NTKOperator:
    """``Theta`` of one network at one input set, as a linear map on ``n x d`` output arrays.

    The hidden features are computed once, so each product costs four GEMMs of size ``n m d``.
    """

    def __init__(self, params: Params, X: torch.Tensor, regime: str) -> None:
        self.params = as_params(params, regime)
        self.X = X.to(dtype=params.W.dtype, device=params.W.device)
        self.regime = regime
        self.features = features(self.params, self.X)
        self.shape = tuple(self.X.shape)

    @property
    def dim(self) -> int:
        """``n * d``, the side of ``Theta``."""
        return self.shape[0] * self.shape[1]

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """``Theta v`` for ``v`` of shape ``(n, d)`` (or flat ``(n*d,)``, returned flat)."""
        flat = v.ndim == 1
        v2 = v.reshape(self.shape) if flat else v
        out = jvp(self.params, self.X, self.regime, vjp(self.params, self.X, self.regime, v2, self.features),
                  self.features)
        return out.reshape(-1) if flat else out

    def decoder_gram(self) -> torch.Tensor:
        """``alpha^2 A A^T`` (``n x n``): the decoder part is this matrix ``⊗ I_d``."""
        A = self.features.A
        return self.params.alpha ** 2 * (A @ A.mT)

    def extremes(self, *, which: str = "both", tol: float = 1e-8, max_iter: int = 500, seed: int = 0) -> Extremes:
        """Smallest/largest eigenvalue of ``Theta``: exact ``eigvalsh`` of the ``n x n`` factor for
        ``decoder``, matrix-free Lanczos otherwise."""
        if self.regime == "decoder":
            ev = torch.linalg.eigvalsh(self.decoder_gram())
            return Extremes(float(ev[0]), float(ev[-1]), 0, True, 0.0, 0.0)
        return lanczos_extremes(self.__matmul__, self.dim, dtype=self.X.dtype, device=self.X.device,
                                which=which, tol=tol, max_iter=max_iter, seed=seed)


def ntk_extremes(params: Params, X: torch.Tensor, regime: str, *, which: str = "both", tol: float = 1e-8,
                 max_iter: int = 500, seed: int = 0) -> Extremes:
    """Extreme eigenvalues of the finite-width NTK of ``params`` at ``X`` (see :class:`NTKOperator`)."""
    return NTKOperator(params, X, regime).extremes(which=which, tol=tol, max_iter=max_iter, seed=seed)
