"""E4, the infinite-width limit and memorisation: does a wide trained autoencoder behave like
linearised gradient descent with the infinite-width kernel, and what does it do off its training set?

**(a) Agreement with the NTK limit.** For each data set, regime (``joint``, ``weak``), initialisation
and seed, networks of growing width ``m`` (NTK scaling ``alpha = 1/sqrt(m)``) train by full-batch GD
with one step size for every width, seed and initialisation of a (data, regime):

    eta = safety / lambda_max(K_reg),   K_reg the regime's infinite-width n x n kernel

(the NTK tends to ``K_reg ⊗ I_d``, so its top eigenvalue tends to ``lambda_max(K_reg)``; the default
safety ``0.5`` leaves room for the finite-width kernel's larger top eigenvalue at the smallest width).
Two initialisations: ``standard`` (random decoder; the predictor's ``f_0`` is the finite network's own
initial map, so only the kernel differs) and ``zero`` (``f_0 ≡ 0``: neurons paired with negated
decoders, :func:`aedyn.model.init_params` with ``zero_output=True``; the predictor's ``f_0`` is
``None``). Every network is compared with :class:`aedyn.limit.NTKPredictor` at the **same** ``eta``
and the **same** step count ``k``:

- ``early``: ``k_early``, the least ``k`` at which the predicted training loss is at most
  ``early_target`` times its start (before convergence, so the training outputs still carry the
  dynamics), on training and on held-out inputs;
- ``converged``: ``k_conv``, the same for ``converged_target``, on held-out inputs only: there both
  maps have (almost) interpolated the training data, and the comparison on training inputs only
  measures the two small residuals, not the limit; on held-out inputs the converged prediction is the
  kernel regression ``f_0(x) + k(x, X) K_reg^{-1} (X - f_0(X))`` up to the factor
  ``1 - (1 - eta lambda)^k`` on each eigenvalue.

Held-out inputs are ``held_out`` inputs from the data's source that are not training rows
(:func:`aedyn.data.heldout_inputs` with ``held_out_seed``: for the sphere, the stream of that seed;
for digits, fresh digits).

Each ``k`` is the larger of the predictions for the two initialisations (the residual ``-X`` for
``zero``; for ``standard`` the expected loss over the Gaussian-process ``f_0``,
:func:`aedyn.kernels.init_output_kernel`). The **relative error** on inputs ``Z`` is

    err(Z) = ||f_net(Z) - f_pred(Z)||_F / ||f_pred(Z) - f0_pred(Z)||_F

the error of the *learned change* of the map: the denominator is what training changed in the
predicted map (for ``zero``, ``f0_pred = 0`` and it is ``||f_pred(Z)||``). Normalising by
``||f_pred(Z)||`` instead would, for ``standard``, fold in the random ``f_0`` that both maps share
exactly and understate the error; normalising by ``||Z||`` would mix in how much there is to learn.
The theory (Theta(t) - K ⊗ I_d = O(m^{-1/2})) predicts ``err ∝ m^(-1/2)``. The slope is
:func:`aedyn.stats.fit_slope`: each seed's least-squares slope of ``log err`` on ``log m`` over the
widths, their mean, and the t interval over the seeds (the seeds are the independent units: a seed's
networks at different widths share their first random draws). ``f_0 ≡ 0`` is compared with the
standard initialisation only through the per-seed ratio of their errors (the two networks of a seed
share the first half of their neurons): at the largest width, the geometric mean of the ratios with
the t interval of their logarithms; across widths, the slope of the ratio (the per-seed difference of
the two slopes) with its t interval. :mod:`aedyn.findings` turns both into words.

**(b) Memorisation on digits.** One wide network per regime (default ``joint``; ``f_0 ≡ 0`` so
that the kernel predictor has no random part) trains to ``L <= target L(0)`` on a few digits
(``per_class`` per class, drawn class by class from one seeded stream; rows normalised), at
``eta = safety / lambda_max(K_reg)``, within a budget of ``budget_factor`` times the steps linearised
GD needs (:func:`memorisation_budget`). It and the
converged predictor (``NTKPredictor(..., steps=None)``: kernel regression) are fed three kinds of
inputs:

- ``held-out``: other digits of the same classes, not in the training set (``held_per_class`` per
  class, drawn with ``input_seed``);
- ``noisy``: training digits plus Gaussian noise of relative size ``noise`` (per pixel
  ``N(0, noise^2 / d)``, then the row normalised again);
- ``random``: Gaussian vectors, normalised.

Per input and map: the share of the output's energy inside the span of the training samples
(``1 - energy_outside_span``; the input's own share is the identity map's), the distance of the
output to its nearest training sample (and that sample: for noisy inputs, whether it is the one the
input came from; for held-out ones, whether it has the input's class; the same for the input itself,
as the baseline), ``||f(x) - x||``, the gap between network and predictor
``||f_net(x) - f_pred(x)|| / ||f_pred(x)||``, and the fate of the iterates ``x, f(x), f(f(x)), ...``
(:func:`aedyn.limit.memorisation`: a training sample, a fixed point elsewhere, zero, diverged, still
moving). Three named rules put these into words, each no stronger than its numbers
(:func:`span_words`: "in the span" only when every output's in-span share is at least
:data:`IN_SPAN_HIGH`; :func:`nearest_words`: "mapped next to their source" only when the source is
every noisy output's nearest training sample; :func:`fate_words`: training samples are attractors
only when every iterate ends at one).

**How it runs.** Every training is a :class:`~aedyn.job.TrainJob` run by a
:class:`aedyn.sweep.Runner` (the report's: the same executors as ``aedyn sweep``, local or a Dask
cluster, and one run store, ``OUT/runs``, with one row per run, :func:`aedyn.sweep.result_row`); the
comparisons are measures declared with the jobs and computed where they train
(:mod:`aedyn.measures.limit`: ``limit`` for (a), ``memorisation`` for (b)), so their columns join
the rows. Part (a) is one job per (data, regime, width, init, seed, stage): ``k_early`` or ``k_conv``
steps at ``lr = eta`` from the network's initialisation, with no early stop (``target = 0``); the
seeds and initialisations of one (data, regime, width, stage) train as one batch. The two stages are
independent runs, so the ``k_conv`` run repeats the first ``k_early`` steps: ``k_early + k_conv``
steps per network instead of ``k_conv`` (about 13% more GD steps in the default configs,
``k_early / k_conv = 23 / 182`` joint and ``12 / 83`` weak), the price of runs that resume
one by one. Part (b) is one job per regime. Every step size and step count comes from the kernels
of the data, before any training, so all batches go to the runner at once. Resume is the store's: a
rerun trains only the runs it lacks. A record of :func:`run` is its run's row, restricted to the
columns the analysis uses, under the row's names (``lr``, ``steps``, ``status``, ...).

**The report's verbs.** :func:`findings` (at most five, rendered by the rules of
:mod:`aedyn.findings` and the three above; the headlines of the claims ``limit`` and
``memorisation``), :func:`details` (every setting), :func:`key_table`, :func:`tabulate` and
:func:`tables` (the full tables), :func:`figures` with :data:`CAPTIONS`, :func:`summary`;
:func:`comparisons` lays part (a)'s records out per comparison (stage and input set) for them.

Functions here return numbers, tables and figures and never print or write files (a runner given
to :func:`run` keeps its runs in its own store).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from aedyn.errors import AedynError
from aedyn.experiments import missing_runs, require_results, small_problems, style, values_by_seed
from aedyn.findings import (
    Finding,
    combine,
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
from aedyn.job import Job, Notes, TrainJob
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.stats import MIN_SEEDS, Estimate, fit_slope, t_interval
from aedyn.sweep import UNTRAINABLE, Runner, notes_of

NAME = "E4"
TITLE = "The infinite-width limit and memorisation"
CLAIM = ("As the width m grows, a trained over-parameterised autoencoder in the NTK scaling approaches linearised "
         "gradient descent with the infinite-width kernel (error about m^-1/2, on training and on held-out inputs), "
         "so that a network started at f_0 ≡ 0 maps every input to a kernel combination of its training samples: "
         "it memorises them.")

REGIMES: tuple[str, ...] = ("joint", "weak")
INITS: tuple[str, ...] = ("standard", "zero")
KINDS: tuple[str, ...] = ("held-out", "noisy", "random")
MAPS: tuple[str, ...] = ("network", "predictor")
STAGES: tuple[str, ...] = ("early", "converged")
THEORY_SLOPE = -0.5
CLOSE = 0.05
"""A slope whose interval excludes -1/2 but lies within this of it "misses it by only" that much
(as :func:`aedyn.findings.power_law` says)."""
IN_SPAN_HIGH = 0.99
"""An output counts as in the span of the training samples when at least this share of its energy is."""
SPAN_PULL = 0.05
"""Outputs are 'pulled towards the span' when their median in-span share exceeds the inputs' by more than this."""
SHRINK = 0.5
"""A median output norm below this (the inputs are unit vectors) is reported as the outputs shrinking."""
TOWARDS_ZERO = 0.1
"""A median iterate norm below this after the iterations (unit inputs) is reported as shrinking towards 0."""
GROWING = 10.0
"""A median iterate norm above this after the iterations (unit inputs) is reported as growing."""
PAIRED_RATIO = math.sqrt(2.0)
"""The error ratio f_0 ≡ 0 / standard that a kernel fluctuating like a width-m/2 one would give alone
(the paired initialisation has m/2 independent neurons)."""
FATES: tuple[str, ...] = ("training sample", "fixed point", "zero", "moving", "diverged")
FATE_COLOURS = dict(zip(FATES, (style.CATEGORY_COLOURS[0], style.CATEGORY_COLOURS[1], style.CATEGORY_COLOURS[2],
                                style.CATEGORY_COLOURS[3], style.CATEGORY_COLOURS[5]), strict=True))
"""Where the iterates end, one category colour each (never a regime's)."""
MAP_COLOURS = {"input": style.CATEGORY_COLOURS[2], "network": style.CATEGORY_COLOURS[0],
               "predictor": style.CATEGORY_COLOURS[1]}
"""The input itself, the network and the kernel predictor in the memorisation figures."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready.

    - quick: (a) sphere n = 16, d = 8, widths 2^8..2^11, 3 seeds (the least for a verdict); (b) joint,
      m = 1024, one digit per class (n = 10).
    - full: (a) sphere n = 16, d = 8, widths 2^8..2^14, 8 seeds; (b) joint and weak, m = 8192, one
      digit per class.

    ``seeds`` overrides the number of seeds of (a) (at least 3 for a verdict)."""
    count = (3 if quick else 8) if seeds is None else int(seeds)
    widths = [2 ** k for k in range(8, 12 if quick else 15)]
    limit = {"data": [{"name": "sphere", "n": 16, "d": 8}], "regimes": list(REGIMES), "inits": list(INITS),
             "widths": widths, "seeds": list(range(count)), "held_out": 64, "held_out_seed": 1,
             "early_target": 1e-2, "converged_target": 1e-6}
    mem = {"regimes": ["joint"] if quick else ["joint", "weak"], "width": 1024 if quick else 8192, "seed": 0,
           "classes": list(range(10)), "per_class": 1, "held_per_class": 1, "noise": 0.3, "random": 10,
           "input_seed": 1, "target": 1e-6, "budget_factor": 4.0, "iterations": 200, "tol": 1e-3, "show": 4}
    return {"limit": limit, "memorisation": mem, "data_seed": 0, "safety": 0.5, "kappa": 1.0, "nu": 1.0,
            "dtype": "float64", "device": device}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    lim, mem = config["limit"], config["memorisation"]
    data = ", ".join(f"{d['name']} (n = {d['n']}, d = {d['d']})" for d in lim["data"])
    seeds = lim["seeds"]
    return [
        f"(a) Data: {data}, data seed {config['data_seed']}; held-out inputs: {lim['held_out']} fresh points "
        f"(sphere: data seed {lim['held_out_seed']}; digits: digits not in the training set, drawn with seed "
        f"{lim['held_out_seed']}).",
        f"(a) Regimes {', '.join(lim['regimes'])}; initialisations {', '.join(lim['inits'])} (standard: random "
        "decoder, the predictor starts from the network's own f_0; zero: f_0 ≡ 0 by neurons paired with negated "
        f"decoders); widths m = {', '.join(str(w) for w in lim['widths'])}; {seeds_phrase(len(seeds))}; "
        f"kappa = {config['kappa']:g}, nu = {config['nu']:g}, alpha = 1/sqrt(m), {config['dtype']}.",
        f"Step size: one eta per data set and regime for every width, seed and initialisation, eta = "
        f"{config['safety']:g} / lambda_max(K_reg) of the infinite-width kernel (the NTK's limit is K_reg ⊗ I_d).",
        "(a) The network is compared with NTKPredictor at the same eta and step count k: 'early', the k at which the "
        f"predicted training loss reaches {lim['early_target']:g} L(0) (training and held-out inputs); 'converged', "
        f"the k at which it reaches {lim['converged_target']:g} L(0) (held-out inputs only: on training inputs both "
        "have interpolated). Error: ||f_net(Z) - f_pred(Z)||_F / ||f_pred(Z) - f0_pred(Z)||_F, relative to what "
        "training changed in the predicted map. Slope: the mean of the seeds' own least-squares slopes of log error "
        "on log m, with the t interval over the seeds (a seed's networks at different widths share their first "
        "random draws, so the seeds are the independent units); theory -1/2.",
        "(a) f_0 ≡ 0 against the standard init: per seed the ratio of the two errors (the two networks of a seed "
        "share their first neurons); at the largest width the geometric mean of the ratios with the t interval of "
        "their logarithms, across widths the slope of the ratio (the per-seed difference of the two slopes).",
        f"(b) Memorisation: {mem['per_class']} digit(s) per class of {len(mem['classes'])} classes (data seed "
        f"{config['data_seed']}); one network per regime ({', '.join(mem['regimes'])}, m = {mem['width']}, f_0 ≡ 0, "
        f"seed {mem['seed']}) trained to L <= {mem['target']:g} L(0); against the converged kernel predictor "
        f"(kernel regression). Inputs: held-out digits ({mem['held_per_class']} per class, not in the training set, "
        f"seed {mem['input_seed']}), noisy training digits (noise of relative size {mem['noise']:g}: "
        f"N(0, {mem['noise']:g}^2/d) per pixel, renormalised), {mem['random']} random Gaussian unit vectors; "
        f"iterates x, f(x), f(f(x)), ... followed for {mem['iterations']} steps (tolerance {mem['tol']:g}).",
    ]


# ---- pure helpers ---------------------------------------------------------------------------------

def limit_eta(K: torch.Tensor, safety: float) -> tuple[float, float, float]:
    """``(eta, lambda_min, lambda_max)`` with ``eta = safety / lambda_max(K)``."""
    ev = torch.linalg.eigvalsh(K.double())
    return safety / float(ev[-1]), float(ev[0]), float(ev[-1])


def predicted_steps(X: torch.Tensor, K: torch.Tensor, eta: float, target: float, *, kappa: float = 1.0,
                    nu: float = 1.0) -> int:
    """The least ``k`` at which linearised GD with ``K`` reaches ``L(k) <= target L(0)`` for both
    initialisations: from ``R(0) = -X`` (``f_0 ≡ 0``) and in expectation over the Gaussian-process
    ``f_0`` (covariance ``nu^2 kappa^2 K1``); the larger of the two, at least 1."""
    lg = LinearisedGD(K, eta)
    zero = lg.steps_to(-X, target)
    std = lg.steps_to(-X, target, covariance=init_output_kernel(X, kappa=kappa, nu=nu))
    if zero is None or std is None:
        raise ValueError("the infinite-width kernel is singular here: no step count reaches the target")
    return max(1, int(zero), int(std))


def memorisation_budget(X: torch.Tensor, K: torch.Tensor, eta: float, target: float,
                        factor: float) -> tuple[int | None, int]:
    """``(k_pred, budget)``: the steps linearised GD with ``K`` needs from ``R(0) = -X`` to reach
    ``L <= target L(0)`` (``None`` if never), and the step budget ``max(10, ceil(factor k_pred))``
    (``k_pred`` taken as 1000 when ``None``)."""
    k_pred = LinearisedGD(K, eta).steps_to(-X, target)
    return k_pred, max(10, math.ceil(factor * (k_pred or 1000)))


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """A list of numbers (``None`` where a measure had no finite value) as a float array, ``None`` as NaN."""
    return np.asarray(values, dtype=np.float64)


# ---- running --------------------------------------------------------------------------------------


LIMIT_KEYS = ("lr", "steps", "status", "loss_rel")
"""The columns of a part (a) row every record keeps (besides its setting keys and its errors)."""
INPUT_COLUMNS = {"train": "train", "held-out": "heldout"}
"""Input set -> the suffix of its columns in the ``limit`` measure (``error_train``, ``scale_heldout``)."""
MEMO_KEYS = ("regime", "width", "n", "d", "lr", "step_budget", "status", "steps", "final_relative_loss")
"""The columns of a part (b) row its record keeps (beside the ``memorisation`` measure's record)."""


def _common(config: dict) -> dict[str, Any]:
    """The job settings every E4 training shares."""
    return {"kappa": float(config["kappa"]), "nu": float(config["nu"]), "data_seed": int(config["data_seed"]),
            "dtype": config["dtype"], "device": config["device"]}


def limit_job(config: dict, spec: dict, regime: str, width: int, init: str, seed: int, lr: float,
              steps: int) -> TrainJob:
    """One network of part (a): ``steps`` of GD at ``lr`` with no early stop (``target = 0``), no
    movement records, ``f_0 ≡ 0`` for ``init = "zero"``, measured against the NTK-limit predictor
    (the ``limit`` measure, on ``held_out`` inputs drawn with ``held_out_seed``)."""
    lim = config["limit"]
    return TrainJob(regime=regime, data=spec["name"], n=int(spec["n"]),
                    d=int(spec["d"]) if spec["name"] == "sphere" else None, seed=int(seed), width=int(width),
                    zero_output=init == "zero", lr=float(lr), steps=int(steps), target=0.0,
                    record_every=int(steps) + 1,
                    measures=({"name": "limit", "n": int(lim["held_out"]), "seed": int(lim["held_out_seed"])},),
                    **_common(config))


def memorisation_job(config: dict, regime: str, lr: float | str = "auto", steps: int = 1) -> TrainJob:
    """The network of part (b) for ``regime``: ``per_class`` digits of each class, ``f_0 ≡ 0``,
    trained to ``target`` within ``steps``, with the ``memorisation`` measure and its options."""
    mem = config["memorisation"]
    options = {k: mem[k] for k in ("held_per_class", "noise", "random", "input_seed", "iterations", "tol", "show")}
    return TrainJob(regime=regime, data="digits", classes=tuple(int(c) for c in mem["classes"]),
                    per_class=int(mem["per_class"]), seed=int(mem["seed"]), width=int(mem["width"]),
                    zero_output=True, lr=lr, steps=int(steps), target=float(mem["target"]),
                    record_every=int(steps) + 1, measures=({"name": "memorisation", **options},), **_common(config))


def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        runner: Runner | None = None) -> dict:
    """Every training of parts (a) and (b) as :class:`~aedyn.job.TrainJob` s with their measures,
    through ``runner`` (the report's: its run store makes an interrupted run resume, training only
    the runs it lacks; its executor may be a Dask cluster; default a local runner without a store):
    per (data, regime, width) one batch per stage (every init and seed; ``k_early`` steps, and
    ``k_conv`` steps from scratch), then one batch per memorisation regime. Returns ``{"config",
    "settings" (per data and regime: lr, the kernel's extremes, steps_early, steps_converged),
    "limit" (one record per network and stage: its row's ``lr``, ``steps``, ``status``, ``loss_rel``,
    the errors and scales of its comparisons, and the setting keys), "memorisation" (per regime: the
    row's settings and outcome with the measure's record), "notes"}``."""
    with small_problems(config["device"]), Runner.given(runner) as runner:
        return _run(config, progress, runner)


def _run(config: dict, progress: Callable[[str, float], None] | None, runner: Runner) -> dict:
    lim, mem = config["limit"], config["memorisation"]
    kappa, nu, safety = float(config["kappa"]), float(config["nu"]), float(config["safety"])
    notes: list[str] = []  # the runs' notes, from their rows (the loads here repeat the runs' own: dropped)
    if progress is not None:
        progress("E4: planning the runs", 0.0)
    settings: list[dict] = []
    batches: list[list[TrainJob]] = []
    plans: list[tuple[str, dict]] = []  # per batch: its part and what its records carry beyond the row
    for spec in lim["data"]:
        X = Job(data=spec["name"], n=int(spec["n"]), d=int(spec["d"]) if spec["name"] == "sphere" else None,
                **_common(config)).load(Notes())  # what the jobs of this spec train on
        n, d = X.shape
        for regime in lim["regimes"]:
            K = regime_kernel(X, regime, kappa=kappa, nu=nu)
            eta, lam_min, lam_max = limit_eta(K, safety)
            k1 = predicted_steps(X, K, eta, float(lim["early_target"]), kappa=kappa, nu=nu)
            k2 = max(k1 + 1, predicted_steps(X, K, eta, float(lim["converged_target"]), kappa=kappa, nu=nu))
            settings.append({"data": spec["name"], "n": int(n), "d": int(d), "regime": regime, "lr": eta,
                             "lambda_min_inf": lam_min, "lambda_max_inf": lam_max, "steps_early": k1,
                             "steps_converged": k2})
            for width in lim["widths"]:
                for stage, k in zip(STAGES, (k1, k2), strict=True):
                    batches.append([limit_job(config, spec, regime, int(width), init, seed, eta, k)
                                    for init in lim["inits"] for seed in lim["seeds"]])
                    plans.append(("limit", {"stage": stage}))
    for regime in mem["regimes"]:
        X = memorisation_job(config, regime).load(Notes())
        K = regime_kernel(X, regime, kappa=kappa, nu=nu)
        eta, lam_min, lam_max = limit_eta(K, safety)
        k_pred, budget = memorisation_budget(X, K, eta, float(mem["target"]), float(mem["budget_factor"]))
        batches.append([memorisation_job(config, regime, eta, budget)])
        plans.append(("memorisation", {"lambda_min_inf": lam_min, "lambda_max_inf": lam_max,
                                       "predicted_steps": k_pred}))

    def trained(done: int, total: int) -> None:
        if progress is not None:
            progress(f"E4: {done} of {total} batches trained", done / total if total else 1.0)

    rows = runner.run(batches, progress=trained)
    refused = [row for batch in rows for row in batch if row.get("status") == UNTRAINABLE]
    if refused:  # a setting no run of it can take (a held-out seed that draws the training data again, say)
        raise AedynError(f"E4: {count(len(refused), sum(map(len, rows)), 'run')} could not train: "
                         f"{refused[0].get('message')}")
    records, memo = [], []
    for (part, extra), batch in zip(plans, rows, strict=True):
        for row in batch:
            notes.extend(notes_of([row]))
        if part == "limit":
            records += [_limit_record(row, extra["stage"]) for row in batch]
        else:
            memo.append(_memo_record(batch[0], extra))
    if progress is not None:
        progress("E4: done", 1.0)
    return {"config": config, "settings": settings, "limit": records, "memorisation": memo,
            "notes": sorted(set(notes))}


def _limit_runs(config: dict) -> list[dict]:
    """The identifying settings of every part (a) record, in their order: data set, regime, width,
    stage, initialisation and seed."""
    lim = config["limit"]
    return [{"data": spec["name"], "regime": regime, "width": int(width), "stage": stage, "init": init,
             "seed": int(seed)}
            for spec in lim["data"] for regime in lim["regimes"] for width in lim["widths"] for stage in STAGES
            for init in lim["inits"] for seed in lim["seeds"]]


def runs(config: dict) -> list[dict]:
    """The identifying settings of every run: part (a)'s (:func:`_limit_runs`), then one
    memorisation network per regime of part (b)."""
    return [{"part": "limit", **r} for r in _limit_runs(config)] + [
        {"part": "memorisation", "regime": regime} for regime in config["memorisation"]["regimes"]]


def missing(config: dict, results: Any) -> list[str]:
    """How finished ``results`` fall short of ``config`` (:func:`aedyn.experiments.missing_runs`
    for each part, and one setting per data set and regime); ``ValueError`` when they are damaged."""
    results = require_results(results, config, ("settings", "limit", "memorisation"))
    gaps = missing_runs(results["limit"], _limit_runs(config), "part (a) runs")
    gaps += missing_runs(results["memorisation"], [{"regime": r} for r in config["memorisation"]["regimes"]],
                         "memorisation runs")
    lim = config["limit"]
    settings = [{"data": spec["name"], "regime": regime} for spec in lim["data"] for regime in lim["regimes"]]
    return gaps + missing_runs(results["settings"], settings, "settings")


def _limit_record(row: dict, stage: str) -> dict:
    """A part (a) run's record: its row's setting keys (data, regime, width, seed), ``init``
    (``zero`` for a row with ``zero_output``, else ``standard``) and ``stage``, :data:`LIMIT_KEYS`,
    and ``error_<inputs>``, ``scale_<inputs>`` of the input sets compared at this stage
    (:data:`COMPARISONS`)."""
    init = "zero" if row.get("zero_output") else "standard"
    out = {"data": row["data"], "regime": row["regime"], "init": init, "width": int(row["width"]),
           "seed": int(row["seed"]), "stage": stage, **{k: row.get(k) for k in LIMIT_KEYS}}
    for s, inputs in COMPARISONS:
        if s == stage:
            for what in ("error", "scale"):
                out[f"{what}_{INPUT_COLUMNS[inputs]}"] = row.get(f"{what}_{INPUT_COLUMNS[inputs]}")
    return out


def _memo_record(row: dict, extra: dict) -> dict:
    """A part (b) run's record: :data:`MEMO_KEYS` of its row, the infinite-width kernel's extremes and
    the predicted steps (``extra``), and the ``memorisation`` measure's record (``iterations``,
    ``train_labels``, ``train_images``, ``kinds``, ``images``)."""
    return {**{k: row.get(k) for k in MEMO_KEYS}, **extra, **json.loads(row["memorisation"])}


# ---- the tables -----------------------------------------------------------------------------------

LIMIT_COLUMNS = ("part", "data", "regime", "init", "width", "seed", "stage", "lr", "steps", "inputs", "error",
                 "scale", "loss_rel", "status")
MEMO_COLUMNS = ("part", "regime", "width", "kind", "map", "index", "in_span", "input_in_span", "nearest_distance",
                "nearest_index", "nearest_is_source", "nearest_same_class", "input_nearest_distance",
                "input_distance", "output_norm", "network_vs_predictor", "fate", "end_is_source")
COLUMNS = tuple(dict.fromkeys(LIMIT_COLUMNS + MEMO_COLUMNS))
MEMO_SUMMARY_COLUMNS = ("regime", "width", "kind", "map", "inputs", "in_span_median", "in_span_min",
                        "input_in_span_median", "nearest_distance_median", "input_nearest_distance_median",
                        "nearest_is_source", "nearest_same_class", "output_norm_median", "training_sample",
                        "fixed_point", "zero", "moving", "diverged", "end_norm_median", "end_nearest_distance_median")


def tabulate(results: dict) -> Any:
    """The tidy table, long: ``part = "limit"`` rows (one per data, regime, init, width, seed, stage
    and input set, with ``error``: :func:`comparisons`) and ``part = "memorisation"`` rows (one per
    regime, input kind, map and input, with the memorisation measures); columns a part does not have
    are empty."""
    import pandas as pd

    rows = [{"part": "limit", **c} for c in comparisons(results)]
    for res in results["memorisation"]:
        labels = res["train_labels"]
        for kind, e in res["kinds"].items():
            for name in MAPS:
                mp = e[name]
                for i in range(e["count"]):
                    near = mp["nearest_index"][i]
                    end = mp["end_sample"][i]
                    row = {"part": "memorisation", "regime": res["regime"], "width": res["width"], "kind": kind,
                           "map": name, "index": i, "in_span": mp["in_span"][i],
                           "input_in_span": e["input_in_span"][i], "nearest_distance": mp["nearest_distance"][i],
                           "nearest_index": near, "input_nearest_distance": e["input_nearest_distance"][i],
                           "input_distance": mp["input_distance"][i], "output_norm": mp["output_norm"][i],
                           "network_vs_predictor": e["network_vs_predictor"][i], "fate": mp["fate"][i]}
                    if kind == "noisy":
                        row["nearest_is_source"] = near == e["source"][i]
                        row["end_is_source"] = end is not None and end == e["source"][i]
                    if kind == "held-out":
                        row["nearest_same_class"] = labels[near] == e["labels"][i]
                    rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    numeric = ["width", "seed", "lr", "steps", "error", "scale", "loss_rel", "index", "in_span", "input_in_span",
               "nearest_distance", "nearest_index", "input_nearest_distance", "input_distance", "output_norm",
               "network_vs_predictor"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    for col in ("nearest_is_source", "nearest_same_class", "end_is_source"):
        table[col] = table[col].astype("boolean")
    return table


def tables(results: dict) -> dict[str, Any]:
    """Further full tables: ``memorisation``, one row per regime, input kind and map (the input itself
    included as ``map = "input"``) with the medians, the nearest-sample shares and the fate counts."""
    import pandas as pd

    rows = []
    for regime, mr in memorisation_summary(results).items():
        for kind, e in mr["kinds"].items():
            rows.append({"regime": regime, "width": mr["width"], "kind": kind, "map": "input", "inputs": e["count"],
                         "in_span_median": e["input_in_span_median"], "in_span_min": e["input_in_span_min"],
                         "nearest_distance_median": e["input_nearest_distance_median"],
                         "nearest_is_source": e.get("input_nearest_is_source"),
                         "nearest_same_class": e.get("input_nearest_same_class")})
            for name in MAPS:
                mp = e[name]
                rows.append({"regime": regime, "width": mr["width"], "kind": kind, "map": name,
                             "inputs": e["count"], "in_span_median": mp["in_span_median"],
                             "in_span_min": mp["in_span_min"], "input_in_span_median": e["input_in_span_median"],
                             "nearest_distance_median": mp["nearest_distance_median"],
                             "input_nearest_distance_median": e["input_nearest_distance_median"],
                             "nearest_is_source": mp.get("nearest_is_source"),
                             "nearest_same_class": mp.get("nearest_same_class"),
                             "output_norm_median": mp["output_norm_median"],
                             **{f.replace(" ", "_"): mp["fates"].get(f, 0) for f in FATES},
                             "end_norm_median": mp["end_norm_median"],
                             "end_nearest_distance_median": mp["end_nearest_distance_median"]})
    return {"memorisation": pd.DataFrame(rows, columns=list(MEMO_SUMMARY_COLUMNS))}


# ---- the analysis ---------------------------------------------------------------------------------

COMPARISONS: tuple[tuple[str, str], ...] = (("early", "train"), ("early", "held-out"), ("converged", "held-out"))
"""The (stage, inputs) pairs at which network and predictor are compared, in order."""


def comparisons(results: dict) -> list[dict]:
    """Part (a) in long form: per network (data, regime, width, init, seed) and comparison
    (:data:`COMPARISONS`, in that order), its run's setting keys, ``lr``, ``steps``, ``status``,
    ``loss_rel``, the ``inputs`` and their ``error`` and ``scale`` (the ``limit`` measure's
    ``error_<inputs>``, ``scale_<inputs>``); networks in the order of their first record."""
    order: dict[tuple, int] = {}
    out = []
    for r in results["limit"]:
        order.setdefault((r["data"], r["regime"], r["width"], r["init"], r["seed"]), len(order))
        for stage, inputs in COMPARISONS:
            if r["stage"] == stage:
                col = INPUT_COLUMNS[inputs]
                out.append({**{k: r.get(k) for k in ("data", "regime", "init", "width", "seed", "stage", "lr",
                                                     "steps", "status", "loss_rel")},
                            "inputs": inputs, "error": r.get(f"error_{col}"), "scale": r.get(f"scale_{col}")})
    out.sort(key=lambda c: (order[(c["data"], c["regime"], c["width"], c["init"], c["seed"])],
                            COMPARISONS.index((c["stage"], c["inputs"]))))
    return out


def _keys(recs: Sequence[dict], fields: Sequence[str]) -> list[tuple]:
    return list(dict.fromkeys(tuple(r[f] for f in fields) for r in recs))


def _order(values: Sequence[str], first: Sequence[str]) -> list[str]:
    """``values`` with those in ``first`` first, in that order."""
    return [v for v in first if v in values] + [v for v in values if v not in first]


def slopes(results: dict) -> list[dict]:
    """One fitted slope per (data, regime, init, stage, inputs) of part (a): ``fit``, the
    :class:`aedyn.stats.Slope` of the error against ``m`` (:func:`aedyn.stats.fit_slope` over the
    seeds' errors lined up by :func:`aedyn.experiments.values_by_seed`; ``None`` with fewer than two
    widths) and its ``value``, ``ci_low``, ``ci_high``; ``points`` the finite errors, ``missing`` the
    networks without one; ``widths`` every width run; ``at_largest`` the geometric mean of the seeds'
    errors at the largest width with the t interval of their logarithms (an :class:`Estimate`), and
    ``error_at_largest`` its value."""
    recs = comparisons(results)
    out = []
    for data, regime, init, stage, inputs in _keys(recs, ("data", "regime", "init", "stage", "inputs")):
        mine = [r for r in recs if (r["data"], r["regime"], r["init"], r["stage"], r["inputs"])
                == (data, regime, init, stage, inputs)]
        widths, values = values_by_seed(mine, "error")
        fit = fit_slope(widths, values)
        top = _geometric([v for v in values[-1] if v is not None])
        points = sum(v is not None and math.isfinite(v) for row in values for v in row)
        out.append({"data": data, "regime": regime, "init": init, "stage": stage, "inputs": inputs, "fit": fit,
                    "value": None if fit is None else fit.value, "ci_low": None if fit is None else fit.low,
                    "ci_high": None if fit is None else fit.high, "seeds": 0 if fit is None else fit.units,
                    "points": points, "missing": len(mine) - points,
                    "zero_widths": [] if fit is None else list(fit.zero_widths), "widths": [int(w) for w in widths],
                    "at_largest": top, "error_at_largest": None if top is None else _finite(top.value)})
    return out


def _geometric(values: Sequence[float], method: str = "geometric mean over seeds; t interval of the logarithms",
               ) -> Estimate | None:
    """The geometric mean of positive ``values`` with the t interval of their logarithms, back on the
    original scale (``None`` without a positive finite value)."""
    logs = [math.log(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    e = t_interval(logs, method=method)
    if e is None:
        return None
    return Estimate(math.exp(e.value), None if e.low is None else math.exp(e.low),
                    None if e.high is None else math.exp(e.high), e.level, method, e.units)


def init_ratios(results: dict) -> list[dict]:
    """``f_0 ≡ 0`` against the standard init, per (data, regime, stage, inputs): the per-seed ratio
    ``err_zero / err_standard`` of the two networks of one seed and width; ``at_largest``, its
    geometric mean over the seeds at the largest width with the t interval of the log-ratios;
    ``slope``, the :class:`Slope` of the ratio against ``m`` (per seed, the zero init's slope minus
    the standard init's), with its t interval over the seeds."""
    recs = comparisons(results)
    out = []
    for data, regime, stage, inputs in _keys(recs, ("data", "regime", "stage", "inputs")):
        mine = [r for r in recs if (r["data"], r["regime"], r["stage"], r["inputs"]) == (data, regime, stage, inputs)]
        err = {(r["init"], r["width"], r["seed"]): r["error"] for r in mine}
        pairs = []
        for (init, width, seed), e in err.items():
            other = err.get(("standard", width, seed))
            if init == "zero" and e is not None and other is not None and other > 0:
                pairs.append({"width": width, "seed": seed, "ratio": e / other})
        if not pairs:
            continue
        widths, values = values_by_seed(pairs, "ratio")
        out.append({"data": data, "regime": regime, "stage": stage, "inputs": inputs, "largest": int(widths[-1]),
                    "at_largest": _geometric([v for v in values[-1] if v is not None],
                                             "geometric mean over seeds of the per-seed ratio; t interval of the "
                                             "log-ratios"),
                    "slope": fit_slope(widths, values)})
    return out


def _main(results: dict) -> tuple[str, str] | None:
    """The (data, regime) of the headline: the first data set, joint if it was run."""
    recs = results["limit"]
    if not recs:
        return None
    data = recs[0]["data"]
    regimes = _order([r["regime"] for r in recs if r["data"] == data], ("joint",))
    return data, regimes[0]


def _excluded(s: dict) -> list[str]:
    if not s["missing"]:
        return []
    total = s["missing"] + s["points"]
    return [f"{count(s['missing'], total, 'network')} without a finite error left out"]


def _slope_finding(s: dict) -> Finding:
    subject = f"{s['data']}, {s['regime']}, {'f_0 ≡ 0' if s['init'] == 'zero' else 'standard init'}, " \
              f"{s['inputs']} inputs ({s['stage']})"
    return power_law("limit", NAME, subject, "the error against the NTK-limit prediction", s["fit"],
                     reference=THEORY_SLOPE, kind="equals", close=CLOSE, runs=s["points"], excluded=_excluded(s))


def _ratio_finding(c: dict) -> Finding:
    """The error with ``f_0 ≡ 0`` over the standard init's at the largest width, through the interval
    of the per-seed ratio (:func:`aedyn.findings.comparison`), and where ``sqrt(2)`` lies."""
    f = comparison("limit", NAME, f"{c['data']}, {c['regime']}, {c['inputs']} inputs ({c['stage']}), m = "
                   f"{c['largest']}", "the error with f_0 ≡ 0 over the standard init's", c["at_largest"],
                   equal=1.0, ratio=True, larger="the error with f_0 ≡ 0 is larger than with the standard init",
                   smaller="the error with f_0 ≡ 0 is smaller than with the standard init",
                   runs=2 * (0 if c["at_largest"] is None else c["at_largest"].units))
    e = c["at_largest"]
    if e is not None and e.has_interval and e.units >= MIN_SEEDS:
        where = "contains" if e.contains(PAIRED_RATIO) else "excludes"
        f = replace(f, sentence=f.sentence[:-1] + f"; the interval {where} sqrt(2) ≈ 1.41, the ratio a kernel "
                    "fluctuating like a width-m/2 one alone would give (the paired init has m/2 independent "
                    "neurons).")
    return f


def _slope_difference_finding(c: dict) -> Finding:
    return comparison("limit", NAME, f"{c['data']}, {c['regime']}, {c['inputs']} inputs ({c['stage']})",
                      "the slope of the error with f_0 ≡ 0 minus the standard init's", c["slope"], equal=0.0,
                      larger="the error with f_0 ≡ 0 falls more slowly with m than with the standard init",
                      smaller="the error with f_0 ≡ 0 falls faster with m than with the standard init")


def slope_count(results: dict) -> Finding:
    """How many of the fitted slopes fall with ``m`` (interval below 0) and how many are consistent
    with ``m^-1/2`` (interval containing it) or miss it by at most 0.05 (rule ``slopes/count``):
    ``supported`` when every interval contains -1/2; ``partly supported`` when every slope falls (or
    some interval contains -1/2);
    ``not supported`` when some do not; ``inconclusive`` below :data:`aedyn.stats.MIN_SEEDS` seeds."""
    fits = [s for s in slopes(results) if s["fit"] is not None]
    if not fits:
        return statement("limit", NAME, "every setting", "slopes of the error against m",
                         "No slope could be fitted (too few widths).", "inconclusive", rule="slopes/count")
    seeds = min(s["fit"].units for s in fits)
    inside = sum(s["fit"].contains(THEORY_SLOPE) for s in fits)
    close = sum(not s["fit"].contains(THEORY_SLOPE) and abs(s["value"] - THEORY_SLOPE) <= CLOSE for s in fits)
    falls = sum(s["fit"].has_interval and s["fit"].high < 0 for s in fits)
    n = len(fits)
    values = [s["value"] for s in fits]
    text = (f"Of {n} fitted slopes of the error against m, {_of(falls, n)} fall with m (95% interval below 0) and "
            f"{_of(inside, n)} have an interval containing -1/2" + (f"; {close} more miss{'es' if close == 1 else ''} "
                                                                     "it by at most 0.05" if close else "")
            + f"; the slopes lie between {num(min(values))} and {num(max(values))} ({seeds_phrase(seeds)}).")
    if inside == n:
        verdict = "supported"
    elif falls == n:
        verdict = "partly supported"
    else:
        verdict = "partly supported" if inside else "not supported"
    return statement("limit", NAME, "every setting", "slopes of the error against m", text, verdict,
                     key=f"{inside} of {n} contain -1/2; {falls} of {n} fall", seeds=seeds,
                     runs=sum(s["points"] for s in fits), rule="slopes/count", unit="slopes")


def _of(k: int, n: int) -> str:
    """``k`` of ``n`` as a sentence's subject: "all 12", "none of the 12", "3 of 12", "its one"."""
    if n == 1:
        return "its one" if k == 1 else "not its one"
    return f"all {n}" if k == n else f"none of the {n}" if k == 0 else f"{k} of {n}"


# ---- memorisation: the summary and the rules that put it into words -------------------------------

def memorisation_summary(results: dict) -> dict:
    """Per regime, input kind and map: median and least in-span share (and the input's own),
    nearest-sample statistics (for noisy inputs the share whose nearest training sample is the
    source, for held-out ones the share of the same class; for the input itself too), median
    ``||f(x) - x||`` and output norm, fate counts and where the iterates end; per kind, the median
    network-predictor gap. (A value the measure could not give, ``None`` in the record, counts as NaN.)"""
    out: dict[str, Any] = {}
    for res in results["memorisation"]:
        labels = res["train_labels"]
        per: dict[str, Any] = {}
        for kind, e in res["kinds"].items():
            entry: dict[str, Any] = {
                "count": e["count"], "input_in_span_median": float(np.median(_floats(e["input_in_span"]))),
                "input_in_span_min": float(np.min(_floats(e["input_in_span"]))),
                "input_nearest_distance_median": float(np.median(_floats(e["input_nearest_distance"]))),
                "network_vs_predictor_median": _finite(float(np.median(_floats(e["network_vs_predictor"]))))}
            if kind == "noisy":
                entry["input_nearest_is_source"] = float(np.mean([a == b for a, b in
                                                                   zip(e["input_nearest_index"], e["source"],
                                                                       strict=True)]))
            if kind == "held-out":
                entry["input_nearest_same_class"] = float(np.mean([labels[a] == b for a, b in
                                                                    zip(e["input_nearest_index"], e["labels"],
                                                                        strict=True)]))
            for name in MAPS:
                mp = e[name]
                near = mp["nearest_index"]
                in_span, nearest, final = _floats(mp["in_span"]), _floats(mp["nearest_distance"]), \
                    _floats(mp["final_norm"])
                stats: dict[str, Any] = {
                    "in_span_median": float(np.median(in_span)), "in_span_min": float(np.min(in_span)),
                    "nearest_distance_median": float(np.median(nearest)),
                    "nearest_distance_max": float(np.max(nearest)),
                    "input_distance_median": float(np.median(_floats(mp["input_distance"]))),
                    "output_norm_median": float(np.median(_floats(mp["output_norm"]))),
                    "end_nearest_distance_median": _finite(float(np.median(_floats(mp["final_nearest"])))),
                    "end_norm_median": _finite(float(np.median(final))),
                    "end_shrunk": int(np.sum(final < TOWARDS_ZERO)),
                    "end_grown": int(np.sum(~(final < GROWING))),
                    "fates": dict(sorted(mp["fate_counts"].items()))}
                if kind == "noisy":
                    stats["nearest_is_source"] = float(np.mean([a == b for a, b in
                                                                 zip(near, e["source"], strict=True)]))
                    stats["end_is_source"] = float(np.mean([a is not None and a == b for a, b in
                                                             zip(mp["end_sample"], e["source"], strict=True)]))
                if kind == "held-out":
                    stats["nearest_same_class"] = float(np.mean([labels[a] == b for a, b in
                                                                 zip(near, e["labels"], strict=True)]))
                entry[name] = stats
            per[kind] = entry
        out[res["regime"]] = {"width": res["width"], "n": res["n"], "status": res["status"], "steps": res["steps"],
                              "step_budget": res.get("step_budget"), "iterations": res.get("iterations"),
                              "final_relative_loss": res["final_relative_loss"], "kinds": per}
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


SPAN_LEVELS: tuple[str, ...] = ("in", "mostly", "towards", "not")
"""What :func:`span_words` found, strongest first."""


def span_words(stats: dict, entry: dict | None = None, *, what: str = "outputs") -> tuple[str, str]:
    """Rule ``memorisation/span``: where outputs lie against the span of the training samples, from
    the in-span shares of one map on one kind of input (``stats``: ``in_span_median``,
    ``in_span_min``; ``entry``: the inputs' own ``input_in_span_median``, ``None`` for none). Returns
    ``(level, words)``, level one of :data:`SPAN_LEVELS`:

    - ``in``: every output has at least :data:`IN_SPAN_HIGH` of its energy in the span;
    - ``mostly``: the median does, not every output;
    - ``towards``: the median exceeds the inputs' own by more than :data:`SPAN_PULL`;
    - ``not``: otherwise."""
    median, least = stats["in_span_median"], stats["in_span_min"]
    own = None if entry is None else entry.get("input_in_span_median")
    nums = f"median {_pct(median)} of their energy, least {_pct(least)}" + (
        "" if own is None else f"; the inputs' own {_pct(own)}")
    if least >= IN_SPAN_HIGH:
        return "in", f"{what} lie in the span of the training samples ({nums})"
    if median >= IN_SPAN_HIGH:
        return "mostly", f"most {what} lie in the span of the training samples, not all ({nums})"
    if own is not None and median > own + SPAN_PULL:
        return "towards", f"{what} are pulled towards the span of the training samples, not into it ({nums})"
    return "not", f"{what} are not pulled into the span of the training samples ({nums})"


def nearest_words(kind: str, stats: dict, entry: dict) -> tuple[bool | None, str]:
    """Rule ``memorisation/nearest``: what the nearest training sample of one map's outputs shows,
    against the inputs' own nearest sample (the identity map's). Returns ``(next_to_source, words)``:
    for noisy inputs ``next_to_source`` is whether the source digit is the nearest training sample of
    every output (only then "mapped next to their source digit"); for other kinds ``None``. Held-out
    inputs: how many outputs are nearest a training sample of the input's class. Random inputs: the
    median output norm ("shrink" below :data:`SHRINK`) and distance (a zero output is 1 from every
    unit training sample)."""
    n = int(entry["count"])
    d, d_in = num(stats["nearest_distance_median"]), num(entry["input_nearest_distance_median"])
    if kind == "noisy" and "nearest_is_source" in stats:
        k = round(stats["nearest_is_source"] * n)
        own = entry.get("input_nearest_is_source")
        base = f"; the noisy inputs': {'-' if own is None else _of(round(own * n), n)}, {d_in}"
        if k == n:
            return True, (f"noisy copies are mapped next to their source digit (it is the nearest training sample of "
                          f"{_of(k, n)} outputs, median distance {d}{base})")
        which = "none" if k == 0 else f"{k} of {n}"
        return False, (f"the source digit is the nearest training sample of {which} outputs, not of every one "
                       f"(median distance {d}{base})")
    if kind == "held-out" and "nearest_same_class" in stats:
        k = round(stats["nearest_same_class"] * n)
        own = entry.get("input_nearest_same_class")
        return None, (f"{_of(k, n)} outputs are nearest a training sample of the input's class (the inputs "
                      f"themselves: {'-' if own is None else _of(round(own * n), n)}); median distance to the nearest "
                      f"training sample {d} (the inputs' {d_in})")
    norm = stats["output_norm_median"]
    shrink = f"outputs shrink (median norm {num(norm)})" if norm < SHRINK else f"median output norm {num(norm)}"
    return None, f"{shrink}; median distance to the nearest training sample {d} (the inputs' {d_in}; a zero output's 1)"


def fate_words(stats: dict, n: int, iterations: int | None, *, noisy: dict | None = None) -> tuple[str, str]:
    """Rule ``memorisation/attractors``: where the iterates ``x, f(x), f(f(x)), ...`` of one map end,
    from its fate counts over ``n`` inputs (``stats``: ``fates``; ``end_shrunk`` and ``end_grown``, how
    many end with norm below :data:`TOWARDS_ZERO` or above :data:`GROWING`; ``end_norm_median``,
    ``end_nearest_distance_median``; ``noisy``: the noisy inputs' ``count`` and ``end_is_source``
    share, to say whether they end at their source). Returns ``(verdict, words)``: the training
    samples are attractors (``supported``) only when every iterate ends at one; ``partly supported``
    when some do; none ending at one is ``not supported``, unless every iterate is still moving and
    at most half of them shrink towards 0 (then where they end is unknown: ``inconclusive``)."""
    fates = stats["fates"]
    train, fixed, zero = fates.get("training sample", 0), fates.get("fixed point", 0), fates.get("zero", 0)
    moving, diverged = fates.get("moving", 0), fates.get("diverged", 0)
    shrunk, grown = int(stats.get("end_shrunk", 0)), int(stats.get("end_grown", 0))
    after = "" if iterations is None else f" after {iterations} iterations"
    if train == n:
        verdict, head = "supported", f"the iterates of {_of(train, n)} inputs end at a training sample: for them " \
                                     "the training samples are attractors"
    else:
        head = "no iterate ends at a training sample" if train == 0 else \
            f"the iterates of {train} of {n} inputs end at a training sample"
        if train:
            verdict = "partly supported"
        elif moving == n and 2 * shrunk <= n:
            verdict = "inconclusive"
        else:
            verdict = "not supported"
    rest = [f"{fixed} at a fixed point that is not a training sample" if fixed else "",
            f"{zero} at 0" if zero else "", f"{moving} still moving{after}" if moving else "",
            f"{diverged} diverged" if diverged else ""]
    rest = [r for r in rest if r]
    text = head + ("" if not rest or train == n else " (" + ", ".join(rest) + ")")
    sizes = [f"{_of(shrunk, n)} shrink towards 0 (norm below {TOWARDS_ZERO:g}{after})" if shrunk else "",
             f"{_of(grown, n)} grow (norm above {GROWING:g}{after}), away from every training sample" if grown else ""]
    sizes = [x for x in sizes if x]
    if sizes:
        text += "; " + ", ".join(sizes)
    if 2 * (shrunk + grown) < n and stats.get("end_norm_median") is not None:
        text += (f"; the median endpoint has norm {num(stats['end_norm_median'])} and lies "
                 f"{num(stats.get('end_nearest_distance_median'))} from the nearest training sample")
    if noisy is not None and "end_is_source" in noisy:
        k, m = round(noisy["end_is_source"] * noisy["count"]), noisy["count"]
        text += ("; no noisy input ends at its source digit" if k == 0 else
                 f"; {_of(k, m)} noisy inputs end at their source digit")
    return verdict, text


def _training(mr: dict) -> tuple[str, str | None]:
    """How the memorisation network's training ended, and the still-training clause if it hit its budget."""
    status = (f"{mr['status']} after {mr['steps']} steps at loss {sig(mr['final_relative_loss'], 2)} L(0)")
    return status, (None if mr["status"] == "converged" else unfinished(1, 1))


def outputs_finding(regime: str, mr: dict) -> Finding:
    """Rule ``memorisation/outputs``: what one network (and the kernel predictor) does to held-out,
    noisy and random inputs (:func:`span_words`, :func:`nearest_words`). ``supported`` when every
    kind's outputs lie in the span and noisy copies are mapped next to their source; ``partly
    supported`` when every kind's are at least pulled towards the span; ``not supported`` otherwise.
    A network stopped by its step budget is still training: it says so, and is at most ``partly
    supported``."""
    parts, levels, sources, keys, pred_levels, gaps = [], [], [], [], [], []
    kinds = [k for k in KINDS if k in mr["kinds"]]
    for kind in kinds:
        e = mr["kinds"][kind]
        level, where = span_words(e["network"], e)
        next_to, near = nearest_words(kind, e["network"], e)
        levels.append(level)
        if next_to is not None:
            sources.append(next_to)
        pred_levels.append(span_words(e["predictor"], e)[0])
        gaps.append(e["network_vs_predictor_median"])
        parts.append(f"{kind} inputs: {where}; {near}")
        keys.append(f"{kind} {_pct(e['network']['in_span_median'])}")
    pred = ("The kernel predictor's outputs lie in the span for every kind" if all(p == "in" for p in pred_levels)
            else "The kernel predictor's outputs: " + ", ".join(
                f"{k} {_pct(mr['kinds'][k]['predictor']['in_span_median'])} in the span (median)" for k in kinds))
    if any(g is not None for g in gaps):
        pred += ("; the network differs from it by " + ", ".join(_pct(g) for g in gaps)
                 + f" (median relative; {', '.join(kinds)})")
    parts.append(pred)
    status, still = _training(mr)
    if all(lv == "in" for lv in levels) and all(sources):
        verdict = "supported"
    elif all(lv in ("in", "mostly", "towards") for lv in levels):
        verdict = "partly supported"
    else:
        verdict = "not supported"
    if still is not None and verdict == "supported":
        verdict = "partly supported"
    subject = f"digits, {regime}, m = {mr['width']}"
    text = (f"{subject}, one network (f_0 ≡ 0) trained on n = {mr['n']} digits ({status}"
            + ("" if still is None else f"; {still}") + "). " + ". ".join(p[0].upper() + p[1:] for p in parts) + ".")
    return statement("memorisation", NAME, subject, "what the network does to held-out, noisy and random inputs",
                     text, verdict, key="in span (median): " + ", ".join(keys), runs=1,
                     rule="memorisation/outputs", unit="share")


def attractor_finding(memo: dict) -> Finding:
    """Rule ``memorisation/attractors`` over every regime's network and its kernel predictor
    (:func:`fate_words` on the counts summed over the input kinds); the verdict is the networks'
    (:func:`aedyn.findings.combine` over the regimes), the predictors are the reference."""
    if not memo:
        return statement("memorisation", NAME, "digits", "where the iterates end", "No memorisation run.",
                         "inconclusive", rule="memorisation/attractors")
    parts, verdicts, keys = [], [], []
    first = next(iter(memo.values()))
    kinds = [k for k in KINDS if k in first["kinds"]]
    for regime, mr in memo.items():
        n = sum(mr["kinds"][k]["count"] for k in kinds if k in mr["kinds"])
        noisy = mr["kinds"].get("noisy")
        for name in MAPS:
            pooled = _pool([mr["kinds"][k][name] for k in kinds if k in mr["kinds"]])
            verdict, words = fate_words(pooled, n, None, noisy=None if noisy is None else
                                        {"count": noisy["count"], **noisy[name]})
            who = f"{regime} network (m = {mr['width']})" if name == "network" else f"{regime} kernel predictor"
            parts.append(f"{who}: {words}")
            if name == "network":
                verdicts.append(verdict)
                keys.append(f"{regime}: {pooled['fates'].get('training sample', 0)} of {n} at a training sample")
    verdict = combine(verdicts)
    T = first.get("iterations")
    head = (f"Where the iterates x, f(x), f(f(x)), ... are{'' if T is None else f' after {T} iterations'} "
            f"({sum(first['kinds'][k]['count'] for k in kinds)} inputs: "
            + ", ".join(f"{first['kinds'][k]['count']} {k}" for k in kinds) + "): ")
    tail = {"supported": "the training samples attract these inputs",
            "partly supported": "the training samples attract only some of these inputs",
            "not supported": "the iterates do not show the training samples to be attractors",
            "inconclusive": "where the iterates end is not shown (they are still moving)"}[verdict]
    text = head + "; ".join(parts) + f". So {tail}."
    return statement("memorisation", NAME, "digits", "where the iterates end", text, verdict,
                     key="; ".join(keys), runs=len(memo), rule="memorisation/attractors", unit="inputs")


def _pool(stats: Sequence[dict]) -> dict:
    """Fate and endpoint-size counts summed over input kinds, with the medians of the kinds' endpoint
    medians."""
    fates: dict[str, int] = {}
    for s in stats:
        for k, v in s["fates"].items():
            fates[k] = fates.get(k, 0) + int(v)

    def med(key: str) -> float | None:
        vals = [s[key] for s in stats if s.get(key) is not None]
        return float(np.median(vals)) if vals else None

    return {"fates": fates, "end_norm_median": med("end_norm_median"),
            "end_nearest_distance_median": med("end_nearest_distance_median"),
            "end_shrunk": sum(int(s.get("end_shrunk", 0)) for s in stats),
            "end_grown": sum(int(s.get("end_grown", 0)) for s in stats)}


# ---- findings, details, summary ---------------------------------------------------------------------

def _headline_regime(memo: dict) -> str | None:
    regimes = _order(list(memo), ("joint",))
    return regimes[0] if regimes else None


def findings(results: dict) -> list[Finding]:
    """At most five findings:

    1. (headline, ``limit``) the main data set's joint, standard-init slope on held-out inputs before
       convergence, against ``m^-1/2`` (:func:`aedyn.findings.power_law`, ``kind="equals"``);
    2. every fitted slope: how many fall and how many are consistent with ``m^-1/2`` (:func:`slope_count`);
    3. ``f_0 ≡ 0`` against the standard init in the same setting at the largest width, through the
       interval of the per-seed error ratio (:func:`aedyn.findings.comparison`);
    4. (headline, ``memorisation``) what the network does to held-out, noisy and random inputs
       (:func:`outputs_finding`);
    5. where the iterates end, network and predictor (:func:`attractor_finding`)."""
    out: list[Finding] = []
    main = _main(results)
    if main is not None:
        data, regime = main
        sl = slopes(results)
        head = next((s for s in sl if (s["data"], s["regime"], s["init"], s["stage"], s["inputs"])
                     == (data, regime, "standard", "early", "held-out")), None) or next(
            (s for s in sl if (s["data"], s["regime"]) == (data, regime)), None)
        if head is not None:
            out.append(_slope_finding(head).as_headline("limit_error"))
        out.append(slope_count(results))
        ratio = next((c for c in init_ratios(results) if (c["data"], c["regime"], c["stage"], c["inputs"])
                      == (data, regime, head["stage"], head["inputs"])), None) if head is not None else None
        if ratio is not None:
            out.append(_ratio_finding(ratio))
    memo = memorisation_summary(results)
    regime = _headline_regime(memo)
    if regime is not None:
        out.append(outputs_finding(regime, memo[regime]).as_headline("memorisation_measures"))
        out.append(attractor_finding(memo))
    return out[:5]


def details(results: dict) -> list[str]:
    """Every setting in sentences: each slope against ``m^-1/2`` with the error at the largest width;
    each ``f_0 ≡ 0`` against standard comparison (ratio at the largest width, difference of the
    slopes); the count of slopes; per memorisation regime and input kind, network and predictor
    (span, nearest sample, fates), and how the network's training ended."""
    out = []
    for s in slopes(results):
        text = _slope_finding(s).sentence
        e = s["at_largest"]
        if e is not None:
            text += (f" Error at m = {s['widths'][-1]}: {sig(e.value)} {interval(e, 3, 'sig')} (geometric mean over "
                     f"{seeds_phrase(e.units)}).")
        out.append(text)
    for c in init_ratios(results):
        out.append(_ratio_finding(c).sentence + " " + _slope_difference_finding(c).sentence)
    if results["limit"]:
        out.append(slope_count(results).sentence)
    for regime, mr in memorisation_summary(results).items():
        status, still = _training(mr)
        out.append(f"Memorisation, {regime}, m = {mr['width']}: one network (f_0 ≡ 0) trained on n = {mr['n']} digits, "
                   f"{status}" + ("" if still is None else f"; {still}") + ".")
        for kind in [k for k in KINDS if k in mr["kinds"]]:
            e = mr["kinds"][kind]
            for name in MAPS:
                st = e[name]
                _, where = span_words(st, e)
                _, near = nearest_words(kind, st, e)
                _, fate = fate_words(st, e["count"], mr.get("iterations"), noisy={"count": e["count"], **st}
                                     if kind == "noisy" else None)
                who = f"the {regime} network" if name == "network" else "the kernel predictor"
                text = (f"Memorisation, {regime}, {kind} inputs, {who}: {where}; {near}; median ||f(x) - x|| "
                        f"{num(st['input_distance_median'])}; iterates: {fate}")
                if name == "network" and e["network_vs_predictor_median"] is not None:
                    text += f"; network and predictor differ by {_pct(e['network_vs_predictor_median'])} (median)"
                out.append(text + ".")
    return out


def summary(results: dict) -> dict:
    """The headline numbers: ``slopes`` (per data, regime, init, stage and inputs: the slope and its
    95% interval, the seeds, the error at the largest width with its interval), ``init_ratio`` (the
    f_0 ≡ 0 over standard error ratio at the largest width and the difference of the slopes, with
    intervals), ``memorisation`` (:func:`memorisation_summary`), ``settings``."""
    sl = []
    for s in slopes(results):
        e = s["at_largest"]
        sl.append({**{k: s[k] for k in ("data", "regime", "init", "stage", "inputs", "value", "ci_low", "ci_high",
                                        "seeds", "points", "widths", "error_at_largest")},
                   "error_at_largest_low": None if e is None else _finite(e.low),
                   "error_at_largest_high": None if e is None else _finite(e.high),
                   "per_seed": [] if s["fit"] is None else [float(v) for v in s["fit"].per_seed],
                   "method": None if s["fit"] is None else s["fit"].method})
    ratios = [{"data": c["data"], "regime": c["regime"], "stage": c["stage"], "inputs": c["inputs"],
               "largest": c["largest"], "ratio_at_largest": None if c["at_largest"] is None else
               c["at_largest"].to_dict(), "slope_difference": None if c["slope"] is None else c["slope"].to_dict()}
              for c in init_ratios(results)]
    return {"slopes": sl, "init_ratio": ratios, "memorisation": memorisation_summary(results),
            "settings": results.get("settings", [])}


def key_table(results: dict) -> Any:
    """The section's table: per data set, regime and comparison (stage, inputs), each initialisation's
    slope with its 95% interval, its error at the largest width (geometric mean over the seeds), and
    the f_0 ≡ 0 over standard error ratio there with its interval."""
    import pandas as pd

    sl = {(s["data"], s["regime"], s["init"], s["stage"], s["inputs"]): s for s in slopes(results)}
    ratios = {(c["data"], c["regime"], c["stage"], c["inputs"]): c for c in init_ratios(results)}
    rows = []
    for data, regime, stage, inputs in dict.fromkeys(k[:2] + k[3:] for k in sl):
        std, zero = sl.get((data, regime, "standard", stage, inputs)), sl.get((data, regime, "zero", stage, inputs))
        any_s = std or zero
        c = ratios.get((data, regime, stage, inputs))
        rows.append({"data": data, "regime": regime, "inputs (stage)": f"{inputs} ({stage})",
                     "seeds": any_s["seeds"], "largest m": any_s["widths"][-1],
                     "standard init: slope [95% CI]": _slope_cell(std), "f_0 ≡ 0: slope [95% CI]": _slope_cell(zero),
                     "standard init: error at largest m": _error_cell(std),
                     "f_0 ≡ 0: error at largest m": _error_cell(zero),
                     "f_0 ≡ 0 / standard at largest m [95% CI]": "-" if c is None or c["at_largest"] is None else
                     f"{sig(c['at_largest'].value, 3)} {interval(c['at_largest'], 3, 'sig')}"})
    return pd.DataFrame(rows)


def _slope_cell(s: dict | None) -> str:
    return "-" if s is None or s["fit"] is None else f"{num(s['value'])} {interval(s['fit'])}"


def _error_cell(s: dict | None) -> str:
    return "-" if s is None or s["error_at_largest"] is None else sig(s["error_at_largest"])


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "limit_error": "The trained network's relative error against the NTK-limit prediction (same step size and step "
                   "count) against the width m, log-log, one panel per comparison: geometric mean over the seeds "
                   "with its 95% interval, filled for the standard init and open for f_0 ≡ 0, the fitted slopes "
                   "(solid and dashed), and an m^-1/2 reference line (dotted).",
    "init_ratio": "The error with f_0 ≡ 0 over the standard init's, per seed, against the width m: geometric mean over "
                  "the seeds with its 95% interval, one panel per comparison; the dotted lines mark equal errors (1) "
                  "and sqrt(2), the ratio of a kernel fluctuating like a width-m/2 one.",
    "memorisation_measures": "What the memorisation network, the kernel predictor and the identity (the input itself) "
                             "do to held-out digits, noisy training digits and random inputs: per input, the share "
                             "of the output's energy in the span of the training samples (left) and its distance to "
                             "the nearest training sample (right); bars mark the medians.",
    "memorisation_images": "Inputs of each kind (top row) and, below them, the network's output, the training sample "
                           "nearest to it, the kernel predictor's output and the network's iterate after the last "
                           "iteration (its norm underneath); each image is scaled to its own range.",
    "memorisation_fates": "Where the iterates x, f(x), f(f(x)), ... end, per input kind, for the network and the "
                          "kernel predictor: at a training sample, at a fixed point that is not one, at 0, still "
                          "moving, or diverged.",
}


def _width_ticks(ax: Any, widths: Sequence[int]) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    ws = sorted(widths)
    shown = ws if len(ws) <= 4 else ws[::2]
    ax.xaxis.set_major_locator(FixedLocator(shown))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


_ERROR_LABEL = r"relative error $\|f_\mathrm{net} - f_\mathrm{pred}\| / \|f_\mathrm{pred} - f_{0,\mathrm{pred}}\|$"
_ZERO = r"$f_0 \equiv 0$"


@style.styled
def figures(results: dict) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): ``limit_error`` and ``init_ratio`` for part (a);
    ``memorisation_measures``, ``memorisation_images_<regime>`` and ``memorisation_fates`` for (b)."""
    out: dict[str, Any] = {}
    sl = [s for s in slopes(results) if s["points"]]
    if sl:
        out["limit_error"] = _limit_figure(results, sl)
    ratios = [c for c in init_ratios(results) if c["at_largest"] is not None]
    if ratios:
        out["init_ratio"] = _ratio_figure(results, ratios)
    memo = results["memorisation"]
    if memo:
        out["memorisation_measures"] = _measures_figure(memo)
        for res in memo:
            out[f"memorisation_images_{res['regime']}"] = _image_grid(res)
        out["memorisation_fates"] = _fate_bars(memo)
    return out


def _seed_means(recs: Sequence[dict], key: str = "error") -> tuple[list[int], list[Estimate | None]]:
    widths, values = values_by_seed(recs, key)
    return widths, [_geometric([v for v in row if v is not None]) for row in values]


def _errorbar(ax: Any, widths: Sequence[int], ests: Sequence[Estimate | None], shift: float, **kw: Any) -> None:
    pts = [(w * shift, e) for w, e in zip(widths, ests, strict=True) if e is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    y = np.array([p[1].value for p in pts])
    lo = np.array([p[1].value - (p[1].low if p[1].low is not None else p[1].value) for p in pts])
    hi = np.array([(p[1].high if p[1].high is not None else p[1].value) - p[1].value for p in pts])
    ax.errorbar(x, y, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], capsize=2, lw=1.0, **kw)


def _limit_figure(results: dict, sl: Sequence[dict]) -> Any:
    from matplotlib.lines import Line2D

    recs = comparisons(results)
    datas = list(dict.fromkeys(s["data"] for s in sl))
    panels = [p for p in COMPARISONS if any((s["stage"], s["inputs"]) == p for s in sl)]
    regimes = [r for r in style.REGIME_COLOURS if any(s["regime"] == r for s in sl)]
    fig, axes = style.figure(len(datas), len(panels), width=3.1 * len(panels), height=3.3, sharey=True)
    shifts = {"standard": 0.96, "zero": 1.04}
    for i, data in enumerate(datas):
        for j, (stage, inputs) in enumerate(panels):
            ax = axes[i][j]
            anchor = None
            widths_here: set[int] = set()
            for s in sl:
                if (s["data"], s["stage"], s["inputs"]) != (data, stage, inputs):
                    continue
                colour = style.REGIME_COLOURS.get(s["regime"], "0.3")
                mine = [r for r in recs if (r["data"], r["regime"], r["init"], r["stage"], r["inputs"])
                        == (data, s["regime"], s["init"], stage, inputs)]
                widths, ests = _seed_means(mine)
                widths_here |= set(widths)
                _errorbar(ax, widths, ests, shifts.get(s["init"], 1.0), fmt=style.DATA_MARKERS.get(data, "^"),
                          color=colour, mfc=colour if s["init"] == "standard" else "white", ms=5)
                fit = s["fit"]
                if fit is not None:
                    w = np.asarray(fit.widths, dtype=float)
                    ax.plot(w, np.exp(fit.intercept) * w ** fit.value, "-" if s["init"] == "standard" else "--",
                            color=colour, lw=1.1)
                first = next((e for e in ests if e is not None), None)
                if first is not None and (anchor is None or first.value > anchor[1]):
                    anchor = (widths[ests.index(first)], first.value)
            if anchor is not None:
                grid = np.asarray(sorted(widths_here), dtype=float)
                ax.plot(grid, 1.4 * anchor[1] * (grid / anchor[0]) ** THEORY_SLOPE, ":", color="0.4", lw=1.1)
            ax.set(xscale="log", yscale="log", title=f"{inputs} inputs, {stage}" if len(datas) == 1 else
                   f"{data}: {inputs} inputs, {stage}")
            _width_ticks(ax, sorted(widths_here))
            if i == len(datas) - 1:
                ax.set_xlabel("width m")
        axes[i][0].set_ylabel(_ERROR_LABEL if len(datas) == 1 else f"{data}: relative error", fontsize=9)
    handles = [Line2D([], [], color=style.REGIME_COLOURS[g], marker="o", lw=1.1, label=g) for g in regimes]
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", label="standard init (fit solid)"),
                Line2D([], [], color="0.3", ls="--", marker="o", mfc="white", label=_ZERO + " (fit dashed)"),
                Line2D([], [], color="0.4", ls=":", label=r"$m^{-1/2}$ reference")]
    return style.finish(fig, "E4: the trained network against the NTK-limit prediction, against the width",
                        handles=handles, ncol=min(len(handles), 5))


def _ratio_figure(results: dict, ratios: Sequence[dict]) -> Any:
    from matplotlib.lines import Line2D

    recs = comparisons(results)
    datas = list(dict.fromkeys(c["data"] for c in ratios))
    panels = [p for p in COMPARISONS if any((c["stage"], c["inputs"]) == p for c in ratios)]
    regimes = [r for r in style.REGIME_COLOURS if any(c["regime"] == r for c in ratios)]
    fig, axes = style.figure(len(datas), len(panels), width=3.1 * len(panels), height=3.0, sharey=True)
    for i, data in enumerate(datas):
        for j, (stage, inputs) in enumerate(panels):
            ax = axes[i][j]
            widths_here: set[int] = set()
            for k, regime in enumerate(regimes):
                mine = [r for r in recs if (r["data"], r["regime"], r["stage"], r["inputs"])
                        == (data, regime, stage, inputs)]
                err = {(r["init"], r["width"], r["seed"]): r["error"] for r in mine}
                pairs = [{"width": w, "seed": sd, "ratio": e / err[("standard", w, sd)]}
                         for (init, w, sd), e in err.items() if init == "zero" and e is not None
                         and err.get(("standard", w, sd)) not in (None, 0)]
                if not pairs:
                    continue
                widths, ests = _seed_means(pairs, "ratio")
                widths_here |= set(widths)
                _errorbar(ax, widths, ests, 0.97 + 0.06 * k, fmt="o-", color=style.REGIME_COLOURS[regime], ms=5)
            ax.axhline(1.0, color="0.5", ls=":", lw=1)
            ax.axhline(PAIRED_RATIO, color="0.3", ls=(0, (1, 3)), lw=1)
            ax.set(xscale="log", title=f"{inputs} inputs, {stage}" if len(datas) == 1 else
                   f"{data}: {inputs} inputs, {stage}")
            _width_ticks(ax, sorted(widths_here))
            if i == len(datas) - 1:
                ax.set_xlabel("width m")
        axes[i][0].set_ylabel("error ratio, " + _ZERO + " / standard")
    handles = [Line2D([], [], color=style.REGIME_COLOURS[g], marker="o", lw=1.0, label=g) for g in regimes]
    handles += [Line2D([], [], color="0.5", ls=":", label="equal errors"),
                Line2D([], [], color="0.3", ls=(0, (1, 3)), label=r"$\sqrt{2}$")]
    return style.finish(fig, "E4: the error with " + _ZERO + " over the standard init's, per seed",
                        handles=handles)


def _measures_figure(memo: Sequence[dict]) -> Any:
    from matplotlib.lines import Line2D

    fig, axes = style.figure(len(memo), 2, width=9.0, height=3.2)
    rng = np.random.default_rng(0)
    for row, res in enumerate(memo):
        kinds = [k for k in KINDS if k in res["kinds"]]
        for col, (key, own_key, label) in enumerate((("in_span", "input_in_span", "share of energy in the span"),
                                                     ("nearest_distance", "input_nearest_distance",
                                                      "distance to the nearest training sample"))):
            ax = axes[row][col]
            for x, kind in enumerate(kinds):
                e = res["kinds"][kind]
                for off, (who, vals) in zip((-0.25, 0.0, 0.25), (("input", e[own_key]), ("network", e["network"][key]),
                                                                 ("predictor", e["predictor"][key])), strict=True):
                    v = np.asarray(vals, dtype=float)
                    ax.scatter(x + off + rng.uniform(-0.06, 0.06, len(v)), v, s=14, color=MAP_COLOURS[who],
                               alpha=0.8, linewidths=0)
                    ax.plot([x + off - 0.1, x + off + 0.1], [np.median(v)] * 2, color=MAP_COLOURS[who], lw=2)
            ax.set_xticks(range(len(kinds)), kinds)
            ax.set_xlim(-0.6, len(kinds) - 0.4)
            ax.set(ylabel=label, title=f"{res['regime']}, m = {res['width']}")
            if col == 0:
                ax.set_ylim(-0.02, 1.04)
    handles = [Line2D([], [], color=MAP_COLOURS[w], marker="o", ls="", label=lab) for w, lab in
               (("input", "the input itself"), ("network", "network f(x)"), ("predictor", "kernel predictor f(x)"))]
    handles.append(Line2D([], [], color="0.3", lw=2, label="median"))
    return style.finish(fig, "E4: where the network and the kernel predictor map held-out, noisy and random inputs",
                        handles=handles)


def _image_grid(res: dict) -> Any:
    T = res.get("iterations")
    rows = [("input", "input"), ("network", "network\nf(x)"), ("nearest", "nearest\nsample"),
            ("predictor", "predictor\nf(x)"), ("network_iterate", "network\niterate")]
    kinds = [k for k in KINDS if k in res["images"]]
    cols = [(k, i) for k in kinds for i in range(len(res["images"][k]["input"]))]
    side = math.isqrt(int(res["d"]))
    fig, axes = style.figure(len(rows), len(cols), width=min(style.MAX_WIDTH, 0.78 * len(cols) + 0.9), height=0.92)
    train = res["train_images"]
    for j, (kind, i) in enumerate(cols):
        near = res["kinds"][kind]["network"]["nearest_index"][i]
        for r, (key, label) in enumerate(rows):
            ax = axes[r][j]
            v = np.asarray(train[near] if key == "nearest" else res["images"][kind][key][i], dtype=float)
            if side * side == v.size:
                ax.imshow(v.reshape(side, side), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if key == "network_iterate":
                norm = float(np.linalg.norm(v))
                ax.set_xlabel("diverged" if not math.isfinite(norm) else "→ 0" if norm < 1e-6 else
                              f"norm {sig(norm, 1)}", fontsize=8)
            if r == 0:
                ax.set_title(f"{kind} {i + 1}", fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    after = "" if T is None else f"; iterate after {T} steps"
    return style.finish(fig, f"E4: memorisation images, {res['regime']}, m = {res['width']}, n = {res['n']} digits, "
                             f"{_ZERO}{after}")


def _fate_bars(memo: Sequence[dict]) -> Any:
    from matplotlib.patches import Patch

    fig, axes = style.figure(len(memo), 2, width=8.4, height=2.6, sharex=True)
    for row, res in enumerate(memo):
        kinds = [k for k in KINDS if k in res["kinds"]]
        for col, name in enumerate(MAPS):
            ax = axes[row][col]
            left = np.zeros(len(kinds))
            for fate in FATES:
                w = np.array([res["kinds"][k][name]["fate_counts"].get(fate, 0) for k in kinds], dtype=float)
                if w.any():
                    ax.barh(range(len(kinds)), w, left=left, color=FATE_COLOURS[fate], height=0.6)
                left += w
            ax.set_yticks(range(len(kinds)), kinds)
            ax.invert_yaxis()
            ax.set_title(f"{res['regime']} network, m = {res['width']}" if name == "network" else
                         "kernel predictor")
            if row == len(memo) - 1:
                ax.set_xlabel("inputs")
    handles = [Patch(color=FATE_COLOURS[f], label=f) for f in FATES]
    return style.finish(fig, "E4: where the iterates x, f(x), f(f(x)), ... end", handles=handles, ncol=len(FATES))
