"""Predictions of the NTK limit, and measures of memorisation.

Linearised discrete gradient descent with the infinite-width kernel ``K = K_reg`` (``n x n``;
the NTK is ``K ⊗ I_d``, so every output coordinate evolves on its own)::

    R(k) = (I - eta K)^k R(0),        R(0) = f_0(X) - X   (n x d)

computed exactly for any ``k`` through one eigendecomposition ``K = Q diag(lambda) Q^T``. On new
inputs, after ``k`` steps (kernel regression with the NTK at ``k = infinity``)::

    f_k(x) = f_0(x) + k(x, X) Q diag(phi_k(lambda)) Q^T (X - f_0(X)),
    phi_k(lambda) = (1 - (1 - eta lambda)^k) / lambda    (-> k eta as lambda -> 0),
    phi_inf(lambda) = 1 / lambda.

Stability policy: no jitter is added. For finite ``k``, ``phi_k`` is evaluated with
``expm1``/``log1p`` and is finite even for a singular ``K``. At convergence, eigenvalues at or
below ``rcond * lambda_max`` are treated as zero (the pseudo-inverse: the minimum-norm
interpolant); the number dropped and the condition number are reported and a warning is issued,
never a silent NaN. The default ``rcond`` is ``n * eps`` of the working dtype (NumPy's
``pinv``/``matrix_rank`` convention: ``eigh`` cannot tell smaller eigenvalues from zero), so a
float32 kernel with a duplicated sample is caught as singular where ``1e-12`` would not be.

The tied network has no prediction here: its output at initialisation grows like ``sqrt(m)``
(docs/math/tied.md), so gradient descent moves its weights by ``O(1)`` of their size and
training cannot stay in the lazy, linearised regime these predictions describe.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aedyn._check import check_float, check_int, check_positive
from aedyn._tensor import as_tensor
from aedyn.errors import AedynError, AedynWarning
from aedyn.gd import TrainResult, fit_linear_rate
from aedyn.kernels import regime_kernel
from aedyn.model import forward
from aedyn.ntk import NTKOperator

Map = Callable[[torch.Tensor], torch.Tensor]


def _phi(lam: torch.Tensor, eta: float, steps: int | None, rcond: float) -> tuple[torch.Tensor, int]:
    """``phi_k(lambda)`` (see the module docstring) and how many eigenvalues were treated as zero."""
    top = float(lam.abs().max()) if lam.numel() else 0.0
    if steps is None:
        small = lam <= rcond * top
        phi = torch.where(small, torch.zeros_like(lam), 1.0 / torch.where(small, torch.ones_like(lam), lam))
        return phi, int(small.sum())
    x = eta * lam
    inside = (x >= 0) & (x < 1)
    # 1 - (1 - x)^k = -expm1(k log1p(-x)) is accurate for small x; outside [0, 1) use the power directly
    one_minus_pow = torch.where(inside, -torch.expm1(steps * torch.log1p(-x.clamp(0, 1 - 1e-16))),
                                1.0 - torch.pow(1.0 - x, steps))
    tiny = lam.abs() <= 1e-300
    phi = torch.where(tiny, torch.full_like(lam, steps * eta), one_minus_pow / torch.where(tiny, 1.0, lam))
    return phi, 0


class LinearisedGD:
    """Linearised discrete GD ``R(k) = (I - eta K)^k R(0)`` for a symmetric PSD ``K`` (``n x n``)."""

    def __init__(self, K: Any, eta: float) -> None:
        self.eta = check_positive(eta, "eta")
        K = as_tensor(K, name="K", finite=True, detach=True)
        if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
            raise AedynError(f"K must be a square n x n kernel matrix; got shape {tuple(K.shape)}")
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(0.5 * (K + K.mT))
        if self.eta * float(self.eigenvalues[-1]) >= 2:
            warnings.warn(AedynWarning(
                f"eta * lambda_max(K) = {self.eta * float(self.eigenvalues[-1]):.3g} >= 2: the linearised "
                f"dynamics diverge; use eta < {2 / float(self.eigenvalues[-1]):.3g}"), stacklevel=2)

    @property
    def contraction(self) -> float:
        """``max_i |1 - eta lambda_i|``: the per-step contraction bound of ``||R||_F``."""
        return float((1 - self.eta * self.eigenvalues).abs().max())

    def _residual0(self, R0: Any) -> torch.Tensor:
        Q = self.eigenvectors
        R0 = as_tensor(R0, dtype=Q.dtype, device=Q.device, name="R0", finite=True, detach=True)
        if R0.ndim != 2 or R0.shape[0] != Q.shape[0]:
            raise AedynError(f"R0 must be n x d with n = {Q.shape[0]} (the kernel's size); got shape {tuple(R0.shape)}")
        return R0

    def residual(self, R0: Any, steps: int) -> torch.Tensor:
        """``R(k) = Q diag((1 - eta lambda)^k) Q^T R(0)``."""
        R0 = self._residual0(R0)
        Q = self.eigenvectors
        factor = torch.pow(1 - self.eta * self.eigenvalues, check_int(steps, "steps", minimum=0))
        return Q @ (factor[:, None] * (Q.mT @ R0))

    def _energy(self, R0: Any, covariance: Any | None) -> torch.Tensor:
        """The energy of the (expected) residual in each eigenvector ``q_i`` of ``K``:
        ``||q_i^T R(0)||^2``, plus ``d q_i^T C q_i`` when ``R(0)``'s columns also carry independent
        ``N(0, C)`` noise (``C = covariance``, ``n x n``)."""
        R0 = self._residual0(R0)
        Q = self.eigenvectors
        energy = (Q.mT @ R0).square().sum(dim=1)
        if covariance is not None:
            C = as_tensor(covariance, dtype=Q.dtype, device=Q.device, name="covariance", finite=True,
                          detach=True)
            if tuple(C.shape) != (Q.shape[0], Q.shape[0]):
                raise AedynError(f"covariance must be n x n with n = {Q.shape[0]}; got shape {tuple(C.shape)}")
            energy = energy + R0.shape[1] * ((C @ Q) * Q).sum(dim=0)
        return energy

    def steps_to(self, R0: Any, target: float, *, covariance: Any | None = None, limit: int = 10**12) -> int | None:
        """The least ``k`` with ``L(k) <= target * L(0)``, exactly (the loss of the linearised
        dynamics, ``0.5 sum_i (1 - eta lambda_i)^(2k) e_i`` with ``e_i`` the energy of ``R(0)`` in
        eigenvector ``q_i``, does not increase while ``eta lambda_max <= 2``: doubling, then
        bisection on ``k``); ``None`` when even ``limit`` steps do not reach it (a singular ``K``
        with energy in its null space never does).

        With ``covariance = C`` the residual is ``R(0) + E``, ``E``'s ``d`` columns independent
        ``N(0, C)``, and the loss is its expectation, ``e_i = ||q_i^T R(0)||^2 + d q_i^T C q_i``:
        for a network initialised with random outputs ``f_0`` (covariance ``C`` per coordinate,
        :func:`aedyn.kernels.init_output_kernel`), ``R(0) = -X``."""
        target = check_float(target, "target (relative loss)", low=0.0, high=1.0, low_open=True, high_open=True)
        limit = check_int(limit, "limit", minimum=1)
        energy = self._energy(R0, covariance).double()
        log_base = torch.log((1 - self.eta * self.eigenvalues.double()).abs().clamp_min(1e-300))
        total = float(energy.sum())

        def reached(k: int) -> bool:
            return float((torch.exp(2 * k * log_base) * energy).sum()) <= target * total

        if reached(0):
            return 0
        hi = 1
        while not reached(hi):
            if hi >= limit:
                return None
            hi = min(2 * hi, limit)
        lo = hi // 2  # not reached at lo (lo = 0 checked above)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if reached(mid) else (mid, hi)
        return hi

    def loss_curve(self, R0: Any, steps: int, *, covariance: Any | None = None, start: int = 0) -> np.ndarray:
        """``L(k) = 0.5 ||R(k)||_F^2`` for ``k = start..steps``, from the eigen-energies of ``R(0)``
        (with ``covariance``: the expected loss, as in :meth:`steps_to`). Evaluated in chunks of
        steps, so a long window costs no more memory than a short one."""
        steps = check_int(steps, "steps", minimum=0)
        start = check_int(start, "start", minimum=0)
        energy = self._energy(R0, covariance)
        log_base = torch.log((1 - self.eta * self.eigenvalues).abs().clamp_min(1e-300))
        chunk = max(1, 2**22 // max(1, energy.numel()))  # about 32 MB of float64 per chunk
        parts = []
        for first in range(start, steps + 1, chunk):
            k = torch.arange(first, min(first + chunk, steps + 1), dtype=energy.dtype, device=energy.device)
            parts.append((0.5 * torch.exp(2 * k[:, None] * log_base[None, :]) @ energy).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class NTKPredictor:
    """The network in the NTK limit after ``steps`` of GD with step ``eta`` (``steps=None``:
    at convergence, i.e. kernel regression with ``K_reg``), as a map on new inputs.

    ``f0`` is the network at initialisation as a map (``None``: ``f_0 ≡ 0``, e.g. from
    ``init_params(..., zero_output=True)``). Call it on an ``n' x d`` array. ``rcond=None`` is
    ``n * eps`` of ``X_train``'s dtype (see the module docstring).
    """

    X_train: torch.Tensor
    regime: str = "joint"
    kappa: float = 1.0
    nu: float = 1.0
    f0: Map | None = None
    eta: float | None = None
    steps: int | None = None
    rcond: float | None = None
    coefficients: torch.Tensor = field(init=False)
    condition_number: float = field(init=False)
    dropped: int = field(init=False)

    def __post_init__(self) -> None:
        if self.regime == "tied":
            raise AedynError("no NTK-limit prediction for tied networks: their output at initialisation grows like "
                             "sqrt(m), so training moves the weights by O(1) and cannot stay lazy; train one instead")
        self.X_train = as_tensor(self.X_train, name="X_train", finite=True, detach=True)
        if self.X_train.ndim != 2 or self.X_train.shape[0] == 0:
            raise AedynError(f"X_train must be a non-empty n x d matrix; got shape {tuple(self.X_train.shape)}")
        if self.eta is not None:
            self.eta = check_positive(self.eta, "eta")
        if self.steps is not None:
            if self.eta is None:
                raise AedynError("a prediction after k steps needs the step size eta")
            self.steps = check_int(self.steps, "steps", minimum=0)
        if self.f0 is not None and not callable(self.f0):
            raise AedynError(f"f0 must be a map (callable) from inputs to outputs, or None; "
                             f"got {type(self.f0).__name__}")
        eps = torch.finfo(self.X_train.dtype).eps
        self.rcond = (self.X_train.shape[0] * eps if self.rcond is None
                      else check_float(self.rcond, "rcond", low=0.0, high=1.0, high_open=True))
        K = regime_kernel(self.X_train, self.regime, kappa=self.kappa, nu=self.nu)
        lam, Q = torch.linalg.eigh(K)
        lo, hi = float(lam[0]), float(lam[-1])
        self.condition_number = hi / lo if lo > 0 else math.inf
        phi, self.dropped = _phi(lam, self.eta or 0.0, self.steps, self.rcond)
        if self.dropped:
            warnings.warn(AedynWarning(
                f"K_reg is singular to rcond = {self.rcond:g} (condition number {self.condition_number:.3g}; "
                f"{self.dropped} eigenvalue(s) treated as zero): the converged prediction is the minimum-norm "
                "interpolant"), stacklevel=2)
        target = self.X_train - self._f0(self.X_train)
        self.coefficients = Q @ (phi[:, None] * (Q.mT @ target))
        if not bool(torch.isfinite(self.coefficients).all()):
            raise AedynError("the kernel prediction is not finite; check eta (eta * lambda_max(K) must be < 2) "
                             "and the data")

    def _f0(self, Z: torch.Tensor) -> torch.Tensor:
        if self.f0 is None:
            return torch.zeros_like(Z)
        out = as_tensor(self.f0(Z), dtype=Z.dtype, device=Z.device, name="f0(X)", detach=True)
        if out.shape != Z.shape:
            raise AedynError(f"f0 must map an n x d array to an n x d array; it returned shape {tuple(out.shape)}")
        return out

    def __call__(self, X_new: Any) -> torch.Tensor:
        Z = as_tensor(X_new, dtype=self.X_train.dtype, device=self.X_train.device, name="X_new", finite=True,
                      detach=True)
        if Z.ndim != 2 or Z.shape[1] != self.X_train.shape[1]:
            raise AedynError(f"X_new must be n' x d with d = {self.X_train.shape[1]}; got shape {tuple(Z.shape)}")
        k = regime_kernel(Z, self.regime, kappa=self.kappa, nu=self.nu, Y=self.X_train)
        return self._f0(Z) + k @ self.coefficients


# ----------------------------------------------------------------------------------------------
# memorisation


def energy_outside_span(Y: torch.Tensor, X_train: torch.Tensor, rcond: float = 1e-10) -> torch.Tensor:
    """Share of each row's energy outside the span of the training samples:
    ``||(I - P) y||^2 / ||y||^2`` with ``P`` the orthogonal projector onto ``span{x_1..x_n}``
    (rank by SVD with relative cutoff ``rcond``). Zero rows give 0."""
    _, S, Vh = torch.linalg.svd(X_train, full_matrices=False)
    basis = Vh[rcond * S[0] < S]  # r x d, orthonormal rows
    inside = (Y @ basis.mT) @ basis
    total = Y.square().sum(dim=1)
    outside = (Y - inside).square().sum(dim=1)
    return torch.where(total > 0, outside / torch.where(total > 0, total, 1.0), torch.zeros_like(total))


def nearest_training_sample(Y: torch.Tensor, X_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(min_j ||y - x_j||, argmin_j)`` for each row of ``Y``."""
    dist = torch.cdist(Y, X_train)
    best, idx = dist.min(dim=1)
    return best, idx


@dataclass(frozen=True)
class Memorisation:
    """How much a map's outputs on held-out inputs look like training samples.

    Per held-out input (arrays of length ``n'``): ``outside_span`` (share of output energy outside
    the training span), ``nearest_distance``/``nearest_index`` (closest training sample to the
    output), ``input_distance`` (``||f(x) - x||``). Per iterate ``t = 0..iterations`` of
    ``x, f(x), f(f(x)), ...``: ``iterate_nearest`` and ``iterate_norm`` (``(T+1) x n'``).
    ``fate`` says where each trajectory ended: ``training sample j``, ``fixed point``
    (``||f(z) - z|| <= tol ||z||`` away from the training set), ``zero``, ``diverged`` or ``moving``.
    """

    outside_span: np.ndarray
    nearest_distance: np.ndarray
    nearest_index: np.ndarray
    input_distance: np.ndarray
    iterate_nearest: np.ndarray
    iterate_norm: np.ndarray
    fate: list[str]

    def fate_counts(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for f in self.fate:
            key = "training sample" if f.startswith("training sample") else f
            kinds[key] = kinds.get(key, 0) + 1
        return kinds


def memorisation(f: Map, X_new: Any, X_train: Any, *, iterations: int = 50, tol: float = 1e-3) -> Memorisation:
    """Memorisation measures of the map ``f`` (e.g. a trained network or an :class:`NTKPredictor`)
    on held-out inputs ``X_new``; see :class:`Memorisation`. ``tol`` is relative to the norms
    involved (training samples are unit vectors after validation)."""
    X_train = as_tensor(X_train, name="X_train", finite=True, detach=True)
    Z = as_tensor(X_new, dtype=X_train.dtype, device=X_train.device, name="X_new", finite=True, detach=True)
    if X_train.ndim != 2 or X_train.shape[0] == 0 or Z.ndim != 2 or Z.shape[1] != X_train.shape[1]:
        raise AedynError(f"X_new and X_train must be matrices with the same d, X_train non-empty; got shapes "
                         f"{tuple(Z.shape)} and {tuple(X_train.shape)}")
    if not callable(f):
        raise AedynError(f"f must be a map (callable), e.g. a trained network or an NTKPredictor; "
                         f"got {type(f).__name__}")
    iterations = check_int(iterations, "iterations", minimum=0)
    tol = check_positive(tol, "tol")

    def f(z: torch.Tensor, f: Map = f) -> torch.Tensor:  # the map's outputs, checked: NumPy or torch, n x d
        out = as_tensor(f(z), dtype=z.dtype, device=z.device, name="f(x)", detach=True)
        if out.shape != z.shape:
            raise AedynError(f"the map f must send an n x d array to an n x d array; it returned shape "
                             f"{tuple(out.shape)} for {tuple(z.shape)}")
        return out

    Y = f(Z)
    near, idx = nearest_training_sample(Y, X_train)
    traj_near, traj_norm = [nearest_training_sample(Z, X_train)[0]], [Z.norm(dim=1)]
    z = Z
    start_norm = Z.norm(dim=1)
    for _ in range(iterations):
        z = f(z)
        bad = ~torch.isfinite(z).all(dim=1)
        z = torch.where(bad[:, None], torch.full_like(z, float("inf")), z)
        traj_near.append(torch.where(bad, torch.full_like(start_norm, float("inf")),
                                     nearest_training_sample(torch.nan_to_num(z), X_train)[0]))
        traj_norm.append(z.norm(dim=1))
        if bool((z.norm(dim=1) > 1e12 * start_norm).all()):
            break
    fz = f(torch.nan_to_num(z, posinf=0.0))
    fate = []
    last_near, last_idx = nearest_training_sample(torch.nan_to_num(z, posinf=0.0), X_train)
    for i in range(Z.shape[0]):
        norm = float(traj_norm[-1][i])
        if not math.isfinite(norm) or norm > 1e6 * float(start_norm[i]):
            fate.append("diverged")
        elif norm <= 1e-6 * float(start_norm[i]):
            fate.append("zero")
        elif float(last_near[i]) <= tol * float(X_train[last_idx[i]].norm()):
            fate.append(f"training sample {int(last_idx[i])}")
        elif float((fz[i] - z[i]).norm()) <= tol * norm:
            fate.append("fixed point")
        else:
            fate.append("moving")
    return Memorisation(
        outside_span=energy_outside_span(Y, X_train).cpu().numpy(),
        nearest_distance=near.cpu().numpy(), nearest_index=idx.cpu().numpy(),
        input_distance=(Y - Z).norm(dim=1).cpu().numpy(),
        iterate_nearest=torch.stack(traj_near).cpu().numpy(), iterate_norm=torch.stack(traj_norm).cpu().numpy(),
        fate=fate)


@dataclass(frozen=True)
class RatePrediction:
    """A run's measured per-step loss contraction beside what linearised GD predicts over the
    same steps (``window``); a prediction is ``None`` where there is none, ``why`` says why."""

    measured: float
    r2: float
    window: tuple[int, int]
    finite: float | None
    infinite: float | None
    why: dict[str, str]


def predicted_rates(result: TrainResult, X: Any, *, kappa: float = 1.0, nu: float = 1.0,
                    max_n: int = 4096) -> RatePrediction | None:
    """The measured rate of a run (:attr:`aedyn.gd.TrainResult.rate_fit`: ``exp`` of the slope of
    ``log L`` over the last half of the run before the rounding floor) and the rates predicted
    for the same window: the loss of linearised GD ``R(k) = (I - eta K)^k R(0)``, from the run's
    own initial residual ``R(0) = f_0(X) - X`` and step ``eta``, fitted over the same steps::

        finite:   K = the coordinate average of the run's Theta(0)  (Theta(0) ≈ K ⊗ I_d)
        infinite: K = K_reg, the infinite-width regime kernel (kernels.regime_kernel)

    (a fit over the last half of a run still mixes decaying modes, so the linearised curve over
    the same steps, not ``1 - eta lambda_min``, is the fair prediction). ``infinite`` is ``None``
    when ``alpha != 1/sqrt(m)`` (no NTK limit); both are ``None`` for tied networks (their NTK is
    not ``K ⊗ I_d``, at any width);
    both are ``None`` with a separate decoder step (the linearised step is then not ``eta Theta``)
    and when ``n > max_n`` (each costs an ``n x n`` eigendecomposition). ``None`` when the run
    has no rate fit or no initial parameters (a reloaded record).
    """
    fit = result.rate_fit
    init = result.init
    if fit is None or init is None:
        return None
    X = as_tensor(X, dtype=torch.float64, name="X", finite=True, detach=True)
    init = init.to(dtype=torch.float64, device=X.device)
    regime, eta = result.regime, float(result.lr)
    why: dict[str, str] = {}
    separate = result.lr_decoder is not None and result.lr_decoder != result.lr
    kernels: dict[str, torch.Tensor] = {}
    if separate:
        why["finite"] = why["infinite"] = "a separate decoder step size (the linearised step is not eta Theta)"
    elif regime == "tied":
        why["finite"] = why["infinite"] = "the tied NTK is not of the form K ⊗ I_d"
    elif X.shape[0] > max_n:
        why["finite"] = why["infinite"] = f"n = {X.shape[0]} > {max_n} (an n x n eigendecomposition each)"
    else:
        kernels["finite"] = NTKOperator(init, X, regime).averaged_kernel()
        width = init.W.shape[0]
        if not math.isclose(init.alpha, 1.0 / math.sqrt(width), rel_tol=1e-12):
            why["infinite"] = "alpha is not 1/sqrt(m), so there is no NTK limit"
        else:
            kernels["infinite"] = regime_kernel(X, regime, kappa=kappa, nu=nu)
    R0 = forward(init, X, regime) - X
    rates: dict[str, float | None] = {"finite": None, "infinite": None}
    for name, K in kernels.items():
        window = LinearisedGD(K, eta).loss_curve(R0, fit.stop, start=fit.start)  # steps start..stop
        predicted = fit_linear_rate(window, 0, len(window) - 1)  # the same slope per step
        rates[name] = None if predicted is None else predicted.rate
    return RatePrediction(measured=fit.rate, r2=fit.r2, window=(fit.start, fit.stop), finite=rates["finite"],
                          infinite=rates["infinite"], why=why)
