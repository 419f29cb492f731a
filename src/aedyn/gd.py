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
from typing import Any

import numpy as np
import torch

from aedyn._check import check_choice, check_count, check_float, check_int, check_positive
from aedyn._meta import environment, jsonable
from aedyn._tensor import resolve_dtype
from aedyn.errors import AedynError
from aedyn.files import read_json, write_json
from aedyn.model import Params, Tangent, as_params, check_input, check_regime, evaluate, trained_layers
from aedyn.ntk import NTKOperator, ntk_drift, ntk_extremes, operator_memory
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
    Non-finite and non-positive losses are dropped; ``None`` when fewer than 3 remain."""
    loss = np.asarray(loss, dtype=np.float64)
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
    quantities at ``"ntk_step"``). ``params`` and ``init`` are ``None`` for a result reloaded
    from JSON.
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


def auto_lr(params: Params, X: torch.Tensor, regime: str, *, max_iter: int = AUTO_LR_ITERATIONS,
            tol: float = 1e-4) -> tuple[float, float]:
    """``(eta, lambda_max)`` with ``eta = 1 / lambda_max(Theta(0))`` of the finite-width NTK."""
    lam = ntk_extremes(params, X, regime, which="max", tol=tol, max_iter=max_iter).max
    if not (math.isfinite(lam) and lam > 0 and math.isfinite(1.0 / lam)):
        raise AedynError(f"the NTK at initialisation has largest eigenvalue {lam:g}, so lr='auto' is undefined "
                         f"(alpha = {params.alpha:g}: an output scale or initial weights this small, or a zero "
                         "decoder, leave no gradient to follow); use larger scales, or a step size with --lr")
    return 1.0 / lam, lam


def apply_step(params: Params, grads: Tangent, eta: float, eta_v: float) -> None:
    """``theta <- theta - eta * grad`` in place (``eta_v`` for the decoder); ``None`` grads skip a layer."""
    if grads.W is not None:
        params.W.add_(grads.W, alpha=-eta)
    if grads.V is not None:
        params.V.add_(grads.V, alpha=-eta_v)  # type: ignore[union-attr]


def check_train_options(regime: str, *, lr: float | str = "auto", lr_decoder: float | None = None,
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
    if lr_decoder is not None:
        if regime not in ("joint", "decoder"):
            raise AedynError(f"lr_decoder sets the decoder's step, but regime {regime!r} does not train a separate "
                             "decoder; drop --lr-decoder")
        lr_decoder = check_positive(lr_decoder, "lr_decoder")
    return {"lr": lr, "lr_decoder": lr_decoder,
            "steps": check_int(steps, "steps", minimum=0),
            "target": check_float(target, "target (relative loss)", low=0.0, high=1.0, high_open=True),
            "record_every": check_count(record_every, "record_every"),
            "divergence_factor": check_float(divergence_factor, "divergence_factor", low=1.0, low_open=True),
            "ntk_every": None if ntk_every is None else check_count(ntk_every, "ntk_every")}


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
    says which). ``callback(k, loss)`` is called after each evaluation (progress bars).
    ``params`` is not modified. Parameters that are not finite, or a loss that is already not
    finite at initialisation (an output scale too large for the dtype), are an :class:`AedynError`.
    """
    params = as_params(params, regime)
    opts = check_train_options(regime, lr=lr, lr_decoder=lr_decoder, steps=steps, target=target,
                               record_every=record_every, divergence_factor=divergence_factor, ntk_every=ntk_every)
    lr, lr_decoder, steps, target = opts["lr"], opts["lr_decoder"], opts["steps"], opts["target"]
    record_every, divergence_factor, ntk_every = opts["record_every"], opts["divergence_factor"], opts["ntk_every"]
    X = check_input(X, params)
    if X.ndim != 2 or X.shape[0] == 0:
        raise AedynError(f"X must be a non-empty n x d matrix; got shape {tuple(X.shape)}")
    if params.W.ndim != 2:
        raise AedynError("train() runs one network; parameters with a batch dimension are for the batched engine")
    for name, t in (("W", params.W), ("V", params.V)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise AedynError(f"the initial {name} contains NaN or inf; start from finite parameters")
    t0 = time.perf_counter()
    L0 = float(evaluate(params, X, regime, check_finite=False).loss)
    if not math.isfinite(L0):
        raise AedynError(f"the loss overflows at initialisation (L(0) = {L0:g} in {_dtype_name(params)}): the output "
                         f"scale alpha = {params.alpha:g} with these weights is too large; use a smaller --init-scale, "
                         "--kappa or --nu")
    lambda_max = None
    if lr == "auto":
        eta, lambda_max = auto_lr(params, X, regime)
    else:
        eta = float(lr)
    eta_v = eta if lr_decoder is None else float(lr_decoder)

    cur = params.clone()
    recorder = _Recorder(params.clone(), X, regime, with_ntk=ntk_every is not None)
    losses = np.empty(steps + 1)
    status, k = "max_steps", 0
    for k in range(steps + 1):
        ev = evaluate(cur, X, regime, check_finite=False)
        losses[k] = loss_k = float(ev.loss)
        if callback is not None:
            callback(k, loss_k)
        if not math.isfinite(loss_k) or loss_k > divergence_factor * L0:
            status = "diverged"
        elif loss_k <= target * L0:
            status = "converged"
        stop = status != "max_steps" or k == steps
        if k % record_every == 0 or stop:
            recorder.movement(k, cur, ev.features.D)
        if ntk_every is not None and (k % ntk_every == 0 or stop):
            recorder.ntk(k, cur)
        if stop:
            break
        apply_step(cur, ev.grads, eta, eta_v)

    losses = losses[:k + 1]
    if status == "diverged" and lambda_max is None:
        lambda_max_hint = _lambda_max_or_none(params, X, regime)
    else:
        lambda_max_hint = lambda_max
    data_norm2 = float(X.square().sum())
    floor = rounding_floor(data_norm2, params.W.dtype)
    message = _message(status, k, losses, eta, eta_v, target, divergence_factor, lambda_max_hint, lr_decoder, floor,
                       _dtype_name(params))
    config = {"regime": regime, "lr": lr, "lr_decoder": lr_decoder, "steps": steps, "target": target,
              "record_every": record_every, "divergence_factor": divergence_factor, "n": int(X.shape[0]),
              "d": int(X.shape[1]), "data_norm2": data_norm2, "width": params.width, "alpha": params.alpha,
              "dtype": _dtype_name(params), "device": str(params.W.device),
              "ntk_every": ntk_every, "ntk_drift_method": recorder.drift_method}
    return TrainResult(status=status, steps=k, loss=losses, metrics=recorder.arrays(), lr=eta,
                       lr_decoder=eta_v if recorder.dec else None, regime=regime,
                       wall_time=time.perf_counter() - t0, message=message, config=config,
                       lambda_max=lambda_max, params=cur, init=recorder.init)


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
                 record_every: int, lr_auto: bool, ntk_every: int | None) -> MemoryEstimate:
    """Bytes :func:`train` allocates: parameters (the caller's initial network, the run's copy of it,
    the current one, its gradient and a temporary), activations (``A``, ``R V``, the masks and the
    initial masks), the loss and metric histories, Lanczos for ``lr="auto"`` (or the short one of
    a divergence hint) and, with ``ntk_every``, two NTK operators, their eigensolvers and drift."""
    s = torch.empty(0, dtype=resolve_dtype(dtype)).element_size()
    est = MemoryEstimate()
    est.add("parameters", 5 * width * d * (1 if regime == "tied" else 2) * s)
    est.add("activations", 3 * n * width * s + 3 * n * width)
    est.add("loss history", 8 * (steps + 1), on_device=False)
    est.add("metric history", 64 * 8 * (steps // record_every + 2), on_device=False)
    iterations = AUTO_LR_ITERATIONS if lr_auto else HINT_ITERATIONS
    for part, size in operator_memory(n, d, width, s, regime, which="max", max_iter=iterations).items():
        est.add(f"step-size {part}", size)
    if ntk_every is not None:
        for part, size in operator_memory(n, d, width, s, regime, which="both", drift=True).items():
            est.add(part, size * (2 if part == "NTK operator" else 1))  # Theta(0) and Theta(t)
    return est


def _dtype_name(params: Params) -> str:
    return str(params.W.dtype).removeprefix("torch.")


class _Recorder:
    """The metrics of :data:`METRICS` at the cadences the caller chooses."""

    def __init__(self, init: Params, X: torch.Tensor, regime: str, *, with_ntk: bool) -> None:
        self.init, self.X, self.regime = init, X, regime
        self.enc, self.dec = trained_layers(regime)
        self.D0 = (X @ init.W.mT > 0) if self.enc else None
        self.ntk0 = NTKOperator(init, X, regime) if with_ntk else None
        self.drift_method: str | None = None
        self.values: dict[str, list[float]] = {"step": []}

    def _add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def movement(self, k: int, cur: Params, D: torch.Tensor) -> None:
        """Absolute, relative and largest single-neuron movement of each trained layer; pattern flips.
        The relative movement of a layer that started at zero is undefined (NaN)."""
        self._add("step", k)
        layers = (("W", cur.W, self.init.W, -1),) if self.enc else ()
        if self.dec:
            layers += (("V", cur.V, self.init.V, -2),)  # type: ignore[assignment]
        for name, now, start, neuron_dim in layers:
            delta = now - start
            self._add(f"weight_distance_{name}", float(delta.norm()))
            self._add(f"weight_change_{name}", _norm_ratio(delta, start))
            self._add(f"max_neuron_change_{name}", float(delta.norm(dim=neuron_dim).max()))
        if self.enc:
            self._add("pattern_flips", int(torch.count_nonzero(D != self.D0)) / D.numel())

    def ntk(self, k: int, cur: Params) -> None:
        """Extremes of ``Theta(t)`` and its drift from ``Theta(0)``."""
        op = NTKOperator(cur, self.X, self.regime, check_finite=False)
        ext = op.extremes(tol=1e-6)
        drift = ntk_drift(op, self.ntk0)  # type: ignore[arg-type]
        self.drift_method = drift.method
        self._add("ntk_step", k)
        self._add("ntk_lambda_min", ext.min)
        self._add("ntk_lambda_max", ext.max)
        self._add("ntk_drift", drift.value)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v) for name, v in self.values.items()}


def _norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a||_F / ||b||_F``, both scaled by the largest entry first, so that tiny weights (entries
    near 1e-160, whose squares underflow) still give the ratio; NaN when ``b = 0``."""
    top = float(b.abs().max())
    if not top > 0:
        return math.nan
    scale = max(top, float(a.abs().max()))
    if not math.isfinite(scale):  # a diverged layer: the plain ratio is inf or NaN, as it should be
        return float(a.norm() / b.norm())
    return float((a / scale).norm() / (b / scale).norm())


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
