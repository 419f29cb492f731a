"""The paper's two-layer ReLU autoencoder: parameters, forward map, loss and exact derivatives.

Width ``m``; encoder ``W`` is ``m x d`` (rows ``w_r``), decoder ``V`` is ``d x m`` (columns ``v_r``)::

    f(x) = alpha * V sigma(W x)            U = f(X) = alpha * sigma(X W^T) V^T   (n x d)
    R = U - X                              L = 0.5 * ||R||_F^2

With ``Z = X W^T``, ``A = sigma(Z)``, ``D = 1{Z > 0}`` (all ``n x m``)::

    dL/dV = alpha * R^T A                                   (d x m)
    dL/dW = alpha * ((R V) o D)^T X                         (m x d)
    tied (V = W^T, U = alpha * A W):
    dL/dW = alpha * (A^T R + ((R W^T) o D)^T X)

Regimes: ``weak`` trains ``W`` only, ``joint`` trains ``W`` and ``V``, ``decoder`` trains ``V``
only (linear least squares, the convex baseline), ``tied`` sets ``V = W^T``.

Every function here is pure: tensors in, tensors out, no autograd. Parameter tensors may carry
leading batch dimensions (``W`` of shape ``(..., m, d)``, ``V`` of shape ``(..., d, m)``); ``X``
is ``(n, d)`` or broadcasts against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from aedyn._seed import torch_generator
from aedyn._tensor import as_tensor, resolve_device, resolve_dtype
from aedyn.errors import AedynError

Regime = Literal["weak", "joint", "decoder", "tied"]
REGIMES: tuple[str, ...] = ("weak", "joint", "decoder", "tied")
INIT_SCALES: tuple[str, ...] = ("ntk", "mean-field")
DECODER_INITS: tuple[str, ...] = ("gaussian", "rademacher")


@dataclass(frozen=True)
class Params:
    """Network parameters: encoder ``W`` (m x d), decoder ``V`` (d x m, ``None`` when tied) and
    output scale ``alpha``."""

    W: torch.Tensor
    V: torch.Tensor | None
    alpha: float

    @property
    def width(self) -> int:
        return self.W.shape[-2]

    @property
    def dim(self) -> int:
        return self.W.shape[-1]

    def clone(self) -> Params:
        return Params(self.W.clone(), None if self.V is None else self.V.clone(), self.alpha)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Params:
        dt = None if dtype is None else resolve_dtype(dtype)
        dev = None if device is None else resolve_device(device)
        V = None if self.V is None else self.V.to(device=dev, dtype=dt)
        return Params(self.W.to(device=dev, dtype=dt), V, self.alpha)

    def save(self, path: str | Path) -> None:
        """Write ``W``, ``V`` (if any) and ``alpha`` to an ``.npz`` file."""
        arrays = {"W": self.W.detach().cpu().numpy(), "alpha": np.asarray(self.alpha)}
        if self.V is not None:
            arrays["V"] = self.V.detach().cpu().numpy()
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path, *, dtype: str | torch.dtype = torch.float64,
             device: str | torch.device = "cpu") -> Params:
        """Read parameters written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                W, V, alpha = z["W"], (z["V"] if "V" in z.files else None), float(z["alpha"])
        except (OSError, KeyError, ValueError) as exc:
            raise AedynError(f"{path} is not an aedyn parameter file ({exc}); write one with --save-params") from None
        p = cls(torch.from_numpy(W), None if V is None else torch.from_numpy(V), alpha)
        return p.to(device=device, dtype=dtype)


class Tangent(NamedTuple):
    """A direction in parameter space (a gradient, or the input of a Jacobian-vector product).
    ``None`` marks a layer the regime does not train."""

    W: torch.Tensor | None
    V: torch.Tensor | None


class Features(NamedTuple):
    """Hidden-layer quantities at ``X``: ``A = sigma(X W^T)`` and the boolean mask ``D = 1{X W^T > 0}``."""

    A: torch.Tensor
    D: torch.Tensor


class Evaluation(NamedTuple):
    """Everything one gradient-descent step needs: loss, residual, features and gradients."""

    loss: torch.Tensor
    residual: torch.Tensor
    features: Features
    grads: Tangent


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise AedynError(f"unknown regime {regime!r}; use one of: {', '.join(REGIMES)}")
    return regime


def trained_layers(regime: str) -> tuple[bool, bool]:
    """``(encoder moves, decoder moves)``; for ``tied`` the decoder is ``W^T`` and moves with it."""
    return {"weak": (True, False), "joint": (True, True), "decoder": (False, True),
            "tied": (True, False)}[check_regime(regime)]


def output_scale(scale: str | float, width: int) -> float:
    """``alpha``: ``"ntk"`` -> ``1/sqrt(m)``, ``"mean-field"`` -> ``1/m``, or a positive number."""
    if isinstance(scale, str):
        if scale == "ntk":
            return 1.0 / math.sqrt(width)
        if scale == "mean-field":
            return 1.0 / width
        try:
            scale = float(scale)
        except ValueError:
            raise AedynError(f"unknown init scale {scale!r}; use ntk, mean-field or a positive number") from None
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise AedynError(f"output scale alpha must be a positive finite number; got {scale!r}")
    return float(scale)


def init_params(d: int, width: int, *, regime: str = "joint", seed: int = 0, kappa: float = 1.0,
                nu: float = 1.0, decoder_init: str = "gaussian", scale: str | float = "ntk",
                zero_output: bool = False, dtype: str | torch.dtype = torch.float64,
                device: str | torch.device = "cpu") -> Params:
    """Random initialisation: ``w_r ~ N(0, kappa^2 I_d)``; decoder entries ``N(0, nu^2)``
    (``decoder_init="gaussian"``) or ``nu * Rademacher``; ``alpha`` from ``scale``.

    ``zero_output=True`` makes ``f_0 ≡ 0`` exactly: neurons come in pairs ``(w_r, v_r)``,
    ``(w_r, -v_r)`` (for odd ``m`` the last neuron gets ``v = 0``). Each neuron is still
    distributed as above and the NTK at initialisation has the same expectation.

    Draws happen on the CPU in float64 from a generator seeded with ``seed`` and are then cast and
    moved, so a seed gives the same network on every device. ``regime="tied"`` has no ``V``.
    """
    for value, flag in ((d, "d"), (width, "width")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AedynError(f"{flag} must be a positive integer; got {value!r}")
    check_regime(regime)
    if not (math.isfinite(kappa) and kappa > 0):
        raise AedynError(f"kappa (encoder init scale) must be positive; got {kappa}")
    if not (math.isfinite(nu) and nu >= 0):
        raise AedynError(f"nu (decoder init scale) must be >= 0; got {nu}")
    if decoder_init not in DECODER_INITS:
        raise AedynError(f"unknown decoder init {decoder_init!r}; use one of: {', '.join(DECODER_INITS)}")
    alpha = output_scale(scale, int(width))
    gen = torch_generator(seed, "init")
    W = kappa * torch.randn(width, d, generator=gen, dtype=torch.float64)
    V = None
    if zero_output and regime == "tied":
        raise AedynError("zero_output needs a free decoder; a tied network (V = W^T) cannot start at f_0 = 0")
    if regime != "tied":
        if decoder_init == "gaussian":
            V = nu * torch.randn(d, width, generator=gen, dtype=torch.float64)
        else:
            V = nu * (2.0 * torch.randint(0, 2, (d, width), generator=gen, dtype=torch.float64) - 1.0)
        if zero_output:
            half = width // 2
            W[half:2 * half] = W[:half]
            V[:, half:2 * half] = -V[:, :half]
            if width % 2:
                V[:, -1] = 0.0
    return Params(W, V, alpha).to(device=device, dtype=dtype)


def as_params(params: Params, regime: str) -> Params:
    """Check that ``params`` fit ``regime`` (a decoder unless tied)."""
    check_regime(regime)
    if regime != "tied" and params.V is None:
        raise AedynError(f"regime {regime!r} needs a decoder V, but these parameters have none "
                         "(initialised for 'tied'); call init_params(..., regime=...) again")
    return params


def decoder(params: Params, regime: str) -> torch.Tensor:
    """The decoder actually used: ``V``, or ``W^T`` when tied."""
    return params.W.mT if regime == "tied" else params.V  # type: ignore[return-value]


def features(params: Params, X: torch.Tensor) -> Features:
    """``A = sigma(X W^T)`` and ``D = 1{X W^T > 0}`` (boolean)."""
    A = torch.matmul(X, params.W.mT).relu_()
    return Features(A, A > 0)


def forward(params: Params, X: torch.Tensor, regime: str = "joint") -> torch.Tensor:
    """``U = f(X) = alpha * sigma(X W^T) V^T`` (``V = W^T`` when tied); ``X`` is ``n x d``."""
    X = _input(X, as_params(params, regime))
    A = torch.relu(torch.matmul(X, params.W.mT))
    return params.alpha * torch.matmul(A, decoder(params, regime).mT)


def loss(params: Params, X: torch.Tensor, regime: str = "joint") -> torch.Tensor:
    """``L = 0.5 * ||f(X) - X||_F^2`` (summed over samples; a tensor, batched over leading dims)."""
    X = _input(X, params)
    R = forward(params, X, regime) - X
    return 0.5 * R.square().sum(dim=(-2, -1))


def jvp(params: Params, X: torch.Tensor, regime: str, tangent: Tangent,
        feats: Features | None = None) -> torch.Tensor:
    """Jacobian-vector product ``J t``: the change of ``U`` along the parameter direction ``t``::

        untied: dU = alpha * ((X dW^T) o D) V^T + alpha * A dV^T
        tied:   dU = alpha * ((X dW^T) o D) W   + alpha * A dW

    Layers the regime does not train are ignored.
    """
    X = _input(X, as_params(params, regime))
    A, D = features(params, X) if feats is None else feats
    enc, dec = trained_layers(regime)
    out = torch.zeros(A.shape[:-1] + X.shape[-1:], dtype=A.dtype, device=A.device)
    if enc:
        Zdot = torch.matmul(X, tangent.W.mT).mul_(D)  # type: ignore[union-attr]
        out = out + torch.matmul(Zdot, decoder(params, regime).mT)
        if regime == "tied":
            out = out + torch.matmul(A, tangent.W)
    if dec:
        out = out + torch.matmul(A, tangent.V.mT)  # type: ignore[union-attr]
    return params.alpha * out


def vjp(params: Params, X: torch.Tensor, regime: str, cotangent: torch.Tensor,
        feats: Features | None = None) -> Tangent:
    """Vector-Jacobian product ``J^T c`` for an output-space ``c`` (``n x d``)::

        untied: (alpha * ((c V) o D)^T X,  alpha * c^T A)
        tied:    alpha * (A^T c + ((c W^T) o D)^T X)

    With ``c = R`` this is the gradient of ``L``.
    """
    X = _input(X, as_params(params, regime))
    A, D = features(params, X) if feats is None else feats
    enc, dec = trained_layers(regime)
    c = params.alpha * cotangent
    gW = gV = None
    if enc:
        P = torch.matmul(c, decoder(params, regime)).mul_(D)
        gW = torch.matmul(P.mT, X)
        if regime == "tied":
            gW = gW + torch.matmul(A.mT, c)
    if dec:
        gV = torch.matmul(c.mT, A)
    return Tangent(gW, gV)


def evaluate(params: Params, X: torch.Tensor, regime: str = "joint") -> Evaluation:
    """Loss, residual ``R``, features and the exact gradient ``J^T R`` in one pass (five GEMMs for
    ``joint``); what every gradient-descent step calls."""
    X = _input(X, as_params(params, regime))
    feats = features(params, X)
    R = torch.matmul(feats.A, decoder(params, regime).mT).mul_(params.alpha).sub_(X)
    return Evaluation(0.5 * R.square().sum(dim=(-2, -1)), R, feats, vjp(params, X, regime, R, feats))


def gradients(params: Params, X: torch.Tensor, regime: str = "joint") -> Tangent:
    """``dL/dW`` and ``dL/dV`` (``None`` for a layer the regime does not train)."""
    return evaluate(params, X, regime).grads


def _input(X: torch.Tensor, params: Params) -> torch.Tensor:
    X = as_tensor(X, dtype=params.W.dtype, device=params.W.device, name="X")
    if X.shape[-1] != params.dim:
        raise AedynError(f"X has d = {X.shape[-1]} features but the network expects d = {params.dim}; "
                         "initialise the parameters with the data's d")
    return X
