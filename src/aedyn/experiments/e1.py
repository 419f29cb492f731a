"""E1, linear convergence: does ``log L`` fall on a line, at the rate the kernels predict?

For every regime (``weak``, ``joint``, ``decoder``, ``tied``), data set (sphere and digits, rows
normalised), width and initialisation seed, one network trains by full-batch gradient descent
under two step-size rules:

- ``auto``: ``eta = 1 / lambda_max(Theta_b(0))``, each network's own (``lr="auto"``; computed here
  with the same batched Lanczos, :func:`aedyn.gd.auto_lr_batch`);
- ``common``: one ``eta`` per data set for every regime and width, ``common_factor / max lambda_max``
  over the regimes' and seeds' ``Theta(0)`` at the smallest width, so that every regime is
  stable. Regimes are compared at this ``eta``, and every curve is drawn against ``eta * t`` so
  that the rules are comparable.

A run stops at ``L <= target * L(0)`` or after ``max_steps``. The **measured rate** is the
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

The networks of one (data, regime, width) train as one batch, both rules and all seeds together
(:func:`aedyn.job.run_batch`, each job with its own ``eta``). Functions here are pure: they return
numbers, tables and figures and never print or write files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aedyn.experiments import DATA_MARKERS, REGIME_COLOURS, small_problems
from aedyn.gd import auto_lr_batch, fit_linear_rate, rounding_floor
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.kernels import regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.model import Params, forward
from aedyn.ntk import NTKOperator, ntk_dense, ntk_extremes

NAME = "E1"
TITLE = "Linear convergence"
CLAIM = ("Full-batch gradient descent on an over-parameterised two-layer ReLU autoencoder, trained "
         "weakly (encoder only) or jointly, drives the training loss to zero at a linear rate, "
         "L(k) <= (1 - eta lambda/2)^k L(0), with lambda the least eigenvalue of the kernel that drives the regime.")

REGIMES: tuple[str, ...] = ("weak", "joint", "decoder", "tied")
RULES: tuple[str, ...] = ("auto", "common")
LOG_LINEAR_R2 = 0.99
"""A run's loss counts as log-linear over its window when the fit's R^2 is at least this."""
AGREE = 0.05
"""A measured ``-log`` rate within this relative distance of a prediction counts as agreeing."""
CURVE_POINTS = 200
"""Loss curves are kept at about this many steps (evenly spaced, first and last included)."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready. ``quick``: sphere n = 16, digits n = 32, two
    widths, one seed, at most 2000 steps (under a minute on 2 CPU cores); otherwise sphere n = 64,
    digits n = 32, three widths up to 4096, two seeds, at most 3000 steps (digits at n = 64 needs
    over 10000 steps at every width, which alone took 25 minutes). ``seeds`` overrides the number
    of seeds."""
    if quick:
        data = [{"name": "sphere", "n": 16, "d": 8}, {"name": "digits", "n": 32, "d": 64}]
        widths, count, max_steps = [256, 1024], 1, 2000
    else:
        data = [{"name": "sphere", "n": 64, "d": 16}, {"name": "digits", "n": 32, "d": 64}]
        widths, count, max_steps = [256, 1024, 4096], 2, 3000
    count = count if seeds is None else int(seeds)
    return {"regimes": list(REGIMES), "data": data, "widths": widths, "seeds": list(range(count)), "data_seed": 0,
            "rules": list(RULES), "common_factor": 0.5, "max_steps": max_steps, "target": 1e-6, "kappa": 1.0,
            "nu": 1.0, "dtype": "float64", "device": device, "exact_limit": 2048, "curve_points": CURVE_POINTS,
            "log_linear_r2": LOG_LINEAR_R2}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    data = ", ".join(f"{d['name']} (n = {d['n']}, d = {d['d']})" for d in config["data"])
    seeds = config["seeds"]
    return [
        f"Data: {data}; rows normalised to unit norm; data seed {config['data_seed']}.",
        f"Regimes {', '.join(config['regimes'])}; widths m = {', '.join(str(w) for w in config['widths'])}; "
        f"{len(seeds)} initialisation seed{'s' if len(seeds) != 1 else ''} ({', '.join(str(s) for s in seeds)}); "
        f"kappa = {config['kappa']:g}, nu = {config['nu']:g}, NTK scaling alpha = 1/sqrt(m), {config['dtype']}.",
        "Step-size rules: 'auto', eta = 1/lambda_max(Theta(0)) of each network; 'common', one eta per data set "
        f"for every regime and width, {config['common_factor']:g} / (the largest lambda_max(Theta(0)) over the "
        "regimes and seeds at the smallest width), so every regime is stable. Curves are drawn against eta * t.",
        f"Each run stops at L <= {config['target']:g} L(0) or after {config['max_steps']} steps.",
        "Measured rate: the per-step contraction of the loss, exp(slope) of a least-squares line through log L "
        "over the last half of the run before the rounding floor (R^2 of that fit). Predicted rates: the "
        "linearised-GD loss curve (I - eta K)^k R(0) from the network's own initial residual, fitted over the "
        "same steps, with K the coordinate-averaged n x n kernel of Theta(0) (finite width), the full Theta(0) "
        f"(exact, where n d <= {config['exact_limit']}) and the infinite-width regime kernel (none for tied); "
        "also the bound (1 - eta lambda_min(Theta(0)))^2.",
    ]


# ---- running --------------------------------------------------------------------------------------

def _job(config: dict, data: dict, regime: str, width: int, seed: int, lr: float | str) -> TrainJob:
    steps = int(config["max_steps"])
    return TrainJob(regime=regime, data=data["name"], n=data["n"], d=data["d"], seed=seed,
                    data_seed=config["data_seed"], kappa=config["kappa"], nu=config["nu"], width=width, lr=lr,
                    steps=steps, target=config["target"], record_every=steps + 1, dtype=config["dtype"],
                    device=config["device"])


def _stack(nets: Sequence[Params]) -> Params:
    return Params(torch.stack([p.W for p in nets]),
                  None if nets[0].V is None else torch.stack([p.V for p in nets]), nets[0].alpha)  # type: ignore[misc]


def _lambda_max(config: dict, data: dict, regime: str, width: int, X: torch.Tensor) -> np.ndarray:
    """``lambda_max(Theta_b(0))`` of each seed's network (the ``auto`` rule's basis)."""
    nets = [_job(config, data, regime, width, s, "auto").init(X.shape[1], width) for s in config["seeds"]]
    return auto_lr_batch(_stack(nets), X, regime)[1]


def _fitted(curve: np.ndarray, start: int, stop: int) -> float | None:
    fit = fit_linear_rate(curve, start, stop)
    return None if fit is None else fit.rate


def _subsample(last: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(0, last, max(2, points)).round().astype(int))


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _exact_curve(evals: torch.Tensor, evecs: torch.Tensor, R0: torch.Tensor, eta: float, steps: int) -> np.ndarray:
    """``0.5 ||(I - eta Theta)^k vec R(0)||^2`` for ``k = 0..steps`` from ``Theta``'s eigenpairs."""
    energy = (evecs.mT @ R0.reshape(-1)).double().square()
    base = (1 - eta * evals.double()).abs().clamp_min(1e-300).log()
    k = torch.arange(steps + 1, dtype=torch.float64, device=energy.device)
    return (0.5 * torch.exp(2 * k[:, None] * base[None, :]) @ energy).cpu().numpy()


def _analyse(result: Any, X: torch.Tensor, regime: str, eta: float, config: dict, theta: dict,
             inf: dict | None) -> dict:
    """One run's record: the measured fit and the predictions over the same window."""
    loss = np.asarray(result.loss, dtype=np.float64)
    floor = rounding_floor(float(X.square().sum()), config["dtype"])
    fit = fit_linear_rate(loss, floor=floor)
    last = len(loss) - 1 if fit is None or fit.floor_step is None else fit.floor_step
    start, stop = (last // 2, last) if fit is None else (fit.start, fit.stop)
    init = result.init
    R0 = (forward(init, X, regime) - X).double()
    finite = LinearisedGD(theta["averaged"], eta).loss_curve(R0, last)
    exact = None if theta["evals"] is None else _exact_curve(theta["evals"], theta["evecs"], R0, eta, last)
    infinite = None if inf is None else LinearisedGD(inf["K"], eta).loss_curve(R0, last)
    at = _subsample(last, int(config["curve_points"]))
    lam_min = theta["lambda_min"]
    return {
        "status": result.status, "steps": int(result.steps), "eta": float(eta), "L0": float(loss[0]),
        "lambda_min0": lam_min, "lambda_max0": theta["lambda_max"], "lambda_method": theta["method"],
        "lambda_min_inf": None if inf is None else inf["lambda_min"],
        "lambda_max_inf": None if inf is None else inf["lambda_max"],
        "window": [int(start), int(stop)], "floor_step": None if fit is None else fit.floor_step,
        "measured_rate": None if fit is None else fit.rate, "r2": None if fit is None else fit.r2,
        "predicted_finite": _fitted(finite, start, stop),
        "predicted_exact": None if exact is None else _fitted(exact, start, stop),
        "predicted_infinite": None if infinite is None else _fitted(infinite, start, stop),
        "predicted_bound": float((1.0 - eta * lam_min) ** 2),
        "curve": {"steps": at.tolist(), "measured": _floats(loss[at]), "predicted_finite": _floats(finite[at]),
                  "predicted_exact": None if exact is None else _floats(exact[at]),
                  "predicted_infinite": None if infinite is None else _floats(infinite[at])},
    }


def _theta(params: Params, X: torch.Tensor, regime: str, exact_limit: int) -> dict:
    """``Theta(0)``'s extremes, its averaged kernel and, while ``n d <= exact_limit``, its eigenpairs."""
    op = NTKOperator(params, X, regime)
    out: dict[str, Any] = {"averaged": op.averaged_kernel().double().cpu(), "evals": None, "evecs": None}
    if X.shape[0] * X.shape[1] <= exact_limit:
        evals, evecs = torch.linalg.eigh(ntk_dense(params, X, regime).double())
        out.update(evals=evals, evecs=evecs, lambda_min=float(evals[0]), lambda_max=float(evals[-1]),
                   method="dense")
    else:
        ex = ntk_extremes(params, X, regime)
        out.update(lambda_min=float(ex.min), lambda_max=float(ex.max), method="lanczos/lobpcg")
    return out


def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict:
    """Train every (data, regime, width) batch and analyse each run (see the module docstring).
    Returns ``{"config", "common_eta", "lambda_max_smallest", "notes", "runs"}``; each run holds
    its setting, ``eta``, ``Theta(0)``'s and the infinite-width kernel's extremes, the fit window,
    the measured and predicted rates, and the loss curves (measured and linearised) at common steps.
    On the CPU torch runs on one thread meanwhile (restored after): these problems are small, and
    on a shared machine one thread is many times faster than several. ``checkpoint`` (an
    :class:`aedyn.files.Checkpoint`) keeps each batch's records as it finishes, so that an
    interrupted run, restarted, retrains only the batch in flight."""
    with small_problems(config["device"]):
        return _run(config, progress, checkpoint)


def _run(config: dict, progress: Callable[[str, float], None] | None, checkpoint: Any | None) -> dict:
    report = progress or (lambda message, fraction: None)
    regimes, widths, seeds = list(config["regimes"]), list(config["widths"]), list(config["seeds"])
    rules = list(config.get("rules", RULES))
    total = len(config["data"]) * len(regimes) * len(widths)
    done = 0
    runs: list[dict] = []
    common_eta: dict[str, float] = {}
    smallest: dict[str, dict[str, float]] = {}
    notes = Notes()
    for data in config["data"]:
        X = _job(config, data, regimes[0], widths[0], seeds[0], "auto").load(notes)
        n, d = (int(s) for s in X.shape)
        lam_small = {r: _lambda_max(config, data, r, min(widths), X) for r in regimes}
        smallest[data["name"]] = {r: float(v.max()) for r, v in lam_small.items()}
        eta_common = float(config["common_factor"]) / max(smallest[data["name"]].values())
        common_eta[data["name"]] = eta_common
        for regime in regimes:
            inf = None
            if regime != "tied":
                K = regime_kernel(X, regime, kappa=config["kappa"], nu=config["nu"]).double().cpu()
                ev = torch.linalg.eigvalsh(K)
                inf = {"K": K, "lambda_min": float(ev[0]), "lambda_max": float(ev[-1])}
            for width in widths:
                report(f"E1: {data['name']} {regime} m = {width}", done / total)
                key = f"{data['name']}|{n}|{d}|{regime}|{width}"
                saved = None if checkpoint is None else checkpoint.get(key)
                if saved is not None:
                    runs += saved["runs"]
                    notes.messages += saved["notes"]
                    done += 1
                    continue
                before = len(notes.messages)
                lam = lam_small[regime] if width == min(widths) else _lambda_max(config, data, regime, width, X)
                jobs, meta = [], []
                for rule in rules:
                    for s, seed in enumerate(seeds):
                        eta = 1.0 / float(lam[s]) if rule == "auto" else eta_common
                        jobs.append(_job(config, data, regime, width, seed, eta))
                        meta.append((rule, seed, eta))
                with notes.collect():
                    results = run_batch(jobs)
                thetas: dict[int, dict] = {}
                batch: list[dict] = []
                for (rule, seed, eta), result in zip(meta, results, strict=True):
                    if seed not in thetas:
                        thetas[seed] = _theta(result.init, X, regime, int(config["exact_limit"]))
                    record = {"regime": regime, "data": data["name"], "n": n, "d": d, "width": int(width),
                              "seed": int(seed), "rule": rule}
                    record.update(_analyse(result, X, regime, eta, config, thetas[seed], inf))
                    batch.append(record)
                if checkpoint is not None:
                    checkpoint.put(key, {"runs": batch, "notes": notes.messages[before:]})
                runs += batch
                done += 1
    report("E1: done", 1.0)
    return {"config": config, "common_eta": common_eta, "lambda_max_smallest": smallest,
            "notes": sorted(set(notes.messages)), "runs": runs}


# ---- the table, the verdict -----------------------------------------------------------------------

COLUMNS = ("regime", "data", "n", "d", "width", "seed", "rule", "eta", "steps", "status", "measured_rate",
           "predicted_finite", "predicted_exact", "predicted_infinite", "predicted_bound", "r2", "ratio_finite",
           "ratio_exact", "ratio_infinite", "lambda_min0", "lambda_max0", "lambda_min_inf", "lambda_max_inf",
           "window_start", "window_stop")


def _ratio(measured: Any, predicted: Any) -> float:
    """``log(measured) / log(predicted)``: the measured ``-log`` rate over the predicted one
    (above 1: the loss falls faster than predicted). NaN when either is missing or not in (0, 1)."""
    if measured is None or predicted is None:
        return math.nan
    m, p = float(measured), float(predicted)
    if not (m > 0 and 0 < p < 1) or not (math.isfinite(m) and math.isfinite(p)):
        return math.nan
    return math.log(m) / math.log(p)


def tabulate(results: dict) -> Any:
    """The tidy table: one row per run (columns :data:`COLUMNS`); missing predictions are NaN.
    ``ratio_*`` is the measured ``-log`` rate over the predicted one."""
    import pandas as pd

    rows = []
    for r in results["runs"]:
        row = {c: r.get(c) for c in COLUMNS if c in r}
        row["window_start"], row["window_stop"] = r["window"]
        for kind in ("finite", "exact", "infinite"):
            row[f"ratio_{kind}"] = _ratio(r.get("measured_rate"), r.get(f"predicted_{kind}"))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    numeric = [c for c in COLUMNS if c not in ("regime", "data", "rule", "status")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table


def _span(values: Any, fmt: str = "{:.2f}") -> str:
    v = [float(x) for x in values if np.isfinite(x)]
    if not v:
        return "n/a"
    lo, hi = min(v), max(v)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def _compare(ratios: Any, what: str) -> str:
    v = np.asarray([x for x in ratios if np.isfinite(x)], dtype=float)
    if not len(v):
        return f"no {what} prediction"
    if np.all(np.abs(v - 1) <= AGREE):
        how = "agrees within 5% with"
    elif np.all(v > 1):
        how = "is faster than"
    elif np.all(v < 1):
        how = "is slower than"
    else:
        how = "is on both sides of"
    return f"{how} the {what} prediction ({_span(v)}x)"


def _widths(rows: Any) -> str:
    return ", ".join(str(int(w)) for w in sorted(set(rows["width"])))


def verdict(results: dict) -> tuple[list[str], dict]:
    """Sentences computed from the numbers, and the summary ``{"rates": [...]}`` (medians over seeds
    per regime, data, width and rule)."""
    table = tabulate(results)
    threshold = float(results.get("config", {}).get("log_linear_r2", LOG_LINEAR_R2))
    sentences: list[str] = []
    for (data, rule), group in table.groupby(["data", "rule"], sort=True):
        head = group.iloc[0]
        eta = "eta = 1/lambda_max(Theta(0)) per network" if rule == "auto" else \
            f"common eta = {float(group['eta'].iloc[0]):.3g}"
        linear, curved, parts = [], [], []
        for regime in [r for r in REGIMES if r in set(group["regime"])] + sorted(set(group["regime"]) - set(REGIMES)):
            rows = group[group["regime"] == regime]
            ok = rows[rows["r2"] >= threshold]
            bad = rows[~(rows["r2"] >= threshold)]
            if len(ok):
                linear.append(f"{regime} (m = {_widths(ok)})")
            if len(bad):
                curved.append(f"{regime} (m = {_widths(bad)}: R^2 {_span(bad['r2'], '{:.3f}')})")
            text = f"{regime}: the measured rate {_compare(rows['ratio_finite'], 'finite-width (averaged Theta(0))')}"
            if rows["ratio_exact"].notna().any():
                text += f", {_compare(rows['ratio_exact'], 'exact Theta(0)')}"
            if regime == "tied":
                text += ", and has no infinite-width prediction (the tied NTK's limit is not K ⊗ I_d)"
            else:
                text += f", and {_compare(rows['ratio_infinite'], 'infinite-width')}"
            below = (rows["measured_rate"] <= rows["predicted_bound"] * (1 + 1e-9)).sum()
            text += f"; {int(below)} of {len(rows)} runs contract at least as fast as (1 - eta lambda_min(Theta(0)))^2"
            parts.append(text)
        intro = f"{data} (n = {int(head['n'])}, d = {int(head['d'])}), {eta}: "
        s = intro + ("the loss is log-linear (R^2 >= " + f"{threshold:g} over the fitted window) for "
                     + "; ".join(linear) if linear else f"no run's loss is log-linear (R^2 >= {threshold:g})")
        if curved:
            s += "; not log-linear for " + "; ".join(curved)
        sentences.append(s + ".")
        sentences.append(f"{data}, rule {rule}, measured -log rate as a multiple of the predicted one: "
                         + ". ".join(parts) + ".")
    sentences += _steps_sentences(table)
    summary = {"rates": []}
    keys = ["regime", "data", "width", "rule"]
    for key, rows in table.groupby(keys, sort=True):
        entry = dict(zip(keys, key, strict=True))
        entry["width"] = int(entry["width"])
        for name, column in (("measured", "measured_rate"), ("predicted_finite", "predicted_finite"),
                             ("predicted_exact", "predicted_exact"), ("predicted_infinite", "predicted_infinite"),
                             ("predicted_bound", "predicted_bound"), ("r2", "r2")):
            value = rows[column].median()
            entry[name] = None if not np.isfinite(value) else float(value)
        entry["seeds"] = len(rows)
        summary["rates"].append(entry)
    return sentences, summary


def _steps_sentences(table: Any) -> list[str]:
    """Weak against joint in steps to the target, under each rule, at each data set's largest width."""
    out = []
    for data, group in table.groupby("data", sort=True):
        top = group["width"].max()
        parts = []
        for rule in sorted(set(group["rule"])):
            rows = group[(group["width"] == top) & (group["rule"] == rule)]
            said = []
            for regime in ("weak", "joint"):
                r = rows[rows["regime"] == regime]
                if not len(r):
                    continue
                if (r["status"] == "converged").all():
                    said.append(f"{regime} {_span(r['steps'], '{:.0f}')} steps")
                else:
                    said.append(f"{regime} did not reach the target in every seed ({int(r['steps'].max())} steps)")
            if len(said) == 2:
                parts.append(f"with rule {rule}, " + " vs ".join(said))
        if parts:
            out.append(f"{data}, m = {int(top)}, steps to the target: " + "; ".join(parts) + ".")
    return out


# ---- figures -------------------------------------------------------------------------------------



def figures(results: dict) -> dict[str, Any]:
    """Matplotlib figures (no I/O): ``loss_curves_common`` and ``loss_curves_auto`` (relative loss,
    log scale, against ``eta * t``; one panel per data set and regime; measured solid, linearised
    with the averaged ``Theta(0)`` dashed, with the infinite-width kernel dotted; first seed, one
    colour per width) and ``rates`` (measured against predicted ``-log`` per-step contraction, log-log,
    with the identity line; one panel per prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    runs = results["runs"]
    datas = list(dict.fromkeys(r["data"] for r in runs))
    regimes = [g for g in REGIMES if any(r["regime"] == g for r in runs)]
    widths = sorted({r["width"] for r in runs})
    cmap = plt.get_cmap("viridis")
    colour = {w: cmap(0.85 * i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    out: dict[str, Any] = {}
    for rule in [r for r in RULES if any(x["rule"] == r for x in runs)]:
        fig, axes = plt.subplots(len(datas), len(regimes), figsize=(2.6 * len(regimes), 2.3 * len(datas) + 0.7),
                                 squeeze=False, layout="constrained")
        for i, data in enumerate(datas):
            for j, regime in enumerate(regimes):
                ax = axes[i][j]
                mine = [r for r in runs if r["data"] == data and r["regime"] == regime and r["rule"] == rule]
                first = min((r["seed"] for r in mine), default=None)
                lowest = math.inf  # of the measured curves: predictions far below it are clipped
                for r in mine:
                    if r["seed"] != first:
                        continue
                    c = r["curve"]
                    t = r["eta"] * np.asarray(c["steps"], dtype=float)
                    L0 = r["L0"] if r["L0"] > 0 else 1.0
                    rel = lambda v, L0=L0: np.asarray([np.nan if x is None else x for x in v], dtype=float) / L0  # noqa: E731
                    ax.plot(t, rel(c["measured"]), "-", color=colour[r["width"]], lw=1.4)
                    lowest = min(lowest, float(np.nanmin(rel(c["measured"]))))
                    ax.plot(t, rel(c["predicted_finite"]), "--", color=colour[r["width"]], lw=1)
                    if c.get("predicted_infinite") is not None:
                        ax.plot(t, rel(c["predicted_infinite"]), ":", color=colour[r["width"]], lw=1)
                ax.set_yscale("log")
                if math.isfinite(lowest) and lowest > 0 and ax.get_ylim()[0] < lowest * 1e-4:
                    ax.set_ylim(bottom=lowest * 1e-4)  # a linearised curve that falls far below: cut, not rescaled
                ax.set_title(f"{data}, {regime}", fontsize=8)
                ax.tick_params(labelsize=7)
                if i == len(datas) - 1:
                    ax.set_xlabel("eta * t (step size x steps)", fontsize=7)
                if j == 0:
                    ax.set_ylabel("L(t) / L(0)", fontsize=7)
        handles = [Line2D([], [], color=colour[w], lw=1.4, label=f"m = {w}") for w in widths]
        handles += [Line2D([], [], color="0.3", ls="-", label="measured"),
                    Line2D([], [], color="0.3", ls="--", label="linearised, Theta(0) averaged"),
                    Line2D([], [], color="0.3", ls=":", label="linearised, infinite width")]
        what = "eta = 1/lambda_max(Theta(0)) per network" if rule == "auto" else "common eta per data set"
        fig.suptitle(f"E1: loss against eta * t, step-size rule '{rule}' ({what}); seed "
                     f"{min(r['seed'] for r in runs)}", fontsize=9)
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
        out[f"loss_curves_{rule}"] = fig
    kinds = [("predicted_finite", "finite width (averaged Theta(0))"),
             ("predicted_infinite", "infinite width")]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds), 3.4), squeeze=False, layout="constrained")
    for ax, (key, label) in zip(axes[0], kinds, strict=True):
        pts = []
        for r in runs:
            p, m = r.get(key), r.get("measured_rate")
            if p is None or m is None or not (0 < p < 1 and 0 < m < 1):
                continue
            x, y = -math.log(p), -math.log(m)
            pts += [x, y]
            ax.plot(x, y, DATA_MARKERS.get(r["data"], "^"), ms=5, color=REGIME_COLOURS.get(r["regime"], "0.3"),
                    mfc=REGIME_COLOURS.get(r["regime"], "0.3") if r["rule"] == "auto" else "none")
        if pts:
            lo, hi = min(pts) / 1.5, max(pts) * 1.5
            ax.plot([lo, hi], [lo, hi], "-", color="0.5", lw=0.8)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted -log(rate), {label}", fontsize=7)
        ax.set_ylabel("measured -log(rate) (per step)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_title(f"vs {label}", fontsize=8)
    handles = [Line2D([], [], marker="o", ls="", color=REGIME_COLOURS[g], label=g) for g in regimes]
    handles += [Line2D([], [], marker=DATA_MARKERS.get(d, "^"), ls="", color="0.3", mfc="0.3", label=d) for d in datas]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="0.3", label="rule auto"),
                Line2D([], [], marker="o", ls="", color="0.3", mfc="none", label="rule common"),
                Line2D([], [], color="0.5", lw=0.8, label="measured = predicted")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle("E1: per-step loss contraction, measured against predicted (same window); "
                 "rate = L(k+1)/L(k)", fontsize=8)
    out["rates"] = fig
    return out
