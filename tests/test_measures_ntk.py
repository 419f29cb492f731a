"""The ``ntk_ends`` measure (aedyn.measures.ntk) and the row of a run that declares it, against
independent computations: the NTK from autograd's Jacobian of the network written out by hand, the
movements and the activation patterns from the initial and final weights, and hand-made NTK records
for the ends of the run (a last check before the stop, one check only, a kernel that is not
positive definite, values that are not numbers)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aedyn.experiments import small_problems
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.measures.ntk import ntk_ends
from aedyn.sweep import result_row, run_id


def _network_output(W, V, X, alpha):
    """The autoencoder written out on its own (docs/math/model.md): ``alpha * relu(X W^T) V^T``."""
    return alpha * torch.relu(X @ W.mT) @ V.mT


def _theta_autograd(W, V, X, alpha, regime):
    """``Theta = J J^T`` from autograd's Jacobian of ``vec f(X)`` (rows (sample, coordinate))
    with respect to the trained parameters: independent of :mod:`aedyn.ntk`."""
    jac = torch.func.jacrev(_network_output, argnums=(0, 1))(W, V, X, alpha)
    n, d = X.shape
    parts = [jac[0].reshape(n * d, -1)] + ([jac[1].reshape(n * d, -1)] if regime == "joint" else [])
    J = torch.cat(parts, dim=1)
    return J @ J.mT


def _trained(regime):
    """Two networks (seeds 3 and 4) trained side by side as one batch, as an experiment's seeds are:
    each must be measured from its own parameters."""
    jobs = [TrainJob(regime=regime, data="sphere", n=5, d=3, seed=seed, data_seed=0, width=48, lr="auto", steps=500,
                     target=1e-6, record_every=5, ntk_every=50, measures=("ntk_ends",)) for seed in (3, 4)]
    with small_problems("cpu"):  # one thread: many times faster on a shared machine
        results = run_batch(jobs)
    return jobs, results, jobs[0].load(Notes())


@pytest.mark.parametrize("regime", ["weak", "joint"])
def test_ntk_ends_and_the_row_match_independent_computations(regime):
    """Each trained run of a batch: ``ntk_ends`` and the row's columns against the same quantities recomputed
    from its initial and final weights: the NTK's extremes, its drift and the ratio of its least
    eigenvalues from autograd's Jacobian at step 0 and at the stopping step (dense eigenvalues of an
    independently summed ``J J^T``); the movements as norms by hand, the patterns from the signs of
    ``X W^T``; the step size ``1/lambda_max(Theta(0))``. Float64 throughout: the drift is a ratio of
    Frobenius norms of O(1) sums (rounding ~1e-14, held to 1e-10); eigenvalues move by at most
    ``||dTheta||_2 ~ 1e-15 lambda_max`` under a different summation order, and the least one is
    checked to be above ``1e-3 lambda_max`` here, so 1e-8 relative holds them with room; ``lr`` is
    ``1/lambda_max`` from Lanczos to its tolerance (1e-6)."""
    jobs, results, X = _trained(regime)
    for job, result in zip(jobs, results, strict=True):
        _check_one(regime, job, result, X)


def _check_one(regime, job, result, X):
    assert result.status in ("converged", "max_steps") and result.steps > 2  # stopped at the target or the budget
    ends = ntk_ends(result, X, job)
    row = result_row(run_id(job), job, result)
    assert {k: row[k] for k in ends} == ends  # the measure's columns join the row as they are
    W0, V0, W, V = result.init.W, result.init.V, result.params.W, result.params.V
    alpha = result.init.alpha
    T0, TT = _theta_autograd(W0, V0, X, alpha, regime), _theta_autograd(W, V, X, alpha, regime)
    ev0, evT = torch.linalg.eigvalsh(T0), torch.linalg.eigvalsh(TT)
    assert float(ev0[0]) > 1e-3 * float(ev0[-1]) and float(evT[0]) > 1e-3 * float(evT[-1])
    assert ends["ntk_checked_at"] == result.steps and ends["ntk_drift_method"] == "exact"
    drift = float((TT - T0).norm() / T0.norm())
    assert ends["ntk_drift_at_stop"] == pytest.approx(drift, rel=1e-10) and drift > 1e-3
    for key, value in (("lambda_min0", ev0[0]), ("lambda_max0", ev0[-1]), ("lambda_minT", evT[0]),
                       ("lambda_maxT", evT[-1]), ("lambda_min_ratio", evT[0] / ev0[0])):
        assert ends[key] == pytest.approx(float(value), rel=1e-8), key
    assert ends["lambda_minT"] != pytest.approx(ends["lambda_min0"], rel=1e-6)  # the kernel moved: T is not 0

    loss = float(0.5 * (_network_output(W, V, X, alpha) - X).square().sum())
    assert row["final_loss"] == pytest.approx(loss, rel=1e-9)
    assert row["lr"] == pytest.approx(1 / float(ev0[-1]), rel=1e-6)  # lr="auto"
    rel = 1e-10
    assert row["weight_change_W"] == pytest.approx(float((W - W0).norm() / W0.norm()), rel=rel)
    assert row["max_neuron_change_W"] == pytest.approx(float((W - W0).norm(dim=1).max()), rel=rel)
    flips = float(((X @ W.mT > 0) != (X @ W0.mT > 0)).double().mean())
    assert row["pattern_flips"] == pytest.approx(flips, abs=1e-15) and flips > 0
    if regime == "joint":
        assert row["weight_change_V"] == pytest.approx(float((V - V0).norm() / V0.norm()), rel=rel)
        assert row["max_neuron_change_V"] == pytest.approx(float((V - V0).norm(dim=0).max()), rel=rel)
    else:
        assert torch.equal(V, V0) and row["weight_change_V"] is None


def _fake(steps, at, low, high, drift, method="exact"):
    """A run's NTK records as gradient descent leaves them (what ``ntk_ends`` reads)."""
    metrics = {} if at is None else {"ntk_step": np.asarray(at), "ntk_lambda_min": np.asarray(low, dtype=float),
                                     "ntk_lambda_max": np.asarray(high, dtype=float),
                                     "ntk_drift": np.asarray(drift, dtype=float)}
    return SimpleNamespace(metrics=metrics, steps=steps, config={"ntk_drift_method": method})


def test_ntk_ends_takes_the_stop_only_from_a_check_at_the_stop():
    """Checks at steps 0, 50, 100: a run that stopped at 100 has its kernel at the stop (the last
    check); one that stopped at 120 has none there (``None``), though the ratio of the least
    eigenvalues still reads the last check. The ratio is the hand quotient 0.1 / 0.25."""
    low, high, drift = [0.25, 0.15, 0.1], [2.0, 2.1, 2.2], [0.0, 0.1, 0.3]
    at_stop = ntk_ends(_fake(100, [0, 50, 100], low, high, drift), None, None)
    assert at_stop == {"lambda_min0": 0.25, "lambda_max0": 2.0, "ntk_checked_at": 100, "lambda_minT": 0.1,
                       "lambda_maxT": 2.2, "ntk_drift_at_stop": 0.3, "lambda_min_ratio": pytest.approx(0.4),
                       "ntk_drift_method": "exact"}
    before = ntk_ends(_fake(120, [0, 50, 100], low, high, drift, method="probe"), None, None)
    assert before["ntk_checked_at"] == 100 and before["ntk_drift_method"] == "probe"
    assert before["lambda_minT"] is None and before["lambda_maxT"] is None and before["ntk_drift_at_stop"] is None
    assert before["lambda_min0"] == 0.25 and before["lambda_min_ratio"] == pytest.approx(0.4)


def test_ntk_ends_without_a_ratio_or_a_value():
    """One check: no ratio (nothing moved between checks), though the stop may be that check; a
    ``Theta(0)`` that is not positive definite: no ratio; a value that is not a number: ``None``;
    a run without NTK records: every value ``None``."""
    one = ntk_ends(_fake(0, [0], [0.3], [1.0], [0.0]), None, None)
    assert one["lambda_min_ratio"] is None and one["lambda_minT"] == 0.3 and one["ntk_checked_at"] == 0
    for first in (0.0, -1e-3, math.nan):
        out = ntk_ends(_fake(10, [0, 10], [first, 0.2], [1.0, math.inf], [0.0, 0.2]), None, None)
        assert out["lambda_min_ratio"] is None and out["lambda_minT"] == 0.2, first
        assert out["lambda_maxT"] is None  # not finite
    assert ntk_ends(_fake(10, [0, 10], [0.5, math.nan], [1.0, 1.0], [0.0, 0.2]), None, None)[
        "lambda_min_ratio"] is None
    bare = ntk_ends(_fake(10, None, None, None, None, method=None), None, None)
    assert set(bare.values()) == {None}
