"""E6, from lazy training to feature learning: where does the NTK (lazy) picture stop describing
gradient descent as the output scale moves from the NTK to the mean-field scaling?

The output scale is ``alpha = m^(-gamma)``: ``gamma = 1/2`` is the NTK scaling of the paper
(docs/math/model.md), ``gamma = 1`` the mean-field one. For every regime (``joint`` and ``tied``),
``gamma``, width ``m`` and initialisation seed, one network trains by full-batch gradient descent on
a small sphere problem (``n d <= 1024``, so the NTK is exact and dense on the CPU) with

- **step size** ``eta = 1 / lambda_max(Theta(0))`` of each network (``lr="auto"``). Since
  ``Theta ∝ alpha^2 m`` (docs/math/ntk.md), this is ``eta ∝ m^(2 gamma - 1)``: one
  step is the same time ``eta lambda_max t`` of the linearised dynamics at every ``gamma`` and ``m``,
  so a common step budget is a common budget in the kernel's own time. The measured ``eta`` is
  recorded and its exponent in ``m`` fitted against ``2 gamma - 1``;
- **stopping rule**: the relative training error ``||f(X) - X||_F / ||X||_F`` at most ``epsilon``
  (the same for every network, whatever its initial loss: the batch's ``target`` relative to
  ``L(0)`` is ``epsilon^2 ||X||_F^2 / (2 max_b L_b(0))``), or the regime's step budget. Tied networks
  with ``alpha m kappa^2 / 2 > 1`` start with a residual of about ``(alpha m kappa^2 / 2 - 1) x``
  (docs/math/tied.md; ``sqrt(m) / 2`` at ``gamma = 1/2``), must shrink ``W`` by a factor
  ``O(1)``, and their kernel shrinks with it, so they get a larger budget; those that still miss the
  target stop as ``max_steps``: they are *still training*, and every number of theirs is that of an
  unfinished run (the findings say so wherever such runs enter).

Measured at the stop (:data:`aedyn.gd.METRICS`): the relative movement of the encoder
``||W_T - W_0||_F / ||W_0||_F`` (and of the decoder for ``joint``), the largest single-neuron
movement ``max_r ||w_r(T) - w_r(0)||``, the share of activation patterns flipped, the kernel drift
``||Theta(T) - Theta(0)||_F / ||Theta(0)||_F`` (``ntk_every`` beyond the budget: ``Theta`` at step
0 and at the stop, dense), the final loss and steps, and (the measures ``ntk_ends`` and ``heldout``
of :mod:`aedyn.measures`) ``lambda_min(Theta(T)) / lambda_min(Theta(0))``, the training error and
the held-out error ``||f(X') - X'||_F / ||X'||_F`` on fresh sphere points ``X'`` (another data seed).

**How it runs** (:func:`run`). Every network is a :class:`~aedyn.job.TrainJob` (``init_scale =
alpha``, ``lr="auto"``, ``certify``; the batch's ``target`` computed in the calling process from
the networks' losses at initialisation, before anything trains) that declares those two measures,
computed where it trains. The seeds of one ``(regime, gamma, width)`` are one batch, and all
batches train through an :class:`aedyn.sweep.Runner` (the report's: in this process or on a Dask
cluster), which records every run as one row (:func:`aedyn.sweep.result_row`) in its store
(``OUT/runs``): an interrupted run, restarted, trains only the runs the store lacks. A run's record
(``results["runs"]``) is its row restricted to :data:`COLUMNS`, under the row's names (``lr``,
``lambda_max``, ``step_budget``, ``ntk_drift_method``, ...), with its ``gamma``.

**Statistics** (:mod:`aedyn.stats`). The seeds are the independent units: a seed's networks at
different widths share their first random draws, and its joint and tied networks the same ``W_0``.

- The **slope** in ``m`` of a quantity (per regime and ``gamma``) is :func:`aedyn.stats.fit_slope`:
  each seed's least-squares slope of ``log q`` on ``log m``, their mean, and the t interval over
  the seeds (95%); a width where some seed has ``q = 0`` is left out of that fit (``zero_widths``).
  The lazy (linearised) estimate for the movements and flips is ``gamma - 1``: the minimum-norm
  interpolant in the tangent space moves the parameters by ``||R(0)|| / sqrt(lambda(Theta)) ∝ 1 /
  (alpha sqrt(m))`` against ``||theta_0|| ∝ sqrt(m)``, i.e. ``m^(gamma - 1)``: ``-1/2`` in the NTK
  scaling and ``0`` (no vanishing) in the mean-field one. (No such estimate for ``tied``: its
  residual grows with ``m``.)
- The **drift at the largest width** is the geometric mean over the seeds with the t interval of
  the logarithms (the arithmetic mean and its t interval if some drift is 0).
- **Tied against joint** (per ``gamma``, at the largest width both have): the t interval of the
  per-seed log-ratios ``log(tied's movement / joint's)`` (the seeds paired), as a ratio; "moves
  more" only when that interval lies above 1 (:func:`aedyn.findings.comparison`).

**The rule** (:func:`lazy_range`). A ``gamma`` is *lazy* for a regime when the encoder's relative
movement clearly falls with the width (the upper end of its slope's interval below
:data:`LAZY_SLOPE` ``= -0.2``, i.e. it falls at least 40% as fast as the NTK scaling's ``m^(-1/2)``;
the threshold lies between the lazy estimates ``-1/4`` at ``gamma = 3/4`` and ``-1/8`` at
``gamma = 7/8``, so that no ``gamma`` of the grid sits on it) **and** the kernel drift at the
largest width is at most :data:`DRIFT_LEVEL` ``= 10%`` (the upper end of its interval). It is *not
lazy* when either criterion clearly fails (the slope's interval lies at or above ``-0.2``, or the
drift's interval above 10%), and *undecided* otherwise: an interval that straddles a threshold, or
none (fewer than :data:`aedyn.stats.MIN_SEEDS` seeds). ``lazy_until`` is the largest ``gamma`` up
to which every ``gamma`` is lazy (``None`` when the smallest is not), ``breaks_at`` the smallest
``gamma`` that is not lazy, ``undecided`` the undecided ones before it. A judgement on a ``gamma``
with runs still training is named as such; "not lazy" survives them only when the drift decides
it (the kernel drifted that far along the trajectory, whatever the rest of it does), and any other
judgement on them lowers the verdict (:func:`findings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aedyn.certificate import CERTIFICATE_COLUMNS, certified_counts
from aedyn.experiments import RECORD_EVERY, missing_runs, require_results, small_problems, style, values_by_seed
from aedyn.findings import (
    Finding,
    above_one,
    certificate,
    comparison,
    count,
    interval,
    num,
    power_law,
    seeds_phrase,
    sig,
    statement,
    unfinished,
)
from aedyn.job import Notes, TrainJob
from aedyn.model import forward
from aedyn.stats import MIN_SEEDS, Estimate, Slope, fit_slope, t_interval
from aedyn.sweep import Runner, notes_of

NAME = "E6"
TITLE = "From lazy training to feature learning"
CLAIM = ("The convergence proofs rest on the lazy (NTK) picture, in which the weights, activation patterns and kernel "
         "barely move as the width grows; this holds for the output scale alpha = m^(-1/2) and should stop holding "
         "as alpha moves towards the mean-field scale m^(-1).")


GAMMAS: tuple[float, ...] = (0.5, 0.625, 0.75, 0.875, 1.0)
LAZY_SLOPE = -0.2
"""A ``gamma`` is lazy only if the movement's slope in ``m`` is clearly below this (the upper end of
its interval); not lazy when the interval lies at or above it."""
DRIFT_LEVEL = 0.1
"""... and the kernel drift at the largest width clearly at most this (the upper end of its interval)."""
MOVEMENT = "weight_change_W"
"""The movement the rule judges: the encoder's, trained in every regime."""
MEASURES: tuple[str, ...] = ("weight_change_W", "weight_change_V", "max_neuron_change_W", "pattern_flips",
                             "ntk_drift")
"""Quantities whose slope in ``m`` is fitted (with the step size ``lr``, whose exponent should be ``2 gamma - 1``)."""
LABELS = {"weight_change_W": "||W - W0|| / ||W0||", "weight_change_V": "||V - V0|| / ||V0||",
          "max_neuron_change_W": "max_r ||w_r - w_r(0)||", "pattern_flips": "share of patterns flipped",
          "ntk_drift": "kernel drift ||Theta(T) - Theta(0)|| / ||Theta(0)||", "lr": "step size eta",
          "train_error": "training error ||f(X) - X|| / ||X||",
          "heldout_error": "held-out error ||f(X') - X'|| / ||X'||"}
"""The quantities in the sentences."""
SHORT = {"weight_change_W": "encoder movement", "weight_change_V": "decoder movement",
         "max_neuron_change_W": "largest neuron movement", "pattern_flips": "share of patterns flipped",
         "ntk_drift": "kernel drift", "lr": "step size", "train_error": "training error",
         "heldout_error": "held-out error"}
"""The quantities in the figures (the formulas are in :data:`CAPTIONS`)."""
STEP_TOLERANCE = 0.05
"""A step-size exponent whose interval excludes ``2 gamma - 1`` but whose value lies within this of it
is called close, not departing."""
LAZY, NOT_LAZY, UNDECIDED = "lazy", "not lazy", "undecided"
"""What the rule says of one ``gamma``."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Everything the run depends on, JSON-ready. Both: sphere ``n = 16, d = 8`` (``n d = 128``:
    the NTK is dense and exact), ``gamma`` in 0.5..1 by 1/8, regimes joint and tied, relative
    training error ``epsilon = 1e-3``; held-out: 256 sphere points from data seed 1.

    - quick: widths 256 and 1024, 3 seeds (the fewest any interval needs), budgets 600 (joint) and
      1000 (tied) steps: 5.7 s of CPU (one thread; 13 s wall on a shared 2-core machine at load 8,
      an estimated 4 s idle);
    - full: widths 256, 512, 1024, 2048, 4096, 8 seeds, budgets 1000 and 1500 steps: 82 s of CPU
      (176 s wall at load 8), an estimated 55 s on 2 idle cores (the 4-seed config of before, 35 s
      idle, took 52 s of CPU under the same load). The tied networks at ``gamma <= 5/8``, which use
      their whole budget, take half of it.
    Joint networks reach the target within 700 steps at every setting tried; tied ones at
    ``gamma <= 5/8`` mostly do not within these budgets (their kernel shrinks as ``W`` does)."""
    count_ = (3 if quick else 8) if seeds is None else int(seeds)
    return {"regimes": ["joint", "tied"], "gammas": list(GAMMAS),
            "widths": [256, 1024] if quick else [256, 512, 1024, 2048, 4096], "seeds": list(range(count_)),
            "data": {"name": "sphere", "n": 16, "d": 8}, "data_seed": 0, "test_seed": 1, "n_test": 256,
            "epsilon": 1e-3, "steps": {"joint": 600, "tied": 1000} if quick else {"joint": 1000, "tied": 1500},
            "kappa": 1.0, "nu": 1.0,
            "dtype": "float64", "record_every": RECORD_EVERY, "device": device, "lazy_slope": LAZY_SLOPE,
            "drift_level": DRIFT_LEVEL}


def setup(config: dict[str, Any]) -> list[str]:
    """The set-up in sentences for the report."""
    data, seeds = config["data"], config["seeds"]
    budgets = ", ".join(f"{r} {config['steps'][r]}" for r in config["regimes"])
    top = max(int(w) for w in config["widths"])
    return [
        f"Data: {data['name']} (n = {data['n']}, d = {data['d']}, data seed {config['data_seed']}); held-out: "
        f"{config['n_test']} fresh {data['name']} points (data seed {config['test_seed']}).",
        f"Regimes {', '.join(config['regimes'])}; output scale alpha = m^(-gamma), gamma in "
        f"{', '.join(f'{g:g}' for g in config['gammas'])} (1/2: NTK, 1: mean-field); widths m = "
        f"{', '.join(str(w) for w in config['widths'])}; {seeds_phrase(len(seeds))} of initialisation; "
        f"kappa = {config['kappa']:g}, nu = {config['nu']:g}, {config['dtype']}.",
        "Step size: eta = 1/lambda_max(Theta(0)) of each network; since Theta is proportional to alpha^2 m, eta "
        "scales like m^(2 gamma - 1) (recorded, and its exponent fitted), and a step is the same time "
        "eta lambda_max t of the linearised dynamics at every gamma and m, so all networks of a regime share one "
        "step budget.",
        f"Each network trains until ||f(X) - X||_F / ||X||_F <= {config['epsilon']:g} or its budget ({budgets} "
        "steps; tied networks start with a residual of about (alpha m kappa^2/2 - 1) x, sqrt(m)/2 at gamma = 1/2, "
        "and get more); a run stopped by its budget is still training, and its numbers are named as such.",
        "Measured at the stop: relative weight movement ||W_T - W_0|| / ||W_0|| (and V for joint), the largest "
        "single-neuron movement, the share of activation patterns flipped, the kernel drift "
        "||Theta(T) - Theta(0)||_F / ||Theta(0)||_F (dense NTK at step 0 and at the stop), the final training "
        "error and the held-out error ||f(X') - X'||_F / ||X'||_F.",
        "Slopes in m: each seed's least-squares slope of log q against log m, their mean and the 95% t interval "
        "over the seeds (the seeds are the independent units: a seed's networks at different widths share their "
        "first random draws); the lazy estimate for movement and flips is gamma - 1 (-1/2 in the NTK scaling, 0 "
        f"in the mean-field one). Kernel drift at m = {top}: geometric mean over the seeds with the t interval of "
        "the logs. Tied against joint: the t interval of the per-seed log-ratios of their movements (seeds "
        "paired).",
        f"Rule: a gamma is lazy when the encoder movement's slope in m is clearly below {config['lazy_slope']:g} "
        "(the upper end of its 95% interval: at least 40% of the NTK scaling's -1/2, and between the lazy "
        "estimates -1/4 at gamma = 3/4 and -1/8 at gamma = 7/8, so no grid point sits on it) and the kernel drift "
        f"at the largest width is clearly at most {100 * config['drift_level']:g}% (the upper end of its "
        "interval); not lazy when either interval lies on the wrong side; undecided when an interval straddles "
        f"its threshold or there is none (fewer than {MIN_SEEDS} seeds). The lazy picture holds up to the largest "
        "gamma up to which every gamma is lazy, and ends at the first gamma that is not lazy.",
    ]


# ---- running --------------------------------------------------------------------------------------

def alpha_of(width: int, gamma: float) -> float:
    """The output scale ``alpha = m^(-gamma)``."""
    return float(width) ** (-float(gamma))


def _measures(config: dict[str, Any]) -> tuple[Any, ...]:
    """What every job measures where it trains, beyond the standard row (:mod:`aedyn.measures`):
    ``ntk_ends`` (``lambda_min_ratio``, ``ntk_drift_method``, ...) and ``heldout`` on ``n_test``
    fresh points of the data seed ``test_seed`` (``heldout_error``, ``train_error`` and their values
    at initialisation, ...)."""
    return ("ntk_ends", {"name": "heldout", "n": int(config["n_test"]), "seed": int(config["test_seed"])})


def _job(config: dict[str, Any], regime: str, gamma: float, width: int, seed: int, target: float = 0.5) -> TrainJob:
    steps = int(config["steps"][regime])
    data = config["data"]
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=int(seed),
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=int(width),
                    init_scale=alpha_of(width, gamma), lr="auto", steps=steps, target=target,
                    record_every=int(config.get("record_every", RECORD_EVERY)), ntk_every=steps + 1, certify=True,
                    measures=_measures(config), dtype=config["dtype"], device=config["device"])


def batch_target(initial_losses: Sequence[float], data_norm2: float, epsilon: float) -> float:
    """The target relative to ``L(0)`` shared by a batch so that every network stops at (or below)
    ``||f(X) - X||_F <= epsilon ||X||_F``, i.e. ``L <= epsilon^2 ||X||_F^2 / 2``:
    ``epsilon^2 ||X||_F^2 / (2 max_b L_b(0))``, capped at 1/2 (so that every network trains at
    least until its loss has halved, even one that starts near the target)."""
    top = max(float(v) for v in initial_losses)
    return min(0.5, epsilon ** 2 * data_norm2 / (2.0 * top)) if top > 0 else 0.5


def _value(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _batches(config: dict[str, Any], X: torch.Tensor) -> tuple[list[tuple[str, float, int]], list[list[TrainJob]]]:
    """One batch per ``(regime, gamma, width)``, in that order: the jobs of its seeds with their
    shared :func:`batch_target`, from the networks' initial losses (forward passes at
    initialisation, here, before anything trains). Returns the settings and the batches."""
    seeds, d, data_norm2 = [int(s) for s in config["seeds"]], int(X.shape[1]), float(X.square().sum())
    settings: list[tuple[str, float, int]] = []
    batches: list[list[TrainJob]] = []
    for regime in config["regimes"]:
        for gamma in (float(g) for g in config["gammas"]):
            for width in (int(w) for w in config["widths"]):
                nets = [_job(config, regime, gamma, width, s).init(d, width, alpha_of(width, gamma)) for s in seeds]
                L0 = [0.5 * float((forward(p, X, regime) - X).square().sum()) for p in nets]
                target = batch_target(L0, data_norm2, float(config["epsilon"]))
                settings.append((regime, gamma, width))
                batches.append([_job(config, regime, gamma, width, s, target) for s in seeds])
    return settings, batches


def runs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The identifying settings of every run of :func:`_batches`, in their order: regime, ``gamma``,
    width and seed."""
    return [{"regime": regime, "gamma": float(gamma), "width": int(width), "seed": int(seed)}
            for regime in config["regimes"] for gamma in config["gammas"] for width in config["widths"]
            for seed in config["seeds"]]


def missing(config: dict[str, Any], results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config`` (:func:`aedyn.experiments.missing_runs`);
    ``ValueError`` when they are damaged."""
    return missing_runs(require_results(results, config, ("runs", "n", "d"))["runs"], runs(config))


def _record(row: dict[str, Any], gamma: float) -> dict[str, Any]:
    """A run's record: its row (:func:`aedyn.sweep.result_row`, the job's measures included)
    restricted to :data:`COLUMNS`, under the row's names (``None`` where the row has no value), and
    the setting's ``gamma``."""
    return {**{c: row.get(c) for c in COLUMNS}, "gamma": float(gamma)}


def run(config: dict[str, Any], *, progress: Callable[[str, float], None] | None = None,
        runner: Runner | None = None) -> dict[str, Any]:
    """Train every ``(regime, gamma, width)`` batch, all seeds together, through ``runner`` (the
    report's: its run store makes an interrupted run resume, its executor may be a Dask cluster;
    default a local :class:`~aedyn.sweep.Runner` without a store), each job measuring itself where
    it trains (:func:`_measures`). Returns ``{"config", "n", "d", "notes", "runs"}``: one record per
    run (:func:`_record`), in batch order, and the runs' notes (sorted, each once).
    ``progress(message, fraction)`` after each batch trained (batches already in the store are read)."""
    report = progress or (lambda message, fraction: None)
    with small_problems(config["device"]):
        first = _job(config, config["regimes"][0], float(config["gammas"][0]), int(config["widths"][0]),
                     int(config["seeds"][0]))
        X = first.load(Notes())
        n, d = (int(s) for s in X.shape)
        settings, batches = _batches(config, X)

        def trained(done: int, total: int) -> None:
            report(f"E6: {done} of {total} batches trained", done / total if total else 1.0)

        with Runner.given(runner) as runner:
            rows = runner.run(batches, progress=trained)
    runs = [_record(row, gamma) for (_, gamma, _), batch in zip(settings, rows, strict=True) for row in batch]
    notes = notes_of(row for batch in rows for row in batch)
    report("E6: done", 1.0)
    return {"config": config, "n": n, "d": d, "notes": notes, "runs": runs}


# ---- the rule -------------------------------------------------------------------------------------

def _usable(e: Estimate | None) -> bool:
    return e is not None and e.has_interval and e.units >= MIN_SEEDS


def _side(e: Estimate | None, threshold: float, *, below_strict: bool) -> str:
    """Where the interval of ``e`` lies against ``threshold``: ``"below"``, ``"above"``, ``"straddles"``,
    or ``"unknown"`` (no estimate, no interval, or fewer than :data:`MIN_SEEDS` seeds). With
    ``below_strict`` (the slope) "below" needs ``high < threshold`` and "above" ``low >= threshold``;
    without (the drift) "below" needs ``high <= threshold`` and "above" ``low > threshold``."""
    if not _usable(e):
        return "unknown"
    assert e is not None and e.low is not None and e.high is not None
    if below_strict:
        return "below" if e.high < threshold else "above" if e.low >= threshold else "straddles"
    return "below" if e.high <= threshold else "above" if e.low > threshold else "straddles"


@dataclass(frozen=True)
class Judgement:
    """What the rule says of one ``gamma``: ``state`` (:data:`LAZY`, :data:`NOT_LAZY`, :data:`UNDECIDED`)
    from the movement ``slope`` and the ``drift`` at the largest width, each placed against its
    threshold (``slope_side``, ``drift_side``: ``"below"``, ``"above"``, ``"straddles"``, ``"unknown"``);
    ``unfinished`` of ``runs`` runs behind it stopped at their step budget."""

    gamma: float
    state: str
    slope: Estimate | None
    drift: Estimate | None
    slope_side: str
    drift_side: str
    unfinished: int = 0
    runs: int = 0

    @property
    def robust(self) -> bool:
        """Whether the judgement stands although runs behind it are still training: always when none
        is; otherwise only "not lazy" decided by the drift (the kernel drifted that far along the
        trajectory, whatever its rest does)."""
        return self.unfinished == 0 or (self.state == NOT_LAZY and self.drift_side == "above")


@dataclass(frozen=True)
class LazyRange:
    """The rule over a regime's ``gamma`` grid (:func:`lazy_range`): ``until`` the largest ``gamma``
    up to which every ``gamma`` is lazy (``None`` when the smallest is not), ``breaks`` the smallest
    ``gamma`` that is not lazy (``None`` when none is), ``undecided`` the undecided ``gamma`` before
    ``breaks`` (all of them when none breaks), and each ``gamma``'s :class:`Judgement` in order."""

    until: float | None
    breaks: float | None
    undecided: tuple[float, ...]
    judgements: tuple[Judgement, ...]

    def at(self, gamma: float) -> Judgement:
        return next(j for j in self.judgements if j.gamma == gamma)

    @property
    def lazy(self) -> list[bool]:
        return [j.state == LAZY for j in self.judgements]


def lazy_range(gammas: Sequence[float], slopes: Sequence[Estimate | None], drifts: Sequence[Estimate | None], *,
               lazy_slope: float = LAZY_SLOPE, drift_level: float = DRIFT_LEVEL,
               unfinished: Sequence[tuple[int, int]] | None = None) -> LazyRange:
    """The rule of the module docstring over ``gammas`` (any order), with ``slopes[i]`` the encoder
    movement's slope in ``m`` at ``gammas[i]`` and ``drifts[i]`` its kernel drift at the largest width,
    each an estimate with its interval; ``unfinished[i] = (k, n)``: ``k`` of the ``n`` runs behind it
    stopped at their budget. Lazy needs both intervals on the lazy side; one interval on the other
    side makes it not lazy; otherwise (an interval straddles its threshold, or there is none, or
    fewer than :data:`MIN_SEEDS` seeds) it is undecided."""
    if not len(gammas) == len(slopes) == len(drifts):
        raise ValueError("one slope and one drift per gamma")
    marks = list(unfinished) if unfinished is not None else [(0, 0)] * len(gammas)
    judged = []
    for g, s, dr, (k, n) in zip(gammas, slopes, drifts, marks, strict=True):
        ss = _side(s, lazy_slope, below_strict=True)
        ds = _side(dr, drift_level, below_strict=False)
        state = NOT_LAZY if "above" in (ss, ds) else LAZY if ss == ds == "below" else UNDECIDED
        judged.append(Judgement(float(g), state, s, dr, ss, ds, int(k), int(n)))
    judged.sort(key=lambda j: j.gamma)
    until = breaks = None
    undecided: list[float] = []
    contiguous = True
    for j in judged:
        if j.state == NOT_LAZY:
            breaks = j.gamma
            break
        if j.state == LAZY and contiguous:
            until = j.gamma
        elif j.state == UNDECIDED:
            contiguous = False
            undecided.append(j.gamma)
    return LazyRange(until, breaks, tuple(undecided), tuple(judged))


# ---- the table ------------------------------------------------------------------------------------

COLUMNS = ("regime", "gamma", "alpha", "width", "seed", "lr", "lambda_max", "steps", "step_budget", "status",
           "final_relative_loss", "train_error", "initial_train_error", "weight_change_W", "weight_change_V",
           "weight_distance_W", "weight_distance_V", "max_neuron_change_W", "pattern_flips", "ntk_drift",
           "lambda_min_ratio", "heldout_error", "initial_heldout_error", "ntk_drift_method", *CERTIFICATE_COLUMNS)
FLAGS = tuple(c for c in CERTIFICATE_COLUMNS if c == "cert_inside" or c.endswith("_holds"))


def tabulate(results: dict[str, Any]) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`; a measure that does not apply,
    such as the decoder's movement of a tied network, is NaN)."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in ("regime", "status", "ntk_drift_method", *FLAGS)]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table[list(FLAGS)] = table[list(FLAGS)].astype("boolean")
    return table


def tables(results: dict[str, Any]) -> dict[str, Any]:
    """Further full tables: ``slopes``, every fitted slope (:func:`slopes`), one row per regime x
    ``gamma`` x quantity, with its interval, seeds and the widths left out."""
    import pandas as pd

    rows = [{**e, "zero_widths": " ".join(str(w) for w in e["zero_widths"])} for e in slopes(results)]
    return {"slopes": pd.DataFrame(rows, columns=list(SLOPE_COLUMNS))}


def _regimes(table: Any) -> list[str]:
    known = [r for r in style.REGIME_COLOURS if r in set(table["regime"])]
    return known + sorted(set(table["regime"]) - set(known))


# ---- the analysis ---------------------------------------------------------------------------------

def _expected(regime: str, gamma: float, quantity: str) -> float | None:
    """The slope the lazy estimate gives: ``2 gamma - 1`` for ``lr`` in every regime, ``gamma - 1``
    for the joint movements and flips; otherwise none."""
    if quantity == "lr":
        return 2 * gamma - 1
    if regime != "tied" and quantity != "ntk_drift":
        return gamma - 1
    return None


def mean_of_positive(values: Sequence[float | None]) -> Estimate | None:
    """The geometric mean of ``values`` over the seeds with the t interval of their logarithms
    (:func:`aedyn.stats.t_interval`, exponentiated); the arithmetic mean and its t interval when some
    value is ``<= 0``. Missing and non-finite values are dropped; ``None`` when none is left."""
    x = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not x:
        return None
    if min(x) <= 0:
        return t_interval(x, method="arithmetic mean over seeds, t interval")
    e = t_interval([math.log(v) for v in x])
    assert e is not None
    return Estimate(math.exp(e.value), None if e.low is None else math.exp(e.low),
                    None if e.high is None else math.exp(e.high), e.level,
                    "geometric mean over seeds, t interval of the logs", e.units)


def paired_ratio(a: dict[Any, float | None], b: dict[Any, float | None]) -> Estimate | None:
    """``a / b`` over the seeds both have (keys), as the exponentiated t interval of the per-seed
    ``log(a_i / b_i)``; seeds where either is missing or ``<= 0`` are dropped. ``None`` when none is left."""
    pairs = [(a[s], b[s]) for s in sorted(set(a) & set(b))]
    logs = [math.log(x / y) for x, y in pairs
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0]
    e = t_interval(logs)
    if e is None:
        return None
    return Estimate(math.exp(e.value), None if e.low is None else math.exp(e.low),
                    None if e.high is None else math.exp(e.high), e.level,
                    "ratio: t interval of per-seed log-ratios (seeds paired)", e.units)


@dataclass
class Analysis:
    """Everything the findings, details, summary, key table and figures say, computed once from the
    table: per regime x ``gamma`` x quantity the :class:`aedyn.stats.Slope` (``fits``), per regime x
    ``gamma`` the drift at the largest width (``drift``), how many runs stopped at their budget
    (``unfinished``: ``(k, n)``) and the medians at the largest width (``medians``); per regime the
    rule over ``gamma`` (``ranges``); per ``gamma`` tied's movement over joint's at the largest width
    both have (``ratio``, ``ratio_width``)."""

    table: Any
    config: dict[str, Any]
    regimes: list[str]
    gammas: dict[str, list[float]]
    top: dict[str, int]
    fits: dict[tuple[str, float, str], Slope | None]
    drift: dict[tuple[str, float], Estimate | None]
    unfinished: dict[tuple[str, float], tuple[int, int]]
    medians: dict[tuple[str, float], dict[str, float | None]]
    ranges: dict[str, LazyRange]
    ratio: dict[float, Estimate | None]
    ratio_width: int | None
    lazy_slope: float
    drift_level: float

    def rows(self, regime: str, gamma: float | None = None, width: int | None = None) -> Any:
        t = self.table
        keep = t["regime"] == regime
        if gamma is not None:
            keep &= t["gamma"] == gamma
        if width is not None:
            keep &= t["width"] == width
        return t[keep]


MEDIANS = ("weight_change_W", "weight_change_V", "pattern_flips", "ntk_drift", "train_error", "heldout_error",
           "initial_heldout_error", "initial_train_error")


def analyse(results: dict[str, Any]) -> Analysis:
    """The :class:`Analysis` of ``results``."""
    table = tabulate(results)
    cfg = results.get("config", {})
    lazy_slope, drift_level = float(cfg.get("lazy_slope", LAZY_SLOPE)), float(cfg.get("drift_level", DRIFT_LEVEL))
    regimes = _regimes(table)
    gammas = {r: sorted(float(g) for g in set(table[table["regime"] == r]["gamma"])) for r in regimes}
    top = {r: int(table[table["regime"] == r]["width"].max()) for r in regimes}
    fits: dict[tuple[str, float, str], Slope | None] = {}
    drift: dict[tuple[str, float], Estimate | None] = {}
    marks: dict[tuple[str, float], tuple[int, int]] = {}
    medians: dict[tuple[str, float], dict[str, float | None]] = {}
    ranges = {}
    for regime in regimes:
        for g in gammas[regime]:
            rows = table[(table["regime"] == regime) & (table["gamma"] == g)]
            records = rows.to_dict("records")
            for q in (*MEASURES, "lr"):
                if rows[q].notna().any():
                    fits[(regime, g, q)] = fit_slope(*values_by_seed(records, q))
            at = rows[rows["width"] == rows["width"].max()]
            drift[(regime, g)] = mean_of_positive(list(at["ntk_drift"]))
            marks[(regime, g)] = (int((rows["status"] != "converged").sum()), len(rows))
            medians[(regime, g)] = {q: _value(at[q].median()) for q in MEDIANS}
        gs = gammas[regime]
        ranges[regime] = lazy_range(gs, [fits.get((regime, g, MOVEMENT)) for g in gs],
                                    [drift[(regime, g)] for g in gs], lazy_slope=lazy_slope, drift_level=drift_level,
                                    unfinished=[marks[(regime, g)] for g in gs])
    ratio: dict[float, Estimate | None] = {}
    width = None
    if {"joint", "tied"} <= set(regimes):
        common = set(table[table["regime"] == "joint"]["width"]) & set(table[table["regime"] == "tied"]["width"])
        width = int(max(common)) if common else None
        for g in sorted(set(gammas["joint"]) & set(gammas["tied"])):
            if width is None:
                continue
            by = {r: {int(row.seed): _value(row.weight_change_W) for row in
                      table[(table["regime"] == r) & (table["gamma"] == g) & (table["width"] == width)].itertuples()}
                  for r in ("joint", "tied")}
            ratio[g] = paired_ratio(by["tied"], by["joint"])
    return Analysis(table, cfg, regimes, gammas, top, fits, drift, marks, medians, ranges, ratio, width, lazy_slope,
                    drift_level)


SLOPE_COLUMNS = ("regime", "gamma", "quantity", "value", "ci_low", "ci_high", "seeds", "points", "zero_widths",
                 "lazy_estimate", "method")


def slopes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per regime x gamma x quantity (:data:`MEASURES` and ``lr``): the fitted slope in
    ``m`` with its interval (:func:`aedyn.stats.fit_slope`, seeds lined up across widths: the mean
    of the per-seed slopes and the t interval over the seeds; ``seeds`` the seeds fitted,
    ``points`` the widths fitted, ``zero_widths`` those left out for a zero), and the expected one
    (``lazy_estimate``: ``gamma - 1`` for the joint movements and flips; ``2 gamma - 1`` for
    ``lr`` in every regime; otherwise ``None``)."""
    a = analyse(results)
    out = []
    for (regime, g, q), s in a.fits.items():
        out.append({"regime": regime, "gamma": float(g), "quantity": q,
                    "value": None if s is None else s.value, "ci_low": None if s is None else s.low,
                    "ci_high": None if s is None else s.high, "seeds": 0 if s is None else s.units,
                    "points": 0 if s is None else len(s.widths),
                    "zero_widths": [] if s is None else list(s.zero_widths),
                    "lazy_estimate": _expected(regime, g, q), "method": "" if s is None else s.method})
    return out


# ---- words ----------------------------------------------------------------------------------------

def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None or not math.isfinite(x) else fmt.format(x)


def _est(e: Estimate | None) -> str:
    """``"-0.49 [-0.52, -0.45]"`` (the value and its interval), ``"n/a"`` for none."""
    return "n/a" if e is None else f"{num(e.value)} {interval(e)}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{sig(100 * x, 3)}%"


def _pct_est(e: Estimate | None) -> str:
    """A share with its interval in percent: ``"24.6% [20.1%, 30.2%]"``."""
    if e is None:
        return "n/a"
    if not e.has_interval:
        return f"{_pct(e.value)} (no interval)"
    return f"{_pct(e.value)} [{_pct(e.low)}, {_pct(e.high)}]"


def _reasons(a: Analysis, regime: str, j: Judgement, *, all_criteria: bool = False) -> list[str]:
    """The criteria behind ``j`` in words: those not on the lazy side (every one with ``all_criteria``)."""
    top, t, level = a.top[regime], a.lazy_slope, a.drift_level
    out = []
    if all_criteria or j.slope_side != "below":
        s = j.slope
        if s is None:
            out.append("the movement slope could not be fitted (fewer than two widths)")
        else:
            out.append({"below": f"the movement slope {_est(s)} lies below {t:g}",
                        "above": f"the movement slope {_est(s)} is not below {t:g}",
                        "straddles": f"the movement slope's interval {interval(s)} straddles {t:g}",
                        "unknown": f"the movement slope {num(s.value)} comes from {seeds_phrase(s.units)}: too few "
                                   f"for an interval (at least {MIN_SEEDS} are needed)"}[j.slope_side])
    if all_criteria or j.drift_side != "below":
        d = j.drift
        if d is None:
            out.append(f"the kernel drift at m = {top} was not measured")
        else:
            out.append({"below": f"the kernel drift at m = {top} is {_pct_est(d)}, at most {_pct(level)}",
                        "above": f"the kernel drifts by {_pct_est(d)} at m = {top}, above {_pct(level)}",
                        "straddles": f"the kernel drift at m = {top}, {_pct_est(d)}, straddles {_pct(level)}",
                        "unknown": f"the kernel drift at m = {top}, {_pct(d.value)}, comes from "
                                   f"{seeds_phrase(d.units)}: too few for an interval"}[j.drift_side])
    return out


def _still_training(j: Judgement, *, named: bool = True) -> str | None:
    """The clause for the runs behind ``j`` that stopped at their budget (``None`` when none did),
    opening with its ``gamma`` when ``named``."""
    clause = unfinished(j.unfinished, j.runs)
    if clause is None:
        return None
    text = f"at gamma = {j.gamma:g}, {clause}" if named else clause
    if j.state == NOT_LAZY and j.drift_side == "above":
        text += " (the kernel had drifted that far before they finished, so 'not lazy' stands)"
    elif j.state == NOT_LAZY:
        text += " (so 'not lazy' there rests on unfinished runs)"
    elif j.state == LAZY:
        text += " (so 'lazy' there is lazy so far)"
    return text


def _range_finding(a: Analysis, regime: str) -> Finding:
    """The rule over ``gamma`` for ``regime`` (:func:`lazy_range`) as a finding (module docstring).

    Verdict: lazy at the smallest ``gamma`` and not lazy at a larger one, ``supported`` (``partly
    supported`` when a judgement up to the break rests on runs still training that the drift does not
    decide); lazy at the smallest and never clearly not, ``partly supported``; not lazy at the
    smallest, ``not supported`` (``inconclusive`` when that rests on unfinished runs only);
    undecided at the smallest, ``inconclusive``."""
    rng = a.ranges[regime]
    js = rng.judgements
    top, t, level = a.top[regime], a.lazy_slope, a.drift_level
    rule = (f"lazy: the encoder movement's slope in m below {t:g} and the kernel drift at m = {top} at most "
            f"{_pct(level)}, each by its whole 95% interval")
    first = js[0]
    parts: list[str] = []
    if first.state == LAZY:
        assert rng.until is not None
        whole = rng.breaks is None and not rng.undecided and rng.until == js[-1].gamma
        head = (f"{regime}: the lazy picture holds over the whole range, up to gamma = {rng.until:g} ({rule})" if whole
                else f"{regime}: the lazy picture holds for gamma <= {rng.until:g} ({rule})")
        if rng.undecided:
            parts.append("the rule cannot decide at " + "; ".join(
                f"gamma = {g:g} ({' and '.join(_reasons(a, regime, rng.at(g)))})" for g in rng.undecided))
        if rng.breaks is not None:
            parts.append(f"it ends at gamma = {rng.breaks:g}, where "
                         + " and ".join(_reasons(a, regime, rng.at(rng.breaks))))
        elif not whole:
            parts.append(f"no gamma up to {js[-1].gamma:g} is clearly not lazy")
    elif first.state == NOT_LAZY:
        head = (f"{regime}: the lazy picture does not hold even at the smallest gamma = {first.gamma:g} ({rule}): "
                + " and ".join(_reasons(a, regime, first)))
    else:
        head = (f"{regime}: the rule cannot decide at the smallest gamma = {first.gamma:g} ({rule}): "
                + " and ".join(_reasons(a, regime, first)))
        if rng.breaks is not None:
            parts.append(f"at gamma = {rng.breaks:g} it is not lazy: "
                         + " and ".join(_reasons(a, regime, rng.at(rng.breaks))))
    end = rng.breaks if rng.breaks is not None else js[-1].gamma
    relevant = [j for j in js if j.gamma <= end]
    parts += [c for j in relevant if (c := _still_training(j)) is not None]
    text = head + "".join(f"; {p}" for p in parts) + "."
    if first.state == LAZY:
        verdict = ("supported" if all(j.robust for j in relevant) else "partly supported") \
            if rng.breaks is not None else "partly supported"
    elif first.state == NOT_LAZY:
        verdict = "not supported" if first.robust else "inconclusive"
    else:
        verdict = "inconclusive"
    seeds = [e.units for j in relevant for e in (j.slope, j.drift) if e is not None]
    key = (f"lazy for gamma <= {rng.until:g}" if rng.until is not None else f"not lazy at gamma = {first.gamma:g}"
           if first.state == NOT_LAZY else f"undecided at gamma = {first.gamma:g}")
    decisive = rng.at(rng.breaks) if rng.breaks is not None else first
    if rng.breaks is not None and rng.until is not None:
        key += f"; not lazy from {rng.breaks:g}"
    key += f" (movement slope {_est(decisive.slope)} at gamma = {decisive.gamma:g})"
    runs = sum(j.runs for j in js)
    return statement("lazy_to_feature", NAME, regime, "the range of gamma where the lazy picture holds", text,
                     verdict, key=key, estimate=decisive.slope, seeds=min(seeds) if seeds else 0, runs=runs,
                     rule="lazy_range", unit="gamma")


def _excluded(a: Analysis, regime: str, gamma: float, width: int | None = None) -> list[str]:
    rows = a.rows(regime, gamma, width)
    clause = unfinished(int((rows["status"] != "converged").sum()), len(rows))
    return [] if clause is None else [f"{regime}: {clause}"]


def _ratio_finding(a: Analysis, gamma: float) -> Finding:
    """Tied's encoder movement over joint's at ``gamma`` and the largest width both have: the
    paired log-ratio's interval (:func:`paired_ratio`) through :func:`aedyn.findings.comparison`."""
    w = a.ratio_width
    excluded = [c for r in ("tied", "joint") for c in _excluded(a, r, gamma, w)]
    runs = len(a.rows("tied", gamma, w)) + len(a.rows("joint", gamma, w))
    return comparison("lazy_to_feature", NAME, f"gamma = {gamma:g}, m = {w}",
                      "tied's encoder movement over joint's (seeds paired)", a.ratio.get(gamma), equal=1.0,
                      ratio=True, larger="the tied encoder moves more than the joint one",
                      smaller="the tied encoder moves less than the joint one", runs=runs, excluded=excluded)


def _quantity(q: str) -> str:
    """The quantity in a sentence: its name and its formula (once when they are the same)."""
    return SHORT[q] if SHORT[q] == LABELS[q] else f"{SHORT[q]} {LABELS[q]}"


def _movement_finding(a: Analysis, regime: str, gamma: float, quantity: str = MOVEMENT) -> Finding:
    """The slope in ``m`` of ``quantity`` at ``gamma`` against the lazy estimate ``gamma - 1``
    (:func:`aedyn.findings.power_law`, ``kind="equals"``)."""
    expected = _expected(regime, gamma, quantity)
    scaling = " (NTK scaling)" if gamma == 0.5 else " (mean-field scaling)" if gamma == 1.0 else ""
    return power_law("lazy_to_feature", NAME, f"{regime}, gamma = {gamma:g}{scaling}",
                     _quantity(quantity), a.fits.get((regime, gamma, quantity)),
                     reference=0.0 if expected is None else expected, kind="equals", runs=len(a.rows(regime, gamma)),
                     excluded=_excluded(a, regime, gamma))


def _flag_count(rows: Any, column: str) -> int:
    return int(rows[column].fillna(False).astype(bool).sum())


def _certificate_finding(a: Analysis, regime: str, gamma: float) -> Finding:
    rows = a.rows(regime, gamma)
    known = rows[rows["cert_inside"].notna()]
    return certificate(NAME, f"{regime}, gamma = {gamma:g}", runs=len(known), inside=_flag_count(known, "cert_inside"),
                       kernel=_flag_count(known, "cert_kernel_holds"), rate=_flag_count(known, "cert_rate_holds"),
                       safe_radius=_flag_count(known, "cert_safe_radius_holds"), seeds=int(known["seed"].nunique()),
                       vacuous=int((known["steps"] == 0).sum()))


def findings(results: dict[str, Any]) -> list[Finding]:
    """At most five findings, the first the headline (claim ``lazy_to_feature``, figure ``lazy_rule``):

    1. joint's lazy range over ``gamma`` (:func:`lazy_range`; rule ``lazy_range``), the headline;
    2. tied's, by the same rule;
    3. tied's encoder movement over joint's at the smallest ``gamma`` and the largest width
       (``comparison``, seeds paired; every ``gamma`` in :func:`details`);
    4. joint's encoder movement at the smallest ``gamma`` against the lazy estimate ``gamma - 1``
       (``power_law``; every ``gamma`` in :func:`details`);
    5. the certificate of joint's runs at the smallest ``gamma`` (``certificate``; every regime and
       ``gamma`` in :func:`details`).
    A regime the config lacks drops its findings; the first regime's range is then the headline."""
    a = analyse(results)
    out: list[Finding] = [_range_finding(a, r) for r in a.regimes if r in ("joint", "tied")]
    out += [_range_finding(a, r) for r in a.regimes if r not in ("joint", "tied")]
    if out:
        out[0] = out[0].as_headline("lazy_rule")
    if a.ratio:
        out.append(_ratio_finding(a, min(a.ratio)))
    lead = "joint" if "joint" in a.regimes else a.regimes[0] if a.regimes else None
    if lead is not None:
        g0 = a.gammas[lead][0]
        out.append(_movement_finding(a, lead, g0))
        out.append(_certificate_finding(a, lead, g0))
    return out[:5]


def details(results: dict[str, Any]) -> list[str]:
    """Every setting in sentences: per regime the rule's call at each ``gamma`` (slope and drift with
    their intervals); the slopes of every measure against the lazy estimate; whether the runs
    reached the target; the step size's exponent; tied against joint at every ``gamma``; tied's
    initial error against the scaled-identity estimate; the held-out errors; the certificate of
    every regime and ``gamma``."""
    a = analyse(results)
    out: list[str] = []
    eps = a.config.get("epsilon")
    target = f"||f(X) - X|| / ||X|| <= {eps:g}" if eps is not None else "the target"
    for regime in a.regimes:
        rng = a.ranges[regime]
        calls = []
        for j in rng.judgements:
            why = "; ".join(_reasons(a, regime, j, all_criteria=True))
            tail = "" if (c := _still_training(j, named=False)) is None else f"; {c}"
            calls.append(f"gamma = {j.gamma:g}: {j.state} ({why}{tail})")
        out.append(f"{regime}, the rule at each gamma: " + "; ".join(calls) + ".")
        late = [j.gamma for j in rng.judgements if j.state == LAZY and rng.breaks is not None and j.gamma > rng.breaks]
        if late:
            out.append(f"{regime}: lazy again at gamma = {', '.join(f'{g:g}' for g in late)}, above the first gamma "
                       f"that is not lazy ({rng.breaks:g}): the rule's range ends at the first.")
        for g in a.gammas[regime]:
            for q in ("weight_change_W", "weight_change_V", "max_neuron_change_W", "pattern_flips"):
                if (regime, g, q) not in a.fits:
                    continue
                if _expected(regime, g, q) is not None:
                    out.append(_movement_finding(a, regime, g, q).sentence)
                else:
                    s = a.fits[(regime, g, q)]
                    out.append(f"{regime}, gamma = {g:g}: {_quantity(q)} goes like m^{_est(s)} "
                               f"({seeds_phrase(0 if s is None else s.units)}; no lazy estimate for {regime}).")
            s = a.fits.get((regime, g, "ntk_drift"))
            if s is not None:
                out.append(f"{regime}, gamma = {g:g}: the kernel drift goes like m^{_est(s)} "
                           f"({seeds_phrase(s.units)}; no lazy estimate: it may fall faster than the movement).")
        # whether the runs finished
        rows = a.rows(regime)
        done = int((rows["status"] == "converged").sum())
        sentence = f"{regime}: {count(done, len(rows))} reached {target}"
        if done:
            steps = rows[rows["status"] == "converged"]["steps"]
            sentence += f" (in {int(steps.min())}-{int(steps.max())} steps)"
        missed = rows[rows["status"] != "converged"]
        if len(missed):
            diverged = int((missed["status"] == "diverged").sum())
            parts = ", ".join(f"gamma = {g:g}: {count(len(grp), len(a.rows(regime, g)))} (m = "
                              f"{', '.join(str(int(w)) for w in sorted(set(grp['width'])))}; error "
                              f"{_f(grp['train_error'].min())}-{_f(grp['train_error'].max())})"
                              for g, grp in missed.groupby("gamma"))
            sentence += (f"; the others stopped at the budget of {int(rows['step_budget'].max())} steps"
                         + (f" ({diverged} diverged)" if diverged else "") + f", still training: {parts}")
        out.append(sentence + ".")
        # the step size
        etas = [(g, a.fits.get((regime, g, "lr"))) for g in a.gammas[regime]]
        etas = [(g, e) for g, e in etas if e is not None]
        if etas:
            listing = "; ".join(f"gamma = {g:g}: m^{_est(e)} (expected m^{num(2 * g - 1)})" for g, e in etas)
            outside = [(g, e) for g, e in etas if not e.contains(2 * g - 1)]
            close = [g for g, e in outside if abs(e.value - (2 * g - 1)) <= STEP_TOLERANCE]
            far = [g for g, e in outside if abs(e.value - (2 * g - 1)) > STEP_TOLERANCE]
            how = "every interval contains 2 gamma - 1" if not outside else "; ".join(
                part for part in (
                    f"the interval excludes 2 gamma - 1, but the slope is within {STEP_TOLERANCE:g} of it, at gamma = "
                    + ", ".join(f"{g:g}" for g in close) if close else "",
                    "the step size departs from m^(2 gamma - 1) at gamma = " + ", ".join(f"{g:g}" for g in far)
                    if far else "") if part)
            out.append(f"{regime}: the step size eta = 1/lambda_max(Theta(0)) against m: {listing}; {how}.")
    # tied against joint at every gamma
    out += [_ratio_finding(a, g).sentence for g in sorted(a.ratio)]
    if "tied" in a.regimes:  # docs/math/tied.md: f_0(x) ≈ (alpha m kappa^2 / 2) x
        kappa = float(a.config.get("kappa", 1.0))
        top = a.top["tied"]
        parts = [f"gamma = {g:g}: {_f(a.medians[('tied', g)]['initial_train_error'])} (|alpha m kappa^2/2 - 1| = "
                 f"{abs(top ** (1 - g) * kappa ** 2 / 2 - 1):.3g})" for g in a.gammas["tied"]
                 if a.medians[("tied", g)]["initial_train_error"] is not None]
        if parts:
            out.append(f"tied at m = {top}: the initial training error ||f_0(X) - X|| / ||X|| (median over seeds) "
                       "beside the scaled-identity estimate f_0(x) ≈ (alpha m kappa^2/2) x: " + "; ".join(parts) + ".")
    for regime in a.regimes:
        parts, worse = [], []
        for g in a.gammas[regime]:
            med = a.medians[(regime, g)]
            parts.append(f"gamma = {g:g}: {_f(med['heldout_error'])} (at initialisation "
                         f"{_f(med['initial_heldout_error'])})")
            clause = above_one({f"{regime} at gamma = {g:g}": med["heldout_error"]})  # type: ignore[dict-item]
            if clause:
                worse.append(clause)
        out.append(f"{regime}: held-out error ||f(x) - x|| / ||x|| on fresh inputs at m = {a.top[regime]} (median "
                   "over seeds): " + "; ".join(parts) + "".join(f"; {w}" for w in worse) + ".")
    for regime in a.regimes:
        out += [_certificate_finding(a, regime, g).sentence for g in a.gammas[regime]]
    return out


def _entry(e: Estimate | None) -> dict[str, Any] | None:
    return None if e is None else e.to_dict()


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers, JSON-ready: ``slopes`` (:func:`slopes`), per regime ``lazy_until``,
    ``breaks_at`` and ``undecided``; the ``rule``; ``criteria`` (per regime and ``gamma``: the
    movement slope and the drift at the largest width with their intervals, the call, the runs still
    training); ``at_largest`` (medians at the largest width, and the drift's interval);
    ``convergence`` per regime; ``tied_vs_joint`` (per ``gamma``, the paired ratio with its
    interval); ``certificate`` (counts per regime and ``gamma``)."""
    a = analyse(results)
    out: dict[str, Any] = {"slopes": slopes(results), "lazy_until": {}, "breaks_at": {}, "undecided": {},
                           "rule": {"movement": MOVEMENT, "lazy_slope": a.lazy_slope, "drift_level": a.drift_level},
                           "criteria": [], "at_largest": [], "convergence": {}, "tied_vs_joint": [],
                           "certificate": certified_counts(a.table, ["regime", "gamma"])}
    for regime in a.regimes:
        rng = a.ranges[regime]
        out["lazy_until"][regime], out["breaks_at"][regime] = rng.until, rng.breaks
        out["undecided"][regime] = list(rng.undecided)
        for j in rng.judgements:
            out["criteria"].append({"regime": regime, "gamma": j.gamma, "call": j.state, "lazy": j.state == LAZY,
                                    "movement_slope": _entry(j.slope), "movement_slope_upper": None if j.slope is None
                                    else j.slope.to_dict()["high"], "slope_side": j.slope_side,
                                    "drift_at_largest": _entry(j.drift), "drift_side": j.drift_side,
                                    "unfinished": j.unfinished, "runs": j.runs})
            out["at_largest"].append({"regime": regime, "gamma": j.gamma, "width": a.top[regime],
                                      **a.medians[(regime, j.gamma)], "ntk_drift_mean": _entry(j.drift)})
        rows = a.rows(regime)
        missed = rows[rows["status"] != "converged"]
        out["convergence"][regime] = {"runs": len(rows), "converged": int((rows["status"] == "converged").sum()),
                                      "step_budget": int(rows["step_budget"].max()),
                                      "not_converged_gammas": sorted({float(g) for g in missed["gamma"]})}
    for g, e in sorted(a.ratio.items()):
        out["tied_vs_joint"].append({"gamma": g, "width": a.ratio_width, "what": "tied's encoder movement over joint's",
                                     **(e.to_dict() if e is not None else {"value": None})})
    return out


def key_table(results: dict[str, Any]) -> Any:
    """The section's table, one row per regime and ``gamma``: the movement slope with its interval
    and the lazy estimate, the drift at the largest width with its interval, the rule's call, the runs
    that reached the target, tied's movement over joint's (tied rows) and the held-out error."""
    import pandas as pd

    a = analyse(results)
    tops = sorted(set(a.top.values()))
    drift_head = (f"kernel drift at m = {tops[0]} [95% CI]" if len(tops) == 1 else
                  "kernel drift at the largest m [95% CI]")
    ratio_head = f"tied / joint movement at m = {a.ratio_width} [95% CI]"
    rows = []
    for regime in a.regimes:
        top = a.top[regime]
        for j in a.ranges[regime].judgements:
            g = j.gamma
            expected = _expected(regime, g, MOVEMENT)
            ratio = a.ratio.get(g) if regime == "tied" else None
            done = len(a.rows(regime, g)) - j.unfinished
            row = {"regime": regime, "gamma": f"{g:g}", "movement slope in m [95% CI]": _est(j.slope),
                   "lazy estimate": "-" if expected is None else num(expected),
                   drift_head: _pct_est(j.drift) + ("" if len(tops) == 1 else f" (m = {top})"),
                   "rule": j.state + (" (runs still training)" if j.unfinished else ""),
                   "reached the target": f"{done} of {j.runs}"}
            if a.ratio:
                row[ratio_head] = "-" if ratio is None else f"{sig(ratio.value)}x {interval(ratio, fmt='sig')}"
            row["held-out error (median)"] = _f(a.medians[(regime, g)]["heldout_error"])
            rows.append(row)
    return pd.DataFrame(rows)


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "lazy_rule": "The lazy rule against gamma (alpha = m^-gamma), one series per regime. Left: the slope in m of the "
                 "encoder's relative movement ||W - W0|| / ||W0|| with its 95% interval over seeds, beside the lazy "
                 "estimate gamma - 1 (dashed) and the rule's threshold -0.2 (dotted). Right: the kernel drift "
                 "||Theta(T) - Theta(0)|| / ||Theta(0)|| at the largest width (geometric mean over seeds, 95% "
                 "interval) and the rule's level 10% (dotted). A gamma is lazy when both intervals lie below their "
                 "lines, not lazy when one lies above; open markers: some runs stopped at the step budget, still "
                 "training.",
    "slopes_vs_gamma": "The slopes in m of the other measures against gamma, with 95% intervals over seeds, one "
                       "series per regime: the largest single-neuron movement max_r ||w_r - w_r(0)||, the share of "
                       "activation patterns flipped and the kernel drift; dashed, the lazy estimate gamma - 1 "
                       "(joint; none for the drift, which may fall faster); open markers: runs still training.",
    "measures_vs_width": "The measures at the stop against the width m, one row per regime: encoder movement "
                         "||W - W0|| / ||W0||, share of activation patterns flipped, kernel drift and held-out error "
                         "||f(X') - X'|| / ||X'||; one colour per gamma, the median over seeds (line) and each seed "
                         "(dots); log axes where the values span more than one point.",
    "measures_vs_gamma": "The measures at the stop against gamma, one row per regime: encoder movement, kernel drift "
                         "(dotted: the rule's level), training error ||f(X) - X|| / ||X|| (dash-dotted: the target) "
                         "and held-out error; one colour per width, the median over seeds.",
}


def _distinct_positive(values: Any) -> int:
    return len({round(float(v), 12) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0})


def _series(ax: Any, xs: Sequence[float], estimates: Sequence[Estimate | None], colour: Any,
            hollow: Sequence[bool]) -> list[float]:
    """A line through the estimates' values with each one's interval as an error bar, open markers
    where ``hollow``; returns the values drawn."""
    pts = [(x, e, h) for x, e, h in zip(xs, estimates, hollow, strict=True) if e is not None and math.isfinite(e.value)]
    if not pts:
        return []
    ax.plot([x for x, _, _ in pts], [e.value for _, e, _ in pts], "-", color=colour, lw=1.2)
    for x, e, h in pts:
        if e.has_interval and e.low is not None and e.high is not None:
            ax.errorbar([x], [e.value], yerr=[[max(e.value - e.low, 0.0)], [max(e.high - e.value, 0.0)]], fmt="none",
                        ecolor=colour, elinewidth=1.1, capsize=3)
        ax.plot([x], [e.value], "o", color=colour, mfc="white" if h else colour, ms=6, mew=1.3)
    return [e.value for _, e, _ in pts]


@style.styled
def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): ``lazy_rule`` (the headline's), ``slopes_vs_gamma``,
    ``measures_vs_width`` and ``measures_vs_gamma``; a figure with nothing to draw is left out."""
    a = analyse(results)
    out: dict[str, Any] = {}
    if a.regimes:
        out["lazy_rule"] = _rule_figure(a)
        slopes_fig = _slopes_figure(a)
        if slopes_fig is not None:
            out["slopes_vs_gamma"] = slopes_fig
        out["measures_vs_width"] = _grid_figure(a, "width")
        out["measures_vs_gamma"] = _grid_figure(a, "gamma")
    return out


def _legend_regimes(a: Analysis) -> list[Any]:
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=style.REGIME_COLOURS.get(r, "0.3"), marker="o", label=r) for r in a.regimes]


def _by_gamma(a: Analysis, regime: str, k: int) -> tuple[list[float], list[bool]]:
    js = a.ranges[regime].judgements
    shift = (k - (len(a.regimes) - 1) / 2) * 0.012
    return [j.gamma + shift for j in js], [j.unfinished > 0 for j in js]


def _rule_figure(a: Analysis) -> Any:
    from matplotlib.lines import Line2D

    fig, axes = style.figure(1, 2, width=9.2, height=3.8)
    ax0, ax1 = axes[0]
    drifts: list[float] = []
    hollow_any = False
    for k, regime in enumerate(a.regimes):
        colour = style.REGIME_COLOURS.get(regime, "0.3")
        js = a.ranges[regime].judgements
        xs, hollow = _by_gamma(a, regime, k)
        hollow_any |= any(hollow)
        _series(ax0, xs, [j.slope for j in js], colour, hollow)
        drifts += _series(ax1, xs, [j.drift for j in js], colour, hollow)
    gammas = sorted({g for r in a.regimes for g in a.gammas[r]})
    grid = np.array([gammas[0], gammas[-1]])
    handles = _legend_regimes(a)
    if "joint" in a.regimes:
        ax0.plot(grid, grid - 1, "--", color="0.45", lw=1)
        handles.append(Line2D([], [], color="0.45", ls="--", label="lazy estimate gamma - 1 (joint)"))
    ax0.axhline(a.lazy_slope, color="0.45", ls=":", lw=1.2)
    ax1.axhline(a.drift_level, color="0.45", ls=":", lw=1.2)
    handles.append(Line2D([], [], color="0.45", ls=":",
                          label=f"rule: slope {a.lazy_slope:g}, drift {_pct(a.drift_level)}"))
    if hollow_any:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="", label="open: runs still training"))
    if _distinct_positive([*drifts, a.drift_level]) >= 2:
        ax1.set_yscale("log")
    top = max(a.top.values())
    ax0.set(title="slope in m of the encoder movement", xlabel="gamma (alpha = m^-gamma)",
            ylabel="slope of log movement in log m")
    ax1.set(title=f"kernel drift at m = {top}", xlabel="gamma (alpha = m^-gamma)",
            ylabel="drift (geometric mean over seeds)")
    return style.finish(fig, f"E6: where the lazy picture holds: the movement's slope in m and the kernel drift at "
                             f"m = {top}, against gamma (95% intervals)", handles=handles, ncol=min(len(handles), 3))


def _slopes_figure(a: Analysis) -> Any | None:
    panels = [q for q in ("max_neuron_change_W", "pattern_flips", "ntk_drift")
              if any(a.fits.get((r, g, q)) is not None for r in a.regimes for g in a.gammas[r])]
    if not panels:
        return None
    from matplotlib.lines import Line2D

    fig, axes = style.figure(1, len(panels), width=min(style.MAX_WIDTH, 3.2 * len(panels)), height=3.5)
    gammas = sorted({g for r in a.regimes for g in a.gammas[r]})
    grid = np.array([gammas[0], gammas[-1]])
    hollow_any = False
    for ax, q in zip(axes[0], panels, strict=True):
        for k, regime in enumerate(a.regimes):
            xs, hollow = _by_gamma(a, regime, k)
            hollow_any |= any(hollow)
            _series(ax, xs, [a.fits.get((regime, g, q)) for g in a.gammas[regime]],
                    style.REGIME_COLOURS.get(regime, "0.3"), hollow)
        if q != "ntk_drift" and "joint" in a.regimes:
            ax.plot(grid, grid - 1, "--", color="0.45", lw=1)
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set(title=SHORT[q], xlabel="gamma")
    axes[0][0].set_ylabel("slope of log(quantity) in log m")
    handles = _legend_regimes(a)
    if "joint" in a.regimes:
        handles.append(Line2D([], [], color="0.45", ls="--", label="lazy estimate gamma - 1 (joint)"))
    if hollow_any:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="", label="open: runs still training"))
    widths = sorted({int(w) for w in a.table["width"]})
    return style.finish(fig, f"E6: how the other measures scale with the width (m = {', '.join(map(str, widths))}), "
                             "against gamma", handles=handles)


def _grid_figure(a: Analysis, against: str) -> Any:
    """``against="width"``: the measures against ``m``, one colour per ``gamma``; ``"gamma"``: against
    ``gamma``, one colour per width. Rows: regimes; the median over seeds, and the seeds (``width`` only)."""
    from matplotlib.lines import Line2D

    panels = (("weight_change_W", "pattern_flips", "ntk_drift", "heldout_error") if against == "width" else
              ("weight_change_W", "ntk_drift", "train_error", "heldout_error"))
    series, x = ("gamma", "width") if against == "width" else ("width", "gamma")
    levels = sorted({float(v) for v in a.table[series]})
    colours = style.ramp(series, levels)
    fig, axes = style.figure(len(a.regimes), len(panels), width=style.MAX_WIDTH, height=2.7)
    eps = a.config.get("epsilon")
    for i, regime in enumerate(a.regimes):
        rows = a.rows(regime)
        for jx, q in enumerate(panels):
            ax = axes[i][jx]
            have = rows[rows[q].notna()]
            if not len(have):
                fig.delaxes(ax)
                continue
            log_y = _distinct_positive(have[q]) >= 2
            for level in levels:
                grp = have[have[series] == level]
                if not len(grp):
                    continue
                med = grp.groupby(x)[q].median()
                values = np.where(med.values > 0, med.values, np.nan) if log_y else med.values
                ax.plot(med.index, values, "-" if against == "width" else "o-", color=colours[level], lw=1.3, ms=3.5)
                if against == "width":
                    ax.plot(grp[x], np.where(grp[q] > 0, grp[q], np.nan) if log_y else grp[q], "o",
                            color=colours[level], ms=2.5, alpha=0.55)
            if q == "ntk_drift" and against == "gamma":
                ax.axhline(a.drift_level, color="0.45", ls=":", lw=1)
            if q == "train_error" and eps:
                ax.axhline(float(eps), color="0.45", ls="-.", lw=1)
            if against == "width" and _distinct_positive(have["width"]) >= 2:
                ax.set_xscale("log", base=2)
            if log_y:
                ax.set_yscale("log")
            ax.set_title(f"{regime}: {SHORT[q]}", fontsize=9)
            if i == len(a.regimes) - 1:
                ax.set_xlabel("width m" if against == "width" else "gamma (alpha = m^-gamma)")
    if against == "width":
        handles = [Line2D([], [], color=colours[g], marker="o", ms=4, label=f"gamma = {g:g}") for g in levels]
        title = ("E6: the measures at the stop against the width, alpha = m^-gamma (line: median over seeds; "
                 "dots: seeds)")
    else:
        handles = [Line2D([], [], color=colours[w], marker="o", ms=4, label=f"m = {int(w)}") for w in levels]
        handles.append(Line2D([], [], color="0.45", ls=":", label=f"drift level {_pct(a.drift_level)}"))
        if eps:
            handles.append(Line2D([], [], color="0.45", ls="-.", label=f"target error {float(eps):g}"))
        title = "E6: the measures at the stop against gamma (median over seeds)"
    return style.finish(fig, title, handles=handles, ncol=min(len(handles), 6))
