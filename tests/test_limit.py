"""NTK-limit predictions: exact linearised GD, kernel prediction, agreement with wide networks,
the zero-output initialisation and the memorisation measures."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynError, AedynWarning
from aedyn.gd import train
from aedyn.kernels import regime_kernel
from aedyn.limit import (
    LinearisedGD,
    NTKPredictor,
    _phi,
    energy_outside_span,
    memorisation,
    nearest_training_sample,
)
from aedyn.model import forward, init_params


@pytest.fixture
def problem():
    X = sphere(10, 5, seed=0)
    K = regime_kernel(X, "joint")
    R0 = torch.randn(10, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return X, K, R0


def test_linearised_gd_equals_iterating_the_recursion(problem):
    _, K, R0 = problem
    eta = 0.9 / float(torch.linalg.eigvalsh(K)[-1])
    lin = LinearisedGD(K, eta)
    R = R0.clone()
    curve = lin.loss_curve(R0, 60)
    for k in range(61):
        torch.testing.assert_close(lin.residual(R0, k), R, rtol=1e-11, atol=1e-13)
        assert curve[k] == pytest.approx(0.5 * float(R.square().sum()), rel=1e-11)
        R = R - eta * K @ R
    ev = torch.linalg.eigvalsh(K)
    assert lin.contraction == pytest.approx(float((1 - eta * ev).abs().max()), rel=1e-12)
    # the loss contracts per step by at most contraction^2
    assert np.all(curve[1:] <= lin.contraction ** 2 * curve[:-1] * (1 + 1e-12))


def test_linearised_gd_warns_when_eta_too_large(problem):
    _, K, _ = problem
    with pytest.warns(AedynWarning, match="diverge"):
        LinearisedGD(K, 2.5 / float(torch.linalg.eigvalsh(K)[-1]))
    with pytest.raises(AedynError, match="eta"):
        LinearisedGD(K, -1.0)


def test_prediction_on_training_inputs_is_X_plus_linearised_residual(problem):
    """f_k(X) = f_0(X) + K K^{-1} (I - (I - eta K)^k)(X - f_0(X)) = X + R(k)."""
    X, K, _ = problem
    p = init_params(5, 64, seed=3)
    f0 = lambda Z: forward(p, Z, "joint")  # noqa: E731
    eta = 0.5 / float(torch.linalg.eigvalsh(K)[-1])
    R0 = f0(X) - X
    for steps in (0, 1, 17, 500):
        pred = NTKPredictor(X, "joint", f0=f0, eta=eta, steps=steps)
        torch.testing.assert_close(pred(X), X + LinearisedGD(K, eta).residual(R0, steps), rtol=1e-10, atol=1e-12)
    converged = NTKPredictor(X, "joint", f0=f0)
    torch.testing.assert_close(converged(X), X, rtol=1e-10, atol=1e-10)
    assert math.isfinite(converged.condition_number) and converged.dropped == 0


def test_phi_is_accurate_for_tiny_and_zero_eigenvalues():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    lam = torch.tensor([0.0, 1e-300, 1e-14, 1e-8, 0.3, 1.9], dtype=torch.float64)
    eta, k = 1.0, 250
    phi, dropped = _phi(lam, eta, k, 1e-12)
    for value, got in zip(lam.tolist(), phi.tolist(), strict=True):
        if value < 1e-200:
            exact = k * eta
        else:
            x = mpmath.mpf(value)
            exact = float((1 - (1 - eta * x) ** k) / x)
        assert got == pytest.approx(exact, rel=1e-12)
    assert dropped == 0


def test_singular_kernel_never_gives_nan():
    X = sphere(6, 3, seed=2)
    X[5] = X[0]  # duplicate sample: K is singular
    with warnings.catch_warnings():
        warnings.simplefilter("error", AedynWarning)
        finite_k = NTKPredictor(X, "joint", eta=0.1, steps=1000)  # no warning: phi_k is finite
    assert torch.isfinite(finite_k(X)).all()
    with pytest.warns(AedynWarning, match="singular"):
        pred = NTKPredictor(X, "joint")
    assert pred.dropped >= 1 and torch.isfinite(pred.coefficients).all()
    torch.testing.assert_close(pred(X), X, rtol=1e-8, atol=1e-8)  # duplicates share a target: still interpolates


def test_wide_network_follows_the_ntk_prediction():
    """GD with a small step on joint networks of growing width against the infinite-width
    linearised prediction (same f_0). The finite-width NTK deviates from K ⊗ I by about
    sqrt(d/m) in relative terms, so on held-out inputs we ask for 3 sqrt(d/m) at m = 2^14 and a
    decreasing error; on training inputs both interpolate the same targets, so the error is far
    smaller (< 0.01)."""
    X, Xn = sphere(10, 5, seed=0), sphere(6, 5, seed=1)
    K = regime_kernel(X, "joint")
    eta, steps = 0.5 / float(torch.linalg.eigvalsh(K)[-1]), 200
    errors = {}
    for m in (2**10, 2**12, 2**14):
        e_train, e_new = [], []
        for seed in range(2):
            p = init_params(5, m, seed=seed)
            f0 = lambda Z, p=p: forward(p, Z, "joint")  # noqa: E731
            net = train(X, p, "joint", lr=eta, steps=steps, target=0.0).params
            pred = NTKPredictor(X, "joint", f0=f0, eta=eta, steps=steps)
            for Z, store in ((X, e_train), (Xn, e_new)):
                moved = forward(net, Z, "joint") - f0(Z)
                store.append(float((forward(net, Z, "joint") - pred(Z)).norm() / moved.norm()))
        errors[m] = (np.mean(e_train), np.mean(e_new))
    assert errors[2**14][1] < 3 * math.sqrt(5 / 2**14)
    assert errors[2**14][0] < 0.01
    assert errors[2**10][1] > errors[2**12][1] > errors[2**14][1]


def test_zero_output_initialisation():
    X = sphere(7, 4, seed=0)
    for m in (64, 65):
        p = init_params(4, m, seed=1, zero_output=True)
        # the pairs cancel exactly in exact arithmetic; a blocked GEMM leaves rounding of the terms
        terms = p.alpha * (torch.relu(X @ p.W.T).abs() @ p.V.abs().T)
        assert float((forward(p, X, "joint").abs() / terms).max()) < 1e-13
        assert torch.equal(p.W[: m // 2], p.W[m // 2: 2 * (m // 2)])
        assert torch.equal(p.V[:, : m // 2], -p.V[:, m // 2: 2 * (m // 2)])
        assert float(p.W[: m // 2].std()) == pytest.approx(1.0, abs=0.2)
    with pytest.raises(AedynError, match="tied"):
        init_params(4, 8, regime="tied", zero_output=True)


def test_energy_outside_span_and_nearest():
    E = torch.eye(4, dtype=torch.float64)
    X_train = E[:2]
    Y = torch.stack([E[0] + E[2], E[1], 2 * E[3], torch.zeros(4, dtype=torch.float64)])
    share = energy_outside_span(Y, X_train)
    torch.testing.assert_close(share, torch.tensor([0.5, 0.0, 1.0, 0.0], dtype=torch.float64))
    dist, idx = nearest_training_sample(Y, X_train)
    assert idx[1] == 1 and float(dist[1]) == 0.0 and float(dist[0]) == pytest.approx(1.0)


def test_memorisation_fates():
    E = torch.eye(3, dtype=torch.float64)
    X_train = E[:2]
    x = (E[0] + E[2]) / math.sqrt(2)
    Z = x[None, :]
    snap = memorisation(lambda z: z.norm(dim=1, keepdim=True) * E[0], Z, X_train, iterations=5)
    assert snap.fate == ["training sample 0"] and snap.fate_counts() == {"training sample": 1}
    assert snap.outside_span[0] == pytest.approx(0.0, abs=1e-15)
    assert memorisation(lambda z: 2 * z, Z, X_train, iterations=60).fate == ["diverged"]
    assert memorisation(lambda z: 0.5 * z, Z, X_train, iterations=60).fate == ["zero"]
    proj = memorisation(lambda z: (z @ E[0])[:, None] * E[0], Z, X_train, iterations=3)
    assert proj.fate == ["fixed point"]
    identity = memorisation(lambda z: z, Z, X_train, iterations=3)
    assert identity.fate == ["fixed point"] and identity.input_distance[0] == 0.0
    assert identity.outside_span[0] == pytest.approx(0.5)
    assert identity.iterate_nearest.shape == (4, 1)


def test_converged_ntk_map_with_zero_init_memorises_span():
    """With f_0 ≡ 0 the converged NTK map sends every input into the span of the training samples."""
    X_train = sphere(5, 12, seed=0)
    X_new = sphere(8, 12, seed=1)
    pred = NTKPredictor(X_train, "joint")
    snap = memorisation(pred, X_new, X_train, iterations=20)
    assert np.all(snap.outside_span < 1e-20)
