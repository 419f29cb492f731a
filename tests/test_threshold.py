"""The width search (aedyn.threshold): the grid, the search and its check, the criteria as judged
from store rows, the budget under both step rules, the rounds through a runner and its store
(resume, Dask), and m* end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aedyn.data import load_data
from aedyn.errors import AedynError, MemoryRefusal
from aedyn.experiments import e2
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.measures.ntk import ntk_path
from aedyn.threshold import (
    CRITERIA,
    MIN_BUDGET,
    Threshold,
    Trial,
    WidthSearch,
    judge,
    least_width,
    least_widths,
    search,
    width_grid,
)
from conftest import known_trials, one_error_line, run_cli


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
    """A run's store row with the ntk_path measure, from a stand-in result."""
    loss = np.asarray(loss, dtype=float)
    r = SimpleNamespace(loss=loss, status=status, steps=len(loss) - 1, lr=lr,
                        metrics={"ntk_lambda_min": np.asarray(lam_min), "ntk_lambda_max": np.array([lam_max])})
    return {"status": status, "steps": r.steps, "lr": lr, **ntk_path(r, None, None)}


def test_judge_applies_each_criterion_as_stated():
    """eta = 0.5, lambda_min(Theta(0)) = 0.2, lambda_0 = 0.3: lambda0 needs lambda_min(Theta(t)) >= 0.15
    throughout; rate (a column) needs the loss below the half-rate line 0.9^k and the target."""
    good = result(0.9 ** np.arange(30), lam_min=(0.2, 0.16, 0.15))  # on the half-rate line, at lambda_0/2
    slow = result(0.95 ** np.arange(30), lam_min=(0.2, 0.2))  # reaches, above the half-rate line
    budget = result(0.9 ** np.arange(30), status="max_steps", lam_min=(0.2, 0.09))  # kernel fell, no target
    singular = result(0.5 ** np.arange(30), lam_min=(1e-12, 1.0))
    trial = judge([good, slow, budget, singular, {"status": "untrainable"}], width=8, seeds=[0, 1, 2, 3, 4],
                  criteria=CRITERIA, lambda_0=0.3)
    assert trial.passed == {"reach": (True, True, False, True, False), "lambda0": (True, True, False, False, False)}
    assert trial.rate_held == (True, False, False, False, False)
    assert trial.kernel_ratio[:3] == pytest.approx((0.75, 1.0, 0.45)) and math.isnan(trial.kernel_ratio[3])
    assert trial.status[4] == "untrainable" and trial.fraction("reach") == pytest.approx(0.6, abs=1e-12)
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


def test_too_many_seeds_or_an_impossible_budget_is_refused_before_anything_is_made():
    """Seeds beyond any seed, more seeds than memory holds (the seeds' list, jobs and rows
    included) and a step budget beyond what a run can count are refused up front, each naming what
    to lower; the memory refusal is the first width's, before any training."""
    with pytest.raises(AedynError, match="seeds must be <= 9223372036854775808"):
        WidthSearch("joint", "sphere", 4, 4, seeds=99999999999999999999, max_width=16)
    with pytest.raises(MemoryRefusal, match=r"first width \(m = 4: 100000 seeds side by side.*run records") as info:
        WidthSearch("joint", "sphere", 4, 4, seeds=100_000, max_width=16, max_memory=100 << 20)
    assert "fewer seeds" in str(info.value)
    with pytest.raises(AedynError, match=r"beyond what a run can count.*lower budget_factor"):
        WidthSearch("joint", "sphere", 4, 4, seeds=1, max_width=16, budget_factor=1e300)
    with pytest.raises(MemoryRefusal, match="loss history"):
        WidthSearch("joint", "sphere", 4, 4, seeds=1, max_width=16, budget_factor=1e12, max_memory=1 << 30)


@pytest.mark.parametrize("target", ["0", "2", "1", "-1"])
def test_a_target_outside_zero_one_is_refused_with_the_same_range_every_time(target, capsys):
    code, _, err = run_cli(["threshold", "--n", "4", "--d", "4", "--max-width", "16", "--seeds", "1", "--target",
                            target], capsys)
    assert code == 2 and one_error_line(err) and "must be in (0, 1)" in err


def test_threshold_refusals_name_only_its_own_options(capsys):
    for args in (["--seeds", "1", "--max-memory", "1KB"], ["--seeds", "1000000000"],
                 ["--seeds", "99999999999999999999"], ["--seeds", "1", "--budget-factor", "1e300"]):
        code, _, err = run_cli(["threshold", "--n", "4", "--d", "4", "--max-width", "16", *args], capsys)
        assert code == 2 and one_error_line(err), args
        assert "--width," not in err and "--steps" not in err and "internal error" not in err, args
    assert "--max-width" in run_cli(["threshold", "--n", "4", "--d", "4", "--max-width", "16", "--seeds", "1",
                                     "--max-memory", "1KB"], capsys)[2]


def test_threshold_json_is_strict_json_where_seeds_could_not_train(capsys):
    """n = 1: seeds that cannot start have no step size or eigenvalues (NaN inside): the JSON has
    null there, never a bare NaN or Infinity."""
    code, stdout, _ = run_cli(["threshold", "--regime", "joint", "--n", "1", "--d", "4", "--seeds", "8",
                               "--criterion", "reach", "--max-width", "4", "--json", "-q"], capsys)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    record = json.loads(stdout, parse_constant=refuse)
    assert code == 0 and any(v is None for t in record["trials"] for v in t["lr"])


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
    cfg = {**e2.config(quick=True), "series": [{"data": "sphere", "vary": "n", "ns": [16], "d": 4,
                                                "regimes": ["weak"]}]}
    key = e2.key_table({"config": cfg, "thresholds": [r.to_dict()]})
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



def test_a_network_that_cannot_train_fails_instead_of_stopping_the_search():
    """n = 1: at small widths some seeds start with every ReLU dead (a zero NTK, so no lr='auto'):
    they count as failures ('untrainable'), and the search goes on."""
    r = least_width("joint", "sphere", 1, 4, seeds=8, criteria=["reach"], max_width=4)
    statuses = [s for t in r.trials for s in t.status]
    assert "untrainable" in statuses
    for t in r.trials:
        assert not any(p for s, p in zip(t.status, t.passed["reach"], strict=True) if s == "untrainable")




def test_layerwise_steps_are_each_blocks_own_top_eigenvalue():
    """lr_decoder='auto': the encoder's step is 1/lambda_max(J_W J_W^T) and the decoder's
    1/lambda_max(J_V J_V^T), the NTK's blocks from autograd Jacobians (dense, float64); Lanczos
    stops at relative tolerance 1e-4, so they agree to 1e-3."""
    from aedyn.gd import train
    from aedyn.model import Params, forward, init_params

    X = load_data("sphere", n=5, d=3, seed=1)
    p = init_params(3, 16, regime="joint", seed=2)

    def block(which: str) -> float:
        def f(T):
            q = Params(T, p.V, p.alpha) if which == "W" else Params(p.W, T, p.alpha)
            return forward(q, X, "joint").reshape(-1)
        J = torch.autograd.functional.jacobian(f, p.W if which == "W" else p.V).reshape(15, -1)
        return float(torch.linalg.eigvalsh(J @ J.T)[-1])

    r = train(X, p, "joint", lr="auto", lr_decoder="auto", steps=3)
    assert r.lr == pytest.approx(1 / block("W"), rel=1e-3)
    assert r.lr_decoder == pytest.approx(1 / block("V"), rel=1e-3)
    assert r.lr != pytest.approx(r.lr_decoder, rel=1e-2)  # the two blocks differ: the test can tell them apart
    with pytest.raises(AedynError, match="layer-wise"):
        train(X, init_params(3, 16, regime="weak"), "weak", lr="auto", lr_decoder="auto")


def test_the_layerwise_budget_is_linearised_gd_on_the_normalised_blocks():
    s = WidthSearch("joint", "sphere", 6, 4, seeds=1, criteria=["reach"], max_width=16, step_rule="layerwise")
    X = load_data("sphere", n=6, d=4, seed=0)
    KW, KV = regime_kernel(X, "weak"), regime_kernel(X, "decoder")
    op = KW / float(torch.linalg.eigvalsh(KW)[-1]) + KV / float(torch.linalg.eigvalsh(KV)[-1])
    assert s.predicted == LinearisedGD(op, 1.0).steps_to(-X, 1e-6, covariance=init_output_kernel(X))
    assert all(j.lr_decoder == "auto" for j in s.jobs(8))
    with pytest.raises(AedynError, match="regime joint"):
        WidthSearch("weak", "sphere", 6, 4, step_rule="layerwise")


def test_a_search_replays_its_rounds_from_the_store_and_dask_rows_equal_local_rows(tmp_path):
    """Rerun with the same store, the search trains nothing and finds the same m*; a search on a
    two-worker Dask cluster stores the same rows as a local one (timing columns aside)."""
    from aedyn.store import Store
    from aedyn.sweep import Runner

    options = dict(seeds=2, criteria=["reach"], max_width=32)
    with Runner(tmp_path / "local") as runner:
        first = least_width("joint", "sphere", 6, 3, runner=runner, **options)
        assert runner.trained > 0 and runner.read == 0
    with Runner(tmp_path / "local") as runner:
        again = least_width("joint", "sphere", 6, 3, runner=runner, **options)
        assert runner.trained == 0 and runner.read == sum(len(t.seeds) for t in first.trials)
    assert json.dumps(again.to_dict()) == json.dumps(first.to_dict())  # NaN (singular kernels) included
    with Runner(tmp_path / "dask", executor="dask", workers=2) as runner:
        on_dask = least_widths([WidthSearch("joint", "sphere", 6, 3, **options),
                                WidthSearch("weak", "sphere", 6, 3, **options)], runner=runner)
    assert on_dask[0].m_star == first.m_star
    timing = ["wall_time"]
    local = Store.open(tmp_path / "local").load().set_index("run_id").drop(columns=timing)
    dask = Store.open(tmp_path / "dask").load().set_index("run_id").drop(columns=timing)
    shared = local.index.intersection(dask.index)
    assert len(shared) == len(local)
    left, right = local.loc[shared].sort_index(), dask.loc[shared].sort_index()
    for column in left.columns:
        a, b = left[column].tolist(), right[column].tolist()
        if left[column].dtype.kind == "f":
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-10, equal_nan=True)
        elif column not in ("loss_curve", "loss_steps"):
            assert a == b, column
