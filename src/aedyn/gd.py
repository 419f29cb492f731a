"""Exact full-batch gradient descent on the autoencoder, and what it records.

    theta <- theta - eta * dL/dtheta        (no momentum, no minibatches)

with one step size, or one for the encoder (``lr``) and one for the decoder (``lr_decoder``).
``lr="auto"`` sets ``eta = 1 / lambda_max(Theta(0))``, the largest eigenvalue of the regime's
finite-width NTK at initialisation, found matrix-free by Lanczos: in the linearised dynamics
``R(k+1) = (I - eta Theta) R(k)`` that is the largest step that never amplifies any mode.

The run stops when ``L(k) <= target * L(0)`` (``converged``), when the step budget is spent
(``max_steps``), or when the loss is not finite or exceeds ``divergence_factor * L(0)``
(``diverged``). The loss is kept at every step; the weight movement and the activation-pattern
flips at a cadence.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aedyn._meta import environment, jsonable
from aedyn._tensor import as_tensor
from aedyn.errors import AedynError
from aedyn.model import Params, Tangent, as_params, evaluate, trained_layers
from aedyn.ntk import NTKOperator, ntk_drift, ntk_extremes

STATUSES = ("converged", "max_steps", "diverged")

METRICS = {
    "weight_change_W": "||W - W0||_F / ||W0||_F",
    "weight_change_V": "||V - V0||_F / ||V0||_F",
    "max_neuron_change_W": "max_r ||w_r - w_r(0)||",
    "max_neuron_change_V": "max_r ||v_r - v_r(0)||",
    "pattern_flips": "share of entries of 1{w_r . x_i > 0} that differ from initialisation",
    "ntk_lambda_min": "lambda_min(Theta(t)) of the finite-width NTK (with ntk_every)",
    "ntk_lambda_max": "lambda_max(Theta(t)) (with ntk_every)",
    "ntk_drift": "||Theta(t) - Theta(0)||_F / ||Theta(0)||_F (with ntk_every; exact or probe estimate)",
}


@dataclass(frozen=True)
class RateFit:
    """Least-squares line through ``log L(k)`` over steps ``start..stop``: ``rate = exp(slope)`` is
    the per-step contraction of the loss; ``r2`` the coefficient of determination."""

    slope: float
    rate: float
    r2: float
    start: int
    stop: int


def fit_linear_rate(loss: np.ndarray, start: int | None = None, stop: int | None = None) -> RateFit | None:
    """Fit ``log L(k) = a + k * slope`` over ``start <= k <= stop`` (default: the last half of the
    run). Non-finite and non-positive losses are dropped; ``None`` when fewer than 3 remain."""
    loss = np.asarray(loss, dtype=np.float64)
    last = len(loss) - 1
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
    return RateFit(float(slope), float(math.exp(slope)), r2, int(start), int(stop))


@dataclass
class TrainResult:
    """One training run as a plain record: history, metrics, status, step sizes, parameters.

    ``loss[k]`` is ``L`` at the ``k``-th iterate (``k = 0..steps``); ``metrics`` maps each recorded
    quantity (see :data:`METRICS`) and ``"step"`` to arrays at the recording cadence (the NTK
    quantities at ``"ntk_step"``). ``params``
    and ``init`` are ``None`` for a result reloaded from JSON.
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
        """``L(k) / L(0)``."""
        return self.loss / self.loss[0]

    @property
    def rate_fit(self) -> RateFit | None:
        """The linear-rate fit over the last half of the run (see :func:`fit_linear_rate`)."""
        return fit_linear_rate(self.loss)

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
        out: dict[str, Any] = {
            "status": self.status,
            "steps": self.steps,
            "final_relative_loss": float(self.relative_loss[-1]),
            "lr": self.lr,
            "lr_decoder": self.lr_decoder,
            "lambda_max": self.lambda_max,
            "rate": self.rate,
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
    def from_record(cls, record: dict[str, Any]) -> TrainResult:
        """Rebuild a result (without parameters) from :meth:`to_record`'s dict."""
        if record.get("kind") != "aedyn.train":
            raise AedynError("this JSON is not an aedyn training record (no kind 'aedyn.train'); "
                             "pass a file written by 'aedyn train --out'")
        nan = float("nan")
        return cls(
            status=record["status"], steps=int(record["steps"]),
            loss=np.array([nan if v is None else v for v in record["loss"]], dtype=np.float64),
            metrics={k: np.array([nan if x is None else x for x in v]) for k, v in record["metrics"].items()},
            lr=record["lr"], lr_decoder=record["lr_decoder"], regime=record["regime"],
            wall_time=record["wall_time"], message=record["message"], config=record.get("config", {}),
            lambda_max=record.get("lambda_max"),
        )

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_record` as JSON to ``path`` (which must not exist yet)."""
        path = Path(path)
        if path.exists():
            raise AedynError(f"{path} already exists; choose another path or remove it first")
        path.write_text(json.dumps(self.to_record(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> TrainResult:
        """Read a record written by :meth:`save` (or ``aedyn train --out``)."""
        try:
            record = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise AedynError(f"{path} does not exist; pass a file written by 'aedyn train --out'") from None
        except json.JSONDecodeError as exc:
            raise AedynError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_record(record)


def auto_lr(params: Params, X: torch.Tensor, regime: str) -> tuple[float, float]:
    """``(eta, lambda_max)`` with ``eta = 1 / lambda_max(Theta(0))`` of the finite-width NTK."""
    lam = ntk_extremes(params, X, regime, which="max", tol=1e-4, max_iter=200).max
    if not (math.isfinite(lam) and lam > 0):
        raise AedynError(f"the NTK at initialisation has largest eigenvalue {lam:g}, so lr='auto' is undefined "
                         "(is the decoder all zeros? with weak training nu must be > 0); pass --lr")
    return 1.0 / lam, lam


def apply_step(params: Params, grads: Tangent, eta: float, eta_v: float) -> None:
    """``theta <- theta - eta * grad`` in place (``eta_v`` for the decoder); ``None`` grads skip a layer."""
    if grads.W is not None:
        params.W.add_(grads.W, alpha=-eta)
    if grads.V is not None:
        params.V.add_(grads.V, alpha=-eta_v)  # type: ignore[union-attr]


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
    ``params`` is not modified.
    """
    params = as_params(params, regime)
    X = as_tensor(X, dtype=params.W.dtype, device=params.W.device, name="X")
    _check_train_args(X, params, regime, lr, lr_decoder, steps, target, record_every, divergence_factor, ntk_every)
    t0 = time.perf_counter()
    lambda_max = None
    if lr == "auto":
        eta, lambda_max = auto_lr(params, X, regime)
    else:
        eta = float(lr)
    eta_v = eta if lr_decoder is None else float(lr_decoder)

    cur = params.clone()
    recorder = _Recorder(params.clone(), X, regime, with_ntk=ntk_every is not None)
    losses = np.empty(steps + 1)
    status, k, L0 = "max_steps", 0, math.nan
    for k in range(steps + 1):
        ev = evaluate(cur, X, regime)
        losses[k] = loss_k = float(ev.loss)
        if k == 0:
            L0 = loss_k
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
    message = _message(status, k, losses, eta, eta_v, target, divergence_factor, params, X, regime, lr_decoder)
    config = {"regime": regime, "lr": lr, "lr_decoder": lr_decoder, "steps": steps, "target": target,
              "record_every": record_every, "divergence_factor": divergence_factor, "n": int(X.shape[0]),
              "d": int(X.shape[1]), "width": params.width, "alpha": params.alpha,
              "dtype": str(params.W.dtype).removeprefix("torch."), "device": str(params.W.device),
              "ntk_every": ntk_every, "ntk_drift_method": recorder.drift_method}
    return TrainResult(status=status, steps=k, loss=losses, metrics=recorder.arrays(), lr=eta,
                       lr_decoder=eta_v if recorder.dec else None, regime=regime,
                       wall_time=time.perf_counter() - t0, message=message, config=config,
                       lambda_max=lambda_max, params=cur, init=recorder.init)


class _Recorder:
    """The metrics of :data:`METRICS` at the cadences the caller chooses."""

    def __init__(self, init: Params, X: torch.Tensor, regime: str, *, with_ntk: bool) -> None:
        self.init, self.X, self.regime = init, X, regime
        self.enc, self.dec = trained_layers(regime)
        self.D0 = (X @ init.W.mT > 0) if self.enc else None
        self.norm_W0 = float(init.W.norm())
        self.norm_V0 = float(init.V.norm()) if self.dec else 1.0  # type: ignore[union-attr]
        self.ntk0 = NTKOperator(init, X, regime) if with_ntk else None
        self.drift_method: str | None = None
        self.values: dict[str, list[float]] = {"step": []}

    def _add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def movement(self, k: int, cur: Params, D: torch.Tensor) -> None:
        """Relative and largest single-neuron movement of each trained layer; pattern flips."""
        self._add("step", k)
        if self.enc:
            dW = cur.W - self.init.W
            self._add("weight_change_W", float(dW.norm()) / self.norm_W0)
            self._add("max_neuron_change_W", float(dW.norm(dim=-1).max()))
            self._add("pattern_flips", float((D != self.D0).double().mean()))
        if self.dec:
            dV = cur.V - self.init.V  # type: ignore[operator]
            self._add("weight_change_V", float(dV.norm()) / max(self.norm_V0, 1e-300))
            self._add("max_neuron_change_V", float(dV.norm(dim=-2).max()))

    def ntk(self, k: int, cur: Params) -> None:
        """Extremes of ``Theta(t)`` and its drift from ``Theta(0)``."""
        op = NTKOperator(cur, self.X, self.regime)
        ext = op.extremes(tol=1e-6)
        drift = ntk_drift(op, self.ntk0)  # type: ignore[arg-type]
        self.drift_method = drift.method
        self._add("ntk_step", k)
        self._add("ntk_lambda_min", ext.min)
        self._add("ntk_lambda_max", ext.max)
        self._add("ntk_drift", drift.value)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v) for name, v in self.values.items()}


def _message(status: str, k: int, losses: np.ndarray, eta: float, eta_v: float, target: float,
             divergence_factor: float, params: Params, X: torch.Tensor, regime: str,
             lr_decoder: float | None) -> str:
    if status == "converged":
        return f"reached {target:g} x the initial loss after {k} steps"
    if status == "max_steps":
        return (f"step budget of {k} spent at {losses[-1] / losses[0]:.3g} x the initial loss; "
                "raise --steps to go further")
    what = "not finite" if not math.isfinite(losses[-1]) else f"{losses[-1] / losses[0]:.3g} x its initial value"
    try:
        suggestion = f"--lr {0.5 * auto_lr(params, X, regime)[0]:.3g} (half of 1/lambda_max of the NTK) or --lr auto"
    except AedynError:
        suggestion = f"--lr {eta / 10:.3g}"
    lr_text = f"eta = {eta:.3g}" + (f", decoder eta = {eta_v:.3g}" if lr_decoder is not None else "")
    return (f"diverged at step {k}: the loss is {what} (limit {divergence_factor:g}x) with {lr_text}; "
            f"try a smaller step, e.g. {suggestion}")


def _check_train_args(X: torch.Tensor, params: Params, regime: str, lr: float | str, lr_decoder: float | None,
                      steps: int, target: float, record_every: int, divergence_factor: float,
                      ntk_every: int | None) -> None:
    if X.ndim != 2 or X.shape[0] == 0:
        raise AedynError(f"X must be a non-empty n x d matrix; got shape {tuple(X.shape)}")
    if X.shape[1] != params.dim:
        raise AedynError(f"X has d = {X.shape[1]} but the network was initialised for d = {params.dim}; "
                         "call init_params with the data's d")
    if params.W.ndim != 2:
        raise AedynError("train() runs one network; parameters with a batch dimension are for the batched engine")
    if not bool(torch.isfinite(X).all()):
        raise AedynError("X contains NaN or inf; validate it with aedyn.load_data or aedyn.data.validate")
    if isinstance(lr, str):
        if lr != "auto":
            raise AedynError(f"lr must be a positive number or 'auto'; got {lr!r}")
    elif not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise AedynError(f"lr must be a positive number or 'auto'; got {lr!r}")
    if lr_decoder is not None:
        if regime not in ("joint", "decoder"):
            raise AedynError(f"lr_decoder sets the decoder's step, but regime {regime!r} does not train a separate "
                             "decoder; drop --lr-decoder")
        if not (isinstance(lr_decoder, (int, float)) and math.isfinite(lr_decoder) and lr_decoder > 0):
            raise AedynError(f"lr_decoder must be a positive number; got {lr_decoder!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise AedynError(f"steps must be a non-negative integer; got {steps!r}")
    if not (isinstance(target, (int, float)) and 0 <= target < 1):
        raise AedynError(f"target (relative loss) must be in [0, 1); got {target!r}")
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise AedynError(f"record_every must be a positive integer; got {record_every!r}")
    if not (isinstance(divergence_factor, (int, float)) and divergence_factor > 1):
        raise AedynError(f"divergence_factor must be > 1; got {divergence_factor!r}")
    if ntk_every is not None and (isinstance(ntk_every, bool) or not isinstance(ntk_every, (int, np.integer))
                                  or ntk_every < 1):
        raise AedynError(f"ntk_every must be a positive integer or None; got {ntk_every!r}")

