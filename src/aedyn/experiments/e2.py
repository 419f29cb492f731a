"""E2, how much over-parameterisation: the least width ``m*`` at which gradient descent succeeds,
for weak and joint training (and the decoder-only baseline) against ``n`` and ``d``.

The search, its criteria (``reach``, ``lambda0``), step budget and step rules are
:mod:`aedyn.threshold`'s; every width's seeds are :class:`~aedyn.job.TrainJob` s run by a
:class:`aedyn.sweep.Runner` into the report's run store (``OUT/runs``), so an interrupted run
resumes from the store and the searches of all settings train side by side (``--workers``).

A series may set ``step_rule = "layerwise"``: joint then trains with each layer at
``1/lambda_max`` of its own NTK block (weak, one layer, is unchanged and shared with the global
series), and the ratio of weak's to joint's ``m*`` is measured under that rule too.

**Statistics** (:mod:`aedyn.stats`). Each seed's threshold lies in the bracket between its largest
failing and least passing width tried. The *quorum width* (the width at which the quorum's share
of seeds pass) is estimated by maximum likelihood on these brackets, ``log T ~ N(mu, sigma^2)``,
with a profile-likelihood interval; the grid's ``m*`` and its bracket stand beside it. The growth
``log T = a log n + b + sigma z`` gives the exponent ``a`` (widened when the settings scatter about
the line more than the seeds explain), the ratio of weak's and joint's quorum widths at each ``n``
its own profile interval, and the difference of their exponents too. Joint "needs less width"
only where the ratio's interval lies above 1.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from aedyn._check import check_choice
from aedyn._names import PROFILES
from aedyn.experiments import require, small_problems, style
from aedyn.findings import (
    Finding,
    advantage,
    count_like,
    interval,
    meeting_range,
    nonneg,
    num,
    seeds_phrase,
    sig,
    statement,
)
from aedyn.stats import Estimate, Growth, QuorumWidth, crossing, exponent_difference, growth, quorum_ratio
from aedyn.sweep import Runner
from aedyn.threshold import (
    CRITERIA,
    KERNEL_CHECKS,
    Threshold,
    WidthSearch,
    check_criteria,
    least_widths,
)

# ---- the analysis: estimates, growth laws, ratios -------------------------------------------------

PROVEN_BOUNDS = {"Du et al. 2019": 6.0, "Song & Yang 2019": 4.0, "Oymak & Soltanolkotabi 2020": 2.0}
"""Exponents ``a`` of the proven width requirements ``m = Omega(n^a)`` (supervised two-layer ReLU
networks), against which the measured growth of ``m*`` is compared."""

BOUNDED = ("weak", "joint")
"""The regimes whose growth is judged against :data:`PROVEN_BOUNDS`."""

PARAMETER_LINES = {"weak": 1.0, "joint": 0.5, "decoder": 1.0}
"""``m / n`` at which a regime's trained parameters equal the ``n d`` equations: weak trains
``m d`` encoder weights (``m = n``), joint ``2 m d`` (``m = n / 2``), decoder ``m d`` (``m = n``)."""


@dataclass
class Analysis:
    """Everything E2 concludes from its thresholds, computed once (:func:`analyse`):

    - ``series``: each merged series with its thresholds (:func:`_series`);
    - ``quorum``: per ``(regime, data, n, d, criterion)``, the estimated quorum width;
    - ``growth``: per ``(series index, regime, data, criterion)``, the fitted growth law (``None``
      with fewer than two settings that found ``m*``... or none fitted);
    - ``ratio``: per ``(series index, data, n, d, criterion)``, weak's quorum width over joint's;
    - ``difference``: per ``(series index, data, criterion)``, joint's exponent minus weak's;
    - ``upper``, ``upper_difference``: the same two over the series' upper half (:func:`upper_half`:
      is the small-``n`` end pre-asymptotic?);
    - ``meeting``: per ``(series index, data, criterion)``, where weak's and joint's growth laws over
      the upper half would meet beyond the largest ``n`` (:func:`aedyn.stats.crossing`; only where
      the data say they approach), an extrapolation."""

    series: list[tuple[dict[str, Any], list[Threshold]]]
    quorum: dict[tuple[Any, ...], QuorumWidth]
    growth: dict[tuple[Any, ...], Growth | None]
    ratio: dict[tuple[Any, ...], Estimate]
    difference: dict[tuple[Any, ...], Estimate | None]
    upper: dict[tuple[Any, ...], Growth | None]
    upper_difference: dict[tuple[Any, ...], Estimate | None]
    meeting: dict[tuple[Any, ...], Estimate | None]


_CACHE: dict[str, Analysis] = {}


def analyse(results: dict[str, Any]) -> Analysis:
    """The :class:`Analysis` of ``results`` (cached by their content: every verb of the report reads it)."""
    key = hashlib.sha256(json.dumps(results, sort_keys=True, default=str).encode()).hexdigest()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _analyse(results)
    return _CACHE[key]


def _rule(series: dict[str, Any]) -> str:
    """A series' step rule (``global`` unless it says ``layerwise``)."""
    return series.get("step_rule", "global")


def _key(setting: dict[str, Any], criterion: str) -> tuple[Any, ...]:
    """The key of a search's quorum width: regime, data, ``n``, ``d``, criterion and step rule."""
    return (setting["regime"], setting["data"], setting["n"], setting["d"], criterion,
            setting.get("step_rule", "global"))


def _found(th: Threshold, criterion: str) -> bool:
    return criterion in th.m_star and any(any(t.passed[criterion]) for t in th.trials)


def upper_half(values: Sequence[float]) -> list[float]:
    """The upper half of a series' settings: those at or above the geometric middle of their range,
    ``sqrt(min * max)`` (``n`` = 64..256 of 16..256): where a growth law is least pre-asymptotic."""
    if not values:
        return []
    middle = math.sqrt(min(values) * max(values))
    return sorted(v for v in values if v >= middle * (1 - 1e-12))


def _analyse(results: dict[str, Any]) -> Analysis:
    series = _series(results)
    quorum: dict[tuple[Any, ...], QuorumWidth] = {}
    for th in {id(th): th for _, ths in series for th in ths}.values():
        s = th.setting
        for c in th.m_star:
            if _found(th, c):
                quorum[_key(s, c)] = th.quorum_width(c)
    grow: dict[tuple[Any, ...], Growth | None] = {}
    upper: dict[tuple[Any, ...], Growth | None] = {}
    ratio: dict[tuple[Any, ...], Estimate] = {}
    diff: dict[tuple[Any, ...], Estimate | None] = {}
    upper_diff: dict[tuple[Any, ...], Estimate | None] = {}
    meeting: dict[tuple[Any, ...], Estimate | None] = {}

    def law(mine: Sequence[Threshold], axis: str, c: str) -> Growth | None:
        return growth([th.setting[axis] for th in mine], [th.brackets(c) for th in mine], mine[0].quorum) \
            if len({th.setting[axis] for th in mine}) >= 2 else None

    def top_half(mine: Sequence[Threshold], axis: str) -> list[Threshold]:
        keep = set(upper_half([th.setting[axis] for th in mine]))
        return [th for th in mine if th.setting[axis] in keep]

    for k, (sr, ths) in enumerate(series):
        axis = sr["vary"]
        for regime in sr["regimes"]:
            for data in {th.setting["data"] for th in ths}:
                for c in CRITERIA:
                    mine = sorted((th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                                   and _found(th, c)), key=lambda th: th.setting[axis])
                    grow[(k, regime, data, c)] = law(mine, axis, c)
                    upper[(k, regime, data, c)] = law(top_half(mine, axis), axis, c)
        for data in {th.setting["data"] for th in ths}:
            for c in CRITERIA:
                by = {(th.setting["regime"], th.setting["n"], th.setting["d"]): th for th in ths
                      if th.setting["data"] == data and _found(th, c)}
                for (regime, n, d), th in sorted(by.items()):
                    if regime == "weak" and ("joint", n, d) in by:
                        ratio[(k, data, n, d, c)] = quorum_ratio(th.brackets(c), by[("joint", n, d)].brackets(c),
                                                                 th.quorum)
                weak = [th for (r, _, _), th in sorted(by.items()) if r == "weak"]
                joint = [th for (r, _, _), th in sorted(by.items()) if r == "joint"]
                if len(weak) >= 2 and len(joint) >= 2:
                    diff[(k, data, c)] = _difference(joint, weak, axis, c)
                    uw, uj = top_half(weak, axis), top_half(joint, axis)
                    upper_diff[(k, data, c)] = _difference(uj, uw, axis, c) if len(uw) >= 2 and len(uj) >= 2 \
                        else None
                    both = sorted({th.setting[axis] for th in uw} & {th.setting[axis] for th in uj})
                    if axis == "n" and both and len(uw) >= 2 and len(uj) >= 2:
                        top = both[-1]
                        tw = next(th for th in uw if th.setting[axis] == top)
                        tj = next(th for th in uj if th.setting[axis] == top)
                        meeting[(k, data, c)] = crossing(
                            top, tw.brackets(c), tj.brackets(c), [th.setting[axis] for th in uw],
                            [th.brackets(c) for th in uw], [th.setting[axis] for th in uj],
                            [th.brackets(c) for th in uj], tw.quorum)
    return Analysis(series, quorum, grow, ratio, diff, upper, upper_diff, meeting)


def _difference(joint: Sequence[Threshold], weak: Sequence[Threshold], axis: str, c: str) -> Estimate | None:
    """Joint's growth exponent minus weak's (:func:`aedyn.stats.exponent_difference`)."""
    return exponent_difference([th.setting[axis] for th in joint], [th.brackets(c) for th in joint],
                               [th.setting[axis] for th in weak], [th.brackets(c) for th in weak])


# ---- the experiment's protocol (what `aedyn reproduce` calls) --------------------------------------

NAME = "E2"
TITLE = "How much over-parameterisation"
CLAIM = ("Gradient descent on a weakly or jointly trained over-parameterised autoencoder converges linearly to "
         "zero loss once the width is large enough, and joint training needs far less width than weak training.")


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu",
           profile: str | None = None) -> dict[str, Any]:
    """Everything the run depends on, JSON-ready. ``series``: each a data set and the axis it
    varies, ``n`` at fixed ``d`` or ``d`` at fixed ``n``, optionally with its own ``criteria``,
    ``regimes`` (weak and joint everywhere; the decoder-only baseline, linear least squares, on
    sphere against ``n``) and ``step_rule`` (``layerwise``: joint with each layer at its own step).

    - quick: sphere, ``n`` in 8..64 at ``d = 8`` (the decoder baseline and the layer-wise rule to
      ``n = 32``); 4 seeds.
    - full on the CPU (with E1 and E3-E6 within 30 minutes on 2 cores): sphere ``n`` in 4..128 at
      ``d = 8`` (the decoder baseline to 64), under both step rules; digits ``n`` in 2..16 (reach
      only: its strongly correlated samples need widths in the thousands from ``n = 16`` on); sphere
      ``d`` in 4..32 at ``n = 16``; 8 seeds.
    - full on CUDA: sphere ``n`` in 16..1024 at ``d = 16`` (from ``n = 512`` on reach only), digits
      ``n`` in 4..64, sphere ``d`` in 4..64 at ``n = 64``; 8 seeds, widths up to 16384.
    - ``profile="scale"``: only the sphere ``n``-series at ``d = 8``, weak and joint under both
      step rules, both criteria, 8 seeds: ``n`` in 16..256 on the CPU (one 2-core machine: within an
      hour, in calls of minutes that resume from the run store), 16..4096 on CUDA (from ``n = 2048``
      on reach only), widths up to 16384.
    """
    if profile is not None and check_choice(profile, PROFILES, "profile") == "scale":
        top = [16, 32, 64, 128, 256] + ([512, 1024] if device.startswith("cuda") else [])
        series: list[dict[str, Any]] = [{"data": "sphere", "vary": "n", "ns": top, "d": 8},
                                        {"data": "sphere", "vary": "n", "ns": top, "d": 8,
                                         "step_rule": "layerwise"}]
        if device.startswith("cuda"):
            series += [{"data": "sphere", "vary": "n", "ns": [2048, 4096], "d": 8, "criteria": ["reach"]},
                       {"data": "sphere", "vary": "n", "ns": [2048, 4096], "d": 8, "criteria": ["reach"],
                        "step_rule": "layerwise"}]
        return {"profile": profile, "regimes": ["weak", "joint"], "series": series,
                "seeds": seeds if seeds is not None else 8, "criteria": list(CRITERIA), "target": 1e-6,
                "budget_factor": 4.0, "quorum": 0.9, "max_width": 16384, "data_seed": 0, "device": device,
                "dtype": "float64"}
    if quick:  # the decoder baseline to n = 32: its budget at n = 64 (34000 steps) was 74% of E2's training
        series = [{"data": "sphere", "vary": "n", "ns": [8, 16, 32, 64], "d": 8},
                  {"data": "sphere", "vary": "n", "ns": [8, 16, 32], "d": 8, "regimes": ["weak", "joint", "decoder"]},
                  {"data": "sphere", "vary": "n", "ns": [8, 16, 32], "d": 8, "step_rule": "layerwise"}]
    elif device.startswith("cuda"):
        series = [{"data": "sphere", "vary": "n", "ns": [16, 32, 64, 128, 256], "d": 16,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "sphere", "vary": "n", "ns": [512, 1024], "d": 16, "criteria": ["reach"]},
                  {"data": "sphere", "vary": "n", "ns": [16, 32, 64, 128, 256], "d": 16, "step_rule": "layerwise"},
                  {"data": "digits", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": None},
                  {"data": "sphere", "vary": "d", "n": 64, "ds": [4, 8, 16, 32, 64]}]
    else:
        series = [{"data": "sphere", "vary": "n", "ns": [4, 8, 16, 32, 64, 128], "d": 8},
                  {"data": "sphere", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": 8,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "sphere", "vary": "n", "ns": [4, 8, 16, 32, 64, 128], "d": 8, "step_rule": "layerwise"},
                  {"data": "digits", "vary": "n", "ns": [2, 4, 8, 16], "d": None, "criteria": ["reach"]},
                  {"data": "sphere", "vary": "d", "n": 16, "ds": [4, 8, 16, 32]}]
    return {"regimes": ["weak", "joint"], "series": series,
            "seeds": seeds if seeds is not None else (4 if quick else 8), "criteria": list(CRITERIA),
            "target": 1e-6, "budget_factor": 4.0, "quorum": 0.9,
            "max_width": 16384 if device.startswith("cuda") and not quick else 4096, "data_seed": 0,
            "device": device, "dtype": "float64"}


def _settings(series: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    """The ``(data, n, d)`` of a series (``d = None``: the data's own, for digits and files)."""
    if series["vary"] == "n":
        return [(series["data"], int(n), series["d"]) for n in series["ns"]]
    return [(series["data"], int(series["n"]), int(d)) for d in series["ds"]]


def _describe(series: dict[str, Any]) -> str:
    only = f" (criteria {', '.join(series['criteria'])} only)" if "criteria" in series else ""
    if "regimes" in series:
        only += f" (regimes {', '.join(series['regimes'])})"
    if series["vary"] == "n":
        d = "its own d" if series["d"] is None else f"d = {series['d']}"
        return f"{series['data']}, n in {series['ns']} at {d}{only}"
    return f"{series['data']}, d in {series['ds']} at n = {series['n']}{only}"


def setup(config: dict[str, Any]) -> list[str]:
    """The set-up, in sentences for the report."""
    return [f"Data (seed {config['data_seed']}, shared by all widths and seeds): "
            + "; ".join(_describe(sr) for sr in config["series"])
            + f". Regimes {', '.join(config['regimes'])} in every series"
            + (", plus those a series names." if any("regimes" in sr for sr in config["series"]) else "."),
            f"Widths on the grid round(2^(j/2)) up to {config['max_width']}, searched (gallop, then bisect) from the "
            "width nearest n; initialisation seeds 0.." + f"{config['seeds'] - 1} at each width. A width tried "
            "above m* that fails moves the search above it, and the table says so.",
            "Step size: eta = 1/lambda_max(Theta(0)) of each network. Step budget: "
            f"{config['budget_factor']:g} x the steps the infinite-width kernel predicts to reach "
            f"{config['target']:g} x the initial loss: linearised GD with eta = 1/lambda_max(K), its expected loss "
            "over the random initial outputs f_0 (a Gaussian process with covariance nu^2 kappa^2 K1 per coordinate) "
            "from the residual f_0(X) - X.",
            f"A width succeeds when at least {100 * config['quorum']:.0f}% of the seeds pass. Criteria: reach (the "
            "target within the budget); lambda0, the proofs' own condition (lambda_min(Theta(t)) >= lambda_0/2 at "
            f"every one of {KERNEL_CHECKS} checks and at the stop, lambda_0 the infinite-width kernel's least "
            "eigenvalue). Every width's table also has rate (the loss below L(0) rho^(k/2), rho = (1 - eta "
            "lambda_min(Theta(0)))^2), which equals reach: linearised GD's loss falls like rho^k, already below that "
            "line; and min_t lambda_min(Theta(t)) / lambda_min(Theta(0)).",
            "Statistics: each seed's threshold lies between its largest failing and least passing width tried. The "
            "quorum width (the width at which the quorum's share of seeds pass), the growth exponent of "
            "log T = a log n + b + sigma z, the ratio of weak's to joint's quorum width and the difference of their "
            "exponents: maximum likelihood on those brackets with 95% profile-likelihood intervals (small-sample "
            "calibrated; widened when the settings scatter about the line more than the seeds explain)."]


def _searches(config: dict[str, Any]) -> dict[tuple[str, str, int, int | None, str], list[str]]:
    """Every search the config asks for, ``(regime, data, n, d, step rule) -> criteria``: a setting in
    several series is searched once, for all their criteria; weak and the decoder baseline have one
    layer, so their step rule is always global."""
    wanted: dict[tuple[str, str, int, int | None, str], list[str]] = {}
    for sr in config["series"]:
        rule = sr.get("step_rule", "global")
        for data, n, d in _settings(sr):
            for regime in sr.get("regimes", config["regimes"]):
                key = (regime, data, n, d, rule if regime == "joint" else "global")
                wanted[key] = list(dict.fromkeys(wanted.get(key, []) + list(sr.get("criteria", config["criteria"]))))
    return wanted


SEARCH_KEYS = ("seeds", "target", "budget_factor", "quorum", "max_width", "data_seed", "device", "dtype")
"""The config's settings every search shares."""


def runs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs every search of the config trains at least, its first width with every seed, as
    their settings (regime, data, ``n``, ``d``, step rule, seed): the widths after it depend on
    what the search finds."""
    return [{"regime": regime, "data": data, "n": n, "d": d, "step_rule": rule, "seed": seed}
            for regime, data, n, d, rule in _searches(config) for seed in range(int(config["seeds"]))]


def missing(config: dict[str, Any], results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config``: a search the config asks for that they
    lack, or made with other seeds or settings, or one that has not decided every criterion its
    series ask for (replayed from its trials, :meth:`aedyn.threshold.Threshold.decided`); searches
    the config does not ask for. ``ValueError`` when they are damaged (a threshold that is not one,
    an ``m*`` its trials do not decide)."""
    results = require(results, ("config", "thresholds"))
    if results["config"] != config:
        raise ValueError("the results name another config than their record")
    if not isinstance(results["thresholds"], list):
        raise ValueError("'thresholds' must be a list, one threshold per search")
    found: dict[tuple[Any, ...], Threshold] = {}
    extra = 0
    for i, record in enumerate(results["thresholds"]):
        th = Threshold.from_dict(require(record, ("setting", "m_star", "trials"), f"thresholds[{i}]"))
        st = th.setting
        key = (st["regime"], st["data"], st["n"], st["d"], st.get("step_rule", "global"))
        wanted = [w for w in _searches(config) if w[:3] == key[:3] and w[3] in (None, key[3]) and w[4] == key[4]]
        if not wanted or wanted[0] in found:
            extra += 1
            continue
        found[wanted[0]] = th
    gaps = []
    for (regime, data, n, d, rule), criteria in _searches(config).items():
        what = f"{regime} {data} n = {n}" + ("" if rule == "global" else " (layer-wise)")
        th = found.get((regime, data, n, d, rule))
        if th is None:
            gaps.append(f"lacks the search {what}")
            continue
        settings = {**{k: config[k] for k in SEARCH_KEYS if k != "quorum"}, "seeds": list(range(int(config["seeds"])))}
        if th.quorum != config["quorum"] or any(th.setting.get(k) != v for k, v in settings.items()):
            gaps.append(f"holds the search {what} with other seeds or settings than its config's")
            continue
        if not set(criteria) <= set(th.m_star):
            gaps.append(f"lacks criterion {sorted(set(criteria) - set(th.m_star))[0]} of the search {what}")
            continue
        decided = th.decided(criteria)
        if decided is None:
            gaps.append(f"holds the search {what} unfinished")
        elif any(decided[c] != th.m_star[c] for c in criteria):
            raise ValueError(f"the m* of the search {what} does not follow from its trials")
    if extra:
        gaps.append(f"holds {extra} search{'es' if extra > 1 else ''} its config does not ask for")
    return gaps


def run(config: dict[str, Any], *, progress: Callable[[str, float], None] | None = None,
        runner: Runner | None = None) -> dict[str, Any]:
    """Find ``m*`` for every search the config asks for (:func:`_searches`), all side by side
    (:func:`aedyn.threshold.least_widths`) through ``runner`` (the report's: its run store makes an
    interrupted run resume, its executor may be a Dask cluster; default a local runner without a
    store). Returns the config and the thresholds as plain data, in the order of the searches."""
    check_criteria(config["criteria"])
    wanted = _searches(config)
    with small_problems(config["device"]), Runner.given(runner) as runner:
        searches = [WidthSearch(regime, data, n, d, criteria=criteria, step_rule=rule, max_memory=runner.max_memory,
                                **{k: config[k] for k in SEARCH_KEYS})
                    for (regime, data, n, d, rule), criteria in wanted.items()]

        def report(search: WidthSearch, trial: Any) -> None:
            if progress is not None:
                s = search.setting
                finished = sum(x.pending() is None for x in searches)
                rule = "" if s["step_rule"] == "global" else " (layer-wise)"
                progress(f"{s['regime']}{rule} {s['data']} n = {s['n']}: width {trial.width}", finished / len(searches))

        thresholds = least_widths(searches, runner=runner, on_trial=report)
    return {"config": config, "thresholds": [th.to_dict() for th in thresholds]}


def _series(results: dict[str, Any]) -> list[tuple[dict[str, Any], list[Threshold]]]:
    """Each series of the run's config with its thresholds; series that vary the same axis on the
    same data at the same fixed value (e.g. sphere ``n`` in 16..256 with every criterion and in
    512..1024 with one) are merged into one."""
    ths = [Threshold.from_dict(t) for t in results["thresholds"]]
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for sr in results["config"]["series"]:
        key = (sr["data"], sr["vary"], sr["d"] if sr["vary"] == "n" else sr["n"], sr.get("step_rule", "global"))
        axis = "ns" if sr["vary"] == "n" else "ds"
        regimes = list(sr.get("regimes", results["config"]["regimes"]))
        if key in merged:
            merged[key][axis] = sorted(set(merged[key][axis]) | set(sr[axis]))
            merged[key]["regimes"] = list(dict.fromkeys(merged[key]["regimes"] + regimes))
        else:
            merged[key] = {**sr, axis: list(sr[axis]), "regimes": regimes}
    out = []
    for sr in merged.values():
        def member(th: Threshold, sr: dict[str, Any] = sr) -> bool:
            st = th.setting
            if st["data"] != sr["data"] or st["regime"] not in sr["regimes"]:
                return False
            if st["regime"] == "joint" and st.get("step_rule", "global") != sr.get("step_rule", "global"):
                return False
            if sr["vary"] == "n":
                return st["n"] in sr["ns"] and (sr["d"] is None or st["d"] == sr["d"])
            return st["n"] == sr["n"] and st["d"] in sr["ds"]

        out.append((sr, [th for th in ths if member(th)]))
    return out


def _q(e: QuorumWidth | None) -> str:
    """A quorum width with its interval, in width units: ``137 [119, 488]``."""
    if e is None:
        return "-"
    high = "inf" if e.high is None or math.isinf(e.high) else f"{e.high:.0f}"
    return f"{e.value:.0f} [{e.low:.0f}, {high}]"


TABLE_COLUMNS = ("regime", "data", "n", "d", "criterion", "m_star", "bracket_low", "quorum_width", "quorum_low",
                 "quorum_high", "sigma", "seeds", "budget", "failed_above", "checked_above", "m_over_n",
                 "lambda_min0_over_inf", "predicted_rate")


def tabulate(results: dict[str, Any]) -> Any:
    """The tidy table, one row per setting and criterion: the grid's ``m_star`` and its bracket
    (``bracket_low``, the largest failing width tried below it), the estimated quorum width with its
    95% interval, the fitted spread ``sigma`` of log thresholds, what the check of the search's
    assumption found, and at ``m*`` the median ``lambda_min(Theta(0)) / lambda_0`` and predicted
    per-step loss contraction. ``m_star`` is NaN where no width succeeded."""
    import pandas as pd

    a = analyse(results)
    rows = []
    for th in {id(th): th for _, ths in a.series for th in ths}.values():
        s = th.setting
        for c, m in th.m_star.items():
            q = a.quorum.get(_key(s, c))
            chk = th.checks.get(c, {})
            rows.append({"regime": s["regime"], "data": s["data"], "n": s["n"], "d": s["d"], "criterion": c,
                         "m_star": math.nan if m is None else m, "bracket_low": th.bracket(c)[0],
                         "quorum_width": math.nan if q is None else q.value,
                         "quorum_low": math.nan if q is None else q.low,
                         "quorum_high": math.nan if q is None else q.high,
                         "sigma": math.nan if q is None else q.sigma, "seeds": len(s["seeds"]), "budget": th.budget,
                         "failed_above": ",".join(str(w) for w in chk.get("failed_above", [])),
                         "checked_above": ",".join(str(w) for w in chk.get("checked_above", [])),
                         "m_over_n": math.nan if m is None else m / s["n"],
                         "lambda_min0_over_inf": th.kernel_ratio(c), "predicted_rate": th.predicted_rate(c)})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


WIDTH_COLUMNS = ("regime", "data", "n", "d", "width", "seeds", "reach", "lambda0", "rate", "converged", "max_steps",
                 "median_steps", "kernel_ratio_median", "lambda_min0_over_inf_median")


def tables(results: dict[str, Any]) -> dict[str, Any]:
    """Beside the main table, ``widths``: one row per setting and width tried, with the share of
    seeds passing each criterion, the share whose loss stayed below the rate line (``rate``), the
    statuses, and the medians of ``min_t lambda_min(Theta(t)) / lambda_min(Theta(0))`` and of
    ``lambda_min(Theta(0)) / lambda_0``."""
    import pandas as pd

    rows = []
    for t in results["thresholds"]:
        th = Threshold.from_dict(t)
        s = th.setting
        lam = s.get("lambda_min_inf") or math.nan
        for tr in th.trials:
            rows.append({"regime": s["regime"], "data": s["data"], "n": s["n"], "d": s["d"], "width": tr.width,
                         "seeds": len(tr.seeds), **{c: tr.fraction(c) if c in tr.passed else math.nan
                                                    for c in CRITERIA},
                         "rate": float(np.mean(tr.rate_held)) if tr.rate_held else math.nan,
                         "converged": int(sum(st == "converged" for st in tr.status)),
                         "max_steps": int(sum(st == "max_steps" for st in tr.status)),
                         "median_steps": float(np.median(tr.steps)),
                         "kernel_ratio_median": nonneg(float(np.nanmedian(tr.kernel_ratio)))
                         if tr.kernel_ratio and np.isfinite(tr.kernel_ratio).any() else math.nan,
                         "lambda_min0_over_inf_median": nonneg(float(np.nanmedian(tr.lambda_min0)) / lam)
                         if lam and np.isfinite(tr.lambda_min0).any() else math.nan})
    return {"widths": pd.DataFrame(rows, columns=list(WIDTH_COLUMNS))}


def key_table(results: dict[str, Any]) -> Any:
    """The section's table: per n-series setting, criterion and joint's step rule, each regime's ``m*``
    on the grid with the estimated quorum width and its 95% interval, and weak's over joint's with
    its interval."""
    import pandas as pd

    a = analyse(results)
    rows = []
    for k, (sr, ths) in enumerate(a.series):
        if sr["vary"] != "n":
            continue
        regimes = [r for r in style.REGIME_COLOURS if r in sr["regimes"]]
        for (data, n, d) in sorted({(th.setting["data"], th.setting["n"], th.setting["d"]) for th in ths}):
            for c in CRITERIA:
                here = {th.setting["regime"]: th for th in ths
                        if (th.setting["data"], th.setting["n"], th.setting["d"]) == (data, n, d) and c in th.m_star}
                if not here:
                    continue
                row: dict[str, Any] = {"data": data, "n": n, "d": d, "criterion": c,
                                       "joint's steps": "one" if _rule(sr) == "global" else "layer-wise"}
                for r in regimes:
                    th = here.get(r)
                    m = None if th is None else th.m_star[c]
                    row[f"{r} m* (estimate [95% CI])"] = "-" if th is None else (
                        f"{'none' if m is None else m} ({_q(a.quorum.get(_key(th.setting, c)))})")
                ratio = a.ratio.get((k, data, n, d, c))
                row["weak / joint [95% CI]"] = "-" if ratio is None else (
                    f"{sig(ratio.value, 2)} {interval(ratio, fmt='sig')}")
                failed = sorted({w for th in here.values() for w in th.checks.get(c, {}).get("failed_above", [])})
                row["search check"] = "held" if not failed else "failed at " + ", ".join(str(w) for w in failed)
                rows.append(row)
    return pd.DataFrame(rows)


def _ns(values: Sequence[int]) -> str:
    return f"n = {min(values)}..{max(values)}" if len(values) > 2 else "n = " + ", ".join(str(v) for v in values)


def findings(results: dict[str, Any]) -> list[Finding]:
    """At most five findings on the first series against ``n`` under ``reach`` (and on its layer-wise
    twin, where the config has one):

    1. the headline: weak's over joint's quorum width at the largest ``n``, whether the advantage
       persists, shrinks or vanishes (the trend is joint's exponent minus weak's over the upper half
       of ``n``, the whole range's beside it) and, only where the data say the growth laws
       approach, where they would meet, named an extrapolation (:func:`aedyn.findings.advantage`);
       and whether the verdict holds under both step rules;
    2. the same under layer-wise steps;
    3. each regime's growth exponent over the whole range and over its upper half, against the
       proven bounds, and ``m*`` against the parameter count at the largest ``n``;
    4. ``lambda0`` against ``reach``: the proofs' condition holds only at larger widths;
    5. the search's assumption (success lasts) and why ``rate`` is no criterion."""
    a = analyse(results)
    first = next(((k, sr, ths) for k, (sr, ths) in enumerate(a.series) if sr["vary"] == "n" and _rule(sr) == "global"),
                 None)
    if first is None:
        return []
    k, sr, ths = first
    data = sr["data"]
    twin = next(((j, t, tt) for j, (t, tt) in enumerate(a.series) if t["vary"] == "n" and _rule(t) == "layerwise"
                 and t["data"] == data and t.get("d") == sr.get("d")), None)
    ns = sorted({th.setting["n"] for th in ths if th.setting["data"] == data})
    runs = sum(len(t.seeds) for th in ths for t in th.trials)
    out: list[Finding] = []
    head = _advantage(a, k, data, "reach", f"{data}, criterion reach, one step size", runs)
    if head is not None:
        if twin is not None:
            other = _advantage(a, twin[0], data, "reach", f"{data}, criterion reach, layer-wise steps",
                               sum(len(t.seeds) for th in twin[2] for t in th.trials))
            if other is not None:
                same = (head.verdict == "supported") == (other.verdict == "supported")
                clause = (" The verdict holds under both step rules" if same and head.verdict == "supported" else
                          " Joint needs less width under one step size but not demonstrably under layer-wise steps"
                          if head.verdict == "supported" else
                          " Under layer-wise steps joint does need less width" if other.verdict == "supported" else
                          " Layer-wise steps do not change that")
                clause += f" (layer-wise: {other.key.removeprefix('weak m* / joint m* = ')})."
                head = replace(head, sentence=head.sentence + clause,
                               key=f"{head.key}; layer-wise steps {other.key.removeprefix('weak m* / joint m* = ')}")
                out.append(head.as_headline("width_ratio_vs_n"))
                out.append(other)
            else:
                out.append(head.as_headline("width_ratio_vs_n"))
        else:
            out.append(head.as_headline("width_ratio_vs_n"))
    out.append(_growth_finding(a, k, sr, data, ns, runs))
    out.append(_lambda0_finding(ths, data, runs))
    out.append(_check_finding(results, ths, runs))
    return out[:5]


def _advantage(a: Analysis, k: int, data: str, c: str, subject: str, runs: int) -> Finding | None:
    """:func:`aedyn.findings.advantage` of series ``k``: the ratio at its largest ``n``, the trend over
    its upper half (the whole range when the upper half has too few points), the meeting point."""
    have = sorted((n, d) for (kk, dd, n, d, cc) in a.ratio if (kk, dd, cc) == (k, data, c))
    if not have:
        return None
    (n_top, d_top), (n_low, d_low) = have[-1], have[0]
    half = upper_half([n for n, _ in have])
    whole, upper = a.difference.get((k, data, c)), a.upper_difference.get((k, data, c))
    split = len(half) < len(have) and upper is not None  # the trend at large n: the upper half's, where there is one
    return advantage(NAME, subject, a.ratio[(k, data, n_top, d_top, c)], upper if split else whole, n_top=n_top,
                     over=f"over n = {half[0]}..{half[-1]}" if split else "", beside=whole if split else None,
                     ratio_low_n=(n_low, a.ratio[(k, data, n_low, d_low, c)]),
                     meeting=a.meeting.get((k, data, c)), runs=runs, figure="width_ratio_vs_n")


def _law_text(g: Growth | None, what: str) -> str:
    if g is None:
        return f"{what}: too few n with an m* to fit"
    text = f"{what} n^{num(g.value)} {interval(g)}"
    if g.lack_of_fit_p < 0.05:
        text += (f" (no single power law: the points scatter about the line more than the seeds explain, "
                 f"p = {g.lack_of_fit_p:.2g}; the interval is widened for it)")
    return text


def _growth_finding(a: Analysis, k: int, sr: dict[str, Any], data: str, ns: Sequence[int], runs: int) -> Finding:
    """Each regime's growth exponent under ``reach`` over the whole range and over its upper half
    (:func:`upper_half`), with intervals, against the proven bounds (the smallest proven exponent is
    2: supported when every upper end of weak's and joint's lies below it; the decoder baseline is
    shown, not judged: the bounds are about training the encoder), and ``m*`` at the largest ``n`` against the
    parameter count (:data:`PARAMETER_LINES`)."""
    parts, uppers, seeds = [], [], []
    for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
        g, u = a.growth.get((k, regime, data, "reach")), a.upper.get((k, regime, data, "reach"))
        text = _law_text(g, regime)
        if u is not None and g is not None and len(u.xs) < len(g.xs):
            text += f", over n = {min(u.xs):g}..{max(u.xs):g} " + _law_text(u, "").strip()
        parts.append(text)
        if regime not in BOUNDED:
            continue
        for law in (g, u):
            if law is not None:
                seeds.append(law.units)
                uppers.append(law.high if law.high is not None else math.inf)
        if g is None:
            uppers.append(math.inf)
    smallest = min(PROVEN_BOUNDS.values())
    top = max(uppers) if uppers else math.inf
    if math.isfinite(top) and top < smallest:
        verdict = "supported"
        tail = (f"every interval of weak's and joint's lies below the smallest proven exponent, n^{smallest:g} (Oymak "
                "& Soltanolkotabi 2020)")
    else:
        verdict = "inconclusive"
        tail = f"not every interval of weak's and joint's lies below the smallest proven exponent, n^{smallest:g}"
    counts = []
    n_top = max(ns) if ns else None
    for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
        th = next((th for th in a.series[k][1] if th.setting["regime"] == regime and th.setting["data"] == data
                   and th.setting["n"] == n_top and th.m_star.get("reach") is not None), None)
        per = PARAMETER_LINES.get(regime)
        if th is not None and per:
            counts.append(f"{regime} {sig(th.m_star['reach'] / (per * n_top), 2)}x m = {'n' if per == 1 else 'n/2'}")
    sentence = f"{data}, {_ns(ns)}, criterion reach: m* grows like " + "; ".join(parts) + f": {tail}."
    if counts:
        sentence += (f" At n = {n_top}, m* is " + ", ".join(counts) + " (the width at which the trained parameters "
                     "equal the n d equations).")
    return statement("width", NAME, f"{data}, {_ns(ns)}", "growth exponent of m* in n", sentence, verdict,
                     key="; ".join(parts), seeds=min(seeds) if seeds else 0, runs=runs, rule="growth/proven_bounds",
                     unit="exponent")


def _lambda0_finding(ths: Sequence[Threshold], data: str, runs: int) -> Finding:
    """``lambda0`` against ``reach``, setting by setting on the grid: the proofs' condition is
    conservative when its ``m*`` is never below reach's."""
    pairs = [(th.setting["regime"], th.setting["n"], th.m_star.get("reach"), th.m_star.get("lambda0"))
             for th in ths if th.setting["data"] == data and "lambda0" in th.m_star and "reach" in th.m_star]
    known = [(r, n, a, b) for r, n, a, b in pairs if a is not None and b is not None]
    if not known:
        return statement("width", NAME, data, "lambda0 against reach", f"{data}: no setting found m* under both "
                         "reach and lambda0.", "inconclusive", runs=runs, rule="lambda0/conservative")
    above = [(r, n, a, b) for r, n, a, b in known if b >= a]
    ratios = [b / a for _, _, a, b in known]
    text = (f"{data}: the proofs' own condition (lambda_min(Theta(t)) >= lambda_0/2 throughout) holds from a width at "
            f"least reach's in {len(above)} of {len(known)} settings; its m* is {min(ratios):.2g}-{max(ratios):.2g}x "
            "reach's on the grid")
    below = [f"{r} at n = {n}" for r, n, a, b in known if b < a]
    text += (f", below it for {', '.join(below)}." if below else ": gradient descent reaches the target at widths "
             "where the proofs' condition may not yet hold.")
    verdict = "supported" if not below else "partly supported"
    return statement("width", NAME, data, "lambda0 m* over reach m*", text, verdict,
                     key=f"{min(ratios):.2g}-{max(ratios):.2g}x", runs=runs, rule="lambda0/conservative")


def _check_finding(results: dict[str, Any], ths: Sequence[Threshold], runs: int) -> Finding:
    """The search's assumption (success lasts at larger widths), checked on every width tried; and
    ``rate`` against ``reach`` at every width."""
    failed = [(th.setting["regime"], th.setting["n"], c, chk["failed_above"]) for th in ths
              for c, chk in th.checks.items() if chk.get("failed_above")]
    widths = [tr for t in results["thresholds"] for tr in Threshold.from_dict(t).trials]
    differ = sum(1 for tr in widths if tr.rate_held and "reach" in tr.passed
                 and tuple(tr.rate_held) != tuple(tr.passed["reach"]))
    if failed:
        text = ("The search assumes a width above m* keeps passing; that failed for " + "; ".join(
            f"{r} n = {n} ({c}: m = {', '.join(str(w) for w in ws)} failed above the first passing width)"
            for r, n, c, ws in failed) + ", so m* was moved above those widths.")
        verdict = "partly supported"
    else:
        text = "The search's assumption held: no width tried above m* failed the quorum."
        verdict = "supported"
    text += (f" The theorem's rate conclusion (the loss below L(0) (1 - eta lambda_min)^k) agreed with reach at "
             f"{len(widths) - differ} of {len(widths)} widths: linearised GD's loss falls like (1 - eta "
             "lambda_min)^(2k), already below that line, so rate is no criterion of its own.")
    return statement("width", NAME, "every setting", "the search's assumption", text, verdict,
                     key=f"{len(failed)} settings moved", runs=runs, rule="search/monotone")


def details(results: dict[str, Any]) -> list[str]:
    """Every setting in sentences: per series, regime and criterion the quorum widths with their
    intervals and the growth law; the ratio at every ``n``; the growth against ``d``; widths at
    ``m*`` against the parameter count and ``lambda_min(Theta(0))`` against ``lambda_0``."""
    a = analyse(results)
    out = []
    for k, (sr, ths) in enumerate(a.series):
        axis = sr["vary"]
        for c in CRITERIA:
            for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
                for data in sorted({th.setting["data"] for th in ths}):
                    mine = sorted((th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                                   and c in th.m_star), key=lambda th: th.setting[axis])
                    if not mine:
                        continue
                    parts = []
                    for th in mine:
                        s = th.setting
                        q = a.quorum.get(_key(s, c))
                        lo, m = th.bracket(c)
                        parts.append(f"{axis} = {s[axis]}: m* {'none' if m is None else m} (bracket {lo}-"
                                     f"{'' if m is None else m}; estimate {_q(q)}"
                                     + ("" if q is None else f", sigma {q.sigma:.2g}") + ")")
                    g = a.growth.get((k, regime, data, c))
                    law = "" if g is None else (f"; growth {axis}^{num(g.value)} {interval(g)}"
                                                f" (lack of fit p = {g.lack_of_fit_p:.2g})")
                    u = a.upper.get((k, regime, data, c))
                    half = upper_half([th.setting[axis] for th in mine])
                    if u is not None and len(half) < len(mine):
                        law += f"; over {axis} = {half[0]}..{half[-1]} {axis}^{num(u.value)} {interval(u)}"
                    ratio = PARAMETER_LINES.get(regime)
                    over = [th.m_star[c] / th.setting["n"] / ratio for th in mine
                            if th.m_star[c] is not None and ratio]
                    count_text = "" if not over or axis != "n" else (
                        f"; m* is {min(over):.1f}-{max(over):.1f}x the parameter count "
                        f"(m = {'n' if ratio == 1 else 'n/2'})")
                    out.append(f"{data}, {regime}, criterion {c}, {seeds_phrase(len(mine[0].setting['seeds']))}: "
                               + "; ".join(parts) + law + count_text + ".")
        if axis == "n":
            for c in CRITERIA:
                for data in sorted({th.setting["data"] for th in ths}):
                    rs = sorted(((n, e) for (kk, dd, n, _, cc), e in a.ratio.items() if (kk, dd, cc) == (k, data, c)),
                                key=lambda ne: ne[0])
                    if rs:
                        rule = "" if _rule(sr) == "global" else " (joint with layer-wise steps)"
                        out.append(f"{data}, criterion {c}{rule}: weak's quorum width over joint's: " + "; ".join(
                            f"n = {n}: {sig(e.value, 2)}x {interval(e, fmt='sig')}" for n, e in rs) + ".")
                        meet = a.meeting.get((k, data, c))
                        if meet is not None:
                            out.append(f"{data}, criterion {c}{rule}: extrapolated beyond the data, weak's and joint's "
                                       "growth laws over the upper half of n would meet at n = "
                                       f"{count_like(meet.value)} ({meeting_range(meet)}; Bonferroni from the "
                                       "ratio's and the exponent difference's intervals).")
    for th in {id(th): th for _, ths in a.series for th in ths}.values():
        for c in th.m_star:
            r = th.kernel_ratio(c)
            if r is not None and r < 0.25:
                out.append(f"{th.setting['regime']}, {th.setting['data']}, n = {th.setting['n']}, d = "
                           f"{th.setting['d']}, criterion {c}: at m* the median lambda_min(Theta(0)) is only "
                           f"{sig(r, 2)} of lambda_0: those networks start near a singular kernel.")
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: ``m_star`` per setting and criterion (with the quorum width and its
    interval), ``exponent_n`` and ``exponent_d`` per regime, criterion and data (``exponent_n_upper``
    over the upper half of ``n``), ``ratio`` per setting and step rule, ``difference`` (and
    ``difference_upper``) per series and criterion, and ``meeting``, where the growth laws would
    meet, only where the data say they approach (an extrapolation)."""
    a = analyse(results)
    table = tabulate(results)
    out: dict[str, Any] = {
        "m_star": [{"regime": r.regime, "criterion": r.criterion, "data": r.data, "n": int(r.n), "d": int(r.d),
                    "m_star": None if r.m_star != r.m_star else int(r.m_star),
                    "quorum_width": None if r.quorum_width != r.quorum_width else float(r.quorum_width),
                    "quorum_low": None if r.quorum_low != r.quorum_low else float(r.quorum_low),
                    "quorum_high": None if not math.isfinite(r.quorum_high) else float(r.quorum_high)}
                   for r in table.itertuples()],
        "exponent_n": [], "exponent_d": [], "ratio": [], "difference": [], "exponent_n_upper": [],
        "difference_upper": [], "meeting": []}
    for (k, regime, data, c), g in a.growth.items():
        sr = a.series[k][0]
        entry = {"regime": regime, "criterion": c, "data": data, **({"n": sr["n"]} if sr["vary"] == "d" else {}),
                 **(g.to_dict() if g is not None else {"value": None})}
        out[f"exponent_{sr['vary']}"].append(entry)
    for (k, data, n, d, c), e in a.ratio.items():
        out["ratio"].append({"data": data, "n": n, "d": d, "criterion": c, "step_rule": _rule(a.series[k][0]),
                             **e.to_dict()})
    for (k, data, c), e in a.difference.items():
        axis = a.series[k][0]["vary"]
        rule = _rule(a.series[k][0])
        out["difference"].append({"data": data, "criterion": c, "axis": axis, "step_rule": rule,
                                  "what": f"joint's exponent in {axis} minus weak's",
                                  **(e.to_dict() if e is not None else {"value": None})})
        upper = a.upper_difference.get((k, data, c))
        out["difference_upper"].append({"data": data, "criterion": c, "axis": axis, "step_rule": rule,
                                        "what": f"joint's exponent in {axis} minus weak's, upper half",
                                        **(upper.to_dict() if upper is not None else {"value": None})})
        meet = a.meeting.get((k, data, c))
        if meet is not None:
            out["meeting"].append({"data": data, "criterion": c, "step_rule": rule, "extrapolation": True,
                                   "what": "n at which weak's and joint's growth laws over the upper half would meet",
                                   **meet.to_dict()})
    for (k, regime, data, c), g in a.upper.items():
        sr = a.series[k][0]
        if sr["vary"] == "n":
            out["exponent_n_upper"].append({"regime": regime, "criterion": c, "data": data, "step_rule": _rule(sr),
                                            **(g.to_dict() if g is not None else {"value": None})})
    return out


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "m_star_vs_n": "The least width against the number of samples n, log-log, one panel per criterion: each regime's "
                   "estimated quorum width (filled, with its 95% interval; a bar reaching the top is unbounded above) "
                   "and the grid's m* (open), the growth law fitted over all n (solid) and over the upper half of n "
                   "(dashed, where it differs), and the parameter-count lines m = n and m = n/2.",
    "width_ratio_vs_n": "How much more width weak training needs than joint training: the ratio of their quorum widths "
                        "against n with 95% intervals, one panel per criterion; above the line at 1, joint needs less. "
                        "An arrow marks an interval that runs beyond the axis.",
    "success_vs_width": "The share of seeds that pass (reach) against the width, one panel per regime, one line per n; "
                        "the dotted line is the quorum.",
    "m_star_vs_d": "The least width against the input dimension d at fixed n, log-log, one panel per criterion "
                   "(estimates with 95% intervals, grid m* open, fitted growth law).",
}


@style.styled
def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): against ``n`` over every n-series (sphere and digits
    together), the ratio against ``n``, the success shares, and against ``d`` over the d-series."""
    a = analyse(results)
    out: dict[str, Any] = {}
    for axis in ("n", "d"):
        groups = [(k, sr, ths) for k, (sr, ths) in enumerate(a.series) if sr["vary"] == axis and ths]
        if not groups:
            continue
        out[f"m_star_vs_{axis}"] = _m_star_figure(a, groups, axis)
        if axis == "n":
            ratio = _ratio_figure(a, groups)
            if ratio is not None:
                out["width_ratio_vs_n"] = ratio
            out["success_vs_width"] = _success_figure([th for _, _, ths in groups for th in ths])
    return out


def _m_star_figure(a: Analysis, groups: list[tuple[int, dict[str, Any], list[Threshold]]], axis: str) -> Any:
    from matplotlib.lines import Line2D

    criteria = [c for c in CRITERIA if any(c in th.m_star for _, _, ths in groups for th in ths)]
    fig, axes = style.figure(1, len(criteria), width=4.6 * len(criteria), height=4.2, sharey=True)
    values = sorted({th.setting[axis] for _, _, ths in groups for th in ths})
    top = max(th.setting["max_width"] for _, _, ths in groups for th in ths)
    handles: dict[str, Any] = {}
    for ax, c in zip(axes[0], criteria, strict=True):
        for k, sr, ths in groups:
            layerwise = _rule(sr) == "layerwise"  # its weak is the global series' own: drawn there
            for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"] and (r == "joint" or not layerwise)]:
                for data in sorted({th.setting["data"] for th in ths}):
                    mine = sorted((th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                                   and c in th.m_star), key=lambda th: th.setting[axis])
                    colour, marker = style.REGIME_COLOURS[regime], style.DATA_MARKERS.get(data, "^")
                    if layerwise:
                        colour, marker = style.LAYERWISE_COLOUR, "D"
                    xs, est, lo, hi, grid_x, grid_m = [], [], [], [], [], []
                    for th in mine:
                        s = th.setting
                        q = a.quorum.get(_key(s, c))
                        if q is not None:
                            xs.append(s[axis])
                            est.append(q.value)
                            lo.append(q.value - max(q.low, 0.5))
                            hi.append(min(q.high, top) - q.value if math.isfinite(q.high) else top - q.value)
                        if th.m_star[c] is not None:
                            grid_x.append(s[axis])
                            grid_m.append(th.m_star[c])
                    if xs:  # regimes side by side at each n (a few percent apart on the log axis)
                        shift = 1.0 + 0.035 * (list(style.REGIME_COLOURS).index(regime) - 1 + 0.5 * layerwise)
                        ax.errorbar([x * shift for x in xs], est, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                                    fmt=marker, color=colour, ms=6, capsize=3, lw=1.2)
                    if grid_x:
                        ax.plot(grid_x, grid_m, marker, color=colour, mfc="none", ms=9, mew=1.0)
                    g = a.growth.get((k, regime, data, c))
                    if g is not None:
                        x = np.geomspace(min(g.xs), max(g.xs), 40)  # over the settings it was fitted to
                        ax.plot(x, [g.quorum_at(v) for v in x], "-", color=colour, lw=1.2)
                    u = a.upper.get((k, regime, data, c))
                    if u is not None and g is not None and len(u.xs) < len(g.xs):  # the upper half's own law
                        x = np.geomspace(min(u.xs), max(u.xs), 20)
                        ax.plot(x, [u.quorum_at(v) for v in x], ls=(0, (4, 2)), color=colour, lw=1.6, alpha=0.8)
                    name = regime if len({th.setting["data"] for _, _, t in groups for th in t}) == 1 else \
                        f"{regime}, {data}"
                    if layerwise:
                        name += " (layer-wise steps)"
                    if xs or grid_x:
                        label = name + ("" if g is None else f": {axis}^{num(g.value)} {interval(g)}")
                        handles.setdefault(f"{c}|{name}", Line2D([], [], color=colour, marker=marker, lw=1.2,
                                                                 label=label))
        if axis == "n":
            x = np.asarray(values, dtype=float)
            ax.plot(x, x, ":", color="0.45", lw=1)
            ax.plot(x, x / 2, "--", color="0.45", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="samples n" if axis == "n" else "input dimension d",
               title=f"criterion {c}")
        style.plain_ticks(ax.xaxis, values)
        legend = [h for key, h in handles.items() if key.startswith(f"{c}|")]
        ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8.5)
    axes[0][0].set_ylabel("least width m*")
    common = [Line2D([], [], color="0.3", marker="o", ls="", label="estimate, 95% interval"),
              Line2D([], [], color="0.3", marker="o", mfc="none", ls="", ms=9, label="grid m*")]
    if any(u is not None for u in a.upper.values()):
        common.append(Line2D([], [], color="0.3", ls=(0, (4, 2)), lw=1.6, label="fit over the upper half of n"))
    if axis == "n":
        common += [Line2D([], [], color="0.45", ls=":", label="m = n"),
                   Line2D([], [], color="0.45", ls="--", label="m = n/2")]
    what = "samples n" if axis == "n" else "input dimension d"
    return style.finish(fig, f"E2: the least width that trains, against the {what}", handles=common)


RATIO_SHOWN = (0.1, 30.0)
"""The range of the width-ratio figure's axis; an interval beyond it ends in an arrow."""


def _ratio_figure(a: Analysis, groups: list[tuple[int, dict[str, Any], list[Threshold]]]) -> Any | None:
    from matplotlib.lines import Line2D

    mine = {key: e for key, e in a.ratio.items() if key[0] in {k for k, _, _ in groups}}
    criteria = [c for c in CRITERIA if any(key[4] == c for key in mine)]
    if not criteria:
        return None
    fig, axes = style.figure(1, len(criteria), width=4.2 * len(criteria), height=3.6, sharey=True)
    values = sorted({key[2] for key in mine})
    lines = sorted({(key[1], _rule(a.series[key[0]][0])) for key in mine})
    for ax, c in zip(axes[0], criteria, strict=True):
        for data, rule in lines:
            pts = sorted(((n, e) for (k, dd, n, _, cc), e in mine.items()
                          if (dd, cc, _rule(a.series[k][0])) == (data, c, rule)), key=lambda ne: ne[0])
            if not pts:
                continue
            colour = "0.15" if rule == "global" else style.LAYERWISE_COLOUR
            marker = style.DATA_MARKERS.get(data, "^") if rule == "global" else "D"
            x = [n for n, _ in pts]
            y = [e.value for _, e in pts]
            lo = [e.value - max(e.low, RATIO_SHOWN[0]) for _, e in pts]  # intervals cut at the shown range
            hi = [min(e.high, RATIO_SHOWN[1]) - e.value for _, e in pts]
            shift = 1.0 if rule == "global" else 1.04
            ax.errorbar([v * shift for v in x], y, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt=marker + "-",
                        color=colour, ms=6, capsize=3, lw=1.0)
            for n, e in pts:  # an interval that runs beyond the shown range: an arrow at the edge
                if e.low < RATIO_SHOWN[0]:
                    ax.plot([n * shift], [RATIO_SHOWN[0]], "v", color=colour, ms=6)
                if e.high > RATIO_SHOWN[1]:
                    ax.plot([n * shift], [RATIO_SHOWN[1]], "^", color=colour, ms=6)
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="samples n", title=f"criterion {c}", ylim=(RATIO_SHOWN[0] / 1.3,
                                                                                            RATIO_SHOWN[1] * 1.3))
        style.plain_ticks(ax.xaxis, values)
    axes[0][0].set_ylabel("weak m* / joint m*")
    handles = [Line2D([], [], color="0.15" if rule == "global" else style.LAYERWISE_COLOUR,
                      marker=style.DATA_MARKERS.get(d, "^") if rule == "global" else "D",
                      label=d if rule == "global" else f"{d}, joint with layer-wise steps") for d, rule in lines]
    handles.append(Line2D([], [], color="0.5", ls=":", label="equal widths"))
    return style.finish(fig, "E2: how much more width weak training needs than joint", handles=handles)


def _success_figure(ths: Sequence[Threshold]) -> Any:
    from matplotlib.lines import Line2D

    regimes = [r for r in style.REGIME_COLOURS if any(th.setting["regime"] == r for th in ths)]
    datasets = sorted({th.setting["data"] for th in ths})
    fig, axes = style.figure(len(datasets), len(regimes), width=3.1 * len(regimes), height=3.0, sharey=True)
    ns = sorted({th.setting["n"] for th in ths})
    colours = style.ramp("n", ns)
    for row, data in enumerate(datasets):
        for ax, regime in zip(axes[row], regimes, strict=True):
            mine = [th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                    and "reach" in th.m_star]
            if not mine:  # a regime this data set was not run in: no panel
                ax.remove()
                continue
            for th in sorted(mine, key=lambda th: th.setting["n"]):
                w = [t.width for t in th.trials]
                f = [t.fraction("reach") for t in th.trials]
                ax.plot(w, f, style.DATA_MARKERS.get(data, "^") + "-", ms=4, color=colours[th.setting["n"]])
            ax.axhline(ths[0].quorum, color="0.5", ls=":", lw=1)
            ax.set(xscale="log", xlabel="width m", ylim=(-0.05, 1.05),
                   title=regime if len(datasets) == 1 else f"{regime}, {data}")
        axes[row][0].set_ylabel("share of seeds reaching the target")
    handles = [Line2D([], [], color=colours[n], marker="o", ms=4, label=f"n = {n}") for n in ns]
    handles.append(Line2D([], [], color="0.5", ls=":", label=f"quorum {100 * ths[0].quorum:.0f}%"))
    return style.finish(fig, "E2: the share of seeds that train, against the width", handles=handles,
                        ncol=min(len(handles), 6))
