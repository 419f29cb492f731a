"""E2's threshold search: the width grid, the search and its check, the criteria, the estimates,
the findings, and m* end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aedyn.data import load_data
from aedyn.errors import AedynError, MemoryRefusal
from aedyn.experiments import e2, style
from aedyn.experiments.e2 import CRITERIA, MIN_BUDGET, Threshold, Trial, judge, least_width, search, width_grid
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
    """eta = 0.5, lambda_min(Theta(0)) = 0.2, lambda_0 = 0.3: lambda0 needs lambda_min(Theta(t)) >= 0.15
    throughout; rate (a column) needs the loss below the half-rate line 0.9^k and the target."""
    good = result(0.9 ** np.arange(30), lam_min=(0.2, 0.16, 0.15))  # on the half-rate line, at lambda_0/2
    slow = result(0.95 ** np.arange(30), lam_min=(0.2, 0.2))  # reaches, above the half-rate line
    budget = result(0.9 ** np.arange(30), status="max_steps", lam_min=(0.2, 0.09))  # kernel fell, no target
    singular = result(0.5 ** np.arange(30), lam_min=(1e-12, 1.0))
    trial = judge([good, slow, budget, singular, None], width=8, seeds=[0, 1, 2, 3, 4], criteria=CRITERIA,
                  lambda_0=0.3)
    assert trial.passed == {"reach": (True, True, False, True, False), "lambda0": (True, True, False, False, False)}
    assert trial.rate_held == (True, False, False, False, False)
    assert trial.kernel_ratio[:3] == pytest.approx((0.75, 1.0, 0.45)) and math.isnan(trial.kernel_ratio[3])
    assert trial.status[4] == "untrainable" and trial.fraction("reach") == 0.6
    assert trial.predicted_rate[0] == pytest.approx(0.81)
    assert list(judge([good], 8, [0], ["reach"], lambda_0=0.3).passed) == ["reach"]
    assert Trial.from_dict(json.loads(json.dumps(trial.to_dict()))).passed == trial.passed


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
        assert r.checks[criterion]["failed_above"] == []
    X = load_data("sphere", n=6, d=3, seed=0)
    assert r.setting["lambda_min_inf"] == pytest.approx(float(torch.linalg.eigvalsh(regime_kernel(X, "joint"))[0]),
                                                        rel=1e-10)
    for t in r.trials:  # lambda0 is exactly "lambda_min(Theta(t)) >= lambda_0 / 2 at every check"
        assert t.passed["lambda0"] == tuple(bool(v >= r.setting["lambda_min_inf"] / 2) for v in t.lambda_min_low)
    assert all(t.steps[i] <= r.budget for t in r.trials for i in range(2))
    assert json.loads(json.dumps(r.to_dict()))["m_star"] == r.m_star
    assert Threshold.from_dict(json.loads(json.dumps(r.to_dict()))).checks == r.checks


def test_threshold_refusals():
    for call, words in ((lambda: least_width("tied", "sphere", 4, 3), "tied"),
                        (lambda: least_width("joint", "sphere", 4, 3, criteria=["fast"]), "criterion"),
                        (lambda: least_width("joint", "sphere", 4, 3, criteria=["kernel"]), "replaced by 'lambda0'"),
                        (lambda: least_width("joint", "sphere", 4, 3, criteria=["rate"]), "equals 'reach'"),
                        (lambda: least_width("joint", "sphere", 4, 3, seeds=0), "seeds"),
                        (lambda: least_width("joint", "sphere", 4, 3, quorum=1.5), "quorum")):
        with pytest.raises(AedynError, match=words):
            call()


def test_a_width_refused_for_memory_is_an_error_not_a_failing_width():
    with pytest.raises(MemoryRefusal, match="max-memory"):
        least_width("joint", "sphere", 4, 4, seeds=1, max_width=16, max_memory=1024)


def known_trials(passed: dict[int, list[bool]]) -> dict[int, Trial]:
    """Trials at every given width whose seeds pass (both criteria) as given."""
    out = {}
    for w, p in passed.items():
        s = len(p)
        out[w] = Trial(width=w, seeds=tuple(range(s)), status=("converged",) * s, steps=(10,) * s, lr=(0.1,) * s,
                       lambda_min0=(0.1,) * s, lambda_max0=(1.0,) * s, predicted_rate=(0.98,) * s,
                       passed={c: tuple(p) for c in CRITERIA}, rate_held=tuple(p), kernel_ratio=(1.0,) * s,
                       lambda_min_low=(0.1,) * s)
    return out


def test_a_width_above_m_star_that_fails_moves_the_search_and_is_recorded():
    """The quick run once reported m* = 16 although m = 23 passed in only 2 of 4 seeds: the search
    assumed success lasts. Now a failing width above the first pass moves m* above it."""
    grid = width_grid(64)
    passed = {w: [w >= 16] * 4 for w in grid}
    passed[23] = [True, True, False, False]
    r = least_width("weak", "sphere", 16, 4, seeds=4, max_width=64, known=known_trials(passed))
    assert r.m_star == {"reach": 32, "lambda0": 32}
    assert r.checks["reach"] == {"first_pass": 16, "failed_above": [23], "checked_above": [45, 64]}
    assert r.bracket("reach") == (23, 32)
    key = e2.key_table({"config": cfg_of([16], ["weak"], d=4), "thresholds": [r.to_dict()]})
    assert set(key["search check"]) == {"failed at 23"}
    never = {w: [False] * 4 for w in grid}
    never[16] = [True] * 4
    r = least_width("weak", "sphere", 16, 4, seeds=4, max_width=64, known=known_trials(never))
    assert r.m_star["reach"] is None and r.checks["reach"]["failed_above"] == [23, 32, 45, 64]


def test_the_budget_and_lambda_0_come_from_the_infinite_width_kernel():
    real = least_width("joint", "sphere", 6, 4, seeds=2, criteria=["reach"], max_width=128)
    X = load_data("sphere", n=6, d=4, seed=0)
    spectrum = torch.linalg.eigvalsh(regime_kernel(X, "joint"))
    lin = LinearisedGD(regime_kernel(X, "joint"), 1.0 / float(spectrum[-1]))
    # the budget's basis: the expected loss over the random initial outputs, not the residual -X alone
    assert real.predicted_steps == lin.steps_to(-X, 1e-6, covariance=init_output_kernel(X))
    assert real.predicted_steps > lin.steps_to(-X, 1e-6)


def test_threshold_command(capsys):
    code, stdout, _ = run_cli(["threshold", "--regime", "joint", "--n", "6", "--d", "3", "--seeds", "3",
                               "--criterion", "reach", "--max-width", "64", "--json", "-q"], capsys)
    record = json.loads(stdout)
    assert code == 0 and set(record["m_star"]) == {"reach"} and record["trials"]
    assert {"value", "low", "high"} <= set(record["estimates"]["reach"])
    code, stdout, err = run_cli(["threshold", "--regime", "joint", "--n", "6", "--d", "3", "--seeds", "3",
                                 "--max-width", "64"], capsys)
    assert code == 0 and "m* reach" in stdout and "m* lambda0" in stdout and "quorum width" in stdout
    assert "m = " in err
    for bad in (["--regime", "tied"], ["--criterion", "kernel"], ["--criterion", "rate"]):
        code, _, err = run_cli(["threshold", *bad], capsys)
        assert code == 2 and one_error_line(err), bad
    assert "lambda0" in err


# ---- m* against n from made-up thresholds: every finding checked ---------------------------------

def made_up(regime: str, n: int, passed: dict[int, list[bool]], quorum: float = 0.9) -> dict:
    """A threshold (as plain data) whose trials pass as given (width -> per-seed outcome, both criteria)."""
    trials = known_trials(passed)
    seeds = len(next(iter(passed.values())))
    th = Threshold(setting={"regime": regime, "data": "sphere", "n": n, "d": 8, "seeds": list(range(seeds)),
                            "max_width": 4096, "lambda_min_inf": 0.5},
                   m_star={}, predicted_steps=10, budget=40, quorum=quorum, trials=list(trials.values()))
    for c in CRITERIA:
        th.m_star[c] = next((t.width for t in sorted(th.trials, key=lambda t: t.width)
                             if t.fraction(c) >= quorum), None)
        th.checks[c] = {"first_pass": th.m_star[c], "failed_above": [], "checked_above": []}
    return th.to_dict()


def law(regime: str, factor: float, power: float, ns=(8, 16, 32, 64), seeds: int = 8) -> list[dict]:
    """Per-seed thresholds spread over two grid widths around factor n^power: half the seeds pass at
    the lower width, all at the upper."""
    out = []
    grid = width_grid(4096)
    for n in ns:
        j = int(np.argmin([abs(math.log(w / (factor * n ** power))) for w in grid]))
        lower, upper = grid[j - 1], grid[j]
        out.append(made_up(regime, n, {grid[j - 2]: [False] * seeds, lower: [True] * (seeds // 2) + [False] * (
            seeds - seeds // 2), upper: [True] * seeds, grid[j + 1]: [True] * seeds}))
    return out


def cfg_of(ns, regimes, d: int = 8) -> dict:
    return {**e2.config(quick=True), "series": [{"data": "sphere", "vary": "n", "ns": list(ns), "d": d,
                                                 "regimes": list(regimes)}]}


def made_results(weak: list[dict], joint: list[dict]) -> dict:
    ns = sorted({t["setting"]["n"] for t in weak + joint})
    return {"config": cfg_of(ns, ["weak", "joint"]), "thresholds": weak + joint}


def test_the_headline_says_how_the_advantage_changed_and_the_growths_compare():
    """The report once said 'Joint training needs 2.0x less width than weak at n = 64' without
    saying that the advantage fell from 4.0x at n = 8 and joint's exponent is larger."""
    results = made_results(law("weak", 16.0, 0.5), law("joint", 2.0, 0.8))
    found = e2.findings(results)
    head = found[0]
    assert head.headline and head.claim == "width" and head.verdict == "supported"
    assert "joint needs less width than weak" in head.sentence and "At n = 8 the ratio was" in head.sentence
    assert "so the advantage shrinks with n" in head.sentence
    diff = found[1]
    assert diff.rule == "comparison/difference" and "joint's m* grows faster with n than weak's" in diff.sentence
    assert diff.estimate.low > 0
    assert len(found) <= 5 and all(f.experiment == "E2" for f in found)


def test_overlapping_widths_are_indistinguishable_and_few_seeds_inconclusive():
    same = made_results(law("weak", 4.0, 0.6), law("joint", 4.0, 0.6))
    head = e2.findings(same)[0]
    assert head.verdict == "inconclusive" and "indistinguishable" in head.sentence
    few = made_results(law("weak", 16.0, 0.5, seeds=2), law("joint", 3.0, 0.5, seeds=2))
    head = e2.findings(few)[0]
    assert head.verdict == "inconclusive" and "too few" in head.sentence


def test_the_growth_finding_compares_with_the_proven_bounds():
    grow = next(f for f in e2.findings(made_results(law("weak", 16.0, 0.5), law("joint", 1.0, 1.0)))
                if f.rule == "growth/proven_bounds")
    assert grow.verdict == "supported" and "below the smallest proven exponent, n^2" in grow.sentence
    steep = next(f for f in e2.findings(made_results(law("weak", 0.05, 2.6, ns=(4, 8, 16)),
                                                      law("joint", 0.05, 2.6, ns=(4, 8, 16))))
                 if f.rule == "growth/proven_bounds")
    assert steep.verdict == "inconclusive" and "not every interval lies below" in steep.sentence


def test_tables_are_tidy_and_the_key_table_has_at_most_ten_columns():
    results = made_results(law("weak", 16.0, 0.5, ns=(8, 16)), law("joint", 3.0, 0.5, ns=(8, 16)))
    table = e2.tabulate(results)
    assert list(table.columns) == list(e2.TABLE_COLUMNS) and len(table) == 2 * 2 * len(CRITERIA)
    assert (table["quorum_low"] <= table["quorum_width"]).all()
    assert (table["quorum_width"] <= table["quorum_high"]).all()
    assert (table["bracket_low"] < table["m_star"]).all()
    widths = e2.tables(results)["widths"]
    assert list(widths.columns) == list(e2.WIDTH_COLUMNS) and (widths["rate"] == widths["reach"]).all()
    key = e2.key_table(results)
    assert len(key.columns) <= 10 and len(key) == 2 * len(CRITERIA)
    assert key.columns[4].startswith("weak m*") and "weak / joint [95% CI]" in key.columns
    summary = e2.summary(results)
    assert json.dumps(summary, allow_nan=False) and {"m_star", "exponent_n", "ratio", "difference"} <= set(summary)


def test_figures_follow_the_house_style(tmp_path):
    results = made_results(law("weak", 16.0, 0.5), law("joint", 2.0, 0.8))
    figs = e2.figures(results)
    assert set(figs) == {"m_star_vs_n", "width_ratio_vs_n", "success_vs_width"} <= set(e2.CAPTIONS)
    for name, fig in figs.items():
        assert style.check(fig, name) == []
    ax = figs["m_star_vs_n"].axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert any(t.get_text().startswith("weak: n^") for t in ax.get_legend().get_texts())


def test_the_protocol_runs_a_tiny_config_and_its_results_are_plain_data():
    assert json.loads(json.dumps(e2.config(quick=False)))["series"][2]["vary"] == "d"
    series = [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3},
              {"data": "sphere", "vary": "d", "n": 4, "ds": [2, 3]}]  # (n, d) = (4, 3) is in both: trained once
    cfg = {**e2.config(quick=True), "series": series, "seeds": 3, "max_width": 64}
    assert json.loads(json.dumps(cfg)) == cfg and all(isinstance(s, str) for s in e2.setup(cfg))
    seen: list[float] = []
    results = json.loads(json.dumps(e2.run(cfg, progress=lambda message, fraction: seen.append(fraction))))
    assert seen == sorted(seen) and seen[-1] == 1  # after each width, and after each of 2 x 3 distinct settings
    assert {round(6 * f, 9) for f in seen} >= set(range(1, 7))
    table = e2.tabulate(results)
    assert len(table) == 2 * 3 * 2 and set(table.regime) == {"weak", "joint"}
    summary = e2.summary(results)
    assert {"m_star", "exponent_n", "exponent_d"} <= set(summary) and json.dumps(summary, allow_nan=False)
    assert all(row["m_star"] is None or row["m_star"] >= 1 for row in summary["m_star"])
    assert e2.details(results) and all(isinstance(f.sentence, str) for f in e2.findings(results))
    figs = e2.figures(results)
    assert {"m_star_vs_n", "success_vs_width", "m_star_vs_d"} <= set(figs)
    for name, fig in figs.items():
        assert style.check(fig, name) == []
    with pytest.raises(AedynError, match="replaced"):
        e2.run({**cfg, "criteria": ["reach", "kernel"]})


def test_a_network_that_cannot_train_fails_instead_of_stopping_the_search():
    """n = 1: at small widths some seeds start with every ReLU dead (a zero NTK, so no lr='auto'):
    they count as failures ('untrainable'), and the search goes on."""
    r = least_width("joint", "sphere", 1, 4, seeds=8, criteria=["reach"], max_width=4)
    statuses = [s for t in r.trials for s in t.status]
    assert "untrainable" in statuses
    for t in r.trials:
        assert not any(p for s, p in zip(t.status, t.passed["reach"], strict=True) if s == "untrainable")


def test_a_series_can_ask_for_fewer_criteria_and_series_on_one_axis_merge():
    """Large n on reach alone (as the CUDA config does): those settings judge only reach, and
    the two n-series at the same d form one series for the fits, the table and the figures."""
    series = [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3},
              {"data": "sphere", "vary": "n", "ns": [16], "d": 3, "criteria": ["reach"]}]
    cfg = {**e2.config(quick=True), "series": series, "seeds": 2, "max_width": 64, "regimes": ["joint"]}
    results = e2.run(cfg)
    crit = {th["setting"]["n"]: set(th["m_star"]) for th in results["thresholds"]}
    assert crit == {4: {"reach", "lambda0"}, 8: {"reach", "lambda0"}, 16: {"reach"}}
    merged = e2._series(results)
    assert len(merged) == 1 and merged[0][0]["ns"] == [4, 8, 16] and len(merged[0][1]) == 3
    assert "criteria reach only" in " ".join(e2.setup(cfg))
    reach = [e for e in e2.summary(results)["exponent_n"] if e["criterion"] == "reach"]
    assert len(reach) == 1  # one growth for the merged series, not one per series


def test_a_series_can_add_regimes_and_other_series_do_not_show_them():
    """The decoder baseline on one series: its settings train it, and a series through the same
    setting without it neither plots nor fits it."""
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
