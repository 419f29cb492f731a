"""The measures of the trained map and weights (:mod:`aedyn.measures.maps`, shared by E3, E5 and
E6): the formulas on hand-built cases and by Monte Carlo, and the ``heldout`` and ``weights``
columns of trained networks against the same quantities computed here with NumPy alone (a hand
forward pass, per-row loops, dense least squares), each network from its own seed.

Tolerances. Every value is a ratio of float64 norms and inner products over at most a few hundred
terms of order one; computed in another summation order (NumPy here, torch there) they differ by a
few units of 1e-16 relative, more only where a difference cancels (``beyond_c``,
``rescale_distance``: at most by the inverse of the value, here above 1e-3). ``rel=1e-9`` keeps
four orders of magnitude above that and far below any formula error (a factor, a sign, the other
network's weights move the values by percents)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.measures.maps import best_scalar, expected_identity_gap, heldout_set, identity_gap, rescaling
from aedyn.model import Params, forward, init_params
from aedyn.sweep import result_row, run_id

REL = 1e-9


def test_best_scalar_and_rescaling_on_hand_built_cases():
    """best_scalar: F = 2 Z + E with E orthogonal to Z row by row gives c = 2 exactly, every c_i = 2,
    beyond_c = ||E|| / ||F||; rescaling: W = 3 W0 gives (3, 0), and W = 3 W0 + P with P orthogonal
    to W0 gives (3, ||P|| / ||W||)."""
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    E = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    E -= (E * Z).sum(1, keepdim=True) / Z.square().sum(1, keepdim=True) * Z
    F = 2 * Z + E
    m = best_scalar(F, Z)
    assert m["c"] == pytest.approx(2, rel=1e-14) and m["c_std"] < 1e-14
    assert m["c_min"] == pytest.approx(2, rel=1e-14) and m["c_max"] == pytest.approx(2, rel=1e-14)
    assert m["beyond_c"] == pytest.approx(float(E.norm() / F.norm()), rel=1e-13)
    assert m["error"] == pytest.approx(float((Z + E).norm() / Z.norm()), rel=1e-13)
    assert math.isnan(best_scalar(torch.zeros_like(Z), Z)["beyond_c"])  # nothing beyond c z of a zero map: undefined
    W0 = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    assert rescaling(3 * W0, W0) == pytest.approx((3.0, 0.0), abs=1e-14)
    P = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    P -= (P * W0).sum() / W0.square().sum() * W0
    c, dist = rescaling(3 * W0 + P, W0)
    assert c == pytest.approx(3, rel=1e-13) and dist == pytest.approx(float(P.norm() / (3 * W0 + P).norm()), rel=1e-12)


def test_initial_tied_map_against_the_scaled_identity_by_monte_carlo():
    """Physics: over 200 tied initialisations (aedyn's own), the mean of f0_gap^2 is (2d + 3)/m
    (independent of kappa and alpha: the mean-field network of a seed gives the same gap) within 4
    Monte Carlo standard errors. A gap measured against alpha m kappa^2 x (no 1/2) would be about 1;
    one with the wrong alpha would not be scale-free. (This test alone cannot tell 2d + 3 from
    2d + 2, 3 standard errors apart here: the next one can.)"""
    d, m, kappa, seeds = 5, 128, 0.7, 200
    Z = sphere(40, d, seed=1)
    W = torch.stack([init_params(d, m, regime="tied", seed=s, kappa=kappa).W for s in range(seeds)])
    gaps = {}
    for alpha in (1 / math.sqrt(m), 1 / m):
        F0 = forward(Params(W, None, alpha), Z, "tied")  # seeds x 40 x d
        gaps[alpha] = torch.tensor([identity_gap(F, Z, alpha, m, kappa) for F in F0])
    torch.testing.assert_close(gaps[1 / m], gaps[1 / math.sqrt(m)], rtol=1e-12, atol=0)
    sq = gaps[1 / m].square()
    se = float(sq.std() / math.sqrt(seeds))
    assert abs(float(sq.mean()) - expected_identity_gap(d, m) ** 2) < 4 * se


def test_the_expected_gap_is_2d_plus_3_over_m_against_an_independent_monte_carlo():
    """A mutant ``sqrt((2d+2)/m)`` once passed the tests. For a unit x and a tied network
    f_0(x) = alpha sum_r w_r s(w_r . x), w_r ~ N(0, kappa^2 I), a = alpha m kappa^2 / 2: per neuron
    E||w s(w.x)||^2 = kappa^4 (d + 2)/2 (E[g^4; g > 0] = 3/2 along x, E[g^2; g > 0] = 1/2 times d - 1
    across) and E[w s(w.x)] = kappa^2 x / 2, so

        E||f_0(x) - a x||^2 = alpha^2 (m kappa^4 (d+2)/2 + m (m-1) kappa^4/4) - 2 a alpha m kappa^2/2 + a^2
                            = (2d + 3) alpha^2 m kappa^4 / 4,   i.e. (2d + 3)/m relative to a^2.

    Drawn here with NumPy alone (no aedyn code) over 200,000 networks of m = 4 neurons in d = 3:
    (2d+3)/m = 2.25 against the mutant's 2.0, 11% apart, while the Monte Carlo standard error of
    the mean is about 0.01 (0.5%). The tolerance, 4 standard errors, is met by the true value (a
    4-sigma miss has probability 6e-5) and the mutant is more than 8 standard errors away, which
    the test asserts too, so it misses the tolerance by at least 4 standard errors."""
    rng = np.random.default_rng(0)
    d, m, kappa, N = 3, 4, 0.7, 200_000
    x = rng.standard_normal(d)
    x /= np.linalg.norm(x)
    for alpha in (1 / math.sqrt(m), 1 / m):
        W = kappa * rng.standard_normal((N, m, d))
        f = alpha * (W * np.maximum(W @ x, 0.0)[..., None]).sum(axis=1)  # (N, d)
        a = alpha * m * kappa ** 2 / 2
        sq = ((f - a * x) ** 2).sum(axis=1) / a ** 2
        mean, se = float(sq.mean()), float(sq.std(ddof=1) / math.sqrt(N))
        right, mutant = expected_identity_gap(d, m) ** 2, (2 * d + 2) / m
        assert abs(mean - right) < 4 * se
        assert abs(right - mutant) > 8 * se  # the test's power against the mutant
        for i in range(3):  # identity_gap measures the same quantity on these networks (one input, Z = x)
            gap = identity_gap(torch.from_numpy(f[i:i + 1]), torch.from_numpy(x[None]), alpha, m, kappa)
            assert gap ** 2 == pytest.approx(float(sq[i]), rel=1e-10)


# ---- the measures' columns on trained networks -----------------------------------------------------

def _map(W: np.ndarray, V: np.ndarray | None, alpha: float, Z: np.ndarray) -> np.ndarray:
    """``f(Z) = alpha relu(Z W^T) V^T`` row by row with ``V = W^T`` when tied, by a hand loop over rows."""
    dec = W.T if V is None else V  # d x m
    return np.stack([alpha * dec @ np.maximum(W @ z, 0.0) for z in Z])


def _best_scalar(F: np.ndarray, Z: np.ndarray) -> dict[str, float]:
    """``c`` by dense least squares on the flattened matrices, the per-row ``c_i`` by a loop."""
    c = float(np.linalg.lstsq(Z.reshape(-1, 1), F.reshape(-1), rcond=None)[0][0])
    ci = np.array([f @ z / (z @ z) for f, z in zip(F, Z, strict=True)])
    return {"c": c, "c_std": float(np.sqrt(np.mean((ci - ci.mean()) ** 2))), "c_min": float(ci.min()),
            "c_max": float(ci.max()), "beyond_c": float(np.linalg.norm(F - c * Z) / np.linalg.norm(F)),
            "error": float(np.linalg.norm(F - Z) / np.linalg.norm(Z))}


@pytest.mark.parametrize("regime", ["tied", "joint"])
@pytest.mark.parametrize("scale", ["ntk", "mean-field"])
def test_heldout_and_weights_columns_against_numpy_on_trained_networks(regime, scale):
    """Two networks trained as one batch (seeds 3 and 4, kappa = 0.7), each row against NumPy on
    that network's own weights: the initial ones drawn again from its seed, the final ones the
    trainer's (tied to its own loss through ``train_error^2 = 2 L_T / ||X||^2``), the held-out
    sphere points the stream of the measure's seed (``sphere(n, d, seed)``, as E5 drew them before)."""
    n, d, m, kappa, n_test, held_seed = 6, 3, 24, 0.7, 9, 5
    jobs = [TrainJob(regime=regime, data="sphere", n=n, d=d, width=m, kappa=kappa, init_scale=scale, seed=s,
                     data_seed=2, steps=40, lr="auto", measures=("weights", {"name": "heldout", "n": n_test,
                                                                                "seed": held_seed}))
            for s in (3, 4)]
    results = run_batch(jobs)
    X = sphere(n, d, seed=2).numpy()
    Z = sphere(n_test, d, seed=held_seed).numpy()
    alpha = 1 / math.sqrt(m) if scale == "ntk" else 1 / m
    for job, result in zip(jobs, results, strict=True):
        row = result_row(run_id(job), job, result)
        init = init_params(d, m, regime=regime, seed=job.seed, kappa=kappa, scale=scale)
        W0, V0 = init.W.numpy(), None if init.V is None else init.V.numpy()
        W, V = result.params.W.numpy(), None if result.params.V is None else result.params.V.numpy()
        assert not np.allclose(W, W0)  # training moved it: initial and final weights are told apart
        F, F0, FX, FX0 = _map(W, V, alpha, Z), _map(W0, V0, alpha, Z), _map(W, V, alpha, X), _map(W0, V0, alpha, X)
        test, train = _best_scalar(F, Z), _best_scalar(FX, X)
        a = alpha * m * kappa ** 2 / 2
        expected = {
            "n_test": n_test, "heldout_error": test["error"], "c": test["c"], "c_std": test["c_std"],
            "c_min": test["c_min"], "c_max": test["c_max"], "beyond_c": test["beyond_c"],
            "initial_heldout_error": float(np.linalg.norm(F0 - Z) / np.linalg.norm(Z)),
            "train_error": train["error"], "train_c": train["c"],
            "initial_train_error": float(np.linalg.norm(FX0 - X) / np.linalg.norm(X)),
            "f0_gap": float(np.linalg.norm(F0 - a * Z) / np.linalg.norm(a * Z)),
            "f0_gap_expected": math.sqrt((2 * d + 3) / m)}
        moved = [np.linalg.norm(w - w0) for w, w0 in zip(W, W0, strict=True)]
        c_w = float(np.linalg.lstsq(W0.reshape(-1, 1), W.reshape(-1), rcond=None)[0][0])
        expected.update({
            "max_neuron_rel_W": max(r / np.linalg.norm(w0) for r, w0 in zip(moved, W0, strict=True)),
            "max_neuron_change_W_rel": max(moved) / (kappa * math.sqrt(d)),
            "rescale_c": c_w, "rescale_distance": float(np.linalg.norm(W - c_w * W0) / np.linalg.norm(W)),
            "rescale_c_identity": math.sqrt(2 / (alpha * m * kappa ** 2))})
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=REL, abs=1e-12), key
        assert row["train_error"] == pytest.approx(math.sqrt(2 * row["final_loss"]) / np.linalg.norm(X), rel=REL)
        assert row["max_neuron_change_W_rel"] * kappa * math.sqrt(d) == pytest.approx(row["max_neuron_change_W"],
                                                                                      rel=REL)


def test_the_heldout_inputs_are_not_training_inputs():
    """Digits: ``n`` normalised digits none of which is a training row; sphere: the stream of the
    measure's seed, which is what E5 held out before the measure existed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the normalisation note
        job = TrainJob(regime="tied", data="digits", n=4, width=8, seed=0, steps=2)
        X = job.load(Notes())
    Z = heldout_set(X, job, n=12, per_class=None, seed=1)
    assert Z.shape == (12, 64) and not bool((Z[:, None, :] == X[None]).all(-1).any())
    assert torch.allclose(Z.norm(dim=1), torch.ones(len(Z), dtype=torch.float64))
    assert len({tuple(z.tolist()) for z in Z}) == 12
    job = TrainJob(regime="tied", data="sphere", n=5, d=3, width=8, seed=0, steps=2)
    S = heldout_set(sphere(5, 3, seed=0), job, n=12, per_class=None, seed=1)
    assert torch.equal(S, sphere(12, 3, seed=1))


def test_weights_near_the_float_limit_measure_as_at_a_normal_scale():
    """The movement and rescaling columns are scale-free (``max_neuron_change_W_rel`` divides by
    ``kappa``): a network and the same one scaled by 1e-200 (or 1e200) give the same numbers, where
    unscaled norms would underflow (inf, NaN) or overflow."""
    from aedyn.gd import TrainResult
    from aedyn.measures.maps import weights

    init = init_params(3, 16, regime="joint", seed=1)
    moved = Params(init.W * 1.3 + 0.01 * torch.randn(init.W.shape, dtype=torch.float64,
                                                       generator=torch.Generator().manual_seed(0)), init.V, init.alpha)
    rows = {}
    for factor in (1.0, 1e-200, 1e200):
        result = TrainResult.__new__(TrainResult)
        result.init = Params(init.W * factor, init.V, init.alpha)
        result.params = Params(moved.W * factor, moved.V, moved.alpha)
        rows[factor] = weights(result, None, TrainJob(data="sphere", n=4, d=3, width=16, kappa=factor))
    for factor in (1e-200, 1e200):
        rows[factor]["rescale_c_identity"] *= factor  # sqrt(2 / (alpha m kappa^2)) scales with 1 / kappa
        for key, value in rows[1.0].items():
            assert math.isfinite(rows[factor][key]), (factor, key)
            assert rows[factor][key] == pytest.approx(value, rel=1e-12), (factor, key)
    assert rescaling(moved.W * 1e-200, init.W * 1e-200)[0] == pytest.approx(rescaling(moved.W, init.W)[0], rel=1e-12)
