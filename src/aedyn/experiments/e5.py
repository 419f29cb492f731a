"""E5, the weight-tied degeneracy: what does a tied autoencoder trained from random initialisation
actually learn, measured on inputs it never saw, against the untied (joint) one?

For each data set (sphere and digits, rows normalised), output scaling (``ntk``: ``alpha =
1/sqrt(m)``; ``mean-field``: ``alpha = 1/m``), width and initialisation seed, a tied network
(``V = W^T``) and an untied one (``joint``: ``W`` and ``V`` both trained) start from the same seed
and train by full-batch gradient descent with ``eta = 1/lambda_max(Theta(0))``, each network its
own (``lr="auto"``), until ``L <= target L(0)`` or the step budget is spent (``status`` says which).
Then, with ``Z`` the held-out inputs (:func:`aedyn.data.heldout_inputs`: ``n_test`` fresh sphere
points of the stream of ``heldout_seed``; for digits, ``n_test`` normalised digits that are not
among the training samples, drawn with ``heldout_seed``), ``F = f(Z)`` row-wise (the measures
``heldout`` and ``weights`` of :mod:`aedyn.measures.maps`, whose docstrings hold the formulas):

- ``heldout_error = ||F - Z||_F / ||Z||_F`` (and ``train_error``, the same on the training set);
- ``c = <F, Z>_F / ||Z||_F^2``, the best single scalar with ``f(z) ≈ c z`` over all held-out inputs
  together, and ``c_std``, the spread of the per-input ``c_i = <f(z_i), z_i> / ||z_i||^2``;
- ``beyond_c = ||F - c Z||_F / ||F||_F``: what remains of the output beyond ``c z``;
- ``weight_change_W = ||W_T - W_0||_F / ||W_0||_F``, ``max_neuron_change_W = max_r ||w_r(T) - w_r(0)||``
  (:data:`aedyn.gd.METRICS`) and ``max_neuron_rel_W = max_r ||w_r(T) - w_r(0)|| / ||w_r(0)||``;
- ``rescale_distance = min_c ||W_T - c W_0||_F / ||W_T||_F`` at ``rescale_c = <W_T, W_0>_F / ||W_0||_F^2``,
  beside ``rescale_c_identity = sqrt(2 / (alpha m kappa^2))``, the rescaling of ``W_0`` that turns
  the tied network's mean at initialisation, ``alpha c^2 m kappa^2 z / 2``, into the identity;
- ``ntk_drift = ||Theta(T) - Theta(0)||_F / ||Theta(0)||_F`` (the finite-width NTK at step 0 and
  at the stop; ``ntk_every`` beyond the budget);
- ``f0_gap = ||f_0(Z) - a Z||_F / ||a Z||_F``, ``a = alpha m kappa^2 / 2`` (the tied network's
  mean at initialisation), beside its expected size: for unit inputs ``E||w s(w.z)||^2 = kappa^4
  (d + 2) / 2`` and ``E[w s(w.z)] = kappa^2 z / 2``, so ``E[f0_gap^2] = (2 d + 3) / m`` exactly for
  the tied network (``f0_gap_expected = sqrt((2d + 3) / m)``: "about sqrt(d/m)" up to the factor
  ``sqrt(2)``). For the joint network ``f_0`` has mean zero and the gap is about 1 or more.

And the tied infinite-width NTK (:func:`aedyn.kernels.tied_ntk_limit`, closed form; checked
against Monte Carlo in the tests) against the finite-width tied NTK (:func:`aedyn.ntk.ntk_dense`)
at growing ``m`` on a small problem: ``||Theta_m - Theta_inf||_F / ||Theta_inf||_F`` per seed
(``Theta_m`` averages ``m`` i.i.d. terms whose mean is the limit, so ``m^(-1/2)`` is expected).

How it runs. Every training is a :class:`~aedyn.job.TrainJob` (``certify=True``, the measures
``weights`` and ``heldout``), the seeds of one (data set, architecture, scaling, width) one batch,
trained by a :class:`aedyn.sweep.Runner` (the report's: local or a Dask cluster, every run a row
of the run store ``OUT/runs``, :func:`aedyn.sweep.result_row`, its measures computed where it
trained). A run's record is its row restricted to :data:`COLUMNS`, under the row's names
(``regime`` is the architecture, ``init_scale`` the scaling, ``lr`` the step size, ``lambda_max``
that of ``Theta(0)``, ``ntk_lambda_max`` that at the stop). An interrupted run resumes from the
store: a rerun trains only the runs it lacks. The kernel check trains nothing and is recomputed.

Statistics (:mod:`aedyn.stats`). Every slope in ``m`` (the kernel check's error, the weight
movement, the drift, ``f_0``'s gap) is :func:`aedyn.stats.fit_slope`: each seed's own
least-squares slope of ``log q`` on ``log m``, their mean and the t interval over the seeds (a
seed's networks at different widths share their first random draws, so the seeds are the
independent units). Every number at a width is the mean over seeds with its t interval. Tied
against joint is compared only through the interval of the per-seed paired difference (or of the
log of the per-seed ratio): a tied network and a joint one of the same seed start from the same
``W_0``. The words come from the rules of :mod:`aedyn.findings`.

Functions here return numbers, tables and figures and never print or write files (the runner
given to :func:`run` keeps its runs in its store).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from aedyn import stats
from aedyn.certificate import CERTIFICATE_COLUMNS, certified_counts
from aedyn.data import load_data
from aedyn.experiments import (
    RECORD_EVERY,
    missing_runs,
    require,
    require_results,
    small_problems,
    style,
    values_by_seed,
)
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
    too_few,
    unfinished,
)
from aedyn.job import TrainJob
from aedyn.kernels import tied_ntk_limit
from aedyn.model import init_params
from aedyn.ntk import ntk_dense
from aedyn.stats import Estimate, Slope
from aedyn.sweep import Runner, notes_of

NAME = "E5"
TITLE = "The weight-tied degeneracy"
CLAIM = ("Weight-tied autoencoders trained by gradient descent from random initialisation in the "
         "over-parameterised regime degenerate (Nguyen, Wong and Hegde): what the trained tied map is, "
         "on inputs it never saw, and whether its training is lazy, are measured against the untied one.")

ARCHITECTURES: tuple[str, ...] = ("tied", "joint")
SCALINGS: tuple[str, ...] = ("ntk", "mean-field")
IDENTITY_WITHIN = 0.1
"""A map counts as close to ``c`` times the identity when the 95% interval of ``beyond_c`` lies
below this, and as not close when it lies above."""
RESCALED_WITHIN = 0.2
"""``W_T`` counts as a rescaled ``W_0`` when the 95% interval of ``rescale_distance`` lies below
this, and as not one when it lies above."""
LAZY_MOVEMENT = 0.1
"""Training counts as lazy when the 95% intervals of the relative weight movement and of the NTK
drift both lie below this, and as not lazy when either lies above."""
EXPONENT = -0.5
"""The exponent in ``m`` of the tied kernel's distance to its limit and of ``f_0``'s gap (the
fluctuation of an average of ``m`` i.i.d. terms), and the lazy-training bound ``O(m^-1/2)`` the
weight movement and the drift are held against."""
SLOPE_SEEDS = 8
"""The full config runs at least this many seeds wherever a slope in ``m`` is reported."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. ``quick``: sphere (n = 16, d = 8) at m = 256,
    1024 with three seeds (budget 1500 steps) and digits (n = 8) at m = 256 with one seed (budget
    300), the kernel check at m = 2^8, 2^10, 2^12 with 4 seeds; otherwise sphere at m = 2^8..2^12
    and digits at m = 2^8..2^10, eight seeds each (:data:`SLOPE_SEEDS`: slopes in m are reported
    for both), budgets 2500 and 1000 steps (digits has d = 64, so each step costs eight times a
    sphere step, and tied digits runs converge slowly), the kernel check at m = 2^8..2^14 with 12
    seeds. ``seeds`` overrides the number of seeds of every data set."""
    if quick:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [256, 1024], "seeds": 3, "max_steps": 1500},
                {"name": "digits", "n": 8, "d": 64, "widths": [256], "seeds": 1, "max_steps": 300}]
        kernel = {"n": 4, "d": 4, "widths": [2 ** k for k in range(8, 13, 2)], "seeds": 4}
    else:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [2 ** k for k in range(8, 13)], "seeds": SLOPE_SEEDS,
                 "max_steps": 2500},
                {"name": "digits", "n": 8, "d": 64, "widths": [2 ** k for k in range(8, 11)], "seeds": SLOPE_SEEDS,
                 "max_steps": 1000}]
        kernel = {"n": 4, "d": 4, "widths": [2 ** k for k in range(8, 15)], "seeds": 12}
    for entry in data:
        entry["seeds"] = list(range(entry["seeds"] if seeds is None else int(seeds)))
    return {"architectures": list(ARCHITECTURES), "scalings": list(SCALINGS), "data": data, "data_seed": 0,
            "heldout_seed": 1, "n_test": 64, "target": 1e-5, "kappa": 1.0, "nu": 1.0, "lr": "auto",
            "dtype": "float64", "record_every": RECORD_EVERY, "device": device, "kernel_check": kernel}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    data = "; ".join(f"{d['name']} (n = {d['n']}, d = {d['d']}; m = {', '.join(str(w) for w in d['widths'])}; "
                     f"{seeds_phrase(len(d['seeds']))}; at most {d['max_steps']} steps)" for d in config["data"])
    k = config["kernel_check"]
    return [
        f"Data: {data}; rows normalised; training data seed {config['data_seed']}.",
        f"Held-out inputs: {config['n_test']} per data set, fresh sphere points from data seed "
        f"{config['heldout_seed']}, or normalised digits that are not training samples, drawn with seed "
        f"{config['heldout_seed']}.",
        f"Architectures {' and '.join(config['architectures'])} (tied: V = W^T; joint: W and V trained), from the same "
        f"seeds; output scalings {' and '.join(config['scalings'])} (alpha = 1/sqrt(m) and 1/m); kappa = "
        f"{config['kappa']:g}, nu = {config['nu']:g}; {config['dtype']}.",
        "Step size: eta = 1/lambda_max(Theta(0)) of each network (lr='auto'); each run stops at L <= "
        f"{config['target']:g} L(0) or when its step budget is spent (status says which; a run stopped by its "
        "budget is still training, and is named so wherever it counts).",
        "Measured on held-out inputs Z: ||f(Z) - Z||_F/||Z||_F; the best scalar c = <f(Z), Z>/||Z||^2 and the spread "
        "of the per-input c_i; what remains beyond c z, ||f(Z) - cZ||/||f(Z)||; and f_0 against alpha m kappa^2 z/2 "
        "(expected relative gap sqrt((2d+3)/m) for tied networks). Measured on the weights: ||W_T - W_0||/||W_0||, the "
        "largest single-neuron movement, min_c ||W_T - c W_0||/||W_T|| and that c, and the NTK's drift "
        "||Theta(T) - Theta(0)||_F/||Theta(0)||_F.",
        f"Tied infinite-width NTK check: sphere n = {k['n']}, d = {k['d']}, the closed-form limit against the "
        f"finite-width tied NTK at m = {', '.join(str(w) for w in k['widths'])} ({seeds_phrase(int(k['seeds']))} "
        "each), relative Frobenius error and its slope in m (expected -1/2).",
        "Statistics: at a width, the mean over seeds with its 95% t interval; a slope in m, the mean of the seeds' own "
        "least-squares slopes of log q on log m with the t interval over seeds (a seed's networks at different widths "
        "share their first random draws, so seeds are the independent units); tied against joint, the t interval of "
        "the per-seed paired differences (or of the logs of the per-seed ratios), the two starting from the same W_0. "
        f"A map counts as close to a multiple of the identity when the interval of ||f(z) - cz||/||f(z)|| lies below "
        f"{IDENTITY_WITHIN:g}, training as lazy when those of the weight movement and the NTK drift lie below "
        f"{LAZY_MOVEMENT:g}; fewer than 3 seeds decide nothing.",
    ]


# ---- running -------------------------------------------------------------------------------------



def _measures(config: dict) -> tuple[Any, ...]:
    """What every run measures where it trains (:mod:`aedyn.measures`): ``weights`` (the encoder's
    movement per neuron and against a rescaled ``W_0``) and ``heldout`` (the trained map on
    ``n_test`` held-out inputs drawn with ``heldout_seed``, :func:`aedyn.data.heldout_inputs`)."""
    return ("weights", {"name": "heldout", "n": int(config["n_test"]), "seed": int(config["heldout_seed"])})


def _job(config: dict, data: dict, arch: str, scaling: str, width: int, seed: int) -> TrainJob:
    """One run: ``lr="auto"`` (each network its own ``1/lambda_max(Theta(0))``), certified, the NTK
    checked at step 0 and at the stop only (``ntk_every`` beyond the budget), with :func:`_measures`."""
    steps = int(data["max_steps"])
    return TrainJob(regime=arch, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width,
                    init_scale=scaling, lr=config["lr"], steps=steps, target=config["target"],
                    record_every=int(config.get("record_every", RECORD_EVERY)), ntk_every=steps + 1, certify=True,
                    dtype=config["dtype"], device=config["device"], measures=_measures(config))


def batches(config: dict) -> list[list[TrainJob]]:
    """The jobs of the run: one batch per (data set, architecture, scaling, width), in that nesting
    order, holding its seeds (they share :func:`aedyn.job.batch_key`)."""
    return [[_job(config, data, arch, scaling, int(width), int(s)) for s in data["seeds"]]
            for data in config["data"] for arch in config["architectures"] for scaling in config["scalings"]
            for width in data["widths"]]


def runs(config: dict) -> list[dict]:
    """The identifying settings of every run of :func:`batches`, in their order: architecture
    (``regime``), output scaling, data set, width and seed."""
    return [{"regime": arch, "init_scale": scaling, "data": data["name"], "n": int(data["n"]), "width": int(width),
             "seed": int(s)}
            for data in config["data"] for arch in config["architectures"] for scaling in config["scalings"]
            for width in data["widths"] for s in data["seeds"]]


def missing(config: dict, results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config`` (:func:`aedyn.experiments.missing_runs`,
    and the kernel check's widths and seeds); ``ValueError`` when they are damaged."""
    results = require_results(results, config, ("runs", "kernel_check"))
    gaps = missing_runs(results["runs"], runs(config))
    kc, k = require(results["kernel_check"], ("widths", "seeds", "errors"), "'kernel_check'"), config["kernel_check"]
    if kc["widths"] != list(k["widths"]) or kc["seeds"] != list(range(int(k["seeds"]))):
        gaps.append("its kernel check is not at the config's widths and seeds")
    elif not (isinstance(kc["errors"], list) and len(kc["errors"]) == len(kc["widths"])
              and all(isinstance(e, list) and len(e) == len(kc["seeds"]) for e in kc["errors"])):
        raise ValueError("the kernel check's errors are not one list of seeds per width")
    return gaps


def _record(row: dict) -> dict:
    """A run's record: its row (:func:`aedyn.sweep.result_row`) restricted to :data:`COLUMNS`
    (a missing value is absent)."""
    return {c: row[c] for c in COLUMNS if row.get(c) is not None}


def kernel_check(config: dict) -> dict:
    """The tied infinite-width NTK against finite-width tied NTKs (see the module docstring):
    ``errors[j][i]``, seed ``i``'s relative Frobenius distance at ``widths[j]``, and ``slope``, their
    :func:`aedyn.stats.fit_slope` (the findings refit it from ``errors``). It trains nothing and
    takes well under a second in the full config, so a rerun computes it again."""
    k = config["kernel_check"]
    X = load_data("sphere", n=k["n"], d=k["d"], seed=config["data_seed"], dtype="float64")
    kappa = float(config["kappa"])
    T = tied_ntk_limit(X, kappa=kappa)
    seeds = list(range(int(k["seeds"])))
    errors = [[float((ntk_dense(init_params(k["d"], m, regime="tied", seed=s, kappa=kappa), X, "tied") - T).norm()
                     / T.norm()) for s in seeds] for m in k["widths"]]
    fit = stats.fit_slope(k["widths"], errors)
    return {"n": int(k["n"]), "d": int(k["d"]), "widths": [int(m) for m in k["widths"]], "seeds": seeds,
            "errors": errors, "limit_norm": float(T.norm()),
            "slope": fit.to_dict() if fit is not None else {"value": None, "ci_low": None, "ci_high": None}}


def run(config: dict, *, progress: Callable[[str, float], None] | None = None, runner: Runner | None = None) -> dict:
    """Train every batch of :func:`batches` through ``runner`` (the report's: its run store makes an
    interrupted run resume, training only the runs it lacks, and its executor may be a Dask
    cluster; default a local runner without a store), each run measured where it trains; then the
    tied kernel check. Returns ``{"config", "notes", "runs", "kernel_check"}``, ``runs`` one
    record per run (:func:`_record`) in the order of the batches. ``progress(message, fraction)``
    after each batch trained (the kernel check is the last share)."""
    report = progress or (lambda message, fraction: None)
    jobs = batches(config)
    todo = [0]

    def trained(done: int, total: int) -> None:
        todo[0] = total
        report(f"E5: {done} of {total} batches trained", done / (total + 1))

    with small_problems(config["device"]):
        with Runner.given(runner) as runner:
            rows = [row for batch in runner.run(jobs, progress=trained) for row in batch]
        report("E5: tied kernel limit against finite width", todo[0] / (todo[0] + 1))
        check = kernel_check(config)
    report("E5: done", 1.0)
    return {"config": config, "notes": notes_of(rows), "runs": [_record(row) for row in rows], "kernel_check": check}


# ---- the tables ----------------------------------------------------------------------------------

COLUMNS = ("regime", "init_scale", "data", "n", "d", "n_test", "width", "seed", "status", "steps", "lr",
           "lambda_max", "ntk_lambda_max", "alpha", "final_relative_loss", "train_error", "heldout_error", "c",
           "c_std", "c_min", "c_max", "beyond_c", "train_c", "weight_change_W", "max_neuron_change_W",
           "max_neuron_rel_W", "weight_change_V", "rescale_c", "rescale_distance", "rescale_c_identity", "ntk_drift",
           "f0_gap", "f0_gap_expected", *CERTIFICATE_COLUMNS)
TEXT = ("regime", "init_scale", "data", "status")
FLAGS = tuple(c for c in CERTIFICATE_COLUMNS if c == "cert_inside" or c.endswith("_holds"))
HEADLINE = ("heldout_error", "c", "c_std", "beyond_c", "train_error", "weight_change_W", "max_neuron_rel_W",
            "rescale_distance", "rescale_c", "rescale_c_identity", "ntk_drift", "f0_gap", "f0_gap_expected", "steps")
"""The per-group numbers of :func:`summary` (mean over seeds at the largest width, with the interval)."""
KERNEL_COLUMNS = ("n", "d", "width", "seed", "error")


def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`, the run store's names:
    :func:`aedyn.sweep.result_row` and the measures' columns); missing values are NaN."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in TEXT + FLAGS]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table[list(FLAGS)] = table[list(FLAGS)].astype("boolean")
    return table


def tables(results: dict) -> dict[str, Any]:
    """Beside the main table, ``kernel_check``: the tied NTK's relative distance to its infinite-width
    limit, one row per width and seed (columns :data:`KERNEL_COLUMNS`)."""
    import pandas as pd

    kc = results.get("kernel_check")
    rows = [] if kc is None else [
        {"n": int(kc["n"]), "d": int(kc["d"]), "width": int(m), "seed": int(s), "error": float(e)}
        for m, errors in zip(kc["widths"], kc["errors"], strict=True)
        for s, e in zip(kc["seeds"], errors, strict=True)]
    return {"kernel_check": pd.DataFrame(rows, columns=list(KERNEL_COLUMNS))}


# ---- the numbers behind the words ----------------------------------------------------------------

def _datas(table: Any) -> list[str]:
    return list(dict.fromkeys(table["data"]))


def _archs(table: Any) -> list[str]:
    present = set(table["regime"])
    return [a for a in ARCHITECTURES if a in present] + sorted(present - set(ARCHITECTURES))


def _scalings(table: Any) -> list[str]:
    present = set(table["init_scale"])
    return [s for s in SCALINGS if s in present] + sorted(present - set(SCALINGS))


def _select(table: Any, data: str, scaling: str | None = None, arch: str | None = None,
            width: int | None = None) -> Any:
    keep = table["data"] == data
    if scaling is not None:
        keep &= table["init_scale"] == scaling
    if arch is not None:
        keep &= table["regime"] == arch
    if width is not None:
        keep &= table["width"] == width
    return table[keep]


def _top(table: Any, data: str) -> int:
    """The largest width of ``data``: where the trained maps are compared."""
    return int(_select(table, data)["width"].max())


def _mean(values: Any) -> Estimate | None:
    """The mean over seeds with its t interval (:func:`aedyn.stats.t_interval`; NaN dropped)."""
    return stats.t_interval([float(v) for v in values])


def _ci(e: Estimate | None, digits: int = 3) -> str:
    """``0.741 [0.733, 0.749]``; ``-`` for nothing; ``(no interval)`` from one seed."""
    return "-" if e is None else f"{sig(e.value, digits)} {interval(e, digits, 'sig')}"


def _slope_text(s: Slope | None) -> str:
    return "-" if s is None else f"m^{num(s.value)} {interval(s)}"


def _place(e: Estimate | None, mark: float) -> str:
    """Where the 95% interval of ``e`` lies against ``mark``: ``"below"``, ``"above"``, ``"across"``
    (it holds the mark) or ``"unknown"`` (no estimate, no interval, or fewer than
    :data:`aedyn.stats.MIN_SEEDS` seeds: nothing is decided)."""
    if e is None or not e.has_interval or too_few(e.units):
        return "unknown"
    if e.high < mark:  # type: ignore[operator]
        return "below"
    if e.low > mark:  # type: ignore[operator]
        return "above"
    return "across"


def _paired(table: Any, data: str, scaling: str, width: int | None, column: str, *, log: bool) -> list[float]:
    """Per seed present in both, tied's ``column`` minus joint's (``log``: ``log(joint / tied)``)."""
    tied = _select(table, data, scaling, "tied", width).set_index("seed")[column]
    joint = _select(table, data, scaling, "joint", width).set_index("seed")[column]
    out = []
    for seed in sorted(set(tied.index) & set(joint.index)):
        t, j = float(tied[seed]), float(joint[seed])
        if not (math.isfinite(t) and math.isfinite(j)):
            continue
        if log:
            if t > 0 and j > 0:
                out.append(math.log(j / t))
        else:
            out.append(t - j)
    return out


def _ratio(logs: Sequence[float]) -> Estimate | None:
    """The geometric mean of per-seed ratios with the exponentiated t interval of their logs."""
    e = stats.t_interval(logs)
    if e is None:
        return None
    return Estimate(math.exp(e.value), None if e.low is None else math.exp(e.low),
                    None if e.high is None else math.exp(e.high), e.level,
                    "geometric mean of per-seed ratios; t interval of their logs", e.units)


def _slope(rows: Any, column: str) -> Slope | None:
    """The slope in ``m`` of ``column`` over ``rows`` (:func:`aedyn.stats.fit_slope` on the values
    lined up by seed, :func:`aedyn.experiments.values_by_seed`); ``None`` below two widths."""
    if not len(rows):
        return None
    widths, values = values_by_seed(rows.to_dict("records"), column)
    return stats.fit_slope(widths, values)


def _status_clauses(rows: Any) -> list[str]:
    """The runs of ``rows`` stopped by the step budget (:func:`aedyn.findings.unfinished`) and those
    that diverged, as clauses; none when every run reached the target."""
    n = len(rows)
    out = [unfinished(int((rows["status"] == "max_steps").sum()), n)]
    diverged = int((rows["status"] == "diverged").sum())
    if diverged:
        out.append(f"{count(diverged, n)} diverged (left out of the numbers)")
    return [c for c in out if c]


def _errors_above_one(rows_by_name: dict[str, Any]) -> str | None:
    """:func:`aedyn.findings.above_one` on the held-out errors: a network counts only when its
    interval's lower end (its one value, from one seed) is above 1."""
    lows = {}
    for name, rows in rows_by_name.items():
        e = _mean(rows["heldout_error"])
        if e is not None:
            lows[name] = e.low if e.has_interval else e.value
    return above_one(lows)


def _append(sentence: str, clauses: Sequence[str | None]) -> str:
    """``sentence`` with factual clauses (counts, numbers) after it as one more sentence."""
    kept = "; ".join(c for c in clauses if c)
    return sentence if not kept else f"{sentence} {kept[0].upper()}{kept[1:]}."


def _with(f: Finding, clauses: Sequence[str | None]) -> Finding:
    """``f`` with :func:`_append`'s clauses: the rule's sentence and verdict are kept as they are."""
    return replace(f, sentence=_append(f.sentence, clauses))


# ---- findings ------------------------------------------------------------------------------------

def _lazy_words(moved: Estimate | None, drift: Estimate | None) -> str:
    """Whether training was lazy, from the intervals of the weight movement and the NTK drift
    against :data:`LAZY_MOVEMENT`."""
    a, b = _place(moved, LAZY_MOVEMENT), _place(drift, LAZY_MOVEMENT)
    mark = f"{LAZY_MOVEMENT:.0%}"
    if "unknown" in (a, b):
        word = "too few seeds to say whether its training was lazy"
    elif a == b == "below":
        word = f"its training was lazy (movement and drift below {mark})"
    elif "above" in (a, b):
        word = f"its training was not lazy (movement or drift above {mark})"
    else:
        word = f"whether its training was lazy cannot be told (an interval holds {mark})"
    return f"{word}: ||W_T - W_0||/||W_0|| = {_ci(moved)}, NTK drift {_ci(drift)}"


def _identity_finding(table: Any, data: str, scaling: str, arch: str, *, against: str | None = None) -> Finding:
    """Rule ``tied/identity``: at the largest width, is the trained ``arch`` map a multiple of the
    identity on held-out inputs? The 95% interval of ``beyond_c`` below :data:`IDENTITY_WITHIN`:
    ``supported`` (the degeneracy); above it: ``not supported``; holding it, too few seeds, or any run
    stopped by its step budget (still training, so not what training converges to):
    ``inconclusive``. The sentence adds ``c``, the held-out error, whether training was lazy, and
    (``against``) the other network's numbers from the same seeds, side by side, uncompared."""
    width = _top(table, data)
    rows = _select(table, data, scaling, arch, width)
    ok = rows[rows["status"] != "diverged"]
    beyond, c, error = _mean(ok["beyond_c"]), _mean(ok["c"]), _mean(ok["heldout_error"])
    seeds = 0 if beyond is None else beyond.units
    mark = f"{IDENTITY_WITHIN:.0%}"
    what = f"the {arch} map is within {mark} of a multiple of the identity"
    words, verdict = {
        "below": (what, "supported"),
        "above": (f"the {arch} map is not within {mark} of a multiple of the identity", "not supported"),
        "across": (f"whether {what} cannot be told (the interval holds {mark})", "inconclusive"),
        "unknown": (f"{seeds_phrase(seeds)}: too few to say whether {what} (at least {stats.MIN_SEEDS} are needed)",
                    "inconclusive"),
    }[_place(beyond, IDENTITY_WITHIN)]
    stopped = int((rows["status"] == "max_steps").sum())
    if stopped and verdict != "inconclusive":
        verdict = "inconclusive"  # still training: not what training converges to
        words += " where the step budget stopped it"
    subject = f"{data}, {scaling} scaling, m = {width}, held-out inputs"
    moved = _mean(ok["weight_change_W"])
    text = (f"{subject}: {words}: ||f(Z) - cZ||/||f(Z)|| = {_ci(beyond)} at c = {_ci(c)}, relative error "
            f"||f(Z) - Z||/||Z|| = {_ci(error)}; {_lazy_words(moved, _mean(ok['ntk_drift']))}")
    if against is not None:
        other = _select(table, data, scaling, against, width)
        other = other[other["status"] != "diverged"]
        if len(other):
            text += (f"; the {against} network from the same seeds: ||f(Z) - cZ||/||f(Z)|| = "
                     f"{_ci(_mean(other['beyond_c']))}, ||W_T - W_0||/||W_0|| = "
                     f"{_ci(_mean(other['weight_change_W']))}, NTK drift {_ci(_mean(other['ntk_drift']))}")
    text += f" ({seeds_phrase(seeds)})."
    f = statement("tied", NAME, subject, f"||f(Z) - cZ||/||f(Z)||, {arch}", text, verdict,
                  key=f"share beyond c·z {_ci(beyond)}; weight movement {_ci(moved)}", estimate=beyond, seeds=seeds,
                  runs=len(rows), rule="tied/identity", unit="share")
    return _with(f, [*_status_clauses(rows), _errors_above_one({f"the {arch} map": ok})])


def _degeneracy_finding(table: Any, data: str, scaling: str) -> Finding:
    """Rule ``tied/degenerate``, the headline: does the trained tied network degenerate, in a form
    the numbers show? The paper proves "degeneracies" without fixing their form, so the rule names
    the two forms measured, each decided by a 95% interval at the largest width, on held-out inputs:

    - *a multiple of the identity*: the interval of ``beyond_c`` below :data:`IDENTITY_WITHIN`
      (:func:`_identity_finding`);
    - *worse than no map at all*: the interval of the tied map's relative error above 1 (the zero
      map's) and that of joint's error over tied's below 1 (the untied network from the same seeds
      does better).

    Either form: ``supported``, the sentence saying which. The identity excluded by its interval and
    the tied map's error below 1 or joint's over tied's above 1: ``not supported``.
    Otherwise, too few seeds, or a run still training: ``inconclusive``."""
    base = _identity_finding(table, data, scaling, "tied", against="joint")
    width = _top(table, data)
    tied = _select(table, data, scaling, "tied", width)
    ok = tied[tied["status"] != "diverged"]
    error = _mean(ok["heldout_error"])
    ratio = _ratio(_paired(table, data, scaling, width, "heldout_error", log=True))
    identity = base.verdict == "supported"
    worse = (error is not None and error.has_interval and error.low > 1 and ratio is not None
             and ratio.has_interval and ratio.units >= stats.MIN_SEEDS and ratio.high < 1)
    better = (error is not None and error.has_interval and error.high < 1) or (
        ratio is not None and ratio.has_interval and ratio.low > 1)
    stopped = int((tied["status"] == "max_steps").sum())
    if base.seeds < stats.MIN_SEEDS or stopped:
        verdict, form = "inconclusive", "too few finished seeds to say whether it degenerates"
    elif identity:
        verdict, form = "supported", "the tied network degenerates to a multiple of the identity"
    elif worse:
        verdict, form = "supported", (f"the tied network degenerates: on unseen inputs it is no multiple of the "
                                      f"identity and does worse than the zero map (relative error {_ci(error)}) and "
                                      f"than the untied network (joint's error over tied's {_ci(ratio)})")
    elif better and base.verdict == "not supported":  # the identity excluded by its interval, and no worse
        verdict, form = "not supported", "no degeneracy measured: the tied map is no multiple of the identity, and " \
                                         "it reconstructs unseen inputs as well as the zero map or the untied network"
    else:
        verdict, form = "inconclusive", "whether the tied network degenerates cannot be told from these intervals"
    return replace(base, verdict=verdict, rule="tied/degenerate", sentence=f"{form}. {base.sentence}",
                   key=f"{base.key}; held-out error {_ci(error)}")


def _error_comparison(table: Any, data: str, scaling: str) -> Finding:
    """Joint's held-out error over tied's at the largest width: the geometric mean of the per-seed
    ratios with the t interval of their logs, through :func:`aedyn.findings.comparison`; the two
    errors beside it, runs stopped by their budget and errors above 1 named."""
    width = _top(table, data)
    est = _ratio(_paired(table, data, scaling, width, "heldout_error", log=True))
    tied, joint = (_select(table, data, scaling, a, width) for a in ("tied", "joint"))
    f = comparison("tied", NAME, f"{data}, {scaling} scaling, m = {width}, held-out inputs",
                   "relative error ||f(Z) - Z||/||Z||, joint's over tied's", est, equal=1.0, ratio=True,
                   runs=len(tied) + len(joint), larger="joint reconstructs held-out inputs worse than tied",
                   smaller="joint reconstructs held-out inputs better than tied")
    numbers = f"tied's error is {_ci(_mean(tied['heldout_error']))}, joint's {_ci(_mean(joint['heldout_error']))}"
    return _with(f, [numbers, *_status_clauses(_concat(tied, joint)),
                     _errors_above_one({"the tied map": tied, "the joint map": joint})])


def _concat(*frames: Any) -> Any:
    import pandas as pd

    return pd.concat(frames)


def _beyond_comparison(table: Any, data: str, scaling: str) -> Finding:
    """Tied's ``beyond_c`` minus joint's at the largest width (per-seed paired differences)."""
    width = _top(table, data)
    est = stats.t_interval(_paired(table, data, scaling, width, "beyond_c", log=False))
    rows = _concat(*(_select(table, data, scaling, a, width) for a in ("tied", "joint")))
    f = comparison("tied", NAME, f"{data}, {scaling} scaling, m = {width}, held-out inputs",
                   "||f(Z) - cZ||/||f(Z)||, tied's minus joint's", est, equal=0.0, runs=len(rows),
                   larger="the tied map is further from a multiple of the identity than the joint one",
                   smaller="the tied map is closer to a multiple of the identity than the joint one")
    return _with(f, _status_clauses(rows))


def _movement_comparison(table: Any, data: str, scaling: str) -> Finding:
    """Tied's slope in ``m`` of the weight movement minus joint's (:func:`aedyn.stats.slope_difference`,
    Welch's interval on the two sets of per-seed slopes), each slope beside it."""
    rows = {a: _select(table, data, scaling, a) for a in ("tied", "joint")}
    slopes = {a: _slope(r, "weight_change_W") for a, r in rows.items()}
    est = None if None in slopes.values() else stats.slope_difference(slopes["tied"], slopes["joint"])  # type: ignore[arg-type]
    widths = sorted({int(w) for r in rows.values() for w in r["width"]})
    span = f"m = {widths[0]}..{widths[-1]}" if len(widths) > 1 else f"m = {widths[0]}"
    f = comparison("tied", NAME, f"{data}, {scaling} scaling, {span}",
                   "slope in m of ||W_T - W_0||/||W_0||, tied's minus joint's", est, equal=0.0,
                   runs=sum(len(r) for r in rows.values()),
                   larger="tied's weight movement falls more slowly with m than joint's (or grows)",
                   smaller="tied's weight movement falls faster with m than joint's")
    numbers = None if None in slopes.values() else (
        f"tied's movement goes like {_slope_text(slopes['tied'])}, joint's like {_slope_text(slopes['joint'])}")
    return _with(f, [numbers, *_status_clauses(_concat(*rows.values()))])


def _kernel_finding(kc: dict) -> Finding:
    """The tied NTK's distance to its infinite-width limit against ``m^(-1/2)``
    (:func:`aedyn.findings.power_law`, ``kind="equals"``), refitted from the errors."""
    widths = [int(m) for m in kc["widths"]]
    slope = stats.fit_slope(widths, kc["errors"]) if len(widths) > 1 else None
    span = f"m = {min(widths)}..{max(widths)}" if widths else "no width"
    return power_law("tied", NAME, f"tied NTK, sphere n = {kc['n']}, d = {kc['d']}, {span}",
                     "the finite-width NTK's relative distance to its infinite-width limit", slope,
                     reference=EXPONENT, kind="equals", runs=len(widths) * len(kc["seeds"]))


def _certified(rows: Any) -> dict[str, int]:
    """Counts of the runs of ``rows`` with a certificate: ``runs``, ``inside``, ``kernel``, ``rate``,
    ``safe_radius`` (runs holding each), ``vacuous`` (runs of no step), ``seeds``, and ``missing``."""
    known = rows[rows["cert_inside"].notna()]

    def holds(column: str) -> int:
        return int(known[column].fillna(False).astype(bool).sum())

    return {"runs": len(known), "inside": holds("cert_inside"), "kernel": holds("cert_kernel_holds"),
            "rate": holds("cert_rate_holds"), "safe_radius": holds("cert_safe_radius_holds"),
            "vacuous": int((known["steps"] == 0).sum()), "seeds": int(known["seed"].nunique()),
            "missing": len(rows) - len(known)}


def _certificate_finding(rows: Any, subject: str, *, where: bool = True) -> Finding:
    """:func:`aedyn.findings.certificate` over ``rows``; ``where``: name the groups (architecture,
    scaling, data set) in which the kernel or rate invariant fails, and how many of their runs."""
    c = _certified(rows)
    f = certificate(NAME, subject, runs=c["runs"], inside=c["inside"], kernel=c["kernel"], rate=c["rate"],
                    safe_radius=c["safe_radius"], seeds=c["seeds"], vacuous=c["vacuous"])
    clauses = []
    if where:
        parts = []
        for (arch, scaling, data), g in rows.groupby(["regime", "init_scale", "data"], sort=False):
            k = _certified(g)
            fails = [f"kernel in {k['runs'] - k['kernel']}" if k["kernel"] < k["runs"] else "",
                     f"rate in {k['runs'] - k['rate']}" if k["rate"] < k["runs"] else ""]
            fails = [x for x in fails if x]
            if fails:
                parts.append(f"{arch}, {scaling}, {data}: {' and '.join(fails)} of {k['runs']}")
        if parts:
            clauses.append("the kernel or rate invariant fails for " + "; ".join(parts))
    if c["missing"]:
        clauses.append(f"{count(c['missing'], len(rows))} carried no certificate (not counted)")
    return _with(f, clauses)


def findings(results: dict) -> list[Finding]:
    """At most five findings, on the first data set (sphere) under NTK scaling:

    1. the headline (claim ``tied``): does the trained tied network degenerate, and how (rule
       ``tied/degenerate``, :func:`_degeneracy_finding`: a multiple of the identity, or worse than
       the zero map and the untied network on held-out inputs), with its laziness and the joint
       network's numbers beside it;
    2. joint's held-out error over tied's, through the interval of the per-seed ratios;
    3. tied's slope in ``m`` of the weight movement minus joint's;
    4. the tied NTK's distance to its infinite-width limit against ``m^(-1/2)``;
    5. the certificate over every run (tied and joint, both scalings, every data set)."""
    table = tabulate(results)
    out: list[Finding] = []
    if len(table):
        data = _datas(table)[0]
        scalings, archs = _scalings(table), _archs(table)
        scaling = "ntk" if "ntk" in scalings else scalings[0]
        if "tied" in archs:
            first = _degeneracy_finding(table, data, scaling) if "joint" in archs else _identity_finding(
                table, data, scaling, "tied")
            out.append(first.as_headline("heldout"))
        if {"tied", "joint"} <= set(archs):
            out.append(_error_comparison(table, data, scaling))
            out.append(_movement_comparison(table, data, scaling))
    kc = results.get("kernel_check")
    if kc is not None:
        out.append(_kernel_finding(kc))
    if len(table):
        out.append(_certificate_finding(table, "tied and joint, every data set, scaling and width"))
    return out[:5]


_SLOPED = (("weight_change_W", "||W_T - W_0||/||W_0||"),
           ("ntk_drift", "the NTK drift ||Theta(T) - Theta(0)||/||Theta(0)||"))
"""The quantities whose slopes in m the details hold against the lazy bound m^(-1/2)."""


def _rescaled_sentence(table: Any, data: str, scaling: str) -> str:
    """Whether the trained tied ``W_T`` is a multiple of ``W_0`` at the largest width, from the
    interval of ``rescale_distance`` against :data:`RESCALED_WITHIN`, with that multiple beside the
    one that would make the mean initial map the identity (``c`` near 1 is ``W_0`` itself)."""
    width = _top(table, data)
    rows = _select(table, data, scaling, "tied", width)
    dist, c = _mean(rows["rescale_distance"]), _mean(rows["rescale_c"])
    mark = f"{RESCALED_WITHIN:.0%}"
    what = f"W_T is within {mark} of a multiple c W_0 of its initialisation"
    words = {"below": what,
             "above": f"W_T is not within {mark} of any multiple c W_0 of its initialisation",
             "across": f"whether {what} cannot be told (the interval holds {mark})",
             "unknown": f"too few seeds to say whether {what}"}[_place(dist, RESCALED_WITHIN)]
    identity = _mean(rows["rescale_c_identity"])
    text = (f"{data}, {scaling} scaling, m = {width}, tied: {words}: min_c ||W_T - c W_0||/||W_T|| = {_ci(dist)} at "
            f"c = {_ci(c)}; the c that makes the mean initial map the identity is sqrt(2/(alpha m kappa^2)) = "
            f"{'-' if identity is None else sig(identity.value)} ({seeds_phrase(0 if dist is None else dist.units)}).")
    return _append(text, _status_clauses(rows))


def _f0_sentences(table: Any, data: str) -> list[str]:
    """The tied network at initialisation against ``alpha m kappa^2 z / 2`` (scale-free, so one
    scaling's runs speak for both): per seed, the mean over widths of ``(f0_gap / f0_gap_expected)^2``
    (expected 1 exactly) through :func:`aedyn.findings.comparison`, and the slope of ``f0_gap`` in ``m``
    against ``m^(-1/2)``."""
    tied = _select(table, data, arch="tied")
    if not len(tied):
        return []
    rows = _select(tied, data, scaling=_scalings(tied)[0])
    per_seed = (rows["f0_gap"] / rows["f0_gap_expected"]).pow(2).groupby(rows["seed"]).mean()
    est = stats.t_interval([float(v) for v in per_seed])
    subject = f"{data}, tied networks at initialisation, held-out inputs"
    out = [comparison("tied", NAME, subject, "the squared gap ||f_0(Z) - aZ||^2/||aZ||^2 (a = alpha m kappa^2/2) "
                      "over its expectation (2d+3)/m, mean over widths", est, equal=1.0, ratio=True, runs=len(rows),
                      larger="f_0 is further from alpha m kappa^2 z/2 than expected",
                      smaller="f_0 is closer to alpha m kappa^2 z/2 than expected").sentence]
    slope = _slope(rows, "f0_gap")
    if slope is not None:
        out.append(power_law("tied", NAME, subject, "||f_0(Z) - aZ||/||aZ||", slope, reference=EXPONENT,
                             kind="equals", runs=len(rows)).sentence)
    return out


def details(results: dict) -> list[str]:
    """Every setting in sentences: per data set and scaling, what each trained map is on held-out
    inputs (:func:`_identity_finding`), whether the tied ``W_T`` is a rescaled ``W_0``, tied against
    joint (held-out error, distance from a multiple of the identity, slope of the movement), the
    slopes in ``m`` of each network's movement and drift against ``m^(-1/2)``; per data set, ``f_0``
    against ``alpha m kappa^2 z / 2``; the statuses, the kernel check, and the certificate per
    architecture, scaling and data set."""
    table = tabulate(results)
    out: list[str] = []
    if len(table):
        archs, both = _archs(table), {"tied", "joint"} <= set(_archs(table))
        for data in _datas(table):
            for scaling in _scalings(table):
                if not len(_select(table, data, scaling)):
                    continue
                out += [_identity_finding(table, data, scaling, a).sentence for a in archs
                        if len(_select(table, data, scaling, a))]
                if "tied" in archs:
                    out.append(_rescaled_sentence(table, data, scaling))
                if both:
                    out += [_error_comparison(table, data, scaling).sentence,
                            _beyond_comparison(table, data, scaling).sentence]
                for arch in archs:
                    rows = _select(table, data, scaling, arch)
                    for column, what in _SLOPED:
                        s = _slope(rows, column)
                        if s is not None:
                            f = power_law("tied", NAME, f"{data}, {scaling} scaling, {arch}", what, s,
                                          reference=EXPONENT, kind="at_most", runs=len(rows))
                            out.append(_with(f, _status_clauses(rows)).sentence)
                if both and _slope(_select(table, data, scaling, "tied"), "weight_change_W") is not None:
                    out.append(_movement_comparison(table, data, scaling).sentence)
            out += _f0_sentences(table, data)
        statuses = table["status"].value_counts()
        out.append(f"Statuses: {count(int(statuses.get('converged', 0)), len(table))} reached the target, "
                   f"{int(statuses.get('max_steps', 0))} stopped at the step budget (still training), "
                   f"{int(statuses.get('diverged', 0))} diverged.")
    kc = results.get("kernel_check")
    if kc is not None:
        errors = np.asarray(kc["errors"], dtype=float)
        mean = np.exp(np.log(errors).mean(axis=1))
        out.append(_kernel_finding(kc).sentence + " Geometric mean over seeds by width: " + "; ".join(
            f"m = {m}: {sig(float(e))}" for m, e in zip(kc["widths"], mean, strict=True)) + ".")
    if len(table):
        for (arch, scaling, data), rows in table.groupby(["regime", "init_scale", "data"], sort=False):
            out.append(_certificate_finding(rows, f"certificate, {data}, {scaling} scaling, {arch}",
                                            where=False).sentence)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def summary(results: dict) -> dict:
    """The headline numbers: ``groups`` (per architecture ``regime``, scaling ``init_scale`` and
    ``data`` set, at the largest width: the mean over seeds of each of :data:`HEADLINE` with its
    interval ``<name>_ci``, the counts of runs at the target, and the slopes in m of the movement
    and the drift with their intervals), ``comparisons`` (tied against joint per ``data`` set and
    ``init_scale``), ``kernel_check`` (the tied limit's error slope, its interval and verdict),
    ``statuses`` and ``certificate`` (per ``regime``, ``init_scale`` and ``data``)."""
    table = tabulate(results)
    groups, comparisons = [], []
    if len(table):
        for (data, scaling, arch), rows in table.groupby(["data", "init_scale", "regime"], sort=True):
            top = _top(table, data)
            last = rows[rows["width"] == top]
            entry: dict[str, Any] = {"regime": arch, "init_scale": scaling, "data": data, "width": top,
                                     "seeds": len(last), "runs": len(rows),
                                     "converged": int((rows["status"] == "converged").sum()),
                                     "converged_top": int((last["status"] == "converged").sum())}
            for name in HEADLINE:
                e = _mean(last[name])
                entry[name] = None if e is None else e.value
                entry[f"{name}_ci"] = None if e is None or not e.has_interval else [e.low, e.high]
            for key, column in (("movement_slope", "weight_change_W"), ("drift_slope", "ntk_drift")):
                s = _slope(rows, column)
                entry[key] = None if s is None else s.value
                entry[f"{key}_ci"] = None if s is None or not s.has_interval else [s.low, s.high]
            entry["heldout_error_by_width"] = {str(int(w)): float(g["heldout_error"].mean())
                                               for w, g in rows.groupby("width")}
            entry["c_by_width"] = {str(int(w)): float(g["c"].mean()) for w, g in rows.groupby("width")}
            groups.append(entry)
        if {"tied", "joint"} <= set(_archs(table)):
            for data in _datas(table):
                for scaling in _scalings(table):
                    for f in (_error_comparison(table, data, scaling), _beyond_comparison(table, data, scaling),
                              _movement_comparison(table, data, scaling)):
                        comparisons.append({"data": data, "init_scale": scaling, "quantity": f.quantity,
                                            "verdict": f.verdict, "key": f.key,
                                            **({} if f.estimate is None else f.estimate.to_dict())})
    kc = results.get("kernel_check")
    kernel = None
    if kc is not None:
        f = _kernel_finding(kc)
        s = f.estimate
        kernel = {"slope": None if s is None else s.value, "ci_low": None if s is None else s.low,
                  "ci_high": None if s is None else s.high, "seeds": 0 if s is None else s.units,
                  "widths": kc["widths"], "verdict": f.verdict,
                  "consistent": bool(f.verdict == "supported" and s is not None and s.contains(EXPONENT)),
                  "mean_errors": [float(e) for e in np.exp(np.log(np.asarray(kc["errors"], dtype=float)).mean(axis=1))]}
    statuses = {} if not len(table) else {str(k): int(v) for k, v in table["status"].value_counts().items()}
    cert = [] if not len(table) else certified_counts(table, ["regime", "init_scale", "data"])
    return _jsonable({"groups": groups, "comparisons": comparisons, "kernel_check": kernel, "statuses": statuses,
                      "certificate": cert})


def key_table(results: dict) -> Any:
    """The section's table: per data set, scaling and network at the largest width, the runs at the
    target, the means over seeds with their 95% intervals of the held-out error, ``c``, the share
    beyond ``c z``, the weight movement and the NTK drift, and the slope in ``m`` of the movement."""
    import pandas as pd

    table = tabulate(results)
    rows = []
    if len(table):
        for data in _datas(table):
            width = _top(table, data)
            for scaling in _scalings(table):
                for arch in _archs(table):
                    every = _select(table, data, scaling, arch)
                    if not len(every):
                        continue
                    last = every[every["width"] == width]
                    done = int((last["status"] == "converged").sum())
                    rows.append({"data": data, "scaling": scaling, "network": arch,
                                 "m (runs at target)": f"{width} ({done} of {len(last)})",
                                 "held-out error [95% CI]": _ci(_mean(last["heldout_error"])),
                                 "best scalar c [95% CI]": _ci(_mean(last["c"])),
                                 "share beyond c·z [95% CI]": _ci(_mean(last["beyond_c"])),
                                 "weight movement [95% CI]": _ci(_mean(last["weight_change_W"])),
                                 "NTK drift [95% CI]": _ci(_mean(last["ntk_drift"])),
                                 "movement slope in m [95% CI]": _slope_text(_slope(every, "weight_change_W"))})
    return pd.DataFrame(rows)


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "heldout": "What the trained networks are on held-out inputs, against the width m, one column per data set: the "
               "relative error ||f(z) - z||/||z|| (the dotted line at 1 is the zero map's), the best scalar c with "
               "f(z) ≈ c z (dotted: the identity), and the share of f(z) beyond c z (0 for a multiple of the "
               f"identity; dotted: the {IDENTITY_WITHIN:.0%} mark). Tied and joint by colour, NTK and mean-field "
               "scaling by line style; the mean over seeds with its 95% interval (open where some seeds were stopped "
               "by the step budget, still training), each seed a faint dot. A data set trained at one width is drawn "
               "on a linear axis.",
    "movement": "How far training moved the weights and the kernel, against m: ||W_T - W_0||/||W_0||, the NTK's "
                "relative drift, the distance of W_T from the nearest multiple of W_0, and the tied network at "
                "initialisation against alpha m kappa^2 z/2 beside its expected size sqrt((2d+3)/m) (grey, dotted). "
                "Means over seeds with 95% intervals (open where some seeds were stopped by the step budget), data "
                "sets by marker; the light grey line falls like m^(-1/2).",
    "kernel_limit": "The tied NTK at finite width against its closed-form infinite-width limit: the relative "
                    "Frobenius distance against m, each seed a faint dot, their geometric mean, the fitted slope "
                    "(mean of the per-seed slopes, with its 95% interval) and m^(-1/2) for reference.",
}
_LINESTYLES = {"ntk": "-", "mean-field": "--"}


def _axes_scale(ax: Any, axis: str, values: Sequence[float], *, log: bool = True) -> bool:
    """A log axis (base 2 for widths) when ``log`` and there are two or more distinct positive
    values, else linear; widths get plain ticks. Returns whether the axis is logarithmic."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator, ScalarFormatter

    distinct = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    is_log = log and len(distinct) >= 2
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if is_log:
        setter("log", base=2) if axis == "x" else setter("log")
    if axis == "y" and is_log:
        decades = math.log10(distinct[-1] / distinct[0])
        subs = (1.0, 2.0, 5.0) if decades < 1.5 else (1.0, 3.0) if decades < 2.5 else (1.0,)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if axis == "x":
        ax.xaxis.set_major_locator(FixedLocator(distinct))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        if len(distinct) == 1:
            ax.set_xlim(distinct[0] * 0.8, distinct[0] * 1.2)
    return is_log


def _series(ax: Any, rows: Any, column: str, *, colour: Any, style_: str, marker: str, shift: float,
            log_y: bool, faint: bool = True, unfinished_open: bool = True, **kw: Any) -> bool:
    """The mean over seeds of ``column`` against the width with its 95% t interval (``shift``:
    a small multiplicative offset so that series at one width do not hide each other), and each
    seed as a faint dot. Returns whether anything was drawn."""
    xs, ys, lo, hi, still = [], [], [], [], []
    for w, g in rows.groupby("width"):
        vals = [float(v) for v in g[column] if np.isfinite(v) and (v > 0 or not log_y)]
        e = stats.t_interval(vals)
        if e is None:
            continue
        xs.append(float(w) * shift)
        ys.append(e.value)
        low = e.low if e.has_interval else e.value
        high = e.high if e.has_interval else e.value
        if log_y:
            low = max(low, e.value * 1e-2)  # type: ignore[type-var]
        lo.append(max(e.value - low, 0.0))  # type: ignore[operator]
        hi.append(max(high - e.value, 0.0))  # type: ignore[operator]
        if faint:
            ax.plot([float(w) * shift] * len(vals), vals, marker, color=colour, ms=3, alpha=0.25, ls="")
        if unfinished_open and (g["status"] == "max_steps").any():
            still.append((xs[-1], ys[-1]))
    if not xs:
        return False
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, ls=style_, color=colour, ms=5, capsize=2, lw=1.3, **kw)
    if still:  # an open marker: some of these seeds were stopped by the step budget, still training
        ax.plot([x for x, _ in still], [y for _, y in still], marker, ls="", ms=7, mfc="white", mec=colour, mew=1.3,
                zorder=3)
    return True


def _shifts(k: int) -> list[float]:
    """``k`` multiplicative offsets around 1 (a few percent apart)."""
    return [2 ** (0.05 * (i - (k - 1) / 2)) for i in range(k)]


def _legend(table: Any, archs: Sequence[str], scalings: Sequence[str], datas: Sequence[str] = ()) -> list[Any]:
    from matplotlib.lines import Line2D

    out = [Line2D([], [], color=style.REGIME_COLOURS.get(a, "0.3"), lw=2, label=a) for a in archs]
    out += [Line2D([], [], color="0.35", ls=_LINESTYLES.get(s, ":"), label=f"{s} scaling") for s in scalings]
    out += [Line2D([], [], color="0.35", marker=style.DATA_MARKERS.get(d, "^"), ls="", label=d) for d in datas]
    if (table["status"] == "max_steps").any():
        out.append(Line2D([], [], color="0.35", marker="o", ls="", ms=7, mfc="white", mew=1.3,
                          label="open: some seeds stopped by the step budget"))
    return out


@style.styled
def figures(results: dict) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): ``heldout``, ``movement`` and ``kernel_limit`` (when the
    kernel check ran)."""
    table = tabulate(results)
    out: dict[str, Any] = {}
    if len(table):
        out["heldout"] = _heldout_figure(table)
        out["movement"] = _movement_figure(table)
    kc = results.get("kernel_check")
    if kc is not None and kc["widths"]:
        out["kernel_limit"] = _kernel_figure(kc)
    return out


def _heldout_figure(table: Any) -> Any:
    datas, archs, scalings = _datas(table), _archs(table), _scalings(table)
    panels = [("heldout_error", "relative error ‖f(z) − z‖/‖z‖", True, 1.0),
              ("c", "best scalar c, f(z) ≈ c·z", False, 1.0),
              ("beyond_c", "share beyond c·z, ‖f(z) − c·z‖/‖f(z)‖", False, IDENTITY_WITHIN)]
    fig, axes = style.figure(len(panels), len(datas), width=3.6 * len(datas) + 0.6, height=2.5)
    shifts = _shifts(len(archs) * len(scalings))
    for j, data in enumerate(datas):
        rows = _select(table, data)
        for i, (column, label, log, line) in enumerate(panels):
            ax = axes[i][j]
            _axes_scale(ax, "x", rows["width"])
            log_y = log and _axes_scale(ax, "y", [*rows[column], line], log=True)
            k = 0
            for arch in archs:
                for scaling in scalings:
                    _series(ax, _select(rows, data, scaling, arch), column,
                            colour=style.REGIME_COLOURS.get(arch, "0.3"), style_=_LINESTYLES.get(scaling, ":"),
                            marker=style.DATA_MARKERS.get(data, "^"), shift=shifts[k], log_y=log_y)
                    k += 1
            ax.axhline(line, color="0.5", lw=0.9, ls=":")
            ax.set_ylabel(label)
            if i == 0:
                first = rows.iloc[0]
                ax.set_title(f"{data} (n = {int(first['n'])}, d = {int(first['d'])}, {int(first['n_test'])} held out)")
            if i == len(panels) - 1:
                ax.set_xlabel("width m")
    handles = _legend(table, archs, scalings)
    return style.finish(fig, "E5: the trained tied and joint maps on held-out inputs, against the width",
                        handles=handles, ncol=min(len(handles), 4))


def _movement_figure(table: Any) -> Any:
    from matplotlib.lines import Line2D

    datas, archs, scalings = _datas(table), _archs(table), _scalings(table)
    panels = [("weight_change_W", "‖W_T − W_0‖/‖W_0‖", "weight movement"),
              ("ntk_drift", "‖Θ(T) − Θ(0)‖/‖Θ(0)‖", "NTK drift"),
              ("rescale_distance", "min over c of ‖W_T − c·W_0‖/‖W_T‖", "distance from a rescaled start"),
              ("f0_gap", "‖f₀(z) − αmκ²z/2‖/‖αmκ²z/2‖", "tied network at initialisation")]
    fig, axes = style.figure(2, 2, width=8.6, height=3.0)
    widths = sorted({int(w) for w in table["width"]})
    shifts = _shifts(len(archs) * len(scalings) * len(datas))
    for ax, (column, label, title) in zip([a for row in axes for a in row], panels, strict=True):
        log_x = _axes_scale(ax, "x", widths)
        tied_only = column == "f0_gap"
        values = list(table[column]) + (list(table["f0_gap_expected"]) if tied_only else [])
        log_y = _axes_scale(ax, "y", values)
        k = 0
        for data in datas:
            marker = style.DATA_MARKERS.get(data, "^")
            for arch in (["tied"] if tied_only else archs):
                for scaling in (scalings[:1] if tied_only else scalings):
                    rows = _select(table, data, scaling, arch)
                    if len(rows):
                        _series(ax, rows, column, colour=style.REGIME_COLOURS.get(arch, "0.3"),
                                style_=_LINESTYLES.get(scaling, ":") if not tied_only else "-", marker=marker,
                                shift=shifts[k], log_y=log_y, unfinished_open=not tied_only)
                    k += 1
            if tied_only:
                exp = _select(table, data).groupby("width")["f0_gap_expected"].first()
                ax.plot(exp.index, exp.to_numpy(), marker, ls=":", color="0.4", ms=3, lw=1.2)
        if log_x and log_y and column != "rescale_distance":
            guide = _select(table, datas[0])[column]
            y0 = float(np.exp(np.log(guide[guide > 0]).mean())) if (guide > 0).any() else 1.0
            x = np.asarray([widths[0], widths[-1]], dtype=float)
            ax.plot(x, y0 * (x / math.sqrt(widths[0] * widths[-1])) ** EXPONENT, "-", color="0.7", lw=1, zorder=0)
        ax.set_title(title)
        ax.set_ylabel(label)
        ax.set_xlabel("width m")
    handles = _legend(table, archs, scalings, datas)
    handles += [Line2D([], [], color="0.4", ls=":", marker="o", ms=3, lw=1.2, label="expected f₀ gap, √((2d+3)/m)"),
                Line2D([], [], color="0.7", lw=1, label="slope −1/2")]
    return style.finish(fig, "E5: how far training moved the weights and the kernel, and f₀ against the scaled "
                        "identity", handles=handles, ncol=4)


def _kernel_figure(kc: dict) -> Any:
    from matplotlib.lines import Line2D

    fig, axes = style.figure(1, 1, width=6.0, height=3.8)
    ax = axes[0][0]
    widths = np.asarray(kc["widths"], dtype=float)
    errors = np.asarray(kc["errors"], dtype=float)
    colour = style.REGIME_COLOURS["tied"]
    log_x = _axes_scale(ax, "x", widths)
    _axes_scale(ax, "y", errors.ravel(), log=log_x)
    for s in range(errors.shape[1]):
        ax.plot(widths, errors[:, s], "o", color=colour, ms=3, alpha=0.3, ls="")
    mean = np.exp(np.log(errors).mean(axis=1))  # the geometric mean (the slopes are fitted to the logs)
    ax.plot(widths, mean, "o", color=colour, ms=6, ls="")
    slope = stats.fit_slope(list(kc["widths"]), kc["errors"]) if len(widths) > 1 else None
    handles = [Line2D([], [], marker="o", ls="", color=colour, alpha=0.3, ms=3, label="each seed"),
               Line2D([], [], marker="o", ls="", color=colour, ms=6, label="geometric mean")]
    if slope is not None:
        ax.plot(widths, np.exp(slope.intercept) * widths ** slope.value, "-", color=colour, lw=1.2)
        handles.append(Line2D([], [], color=colour, lw=1.2, label=f"fit {_slope_text(slope)}"))
        ax.plot(widths, mean[0] * (widths / widths[0]) ** EXPONENT, ":", color="0.4", lw=1.2)
        handles.append(Line2D([], [], color="0.4", ls=":", label="m^(−1/2)"))
    ax.set_xlabel("width m")
    ax.set_ylabel("‖Θ_m − Θ_∞‖/‖Θ_∞‖")
    ax.set_title(f"sphere, n = {kc['n']}, d = {kc['d']}, {seeds_phrase(errors.shape[1])}")
    return style.finish(fig, "E5: the tied NTK at finite width against its infinite-width limit", handles=handles,
                        ncol=2)
