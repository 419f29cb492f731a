"""A per-run certificate: did this run stay inside the regime the convergence proofs describe?

The proofs of linear convergence (Du et al. 2019 for supervised networks; Nguyen, Wong and Hegde
for autoencoders) rest on invariants of the whole trajectory. :func:`certify` checks each one
against what the run actually did:

1. **kernel**: ``lambda_min(Theta(t)) >= lambda_min(Theta(0)) / 2`` at every check, with
   ``Theta(0)`` positive definite. Measured: the smallest ratio ``lambda_min(Theta(t)) /
   lambda_min(Theta(0))`` over the run's NTK checks (``ntk_every`` and the stopping step); bound
   ``1/2``. A kernel singular at initialisation (``lambda_min <= SINGULAR lambda_max``, as for weak
   training with ``m < n``, whose NTK has rank at most ``m d < n d``) fails: the theorem assumes
   ``lambda_min(Theta(0)) > 0``.
2. **rate**: the loss contracts at least at ``1 - eta lambda_min(Theta(0)) / 2`` per step (the
   proofs' ``||r(k+1)||^2 <= (1 - eta lambda_0 / 2) ||r(k)||^2``) over every window. Measured: the
   worst window's per-step contraction ``(L(k+w) / L(k))^(1/w)`` over consecutive windows of ``w``
   steps from step 0 to the stopping step, or to the step where the loss reaches the rounding
   floor of its dtype (below it the loss cannot fall further); bound ``1 - eta lambda_min(Theta(0)) /
   2`` with ``eta`` the run's step (the smaller one if the decoder had its own). With ``Theta(0)``
   singular the bound is 1 and certifies nothing: the check fails.
3. **safe radius**: no neuron that stays within its safe radius ``min_i |w_r(0) . x_i| / ||x_i||``
   of its start can flip an activation pattern (:func:`aedyn.model.safe_radius`). The set ``S`` of
   neurons that never left it is judged at the recorded steps (the run's ``record_every`` and its
   stopping step: a neuron that left and came back between two records counts as inside, so a fine
   cadence makes the check stricter). Measured: ``lambda_min(Theta_S(0)) / lambda_min(Theta(0))``,
   the NTK at initialisation of the neurons in ``S`` alone, ``Theta_S(0) = sum_{r in S}
   Theta_r(0)``; bound ``1/2``. Reported beside it: the share of neurons in ``S``
   (``safe_share``) and the largest share of activation patterns flipped at a record. For weak
   training this proves the kernel invariant at every recorded step, not only at the NTK checks: a
   neuron's contribution ``Theta_r`` then depends on its activation pattern alone (its decoder
   column does not move), so ``Theta(t) >= Theta_S(t) = Theta_S(0)`` in the PSD order. For joint
   and tied training ``Theta_r`` also moves with ``w_r`` (and ``v_r``), and the check is the
   proofs' pattern argument only. The decoder regime moves no encoder: no pattern can flip, and
   the check holds (its measured value is NaN).

The certificate says "inside the NTK regime" only when all three hold. A run that took no step
(``steps = 0``) checks nothing: every invariant then holds trivially, and its certificate says it
is **vacuous** instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from aedyn.errors import AedynError
from aedyn.gd import TrainResult
from aedyn.model import Params, check_input
from aedyn.ntk import NTKOperator, ntk_extremes

SINGULAR = 1e-9
"""``lambda_min(Theta(0)) / lambda_max(Theta(0))`` at or below which the kernel counts as singular
(or ``100 eps`` of the dtype, if larger: ``1.2e-5`` in float32)."""
KERNEL_BOUND = 0.5
"""The proofs keep ``lambda_min(Theta(t))`` above this fraction of ``lambda_min(Theta(0))``."""
WINDOWS = 20
"""By default the loss is checked over this many consecutive windows of equal length."""
DENSE_LIMIT = 1024
"""The safe-radius check's ``lambda_min(Theta_S(0))`` comes from the dense kernel while ``n d`` is
at most this; above, from LOBPCG."""


@dataclass(frozen=True)
class Check:
    """One invariant: its name, the measured value, the bound, whether it holds, and the line that
    says so (measured value, bound, holds / fails)."""

    name: str
    measured: float
    bound: float
    holds: bool
    line: str


@dataclass(frozen=True)
class Certificate:
    """The checks of one run (:func:`certify`), the numbers they used, and the steps the run took."""

    regime: str
    checks: tuple[Check, ...]
    lambda_min0: float
    lambda_max0: float
    eta: float
    window: int
    kernel_checks: int
    safe_share: float | None
    pattern_flips: float | None
    steps: int

    @property
    def inside(self) -> bool:
        """Every invariant held: the run stayed inside the regime the theorem describes (trivially,
        when it is :attr:`vacuous`)."""
        return all(c.holds for c in self.checks)

    @property
    def vacuous(self) -> bool:
        """The run took no step, so nothing was checked along it: the certificate certifies nothing."""
        return self.steps == 0

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def verdict(self) -> str:
        if self.vacuous:
            return ("vacuous: the run took no step, so no invariant was checked along it (each holds only "
                    "trivially); nothing is certified")
        if self.inside:
            return "inside the NTK regime: every invariant the convergence proofs rely on held along this run"
        failed = [c.name for c in self.checks if not c.holds]
        return f"outside the NTK regime: the {' and '.join(failed)} invariant{'s' if len(failed) > 1 else ''} failed"

    def lines(self) -> list[str]:
        """One line per check, then the verdict."""
        return [c.line for c in self.checks] + [self.verdict]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = [asdict(c) for c in self.checks]
        out["inside"] = self.inside
        out["vacuous"] = self.vacuous
        out["verdict"] = self.verdict
        return out

    def columns(self) -> dict[str, Any]:
        """The flat column group of a table or the sweep store (``cert_*``)."""
        out: dict[str, Any] = {"cert_inside": self.inside}
        for c in self.checks:
            key = c.name.replace(" ", "_")
            out[f"cert_{key}"] = None if math.isnan(c.measured) else float(c.measured)
            out[f"cert_{key}_bound"] = float(c.bound)
            out[f"cert_{key}_holds"] = bool(c.holds)
        out["cert_safe_share"] = self.safe_share
        out["cert_pattern_flips"] = self.pattern_flips
        return out


CERTIFICATE_COLUMNS = ("cert_inside", "cert_kernel", "cert_kernel_bound", "cert_kernel_holds", "cert_rate",
                       "cert_rate_bound", "cert_rate_holds", "cert_safe_radius", "cert_safe_radius_bound",
                       "cert_safe_radius_holds", "cert_safe_share", "cert_pattern_flips")
"""The keys of :meth:`Certificate.columns`, in order."""


def columns_of(result: TrainResult) -> dict[str, Any]:
    """The certificate's column group of a run (:data:`CERTIFICATE_COLUMNS`), JSON-ready: ``None``
    for a value that is missing (no certificate: a diverged run, or one that did not certify) or
    not finite."""
    columns = {} if result.certificate is None else result.certificate.columns()
    out = {}
    for name in CERTIFICATE_COLUMNS:
        value = columns.get(name)
        out[name] = None if isinstance(value, float) and not math.isfinite(value) else value
    return out


def certificate_sentence(table: Any, by: Sequence[str]) -> list[str]:
    """For a table with the certificate's columns, one sentence per group of ``by``
    (:func:`certified_counts`): in how many runs the certificate held, and how many failed each
    invariant."""
    out = []
    for entry in certified_counts(table, by):
        if not entry["runs"]:
            continue
        failing = "; ".join(f"{name.replace('_', ' ')} fails in {k}" for name, k in entry["fails"].items() if k)
        label = ", ".join(f"{b} {entry[b]:g}" if isinstance(entry[b], float) else str(entry[b]) for b in by)
        out.append(f"Certificate, {label}: inside the NTK regime in {entry['inside']} of {entry['runs']} runs ("
                   f"{failing or 'every invariant holds'}).")
    return out


def certified_counts(table: Any, by: Sequence[str]) -> list[dict[str, Any]]:
    """For a table with the certificate's columns, per group of ``by``: the runs certified, the runs
    with a certificate, and how many failed each invariant (for ``summary.json``)."""
    out = []
    for key, g in table.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        known = g[g["cert_inside"].notna()]
        entry = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by, key, strict=True)}
        entry.update(inside=int(known["cert_inside"].astype(bool).sum()), runs=len(known))
        entry["fails"] = {name: int((~known[f"cert_{name}_holds"].astype(bool)).sum())
                          for name in ("kernel", "rate", "safe_radius")}
        out.append(entry)
    return out


def _holds(ok: bool) -> str:
    return "holds" if ok else "FAILS"


def _lambda_min(init: Params, keep: torch.Tensor, X: torch.Tensor, regime: str) -> float:
    """``lambda_min`` of the NTK at initialisation of the neurons ``keep`` alone, with the whole
    network's ``alpha`` (0 when no neuron is kept)."""
    if not bool(keep.any()):
        return 0.0
    params = Params(init.W[keep], None if init.V is None else init.V[:, keep], init.alpha)
    op = NTKOperator(params, X, regime)
    if op.dim <= DENSE_LIMIT:
        return float(torch.linalg.eigvalsh(op.dense())[0])
    return float(ntk_extremes(params, X, regime, which="min", tol=1e-6).min)


def certify(result: TrainResult, X: Any, *, window: int | None = None) -> Certificate:
    """Check the invariants of the convergence proofs along one run (see the module docstring).

    ``result`` must come from training in this process (it needs the initial parameters) with the
    NTK recorded (``ntk_every``: ``aedyn train --certify`` sets it); ``X`` is the data it trained
    on. ``window`` is the length in steps of the loss windows (default: the run cut into
    :data:`WINDOWS` equal windows)."""
    if not isinstance(result, TrainResult):
        raise AedynError(f"certify needs a TrainResult from train or run_job; got {type(result).__name__}")
    if result.init is None:
        raise AedynError("certify needs the run's initial parameters: certify the TrainResult that training returned, "
                         "not one reloaded from JSON")
    metrics = result.metrics
    if "ntk_lambda_min" not in metrics or len(metrics["ntk_lambda_min"]) == 0 or metrics["ntk_step"][0] != 0:
        raise AedynError("certify needs the NTK along the run: train with ntk_every set (aedyn train --certify sets "
                         "it)")
    init, regime = result.init, result.regime
    X = check_input(X, init)
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise AedynError(f"window must be a positive number of steps; got {window!r}")
    lam = np.asarray(metrics["ntk_lambda_min"], dtype=np.float64)
    lam0, lam_max0 = float(lam[0]), float(metrics["ntk_lambda_max"][0])
    threshold = max(SINGULAR, 100 * torch.finfo(init.W.dtype).eps)
    singular = not (lam0 > threshold * lam_max0)
    checks = [_kernel_check(lam, lam0, lam_max0, singular)]
    eta = float(result.lr) if result.lr_decoder is None else min(float(result.lr), float(result.lr_decoder))
    rate, used = _rate_check(result, eta, lam0, window, singular)
    checks.append(rate)
    safe, share, flips = _safe_check(result, X, lam0, singular)
    checks.append(safe)
    return Certificate(regime=regime, checks=tuple(checks), lambda_min0=lam0, lambda_max0=lam_max0, eta=eta,
                       window=used, kernel_checks=len(lam), safe_share=share, pattern_flips=flips,
                       steps=int(result.steps))


def _kernel_check(lam: np.ndarray, lam0: float, lam_max0: float, singular: bool) -> Check:
    what = "lambda_min(Theta(t)) / lambda_min(Theta(0))"
    if singular:
        return Check("kernel", math.nan, KERNEL_BOUND, False,
                     f"kernel: lambda_min(Theta(0)) = {lam0:.3g} is {lam0 / lam_max0 if lam_max0 > 0 else 0:.1e} x "
                     "lambda_max: the kernel is singular at initialisation, and the theorem needs "
                     "lambda_min(Theta(0)) > 0 (weak training with m <= n has rank at most m d): FAILS")
    ratio = float(np.min(lam / lam0))
    ok = bool(ratio >= KERNEL_BOUND)
    return Check("kernel", ratio, KERNEL_BOUND, ok,
                 f"kernel: smallest {what} over {len(lam)} checks = {ratio:.4g}, bound >= {KERNEL_BOUND:g}: "
                 f"{_holds(ok)}")


def _rate_check(result: TrainResult, eta: float, lam0: float, window: int | None,
                singular: bool) -> tuple[Check, int]:
    loss = np.asarray(result.loss, dtype=np.float64)
    floor = np.flatnonzero(loss <= result.floor)
    last = int(floor[0]) if floor.size else len(loss) - 1
    bound = 1.0 - eta * max(lam0, 0.0) / 2
    used = window if window is not None else max(1, math.ceil(last / WINDOWS))
    if last == 0:
        return Check("rate", math.nan, bound, True, "rate: no step before the target or the rounding floor: "
                                                    "nothing to check: holds"), used
    worst = 0.0
    for start in range(0, last, used):
        stop = min(start + used, last)
        a, b = loss[start], loss[stop]
        if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
            worst = math.inf if not math.isfinite(b) else worst
            continue
        worst = max(worst, (b / a) ** (1.0 / (stop - start)))
    ok = bool(not singular and worst <= bound * (1 + 1e-12))
    why = "; Theta(0) is singular, so the bound certifies nothing" if singular else ""
    return Check("rate", float(worst), float(bound), ok,
                 f"rate: worst per-step loss contraction over windows of {used} steps (to step {last}) = {worst:.6g}, "
                 f"bound <= 1 - eta lambda_min(Theta(0))/2 = {bound:.6g}{why}: {_holds(ok)}"), used


def _safe_check(result: TrainResult, X: torch.Tensor, lam0: float,
                singular: bool) -> tuple[Check, float | None, float | None]:
    if result.left_safe_radius is None:
        return Check("safe radius", math.nan, KERNEL_BOUND, True,
                     "safe radius: the encoder does not train, so no activation pattern can flip: holds"), None, None
    left = np.asarray(result.left_safe_radius, dtype=bool)
    share = float(1.0 - left.mean()) if left.size else 1.0
    flips_recorded = result.metrics.get("pattern_flips")
    flips = float(np.nanmax(flips_recorded)) if flips_recorded is not None and len(flips_recorded) else None
    init = result.init
    keep = torch.as_tensor(~left, device=init.W.device)  # type: ignore[union-attr]
    ratio = math.nan if singular else _lambda_min(init, keep, X, result.regime) / lam0  # type: ignore[arg-type]
    ok = bool(not singular and ratio >= KERNEL_BOUND)
    flipped = "-" if flips is None else f"{100 * flips:.3g}%"
    tail = (f"lambda_min of their NTK at initialisation = {ratio:.4g} x lambda_min(Theta(0)), bound >= {KERNEL_BOUND:g}"
            if not singular else "Theta(0) is singular, so no share of it can certify")
    return Check("safe radius", ratio, KERNEL_BOUND, ok,
                 f"safe radius: {100 * share:.3g}% of neurons never left theirs (at most {flipped} of activation "
                 f"patterns flipped); {tail}: {_holds(ok)}"), share, flips
