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

Each ``k`` is the larger of the predictions for the two initialisations (the residual ``-X`` for
``zero``; for ``standard`` the expected loss over the Gaussian-process ``f_0``,
:func:`aedyn.kernels.init_output_kernel`). The **relative error** on inputs ``Z`` is

    err(Z) = ||f_net(Z) - f_pred(Z)||_F / ||f_pred(Z) - f0_pred(Z)||_F

the error of the *learned change* of the map: the denominator is what training changed in the
predicted map (for ``zero``, ``f0_pred = 0`` and it is ``||f_pred(Z)||``). Normalising by
``||f_pred(Z)||`` instead would, for ``standard``, fold in the random ``f_0`` that both maps share
exactly and understate the error; normalising by ``||Z||`` would mix in how much there is to learn.
The theory (Theta(t) - K ⊗ I_d = O(m^{-1/2})) predicts ``err ∝ m^(-1/2)``. The slope is the
least-squares slope of ``mean_seeds log err`` on ``log m`` over the widths (each width weighs the
same); its 95% interval is the percentile interval of the slopes refitted on 1000 paired bootstrap
resamples of the seeds (the same resampled seeds at every width: a seed's networks at different
widths share their first random draws; :func:`aedyn.experiments.fit_power_law`).

**(b) Memorisation on digits.** One wide network per regime (default ``joint``; ``f_0 ≡ 0`` so
that the kernel predictor has no random part) trains to ``L <= target L(0)`` on a few digits
(``per_class`` per class; rows normalised), at ``eta = safety / lambda_max(K_reg)``. It and the
converged predictor (``NTKPredictor(..., steps=None)``: kernel regression) are fed three kinds of
inputs:

- ``held-out``: other digits of the same classes (``held_per_class`` per class);
- ``noisy``: training digits plus Gaussian noise of relative size ``noise`` (per pixel
  ``N(0, noise^2 / d)``, then the row normalised again);
- ``random``: Gaussian vectors, normalised.

Per input and map: the share of the output's energy inside the span of the training samples
(``1 - energy_outside_span``; the input's own share is the identity map's), the distance of the
output to its nearest training sample (and that sample: for noisy inputs, whether it is the one the
input came from; for held-out ones, whether it has the input's class), ``||f(x) - x||``, the gap
between network and predictor ``||f_net(x) - f_pred(x)|| / ||f_pred(x)||``, and the fate of the
iterates ``x, f(x), f(f(x)), ...`` (:func:`aedyn.limit.memorisation`: a training sample, a fixed
point elsewhere, zero, diverged, still moving).

Functions here are pure: they return numbers, tables and figures and never print or write files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aedyn.data import load_data
from aedyn.experiments import DATA_MARKERS, REGIME_COLOURS, fit_power_law, small_problems
from aedyn.gd import TrainResult, train_batch
from aedyn.job import Notes
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD, NTKPredictor, memorisation
from aedyn.model import Params, forward, init_params

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
RESAMPLES = 1000
SLACK = 1e-9
"""Rounding slack in comparisons of fitted slopes (a slope of 1e-17 is not falling)."""
NEAR_SLOPE = 0.1
"""A slope within this of -1/2 counts as close to the theory even where its interval excludes -1/2."""
IN_SPAN_HIGH = 0.99
"""A median in-span share at least this counts as 'in the span of the training samples'."""


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict:
    """Everything the run depends on, JSON-ready.

    - quick: (a) sphere n = 16, d = 8, widths 2^8..2^12, 3 seeds; (b) joint, m = 1024, one digit per
      class (n = 10).
    - full: (a) sphere n = 16, d = 8, widths 2^8..2^14, 6 seeds; (b) joint and weak, m = 8192, one
      digit per class.

    ``seeds`` overrides the number of seeds of (a) (at least 2 for an interval)."""
    count = (3 if quick else 6) if seeds is None else int(seeds)
    widths = [2 ** k for k in range(8, 13 if quick else 15)]
    limit = {"data": [{"name": "sphere", "n": 16, "d": 8}], "regimes": list(REGIMES), "inits": list(INITS),
             "widths": widths, "seeds": list(range(count)), "held_out": 64, "held_out_seed": 1,
             "early_target": 1e-2, "converged_target": 1e-6}
    mem = {"regimes": ["joint"] if quick else ["joint", "weak"], "width": 1024 if quick else 8192, "seed": 0,
           "classes": list(range(10)), "per_class": 1, "held_per_class": 1, "noise": 0.3, "random": 10,
           "input_seed": 1, "target": 1e-6, "budget_factor": 4.0, "iterations": 200, "tol": 1e-3, "show": 4}
    return {"limit": limit, "memorisation": mem, "data_seed": 0, "safety": 0.5, "kappa": 1.0, "nu": 1.0,
            "dtype": "float64", "device": device, "resamples": RESAMPLES}


def setup(config: dict) -> list[str]:
    """The set-up in sentences for the report."""
    lim, mem = config["limit"], config["memorisation"]
    data = ", ".join(f"{d['name']} (n = {d['n']}, d = {d['d']})" for d in lim["data"])
    seeds = lim["seeds"]
    return [
        f"(a) Data: {data}, data seed {config['data_seed']}; held-out inputs: {lim['held_out']} fresh points "
        f"(sphere: data seed {lim['held_out_seed']}; digits: further samples of the same draw).",
        f"(a) Regimes {', '.join(lim['regimes'])}; initialisations {', '.join(lim['inits'])} (standard: random "
        "decoder, the predictor starts from the network's own f_0; zero: f_0 ≡ 0 by neurons paired with negated "
        f"decoders); widths m = {', '.join(str(w) for w in lim['widths'])}; {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''}; kappa = {config['kappa']:g}, nu = {config['nu']:g}, alpha = 1/sqrt(m), "
        f"{config['dtype']}.",
        f"Step size: one eta per data set and regime for every width, seed and initialisation, eta = "
        f"{config['safety']:g} / lambda_max(K_reg) of the infinite-width kernel (the NTK's limit is K_reg ⊗ I_d).",
        "(a) The network is compared with NTKPredictor at the same eta and step count k: 'early', the k at which the "
        f"predicted training loss reaches {lim['early_target']:g} L(0) (training and held-out inputs); 'converged', "
        f"the k at which it reaches {lim['converged_target']:g} L(0) (held-out inputs only: on training inputs both "
        "have interpolated). Error: ||f_net(Z) - f_pred(Z)||_F / ||f_pred(Z) - f0_pred(Z)||_F, relative to what "
        "training changed in the predicted map. Slope: least-squares line through the seed-mean of log error "
        f"against log m (each width weighs the same); 95% percentile interval from {config['resamples']} paired "
        "bootstrap resamples of the seeds (the same resampled seeds at every width: a seed's networks at different "
        "widths share their first random draws); theory -1/2.",
        f"(b) Memorisation: {mem['per_class']} digit(s) per class of {len(mem['classes'])} classes; networks "
        f"({', '.join(mem['regimes'])}, m = {mem['width']}, f_0 ≡ 0) trained to L <= {mem['target']:g} L(0); "
        "against the converged kernel predictor (kernel regression). Inputs: held-out digits "
        f"({mem['held_per_class']} per class), noisy training digits (noise of relative size {mem['noise']:g}: "
        f"N(0, {mem['noise']:g}^2/d) per pixel, renormalised), {mem['random']} random Gaussian unit vectors; "
        f"iterates x, f(x), f(f(x)), ... followed for {mem['iterations']} steps (tolerance {mem['tol']:g}).",
    ]


# ---- pure helpers ---------------------------------------------------------------------------------

def relative_error(f_net: torch.Tensor, f_pred: torch.Tensor, f0_pred: torch.Tensor) -> float:
    """``||f_net - f_pred||_F / ||f_pred - f0_pred||_F`` (NaN when the denominator is 0 or a value is
    not finite): the error of the learned change of the map."""
    num = float((f_net - f_pred).norm())
    den = float((f_pred - f0_pred).norm())
    return num / den if den > 0 and math.isfinite(num) and math.isfinite(den) else math.nan


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


def noisy_copies(X: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """``(x + noise * g / sqrt(d)) / ||x + noise * g / sqrt(d)||`` per row, ``g ~ N(0, I_d)`` (seeded):
    for unit rows the added noise has expected squared norm ``noise^2``."""
    gen = torch.Generator().manual_seed(int(seed))
    g = torch.randn(X.shape, generator=gen, dtype=torch.float64).to(dtype=X.dtype, device=X.device)
    Y = X + noise * g / math.sqrt(X.shape[1])
    return Y / Y.norm(dim=1, keepdim=True)


def random_unit(count: int, d: int, seed: int, like: torch.Tensor) -> torch.Tensor:
    """``count`` Gaussian vectors in ``R^d``, normalised to unit norm (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    G = torch.randn(count, d, generator=gen, dtype=torch.float64)
    return (G / G.norm(dim=1, keepdim=True)).to(dtype=like.dtype, device=like.device)


def span_share(Y: torch.Tensor, X_train: torch.Tensor) -> np.ndarray:
    """``||P y||^2 / ||y||^2`` per row, ``P`` the projector onto the span of the training samples
    (``1 - energy_outside_span``; a zero row gives 1)."""
    from aedyn.limit import energy_outside_span

    return 1.0 - energy_outside_span(Y, X_train).cpu().numpy()


def _stack(nets: Sequence[Params]) -> Params:
    return Params(torch.stack([p.W for p in nets]),
                  None if nets[0].V is None else torch.stack([p.V for p in nets]), nets[0].alpha)  # type: ignore[misc]


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _load(spec: dict, config: dict, held: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training data and held-out inputs of a data spec: sphere from another data seed; digits
    (and others) from one draw of ``n + held`` rows, split."""
    dt, dev = config["dtype"], config["device"]
    if spec["name"] == "sphere":
        X = load_data("sphere", n=spec["n"], d=spec["d"], seed=config["data_seed"], dtype=dt, device=dev)
        Z = load_data("sphere", n=held, d=spec["d"], seed=config["limit"]["held_out_seed"], dtype=dt, device=dev)
        return X, Z
    both = load_data(spec["name"], n=spec["n"] + held, seed=config["data_seed"], dtype=dt, device=dev)
    return both[:spec["n"]], both[spec["n"]:]


# ---- running --------------------------------------------------------------------------------------

def run(config: dict, *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict:
    """Part (a) for every (data, regime, width) batch (all seeds and both initialisations train as
    one batch: ``k_early`` steps, then on to ``k_conv``), then part (b). Returns ``{"config", "settings"
    (per data and regime: eta, the kernel's extremes, k_early, k_conv), "limit" (one record per network,
    stage and input set), "memorisation" (per regime: the training run and, per input kind and map,
    per-input measures and images), "notes"}``. ``checkpoint`` keeps each finished batch."""
    with small_problems(config["device"]):
        return _run(config, progress, checkpoint)


def _run(config: dict, progress: Callable[[str, float], None] | None, checkpoint: Any | None) -> dict:
    lim, mem = config["limit"], config["memorisation"]
    total = len(lim["data"]) * len(lim["regimes"]) * len(lim["widths"]) + len(mem["regimes"])
    done = 0
    notes = Notes()

    def report(message: str) -> None:
        if progress is not None:
            progress(message, done / total)

    settings, records = [], []
    for spec in lim["data"]:
        with notes.collect():
            X, Z = _load(spec, config, int(lim["held_out"]))
        n, d = X.shape
        for regime in lim["regimes"]:
            K = regime_kernel(X, regime, kappa=config["kappa"], nu=config["nu"])
            eta, lam_min, lam_max = limit_eta(K, float(config["safety"]))
            k1 = predicted_steps(X, K, eta, float(lim["early_target"]), kappa=config["kappa"], nu=config["nu"])
            k2 = max(k1 + 1, predicted_steps(X, K, eta, float(lim["converged_target"]), kappa=config["kappa"],
                                             nu=config["nu"]))
            settings.append({"data": spec["name"], "n": int(n), "d": int(d), "regime": regime, "eta": eta,
                             "lambda_min_inf": lam_min, "lambda_max_inf": lam_max, "steps_early": k1,
                             "steps_converged": k2})
            for width in lim["widths"]:
                report(f"E4: {spec['name']} {regime} m = {width}")
                key = f"limit|{spec['name']}|{n}|{d}|{regime}|{width}"
                saved = None if checkpoint is None else checkpoint.get(key)
                if saved is None:
                    before = len(notes.messages)
                    with notes.collect():
                        batch = _limit_batch(config, spec["name"], X, Z, regime, int(width), eta, k1, k2)
                    saved = {"records": batch, "notes": notes.messages[before:]}
                    if checkpoint is not None:
                        checkpoint.put(key, saved)
                else:
                    notes.messages += saved["notes"]
                records += saved["records"]
                done += 1
    memo = []
    for regime in mem["regimes"]:
        report(f"E4: memorisation, {regime} m = {mem['width']}")
        key = f"memorisation|{regime}"
        saved = None if checkpoint is None else checkpoint.get(key)
        if saved is None:
            before = len(notes.messages)
            with notes.collect():
                one = _memorise(config, regime)
            saved = {"result": one, "notes": notes.messages[before:]}
            if checkpoint is not None:
                checkpoint.put(key, saved)
        else:
            notes.messages += saved["notes"]
        memo.append(saved["result"])
        done += 1
    report("E4: done")
    return {"config": config, "settings": settings, "limit": records, "memorisation": memo,
            "notes": sorted(set(notes.messages))}


def _limit_batch(config: dict, data: str, X: torch.Tensor, Z: torch.Tensor, regime: str, width: int, eta: float,
                 k1: int, k2: int) -> list[dict]:
    """Train every (init, seed) network of one width for ``k1`` steps, measure, continue to ``k2``,
    measure; one record per network, stage and input set."""
    lim = config["limit"]
    d = X.shape[1]
    meta, nets = [], []
    for init in lim["inits"]:
        for seed in lim["seeds"]:
            meta.append((init, int(seed)))
            nets.append(init_params(d, width, regime=regime, seed=int(seed), kappa=config["kappa"], nu=config["nu"],
                                    zero_output=init == "zero", dtype=config["dtype"], device=config["device"]))
    start = _stack(nets)
    first = train_batch(X, start, regime, lr=eta, steps=k1, target=0.0, record_every=k1 + 1)
    second = train_batch(X, _stack([r.params for r in first]), regime, lr=eta, steps=k2 - k1, target=0.0,
                         record_every=k2 - k1 + 1)
    predictors: dict[tuple[str, int, int], NTKPredictor] = {}
    out = []
    for b, (init, seed) in enumerate(meta):
        f0net = nets[b]
        f0 = None if init == "zero" else (lambda z, p=f0net: forward(p, z, regime, check_finite=False))
        L0 = float(first[b].loss[0])
        for stage, k, result, sets in (("early", k1, first[b], (("train", X), ("held-out", Z))),
                                       ("converged", k2, second[b], (("held-out", Z),))):
            pkey = (init, seed if init == "standard" else -1, k)
            if pkey not in predictors:
                predictors[pkey] = NTKPredictor(X, regime, kappa=config["kappa"], nu=config["nu"], f0=f0, eta=eta,
                                                steps=k)
            pred = predictors[pkey]
            loss = float(result.loss[-1])
            for inputs, Y in sets:
                f_net = forward(result.params, Y, regime, check_finite=False)
                f_pred = pred(Y)
                f_zero = torch.zeros_like(Y) if f0 is None else f0(Y)
                out.append({"part": "limit", "data": data, "regime": regime, "init": init, "width": width,
                            "seed": seed, "stage": stage, "steps": int(k), "inputs": inputs,
                            "error": _finite(relative_error(f_net, f_pred, f_zero)),
                            "scale": _finite(float((f_pred - f_zero).norm())),
                            "status": "diverged" if "diverged" in (first[b].status, result.status) else "ok",
                            "loss_rel": _finite(loss / L0) if L0 > 0 else None})
    return out


def _memorise(config: dict, regime: str) -> dict:
    """Part (b) for one regime: data, training, and the measures of both maps on every input kind."""
    mem = config["memorisation"]
    dt, dev = config["dtype"], config["device"]
    per, held = int(mem["per_class"]), int(mem["held_per_class"])
    train_rows, held_rows, train_labels, held_labels = [], [], [], []
    for c in mem["classes"]:
        rows = load_data("digits", n=per + held, classes=[int(c)], seed=config["data_seed"], dtype=dt, device=dev)
        train_rows.append(rows[:per])
        held_rows.append(rows[per:])
        train_labels += [int(c)] * per
        held_labels += [int(c)] * held
    X = torch.cat(train_rows)
    n, d = X.shape
    source = list(range(n))
    inputs = {"held-out": torch.cat(held_rows),
              "noisy": noisy_copies(X, float(mem["noise"]), int(mem["input_seed"])),
              "random": random_unit(int(mem["random"]), d, int(mem["input_seed"]) + 1, X)}
    K = regime_kernel(X, regime, kappa=config["kappa"], nu=config["nu"])
    eta, lam_min, lam_max = limit_eta(K, float(config["safety"]))
    k_pred = LinearisedGD(K, eta).steps_to(-X, float(mem["target"]))
    budget = max(10, math.ceil(float(mem["budget_factor"]) * (k_pred or 1000)))
    net0 = init_params(d, int(mem["width"]), regime=regime, seed=int(mem["seed"]), kappa=config["kappa"],
                       nu=config["nu"], zero_output=True, dtype=dt, device=dev)
    result: TrainResult = train_batch(X, _stack([net0]), regime, lr=eta, steps=budget, target=float(mem["target"]),
                                      record_every=budget + 1)[0]
    params = result.params

    def network(z: torch.Tensor) -> torch.Tensor:
        return forward(params, z, regime, check_finite=False)

    predictor = NTKPredictor(X, regime, kappa=config["kappa"], nu=config["nu"], f0=None)
    maps = {"network": network, "predictor": predictor}
    kinds: dict[str, Any] = {}
    images: dict[str, Any] = {}
    show, T = int(mem["show"]), int(mem["iterations"])
    for kind, Z in inputs.items():
        outputs = {name: f(Z) for name, f in maps.items()}
        gap = ((outputs["network"] - outputs["predictor"]).norm(dim=1)
               / outputs["predictor"].norm(dim=1).clamp_min(1e-300)).cpu().numpy()
        in_near, in_idx = torch.cdist(Z, X).min(dim=1)
        entry: dict[str, Any] = {"count": int(Z.shape[0]), "input_in_span": span_share(Z, X).tolist(),
                                 "input_nearest_distance": in_near.cpu().numpy().tolist(),
                                 "input_nearest_index": in_idx.cpu().numpy().tolist(),
                                 "network_vs_predictor": gap.tolist()}
        if kind == "noisy":
            entry["source"] = source
        if kind == "held-out":
            entry["labels"] = held_labels
        for name, f in maps.items():
            m = memorisation(f, Z, X, iterations=T, tol=float(mem["tol"]))
            ends = [int(s.rsplit(" ", 1)[1]) if s.startswith("training sample") else None for s in m.fate]
            entry[name] = {"in_span": span_share(outputs[name], X).tolist(),
                           "nearest_distance": m.nearest_distance.tolist(),
                           "nearest_index": [int(i) for i in m.nearest_index],
                           "input_distance": m.input_distance.tolist(),
                           "output_norm": outputs[name].norm(dim=1).cpu().numpy().tolist(),
                           "fate": list(m.fate), "fate_counts": m.fate_counts(), "end_sample": ends,
                           "final_nearest": m.iterate_nearest[-1].tolist(),
                           "final_norm": m.iterate_norm[-1].tolist()}
        kinds[kind] = entry
        z, first = Z[:show], Z[:show]
        for _ in range(T):
            z = torch.nan_to_num(network(z), posinf=0.0, neginf=0.0)
        images[kind] = {"input": _img(first), "network": _img(outputs["network"][:show]),
                        "predictor": _img(outputs["predictor"][:show]), "network_iterate": _img(z)}
    return {"regime": regime, "width": int(mem["width"]), "n": int(n), "d": int(d), "eta": eta,
            "lambda_min_inf": lam_min, "lambda_max_inf": lam_max, "predicted_steps": k_pred, "budget": budget,
            "status": result.status, "steps": int(result.steps), "iterations": T,
            "final_relative_loss": float(result.loss[-1] / result.loss[0]), "train_labels": train_labels,
            "train_images": _img(X), "kinds": kinds, "images": images}


def _img(Y: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), 6) for v in row] for row in Y.detach().cpu()]


# ---- the table, the verdict -----------------------------------------------------------------------

LIMIT_COLUMNS = ("part", "data", "regime", "init", "width", "seed", "stage", "steps", "inputs", "error", "scale",
                 "loss_rel", "status")
MEMO_COLUMNS = ("part", "regime", "width", "kind", "map", "index", "in_span", "input_in_span", "nearest_distance",
                "nearest_index", "nearest_is_source", "nearest_same_class", "input_nearest_distance",
                "input_distance", "output_norm", "network_vs_predictor", "fate", "end_is_source")
COLUMNS = tuple(dict.fromkeys(LIMIT_COLUMNS + MEMO_COLUMNS))


def tabulate(results: dict) -> Any:
    """The tidy table, long: ``part = "limit"`` rows (one per data, regime, init, width, seed, stage
    and input set, with ``error``) and ``part = "memorisation"`` rows (one per regime, input kind, map
    and input, with the memorisation measures); columns a part does not have are empty."""
    import pandas as pd

    rows = [dict(r) for r in results["limit"]]
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
    numeric = ["width", "seed", "steps", "error", "scale", "loss_rel", "index", "in_span", "input_in_span",
               "nearest_distance", "nearest_index", "input_nearest_distance", "input_distance", "output_norm",
               "network_vs_predictor"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    for col in ("nearest_is_source", "nearest_same_class", "end_is_source"):
        table[col] = table[col].astype("boolean")
    return table


def slopes(results: dict) -> list[dict]:
    """One fitted slope per (data, regime, init, stage, inputs) of part (a)
    (:func:`aedyn.experiments.fit_power_law` over the widths x seeds errors: ``value``, ``ci_low``,
    ``ci_high``, ``zero_widths``; ``points``: the finite errors), with the median error at the
    largest width (``widths``: every width run)."""
    recs = results["limit"]
    resamples = int(results.get("config", {}).get("resamples", RESAMPLES))
    out = []
    keys = list(dict.fromkeys((r["data"], r["regime"], r["init"], r["stage"], r["inputs"]) for r in recs))
    for data, regime, init, stage, inputs in keys:
        mine = [r for r in recs if (r["data"], r["regime"], r["init"], r["stage"], r["inputs"])
                == (data, regime, init, stage, inputs)]
        widths = sorted({r["width"] for r in mine})
        seeds = sorted({r["seed"] for r in mine})
        E = np.full((len(widths), len(seeds)), np.nan)
        for r in mine:
            E[widths.index(r["width"]), seeds.index(r["seed"])] = np.nan if r["error"] is None else r["error"]
        fit = fit_power_law(widths, E.tolist(), resamples=resamples)
        top = E[-1][np.isfinite(E[-1])]
        out.append({"data": data, "regime": regime, "init": init, "stage": stage, "inputs": inputs,
                    "value": None if fit is None else fit.value, "ci_low": None if fit is None else fit.ci_low,
                    "ci_high": None if fit is None else fit.ci_high, "points": int(np.isfinite(E).sum()),
                    "zero_widths": [] if fit is None else list(fit.zero_widths),
                    "widths": [int(w) for w in widths], "seeds": len(seeds),
                    "median_error": [_finite(float(np.nanmedian(row))) if np.isfinite(row).any() else None
                                     for row in E],
                    "error_at_largest": _finite(float(np.median(top))) if len(top) else None})
    return out


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    """``x`` formatted (two decimals by default, without a minus sign on a rounded zero); ``n/a`` for None."""
    if x is None:
        return "n/a"
    return f"{round(x, 2) + 0.0:.2f}" if fmt == "{:.2f}" else fmt.format(x)


def _contains(s: dict) -> bool:
    """Whether a slope's interval contains -1/2 (up to rounding, :data:`SLACK`)."""
    return s["ci_low"] is not None and s["ci_low"] - SLACK <= THEORY_SLOPE <= s["ci_high"] + SLACK


def _slope_words(s: dict) -> str:
    """A fitted slope in words, against the theory's -1/2: inside the interval, within
    :data:`NEAR_SLOPE` of it (interval excluding it), or steeper / shallower / not falling."""
    if s["value"] is None:
        return "too few widths to fit a slope"
    lo, hi, v = s["ci_low"], s["ci_high"], s["value"]
    text = f"error ∝ m^{_num(v)}" + ("" if lo is None else f" (95% CI {_num(lo)} to {_num(hi)})")
    if _contains(s):
        return text + ", consistent with m^-1/2"
    if abs(v - THEORY_SLOPE) <= NEAR_SLOPE:
        return text + f", within {NEAR_SLOPE:g} of -1/2" + ("" if lo is None else " though the interval excludes it")
    if v < THEORY_SLOPE:
        return text + ", falling faster than m^-1/2"
    if v < -SLACK:
        return text + ", falling more slowly than m^-1/2"
    return text + ", not falling with m"


def memorisation_summary(results: dict) -> dict:
    """Per regime, input kind and map: median in-span share (and the input's own), nearest-sample
    statistics, median ``||f(x) - x||``, fate counts; per kind, the median network-predictor gap."""
    out: dict[str, Any] = {}
    for res in results["memorisation"]:
        labels = res["train_labels"]
        per: dict[str, Any] = {}
        for kind, e in res["kinds"].items():
            entry: dict[str, Any] = {
                "count": e["count"], "input_in_span_median": float(np.median(e["input_in_span"])),
                "input_nearest_distance_median": float(np.median(e["input_nearest_distance"])),
                "network_vs_predictor_median": _finite(float(np.median(e["network_vs_predictor"])))}
            for name in MAPS:
                mp = e[name]
                near = mp["nearest_index"]
                stats: dict[str, Any] = {
                    "in_span_median": float(np.median(mp["in_span"])), "in_span_min": float(np.min(mp["in_span"])),
                    "nearest_distance_median": float(np.median(mp["nearest_distance"])),
                    "nearest_distance_max": float(np.max(mp["nearest_distance"])),
                    "input_distance_median": float(np.median(mp["input_distance"])),
                    "output_norm_median": float(np.median(mp["output_norm"])),
                    "end_nearest_distance_median": _finite(float(np.median(mp["final_nearest"]))),
                    "end_norm_median": _finite(float(np.median(mp["final_norm"]))),
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
                              "final_relative_loss": res["final_relative_loss"], "kinds": per}
    return out


def _fates(fc: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(fc.items(), key=lambda kv: -kv[1])) or "none"


def _behaviour(net: dict, e: dict) -> str:
    """What the network does with one input kind, in words, from its medians: the identity (outputs
    within 0.1 of the inputs, in-span share unchanged), or how far it maps into the span of the
    training samples and whether the output is nearer a training sample than the input; it
    *memorises* when both hold (in-span share at least :data:`IN_SPAN_HIGH`)."""
    span, base = net["in_span_median"], e["input_in_span_median"]
    near, move = net["nearest_distance_median"], net["input_distance_median"]
    if move < 0.1 and abs(span - base) < 0.05:
        return "acts like the identity (outputs within 0.1 of the inputs, in-span share unchanged)"
    if span >= IN_SPAN_HIGH:
        where = "maps into the span of the training samples"
    elif span > base + 0.05:
        where = "pulls outputs towards the span of the training samples, not fully,"
    else:
        where = "does not pull outputs into the span of the training samples"
    lands = ("and lands nearer a training sample than the input" if near < move
             else "but stays nearer the input than any training sample")
    return ("memorises: it " if span >= IN_SPAN_HIGH and near < move else "") + f"{where} {lands}"


def verdict(results: dict) -> tuple[list[str], dict]:
    """Sentences computed from the numbers, and the summary ``{"slopes": [...], "memorisation": {...},
    "settings": [...]}``."""
    sl = slopes(results)
    sentences: list[str] = []
    groups = list(dict.fromkeys((s["data"], s["regime"]) for s in sl))
    for data, regime in groups:
        mine = [s for s in sl if (s["data"], s["regime"]) == (data, regime)]
        parts = [f"{s['init']} init, {s['inputs']} inputs ({s['stage']}): {_slope_words(s)}, median error "
                 f"{_num(s['error_at_largest'], '{:.3g}')} at m = {max(s['widths'])}" for s in mine]
        sentences.append(f"{data}, {regime}: the trained network against the NTK-limit prediction at the same eta and "
                         "step count: " + "; ".join(parts) + ".")
    fits = [s for s in sl if s["value"] is not None]
    if fits:
        consistent = [s for s in fits if _contains(s)]
        falling = [s for s in fits if s["value"] < -SLACK]
        sentences.append(f"Of {len(fits)} fitted slopes, {len(falling)} fall with m and {len(consistent)} have a 95% "
                         f"interval containing -1/2 (slopes {_num(min(s['value'] for s in fits))} to "
                         f"{_num(max(s['value'] for s in fits))}).")
    for data, regime in groups:
        diffs = []
        for stage, inputs in dict.fromkeys((s["stage"], s["inputs"]) for s in sl):
            pair = {s["init"]: s for s in sl if (s["data"], s["regime"], s["stage"], s["inputs"])
                    == (data, regime, stage, inputs)}
            a, b = pair.get("zero"), pair.get("standard")
            if not a or not b or not a["error_at_largest"] or not b["error_at_largest"]:
                continue
            ratio = a["error_at_largest"] / b["error_at_largest"]
            how = ("about the same as" if 0.8 <= ratio <= 1.25 else f"{ratio:.2f}x" if ratio > 1
                   else f"{1 / ratio:.2f}x smaller than")
            overlap = (None not in (a["ci_low"], b["ci_low"])
                       and a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"])
            diffs.append(f"{inputs} ({stage}): error with f_0 ≡ 0 {how} the standard init's at the largest width, "
                         f"slopes {_num(a['value'])} vs {_num(b['value'])}"
                         + (" (intervals overlap)" if overlap else " (intervals disjoint)"
                            if None not in (a["ci_low"], b["ci_low"]) else ""))
        if diffs:
            sentences.append(f"{data}, {regime}, f_0 ≡ 0 against the standard init: " + "; ".join(diffs)
                             + " (for comparison: the paired initialisation has only m/2 independent neurons, and a "
                             "kernel that fluctuates like a width-m/2 one would alone give a ratio of sqrt(2) ≈ "
                             "1.41).")
    memo = memorisation_summary(results)
    for regime, mr in memo.items():
        head = (f"Memorisation ({regime}, m = {mr['width']}, trained on n = {mr['n']} digits, f_0 ≡ 0; "
                f"{mr['status']} after {mr['steps']} steps at relative loss {mr['final_relative_loss']:.2g}):")
        parts = []
        for kind, e in mr["kinds"].items():
            net, pred = e["network"], e["predictor"]
            text = (f"{kind} inputs: the network {_behaviour(net, e)}; median in-span share "
                    f"{net['in_span_median']:.3f} (predictor {pred['in_span_median']:.3f}, the input itself "
                    f"{e['input_in_span_median']:.3f}), median distance of the output to its nearest training sample "
                    f"{net['nearest_distance_median']:.3f} (predictor {pred['nearest_distance_median']:.3f}; the "
                    f"input's {e['input_nearest_distance_median']:.3f}), median ||f(x) - x|| "
                    f"{net['input_distance_median']:.3f}")
            if "nearest_is_source" in net:
                text += (f"; the nearest training sample is the source digit for {100 * net['nearest_is_source']:.0f}%"
                         f" (predictor {100 * pred['nearest_is_source']:.0f}%)")
            if "nearest_same_class" in net:
                text += (f"; the nearest training sample has the input's class for "
                         f"{100 * net['nearest_same_class']:.0f}% (predictor {100 * pred['nearest_same_class']:.0f}%)")
            text += (f"; iterates end: network {_fates(net['fates'])} (median distance of the endpoint to its "
                     f"nearest training sample {_num(net['end_nearest_distance_median'], '{:.3f}')}, norm "
                     f"{_num(net['end_norm_median'], '{:.3f}')}); predictor {_fates(pred['fates'])} (distance "
                     f"{_num(pred['end_nearest_distance_median'], '{:.3f}')}, norm "
                     f"{_num(pred['end_norm_median'], '{:.3f}')})")
            if "end_is_source" in net:
                text += (f" (at the source digit: network {100 * net['end_is_source']:.0f}%, predictor "
                         f"{100 * pred['end_is_source']:.0f}%)")
            gap = e["network_vs_predictor_median"]
            text += ("" if gap is None else f"; network and predictor differ by {100 * gap:.1f}% (median relative)")
            parts.append(text)
        sentences.append(head + " " + ". ".join(parts) + ".")
    summary = {"slopes": [{k: s[k] for k in ("data", "regime", "init", "stage", "inputs", "value", "ci_low",
                                              "ci_high", "points", "widths", "error_at_largest")} for s in sl],
               "memorisation": memo, "settings": results.get("settings", [])}
    return sentences, summary


# ---- figures -------------------------------------------------------------------------------------

def figures(results: dict) -> dict[str, Any]:
    """Matplotlib figures (no I/O): ``limit_error`` (relative error against m, log-log, one panel per
    data set and comparison; median over seeds with the seeds' range, fitted lines, an m^-1/2
    reference), and per memorisation regime ``memorisation_images_<regime>`` (8x8 images: inputs of
    each kind, network and predictor outputs, the network's iterate endpoint) and
    ``memorisation_fates`` (where the iterates end, per kind and map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    out: dict[str, Any] = {}
    sl = slopes(results)
    if sl:
        datas = list(dict.fromkeys(s["data"] for s in sl))
        panels = list(dict.fromkeys((s["stage"], s["inputs"]) for s in sl))
        regimes = list(dict.fromkeys(s["regime"] for s in sl))
        fig, axes = plt.subplots(len(datas), len(panels), figsize=(3.3 * len(panels), 3.0 * len(datas) + 0.8),
                                 squeeze=False, layout="constrained", sharey=True)
        styles = {"standard": "-", "zero": "--"}
        recs = results["limit"]
        for i, data in enumerate(datas):
            for j, (stage, inputs) in enumerate(panels):
                ax = axes[i][j]
                ref_anchor = None  # the m^-1/2 line starts above the highest median at the smallest width
                for s in sl:
                    if (s["data"], s["stage"], s["inputs"]) != (data, stage, inputs):
                        continue
                    colour = REGIME_COLOURS.get(s["regime"], "0.3")
                    w = np.asarray(s["widths"], dtype=float)
                    errs = [[r["error"] for r in recs if (r["data"], r["regime"], r["init"], r["stage"], r["inputs"],
                                                          r["width"]) == (data, s["regime"], s["init"], stage, inputs,
                                                                          wi) and r["error"] is not None]
                            for wi in s["widths"]]
                    med = np.array([np.median(e) if e else np.nan for e in errs])
                    lo = np.array([min(e) if e else np.nan for e in errs])
                    hi = np.array([max(e) if e else np.nan for e in errs])
                    ax.errorbar(w, med, yerr=[med - lo, hi - med], fmt=DATA_MARKERS.get(data, "^"), ms=4,
                                color=colour, mfc=colour if s["init"] == "standard" else "none", capsize=2, lw=0.8)
                    ok = np.isfinite(med) & (med > 0)
                    if s["value"] is not None and ok.any():
                        c = np.exp(np.mean(np.log(med[ok]) - s["value"] * np.log(w[ok])))
                        ax.plot(w, c * w ** s["value"], styles.get(s["init"], ":"), color=colour, lw=1)
                        if ref_anchor is None or med[ok][0] > ref_anchor[1]:
                            ref_anchor = (w[ok][0], med[ok][0])
                if ref_anchor is not None:
                    w0, e0 = ref_anchor
                    grid = np.asarray(sorted({r["width"] for r in recs}), dtype=float)
                    ax.plot(grid, 1.4 * e0 * (grid / w0) ** THEORY_SLOPE, ":", color="0.4", lw=1)
                ax.set(xscale="log", yscale="log", title=f"{data}: {inputs} inputs, {stage}")
                ax.set_xscale("log", base=2)
                ax.title.set_fontsize(8)
                ax.tick_params(which="both", labelsize=7)
                if i == len(datas) - 1:
                    ax.set_xlabel("width m", fontsize=7)
                if j == 0:
                    ax.set_ylabel("||f_net - f_pred|| / ||f_pred - f_0,pred||", fontsize=7)
        handles = [Line2D([], [], color=REGIME_COLOURS.get(g, "0.3"), marker="o", lw=1, label=g) for g in regimes]
        handles += [Line2D([], [], color="0.3", ls="-", marker="o", label="standard init (fit solid)"),
                    Line2D([], [], color="0.3", ls="--", marker="o", mfc="none", label="f_0 ≡ 0 (fit dashed)"),
                    Line2D([], [], color="0.4", ls=":", label="m^-1/2 reference")]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
        fig.suptitle("E4: trained network against the NTK-limit prediction (same eta, same step count); "
                     "median over seeds, bars: range", fontsize=9)
        out["limit_error"] = fig
    memo = results["memorisation"]
    for res in memo:
        out[f"memorisation_images_{res['regime']}"] = _image_grid(res, plt)
    if memo:
        out["memorisation_fates"] = _fate_bars(memo, plt)
    return out


def _image_grid(res: dict, plt: Any) -> Any:
    rows = [("input", "input"), ("network", "network f(x)"), ("predictor", "predictor f(x)"),
            ("network_iterate", "network f^T(x)")]
    kinds = [k for k in KINDS if k in res["images"]]
    cols = [(k, i) for k in kinds for i in range(len(res["images"][k]["input"]))]
    side = math.isqrt(int(res["d"]))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(0.85 * len(cols) + 0.8, 0.95 * len(rows) + 0.9),
                             squeeze=False, layout="constrained")
    T = res.get("iterations")
    for j, (kind, i) in enumerate(cols):
        for r, (key, label) in enumerate(rows):
            ax = axes[r][j]
            v = np.asarray(res["images"][kind][key][i], dtype=float)
            if side * side == v.size:
                ax.imshow(v.reshape(side, side), cmap="gray_r", interpolation="nearest")
                norm = float(np.linalg.norm(v))
                if not np.isfinite(norm) or norm < 1e-6:  # a blank panel would hide where the iterates went
                    ax.text(0.5, 0.5, "→ 0" if np.isfinite(norm) else "diverged", transform=ax.transAxes,
                            ha="center", va="center", fontsize=8, color="0.3")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{kind} {i}", fontsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"E4: memorisation, {res['regime']}, m = {res['width']}, trained on n = {res['n']} digits, f_0 ≡ 0 "
                 f"(each image scaled to its own range{'' if T is None else f'; T = {T}'})", fontsize=8)
    return fig


def _fate_bars(memo: list[dict], plt: Any) -> Any:
    order = ["training sample", "fixed point", "zero", "moving", "diverged"]
    colours = {"training sample": "#1b9e77", "fixed point": "#7570b3", "zero": "#999999", "moving": "#e6ab02",
               "diverged": "#d95f02"}
    fig, axes = plt.subplots(1, len(memo), figsize=(3.6 * len(memo) + 0.4, 3.2), squeeze=False, layout="constrained")
    for ax, res in zip(axes[0], memo, strict=True):
        labels, bottoms = [], []
        bars = []
        for kind in KINDS:
            if kind not in res["kinds"]:
                continue
            for name in MAPS:
                labels.append(f"{kind}\n{name}")
                bars.append(res["kinds"][kind][name]["fate_counts"])
        bottoms = np.zeros(len(bars))
        for fate in order:
            h = np.array([b.get(fate, 0) for b in bars], dtype=float)
            ax.bar(range(len(bars)), h, bottom=bottoms, color=colours[fate], label=fate)
            bottoms += h
        ax.set_xticks(range(len(bars)), labels, fontsize=6)
        ax.set_ylabel("inputs", fontsize=7)
        ax.set_title(f"{res['regime']}, m = {res['width']}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f], label=f) for f in order]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(order), fontsize=7, frameon=False)
    fig.suptitle("E4: where the iterates x, f(x), f(f(x)), ... end", fontsize=9)
    return fig
