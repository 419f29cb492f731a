"""E1, linear convergence: config, a tiny run end to end, the physics check against the
linearised prediction at large width, the verdict on made-up results, the figures."""

from __future__ import annotations

import json
import math
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest

from aedyn.experiments import e1


def tiny_config(**changes):
    cfg = e1.config(quick=True)
    cfg.update(data=[{"name": "sphere", "n": 6, "d": 3}], widths=[64], seeds=[0], max_steps=300)
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="module")
def tiny():
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = e1.run(tiny_config(), progress=lambda message, fraction: calls.append((message, fraction)))
    return results, calls


def test_config_is_json_ready_and_setup_says_what_runs():
    for quick in (True, False):
        cfg = e1.config(quick=quick)
        assert json.loads(json.dumps(cfg)) == cfg
        assert set(cfg["regimes"]) == {"weak", "joint", "decoder", "tied"} and set(cfg["rules"]) == {"auto", "common"}
        assert {d["name"] for d in cfg["data"]} == {"sphere", "digits"}
    assert e1.config(quick=True, seeds=3)["seeds"] == [0, 1, 2]
    text = " ".join(e1.setup(e1.config(quick=True)))
    for word in ("sphere (n = 16, d = 8)", "digits (n = 32, d = 64)", "m = 256, 1024", "1/lambda_max", "common",
                 "eta * t", "last half", "2000 steps"):
        assert word in text
    assert e1.NAME == "E1" and e1.TITLE and e1.CLAIM.endswith(".")


def test_tiny_run_gives_every_key_and_a_sane_table(tiny):
    results, calls = tiny
    json.dumps(results)  # JSON-ready
    assert set(results) >= {"config", "common_eta", "lambda_max_smallest", "runs"}
    assert len(results["runs"]) == 4 * 2  # regimes x rules, one width, one seed
    for r in results["runs"]:
        for key in ("regime", "data", "width", "seed", "rule", "eta", "lambda_min0", "lambda_max0", "lambda_min_inf",
                    "lambda_max_inf", "measured_rate", "predicted_finite", "predicted_exact", "predicted_infinite",
                    "predicted_bound", "r2", "window", "curve"):
            assert key in r
        c = r["curve"]
        assert c["steps"][0] == 0 and len(c["measured"]) == len(c["steps"]) == len(c["predicted_finite"])
        assert (r["predicted_infinite"] is None) == (r["regime"] == "tied")
        assert 0 < r["lambda_min0"] <= r["lambda_max0"]
    auto = [r for r in results["runs"] if r["rule"] == "auto"]
    assert all(r["eta"] * r["lambda_max0"] == pytest.approx(1.0, rel=1e-3) for r in auto)
    common = {r["eta"] for r in results["runs"] if r["rule"] == "common"}
    assert len(common) == 1  # at the smallest width: common_factor (0.5) / the largest lambda_max
    assert max(r["eta"] * r["lambda_max0"] for r in results["runs"] if r["rule"] == "common") <= 0.5 * (1 + 1e-3)
    table = e1.tabulate(results)
    assert list(table.columns) == list(e1.COLUMNS) and len(table) == 8
    for col in ("measured_rate", "predicted_finite", "predicted_exact", "predicted_bound"):
        assert ((table[col] > 0) & (table[col] <= 1)).all(), col
    inf = table["predicted_infinite"].dropna()
    assert len(inf) == 6 and ((inf > 0) & (inf <= 1)).all()
    assert (table["r2"] <= 1).all() and set(table["status"]) <= {"converged", "max_steps", "diverged"}
    assert calls[-1][1] == 1.0 and all(0 <= f <= 1 for _, f in calls)
    sentences, summary = e1.verdict(results)
    assert sentences and len(summary["rates"]) == 8
    json.dumps(summary)


def test_finite_width_prediction_matches_gd_at_large_width():
    """Physics: at m = 4096 the joint network stays close to its linearisation, so the measured
    -log rate is within 10% of the averaged-Theta(0) prediction and 6% of the exact one."""
    cfg = tiny_config(data=[{"name": "sphere", "n": 8, "d": 4}], regimes=["joint"], widths=[4096],
                      rules=["auto"], max_steps=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (r,) = e1.run(cfg)["runs"]
    assert r["status"] == "converged" and r["r2"] > 0.999
    log_m = math.log(r["measured_rate"])
    assert abs(log_m / math.log(r["predicted_finite"]) - 1) < 0.10
    assert abs(log_m / math.log(r["predicted_exact"]) - 1) < 0.06
    assert abs(log_m / math.log(r["predicted_infinite"]) - 1) < 0.10


def fake(regime, measured, finite, infinite, *, r2=0.999, width=64, rule="common", data="sphere", steps=100,
         status="converged", exact=None, bound=0.999):
    return {"regime": regime, "data": data, "n": 8, "d": 4, "width": width, "seed": 0, "rule": rule, "eta": 0.1,
            "steps": steps, "status": status, "measured_rate": measured, "predicted_finite": finite,
            "predicted_exact": exact, "predicted_infinite": infinite, "predicted_bound": bound, "r2": r2,
            "lambda_min0": 0.1, "lambda_max0": 2.0, "lambda_min_inf": None, "lambda_max_inf": None,
            "window": [steps // 2, steps]}


def test_verdict_sentences_follow_the_numbers():
    p = 0.95
    runs = [fake("weak", p ** 1.5, p, p, r2=0.999, steps=40),            # faster than predicted, log-linear
            fake("joint", p ** 0.5, p, p ** 0.5, r2=0.90, steps=30),     # slower than finite, agrees with infinite
            fake("decoder", p ** 1.01, p, p ** 1.02),                     # agrees
            fake("tied", 0.99, 0.9, None, r2=0.95, status="max_steps", steps=500)]
    sentences, summary = e1.verdict({"config": {}, "runs": runs})
    text = " ".join(sentences)
    assert "the loss is log-linear (R^2 >= 0.99 over the fitted window) for weak (m = 64); decoder (m = 64)" in text
    assert "not log-linear for joint (m = 64: R^2 0.900); tied (m = 64: R^2 0.950)" in text
    assert "weak: the measured rate is faster than the finite-width (averaged Theta(0)) prediction (1.50x)" in text
    assert "joint: the measured rate is slower than the finite-width (averaged Theta(0)) prediction (0.50x)" in text
    assert "agrees within 5% with the infinite-width prediction (1.00x)" in text
    assert "decoder: the measured rate agrees within 5% with the finite-width" in text
    assert "tied: the measured rate is slower than the finite-width (averaged Theta(0)) prediction (0.10x)" in text
    assert "has no infinite-width prediction (the tied NTK's limit is not K ⊗ I_d)" in text
    assert "steps to the target: with rule common, weak 40 steps vs joint 30 steps" in text
    tied = next(e for e in summary["rates"] if e["regime"] == "tied")
    assert tied["predicted_infinite"] is None and tied["measured"] == 0.99 and tied["width"] == 64
    assert set(tied) >= {"regime", "data", "width", "measured", "predicted_finite", "predicted_infinite", "r2"}
    json.dumps(summary)


def test_verdict_when_nothing_is_log_linear_and_runs_miss_the_target():
    runs = [fake(g, 0.999, 0.99, 0.99, r2=0.5, status="max_steps", steps=200) for g in ("weak", "joint")]
    text = " ".join(e1.verdict({"config": {"log_linear_r2": 0.99}, "runs": runs})[0])
    assert "no run's loss is log-linear (R^2 >= 0.99)" in text
    assert "weak did not reach the target in every seed (200 steps)" in text
    assert "is slower than the finite-width" in text


def test_figures_render_with_log_axes_and_labels(tiny, tmp_path):
    results, _ = tiny
    figs = e1.figures(results)
    assert set(figs) == {"loss_curves_auto", "loss_curves_common", "rates"}
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert mpimg.imread(path).shape[0] > 100
        assert fig._suptitle is not None and fig._suptitle.get_text()
        axes = fig.get_axes()
        assert all(ax.get_yscale() == "log" for ax in axes)
        assert any(ax.get_xlabel() for ax in axes) and any(ax.get_ylabel() for ax in axes)
        if name == "rates":
            assert all(ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() for ax in axes)
        else:
            assert "eta * t" in axes[-1].get_xlabel() and "L(0)" in axes[0].get_ylabel()
            assert name.split("_")[-1] in fig._suptitle.get_text()
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)
    assert np.isfinite(e1.tabulate(results)["measured_rate"]).all()


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Stopped while the third batch trains: the rerun trains only the batches not in the
    checkpoint, and its results (notes included) equal an uninterrupted run's."""
    from aedyn.files import Checkpoint

    cfg = tiny_config(regimes=["weak", "joint", "decoder"], data=[{"name": "digits", "n": 6, "d": 64}])
    real, trained = e1.run_batch, []

    def counting(jobs, **kw):
        trained.append(jobs[0].regime)
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        return real(jobs, **kw)

    monkeypatch.setattr(e1, "run_batch", counting)
    path = tmp_path / "checkpoint.jsonl"
    stop = True
    with pytest.raises(KeyboardInterrupt):
        e1.run(cfg, checkpoint=Checkpoint(path, cfg))
    stop, trained[:] = False, []
    resumed = e1.run(cfg, checkpoint=Checkpoint(path, cfg))
    assert trained == ["decoder"]
    whole = e1.run(cfg)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert any("normalis" in note for note in resumed["notes"])  # digits rows are normalised: a note
