"""E1, linear convergence: does ``log L`` fall on a line, at the rate the kernels predict?

For every data set (sphere and digits, rows normalised), each of its regimes (``weak``, ``joint``,
``decoder``, ``tied``; a data set may name fewer), width and initialisation seed, one network
trains by full-batch gradient descent under two step-size rules:

- ``auto``: ``eta = 1 / lambda_max(Theta_b(0))``, each network's own (``lr="auto"``: one batched
  Lanczos over the seeds, :func:`aedyn.gd.auto_lr_batch`; the row keeps it as ``lambda_max``);
- ``common``: one ``eta`` per data set for every regime in ``common_regimes`` (default weak and
  joint, the regimes the theorems compare) and width, ``common_factor / max lambda_max`` over
  those regimes' and the seeds' ``Theta(0)`` at the smallest width (the rows of their ``auto``
  runs), so that each of them is stable. Those regimes are compared at this ``eta``, and every
  curve is drawn against ``eta * t`` so that the rules are comparable.

A run stops at ``L <= target * L(0)`` or after ``max_steps``. What is measured of it beyond the
store's row is the ``linearised`` measure (:mod:`aedyn.measures.linearised`, the formulas'
home), declared with the job and computed where it trains. The **measured rate** is the
per-step contraction of the loss, ``exp(slope)`` of the least-squares line through ``log L(k)``
over the window ``[last/2, last]``, ``last`` the final step before the rounding floor
(:func:`aedyn.gd.fit_linear_rate`; ``r2`` is that fit's R^2). The **predictions** are fitted the
same way, over the same window, to linearised gradient descent ``R(k) = (I - eta K)^k R(0)``
started from the network's own initial residual ``R(0) = f_0(X) - X`` (a fit over the last half
of a run still mixes several decaying modes, so the linearised curve over the same steps is the
fair prediction, not ``1 - eta lambda_min``):

- ``predicted_finite``: ``K`` the ``n x n`` coordinate average of ``Theta(0)``
  (:meth:`aedyn.ntk.NTKOperator.averaged_kernel`, ``Theta(0) ≈ K ⊗ I_d``);
- ``predicted_exact``: the full ``nd x nd`` ``Theta(0)`` (dense; only while ``n d <= exact_limit``,
  otherwise ``None``);
- ``predicted_infinite``: ``K`` the infinite-width regime kernel
  (:func:`aedyn.kernels.regime_kernel`); ``None`` for ``tied``, whose limit is not ``K ⊗ I_d``;
- ``predicted_bound``: ``(1 - eta lambda_min(Theta(0)))^2``, the slowest mode's contraction of
  the loss (a bound for the linearised dynamics, not a fitted curve).

**How it runs.** Every run is a :class:`~aedyn.job.TrainJob` (with the ``linearised`` measure)
trained by an :class:`aedyn.sweep.Runner`, the run layer under ``aedyn sweep`` (a local process or a
Dask cluster), and recorded in its store, one row per run (:func:`aedyn.sweep.result_row`); the
seeds of one (data, regime, width, rule) train as one batch. The ``common`` step size depends on
the ``auto`` runs at the smallest width, so the runner is called in two rounds: those first, then
the rest. A rerun on the same store (``aedyn reproduce`` keeps it in ``OUT/runs``) reads every run
the store has and trains only the others. Each run's record (:data:`RECORD`) is its row, cut to the
columns the analysis reads, under the row's names (``lr`` is the step size, ``initial_loss`` is
``L(0)``), with its ``rule``.

**Statistics.** A measured rate is compared with a prediction through the ratio of their ``-log``
rates (above 1: the loss falls faster than predicted), on the log scale: each seed's mean
``log`` ratio over the runs in question (a seed's runs share their first random draws, so the
seeds are the independent units), and the t interval over the seeds of that mean
(:func:`aedyn.stats.t_interval`), back on the ratio scale (a geometric mean with its 95%
interval). Comparisons (measured against predicted, joint against weak at one ``eta``, the gap at
the largest against the smallest width) are worded only through those intervals
(:func:`aedyn.findings.comparison`). A bound that prints as 1 is vacuous and counts as no
support (:func:`aedyn.findings.bound`).

Functions here are pure: they return numbers, tables and figures and never print or write files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from aedyn.errors import AedynError
from aedyn.experiments import missing_runs, require_results, small_problems, style
from aedyn.findings import (
    Finding,
    bound,
    comparison,
    count,
    interval,
    nonneg,
    seeds_phrase,
    sig,
    statement,
    unfinished,
)
from aedyn.job import TrainJob
from aedyn.stats import LEVEL, MIN_SEEDS, Estimate, t_interval
from aedyn.sweep import UNTRAINABLE, Runner, notes_of

NAME = "E1"
TITLE = "Linear convergence"
CLAIM = ("Full-batch gradient descent on an over-parameterised two-layer ReLU autoencoder, trained "
         "weakly (encoder only) or jointly, drives the training loss to zero at a linear rate, "
         "L(k) <= (1 - eta lambda/2)^k L(0), with lambda the least eigenvalue of the kernel that drives the regime.")

REGIMES: tuple[str, ...] = ("weak", "joint", "decoder", "tied")
CLAIMED: tuple[str, ...] = ("weak", "joint")
"""The regimes the paper's convergence theorems are about (the headline's runs)."""
RULES: tuple[str, ...] = ("auto", "common")
LOG_LINEAR_R2 = 0.99
"""A run's loss counts as log-linear over its window when the fit's R^2 is at least this."""
CURVE_POINTS = 200
"""Loss curves are kept at about this many steps (evenly spaced, first and last included)."""
AGREE = 0.05
"""A measured ``-log`` rate agrees with a prediction when the whole interval of their ratio lies
within this relative distance of 1."""
SLACK = 1e-9
"""A measured rate at most ``bound * (1 + SLACK)`` contracts at least as fast as the bound (rounding)."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. ``quick``: sphere n = 16 (every regime), digits
    n = 8 (weak and joint only), widths 256 and 1024, three seeds, at most 2000 steps (about 20 s
    on one core); otherwise sphere n = 64 (every regime), digits n = 32 (weak and joint), widths
    256, 1024 and 4096, three seeds, at most 3000 steps (about 6.5 minutes on one core; digits at
    n = 64 needs over 10000 steps at every width). The rule ``common`` trains weak and joint only
    (``common_regimes``; decoder and tied train under ``auto``). A data set's ``regimes`` (when
    given) replace the config's for it. ``seeds`` overrides the number of seeds."""
    if quick:
        data = [{"name": "sphere", "n": 16, "d": 8}, {"name": "digits", "n": 8, "d": 64, "regimes": list(CLAIMED)}]
        widths, number, max_steps = [256, 1024], 3, 2000
    else:
        data = [{"name": "sphere", "n": 64, "d": 16}, {"name": "digits", "n": 32, "d": 64, "regimes": list(CLAIMED)}]
        widths, number, max_steps = [256, 1024, 4096], 3, 3000
    number = number if seeds is None else int(seeds)
    return {"regimes": list(REGIMES), "data": data, "widths": widths, "seeds": list(range(number)), "data_seed": 0,
            "rules": list(RULES), "common_regimes": list(CLAIMED), "common_factor": 0.5, "max_steps": max_steps,
            "target": 1e-6, "kappa": 1.0, "nu": 1.0, "dtype": "float64", "device": device, "exact_limit": 2048,
            "curve_points": CURVE_POINTS, "log_linear_r2": LOG_LINEAR_R2}


def _common_regimes(config: dict) -> list[str]:
    """The regimes trained under the rule ``common`` (every regime in a config without the key)."""
    return list(config.get("common_regimes") or config["regimes"])


def _rules_of(config: dict, regime: str) -> list[str]:
    """The step-size rules ``regime`` trains under."""
    return [r for r in config.get("rules", RULES) if r != "common" or regime in _common_regimes(config)]


def _regimes_of(config: dict, data: dict) -> list[str]:
    """The regimes trained on ``data``: its own ``regimes`` when given, else the config's."""
    return list(data.get("regimes") or config["regimes"])


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    parts = []
    for d in config["data"]:
        own = "" if "regimes" not in d else f", regimes {', '.join(_regimes_of(config, d))} only"
        parts.append(f"{d['name']} (n = {d['n']}, d = {d['d']}{own})")
    seeds = config["seeds"]
    return [
        f"Data: {'; '.join(parts)}; rows normalised to unit norm; data seed {config['data_seed']}.",
        f"Regimes {', '.join(config['regimes'])}; widths m = {', '.join(str(w) for w in config['widths'])}; "
        f"{seeds_phrase(len(seeds))} ({', '.join(str(s) for s in seeds)}); "
        f"kappa = {config['kappa']:g}, nu = {config['nu']:g}, NTK scaling alpha = 1/sqrt(m), {config['dtype']}.",
        "Step-size rules: 'auto', eta = 1/lambda_max(Theta(0)) of each network, for every regime; 'common', one "
        f"eta per data set for {' and '.join(_common_regimes(config))} at every width, "
        f"{config['common_factor']:g} / (the largest lambda_max(Theta(0)) over those regimes and the seeds at the "
        "smallest width), so each of them is stable. Curves are drawn against eta * t.",
        f"Each run stops at L <= {config['target']:g} L(0) or after {config['max_steps']} steps.",
        "Measured rate: the per-step contraction of the loss, exp(slope) of a least-squares line through log L "
        "over the last half of the run before the rounding floor (R^2 of that fit). Predicted rates: the "
        "linearised-GD loss curve (I - eta K)^k R(0) from the network's own initial residual, fitted over the "
        "same steps, with K the coordinate-averaged n x n kernel of Theta(0) (finite width), the full Theta(0) "
        f"(exact, where n d <= {config['exact_limit']}) and the infinite-width regime kernel (none for tied); "
        "also the bound (1 - eta lambda_min(Theta(0)))^2.",
        "Statistics: a measured rate against a prediction is the ratio of their -log rates; each seed's mean log "
        f"ratio over the runs compared, and the t interval over the seeds ({100 * LEVEL:.0f}%), reported as a "
        "geometric mean with its interval. A bound that prints as 1.0000 is vacuous and counts as no support.",
    ]


# ---- running --------------------------------------------------------------------------------------


RECORD: tuple[str, ...] = (
    "regime", "data", "n", "d", "width", "seed", "rule", "status", "steps", "lr", "lambda_max", "initial_loss",
    "lambda_min0", "lambda_max0", "lambda_min_inf", "lambda_max_inf", "window_start", "window_stop", "measured_rate",
    "r2", "predicted_finite", "predicted_exact", "predicted_infinite", "predicted_bound", "curve_steps",
    "curve_measured", "curve_predicted_finite", "curve_predicted_exact", "curve_predicted_infinite")
"""A run's record in ``results["runs"]``: its row's columns (:func:`aedyn.sweep.result_row`, the
``linearised`` measure's among them) that the analysis reads, under the row's names, and ``rule``
(the step-size rule, the one setting that is not a column). A value the row lacks is ``None``."""
_INTS = ("n", "d", "width", "seed", "steps", "window_start", "window_stop")


def _job(config: dict, data: dict, regime: str, width: int, seed: int, lr: float | str) -> TrainJob:
    """One run: ``lr="auto"`` (rule auto) or the common step size; the ``linearised`` measure
    (:mod:`aedyn.measures.linearised`) with the config's ``exact_limit`` and ``curve_points``."""
    steps = int(config["max_steps"])
    linearised = {"name": "linearised", "exact_limit": int(config["exact_limit"]),
                  "curve_points": int(config["curve_points"])}
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width, lr=lr,
                    steps=steps, target=config["target"], record_every=steps + 1, dtype=config["dtype"],
                    device=config["device"], measures=(linearised,))


def _record(row: dict[str, Any], rule: str) -> dict[str, Any]:
    """A run's record (:data:`RECORD`) from its row: integers as integers (a store that also holds
    runs without these columns reads them back as floats)."""
    out = {key: row.get(key) for key in RECORD}
    out["rule"] = rule
    for key in _INTS:
        if out[key] is not None:
            out[key] = int(out[key])
    if out["curve_steps"] is not None:
        out["curve_steps"] = [int(k) for k in out["curve_steps"]]
    return out


def runs(config: dict) -> list[dict[str, Any]]:
    """The identifying settings of every run, in the order of the results' records: data set (name
    and ``n``), regime, width, step-size rule and seed."""
    return [{"data": data["name"], "n": int(data["n"]), "regime": regime, "width": int(width), "rule": rule,
             "seed": int(seed)}
            for data in config["data"] for regime in _regimes_of(config, data) for width in config["widths"]
            for rule in _rules_of(config, regime) for seed in config["seeds"]]


def missing(config: dict, results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config`` (:func:`aedyn.experiments.missing_runs`);
    ``ValueError`` when they are damaged."""
    results = require_results(results, config, ("runs", "common_eta", "lambda_max_smallest"))
    for key in ("common_eta", "lambda_max_smallest"):
        if not isinstance(results[key], dict):
            raise ValueError(f"{key!r} must be an object, one entry per data set")
    return missing_runs(results["runs"], runs(config))


def _shared(config: dict, data: dict) -> list[str]:
    """The regimes whose ``lambda_max(Theta(0))`` at the smallest width set the data set's common step."""
    regimes = _regimes_of(config, data)
    return [r for r in regimes if r in _common_regimes(config)] or regimes


def _common_eta(config: dict, lam: dict[str, float], shared: Sequence[str]) -> float | None:
    """``common_factor / max lambda_max`` over ``shared`` (``lam``: each regime's largest
    ``lambda_max(Theta(0))`` over the seeds at the smallest width); ``None`` if one is unknown."""
    if not shared or any(r not in lam for r in shared):
        return None
    return float(config["common_factor"]) / max(lam[r] for r in shared)


def run(config: dict, *, progress: Callable[[str, float], None] | None = None, runner: Runner | None = None) -> dict:
    """Train every run through ``runner`` (the report's: its run store makes an interrupted run
    resume, training only the runs it lacks, and its executor may be a Dask cluster; default a local
    runner without a store) and read each run's analysis off its row (the ``linearised`` measure,
    computed where the run trained). Two rounds: first the rule-auto batches at the smallest width
    of the regimes that set the common step size (their rows carry ``lambda_max(Theta(0))``), then
    every other batch, the common ones at that step. A batch is the seeds of one (data, regime,
    width, rule).

    Returns ``{"config", "common_eta", "lambda_max_smallest", "notes", "runs"}``: per data set the
    common ``eta`` and each regime's largest ``lambda_max(Theta(0))`` over the seeds at the smallest
    width; the notes of the runs (sorted, each once); and one record per run (:data:`RECORD`: its
    setting and rule, status, steps, step size ``lr``, ``Theta(0)``'s and the infinite-width
    kernel's extremes, the fit window, the measured and predicted rates, and the loss curves,
    measured and linearised, at common steps). On the CPU torch runs on one thread meanwhile
    (restored after): these problems are small, and on a shared machine one thread is many times
    faster than several. ``progress(message, fraction)`` after each batch."""
    report = progress or (lambda message, fraction: None)
    with small_problems(config["device"]), Runner.given(runner) as runner:
        return _run(config, report, runner)


def _run(config: dict, report: Callable[[str, float], None], runner: Runner) -> dict:
    widths, seeds = list(config["widths"]), list(config["seeds"])
    smallest = min(widths)
    datas = list(enumerate(config["data"]))

    def batch(i: int, regime: str, width: int, lr: float | str) -> list[TrainJob]:
        return [_job(config, config["data"][i], regime, width, seed, lr) for seed in seeds]

    def trains(regime: str, rule: str) -> bool:
        return rule in _rules_of(config, regime)

    # round 1: what the common step size needs (rule auto at the smallest width, the shared regimes)
    first = [(i, regime) for i, data in datas if any(trains(r, "common") for r in _regimes_of(config, data))
             for regime in _shared(config, data)]
    rest = [(i, regime, width, rule) for i, data in datas for regime in _regimes_of(config, data)
            for width in widths for rule in ("auto", "common")
            if trains(regime, rule) and not (rule == "auto" and width == smallest and (i, regime) in first)]
    # the common batches at the smallest width first: Theta(0) of their networks is still kept
    # in-process from round 1 (aedyn.measures.linearised), so it is computed once per network
    rest.sort(key=lambda s: not (s[3] == "common" and s[2] == smallest))
    total = len(first) + len(rest)

    def ticker(what: str, before: int, size: int) -> Callable[[int, int], None]:
        def tick(done: int, todo: int) -> None:
            share = size * (done / todo if todo else 1.0)
            report(f"E1: {what}, {done} of {todo} batches trained", (before + share) / max(total, 1))
        return tick

    rows: dict[tuple, dict[str, Any]] = {}
    notes: set[str] = set()

    def train(settings: list[tuple], lrs: list[float | str], what: str, before: int) -> None:
        batches = [batch(i, regime, width, lr) for (i, regime, width, _), lr in zip(settings, lrs, strict=True)]
        out = runner.run(batches, progress=ticker(what, before, len(batches)))
        for (i, regime, width, rule), done in zip(settings, out, strict=True):
            for seed, row in zip(seeds, done, strict=True):
                if row.get("status") == UNTRAINABLE:
                    raise AedynError(f"E1: the {regime} run at m = {width}, seed {seed} could not start: "
                                     f"{row.get('message')}")
                rows[i, regime, width, rule, seed] = row
                notes.update(notes_of([row]))

    def lambda_max(i: int) -> dict[str, float]:
        """Each regime's largest ``lambda_max(Theta(0))`` over the seeds at the smallest width."""
        out = {}
        for regime in _regimes_of(config, config["data"][i]):
            keys = [(i, regime, smallest, "auto", seed) for seed in seeds]
            lam = [rows[key].get("lambda_max") for key in keys if key in rows]
            if len(lam) == len(keys) and all(v is not None for v in lam):
                out[regime] = float(max(lam))
        return out

    train([(i, regime, smallest, "auto") for i, regime in first], ["auto"] * len(first), "rule auto", 0)
    etas = {i: _common_eta(config, lambda_max(i), _shared(config, data)) for i, data in datas}
    train(rest, ["auto" if rule == "auto" else etas[i] for i, _, _, rule in rest], "both rules", len(first))
    report("E1: done", 1.0)
    records = [_record(rows[i, regime, width, rule, seed], rule) for i, data in datas
               for regime in _regimes_of(config, data) for width in widths for rule in _rules_of(config, regime)
               for seed in seeds]
    common_eta: dict[str, float] = {}
    lambda_max_smallest: dict[str, dict[str, float]] = {}
    for i, data in datas:
        lam = lambda_max(i)
        lambda_max_smallest[data["name"]] = lam
        eta = _common_eta(config, lam, _shared(config, data))
        if eta is not None:
            common_eta[data["name"]] = eta
    return {"config": config, "common_eta": common_eta, "lambda_max_smallest": lambda_max_smallest,
            "notes": sorted(notes), "runs": records}


# ---- the tables ---------------------------------------------------------------------------------

KINDS: tuple[tuple[str, str], ...] = (("finite", "finite-width (averaged Theta(0))"), ("exact", "exact Theta(0)"),
                                       ("infinite", "infinite-width"))
"""The predictions: ``predicted_<key>`` of a run, and the prediction's name in sentences."""
_NAMES = dict(KINDS)
_SHORT = {"finite": "finite-width Θ(0)", "exact": "exact Θ(0)", "infinite": "infinite width"}

COLUMNS = ("regime", "data", "n", "d", "width", "seed", "rule", "lr", "steps", "status", "measured_rate",
           "predicted_finite", "predicted_exact", "predicted_infinite", "predicted_bound", "r2", "log_linear",
           "bound_vacuous", "bound_met", "ratio_finite", "ratio_exact", "ratio_infinite", "lambda_min0",
           "lambda_max0", "lambda_ratio0", "lambda_min_inf", "lambda_max_inf", "window_start", "window_stop")


def _ratio(measured: Any, predicted: Any) -> float:
    """``log(measured) / log(predicted)``: the measured ``-log`` rate over the predicted one
    (above 1: the loss falls faster than predicted). NaN when either is missing or not in (0, 1)."""
    if measured is None or predicted is None:
        return math.nan
    m, p = float(measured), float(predicted)
    if not (m > 0 and 0 < p < 1) or not (math.isfinite(m) and math.isfinite(p)):
        return math.nan
    return math.log(m) / math.log(p)


def _threshold(results: dict) -> float:
    return float(results.get("config", {}).get("log_linear_r2", LOG_LINEAR_R2))


def _log_linear(r: dict, threshold: float) -> bool:
    return r.get("r2") is not None and float(r["r2"]) >= threshold


def _vacuous(r: dict) -> bool:
    """Whether the run's bound ``(1 - eta lambda_min(Theta(0)))^2`` prints as 1 (:func:`aedyn.findings.bound`)."""
    return bound(float(r["predicted_bound"]), "the bound") is not None


def _met(r: dict) -> bool:
    """The run's loss contracts at least as fast as its bound, and that bound says something."""
    m = r.get("measured_rate")
    return m is not None and not _vacuous(r) and float(m) <= float(r["predicted_bound"]) * (1 + SLACK)


def _lambda_min(r: dict, which: str = "0") -> float | None:
    """``lambda_min`` of ``Theta(0)`` (``which="0"``) or of the infinite-width kernel (``"_inf"``), a
    PSD kernel's: a rounding-negative value is 0 (:func:`aedyn.findings.nonneg`)."""
    low, high = r.get(f"lambda_min{which}"), r.get(f"lambda_max{which}")
    if low is None:
        return None
    return nonneg(float(low), abs(float(high)) if high is not None else 1.0)


def _lambda_ratio(r: dict, which: str = "0") -> float | None:
    low, high = _lambda_min(r, which), r.get(f"lambda_max{which}")
    if low is None or high is None or not float(high) > 0:
        return None
    return nonneg(low / float(high))


def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`); missing predictions are NaN.
    ``ratio_*`` is the measured ``-log`` rate over the predicted one; ``log_linear`` whether the fit's
    R^2 reaches the threshold; ``bound_vacuous`` whether the bound prints as 1, ``bound_met`` whether
    the loss contracts at least as fast as a bound that is not vacuous; ``lambda_min0`` (and
    ``_inf``) is 0 where rounding made a PSD kernel's eigenvalue negative, ``lambda_ratio0`` is
    ``lambda_min(Theta(0)) / lambda_max(Theta(0))``."""
    import pandas as pd

    threshold = _threshold(results)
    rows = []
    for r in results["runs"]:
        row = {c: r.get(c) for c in COLUMNS if c in r}
        for kind, _ in KINDS:
            row[f"ratio_{kind}"] = _ratio(r.get("measured_rate"), r.get(f"predicted_{kind}"))
        row.update(log_linear=_log_linear(r, threshold), bound_vacuous=_vacuous(r), bound_met=_met(r),
                   lambda_min0=_lambda_min(r), lambda_min_inf=_lambda_min(r, "_inf"), lambda_ratio0=_lambda_ratio(r))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in ("regime", "data", "rule", "status", "log_linear", "bound_vacuous",
                                                "bound_met")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table


# ---- the statistics -----------------------------------------------------------------------------

def _ordered(values: Iterable[str], known: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in known if v in seen] + sorted(v for v in seen if v not in known)


def _log_ratio(r: dict, kind: str) -> float:
    x = _ratio(r.get("measured_rate"), r.get(f"predicted_{kind}"))
    return math.log(x) if x > 0 else math.nan


def _per_seed(rows: Iterable[dict], value: Callable[[dict], float]) -> dict[Any, float]:
    """Each seed's mean of ``value`` over its rows (non-finite values left out; a seed with none, out)."""
    by: dict[Any, list[float]] = {}
    for r in rows:
        v = value(r)
        if math.isfinite(v):
            by.setdefault(r["seed"], []).append(v)
    return {s: float(np.mean(v)) for s, v in by.items()}


def _exp(e: Estimate | None, method: str) -> Estimate | None:
    """An estimate on the log scale, back on the ratio scale (a geometric mean and its interval)."""
    if e is None:
        return None

    def f(x: float | None) -> float | None:
        return None if x is None else math.exp(x)

    return Estimate(math.exp(e.value), f(e.low), f(e.high), e.level, method, e.units)


def _geomean(rows: Sequence[dict], kind: str) -> Estimate | None:
    """The measured ``-log`` rate over the ``kind`` prediction's: the geometric mean over seeds of
    each seed's mean log ratio over ``rows``, with the t interval over the seeds."""
    seeds = _per_seed(rows, lambda r: _log_ratio(r, kind))
    return _exp(t_interval(list(seeds.values())),
                f"measured over {kind} -log rate: geometric mean over seeds, t interval on the log scale")


def _tops(rows: Iterable[dict]) -> dict[str, int]:
    """Each data set's largest width among ``rows``."""
    out: dict[str, int] = {}
    for r in rows:
        out[r["data"]] = max(out.get(r["data"], 0), int(r["width"]))
    return out


def _at_top(rows: Sequence[dict]) -> list[dict]:
    top = _tops(rows)
    return [r for r in rows if int(r["width"]) == top[r["data"]]]


def _theta_kind(rows: Sequence[dict]) -> str:
    """The ``Theta(0)`` prediction the findings use: the exact one where some run has it, else the
    averaged kernel's."""
    return "exact" if any(r.get("predicted_exact") is not None for r in rows) else "finite"


def _span(values: Iterable[float], digits: int = 2) -> str:
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    lo, hi = sig(min(v), digits), sig(max(v), digits)
    return lo if lo == hi else f"{lo}-{hi}"


def _est(e: Estimate | None) -> str:
    """A ratio with its interval, ``0.934x [0.901, 0.968]``; without an interval only the value."""
    if e is None:
        return "-"
    return f"{sig(e.value, 3)}x" + (f" {interval(e, 3, fmt='sig')}" if e.has_interval else "")


def _widths_text(rows: Iterable[dict]) -> str:
    return "m = " + ", ".join(str(w) for w in sorted({int(r["width"]) for r in rows}))


def _scope(rows: Sequence[dict], *, top: bool = False) -> str:
    """``weak and joint (sphere, digits; m = 256, 1024; rules auto, common)``; with ``top``, each data
    set's largest width instead of the widths."""
    regimes = _ordered((r["regime"] for r in rows), REGIMES)
    datas = list(dict.fromkeys(r["data"] for r in rows))
    rules = _ordered((r["rule"] for r in rows), RULES)
    who = " and ".join(regimes) if len(regimes) <= 2 else ", ".join(regimes)
    if top:
        tops = _tops(rows)
        where = "largest width, " + ", ".join(f"{d} m = {tops[d]}" for d in datas)
    else:
        where = f"{', '.join(datas)}; {_widths_text(rows)}"
    return f"{who} ({where}; rule{'s' if len(rules) > 1 else ''} {', '.join(rules)})"


def _seeds(rows: Iterable[dict]) -> int:
    return len({r["seed"] for r in rows})


# ---- findings -----------------------------------------------------------------------------------

def findings(results: dict) -> list[Finding]:
    """At most five findings on the runs of the regimes the theorems are about (weak and joint):

    1. the headline: log-linear losses and the proofs' bound (``statement``, rule
       ``convergence/log_linear``; see :func:`_headline`);
    2. the measured rate against the ``Theta(0)`` prediction at the largest width (the exact
       ``Theta(0)`` where it was computed; worded by ``comparison`` of the ratio with 1, judged by
       the rule ``rate/agreement``, :func:`_versus`);
    3. the same against the infinite-width prediction;
    4. whether the measured rate is closer to the ``Theta(0)`` prediction at the largest width than
       at the smallest (``comparison`` of the per-seed paired difference of ``|log ratio|``; the NTK
       picture expects it closer, the wider network staying nearer its linearisation);
    5. joint's ``-log`` rate over weak's at the common step size (``comparison`` with 1; the kernels
       expect it above 1: ``Theta_joint(0) = Theta_weak(0) + Theta_decoder(0)`` for one
       initialisation, so at one ``eta`` the linearised joint loss falls at least as fast)."""
    runs = results["runs"]
    threshold = _threshold(results)
    claimed = [r for r in runs if r["regime"] in CLAIMED]
    if not claimed:
        return [statement("convergence", NAME, "weak and joint", "linear convergence", "No weak or joint run.",
                          "inconclusive", rule="convergence/log_linear").as_headline()]
    kind = _theta_kind(claimed)
    out = [_headline(claimed, threshold, kind).as_headline("rate_ratio_vs_width"),
           _versus(claimed, kind), _versus(claimed, "infinite")]
    gap = _gap(claimed, kind)
    if gap is not None:
        out.append(gap)
    pair = _joint_vs_weak(claimed)
    if pair is not None:
        out.append(pair)
    return out[:5]


def _headline(rows: Sequence[dict], threshold: float, kind: str) -> Finding:
    """Rule ``convergence/log_linear``: over every weak and joint run, how many losses are
    log-linear (R^2 at least the threshold), how many runs stopped at the step budget (still
    training) or diverged, and in how many the loss contracts at least as fast as the proofs'
    ``(1 - eta lambda_min(Theta(0)))^2``, counting only the runs whose bound is not vacuous (a bound
    that prints as 1 bounds nothing and supports nothing).

    Verdict: ``supported`` when every loss is log-linear, none diverged, some bound is not vacuous
    and every such bound is met, and every run reached its target; ``partly supported`` when runs
    stopped at the budget, some loss is not log-linear, some bound fails or every bound is vacuous;
    ``not supported`` when no loss is log-linear; under three seeds, ``inconclusive``."""
    n = len(rows)
    linear = sum(_log_linear(r, threshold) for r in rows)
    stopped = sum(r["status"] == "max_steps" for r in rows)
    diverged = sum(r["status"] == "diverged" for r in rows)
    checked = [r for r in rows if not _vacuous(r)]
    met = sum(_met(r) for r in checked)
    vacuous = [r for r in rows if _vacuous(r)]
    est = _geomean(_at_top(rows), kind)
    parts = [f"the loss is log-linear (R^2 >= {threshold:g} over the last half of the run) in {count(linear, n)}"]
    for clause in (unfinished(stopped, n), f"{count(diverged, n)} diverged" if diverged else None):
        if clause:
            parts.append(clause)
    if checked:
        parts.append(f"the loss contracts at least as fast as the proofs' (1 - eta lambda_min(Theta(0)))^2 in "
                     f"{met} of the {len(checked)} runs whose bound is below 1")
    if vacuous:
        words = bound(min(float(r["predicted_bound"]) for r in vacuous), f"for {count(len(vacuous), n)} that bound")
        parts.append(f"{words}, and they count as no support")
    if est is not None:
        parts.append(f"at the largest width the measured -log rate is {_est(est)} of the {_NAMES[kind]} "
                     f"prediction's (geometric mean over {seeds_phrase(est.units)})")
    if linear == 0:
        verdict = "not supported"
    elif linear == n and not diverged and not stopped and checked and met == len(checked):
        verdict = "supported"
    else:
        verdict = "partly supported"
    key = (f"R^2 >= {threshold:g} in {linear} of {n}; bound met in {met} of {len(checked)} ({len(vacuous)} vacuous)"
           + ("" if est is None else f"; {_est(est)} of the {_SHORT[kind]} rate"))
    return statement("convergence", NAME, _scope(rows), "linear convergence and the proofs' bound",
                     f"{_scope(rows)}: " + "; ".join(parts) + ".", verdict, key=key, estimate=est,
                     seeds=_seeds(rows), runs=n, excluded=[f"{len(vacuous)} runs with a vacuous bound"] if vacuous
                     else [], rule="convergence/log_linear", unit="runs")


def _versus(rows: Sequence[dict], kind: str) -> Finding:
    """Rule ``rate/agreement``: the measured ``-log`` rate over the ``kind`` prediction's at each data
    set's largest width, worded by :func:`aedyn.findings.comparison` (the geometric mean's interval
    against 1), with what the runs shown did. The claim is a rate *equal* to the prediction, which
    the comparison rule has no verdict for, so the verdict is this rule's: ``supported`` when the
    whole interval lies within :data:`AGREE` of 1 (agreement shown, not merely no difference
    found), ``partly supported`` when it excludes 1 farther out (the loss falls linearly, but at
    another rate), otherwise (or under three seeds) ``inconclusive``."""
    top = _at_top(rows)
    have = [r for r in top if math.isfinite(_log_ratio(r, kind))]
    missing = len(top) - len(have)
    excluded = []
    if missing:
        why = "the tied NTK's limit is not K ⊗ I_d" if kind == "infinite" else "no prediction"
        excluded.append(f"{count(missing, len(top))} without a {_NAMES[kind]} prediction ({why})")
    name = _NAMES[kind]
    est = _geomean(have, kind)
    f = comparison("convergence", NAME, _scope(have or top, top=True), f"the measured -log rate over the {name} "
                   "prediction's (geometric mean over seeds)", est, equal=1.0, ratio=True,
                   larger=f"the loss falls faster than the {name} prediction",
                   smaller=f"the loss falls more slowly than the {name} prediction", runs=len(have),
                   excluded=excluded)
    sentence = f.sentence
    verdict = "inconclusive"
    if est is not None and est.low is not None and est.high is not None and est.units >= MIN_SEEDS:
        if est.low >= 1 - AGREE and est.high <= 1 + AGREE:
            verdict = "supported"
            sentence += f" The whole interval lies within {100 * AGREE:.0f}% of the prediction."
        elif not est.contains(1.0):
            verdict = "partly supported"
    if have:
        ratios = [math.exp(_log_ratio(r, kind)) for r in have]
        below = sum(x < 1 for x in ratios)
        sentence += f" In the runs shown the ratio was {_span(ratios)}, below 1 in {count(below, len(have))}."
    return statement("convergence", NAME, f.subject, f.quantity, sentence, verdict, key=f.key, estimate=est,
                     seeds=f.seeds, runs=len(have), excluded=excluded, rule="rate/agreement", unit="x")


def _gap(rows: Sequence[dict], kind: str) -> Finding | None:
    """Per seed, ``mean |log ratio|`` (measured over the ``kind`` prediction) at each data set's
    smallest width minus at its largest, averaged over the data sets; its t interval over the
    seeds, compared with 0. ``None`` when no data set has two widths."""
    widths: dict[str, set[int]] = {}
    for r in rows:
        widths.setdefault(r["data"], set()).add(int(r["width"]))
    datas = [d for d, ws in widths.items() if len(ws) > 1]
    if not datas:
        return None
    per_seed: dict[Any, list[float]] = {}
    for data in datas:
        lo, hi = min(widths[data]), max(widths[data])
        mine = [r for r in rows if r["data"] == data]
        at_lo = _per_seed([r for r in mine if int(r["width"]) == lo], lambda r: abs(_log_ratio(r, kind)))
        at_hi = _per_seed([r for r in mine if int(r["width"]) == hi], lambda r: abs(_log_ratio(r, kind)))
        for s in set(at_lo) & set(at_hi):
            per_seed.setdefault(s, []).append(at_lo[s] - at_hi[s])
    est = t_interval([float(np.mean(v)) for v in per_seed.values()],
                     method="paired per-seed difference of mean |log ratio|, t interval")
    name = _NAMES[kind]
    where = ", ".join(f"{d} m = {min(widths[d])} against {max(widths[d])}" for d in datas)
    sub = [r for r in rows if r["data"] in datas]
    return comparison("convergence", NAME, f"{_scope(sub)}, {where}",
                      f"|log(measured / {name} -log rate)| at the smallest width minus at the largest", est,
                      equal=0.0, expected="larger", runs=len(sub),
                      larger=f"the measured rate is closer to the {name} prediction at the largest width than at "
                             "the smallest",
                      smaller=f"the measured rate is farther from the {name} prediction at the largest width than "
                              "at the smallest")


def _joint_vs_weak(rows: Sequence[dict]) -> Finding | None:
    """Joint's ``-log`` rate over weak's under the common step size at each data set's largest
    width: per seed the mean over data sets of the log ratio of the paired runs, t interval over
    the seeds. ``None`` without common-rule runs of both regimes."""
    common = [r for r in _at_top(rows) if r["rule"] == "common"]
    by = {(r["data"], r["seed"], r["regime"]): r for r in common}
    per_seed: dict[Any, list[float]] = {}
    pairs = 0
    for (data, seed, regime), joint in by.items():
        weak = by.get((data, seed, "weak"))
        if regime != "joint" or weak is None:
            continue
        v, mj, mw = math.nan, joint.get("measured_rate"), weak.get("measured_rate")
        if mj is not None and mw is not None and 0 < mj < 1 and 0 < mw < 1:
            v = math.log(math.log(mj) / math.log(mw))
        if math.isfinite(v):
            per_seed.setdefault(seed, []).append(v)
            pairs += 1
    if not pairs:
        return None
    est = _exp(t_interval([float(np.mean(v)) for v in per_seed.values()]),
               "joint over weak -log rate, paired by seed: geometric mean, t interval on the log scale")
    sub = [r for r in common if r["regime"] in ("weak", "joint")]
    f = comparison("convergence", NAME, _scope(sub, top=True), "joint's -log rate over weak's at one eta", est,
                   equal=1.0, ratio=True, expected="larger", runs=2 * pairs,
                   larger="joint's loss falls faster than weak's at the same step size",
                   smaller="joint's loss falls more slowly than weak's at the same step size")
    return f


# ---- every setting in sentences -----------------------------------------------------------------

def _rule_words(rule: str, rows: Sequence[dict]) -> str:
    if rule == "auto":
        return "rule auto (eta = 1/lambda_max(Theta(0)) per network)"
    if rule == "common" and rows:
        return f"rule common (eta = {float(rows[0]['lr']):.3g})"
    return f"rule {rule}"


def details(results: dict) -> list[str]:
    """Every setting in sentences: per data set and rule, which losses are log-linear; per regime,
    whether the runs reached the target, the bound, and the measured ``-log`` rate over each
    prediction's at every width (geometric means over seeds with their intervals; general words
    only through :func:`aedyn.findings.comparison`, facts about the runs shown as counts); per data
    set, ``Theta(0)``'s conditioning and the steps to the target at the largest width."""
    runs = results["runs"]
    threshold = _threshold(results)
    out: list[str] = []
    for data in list(dict.fromkeys(r["data"] for r in runs)):
        mine = [r for r in runs if r["data"] == data]
        head = mine[0]
        for rule in _ordered((r["rule"] for r in mine), RULES):
            rows = [r for r in mine if r["rule"] == rule]
            out.append(_linear_sentence(data, head, rule, rows, threshold))
            for regime in _ordered((r["regime"] for r in rows), REGIMES):
                out.append(_regime_sentence(data, rule, regime, [r for r in rows if r["regime"] == regime]))
        out.append(_kernel_sentence(data, mine))
        out.append(_steps_sentence(data, mine))
    return out


def _linear_sentence(data: str, head: dict, rule: str, rows: Sequence[dict], threshold: float) -> str:
    regimes = _ordered((r["regime"] for r in rows), REGIMES)
    counts, curved = [], []
    for regime in regimes:
        mine = [r for r in rows if r["regime"] == regime]
        ok = sum(_log_linear(r, threshold) for r in mine)
        counts.append(f"{count(ok, len(mine), f'{regime} run')}")
        for width in sorted({int(r["width"]) for r in mine}):
            bad = [r for r in mine if int(r["width"]) == width and not _log_linear(r, threshold)]
            if bad:
                r2 = [r["r2"] for r in bad if r.get("r2") is not None]
                curved.append(f"{regime} m = {width} ({count(len(bad), sum(int(r['width']) == width for r in mine))}"
                              f"; R^2 {_span(r2, 3) if r2 else 'not fitted'})")
    text = (f"{data} (n = {head['n']}, d = {head['d']}), {_rule_words(rule, rows)}: the loss is log-linear "
            f"(R^2 >= {threshold:g} over the fitted window) in " + ", ".join(counts))
    if curved:
        text += "; not log-linear: " + "; ".join(curved)
    return text + "."


def _regime_sentence(data: str, rule: str, regime: str, rows: Sequence[dict]) -> str:
    n = len(rows)
    reached = sum(r["status"] == "converged" for r in rows)
    stopped = sum(r["status"] == "max_steps" for r in rows)
    diverged = sum(r["status"] == "diverged" for r in rows)
    parts = []
    if reached == n:
        parts.append(f"reached the target in {count(n, n)}")
    else:
        parts += [c for c in (unfinished(stopped, n), f"{count(diverged, n)} diverged" if diverged else None) if c]
        if reached:
            parts.append(f"{count(reached, n)} reached the target")
    checked = [r for r in rows if not _vacuous(r)]
    vacuous = [r for r in rows if _vacuous(r)]
    if checked:
        parts.append(f"the loss contracts at least as fast as (1 - eta lambda_min(Theta(0)))^2 in "
                     f"{sum(_met(r) for r in checked)} of the {len(checked)} runs whose bound is below 1")
    if vacuous:
        parts.append(bound(min(float(r["predicted_bound"]) for r in vacuous),
                           f"for {count(len(vacuous), n)} the bound (1 - eta lambda_min(Theta(0)))^2"))
    kinds = [k for k, _ in KINDS if any(math.isfinite(_log_ratio(r, k)) for r in rows)]
    per_width = []
    for width in sorted({int(r["width"]) for r in rows}):
        at = [r for r in rows if int(r["width"]) == width]
        per_width.append(f"m = {width}: " + ", ".join(f"{_SHORT[k]} {_est(_geomean(at, k))}" for k in kinds))
    seeds = _seeds(rows)
    text = f"{data}, {_rule_words(rule, rows)}, {regime}: " + "; ".join(parts) + "."
    if kinds:
        text += (f" Measured -log rate over the predicted one (geometric mean over {seeds_phrase(seeds)}, 95% "
                 "interval): " + "; ".join(per_width) + ".")
    if regime == "tied":
        text += " No infinite-width prediction (the tied NTK's limit is not K ⊗ I_d)."
    kind = _theta_kind(rows)
    ratios = [math.exp(_log_ratio(r, kind)) for r in rows if math.isfinite(_log_ratio(r, kind))]
    if ratios:
        text += (f" In the runs shown the ratio to the {_NAMES[kind]} prediction was {_span(ratios)}, below 1 in "
                 f"{count(sum(x < 1 for x in ratios), len(ratios))}.")
        top = _at_top(list(rows))
        text += " " + comparison("convergence", NAME, f"At m = {int(top[0]['width'])}",
                                 f"the measured -log rate over the {_NAMES[kind]} prediction's",
                                 _geomean(top, kind), equal=1.0, ratio=True,
                                 larger="the loss falls faster than predicted",
                                 smaller="the loss falls more slowly than predicted").sentence
    return text


def _kernel_sentence(data: str, rows: Sequence[dict]) -> str:
    """``lambda_min / lambda_max`` of ``Theta(0)`` (median over seeds, per width) and of the
    infinite-width kernel, per regime; a PSD kernel's rounding-negative eigenvalue printed as 0."""
    parts = []
    for regime in _ordered((r["regime"] for r in rows), REGIMES):
        mine = {(int(r["width"]), r["seed"]): r for r in rows if r["regime"] == regime}  # one per network
        by_width = []
        for width in sorted({w for w, _ in mine}):
            v = [x for (w, _), r in mine.items() if w == width if (x := _lambda_ratio(r)) is not None]
            if v:
                by_width.append(f"{sig(nonneg(float(np.median(v))), 2)} (m = {width})")
        text = f"{regime} " + ", ".join(by_width) if by_width else f"{regime} -"
        inf = [x for r in mine.values() if (x := _lambda_ratio(r, "_inf")) is not None]
        if inf:
            text += f", infinite width {sig(nonneg(float(np.median(inf))), 2)}"
        parts.append(text)
    return (f"{data}: lambda_min / lambda_max of Theta(0) (median over seeds) and of the infinite-width kernel: "
            + "; ".join(parts) + ".")


def _steps_sentence(data: str, rows: Sequence[dict]) -> str:
    top = max(int(r["width"]) for r in rows)
    parts = []
    for rule in _ordered((r["rule"] for r in rows), RULES):
        said = []
        for regime in _ordered((r["regime"] for r in rows), REGIMES):
            mine = [r for r in rows if r["rule"] == rule and r["regime"] == regime and int(r["width"]) == top]
            if not mine:
                continue
            n = len(mine)
            done = [r["steps"] for r in mine if r["status"] == "converged"]
            stopped = sum(r["status"] == "max_steps" for r in mine)
            diverged = sum(r["status"] == "diverged" for r in mine)
            if len(done) == n:
                said.append(f"{regime} reached it in {count(n, n)} ({_span(done, 4)} steps)")
                continue
            bits = [c for c in (unfinished(stopped, n), f"{count(diverged, n)} diverged" if diverged else None) if c]
            if done:
                bits.append(f"{count(len(done), n)} reached it ({_span(done, 4)} steps)")
            said.append(f"{regime}: " + ", ".join(bits))
        if said:
            parts.append(f"rule {rule}: " + "; ".join(said))
    return f"{data}, m = {top}, steps to the target: " + ". ".join(parts) + "."


# ---- summary and the key table ------------------------------------------------------------------

def summary(results: dict) -> dict:
    """The headline numbers: ``rates``, per regime, data, width and rule the medians over seeds of
    the measured and predicted rates and R^2 (as before), with the geometric-mean ratio to each
    prediction and its interval and the counts behind the headline; ``convergence``, the headline's
    counts over the weak and joint runs; and each comparison's estimate (``measured_over_theta0``,
    ``measured_over_infinite``, ``gap_change``, ``joint_over_weak``; ``None`` where there is none)."""
    runs = results["runs"]
    threshold = _threshold(results)
    out: dict[str, Any] = {"rates": []}
    keys = ("regime", "data", "width", "rule")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rows = groups[key]
        entry: dict[str, Any] = dict(zip(keys, key, strict=True))
        entry["width"] = int(entry["width"])
        for name, column in (("measured", "measured_rate"), ("predicted_finite", "predicted_finite"),
                             ("predicted_exact", "predicted_exact"), ("predicted_infinite", "predicted_infinite"),
                             ("predicted_bound", "predicted_bound"), ("r2", "r2")):
            v = [float(r[column]) for r in rows if r.get(column) is not None]
            entry[name] = float(np.median(v)) if v else None
        for kind, _ in KINDS:
            e = _geomean(rows, kind)
            entry[f"ratio_{kind}"] = None if e is None else e.to_dict()
        entry.update(seeds=len(rows), log_linear=sum(_log_linear(r, threshold) for r in rows),
                     converged=sum(r["status"] == "converged" for r in rows),
                     bound_vacuous=sum(_vacuous(r) for r in rows), bound_met=sum(_met(r) for r in rows))
        out["rates"].append(entry)
    claimed = [r for r in runs if r["regime"] in CLAIMED]
    out["convergence"] = {"runs": len(claimed), "log_linear": sum(_log_linear(r, threshold) for r in claimed),
                          "max_steps": sum(r["status"] == "max_steps" for r in claimed),
                          "diverged": sum(r["status"] == "diverged" for r in claimed),
                          "bound_checked": sum(not _vacuous(r) for r in claimed),
                          "bound_met": sum(_met(r) for r in claimed),
                          "bound_vacuous": sum(_vacuous(r) for r in claimed), "seeds": _seeds(claimed)}
    kind = _theta_kind(claimed) if claimed else "finite"
    out["theta0_prediction"] = kind
    found = {f.quantity: f for f in findings(results)} if claimed else {}
    for name, match in (("measured_over_theta0", f"over the {_NAMES[kind]} prediction"),
                        ("measured_over_infinite", "over the infinite-width prediction"),
                        ("gap_change", "at the smallest width minus at the largest"),
                        ("joint_over_weak", "joint's -log rate over weak's")):
        f = next((f for q, f in found.items() if match in q), None)
        out[name] = None if f is None or f.estimate is None else {**f.estimate.to_dict(), "verdict": f.verdict}
    return out


def key_table(results: dict) -> Any:
    """The section's table, one row per data set and regime: the largest width, how many runs have a
    log-linear loss, reached the target and met a bound that is not vacuous, and at the largest width
    the measured ``-log`` rate over each prediction's (geometric mean over seeds of both rules' runs,
    95% interval)."""
    import pandas as pd

    runs = results["runs"]
    threshold = _threshold(results)
    rows = []
    for data in list(dict.fromkeys(r["data"] for r in runs)):
        mine = [r for r in runs if r["data"] == data]
        top = max(int(r["width"]) for r in mine)
        for regime in _ordered((r["regime"] for r in mine), REGIMES):
            rs = [r for r in mine if r["regime"] == regime]
            at = [r for r in rs if int(r["width"]) == top]
            checked = [r for r in rs if not _vacuous(r)]
            row: dict[str, Any] = {
                "data": data, "regime": regime, "largest m": top,
                f"log-linear (R^2 >= {threshold:g})": f"{sum(_log_linear(r, threshold) for r in rs)} of {len(rs)}",
                "reached the target": f"{sum(r['status'] == 'converged' for r in rs)} of {len(rs)}",
                "bound met (vacuous)": f"{sum(_met(r) for r in checked)} of {len(checked)} "
                                       f"({len(rs) - len(checked)})"}
            for kind, _ in KINDS:
                row[f"measured / {_SHORT[kind]} [95% CI]"] = _est(_geomean(at, kind))
            row["seeds"] = _seeds(rs)
            rows.append(row)
    return pd.DataFrame(rows)


# ---- figures ------------------------------------------------------------------------------------

VACUOUS_LOG = -math.log(1 - 5e-5)
"""``-log`` of the largest per-step bound that is not vacuous (:func:`aedyn.findings.bound`)."""

CAPTIONS = {
    "loss_curves_auto": "The training loss relative to its start against eta t (step size times steps), log scale, "
                        "under the rule auto (eta = 1/lambda_max(Theta(0)) of each network), one panel per data set "
                        "and regime, first seed: measured (solid), linearised gradient descent with the "
                        "coordinate-averaged Theta(0) (dashed) and with the infinite-width kernel (dotted); one "
                        "colour per width.",
    "loss_curves_common": "The same under the rule common (one eta per data set, shared by the regimes it trains): "
                          "measured loss (solid) and its linearised predictions (dashed: averaged Theta(0); dotted: "
                          "infinite width) against eta t, first seed, one colour per width.",
    "loss_curves_": "The training loss relative to its start against eta t (step size times steps), log scale, one "
                    "panel per data set and regime, for the first seed under one step-size rule: measured (solid), "
                    "linearised gradient descent with the coordinate-averaged Theta(0) (dashed) and with the "
                    "infinite-width kernel (dotted); one colour per width.",
    "rate_ratio_vs_width": "The measured per-step -log rate of the loss over each prediction's, against the width: the "
                           "geometric mean over seeds with its 95% interval, one colour per regime, solid for the "
                           "rule auto and dashed for the rule common; on the dotted line at 1 the loss falls as fast "
                           "as predicted, below it more slowly.",
    "bound": "Each run's measured -log rate against the -log of the proofs' bound (1 - eta lambda_min(Theta(0)))^2, "
             "log-log, one panel per step-size rule: on or above the line the loss contracts at least as fast as the "
             "bound. In the shaded strip the bound prints as 1.0000 (vacuous: it bounds nothing); runs whose bound "
             "is exactly 1 are drawn at its left edge.",
}


@style.styled
def figures(results: dict) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): ``loss_curves_<rule>`` per step-size rule,
    ``rate_ratio_vs_width`` and ``bound``."""
    runs = results["runs"]
    out: dict[str, Any] = {}
    if not runs:
        return out
    for rule in _ordered((r["rule"] for r in runs), RULES):
        out[f"loss_curves_{rule}"] = _curves_figure(runs, rule)
    ratio = _ratio_figure(runs)
    if ratio is not None:
        out["rate_ratio_vs_width"] = ratio
    out["bound"] = _bound_figure(runs)
    return out


def _values(v: Sequence[float | None], scale: float) -> np.ndarray:
    return np.asarray([np.nan if x is None else x for x in v], dtype=float) / scale


def _curves_figure(runs: Sequence[dict], rule: str) -> Any:
    from matplotlib.lines import Line2D

    datas = list(dict.fromkeys(r["data"] for r in runs if r["rule"] == rule))
    regimes = _ordered((r["regime"] for r in runs if r["rule"] == rule), REGIMES)
    widths = sorted({int(r["width"]) for r in runs})
    colours = style.ramp("width", widths)
    fig, axes = style.figure(len(datas), len(regimes), width=max(2.35 * len(regimes), 4.8), height=2.5)
    first = min(r["seed"] for r in runs)
    infinite = False
    for i, data in enumerate(datas):
        for j, regime in enumerate(regimes):
            ax = axes[i][j]
            mine = [r for r in runs if (r["data"], r["regime"], r["rule"], r["seed"]) == (data, regime, rule, first)]
            if not mine:
                ax.set_visible(False)
                continue
            lowest = math.inf  # of the measured curves: a linearised curve far below it is cut
            for r in sorted(mine, key=lambda r: int(r["width"])):
                t = r["lr"] * np.asarray(r["curve_steps"], dtype=float)
                L0 = r["initial_loss"] if r["initial_loss"] > 0 else 1.0
                colour = colours[int(r["width"])]
                measured = _values(r["curve_measured"], L0)
                ax.plot(t, measured, "-", color=colour, lw=1.5)
                if np.isfinite(measured).any():
                    lowest = min(lowest, float(np.nanmin(measured)))
                ax.plot(t, _values(r["curve_predicted_finite"], L0), "--", color=colour, lw=1.1)
                if r.get("curve_predicted_infinite") is not None:
                    ax.plot(t, _values(r["curve_predicted_infinite"], L0), ":", color=colour, lw=1.3)
                    infinite = True
            ax.set_yscale("log")
            if math.isfinite(lowest) and lowest > 0 and ax.get_ylim()[0] < lowest * 1e-4:
                ax.set_ylim(bottom=lowest * 1e-4)
            ax.set_title(f"{data}, {regime}")
    for j in range(len(regimes)):  # the lowest panel drawn in each column carries the x label
        shown = [axes[i][j] for i in range(len(datas)) if axes[i][j].get_visible()]
        if shown:
            shown[-1].set_xlabel("η t (step size × steps)")
    for i in range(len(datas)):
        shown = [ax for ax in axes[i] if ax.get_visible()]
        if shown:
            shown[0].set_ylabel("L(t) / L(0)")
    handles = [Line2D([], [], color=colours[w], lw=1.5, label=f"m = {w}") for w in widths]
    handles += [Line2D([], [], color="0.3", ls="-", label="measured"),
                Line2D([], [], color="0.3", ls="--", label="linearised, averaged Θ(0)")]
    if infinite:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.3, label="linearised, infinite width"))
    what = r"$\eta = 1/\lambda_{max}(\Theta(0))$ per network" if rule == "auto" else "one η per data set"
    return style.finish(fig, f"E1: the loss against η t, rule {rule} ({what}), seed {first}", handles=handles,
                        ncol=min(len(handles), 4 if len(regimes) > 2 else 2))


def _ratio_figure(runs: Sequence[dict]) -> Any | None:
    from matplotlib.lines import Line2D

    datas = list(dict.fromkeys(r["data"] for r in runs))
    kinds = [k for k, _ in KINDS if any(math.isfinite(_log_ratio(r, k)) for r in runs)]
    if not kinds:
        return None
    widths = sorted({int(r["width"]) for r in runs})
    rules = _ordered((r["rule"] for r in runs), RULES)
    dash = {rule: ("-", "--", ":", "-.")[i % 4] for i, rule in enumerate(rules)}
    fig, axes = style.figure(len(datas), len(kinds), width=3.1 * len(kinds), height=2.9)
    regimes_drawn: list[str] = []
    for i, data in enumerate(datas):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            drawn: list[float] = []
            for regime in _ordered((r["regime"] for r in runs if r["data"] == data), REGIMES):
                for k, rule in enumerate(rules):
                    mine = [r for r in runs if (r["data"], r["regime"], r["rule"]) == (data, regime, rule)]
                    xs, ys, lo, hi = [], [], [], []
                    for w in sorted({int(r["width"]) for r in mine}):
                        e = _geomean([r for r in mine if int(r["width"]) == w], kind)
                        if e is None:
                            continue
                        xs.append(w * (1.03 ** k if len(widths) > 1 else 1.0))  # rules side by side
                        ys.append(e.value)
                        lo.append(e.value - e.low if e.has_interval else 0.0)
                        hi.append(e.high - e.value if e.has_interval and math.isfinite(e.high) else 0.0)
                    if not xs:
                        continue
                    colour = style.REGIME_COLOURS.get(regime, "0.3")
                    ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style.DATA_MARKERS.get(data, "^"), ls=dash[rule],
                                color=colour, ms=5, capsize=2.5, lw=1.3)
                    drawn += ys + [y - d for y, d in zip(ys, lo, strict=True)]
                    if regime not in regimes_drawn:
                        regimes_drawn.append(regime)
            if not drawn:
                ax.set_visible(False)
                continue
            ax.axhline(1.0, color="0.5", ls=":", lw=1)
            positive = [v for v in drawn if v > 0]
            if positive and max([*positive, 1.0]) / min([*positive, 1.0]) > 10:
                ax.set_yscale("log")
            if len(widths) > 1:
                ax.set_xscale("log")
                style.plain_ticks(ax.xaxis, widths)
            else:
                ax.set_xticks(widths)
            ax.set(title=f"{data}: over {_SHORT[kind]}", xlabel="width m")
        axes[i][0].set_ylabel("measured / predicted")
    handles = [Line2D([], [], color=style.REGIME_COLOURS.get(g, "0.3"), lw=1.3, label=g)
               for g in _ordered(regimes_drawn, REGIMES)]
    handles += [Line2D([], [], color="0.3", ls=dash[rule], lw=1.3, label=f"rule {rule}") for rule in rules]
    handles += [Line2D([], [], color="0.3", marker=style.DATA_MARKERS.get(d, "^"), ls="", label=d) for d in datas]
    handles.append(Line2D([], [], color="0.5", ls=":", label="as fast as predicted"))
    return style.finish(fig, "E1: measured over predicted -log rate of the loss per step, against the width "
                             "(geometric mean over seeds, 95% interval)", handles=handles, ncol=min(len(handles), 5))


def _bound_figure(runs: Sequence[dict]) -> Any:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rules = _ordered((r["rule"] for r in runs), RULES)
    datas = list(dict.fromkeys(r["data"] for r in runs))
    fig, axes = style.figure(1, len(rules), width=4.2 * len(rules), height=3.8)
    edge = 0.2 * VACUOUS_LOG
    points: dict[str, list[tuple[float, float, dict]]] = {rule: [] for rule in rules}
    for r in runs:
        m, b = r.get("measured_rate"), float(r["predicted_bound"])
        if m is None or not 0 < m < 1:
            continue  # the loss did not fall: no -log rate to draw
        points[r["rule"]].append((max(-math.log(b) if 0 < b < 1 else 0.0, edge), -math.log(m), r))
    every = [v for pts in points.values() for x, y, _ in pts for v in (x, y)]
    lo, hi = (min(every) / 1.5, max(every) * 1.5) if every else (edge, 1.0)  # one scale for every panel
    strip = lo < VACUOUS_LOG
    regimes_drawn: list[str] = []
    for ax, rule in zip(axes[0], rules, strict=True):
        for x, y, r in points[rule]:
            ax.plot(x, y, style.DATA_MARKERS.get(r["data"], "^"), color=style.REGIME_COLOURS.get(r["regime"], "0.3"),
                    ms=5, alpha=0.85)
            if r["regime"] not in regimes_drawn:
                regimes_drawn.append(r["regime"])
        ax.plot([lo, hi], [lo, hi], "-", color="0.5", lw=0.9)
        if strip:
            ax.axvspan(lo, VACUOUS_LOG, color="0.88", lw=0, zorder=0)
        if not points[rule]:
            ax.text(0.5, 0.5, "no run with a falling loss", ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=f"rule {rule}",
               xlabel=r"$-\log$ of the bound $(1 - \eta\lambda_{min})^2$")
    axes[0][0].set_ylabel("measured -log rate per step")
    handles = [Line2D([], [], color=style.REGIME_COLOURS.get(g, "0.3"), marker="o", ls="", label=g)
               for g in _ordered(regimes_drawn, REGIMES)]
    handles += [Line2D([], [], color="0.3", marker=style.DATA_MARKERS.get(d, "^"), ls="", label=d) for d in datas]
    handles.append(Line2D([], [], color="0.5", lw=0.9, label="as fast as the bound"))
    if strip:
        handles.append(Patch(color="0.88", label="vacuous bound (1.0000)"))
    return style.finish(fig, "E1: measured loss contraction against the proofs' bound (on or above the line: at "
                             "least as fast)", handles=handles, ncol=min(len(handles), 4))
