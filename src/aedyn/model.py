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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from aedyn._check import check_choice, check_count, check_float, check_positive
from aedyn._names import DECODER_INITS, REGIMES
from aedyn._names import INIT_SCALES as INIT_SCALES  # re-exported: the named output scales
from aedyn._seed import torch_generator
from aedyn._tensor import as_tensor, resolve_device, resolve_dtype
from aedyn.errors import AedynError, first_line
from aedyn.files import write_atomic

Regime = Literal["weak", "joint", "decoder", "tied"]


@dataclass(frozen=True)
class Params:
    """Network parameters: encoder ``W`` (m x d), decoder ``V`` (d x m, ``None`` when tied) and
    output scale ``alpha``. ``W`` and ``V`` may carry the same leading batch dimensions.

    NumPy arrays and torch tensors are both accepted (converted once, here); ``V`` takes ``W``'s
    dtype and device. Shapes and ``alpha`` are checked; values are not (a diverged run's
    parameters may hold inf)."""

    W: torch.Tensor
    V: torch.Tensor | None
    alpha: float

    def __post_init__(self) -> None:
        W = as_tensor(self.W, name="W")
        if W.ndim < 2 or W.shape[-1] == 0 or W.shape[-2] == 0:
            raise AedynError(f"W must be m x d (or batched ... x m x d) with m, d >= 1; got shape {tuple(W.shape)}")
        V = None
        if self.V is not None:
            V = as_tensor(self.V, dtype=W.dtype, device=W.device, name="V")
            expected = (*W.shape[:-2], W.shape[-1], W.shape[-2])
            if tuple(V.shape) != expected:
                raise AedynError(f"V must be d x m = {expected} to match W of shape {tuple(W.shape)}; "
                                 f"got {tuple(V.shape)}")
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "V", V)
        object.__setattr__(self, "alpha", check_positive(self.alpha, "alpha (output scale)"))

    @property
    def width(self) -> int:
        return self.W.shape[-2]

    @property
    def dim(self) -> int:
        return self.W.shape[-1]

    def clone(self) -> Params:
        return Params(self.W.clone(), None if self.V is None else self.V.clone(), self.alpha)

    def detach(self) -> Params:
        """The same parameters without autograd history (no copy): what training starts from."""
        return Params(self.W.detach(), None if self.V is None else self.V.detach(), self.alpha)

    @classmethod
    def stack(cls, nets: Sequence[Params]) -> Params:
        """Networks of one shape and one ``alpha`` as one batch (``W`` of shape ``(B, m, d)``): the
        one place parameters are stacked for the batched engine."""
        nets = list(nets)
        if not nets:
            raise AedynError("stack needs at least one network")
        alphas = {p.alpha for p in nets}
        if len(alphas) > 1 or len({tuple(p.W.shape) for p in nets}) > 1 or len({p.V is None for p in nets}) > 1:
            raise AedynError("networks stacked into one batch must share their shapes, their alpha and whether they "
                             "have a decoder")
        V = None if nets[0].V is None else torch.stack([p.V for p in nets])  # type: ignore[misc]
        return cls(torch.stack([p.W for p in nets]), V, nets[0].alpha)

    def network(self, b: int) -> Params:
        """Network ``b`` of a batch, as its own (unbatched) parameters."""
        return Params(self.W[b], None if self.V is None else self.V[b], self.alpha)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Params:
        dt = None if dtype is None else resolve_dtype(dtype)
        dev = None if device is None else resolve_device(device)
        V = None if self.V is None else self.V.to(device=dev, dtype=dt)
        return Params(self.W.to(device=dev, dtype=dt), V, self.alpha)

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write ``W``, ``V`` (if any) and ``alpha`` to an ``.npz`` file, atomically; an existing
        file is refused unless ``force`` (see :mod:`aedyn.files`)."""
        arrays = {"W": self.W.detach().cpu().numpy(), "alpha": np.asarray(self.alpha)}
        if self.V is not None:
            arrays["V"] = self.V.detach().cpu().numpy()
        return write_atomic(path, lambda fh: np.savez(fh, **arrays), force=force, flag="parameter file")

    @classmethod
    def load(cls, path: str | Path, *, dtype: str | torch.dtype = torch.float64,
             device: str | torch.device = "cpu") -> Params:
        """Read parameters written by :meth:`save`; any other file is an :class:`AedynError`."""
        hint = "write one with Params.save or aedyn train --save-params"
        name = repr(str(path))
        if Path(path).is_dir():
            raise AedynError(f"{name} is a folder, not an aedyn parameter file; {hint}")
        try:
            z = np.load(path, allow_pickle=False)
            if isinstance(z, np.ndarray):
                raise AedynError(f"{name} holds a single array (a .npy file), not an aedyn parameter file (.npz with "
                                 f"W, V, alpha); {hint}")
            with z:
                missing = [k for k in ("W", "alpha") if k not in z.files]
                if missing:
                    raise AedynError(f"{name} is not an aedyn parameter file (no {' or '.join(missing)}); {hint}")
                W, V, alpha = z["W"], (z["V"] if "V" in z.files else None), z["alpha"]
        except AedynError:
            raise
        except FileNotFoundError:
            raise AedynError(f"{name} does not exist; {hint}") from None
        except Exception as exc:  # a damaged file fails in many ways: zip, zlib, EOF, format, pickle
            raise AedynError(f"{name} is not a readable aedyn parameter file ({first_line(exc)}); {hint}") from None
        if np.ndim(alpha) != 0 or alpha.dtype.kind not in "iuf":
            raise AedynError(f"{name}: alpha must be a single number; got an array of shape {np.shape(alpha)}")
        return cls(W, V, float(alpha)).to(device=device, dtype=dtype)


class Tangent(NamedTuple):
    """A direction in parameter space (a gradient, or the input of a Jacobian-vector product).
    ``None`` marks a layer the regime does not train."""

    W: torch.Tensor | None
    V: torch.Tensor | None


class Features:
    """Hidden-layer quantities at ``X``: ``A = sigma(X W^T)`` and the boolean mask ``D = 1{X W^T > 0}``,
    made from ``A`` when first asked for (a training step needs only ``A``). Unpacks as ``A, D``."""

    __slots__ = ("A", "_D")

    def __init__(self, A: torch.Tensor, D: torch.Tensor | None = None) -> None:
        self.A = A
        self._D = D

    @property
    def D(self) -> torch.Tensor:
        if self._D is None:
            self._D = self.A > 0
        return self._D

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.A, self.D))


class Evaluation(NamedTuple):
    """Everything one gradient-descent step needs: loss, residual, features (``None`` when a
    workspace was not asked for them) and gradients; with a workspace asked for it, each neuron's
    safe radius (:func:`safe_radius`, from the same pre-activations)."""

    loss: torch.Tensor
    residual: torch.Tensor
    features: Features | None
    grads: Tangent
    radius: torch.Tensor | None = None


def check_regime(regime: str) -> str:
    """``regime`` if it is one of :data:`REGIMES`."""
    return check_choice(regime, REGIMES, "regime")


def trained_layers(regime: str) -> tuple[bool, bool]:
    """``(encoder moves, decoder moves)``; for ``tied`` the decoder is ``W^T`` and moves with it."""
    return {"weak": (True, False), "joint": (True, True), "decoder": (False, True),
            "tied": (True, False)}[check_regime(regime)]


def output_scale(scale: str | float, width: int) -> float:
    """``alpha``: ``"ntk"`` -> ``1/sqrt(m)``, ``"mean-field"`` -> ``1/m``, or a positive number
    (also as a string, e.g. ``"0.01"``)."""
    if isinstance(scale, str):
        if scale == "ntk":
            return 1.0 / math.sqrt(width)
        if scale == "mean-field":
            return 1.0 / width
        try:
            scale = float(scale)
        except ValueError:
            raise AedynError(f"unknown init scale {scale!r}; use ntk, mean-field or a positive number") from None
    return check_positive(scale, "output scale alpha (--init-scale)")


def check_init(regime: str, width: int, *, kappa: float = 1.0, nu: float = 1.0, decoder_init: str = "gaussian",
               scale: str | float = "ntk") -> tuple[int, float, float, float]:
    """Validate initialisation options without drawing anything; returns ``(width, kappa, nu, alpha)``.

    ``kappa > 0`` and ``nu >= 0`` are finite; ``weak`` training needs ``nu > 0`` (with a zero
    decoder the encoder gets no gradient and the NTK is zero)."""
    width = check_count(width, "width")
    kappa, nu = check_scales(regime, kappa, nu)
    check_choice(decoder_init, DECODER_INITS, "decoder init")
    return width, kappa, nu, output_scale(scale, width)


def check_scales(regime: str, kappa: float = 1.0, nu: float = 1.0) -> tuple[float, float]:
    """``kappa > 0`` and ``nu >= 0``, finite; ``weak`` needs ``nu > 0`` (a zero decoder gives the
    encoder no gradient and makes the weak NTK zero)."""
    check_regime(regime)
    kappa = check_positive(kappa, "kappa (encoder init scale)")
    nu = check_float(nu, "nu (decoder init scale)", low=0.0)
    if regime == "weak" and nu == 0:
        raise AedynError("weak training with nu = 0 has a zero decoder: the encoder gets no gradient and the NTK is "
                         "zero; use nu > 0 or --regime joint")
    return kappa, nu


def init_params(d: int, width: int, *, regime: str = "joint", seed: int = 0, kappa: float = 1.0,
                nu: float = 1.0, decoder_init: str = "gaussian", scale: str | float = "ntk",
                zero_output: bool = False, dtype: str | torch.dtype = torch.float64,
                device: str | torch.device = "cpu") -> Params:
    """Random initialisation: ``w_r ~ N(0, kappa^2 I_d)``; decoder entries ``N(0, nu^2)``
    (``decoder_init="gaussian"``) or ``nu * Rademacher``; ``alpha`` from ``scale``.

    ``zero_output=True`` makes ``f_0 ≡ 0`` exactly: neurons come in pairs ``(w_r, v_r)``,
    ``(w_r, -v_r)`` (for odd ``m`` the last neuron gets ``v = 0``). Each neuron is still
    distributed as above and the NTK at initialisation has the same expectation.

    Draws come from the ``init`` stream of ``seed`` (:mod:`aedyn._seed`; independent of the data
    stream of the same seed), on the CPU in float64, and are then cast and moved, so a seed gives
    the same network on every device. ``regime="tied"`` has no ``V``. Weights that overflow the
    requested dtype (``kappa = 1e200`` in float32) are an :class:`AedynError`.
    """
    d = check_count(d, "d")
    width, kappa, nu, alpha = check_init(regime, width, kappa=kappa, nu=nu, decoder_init=decoder_init, scale=scale)
    if zero_output and regime == "tied":
        raise AedynError("zero_output needs a free decoder; a tied network (V = W^T) cannot start at f_0 = 0")
    gen = torch_generator(seed, "init")
    W = kappa * torch.randn(width, d, generator=gen, dtype=torch.float64)
    V = None
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
    params = Params(W, V, alpha).to(device=device, dtype=dtype)
    for name, t in (("W", params.W), ("V", params.V)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise AedynError(f"the initial {name} overflows {str(params.W.dtype).removeprefix('torch.')} "
                             f"(kappa = {kappa:g}, nu = {nu:g}); use a smaller scale or float64")
    return params


def as_params(params: Params, regime: str) -> Params:
    """Check that ``params`` fit ``regime``: a decoder ``V`` unless tied, and none when tied (the
    tied decoder is ``W^T``, as :func:`init_params` makes it; a ``V`` there would be ignored)."""
    check_regime(regime)
    check_params(params)
    if regime != "tied" and params.V is None:
        raise AedynError(f"regime {regime!r} needs a decoder V, but these parameters have none "
                         "(initialised for 'tied'); call init_params(..., regime=...) again")
    if regime == "tied" and params.V is not None:
        raise AedynError("regime 'tied' uses V = W^T, but these parameters carry a decoder V of their own, which it "
                         "would ignore; pass Params(W, None, alpha), as init_params(..., regime='tied') makes")
    return params


def check_params(params: Any) -> Params:
    """``params`` if it is a :class:`Params`."""
    if not isinstance(params, Params):
        raise AedynError(f"params must be an aedyn Params (from init_params or Params(W, V, alpha)); "
                         f"got {type(params).__name__}")
    return params


def check_input(X: Any, params: Params, *, check_finite: bool = True, name: str = "X",
                detach: bool = False) -> torch.Tensor:
    """The network's input: ``X`` (NumPy or torch, ``n x d`` or batched ``... x n x d``) as a tensor
    of the parameters' dtype and device whose last dimension is the network's ``d``; NaN and inf
    are refused unless ``check_finite=False`` (callers that checked once and loop); ``detach``
    drops its autograd history (see :func:`aedyn._tensor.as_tensor`)."""
    check_params(params)
    X = as_tensor(X, dtype=params.W.dtype, device=params.W.device, name=name, finite=check_finite, detach=detach)
    if X.ndim < 2:
        raise AedynError(f"{name} must be n x d (one sample per row); got shape {tuple(X.shape)}")
    if X.shape[-1] != params.dim:
        raise AedynError(f"{name} has d = {X.shape[-1]} features but the network expects d = {params.dim}; "
                         "initialise the parameters with the data's d")
    return X


def decoder(params: Params, regime: str) -> torch.Tensor:
    """The decoder actually used: ``V``, or ``W^T`` when tied."""
    return params.W.mT if regime == "tied" else params.V  # type: ignore[return-value]


def features(params: Params, X: torch.Tensor) -> Features:
    """``A = sigma(X W^T)`` and ``D = 1{X W^T > 0}`` (boolean, made when first used); ``X`` a checked tensor."""
    return Features(torch.matmul(X, params.W.mT).relu_())


def forward(params: Params, X: Any, regime: str = "joint", *, check_finite: bool = True) -> torch.Tensor:
    """``U = f(X) = alpha * sigma(X W^T) V^T`` (``V = W^T`` when tied); ``X`` is ``n x d``."""
    X = check_input(X, as_params(params, regime), check_finite=check_finite)
    A = torch.relu(torch.matmul(X, params.W.mT))
    return params.alpha * torch.matmul(A, decoder(params, regime).mT)


def loss(params: Params, X: Any, regime: str = "joint", *, check_finite: bool = True) -> torch.Tensor:
    """``L = 0.5 * ||f(X) - X||_F^2`` (summed over samples; a tensor, batched over leading dims)."""
    X = check_input(X, as_params(params, regime), check_finite=check_finite)
    R = forward(params, X, regime, check_finite=False) - X
    return 0.5 * R.square().sum(dim=(-2, -1))


def jvp(params: Params, X: Any, regime: str, tangent: Tangent, feats: Features | None = None, *,
        check_finite: bool = True) -> torch.Tensor:
    """Jacobian-vector product ``J t``: the change of ``U`` along the parameter direction ``t``::

        untied: dU = alpha * ((X dW^T) o D) V^T + alpha * A dV^T
        tied:   dU = alpha * ((X dW^T) o D) W   + alpha * A dW

    Layers the regime does not train are ignored; the trained ones need their component of ``t``.
    """
    X = check_input(X, as_params(params, regime), check_finite=check_finite)
    if not isinstance(tangent, Tangent):
        raise AedynError(f"the tangent must be an aedyn Tangent(W, V) (None for a layer the regime does not train); "
                         f"got {type(tangent).__name__}")
    A, D = features(params, X) if feats is None else feats
    enc, dec = trained_layers(regime)
    tW = _direction(tangent.W, params.W, "tangent.W", check_finite) if enc else None
    tV = _direction(tangent.V, params.W.mT, "tangent.V", check_finite) if dec else None
    out = torch.zeros(A.shape[:-1] + X.shape[-1:], dtype=A.dtype, device=A.device)
    if tW is not None:
        Zdot = torch.matmul(X, tW.mT).mul_(D)
        out = out + torch.matmul(Zdot, decoder(params, regime).mT)
        if regime == "tied":
            out = out + torch.matmul(A, tW)
    if tV is not None:
        out = out + torch.matmul(A, tV.mT)
    return params.alpha * out


def vjp(params: Params, X: Any, regime: str, cotangent: Any, feats: Features | None = None, *,
        check_finite: bool = True) -> Tangent:
    """Vector-Jacobian product ``J^T c`` for an output-space ``c`` (``n x d``, or ``b x n x d``)::

        untied: (alpha * ((c V) o D)^T X,  alpha * c^T A)
        tied:    alpha * (A^T c + ((c W^T) o D)^T X)

    With ``c = R`` this is the gradient of ``L``.
    """
    X = check_input(X, as_params(params, regime), check_finite=check_finite)
    cot = check_input(cotangent, params, check_finite=check_finite, name="cotangent")
    if cot.shape[-2] != X.shape[-2]:
        raise AedynError(f"the cotangent has {cot.shape[-2]} rows but X has {X.shape[-2]} samples; it must be an "
                         "output-space array shaped like f(X)")
    A = (features(params, X) if feats is None else feats).A
    return _backward(params.alpha * cot, A, X, decoder(params, regime), regime)


WIDE = 32
"""From this input dimension ``d`` on, ``dL/dW`` is formed as ``P^T X`` in ``W``'s own layout; below
it as ``(X^T P)^T``, the ``d x m`` product, which is 2-4x faster for skinny ``d`` (and whose
transposed layout costs nothing in the update at that size). At ``d = 256`` (P1) the two products
cost the same and the transposed update of ``W`` would cost 5% of a step."""


def _grad_w_layout(X: torch.Tensor) -> bool:
    """``True`` when ``dL/dW`` is formed transposed, ``(X^T P)^T`` (see :data:`WIDE`)."""
    return X.shape[-1] < WIDE


def _backward(c: torch.Tensor, A: torch.Tensor, X: torch.Tensor, Vd: torch.Tensor, regime: str, *,
              G: torch.Tensor | None = None, gW: torch.Tensor | None = None, gV: torch.Tensor | None = None,
              accumulate: bool = False) -> Tangent:
    """``J^T`` applied to ``c = alpha * cotangent`` (see :func:`vjp`) at activations ``A``, ``Vd``
    the decoder in use. ``P = (c Vd) o D`` is formed in ``G`` with ReLU's derivative applied in place
    as autograd's ReLU backward applies it (``threshold_backward``: no mask turned into numbers);
    ``dL/dW`` in the layout :data:`WIDE` picks (``gW`` is then ``(..., d, m)``, the transpose, for
    skinny ``d``, else ``(..., m, d)``); for ``tied`` the decoder's part, ``c^T A`` (or ``A^T c``),
    joins it. ``G``, ``gW`` and ``gV``: buffers to write into, or ``None`` to allocate; with
    ``accumulate`` (2-D: one block of samples) the products are added to ``gW`` and ``gV`` (the sums
    over samples split by block)."""
    enc, dec = trained_layers(regime)
    grad_W = grad_V = None
    if enc:
        P = torch.matmul(c, Vd, out=G)
        torch.ops.aten.threshold_backward.grad_input(P, A, 0.0, grad_input=P)
        transposed = _grad_w_layout(X)
        left, right = (X.mT, P) if transposed else (P.mT, X)
        if accumulate:
            gW.addmm_(left, right)  # type: ignore[union-attr]
        else:
            gW = torch.matmul(left, right, out=gW)
        if regime == "tied":  # V = W^T: the decoder's gradient c^T A joins the encoder's, transposed
            left, right = (c.mT, A) if transposed else (A.mT, c)
            dims = {gW.ndim, left.ndim, right.ndim}  # type: ignore[union-attr]
            if dims == {2}:
                gW.addmm_(left, right)  # type: ignore[union-attr]
            elif dims == {3} and gW.shape[0] == left.shape[0] == right.shape[0]:  # type: ignore[union-attr]
                gW.baddbmm_(left, right)  # type: ignore[union-attr]
            else:  # broadcast batch dimensions: a new tensor
                gW = gW + torch.matmul(left, right)
        grad_W = gW.mT if transposed else gW  # type: ignore[union-attr]
    if dec:
        grad_V = gV.addmm_(c.mT, A) if accumulate else torch.matmul(c.mT, A, out=gV)  # type: ignore[union-attr]
    return Tangent(grad_W, grad_V)


def evaluate(params: Params, X: Any, regime: str = "joint", *, check_finite: bool = True,
             with_gradient: bool = True, workspace: Workspace | None = None, with_features: bool = True,
             with_radius: bool = False) -> Evaluation:
    """Loss, residual ``R``, features and the exact gradient ``J^T R`` in one pass (five GEMMs for
    ``joint``); what every gradient-descent step calls (with ``check_finite=False`` after one check).
    ``with_gradient=False`` skips the gradient (``grads`` is ``Tangent(None, None)``): a run's last
    evaluation needs only the loss and features. With a :class:`Workspace` (a batch, ``W`` of shape
    ``(B, m, d)``) everything is written into its buffers, chunk by chunk of networks, and the
    returned tensors are views of them, valid until the next evaluation in that workspace, and
    ``features`` is ``None`` unless ``with_features`` (a step that records needs them).
    ``with_radius``: also each neuron's :func:`safe_radius`, from the same pre-activations."""
    X = check_input(X, as_params(params, regime), check_finite=check_finite)
    if workspace is not None:
        return workspace.evaluate(params, X, regime, with_gradient, with_features, with_radius)
    return _evaluate(params.W, decoder(params, regime), params.alpha, X, regime, with_gradient,
                     with_radius=with_radius)


def _evaluate(W: torch.Tensor, Vd: torch.Tensor, alpha: float, X: torch.Tensor, regime: str, with_gradient: bool, *,
              A: torch.Tensor | None = None, R: torch.Tensor | None = None,
              G: torch.Tensor | None = None, gW: torch.Tensor | None = None,
              gV: torch.Tensor | None = None, with_radius: bool = False) -> Evaluation:
    """:func:`evaluate` on tensors: ``A = relu(X W^T)``, ``R = alpha A Vd^T - X``, ``L = ||R||^2 / 2``
    and :func:`_backward` of ``alpha R``, into the buffers given (``None``: allocate); with
    ``with_radius`` also the safe radius from ``X W^T`` before the ReLU."""
    Z = torch.matmul(X, W.mT, out=A)
    radius = _radius(Z, X) if with_radius else None
    A = Z.relu_()
    R = torch.matmul(A, Vd.mT, out=R).mul_(alpha).sub_(X)
    grads = _backward(alpha * R, A, X, Vd, regime, G=G, gW=gW, gV=gV) if with_gradient else \
        Tangent(None, None)
    return Evaluation(0.5 * R.square().sum(dim=(-2, -1)), R, Features(A), grads, radius)


def gradients(params: Params, X: Any, regime: str = "joint", *, check_finite: bool = True) -> Tangent:
    """``dL/dW`` and ``dL/dV`` (``None`` for a layer the regime does not train)."""
    return evaluate(params, X, regime, check_finite=check_finite).grads


BLOCK_BYTES = 8 * 2**20
"""On the CPU a :class:`Workspace` runs a network's step in blocks of samples whose two ``n x m``
slabs (activations ``A`` and back-propagated ``P``) take at most this many bytes, in two buffers of
that size reused by every block and network: every product of the step then finds its operands
in the cache the one before left them in (about half the last-level cache of a small machine; the
sums over samples are split by block). Measured (one thread, float64, d = 8): a whole network at
n = 256, m = 1024 (4 MB) is as fast as any split; at n = 128, m = 16384 the blocks of 32 samples
halve the time of a whole network; at n = 512, m = 8192 blocks of 64 save 53%. For wide inputs
(``d >= WIDE``) the products are compute-bound and a whole network is faster (P1: 20%)."""


ONE_BY_ONE_BYTES = 2**20
"""On the CPU a :class:`Workspace` evaluates network by network once a network's ``n x m`` slab takes
this many bytes; below, the batched products' fewer calls win (one thread, float64, d = 8: batched
2.4x faster at n m = 256 .. 4096, one by one 1.4x faster at 131072 and 1.8x at 262144)."""


class Workspace:
    """The buffers of a batch's gradient-descent steps, reused from step to step (no large
    allocation per step), and how the batch is evaluated: on the CPU, for networks of at least
    :data:`ONE_BY_ONE_BYTES`, one network at a time with plain matrix products (for the skinny
    products of small ``d`` the batched ones are up to 2.5x slower) in blocks of samples
    (:data:`BLOCK_BYTES`); for smaller ones and on a GPU the whole batch at once (fewer calls; on a
    GPU one launch per product is what counts). Made for the batch's first size; a batch that has dropped
    networks is evaluated in the leading rows. The ``n x m`` activations of the whole batch are
    kept only when asked for (``with_features``: a recording step). ``batched`` picks the path
    (default: by the device), ``block`` the samples per block of the CPU path."""

    def __init__(self, params: Params, X: torch.Tensor, regime: str, *, block: int | None = None,
                 batched: bool | None = None) -> None:
        if params.W.ndim != 3:
            raise AedynError(f"a workspace is for a batch of networks, W of shape (B, m, d); got "
                             f"{tuple(params.W.shape)}")
        B, m, d = params.W.shape
        n = X.shape[-2]
        self.dtype, self.device = params.W.dtype, params.W.device
        enc, dec = trained_layers(regime)
        self.regime, self.shape = regime, (B, n, m)
        if batched is None:  # small networks: the batched products' fewer calls win (measured crossover ~1 MiB)
            batched = self.device.type != "cpu" or n * m * params.W.element_size() < ONE_BY_ONE_BYTES
        self.one_by_one = not batched
        if block is None:  # wide inputs make the products compute-bound: big products then beat cached blocks
            small = self.one_by_one and d < WIDE
            block = max(16, BLOCK_BYTES // (2 * m * params.W.element_size())) if small else n
        self.block = min(n, check_count(block, "block"))
        rows = self.block if self.one_by_one else n
        lead = () if self.one_by_one else (B,)
        self.A: torch.Tensor | None = None  # the batch's activations, when a step asks for them
        self.Ab = self._new(*lead, rows, m)
        self.Gb = self._new(*lead, rows, m) if enc else None
        self.R = self._new(B, n, d)
        self.transposed = _grad_w_layout(X)
        self.gW = (self._new(B, d, m) if self.transposed else self._new(B, m, d)) if enc else None
        self.gV = self._new(B, d, m) if dec else None

    def _new(self, *shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=self.dtype, device=self.device)

    def evaluate(self, params: Params, X: torch.Tensor, regime: str, with_gradient: bool,
                 with_features: bool = True, with_radius: bool = False) -> Evaluation:
        """:func:`evaluate` of the batch ``params`` (at most the workspace's size) into the buffers;
        ``features`` is ``None`` unless ``with_features``; ``radius`` (each neuron's safe radius,
        from the pre-activations the step computes anyway) only ``with_radius``."""
        if regime != self.regime:
            raise AedynError(f"this workspace is for regime {self.regime}, not {regime}")
        b = params.W.shape[0]
        Vd = decoder(params, regime)
        if with_features and self.A is None:
            self.A = self.Ab if not self.one_by_one else self._new(*self.shape)
        if not self.one_by_one:
            cut = lambda t: None if t is None else t[:b]  # noqa: E731
            ev = _evaluate(params.W, Vd, params.alpha, X, regime, with_gradient, A=self.Ab[:b], R=self.R[:b],
                           G=cut(self.Gb), gW=cut(self.gW), gV=cut(self.gV), with_radius=with_radius)
            return ev if with_features else ev._replace(features=None)
        n, step = X.shape[-2], self.block
        radius = self._new(b, params.W.shape[1]) if with_radius else None
        for j in range(b):
            Xj, W, V = X if X.ndim == 2 else X[j], params.W[j], Vd[j]
            for s in range(0, n, step):
                rows = slice(s, min(s + step, n))
                x = Xj[rows]
                A = self.A[j, rows] if with_features else self.Ab[:x.shape[0]]  # type: ignore[index]
                torch.matmul(x, W.mT, out=A)
                if radius is not None:
                    part = _radius(A, x)
                    radius[j] = part if s == 0 else torch.minimum(radius[j], part)
                A.relu_()
                R = torch.matmul(A, V.mT, out=self.R[j, rows]).mul_(params.alpha).sub_(x)
                if with_gradient:
                    _backward(params.alpha * R, A, x, V, regime, G=None if self.Gb is None else self.Gb[:x.shape[0]],
                              gW=None if self.gW is None else self.gW[j],
                              gV=None if self.gV is None else self.gV[j], accumulate=s > 0)
        loss = 0.5 * self.R[:b].square().sum(dim=(-2, -1))
        grads = Tangent(None, None)
        if with_gradient:
            enc, dec = trained_layers(regime)
            gW = None if not enc else self.gW[:b].mT if self.transposed else self.gW[:b]  # type: ignore[index]
            grads = Tangent(gW, self.gV[:b] if dec else None)  # type: ignore[index]
        return Evaluation(loss, self.R[:b], Features(self.A[:b]) if with_features else None, grads,  # type: ignore[index]
                          radius)


def _direction(t: Any, like: torch.Tensor, name: str, check_finite: bool) -> torch.Tensor:
    """A parameter-space direction shaped like ``like`` (last two dims; batch dims broadcast)."""
    if t is None:
        raise AedynError(f"{name} is needed: the regime trains that layer")
    out = as_tensor(t, dtype=like.dtype, device=like.device, name=name, finite=check_finite)
    if out.shape[-2:] != like.shape[-2:]:
        raise AedynError(f"{name} must have shape {tuple(like.shape[-2:])} (last two dims); got {tuple(out.shape)}")
    return out


def safe_radius(params: Params, X: Any) -> torch.Tensor:
    """Each neuron's safe radius, ``r_r = min_i |w_r . x_i| / ||x_i||`` over the nonzero inputs
    (shape ``(..., m)``, batched like ``W``): no move ``||w_r' - w_r|| < r_r`` can flip any of that
    neuron's activation patterns ``1{w_r . x_i > 0}``, since ``|(w_r' - w_r) . x_i| <= ||w_r' -
    w_r|| ||x_i|| < |w_r . x_i|``, and a move of any length above ``r_r`` toward the nearest
    hyperplane ``w . x_i = 0`` does flip one. ``inf`` when every input is zero (no pattern can
    flip); 0 for a neuron on a hyperplane. ``X`` needs at least one sample."""
    X = check_input(X, params)
    if X.shape[-2] == 0:
        raise AedynError(f"X has no samples (shape {tuple(X.shape)}); the safe radius is a minimum over the inputs: "
                         "give at least one")
    return _radius(torch.matmul(X, params.W.mT), X)


def _radius(Z: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """:func:`safe_radius` from the pre-activations ``Z = X W^T`` (``(..., n, m)``)."""
    norms = X.norm(dim=-1, keepdim=True)  # (..., n, 1)
    ratio = Z.abs() / torch.where(norms > 0, norms, 1.0)
    return torch.where(norms > 0, ratio, math.inf).amin(dim=-2)
