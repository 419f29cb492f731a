"""E5, the weight-tied degeneracy: config, the jobs, a tiny run end to end through the run layer,
the findings and details on made-up results (each defect the referee found pinned by a test that
fails on the old ``verdict``), the figures' house style, resume from the run store. (The
measurements themselves, :mod:`aedyn.measures.maps`, are tested in ``test_measures_maps.py``.)"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest

from aedyn import stats
from aedyn.experiments import e5, style, values_by_seed
from aedyn.findings import CLAIMS, VERDICTS
from aedyn.job import batch_key
from aedyn.sweep import Runner
from conftest import check_completeness

SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")


def tiny_config(**changes):
    cfg = e5.config(quick=True)
    cfg["data"] = [{"name": "sphere", "n": 5, "d": 3, "widths": [32, 64], "seeds": [0, 1], "max_steps": 200},
                   {"name": "digits", "n": 4, "d": 64, "widths": [32], "seeds": [0], "max_steps": 50}]
    cfg.update(n_test=12, kernel_check={"n": 3, "d": 2, "widths": [64, 256, 1024], "seeds": 3})
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
        assert "bootstrap" not in cfg  # no bootstrap any more: t intervals over seeds
    assert all(d["seeds"] == [0, 1, 2] for d in e5.config(quick=True, seeds=3)["data"])
    text = " ".join(e5.setup(e5.config(quick=True)))
    for words in ("sphere (n = 16, d = 8; m = 256, 1024; 3 seeds", "digits (n = 8, d = 64", "1/lambda_max(Theta(0))",
                  "lr='auto'", "alpha = 1/sqrt(m) and 1/m", "data seed 1", "not training samples",
                  "min_c ||W_T - c W_0||", "sqrt((2d+3)/m)", "expected -1/2", "status says which",
                  "t interval over seeds", "paired differences", "fewer than 3 seeds decide nothing"):
        assert words in text, words
    assert "bootstrap" not in text
    assert e5.NAME == "E5" and e5.TITLE and e5.CLAIM.endswith(".")


def test_the_full_config_has_eight_seeds_wherever_a_slope_is_reported():
    """Defect 5: the old full config ran 3 seeds (sphere), 2 (digits) and 6 (kernel check), and
    reported slopes in m for all three. Now every data set trained at two or more widths, and the
    kernel check, have at least eight."""
    cfg = e5.config()
    sloped = [d for d in cfg["data"] if len(d["widths"]) > 1]
    assert {d["name"] for d in sloped} == {"sphere", "digits"}
    assert all(len(d["seeds"]) >= e5.SLOPE_SEEDS >= 8 for d in sloped)
    assert cfg["kernel_check"]["seeds"] >= 8 and len(cfg["kernel_check"]["widths"]) > 1


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
                "f0_gap", "lr", "lambda_max", "ntk_lambda_max"):
        assert (np.isfinite(table[col]) & (table[col] >= 0)).all(), col
    assert (table["lr"] * table["lambda_max"]).between(1 - 1e-3, 1 + 1e-3).all()  # lr = auto
    joint, tied = table[table["regime"] == "joint"], table[table["regime"] == "tied"]
    assert joint["weight_change_V"].notna().all() and tied["weight_change_V"].isna().all()
    assert all(set(r) <= set(e5.COLUMNS) for r in results["runs"])  # rows restricted to the table's columns
    assert any("normalis" in note for note in results["notes"]) and results["notes"] == sorted(set(results["notes"]))
    ntk = table[table["init_scale"] == "ntk"]
    assert np.allclose(ntk["alpha"], 1 / np.sqrt(ntk["width"]))
    assert calls[-1][1] == 1.0 and all(0 <= f <= 1 for _, f in calls)
    kc = results["kernel_check"]
    assert np.asarray(kc["errors"]).shape == (3, 3) and kc["slope"]["ci_low"] <= kc["slope"]["ci_high"]
    summary = e5.summary(results)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert len(summary["groups"]) == 2 * 2 * 2 and summary["kernel_check"]["widths"] == [64, 256, 1024]
    assert len(summary["comparisons"]) == 2 * 2 * 3
    kernel = e5.tables(results)["kernel_check"]
    assert len(kernel) == 9 and list(kernel.columns) == list(e5.KERNEL_COLUMNS)
    details = e5.details(results)
    assert all(isinstance(s, str) and s.endswith(".") for s in details)
    # every (data, scaling, architecture) says what its trained map is, and nothing is decided from 2 seeds
    said = [s for s in details if "held-out inputs: " in s and "multiple of the identity" in s and "map" in s]
    assert len([s for s in said if "c = " in s]) == 2 * 2 * 2
    assert all("too few" in s for s in said if s.startswith(("sphere", "digits")) and "c = " in s)


def test_findings_are_at_most_five_with_one_headline_for_the_tied_claim(tiny):
    results, _ = tiny
    found = e5.findings(results)
    assert 1 <= len(found) <= 5 and all(f.verdict in VERDICTS and f.claim in CLAIMS for f in found)
    heads = [f for f in found if f.headline]
    assert len(heads) == 1 and heads[0].claim == "tied" and heads[0].rule == "tied/degenerate"
    assert heads[0].figure in e5.CAPTIONS and heads[0].figure in e5.figures(results)
    assert heads[0].subject.startswith("sphere, ntk scaling, m = 64")
    assert [f.rule for f in found] == ["tied/degenerate", "comparison/ratio", "comparison/difference",
                                       "power_law/equals", "certificate"]
    assert all(f.verdict == "inconclusive" for f in found[:3])  # two seeds: nothing decided
    json.dumps([f.to_dict() for f in found])


def test_the_key_table_has_at_most_ten_human_columns(tiny):
    results, _ = tiny
    key = e5.key_table(results)
    assert 0 < len(key.columns) <= 10 and len(key) == 2 * 2 * 2  # data x scaling x network
    assert not [c for c in key.columns if SNAKE.search(c)]
    assert "held-out error [95% CI]" in key.columns and "movement slope in m [95% CI]" in key.columns
    assert set(key["network"]) == {"tied", "joint"}


def test_the_jobs_are_the_seeds_of_each_setting_as_one_batch_with_their_measures():
    """One batch per (data set, architecture, scaling, width), its seeds in order, sharing
    :func:`aedyn.job.batch_key`; every job certified, ``lr="auto"``, the NTK at step 0 and at the stop
    only, measuring ``weights`` and ``heldout`` on ``n_test`` inputs of ``heldout_seed``."""
    cfg = tiny_config()
    batches = e5.batches(cfg)
    assert len(batches) == 2 * 2 * (2 + 1)
    assert [(b[0].data, b[0].regime, b[0].init_scale, b[0].width) for b in batches[:4]] == [
        ("sphere", "tied", "ntk", 32), ("sphere", "tied", "ntk", 64), ("sphere", "tied", "mean-field", 32),
        ("sphere", "tied", "mean-field", 64)]
    for batch in batches:
        assert len({batch_key(job) for job in batch}) == 1
        data = next(d for d in cfg["data"] if d["name"] == batch[0].data)
        assert [job.seed for job in batch] == data["seeds"]
        for job in batch:
            assert job.certify and job.lr == "auto" and job.steps == data["max_steps"] < job.ntk_every
            assert job.data_seed == cfg["data_seed"] and job.target == cfg["target"]
            assert [m.to_json() for m in job.measures] == ["weights", {"name": "heldout", "n": 12, "seed": 1}]


def test_kernel_check_slope_is_the_per_seed_fit_and_meets_the_exponent():
    """The kernel check's slope is :func:`aedyn.stats.fit_slope` of its widths x seeds errors (the
    old one was the paired bootstrap of ``fit_power_law``), and its finding, on a small problem with
    eight seeds, is consistent with m^(-1/2) through the interval (deterministic seeds)."""
    cfg = tiny_config(kernel_check={"n": 3, "d": 3, "widths": [256, 1024, 4096, 16384], "seeds": 8})
    check = e5.kernel_check(cfg)
    fit = stats.fit_slope(check["widths"], check["errors"])
    assert check["slope"] == fit.to_dict() and check["slope"]["seeds"] == 8
    f = next(f for f in e5.findings({"config": cfg, "runs": [], "kernel_check": check}) if f.rule.startswith("power"))
    assert f.estimate.value == pytest.approx(fit.value, abs=1e-12) and f.estimate.contains(-0.5)
    assert f.verdict == "supported" and "consistent with m^-0.5 (8 seeds)" in f.sentence


def fake(arch, scaling, width, *, seed=0, data="sphere", status="converged", error=0.1, c=1.0, beyond=0.05,
         moved=0.5, drift=0.9, dist=0.05, rescale_c=0.3, f0=0.1, f0_expected=0.12, cert=None):
    record = {"regime": arch, "init_scale": scaling, "data": data, "n": 16, "d": 8, "n_test": 64, "width": width,
              "seed": seed, "status": status, "steps": 100, "lr": 0.1, "lambda_max": 10.0, "heldout_error": error,
              "c": c, "c_std": 0.01, "beyond_c": beyond, "train_error": 1e-3, "weight_change_W": moved,
              "max_neuron_rel_W": 2 * moved, "rescale_distance": dist, "rescale_c": rescale_c,
              "rescale_c_identity": 0.25, "ntk_drift": drift, "f0_gap": f0, "f0_gap_expected": f0_expected}
    if cert is not None:
        kernel, rate, safe = cert
        record.update(cert_inside=kernel and rate and safe, cert_kernel_holds=kernel, cert_rate_holds=rate,
                      cert_safe_radius_holds=safe)
    return record


def made(runs, kernel_check=None):
    return {"config": {}, "runs": runs, **({} if kernel_check is None else {"kernel_check": kernel_check})}


def jitter(i, k=4):
    """A small spread over ``k`` seeds (mean 0)."""
    return (i - (k - 1) / 2) / k


def test_a_two_percent_gap_from_one_seed_is_no_comparison():
    """Defect 1. The old verdict said "the untied (joint) network reconstructs held-out inputs worse
    than the tied one (relative error 2.21 against 2.17)" from one seed, a 2% gap, a run stopped at
    its step budget and both errors above 1. Now: too few seeds, inconclusive; the run still training
    and the errors worse than the zero map are named."""
    runs = [fake("tied", "ntk", 256, data="digits", error=2.17, status="max_steps"),
            fake("joint", "ntk", 256, data="digits", error=2.21)]
    comp = e5.findings(made(runs))[1]
    assert comp.rule == "comparison/ratio" and comp.verdict == "inconclusive" and not comp.headline
    assert "joint's over tied's is 1.02x from 1 seed: too few to compare (at least 3 are needed)" in comp.sentence
    assert "1 of 2 runs stopped at the step budget, still training" in comp.sentence
    assert "both do worse than the zero map (relative error above 1)" in comp.sentence
    text = " ".join(e5.details(made(runs)))
    assert "reconstructs held-out inputs worse" not in text and "better than" not in text
    # the same 2% gap over four seeds whose ratios scatter by 10%: the interval holds 1
    runs = [fake(a, "ntk", 256, data="digits", seed=s, error=2.17 * (1.02 + 0.1 * jitter(s) if a == "joint" else 1))
            for a in ("tied", "joint") for s in range(4)]
    comp = e5.findings(made(runs))[1]
    assert comp.verdict == "inconclusive" and "the two are indistinguishable (the interval contains 1)" in comp.sentence
    assert "both do worse than the zero map" in comp.sentence and "still training" not in comp.sentence
    # a consistent 50% gap over four seeds, errors below 1: established
    runs = [fake(a, "ntk", 256, seed=s, error=(0.6 if a == "joint" else 0.4) * (1 + 0.01 * jitter(s)))
            for a in ("tied", "joint") for s in range(4)]
    comp = e5.findings(made(runs))[1]
    assert comp.verdict == "supported" and "joint reconstructs held-out inputs worse than tied" in comp.sentence
    assert "zero map" not in comp.sentence
    assert comp.estimate.value == pytest.approx(1.5, rel=1e-6) and comp.estimate.low > 1


def test_the_headline_places_the_tied_map_by_the_interval_of_beyond_c():
    """Rule tied/degenerate (through tied/identity). The old verdict said "the tied network converged
    to a map close to the identity on inputs it never saw" from the median of however many seeds
    there were (one included) and a fixed 10% cut on that median; now the 95% interval decides, one
    seed decides nothing, and a run still training makes it inconclusive. A tied map that is no
    multiple of the identity degenerates only if it is worse than the zero map and than joint."""
    def runs(beyond, *, seeds=4, status="converged", tied_error=0.1, joint_error=0.1):
        return ([fake("tied", "ntk", 1024, seed=s, beyond=beyond(s), c=1.02, moved=0.8, drift=0.9, status=status,
                      error=tied_error * (1 + 0.02 * jitter(s)))
                 for s in range(seeds)]
                + [fake("joint", "ntk", 1024, seed=s, beyond=0.6, moved=0.03 + 0.001 * s, drift=0.02,
                        error=joint_error * (1 + 0.03 * jitter(s))) for s in range(seeds)])

    head = e5.findings(made(runs(lambda s: 0.03 + 0.004 * jitter(s))))[0]
    assert head.headline and head.claim == "tied" and head.verdict == "supported"
    assert head.sentence.startswith("the tied network degenerates to a multiple of the identity.")
    assert "the tied map is within 10% of a multiple of the identity" in head.sentence
    assert "its training was not lazy (movement or drift above 10%)" in head.sentence
    assert "the joint network from the same seeds: ||f(Z) - cZ||/||f(Z)|| = 0.6" in head.sentence
    assert "(4 seeds)." in head.sentence and head.key.startswith("share beyond c·z 0.03 [")
    # no multiple of the identity, and as good as the untied network: no degeneracy measured
    head = e5.findings(made(runs(lambda s: 0.7 + 0.01 * jitter(s))))[0]
    assert head.verdict == "not supported" and "the tied map is not within 10% of a multiple" in head.sentence
    # no multiple of the identity, worse than the zero map and than joint: it degenerates that way
    head = e5.findings(made(runs(lambda s: 0.7 + 0.01 * jitter(s), tied_error=2.6, joint_error=1.1)))[0]
    assert head.verdict == "supported" and "does worse than the zero map (relative error 2.6" in head.sentence
    head = e5.findings(made(runs(lambda s: 0.1 + 0.1 * jitter(s))))[0]
    assert head.verdict == "inconclusive" and "cannot be told (the interval holds 10%)" in head.sentence
    head = e5.findings(made(runs(lambda s: 0.03, seeds=1)))[0]
    assert head.verdict == "inconclusive"
    assert "1 seed: too few to say whether the tied map is within 10%" in head.sentence
    assert "converged to" not in head.sentence
    head = e5.findings(made(runs(lambda s: 0.03 + 0.004 * jitter(s), status="max_steps")))[0]
    assert head.verdict == "inconclusive" and "All 4 runs stopped at the step budget, still training" in head.sentence
    assert "within 10% of a multiple of the identity where the step budget stopped it" in head.sentence
    # the joint network's own sentence (details) says its training was lazy
    text = " ".join(e5.details(made(runs(lambda s: 0.03 + 0.004 * jitter(s)))))
    assert "the joint map is not within 10% of a multiple of the identity" in text
    assert "its training was lazy (movement and drift below 10%)" in text


def test_slopes_in_m_are_per_seed_fits_held_against_the_exponent_through_their_interval():
    """Defect 3. Slopes in m are :func:`aedyn.stats.fit_slope` (per-seed slopes, t interval) and
    judged by :func:`aedyn.findings.power_law`. The old code used the seed-mean line of
    ``fit_power_law`` and called any kernel slope within -0.7..-0.3 "consistent with m^(-1/2)"
    (SLOPE_RANGE), whatever its interval; -0.62 with an interval of +-0.02 is steeper than -1/2,
    -0.35 shallower, and two seeds decide nothing."""
    widths = (64, 256, 1024)
    runs = [fake(a, "ntk", w, seed=s, moved=0.4 * w ** (-0.5 + 0.02 * jitter(s) if a == "joint" else 0.1) * 3.0 ** s,
                 drift=w ** -0.25 * (1 + s))
            for a in ("tied", "joint") for w in widths for s in range(4)]
    joint = [r for r in runs if r["regime"] == "joint"]
    fit = stats.fit_slope(*values_by_seed(joint, "weight_change_W"))
    group = next(g for g in e5.summary(made(runs))["groups"] if g["regime"] == "joint")
    assert group["movement_slope"] == pytest.approx(fit.value, abs=1e-12) == pytest.approx(-0.5, abs=1e-12)
    assert group["movement_slope_ci"] == pytest.approx([fit.low, fit.high], abs=1e-12)
    assert group["drift_slope"] == pytest.approx(-0.25, abs=1e-12) and group["drift_slope_ci"][1] - \
        group["drift_slope_ci"][0] < 1e-9  # every seed's drift slope is exactly -1/4: a zero-width interval
    text = " ".join(e5.details(made(runs)))
    assert f"sphere, ntk scaling, joint: ||W_T - W_0||/||W_0|| goes like m^-0.50 [{fit.low:.2f}, {fit.high:.2f}], " \
           "consistent with m^-0.5 (4 seeds)." in text
    assert "sphere, ntk scaling, tied: ||W_T - W_0||/||W_0|| goes like m^0.10 [0.10, 0.10], shallower than m^-0.5; " \
           "it does not fall with m (4 seeds)." in text
    move = e5.findings(made(runs))[2]
    assert move.rule == "comparison/difference" and move.verdict == "supported"
    assert "tied's weight movement falls more slowly with m than joint's (or grows)" in move.sentence
    assert move.estimate.value == pytest.approx(0.6, abs=1e-9)

    def kernel(slopes):
        ws = [256, 1024, 4096, 16384]
        return {"n": 4, "d": 4, "widths": ws, "seeds": list(range(len(slopes))),
                "errors": [[0.2 * (w / 256) ** s for s in slopes] for w in ws], "slope": {}}

    steep = e5.findings(made([], kernel([-0.62 + 0.02 * jitter(i) for i in range(4)])))[0]
    assert steep.verdict == "partly supported" and "steeper than m^-0.5" in steep.sentence
    assert "consistent" not in steep.sentence
    shallow = e5.findings(made([], kernel([-0.35 + 0.02 * jitter(i) for i in range(4)])))[0]
    assert shallow.verdict == "partly supported" and "shallower than m^-0.5" in shallow.sentence
    few = e5.findings(made([], kernel([-0.5, -0.49])))[0]
    assert few.verdict == "inconclusive" and "from 2 seeds: too few to say whether that is m^-0.5" in few.sentence
    assert e5.summary(made([], kernel([-0.5, -0.49])))["kernel_check"]["consistent"] is False


def test_f0_gap_is_compared_with_its_expectation_through_an_interval():
    """Each seed's gap falls like m^(-1/2 + 0.01 jitter): slopes spread about -1/2, so their interval
    holds it. (Every seed at exactly -1/2 gave an interval of zero width a rounding error away from
    -1/2, on one side or the other depending on the CPU's summation order.)"""
    runs = [fake("tied", "ntk", w, seed=s, f0_expected=math.sqrt(19 / w),
                 f0=math.sqrt(19 / w) * (1 + 0.02 * jitter(s)) * (w / 256) ** (0.01 * jitter(s)))
            for w in (64, 256, 1024) for s in range(4)]
    text = " ".join(e5.details(made(runs)))
    assert "over its expectation (2d+3)/m, mean over widths" in text
    assert "the two are indistinguishable (the interval contains 1)" in text
    assert "||f_0(Z) - aZ||/||aZ|| goes like m^-0.50 [-0.51, -0.49], consistent with m^-0.5 (4 seeds)." in text


def test_the_certificate_finding_names_each_invariant():
    runs = ([fake("tied", "ntk", 256, seed=s, cert=(False, True, False)) for s in range(3)]
            + [fake("joint", "ntk", 256, seed=s, cert=(True, True, s == 0)) for s in range(3)])
    f = e5.findings(made(runs))[-1]
    assert f.rule == "certificate" and f.claim == "certificate" and not f.headline
    assert "every invariant holds in 1 of 6 runs (the kernel invariant holds in 3, the rate invariant in 6 and the " \
           "safe-radius argument in 1 of 6)" in f.sentence
    assert "the kernel or rate invariant fails for tied, ntk, sphere: kernel in 3 of 3." in f.sentence.lower()
    assert f.verdict == "partly supported"
    text = " ".join(e5.details(made(runs)))
    assert "certificate, sphere, ntk scaling, joint: every invariant holds in 1 of 3 runs" in text


def test_figures_follow_the_house_style(tiny, tmp_path):
    """Defect 4: every figure passes :func:`style.check` (the old ones used 7-pt text and drew the
    digits column, one width, on a log axis over a single point); a data set trained at one width is
    drawn on a linear axis."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    results, _ = tiny
    figs = e5.figures(results)
    assert set(figs) == {"heldout", "movement", "kernel_limit"} and set(figs) <= set(e5.CAPTIONS)
    for name, fig in figs.items():
        assert style.check(fig, name) == []
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert mpimg.imread(path).shape[0] > 100
    heldout = figs["heldout"].axes  # rows: error, c, beyond; columns: sphere (2 widths), digits (1 width)
    assert [ax.get_xscale() for ax in heldout[:2]] == ["log", "linear"]
    assert heldout[0].get_yscale() == "log" and heldout[2].get_yscale() == "linear"
    for fig in figs.values():
        plt.close(fig)


def test_an_interrupted_run_resumes_from_the_run_store(tmp_path, monkeypatch):
    """Stopped while the third batch trains (a KeyboardInterrupt from the local runner's
    ``execute_batch``): a rerun on the same store trains only the two batches the store lacks, a
    third trains nothing, and the results (notes included) equal an uninterrupted run's without a
    store. Each record is its stored row restricted to :data:`e5.COLUMNS`."""
    from aedyn import sweep

    cfg = tiny_config(data=[{"name": "digits", "n": 4, "d": 64, "widths": [16], "seeds": [0, 1], "max_steps": 20}],
                      kernel_check={"n": 2, "d": 2, "widths": [16, 64], "seeds": 2})
    real, trained = sweep.execute_batch, []

    def counting(runs, *args, **kw):
        trained.append([(r.job.regime, r.job.init_scale, r.job.seed) for r in runs])
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        return real(runs, *args, **kw)

    monkeypatch.setattr(sweep, "execute_batch", counting)
    store = tmp_path / "runs"
    stop = True
    with Runner(store) as runner, pytest.raises(KeyboardInterrupt):
        e5.run(cfg, runner=runner)
    assert runner.trained == 4  # two batches of two seeds stored before the interrupt
    stop, trained[:] = False, []
    with Runner(store) as runner:
        resumed = e5.run(cfg, runner=runner)
    assert trained == [[("joint", "ntk", 0), ("joint", "ntk", 1)],
                       [("joint", "mean-field", 0), ("joint", "mean-field", 1)]]
    assert (runner.trained, runner.read) == (4, 4)
    rows = runner.rows()
    trained[:] = []
    with Runner(store) as runner:
        again = e5.run(cfg, runner=runner)
    assert trained == [] and runner.read == 8
    whole = e5.run(cfg)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert any("normalis" in note for note in resumed["notes"])
    key = ("regime", "init_scale", "data", "width", "seed")
    records = {tuple(r[k] for k in key): r for r in resumed["runs"]}
    assert len(rows) == len(records) == 8
    for row in rows.values():
        assert records[tuple(row[k] for k in key)] == {c: row[c] for c in e5.COLUMNS if c in row}


def test_finished_results_are_checked_against_their_config(tiny):
    """What the report checks before it reuses finished results (:func:`e5.missing`)."""
    check_completeness(e5, tiny[0])
