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


def _net_minus_prediction(m: int, seeds, steps: int, X: torch.Tensor, Xn: torch.Tensor, eta: float):
    """For each init seed: GD on a joint network of width m from ``init_params(5, m, seed=s)`` and the
    linearised infinite-width prediction with the same ``f_0``; returns, per input set (``"train"``
    = X, ``"new"`` = held-out Xn), the arrays ``net - prediction`` and ``net - f_0`` (seeds x n x d)."""
    out = {"train": ([], []), "new": ([], [])}
    for seed in seeds:
        p = init_params(5, m, seed=seed)
        f0 = lambda Z, p=p: forward(p, Z, "joint")  # noqa: E731
        net = train(X, p, "joint", lr=eta, steps=steps, target=0.0).params
        pred = NTKPredictor(X, "joint", f0=f0, eta=eta, steps=steps)
        for Z, key in ((X, "train"), (Xn, "new")):
            y = forward(net, Z, "joint")
            out[key][0].append(y - pred(Z))
            out[key][1].append(y - f0(Z))
    return {key: (torch.stack(diff), torch.stack(moved)) for key, (diff, moved) in out.items()}


def _limit_problem():
    X, Xn = sphere(10, 5, seed=0), sphere(20, 5, seed=1)
    eta = 0.5 / float(torch.linalg.eigvalsh(regime_kernel(X, "joint"))[-1])
    return X, Xn, eta


def test_wide_network_follows_the_ntk_prediction():
    """Trained to near convergence (200 steps at eta = 0.5 / lambda_max(K); eta lambda_min k = 3.7),
    joint networks of width m = 2^10, 2^12, 2^14 (init seeds 0, 1) against the infinite-width
    linearised prediction with the same f_0, on held-out inputs (20) and training inputs (10)
    separately; error = ||net - prediction||_F / ||net - f_0||_F per seed, averaged over the seeds.

    Measured over 32 init seeds (per seed: mean +- sd, max):
      held-out   m = 2^10: 0.0561 +- 0.0086 (0.076), 2^12: 0.0297 +- 0.0052 (0.044),
                 2^14: 0.0149 +- 0.0027 (0.021), so ~ 1.9 / sqrt(m); the 2-seed mean at 2^14 has
                 sd 0.0020: tolerance mean + 5 sd = 0.025 (was 0.052);
      training   2^14: 0.00018 +- 0.00010 (max 0.00049), 2-seed sd 0.00008: tolerance 0.0006;
      log-log slope of the held-out error over the three widths, 16 pairs of seeds: -0.48 +- 0.067
                 (from -0.62 to -0.37): required within mean +- 5 sd, [-0.82, -0.14].
    Near convergence the prediction depends on the kernel only through its shape (on training
    inputs the kernel cancels: both interpolate), so 10%-off kernel weights move these errors by
    less than their spread (held-out 2^14: 0.017-0.019 for 1.1 or 0.9 times nu^2 K0 or kappa^2 K1,
    against 0.0149); :func:`test_wide_network_follows_the_ntk_dynamics_early_in_training` catches
    those."""
    X, Xn, eta = _limit_problem()
    widths = (2**10, 2**12, 2**14)
    errors = {}
    for m in widths:
        runs = _net_minus_prediction(m, (0, 1), 200, X, Xn, eta)
        errors[m] = {key: float(np.mean([float(d.norm() / mv.norm()) for d, mv in zip(diff, moved, strict=True)]))
                     for key, (diff, moved) in runs.items()}
    assert errors[2**14]["new"] < 0.025, errors
    assert errors[2**14]["train"] < 0.0006, errors
    slope = np.polyfit(np.log(widths), np.log([errors[m]["new"] for m in widths]), 1)[0]
    assert -0.82 <= slope <= -0.14, (slope, errors)


def test_wide_network_follows_the_ntk_dynamics_early_in_training():
    """After 3 steps (eta = 0.5 / lambda_max(K)), where the prediction depends on the kernel's
    scale and shape, networks of width m = 2^16 against the linearised infinite-width prediction,
    averaged over init seeds 0..7: ``||mean_s (net_s - prediction_s)||_F / mean_s ||net_s - f0_s||_F``
    on held-out (20) and training (10) inputs separately.

    The finite-width deviation has mean ~0 over initialisations, so the seed average shrinks like
    1/sqrt(seeds): measured per seed 0.0076 +- 0.0015 (held-out) and 0.0058 +- 0.0012 (training)
    over 160 seeds; over 20 disjoint blocks of 8 seeds 0.0027 +- 0.0003 (max 0.0032) held-out and
    0.0021 +- 0.0002 (max 0.0025) training (= per seed / sqrt(8)). A wrong kernel gives a
    systematic offset that does not average out; the same 20 blocks with the predictor's kernel
    weights 10% off: held-out 1.1 nu^2 K0 0.0160 +- 0.0014 (min 0.0134), 0.9 nu^2 K0 min 0.0139,
    1.1 kappa^2 K1 min 0.0152, 0.9 kappa^2 K1 min 0.0163; training min 0.0122 (1.1 kappa^2 K1).
    Tolerances 0.006 (held-out) and 0.005 (training): twice the worst real block and 10 sd above
    its mean, below half the weakest mutant block."""
    X, Xn, eta = _limit_problem()
    runs = _net_minus_prediction(2**16, range(8), 3, X, Xn, eta)
    err = {key: float(diff.mean(dim=0).norm() / moved.flatten(1).norm(dim=1).mean())
           for key, (diff, moved) in runs.items()}
    assert err["new"] < 0.006, err
    assert err["train"] < 0.005, err


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


def test_memorisation_accepts_inputs_and_maps_that_require_grad():
    """Held-out inputs, training data and a map's outputs that carry autograd history are measured
    like plain ones (the measures are numbers, read into NumPy)."""
    X = sphere(6, 3, seed=1)
    Z = sphere(4, 3, seed=2)
    scale = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    graded = memorisation(lambda z: scale * z, Z.clone().requires_grad_(True), X.clone().requires_grad_(True),
                          iterations=3)
    plain = memorisation(lambda z: 0.5 * z, Z, X, iterations=3)
    np.testing.assert_allclose(graded.nearest_distance, plain.nearest_distance, rtol=1e-12)
    assert graded.fate == plain.fate


def test_memorisation_measure_sees_the_representer_property():
    """With f_0 ≡ 0 a converged kernel predictor is ``k(x, X) C`` with ``C`` a combination of the
    training samples (the representer theorem), so every output lies in their span, whatever
    the kernel. This checks that ``memorisation``/``energy_outside_span`` measure that (share
    outside the span ~0) and that ``NTKPredictor`` has that structure; it says nothing about
    whether the kernel is the right one (the wide-network tests above do)."""
    X_train = sphere(5, 12, seed=0)
    X_new = sphere(8, 12, seed=1)
    pred = NTKPredictor(X_train, "joint")
    snap = memorisation(pred, X_new, X_train, iterations=20)
    assert np.all(snap.outside_span < 1e-20)


def test_default_rcond_follows_the_precision():
    """A duplicated sample: in float64 K is singular to n eps; in float32 the same data give a
    kernel whose computed condition number is about 1e7, above 1 / (n eps32) = 1.4e6, so the
    float32 prediction must warn and drop it, where rcond = 1e-12 passed it silently (on most CPUs:
    see the end)."""
    X = sphere(6, 3, seed=2)
    X[5] = X[0]
    with pytest.warns(AedynWarning, match="singular"):
        p64 = NTKPredictor(X, "joint")
    assert p64.rcond == pytest.approx(6 * torch.finfo(torch.float64).eps)
    with pytest.warns(AedynWarning, match="singular"):
        p32 = NTKPredictor(X.float(), "joint")
    assert p32.rcond == pytest.approx(6 * torch.finfo(torch.float32).eps) and p32.dropped >= 1
    assert torch.isfinite(p32(X.float())).all()
    # The old default, rcond = 1e-12, passed this kernel silently where float32 rounding leaves its computed
    # lambda_min at 1e-8..1e-7 lambda_max (condition 1e7..1e8). Where a CPU's float32 kernels round the
    # duplicated row of K exactly like the original (ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE does), K is
    # exactly singular and lambda_min is rounding noise of either sign (-2e-8 lambda_max there): a negative one
    # is dropped even at 1e-12. So the old default's verdict depends on the CPU; what holds everywhere is that
    # rcond = 1e-12 drops (and warns) exactly when lambda_min <= 1e-12 lambda_max, i.e. condition >= 1e12 or inf.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AedynWarning)
        old = NTKPredictor(X.float(), "joint", rcond=1e-12)
    warned = any(issubclass(w.category, AedynWarning) for w in caught)
    assert (old.dropped > 0) == (old.condition_number >= 1e12) and warned == (old.dropped > 0)


def test_no_limit_prediction_for_tied_networks():
    with pytest.raises(AedynError, match="cannot stay lazy"):
        NTKPredictor(sphere(4, 3, seed=0), "tied")


def test_steps_to_target_is_the_first_step_of_the_loss_curve_below_it():
    """Against the loss curve itself (dense evaluation of every step), for several targets."""
    from aedyn.data import sphere
    from aedyn.kernels import regime_kernel
    from aedyn.limit import LinearisedGD

    X = sphere(12, 5, seed=3)
    K = regime_kernel(X, "joint")
    lin = LinearisedGD(K, 1.0 / float(torch.linalg.eigvalsh(K)[-1]))
    curve = lin.loss_curve(-X, 5000)
    for target in (0.5, 1e-2, 1e-4, 1e-6):
        k = lin.steps_to(-X, target)
        assert k is not None and curve[k] <= target * curve[0] < curve[k - 1]
    assert lin.steps_to(-X, 1e-300, limit=1000) is None
    singular = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert LinearisedGD(singular, 0.5).steps_to(torch.ones(2, 1, dtype=torch.float64), 0.1) is None


def test_expected_loss_curve_with_random_initial_outputs_matches_monte_carlo():
    """covariance=C: the loss of R(0) + E, E's columns N(0, C), averaged over 20000 draws of E
    (each step within 5 Monte Carlo standard errors); steps_to agrees with that curve."""
    X = sphere(6, 3, seed=2)
    K = regime_kernel(X, "joint")
    C = 0.5 * regime_kernel(X, "decoder") + 0.1 * torch.eye(6, dtype=torch.float64)
    lin = LinearisedGD(K, 1.0 / float(torch.linalg.eigvalsh(K)[-1]))
    expected = lin.loss_curve(-X, 30, covariance=C)
    gen = torch.Generator().manual_seed(0)
    L = torch.linalg.cholesky(C)
    E = L @ torch.randn(20000, 6, 3, generator=gen, dtype=torch.float64)
    Q, lam = lin.eigenvectors, lin.eigenvalues
    coeff = Q.mT @ (E - X)  # draws x modes x d
    k = torch.arange(31, dtype=torch.float64)
    curves = 0.5 * torch.einsum("km,sm->sk", (1 - lin.eta * lam)[None, :] ** (2 * k[:, None]), coeff.square().sum(2))
    mean, se = curves.mean(0), curves.std(0) / math.sqrt(curves.shape[0])
    assert bool(((mean - torch.from_numpy(expected)).abs() <= 5 * se).all())
    assert expected[0] > lin.loss_curve(-X, 0)[0]  # the random outputs add energy
    curve = lin.loss_curve(-X, 4000, covariance=C)
    for target in (1e-2, 1e-4):
        k = lin.steps_to(-X, target, covariance=C)
        assert k is not None and curve[k] <= target * curve[0] < curve[k - 1]
    with pytest.raises(AedynError, match="covariance must be n x n"):
        lin.steps_to(-X, 0.1, covariance=torch.eye(5, dtype=torch.float64))


def test_predicted_rates_decoder_training_is_exactly_linear():
    """Decoder-only GD is linear least squares: the loss follows linearised GD with the exact
    Theta(0) = K ⊗ I_d, so the finite-width prediction equals the measured rate to rounding."""
    from aedyn.limit import predicted_rates

    X = sphere(12, 4, seed=1)
    result = train(X, init_params(4, 64, seed=2, regime="decoder"), "decoder", steps=20000)
    p = predicted_rates(result, X)
    assert p is not None and p.window == (result.rate_fit.start, result.rate_fit.stop)
    assert p.finite == pytest.approx(p.measured, rel=1e-9) and p.infinite is not None and not p.why


def test_predicted_rates_are_linearised_gd_iterated_by_hand():
    """The finite-width prediction against R <- R - eta K R iterated step by step, with K the
    trace-average of the dense Theta(0)'s d x d blocks, fitted over the run's own window."""
    from aedyn.gd import fit_linear_rate
    from aedyn.limit import predicted_rates
    from aedyn.ntk import ntk_dense

    X = sphere(10, 3, seed=4)
    params = init_params(3, 256, seed=5)
    result = train(X, params, "joint", steps=4000)
    p = predicted_rates(result, X)
    n, d = X.shape
    K = ntk_dense(params, X, "joint").reshape(n, d, n, d).diagonal(dim1=1, dim2=3).sum(-1) / d
    R = forward(params, X, "joint") - X
    losses = []
    for _ in range(result.rate_fit.stop + 1):
        losses.append(0.5 * float(R.square().sum()))
        R = R - result.lr * (K @ R)
    by_hand = fit_linear_rate(np.array(losses), result.rate_fit.start, result.rate_fit.stop).rate
    assert p.finite == pytest.approx(by_hand, rel=1e-10)
    Kinf = regime_kernel(X, "joint", kappa=0.7, nu=1.3)  # the scales the caller names are the kernel's
    curve = LinearisedGD(Kinf, result.lr).loss_curve(forward(params, X, "joint") - X, result.rate_fit.stop)
    expected = fit_linear_rate(curve, result.rate_fit.start, result.rate_fit.stop).rate
    assert predicted_rates(result, X, kappa=0.7, nu=1.3).infinite == pytest.approx(expected, rel=1e-10)
    assert predicted_rates(result, X).infinite != pytest.approx(expected, rel=1e-6)


def test_predicted_rates_say_why_there_is_none():
    from aedyn.limit import predicted_rates

    X = sphere(8, 3, seed=0)
    tied = train(X, init_params(3, 64, seed=0, regime="tied"), "tied", steps=300)
    p = predicted_rates(tied, X)
    assert p.finite is None and p.infinite is None and "tied" in p.why["finite"]
    mean_field = train(X, init_params(3, 64, seed=0, scale="mean-field"), "joint", steps=300)
    p = predicted_rates(mean_field, X)
    assert p.finite is not None and p.infinite is None and "1/sqrt(m)" in p.why["infinite"]
    separate = train(X, init_params(3, 64, seed=0), "joint", lr=0.1, lr_decoder=0.05, steps=300)
    p = predicted_rates(separate, X)
    assert p.finite is None and p.infinite is None and "decoder step" in p.why["finite"]
    assert predicted_rates(train(X, init_params(3, 64, seed=0), "joint", steps=300), X, max_n=4).finite is None


def test_loss_curve_from_a_start_step_is_the_tail_of_the_whole_curve():
    X = sphere(7, 3, seed=1)
    lin = LinearisedGD(regime_kernel(X, "joint"), 0.3)
    whole = lin.loss_curve(-X, 50)
    assert np.allclose(lin.loss_curve(-X, 50, start=20), whole[20:], rtol=1e-13, atol=0)
    assert len(lin.loss_curve(-X, 10, start=11)) == 0
