"""Full-batch gradient descent: convergence, the least-squares limit, stopping, records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynError
from aedyn.gd import TrainResult, auto_lr, fit_linear_rate, rounding_floor, train
from aedyn.model import Params, gradients, init_params
from aedyn.ntk import NTKOperator


@pytest.mark.parametrize("regime", ["joint", "weak"])
def test_reaches_target_with_auto_lr_at_a_linear_rate(regime):
    X = sphere(32, 8, seed=0)
    p = init_params(8, 1024, regime=regime, seed=0)
    r = train(X, p, regime, lr="auto", steps=20000, target=1e-6)
    assert r.status == "converged"
    assert r.relative_loss[-1] <= 1e-6 < r.relative_loss[-2]
    fit = fit_linear_rate(r.loss, start=5)
    assert fit.r2 > 0.95
    assert 0 < r.rate < 1


def test_decoder_gd_converges_to_least_squares_overdetermined():
    """m < n: the least-squares decoder is unique, V* = lstsq(alpha A, X)^T."""
    X = sphere(40, 6, seed=1)
    p = init_params(6, 12, seed=2)
    r = train(X, p, "decoder", lr="auto", steps=20000, target=0.0)  # cond(alpha A)^2 = 175: 1e-8 after ~4000 steps
    A = torch.relu(X @ p.W.T)
    V_star = torch.linalg.lstsq(p.alpha * A, X).solution.T
    torch.testing.assert_close(r.params.V, V_star, rtol=0, atol=1e-8)
    torch.testing.assert_close(r.params.W, p.W, rtol=0, atol=0)


def test_decoder_gd_converges_to_nearest_interpolant_underdetermined():
    """m > n: GD from V0 stays in V0 + rowspace(A), so it ends at V0 + pinv(alpha A)(X - alpha A V0^T)."""
    X = sphere(10, 5, seed=3)
    p = init_params(5, 64, seed=4)
    r = train(X, p, "decoder", lr="auto", steps=100000, target=1e-28)
    A = p.alpha * torch.relu(X @ p.W.T)
    correction = torch.linalg.lstsq(A, X - A @ p.V.T, driver="gelsd").solution.T
    torch.testing.assert_close(r.params.V, p.V + correction, rtol=0, atol=1e-9)


def test_auto_lr_is_inverse_of_largest_ntk_eigenvalue():
    X = sphere(6, 4, seed=5)
    p = init_params(4, 64, seed=6)
    eta, lam = auto_lr(p, X, "joint")
    op = NTKOperator(p, X, "joint")
    dense = torch.stack([op @ e for e in torch.eye(24, dtype=torch.float64)])
    ref = float(torch.linalg.eigvalsh(dense)[-1])
    assert lam == pytest.approx(ref, rel=1e-6) and eta == pytest.approx(1 / ref, rel=1e-6)


def test_one_step_is_exact_gradient_descent_with_per_layer_steps():
    X = sphere(5, 4, seed=7)
    p = init_params(4, 16, seed=8)
    r = train(X, p, "joint", lr=0.05, lr_decoder=0.2, steps=1, target=0.0)
    g = gradients(p, X, "joint")
    torch.testing.assert_close(r.params.W, p.W - 0.05 * g.W, rtol=0, atol=1e-15)
    torch.testing.assert_close(r.params.V, p.V - 0.2 * g.V, rtol=0, atol=1e-15)
    assert r.steps == 1 and len(r.loss) == 2


def test_divergence_is_detected_and_a_step_suggested():
    X = sphere(16, 6, seed=0)
    p = init_params(6, 256, seed=0)
    r = train(X, p, "joint", lr=50.0, steps=1000)
    assert r.status == "diverged"
    assert r.steps < 1000
    assert not np.isfinite(r.loss[-1]) or r.loss[-1] > 1e3 * r.loss[0]
    assert "--lr" in r.message and "smaller" in r.message


def test_metrics_cadence_and_initial_values():
    X = sphere(8, 4, seed=1)
    p = init_params(4, 128, seed=2)
    r = train(X, p, "joint", lr="auto", steps=25, target=0.0, record_every=10)
    assert r.metrics["step"].tolist() == [0, 10, 20, 25]
    for name in ("weight_change_W", "weight_change_V", "max_neuron_change_W", "max_neuron_change_V",
                 "pattern_flips"):
        assert r.metrics[name][0] == 0.0 and len(r.metrics[name]) == 4
    dW = r.params.W - p.W
    assert r.final("weight_change_W") == pytest.approx(float(dW.norm() / p.W.norm()), rel=1e-12)
    assert r.final("max_neuron_change_W") == pytest.approx(float(dW.norm(dim=1).max()), rel=1e-12)
    flips = ((X @ r.params.W.T > 0) != (X @ p.W.T > 0)).double().mean()
    assert r.final("pattern_flips") == pytest.approx(float(flips), abs=1e-15)
    weak = train(X, init_params(4, 128, seed=2), "weak", steps=3, target=0.0)
    assert "weight_change_V" not in weak.metrics
    dec = train(X, init_params(4, 128, seed=2), "decoder", steps=3, target=0.0)
    assert "pattern_flips" not in dec.metrics


def test_same_seed_gives_identical_runs():
    def run():
        X = sphere(16, 6, seed=3)
        return train(X, init_params(6, 256, seed=4), "joint", steps=300)

    a, b = run(), run()
    assert np.array_equal(a.loss, b.loss)
    assert torch.equal(a.params.W, b.params.W) and torch.equal(a.params.V, b.params.V)
    for name in a.metrics:
        assert np.array_equal(a.metrics[name], b.metrics[name])


def test_params_are_not_modified_and_zero_steps():
    X = sphere(6, 3, seed=0)
    p = init_params(3, 32, seed=0)
    W0 = p.W.clone()
    r = train(X, p, "joint", steps=0)
    assert torch.equal(p.W, W0) and r.steps == 0 and r.status == "max_steps" and len(r.loss) == 1


def test_fit_linear_rate_recovers_a_geometric_sequence():
    loss = 3.0 * 0.97 ** np.arange(101)
    fit = fit_linear_rate(loss)
    assert fit.rate == pytest.approx(0.97, rel=1e-12) and fit.r2 == pytest.approx(1.0)
    assert (fit.start, fit.stop) == (50, 100)
    noisy = loss * np.exp(np.random.default_rng(0).normal(0, 0.5, 101))
    assert fit_linear_rate(noisy).r2 < 0.95
    assert fit_linear_rate(np.array([1.0, 0.5])) is None


def test_record_roundtrip(tmp_path):
    X = sphere(8, 4, seed=1)
    r = train(X, init_params(4, 64, seed=2), "joint", steps=50)
    path = tmp_path / "run.json"
    r.save(path)
    record = json.loads(path.read_text())
    assert record["status"] == r.status and record["config"]["width"] == 64
    assert "torch" in record["versions"] and len(record["loss"]) == r.steps + 1
    back = TrainResult.load(path)
    assert np.array_equal(back.loss, r.loss) and back.rate == pytest.approx(r.rate)
    assert back.params is None
    with pytest.raises(AedynError, match="already exists"):
        r.save(path)


def test_diverged_record_is_valid_json(tmp_path):
    X = sphere(8, 4, seed=1)
    r = train(X, init_params(4, 64, seed=2), "joint", lr=1e6, steps=100)
    text = json.dumps(r.to_record(), allow_nan=False)
    assert '"diverged"' in text


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lr": 0.0}, "lr must be a positive"),
    ({"lr": -1.0}, "lr must be a positive"),
    ({"lr": "fast"}, "lr must be a positive number or 'auto'"),
    ({"lr_decoder": 0.1, "regime": "weak"}, "drop --lr-decoder"),
    ({"steps": -1}, "steps"),
    ({"target": 1.5}, "target"),
    ({"record_every": 0}, "record_every"),
])
def test_train_rejects_bad_arguments(kwargs, match):
    X = sphere(4, 3)
    regime = kwargs.pop("regime", "joint")
    with pytest.raises(AedynError, match=match):
        train(X, init_params(3, 8, regime=regime), regime, **kwargs)


def test_train_rejects_mismatched_data():
    p = init_params(3, 8)
    with pytest.raises(AedynError, match="d = 4"):
        train(sphere(4, 4), p)
    with pytest.raises(AedynError, match="NaN"):
        train(torch.tensor([[float("nan"), 0.0, 1.0]]), p)


def test_float32_runs():
    X = sphere(16, 6, seed=0)
    r = train(X, init_params(6, 512, seed=0, dtype="float32"), "joint", steps=2000, target=1e-4)
    assert r.status == "converged" and r.params.W.dtype == torch.float32


def test_cuda_path_selected_by_device_argument_runs_on_cpu_when_auto():
    from aedyn._tensor import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(AedynError, match="no CUDA"):
            resolve_device("cuda")


def test_rate_fit_stops_at_the_rounding_floor():
    """A geometric decay that stalls in rounding noise about 100x below the floor (where real runs
    stall, see rounding_floor): the fit must see the decay only."""
    loss = 2.0 * 0.9 ** np.arange(400)
    floor = 1e-12
    hit = int(np.argmax(loss <= floor))
    stall = int(np.argmax(loss <= floor / 100))
    noisy = loss.copy()
    noisy[stall:] = floor / 100 * np.exp(np.random.default_rng(1).normal(0, 1, 400 - stall))
    fit = fit_linear_rate(noisy, floor=floor)
    assert fit.floor_step == hit and fit.stop == hit and fit.start == hit // 2
    assert fit.rate == pytest.approx(0.9, rel=1e-12) and fit.r2 == pytest.approx(1.0)
    blind = fit_linear_rate(noisy)
    assert blind.floor_step is None and abs(blind.rate - 0.9) > 0.02  # what the stall does to a naive fit


def test_run_to_the_floor_reports_it_and_fits_before_it():
    X = sphere(8, 4, seed=0)
    r = train(X, init_params(4, 64, regime="weak", seed=0), "weak", steps=4000, target=0.0)
    assert r.status == "max_steps"
    fit = r.rate_fit
    assert fit is not None and fit.floor_step is not None and fit.stop == fit.floor_step < r.steps
    assert r.floor == pytest.approx(rounding_floor(8.0, "float64"))
    assert 0.5 < fit.rate < 0.999 and fit.r2 > 0.99
    assert "rounding floor" in r.message and "raise --steps" not in r.message
    assert r.summary()["floor_step"] == fit.floor_step
    # the floor sits two orders of magnitude above where float64 runs stall
    assert 1e-32 * 8 < rounding_floor(8.0) < 1e-28 * 8


def test_zero_decoder_relative_movement_is_undefined_not_huge():
    X = sphere(8, 4, seed=1)
    r = train(X, init_params(4, 32, seed=2, nu=0.0), "joint", lr=0.05, steps=20, target=0.0)
    assert np.isnan(r.metrics["weight_change_V"][1:]).all()
    assert r.final("weight_distance_V") > 0 and r.final("weight_change_W") < 1
    np.testing.assert_allclose(r.metrics["weight_distance_V"][-1], float((r.params.V - r.init.V).norm()), rtol=1e-12)


@pytest.mark.parametrize("kappa", [1e-200, 1e-300])
def test_movement_of_tiny_weights_is_finite_and_right(kappa):
    """Encoder weights near 1e-200 (whose squares underflow) that move by O(1): the relative movement
    ~1e200 is finite, and equals a float64 reference taken by math.hypot (scaled, no under- or
    overflow), as do the distance and the largest neuron's movement."""
    X = sphere(8, 4, seed=1)
    r = train(X, init_params(4, 16, seed=2, kappa=kappa), "joint", lr=0.5, steps=10, record_every=5)
    W, W0 = r.params.W.numpy(), r.init.W.numpy()
    distance = math.hypot(*(W - W0).ravel())
    assert np.isfinite(r.metrics["weight_change_W"]).all() and r.final("weight_change_W") > 1e100
    assert r.final("weight_change_W") == pytest.approx(distance / math.hypot(*W0.ravel()), rel=1e-12)
    assert r.final("weight_distance_W") == pytest.approx(distance, rel=1e-12)
    assert r.final("max_neuron_change_W") == pytest.approx(max(math.hypot(*w) for w in W - W0), rel=1e-12)


def test_overflow_at_initialisation_is_an_error_not_a_divergence():
    X = sphere(6, 3, seed=0)
    with pytest.raises(AedynError, match="overflows at initialisation"):
        train(X, init_params(3, 16, scale=1e300), "joint")
    bad = init_params(3, 16)
    bad.W[0, 0] = float("nan")
    with pytest.raises(AedynError, match="initial W contains NaN"):
        train(X, bad, "joint")


def test_numpy_scalars_are_accepted_and_bools_refused():
    X = sphere(6, 3, seed=0)
    p = init_params(3, 16, seed=0)
    r = train(X, p, "joint", lr=np.float32(1e-2), steps=np.int64(3), target=np.float64(0.0))
    assert r.steps == 3 and r.lr == pytest.approx(1e-2)
    for kwargs in ({"steps": True}, {"steps": 2.5}, {"lr": "0.1"}, {"target": np.nan}):
        with pytest.raises(AedynError):
            train(X, p, "joint", **kwargs)


def test_zero_initial_loss_converges_at_once():
    X = torch.ones(1, 1, dtype=torch.float64)
    p = Params(torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), 1.0)
    r = train(X, p, "joint", lr=0.1, steps=10)
    assert r.status == "converged" and r.steps == 0 and "already zero" in r.message
    assert r.relative_loss.tolist() == [0.0]


def test_inputs_that_require_grad_are_accepted():
    """Data and parameters carrying autograd history (requires_grad=True) train like plain ones:
    gradient descent here is exact, so their history is dropped, not followed."""
    X = sphere(6, 3, seed=1)
    p = init_params(3, 32, seed=2)
    plain = train(X, p, "joint", lr=0.5, steps=5)
    W, V = p.W.clone().requires_grad_(True), p.V.clone().requires_grad_(True)
    graded = train(X.clone().requires_grad_(True), Params(W, V, p.alpha), "joint", lr=0.5, steps=5)
    np.testing.assert_allclose(graded.loss, plain.loss, rtol=1e-12)
    assert not graded.params.W.requires_grad and W.grad is None
