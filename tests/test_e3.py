"""E3, laziness: config, a tiny run end to end, the measurements against an independent autograd
computation, the slopes (the shared fit, seeds lined up), the verdict on made-up results, the figures, and
resuming from a checkpoint."""

from __future__ import annotations

import json
import math
import warnings

import matplotlib.image as mpimg
import pytest
import torch

from aedyn.experiments import e3, fit_power_law, small_problems, values_by_seed
from aedyn.job import Notes, run_batch


def tiny_config(**changes):
    cfg = e3.config(quick=True)
    cfg["data"] = [{"name": "sphere", "n": 4, "d": 3, "widths": [64, 256, 1024], "seeds": [0, 1], "max_steps": 400},
                   {"name": "digits", "n": 2, "d": 64, "widths": [256, 1024, 2048], "seeds": [0, 1],
                    "max_steps": 300}]
    cfg["resamples"], cfg["target"] = 200, 1e-6
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="module")
def tiny():
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = e3.run(tiny_config(), progress=lambda message, fraction: calls.append((message, fraction)))
    return results, calls


def test_config_is_json_ready_and_setup_says_what_runs():
    for quick in (True, False):
        cfg = e3.config(quick=quick)
        assert json.loads(json.dumps(cfg)) == cfg
        assert cfg["regimes"] == ["weak", "joint"] and {d["name"] for d in cfg["data"]} == {"sphere", "digits"}
        for data in cfg["data"]:
            assert data["n"] * data["d"] <= 1024  # the kernel drift is exact (dense) on the CPU
            assert data["widths"] == sorted(data["widths"]) and len(data["widths"]) >= 4
            assert all(w & (w - 1) == 0 for w in data["widths"])  # powers of two
    assert max(max(d["widths"]) for d in e3.config()["data"]) == 2 ** 14
    assert all(len(d["seeds"]) == 2 for d in e3.config(seeds=2)["data"])
    assert e3.config(device="cuda")["device"] == "cuda"
    text = " ".join(e3.setup(e3.config(quick=True)))
    for needle in ("sphere (n = 8, d = 4", "128, 256", "3 seeds", "1/lambda_max(Theta(0))", "0.0001", "bootstrap",
                   "-0.5", "kappa sqrt(d)", "exact"):
        assert needle in text, needle


def test_tiny_run_gives_every_key_and_a_sane_table(tiny):
    results, calls = tiny
    assert set(results) == {"config", "notes", "runs"}
    assert json.loads(json.dumps(results, allow_nan=False)) == results  # JSON-ready, no NaN
    runs = results["runs"]
    assert len(runs) == 2 * (3 * 2 + 3 * 2)
    for r in runs:
        assert r["ntk_checked_at"] == r["steps"] > 0  # Theta evaluated at the stopping step (and on a cadence)
        assert r["ntk_drift_method"] == "exact"
        # weak training on digits (nearly parallel rows) is slow at m = 256: it runs out of steps, and says so
        slow = (r["regime"], r["data"], r["width"]) == ("weak", "digits", 256)
        assert r["status"] == ("max_steps" if slow else "converged") and r["converged"] == (not slow)
        assert (r["final_relative_loss"] <= 1e-6) == (not slow) and r["steps"] == (300 if slow else r["steps"])
        assert (r["weight_change_V"] is None) == (r["regime"] == "weak")
        assert r["max_neuron_change_W_rel"] == pytest.approx(r["max_neuron_change_W"] / math.sqrt(r["d"]))
        for q in ("weight_change_W", "max_neuron_change_W", "pattern_flips", "ntk_drift"):
            assert 0 < r[q] < 10, (q, r)
        assert 0 <= r["pattern_flips"] <= 1
    assert any("normalis" in note for note in results["notes"])  # digits rows are normalised
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) == 13
    table = e3.tabulate(results)
    assert list(table.columns) == list(e3.COLUMNS) and len(table) == len(runs)
    assert table.loc[table["regime"] == "weak", "weight_change_V"].isna().all()
    assert table.loc[table["regime"] == "joint", "weight_change_V"].notna().all()
    sentences, summary = e3.verdict(results)
    assert all(isinstance(s, str) and s for s in sentences)
    assert "2 of 24 runs did not reach the target" in sentences[0] and "digits weak m = 256" in sentences[0]
    assert summary["not_converged"] == [{"data": "digits", "regime": "weak", "width": 256, "runs": 2}]
    slopes = summary["slopes"]
    assert len(slopes) == 2 * (4 + 5)  # data x (weak: 4 quantities, joint: 5)
    for e in slopes:
        assert {"regime", "quantity", "data", "value", "ci_low", "ci_high", "n_widths"} <= set(e)
        assert e["ci_low"] <= e["value"] <= e["ci_high"]
        assert e["n_widths"] == (2 if (e["regime"], e["data"]) == ("weak", "digits") else 3)
        assert e["excluded"] == (2 if (e["regime"], e["data"]) == ("weak", "digits") else 0)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_the_lazy_quantities_fall_with_the_width(tiny):
    """Three widths, factor 4 apart, on a tiny sphere problem: every quantity falls with m, with
    slopes in the range the theory allows (about -1/2 for the movement, at least that fast for the drift)."""
    results, _ = tiny
    fits = {(e["regime"], e["quantity"]): e for e in e3.slopes(results) if e["data"] == "sphere"}
    for regime in ("weak", "joint"):
        assert -0.8 < fits[(regime, "weight_change_W")]["value"] < -0.3
        assert fits[(regime, "ntk_drift")]["value"] < -0.4
        assert fits[(regime, "pattern_flips")]["value"] < -0.2
    assert -0.8 < fits[("joint", "weight_change_V")]["value"] < -0.3


def _network_output(W, V, X, alpha):
    """The autoencoder written out on its own (SPEC.md, "Model"): ``alpha * relu(X W^T) V^T``."""
    return alpha * torch.relu(X @ W.mT) @ V.mT


def _theta_autograd(W, V, X, alpha, regime):
    """``Theta = J J^T`` from autograd's Jacobian of ``vec f(X)`` (rows (sample, coordinate))
    with respect to the trained parameters: independent of :mod:`aedyn.ntk`."""
    jac = torch.func.jacrev(_network_output, argnums=(0, 1))(W, V, X, alpha)
    n, d = X.shape
    parts = [jac[0].reshape(n * d, -1)] + ([jac[1].reshape(n * d, -1)] if regime == "joint" else [])
    J = torch.cat(parts, dim=1)
    return J @ J.mT


@pytest.mark.parametrize("regime", ["weak", "joint"])
def test_each_measurement_matches_an_independent_computation(regime):
    """The record of one run against the same quantities recomputed from its initial and final
    weights: norms by hand, the patterns from the signs of X W^T, and the kernel drift from
    autograd's Jacobian at step 0 and at the stopping step. Float64 throughout, and every
    quantity is a ratio of sums of O(1) terms, so they agree to rounding (1e-10 relative)."""
    cfg = tiny_config()
    data = {"name": "sphere", "n": 5, "d": 3, "widths": [48], "seeds": [3], "max_steps": 500}
    job = e3._job(cfg, data, regime, 48, 3)
    with small_problems("cpu"):  # one thread, as the experiment runs (many times faster on a shared machine)
        result = run_batch([job])[0]
    rec = e3.record_of(result, kappa=1.0)
    assert rec["status"] == "converged" and rec["steps"] > 2
    W0, V0, W, V = result.init.W, result.init.V, result.params.W, result.params.V
    X = job.load(Notes())
    alpha = result.init.alpha
    assert float(0.5 * (_network_output(W, V, X, alpha) - X).square().sum()) == pytest.approx(result.loss[-1], rel=1e-9)
    rel = 1e-10
    assert rec["weight_change_W"] == pytest.approx(float((W - W0).norm() / W0.norm()), rel=rel)
    assert rec["max_neuron_change_W"] == pytest.approx(float((W - W0).norm(dim=1).max()), rel=rel)
    flips = float(((X @ W.mT > 0) != (X @ W0.mT > 0)).double().mean())
    assert rec["pattern_flips"] == pytest.approx(flips, abs=1e-15) and flips > 0
    if regime == "joint":
        assert rec["weight_change_V"] == pytest.approx(float((V - V0).norm() / V0.norm()), rel=rel)
        assert rec["max_neuron_change_V"] == pytest.approx(float((V - V0).norm(dim=0).max()), rel=rel)
    else:
        assert torch.equal(V, V0) and rec["weight_change_V"] is None
    T0, TT = _theta_autograd(W0, V0, X, alpha, regime), _theta_autograd(W, V, X, alpha, regime)
    drift = float((TT - T0).norm() / T0.norm())
    assert rec["ntk_drift"] == pytest.approx(drift, rel=rel) and drift > 1e-3
    ev0, evT = torch.linalg.eigvalsh(T0), torch.linalg.eigvalsh(TT)
    assert rec["lambda_min0"] == pytest.approx(float(ev0[0]), rel=1e-8)
    assert rec["lambda_minT"] == pytest.approx(float(evT[0]), rel=1e-8)
    assert rec["eta"] == pytest.approx(1 / float(ev0[-1]), rel=1e-6)  # lr="auto"


def _fake_results(power, *, flips_zero_at=None, missed=None, seeds=3):
    """Made-up runs whose quantities follow ``c * m^power[(regime, quantity)]`` times a seed factor
    ``exp(0.05 (seed - mean seed) (1 + log2(m) / 20))`` (so the seed-mean of the logs lies exactly on
    the power law, and the bootstrap has something to resample); ``flips_zero_at``: a width where
    pattern_flips is 0; ``missed``: a (regime, width) whose runs did not converge."""
    runs = []
    for regime in ("weak", "joint"):
        for m in (64, 256, 1024, 4096):
            for seed in range(seeds):
                r = {"regime": regime, "data": "sphere", "n": 8, "d": 4, "width": m, "seed": seed, "steps": 50,
                     "status": "converged", "converged": True, "final_relative_loss": 1e-7, "eta": 0.5,
                     "ntk_drift_method": "exact", "ntk_checked_at": 50, "lambda_min0": 0.1, "lambda_minT": 0.1,
                     "max_neuron_change_W_rel": None, "max_neuron_change_V": None}
                for q in e3.QUANTITIES:
                    level = 2.0 if regime == "weak" else 1.0
                    r[q] = None if not e3._applies(regime, q) else \
                        level * m ** power.get((regime, q), -0.5) * \
                        math.exp(0.05 * (seed - (seeds - 1) / 2) * (1 + math.log2(m) / 20))
                if flips_zero_at == m:
                    r["pattern_flips"] = 0.0
                if missed == (regime, m):
                    r.update(status="max_steps", converged=False, weight_change_W=5.0)
                runs.append(r)
    return {"config": {"reference_slope": -0.5, "resamples": 200, "level": 0.95}, "notes": [], "runs": runs}


def test_slopes_are_the_shared_fit_of_the_converged_runs_lined_up_by_seed():
    """Each slope is :func:`aedyn.experiments.fit_power_law` over the converged runs, a seed's values
    lined up across widths: a large factor per seed, shared by every width, leaves the slope exact
    and the (paired) interval a point; a seed that missed the target at one width is missing there only."""
    results = _fake_results({}, seeds=3)
    for r in results["runs"]:
        r["ntk_drift"] = 1e-2 * r["width"] ** -0.5 * 5.0 ** r["seed"]
    entry = {(e["regime"], e["quantity"]): e for e in e3.slopes(results)}
    drift = entry[("joint", "ntk_drift")]
    assert drift["value"] == pytest.approx(-0.5, abs=1e-12) and drift["n_widths"] == 4
    assert drift["ci_low"] == pytest.approx(-0.5, abs=1e-12) and drift["ci_high"] == pytest.approx(-0.5, abs=1e-12)
    missed = next(r for r in results["runs"] if (r["regime"], r["width"], r["seed"]) == ("weak", 256, 2))
    missed.update(status="max_steps", converged=False)
    widths, values = values_by_seed([r for r in results["runs"] if r["regime"] == "weak" and r["converged"]],
                                    "ntk_drift")
    assert widths == [64, 256, 1024, 4096] and values[1][2] is None
    fit = fit_power_law(widths, values, resamples=200, level=0.95)
    weak = {e["quantity"]: e for e in e3.slopes(results) if e["regime"] == "weak"}["ntk_drift"]
    assert {k: weak[k] for k in fit.to_dict()} == fit.to_dict() and weak["excluded"] == 1
    assert weak["value"] > -0.5  # without its largest seed the mean at 256 is low: a shallower line


def test_verdict_sentences_follow_the_numbers():
    lazy = " ".join(e3.verdict(_fake_results({}))[0])
    assert "All 24 runs reached the target" in lazy
    assert "weight_change_W" in lazy and "weak: m^-0.50" in lazy and "consistent with m^-0.5" in lazy
    assert "steeper than the earlier m^-0.75" not in lazy and "shallower than the earlier m^-0.75" in lazy
    assert "Of 9 fitted slopes, 9 have an interval containing -0.5" in lazy
    assert "indistinguishable" in lazy and "weak's median is 2.00x joint's" in lazy

    steep = {("joint", "ntk_drift"): -0.75, ("weak", "ntk_drift"): -0.75, ("weak", "max_neuron_change_W"): -0.3}
    sentences, summary = e3.verdict(_fake_results(steep, flips_zero_at=4096, missed=("weak", 64)))
    text = " ".join(sentences)
    assert "steeper than m^-0.5 and consistent with the earlier m^-0.75" in text
    assert "weak: m^-0.30" in text and "shallower than m^-0.5" in text
    assert "3 of 24 runs did not reach the target" in text and "sphere weak m = 64 (3 of 3 seeds, 3 max_steps)" in text
    assert "no pattern flipped in some converged seed at m = 4096" in text
    assert "Shallower than m^-0.5: sphere weak max_neuron_change_W (-0.30)" in text
    entry = {(e["regime"], e["quantity"]): e for e in summary["slopes"]}
    assert entry[("weak", "weight_change_W")]["n_widths"] == 3 and entry[("weak", "weight_change_W")]["excluded"] == 3
    assert entry[("weak", "pattern_flips")]["zero_widths"] == [4096]
    assert entry[("joint", "ntk_drift")]["value"] == pytest.approx(-0.75, abs=0.01)
    assert summary["not_converged"] == [{"data": "sphere", "regime": "weak", "width": 64, "runs": 3}]

    apart = " ".join(e3.verdict(_fake_results({("joint", "weight_change_W"): -1.0}))[0])
    assert "joint's slope is steeper than weak's" in apart.lower()
    one = " ".join(e3.verdict(_fake_results({}, seeds=1))[0])
    assert "no interval (one seed)" in one


def test_figures_render_with_log_axes_fits_and_reference(tiny, tmp_path):
    results, _ = tiny
    figs = e3.figures(results)
    assert set(figs) == {"laziness"}
    fig = figs["laziness"]
    path = tmp_path / "laziness.png"
    fig.savefig(path, dpi=60)
    image = mpimg.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.05
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == list(e3.QUANTITIES)
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "slope -0.5" in labels and any("sphere: -0." in t and "[" in t for t in labels)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Stopped while the third batch trains: the rerun trains only the batches not in the
    checkpoint, and its results (notes included) equal an uninterrupted run's."""
    from aedyn.files import Checkpoint

    cfg = tiny_config(data=[{"name": "digits", "n": 2, "d": 64, "widths": [128, 512], "seeds": [0, 1],
                             "max_steps": 300}])
    real, trained = e3.run_batch, []

    def counting(jobs, **kw):
        trained.append((jobs[0].regime, jobs[0].width))
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        return real(jobs, **kw)

    monkeypatch.setattr(e3, "run_batch", counting)
    path = tmp_path / "checkpoint.jsonl"
    stop = True
    with pytest.raises(KeyboardInterrupt):
        e3.run(cfg, checkpoint=Checkpoint(path, cfg))
    stop, trained[:] = False, []
    resumed = e3.run(cfg, checkpoint=Checkpoint(path, cfg))
    assert trained == [("joint", 128), ("joint", 512)]
    whole = e3.run(cfg)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert any("normalis" in note for note in resumed["notes"])


def test_every_run_carries_its_certificate_and_the_table_counts_them(tiny):
    """Each record holds the certificate's column group; the certificate table's counts are the sums
    of those flags, and the verdict's sentence follows them."""
    from aedyn.certificate import CERTIFICATE_COLUMNS

    results, _ = tiny
    table = e3.tabulate(results)
    assert all(c in table.columns for c in CERTIFICATE_COLUMNS) and table["cert_inside"].notna().all()
    cert = e3.certificate_table(results)
    assert list(cert.columns) == list(e3.CERTIFICATE_TABLE) and cert["runs"].sum() == len(table)
    for row in cert.itertuples():
        mine = table[(table["data"] == row.data) & (table["regime"] == row.regime) & (table["width"] == row.width)]
        assert row.inside == int(mine["cert_inside"].sum())
        assert row.safe_radius_holds == int(mine["cert_safe_radius_holds"].sum())
        assert row.kernel_ratio_min == mine["cert_kernel"].min()
    # the narrow digits weak run that stalled is not certified
    assert not table[(table["data"] == "digits") & (table["width"] == 256) & (table["regime"] == "weak")][
        "cert_inside"].any()
    sentences, summary = e3.verdict(results)
    for entry in summary["certificate"]:
        rows = cert[(cert["data"] == entry["data"]) & (cert["regime"] == entry["regime"])]
        assert entry["inside"] == int(rows["inside"].sum()) and entry["runs"] == int(rows["runs"].sum())
        line = next(s for s in sentences if s.startswith(f"Certificate, {entry['data']} {entry['regime']}:"))
        assert f"in {entry['inside']} of {entry['runs']} runs" in line
    assert set(e3.tables(results)) == {"certificate"}


def test_a_narrow_interval_just_off_the_reference_is_said_to_be_close():
    entry = {"regime": "weak", "quantity": "weight_change_W", "value": -0.52, "ci_low": -0.53, "ci_high": -0.51,
             "n_widths": 9, "zero_widths": []}
    text = e3._describe(entry, -0.5)
    assert "steeper than m^-0.5 (by 0.02: the interval is narrow, the slope close to it)" in text
    far = e3._describe({**entry, "value": -0.7, "ci_low": -0.72, "ci_high": -0.68}, -0.5)
    assert "steeper than m^-0.5" in far and "close to it" not in far
