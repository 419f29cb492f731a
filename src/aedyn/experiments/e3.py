"""E3, laziness: how far do the weights, the activation patterns and the kernel move, against the width?

For every regime (``weak``, ``joint``), data set (sphere and digits, rows normalised), width ``m``
and initialisation seed, one network (NTK scaling ``alpha = 1/sqrt(m)``, ``f_0`` not zeroed) trains by
full-batch gradient descent with ``lr = 1/lambda_max(Theta(0))`` of its own (``lr="auto"``) until
``L <= target * L(0)`` or the step budget is spent. At the stopping step ``T`` it measures
(:data:`aedyn.gd.METRICS`, and the measures :data:`MEASURES`):

- ``weight_change_W = ||W_T - W_0||_F / ||W_0||_F`` (and, jointly trained, ``weight_change_V``);
- ``max_neuron_change_W = max_r ||w_r(T) - w_r(0)||``, absolute; the table also has it relative to
  the typical neuron norm, ``max_neuron_change_W_rel = max_neuron_change_W / (kappa sqrt(d))``
  (``E ||w_r(0)||^2 = kappa^2 d``; the ``weights`` measure): a constant factor, so the fitted slope
  is the same;
- ``pattern_flips``: the share of the ``n m`` activation patterns ``1{w_r . x_i > 0}`` that differ
  from initialisation;
- ``ntk_drift_at_stop = ||Theta(T) - Theta(0)||_F / ||Theta(0)||_F`` (the ``ntk_ends`` measure):
  gradient descent evaluates ``Theta`` every ``ceil(budget / KERNEL_CHECKS)`` steps (for the
  certificate's kernel invariant) and at each network's stopping step, from its final parameters
  (``aedyn.gd._NTKRecorder.finish``); exact (dense ``nd x nd`` kernels) at the sizes chosen here
  (``n d <= 1024``).

**How it runs.** Every run is a :class:`~aedyn.job.TrainJob` declaring the measures
:data:`MEASURES`; the seeds of one data set, regime and width are one batch, and all batches go
through one :class:`aedyn.sweep.Runner` (the report's, into its run store ``OUT/runs``, locally or
on a Dask cluster), which returns each run's row (:func:`aedyn.sweep.result_row`). A run's record
is its row restricted to :data:`COLUMNS`, under the row's names. An interrupted run resumes from
the store: a rerun trains only the runs the store lacks.

Every run is certified (:mod:`aedyn.certificate`, movement recorded every :data:`RECORD_EVERY`
steps): :func:`certificate_table` counts, per data set, regime and width, the runs inside the NTK
regime and those holding each invariant; :func:`aedyn.findings.certificate` says how many runs
hold each invariant (kernel, rate, safe radius) separately, per data set and regime (the details)
and over every run (the headline), so that a run failing only the proofs' sufficient safe-radius
argument is not read as a run outside the regime the kernel and rate invariants describe.

**Statistics** (:mod:`aedyn.stats`). The slope of a quantity ``q`` against ``m`` (per data set and
regime) is :func:`aedyn.stats.fit_slope`: each seed's least-squares slope of ``log q`` on ``log m``
over the widths where it reached the target, their mean, and the 95% t interval over the seeds (a
seed's networks at different widths share their first random draws, so the seeds, not the widths,
are the independent units). Only runs that reached the target enter a fit (movement "at the end of
training" is movement to the target; runs stopped by the step budget are still training, and are
named); a width enters the fit of ``q`` only when ``q > 0`` in each of its converged seeds
(``pattern_flips`` can be exactly 0 at large ``m``, whose log does not exist): such widths are
named, never dropped silently. The proofs bound each quantity by ``O(m^(-1/2))`` (:data:`REFERENCE`):
:func:`aedyn.findings.power_law` (``kind="at_most"``) compares each interval with it, a steeper fall
meeting the bound. Weak against joint, per data set and quantity, only through the interval of the
difference or ratio (:func:`aedyn.findings.comparison`): the difference of their slopes with
Welch's t interval (:func:`aedyn.stats.slope_difference`), and their levels at the largest width
both reached, through the t interval of the seeds' log ratios (weak and joint networks of one seed
start from the same weights, so each seed is a pair). (The largest single-neuron movement is a maximum
over ``m`` neurons, which grows with ``m`` even when each neuron moves like ``m^(-1/2)``, about like
``sqrt(2 log m)`` for Gaussian-like tails: its slope is reported as measured.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from aedyn.certificate import CERTIFICATE_COLUMNS
from aedyn.experiments import RECORD_EVERY, missing_runs, require_results, small_problems, style, values_by_seed
from aedyn.findings import (
    Finding,
    certificate,
    combine,
    comparison,
    count,
    power_law,
    seeds_phrase,
    statement,
    unfinished,
)
from aedyn.job import TrainJob
from aedyn.stats import LEVEL, Estimate, Slope, fit_slope, slope_difference, t_interval
from aedyn.sweep import Runner, notes_of

NAME = "E3"
TITLE = "Laziness"
CLAIM = ("In the over-parameterised NTK regime, gradient descent barely moves the network away from its "
         "initialisation: the relative weight movement, the share of ReLU activation patterns that flip and "
         "the drift of the neural tangent kernel are each O(m^(-1/2)) in the width m.")


REGIMES: tuple[str, ...] = ("weak", "joint")
QUANTITIES: tuple[str, ...] = ("weight_change_W", "weight_change_V", "max_neuron_change_W", "pattern_flips",
                               "ntk_drift_at_stop")
"""The quantities whose slope against ``m`` is fitted (``weight_change_V`` in ``joint`` only)."""
LABELS = {"weight_change_W": "||W_T - W_0||_F / ||W_0||_F", "weight_change_V": "||V_T - V_0||_F / ||V_0||_F",
          "max_neuron_change_W": "max_r ||w_r(T) - w_r(0)||", "pattern_flips": "share of patterns flipped",
          "ntk_drift_at_stop": "||Theta(T) - Theta(0)||_F / ||Theta(0)||_F"}
"""Each quantity as a formula (the sentences)."""
NAMES = {"weight_change_W": "encoder movement", "weight_change_V": "decoder movement",
         "max_neuron_change_W": "largest neuron movement", "pattern_flips": "share of patterns flipped",
         "ntk_drift_at_stop": "kernel drift"}
"""Each quantity in words (sentences, tables, figure titles)."""
MATH = {"weight_change_W": r"$\|W_T - W_0\|_F \,/\, \|W_0\|_F$",
        "weight_change_V": r"$\|V_T - V_0\|_F \,/\, \|V_0\|_F$",
        "max_neuron_change_W": r"$\max_r \|w_r(T) - w_r(0)\|$", "pattern_flips": "share of patterns flipped",
        "ntk_drift_at_stop": r"$\|\Theta(T) - \Theta(0)\|_F \,/\, \|\Theta(0)\|_F$"}
"""Each quantity as a figure's axis label (mathtext)."""
MAIN_QUANTITY = "weight_change_W"
"""The quantity of the headline's key number and of the weak-against-joint findings (on the first data set)."""
KERNEL_CHECKS = 10
"""``Theta(t)`` is evaluated every ``ceil(budget / KERNEL_CHECKS)`` steps (and at the stopping step)
for the certificate's kernel invariant."""
REFERENCE = -0.5
"""The slope the proofs' bounds give every quantity: ``O(m^(-1/2))``."""
EARLIER = {"ntk_drift_at_stop": -0.75}
"""Slopes of the project's first measurements, before this experiment, where they differ from
:data:`REFERENCE`: the kernel drift was seen to fall about like ``m^(-3/4)``."""
CLOSE = 0.05
"""A slope within this of the reference whose interval excludes it is "steeper/shallower by only"
(:func:`aedyn.findings.power_law`), so that a narrow interval is not read as a large difference."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. Problem sizes keep ``n d <= 1024``, so that the
    kernel drift is exact (dense) on the CPU.

    - quick: sphere ``n = 8, d = 4`` with widths ``2^7 .. 2^12``, digits ``n = 4`` (``d = 64``) with
      widths ``2^8 .. 2^12``; 3 seeds (the least from which an interval is read), target ``1e-4``
      (the movement hardly changes below it: the last steps of a linearly converging run add a
      geometric tail), budgets 1000 (sphere) and 600 (digits: wide networks need under 300 steps;
      weak training at ``m = 256`` runs out of steps). About 6 s of CPU time.
    - full: 8 seeds everywhere (every slope's t interval has 7 degrees of freedom); sphere ``n = 16,
      d = 8`` with widths ``2^6 .. 2^14``; digits ``n = 8`` (``n d = 512``) with widths
      ``2^6 .. 2^12``: at ``m = 2^13`` and ``2^14`` each digits network (an ``8 x 64 x m`` product per
      step, two dense ``512 x 512`` kernels from ``512 x m`` factors, ten more kernel checks) costs
      more than the time budget allows at 8 seeds. Target ``1e-6``; budgets 1000 (sphere; wide
      networks need under 100 steps) and 2500 (digits: networks from ``m = 512`` on need under 600;
      weak training at ``m <= 256`` and joint at ``m <= 128`` do not reach the target within it, and
      are recorded as still training). About 120 s of CPU time, about as much wall time on 2 idle cores
      (each batch runs on one thread; 390 s wall on 2 cores shared with several other jobs); digits is
      five sixths of it.

    ``seeds`` overrides the number of seeds (of every data set)."""
    if quick:
        data = [{"name": "sphere", "n": 8, "d": 4, "widths": [2 ** k for k in range(7, 13)], "seeds": 3,
                 "max_steps": 1000},
                {"name": "digits", "n": 4, "d": 64, "widths": [2 ** k for k in range(8, 13)], "seeds": 3,
                 "max_steps": 600}]
    else:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [2 ** k for k in range(6, 15)], "seeds": 8,
                 "max_steps": 1000},
                {"name": "digits", "n": 8, "d": 64, "widths": [2 ** k for k in range(6, 13)], "seeds": 8,
                 "max_steps": 2500}]
    for entry in data:
        entry["seeds"] = list(range(entry["seeds"] if seeds is None else int(seeds)))
    return {"regimes": list(REGIMES), "data": data, "data_seed": 0, "target": 1e-4 if quick else 1e-6,
            "kappa": 1.0, "nu": 1.0, "dtype": "float64", "device": device, "reference_slope": REFERENCE,
            "level": LEVEL, "kernel_checks": KERNEL_CHECKS, "record_every": RECORD_EVERY}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    data = "; ".join(
        f"{d['name']} (n = {d['n']}, d = {d['d']}, widths m = {_list(d['widths'])}, "
        f"{seeds_phrase(len(d['seeds']))}, at most {d['max_steps']} steps)"
        for d in config["data"])
    level = 100 * float(config.get("level", LEVEL))
    return [
        f"Data: {data}; rows normalised to unit norm; data seed {config['data_seed']}.",
        f"Regimes {', '.join(config['regimes'])}; NTK scaling alpha = 1/sqrt(m), kappa = {config['kappa']:g}, "
        f"nu = {config['nu']:g}, {config['dtype']}; step size eta = 1/lambda_max(Theta(0)) of each network; a run "
        f"stops at L <= {config['target']:g} L(0) or when its step budget is spent (then it is still training).",
        "Measured at the stopping step T: ||W_T - W_0||_F / ||W_0||_F (joint also V), the largest single-neuron "
        "movement max_r ||w_r(T) - w_r(0)|| (absolute; the table also divides it by the typical neuron norm "
        "kappa sqrt(d), which leaves the slope unchanged), the share of activation patterns 1{w_r . x_i > 0} "
        "flipped, and the kernel drift ||Theta(T) - Theta(0)||_F / ||Theta(0)||_F from the dense (exact) "
        "NTK at step 0 and at T.",
        f"Slopes: each seed's least-squares slope of log q against log m over the widths where it reached the "
        f"target; the slope is their mean, with the {level:.0f}% t interval over the seeds (a seed's networks at "
        "different widths share their first random draws, so the seeds are the independent units). A width "
        "where some converged seed has q = 0 (no pattern flipped) is left out of that quantity's fit and named. "
        f"Each slope is compared with the proofs' bound m^{config['reference_slope']:g} through its interval.",
        "Weak against joint: the difference of their slopes with Welch's t interval, and the ratio of their "
        "levels at the largest width both reached with the t interval of the seeds' log ratios (a seed's weak and "
        "joint networks start from the same weights); a difference is claimed only where its interval excludes "
        "equality.",
    ]


def _list(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


# ---- running: one batch per setting, one record per run -------------------------------------------

MEASURES: tuple[str, ...] = ("ntk_ends", "weights")
"""What every run measures beyond the standard row (:mod:`aedyn.measures`): the NTK at step 0 and
at the stop (``lambda_min0``, ``lambda_minT``, ``ntk_drift_at_stop``, ...) and the largest neuron
movement relative to the typical neuron norm (``max_neuron_change_W_rel``)."""

COLUMNS = ("regime", "data", "n", "d", "width", "seed", "steps", "status", "final_relative_loss", "lr",
           "weight_change_W", "weight_change_V", "max_neuron_change_W", "max_neuron_change_W_rel",
           "max_neuron_change_V", "pattern_flips", "ntk_drift_at_stop", "ntk_drift_method", "ntk_checked_at",
           "lambda_min0", "lambda_max0", "lambda_minT", "lambda_maxT", *CERTIFICATE_COLUMNS)
"""A run's record (``results["runs"]``) and the tidy table's columns: the columns of its row
(:func:`aedyn.sweep.result_row`, under the row's names) that the analysis reads. The quantities at
the stop are the row's final metrics (:data:`aedyn.gd.METRICS`) and its measures' columns
(:data:`MEASURES`); ``weight_change_V`` and ``max_neuron_change_V`` are ``None`` in weak training,
the NTK values at ``T`` ``None`` unless the last NTK check was at ``T`` (``ntk_checked_at``)."""

_INTEGERS = ("n", "d", "width", "seed", "steps", "ntk_checked_at")


def _job(config: dict, data: dict, regime: str, width: int, seed: int) -> TrainJob:
    steps = int(data["max_steps"])
    checks = int(config.get("kernel_checks", KERNEL_CHECKS))
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width, lr="auto",
                    steps=steps, target=config["target"], record_every=int(config.get("record_every", RECORD_EVERY)),
                    ntk_every=max(1, math.ceil(steps / checks)), certify=True, dtype=config["dtype"],
                    device=config["device"], measures=MEASURES)


def _batches(config: dict) -> list[list[TrainJob]]:
    """One batch per data set, regime and width (in that order), its seeds' jobs in order: they share
    :func:`aedyn.job.batch_key` and train side by side."""
    return [[_job(config, data, regime, int(width), int(seed)) for seed in data["seeds"]]
            for data in config["data"] for regime in config["regimes"] for width in data["widths"]]


def runs(config: dict) -> list[dict]:
    """The identifying settings of every run of :func:`_batches`, in their order: data set (name and
    ``n``), regime, width and seed."""
    return [{"data": data["name"], "n": int(data["n"]), "regime": regime, "width": int(width), "seed": int(seed)}
            for data in config["data"] for regime in config["regimes"] for width in data["widths"]
            for seed in data["seeds"]]


def missing(config: dict, results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config`` (:func:`aedyn.experiments.missing_runs`);
    ``ValueError`` when they are damaged."""
    return missing_runs(require_results(results, config, ("runs",))["runs"], runs(config))


def _cell(key: str, value: Any) -> Any:
    """A row's value as the record keeps it: ``None`` for a missing or non-finite number (JSON has no
    NaN), integers as ``int`` (a stored integer column with gaps reads back as floats)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if key in _INTEGERS:
        return int(value)
    return float(value) if math.isfinite(value) else None


def record(row: dict[str, Any]) -> dict[str, Any]:
    """One run's record: its row restricted to :data:`COLUMNS` (``None`` where the row has no value)."""
    return {c: _cell(c, row.get(c)) for c in COLUMNS}


def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        runner: Runner | None = None) -> dict:
    """Train every run of the config through ``runner`` (the report's :class:`~aedyn.sweep.Runner`:
    its run store makes an interrupted run resume, training only the runs it lacks, and its executor
    may be a Dask cluster; default a local runner without a store), one batch per data set, regime
    and width (:func:`_batches`), and record each run (:func:`record`). Returns ``{"config",
    "notes", "runs"}``; ``notes`` are the runs' notes (data warnings), each once, sorted.
    ``progress(message, fraction)`` after each batch trained."""
    report = progress or (lambda message, fraction: None)

    def trained(done: int, total: int) -> None:
        report(f"E3: {done} of {total} batches trained" if total else "E3: every run is in the run store",
               done / total if total else 1.0)

    batches = _batches(config)
    with small_problems(config["device"]), Runner.given(runner) as runner:
        rows = runner.run(batches, progress=trained)
    runs = [record(row) for batch in rows for row in batch]
    notes = notes_of(row for batch in rows for row in batch)
    report("E3: done", 1.0)
    return {"config": config, "notes": notes, "runs": runs}


def _converged(run: dict) -> bool:
    """Whether a run reached the target."""
    return run["status"] == "converged"


# ---- slopes and comparisons -----------------------------------------------------------------------

def _applies(regime: str, quantity: str) -> bool:
    return not (quantity.endswith("_V") and regime == "weak")


def _present(runs: Sequence[dict], key: str, order: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(r[key] for r in runs))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def _left_out(mine: Sequence[dict]) -> list[str]:
    """The clauses naming the runs of one data set and regime that did not reach the target (left out
    of every fit): those stopped by the step budget are still training (:func:`aedyn.findings.unfinished`)."""
    out = []
    stopped = [r for r in mine if r["status"] == "max_steps"]
    if stopped:
        out.append(f"m = {_list(sorted({int(r['width']) for r in stopped}))}: {unfinished(len(stopped), len(mine))}; "
                   "left out of the fit")
    other = [r for r in mine if not _converged(r) and r["status"] != "max_steps"]
    if other:
        statuses = ", ".join(sorted({str(r["status"]) for r in other}))
        out.append(f"m = {_list(sorted({int(r['width']) for r in other}))}: {count(len(other), len(mine))} ended "
                   f"{statuses}; left out of the fit")
    return out


@dataclass(frozen=True)
class _Fit:
    """One data set x regime x quantity: the slope (``None`` when no seed has two fitted widths), its
    finding against the reference (:func:`aedyn.findings.power_law`), the runs behind it, how many
    missed the target, and the clauses naming what was left out."""

    data: str
    regime: str
    quantity: str
    slope: Slope | None
    finding: Finding
    reference: float
    runs: int
    missed: int
    excluded: tuple[str, ...]

    @property
    def against(self) -> str:
        """``consistent``, ``steeper`` or ``shallower`` (than the reference, by the interval), ``too few
        seeds`` or ``no fit``."""
        s = self.slope
        if s is None:
            return "no fit"
        if self.finding.verdict == "inconclusive" or not s.has_interval:
            return "too few seeds"
        if s.contains(self.reference):
            return "consistent"
        return "steeper" if s.high < self.reference else "shallower"  # type: ignore[operator]


@dataclass(frozen=True)
class _Analysis:
    """Everything E3 concludes, computed once per verb: the data sets and regimes present (in order),
    the fits, and per data set and quantity weak's slope minus joint's and weak's level over
    joint's at the largest width both reached (``(width, estimate)``)."""

    reference: float
    datas: tuple[str, ...]
    regimes: tuple[str, ...]
    fits: dict[tuple[str, str, str], _Fit]
    differences: dict[tuple[str, str], Finding]
    ratios: dict[tuple[str, str], tuple[int, Finding]]
    runs: dict[tuple[str, str], list[dict]]

    def quantities(self, data: str) -> list[str]:
        return [q for q in QUANTITIES if any((data, r, q) in self.fits for r in self.regimes)]


def _analyse(results: dict) -> _Analysis:
    cfg = results.get("config", {})
    reference, level = float(cfg.get("reference_slope", REFERENCE)), float(cfg.get("level", LEVEL))
    runs = results["runs"]
    datas = tuple(_present(runs, "data", tuple(style.DATA_MARKERS)))
    regimes = tuple(_present(runs, "regime", REGIMES))
    groups = {(d, g): [r for r in runs if r["data"] == d and r["regime"] == g] for d in datas for g in regimes}
    groups = {k: v for k, v in groups.items() if v}
    fits: dict[tuple[str, str, str], _Fit] = {}
    for (data, regime), mine in groups.items():
        left = _left_out(mine)
        missed = sum(not _converged(r) for r in mine)
        for quantity in QUANTITIES:
            if not _applies(regime, quantity):
                continue
            widths, values = values_by_seed([r for r in mine if _converged(r)], quantity)
            slope = fit_slope(widths, values, level=level) if widths else None
            excluded = list(left)
            if slope is not None and slope.zero_widths:
                excluded.append(f"{NAMES[quantity]} 0 in some converged seed at m = {_list(slope.zero_widths)} "
                                "(no logarithm; left out of the fit)")
            finding = power_law("laziness", NAME, f"{data}, {regime}", NAMES[quantity], slope, reference=reference,
                                kind="at_most", close=CLOSE, runs=len(mine), excluded=excluded,
                                earlier=EARLIER.get(quantity))
            fits[(data, regime, quantity)] = _Fit(data, regime, quantity, slope, finding, reference, len(mine),
                                                  missed, tuple(excluded))
    differences: dict[tuple[str, str], Finding] = {}
    ratios: dict[tuple[str, str], tuple[int, Finding]] = {}
    if {"weak", "joint"} <= set(regimes):
        for data in datas:
            for quantity in QUANTITIES:
                w, j = fits.get((data, "weak", quantity)), fits.get((data, "joint", quantity))
                if w is None or j is None:
                    continue
                both = groups[(data, "weak")] + groups[(data, "joint")]
                est = None if w.slope is None or j.slope is None else slope_difference(w.slope, j.slope, level)
                differences[(data, quantity)] = comparison(
                    "laziness", NAME, f"{data}, {NAMES[quantity]}", "weak's slope minus joint's", est, equal=0.0,
                    larger="weak's falls more slowly with m than joint's (a shallower slope)",
                    smaller="weak's falls faster with m than joint's (a steeper slope)", runs=len(both),
                    excluded=[f"{f.regime}: {clause}" for f in (w, j) for clause in f.excluded])
                top = _level_ratio(groups[(data, "weak")], groups[(data, "joint")], quantity, level)
                if top is not None:
                    width, ratio, pairs = top
                    ratios[(data, quantity)] = (width, comparison(
                        "laziness", NAME, f"{data}, {NAMES[quantity]} at m = {width}", "weak's over joint's", ratio,
                        equal=1.0, ratio=True, larger="weak's is larger than joint's",
                        smaller="weak's is smaller than joint's", runs=2 * pairs))
    return _Analysis(reference, datas, regimes, fits, differences, ratios, groups)


def _level_ratio(weak: Sequence[dict], joint: Sequence[dict], quantity: str, level: float
                 ) -> tuple[int, Estimate, int] | None:
    """Weak's ``quantity`` over joint's at the largest width where some seed reached the target in both
    (with ``q > 0``): the geometric mean of the seeds' ratios with the t interval of their logs
    (weak and joint networks of one seed start from the same weights, so each seed is one pair).
    ``(width, ratio, pairs)``, or ``None``."""
    def values(runs: Sequence[dict]) -> dict[tuple[int, Any], float]:
        return {(int(r["width"]), r["seed"]): float(r[quantity]) for r in runs
                if _converged(r) and r.get(quantity) is not None and r[quantity] > 0 and math.isfinite(r[quantity])}

    w, j = values(weak), values(joint)
    common = sorted(set(w) & set(j))
    if not common:
        return None
    top = max(m for m, _ in common)
    logs = [math.log(w[k] / j[k]) for k in common if k[0] == top]
    est = t_interval(logs, level, "geometric mean of the seeds' ratios; t interval of their logs")
    assert est is not None
    return top, Estimate(math.exp(est.value), None if est.low is None else math.exp(est.low),
                         None if est.high is None else math.exp(est.high), level, est.method, est.units), len(logs)


def slopes(results: dict) -> list[dict[str, Any]]:
    """One entry per regime x quantity x data: ``regime, quantity, data, value, ci_low, ci_high,
    seeds, per_seed, n_widths, widths, zero_widths`` (:func:`aedyn.stats.fit_slope` over the runs that
    reached the target, lined up by seed), ``excluded`` (the runs of that data set and regime that did
    not reach the target, left out), ``against`` (the interval against the reference) and ``verdict``
    (:func:`aedyn.findings.power_law`); ``value`` ``None`` when no seed had two widths to fit."""
    a = _analyse(results)
    out = []
    for (data, regime, quantity), fit in sorted(a.fits.items(), key=lambda kv: (
            a.regimes.index(kv[0][1]), QUANTITIES.index(kv[0][2]), a.datas.index(kv[0][0]))):
        entry: dict[str, Any] = {"regime": regime, "quantity": quantity, "data": data}
        entry.update(fit.slope.to_dict() if fit.slope is not None else
                     {"value": None, "ci_low": None, "ci_high": None, "seeds": 0, "per_seed": [], "n_widths": 0,
                      "widths": [], "zero_widths": []})
        entry.update(excluded=fit.missed, against=fit.against, verdict=fit.finding.verdict)
        out.append(entry)
    return out


# ---- the tables -----------------------------------------------------------------------------------

def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`); quantities that do not apply
    (``V`` in weak training) or were not measured are NaN."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    flags = [c for c in COLUMNS if c == "cert_inside" or c.endswith("_holds")]
    numeric = [c for c in COLUMNS if c not in ("regime", "data", "status", "ntk_drift_method", *flags)]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table[flags] = table[flags].astype("boolean")
    return table


CERTIFICATE_TABLE = ("data", "regime", "width", "runs", "inside", "kernel_holds", "rate_holds", "safe_radius_holds",
                     "kernel_ratio_min", "rate_worst_max", "rate_bound", "safe_share_median", "pattern_flips_max")


def certificate_table(results: dict) -> Any:
    """The certificate per data set, regime and width, over the seeds: how many runs were certified
    (``inside``: every invariant held) and how many held each invariant; the smallest kernel ratio
    ``lambda_min(Theta(t)) / lambda_min(Theta(0))``, the worst per-step loss contraction and the
    largest bound it was held to, the median share of neurons that never left their safe radius and
    the largest share of patterns flipped (:mod:`aedyn.certificate`)."""
    import pandas as pd

    table = tabulate(results)
    rows = []
    for (data, regime, width), g in table.groupby(["data", "regime", "width"], sort=False):
        rows.append({"data": data, "regime": regime, "width": int(width), "runs": len(g),
                     "inside": int(g["cert_inside"].fillna(False).sum()),
                     "kernel_holds": int(g["cert_kernel_holds"].fillna(False).sum()),
                     "rate_holds": int(g["cert_rate_holds"].fillna(False).sum()),
                     "safe_radius_holds": int(g["cert_safe_radius_holds"].fillna(False).sum()),
                     "kernel_ratio_min": g["cert_kernel"].min(), "rate_worst_max": g["cert_rate"].max(),
                     "rate_bound": g["cert_rate_bound"].max(), "safe_share_median": g["cert_safe_share"].median(),
                     "pattern_flips_max": g["cert_pattern_flips"].max()})
    return pd.DataFrame(rows, columns=list(CERTIFICATE_TABLE))


SLOPE_TABLE = ("data", "regime", "quantity", "value", "ci_low", "ci_high", "seeds", "n_widths", "widths",
               "zero_widths", "excluded", "against", "verdict")


def slope_table(results: dict) -> Any:
    """Every fitted slope (:func:`slopes`), one row per data set, regime and quantity."""
    import pandas as pd

    rows = [{k: (", ".join(str(w) for w in e[k]) if isinstance(e[k], list) else e[k]) for k in SLOPE_TABLE}
            for e in slopes(results)]
    return pd.DataFrame(rows, columns=list(SLOPE_TABLE))


def tables(results: dict) -> dict[str, Any]:
    """Tables beside the main one: ``certificate`` (:func:`certificate_table`) and ``slopes``
    (:func:`slope_table`)."""
    return {"certificate": certificate_table(results), "slopes": slope_table(results)}


def key_table(results: dict) -> Any:
    """The section's table: per data set and quantity, each regime's slope with its 95% interval, how
    each interval stands against the proofs' ``m^-1/2``, weak's slope minus joint's and weak's level
    over joint's at the largest width (each with its interval), the seeds and what was left out."""
    import pandas as pd

    a = _analyse(results)
    rows = []
    for data in a.datas:
        for quantity in a.quantities(data):
            row: dict[str, Any] = {"data": data, "quantity": NAMES[quantity]}
            mine = [a.fits[(data, r, quantity)] for r in a.regimes if (data, r, quantity) in a.fits]
            for regime in a.regimes:
                fit = a.fits.get((data, regime, quantity))
                row[f"{regime} slope [95% CI]"] = "-" if fit is None else fit.finding.key
            row[f"against m^{a.reference:g}"] = ", ".join(f"{f.regime} {f.against}" for f in mine)
            diff = a.differences.get((data, quantity))
            row["weak - joint slope [95% CI]"] = "-" if diff is None else diff.key
            ratio = a.ratios.get((data, quantity))
            row["weak / joint at largest m [95% CI]"] = "-" if ratio is None else f"{ratio[1].key} (m = {ratio[0]})"
            row["seeds"] = ", ".join(str(f.slope.units if f.slope is not None else 0) for f in mine)
            missed = [f"{f.regime} {f.missed} not finished" for f in mine if f.missed]
            zeros = [f"{f.regime} 0 at m = {_list(f.slope.zero_widths)}" for f in mine
                     if f.slope is not None and f.slope.zero_widths]
            row["left out"] = "; ".join(missed + zeros) or "-"
            rows.append(row)
    return pd.DataFrame(rows)


# ---- findings, details, summary -------------------------------------------------------------------

def _with(f: Finding, clause: str) -> Finding:
    """``f`` with a clause of fact added to its sentence (its verdict unchanged)."""
    return replace(f, sentence=f.sentence + clause)


def _tally(a: _Analysis) -> Finding:
    """The headline of ``laziness``: every fitted slope judged against the proofs' ``O(m^-1/2)``
    (:func:`aedyn.findings.power_law`, kind ``at_most``), counted; the verdict combines theirs
    (:func:`aedyn.findings.combine`: all meet the bound, ``supported``; some shallower,
    ``partly supported``). The key number is the first data set's encoder movement."""
    fits = list(a.fits.values())
    ref = f"m^{a.reference:g}"
    if not fits:
        return statement("laziness", NAME, "every data set and regime", "slopes against m", "No run to fit.",
                         "inconclusive", rule="laziness/bound_tally")
    meets = [f for f in fits if f.finding.verdict == "supported"]
    shallow = [f for f in fits if f.finding.verdict == "partly supported"]
    flat = [f for f in fits if f.finding.verdict == "not supported"]
    unknown = [f for f in fits if f.finding.verdict == "inconclusive"]
    consistent = sum(f.against == "consistent" for f in meets)
    datas = " and ".join(a.datas)
    regimes = " and ".join(a.regimes)
    text = (f"Of the {len(fits)} slopes against m ({datas}; {regimes}; {len(a.quantities(a.datas[0]))} quantities), "
            f"{len(meets)} meet the proofs' bound O({ref}) by their 95% intervals ({consistent} consistent with "
            f"{ref}, {len(meets) - consistent} steeper)")
    if shallow:
        text += f"; {len(shallow)} {'is' if len(shallow) == 1 else 'are'} shallower: " + "; ".join(
            f"{f.data} {f.regime} {NAMES[f.quantity]} {f.finding.key}" for f in shallow)
    if flat:
        text += f"; {len(flat)} do{'es' if len(flat) == 1 else ''} not fall with m: " + "; ".join(
            f"{f.data} {f.regime} {NAMES[f.quantity]} {f.finding.key}" for f in flat)
    if unknown:
        text += f"; {len(unknown)} cannot be judged (too few seeds or widths)"
    main = [a.fits[(a.datas[0], r, MAIN_QUANTITY)] for r in a.regimes if (a.datas[0], r, MAIN_QUANTITY) in a.fits]
    text += f". {a.datas[0].capitalize()}, {NAMES[MAIN_QUANTITY]}: " + ", ".join(
        f"{f.regime} {f.finding.key}" for f in main)
    seeds = [f.slope.units for f in fits if f.slope is not None]
    fewest = min(seeds) if seeds else 0
    excluded = [f"{d} {r}: {clause}" for (d, r), mine in a.runs.items() for clause in _left_out(mine)]
    text += f" ({'at least ' if len(set(seeds)) > 1 else ''}{seeds_phrase(fewest)}"
    text += f"; {'; '.join(excluded)})." if excluded else ")."
    key = (f"{a.datas[0]} {NAMES[MAIN_QUANTITY]}: " + ", ".join(f"{f.regime} {f.finding.key}" for f in main)
           + f"; {len(meets)} of {len(fits)} slopes meet {ref}")
    return statement("laziness", NAME, "every data set, regime and quantity", "slopes against m", text,
                     combine(f.finding.verdict for f in fits), key=key, seeds=fewest,
                     runs=sum(len(v) for v in a.runs.values()), excluded=excluded, rule="laziness/bound_tally",
                     unit="exponent")


def _certified(runs: Sequence[dict]) -> dict[str, int]:
    """Counts of the runs with a certificate: ``runs``, ``inside``, ``kernel``, ``rate``,
    ``safe_radius`` (runs holding each), ``vacuous`` (runs of no step), ``seeds``, and ``missing``
    (runs without a certificate)."""
    known = [r for r in runs if r.get("cert_inside") is not None]
    return {"runs": len(known), "inside": sum(bool(r["cert_inside"]) for r in known),
            "kernel": sum(bool(r.get("cert_kernel_holds")) for r in known),
            "rate": sum(bool(r.get("cert_rate_holds")) for r in known),
            "safe_radius": sum(bool(r.get("cert_safe_radius_holds")) for r in known),
            "vacuous": sum(int(r["steps"]) == 0 for r in known), "seeds": len({r["seed"] for r in known}),
            "missing": len(runs) - len(known)}


def _certificate_finding(runs: Sequence[dict], subject: str) -> Finding:
    c = _certified(runs)
    f = certificate(NAME, subject, runs=c["runs"], inside=c["inside"], kernel=c["kernel"], rate=c["rate"],
                    safe_radius=c["safe_radius"], seeds=c["seeds"], vacuous=c["vacuous"])
    failing = [r for r in runs if r.get("cert_inside") is not None
               and not (r.get("cert_kernel_holds") and r.get("cert_rate_holds"))]
    if failing:
        where = {}
        for r in failing:
            where.setdefault((r["data"], r["regime"], int(r["width"])), []).append(r)
        parts = []
        for (d, g, w), rs in sorted(where.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            still = sum(r["status"] == "max_steps" for r in rs)
            if still == len(rs):
                how = ", stopped at the step budget, still training" if still == 1 else \
                    ", all stopped at the step budget, still training"
            else:
                how = f", {still} of them stopped at the step budget, still training" if still else ""
            parts.append(f"{d} {g} m = {w} ({len(rs)} run{'s' if len(rs) != 1 else ''}{how})")
        f = _with(f, " The kernel or rate invariant fails in " + "; ".join(parts) + ".")
    if c["missing"]:
        f = _with(f, f" {count(c['missing'], len(runs))} carried no certificate (not counted).")
    return f


def _every_seed_from(runs: Sequence[dict]) -> int | None:
    """The least width from which every run of every larger width is inside (``None``: none such)."""
    widths = sorted({int(r["width"]) for r in runs})
    inside = {w: all(bool(r.get("cert_inside")) for r in runs if int(r["width"]) == w) for w in widths}
    for i, w in enumerate(widths):
        if all(inside[v] for v in widths[i:]):
            return w
    return None


def findings(results: dict) -> list[Finding]:
    """At most five findings:

    1. (headline of ``laziness``) every slope against ``m`` judged against the proofs' bound
       ``O(m^-1/2)``, counted, with the first data set's encoder movement as the key number;
    2. weak's encoder-movement slope minus joint's on the first data set (``comparison``);
    3. weak's encoder movement over joint's at the largest width there (``comparison``, ratio);
    4. joint's kernel drift on the first data set against ``m^-1/2`` and the earlier ``m^-3/4``
       (``power_law``);
    5. (headline of ``certificate``) the certificate over every run, each invariant counted
       separately (``certificate``)."""
    a = _analyse(results)
    if not a.fits:
        return []
    out = [_tally(a).as_headline("laziness")]
    main = a.datas[0]
    if (main, MAIN_QUANTITY) in a.differences:
        out.append(replace(a.differences[(main, MAIN_QUANTITY)], figure="laziness"))
    if (main, MAIN_QUANTITY) in a.ratios:
        out.append(replace(a.ratios[(main, MAIN_QUANTITY)][1], figure="laziness"))
    drift_regime = "joint" if "joint" in a.regimes else a.regimes[-1]
    drift = a.fits.get((main, drift_regime, "ntk_drift_at_stop"))
    if drift is not None:
        out.append(replace(drift.finding, figure="laziness"))
    everything = [r for mine in a.runs.values() for r in mine]
    widths = sorted({int(r["width"]) for r in everything})
    subject = (f"E3, every run ({' and '.join(a.datas)}; {' and '.join(a.regimes)}; m = {widths[0]}..{widths[-1]})"
               if len(widths) > 1 else f"E3, every run ({' and '.join(a.datas)}; {' and '.join(a.regimes)})")
    out.append(_certificate_finding(everything, subject).as_headline("certificate"))
    return out[:5]


def details(results: dict) -> list[str]:
    """Every setting in sentences: which runs did not reach the target; per data set and quantity each
    regime's slope against the reference (:func:`aedyn.findings.power_law`), weak's slope minus
    joint's and weak's level over joint's at the largest width (:func:`aedyn.findings.comparison`);
    the certificate per data set and regime (:func:`aedyn.findings.certificate`)."""
    a = _analyse(results)
    everything = [r for mine in a.runs.values() for r in mine]
    out: list[str] = []
    missed = [r for r in everything if not _converged(r)]
    if missed:
        where: dict[tuple[str, str, int], list[dict]] = {}
        for r in missed:
            where.setdefault((r["data"], r["regime"], int(r["width"])), []).append(r)
        parts = []
        for (d, g, w), rs in sorted(where.items()):
            total = sum(int(r["width"]) == w for r in a.runs[(d, g)])
            still = sum(r["status"] == "max_steps" for r in rs)
            text = f"{d} {g} m = {w}: " + (unfinished(still, total) or "")
            if still < len(rs):
                text += (", " if still else "") + f"{count(len(rs) - still, total)} ended " + ", ".join(
                    sorted({str(r["status"]) for r in rs if r["status"] != "max_steps"}))
            parts.append(text)
        out.append(f"{count(len(missed), len(everything))} did not reach the target and are left out of every fit: "
                   + "; ".join(parts) + ".")
    else:
        out.append(f"The target was reached in {count(len(everything), len(everything))}.")
    for data in a.datas:
        for quantity in a.quantities(data):
            formula = "" if LABELS[quantity] == NAMES[quantity] else f" ({LABELS[quantity]})"
            text = f"{data}, {NAMES[quantity]}{formula} against m. " + " ".join(
                a.fits[(data, r, quantity)].finding.sentence for r in a.regimes if (data, r, quantity) in a.fits)
            if (data, quantity) in a.differences:
                text += " Weak against joint: " + a.differences[(data, quantity)].sentence
            if (data, quantity) in a.ratios:
                text += " " + a.ratios[(data, quantity)][1].sentence
            out.append(text)
    if any(q == "max_neuron_change_W" for (_, _, q) in a.fits):
        out.append("The largest neuron movement is the maximum of m neurons' movements, which grows with m even "
                   "when each neuron moves like m^-1/2 (about like sqrt(2 log m) for Gaussian-like tails); its slope "
                   "is reported as measured.")
    for (data, regime), mine in a.runs.items():
        f = _certificate_finding(mine, f"Certificate, {data} {regime}")
        start = _every_seed_from(mine)
        text = f.sentence
        if start is not None and f.runs:
            text += f" Every invariant holds in every run from m = {start} on."
        elif f.runs:
            text += " At no width tried does every invariant hold in every run from there on."
        out.append(text)
    return out


def summary(results: dict) -> dict:
    """The headline numbers, JSON-ready: ``slopes`` (:func:`slopes`), ``reference_slope``,
    ``not_converged`` (the runs that missed the target, by data set, regime and width),
    ``differences`` (weak's slope minus joint's, Welch interval) and ``ratios`` (weak's level over
    joint's at the largest width, t interval of the seeds' log ratios) per data set and quantity,
    ``tally`` (the headline's counts), ``certificate`` per data set and regime and
    ``certificate_all`` over every run."""
    a = _analyse(results)
    everything = [r for mine in a.runs.values() for r in mine]
    missed: dict[tuple[str, str, int], int] = {}
    for r in everything:
        if not _converged(r):
            key = (r["data"], r["regime"], int(r["width"]))
            missed[key] = missed.get(key, 0) + 1
    fits = list(a.fits.values())
    tally = _tally(a)
    out: dict[str, Any] = {
        "slopes": slopes(results), "reference_slope": a.reference,
        "not_converged": [{"data": d, "regime": g, "width": w, "runs": k} for (d, g, w), k in sorted(missed.items())],
        "differences": [{"data": d, "quantity": q, "what": "weak slope minus joint slope",
                         **(f.estimate.to_dict() if f.estimate is not None else {"value": None}),
                         "verdict": f.verdict, "sentence": f.sentence} for (d, q), f in a.differences.items()],
        "ratios": [{"data": d, "quantity": q, "width": w, "what": "weak over joint (geometric mean over seeds)",
                    **(f.estimate.to_dict() if f.estimate is not None else {"value": None}),
                    "verdict": f.verdict, "sentence": f.sentence} for (d, q), (w, f) in a.ratios.items()],
        "tally": {"slopes": len(fits), "meet_bound": sum(f.finding.verdict == "supported" for f in fits),
                  "consistent": sum(f.against == "consistent" for f in fits),
                  "steeper": sum(f.against == "steeper" for f in fits),
                  "shallower": sum(f.against == "shallower" for f in fits),
                  "not_falling": sum(f.finding.verdict == "not supported" for f in fits),
                  "inconclusive": sum(f.finding.verdict == "inconclusive" for f in fits), "verdict": tally.verdict},
        "certificate": [], "certificate_all": None}
    for (data, regime), mine in a.runs.items():
        c = _certified(mine)
        out["certificate"].append({"data": data, "regime": regime, **c, "every_seed_from": _every_seed_from(mine),
                                   "fails": {k: c["runs"] - c[k] for k in ("kernel", "rate", "safe_radius")},
                                   "verdict": _certificate_finding(mine, f"{data} {regime}").verdict})
    if everything:
        c = _certified(everything)
        out["certificate_all"] = {**c, "fails": {k: c["runs"] - c[k] for k in ("kernel", "rate", "safe_radius")},
                                  "verdict": _certificate_finding(everything, "every run").verdict}
    return out


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "laziness": "How far training moves the network, against the width m (log-log), one panel per quantity at the "
                "stopping step: every run (small; open where it stopped at the step budget, still training, and was "
                "left out of the fits), the median over the seeds that reached the target (joined), the fitted line "
                "(dashed) and a line of slope -1/2, the proofs' bound (dotted). The last panel gives every fitted "
                "slope with its 95% t interval over the seeds against -1/2 (and the earlier -3/4 of the kernel "
                "drift).",
    "certificate": "The certificate against the width, one panel per data set and regime: the share of runs in "
                   "which each invariant the convergence proofs rely on holds (kernel, rate, safe radius), and in "
                   "which all of them hold.",
}

SHORT = {"weight_change_W": "encoder", "weight_change_V": "decoder", "max_neuron_change_W": "largest neuron",
         "pattern_flips": "patterns flipped", "ntk_drift_at_stop": "kernel drift"}
"""Each quantity as a tick label of the slopes panel."""


def _fitted_line(ax: Any, slope: Slope, colour: str) -> None:
    xs = np.asarray(slope.widths, dtype=float)
    ax.plot(xs, np.exp(slope.intercept) * xs ** slope.value, "--", lw=1.4, color=colour)


@style.styled
def figures(results: dict) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): ``laziness`` (one log-log panel per quantity and a panel of
    the fitted slopes with their intervals) and ``certificate`` (the share of runs holding each
    invariant against the width)."""
    a = _analyse(results)
    if not a.fits:
        return {}
    out = {"laziness": _laziness_figure(a)}
    cert = _certificate_figure(a)
    if cert is not None:
        out["certificate"] = cert
    return out


def _laziness_figure(a: _Analysis) -> Any:
    from matplotlib.lines import Line2D

    quantities = [q for q in QUANTITIES if any((d, r, q) in a.fits for d in a.datas for r in a.regimes)]
    fitted = [f for f in a.fits.values() if f.slope is not None]
    panels = quantities + (["slopes"] if fitted else [])
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = style.figure(rows, cols, width=style.MAX_WIDTH if cols == 3 else 3.2 * cols, height=2.9)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels):]:
        ax.remove()
    everything = [r for mine in a.runs.values() for r in mine]
    widths = sorted({int(r["width"]) for r in everything})
    for ax, quantity in zip(flat, quantities, strict=False):
        firsts = []
        for (data, regime), mine in a.runs.items():
            fit = a.fits.get((data, regime, quantity))
            if fit is None:
                continue
            colour, marker = style.REGIME_COLOURS.get(regime, "0.3"), style.DATA_MARKERS.get(data, "^")
            pts = [(int(r["width"]), float(r[quantity]), _converged(r)) for r in mine
                   if r.get(quantity) is not None and r[quantity] > 0]
            for reached in (True, False):
                sel = [p for p in pts if p[2] == reached]
                if sel:
                    ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=12 if reached else 16, marker=marker,
                               alpha=0.45 if reached else 0.9, linewidths=0.8, edgecolors=colour,
                               facecolors=colour if reached else "none")
            med = {w: float(np.median([p[1] for p in pts if p[0] == w and p[2]]))
                   for w in sorted({p[0] for p in pts if p[2]})}
            if med:
                ax.plot(list(med), list(med.values()), marker=marker, ls="-", lw=0.8, ms=5, color=colour, alpha=0.85)
                firsts.append(med[min(med)])
            if fit.slope is not None and len(fit.slope.widths) >= 2:
                _fitted_line(ax, fit.slope, colour)
        if firsts and len(widths) > 1:
            x = np.asarray([widths[0], widths[-1]], dtype=float)
            y0 = float(np.exp(np.mean(np.log(firsts)))) * 1.6
            ax.plot(x, y0 * (x / x[0]) ** a.reference, ":", color="0.35", lw=1.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel="width m", ylabel=MATH[quantity], title=NAMES[quantity].capitalize())
    if fitted:
        _slopes_panel(flat[len(quantities)], a, quantities)
    handles = [Line2D([], [], color=style.REGIME_COLOURS.get(g, "0.3"), lw=2, label=g) for g in a.regimes]
    handles += [Line2D([], [], marker=style.DATA_MARKERS.get(d, "^"), ls="", color="0.3", label=d) for d in a.datas]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", alpha=0.5, ms=4, label="run, reached the target"),
                Line2D([], [], marker="o", ls="", color="0.3", mfc="none", ms=4,
                       label="run, still training (not fitted)"),
                Line2D([], [], marker="o", ls="-", color="0.3", ms=5, label="median over seeds"),
                Line2D([], [], ls="--", color="0.3", label="fitted slope"),
                Line2D([], [], ls=":", color="0.35", label=f"slope {a.reference:g} (the proofs' bound)")]
    return style.finish(fig, "E3: how far training moves the weights, patterns and kernel, against the width",
                        handles=handles, ncol=4)


def _slopes_panel(ax: Any, a: _Analysis, quantities: Sequence[str]) -> None:
    """Every fitted slope with its 95% interval, one row per quantity (top to bottom), one point per data
    set (marker) and regime (colour), against the reference (and the earlier kernel-drift slope)."""
    pairs = [(d, r) for d in a.datas for r in a.regimes]
    span = 0.6
    for i, quantity in enumerate(quantities):
        for k, (data, regime) in enumerate(pairs):
            fit = a.fits.get((data, regime, quantity))
            if fit is None or fit.slope is None:
                continue
            y = -i + (span / 2 - span * k / max(1, len(pairs) - 1) if len(pairs) > 1 else 0.0)
            s = fit.slope
            err = None if not s.has_interval else [[s.value - s.low], [s.high - s.value]]  # type: ignore[operator]
            ax.errorbar([s.value], [y], xerr=err, fmt=style.DATA_MARKERS.get(data, "^"), ms=4.5, capsize=2, lw=1.1,
                        color=style.REGIME_COLOURS.get(regime, "0.3"))
    ax.axvline(a.reference, color="0.35", ls=":", lw=1.2)
    if "ntk_drift_at_stop" in quantities:
        ax.axvline(EARLIER["ntk_drift_at_stop"], color="0.6", ls="-.", lw=1.0)
        ax.text(EARLIER["ntk_drift_at_stop"], 0.55, " earlier\n kernel drift", fontsize=8, color="0.4", va="bottom",
                ha="center")
    ax.set_yticks([-i for i in range(len(quantities))], [SHORT[q] for q in quantities])
    ax.set_ylim(-len(quantities) + 0.5, 1.2)
    ax.set(xlabel="slope against m [95% CI]", title="Fitted slopes")


def _certificate_figure(a: _Analysis) -> Any | None:
    from matplotlib.lines import Line2D

    pairs = [(d, r) for d in a.datas for r in a.regimes if (d, r) in a.runs]
    if not any(_certified(a.runs[p])["runs"] for p in pairs):
        return None
    datas = [d for d in a.datas if any((d, r) in a.runs for r in a.regimes)]
    fig, axes = style.figure(len(datas), len(a.regimes), width=min(style.MAX_WIDTH, 4.6 * len(a.regimes)),
                             height=2.6, sharey=True)
    lines = [("inside", "every invariant", style.CATEGORY_COLOURS[5], "o", 5, "-"),
             ("kernel", "kernel", style.CATEGORY_COLOURS[0], "s", 5, "--"),
             ("rate", "rate", style.CATEGORY_COLOURS[1], "^", 5, ":"),
             ("safe_radius", "safe radius", style.CATEGORY_COLOURS[3], "D", 4.5, "-.")]
    for i, data in enumerate(datas):
        for j, regime in enumerate(a.regimes):
            ax = axes[i][j]
            mine = a.runs.get((data, regime), [])
            widths = sorted({int(r["width"]) for r in mine})
            if not widths:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            for k, (key, _, colour, marker, size, ls) in enumerate(lines):
                share = []
                for w in widths:
                    c = _certified([r for r in mine if int(r["width"]) == w])
                    share.append(c[key] / c["runs"] if c["runs"] else math.nan)
                # side by side around each width (a factor 2^0.09 apart), so that equal shares stay visible
                dodge = 2.0 ** (0.09 * (k - (len(lines) - 1) / 2)) if len(widths) > 1 else 1.0
                ax.plot([w * dodge for w in widths], share, ls=ls, marker=marker, ms=size, mew=1.1, color=colour,
                        lw=1.0)
            if len(widths) > 1:
                ax.set_xscale("log", base=2)
            ax.set(ylim=(-0.05, 1.05), xlabel="width m", title=f"{data}, {regime}")
        axes[i][0].set_ylabel("share of runs")
    handles = [Line2D([], [], color=c, marker=mk, ms=s, ls=ls, label=label) for _, label, c, mk, s, ls in lines]
    return style.finish(fig, "E3: the share of runs in which each invariant of the proofs holds, against the width",
                        handles=handles)
