"""E6, from lazy training to feature learning: where does the NTK (lazy) picture stop describing
gradient descent as the output scale moves from the NTK to the mean-field scaling?

The output scale is ``alpha = m^(-gamma)``: ``gamma = 1/2`` is the NTK scaling of the paper
(SPEC.md, "Model"), ``gamma = 1`` the mean-field one. For every regime (``joint`` and ``tied``),
``gamma``, width ``m`` and initialisation seed, one network trains by full-batch gradient descent on
a small sphere problem (``n d <= 1024``, so the NTK is exact and dense on the CPU) with

- **step size** ``eta = 1 / lambda_max(Theta(0))`` of each network (``lr="auto"``). Since
  ``Theta ∝ alpha^2 m`` (SPEC.md, "Neural tangent kernel"), this is ``eta ∝ m^(2 gamma - 1)``: one
  step is the same time ``eta lambda_max t`` of the linearised dynamics at every ``gamma`` and ``m``,
  so a common step budget is a common budget in the kernel's own time. The measured ``eta`` is
  recorded and its exponent in ``m`` fitted against ``2 gamma - 1``;
- **stopping rule**: the relative training error ``||f(X) - X||_F / ||X||_F`` at most ``epsilon``
  (the same for every network, whatever its initial loss: the batch's ``target`` relative to
  ``L(0)`` is ``epsilon^2 ||X||_F^2 / (2 max_b L_b(0))``), or the regime's step budget. Tied networks
  with ``alpha m kappa^2 / 2 > 1`` start with a residual of about ``(alpha m kappa^2 / 2 - 1) x``
  (SPEC.md, "Weight tying"; ``sqrt(m) / 2`` at ``gamma = 1/2``), must shrink ``W`` by a factor
  ``O(1)``, and their kernel shrinks with it, so they get a larger budget; those that still miss the
  target are reported as ``max_steps`` with their final error.

Measured at the stop (:data:`aedyn.gd.METRICS`): the relative movement of the encoder
``||W_T - W_0||_F / ||W_0||_F`` (and of the decoder for ``joint``), the largest single-neuron
movement ``max_r ||w_r(T) - w_r(0)||``, the share of activation patterns flipped, the kernel drift
``||Theta(T) - Theta(0)||_F / ||Theta(0)||_F`` (``ntk_every`` beyond the budget: ``Theta`` at step
0 and at the stop, dense), the final loss and steps, and the held-out error ``||f(X') - X'||_F /
||X'||_F`` on fresh sphere points ``X'`` (another data seed).

For each regime, ``gamma`` and quantity, the **slope** in ``m`` is the least-squares slope of
``mean_seeds log q`` on ``log m`` (each width weighs the same), with a 95% percentile interval from
paired bootstrap resamples of the seeds (the same resampled seeds at every width: a seed's networks
at different widths share their first random draws; :func:`aedyn.experiments.fit_power_law`); a
width where some seed has ``q = 0`` is left out of that fit (``zero_widths``). The lazy
(linearised) estimate for the movements and flips is ``gamma - 1``: the minimum-norm interpolant in
the tangent space moves the parameters by ``||R(0)|| / sqrt(lambda(Theta)) ∝ 1 / (alpha sqrt(m))``
against ``||theta_0|| ∝ sqrt(m)``, i.e. ``m^(gamma - 1)``: ``-1/2`` in the NTK scaling and ``0``
(no vanishing) in the mean-field one. (No such estimate for ``tied``: its residual grows with ``m``.)

**The rule for the verdict** (:func:`lazy_range`): a ``gamma`` is *lazy* for a regime when the
encoder's relative movement clearly falls with the width (the upper end of its slope's interval,
or the slope itself when there is no interval, is below :data:`LAZY_SLOPE` ``= -0.2``, i.e. it
falls at least 40% as fast as the NTK scaling's ``m^(-1/2)``; the threshold lies between the lazy
estimates ``-1/4`` at ``gamma = 3/4`` and ``-1/8`` at ``gamma = 7/8``, so that no ``gamma`` of the
grid sits on it and the verdict does not hinge on seed noise at a grid point) **and** the median
kernel drift at the largest width is at most :data:`DRIFT_LEVEL` ``= 10%``. ``lazy_until`` is
the largest ``gamma`` up to which every ``gamma`` is lazy (``None`` when the smallest is not);
``breaks_at`` the smallest ``gamma`` that is not (``None`` when all are).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aedyn.certificate import CERTIFICATE_COLUMNS, certificate_sentence, certified_counts, columns_of
from aedyn.data import load_data
from aedyn.experiments import RECORD_EVERY, REGIME_COLOURS, checkpointed, fit_power_law, small_problems, values_by_seed
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.model import forward

NAME = "E6"
TITLE = "From lazy training to feature learning"
CLAIM = ("The convergence proofs rest on the lazy (NTK) picture, in which the weights, activation patterns and kernel "
         "barely move as the width grows; this holds for the output scale alpha = m^(-1/2) and should stop holding "
         "as alpha moves towards the mean-field scale m^(-1).")

GAMMAS: tuple[float, ...] = (0.5, 0.625, 0.75, 0.875, 1.0)
LAZY_SLOPE = -0.2
"""A ``gamma`` counts as lazy only if the movement's slope in ``m`` is clearly below this (CI upper end)."""
DRIFT_LEVEL = 0.1
"""... and the median kernel drift at the largest width is at most this."""
MOVEMENT = "weight_change_W"
"""The movement the rule judges: the encoder's, trained in every regime."""
MEASURES: tuple[str, ...] = ("weight_change_W", "weight_change_V", "max_neuron_change_W", "pattern_flips",
                             "ntk_drift")
"""Quantities whose slope in ``m`` is fitted (with ``eta``, whose exponent should be ``2 gamma - 1``)."""
LABELS = {"weight_change_W": "||W - W0|| / ||W0||", "weight_change_V": "||V - V0|| / ||V0||",
          "max_neuron_change_W": "max_r ||w_r - w_r(0)||", "pattern_flips": "share of patterns flipped",
          "ntk_drift": "kernel drift ||Theta(T) - Theta(0)|| / ||Theta(0)||", "eta": "step size eta",
          "train_error": "training error ||f(X) - X|| / ||X||",
          "heldout_error": "held-out error ||f(X') - X'|| / ||X'||"}


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Everything the run depends on, JSON-ready. Both: sphere ``n = 16, d = 8`` (``n d = 128``:
    the NTK is dense and exact), ``gamma`` in 0.5..1 by 1/8, regimes joint and tied, relative
    training error ``epsilon = 1e-3``; held-out: 256 sphere points from data seed 1.

    - quick: widths 256 and 1024, 3 seeds, budgets 600 (joint) and 1000 (tied) steps (6-11 s on
      2 shared CPU cores);
    - full: widths 256, 512, 1024, 2048, 4096, 4 seeds, budgets 1000 and 1500 steps (40-80 s).
    Joint networks reach the target within 460 steps at every setting tried; tied ones at
    ``gamma <= 5/8`` do not within these budgets (their kernel shrinks as ``W`` does)."""
    count = (3 if quick else 4) if seeds is None else int(seeds)
    return {"regimes": ["joint", "tied"], "gammas": list(GAMMAS),
            "widths": [256, 1024] if quick else [256, 512, 1024, 2048, 4096], "seeds": list(range(count)),
            "data": {"name": "sphere", "n": 16, "d": 8}, "data_seed": 0, "test_seed": 1, "n_test": 256,
            "epsilon": 1e-3, "steps": {"joint": 600, "tied": 1000} if quick else {"joint": 1000, "tied": 1500},
            "kappa": 1.0, "nu": 1.0,
            "dtype": "float64", "record_every": RECORD_EVERY, "device": device, "lazy_slope": LAZY_SLOPE,
            "drift_level": DRIFT_LEVEL,
            "resamples": 1000}


def setup(config: dict[str, Any]) -> list[str]:
    """The set-up in sentences for the report."""
    data, seeds = config["data"], config["seeds"]
    budgets = ", ".join(f"{r} {config['steps'][r]}" for r in config["regimes"])
    return [
        f"Data: {data['name']} (n = {data['n']}, d = {data['d']}, data seed {config['data_seed']}); held-out: "
        f"{config['n_test']} fresh {data['name']} points (data seed {config['test_seed']}).",
        f"Regimes {', '.join(config['regimes'])}; output scale alpha = m^(-gamma), gamma in "
        f"{', '.join(f'{g:g}' for g in config['gammas'])} (1/2: NTK, 1: mean-field); widths m = "
        f"{', '.join(str(w) for w in config['widths'])}; {len(seeds)} initialisation "
        f"seed{'s' if len(seeds) != 1 else ''}; kappa = {config['kappa']:g}, nu = {config['nu']:g}, {config['dtype']}.",
        "Step size: eta = 1/lambda_max(Theta(0)) of each network; since Theta is proportional to alpha^2 m, eta "
        "scales like m^(2 gamma - 1) (recorded, and its exponent fitted), and a step is the same time "
        "eta lambda_max t of the linearised dynamics at every gamma and m, so all networks of a regime share one "
        "step budget.",
        f"Each network trains until ||f(X) - X||_F / ||X||_F <= {config['epsilon']:g} or its budget ({budgets} "
        "steps; tied networks start with a residual of about (alpha m kappa^2/2 - 1) x, sqrt(m)/2 at gamma = 1/2, "
        "and get more); runs that miss the target are reported as max_steps with their final error.",
        "Measured at the stop: relative weight movement ||W_T - W_0|| / ||W_0|| (and V for joint), the largest "
        "single-neuron movement, the share of activation patterns flipped, the kernel drift "
        "||Theta(T) - Theta(0)||_F / ||Theta(0)||_F (dense NTK at step 0 and at the stop), the final training "
        "error and the held-out error ||f(X') - X'||_F / ||X'||_F.",
        "Slopes in m: least-squares line through the seed-mean of log q against log m (each width weighs the same), "
        f"95% percentile interval from {config['resamples']} paired bootstrap resamples of the seeds (the same "
        "resampled seeds at every width: a seed's networks at different widths share their first random draws); "
        "the lazy estimate for movement and flips is "
        "gamma - 1 (-1/2 in the NTK scaling, 0 in the mean-field one).",
        f"Rule: a gamma is lazy when the encoder movement's slope in m is clearly negative (upper end of its 95% "
        f"interval below {config['lazy_slope']:g}: at least 40% of the NTK scaling's -1/2, and between the lazy "
        "estimates -1/4 at gamma = 3/4 and -1/8 at gamma = 7/8, so no grid point sits on it) and the median "
        f"kernel drift at the largest width is at most {100 * config['drift_level']:g}%. The lazy picture holds "
        "up to the largest gamma up to which every gamma is lazy, and stops at the first gamma that is not.",
    ]


# ---- running --------------------------------------------------------------------------------------

def alpha_of(width: int, gamma: float) -> float:
    """The output scale ``alpha = m^(-gamma)``."""
    return float(width) ** (-float(gamma))


def _job(config: dict[str, Any], regime: str, gamma: float, width: int, seed: int, target: float = 0.5) -> TrainJob:
    steps = int(config["steps"][regime])
    data = config["data"]
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=int(seed),
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=int(width),
                    init_scale=alpha_of(width, gamma), lr="auto", steps=steps, target=target,
                    record_every=int(config.get("record_every", RECORD_EVERY)), ntk_every=steps + 1, certify=True,
                    dtype=config["dtype"], device=config["device"])


def batch_target(initial_losses: Sequence[float], data_norm2: float, epsilon: float) -> float:
    """The target relative to ``L(0)`` shared by a batch so that every network stops at (or below)
    ``||f(X) - X||_F <= epsilon ||X||_F``, i.e. ``L <= epsilon^2 ||X||_F^2 / 2``:
    ``epsilon^2 ||X||_F^2 / (2 max_b L_b(0))``, capped at 1/2 (so that every network trains at
    least until its loss has halved, even one that starts near the target)."""
    top = max(float(v) for v in initial_losses)
    return min(0.5, epsilon ** 2 * data_norm2 / (2.0 * top)) if top > 0 else 0.5


def _relative_error(U: torch.Tensor, X: torch.Tensor) -> float:
    return float((U - X).norm() / X.norm())


def _value(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _row(result: Any, config: dict[str, Any], regime: str, gamma: float, width: int, seed: int,
         X: torch.Tensor, X_test: torch.Tensor) -> dict[str, Any]:
    """One run's record (the table's row): setting, step size, stop, every measure."""
    m = result.metrics
    last = (lambda name: _value(m[name][-1]) if name in m and len(m[name]) else None)  # noqa: E731
    lam = m.get("ntk_lambda_min")
    final = result.params
    return {
        "regime": regime, "gamma": float(gamma), "alpha": alpha_of(width, gamma), "width": int(width),
        "seed": int(seed), "eta": float(result.lr), "lambda_max0": _value(result.lambda_max),
        "steps": int(result.steps), "budget": int(config["steps"][regime]), "status": result.status,
        "final_relative_loss": _value(result.relative_loss[-1]),
        "train_error": _relative_error(forward(final, X, regime), X),
        "initial_train_error": _relative_error(forward(result.init, X, regime), X),
        "weight_change_W": last("weight_change_W"), "weight_change_V": last("weight_change_V"),
        "weight_distance_W": last("weight_distance_W"), "weight_distance_V": last("weight_distance_V"),
        "max_neuron_change_W": last("max_neuron_change_W"), "pattern_flips": last("pattern_flips"),
        "ntk_drift": last("ntk_drift"),
        "lambda_min_ratio": None if lam is None or len(lam) < 2 or not lam[0] > 0 else _value(lam[-1] / lam[0]),
        "drift_method": result.config.get("ntk_drift_method"),
        "heldout_error": _relative_error(forward(final, X_test, regime), X_test),
        "initial_heldout_error": _relative_error(forward(result.init, X_test, regime), X_test),
        **columns_of(result),
    }


def run(config: dict[str, Any], *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict[str, Any]:
    """Train every (regime, gamma, width) batch, all seeds together (:func:`aedyn.job.run_batch`),
    and measure each run (see the module docstring). Returns ``{"config", "notes", "runs"}``, one
    record per run. ``checkpoint`` (an :class:`aedyn.files.Checkpoint`) keeps each batch's records
    as it finishes, so an interrupted run, restarted, retrains only the batch in flight."""
    with small_problems(config["device"]):
        return _run(config, progress, checkpoint)


def _run(config: dict[str, Any], progress: Callable[[str, float], None] | None, checkpoint: Any | None) -> dict:
    report = progress or (lambda message, fraction: None)
    regimes, gammas = list(config["regimes"]), [float(g) for g in config["gammas"]]
    widths, seeds = [int(w) for w in config["widths"]], [int(s) for s in config["seeds"]]
    notes = Notes()
    X = _job(config, regimes[0], gammas[0], widths[0], seeds[0]).load(notes)
    n, d = (int(s) for s in X.shape)
    with notes.collect():
        X_test = load_data(config["data"]["name"], n=int(config["n_test"]), d=d, seed=int(config["test_seed"]),
                           dtype=config["dtype"], device=config["device"])
    total, done, runs = len(regimes) * len(gammas) * len(widths), 0, []
    for regime in regimes:
        for gamma in gammas:
            for width in widths:
                report(f"E6: {regime} gamma = {gamma:g} m = {width}", done / total)
                key = f"{regime}|{gamma:g}|{width}|{n}|{d}"
                runs += checkpointed(checkpoint, key, notes, lambda regime=regime, gamma=gamma, width=width:
                                     _batch(config, regime, gamma, width, X, X_test, notes))
                done += 1
    report("E6: done", 1.0)
    return {"config": config, "n": n, "d": d, "notes": sorted(set(notes.messages)), "runs": runs}


def _batch(config: dict[str, Any], regime: str, gamma: float, width: int, X: torch.Tensor, X_test: torch.Tensor,
           notes: Notes) -> list[dict]:
    """Train the seeds of one (regime, gamma, width) as one batch, to the shared target; one record per run."""
    seeds, d = [int(s) for s in config["seeds"]], int(X.shape[1])
    L0 = [0.5 * float((forward(_job(config, regime, gamma, width, s).init(d, width, alpha_of(width, gamma)), X, regime)
                       - X).square().sum()) for s in seeds]
    target = batch_target(L0, float(X.square().sum()), float(config["epsilon"]))
    with notes.collect():
        results = run_batch([_job(config, regime, gamma, width, s, target) for s in seeds])
    return [_row(r, config, regime, gamma, width, s, X, X_test) for r, s in zip(results, seeds, strict=True)]


# ---- slopes, the rule -----------------------------------------------------------------------------

def lazy_range(gammas: Sequence[float], movement_upper: Sequence[float | None],
               drift_at_largest: Sequence[float | None], *, lazy_slope: float = LAZY_SLOPE,
               drift_level: float = DRIFT_LEVEL) -> tuple[float | None, float | None, list[bool]]:
    """``(lazy_until, breaks_at, lazy)``: ``lazy[i]`` is true when ``movement_upper[i]`` (the upper
    end of the movement slope's interval) is below ``lazy_slope`` and ``drift_at_largest[i]`` is at
    most ``drift_level`` (a missing number is not lazy); ``lazy_until`` the largest ``gamma`` up to
    which every ``gamma`` (in increasing order) is lazy, ``breaks_at`` the first that is not."""
    order = np.argsort(gammas)
    lazy = [u is not None and dr is not None and u < lazy_slope and dr <= drift_level
            for u, dr in zip(movement_upper, drift_at_largest, strict=True)]
    until = breaks = None
    for i in order:
        if not lazy[i]:
            breaks = float(gammas[i])
            break
        until = float(gammas[i])
    return until, breaks, lazy


# ---- the table, the verdict -----------------------------------------------------------------------

COLUMNS = ("regime", "gamma", "alpha", "width", "seed", "eta", "lambda_max0", "steps", "budget", "status",
           "final_relative_loss", "train_error", "initial_train_error", "weight_change_W", "weight_change_V",
           "weight_distance_W", "weight_distance_V", "max_neuron_change_W", "pattern_flips", "ntk_drift",
           "lambda_min_ratio", "heldout_error", "initial_heldout_error", "drift_method", *CERTIFICATE_COLUMNS)
FLAGS = tuple(c for c in CERTIFICATE_COLUMNS if c == "cert_inside" or c.endswith("_holds"))


def tabulate(results: dict[str, Any]) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`; a measure that does not apply,
    such as the decoder's movement of a tied network, is NaN)."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in ("regime", "status", "drift_method", *FLAGS)]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table[list(FLAGS)] = table[list(FLAGS)].astype("boolean")
    return table


def _regimes(table: Any) -> list[str]:
    known = [r for r in REGIME_COLOURS if r in set(table["regime"])]
    return known + sorted(set(table["regime"]) - set(known))


def slopes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per regime x gamma x quantity (:data:`MEASURES` and ``eta``): the fitted slope in
    ``m`` with its interval (:func:`aedyn.experiments.fit_power_law`, seeds lined up across widths;
    ``points``: the widths fitted, ``zero_widths``: those left out for a zero), and the expected
    one (``lazy_estimate``: ``gamma - 1`` for the joint movements and flips; ``2 gamma - 1`` for
    ``eta`` in every regime; otherwise ``None``)."""
    table = tabulate(results)
    cfg = results.get("config", {})
    out = []
    for regime in _regimes(table):
        for gamma in sorted(set(table[table["regime"] == regime]["gamma"])):
            rows = table[(table["regime"] == regime) & (table["gamma"] == gamma)]
            records = rows.to_dict("records")
            for q in (*MEASURES, "eta"):
                if not rows[q].notna().any():
                    continue
                s = fit_power_law(*values_by_seed(records, q), resamples=int(cfg.get("resamples", 1000)))
                if q == "eta":
                    expected: float | None = 2 * gamma - 1
                elif regime != "tied" and q != "ntk_drift":
                    expected = gamma - 1
                else:
                    expected = None
                out.append({"regime": regime, "gamma": float(gamma), "quantity": q,
                            "value": None if s is None else s.value, "ci_low": None if s is None else s.ci_low,
                            "ci_high": None if s is None else s.ci_high, "points": 0 if s is None else len(s.widths),
                            "zero_widths": [] if s is None else list(s.zero_widths),
                            "lazy_estimate": expected})
    return out


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None or not math.isfinite(x) else fmt.format(round(x, 2) + 0.0 if fmt == "{:.2f}" else x)


def _ci(e: dict[str, Any]) -> str:
    if e["value"] is None:
        return "n/a"
    return _f(e["value"]) + ("" if e["ci_low"] is None else f" [{_f(e['ci_low'])}, {_f(e['ci_high'])}]")


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.3g}%"


def verdict(results: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Sentences computed from the numbers (see the module docstring for the rule) and the summary
    ``{"slopes", "lazy_until", "breaks_at", "rule", "criteria", "at_largest", "convergence"}``."""
    table = tabulate(results)
    cfg = results.get("config", {})
    lazy_slope, drift_level = float(cfg.get("lazy_slope", LAZY_SLOPE)), float(cfg.get("drift_level", DRIFT_LEVEL))
    fits = slopes(results)
    get = {(e["regime"], e["gamma"], e["quantity"]): e for e in fits}
    summary: dict[str, Any] = {"slopes": fits, "lazy_until": {}, "breaks_at": {},
                               "rule": {"movement": MOVEMENT, "lazy_slope": lazy_slope, "drift_level": drift_level},
                               "criteria": [], "at_largest": [], "convergence": {}}
    sentences: list[str] = []
    top = int(table["width"].max())
    medians: dict[tuple[str, float], dict[str, float | None]] = {}
    for regime in _regimes(table):
        rows = table[table["regime"] == regime]
        gammas = sorted(set(rows["gamma"]))
        uppers, drifts = [], []
        for g in gammas:
            at = rows[(rows["gamma"] == g) & (rows["width"] == rows["width"].max())]
            med = {q: _value(at[q].median()) for q in ("weight_change_W", "weight_change_V", "pattern_flips",
                                                         "ntk_drift", "train_error", "heldout_error",
                                                         "initial_heldout_error")}
            medians[(regime, g)] = med
            e = get.get((regime, g, MOVEMENT))
            uppers.append(None if e is None or e["value"] is None else (e["value"] if e["ci_high"] is None
                                                                          else e["ci_high"]))
            drifts.append(med["ntk_drift"])
            summary["at_largest"].append({"regime": regime, "gamma": float(g), "width": int(at["width"].max()), **med})
        until, breaks, lazy = lazy_range(gammas, uppers, drifts, lazy_slope=lazy_slope, drift_level=drift_level)
        summary["lazy_until"][regime], summary["breaks_at"][regime] = until, breaks
        for g, u, dr, ok in zip(gammas, uppers, drifts, lazy, strict=True):
            summary["criteria"].append({"regime": regime, "gamma": float(g), "movement_slope_upper": u,
                                        "drift_at_largest": dr, "lazy": bool(ok)})
        width_top = int(rows["width"].max())
        listing = "; ".join(f"gamma = {g:g}: {_ci(get[(regime, g, MOVEMENT)])}" for g in gammas
                            if (regime, g, MOVEMENT) in get)
        drift_list = ", ".join(f"{_pct(dr)} (gamma = {g:g})" for g, dr in zip(gammas, drifts, strict=True))
        sentences.append(f"{regime}: slope in m of the encoder's relative movement (95% CI): {listing}. Median kernel "
                         f"drift at m = {width_top}: {drift_list}.")
        rule = (f"movement slope's CI below {lazy_slope:g} and drift at m = {width_top} at most "
                f"{100 * drift_level:g}%")
        if breaks is None:
            text = (f"{regime}: the lazy picture holds over the whole range, up to gamma = {until:g} ({rule} at every "
                    "gamma).")
        else:
            i = gammas.index(breaks)
            why = []
            if uppers[i] is None or not uppers[i] < lazy_slope:
                e = get.get((regime, breaks, MOVEMENT))
                why.append("the movement no longer clearly falls with m (slope " + (_ci(e) if e else "n/a") + ")")
            if drifts[i] is None or not drifts[i] <= drift_level:
                why.append(f"the kernel drifts by {_pct(drifts[i])} at m = {width_top}")
            head = (f"{regime}: the lazy picture holds for gamma <= {until:g} ({rule}) and stops describing the "
                    f"dynamics at gamma = {breaks:g}, where " if until is not None else
                    f"{regime}: the lazy picture fails already at gamma = {breaks:g} ({rule} not met): ")
            text = head + " and ".join(why) + "."
            missed = rows[(rows["gamma"] == breaks) & (rows["status"] != "converged")]
            if len(missed):
                text = text[:-1] + (f" (at gamma = {breaks:g}, {len(missed)} of {int((rows['gamma'] == breaks).sum())} "
                                    "runs did not reach the target: their movement and drift are those at the end of "
                                    "the step budget, so the judgement there is on runs still training).")
        sentences.append(text)
        # convergence
        missed = rows[rows["status"] != "converged"]
        conv: dict[str, Any] = {"runs": len(rows), "converged": int((rows["status"] == "converged").sum()),
                                "budget": int(rows["budget"].max()),
                                "not_converged_gammas": sorted({float(g) for g in missed["gamma"]})}
        summary["convergence"][regime] = conv
        eps = cfg.get("epsilon")
        target = f"||f(X) - X|| / ||X|| <= {eps:g}" if eps is not None else "the target"
        if not len(missed):
            sentences.append(f"{regime}: every run reached {target} (steps {int(rows['steps'].min())}-"
                             f"{int(rows['steps'].max())}).")
        else:
            parts = ", ".join(f"gamma = {g:g} (m = {', '.join(str(int(w)) for w in sorted(set(grp['width'])))}; "
                              f"error {_f(grp['train_error'].min(), '{:.2g}')}-"
                              f"{_f(grp['train_error'].max(), '{:.2g}')})"
                              for g, grp in missed.groupby("gamma"))
            diverged = int((missed["status"] == "diverged").sum())
            sentences.append(f"{regime}: {len(missed)} of {len(rows)} runs did not reach {target} within "
                             f"{conv['budget']} steps" + (f" ({diverged} diverged)" if diverged else "")
                             + f": {parts}; their measures are those at the end of the budget.")
    # the step-size rule
    etas = [e for e in fits if e["quantity"] == "eta" and e["value"] is not None]
    if etas:
        off = [e for e in etas if abs(e["value"] - e["lazy_estimate"]) > 0.05]
        if not off:
            sentences.append("The step size eta = 1/lambda_max(Theta(0)) scales like m^(2 gamma - 1) as predicted "
                             "(every fitted exponent within 0.05 of 2 gamma - 1).")
        else:
            sentences.append("The step size eta = 1/lambda_max(Theta(0)) departs from m^(2 gamma - 1) in "
                             + "; ".join(f"{e['regime']} gamma = {e['gamma']:g} (exponent {_f(e['value'])}, "
                                         f"expected {_f(e['lazy_estimate'])})" for e in off) + ".")
    # joint against tied
    regimes = _regimes(table)
    if {"joint", "tied"} <= set(regimes):
        gammas = sorted(set(table[table["regime"] == "joint"]["gamma"])
                        & set(table[table["regime"] == "tied"]["gamma"]))
        more = [g for g in gammas if (medians[("tied", g)]["weight_change_W"] or 0)
                > (medians[("joint", g)]["weight_change_W"] or 0)]
        pairs = "; ".join(f"gamma = {g:g}: {_f(medians[('tied', g)]['weight_change_W'], '{:.3g}')} vs "
                          f"{_f(medians[('joint', g)]['weight_change_W'], '{:.3g}')}, drift "
                          f"{_pct(medians[('tied', g)]['ntk_drift'])} vs {_pct(medians[('joint', g)]['ntk_drift'])}"
                          for g in gammas)
        if len(more) == len(gammas):
            how = "the tied encoder moves more than the joint one at every gamma"
        elif not more:
            how = "the tied encoder moves no more than the joint one at any gamma"
        else:
            how = "the tied encoder moves more than the joint one at gamma = " + ", ".join(f"{g:g}" for g in more)
        sentences.append(f"Joint against tied at m = {top}: {how} (relative movement tied vs joint, {pairs}). "
                         f"Lazy range: joint up to {_g(summary['lazy_until']['joint'])}, tied up to "
                         f"{_g(summary['lazy_until']['tied'])}.")
    if "tied" in regimes:  # SPEC.md, "Weight tying": f_0(x) ≈ (alpha m kappa^2 / 2) x
        kappa = float(cfg.get("kappa", 1.0))
        rows = table[(table["regime"] == "tied") & (table["width"] == top)]
        parts = [f"gamma = {g:g}: {_f(grp['initial_train_error'].median(), '{:.3g}')} (|alpha m kappa^2/2 - 1| = "
                 f"{abs(top ** (1 - g) * kappa ** 2 / 2 - 1):.3g})" for g, grp in rows.groupby("gamma")]
        if parts and rows["initial_train_error"].notna().any():
            sentences.append(f"Tied at m = {top}: the initial training error ||f_0(X) - X|| / ||X|| against the "
                             "scaled-identity estimate f_0(x) ≈ (alpha m kappa^2/2) x: " + "; ".join(parts) + ".")
    held = []
    for regime in regimes:
        gs = sorted(g for (r, g) in medians if r == regime)
        held.append(f"{regime} " + ", ".join(f"{_f(medians[(regime, g)]['heldout_error'], '{:.3g}')} (gamma = {g:g}, "
                                             f"at init {_f(medians[(regime, g)]['initial_heldout_error'], '{:.3g}')})"
                                             for g in gs))
    sentences.append(f"Held-out error ||f(x) - x|| / ||x|| on fresh inputs at m = {top} (median over seeds): "
                     + "; ".join(held) + ".")
    sentences += certificate_sentence(table, ("regime", "gamma"))
    summary["certificate"] = certified_counts(table, ["regime", "gamma"])
    return sentences, summary


def _g(x: float | None) -> str:
    return "no gamma (not lazy even at the smallest)" if x is None else f"gamma = {x:g}"


# ---- figures -------------------------------------------------------------------------------------

PANELS = ("weight_change_W", "pattern_flips", "ntk_drift", "heldout_error")
SLOPE_PANELS = ("weight_change_W", "max_neuron_change_W", "pattern_flips", "ntk_drift")


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """Matplotlib figures (no I/O):

    - ``measures_vs_width``: rows regimes, columns encoder movement, flips, kernel drift, held-out
      error against ``m`` (log-log); one colour per ``gamma``, mean over seeds (line) and each seed (dots);
    - ``slopes_vs_gamma``: the fitted slope in ``m`` with its interval against ``gamma``, one series
      per regime, with the lazy estimate ``gamma - 1`` and the rule's threshold;
    - ``measures_vs_gamma``: rows regimes, columns encoder movement, kernel drift, training error and
      held-out error against ``gamma`` (log ``y``), one line per width.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    table = tabulate(results)
    cfg = results.get("config", {})
    regimes = _regimes(table)
    gammas = sorted(set(table["gamma"]))
    widths = sorted(set(table["width"]))
    cmap = plt.get_cmap("viridis")
    gcol = {g: cmap(0.85 * i / max(1, len(gammas) - 1)) for i, g in enumerate(gammas)}
    wcol = {w: plt.get_cmap("plasma")(0.8 * i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    out: dict[str, Any] = {}

    def positive(v: Any) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        return np.where(a > 0, a, np.nan)

    fig, axes = plt.subplots(len(regimes), len(PANELS), figsize=(2.9 * len(PANELS), 2.5 * len(regimes) + 0.8),
                             squeeze=False, layout="constrained")
    for i, regime in enumerate(regimes):
        for j, q in enumerate(PANELS):
            ax = axes[i][j]
            for g in gammas:
                rows = table[(table["regime"] == regime) & (table["gamma"] == g)]
                if not rows[q].notna().any():
                    continue
                mean = rows.groupby("width")[q].mean()
                ax.plot(mean.index, positive(mean.values), "-", color=gcol[g], lw=1.3)
                ax.plot(rows["width"], positive(rows[q]), "o", color=gcol[g], ms=2.5, alpha=0.6)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{regime}: {LABELS[q]}", fontsize=7)
            ax.tick_params(which="both", labelsize=7)
            if i == len(regimes) - 1:
                ax.set_xlabel("width m", fontsize=7)
        axes[i][0].set_ylabel(regime, fontsize=8)
    handles = [Line2D([], [], color=gcol[g], marker="o", ms=3, label=f"gamma = {g:g}") for g in gammas]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("E6: measures at the stop against width, alpha = m^-gamma (line: mean over seeds; dots: seeds)",
                 fontsize=9)
    out["measures_vs_width"] = fig

    fits = slopes(results)
    fig, axes = plt.subplots(1, len(SLOPE_PANELS), figsize=(2.9 * len(SLOPE_PANELS), 3.2), squeeze=False,
                             layout="constrained")
    for ax, q in zip(axes[0], SLOPE_PANELS, strict=True):
        for k, regime in enumerate(regimes):
            es = [e for e in fits if e["regime"] == regime and e["quantity"] == q and e["value"] is not None]
            if not es:
                continue
            g = np.array([e["gamma"] for e in es]) + (k - (len(regimes) - 1) / 2) * 0.012
            v = np.array([e["value"] for e in es])
            lo = np.array([e["value"] if e["ci_low"] is None else e["ci_low"] for e in es])
            hi = np.array([e["value"] if e["ci_high"] is None else e["ci_high"] for e in es])
            ax.errorbar(g, v, yerr=[v - lo, hi - v], fmt="o-", ms=4, lw=1.2, capsize=2,
                        color=REGIME_COLOURS.get(regime, "0.3"))
        grid = np.array([min(gammas), max(gammas)])
        if q != "ntk_drift":  # no lazy estimate for the drift (it may fall faster; SPEC.md)
            ax.plot(grid, grid - 1, "--", color="0.4", lw=1)
        if q == MOVEMENT:
            ax.axhline(float(cfg.get("lazy_slope", LAZY_SLOPE)), color="0.4", ls=":", lw=1)
        ax.axhline(0, color="0.8", lw=0.6)
        ax.set_title(LABELS[q], fontsize=7)
        ax.set_xlabel("gamma (alpha = m^-gamma)", fontsize=7)
        ax.tick_params(which="both", labelsize=7)
    axes[0][0].set_ylabel("slope of log(quantity) in log m", fontsize=7)
    handles = [Line2D([], [], color=REGIME_COLOURS.get(r, "0.3"), marker="o", label=f"{r} (95% CI over seeds)")
               for r in regimes]
    handles += [Line2D([], [], color="0.4", ls="--", label="lazy estimate gamma - 1 (joint)"),
                Line2D([], [], color="0.4", ls=":",
                       label=f"rule threshold {float(cfg.get('lazy_slope', LAZY_SLOPE)):g}")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(f"E6: how the measures scale with width (m = {', '.join(str(int(w)) for w in widths)}), "
                 "against gamma", fontsize=9)
    out["slopes_vs_gamma"] = fig

    cols = ("weight_change_W", "ntk_drift", "train_error", "heldout_error")
    fig, axes = plt.subplots(len(regimes), len(cols), figsize=(2.9 * len(cols), 2.5 * len(regimes) + 0.8),
                             squeeze=False, layout="constrained")
    for i, regime in enumerate(regimes):
        for j, q in enumerate(cols):
            ax = axes[i][j]
            for w in widths:
                rows = table[(table["regime"] == regime) & (table["width"] == w)]
                med = rows.groupby("gamma")[q].median()
                ax.plot(med.index, positive(med.values), "o-", color=wcol[w], ms=3, lw=1.2)
            if q == "ntk_drift":
                ax.axhline(float(cfg.get("drift_level", DRIFT_LEVEL)), color="0.4", ls=":", lw=1)
            if q == "train_error" and cfg.get("epsilon"):
                ax.axhline(float(cfg["epsilon"]), color="0.4", ls="-.", lw=1)
            ax.set_yscale("log")
            ax.set_title(f"{regime}: {LABELS[q]}", fontsize=7)
            ax.tick_params(which="both", labelsize=7)
            if i == len(regimes) - 1:
                ax.set_xlabel("gamma (alpha = m^-gamma)", fontsize=7)
        axes[i][0].set_ylabel(regime, fontsize=8)
    handles = [Line2D([], [], color=wcol[w], marker="o", ms=3, label=f"m = {int(w)}") for w in widths]
    handles.append(Line2D([], [], color="0.4", ls=":", label="drift level of the rule"))
    if cfg.get("epsilon"):
        handles.append(Line2D([], [], color="0.4", ls="-.", label=f"target training error {float(cfg['epsilon']):g}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("E6: measures at the stop against gamma (median over seeds)", fontsize=9)
    out["measures_vs_gamma"] = fig
    return out
