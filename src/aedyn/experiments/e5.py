"""E5, the weight-tied degeneracy: what does a tied autoencoder trained from random initialisation
actually learn, measured on inputs it never saw, against the untied (joint) one?

For each data set (sphere and digits, rows normalised), output scaling (``ntk``: ``alpha =
1/sqrt(m)``; ``mean-field``: ``alpha = 1/m``), width and initialisation seed, a tied network
(``V = W^T``) and an untied one (``joint``: ``W`` and ``V`` both trained) start from the same seed
and train by full-batch gradient descent with ``eta = 1/lambda_max(Theta(0))``, each network its
own (``lr="auto"``), until ``L <= target L(0)`` or the step budget is spent (``status`` says which).
Then, with ``Z`` the held-out inputs (``n_test`` fresh sphere points from another data seed; for
digits, normalised digits that are not among the training samples), ``F = f(Z)`` row-wise:

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
- ``f0_gap = ||f_0(Z) - a Z||_F / ||a Z||_F``, ``a = alpha m kappa^2 / 2`` (SPEC.md, "Weight
  tying"), beside its expected size: for unit inputs ``E||w s(w.z)||^2 = kappa^4 (d + 2) / 2`` and
  ``E[w s(w.z)] = kappa^2 z / 2``, so ``E[f0_gap^2] = (2 d + 3) / m`` exactly for the tied network
  (``f0_gap_expected = sqrt((2d + 3) / m)``; SPEC's "about sqrt(d/m)" up to the factor
  ``sqrt(2)``). For the joint network ``f_0`` has mean zero and the gap is about 1 or more.

And the tied infinite-width NTK (:func:`aedyn.kernels.tied_ntk_limit`, closed form; checked
against Monte Carlo in the tests) against the finite-width tied NTK (:func:`aedyn.ntk.ntk_dense`)
at growing ``m`` on a small problem: ``||Theta_m - Theta_inf||_F / ||Theta_inf||_F`` per seed and
the least-squares slope of the seed-mean of its log on ``log m`` (``Theta_m`` averages ``m`` i.i.d.
terms whose mean is the limit, so ``-1/2`` is expected), with a 95% interval from paired bootstrap resamples of
the seeds (the same resampled seeds at every width: a seed's networks at different widths share
their first random draws; :func:`aedyn.experiments.fit_power_law`). The slopes in ``m`` of the
weight movement, the drift and ``f_0``'s gap in the verdict are fitted the same way (no interval).

Functions here are pure: they return numbers, tables and figures and never print or write files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aedyn.certificate import CERTIFICATE_COLUMNS, certificate_sentence, certified_counts, columns_of
from aedyn.data import load_data
from aedyn.experiments import (
    DATA_MARKERS,
    RECORD_EVERY,
    REGIME_COLOURS,
    checkpointed,
    fit_power_law,
    small_problems,
    values_by_seed,
)
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.kernels import tied_ntk_limit
from aedyn.model import forward, init_params
from aedyn.ntk import ntk_dense

NAME = "E5"
TITLE = "The weight-tied degeneracy"
CLAIM = ("Weight-tied autoencoders trained by gradient descent from random initialisation in the "
         "over-parameterised regime degenerate (Nguyen, Wong and Hegde): what the trained tied map is, "
         "on inputs it never saw, and whether its training is lazy, are measured against the untied one.")

ARCHITECTURES: tuple[str, ...] = ("tied", "joint")
SCALINGS: tuple[str, ...] = ("ntk", "mean-field")
IDENTITY_WITHIN = 0.1
"""A map counts as close to ``c`` times the identity when ``beyond_c`` is below this."""
RESCALED_WITHIN = 0.2
"""``W_T`` counts as a rescaled ``W_0`` when ``rescale_distance`` is below this."""
LAZY_MOVEMENT = 0.1
"""A run counts as lazy when its relative weight movement and NTK drift are below this."""
SLOPE_RANGE = (-0.7, -0.3)
"""The kernel-limit error slope counts as ``m^(-1/2)`` when it lies in this range."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. ``quick``: sphere (n = 16, d = 8) at m = 256,
    1024 and digits (n = 8) at m = 256, one seed, budgets 1500 / 600 steps, the kernel check at
    m = 2^8..2^12; otherwise sphere at m = 2^8..2^12, three seeds, budget 2500, digits at
    m = 2^8..2^11, two seeds, budget 1000 (digits has d = 64, so each step costs eight times a
    sphere step, and tied digits runs converge slowly), the kernel check at m = 2^8..2^14 with 6
    seeds. ``seeds`` overrides the number of seeds of every data set."""
    if quick:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [256, 1024], "seeds": 1, "max_steps": 1500},
                {"name": "digits", "n": 8, "d": 64, "widths": [256], "seeds": 1, "max_steps": 600}]
        kernel = {"n": 4, "d": 4, "widths": [2 ** k for k in range(8, 13, 2)], "seeds": 4}
    else:
        data = [{"name": "sphere", "n": 16, "d": 8, "widths": [2 ** k for k in range(8, 13)], "seeds": 3,
                 "max_steps": 2500},
                {"name": "digits", "n": 8, "d": 64, "widths": [2 ** k for k in range(8, 12)], "seeds": 2,
                 "max_steps": 1000}]
        kernel = {"n": 4, "d": 4, "widths": [2 ** k for k in range(8, 15)], "seeds": 6}
    for entry in data:
        entry["seeds"] = list(range(entry["seeds"] if seeds is None else int(seeds)))
    return {"architectures": list(ARCHITECTURES), "scalings": list(SCALINGS), "data": data, "data_seed": 0,
            "heldout_seed": 1, "n_test": 64, "target": 1e-5, "kappa": 1.0, "nu": 1.0, "lr": "auto",
            "dtype": "float64", "record_every": RECORD_EVERY, "device": device, "kernel_check": kernel,
            "bootstrap": 1000}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    data = "; ".join(f"{d['name']} (n = {d['n']}, d = {d['d']}; m = {', '.join(str(w) for w in d['widths'])}; "
                     f"{len(d['seeds'])} seed{'s' if len(d['seeds']) != 1 else ''}; at most {d['max_steps']} steps)"
                     for d in config["data"])
    k = config["kernel_check"]
    return [
        f"Data: {data}; rows normalised; training data seed {config['data_seed']}.",
        f"Held-out inputs: {config['n_test']} per data set, fresh sphere points from data seed "
        f"{config['heldout_seed']}, or normalised digits that are not training samples.",
        f"Architectures {' and '.join(config['architectures'])} (tied: V = W^T; joint: W and V trained), from the same "
        f"seeds; output scalings {' and '.join(config['scalings'])} (alpha = 1/sqrt(m) and 1/m); kappa = "
        f"{config['kappa']:g}, nu = {config['nu']:g}; {config['dtype']}.",
        "Step size: eta = 1/lambda_max(Theta(0)) of each network (lr='auto'); each run stops at L <= "
        f"{config['target']:g} L(0) or when its step budget is spent (status says which).",
        "Measured on held-out inputs Z: ||f(Z) - Z||_F/||Z||_F; the best scalar c = <f(Z), Z>/||Z||^2 and the spread "
        "of the per-input c_i; what remains beyond c z, ||f(Z) - cZ||/||f(Z)||; and f_0 against alpha m kappa^2 z/2 "
        "(expected relative gap sqrt((2d+3)/m) for tied networks). Measured on the weights: ||W_T - W_0||/||W_0||, the "
        "largest single-neuron movement, min_c ||W_T - c W_0||/||W_T|| and that c, and the NTK's drift "
        "||Theta(T) - Theta(0)||_F/||Theta(0)||_F.",
        f"Tied infinite-width NTK check: sphere n = {k['n']}, d = {k['d']}, the closed-form limit against the "
        f"finite-width tied NTK at m = {', '.join(str(w) for w in k['widths'])} ({k['seeds']} seeds each), relative "
        "Frobenius error and its fitted slope in m (expected -1/2): least-squares line through the seed-mean of "
        f"log error against log m, 95% percentile interval from {config['bootstrap']} paired bootstrap resamples of "
        "the seeds (the same resampled seeds at every width: a seed's networks at different widths share their "
        "first random draws). Slopes in m elsewhere: the same line, without an interval.",
    ]


# ---- pure measurements ------------------------------------------------------------------------------

def best_scalar(F: torch.Tensor, Z: torch.Tensor) -> dict[str, float]:
    """How close ``F = f(Z)`` is to a multiple of the identity on the rows of ``Z``::

        c = <F, Z>_F / ||Z||_F^2                  (the least-squares scalar, all rows together)
        c_i = <f(z_i), z_i> / ||z_i||^2           (per row; c_std, c_min, c_max their spread)
        beyond_c = ||F - c Z||_F / ||F||_F        (what remains beyond c z; NaN when F = 0)
        error = ||F - Z||_F / ||Z||_F             (relative reconstruction error)
    """
    F, Z = F.double(), Z.double()
    z2 = Z.square().sum(dim=1)
    c = float((F * Z).sum() / z2.sum())
    ci = (F * Z).sum(dim=1) / z2
    fn = float(F.norm())
    return {"c": c, "c_std": float(ci.std(unbiased=False)), "c_min": float(ci.min()), "c_max": float(ci.max()),
            "beyond_c": float((F - c * Z).norm()) / fn if fn > 0 else math.nan,
            "error": float((F - Z).norm() / Z.norm())}


def rescaling(W: torch.Tensor, W0: torch.Tensor) -> tuple[float, float]:
    """``(c, distance)``: ``c = <W, W0>_F / ||W0||_F^2`` minimises ``||W - c W0||_F``, and
    ``distance = ||W - c W0||_F / ||W||_F`` (0 exactly when ``W`` is a multiple of ``W0``)."""
    W, W0 = W.double(), W0.double()
    c = float((W * W0).sum() / W0.square().sum())
    return c, float((W - c * W0).norm() / W.norm())


def identity_gap(F0: torch.Tensor, Z: torch.Tensor, alpha: float, width: int, kappa: float) -> float:
    """``||F0 - a Z||_F / ||a Z||_F`` with ``a = alpha m kappa^2 / 2``: the network at initialisation
    against the mean of a tied one, ``E[alpha sum_r w_r s(w_r . z)] = alpha m kappa^2 z / 2``."""
    a = alpha * width * kappa * kappa / 2
    return float((F0.double() - a * Z.double()).norm() / (a * Z.double().norm()))


def expected_identity_gap(d: int, width: int) -> float:
    """``sqrt((2d + 3) / m)``: the root-mean-square of :func:`identity_gap` over tied initialisations
    at unit inputs (any ``kappa``, any ``alpha``): per neuron ``E||w s(w.z)||^2 = kappa^4 (d+2)/2``
    (``E[g^4 1{g>0}] = 3/2`` along ``z``, ``(d - 1)/2`` across) less ``||kappa^2 z/2||^2 = kappa^4/4``."""
    return math.sqrt((2 * d + 3) / width)


# ---- running -------------------------------------------------------------------------------------

def _job(config: dict, data: dict, arch: str, scaling: str, width: int, seed: int) -> TrainJob:
    steps = int(data["max_steps"])
    return TrainJob(regime=arch, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width,
                    init_scale=scaling, lr=config["lr"], steps=steps, target=config["target"],
                    record_every=int(config.get("record_every", RECORD_EVERY)), ntk_every=steps + 1, certify=True,
                    dtype=config["dtype"], device=config["device"])


def _batch(config: dict, data: dict, arch: str, scaling: str, width: int, loaded: dict[str, torch.Tensor],
           notes: Notes) -> list[dict]:
    """Train the seeds of one (data, architecture, scaling, width) as one batch; one record per run.
    ``loaded`` keeps the data set's training inputs ``X`` and held-out inputs ``Z`` once read."""
    jobs = [_job(config, data, arch, scaling, width, s) for s in data["seeds"]]
    if not loaded:
        loaded["X"] = jobs[0].load(notes)
        loaded["Z"] = heldout(config, data, loaded["X"])
    X, Z = loaded["X"], loaded["Z"]
    with notes.collect():
        results = run_batch(jobs)
    batch = []
    for seed, result in zip(data["seeds"], results, strict=True):
        record = {"architecture": arch, "scaling": scaling, "data": data["name"], "n": int(X.shape[0]),
                  "d": int(X.shape[1]), "n_test": int(Z.shape[0]), "width": width, "seed": int(seed)}
        record.update(_measure(result, X, Z, arch, config))
        batch.append(record)
    return batch


def heldout(config: dict, data: dict, X: torch.Tensor) -> torch.Tensor:
    """``n_test`` held-out inputs: sphere points from ``heldout_seed`` (an independent draw), or
    normalised digits none of which equals a training row, chosen with ``heldout_seed``; on ``X``'s
    device."""
    n_test = int(config["n_test"])
    if data["name"] == "sphere":
        return load_data("sphere", n=n_test, d=data["d"], seed=config["heldout_seed"], dtype=config["dtype"],
                         device=X.device)
    with Notes().collect():  # the normalisation note is already in the training data's notes
        every = load_data(data["name"], dtype=config["dtype"])
    fresh = ~(every[:, None, :] == X[None, :, :].to(every)).all(dim=2).any(dim=1)
    pool = torch.nonzero(fresh).flatten().numpy()
    pick = np.random.default_rng(int(config["heldout_seed"])).choice(pool, size=min(n_test, len(pool)), replace=False)
    return every[torch.as_tensor(np.sort(pick))].to(X.device)


def _measure(result: Any, X: torch.Tensor, Z: torch.Tensor, arch: str, config: dict) -> dict:
    """One run's record (see the module docstring)."""
    init, final = result.init, result.params
    width = int(init.W.shape[-2])
    kappa = float(config["kappa"])
    test = best_scalar(forward(final, Z, arch), Z)
    train = best_scalar(forward(final, X, arch), X)
    c_w, dist = rescaling(final.W, init.W)
    moved = (final.W - init.W).norm(dim=1) / init.W.norm(dim=1)
    loss = np.asarray(result.loss, dtype=np.float64)
    metrics = result.metrics
    lam = metrics.get("ntk_lambda_max", [math.nan])
    return {
        "status": result.status, "steps": int(result.steps), "eta": float(result.lr),
        "lambda_max0": None if result.lambda_max is None else float(result.lambda_max),
        "lambda_max_final": float(lam[-1]), "alpha": float(init.alpha),
        "final_relative_loss": float(loss[-1] / loss[0]) if loss[0] > 0 else 0.0,
        "train_error": train["error"], "heldout_error": test["error"], "c": test["c"], "c_std": test["c_std"],
        "c_min": test["c_min"], "c_max": test["c_max"], "beyond_c": test["beyond_c"], "train_c": train["c"],
        "weight_change_W": result.final("weight_change_W"), "max_neuron_change_W": result.final("max_neuron_change_W"),
        "max_neuron_rel_W": float(moved.max()), "weight_change_V": result.final("weight_change_V"),
        "rescale_c": c_w, "rescale_distance": dist,
        "rescale_c_identity": math.sqrt(2.0 / (init.alpha * width * kappa * kappa)),
        "ntk_drift": result.final("ntk_drift"),
        "f0_gap": identity_gap(forward(init, Z, arch), Z, init.alpha, width, kappa),
        "f0_gap_expected": expected_identity_gap(int(Z.shape[1]), width),
        **columns_of(result),
    }


def kernel_check(config: dict) -> dict:
    """The tied infinite-width NTK against finite-width tied NTKs (see the module docstring)."""
    k = config["kernel_check"]
    X = load_data("sphere", n=k["n"], d=k["d"], seed=config["data_seed"], dtype="float64")
    kappa = float(config["kappa"])
    T = tied_ntk_limit(X, kappa=kappa)
    seeds = list(range(int(k["seeds"])))
    errors = [[float((ntk_dense(init_params(k["d"], m, regime="tied", seed=s, kappa=kappa), X, "tied") - T).norm()
                     / T.norm()) for s in seeds] for m in k["widths"]]
    fit = fit_power_law(k["widths"], errors, resamples=int(config["bootstrap"]))
    return {"n": int(k["n"]), "d": int(k["d"]), "widths": [int(m) for m in k["widths"]], "seeds": seeds,
            "errors": errors, "limit_norm": float(T.norm()),
            "slope": fit.to_dict() if fit is not None else {"value": None, "ci_low": None, "ci_high": None}}


def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict:
    """Train every (data, architecture, scaling, width) batch (all seeds together) and measure each
    run; then the tied kernel check. Returns ``{"config", "notes", "runs", "kernel_check"}``.
    ``checkpoint`` keeps each finished batch (and the kernel check) so an interrupted run resumes."""
    with small_problems(config["device"]):
        return _run(config, progress, checkpoint)


def _run(config: dict, progress: Callable[[str, float], None] | None, checkpoint: Any | None) -> dict:
    report = progress or (lambda message, fraction: None)
    archs, scalings = list(config["architectures"]), list(config["scalings"])
    total = sum(len(d["widths"]) for d in config["data"]) * len(archs) * len(scalings) + 1
    done = 0
    runs: list[dict] = []
    notes = Notes()
    for data in config["data"]:
        loaded: dict[str, torch.Tensor] = {}  # the training and held-out inputs, read when a batch first trains
        for arch in archs:
            for scaling in scalings:
                for width in data["widths"]:
                    report(f"E5: {data['name']} {arch} {scaling} m = {width}", done / total)
                    key = f"{data['name']}|{data['n']}|{data['d']}|{arch}|{scaling}|{width}"
                    runs += checkpointed(checkpoint, key, notes,
                                         lambda data=data, arch=arch, scaling=scaling, width=width, loaded=loaded:
                                         _batch(config, data, arch, scaling, int(width), loaded, notes))
                    done += 1
    report("E5: tied kernel limit against finite width", done / total)
    check = None if checkpoint is None else checkpoint.get("kernel_check")
    if check is None:
        check = kernel_check(config)
        if checkpoint is not None:
            checkpoint.put("kernel_check", check)
    report("E5: done", 1.0)
    return {"config": config, "notes": sorted(set(notes.messages)), "runs": runs, "kernel_check": check}


# ---- the table, the verdict -----------------------------------------------------------------------

COLUMNS = ("architecture", "scaling", "data", "n", "d", "n_test", "width", "seed", "status", "steps", "eta",
           "lambda_max0", "lambda_max_final", "alpha", "final_relative_loss", "train_error", "heldout_error", "c",
           "c_std", "c_min", "c_max", "beyond_c", "train_c", "weight_change_W", "max_neuron_change_W",
           "max_neuron_rel_W", "weight_change_V", "rescale_c", "rescale_distance", "rescale_c_identity", "ntk_drift",
           "f0_gap", "f0_gap_expected", *CERTIFICATE_COLUMNS)
TEXT = ("architecture", "scaling", "data", "status")
FLAGS = tuple(c for c in CERTIFICATE_COLUMNS if c == "cert_inside" or c.endswith("_holds"))
HEADLINE = ("heldout_error", "c", "c_std", "beyond_c", "train_error", "weight_change_W", "max_neuron_rel_W",
            "rescale_distance", "rescale_c", "rescale_c_identity", "ntk_drift", "f0_gap", "f0_gap_expected", "steps")


def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`); missing values are NaN."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in results["runs"]], columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in TEXT + FLAGS]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table[list(FLAGS)] = table[list(FLAGS)].astype("boolean")
    return table


def _med(rows: Any, column: str) -> float:
    v = rows[column].median()
    return float(v) if np.isfinite(v) else math.nan


def _slope(rows: Any, column: str) -> float | None:
    """The slope in ``m`` of ``column`` (:func:`aedyn.experiments.fit_power_law`, seeds lined up
    across widths; no interval); ``None`` with fewer than two widths where it is positive."""
    fit = fit_power_law(*values_by_seed(rows.to_dict("records"), column), resamples=0)
    return None if fit is None else fit.value


def _num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None or not np.isfinite(x) else fmt.format(x)


def _what_tied(t: dict) -> str:
    """What the trained tied map is, in words, from its medians."""
    if t["beyond_c"] < IDENTITY_WITHIN:
        near = "the identity" if abs(t["c"] - 1) < IDENTITY_WITHIN else f"c·identity with c = {t['c']:.3g}"
        what = f"a map close to {near} on inputs it never saw"
    else:
        what = f"a map that is not a multiple of the identity on inputs it never saw (c = {t['c']:.3g})"
    return (f"{what}: held-out relative error {t['heldout_error']:.3g}, best scalar c = {t['c']:.3g} (per-input "
            f"spread {t['c_std']:.2g}), {100 * t['beyond_c']:.2g}% of f(x) beyond c x")


def _rescaled(t: dict) -> str:
    """Whether ``W_T`` is a rescaled ``W_0``, close to ``W_0`` itself, or neither, in words."""
    dist, c, moved = t["rescale_distance"], t["rescale_c"], t["weight_change_W"]
    if dist < RESCALED_WITHIN and abs(c - 1) > 2 * dist:
        return (f"a rescaled initialisation: W_T ≈ c W_0 within {100 * dist:.2g}% (c = {c:.3g}; the c that makes "
                f"the mean initial map the identity is sqrt(2/(alpha m kappa^2)) = {t['rescale_c_identity']:.3g})")
    if moved < LAZY_MOVEMENT:
        return (f"close to their initialisation (moved {100 * moved:.2g}%; {100 * dist:.2g}% away from the nearest "
                f"c W_0, c = {c:.3g})")
    if moved < RESCALED_WITHIN:
        return (f"near their initialisation but not lazy (moved {100 * moved:.2g}%; {100 * dist:.2g}% away from the "
                f"nearest c W_0, c = {c:.3g})")
    return (f"neither their initialisation nor a rescaled one: moved {100 * moved:.2g}%, and "
            f"{100 * dist:.2g}% away from the nearest c W_0 (c = {c:.3g}; sqrt(2/(alpha m kappa^2)) = "
            f"{t['rescale_c_identity']:.3g})")


def _lazy(entry: dict) -> bool:
    return entry["weight_change_W"] < LAZY_MOVEMENT and entry["ntk_drift"] < LAZY_MOVEMENT


def verdict(results: dict) -> tuple[list[str], dict]:
    """Sentences computed from the numbers and the summary: ``groups`` (per architecture, scaling
    and data set: medians over seeds at the largest width, and the slopes in m of the weight
    movement and the drift), ``kernel_check`` (the tied limit's error slope) and ``statuses``."""
    table = tabulate(results)
    sentences: list[str] = []
    groups: list[dict] = []
    for (data, scaling, arch), rows in table.groupby(["data", "scaling", "architecture"], sort=True):
        top = int(rows["width"].max())
        last = rows[rows["width"] == top]
        entry: dict[str, Any] = {"architecture": arch, "scaling": scaling, "data": data, "width": top,
                                 "seeds": len(last)}
        entry.update({name: _med(last, name) for name in HEADLINE})
        entry["converged"] = int((rows["status"] == "converged").sum())
        entry["converged_top"] = int((last["status"] == "converged").sum())
        entry["runs"] = len(rows)
        entry["movement_slope"] = _slope(rows, "weight_change_W")
        entry["drift_slope"] = _slope(rows, "ntk_drift")
        entry["heldout_error_by_width"] = {str(int(w)): _med(g, "heldout_error") for w, g in rows.groupby("width")}
        entry["c_by_width"] = {str(int(w)): _med(g, "c") for w, g in rows.groupby("width")}
        groups.append({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in entry.items()})
    find = {(g["data"], g["scaling"], g["architecture"]): g for g in groups}
    nan = {k: math.nan for k in HEADLINE}
    for data, scaling in sorted({(g["data"], g["scaling"]) for g in groups}):
        t = {**nan, **{k: v for k, v in find.get((data, scaling, "tied"), {}).items() if v is not None}}
        j = {**nan, **{k: v for k, v in find.get((data, scaling, "joint"), {}).items() if v is not None}}
        if (data, scaling, "tied") in find:
            tied = find[(data, scaling, "tied")]
            how = ("converged to" if tied["converged_top"] == tied["seeds"] else
                   f"ended, with {tied['converged_top']} of {tied['seeds']} seeds at the target and the others at the "
                   "end of their step budget, at")
            sentences.append(f"{data}, {scaling} scaling, m = {tied['width']} (medians over seeds): the tied network "
                             f"{how} {_what_tied(t)}; its weights are {_rescaled(t)}.")
        if (data, scaling, "joint") in find and (data, scaling, "tied") in find:
            better = "worse" if j["heldout_error"] > t["heldout_error"] else "better"
            sentences.append(
                f"{data}, {scaling}: the untied (joint) network reconstructs held-out inputs {better} than the tied "
                f"one "
                f"(relative error {j['heldout_error']:.3g} against {t['heldout_error']:.3g}); its best scalar is "
                f"c = {j['c']:.3g} with {100 * j['beyond_c']:.2g}% of f(x) beyond c x (tied: c = {t['c']:.3g}, "
                f"{100 * t['beyond_c']:.2g}%), so on unseen inputs the joint network is "
                + ("also close to a multiple of the identity." if j["beyond_c"] < IDENTITY_WITHIN else
                   "not a multiple of the identity."))
            tl, jl = _lazy(t), _lazy(j)
            ts, js = find[(data, scaling, "tied")]["movement_slope"], find[(data, scaling, "joint")]["movement_slope"]
            sentences.append(
                f"{data}, {scaling}: weight movement ||W_T - W_0||/||W_0|| tied {t['weight_change_W']:.3g} against "
                f"joint {j['weight_change_W']:.3g} (slopes in m {_num(ts, '{:+.2f}')} and {_num(js, '{:+.2f}')}), "
                f"largest relative single-neuron movement {t['max_neuron_rel_W']:.3g} against "
                f"{j['max_neuron_rel_W']:.3g}, NTK drift {t['ntk_drift']:.3g} against {j['ntk_drift']:.3g}; counting a "
                f"run as lazy when its movement and drift are both below {LAZY_MOVEMENT:g}, the tied run is "
                f"{'lazy' if tl else 'not lazy'} and the joint run is {'lazy' if jl else 'not lazy'}"
                + ("" if all(find[(data, scaling, a)]["converged_top"] == find[(data, scaling, a)]["seeds"]
                             for a in ("tied", "joint")) else
                   " (not every seed reached the target: those moved only as far as their step budget took them)")
                + ".")
        if (data, scaling, "tied") in find:
            rows = table[(table["data"] == data) & (table["scaling"] == scaling) & (table["architecture"] == "tied")]
            ratio = rows["f0_gap"] / rows["f0_gap_expected"]
            gap_slope = _slope(rows, "f0_gap")
            sentences.append(
                f"{data}, {scaling}: the tied network at initialisation differs from alpha m kappa^2 x/2 by "
                f"{_num(_med(rows, 'f0_gap'))} (median, all widths) on held-out inputs, "
                + (f"{ratio.min():.2f}" if f"{ratio.min():.2f}" == f"{ratio.max():.2f}" else
                   f"{ratio.min():.2f}-{ratio.max():.2f}") + " times the expected sqrt((2d+3)/m)"
                + (f", falling with m (slope {gap_slope:+.2f})." if gap_slope is not None else "."))
    statuses = table["status"].value_counts().to_dict()
    missed = int((table["status"] != "converged").sum())
    if missed:
        sentences.append(f"{missed} of {len(table)} runs did not reach the target within their step budget "
                         f"({', '.join(f'{v} {k}' for k, v in sorted(statuses.items()))}); their numbers are "
                         "those at the end of the budget.")
    else:
        sentences.append(f"All {len(table)} runs reached the target.")
    kc = results.get("kernel_check")
    kernel: dict[str, Any] | None = None
    if kc is not None:
        s = kc["slope"]
        lo, hi = SLOPE_RANGE
        ok = s["value"] is not None and lo <= s["value"] <= hi
        err = np.asarray(kc["errors"], dtype=float).mean(axis=1)
        ci = "" if s["ci_low"] is None else f" (95% bootstrap interval {s['ci_low']:+.2f} to {s['ci_high']:+.2f})"
        sentences.append(
            f"Tied infinite-width NTK (n = {kc['n']}, d = {kc['d']}): the finite-width tied NTK's relative distance "
            f"to the closed-form limit falls from {err[0]:.3g} at m = {kc['widths'][0]} to {err[-1]:.3g} at "
            f"m = {kc['widths'][-1]}, "
            + ("too few widths to fit a slope." if s["value"] is None else
               f"slope {s['value']:+.2f}{ci}: "
               + (f"consistent with m^(-1/2) (within {lo:g} to {hi:g})." if ok else
                  f"outside {lo:g} to {hi:g}, not the m^(-1/2) expected.")))
        kernel = {"slope": s["value"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "widths": kc["widths"],
                  "mean_errors": [float(e) for e in err], "consistent": bool(ok)}
    sentences += certificate_sentence(table, ("architecture", "scaling", "data"))
    return sentences, {"groups": groups, "kernel_check": kernel, "statuses": {str(k): int(v) for k, v in
                                                                               statuses.items()},
                       "certificate": certified_counts(table, ["architecture", "scaling", "data"])}


# ---- figures -------------------------------------------------------------------------------------

_STYLE = {"ntk": "-", "mean-field": "--"}


def _lines(ax: Any, table: Any, column: str, datas: Sequence[str], *, by_data: bool) -> None:
    """Median over seeds against m, one line per (architecture, scaling[, data]); seeds as faint dots."""
    for (arch, scaling, data), rows in table.groupby(["architecture", "scaling", "data"], sort=True):
        if data not in datas:
            continue
        colour = REGIME_COLOURS.get(arch, "0.3")
        marker = DATA_MARKERS.get(data, "^") if by_data else "o"
        ok = rows[np.isfinite(rows[column]) & (rows[column] > 0)] if ax.get_yscale() == "log" else rows
        if not len(ok):
            continue
        med = ok.groupby("width")[column].median()
        ax.plot(med.index, med.to_numpy(), _STYLE.get(scaling, ":"), marker=marker, color=colour, ms=4, lw=1.2)
        ax.plot(ok["width"], ok[column], marker, color=colour, ms=2.5, alpha=0.3, ls="")


def figures(results: dict) -> dict[str, Any]:
    """Matplotlib figures (no I/O): ``heldout`` (held-out relative error, the best scalar c and
    what remains beyond c x against m; one column per data set), ``movement`` (weight movement,
    largest relative neuron movement, distance of W_T from a multiple of W_0, NTK drift, and f_0's
    gap to alpha m kappa^2 x/2 with its expected size, against m) and ``kernel_limit`` (the tied
    limit's error against m with the fitted slope). Tied against joint by colour, ntk against
    mean-field by line style, medians over seeds with each seed as a faint dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    table = tabulate(results)
    datas = list(dict.fromkeys(table["data"]))
    archs = [a for a in ARCHITECTURES if a in set(table["architecture"])]
    scalings = [s for s in SCALINGS if s in set(table["scaling"])]
    style = ([Line2D([], [], color=REGIME_COLOURS.get(a, "0.3"), lw=1.5, label=a) for a in archs]
             + [Line2D([], [], color="0.3", ls=_STYLE.get(s, ":"), label=f"{s} scaling") for s in scalings])
    out: dict[str, Any] = {}

    rows_spec = [("heldout_error", "||f(z) - z|| / ||z|| (held-out)", "log"),
                 ("c", "best scalar c, f(z) ≈ c z (held-out)", "linear"),
                 ("beyond_c", "||f(z) - c z|| / ||f(z)|| (held-out)", "log")]
    fig, axes = plt.subplots(len(rows_spec), len(datas), figsize=(3.4 * len(datas), 2.2 * len(rows_spec) + 0.8),
                             squeeze=False, layout="constrained")
    for j, data in enumerate(datas):
        for i, (column, label, yscale) in enumerate(rows_spec):
            ax = axes[i][j]
            ax.set_xscale("log", base=2)
            ax.set_yscale(yscale)
            _lines(ax, table, column, [data], by_data=False)
            if column == "c":
                ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
            ax.set_ylabel(label, fontsize=7)
            ax.tick_params(which="both", labelsize=7)
            if i == 0:
                sub = table[table["data"] == data].iloc[0]
                ax.set_title(f"{data} (n = {int(sub['n'])}, d = {int(sub['d'])}, {int(sub['n_test'])} held out)",
                             fontsize=8)
            if i == len(rows_spec) - 1:
                ax.set_xlabel("width m", fontsize=7)
    fig.legend(handles=style, loc="outside lower center", ncol=len(style), fontsize=7, frameon=False)
    fig.suptitle("E5: tied vs untied (joint) on held-out inputs; medians over seeds (dots: seeds)", fontsize=9)
    out["heldout"] = fig

    panels = [("weight_change_W", "||W_T - W_0|| / ||W_0||"),
              ("max_neuron_rel_W", "max_r ||Δw_r|| / ||w_r(0)||"),
              ("rescale_distance", "min_c ||W_T - c W_0|| / ||W_T||"),
              ("ntk_drift", "||Θ(T) - Θ(0)||_F / ||Θ(0)||_F"),
              ("f0_gap", "||f_0(z) - αmκ²z/2|| / ||αmκ²z/2||")]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.7 * len(panels), 3.2), squeeze=False, layout="constrained")
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _lines(ax, table, column, datas, by_data=True)
        if column == "f0_gap":
            for data in datas:
                sub = table[table["data"] == data].groupby("width")["f0_gap_expected"].first()
                ax.plot(sub.index, sub.to_numpy(), ":", color="0.4", marker=DATA_MARKERS.get(data, "^"), ms=3,
                        mfc="none", lw=1)
        ax.set_title(label, fontsize=7)
        ax.set_xlabel("width m", fontsize=7)
        ax.tick_params(which="both", labelsize=7)
    handles = style + [Line2D([], [], marker=DATA_MARKERS.get(d, "^"), ls="", color="0.3", label=d) for d in datas]
    handles.append(Line2D([], [], ls=":", color="0.4", marker="o", mfc="none", ms=3,
                          label="expected f_0 gap (tied), sqrt((2d+3)/m)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("E5: how far training moved the weights and the kernel, and f_0 against the scaled identity",
                 fontsize=9)
    out["movement"] = fig

    kc = results.get("kernel_check")
    if kc is not None:
        fig, ax = plt.subplots(figsize=(4.2, 3.4), layout="constrained")
        widths = np.asarray(kc["widths"], dtype=float)
        errors = np.asarray(kc["errors"], dtype=float)
        for s in range(errors.shape[1]):
            ax.plot(widths, errors[:, s], "o", color=REGIME_COLOURS["tied"], ms=3, alpha=0.35)
        mean = np.exp(np.log(errors).mean(axis=1))  # the geometric mean: the fit is through the mean log
        ax.plot(widths, mean, "o", color=REGIME_COLOURS["tied"], ms=5)
        slope = kc["slope"]["value"]
        if slope is not None:
            c = np.mean(np.log(mean) - slope * np.log(widths))
            ax.plot(widths, np.exp(c) * widths ** slope, "-", color=REGIME_COLOURS["tied"], lw=1)
        ax.plot(widths, mean[0] * (widths / widths[0]) ** -0.5, ":", color="0.4", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width m", fontsize=7)
        ax.set_ylabel("||Θ_m - Θ_∞||_F / ||Θ_∞||_F", fontsize=7)
        ax.tick_params(which="both", labelsize=7)
        handles = [Line2D([], [], marker="o", ls="", color=REGIME_COLOURS["tied"], alpha=0.35, ms=3, label="seeds"),
                   Line2D([], [], marker="o", ls="-", color=REGIME_COLOURS["tied"], ms=5,
                          label="geometric mean" + ("" if slope is None else f", fitted slope {slope:+.2f}")),
                   Line2D([], [], ls=":", color="0.4", label="m^(-1/2)")]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
        fig.suptitle(f"E5: tied NTK, finite width against its infinite-width limit (n = {kc['n']}, d = {kc['d']})",
                     fontsize=8)
        out["kernel_limit"] = fig
    return out

