"""The ``linearised`` measure (:mod:`aedyn.measures.linearised`) against independent computations,
all in float64: ``Theta(0)`` from autograd Jacobians (``J J^T``), its coordinate average by block
traces, the infinite-width kernels from their arc-cosine closed forms, every linearised loss curve
by repeated multiplication with a dense ``I - eta K`` (a hand loop, never an eigendecomposition),
the fit window from the definition, and every rate from a least-squares slope written out.

Tolerances. Curves from eigenpairs and from repeated products agree to a few ulps per step
(relative ``~1e-15`` per product, ``~1e-13`` after a few hundred); a fitted ``exp(slope)`` over
tens of steps of such curves then agrees to ``~1e-12`` relative, so ``1e-9`` is far above rounding
and far below any modelling error (a missing factor, a wrong sign or a wrong kernel changes a rate
by percents). Eigenvalues of a dense ``nd x nd`` kernel agree to ``~1e-15 lambda_max``, checked at
``1e-10 lambda_max``; Lanczos/LOBPCG extremes at the solver's ``tol = 1e-8``, checked at ``1e-6``."""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
import torch

from aedyn.gd import TrainResult
from aedyn.job import Notes, TrainJob, run_job

lin = importlib.import_module("aedyn.measures.linearised")  # the module (the package exports the function by that name)

ENC_DEC = {"weak": (True, False), "joint": (True, True), "decoder": (False, True), "tied": (True, False)}
EPS = float(np.finfo(np.float64).eps)


# ---- independent computations -------------------------------------------------------------------

def hand_forward(W: torch.Tensor, V: torch.Tensor | None, alpha: float, X: torch.Tensor, regime: str) -> torch.Tensor:
    """``alpha relu(X W^T) V^T`` (``V = W^T`` tied), every sum written as a loop over neurons."""
    out = torch.zeros(X.shape, dtype=torch.float64)
    for r in range(W.shape[0]):
        v = W[r] if regime == "tied" else V[:, r]
        out += alpha * torch.relu(X @ W[r])[:, None] * v[None, :]
    return out


def autograd_ntk(params, X: torch.Tensor, regime: str) -> torch.Tensor:
    """``Theta = J J^T``, ``J`` the Jacobian of ``vec f(X)`` (row-major, index ``i d + k``) with
    respect to the trained layers (the encoder for weak and tied, both for joint, the decoder for
    decoder), from ``torch.autograd.functional.jacobian`` of :func:`hand_forward`."""
    W, V, alpha = params.W.double(), None if params.V is None else params.V.double(), params.alpha
    enc, dec = ENC_DEC[regime]
    n, d = X.shape
    if regime == "tied":
        J = torch.autograd.functional.jacobian(lambda w: hand_forward(w, None, alpha, X, regime), W)
        J = J.reshape(n * d, -1)
    else:
        JW, JV = torch.autograd.functional.jacobian(lambda w, v: hand_forward(w, v, alpha, X, regime), (W, V))
        J = torch.cat([j.reshape(n * d, -1) for j, on in ((JW, enc), (JV, dec)) if on], dim=1)
    return J @ J.T


def block_average(theta: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """``K_ij = tr(Theta_ij) / d`` by a loop over the ``d x d`` blocks."""
    K = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            K[i, j] = torch.trace(theta[i * d:(i + 1) * d, j * d:(j + 1) * d]) / d
    return K


def arccos_kernel(X: torch.Tensor, regime: str, kappa: float, nu: float) -> torch.Tensor:
    """The infinite-width kernel from the closed forms, ``theta`` the angle between rows:
    ``K0 = x.y (pi - theta) / (2 pi)`` (``E[relu'(w.x) relu'(w.y)] x.y``, ``w ~ N(0, I)``),
    ``K1 = |x||y| (sin theta + (pi - theta) cos theta) / (2 pi)`` (``E[relu(w.x) relu(w.y)]``):
    weak ``nu^2 K0``, joint ``nu^2 K0 + kappa^2 K1``, decoder ``kappa^2 K1``."""
    Xn = X.double().numpy()
    norms = np.linalg.norm(Xn, axis=1)
    dot = Xn @ Xn.T
    cos = np.clip(dot / np.outer(norms, norms), -1.0, 1.0)
    theta = np.arccos(cos)
    K0 = dot * (np.pi - theta) / (2 * np.pi)
    K1 = np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    K = {"weak": nu * nu * K0, "joint": nu * nu * K0 + kappa * kappa * K1, "decoder": kappa * kappa * K1}[regime]
    return torch.from_numpy(K)


def repeated(step: torch.Tensor, r0: torch.Tensor, steps: int) -> np.ndarray:
    """``0.5 ||step^k r0||^2`` for ``k = 0..steps`` by repeated products (``r0`` a matrix: the
    product acts on its rows' index, i.e. ``(I - eta K) R`` for ``R`` of shape ``n x d``)."""
    r, out = r0.clone(), []
    for _ in range(steps + 1):
        out.append(0.5 * float((r * r).sum()))
        r = step @ r
    return np.asarray(out)


def window(loss: np.ndarray, X: torch.Tensor) -> tuple[int, int]:
    """``[last // 2, last]``, ``last`` the first step at the rounding floor ``64 eps^2 ||X||_F^2``,
    else the final step."""
    floor = 64 * EPS * EPS * float((X.double() ** 2).sum())
    last = len(loss) - 1
    for k, value in enumerate(loss):
        if value <= floor:
            last = k
            break
    return last // 2, last


def slope_rate(curve: np.ndarray, start: int, stop: int) -> float:
    """``exp`` of the least-squares slope of ``log curve`` over ``start..stop``: ``cov(k, y) / var(k)``."""
    k = np.arange(start, stop + 1, dtype=np.float64)
    y = np.log(np.asarray(curve[start:stop + 1], dtype=np.float64))
    return math.exp(float(((k - k.mean()) * (y - y.mean())).sum() / ((k - k.mean()) ** 2).sum()))


def trained(regime: str, *, kappa: float = 1.0, nu: float = 1.0, seed: int = 0, data_seed: int | None = None,
            lr: float | str = "auto", steps: int = 120, **options):
    """A small run with the measure, its job and data."""
    job = TrainJob(regime=regime, data="sphere", n=5, d=3, width=24, seed=seed, data_seed=data_seed, kappa=kappa,
                   nu=nu, lr=lr,
                   steps=steps, target=1e-9, record_every=steps + 1,
                   measures=({"name": "linearised", **options},) if options else ("linearised",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_job(job)
    return result, result.config["measures"], job.load(Notes()), job


# ---- the exact curve ------------------------------------------------------------------------------

def test_the_exact_linearised_curve_is_repeated_matrix_products():
    """``exact_curve`` (from the eigenpairs) against ``0.5 ||(I - eta Theta)^k r||^2`` by repeated
    dense products: 60 products of a 12 x 12 matrix (see the module docstring for the tolerance)."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(12, 12, generator=g, dtype=torch.float64)
    theta = A @ A.T / 12
    R0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(theta)
    eta = 1.0 / float(evals[-1])
    curve = lin.exact_curve(evals, evecs, R0, eta, 60)
    direct = repeated(torch.eye(12, dtype=torch.float64) - eta * theta, R0.reshape(-1, 1), 60)
    np.testing.assert_allclose(curve, direct, rtol=1e-10)
    over = lin.exact_curve(evals, evecs, R0, 1.5 * eta, 30)  # modes with 1 - eta lambda < 0 too
    np.testing.assert_allclose(over, repeated(torch.eye(12, dtype=torch.float64) - 1.5 * eta * theta,
                                              R0.reshape(-1, 1), 30), rtol=1e-10)


# ---- Theta(0) and its averaged kernel -------------------------------------------------------------

@pytest.mark.parametrize("regime", ["weak", "joint", "decoder", "tied"])
def test_theta_at_init_is_the_autograd_ntk_and_its_block_average(regime):
    """Dense eigenpairs, extremes and the averaged kernel against ``J J^T`` from autograd."""
    job = TrainJob(regime=regime, data="sphere", n=4, d=3, width=16, seed=5, kappa=1.3, nu=0.7)
    X = job.load(Notes())
    params = job.init(3, 16)
    theta = autograd_ntk(params, X, regime)
    lin._THETA.clear()
    out = lin.theta_at_init(params, X, regime, 2048, ("test", regime))
    top = float(torch.linalg.eigvalsh(theta)[-1])
    ev = torch.linalg.eigvalsh(theta)
    assert out["method"] == "dense"
    assert out["lambda_min"] == pytest.approx(float(ev[0]), abs=1e-10 * top)
    assert out["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-10)
    rebuilt = out["evecs"] @ torch.diag(out["evals"]) @ out["evecs"].T
    torch.testing.assert_close(rebuilt, theta, rtol=0, atol=1e-12 * top)
    torch.testing.assert_close(out["averaged"], block_average(theta, 4, 3), rtol=0, atol=1e-12 * top)


def test_above_the_exact_limit_the_extremes_come_from_lanczos_and_there_is_no_exact_prediction():
    result, m, X, _ = trained("joint", exact_limit=8)
    theta = autograd_ntk(result.init, X, "joint")
    ev = torch.linalg.eigvalsh(theta)
    assert m["lambda_method"] == "lanczos/lobpcg" and m["predicted_exact"] is None
    assert m["curve_predicted_exact"] is None and m["predicted_finite"] is not None
    assert m["lambda_max0"] == pytest.approx(float(ev[-1]), rel=1e-6)
    assert m["lambda_min0"] == pytest.approx(float(ev[0]), rel=1e-6)


# ---- the predictions, by hand -------------------------------------------------------------------

@pytest.mark.parametrize("regime", ["weak", "joint", "decoder", "tied"])
def test_every_prediction_is_linearised_gd_by_repeated_products(regime):
    """A trained network's measure against: ``R(0)`` from the hand forward pass, ``Theta(0)`` from
    autograd, the three linearised curves by repeated products with ``I - eta K`` (``K`` the block
    average, the full ``Theta(0)``, the arc-cosine kernel at this ``kappa`` and ``nu``), the window
    from the definition, and each rate as ``exp`` of a least-squares slope over that window."""
    kappa, nu = 1.2, 0.8
    result, m, X, _ = trained(regime, kappa=kappa, nu=nu, curve_points=50)
    n, d = X.shape
    eta = float(result.lr)
    start, stop = window(np.asarray(result.loss), X)
    assert (m["window_start"], m["window_stop"]) == (start, stop) and stop == len(result.loss) - 1
    init = result.init
    R0 = hand_forward(init.W.double(), None if init.V is None else init.V.double(), init.alpha, X, regime) - X
    theta = autograd_ntk(init, X, regime)
    ev = torch.linalg.eigvalsh(theta)
    assert m["lambda_min0"] == pytest.approx(float(ev[0]), abs=1e-10 * float(ev[-1]))
    assert m["lambda_max0"] == pytest.approx(float(ev[-1]), rel=1e-10)
    assert m["predicted_bound"] == pytest.approx((1 - eta * float(ev[0])) ** 2, rel=1e-12)
    loss = np.asarray(result.loss, dtype=np.float64)
    assert m["measured_rate"] == pytest.approx(slope_rate(loss, start, stop), rel=1e-9)
    eye_n, eye_nd = torch.eye(n, dtype=torch.float64), torch.eye(n * d, dtype=torch.float64)
    finite = repeated(eye_n - eta * block_average(theta, n, d), R0, stop)
    exact = repeated(eye_nd - eta * theta, R0.reshape(-1, 1), stop)
    if regime != "tied":  # tied's averaged kernel is not the block average (see TIED_AVERAGE)
        assert m["predicted_finite"] == pytest.approx(slope_rate(finite, start, stop), rel=1e-9)
        np.testing.assert_allclose(m["curve_predicted_finite"], finite[m["curve_steps"]], rtol=1e-9)
    assert m["predicted_exact"] == pytest.approx(slope_rate(exact, start, stop), rel=1e-9)
    at = m["curve_steps"]
    assert at[0] == 0 and at[-1] == stop and len(at) == min(50, stop + 1) and at == sorted(set(at))
    assert np.diff(at).max() - np.diff(at).min() <= 1  # evenly spaced, rounded
    assert m["curve_measured"] == [float(loss[k]) for k in at]  # copied, not computed
    np.testing.assert_allclose(m["curve_predicted_exact"], exact[at], rtol=1e-9)
    if regime == "tied":  # its limit is not K ⊗ I_d: no infinite-width prediction
        assert m["predicted_infinite"] is None and m["curve_predicted_infinite"] is None
        assert m["lambda_min_inf"] is None and m["lambda_max_inf"] is None
        return
    K = arccos_kernel(X, regime, kappa, nu)
    kev = np.linalg.eigvalsh(K.numpy())
    assert m["lambda_min_inf"] == pytest.approx(kev[0], abs=1e-10 * kev[-1])
    assert m["lambda_max_inf"] == pytest.approx(kev[-1], rel=1e-10)
    infinite = repeated(eye_n - eta * K, R0, stop)
    assert m["predicted_infinite"] == pytest.approx(slope_rate(infinite, start, stop), rel=1e-9)
    np.testing.assert_allclose(m["curve_predicted_infinite"], infinite[at], rtol=1e-9)


def test_the_window_ends_at_the_rounding_floor():
    """A loss that reaches the floor at step 70 and stalls: the window is ``[35, 70]`` and the
    measured rate the decay before it, not the stall (a made-up history on a real network)."""
    job = TrainJob(regime="joint", data="sphere", n=4, d=3, width=16, seed=1, lr=0.1, steps=100,
                   measures=("linearised",))
    X = job.load(Notes())
    floor = 64 * EPS * EPS * float(X.square().sum())
    k = np.arange(101)
    loss = np.where(k <= 70, 0.9 * floor * 0.5 ** (k - 70.0), 0.5 * floor)
    assert window(loss, X) == (35, 70)
    result = TrainResult(status="max_steps", steps=100, loss=loss, metrics={}, lr=0.1, lr_decoder=0.1,
                         regime="joint", wall_time=0.0, message="", init=job.init(3, 16))
    m = lin.linearised(result, X, job)
    assert (m["window_start"], m["window_stop"]) == (35, 70)
    assert m["measured_rate"] == pytest.approx(0.5, rel=1e-9) and m["r2"] == pytest.approx(1.0, abs=1e-12)
    assert m["curve_steps"][-1] == 70


def test_theta_is_kept_per_network_and_shared_by_its_step_rules(monkeypatch):
    """Two seeds, one after the other, each get their own network's ``Theta(0)`` (a key without the
    seed would hand the second the first's); one network under two step sizes computes it once."""
    lin._THETA.clear()
    calls = []
    real = lin.ntk_dense
    monkeypatch.setattr(lin, "ntk_dense", lambda *a, **k: calls.append(1) or real(*a, **k))
    one, m_one, X, _ = trained("weak", seed=0)
    two, m_two, X2, _ = trained("weak", seed=1, data_seed=0)  # the same data, another network
    assert torch.equal(X, X2) and len(calls) == 2
    for result, m in ((one, m_one), (two, m_two)):
        ev = torch.linalg.eigvalsh(autograd_ntk(result.init, X, "weak"))
        assert m["lambda_min0"] == pytest.approx(float(ev[0]), abs=1e-10 * float(ev[-1]))
        assert m["lambda_max0"] == pytest.approx(float(ev[-1]), rel=1e-10)
    _, m_again, _, _ = trained("weak", seed=0, lr=0.5 * float(one.lr))
    assert len(calls) == 2  # the same network: Theta(0) kept
    assert m_again["lambda_max0"] == m_one["lambda_max0"]  # the very same stored number
    assert m_again["predicted_bound"] == pytest.approx((1 - 0.5 * float(one.lr) * m_one["lambda_min0"]) ** 2,
                                                       rel=1e-12)
