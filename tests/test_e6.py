"""E6, from lazy training to feature learning: config and set-up, a tiny run end to end, the
measures against an independent gradient descent (autograd Jacobian, dense NTK), the lazy limit
against the minimum-norm interpolant of the linearised model, the slopes (the shared fit, seeds lined up),
the verdict on made-up numbers, the figures, and resuming from a checkpoint."""

from __future__ import annotations

import json
import math
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from aedyn.experiments import e6, fit_power_law, small_problems, values_by_seed
from aedyn.job import Notes


def tiny_config(**changes):
    cfg = e6.config(quick=True)
    cfg.update(data={"name": "sphere", "n": 6, "d": 3}, widths=[32, 64], gammas=[0.5, 1.0], seeds=[0, 1],
               steps={"joint": 300, "tied": 300}, n_test=20, resamples=200)
    cfg.update(changes)
    return cfg


def quiet_run(cfg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return e6.run(cfg, **kw)


@pytest.fixture(scope="module")
def tiny():
    calls = []
    results = quiet_run(tiny_config(), progress=lambda message, fraction: calls.append((message, fraction)))
    return results, calls


def test_config_is_json_ready_and_setup_says_what_runs():
    for quick in (True, False):
        cfg = e6.config(quick=quick)
        assert json.loads(json.dumps(cfg)) == cfg
        assert cfg["regimes"] == ["joint", "tied"] and cfg["gammas"][0] == 0.5 and cfg["gammas"][-1] == 1.0
        assert cfg["data"]["n"] * cfg["data"]["d"] <= 1024  # the NTK is dense and exact on the CPU
        assert cfg["steps"]["tied"] > cfg["steps"]["joint"]
    assert e6.config(quick=True)["widths"] == [256, 1024] and max(e6.config()["widths"]) == 4096
    assert e6.config(seeds=5)["seeds"] == [0, 1, 2, 3, 4]
    text = " ".join(e6.setup(e6.config(quick=True)))
    for words in ("sphere (n = 16, d = 8", "alpha = m^(-gamma)", "0.5, 0.625, 0.75, 0.875, 1", "m = 256, 1024",
                  "1/lambda_max(Theta(0))", "m^(2 gamma - 1)", "joint 600", "tied 1000", "sqrt(m)/2",
                  "below -0.2", "at most 10%", "bootstrap", "data seed 1"):
        assert words in text, words
    assert e6.NAME == "E6" and e6.TITLE and e6.CLAIM.endswith(".")


def test_tiny_run_gives_every_key_and_a_sane_table(tiny):
    results, calls = tiny
    json.dumps(results, allow_nan=False)  # JSON-ready
    assert set(results) >= {"config", "runs", "notes"}
    assert len(results["runs"]) == 2 * 2 * 2 * 2  # regimes x gammas x widths x seeds
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    table = e6.tabulate(results)
    assert list(table.columns) == list(e6.COLUMNS) and len(table) == 16
    assert np.allclose(table["alpha"], table["width"] ** -table["gamma"])
    assert (table["eta"] > 0).all() and (table["steps"] <= table["budget"]).all()
    assert set(table["status"]) <= {"converged", "max_steps", "diverged"}
    done = table[table["status"] == "converged"]
    assert len(done) and (done["train_error"] <= results["config"]["epsilon"] * (1 + 1e-9)).all()
    joint, tied = table[table["regime"] == "joint"], table[table["regime"] == "tied"]
    assert joint["weight_change_V"].notna().all() and tied["weight_change_V"].isna().all()
    for q in ("weight_change_W", "max_neuron_change_W", "pattern_flips", "ntk_drift", "heldout_error"):
        assert (table[q] >= 0).all() and table[q].notna().all(), q
    assert (table["drift_method"] == "exact").all()  # n d <= 1024: the dense NTK, not a probe estimate
    sentences, summary = e6.verdict(results)
    json.dumps(summary, allow_nan=False)
    assert set(summary["lazy_until"]) == {"joint", "tied"} and set(summary["breaks_at"]) == {"joint", "tied"}
    keys = {(e["regime"], e["gamma"], e["quantity"]) for e in summary["slopes"]}
    assert ("joint", 0.5, "weight_change_V") in keys and ("tied", 0.5, "weight_change_V") not in keys
    assert all({"value", "ci_low", "ci_high"} <= set(e) for e in summary["slopes"])
    assert all(isinstance(s, str) and s.endswith(".") for s in sentences)


# ---- physics: an independent gradient descent -------------------------------------------------------

def _independent(cfg, regime, gamma, width, seed):
    """Gradient descent written out here: autograd gradients of L = 0.5 ||f(X) - X||^2, the NTK as
    J J^T from the autograd Jacobian, eta = 1/lambda_max (dense), stop at ||R|| <= epsilon ||X||."""
    job = e6._job(cfg, regime, gamma, width, seed)
    X = job.load(Notes())
    p = job.init(X.shape[1], width, e6.alpha_of(width, gamma))
    alpha = width ** -gamma
    tied = regime == "tied"
    W0 = p.W.clone().double()
    V0 = None if tied else p.V.clone().double()

    def f(W, V, Z):
        return alpha * torch.relu(Z @ W.T) @ (W if tied else V.T)

    def ntk(W, V):
        if tied:
            J = torch.autograd.functional.jacobian(lambda w: f(w, None, X).reshape(-1), W).reshape(X.numel(), -1)
        else:
            Jw, Jv = torch.autograd.functional.jacobian(lambda w, v: f(w, v, X).reshape(-1), (W, V))
            J = torch.cat([Jw.reshape(X.numel(), -1), Jv.reshape(X.numel(), -1)], dim=1)
        return J @ J.T

    K0 = ntk(W0, V0)
    eta = 1.0 / float(torch.linalg.eigvalsh(K0)[-1])
    W, V = W0.clone(), None if tied else V0.clone()
    steps = 0
    for _ in range(cfg["steps"][regime]):
        if float((f(W, V, X) - X).norm() / X.norm()) <= cfg["epsilon"]:
            break
        W.requires_grad_(True)
        if not tied:
            V.requires_grad_(True)
        loss = 0.5 * (f(W, V, X) - X).square().sum()
        grads = torch.autograd.grad(loss, [W] if tied else [W, V])
        with torch.no_grad():
            W = (W - eta * grads[0]).detach()
            V = None if tied else (V - eta * grads[1]).detach()
        steps += 1
    X_test = e6.load_data("sphere", n=cfg["n_test"], d=X.shape[1], seed=cfg["test_seed"])
    flips = float(((X @ W.T > 0) != (X @ W0.T > 0)).double().mean())
    K = ntk(W, V)
    return {"eta": eta, "steps": steps, "weight_change_W": float((W - W0).norm() / W0.norm()),
            "weight_change_V": None if tied else float((V - V0).norm() / V0.norm()),
            "max_neuron_change_W": float((W - W0).norm(dim=1).max()), "pattern_flips": flips,
            "ntk_drift": float((K - K0).norm() / K0.norm()),
            "train_error": float((f(W, V, X) - X).norm() / X.norm()),
            "heldout_error": float((f(W, V, X_test) - X_test).norm() / X_test.norm())}


def test_measures_equal_an_independent_gradient_descent():
    """Every measure of a joint and a tied run at gamma = 3/4 against gradient descent written out
    here with autograd (the NTK from the autograd Jacobian). Both are exact float64 GD from the same
    initialisation; they differ only through eta (Lanczos to ~1e-10 against a dense eigvalsh),
    which a few hundred contracting steps carry to ~1e-8: tolerance 1e-6."""
    cfg = tiny_config(widths=[32], gammas=[0.75], seeds=[3], steps={"joint": 400, "tied": 600})
    results = quiet_run(cfg)
    for row in results["runs"]:
        with small_problems("cpu"):  # one thread: several would thrash on a shared machine
            ref = _independent(cfg, row["regime"], row["gamma"], row["width"], row["seed"])
        assert row["status"] == "converged" and row["steps"] == ref["steps"], (row["regime"], row["steps"])
        for key, value in ref.items():
            if value is None:
                assert row[key] is None
            elif key != "steps":
                assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-12), (row["regime"], key)
        assert row["pattern_flips"] > 0 and row["ntk_drift"] > 1e-3  # the comparison is not of zeros


def test_ntk_scaling_run_is_lazy_and_moves_like_the_minimum_norm_interpolant():
    """In the lazy limit (gamma = 1/2, wide) gradient descent ends at the minimum-norm solution of the
    linearised problem, so the parameters move by ||theta_T - theta_0||^2 = R0^T Theta(0)^-1 R0.
    At m = 2048 on 6 points the kernel drifts by ~1%, which bounds the mismatch: tolerance 5%.
    At gamma = 1 the same network is far from lazy: its kernel drifts by more than 30%."""
    from aedyn.model import forward
    from aedyn.ntk import ntk_dense

    width = 2048
    cfg = tiny_config(regimes=["joint"], widths=[width], gammas=[0.5, 1.0], seeds=[0], steps={"joint": 2000})
    results = quiet_run(cfg)
    lazy, rich = sorted(results["runs"], key=lambda r: r["gamma"])
    job = e6._job(cfg, "joint", 0.5, width, 0)
    X = job.load(Notes())
    p = job.init(X.shape[1], width, e6.alpha_of(width, 0.5))
    with small_problems("cpu"):
        R0 = (forward(p, X, "joint") - X).reshape(-1)
        Theta = ntk_dense(p, X, "joint").double()
        predicted = math.sqrt(float(R0 @ torch.linalg.solve(Theta, R0)))
    moved = math.hypot(lazy["weight_distance_W"], lazy["weight_distance_V"])
    assert lazy["status"] == "converged" and lazy["ntk_drift"] < 0.03
    assert moved == pytest.approx(predicted, rel=0.05)
    assert rich["ntk_drift"] > 0.3 and rich["weight_change_W"] > 10 * lazy["weight_change_W"]


# ---- the slope fit and the rule ---------------------------------------------------------------------

def test_lazy_range_follows_the_rule():
    g = [0.5, 0.75, 1.0]
    assert e6.lazy_range(g, [-0.45, -0.3, 0.0], [0.02, 0.05, 0.9])[:2] == (0.75, 1.0)
    assert e6.lazy_range(g, [-0.45, -0.3, -0.3], [0.02, 0.05, 0.09])[:2] == (1.0, None)
    assert e6.lazy_range(g, [-0.45, -0.3, -0.3], [0.2, 0.05, 0.09])[:2] == (None, 0.5)
    assert e6.lazy_range(g, [-0.45, -0.1, -0.3], [0.02, 0.05, 0.09])[:2] == (0.5, 0.75)  # slope fails
    assert e6.lazy_range(g, [-0.45, None, -0.3], [0.02, 0.05, 0.09])[:2] == (0.5, 0.75)  # missing: not lazy
    assert e6.lazy_range([1.0, 0.5], [0.0, -0.5], [0.5, 0.01])[:2] == (0.5, 1.0)  # order of the input


def made_up(movement_exp, drift, *, tied_exp=None, status="converged", seeds=3, widths=(256, 1024, 4096)):
    """Results with the given movement exponent and drift (at every width) per gamma; deterministic
    seed factors, so every slope is exact."""
    runs = []
    regimes = {"joint": movement_exp} if tied_exp is None else {"joint": movement_exp, "tied": tied_exp}
    for regime, exps in regimes.items():
        for g, s in exps.items():
            for w in widths:
                for seed in range(seeds):
                    k = 1.0 + 0.1 * seed
                    runs.append({"regime": regime, "gamma": g, "alpha": w ** -g, "width": w, "seed": seed,
                                 "eta": k * w ** (2 * g - 1), "steps": 100, "budget": 1000, "status": status,
                                 "final_relative_loss": 1e-8, "train_error": 1e-3, "weight_change_W": k * w ** s,
                                 "weight_change_V": None if regime == "tied" else k * w ** s,
                                 "max_neuron_change_W": k * w ** s, "pattern_flips": 0.1 * k * w ** s,
                                 "ntk_drift": drift[g], "heldout_error": 0.5, "initial_heldout_error": 1.0})
    return {"config": {"lazy_slope": -0.2, "drift_level": 0.1, "epsilon": 1e-3, "resamples": 200}, "runs": runs}


def test_slopes_are_the_shared_fit_lined_up_by_seed():
    """Each slope is :func:`aedyn.experiments.fit_power_law` over the seeds lined up across widths
    (paired bootstrap): constant seed factors give exact slopes with a point interval; ``points``
    counts the widths fitted, and a width where some seed flipped no pattern is left out and named."""
    results = made_up({0.5: -0.5}, {0.5: 0.02})
    for r in results["runs"]:
        r["weight_change_W"] *= 10.0 ** r["seed"]  # large seed factors: the paired interval stays a point
        if (r["width"], r["seed"]) == (1024, 1):
            r["pattern_flips"] = 0.0
    slope = {e["quantity"]: e for e in e6.slopes(results)}
    move = slope["weight_change_W"]
    assert move["value"] == pytest.approx(-0.5, abs=1e-12) and move["points"] == 3 and move["zero_widths"] == []
    assert move["ci_low"] == pytest.approx(-0.5, abs=1e-12) and move["ci_high"] == pytest.approx(-0.5, abs=1e-12)
    flips = slope["pattern_flips"]
    assert flips["points"] == 2 and flips["zero_widths"] == [1024] and flips["value"] == pytest.approx(-0.5)
    rows = e6.tabulate(results)
    fit = fit_power_law(*values_by_seed(rows.to_dict("records"), "ntk_drift"), resamples=200)
    assert (slope["ntk_drift"]["value"], slope["ntk_drift"]["ci_low"]) == (fit.value, fit.ci_low)
    one_seed = {e["quantity"]: e for e in e6.slopes(made_up({0.5: -0.5}, {0.5: 0.02}, seeds=1))}
    assert one_seed["weight_change_W"]["value"] == pytest.approx(-0.5) and one_seed["weight_change_W"]["ci_low"] is None


def test_verdict_follows_made_up_numbers():
    gammas = [0.5, 0.75, 1.0]
    breaking = made_up({0.5: -0.5, 0.75: -0.25, 1.0: 0.0}, {0.5: 0.02, 0.75: 0.05, 1.0: 0.8},
                       tied_exp={0.5: 0.1, 0.75: 0.0, 1.0: 0.0})
    text, summary = e6.verdict(breaking)
    joined = " ".join(text)
    assert summary["lazy_until"] == {"joint": 0.75, "tied": None}
    assert summary["breaks_at"] == {"joint": 1.0, "tied": 0.5}
    assert "joint: the lazy picture holds for gamma <= 0.75" in joined
    assert "stops describing the dynamics at gamma = 1," in joined
    assert "movement no longer clearly falls with m (slope 0.00" in joined and "drifts by 80%" in joined
    assert "tied: the lazy picture fails already at gamma = 0.5" in joined
    assert "every run reached" in joined and "as predicted" in joined
    assert "the tied encoder moves more than the joint one at gamma = 0.5, 0.75" in joined
    slope = {(e["regime"], e["gamma"], e["quantity"]): e for e in summary["slopes"]}
    assert slope[("joint", 0.5, "weight_change_W")]["value"] == pytest.approx(-0.5)
    assert slope[("joint", 0.5, "weight_change_W")]["lazy_estimate"] == pytest.approx(-0.5)
    assert slope[("joint", 0.75, "eta")]["value"] == pytest.approx(0.5)
    assert slope[("tied", 1.0, "weight_change_W")]["lazy_estimate"] is None

    lazy = made_up({g: -0.5 for g in gammas}, {g: 0.01 for g in gammas}, status="max_steps")
    text2, summary2 = e6.verdict(lazy)
    joined2 = " ".join(text2)
    assert summary2["lazy_until"] == {"joint": 1.0} and summary2["breaks_at"] == {"joint": None}
    assert "holds over the whole range, up to gamma = 1" in joined2
    assert "9 of 9 runs did not reach" not in joined2 and "27 of 27 runs did not reach" in joined2
    assert summary2["convergence"]["joint"]["converged"] == 0

    drifting = made_up({g: -0.5 for g in gammas}, {0.5: 0.5, 0.75: 0.5, 1.0: 0.5})
    text3, summary3 = e6.verdict(drifting)
    assert summary3["lazy_until"] == {"joint": None} and "fails already at gamma = 0.5" in " ".join(text3)
    assert "drifts by 50%" in " ".join(text3) and "no longer clearly falls" not in " ".join(text3)

    off = made_up({g: -0.5 for g in gammas}, {g: 0.01 for g in gammas})
    for r in off["runs"]:
        r["eta"] = 1.0  # not the predicted m^(2 gamma - 1)
    assert "departs from m^(2 gamma - 1)" in " ".join(e6.verdict(off)[0])


def test_figures_render(tmp_path, tiny):
    results, _ = tiny
    figs = e6.figures(results)
    assert set(figs) == {"measures_vs_width", "slopes_vs_gamma", "measures_vs_gamma"}
    import matplotlib.pyplot as plt

    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert mpimg.imread(path).shape[0] > 100 and mpimg.imread(path).shape[1] > 300
        axes = fig.get_axes()
        assert fig._suptitle is not None and fig._suptitle.get_text()
        assert all(ax.get_title() for ax in axes) and any(ax.get_xlabel() for ax in axes)
        assert all(ax.has_data() for ax in axes)
        if name == "measures_vs_width":
            assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
        plt.close(fig)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Stopped while the third batch trains: the rerun trains only the batches not in the
    checkpoint, and its results equal an uninterrupted run's."""
    from aedyn.files import Checkpoint

    cfg = tiny_config(widths=[32], steps={"joint": 100, "tied": 100})
    real, trained = e6.run_batch, []
    stop = True

    def counting(jobs, **kw):
        trained.append((jobs[0].regime, jobs[0].width, jobs[0].init_scale))
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        return real(jobs, **kw)

    monkeypatch.setattr(e6, "run_batch", counting)
    path = tmp_path / "checkpoint.jsonl"
    with pytest.raises(KeyboardInterrupt):
        quiet_run(cfg, checkpoint=Checkpoint(path, cfg))
    assert len(trained) == 3
    stop = False
    trained.clear()
    resumed = quiet_run(cfg, checkpoint=Checkpoint(path, cfg))
    assert len(trained) == 2  # 4 batches, 2 already in the checkpoint
    trained.clear()
    fresh = quiet_run(cfg)
    assert len(trained) == 4
    assert json.dumps(resumed, sort_keys=True) == json.dumps(fresh, sort_keys=True)
