"""E2's threshold search: the width grid, the search and its check, the criteria, the estimates,
the findings, and m* end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from aedyn.errors import AedynError
from aedyn.experiments import e2, style
from aedyn.threshold import CRITERIA, Threshold, width_grid
from conftest import known_trials


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


NS = (8, 16, 32, 64, 128, 256)


def test_the_headline_says_how_the_advantage_changed_and_the_growths_compare():
    """The report once said 'Joint training needs 2.0x less width than weak at n = 64' without
    saying that the advantage fell from 4.0x at n = 8 and joint's exponent is larger. Now the
    headline states the ratio at the largest n, the trend over the whole range and its upper half,
    and the ratio at the smallest n."""
    results = made_results(law("weak", 16.0, 0.5), law("joint", 2.0, 0.8))
    found = e2.findings(results)
    head = found[0]
    assert head.headline and head.claim == "width" and head.rule == "advantage/trend"
    assert head.verdict == "supported" and "joint needs less width than weak at the largest n" in head.sentence
    assert "at n = 8 it was 4x" in head.sentence and "over the whole range" in head.sentence
    assert len(found) <= 5 and all(f.experiment == "E2" for f in found)


def test_the_advantage_that_shrank_into_the_noise_is_not_called_gone():
    wide = (*NS, 512, 1024)
    shrank = e2.findings(made_results(law("weak", 16.0, 0.5, ns=wide), law("joint", 2.0, 0.8, ns=wide)))[0]
    assert shrank.verdict == "partly supported"
    assert "can no longer be told from none" in shrank.sentence and "it shrank with n" in shrank.sentence
    assert "over n = 128..1024" in shrank.sentence and "over the whole range" in shrank.sentence
    assert "vanish" not in shrank.sentence and "extrapolat" not in shrank.sentence
    # over n = 8..256 the upper half (64..256, three points) cannot tell the trend: no "shrank", however clear
    # the whole range is
    unsure = e2.findings(made_results(law("weak", 16.0, 0.5, ns=NS), law("joint", 2.0, 0.8, ns=NS)))[0]
    assert unsure.verdict == "inconclusive" and "shrank" not in unsure.sentence
    parallel = e2.findings(made_results(law("weak", 16.0, 0.5, ns=NS), law("joint", 3.0, 0.5, ns=NS)))[0]
    assert parallel.verdict == "supported" and "the intervals cannot tell" in parallel.sentence
    more = e2.findings(made_results(law("weak", 2.0, 0.5, ns=NS), law("joint", 16.0, 0.5, ns=NS)))[0]
    assert more.verdict == "not supported" and "joint needs more width than weak" in more.sentence


def test_a_meeting_point_is_given_only_where_the_upper_half_says_the_laws_approach_and_named_an_extrapolation():
    ns = (*NS, 512)
    results = made_results(law("weak", 64.0, 0.3, ns=ns), law("joint", 1.0, 0.8, ns=ns))
    head = e2.findings(results)[0]
    meeting = e2.analyse(results).meeting[(0, "sphere", "reach")]
    assert meeting is not None and meeting.low > 512
    assert "an extrapolation, not a measurement" in head.sentence and "would meet at n = " in head.sentence
    summary = e2.summary(results)
    assert summary["meeting"] and all(m["extrapolation"] for m in summary["meeting"])
    assert any("extrapolated beyond the data" in line for line in e2.details(results))
    parallel = made_results(law("weak", 16.0, 0.5, ns=NS), law("joint", 3.0, 0.5, ns=NS))
    assert e2.analyse(parallel).meeting[(0, "sphere", "reach")] is None
    assert "extrapolat" not in e2.findings(parallel)[0].sentence


def test_the_verdict_is_checked_under_both_step_rules():
    weak, joint = law("weak", 16.0, 0.5, ns=NS), law("joint", 3.0, 0.5, ns=NS)
    layer = law("joint", 14.0, 0.5, ns=NS)  # layer-wise steps: about weak's width
    for th in layer:
        th["setting"]["step_rule"] = "layerwise"
    cfg = cfg_of(NS, ["weak", "joint"])
    cfg["series"].append({**cfg["series"][0], "step_rule": "layerwise"})
    found = e2.findings({"config": cfg, "thresholds": weak + joint + layer})
    head, other = found[0], found[1]
    assert head.verdict == "supported" and "not demonstrably under layer-wise steps" in head.sentence
    assert "layer-wise steps" in head.key and other.subject.endswith("layer-wise steps")
    assert other.verdict == "inconclusive" and not other.headline
    both = e2.findings({"config": cfg, "thresholds": weak + joint + [
        {**th, "setting": {**th["setting"], "step_rule": "layerwise"}} for th in law("joint", 3.0, 0.5, ns=NS)]})[0]
    assert "holds under both step rules" in both.sentence


def test_overlapping_widths_are_indistinguishable_and_few_seeds_inconclusive():
    same = made_results(law("weak", 4.0, 0.6), law("joint", 4.0, 0.6))
    head = e2.findings(same)[0]
    assert head.verdict == "inconclusive" and "can no longer be told from none" in head.sentence
    few = made_results(law("weak", 16.0, 0.5, seeds=2), law("joint", 3.0, 0.5, seeds=2))
    head = e2.findings(few)[0]
    assert head.verdict == "inconclusive" and "too few" in head.sentence


def test_the_growth_finding_compares_with_the_proven_bounds():
    grow = next(f for f in e2.findings(made_results(law("weak", 16.0, 0.5), law("joint", 1.0, 1.0)))
                if f.rule == "growth/proven_bounds")
    assert grow.verdict == "supported" and "below the smallest proven exponent, n^2" in grow.sentence
    assert "over n = 32..64" in grow.sentence and "At n = 64, m* is weak" in grow.sentence
    steep = next(f for f in e2.findings(made_results(law("weak", 0.05, 2.6, ns=(4, 8, 16)),
                                                      law("joint", 0.05, 2.6, ns=(4, 8, 16))))
                 if f.rule == "growth/proven_bounds")
    assert steep.verdict == "inconclusive" and "not every interval of weak's and joint's lies below" in steep.sentence


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
    assert key.columns[4] == "joint's steps" and key.columns[5].startswith("weak m*")
    assert "weak / joint [95% CI]" in key.columns
    summary = e2.summary(results)
    assert json.dumps(summary, allow_nan=False) and {"m_star", "exponent_n", "ratio", "difference", "exponent_n_upper",
                                                             "difference_upper", "meeting"} <= set(summary)


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
    assert json.loads(json.dumps(e2.config(quick=False)))["series"][-1]["vary"] == "d"
    series = [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3},
              {"data": "sphere", "vary": "d", "n": 4, "ds": [2, 3]}]  # (n, d) = (4, 3) is in both: trained once
    cfg = {**e2.config(quick=True), "series": series, "seeds": 3, "max_width": 64}
    assert json.loads(json.dumps(cfg)) == cfg and all(isinstance(s, str) for s in e2.setup(cfg))
    seen: list[float] = []
    results = json.loads(json.dumps(e2.run(cfg, progress=lambda message, fraction: seen.append(fraction))))
    assert seen == sorted(seen) and seen[-1] == 1  # after each width: the share of the 2 x 3 searches finished
    assert {round(6 * f, 9) for f in seen} <= set(range(7))
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
