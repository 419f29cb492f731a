"""Infinite-width kernels against Monte Carlo, exact special cases and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aedyn.data import sphere
from aedyn.errors import AedynError
from aedyn.kernels import k0, k1, kernel_spectrum, regime_kernel
from aedyn.model import init_params
from aedyn.ntk import NTKOperator

KAPPA, NU = 0.6, 1.7  # distinct encoder and decoder scales: kappa = nu = 1 cannot tell them apart


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


def test_regime_kernels_with_distinct_kappa_nu_match_monte_carlo():
    """The regime kernels are the random-feature expectations that define them, at kappa != nu.

    With ``w ~ N(0, kappa^2 I_d)`` and a decoder entry ``v ~ N(0, nu^2)`` (independent)::

        weak     E[v^2 (x_i.x_j) 1{w.x_i>0} 1{w.x_j>0}]                       = nu^2 K0
        decoder  E[relu(w.x_i) relu(w.x_j)]                                    = kappa^2 K1
        joint    E[v^2 (x_i.x_j) 1{w.x_i>0} 1{w.x_j>0} + relu(w.x_i) relu(w.x_j)] = nu^2 K0 + kappa^2 K1

    4e5 samples; each of the 21 distinct entries within 5 Monte Carlo standard errors (the
    standard error of the per-sample sum, so the covariance of the two joint terms is included).
    Measured over 30 sampling seeds: the largest |z| over the 21 entries has median 1.7-1.8 and
    maximum 3.1 (all regimes). Mutants of ``_combine`` (max |z| at this seed): joint with kappa and
    nu swapped 1332, ``kappa`` for ``kappa**2`` 130, ``nu`` for ``nu**2`` 113, even a 10% error
    in either weight 20-29; weak ``kappa**2 K0`` 248, ``nu K0`` 117; decoder ``nu**2 K1`` 2009,
    ``kappa K1`` 192. (At kappa = nu = 1 every one of them is invisible.)"""
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(40), dtype=torch.float64)
    X = X * torch.tensor([[0.5], [1.0], [2.0], [1.0], [1.5], [1.0]], dtype=torch.float64)
    X[3] = -0.7 * X[0] + 0.05 * X[1]  # near-antipodal to row 0
    X[5] = 1.3 * X[1] + 0.2 * X[2]  # a small angle to row 1
    N = 400_000
    w = KAPPA * torch.randn(N, 4, generator=gen, dtype=torch.float64)
    v2 = (NU * torch.randn(N, generator=gen, dtype=torch.float64)).square()
    Z = w @ X.T
    A, D = torch.relu(Z), (Z > 0).double()
    dot = X @ X.T
    # first and second moments of the per-sample terms s0 = v^2 dot D_i D_j and s1 = A_i A_j
    m0 = dot * ((D * v2[:, None]).T @ D) / N
    m1 = A.T @ A / N
    q00 = dot.square() * ((D * v2.square()[:, None]).T @ D) / N
    q11 = A.square().T @ A.square() / N
    q01 = dot * ((A * v2[:, None]).T @ A) / N  # E[s0 s1]: A_i A_j is nonzero only where D_i D_j = 1
    moments = {"weak": (m0, q00), "decoder": (m1, q11), "joint": (m0 + m1, q00 + 2 * q01 + q11)}
    for regime, (mean, second) in moments.items():
        se = ((second - mean.square()) / N).sqrt()
        z = (mean - regime_kernel(X, regime, kappa=KAPPA, nu=NU)).abs() / se
        assert float(z.max()) <= 5, (regime, float(z.max()))


# mean + 5 sd over 40 init seeds of ||K_m - K_reg||_F / ||K_reg||_F at m = 2^16 (see below)
_WIDE_KERNEL_TOL = {"weak": 0.016, "joint": 0.015, "decoder": 0.021}


@pytest.mark.parametrize("regime", ["weak", "joint", "decoder"])
def test_averaged_finite_width_ntk_matches_regime_kernel_at_large_width(regime):
    """The coordinate-averaged finite-width NTK (``NTKOperator.averaged_kernel``) of a network
    initialised with kappa = 0.6, nu = 1.7 against ``regime_kernel`` at m = 2^16, n = 8, d = 5.

    It deviates like 1/sqrt(m): measured ||K_m - K_reg||_F / ||K_reg||_F over 40 init seeds is
    weak 6.2e-3 +- 1.9e-3 (max 1.03e-2), joint 5.9e-3 +- 1.8e-3 (max 9.8e-3), decoder
    9.1e-3 +- 2.4e-3 (max 1.40e-2), i.e. 1.5-2.3 / sqrt(m). Tolerance: mean + 5 sd (table above).
    Mutants of ``_combine`` (this statistic, this seed): weak ``kappa**2 K0`` 7.0, ``nu K0`` 0.70;
    joint swapped 0.40, ``kappa`` for ``kappa**2`` 0.086, ``nu`` for ``nu**2`` 0.56,
    1.1 nu^2 K0 0.083; decoder ``nu**2 K1`` 0.88, ``kappa K1`` 0.40. A 10% error in the joint K1
    weight (0.016 here, 0.014 on average) is at this resolution; the Monte Carlo test catches it."""
    X = sphere(8, 5, seed=30)
    K_m = NTKOperator(init_params(5, 2**16, kappa=KAPPA, nu=NU, seed=31), X, regime).averaged_kernel()
    K_reg = regime_kernel(X, regime, kappa=KAPPA, nu=NU)
    err = float((K_m - K_reg).norm() / K_reg.norm())
    assert err < _WIDE_KERNEL_TOL[regime], err


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




@pytest.mark.parametrize("phi", [1e-4, 3e-3, 0.0099, 0.01, 0.0101, 0.02, 0.1, 0.5, 0.999999, 1.0, 1.000001, 1.5,
                                 3.0])
def test_k1_k0_on_both_sides_of_the_series_cutoff(phi):
    """K1 and K0 at pi - theta = phi against mpmath (50 digits) at the float64 inputs' exact angle
    and norms, on both sides of the series cutoff (phi = 1) of ``sin(phi) - phi cos(phi)`` and
    across the old cutoff (0.01), where the direct form lost up to 5.9e-12 relative.

    Measured: at most 2.2 ulps (5e-16) for ``sin(phi) - phi cos(phi)`` over 4000 angles in
    [1e-8, pi]; tolerance 1e-14 (45 ulps, room for the angle and the norms). A coefficient c_k's
    share of K1 is ``3 c_k phi^(2k-2)``, largest just below phi = 1: a relative change delta of
    1/3, 1/30, 1/840, 1/45360 moves K1 by about delta, 0.1 delta, 4e-3 delta, 1.3e-4 delta there
    (1/30 -> 1/20 is 5e-2: fails); terms k >= 9 are below the tolerance by design (their share is
    4e-16 and 1.2e-18). A cutoff lowered back to 0.01 fails at phi = 0.0101 (5.9e-12).
    K0 has no cancellation: at most 2 ulps measured, tolerance 1e-14 everywhere."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    X = torch.tensor([[1.0, 0.0], [-math.cos(phi), math.sin(phi)]], dtype=torch.float64)
    a = [mpmath.mpf(float(v)) for v in X[0]]
    b = [mpmath.mpf(float(v)) for v in X[1]]
    t = mpmath.atan2(b[1], b[0]) - mpmath.atan2(a[1], a[0])  # the angle the float64 inputs really have
    norms = mpmath.sqrt(a[0] ** 2 + a[1] ** 2) * mpmath.sqrt(b[0] ** 2 + b[1] ** 2)
    exact_k0 = (a[0] * b[0] + a[1] * b[1]) * (mpmath.pi - t) / (2 * mpmath.pi)
    exact_k1 = norms * (mpmath.sin(t) + (mpmath.pi - t) * mpmath.cos(t)) / (2 * mpmath.pi)
    got_k1, got_k0 = float(k1(X)[0, 1]), float(k0(X)[0, 1])
    assert abs(got_k1 - float(exact_k1)) <= 1e-14 * abs(float(exact_k1)), float((got_k1 - exact_k1) / exact_k1)
    assert abs(got_k0 - float(exact_k0)) <= 1e-14 * abs(float(exact_k0)), float((got_k0 - exact_k0) / exact_k0)


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
    from aedyn.kernels import check_kernel_options, tied_ntk_limit

    torch.testing.assert_close(regime_kernel(X, "tied", kappa=0.5), tied_ntk_limit(X, kappa=0.5), rtol=0, atol=0)
    assert regime_kernel(X, "tied", Y=Y).shape == (6 * 3, 4 * 3)
    for refuse in (lambda: kernel_spectrum(X, "tied"), lambda: check_kernel_options("tied")):
        with pytest.raises(AedynError, match=r"regime_kernel\(X, 'tied'\).*TiedNTKLimit"):
            refuse()
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


@pytest.mark.parametrize("regime", ["weak", "joint", "decoder"])
def test_kernel_spectrum_with_distinct_kappa_nu(regime):
    """kernel_spectrum's regime kernel is nu^2 K0 (weak), nu^2 K0 + kappa^2 K1 (joint),
    kappa^2 K1 (decoder), built here from k0 and k1 directly (the Monte Carlo test checks that
    formula). Both sides are eigvalsh of the same matrix up to rounding (1e-12); the mutants of
    ``_combine`` move lambda_min by 0.24% (joint 1.1 kappa^2 K1) to 700% (decoder nu^2 K1)."""
    X = sphere(9, 4, seed=4)
    K = {"weak": NU**2 * k0(X), "joint": NU**2 * k0(X) + KAPPA**2 * k1(X), "decoder": KAPPA**2 * k1(X)}[regime]
    ev = torch.linalg.eigvalsh(K)
    s = kernel_spectrum(X, regime, kappa=KAPPA, nu=NU)
    assert s.lambda_min == pytest.approx(float(ev[0]), rel=1e-12)
    assert s.lambda_max == pytest.approx(float(ev[-1]), rel=1e-12)
    torch.testing.assert_close(regime_kernel(X, regime, kappa=KAPPA, nu=NU), K, rtol=1e-13, atol=0)


def test_init_output_kernel_is_the_covariance_of_the_initial_outputs():
    """E[f_0(x)_j f_0(y)_j] over initialisations (exact at any width, Gaussian and Rademacher
    decoders alike) against nu^2 kappa^2 K1: 4000 networks x 3 coordinates, each entry within 5
    Monte Carlo standard errors."""
    from aedyn.kernels import init_output_kernel
    from aedyn.model import forward, init_params

    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    Sigma = init_output_kernel(X, kappa=KAPPA, nu=NU)
    for decoder_init in ("gaussian", "rademacher"):
        outs = torch.stack([forward(init_params(3, 16, seed=s, kappa=KAPPA, nu=NU, decoder_init=decoder_init), X)
                            for s in range(4000)])  # seeds x n x d
        samples = torch.einsum("sia,sja->saij", outs, outs).reshape(-1, 4, 4)
        mean, se = samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])
        assert bool(((mean - Sigma).abs() <= 5 * se + 1e-12).all()), (decoder_init, mean, Sigma)
    assert torch.equal(init_output_kernel(X, kappa=KAPPA, nu=0.0), torch.zeros(4, 4, dtype=torch.float64))


def test_tied_ntk_limit_matches_monte_carlo_and_wide_networks():
    """Every entry against the expectation it is defined by, E_w[J_i(w) J_j(w)^T] with
    J_i(w) = relu(w.x_i) I + 1{w.x_i>0} w x_i^T, w ~ N(0, kappa^2 I): 400000 draws, within 5
    Monte Carlo standard errors. Inputs include a near-parallel pair (the cancelling term), an
    exactly parallel one (its limit) and a zero row. Then the finite-width tied NTK of networks of
    growing width approaches it, its error falling about like m^(-1/2)."""
    from aedyn.kernels import tied_ntk_limit
    from aedyn.model import init_params
    from aedyn.ntk import ntk_dense

    gen = torch.Generator().manual_seed(3)
    base = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    X = torch.cat([base, (base[0] + 1e-3 * base[1])[None], 2 * base[1][None], torch.zeros(1, 3,
                                                                                         dtype=torch.float64)])
    n, d = X.shape
    T = tied_ntk_limit(X, kappa=KAPPA)
    assert T.shape == (n * d, n * d) and torch.allclose(T, T.mT, atol=1e-14)
    assert float(torch.linalg.eigvalsh(T)[0]) > -1e-12  # PSD
    N, chunk = 400_000, 20_000  # in chunks: a test process that peaks high skews others' memory readings
    total = torch.zeros(n * d, n * d, dtype=torch.float64)
    squares = torch.zeros(n * d, n * d, dtype=torch.float64)
    for _ in range(N // chunk):
        w = KAPPA * torch.randn(chunk, d, generator=gen, dtype=torch.float64)
        Z = w @ X.T  # chunk x n
        A, D = torch.relu(Z), (Z > 0).double()
        J = A[:, :, None, None] * torch.eye(d, dtype=torch.float64) + D[:, :, None, None] * torch.einsum(
            "na,ib->niab", w, X)  # chunk x n x d x d: d f(x_i) / d w
        J = J.reshape(chunk, n * d, d)
        samples = torch.einsum("nka,nla->nkl", J, J)
        total += samples.sum(0)
        squares += samples.square().sum(0)
    mean = total / N
    se = ((squares / N - mean.square()).clamp_min(0) * N / (N - 1)).sqrt() / math.sqrt(N)
    assert bool(((mean - T).abs() <= 5 * se + 1e-12).all()), float(((mean - T).abs() / (se + 1e-300)).max())
    assert torch.equal(T[-d:], torch.zeros(d, n * d, dtype=torch.float64))
    errors = []
    for m in (256, 4096, 65536):
        errs = [float((ntk_dense(init_params(d, m, regime="tied", seed=s, kappa=KAPPA), X, "tied") - T).norm()
                      / T.norm()) for s in range(4)]
        errors.append(float(np.mean(errs)))
    assert errors[0] > errors[1] > errors[2]
    assert 0.5 / 16 < errors[2] / errors[0] < 2 / 16  # 256x the width: about 1/16 of the error (m^-1/2)


def _tied_inputs(seed: int = 3) -> torch.Tensor:
    """Generic rows, then the hard cases: near-parallel at 1e-3, 1e-9 and 1e-13 (the ``C`` term
    cancels in its textbook form), a near-antipodal pair, an exactly parallel rescaled row and a
    zero row."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    extra = [base[0] + 1e-3 * base[1], base[1] + 1e-9 * base[2], base[2] + 1e-13 * base[3],
             -(base[3] + 1e-7 * base[0]), 2.5 * base[1], torch.zeros(5, dtype=torch.float64)]
    return torch.cat([base, torch.stack(extra)])


@pytest.mark.parametrize("cross", [False, True])
def test_tied_matrix_free_product_matches_the_dense_limit(cross):
    """TiedNTKLimit @ v (its expansion in u, v, and explicit s, t for near pairs) against the dense
    blocks on random vectors, flat, n x d and batched, and matmat: float64, 1e-12 relative (both are
    sums of O(n d) terms of size O(1) each; a wrong coefficient or sign is off by O(1))."""
    from aedyn.kernels import TiedNTKLimit, tied_ntk_limit

    X = _tied_inputs()
    gen = torch.Generator().manual_seed(7)
    Y = torch.cat([torch.randn(3, 5, generator=gen, dtype=torch.float64), X[:3] * (1 + 1e-12), X[-1:]]) if cross \
        else None
    n2 = X.shape[0] if Y is None else Y.shape[0]
    T = tied_ntk_limit(X, kappa=KAPPA, Y=Y)
    op = TiedNTKLimit(X, kappa=KAPPA, Y=Y)
    assert T.shape == (op.dim, n2 * 5)
    V = torch.randn(4, n2, 5, generator=gen, dtype=torch.float64)
    want = (V.reshape(4, -1) @ T.mT).reshape(4, X.shape[0], 5)
    scale = want.norm()
    assert float(((op @ V) - want).norm() / scale) < 1e-12
    assert float(((op @ V[0]) - want[0]).norm() / want[0].norm()) < 1e-12
    assert float(((op @ V[1].reshape(-1)) - want[1].reshape(-1)).norm() / want[1].norm()) < 1e-12
    assert float((op.matmat(V.reshape(4, -1).mT) - want.reshape(4, -1).mT).norm() / scale) < 1e-12
    with pytest.raises(AedynError, match="needs v of shape"):
        op @ torch.ones(n2 + 1, 5, dtype=torch.float64)
    if not cross:
        ext, ev = op.extremes(tol=1e-10), torch.linalg.eigvalsh(T)
        assert ext.max == pytest.approx(float(ev[-1]), rel=1e-8) and abs(ext.min - float(ev[0])) < 1e-8 * ext.max


def test_tied_limit_is_continuous_at_parallel_inputs():
    """Block (x, x + delta y) differs from block (x, x) by O(delta) (the kernel is smooth in y there):
    at delta = 1e-12 the difference is below 1e-11 relative. The textbook form of C_ij, divided by
    sin(theta), loses eps / sin(theta) ~ 1e-4 there, and a cutoff at sin(theta) = 1e-7 leaves
    O(1e-7) at delta = 1e-8."""
    from aedyn.kernels import tied_ntk_limit

    gen = torch.Generator().manual_seed(11)
    x, y = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    T0 = tied_ntk_limit(torch.stack([x, x]))
    for delta in (1e-4, 1e-8, 1e-12):
        for sign in (1.0, -1.0):  # parallel and antipodal
            Td = tied_ntk_limit(torch.stack([x, sign * (x + delta * y)]))
            Ts = tied_ntk_limit(torch.stack([x, sign * x]))
            assert float((Td - Ts).norm() / T0.norm()) < 10 * delta, (delta, sign)


def test_tied_limit_refuses_large_dense_and_products_scale():
    """Above TIED_DENSE_LIMIT the dense kernel is refused with a message naming the matrix-free
    operator; the operator still applies (symmetric: <a, T b> = <T a, b>, and PSD on a probe)."""
    from aedyn.kernels import TIED_DENSE_LIMIT, TiedNTKLimit

    d = 8
    n = TIED_DENSE_LIMIT // d + 1
    X = sphere(n, d, seed=1)
    with pytest.raises(AedynError, match="TiedNTKLimit"):
        regime_kernel(X, "tied")
    op = TiedNTKLimit(X)
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, n, d, generator=gen, dtype=torch.float64)
    lhs, rhs = float((a * (op @ b)).sum()), float(((op @ a) * b).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)
    assert float((a * (op @ a)).sum()) > 0


def test_tied_finite_width_error_falls_like_inverse_sqrt_width():
    """The finite-width tied NTK (aedyn.ntk.ntk_dense) against the limit at m = 2^8..2^14, 6 seeds
    each: the mean relative Frobenius error, fitted on log m, has slope in [-0.7, -0.3]. Theta_m is
    an average of m i.i.d. terms with mean the limit, so its error's standard deviation is
    exactly c m^(-1/2) (slope -0.5); 6 seeds x 4 widths leave about +-0.1 of scatter in the fit."""
    from aedyn.kernels import tied_ntk_limit
    from aedyn.ntk import ntk_dense

    X = sphere(4, 4, seed=5)
    T = tied_ntk_limit(X, kappa=KAPPA)
    widths = [2 ** 8, 2 ** 10, 2 ** 12, 2 ** 14]
    errors = [np.mean([float((ntk_dense(init_params(4, m, regime="tied", seed=s, kappa=KAPPA), X, "tied") - T).norm()
                             / T.norm()) for s in range(6)]) for m in widths]
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.7 < slope < -0.3, (slope, errors)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_compute_in_float64(half):
    """float16 and bfloat16 inputs are accepted wherever float64 ones are (validate, forward and train
    already take them): every kernel computes in float64 on the same numbers, as NumPy float16 does."""
    from aedyn.kernels import TiedNTKLimit, init_output_kernel
    from aedyn.limit import NTKPredictor

    X = sphere(6, 3, seed=5).to(half)
    X64 = X.double()
    R = torch.linspace(-1, 1, 18, dtype=torch.float64).reshape(6, 3)
    for compute in (k0, k1, lambda Z: regime_kernel(Z, "joint", kappa=KAPPA, nu=NU),
                    lambda Z: regime_kernel(Z, "tied"), lambda Z: init_output_kernel(Z, kappa=KAPPA, nu=NU),
                    lambda Z: TiedNTKLimit(Z) @ R, lambda Z: NTKPredictor(Z, "joint")(Z)):
        out = compute(X)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, compute(X64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k0(X.numpy() if half == torch.float16 else X), k0(X64), rtol=1e-12, atol=1e-12)
