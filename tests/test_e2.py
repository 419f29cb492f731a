"""E2's threshold search: the width grid, the search, the criteria, and m* end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from aedyn.errors import AedynError
from aedyn.experiments.e2 import CRITERIA, MIN_BUDGET, judge, least_width, search, width_grid
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
