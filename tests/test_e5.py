"""E5, the weight-tied degeneracy: config, a tiny run end to end, the measurements against
hand-built cases and Monte Carlo, the verdict on made-up results, the figures, checkpoint resume."""

from __future__ import annotations

import json
import math
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.experiments import e5, fit_power_law, values_by_seed
from aedyn.model import forward, init_params


def tiny_config(**changes):
    cfg = e5.config(quick=True)
    cfg["data"] = [{"name": "sphere", "n": 5, "d": 3, "widths": [32, 64], "seeds": [0, 1], "max_steps": 200},
                   {"name": "digits", "n": 4, "d": 64, "widths": [32], "seeds": [0], "max_steps": 50}]
    cfg.update(n_test=12, kernel_check={"n": 3, "d": 2, "widths": [64, 256, 1024], "seeds": 3}, bootstrap=50)
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="module")
def tiny():
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = e5.run(tiny_config(), progress=lambda message, fraction: calls.append((message, fraction)))
    return results, calls


def test_config_is_json_ready_and_setup_says_what_runs():
    for quick in (True, False):
        cfg = e5.config(quick=quick)
        assert json.loads(json.dumps(cfg)) == cfg
        assert cfg["architectures"] == ["tied", "joint"] and cfg["scalings"] == ["ntk", "mean-field"]
        assert {d["name"] for d in cfg["data"]} == {"sphere", "digits"} and cfg["lr"] == "auto"
    assert all(d["seeds"] == [0, 1, 2] for d in e5.config(quick=True, seeds=3)["data"])
    text = " ".join(e5.setup(e5.config(quick=True)))
    for words in ("sphere (n = 16, d = 8; m = 256, 1024", "digits (n = 8, d = 64", "1/lambda_max(Theta(0))",
                  "lr='auto'", "alpha = 1/sqrt(m) and 1/m", "data seed 1", "not training samples",
                  "min_c ||W_T - c W_0||", "sqrt((2d+3)/m)", "expected -1/2", "status says which"):
        assert words in text, words
    assert e5.NAME == "E5" and e5.TITLE and e5.CLAIM.endswith(".")


def test_tiny_run_gives_every_key_and_a_sane_table(tiny):
    results, calls = tiny
    json.dumps(results)
    assert set(results) >= {"config", "notes", "runs", "kernel_check"}
    assert len(results["runs"]) == 2 * 2 * (2 * 2 + 1)  # archs x scalings x (sphere 2 widths x 2 seeds + digits 1)
    table = e5.tabulate(results)
    assert list(table.columns) == list(e5.COLUMNS) and len(table) == len(results["runs"])
    assert set(table["status"]) <= {"converged", "max_steps", "diverged"}
    assert (table["n_test"] == 12).all()
    for col in ("heldout_error", "beyond_c", "weight_change_W", "max_neuron_rel_W", "rescale_distance", "ntk_drift",
                "f0_gap", "eta", "lambda_max0"):
        assert (np.isfinite(table[col]) & (table[col] >= 0)).all(), col
    assert (table["eta"] * table["lambda_max0"]).between(1 - 1e-3, 1 + 1e-3).all()  # lr = auto
    joint, tied = table[table["architecture"] == "joint"], table[table["architecture"] == "tied"]
    assert joint["weight_change_V"].notna().all() and tied["weight_change_V"].isna().all()
    ntk = table[table["scaling"] == "ntk"]
    assert np.allclose(ntk["alpha"], 1 / np.sqrt(ntk["width"]))
    assert calls[-1][1] == 1.0 and all(0 <= f <= 1 for _, f in calls)
    kc = results["kernel_check"]
    assert np.asarray(kc["errors"]).shape == (3, 3) and kc["slope"]["ci_low"] <= kc["slope"]["ci_high"]
    sentences, summary = e5.verdict(results)
    assert len(summary["groups"]) == 2 * 2 * 2 and summary["kernel_check"]["widths"] == [64, 256, 1024]
    json.dumps(summary)
    tied = [s for s in sentences if "scaling, m = " in s and "the tied network" in s]
    assert len(tied) == 4  # one per data set and scaling, each saying whether every seed reached the target
    for group in (g for g in summary["groups"] if g["architecture"] == "tied"):
        line = next(s for s in tied if s.startswith(f"{group['data']}, {group['scaling']} scaling"))
        assert ("converged to" in line) == (group["converged_top"] == group["seeds"])


def test_heldout_digits_are_not_training_samples():
    from aedyn.data import load_data

    cfg = tiny_config()
    data = cfg["data"][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the normalisation note
        X = load_data("digits", n=data["n"], seed=cfg["data_seed"])
    Z = e5.heldout(cfg, data, X)
    assert Z.shape == (cfg["n_test"], 64)
    assert not bool((Z[:, None, :] == X[None]).all(-1).any())
    assert torch.allclose(Z.norm(dim=1), torch.ones(len(Z), dtype=torch.float64))
    S = e5.heldout(cfg, cfg["data"][0], sphere(5, 3, seed=0))
    assert torch.equal(S, sphere(cfg["n_test"], 3, seed=cfg["heldout_seed"]))


def test_measurements_on_hand_built_cases():
    """best_scalar: F = 2 Z + E with E orthogonal to Z row by row gives c = 2 exactly, every c_i = 2,
    beyond_c = ||E|| / ||F||; rescaling: W = 3 W0 gives (3, 0), and W = 3 W0 + P with P orthogonal
    to W0 gives (3, ||P|| / ||W||)."""
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    E = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    E -= (E * Z).sum(1, keepdim=True) / Z.square().sum(1, keepdim=True) * Z
    F = 2 * Z + E
    m = e5.best_scalar(F, Z)
    assert m["c"] == pytest.approx(2, rel=1e-14) and m["c_std"] < 1e-14
    assert m["c_min"] == pytest.approx(2, rel=1e-14) and m["c_max"] == pytest.approx(2, rel=1e-14)
    assert m["beyond_c"] == pytest.approx(float(E.norm() / F.norm()), rel=1e-13)
    assert m["error"] == pytest.approx(float((Z + E).norm() / Z.norm()), rel=1e-13)
    W0 = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    assert e5.rescaling(3 * W0, W0) == pytest.approx((3.0, 0.0), abs=1e-14)
    P = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    P -= (P * W0).sum() / W0.square().sum() * W0
    c, dist = e5.rescaling(3 * W0 + P, W0)
    assert c == pytest.approx(3, rel=1e-13) and dist == pytest.approx(float(P.norm() / (3 * W0 + P).norm()), rel=1e-12)


def test_initial_tied_map_against_the_scaled_identity_by_monte_carlo():
    """Physics: over 200 tied initialisations, the mean of f0_gap^2 is (2d + 3)/m (independent of
    kappa and alpha: the mean-field network of a seed gives the same gap) within 4 Monte Carlo
    standard errors (about 2% of the value). A gap measured against alpha m kappa^2 x (no 1/2)
    would be about 1; one with the wrong alpha would not be scale-free."""
    from aedyn.model import Params

    d, m, kappa, seeds = 5, 128, 0.7, 200
    Z = sphere(40, d, seed=1)
    W = torch.stack([init_params(d, m, regime="tied", seed=s, kappa=kappa).W for s in range(seeds)])
    gaps = {}
    for alpha in (1 / math.sqrt(m), 1 / m):
        F0 = forward(Params(W, None, alpha), Z, "tied")  # seeds x 40 x d
        gaps[alpha] = torch.tensor([e5.identity_gap(F, Z, alpha, m, kappa) for F in F0])
    torch.testing.assert_close(gaps[1 / m], gaps[1 / math.sqrt(m)], rtol=1e-12, atol=0)
    sq = gaps[1 / m].square()
    se = float(sq.std() / math.sqrt(seeds))
    assert abs(float(sq.mean()) - e5.expected_identity_gap(d, m) ** 2) < 4 * se


def test_kernel_check_slope_and_its_fit():
    """The kernel check's slope is :func:`aedyn.experiments.fit_power_law` over its widths x seeds
    errors (paired bootstrap over seeds), and on a small problem lies in the m^(-1/2) range."""
    cfg = tiny_config(kernel_check={"n": 3, "d": 3, "widths": [256, 1024, 4096, 16384], "seeds": 4})
    check = e5.kernel_check(cfg)
    fit = fit_power_law(check["widths"], check["errors"], resamples=cfg["bootstrap"])
    assert check["slope"] == fit.to_dict()
    assert -0.7 < check["slope"]["value"] < -0.3 and check["slope"]["ci_low"] <= check["slope"]["ci_high"]


def fake(arch, scaling, width, *, c=1.0, beyond=0.05, error=0.1, moved=0.5, dist=0.05, rescale_c=0.3,
         drift=0.9, status="converged", data="sphere", seed=0):
    return {"architecture": arch, "scaling": scaling, "data": data, "n": 16, "d": 8, "n_test": 64, "width": width,
            "seed": seed, "status": status, "steps": 100, "eta": 0.1, "lambda_max0": 10.0, "heldout_error": error,
            "c": c, "c_std": 0.01, "beyond_c": beyond, "train_error": 1e-3, "weight_change_W": moved,
            "max_neuron_rel_W": 2 * moved, "rescale_distance": dist, "rescale_c": rescale_c,
            "rescale_c_identity": 0.25, "ntk_drift": drift, "f0_gap": 0.1, "f0_gap_expected": 0.12}


KC = {"n": 4, "d": 4, "widths": [256, 1024, 4096], "errors": [[0.2, 0.2], [0.1, 0.1], [0.05, 0.05]],
      "slope": {"value": -0.5, "ci_low": -0.55, "ci_high": -0.45}}


def test_group_slopes_are_the_shared_fit_lined_up_by_seed():
    """The slopes in m of the movement, the drift and f_0's gap are :func:`fit_power_law` over the
    seeds lined up across widths (no interval): a factor per seed shared by all widths leaves them exact."""
    runs = [fake("tied", "ntk", w, moved=0.4 * w ** -0.5 * 3.0 ** s, drift=w ** -0.25 * (1 + s), seed=s)
            for w in (64, 256, 1024) for s in (0, 1, 2)]
    group = e5.verdict({"config": {}, "runs": runs})[1]["groups"][0]
    assert group["movement_slope"] == pytest.approx(-0.5, abs=1e-12)
    assert group["drift_slope"] == pytest.approx(-0.25, abs=1e-12)
    widths, values = values_by_seed(runs, "weight_change_W")
    assert group["movement_slope"] == fit_power_law(widths, values, resamples=0).value
    runs[4]["weight_change_W"] = 0.0  # a zero at m = 256 leaves that width out
    assert e5.verdict({"config": {}, "runs": runs})[1]["groups"][0]["movement_slope"] == pytest.approx(-0.5, abs=1e-12)


def test_verdict_sentences_follow_the_numbers():
    runs = [fake("tied", "ntk", 1024, c=1.02, beyond=0.03, error=0.04, moved=0.8, dist=0.05, rescale_c=0.25),
            fake("joint", "ntk", 1024, c=0.5, beyond=0.6, error=0.9, moved=0.05, dist=0.05, rescale_c=1.0,
                 drift=0.02)]
    text = " ".join(e5.verdict({"config": {}, "runs": runs, "kernel_check": KC})[0])
    assert "the tied network converged to a map close to the identity on inputs it never saw" in text
    assert "a rescaled initialisation: W_T ≈ c W_0 within 5% (c = 0.25" in text
    assert "the untied (joint) network reconstructs held-out inputs worse than the tied one" in text
    assert "so on unseen inputs the joint network is not a multiple of the identity." in text
    assert "the tied run is not lazy and the joint run is lazy" in text
    assert "All 2 runs reached the target." in text
    assert "slope -0.50 (95% bootstrap interval -0.55 to -0.45): consistent with m^(-1/2)" in text
    # other numbers, other words
    runs = [fake("tied", "mean-field", 256, c=0.6, beyond=0.03, error=0.4, moved=0.05, dist=0.05, rescale_c=1.0,
                 drift=0.05, status="max_steps"),
            fake("joint", "mean-field", 256, c=0.9, beyond=0.05, error=0.2, moved=0.5, dist=0.5, drift=0.5)]
    kc = {**KC, "slope": {"value": -1.2, "ci_low": None, "ci_high": None}}
    sentences, summary = e5.verdict({"config": {}, "runs": runs, "kernel_check": kc})
    text = " ".join(sentences)
    assert "the tied network ended, with 0 of 1 seeds at the target" in text and "converged to" not in text
    assert "a map close to c·identity with c = 0.6" in text
    assert "(not every seed reached the target: those moved only as far as their step budget took them)" in text
    assert "close to their initialisation (moved 5%" in text
    assert "reconstructs held-out inputs better than the tied one" in text
    assert "the joint network is also close to a multiple of the identity" in text
    assert "the tied run is lazy and the joint run is not lazy" in text
    assert "1 of 2 runs did not reach the target" in text
    assert "outside -0.7 to -0.3, not the m^(-1/2) expected" in text
    tied = next(g for g in summary["groups"] if g["architecture"] == "tied")
    assert tied["c"] == 0.6 and tied["width"] == 256 and tied["converged"] == 0
    assert summary["kernel_check"]["consistent"] is False
    kc = {**KC, "slope": {"value": None, "ci_low": None, "ci_high": None}}
    text = " ".join(e5.verdict({"config": {}, "runs": runs, "kernel_check": kc})[0])
    assert "m = 4096, too few widths to fit a slope." in text
    assert e5.verdict({"config": {}, "runs": runs, "kernel_check": kc})[1]["kernel_check"]["consistent"] is False
    json.dumps(summary)
    runs = [fake("tied", "ntk", w, c=3.0, beyond=0.7, moved=0.8, dist=0.6, rescale_c=0.3, seed=s)
            for w in (256, 1024) for s in (0, 1)]
    text = " ".join(e5.verdict({"config": {}, "runs": runs})[0])
    assert "a map that is not a multiple of the identity on inputs it never saw (c = 3)" in text
    assert "neither their initialisation nor a rescaled one" in text
    runs = [fake("tied", "ntk", 1024, moved=0.15, dist=0.15, rescale_c=1.0)]
    assert "near their initialisation but not lazy (moved 15%" in " ".join(e5.verdict({"config": {}, "runs": runs})[0])


def test_figures_render_with_log_axes_and_labels(tiny, tmp_path):
    import matplotlib.pyplot as plt

    results, _ = tiny
    figs = e5.figures(results)
    assert set(figs) == {"heldout", "movement", "kernel_limit"}
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert mpimg.imread(path).shape[0] > 100
        assert fig._suptitle is not None and fig._suptitle.get_text()
        axes = fig.get_axes()
        assert all(ax.get_xscale() == "log" and ax.get_xlabel() for ax in axes if ax.get_xlabel())
        assert all(ax.get_ylabel() or ax.get_title() for ax in axes)
        assert all(ax.lines for ax in axes)  # no empty panel
        plt.close(fig)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Stopped while the third batch trains: the rerun trains only the batches not in the
    checkpoint, and its results (notes included) equal an uninterrupted run's."""
    from aedyn.files import Checkpoint

    cfg = tiny_config(data=[{"name": "digits", "n": 4, "d": 64, "widths": [16], "seeds": [0], "max_steps": 20}],
                      kernel_check={"n": 2, "d": 2, "widths": [16, 64], "seeds": 2})
    real, trained = e5.run_batch, []

    def counting(jobs, **kw):
        trained.append((jobs[0].regime, jobs[0].init_scale))
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        return real(jobs, **kw)

    monkeypatch.setattr(e5, "run_batch", counting)
    path = tmp_path / "checkpoint.jsonl"
    stop = True
    with pytest.raises(KeyboardInterrupt):
        e5.run(cfg, checkpoint=Checkpoint(path, cfg))
    stop, trained[:] = False, []
    resumed = e5.run(cfg, checkpoint=Checkpoint(path, cfg))
    assert trained == [("joint", "ntk"), ("joint", "mean-field")]
    whole = e5.run(cfg)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert any("normalis" in note for note in resumed["notes"])
