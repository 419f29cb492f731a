"""Exact full-batch gradient descent on the autoencoder, and what it records.

    theta <- theta - eta * dL/dtheta        (no momentum, no minibatches)

with one step size, or one for the encoder (``lr``) and one for the decoder (``lr_decoder``).
``lr="auto"`` sets ``eta = 1 / lambda_max(Theta(0))``, the largest eigenvalue of the regime's
finite-width NTK at initialisation, found matrix-free by Lanczos. In the linearised dynamics
``R(k+1) = (I - eta Theta) R(k)`` every mode contracts while ``eta < 2 / lambda_max``; ``1 /
lambda_max`` is half that bound, a safe default that leaves margin for the kernel to drift during
training (the top mode then contracts in one step, the others at ``1 - lambda_i / lambda_max``).

The run stops when ``L(k) <= target * L(0)`` (``converged``), when the step budget is spent
(``max_steps``), or when the loss is not finite or exceeds ``divergence_factor * L(0)``
(``diverged``). The loss is kept at every step; the weight movement and the activation-pattern
flips at a cadence.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from aedyn._check import check_choice, check_count, check_float, check_int, check_positive
from aedyn._meta import environment, jsonable
from aedyn._tensor import as_tensor, resolve_dtype
from aedyn.errors import AedynError, first_line
from aedyn.files import read_json, write_json
from aedyn.model import (
    Evaluation,
    Params,
    Tangent,
    Workspace,
    as_params,
    check_input,
    check_regime,
    evaluate,
    features,
    trained_layers,
)
from aedyn.ntk import DENSE_LIMIT, NTKOperator, ntk_drift, ntk_lambda_max_batch, operator_memory
from aedyn.resources import MemoryEstimate

STATUSES = ("converged", "max_steps", "diverged")

METRICS = {
    "weight_change_W": "||W - W0||_F / ||W0||_F",
    "weight_change_V": "||V - V0||_F / ||V0||_F (undefined, NaN, when V0 = 0; see weight_distance_V)",
    "weight_distance_W": "||W - W0||_F",
    "weight_distance_V": "||V - V0||_F",
    "max_neuron_change_W": "max_r ||w_r - w_r(0)||",
    "max_neuron_change_V": "max_r ||v_r - v_r(0)||",
    "pattern_flips": "share of entries of 1{w_r . x_i > 0} that differ from initialisation",
    "outside_safe_radius": "share of neurons that have been at least their safe radius min_i |w_r(0) . x_i| / ||x_i|| "
                           "from w_r(0) at some recorded step (a neuron that never was cannot have flipped a pattern)",
    "ntk_lambda_min": "lambda_min(Theta(t)) of the finite-width NTK (with ntk_every)",
    "ntk_lambda_max": "lambda_max(Theta(t)) (with ntk_every)",
    "ntk_drift": "||Theta(t) - Theta(0)||_F / ||Theta(0)||_F (with ntk_every; exact or probe estimate)",
}

FLOOR_ULPS = 64.0
"""The rounding floor of the loss, in units of ``eps^2 ||X||_F^2`` (see :func:`rounding_floor`)."""


def rounding_floor(data_norm2: float, dtype: str | torch.dtype = "float64") -> float:
    """The loss below which gradient descent in ``dtype`` makes no progress:
    ``FLOOR_ULPS * eps^2 * ||X||_F^2``.

    Near convergence ``U ≈ X``, and every entry of ``R = U - X`` carries a rounding error of a few
    ``eps`` relative to ``|X|``, so ``0.5 ||R||_F^2`` stalls near ``eps^2 ||X||_F^2`` (measured on
    sphere data, joint and weak: float64 stalls at ``0.3 eps^2 ||X||_F^2``, float32 at
    ``0.6 eps^2 ||X||_F^2``). ``FLOOR_ULPS = 64`` keeps the rate fit two orders of magnitude clear.
    """
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    eps = float(np.finfo(np.float32 if name == "float32" else np.float64).eps)
    return FLOOR_ULPS * eps * eps * float(data_norm2)


@dataclass(frozen=True)
class RateFit:
    """Least-squares line through ``log L(k)`` over steps ``start..stop``: ``rate = exp(slope)`` is
    the per-step contraction of the loss; ``r2`` the coefficient of determination.
    ``floor_step`` is the first step at which the loss reached the rounding floor (the fit
    stops there), or ``None``."""

    slope: float
    rate: float
    r2: float
    start: int
    stop: int
    floor_step: int | None = None


def fit_linear_rate(loss: np.ndarray, start: int | None = None, stop: int | None = None,
                    floor: float | None = None) -> RateFit | None:
    """Fit ``log L(k) = a + k * slope`` over ``start <= k <= stop`` (default: the last half of the
    run). With ``floor``, the run is cut at the first step where ``L <= floor`` (what follows is
    rounding noise, not convergence) and the default window is the last half before it.
    Non-finite and non-positive losses are dropped; ``None`` when fewer than 3 remain. ``loss`` is
    one number per step (a 1-D array, tensor or sequence)."""
    loss = as_tensor(loss, dtype=torch.float64, name="loss").cpu().numpy()
    if loss.ndim != 1:
        raise AedynError(f"loss must be one number per step (1-D); got shape {loss.shape}")
    start = None if start is None else check_int(start, "start", minimum=0)
    stop = None if stop is None else check_int(stop, "stop", minimum=0)
    floor = None if floor is None else check_float(floor, "floor", low=0.0)
    last = len(loss) - 1
    floor_step = None
    if floor is not None and floor > 0:
        below = np.flatnonzero(loss <= floor)
        if below.size:
            floor_step = int(below[0])
            last = floor_step
    start = last // 2 if start is None else start
    stop = last if stop is None else min(stop, last)
    k = np.arange(start, stop + 1)
    y = loss[start:stop + 1]
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 3:
        return None
    k, logy = k[ok].astype(np.float64), np.log(y[ok])
    slope, intercept = np.polyfit(k, logy, 1)
    resid = logy - (intercept + slope * k)
    total = np.sum((logy - logy.mean()) ** 2)
    r2 = 1.0 - float(np.sum(resid ** 2) / total) if total > 0 else 1.0
    return RateFit(float(slope), float(math.exp(slope)), r2, int(start), int(stop), floor_step)


_RECORD_FIELDS = {"status": str, "steps": int, "loss": list, "metrics": dict, "lr": (int, float),
                  "regime": str, "wall_time": (int, float), "message": str}


@dataclass
class TrainResult:
    """One training run as a plain record: history, metrics, status, step sizes, parameters.

    ``loss[k]`` is ``L`` at the ``k``-th iterate (``k = 0..steps``); ``metrics`` maps each recorded
    quantity (see :data:`METRICS`) and ``"step"`` to arrays at the recording cadence (the NTK
    quantities at ``"ntk_step"``). ``left_safe_radius`` says, per neuron, whether it has been at
    least its safe radius from its start at some recorded step (:func:`aedyn.model.safe_radius`;
    ``None`` when the encoder does not train). ``certificate`` is the run's
    :class:`aedyn.certificate.Certificate` when the job asked for one (in the JSON record as a
    dict). ``params``, ``init``, ``left_safe_radius`` and ``certificate`` are ``None`` for a result
    reloaded from JSON.
    """

    status: str
    steps: int
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    lr: float
    lr_decoder: float | None
    regime: str
    wall_time: float
    message: str
    config: dict[str, Any] = field(default_factory=dict)
    lambda_max: float | None = None
    params: Params | None = None
    init: Params | None = None
    left_safe_radius: np.ndarray | None = None
    certificate: Any = None

    @property
    def relative_loss(self) -> np.ndarray:
        """``L(k) / L(0)`` (zeros when ``L(0) = 0``)."""
        if not self.loss[0] > 0:
            return np.zeros_like(self.loss)
        return self.loss / self.loss[0]

    @property
    def floor(self) -> float:
        """The rounding floor of this run's loss (:func:`rounding_floor`; records without the
        data's norm assume unit rows, ``||X||_F^2 = n``)."""
        scale = self.config.get("data_norm2", self.config.get("n", 0))
        return rounding_floor(scale or 0.0, self.config.get("dtype", "float64"))

    @property
    def rate_fit(self) -> RateFit | None:
        """The linear-rate fit over the last half of the run before the rounding floor
        (see :func:`fit_linear_rate`)."""
        return fit_linear_rate(self.loss, floor=self.floor)

    @property
    def rate(self) -> float | None:
        """Measured per-step contraction of the loss, ``L(k+1)/L(k)``, over the last half of the run."""
        fit = self.rate_fit
        return None if fit is None else fit.rate

    def final(self, name: str) -> float | None:
        """The last recorded value of a metric, or ``None`` if it was not recorded."""
        values = self.metrics.get(name)
        return None if values is None or len(values) == 0 else float(values[-1])

    def summary(self) -> dict[str, Any]:
        """Headline numbers: status, steps, final relative loss, step sizes, rate, movement, flips."""
        fit = self.rate_fit
        out: dict[str, Any] = {
            "status": self.status,
            "steps": self.steps,
            "final_relative_loss": float(self.relative_loss[-1]),
            "lr": self.lr,
            "lr_decoder": self.lr_decoder,
            "lambda_max": self.lambda_max,
            "rate": None if fit is None else fit.rate,
            "floor_step": None if fit is None else fit.floor_step,
        }
        for name in METRICS:
            if name in self.metrics:
                out[name] = self.final(name)
        out["wall_time"] = self.wall_time
        return out

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict: config, versions, status, per-step loss, metrics, summary, wall time.
        Non-finite numbers become ``null``."""
        return {
            "kind": "aedyn.train",
            "status": self.status,
            "message": self.message,
            "regime": self.regime,
            "steps": self.steps,
            "lr": self.lr,
            "lr_decoder": self.lr_decoder,
            "lambda_max": self.lambda_max,
            "wall_time": self.wall_time,
            "config": self.config,
            "versions": environment(),
            "summary": jsonable(self.summary()),
            "loss": jsonable(self.loss.tolist()),
            "metrics": {k: jsonable(np.asarray(v).tolist()) for k, v in self.metrics.items()},
            **({} if self.certificate is None else {"certificate": jsonable(self.certificate.to_dict())}),
        }

    @classmethod
    def from_record(cls, record: Any) -> TrainResult:
        """Rebuild a result (without parameters) from :meth:`to_record`'s dict; anything else is an
        :class:`AedynError` that names what is missing or wrong."""
        hint = "pass a file written by 'aedyn train --out' or TrainResult.save"
        if not isinstance(record, dict) or record.get("kind") != "aedyn.train":
            raise AedynError(f"this is not an aedyn training record (no kind 'aedyn.train'); {hint}")
        for key, types in _RECORD_FIELDS.items():
            if key not in record:
                raise AedynError(f"the training record is incomplete: it has no {key!r}; {hint}")
            if isinstance(record[key], bool) or not isinstance(record[key], types):
                raise AedynError(f"the training record's {key!r} has the wrong type ({type(record[key]).__name__}); "
                                 f"{hint}")
        config = record.get("config") or {}
        if not isinstance(config, dict):
            raise AedynError(f"the training record's 'config' must be a mapping; {hint}")
        optional = {key: None if record.get(key) is None else check_positive(record[key], f"the record's {key!r}")
                    for key in ("lr_decoder", "lambda_max")}
        for key in ("n", "data_norm2"):  # what the rounding floor is computed from
            if config.get(key) is not None:
                check_float(config[key], f"the record's config {key!r}", low=0.0)
        nan = float("nan")
        try:
            loss = np.array([nan if v is None else v for v in record["loss"]], dtype=np.float64)
            metrics = {str(k): np.array([nan if x is None else x for x in v], dtype=np.float64)
                       for k, v in record["metrics"].items()}
        except (TypeError, ValueError) as exc:
            raise AedynError(f"the training record has malformed values ({exc}); {hint}") from None
        result = cls(status=check_choice(record["status"], STATUSES, "status"),
                     steps=check_int(record["steps"], "the record's 'steps'", minimum=0), loss=loss, metrics=metrics,
                     lr=check_positive(record["lr"], "the record's 'lr'"), regime=check_regime(record["regime"]),
                     wall_time=check_float(record["wall_time"], "the record's 'wall_time'", low=0.0),
                     message=record["message"], config=dict(config), **optional)
        if loss.ndim != 1 or len(loss) != result.steps + 1:
            raise AedynError(f"the training record is inconsistent: {len(loss)} losses for {result.steps} steps; "
                             f"{hint}")
        return result

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write :meth:`to_record` as JSON, atomically; an existing file is refused unless ``force``."""
        return write_json(path, self.to_record(), force=force, flag="record")

    @classmethod
    def load(cls, path: str | Path) -> TrainResult:
        """Read a record written by :meth:`save` (or ``aedyn train --out``)."""
        record = read_json(path, what="an aedyn training record",
                           hint="pass a file written by 'aedyn train --out' or TrainResult.save")
        return cls.from_record(record)


AUTO_LR_ITERATIONS = 200
"""Lanczos iterations at most for ``lr="auto"`` (relative accuracy ``1e-4``)."""

HINT_ITERATIONS = 20
"""Lanczos iterations for the step suggested after a divergence: a rough ``lambda_max`` suffices."""

SYNC_EVERY_CUDA = 32
"""Steps between the host's looks at a batch on a GPU (on the CPU it looks every step, which is
free there). Stopping is decided on the device at every step, so the interval only costs frozen
steps after the last network stops, never a wrong stopping step."""


def auto_lr(params: Params, X: torch.Tensor, regime: str, *, max_iter: int = AUTO_LR_ITERATIONS,
            tol: float = 1e-4) -> tuple[float, float]:
    """``(eta, lambda_max)`` with ``eta = 1 / lambda_max(Theta(0))`` of the finite-width NTK of one
    network (:func:`auto_lr_batch` with a batch of one)."""
    params = as_params(params, regime)
    one = Params(params.W[None], None if params.V is None else params.V[None], params.alpha)
    eta, lam = auto_lr_batch(one, check_input(X, params), regime, max_iter=max_iter, tol=tol)
    return float(eta[0]), float(lam[0])


def auto_lr_batch(params: Params, X: torch.Tensor, regime: str, *, max_iter: int = AUTO_LR_ITERATIONS,
                  tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """``(eta_b, lambda_max_b)``, ``eta_b = 1 / lambda_max(Theta_b(0))``, for every network of a
    batch (``W`` of shape ``(B, m, d)``) from one batched Lanczos (:func:`aedyn.ntk.ntk_lambda_max_batch`)."""
    lam = np.array([e.max for e in ntk_lambda_max_batch(params, X, regime, tol=tol, max_iter=max_iter)])
    with np.errstate(divide="ignore", over="ignore"):
        eta = 1.0 / lam
    bad = np.flatnonzero(~(np.isfinite(lam) & (lam > 0) & np.isfinite(eta)))
    if bad.size:
        which = f"network {int(bad[0])} of the batch: " if len(lam) > 1 else ""
        raise AedynError(f"{which}the NTK at initialisation has largest eigenvalue {lam[bad[0]]:g}, so lr='auto' is "
                         f"undefined (alpha = {params.alpha:g}: an output scale or initial weights this small, or a "
                         "zero decoder, leave no gradient to follow); use larger scales, or a step size with --lr")
    return eta, lam


def check_train_options(regime: str, *, lr: float | str = "auto", lr_decoder: float | str | None = None,
                        steps: int = 1000, target: float = 1e-6, record_every: int = 10,
                        divergence_factor: float = 1e3, ntk_every: int | None = None) -> dict[str, Any]:
    """Validate the options of :func:`train` without data or parameters (jobs call this before any
    work); returns them normalised (NumPy scalars become Python numbers)."""
    check_regime(regime)
    if isinstance(lr, str):
        if lr != "auto":
            raise AedynError(f"lr must be a positive number or 'auto'; got {lr!r}")
    else:
        lr = check_positive(lr, "lr", hint=" (or 'auto')")
    if isinstance(lr_decoder, str) and lr_decoder == "auto":
        if regime != "joint" or lr != "auto":
            raise AedynError("lr_decoder='auto' (layer-wise steps: each layer at 1/lambda_max of its own NTK block) "
                             f"needs regime joint and lr='auto'; got regime {regime!r}, lr {lr!r}")
    elif lr_decoder is not None:
        _check_separate_decoder(regime)
        lr_decoder = check_positive(lr_decoder, "lr_decoder", hint=" (or 'auto')")
    return {"lr": lr, "lr_decoder": lr_decoder,
            "steps": check_int(steps, "steps", minimum=0),
            "target": check_float(target, "target (relative loss)", low=0.0, high=1.0, high_open=True),
            "record_every": check_count(record_every, "record_every"),
            "divergence_factor": check_float(divergence_factor, "divergence_factor", low=1.0, low_open=True),
            "ntk_every": None if ntk_every is None else check_count(ntk_every, "ntk_every")}


def _check_separate_decoder(regime: str) -> None:
    """A decoder step of its own needs a regime that trains a separate decoder."""
    if regime not in ("joint", "decoder"):
        raise AedynError(f"lr_decoder sets the decoder's step, but regime {regime!r} does not train a separate "
                         "decoder; drop --lr-decoder")


def train(X: Any, params: Params, regime: str = "joint", *, lr: float | str = "auto",
          lr_decoder: float | None = None, steps: int = 1000, target: float = 1e-6, record_every: int = 10,
          divergence_factor: float = 1e3, ntk_every: int | None = None,
          callback: Callable[[int, float], None] | None = None) -> TrainResult:
    """Full-batch gradient descent from ``params`` on ``X`` (``n x d``) in ``regime``.

    ``lr`` is a positive step size or ``"auto"`` (``1/lambda_max`` of the finite-width NTK at
    initialisation); ``lr_decoder`` a separate decoder step (``joint``/``decoder`` only; default
    ``lr``). Stops at ``L <= target * L(0)``, after ``steps`` updates, or on divergence. Metrics
    are recorded every ``record_every`` steps and at the last; with ``ntk_every`` also the
    finite-width NTK's extremes and its drift from initialisation (exact for ``n*d`` up to
    :data:`aedyn.ntk.DENSE_LIMIT`, a random-probe estimate above; ``config["ntk_drift_method"]``
    says which). ``callback(k, loss)`` reports progress (at every step on the CPU; see
    :func:`train_batch`). ``params`` is not modified. Parameters that are not finite, or a loss
    that is already not finite at initialisation (an output scale too large for the dtype), are an
    :class:`AedynError`. This is :func:`train_batch` with a batch of one.
    """
    params = as_params(params, regime)
    if params.W.ndim != 2:
        raise AedynError("train() runs one network; parameters with a batch dimension (W of shape (B, m, d)) are "
                         "for train_batch()")
    X = check_input(X, params)
    if X.ndim != 2:
        raise AedynError(f"X must be an n x d matrix; got shape {tuple(X.shape)}")
    check_train_options(regime, lr=lr, lr_decoder=lr_decoder)  # one number each, not one per network
    one = Params(params.W[None], None if params.V is None else params.V[None], params.alpha)
    report = None if callback is None else (lambda k, losses: callback(k, float(losses[0])))
    return train_batch(X, one, regime, lr=lr, lr_decoder=lr_decoder, steps=steps, target=target,
                       record_every=record_every, divergence_factor=divergence_factor, ntk_every=ntk_every,
                       callback=report)[0]


def _batch_rates(lr: Any, batch: int, name: str, *, allow_auto: bool) -> np.ndarray | str | None:
    """``lr``/``lr_decoder`` of a batch: ``"auto"``, ``None``, one positive number for all, or one
    per network (a length-``batch`` NumPy array or tensor)."""
    if (lr is None and not allow_auto) or (allow_auto and isinstance(lr, str) and lr == "auto"):
        return lr
    if isinstance(lr, (torch.Tensor, np.ndarray, list, tuple)):
        try:
            values = np.asarray(lr.detach().cpu() if isinstance(lr, torch.Tensor) else lr)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise AedynError(f"{name} must be one number or {batch} numbers (one per network); got "
                             f"{type(lr).__name__} that is not an array of numbers ({first_line(exc)})") from None
        if values.ndim == 0:
            values = values.reshape(1)
        if values.shape != (batch,) or values.dtype.kind not in "iuf":
            raise AedynError(f"{name} must be one number or {batch} numbers (one per network); got shape "
                             f"{values.shape} of {values.dtype}")
        for v in values:
            check_positive(v, name)
        return values.astype(np.float64)
    return np.full(batch, check_positive(lr, name, hint=" (or 'auto')" if allow_auto else ""))


def train_batch(X: Any, params: Params, regime: str = "joint", *, lr: Any = "auto", lr_decoder: Any = None,
                steps: int = 1000, target: float = 1e-6, record_every: int = 10, divergence_factor: float = 1e3,
                ntk_every: int | None = None, sync_every: int | None = None,
                callback: Callable[[int, np.ndarray], None] | None = None) -> list[TrainResult]:
    """Train ``B`` networks of one shape as one computation: ``params.W`` of shape ``(B, m, d)``
    (``V`` ``(B, d, m)``, one ``alpha``), ``X`` of shape ``(n, d)`` (shared) or ``(B, n, d)``.

    Each network follows exactly the rule of :func:`train`: ``lr`` is ``"auto"`` (each network's
    own ``1 / lambda_max(Theta_b(0))``, from one batched Lanczos), a number, or one number per
    network (likewise ``lr_decoder``; ``lr_decoder="auto"`` with ``lr="auto"`` in ``joint`` gives
    layer-wise steps: the encoder at ``1 / lambda_max(Theta_W)`` and the decoder at
    ``1 / lambda_max(Theta_V)``, the NTK's two blocks ``Theta = Theta_W + Theta_V``, ``Theta_W =
    J_W J_W^T`` and ``Theta_V = J_V J_V^T``); network ``b`` stops at ``L_b <= target * L_b(0)``
    (``converged``), on divergence, or after ``steps``. The stop test runs on the device at every
    step and freezes a stopped network (its update is masked), so its stopping step and final
    parameters are exact; the host looks every ``sync_every`` steps (default: every step on the
    CPU, :data:`SYNC_EVERY_CUDA` on a GPU) to copy the losses, end the loop when all have stopped,
    and drop stopped networks from the computation once they are at least half the batch.
    ``callback(k, losses)`` is called at those looks with each network's latest loss (once all
    have stopped, ``k`` is the last step any of them took), and at the end if that step was not
    reported yet.

    Returns one :class:`TrainResult` per network, in order, each as :func:`train` would give it
    (its ``wall_time`` is its share of the batch's time; ``config["batch_size"]`` is ``B``).
    """
    params = as_params(params, regime).detach()  # gradient descent here is exact, not autograd's
    if params.W.ndim != 3 or params.W.shape[0] == 0:
        raise AedynError(f"train_batch needs parameters with one non-empty batch dimension, W of shape (B, m, d); "
                         f"got {tuple(params.W.shape)} (for one network use train(), or W[None])")
    batch = params.W.shape[0]
    opts = check_train_options(regime, lr="auto" if not isinstance(lr, str) else lr, lr_decoder=None,
                               steps=steps, target=target, record_every=record_every,
                               divergence_factor=divergence_factor, ntk_every=ntk_every)
    rates = _batch_rates(lr, batch, "lr", allow_auto=True)
    layerwise = isinstance(lr_decoder, str) and lr_decoder == "auto"
    if layerwise:
        check_train_options(regime, lr=lr, lr_decoder=lr_decoder)
    elif lr_decoder is not None:
        _check_separate_decoder(regime)
    rates_v = "auto" if layerwise else _batch_rates(lr_decoder, batch, "lr_decoder", allow_auto=False)
    steps, target, record_every = opts["steps"], opts["target"], opts["record_every"]
    divergence_factor, ntk_every = opts["divergence_factor"], opts["ntk_every"]
    X = check_input(X, params, detach=True)
    if X.ndim not in (2, 3) or X.shape[-2] == 0 or (X.ndim == 3 and X.shape[0] != batch):
        raise AedynError(f"X must be a non-empty n x d matrix shared by the batch, or B x n x d with B = {batch}; "
                         f"got shape {tuple(X.shape)}")
    for name, t in (("W", params.W), ("V", params.V)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise AedynError(f"the initial {name} contains NaN or inf; start from finite parameters")
    sync_every = (1 if params.W.device.type == "cpu" else SYNC_EVERY_CUDA) if sync_every is None else \
        check_count(sync_every, "sync_every")
    t0 = time.perf_counter()
    init = params.clone()
    workspace = Workspace(init, X, regime)  # every step's buffers, allocated once
    first = evaluate(init, X, regime, check_finite=False, with_gradient=steps > 0, workspace=workspace,
                     with_radius=trained_layers(regime)[0])  # step 0 of the run, with the neurons' safe radii
    L0 = first.loss.double().cpu().numpy()
    if not np.isfinite(L0).all():
        b = int(np.flatnonzero(~np.isfinite(L0))[0])
        which = f"network {b} of the batch: " if batch > 1 else ""
        raise AedynError(f"{which}the loss overflows at initialisation (L(0) = {L0[b]:g} in {_dtype_name(params)}): "
                         f"the output scale alpha = {params.alpha:g} with these weights is too large; use a smaller "
                         "--init-scale, --kappa or --nu")
    lambda_max = None
    auto = isinstance(rates, str)
    if layerwise:  # each layer at 1/lambda_max of its own NTK block: the encoder's (weak) and the decoder's
        eta, lambda_max = auto_lr_batch(init, X, "weak")
        eta_v, _ = auto_lr_batch(init, X, "decoder")
    elif auto:
        eta, lambda_max = auto_lr_batch(init, X, regime)
    else:
        eta = rates  # type: ignore[assignment]
    if not layerwise:
        eta_v = eta if rates_v is None else rates_v
    run = _descend(init, X, regime, first, workspace, eta, eta_v, steps=steps, target=target, record_every=record_every,
                   divergence_factor=divergence_factor, ntk_every=ntk_every, sync_every=sync_every,
                   callback=callback)
    wall = (time.perf_counter() - t0) / batch
    dec = trained_layers(regime)[1]
    results = []
    for b in range(batch):
        k, status = int(run.stop[b]), run.status[b]
        losses = run.loss[b, :k + 1]
        Xb = X if X.ndim == 2 else X[b]
        net = init.network(b)
        hint = None if lambda_max is None else float(lambda_max[b])
        if status == "diverged" and hint is None:
            hint = _lambda_max_or_none(net, Xb, regime)
        data_norm2 = float(Xb.square().sum())
        floor = rounding_floor(data_norm2, params.W.dtype)
        message = _message(status, k, losses, float(eta[b]), float(eta_v[b]), target, divergence_factor, hint,
                           None if rates_v is None else float(eta_v[b]), floor, _dtype_name(params))
        config = {"regime": regime, "lr": "auto" if auto else float(eta[b]),
                  "lr_decoder": None if rates_v is None else "auto" if layerwise else float(eta_v[b]),
                  "steps": steps, "target": target,
                  "record_every": record_every, "divergence_factor": divergence_factor, "n": int(Xb.shape[0]),
                  "d": int(Xb.shape[1]), "data_norm2": data_norm2, "width": params.width, "alpha": params.alpha,
                  "dtype": _dtype_name(params), "device": str(params.W.device), "ntk_every": ntk_every,
                  "ntk_drift_method": run.drift_method, "batch_size": batch, "sync_every": sync_every}
        results.append(TrainResult(
            status=status, steps=k, loss=losses, metrics=run.metrics[b], lr=float(eta[b]),
            lr_decoder=float(eta_v[b]) if dec else None, regime=regime, wall_time=wall, message=message,
            config=config, lambda_max=None if lambda_max is None else float(lambda_max[b]),
            params=run.final.network(b), init=net,
            left_safe_radius=None if run.left is None else run.left[b]))
    return results


@dataclass
class _Run:
    """What :func:`_descend` hands back, indexed by network: its stopping step, status, losses
    (``B x (steps + 1)``, valid up to the stopping step), metric histories, final parameters, how
    the NTK drift was computed, and which neurons left their safe radius (``B x m``; ``None``
    when the encoder does not train)."""

    stop: np.ndarray
    status: list[str]
    loss: np.ndarray
    metrics: list[dict[str, np.ndarray]]
    final: Params
    drift_method: str | None
    left: np.ndarray | None = None


def _descend(init: Params, X: torch.Tensor, regime: str, first: Evaluation, workspace: Workspace, eta: np.ndarray,
             eta_v: np.ndarray, *,
             steps: int, target: float, record_every: int, divergence_factor: float, ntk_every: int | None,
             sync_every: int, callback: Callable[[int, np.ndarray], None] | None) -> _Run:
    """The gradient-descent loop of a batch.

    At step ``k`` each network evaluates its loss and gradient (``first`` is step 0, already
    evaluated by the caller). The stop rule is one predicate of
    the loss, ``running = target L(0) < L(k) <= divergence_factor L(0)`` in float64 whatever the
    dtype (false for NaN and inf),
    applied twice to the same numbers: on the device at every step, to mask the updates of stopped
    networks (they take no step at ``k`` or after), and on the host, in the losses it copies
    every ``sync_every`` steps, to find each network's stopping step and status (the first ``k``
    where the predicate fails: ``converged`` if ``L(k) <= target L(0)``, otherwise ``diverged``;
    ``max_steps`` at ``k = steps``). Both sides compare the same float64 numbers, so they agree
    at every step."""
    batch = init.W.shape[0]
    dt, dev = init.W.dtype, init.W.device
    enc = trained_layers(regime)[0]
    cur = init.clone()
    starts, Xc = _starts(init, regime), X
    col = lambda values: torch.as_tensor(values, dtype=dt, device=dev).reshape(-1, 1, 1)  # noqa: E731
    eta_w, eta_d = col(eta), col(eta_v)
    converge_at = diverge_at = torch.empty(0)  # set at k = 0 from L(0), on the device
    reported = -1  # the last step reported to the callback
    below = above = np.empty(0)  # the same thresholds on the host, from the first look
    D0 = D0_all = None
    active = torch.ones(batch, dtype=torch.bool, device=dev)
    slots = np.arange(batch)  # slot -> network
    alive = np.ones(batch, dtype=bool)  # by slot: still running, as far as the host has looked
    loss = np.full((batch, steps + 1), np.nan)
    latest = np.full(batch, np.nan)
    stop = np.full(batch, -1)  # -1: still running
    status = ["max_steps"] * batch
    final_W: torch.Tensor | None = None  # the stopped networks' parameters, allocated at the first early retirement
    final_V: torch.Tensor | None = None
    chunk: list[torch.Tensor] = []
    seen = 0  # steps whose losses the host holds
    records: list[tuple[int, np.ndarray, torch.Tensor]] = []
    ntk = _NTKRecorder(init, X, regime) if ntk_every is not None else None
    radius = first.radius  # by network, (B, m); None when the encoder does not train
    left = None if radius is None else torch.zeros(radius.shape, dtype=torch.bool, device=dev)

    def look() -> int:
        """Copy the losses of the steps since the last look and find the networks that stopped
        among them (the device's mask says which; the first step at which the rule fails, in the
        copied losses, says when); returns how many networks of the batch still run."""
        nonlocal chunk, seen, below, above, alive
        values = torch.cat([c if c.ndim == 2 else c[:, None] for c in chunk], dim=1).double().cpu().numpy()
        running = active.cpu().numpy()
        chunk = []
        if seen == 0:
            below, above = (t.cpu().numpy() for t in (converge_at, diverge_at))
        rows = slots if len(slots) < batch else slice(None)
        loss[rows, seen:seen + values.shape[1]] = values
        latest[rows] = values[:, -1]
        ended = alive & ~running
        if ended.any():
            for j in np.flatnonzero(ended):
                b, part = slots[j], values[j]
                k = seen + int(np.argmin((part > below[b]) & (part <= above[b])))
                stop[b] = k
                status[b] = "converged" if loss[b, k] <= below[b] else "diverged"
            alive = alive & running
        seen += values.shape[1]
        return int(alive.sum())

    def retire(keep: np.ndarray) -> None:
        """Store the final state of the slots not in ``keep`` (positions) and drop them from the computation."""
        nonlocal cur, starts, Xc, eta_w, eta_d, converge_at, diverge_at, D0, active, slots, alive, final_W, final_V
        gone = np.ones(len(slots), dtype=bool)
        gone[keep] = False
        if final_W is None and not len(keep):  # every network to its end together: the last state is the final one
            final_W, final_V = cur.W, cur.V
            return
        if final_W is None:
            final_W = torch.empty_like(init.W)
            final_V = None if init.V is None else torch.empty_like(init.V)
        index = torch.as_tensor(np.flatnonzero(gone), device=dev)
        target_index = torch.as_tensor(slots[gone], device=dev)
        final_W[target_index] = cur.W[index]
        if final_V is not None:
            final_V[target_index] = cur.V[index]  # type: ignore[index]
        kept = torch.as_tensor(keep, device=dev)
        pick = lambda t: None if t is None else t[kept]  # noqa: E731
        cur = Params(cur.W[kept], pick(cur.V), cur.alpha)
        starts, D0 = [st.select(kept) for st in starts], pick(D0)
        Xc = Xc if Xc.ndim == 2 else Xc[kept]
        eta_w, eta_d, converge_at, diverge_at = eta_w[kept], eta_d[kept], converge_at[kept], diverge_at[kept]
        active = active[kept]
        slots, alive = slots[keep], alive[keep]

    def plain_step(out: torch.Tensor) -> None:
        """One step that neither records nor looks: evaluate, keep the loss in ``out``, apply the
        stop rule on the device, update the running networks (what a segment repeats)."""
        ev = evaluate(cur, Xc, regime, check_finite=False, workspace=workspace, with_features=False)
        out.copy_(ev.loss)
        now = ev.loss.double()
        torch.logical_and(active, (now > converge_at) & (now <= diverge_at), out=active)
        _update(cur, ev.grads, eta_w, eta_d, ~active.reshape(-1, 1, 1))

    segments = _Segments(plain_step, dev) if sync_every > 1 and use_segments(dev) else None
    k = 0
    while True:
        last = k == steps
        ev = first if k == 0 else evaluate(cur, Xc, regime, check_finite=False, with_gradient=not last,
                                           workspace=workspace, with_features=k % record_every == 0)
        Lk = ev.loss
        chunk.append(Lk)
        if k == 0:
            L0 = Lk.double()  # the thresholds and the test in float64, whatever the dtype (as the host sees them)
            converge_at = target * L0
            diverge_at = (divergence_factor * L0).clamp(max=torch.finfo(torch.float64).max)  # inf never "runs"
            D0 = D0_all = ev.features.D if enc else None  # type: ignore[union-attr]
        now = Lk.double()
        active &= (now > converge_at) & (now <= diverge_at)
        if k % record_every == 0:
            index = torch.as_tensor(slots, device=dev)
            values, outside = _movement(cur, starts, ev.features.D if enc else None, D0,  # type: ignore[union-attr]
                                        None if radius is None else radius[index],
                                        None if left is None else left[index])
            if left is not None:
                left[index] = outside  # type: ignore[assignment]
            records.append((k, slots, values))
        at_ntk = ntk is not None and k % ntk_every == 0  # type: ignore[operator]
        looked = at_ntk or (not last and k % sync_every == 0)
        if looked:
            running = look()
            if callback is not None:  # once all have stopped, the last step any of them took
                reported = k if running else int(stop.max())
                callback(reported, latest.copy())
            if at_ntk:  # every network that had not stopped before k
                ntk.record(k, cur, Xc, slots, alive | (stop[slots] >= k))  # type: ignore[union-attr]
        if last:
            break
        grads = ev.grads
        all_running = False
        if looked:
            if running == 0:
                break
            if running <= len(slots) // 2:
                keep = np.flatnonzero(alive)
                retire(keep)
                if segments is not None:
                    segments.reset()  # the batch's tensors are new: graphs captured on the old ones are void
                kept = torch.as_tensor(keep, device=dev)
                grads = grads._replace(W=None if grads.W is None else grads.W[kept],
                                       V=None if grads.V is None else grads.V[kept])
            all_running = running == len(slots)
        _update(cur, grads, eta_w, eta_d, None if all_running else ~active.reshape(-1, 1, 1))
        k += 1
        length = 0 if segments is None else plain_steps(k, steps, record_every, ntk_every, sync_every)
        if length >= MIN_SEGMENT:
            chunk.append(segments.run(length, len(slots), Lk.dtype))  # type: ignore[union-attr]
            k += length
    if chunk:
        look()
    stop[stop < 0] = steps  # out of budget (the rule may also have stopped them at the last step)
    retire(np.zeros(0, dtype=np.int64))
    final = Params(final_W, final_V, init.alpha)  # type: ignore[arg-type]
    if callback is not None and reported != int(stop.max()):
        callback(int(stop.max()), latest.copy())
    if left is not None:  # the stopping step's state too (off the cadence, or recorded already: no change)
        left |= (final.W - init.W).norm(dim=-1) >= radius  # type: ignore[operator]
    metrics = _metrics(records, final, init, X, D0_all, regime, stop, record_every, ntk, ntk_every, left)
    return _Run(stop, status, loss, metrics, final, None if ntk is None else ntk.drift_method,
                None if left is None else left.cpu().numpy())


def _update(cur: Params, grads: Tangent, eta_w: torch.Tensor, eta_d: torch.Tensor,
            mask: torch.Tensor | None) -> None:
    """``theta <- theta - eta * grad`` in place for each trained layer, each network at its own step;
    networks under ``mask`` (``B x 1 x 1``, stopped) do not move."""
    for param, grad, step in ((cur.W, grads.W, eta_w), (cur.V, grads.V, eta_d)):
        if grad is not None:
            grad.mul_(step)
            if mask is not None:
                grad.masked_fill_(mask, 0.0)
            param.sub_(grad)  # type: ignore[union-attr]


MIN_SEGMENT = 4
"""Runs of fewer plain steps than this (between two steps that record or look) are taken one by
one; longer runs go through :class:`_Segments` (on a GPU, one captured CUDA graph)."""


def plain_steps(start: int, steps: int, record_every: int, ntk_every: int | None, sync_every: int) -> int:
    """How many consecutive steps from ``start`` on are *plain*: before the last step, and neither a
    recording step (``k % record_every == 0``), an NTK check (``k % ntk_every == 0``) nor a host look
    (``k % sync_every == 0``). What a segment may run without the host (:class:`_Segments`)."""
    k = start
    while k < steps and k % record_every and k % sync_every and (ntk_every is None or k % ntk_every):
        k += 1
    return k - start


def use_segments(device: torch.device) -> bool:
    """Whether a run on ``device`` takes its plain steps in segments: on CUDA (captured as CUDA graphs,
    so that a segment of steps costs one launch instead of dozens per step); on the CPU, where the host
    looks at every step, there are none."""
    return device.type == "cuda"


class _Segments:
    """Runs ``length`` plain steps (``step(out)``, :func:`plain_steps`) and returns their losses,
    ``B x length``. On CUDA each length is captured once as a CUDA graph (the steps' kernels recorded
    on the batch's fixed tensors: parameters, workspace, step sizes, stop thresholds) and replayed
    after: the launches of a segment's dozens of small kernels per step become one. Capture runs
    nothing, so no step is taken twice; the first segment of each length runs eagerly (warming the
    libraries' handles and workspaces up), the second is captured and replayed. A shrunken batch
    (:meth:`reset`) is captured anew. Elsewhere, and if a capture fails, segments run eagerly: the
    same kernels in the same order, so the same numbers."""

    def __init__(self, step: Callable[[torch.Tensor], None], device: torch.device) -> None:
        self.step, self.device = step, device
        self.capture = device.type == "cuda"
        self.graphs: dict[int, tuple[Any, torch.Tensor]] = {}
        self.seen: set[int] = set()

    def reset(self) -> None:
        self.graphs.clear()
        self.seen.clear()

    def _steps(self, out: torch.Tensor) -> None:
        for j in range(out.shape[1]):
            self.step(out[:, j])

    def run(self, length: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
        if self.capture and length in self.graphs:
            graph, out = self.graphs[length]
            graph.replay()
            return out.clone()
        out = torch.empty(batch, length, dtype=dtype, device=self.device)
        if self.capture and length in self.seen:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self._steps(out)
            except RuntimeError:  # pragma: no cover - a capture CUDA refuses: eager from here on
                self.capture = False
                torch.cuda.synchronize(self.device)
            else:
                self.graphs[length] = (graph, out)
                graph.replay()
                return out.clone()
        self.seen.add(length)
        self._steps(out)
        return out


def _movement_names(enc: bool, dec: bool) -> list[str]:
    """The rows of :func:`_movement`, in order."""
    names = [f"{kind}_{layer}" for layer, trains in (("W", enc), ("V", dec)) if trains
             for kind in ("weight_distance", "weight_change", "max_neuron_change")]
    return [*names, "pattern_flips", "outside_safe_radius"] if enc else names


class _Start(NamedTuple):
    """A trained layer at initialisation, with what every record divides by: per network its largest
    entry ``top`` and its norm (both fixed over a run); ``neuron_dim`` is the dimension a neuron's
    weights run along (``-1`` for ``W``'s rows, ``-2`` for ``V``'s columns)."""

    weights: torch.Tensor
    top: torch.Tensor
    norm: torch.Tensor
    neuron_dim: int

    @classmethod
    def of(cls, weights: torch.Tensor, neuron_dim: int) -> _Start:
        top = weights.abs().flatten(1).amax(dim=1)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        neuron = torch.linalg.vector_norm(weights / safe.reshape(-1, 1, 1), dim=neuron_dim)
        return cls(weights, top, torch.linalg.vector_norm(neuron, dim=-1) * safe, neuron_dim)

    def select(self, kept: torch.Tensor) -> _Start:
        return _Start(self.weights[kept], self.top[kept], self.norm[kept], self.neuron_dim)


def _starts(init: Params, regime: str) -> list[_Start]:
    """The trained layers of ``init`` (``W`` first) as :class:`_Start` s."""
    enc, dec = trained_layers(regime)
    return ([_Start.of(init.W, -1)] if enc else []) + ([_Start.of(init.V, -2)] if dec else [])  # type: ignore[arg-type]


def _count(mask: torch.Tensor) -> torch.Tensor:
    """The number of true entries of each network's ``mask`` (``B x ...``): summed as bytes into 32-bit
    counts while they fit (a boolean or 64-bit sum is 20x slower on the CPU)."""
    flat = mask.flatten(1)
    if flat.shape[1] < 2**31:
        return flat.view(torch.uint8).sum(dim=1, dtype=torch.int32)
    return flat.sum(dim=1)


def _movement(cur: Params, starts: list[_Start], D: torch.Tensor | None, D0: torch.Tensor | None,
              radius: torch.Tensor | None, left: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per network (columns), the rows of :func:`_movement_names`: absolute, relative and largest
    single-neuron movement of each trained layer, the share of activation patterns flipped, and the
    share of neurons that have left their safe radius ``radius`` so far (``left``, ``B x m``, updated
    with the neurons now at least that far from their start and returned; without ``radius``, as
    it is).

    Each layer's change is divided by its largest entry (or the start's, if larger) before the
    norms, so weights near 1e-160 (whose squares underflow) and changes near 1e200 (whose squares
    overflow) still give the right numbers; the relative movement of a layer that started at zero
    is NaN. Four passes over a layer: the change, its largest entry, the division, the neurons'
    norms (whose norm is the layer's)."""
    rows = []
    moved_W = None
    for st in starts:
        delta = (cur.W if st.neuron_dim == -1 else cur.V) - st.weights  # type: ignore[operator]
        peak = delta.abs().flatten(1).amax(dim=1)  # (14x faster than vector_norm's ord=inf on the CPU)
        scale = torch.maximum(st.top, peak)
        scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
        neuron = torch.linalg.vector_norm(delta.div_(scale.reshape(-1, 1, 1)), dim=st.neuron_dim)
        distance = torch.linalg.vector_norm(neuron, dim=-1) * scale
        rows += [distance, torch.where(st.top > 0, distance / st.norm, torch.full_like(distance, math.nan)),
                 neuron.amax(dim=-1) * scale]
        if st.neuron_dim == -1:
            moved_W = neuron * scale.reshape(-1, 1)
    if D is not None and D0 is not None:
        rows.append(_count(D != D0).double() / D[0].numel())
        if radius is not None:
            left = left | (moved_W >= radius)  # type: ignore[operator]
        rows.append(left.double().mean(dim=-1))  # type: ignore[union-attr]
    return torch.stack([r.double() for r in rows]), left


def _metrics(records: list[tuple[int, np.ndarray, torch.Tensor]], final: Params, init: Params,
             X: torch.Tensor, D0: torch.Tensor | None, regime: str, stop: np.ndarray, record_every: int,
             ntk: _NTKRecorder | None, ntk_every: int | None,
             left: torch.Tensor | None) -> list[dict[str, np.ndarray]]:
    """Each network's metric histories: the records at the cadence up to its stopping step, and one
    at the stopping step itself (from its final, frozen parameters) when that is off the cadence."""
    batch = len(stop)
    enc, dec = trained_layers(regime)
    names = _movement_names(enc, dec)
    tail = None
    if (stop % record_every).any():  # some network stopped off the cadence: its last record, from its final state
        values, _ = _movement(final, _starts(init, regime), features(final, X).D if enc else None, D0, None, left)
        tail = values.cpu().numpy()
    table = np.full((len(records), len(names), batch), np.nan)
    steps = np.array([k for k, _, _ in records])
    present = np.zeros((len(records), batch), dtype=bool)
    for r, (_, slots, values) in enumerate(records):
        table[r][:, slots] = values.double().cpu().numpy()
        present[r, slots] = True
    if ntk is not None:
        ntk.finish(final, X, stop, ntk_every)  # type: ignore[arg-type]
    out = []
    for b in range(batch):
        keep = present[:, b] & (steps <= stop[b])
        metrics = {"step": steps[keep]}
        metrics.update({name: table[keep, i, b] for i, name in enumerate(names)})
        if stop[b] % record_every:
            metrics = {name: np.append(v, stop[b] if name == "step" else tail[names.index(name), b])  # type: ignore[index]
                       for name, v in metrics.items()}
        if ntk is not None:
            metrics.update({name: np.asarray(v) for name, v in ntk.values[b].items()})
        out.append(metrics)
    return out


def _lambda_max_or_none(params: Params, X: torch.Tensor, regime: str) -> float | None:
    """A rough ``lambda_max(Theta(0))`` (:data:`HINT_ITERATIONS` Lanczos steps, bounded in time and
    memory) for the divergence message, or ``None`` when it cannot be had (a zero kernel, an
    overflow, no memory): the message must never fail and never cost the finished run."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unconverged rough estimate is what we asked for
            return auto_lr(params, X, regime, max_iter=HINT_ITERATIONS, tol=1e-2)[1]
    except (AedynError, RuntimeError, ArithmeticError, ValueError, MemoryError):
        return None


def train_memory(n: int, d: int, width: int, dtype: str | torch.dtype, regime: str, *, steps: int,
                 record_every: int, lr_auto: bool, ntk_every: int | None, batch: int = 1) -> MemoryEstimate:
    """Bytes :func:`train_batch` allocates for ``batch`` networks (one for :func:`train`):
    parameters (the caller's initial networks, the run's copy of them, the current ones, the final
    ones, their gradients and a temporary), activations (``A``, ``R V``, the masks and the initial
    masks), the loss and metric histories, Lanczos for ``lr="auto"`` (or the short one of a
    divergence hint) and, with ``ntk_every``, two NTK operators per network, their eigensolvers
    and drift."""
    s = torch.empty(0, dtype=resolve_dtype(dtype)).element_size()
    est = MemoryEstimate()
    est.add("parameters", batch * 6 * width * d * (1 if regime == "tied" else 2) * s)
    est.add("activations", batch * (3 * n * width * s + 3 * n * width))
    est.add("loss history", batch * 8 * (steps + 1), on_device=False)
    est.add("metric history", batch * 64 * 8 * (steps // record_every + 2), on_device=False)
    iterations = AUTO_LR_ITERATIONS if lr_auto else HINT_ITERATIONS
    for part, size in operator_memory(n, d, width, s, regime, which="max", max_iter=iterations).items():
        est.add(f"step-size {part}", size * (batch if lr_auto else 1))
    if ntk_every is not None:
        for part, size in operator_memory(n, d, width, s, regime, which="both", drift=True).items():
            est.add(part, size * (2 * batch if part == "NTK operator" else 1))  # Theta(0) and Theta(t)
    return est


def _dtype_name(params: Params) -> str:
    return str(params.W.dtype).removeprefix("torch.")


RECORD_DENSE_CPU = 2048
"""The NTK metrics recorded during training come from the dense ``Theta`` (one ``eigvalsh``, and
the exact drift from the same matrix) while ``n*d`` is at most this on the CPU, and up to
:data:`aedyn.ntk.DENSE_LIMIT` on CUDA, where the iterative solvers' many small steps cost far
more than one dense solve; above, Lanczos and LOBPCG (to ``1e-6``) and the probe estimate. (The
decoder regime's extremes are always exact, from its ``n x n`` factor.) At ``n d = 2048`` one dense
``eigvalsh`` takes 0.66 s on one thread, LOBPCG near ``m ≈ n`` 1.6 s without converging (E2 at
``n = 256, d = 8``)."""


class _NTKRecorder:
    """The NTK metrics of :data:`METRICS` (extremes of ``Theta(t)``, drift from ``Theta(0)``) of
    each network of a batch, one network at a time (each is an eigenvalue solve)."""

    def __init__(self, init: Params, X: torch.Tensor, regime: str) -> None:
        self.regime = regime
        self.batch = init.W.shape[0]
        self.initial = [NTKOperator(init.network(b), X if X.ndim == 2 else X[b], regime) for b in range(self.batch)]
        self.drift_method: str | None = None
        self.values: list[dict[str, list[float]]] = [{} for _ in range(self.batch)]

    def _one(self, b: int, k: int, net: Params, Xb: torch.Tensor) -> None:
        op = NTKOperator(net, Xb, self.regime, check_finite=False)
        if self.regime != "decoder" and op.dim <= (DENSE_LIMIT if op.X.is_cuda else RECORD_DENSE_CPU):
            ev = torch.linalg.eigvalsh(op.dense())  # the drift uses this dense kernel too
            lam_min, lam_max = float(ev[0]), float(ev[-1])
        else:
            ext = op.extremes(tol=1e-6)
            lam_min, lam_max = ext.min, ext.max
        drift = ntk_drift(op, self.initial[b])
        self.drift_method = drift.method
        for name, v in (("ntk_step", k), ("ntk_lambda_min", lam_min), ("ntk_lambda_max", lam_max),
                        ("ntk_drift", drift.value)):
            self.values[b].setdefault(name, []).append(v)

    def record(self, k: int, cur: Params, X: torch.Tensor, slots: np.ndarray, alive: np.ndarray) -> None:
        """At step ``k``: every network (slot ``j`` is network ``slots[j]``) that has not stopped before ``k``."""
        for j in np.flatnonzero(alive):
            self._one(int(slots[j]), k, cur.network(int(j)), X if X.ndim == 2 else X[j])

    def finish(self, final: Params, X: torch.Tensor, stop: np.ndarray, ntk_every: int) -> None:
        """At each network's stopping step, when that is off the cadence (from its final parameters)."""
        for b in range(self.batch):
            if stop[b] % ntk_every:
                self._one(b, int(stop[b]), final.network(b), X if X.ndim == 2 else X[b])


def _message(status: str, k: int, losses: np.ndarray, eta: float, eta_v: float, target: float,
             divergence_factor: float, lambda_max: float | None, lr_decoder: float | None, floor: float,
             dtype: str) -> str:
    """One sentence on how the run ended and, where useful, what to do next. Built only from
    numbers already computed, so it cannot fail."""
    L0 = losses[0]

    def rel(value: float) -> float:
        return value / L0 if L0 > 0 else 0.0

    if status == "converged":
        if L0 == 0:
            return "the loss is already zero at initialisation"
        return f"reached {target:g} x the initial loss after {k} steps"
    if status == "max_steps":
        below = np.flatnonzero(losses <= floor)
        if below.size:
            return (f"step budget of {k} spent at {rel(losses[-1]):.3g} x the initial loss; the loss reached the "
                    f"{dtype} rounding floor ({rel(floor):.1e} x initial) at step {int(below[0])} and cannot fall "
                    f"further in this precision: a --target above {rel(floor):.0e} stops there")
        return (f"step budget of {k} spent at {rel(losses[-1]):.3g} x the initial loss; "
                "raise --steps to go further")
    what = "not finite" if not math.isfinite(losses[-1]) else f"{rel(losses[-1]):.3g} x its initial value"
    if lambda_max is not None and math.isfinite(lambda_max) and lambda_max > 0:
        suggestion = f"--lr {0.5 / lambda_max:.3g} (half of 1/lambda_max of the NTK at initialisation)"
    else:
        suggestion = f"--lr {eta / 10:.3g} or --lr auto"
    lr_text = f"eta = {eta:.3g}" + (f", decoder eta = {eta_v:.3g}" if lr_decoder is not None else "")
    return (f"diverged at step {k}: the loss is {what} (limit {divergence_factor:g}x) with {lr_text}; "
            f"try a smaller step, e.g. {suggestion}")
