"""Infinite-width kernels against Monte Carlo, exact special cases and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aedyn.errors import AedynError
from aedyn.kernels import k0, k1, kernel_spectrum, regime_kernel


def test_k0_k1_match_monte_carlo():
    """10^6 Gaussian w; each entry within 5 Monte Carlo standard errors (sample std / sqrt(N))."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(5, 4, generator=gen, dtype=torch.float64) * torch.tensor([[0.5], [1.0], [2.0], [1.0], [3.0]],
                                                                               dtype=torch.float64)
    X[3] = -0.7 * X[0] + 0.05 * X[1]  # a near-antipodal pair
    N = 1_000_000
    w = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    Z = w @ X.T  # N x n
    A, D = torch.relu(Z), (Z > 0).double()
    for i in range(5):
        for j in range(5):
            s1 = A[:, i] * A[:, j]
            s0 = (X[i] @ X[j]) * D[:, i] * D[:, j]
            for samples, kern in ((s1, k1(X)), (s0, k0(X))):
                se = float(samples.std()) / math.sqrt(N)
                assert abs(float(samples.mean()) - float(kern[i, j])) <= 5 * se + 1e-15, (i, j)


def test_special_cases_exact():
    x = torch.tensor([[3.0, 4.0, 0.0]], dtype=torch.float64)  # |x| = 5
    y_orth = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    X = torch.cat([x, -0.5 * x, y_orth])
    K0, K1 = k0(X), k1(X)
    # identical inputs: theta = 0, K0 = K1 = |x|^2 / 2
    assert float(K0[0, 0]) == 12.5 and float(K1[0, 0]) == 12.5
    # antipodal: theta = pi, both vanish
    assert float(K0[0, 1]) == 0.0 and float(K1[0, 1]) == 0.0
    # orthogonal: K0 = 0, K1 = |x||y| / (2 pi)
    assert float(K0[0, 2]) == 0.0
    assert float(K1[0, 2]) == pytest.approx(10 / (2 * math.pi), rel=1e-15)


def test_identical_inputs_given_separately_are_accurate():
    """Y a copy of X: Kahan's angle is exactly 0, so both kernels give |x|^2 / 2 to rounding."""
    X = torch.randn(20, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    half_sq = 0.5 * X.square().sum(1)
    for kern in (k0, k1):
        torch.testing.assert_close(kern(X, X.clone()).diagonal(), half_sq, rtol=1e-14, atol=0)


@pytest.mark.parametrize("angle", [1e-12, 1e-9, 1e-6, math.pi - 1e-9, math.pi - 1e-6])
def test_near_parallel_and_antipodal_match_high_precision(angle):
    """Against the closed forms evaluated at 50 digits with the exact angle (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    X = torch.tensor([[1.0, 0.0], [math.cos(angle), math.sin(angle)]], dtype=torch.float64)
    # the angle the float64 inputs really have, at 50 digits
    t = mpmath.atan2(mpmath.mpf(float(X[1, 1])), mpmath.mpf(float(X[1, 0])))
    c = mpmath.mpf(float(X[1, 0]))
    exact_k0 = float(c * (mpmath.pi - t) / (2 * mpmath.pi))
    exact_k1 = float((mpmath.sin(t) + (mpmath.pi - t) * mpmath.cos(t)) / (2 * mpmath.pi))
    assert float(k1(X)[0, 1]) == pytest.approx(exact_k1, rel=1e-12, abs=1e-30)
    assert float(k0(X)[0, 1]) == pytest.approx(exact_k0, rel=1e-12, abs=1e-30)


def test_zero_input_is_safe():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.equal(k1(X)[0], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(k0(X)[0], torch.zeros(2, dtype=torch.float64))


finite = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 5)), elements=finite))
def test_kernels_symmetric_and_psd(X):
    X = torch.from_numpy(X)
    for kern in (k0(X), k1(X), regime_kernel(X, "joint", kappa=0.7, nu=1.3)):
        assert torch.isfinite(kern).all()
        torch.testing.assert_close(kern, kern.T, rtol=1e-13, atol=1e-13)
        scale = max(float(kern.abs().max()), 1e-300)
        assert float(torch.linalg.eigvalsh(kern)[0]) >= -1e-10 * scale


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=finite),
       st.floats(0.1, 10))
def test_homogeneity(X, c):
    """K1 scales with the norms, K0 with the inner product: both are 2-homogeneous in x."""
    X = torch.from_numpy(X)
    torch.testing.assert_close(k1(c * X), c * c * k1(X), rtol=1e-9, atol=1e-9 * c * c)
    torch.testing.assert_close(k0(c * X), c * c * k0(X), rtol=1e-9, atol=1e-9 * c * c)


def test_regime_kernels_and_cross_kernels():
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    Y = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(regime_kernel(X, "weak", nu=2.0), 4.0 * k0(X))
    torch.testing.assert_close(regime_kernel(X, "decoder", kappa=3.0), 9.0 * k1(X))
    torch.testing.assert_close(regime_kernel(X, "joint", Y=Y), k0(X, Y) + k1(X, Y))
    full = k1(torch.cat([X, Y]))
    torch.testing.assert_close(k1(X, Y), full[:6, 6:], rtol=1e-13, atol=1e-13)
    with pytest.raises(AedynError, match="tied"):
        regime_kernel(X, "tied")
    with pytest.raises(AedynError, match="share d"):
        k0(X, torch.ones(2, 4))


def test_kernel_spectrum_values():
    X = torch.randn(9, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True)
    s = kernel_spectrum(X, "joint")
    assert s.lambda_0 == pytest.approx(float(torch.linalg.eigvalsh(k0(X))[0]), rel=1e-12)
    assert s.mu_0 == pytest.approx(float(torch.linalg.eigvalsh(k1(X))[0]), rel=1e-12)
    ev = torch.linalg.eigvalsh(k0(X) + k1(X))
    assert s.condition_number == pytest.approx(float(ev[-1] / ev[0]), rel=1e-12)
    # K0 and K1 are both PSD, so the joint kernel's least eigenvalue is at least lambda_0 + mu_0
    assert s.lambda_min >= s.lambda_0 + s.mu_0 - 1e-12
