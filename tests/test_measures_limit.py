"""The ``limit`` and ``memorisation`` measures (aedyn.measures.limit) and their helpers, each against
an independent computation in float64: norms and projections in NumPy, the arc-cosine kernels from
``arccos`` by hand, linearised gradient descent iterated step by step, kernel regression by a dense
solve, the network's map from its weights by hand.

Tolerances: the hand kernels differ from the library's (``atan2`` angles, a series near antipodal
inputs) by a few ulps of their entries; the predictions inherit that times the kernel's condition
number (here below 100) and the step count (below 200), so about 1e-12 relative; the errors divide a
difference of two maps that agree to about 1e-2, which loses two more digits. Hence ``rel=1e-8`` on
errors and gaps, tighter where nothing cancels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aedyn.data import heldout_inputs
from aedyn.errors import AedynError
from aedyn.experiments import small_problems
from aedyn.job import Notes, TrainJob, run_job
from aedyn.measures import MEASURES
from aedyn.measures.limit import image_rows, limit, memorisation, noisy_copies, random_unit, relative_error, span_share


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Torch on one thread: at these sizes two threads only spin against each other on a shared machine."""
    with small_problems("cpu"):
        yield


def arccos_kernels(A: np.ndarray, B: np.ndarray, same: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """K0 and K1 of unit rows from ``arccos`` of the cosines (the angle of a row with itself set to 0
    exactly when ``same``, where ``arccos`` near 1 would lose half the digits)."""
    c = np.clip(A @ B.T, -1.0, 1.0)
    th = np.arccos(c)
    if same:
        np.fill_diagonal(th, 0.0)
        np.fill_diagonal(c, 1.0)
    return c * (np.pi - th) / (2 * np.pi), (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)


def regime_kernels(A: np.ndarray, B: np.ndarray, regime: str, same: bool = False) -> np.ndarray:
    K0, K1 = arccos_kernels(A, B, same)
    return K0 + K1 if regime == "joint" else K0


def by_hand(params, Z: np.ndarray) -> np.ndarray:
    """``alpha relu(Z W^T) V^T`` from the weights."""
    W, V = params.W.double().numpy(), params.V.double().numpy()
    return params.alpha * np.maximum(Z @ W.T, 0.0) @ V.T


# ---- helpers -------------------------------------------------------------------------------------

def test_relative_error_is_the_error_of_the_learned_change():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((5, 3)) for _ in range(3))
    want = np.sqrt(((a - b) ** 2).sum()) / np.sqrt(((b - c) ** 2).sum())
    got = relative_error(*(torch.tensor(x) for x in (a, b, c)))
    assert got == pytest.approx(want, rel=1e-13)  # two Frobenius norms, summed in another order
    z = torch.zeros(5, 3)
    assert math.isnan(relative_error(torch.tensor(a), z, z))  # nothing learned: no relative error
    assert math.isnan(relative_error(torch.full((5, 3), math.inf), torch.tensor(b), torch.tensor(c)))
    assert relative_error(torch.tensor(b), torch.tensor(b), torch.tensor(c)) == 0.0


def test_noisy_copies_add_noise_of_the_stated_size_and_renormalise():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 64))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = noisy_copies(torch.tensor(X), 0.3, seed=5).numpy()
    # the formula, in NumPy, on the same seeded Gaussian draw
    g = torch.randn((4000, 64), generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    raw = X + 0.3 * g / 8.0
    assert np.allclose(Y, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=0, atol=1e-15)
    # the size, from Y alone: Y = (x + e) / ||x + e||, so Y_perp / <Y, x> = e_perp / (1 + <e, x>), with
    # E||e_perp||^2 = 0.3^2 (d - 1) / d and E[(1 + u)^-2] = 1 + 3 var(u) + ..., var(u) = 0.3^2 / d
    along = (Y * X).sum(1)
    size = (((Y - along[:, None] * X) / along[:, None]) ** 2).sum(1)
    want = 0.09 * 63 / 64 * (1 + 3 * 0.09 / 64)
    se = 0.09 / 64 * math.sqrt(2 * 63) / math.sqrt(len(size))  # a scaled chi-square with 63 degrees of freedom
    assert abs(size.mean() - want) < 6 * se
    assert np.allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-14)
    assert not np.allclose(Y[:3], noisy_copies(torch.tensor(X[:3]), 0.3, seed=6).numpy())
    assert np.allclose(noisy_copies(torch.tensor(X[:3]), 0.0, seed=5).numpy(), X[:3], atol=1e-15)


def test_random_unit_vectors_are_unit_seeded_and_isotropic():
    like = torch.zeros(1, dtype=torch.float32)
    G = random_unit(5000, 8, seed=3, like=like)
    assert G.dtype == torch.float32 and G.shape == (5000, 8)
    G = G.double().numpy()
    assert np.allclose(np.linalg.norm(G, axis=1), 1.0, atol=1e-6)  # float32 rows
    # isotropic: E[g g^T] = I / d; each entry's mean over 5000 draws within 6 standard errors
    second = G.T @ G / len(G)
    assert np.abs(second - np.eye(8) / 8).max() < 6 * math.sqrt(2) / 8 / math.sqrt(5000)
    assert np.array_equal(G, random_unit(5000, 8, seed=3, like=like).double().numpy())


def test_span_share_is_the_energy_of_the_least_squares_projection():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 10))
    Y = rng.standard_normal((6, 10))
    Y[0] = 2 * X[0] - X[2]  # in the span
    Q, _ = np.linalg.qr(X.T)
    Y[1] = rng.standard_normal(10)
    Y[1] -= Q @ (Q.T @ Y[1])  # orthogonal to it
    Y[2] = 0.0
    coef, *_ = np.linalg.lstsq(X.T, Y.T, rcond=None)
    inside = (X.T @ coef).T
    want = (inside ** 2).sum(1) / np.where((Y ** 2).sum(1) > 0, (Y ** 2).sum(1), 1.0)
    want[2] = 1.0  # a zero row counts as in the span
    got = span_share(torch.tensor(Y), torch.tensor(X))
    assert np.allclose(got, want, atol=1e-12)
    assert got[0] == pytest.approx(1.0, abs=1e-12) and got[1] == pytest.approx(0.0, abs=1e-12)


def test_image_rows_are_plain_rounded_lists():
    rows = image_rows(torch.tensor([[0.1234567891, -2.0], [1e-9, 3.5]]))
    assert rows == [[0.123457, -2.0], [0.0, 3.5]] and all(type(v) is float for r in rows for v in r)


# ---- the limit measure ---------------------------------------------------------------------------

def limit_job(regime: str, zero: bool, steps: int, lr: float) -> TrainJob:
    return TrainJob(regime=regime, data="sphere", n=6, d=4, seed=3, data_seed=0, width=256, zero_output=zero,
                    lr=lr, steps=steps, target=0.0, record_every=steps + 1,
                    measures=({"name": "limit", "n": 8, "seed": 1},))


@pytest.mark.parametrize(("regime", "zero", "steps"), [("joint", False, 12), ("weak", True, 40), ("joint", True, 90)])
def test_limit_against_linearised_gd_iterated_by_hand(regime, zero, steps):
    """The trained network against the infinite-width prediction at the same step size and step
    count: the prediction by iterating ``U <- U - eta K (U - X)`` on the training outputs and
    ``U_Z <- U_Z - eta K(Z, X) (U - X)`` on the held-out ones, from the network's own ``f_0`` (or 0),
    with the kernels from ``arccos``; the network's map from its weights; the held-out inputs the
    sphere stream of seed 1."""
    X = TrainJob(data="sphere", n=6, d=4, data_seed=0).load(Notes()).numpy()
    K = regime_kernels(X, X, regime, same=True)
    eta = 0.5 / np.linalg.eigvalsh(K)[-1]
    job = limit_job(regime, zero, steps, float(eta))
    result = run_job(job)
    got = result.config["measures"]
    assert got == limit(result, torch.tensor(X), job, n=8, seed=1)  # what the job stored is the measure
    Z = heldout_inputs("sphere", torch.tensor(X), 8, seed=1).numpy()
    C = regime_kernels(Z, X, regime)
    f0X = np.zeros_like(X) if zero else by_hand(result.init, X)
    f0Z = np.zeros_like(Z) if zero else by_hand(result.init, Z)
    if zero:
        assert np.abs(by_hand(result.init, X)).max() < 1e-12  # the paired init starts at f_0 = 0
    U, UZ = f0X.copy(), f0Z.copy()
    for _ in range(steps):
        R = U - X
        U, UZ = U - eta * K @ R, UZ - eta * C @ R
    for name, Y, pred, start in (("train", X, U, f0X), ("heldout", Z, UZ, f0Z)):
        net = by_hand(result.params, Y)
        want = np.linalg.norm(net - pred) / np.linalg.norm(pred - start)
        assert got[f"error_{name}"] == pytest.approx(want, rel=1e-8), name
        assert got[f"scale_{name}"] == pytest.approx(np.linalg.norm(pred - start), rel=1e-10), name
        assert 0 < want < 0.5  # a wide network: close to its limit, not equal to it
    L = [0.5 * ((by_hand(p, X) - X) ** 2).sum() for p in (result.init, result.params)]
    assert got["loss_rel"] == pytest.approx(L[1] / L[0], rel=1e-10)


def test_limit_compares_the_trained_network_not_its_start():
    """With ``f_0 ≡ 0`` at step 0 the prediction is 0: there is nothing learned to compare with (NaN,
    stored as None); one step on, the error is finite."""
    result = run_job(limit_job("weak", True, 0, 0.1))
    assert result.config["measures"]["error_train"] is None and result.config["measures"]["scale_train"] == 0.0
    assert result.config["measures"]["loss_rel"] == 1.0  # L(0) / L(0)
    one = run_job(limit_job("weak", True, 1, 0.1))
    assert 0 < one.config["measures"]["error_train"] < 1 and "limit" in MEASURES


# ---- the memorisation measure --------------------------------------------------------------------

@pytest.fixture(scope="module")
def memorised():
    classes = (0, 3, 7)
    base = TrainJob(regime="joint", data="digits", per_class=1, classes=classes, seed=0, data_seed=0, width=256,
                    zero_output=True)
    X = base.load(Notes()).numpy()
    K = regime_kernels(X, X, "joint", same=True)
    eta = float(0.5 / np.linalg.eigvalsh(K)[-1])
    options = {"held_per_class": 2, "noise": 0.3, "random": 4, "input_seed": 1, "iterations": 6, "tol": 1e-3,
               "show": 2}
    job = TrainJob(regime="joint", data="digits", per_class=1, classes=classes, seed=0, data_seed=0, width=256,
                   zero_output=True, lr=eta, steps=3000, target=1e-8, record_every=3001,
                   measures=({"name": "memorisation", **options},))
    result = run_job(job)
    record = memorisation(result, torch.tensor(X), job, **options)["memorisation"]
    return job, result, X, K, options, record


def test_memorisation_against_kernel_regression_and_the_weights_by_hand(memorised):
    """Per input kind: the converged predictor is kernel regression ``K(Z, X) K^{-1} X`` (``f_0 ≡ 0``),
    solved densely here; the network's outputs come from its weights; the in-span shares from a
    least-squares projection; the nearest training samples from every distance; the gap from the two
    outputs."""
    _, result, X, K, options, rec = memorised
    assert result.status == "converged"
    n = len(X)
    assert rec["iterations"] == options["iterations"] and rec["train_labels"] == [0, 3, 7]
    assert np.allclose(rec["train_images"], X, atol=5e-7)  # rounded to 6 digits
    held = heldout_inputs("digits", torch.tensor(X), per_class=2, seed=1, classes=(0, 3, 7)).numpy()
    assert held.shape == (6, 64) and not (held[:, None, :] == X[None]).all(2).any()
    inputs = {"held-out": held, "noisy": noisy_copies(torch.tensor(X), 0.3, 1).numpy(),
              "random": random_unit(4, 64, 2, torch.tensor(X)).numpy()}
    coef = np.linalg.solve(K, X)
    for kind, Z in inputs.items():
        e = rec["kinds"][kind]
        assert e["count"] == len(Z)
        pred = regime_kernels(Z, X, "joint") @ coef
        net = by_hand(result.params, Z)
        for name, out in (("network", net), ("predictor", pred)):
            share = _share(out, X)
            assert np.allclose(e[name]["in_span"], share, atol=1e-9), (kind, name)
            dist = np.linalg.norm(out[:, None, :] - X[None], axis=2)
            assert e[name]["nearest_index"] == list(dist.argmin(1)), (kind, name)
            assert np.allclose(e[name]["nearest_distance"], dist.min(1), rtol=1e-8), (kind, name)
            assert np.allclose(e[name]["output_norm"], np.linalg.norm(out, axis=1), rtol=1e-9), (kind, name)
            assert np.allclose(e[name]["input_distance"], np.linalg.norm(out - Z, axis=1), rtol=1e-8)
        assert min(e["predictor"]["in_span"]) > 1 - 1e-10  # kernel combinations of the training samples
        gap = np.linalg.norm(net - pred, axis=1) / np.linalg.norm(pred, axis=1)
        assert np.allclose(e["network_vs_predictor"], gap, rtol=1e-7), kind
        assert np.allclose(e["input_in_span"], _share(Z, X), atol=1e-9)
        own = np.linalg.norm(Z[:, None, :] - X[None], axis=2)
        assert e["input_nearest_index"] == list(own.argmin(1)) and np.allclose(e["input_nearest_distance"],
                                                                                 own.min(1), rtol=1e-12)
        # the network's iterates by hand: their norm after the iterations
        z = Z.copy()
        for _ in range(options["iterations"]):
            z = by_hand(result.params, z)
        assert np.allclose(rec["images"][kind]["network_iterate"], z[:2], atol=5e-7)
        assert np.allclose(rec["images"][kind]["input"], Z[:2], atol=5e-7)
        assert np.allclose(rec["images"][kind]["predictor"], pred[:2], atol=5e-7)
    assert rec["kinds"]["noisy"]["source"] == list(range(n))
    assert rec["kinds"]["held-out"]["labels"] == [0, 0, 3, 3, 7, 7]


def _share(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(X.T, Y.T, rcond=None)
    inside = (X.T @ coef).T
    return (inside ** 2).sum(1) / (Y ** 2).sum(1)


def test_memorisation_needs_digits_drawn_per_class(memorised):
    _, result, X, *_ = memorised
    other = TrainJob(regime="joint", data="sphere", n=3, d=64, width=512, zero_output=True)
    with pytest.raises(AedynError, match="digits drawn per class"):
        memorisation(result, torch.tensor(X), other)
