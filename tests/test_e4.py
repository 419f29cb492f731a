"""E4, the infinite-width limit and memorisation: config, a tiny run end to end, the measured
error against an independent computation (autograd GD and the arc-cosine kernels iterated by hand),
the m^-1/2 fall, the memorisation measures, the verdict on made-up numbers, the figures, resume."""

from __future__ import annotations

import copy
import json
import math
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from aedyn.data import load_data
from aedyn.experiments import e4, fit_power_law, small_problems, values_by_seed
from aedyn.model import init_params


def tiny_config(**changes):
    cfg = e4.config(quick=True)
    cfg["limit"].update(data=[{"name": "sphere", "n": 6, "d": 4}], widths=[128, 512, 2048], seeds=[0, 1, 2],
                        held_out=8)
    cfg["memorisation"].update(width=256, classes=[0, 1, 2, 3], random=3, iterations=20, show=2)
    cfg["resamples"] = 200
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="module")
def tiny():
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = e4.run(tiny_config(), progress=lambda message, fraction: calls.append((message, fraction)))
    return results, calls


def test_config_is_json_ready_and_setup_says_what_runs():
    for quick in (True, False):
        cfg = e4.config(quick=quick)
        assert json.loads(json.dumps(cfg)) == cfg
        assert set(cfg["limit"]["regimes"]) == {"joint", "weak"} and set(cfg["limit"]["inits"]) == {"standard", "zero"}
        assert cfg["limit"]["widths"][0] == 256
    assert e4.config(quick=True)["limit"]["widths"][-1] == 4096 and e4.config()["limit"]["widths"][-1] == 16384
    assert e4.config(quick=True, seeds=5)["limit"]["seeds"] == [0, 1, 2, 3, 4]
    text = " ".join(e4.setup(e4.config(quick=True)))
    for word in ("sphere (n = 16, d = 8)", "m = 256, 512, 1024, 2048, 4096", "0.5 / lambda_max(K_reg)",
                 "f_0 ≡ 0", "same eta and step count", "0.01 L(0)", "1e-06 L(0)", "||f_pred(Z) - f0_pred(Z)||_F",
                 "noise of relative size 0.3", "10 random Gaussian unit vectors", "(joint, m = 1024, f_0 ≡ 0)"):
        assert word in text, word
    assert e4.NAME == "E4" and e4.TITLE and e4.CLAIM.endswith(".")


def test_tiny_run_gives_every_key_and_a_sane_table(tiny):
    results, calls = tiny
    json.dumps(results)
    assert set(results) >= {"config", "settings", "limit", "memorisation", "notes"}
    # 2 regimes x 3 widths x 2 inits x 3 seeds x (2 early + 1 converged) input sets
    assert len(results["limit"]) == 2 * 3 * 2 * 3 * 3
    for s in results["settings"]:
        assert s["eta"] * s["lambda_max_inf"] == pytest.approx(0.5)
        assert 1 <= s["steps_early"] < s["steps_converged"]
    for r in results["limit"]:
        assert r["status"] == "ok" and r["error"] is not None and 0 < r["error"] < 1
    # the step counts reach the targets (1e-2, 1e-6) in expectation over f_0; single networks scatter
    early = [r["loss_rel"] for r in results["limit"] if r["stage"] == "early"]
    assert np.median(early) < 0.03 and max(early) < 0.3
    assert max(r["loss_rel"] for r in results["limit"] if r["stage"] == "converged") < 1e-3
    (mem,) = results["memorisation"]
    assert mem["status"] == "converged" and mem["final_relative_loss"] <= 1e-6 and mem["n"] == 4
    assert set(mem["kinds"]) == set(e4.KINDS)
    table = e4.tabulate(results)
    assert list(table.columns) == list(e4.COLUMNS)
    limit = table[table["part"] == "limit"]
    assert len(limit) == len(results["limit"]) and limit["error"].notna().all()
    memo = table[table["part"] == "memorisation"]
    assert len(memo) == 2 * (4 + 4 + 3)  # maps x (held-out + noisy + random)
    assert ((memo["in_span"] >= -1e-12) & (memo["in_span"] <= 1 + 1e-12)).all()
    assert memo.loc[memo["kind"] == "noisy", "nearest_is_source"].notna().all()
    assert memo.loc[memo["kind"] == "held-out", "nearest_same_class"].notna().all()
    assert calls[-1][1] == 1.0 and all(0 <= f <= 1 for _, f in calls)
    sentences, summary = e4.verdict(results)
    json.dumps(summary)
    assert len(summary["slopes"]) == 2 * 2 * 3  # regime x init x (train early, held-out early, held-out converged)
    assert all(set(s) >= {"value", "ci_low", "ci_high"} for s in summary["slopes"])
    assert set(summary["memorisation"]["joint"]["kinds"]) == set(e4.KINDS)
    assert any("Memorisation (joint" in s for s in sentences)


def test_error_falls_like_m_to_the_minus_half(tiny):
    """Physics: the kernel's fluctuation at width m is O(m^-1/2), so the network's distance from the
    NTK-limit prediction falls about like m^-1/2 (widths 128..2048, 3 seeds; a wide band: few seeds)."""
    results, _ = tiny
    for s in e4.slopes(results):
        assert -0.8 < s["value"] < -0.3, s
        assert s["ci_low"] <= s["value"] <= s["ci_high"]


def _arccos_kernels(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K0 and K1 of SPEC.md for unit rows, with plain arccos (an independent implementation)."""
    c = np.clip(A @ B.T, -1.0, 1.0)
    th = np.arccos(c)
    return c * (np.pi - th) / (2 * np.pi), (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)


@pytest.mark.parametrize(("regime", "init"), [("joint", "standard"), ("weak", "zero")])
def test_recorded_error_equals_an_independent_computation(regime, init):
    """Physics: the network trained by an autograd GD loop, the prediction by iterating linearised GD
    with the arc-cosine kernels by hand (training outputs and held-out outputs step by step), the
    error formed from them: it matches the recorded error to 1e-7 relative (the two GD loops round
    differently; the kernels agree to ~1e-12 away from the arccos endpoints)."""
    cfg = tiny_config()
    cfg["limit"].update(widths=[256], seeds=[3], regimes=[regime], inits=[init])
    cfg["memorisation"]["regimes"] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = e4.run(cfg)
    (setting,) = res["settings"]
    eta, k1, k2 = setting["eta"], setting["steps_early"], setting["steps_converged"]
    X = load_data("sphere", n=6, d=4, seed=0)
    Z = load_data("sphere", n=8, d=4, seed=1)
    net = init_params(4, 256, regime=regime, seed=3, zero_output=init == "zero")
    W = net.W.clone().requires_grad_(True)
    V = net.V.clone().requires_grad_(regime == "joint")

    def f(Y, W=W, V=V):
        return net.alpha * torch.relu(Y @ W.T) @ V.T

    f0X, f0Z = f(X).detach().numpy(), f(Z).detach().numpy()
    K0, K1 = _arccos_kernels(X.numpy(), X.numpy())
    C0, C1 = _arccos_kernels(Z.numpy(), X.numpy())
    K, C = (K0 + K1, C0 + C1) if regime == "joint" else (K0, C0)
    U, UZ = f0X.copy(), f0Z.copy()
    Xn = X.numpy()
    measured = {}
    with small_problems("cpu"):  # one torch thread: two spin against each other on a shared machine
        _descend_by_hand(f, W, V, X, Z, Xn, U, UZ, K, C, f0X, f0Z, eta, k1, k2, regime, measured)
    recorded = {(r["stage"], r["inputs"]): r["error"] for r in res["limit"]}
    assert set(recorded) == set(measured)
    for key, value in measured.items():
        assert recorded[key] == pytest.approx(value, rel=1e-7), key


def _descend_by_hand(f, W, V, X, Z, Xn, U, UZ, K, C, f0X, f0Z, eta, k1, k2, regime, measured):
    """Autograd GD on the network and linearised GD with the kernels, side by side; the errors at
    ``k1`` (training and held-out inputs) and ``k2`` (held-out) go into ``measured``."""
    for k in range(1, k2 + 1):
        loss = 0.5 * (f(X) - X).square().sum()
        grads = torch.autograd.grad(loss, [W, V] if regime == "joint" else [W])
        with torch.no_grad():
            W -= eta * grads[0]
            if regime == "joint":
                V -= eta * grads[1]
        R = U - Xn
        U, UZ = U - eta * K @ R, UZ - eta * C @ R
        if k in (k1, k2):
            with torch.no_grad():
                net_X, net_Z = f(X).numpy(), f(Z).numpy()
            sets = {"train": (net_X, U, f0X), "held-out": (net_Z, UZ, f0Z)} if k == k1 else {
                "held-out": (net_Z, UZ, f0Z)}
            for inputs, (a, p, z0) in sets.items():
                measured[("early" if k == k1 else "converged", inputs)] = (
                    np.linalg.norm(a - p) / np.linalg.norm(p - z0))


def test_memorisation_measures_against_hand_computations(tiny):
    """The kernel predictor with f_0 ≡ 0 outputs kernel combinations of the training samples, so
    its in-span share is 1; the recorded shares and nearest samples equal a least-squares
    projection and a brute-force distance search of the network's outputs recomputed here."""
    results, _ = tiny
    (mem,) = results["memorisation"]
    cfg = results["config"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # digits rows are normalised: a note
        X = torch.cat([load_data("digits", n=2, classes=[c], seed=0)[:1] for c in cfg["memorisation"]["classes"]])
    assert np.allclose(np.asarray(mem["train_images"]), X.numpy(), atol=1e-6)
    noisy = e4.noisy_copies(X, 0.3, cfg["memorisation"]["input_seed"])
    assert np.allclose(noisy.norm(dim=1).numpy(), 1.0)
    gen = torch.Generator().manual_seed(cfg["memorisation"]["input_seed"])
    raw = X + 0.3 * torch.randn(X.shape, generator=gen, dtype=torch.float64) / 8.0
    assert torch.allclose(noisy, raw / raw.norm(dim=1, keepdim=True))
    for kind, e in mem["kinds"].items():
        assert min(e["predictor"]["in_span"]) > 1 - 1e-10, kind
        # the network's outputs for the images shown: recompute span share and nearest sample by hand
        shown = np.asarray(mem["images"][kind]["network"])
        coef, *_ = np.linalg.lstsq(X.numpy().T, shown.T, rcond=None)
        inside = (X.numpy().T @ coef).T
        share = (inside ** 2).sum(1) / (shown ** 2).sum(1)
        assert np.allclose(share, e["network"]["in_span"][:len(shown)], atol=1e-5)
        dist = np.linalg.norm(shown[:, None, :] - X.numpy()[None], axis=2)
        assert list(dist.argmin(1)) == e["network"]["nearest_index"][:len(shown)]
        assert np.allclose(dist.min(1), e["network"]["nearest_distance"][:len(shown)], atol=1e-5)
    held = e4.memorisation_summary(results)["joint"]["kinds"]["held-out"]
    assert held["predictor"]["in_span_median"] == pytest.approx(1.0, abs=1e-10)


def test_slopes_are_the_shared_fit_over_widths_and_seeds(tiny):
    """Each slope is :func:`aedyn.experiments.fit_power_law` over the errors, a seed's errors lined up
    across widths (paired bootstrap); ``points`` counts the errors, ``widths`` every width run."""
    results, _ = tiny
    key = ("data", "regime", "init", "stage", "inputs")
    for s in e4.slopes(results):
        mine = [r for r in results["limit"] if all(r[k] == s[k] for k in key)]
        widths, values = values_by_seed(mine, "error")
        fit = fit_power_law(widths, values, resamples=results["config"]["resamples"])
        assert (s["value"], s["ci_low"], s["ci_high"]) == (fit.value, fit.ci_low, fit.ci_high)
        assert s["zero_widths"] == [] and s["widths"] == widths == [128, 512, 2048]
        assert s["points"] == sum(v is not None for row in values for v in row) == 9
    fake = copy.deepcopy(results)
    for r in fake["limit"]:  # a constant factor per seed at every width: exact slope, a point interval
        r["error"] = 0.3 * r["width"] ** -0.5 * 4.0 ** r["seed"]
    for s in e4.slopes(fake):
        assert s["value"] == pytest.approx(-0.5, abs=1e-12) and s["ci_low"] == pytest.approx(-0.5, abs=1e-12)
        assert s["ci_high"] == pytest.approx(-0.5, abs=1e-12)


def test_verdict_sentences_follow_the_numbers(tiny):
    results, _ = tiny
    fake = copy.deepcopy(results)
    for r in fake["limit"]:
        slope = 0.0 if r["regime"] == "weak" else -0.5
        r["error"] = 0.3 * (r["width"] / 128) ** slope * (1 + 0.01 * r["seed"]) * (2 if r["init"] == "zero" else 1)
    mem = fake["memorisation"][0]
    for e in mem["kinds"].values():  # a network that acts like the identity
        count = e["count"]
        e["network"]["in_span"] = list(e["input_in_span"])
        e["network"]["input_distance"] = [0.01] * count
        e["network"]["nearest_distance"] = list(e["input_nearest_distance"])
    text = " ".join(e4.verdict(fake)[0])
    assert "joint: the trained network against the NTK-limit prediction" in text
    assert "standard init, train inputs (early): error ∝ m^-0.50 (95% CI -0.50 to -0.50), consistent with m^-1/2" \
        in text
    assert "weak" in text and "error ∝ m^0.00" in text and "not falling with m" in text
    assert "Of 12 fitted slopes, 6 fall with m and 6 have a 95% interval containing -1/2" in text
    assert "error with f_0 ≡ 0 2.00x the standard init's at the largest width" in text
    assert "held-out inputs: the network acts like the identity" in text
    assert "random inputs: the network acts like the identity" in text
    for e in mem["kinds"].values():  # now one that projects into the span and lands near a training sample
        e["network"]["in_span"] = [1.0] * e["count"]
        e["network"]["input_distance"] = [0.5] * e["count"]
        e["network"]["nearest_distance"] = [0.05] * e["count"]
    for r in fake["limit"]:
        r["error"] = 0.3 * (r["width"] / 128) ** -0.9 * (1 + 0.01 * r["seed"])
    sentences, summary = e4.verdict(fake)
    text = " ".join(sentences)
    assert "falling faster than m^-1/2" in text and "consistent with" not in text
    assert "about the same as the standard init's" in text
    assert "held-out inputs: the network memorises" in text and "acts like the identity" not in text
    assert summary["memorisation"]["joint"]["kinds"]["noisy"]["network"]["in_span_median"] == 1.0
    assert all(s["value"] == pytest.approx(-0.9, abs=0.01) for s in summary["slopes"])


def test_figures_render(tiny, tmp_path):
    results, _ = tiny
    figs = e4.figures(results)
    assert set(figs) == {"limit_error", "memorisation_images_joint", "memorisation_fates"}
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert mpimg.imread(path).shape[0] > 100
        assert fig._suptitle is not None and fig._suptitle.get_text()
    axes = figs["limit_error"].get_axes()
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
    assert any(ax.get_ylabel() for ax in axes) and all(ax.get_xlabel() for ax in axes)
    grid = figs["memorisation_images_joint"].get_axes()
    assert len(grid) == 4 * 2 * 3 and all(not ax.get_xticks().size for ax in grid)
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Stopped while the second width trains: the rerun trains only what the checkpoint lacks,
    and its results equal an uninterrupted run's."""
    from aedyn.files import Checkpoint

    cfg = tiny_config()
    cfg["limit"].update(widths=[64, 128], seeds=[0, 1], regimes=["joint"])
    cfg["memorisation"].update(width=128, iterations=5)
    real, calls = e4.train_batch, []

    def counting(*args, **kw):
        calls.append(args[1].W.shape[-2])
        if len(calls) == 3 and stop:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(e4, "train_batch", counting)
    path = tmp_path / "checkpoint.jsonl"
    stop = True
    with pytest.raises(KeyboardInterrupt):
        e4.run(cfg, checkpoint=Checkpoint(path, cfg))
    stop, calls[:] = False, []
    resumed = e4.run(cfg, checkpoint=Checkpoint(path, cfg))
    assert calls == [128, 128, 128]  # the second width (two calls) and the memorisation network
    whole = e4.run(cfg)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert any("normalis" in note for note in resumed["notes"])
    assert math.isfinite(e4.tabulate(resumed)["error"].dropna().max())
