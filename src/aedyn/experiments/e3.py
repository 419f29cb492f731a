"""E3, laziness: how far do the weights, the activation patterns and the kernel move, against the width?

For every regime (``weak``, ``joint``), data set (sphere and digits, rows normalised), width ``m``
and initialisation seed, one network (NTK scaling ``alpha = 1/sqrt(m)``, ``f_0`` not zeroed) trains by
full-batch gradient descent with ``eta = 1/lambda_max(Theta(0))`` of its own (``lr="auto"``) until
``L <= target * L(0)`` or the step budget is spent. At the stopping step ``T`` it measures
(:data:`aedyn.gd.METRICS`):

- ``weight_change_W = ||W_T - W_0||_F / ||W_0||_F`` (and, jointly trained, ``weight_change_V``);
- ``max_neuron_change_W = max_r ||w_r(T) - w_r(0)||``, absolute; the table also has it relative to
  the typical neuron norm, ``max_neuron_change_W_rel = max_neuron_change_W / (kappa sqrt(d))``
  (``E ||w_r(0)||^2 = kappa^2 d``): a constant factor, so the fitted slope is the same;
- ``pattern_flips``: the share of the ``n m`` activation patterns ``1{w_r . x_i > 0}`` that differ
  from initialisation;
- ``ntk_drift = ||Theta(T) - Theta(0)||_F / ||Theta(0)||_F``: gradient descent evaluates ``Theta``
  every ``ceil(budget / KERNEL_CHECKS)`` steps (for the certificate's kernel invariant) and at each
  network's stopping step, from its final parameters (``aedyn.gd._NTKRecorder.finish``); exact
  (dense ``nd x nd`` kernels) at the sizes chosen here (``n d <= 1024``).

Every run is certified (:mod:`aedyn.certificate`, movement recorded every :data:`RECORD_EVERY`
steps): :func:`certificate_table` counts, per data set, regime and width, the runs inside the NTK
regime and those failing each invariant.

The **slope** of a quantity ``q`` against ``m`` (per regime and data) is the least-squares slope of
``mean_seeds log q`` on ``log m`` over the widths (each width weighs the same); its 95% interval
is the percentile interval of the slopes refitted on paired bootstrap resamples of the seeds (the
same resampled seeds at every width: a seed's networks at different widths share their first
random draws; :func:`aedyn.experiments.fit_power_law`). Only runs that reached the target enter a fit
(movement "at the end of training" is movement to the target); a width enters the fit of ``q``
only when ``q > 0`` in each of its converged seeds (``pattern_flips`` can be exactly 0 at large
``m``, whose log does not exist): the widths left out for a zero are named in the summary and
the verdict, never dropped silently. The proofs bound each quantity by ``O(m^(-1/2))``
(:data:`REFERENCE`); the verdict compares each interval with it. (The largest single-neuron movement is a maximum over
``m`` neurons, which grows with ``m`` even when each neuron moves like ``m^(-1/2)``, about like
``sqrt(2 log m)`` for Gaussian-like tails: its slope may be shallower than ``-1/2`` without
contradicting the bound per neuron.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aedyn.certificate import CERTIFICATE_COLUMNS, columns_of
from aedyn.experiments import (
    DATA_MARKERS,
    RECORD_EVERY,
    REGIME_COLOURS,
    checkpointed,
    fit_power_law,
    small_problems,
    values_by_seed,
)
from aedyn.gd import TrainResult
from aedyn.job import Notes, TrainJob, run_batch

NAME = "E3"
TITLE = "Laziness"
CLAIM = ("In the over-parameterised NTK regime, gradient descent barely moves the network away from its "
         "initialisation: the relative weight movement, the share of ReLU activation patterns that flip and "
         "the drift of the neural tangent kernel are each O(m^(-1/2)) in the width m.")

REGIMES: tuple[str, ...] = ("weak", "joint")
QUANTITIES: tuple[str, ...] = ("weight_change_W", "weight_change_V", "max_neuron_change_W", "pattern_flips",
                               "ntk_drift")
"""The quantities whose slope against ``m`` is fitted (``weight_change_V`` in ``joint`` only)."""
LABELS = {"weight_change_W": "||W_T - W_0||_F / ||W_0||_F", "weight_change_V": "||V_T - V_0||_F / ||V_0||_F",
          "max_neuron_change_W": "max_r ||w_r(T) - w_r(0)||", "pattern_flips": "share of patterns flipped",
          "ntk_drift": "||Theta(T) - Theta(0)||_F / ||Theta(0)||_F"}
KERNEL_CHECKS = 10
"""``Theta(t)`` is evaluated every ``ceil(budget / KERNEL_CHECKS)`` steps (and at the stopping step)
for the certificate's kernel invariant."""
REFERENCE = -0.5
"""The slope the proofs' bounds give every quantity: ``O(m^(-1/2))``."""
EARLIER = {"ntk_drift": -0.75}
"""Slopes first measured (SPEC.md, "What the experiments test", item 3) where they differ from
:data:`REFERENCE`: the kernel drift was seen to fall about like ``m^(-3/4)``."""
CLOSE = 0.05
"""A slope within this of the reference whose interval excludes it is called steeper or shallower
"by" how much, so that a narrow interval is not read as a large difference."""
RESAMPLES = 1000
LEVEL = 0.95


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. Problem sizes keep ``n d <= 1024``, so that the
    kernel drift is exact (dense) on the CPU.

    - quick: sphere ``n = 8, d = 4`` with widths ``2^7 .. 2^12``, digits ``n = 4`` (``d = 64``) with
      widths ``2^8 .. 2^12``; 3 seeds, target ``1e-4`` (the movement hardly changes below it: the
      last steps of a linearly converging run add a geometric tail), budgets 1000 (sphere) and 600
      (digits: wide networks need under 300 steps; weak training at ``m = 256`` runs out of steps).
      About 6 s of CPU time (12-15 s wall on 2 CPU cores shared with four other jobs).
    - full: sphere ``n = 16, d = 8`` with widths ``2^6 .. 2^14`` and 5 seeds; digits ``n = 8``
      (``n d = 512``) with widths ``2^6 .. 2^13`` (not ``2^14``) and 3 seeds: at ``m = 2^14`` the
      digits networks (300+ steps to ``1e-6``, each a ``8 x 64 x 2^14`` product, and two dense
      ``512 x 512`` kernels from ``512 x m`` factors) took about 15 s more per regime on 2 shared
      CPU cores, which the time budget does not allow. Target ``1e-6``; budgets 1000 (sphere; wide
      networks need under 100 steps) and 2500 (digits: networks from ``m = 512`` on need under
      600; weak training at ``m <= 256`` and joint at ``m <= 128`` do not reach the target within
      it, and are recorded as such). About 42 s of CPU time (80 s wall on the shared machine).

    ``seeds`` overrides the number of seeds (of every data set)."""
    if quick:
        data = [{"name": "sphere", "n": 8, "d": 4, "widths": [2 ** k for k in range(7, 13)], "seeds": 3,
                 "max_steps": 1000},
                {"name": "digits", "n": 4, "d": 64, "widths": [2 ** k for k in range(8, 13)], "seeds": 3,
                 "max_steps": 600}]
    else:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [2 ** k for k in range(6, 15)], "seeds": 5,
                 "max_steps": 1000},
                {"name": "digits", "n": 8, "d": 64, "widths": [2 ** k for k in range(6, 14)], "seeds": 3,
                 "max_steps": 2500}]
    for entry in data:
        entry["seeds"] = list(range(entry["seeds"] if seeds is None else int(seeds)))
    return {"regimes": list(REGIMES), "data": data, "data_seed": 0, "target": 1e-4 if quick else 1e-6,
            "kappa": 1.0, "nu": 1.0, "dtype": "float64", "device": device, "reference_slope": REFERENCE,
            "resamples": RESAMPLES, "level": LEVEL, "kernel_checks": KERNEL_CHECKS, "record_every": RECORD_EVERY}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    data = "; ".join(
        f"{d['name']} (n = {d['n']}, d = {d['d']}, widths m = {_list(d['widths'])}, "
        f"{len(d['seeds'])} seed{'s' if len(d['seeds']) != 1 else ''}, at most {d['max_steps']} steps)"
        for d in config["data"])
    return [
        f"Data: {data}; rows normalised to unit norm; data seed {config['data_seed']}.",
        f"Regimes {', '.join(config['regimes'])}; NTK scaling alpha = 1/sqrt(m), kappa = {config['kappa']:g}, "
        f"nu = {config['nu']:g}, {config['dtype']}; step size eta = 1/lambda_max(Theta(0)) of each network; a run "
        f"stops at L <= {config['target']:g} L(0) or when its step budget is spent.",
        "Measured at the stopping step T: ||W_T - W_0||_F / ||W_0||_F (joint also V), the largest single-neuron "
        "movement max_r ||w_r(T) - w_r(0)|| (absolute; the table also divides it by the typical neuron norm "
        "kappa sqrt(d), which leaves the slope unchanged), the share of activation patterns 1{w_r . x_i > 0} "
        "flipped, and the kernel drift ||Theta(T) - Theta(0)||_F / ||Theta(0)||_F from the dense (exact) "
        "NTK at step 0 and at T.",
        f"Slopes: least-squares line through the seed-mean of log q against log m (each width weighs the same); "
        f"{100 * config['level']:.0f}% percentile interval from {config['resamples']} paired bootstrap resamples of "
        "the seeds (the same resampled seeds at every width: a seed's networks at different widths share their "
        "first random draws). Only runs that "
        "reached the target are fitted; a width where some converged seed has q = 0 (no pattern flipped) "
        f"is left out of that quantity's fit and named. Compared with the proofs' slope {config['reference_slope']:g}.",
    ]


def _list(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


# ---- one run, one record --------------------------------------------------------------------------

def _final(result: TrainResult, name: str) -> float | None:
    """The last recorded value of a metric, ``None`` when absent or not finite (JSON has no NaN)."""
    value = result.final(name)
    return None if value is None or not math.isfinite(value) else float(value)


def record_of(result: TrainResult, *, kappa: float = 1.0) -> dict[str, Any]:
    """One run's record (plain JSON-ready numbers) from its :class:`~aedyn.gd.TrainResult`, every
    quantity at the stopping step ``T = result.steps``: ``status``, ``steps``, ``converged``, the final
    relative loss, ``eta``; ``weight_change_W``, ``weight_change_V`` (``None`` unless the decoder
    trains), ``max_neuron_change_W`` and ``_V`` (absolute), ``max_neuron_change_W_rel``
    (``/ (kappa sqrt(d))``), ``pattern_flips``; ``ntk_drift`` with its method, and ``lambda_min`` /
    ``lambda_max`` of ``Theta(0)`` and ``Theta(T)``. The NTK values are kept only when the last NTK
    evaluation was at ``T`` (``ntk_checked_at`` says where it was); otherwise they are ``None``.
    Then the run's certificate (:meth:`aedyn.certificate.Certificate.columns`, ``cert_*``; ``None``
    values when the run has none)."""
    d = int(result.config.get("d", 0))
    ntk_steps = result.metrics.get("ntk_step")
    at = None if ntk_steps is None or not len(ntk_steps) else int(ntk_steps[-1])
    fresh = at == int(result.steps)
    lam_min = result.metrics.get("ntk_lambda_min")
    lam_max = result.metrics.get("ntk_lambda_max")

    def first(values: Any) -> float | None:
        return None if values is None or not len(values) or not math.isfinite(values[0]) else float(values[0])

    neuron = _final(result, "max_neuron_change_W")
    return {
        "status": result.status, "steps": int(result.steps), "converged": result.status == "converged",
        "final_relative_loss": float(result.relative_loss[-1]), "eta": float(result.lr),
        "weight_change_W": _final(result, "weight_change_W"), "weight_change_V": _final(result, "weight_change_V"),
        "max_neuron_change_W": neuron,
        "max_neuron_change_W_rel": None if neuron is None or d == 0 else neuron / (kappa * math.sqrt(d)),
        "max_neuron_change_V": _final(result, "max_neuron_change_V"),
        "pattern_flips": _final(result, "pattern_flips"),
        "ntk_drift": _final(result, "ntk_drift") if fresh else None,
        "ntk_drift_method": result.config.get("ntk_drift_method"), "ntk_checked_at": at,
        "lambda_min0": first(lam_min), "lambda_max0": first(lam_max),
        "lambda_minT": _final(result, "ntk_lambda_min") if fresh else None,
        "lambda_maxT": _final(result, "ntk_lambda_max") if fresh else None,
        **columns_of(result),
    }


# ---- running --------------------------------------------------------------------------------------

def _job(config: dict, data: dict, regime: str, width: int, seed: int) -> TrainJob:
    steps = int(data["max_steps"])
    checks = int(config.get("kernel_checks", KERNEL_CHECKS))
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width, lr="auto",
                    steps=steps, target=config["target"], record_every=int(config.get("record_every", RECORD_EVERY)),
                    ntk_every=max(1, math.ceil(steps / checks)), certify=True, dtype=config["dtype"],
                    device=config["device"])


def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict:
    """Train every (data, regime, width) batch (all its seeds at once) and record each run
    (:func:`record_of`). Returns ``{"config", "notes", "runs"}``. ``checkpoint`` (an
    :class:`aedyn.files.Checkpoint`) keeps each batch's records as it finishes, so that an
    interrupted run, restarted, retrains only the batch in flight."""
    with small_problems(config["device"]):
        return _run(config, progress, checkpoint)


def _run(config: dict, progress: Callable[[str, float], None] | None, checkpoint: Any | None) -> dict:
    report = progress or (lambda message, fraction: None)
    notes = Notes()
    runs: list[dict] = []
    total = sum(len(d["widths"]) for d in config["data"]) * len(config["regimes"])
    done = 0
    for data in config["data"]:
        for regime in config["regimes"]:
            for width in data["widths"]:
                report(f"E3: {data['name']} {regime} m = {width}", done / total)
                key = f"{data['name']}|{data['n']}|{data['d']}|{regime}|{width}"
                runs += checkpointed(checkpoint, key, notes, lambda data=data, regime=regime, width=width:
                                     _batch(config, data, regime, int(width), notes))
                done += 1
    report("E3: done", 1.0)
    return {"config": config, "notes": sorted(set(notes.messages)), "runs": runs}


def _batch(config: dict, data: dict, regime: str, width: int, notes: Notes) -> list[dict]:
    """Train the seeds of one (data, regime, width) as one batch; one record per run."""
    jobs = [_job(config, data, regime, width, int(seed)) for seed in data["seeds"]]
    with notes.collect():
        results = run_batch(jobs)
    for result in results:  # the data's warnings (rows normalised, ...) travel with each result
        notes.messages += [m for m in result.config.get("notes", []) if m not in notes.messages]
    batch = []
    for seed, result in zip(data["seeds"], results, strict=True):
        record = {"regime": regime, "data": data["name"], "n": int(result.config["n"]),
                  "d": int(result.config["d"]), "width": width, "seed": int(seed)}
        record.update(record_of(result, kappa=float(config["kappa"])))
        batch.append(record)
    return batch


# ---- slopes ---------------------------------------------------------------------------------------

def _applies(regime: str, quantity: str) -> bool:
    return not (quantity.endswith("_V") and regime == "weak")


def slopes(results: dict) -> list[dict[str, Any]]:
    """One entry per regime x quantity x data: ``regime, quantity, data, value, ci_low, ci_high,
    n_widths, widths, zero_widths, excluded`` (:func:`aedyn.experiments.fit_power_law` over the runs
    that reached the target, lined up by seed; ``excluded``: runs that did not reach the target,
    left out; ``value`` ``None`` when fewer than two widths could be fitted)."""
    cfg = results.get("config", {})
    resamples, level = int(cfg.get("resamples", RESAMPLES)), float(cfg.get("level", LEVEL))
    runs = results["runs"]
    out = []
    for regime in _present(runs, "regime", REGIMES):
        for quantity in QUANTITIES:
            if not _applies(regime, quantity):
                continue
            for data in _present(runs, "data", tuple(DATA_MARKERS)):
                mine = [r for r in runs if r["regime"] == regime and r["data"] == data]
                widths, values = values_by_seed([r for r in mine if r["converged"]], quantity)
                fit = fit_power_law(widths, values, resamples=resamples, level=level)
                entry = {"regime": regime, "quantity": quantity, "data": data}
                entry.update(fit.to_dict() if fit is not None else
                             {"value": None, "ci_low": None, "ci_high": None, "n_widths": 0, "widths": [],
                              "zero_widths": []})
                entry["excluded"] = sum(not r["converged"] for r in mine)
                out.append(entry)
    return out


def _present(runs: Sequence[dict], key: str, order: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(r[key] for r in runs))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


# ---- the table, the verdict -----------------------------------------------------------------------

COLUMNS = ("regime", "data", "n", "d", "width", "seed", "steps", "status", "final_relative_loss", "eta",
           "weight_change_W", "weight_change_V", "max_neuron_change_W", "max_neuron_change_W_rel",
           "max_neuron_change_V", "pattern_flips", "ntk_drift", "lambda_min0", "lambda_minT", *CERTIFICATE_COLUMNS)


def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`); quantities that do not apply
    (``V`` in weak training) or were not measured are NaN."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    flags = [c for c in COLUMNS if c == "cert_inside" or c.endswith("_holds")]
    numeric = [c for c in COLUMNS if c not in ("regime", "data", "status", *flags)]
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


def tables(results: dict) -> dict[str, Any]:
    """Tables beside the main one: ``certificate`` (:func:`certificate_table`)."""
    return {"certificate": certificate_table(results)}


def _certificate_sentences(results: dict) -> tuple[list[str], list[dict[str, Any]]]:
    """Per data set and regime: how many runs the certificate calls inside the NTK regime, the least
    width from which every seed is, and which invariant fails below it."""
    cert = certificate_table(results)
    out, summary = [], []
    for (data, regime), g in cert.groupby(["data", "regime"], sort=False):
        g = g.sort_values("width")
        every = g["inside"] == g["runs"]
        from_width = None
        for i in range(len(g)):
            if bool(every.iloc[i:].all()):
                from_width = int(g["width"].iloc[i])
                break
        failing = {name: int(g["runs"].sum() - g[f"{name}_holds"].sum()) for name in ("kernel", "rate", "safe_radius")}
        worst = max(failing, key=lambda k: failing[k])
        text = (f"Certificate, {data} {regime}: inside the NTK regime in {int(g['inside'].sum())} of "
                f"{int(g['runs'].sum())} runs; ")
        if from_width is not None:
            text += f"every seed from m = {from_width} on"
        else:
            text += "not every seed at any width tried"
        if failing[worst]:
            text += (f"; the invariant that fails most is {worst.replace('_', ' ')} ({failing[worst]} runs; kernel "
                     f"{failing['kernel']}, rate {failing['rate']}, safe radius {failing['safe_radius']})")
        out.append(text + ".")
        summary.append({"data": data, "regime": regime, "inside": int(g["inside"].sum()), "runs": int(g["runs"].sum()),
                        "every_seed_from": from_width, "fails": failing})
    return out, summary


def _num(x: float) -> str:
    """Two decimals, without a minus sign on a rounded zero."""
    return f"{round(x, 2) + 0.0:.2f}"


def _ci(e: dict) -> str:
    return "no interval (one seed)" if e["ci_low"] is None else f"95% CI {_num(e['ci_low'])} to {_num(e['ci_high'])}"


def compare(e: dict, reference: float = REFERENCE) -> str:
    """``"contains"`` when the interval holds ``reference``, ``"steeper"`` when it lies below,
    ``"shallower"`` above; without an interval the point estimate decides. ``"none"``: no slope."""
    if e.get("value") is None:
        return "none"
    low = e["value"] if e.get("ci_low") is None else e["ci_low"]
    high = e["value"] if e.get("ci_high") is None else e["ci_high"]
    if low <= reference <= high:
        return "contains"
    return "steeper" if high < reference else "shallower"


_WORDS = {"contains": "consistent with", "steeper": "steeper than", "shallower": "shallower than"}


def _describe(e: dict, reference: float) -> str:
    if e["value"] is None:
        return f"{e['regime']}: too few widths to fit"
    how = compare(e, reference)
    text = (f"{e['regime']}: m^{_num(e['value'])} ({_ci(e)}, {e['n_widths']} widths), "
            f"{_WORDS[how]} m^{reference:g}")
    if how != "contains" and abs(e["value"] - reference) <= CLOSE:
        text += f" (by {abs(e['value'] - reference):.2f}: the interval is narrow, the slope close to it)"
    earlier = EARLIER.get(e["quantity"])
    if earlier is not None:
        how = compare(e, earlier)
        text += f" and {_WORDS[how]} the earlier m^{earlier:g}"
    if e["zero_widths"]:
        text += (f"; no pattern flipped in some converged seed at m = {_list(e['zero_widths'])}, "
                 "so those widths are left out of the fit")
    return text


def _weak_vs_joint(entries: dict[str, dict], table: Any, data: str, quantity: str) -> str | None:
    """Weak against joint: slopes (do the intervals overlap?) and the level at the largest width
    where both have converged runs."""
    w, j = entries.get("weak"), entries.get("joint")
    if w is None or j is None or w["value"] is None or j["value"] is None:
        return None
    if None in (w["ci_low"], j["ci_low"]):
        slope = f"weak's slope is {_num(w['value'])}, joint's {_num(j['value'])} (no intervals)"
    elif w["ci_high"] < j["ci_low"]:
        slope = "weak's slope is steeper than joint's (the intervals do not overlap)"
    elif j["ci_high"] < w["ci_low"]:
        slope = "joint's slope is steeper than weak's (the intervals do not overlap)"
    else:
        slope = "the weak and joint slopes are indistinguishable (overlapping intervals)"
    ok = table[(table["data"] == data) & (table["status"] == "converged")]
    medians = ok.groupby(["width", "regime"])[quantity].median().unstack()
    if {"weak", "joint"} <= set(medians.columns):
        both = medians[["weak", "joint"]].dropna()
        both = both[(both["weak"] > 0) & (both["joint"] > 0)]
        if len(both):
            top = int(both.index.max())
            ratio = float(both.loc[top, "weak"] / both.loc[top, "joint"])
            level = (f"weak's median is {ratio:.2f}x joint's" if ratio >= 1 else
                     f"joint's median is {1 / ratio:.2f}x weak's")
            slope += f"; at m = {top} {level}"
    return slope


def verdict(results: dict) -> tuple[list[str], dict]:
    """Sentences computed from the numbers, and the summary ``{"slopes": [...], "not_converged":
    [...]}`` (:func:`slopes`; the runs that missed the target by regime, data and width)."""
    table = tabulate(results)
    reference = float(results.get("config", {}).get("reference_slope", REFERENCE))
    entries = slopes(results)
    sentences: list[str] = []
    missed = table[table["status"] != "converged"]
    if len(missed):
        groups = missed.groupby(["data", "regime", "width"], sort=True)
        sentences.append(
            f"{len(missed)} of {len(table)} runs did not reach the target within the step budget and are left out of "
            "every fit: " + "; ".join(f"{d} {r} m = {int(w)} ({len(g)} of {_seeds(table, d, r, w)} seeds, "
                                      f"{_statuses(g)})" for (d, r, w), g in groups) + ".")
    else:
        sentences.append(f"All {len(table)} runs reached the target.")
    for data in _present(results["runs"], "data", tuple(DATA_MARKERS)):
        for quantity in QUANTITIES:
            mine = {e["regime"]: e for e in entries if e["data"] == data and e["quantity"] == quantity}
            if not mine:
                continue
            text = f"{data}, {quantity} ({LABELS[quantity]}) against m: " + "; ".join(
                _describe(e, reference) for e in mine.values())
            versus = _weak_vs_joint(mine, table, data, quantity)
            sentences.append(text + ("" if versus is None else f". {versus[0].upper()}{versus[1:]}") + ".")
    sentences += _tally(entries, reference)
    certified, cert_summary = _certificate_sentences(results)
    sentences += certified
    keys = ("regime", "quantity", "data", "value", "ci_low", "ci_high", "n_widths", "widths", "zero_widths",
            "excluded")
    summary = {"certificate": cert_summary, "slopes": [{k: e[k] for k in keys} for e in entries],
               "reference_slope": reference,
               "not_converged": [{"data": d, "regime": r, "width": int(w), "runs": len(g)}
                                 for (d, r, w), g in missed.groupby(["data", "regime", "width"], sort=True)]}
    return sentences, summary


def _seeds(table: Any, data: str, regime: str, width: int) -> int:
    return int(((table["data"] == data) & (table["regime"] == regime) & (table["width"] == width)).sum())


def _statuses(group: Any) -> str:
    counts = group["status"].value_counts()
    return ", ".join(f"{int(c)} {s}" for s, c in counts.items())


def _tally(entries: Sequence[dict], reference: float) -> list[str]:
    """Over all fitted slopes: how many intervals contain the reference, lie below, lie above."""
    fitted = [e for e in entries if e["value"] is not None]
    if not fitted:
        return ["No quantity could be fitted (fewer than two widths with converged runs)."]
    counts = {k: [e for e in fitted if compare(e, reference) == k] for k in ("contains", "steeper", "shallower")}
    out = [f"Of {len(fitted)} fitted slopes, {len(counts['contains'])} have an interval containing {reference:g}, "
           f"{len(counts['steeper'])} are steeper and {len(counts['shallower'])} shallower."]
    for kind in ("steeper", "shallower"):
        if counts[kind]:
            out.append(f"{kind.capitalize()} than m^{reference:g}: " + ", ".join(
                f"{e['data']} {e['regime']} {e['quantity']} ({_num(e['value'])})" for e in counts[kind]) + ".")
    return out


# ---- figures -------------------------------------------------------------------------------------

def figures(results: dict) -> dict[str, Any]:
    """Matplotlib figures (no I/O): ``laziness``, one log-log panel per quantity against ``m``:
    every run (small; open where it missed the target), the per-width median of the converged
    seeds (large, joined), the fitted line over the fitted widths, and a reference line of slope
    ``-1/2``; each panel's legend gives the fitted slopes with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    runs = results["runs"]
    reference = float(results.get("config", {}).get("reference_slope", REFERENCE))
    fits = {(e["regime"], e["quantity"], e["data"]): e for e in slopes(results)}
    regimes = _present(runs, "regime", REGIMES)
    datas = _present(runs, "data", tuple(DATA_MARKERS))
    quantities = [q for q in QUANTITIES if any(_applies(r, q) for r in regimes)]
    cols = 3
    rows = math.ceil(len(quantities) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows + 0.6), squeeze=False, layout="constrained")
    for ax in axes.flat[len(quantities):]:
        ax.remove()
    widths = sorted({int(r["width"]) for r in runs})
    for ax, quantity in zip(axes.flat, quantities, strict=False):
        firsts = []
        for regime in regimes:
            if not _applies(regime, quantity):
                continue
            colour = REGIME_COLOURS.get(regime, "0.3")
            for data in datas:
                marker = DATA_MARKERS.get(data, "^")
                mine = [r for r in runs if r["regime"] == regime and r["data"] == data]
                pts = [(r["width"], r.get(quantity), r["converged"]) for r in mine
                       if r.get(quantity) is not None and r.get(quantity) > 0]
                if not pts:
                    continue
                for reached in (True, False):
                    sel = [p for p in pts if p[2] == reached]
                    if sel:
                        ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=10 if reached else 14, marker=marker,
                                   alpha=0.45 if reached else 0.9, linewidths=0.8, edgecolors=colour,
                                   facecolors=colour if reached else "none")
                med = {}
                for w in sorted({p[0] for p in pts if p[2]}):
                    v = [p[1] for p in pts if p[0] == w and p[2]]
                    med[w] = float(np.median(v))
                if med:
                    ax.plot(list(med), list(med.values()), marker=marker, ls="-", lw=0.6, ms=5, color=colour,
                            alpha=0.8)
                    firsts.append(med[min(med)])
                e = fits.get((regime, quantity, data))
                if e is not None and e["value"] is not None:
                    xs = np.asarray(e["widths"], dtype=float)
                    c = float(np.mean([math.log(med[w]) for w in e["widths"] if w in med]) -
                              e["value"] * np.mean(np.log(xs)))
                    ci = "" if e["ci_low"] is None else f" [{_num(e['ci_low'])}, {_num(e['ci_high'])}]"
                    zero = f", 0 at m={_list(e['zero_widths'])}" if e["zero_widths"] else ""
                    ax.plot(xs, np.exp(c) * xs ** e["value"], "--", lw=1.4, color=colour,
                            label=f"{regime}, {data}: {_num(e['value'])}{ci}{zero}")
        if firsts:
            x = np.asarray([widths[0], widths[-1]], dtype=float)
            y0 = float(np.exp(np.mean(np.log(firsts)))) * 1.6
            ax.plot(x, y0 * (x / x[0]) ** reference, ":", color="0.35", lw=1.2, label=f"slope {reference:g}")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 1-2-5 labels: a short axis
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # spans about a decade
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width m", fontsize=8)
        ax.set_ylabel(LABELS[quantity], fontsize=8)
        ax.set_title(quantity, fontsize=9)
        ax.tick_params(which="both", labelsize=7)
        ax.legend(fontsize=6.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1,
                  title="fitted slope [95% CI]", title_fontsize=6.5)
    handles = [Line2D([], [], color=REGIME_COLOURS.get(g, "0.3"), lw=2, label=g) for g in regimes]
    handles += [Line2D([], [], marker=DATA_MARKERS.get(d, "^"), ls="", color="0.3", label=d) for d in datas]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="0.3", ms=4, alpha=0.5, label="run, reached target"),
                Line2D([], [], marker="o", ls="", color="0.3", mfc="none", ms=4, label="run, missed (not fitted)"),
                Line2D([], [], marker="o", ls="-", color="0.3", ms=5, label="median over seeds"),
                Line2D([], [], ls="--", color="0.3", label="fitted line"),
                Line2D([], [], ls=":", color="0.35", label=f"slope {reference:g} (proofs' bound)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle("E3: laziness against width (log-log; quantities at the stopping step T)", fontsize=9)
    return {"laziness": fig}
