"""E2's threshold search: the width grid, the search, the criteria, and m* end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aedyn.data import load_data
from aedyn.errors import AedynError
from aedyn.experiments.e2 import (
    CRITERIA,
    MIN_BUDGET,
    Threshold,
    Trial,
    conclude,
    fit_exponent,
    judge,
    least_width,
    m_star_of,
    plot,
    search,
    table_of,
    width_grid,
)
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD
from conftest import one_error_line, run_cli


def test_width_grid_is_geometric_with_ratio_sqrt2():
    grid = width_grid(4096)
    assert grid[:12] == [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64] and grid[-1] == 4096
    ratios = np.array(grid[4:]) / np.array(grid[3:-1])
    assert np.all(ratios <= math.sqrt(2) * 1.1) and np.all(ratios > 1)


@pytest.mark.parametrize("count", [1, 2, 7, 24])
def test_search_finds_the_least_passing_index_from_any_start(count):
    """Against a scan, for every threshold (including none) and every start; and with fewer
    evaluations than a scan on a long grid."""
    for first in [*range(count), None]:
        for start in range(count):
            calls: list[int] = []

            def ok(j: int, first=first, calls=calls) -> bool:
                calls.append(j)
                return first is not None and j >= first

            assert search(ok, count, start) == first
            if count == 24:
                assert len(set(calls)) <= 12


def result(loss, *, status="converged", lr=0.5, lam_min=(0.2,), lam_max=1.0):
    loss = np.asarray(loss, dtype=float)
    return SimpleNamespace(loss=loss, status=status, steps=len(loss) - 1, lr=lr,
                           metrics={"ntk_lambda_min": np.asarray(lam_min), "ntk_lambda_max": np.array([lam_max])})


def test_judge_applies_each_criterion_as_stated():
    """eta = 0.5, lambda_min(Theta(0)) = 0.2: rho = 0.81 per step; half the rate is 0.9 per step."""
    good = result(0.9 ** np.arange(30), lam_min=(0.2, 0.15, 0.11))  # on the half-rate line, kernel held
    slow = result(0.95 ** np.arange(30), lam_min=(0.2, 0.2))  # reaches, but above the half-rate line
    budget = result(0.9 ** np.arange(30), status="max_steps", lam_min=(0.2, 0.09))  # kernel halved, no target
    singular = result(0.5 ** np.arange(30), lam_min=(1e-12, 1.0))
    trial = judge([good, slow, budget, singular], width=8, seeds=[0, 1, 2, 3], criteria=CRITERIA)
    assert trial.passed == {"reach": (True, True, False, True), "rate": (True, False, False, False),
                            "kernel": (True, True, False, False)}
    assert trial.predicted_rate[0] == pytest.approx(0.81) and trial.fraction("reach") == 0.75
    assert list(judge([good], 8, [0], ["reach"]).passed) == ["reach"]


def test_least_width_end_to_end():
    r = least_width("joint", "sphere", 6, 3, seeds=2, max_width=128)
    assert set(r.m_star) == set(CRITERIA) and r.budget == max(MIN_BUDGET, math.ceil(4.0 * r.predicted_steps))
    grid = width_grid(128)
    tried = {t.width: t for t in r.trials}
    for criterion, m in r.m_star.items():
        assert m is not None, criterion
        assert tried[m].fraction(criterion) >= 0.9
        below = grid[grid.index(m) - 1] if m > 1 else None
        assert below is None or below not in tried or tried[below].fraction(criterion) < 0.9
    assert r.m_star["rate"] >= r.m_star["reach"]  # rate also demands the target
    assert all(t.steps[i] <= r.budget for t in r.trials for i in range(2))
    assert json.loads(json.dumps(r.to_dict()))["m_star"] == r.m_star


def test_threshold_refusals():
    for call, words in ((lambda: least_width("tied", "sphere", 4, 3), "tied"),
                        (lambda: least_width("joint", "sphere", 4, 3, criteria=["fast"]), "criterion"),
                        (lambda: least_width("joint", "sphere", 4, 3, seeds=0), "seeds"),
                        (lambda: least_width("joint", "sphere", 4, 3, quorum=1.5), "quorum")):
        with pytest.raises(AedynError, match=words):
            call()


def test_threshold_command(capsys):
    code, stdout, _ = run_cli(["threshold", "--regime", "joint", "--n", "6", "--d", "3", "--seeds", "2",
                               "--criterion", "reach", "--max-width", "64", "--json", "-q"], capsys)
    record = json.loads(stdout)
    assert code == 0 and set(record["m_star"]) == {"reach"} and record["trials"]
    code, stdout, err = run_cli(["threshold", "--regime", "joint", "--n", "6", "--d", "3", "--seeds", "2",
                                 "--max-width", "64"], capsys)
    assert code == 0 and "m* reach" in stdout and "m* kernel" in stdout and "% of seeds passing" in stdout
    assert "m = " in err
    code, _, err = run_cli(["threshold", "--regime", "tied"], capsys)
    assert code == 2 and one_error_line(err)


# ---- m* against n: made-up thresholds, so every sentence of the verdict can be checked --------

def made_up(regime: str, n: int, passed: dict[int, list[bool]], quorum: float = 0.9) -> Threshold:
    """A Threshold whose trials pass as given (width -> per-seed outcome, same for every criterion)."""
    seeds = len(next(iter(passed.values())))
    trials = [Trial(width=w, seeds=tuple(range(seeds)), status=("converged",) * seeds, steps=(10,) * seeds,
                    lr=(0.1,) * seeds, lambda_min0=(0.1,) * seeds, lambda_max0=(1.0,) * seeds,
                    predicted_rate=(0.98,) * seeds, passed={c: tuple(p) for c in CRITERIA}) for w, p in passed.items()]
    th = Threshold(setting={"regime": regime, "data": "sphere", "n": n, "d": 8, "seeds": list(range(seeds))},
                   m_star={}, predicted_steps=10, budget=40, quorum=quorum, trials=trials)
    th.m_star = {c: m_star_of(trials, c, quorum) for c in CRITERIA}
    return th


def scaling(regime: str, factor: float, power: float, ns=(8, 16, 32, 64)) -> list[Threshold]:
    """m* = factor n^power: all seeds pass there and above; at half that width all but one pass
    (just below the quorum of 90%), so bootstrap resamples of the seeds move m* between the two."""
    out = []
    for n in ns:
        m = round(factor * n ** power)
        out.append(made_up(regime, n, {m // 4: [False] * 8, m // 2: [True] * 7 + [False], m: [True] * 8,
                                       2 * m: [True] * 8}))
    return out


def test_exponent_recovers_the_power_and_its_interval_covers_it():
    weak = scaling("weak", 2.0, 1.5)
    e = fit_exponent(weak, "reach", resamples=200)
    assert e.value == pytest.approx(1.5, abs=0.02) and e.ci_low <= e.value <= e.ci_high and e.points == 4
    assert fit_exponent(weak[:1], "reach") is None


def test_bootstrap_widens_where_seeds_disagree():
    """Unanimous seeds give a point interval; a width passed by 7 of 8 seeds, just below the
    quorum, at every n makes resamples move m* between two widths, so the interval widens."""
    clean = [made_up("joint", n, {n: [False] * 8, 2 * n: [True] * 8}) for n in (8, 16, 32)]
    e = fit_exponent(clean, "reach", resamples=100)
    assert e.value == pytest.approx(1.0) and e.ci_low == pytest.approx(1.0) and e.ci_high == pytest.approx(1.0)
    noisy = scaling("weak", 2.0, 1.5)
    e = fit_exponent(noisy, "reach", resamples=300)
    assert e.ci_high - e.ci_low > 0.05


@pytest.mark.parametrize("joint_factor, words", [(0.5, "Joint training needs 4.0x less width than weak at n = 64"),
                                                 (8.0, "Joint training needs 4.0x more width than weak at n = 64"),
                                                 (2.0, "Joint and weak training need the same width at n = 64")])
def test_verdict_sentences_follow_the_numbers(joint_factor, words):
    weak, joint = scaling("weak", 2.0, 1.0), scaling("joint", joint_factor, 1.0)
    table = table_of([*weak, *joint])
    exps = {(r, "sphere", "reach"): fit_exponent(th, "reach", resamples=50) for r, th in (("weak", weak),
                                                                                          ("joint", joint))}
    text = " ".join(s for s in conclude(table[table.criterion == "reach"], exps))
    assert words in text and "weak: m* grows like n^1.00" in text
    assert "are below the proven n^6 (Du et al. 2019), n^4 (Song & Yang 2019), n^2 (Oymak & Soltanolkotabi 2020)" \
        in text
    assert "weak: m* is 2.0-2.0x the parameter count (m = n)" in text


def test_verdict_says_when_no_width_succeeded_and_when_growth_exceeds_a_bound():
    weak = scaling("weak", 0.5, 2.5, ns=(4, 8, 16))
    none = made_up("joint", 16, {16: [False] * 8, 32: [False] * 8})
    table = table_of([*weak, none])
    exps = {("weak", "sphere", "reach"): fit_exponent(weak, "reach", resamples=50),
            ("joint", "sphere", "reach"): fit_exponent([none], "reach")}
    text = " ".join(conclude(table[table.criterion == "reach"], exps))
    assert "No width on the grid succeeded for joint at n = 16" in text
    assert "joint: too few widths found to fit a growth" in text
    assert "below the proven n^6 (Du et al. 2019), n^4 (Song & Yang 2019) but not below n^2" in text


def test_tabulate_is_tidy():
    table = table_of(scaling("weak", 2.0, 1.0, ns=(8, 16)))
    assert list(table.columns) == ["regime", "data", "n", "d", "criterion", "m_star", "m_over_n", "predicted_rate",
                                   "lambda_min0_over_inf", "budget", "seeds"]
    assert len(table) == 2 * len(CRITERIA) and set(table.m_star) == {16, 32}
    assert table.lambda_min0_over_inf.isna().all()  # made-up settings carry no infinite-width lambda_min


def test_kernel_ratio_compares_theta0_with_the_infinite_width_kernel():
    """At m*, the median over seeds of lambda_min(Theta(0)) over the infinite-width lambda_min,
    and the sentence that flags a nearly singular start."""
    th = made_up("weak", 8, {16: [False] * 8, 32: [True] * 8})
    th.setting["lambda_min_inf"] = 0.8
    assert th.kernel_ratio("reach") == pytest.approx(0.1 / 0.8)
    table = table_of([th])
    assert table.lambda_min0_over_inf.iloc[0] == pytest.approx(0.125)
    text = " ".join(conclude(table[table.criterion == "reach"], {}))
    assert "0.12-0.12x the infinite-width kernel's lambda_min (below 0.25 for weak at n = 8" in text
    real = least_width("joint", "sphere", 6, 4, seeds=2, criteria=["reach"], max_width=128)
    X = load_data("sphere", n=6, d=4, seed=0)
    spectrum = torch.linalg.eigvalsh(regime_kernel(X, "joint"))
    assert real.setting["lambda_min_inf"] == pytest.approx(float(spectrum[0]), rel=1e-10)
    # the budget's basis: the expected loss over the random initial outputs, not the residual -X alone
    lin = LinearisedGD(regime_kernel(X, "joint"), 1.0 / float(spectrum[-1]))
    assert real.predicted_steps == lin.steps_to(-X, 1e-6, covariance=init_output_kernel(X))
    assert real.predicted_steps > lin.steps_to(-X, 1e-6)


def test_figures_are_labelled_log_log_and_render(tmp_path):
    import matplotlib.pyplot as plt

    ths = [*scaling("weak", 2.0, 1.5), *scaling("joint", 1.0, 1.0)]
    figs = plot(ths)
    assert set(figs) == {"m_star_vs_n", "success_vs_width"}
    ax = figs["m_star_vs_n"].axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("weak: $n^{1.5") for label in labels) and "m = n" in labels
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=80)
        assert plt.imread(path).shape[2] in (3, 4)
        plt.close(fig)


def test_the_protocol_runs_a_tiny_config_and_its_results_are_plain_data():
    from aedyn.experiments import e2

    assert json.loads(json.dumps(e2.config(quick=False)))["series"][2]["vary"] == "d"
    series = [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3},
              {"data": "sphere", "vary": "d", "n": 4, "ds": [2, 3]}]  # (n, d) = (4, 3) is in both: trained once
    cfg = {**e2.config(quick=True), "series": series, "seeds": 2, "max_width": 32, "criteria": ["reach", "rate"]}
    assert json.loads(json.dumps(cfg)) == cfg and all(isinstance(s, str) for s in e2.setup(cfg))
    seen: list[float] = []
    results = json.loads(json.dumps(e2.run(cfg, progress=lambda message, fraction: seen.append(fraction))))
    assert seen == sorted(seen) and seen[-1] == 1  # after each width, and after each of 2 x 3 distinct settings
    assert {round(6 * f, 9) for f in seen} >= set(range(1, 7))
    table = e2.tabulate(results)
    assert len(table) == 2 * 3 * 2 and set(table.regime) == {"weak", "joint"}
    sentences, summary = e2.verdict(results)
    assert sentences and {"m_star", "exponent_n", "exponent_d"} <= set(summary) and json.dumps(summary)
    assert any("against d" in s for s in sentences) and summary["exponent_d"]
    assert all(row["m_star"] is None or row["m_star"] >= 1 for row in summary["m_star"])
    assert set(e2.figures(results)) == {"m_star_vs_n", "success_vs_width", "m_star_vs_d"}


def test_a_network_that_cannot_train_fails_instead_of_stopping_the_search():
    """n = 1: at small widths some seeds start with every ReLU dead (a zero NTK, so no lr='auto'):
    they count as failures ('untrainable'), and the search goes on."""
    r = least_width("joint", "sphere", 1, 4, seeds=8, criteria=["reach"], max_width=4)
    statuses = [s for t in r.trials for s in t.status]
    assert "untrainable" in statuses
    for t in r.trials:
        assert not any(p for s, p in zip(t.status, t.passed["reach"], strict=True) if s == "untrainable")


def test_one_seed_gives_a_growth_without_an_interval():
    ths = [made_up("joint", n, {n: [False], 2 * n: [True]}) for n in (8, 16, 32)]
    e = fit_exponent(ths, "reach")
    assert e.value == pytest.approx(1.0) and e.ci_low is None and e.ci_high is None


def test_a_series_can_ask_for_fewer_criteria_and_series_on_one_axis_merge():
    """Large n on reach alone (as the CUDA config does): those settings judge only reach, and
    the two n-series at the same d form one series for the fits, the table and the figures."""
    from aedyn.experiments import e2

    series = [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3},
              {"data": "sphere", "vary": "n", "ns": [16], "d": 3, "criteria": ["reach"]}]
    cfg = {**e2.config(quick=True), "series": series, "seeds": 2, "max_width": 64, "regimes": ["joint"]}
    results = e2.run(cfg)
    crit = {th["setting"]["n"]: set(th["m_star"]) for th in results["thresholds"]}
    assert crit == {4: {"reach", "rate", "kernel"}, 8: {"reach", "rate", "kernel"}, 16: {"reach"}}
    merged = e2._series(results)
    assert len(merged) == 1 and merged[0][0]["ns"] == [4, 8, 16] and len(merged[0][1]) == 3
    assert "criteria reach only" in " ".join(e2.setup(cfg))
    summary = e2.verdict(results)[1]
    reach = [e for e in summary["exponent_n"] if e["criterion"] == "reach"]
    assert len(reach) == 1  # one growth for the merged series, not one per series


def test_a_series_can_add_regimes_and_other_series_do_not_show_them():
    """The decoder baseline on one series: its settings train it, and a series through the same
    setting without it neither plots nor fits it."""
    from aedyn.experiments import e2

    series = [{"data": "sphere", "vary": "n", "ns": [4], "d": 3, "regimes": ["joint", "decoder"]},
              {"data": "sphere", "vary": "d", "n": 4, "ds": [3, 4]}]
    cfg = {**e2.config(quick=True), "series": series, "seeds": 2, "max_width": 64, "regimes": ["joint"],
           "criteria": ["reach"]}
    results = e2.run(cfg)
    ran = sorted((th["setting"]["regime"], th["setting"]["d"]) for th in results["thresholds"])
    assert ran == [("decoder", 3), ("joint", 3), ("joint", 4)]
    groups = {sr["vary"]: {th.setting["regime"] for th in ths} for sr, ths in e2._series(results)}
    assert groups == {"n": {"joint", "decoder"}, "d": {"joint"}}
    assert "(regimes joint, decoder)" in " ".join(e2.setup(cfg))
