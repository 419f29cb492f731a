"""Model: forward, loss and analytic derivatives against independent computations (float64).

Tolerances: the analytic gradient and torch autograd evaluate the same sums in different orders,
so they agree to a few ulps of the largest term (1e-10 relative is ~1e6 ulps of slack). Central
differences with h = 1e-5 have truncation error O(h^2 |L'''|) ~ 1e-10 and rounding error
O(eps |L| / h) ~ 1e-11, so 1e-6 relative leaves four orders of margin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynError
from aedyn.gd import train
from aedyn.model import (
    REGIMES,
    Params,
    Tangent,
    decoder,
    evaluate,
    forward,
    gradients,
    init_params,
    jvp,
    loss,
    output_scale,
    trained_layers,
    vjp,
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def autograd_grads(params: Params, X: torch.Tensor, regime: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    W = params.W.clone().requires_grad_(True)
    V = None if params.V is None else params.V.clone().requires_grad_(True)
    Vd = W.T if regime == "tied" else V
    U = params.alpha * torch.relu(X @ W.T) @ Vd.T
    L = 0.5 * ((U - X) ** 2).sum()
    L.backward()
    enc, dec = trained_layers(regime)
    return (W.grad if enc else None), (V.grad if dec else None)


def test_forward_equals_sum_over_neurons(small_X):
    p = init_params(5, 13, seed=3)
    U = forward(p, small_X, "joint")
    for i, x in enumerate(small_X):
        expected = sum(p.V[:, r] * max(float(p.W[r] @ x), 0.0) for r in range(13)) * p.alpha
        torch.testing.assert_close(U[i], expected, rtol=1e-13, atol=1e-13)


def test_tied_forward_is_untied_with_transposed_encoder(small_X):
    p = init_params(5, 9, regime="tied", seed=4)
    untied = Params(p.W, p.W.T.clone(), p.alpha)
    # the same products, but the GEMM gets the decoder as W (row-major) in one and as V^T (a transposed view) in
    # the other, which BLAS may pack and sum in another order: rounding of a length-9 dot product of O(1) terms
    # (~1e-15), far below the O(1) error of a wrong decoder
    torch.testing.assert_close(forward(p, small_X, "tied"), forward(untied, small_X, "joint"), rtol=1e-13, atol=1e-13)


def test_loss_is_half_squared_frobenius(small_X):
    p = init_params(5, 9, seed=5)
    R = forward(p, small_X, "joint") - small_X
    assert float(loss(p, small_X, "joint")) == pytest.approx(0.5 * float((R * R).sum()), rel=1e-14)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shape", [(7, 5, 9), (3, 11, 64), (20, 4, 2)])
def test_gradients_equal_autograd(regime, shape):
    n, d, m = shape
    X = sphere(n, d, seed=n + d + m)
    p = init_params(d, m, regime=regime, seed=m, nu=0.7, kappa=1.3)
    g = gradients(p, X, regime)
    gW, gV = autograd_grads(p, X, regime)
    enc, dec = trained_layers(regime)
    assert (g.W is not None) == enc and (g.V is not None) == dec
    if enc:
        assert rel_err(g.W, gW) < 1e-10
    if dec:
        assert rel_err(g.V, gV) < 1e-10


@pytest.mark.parametrize("regime", REGIMES)
def test_gradients_equal_central_differences_entrywise(regime):
    n, d, m, h = 4, 3, 5, 1e-5
    X = sphere(n, d, seed=1)
    p = init_params(d, m, regime=regime, seed=2)
    g = gradients(p, X, regime)
    enc, dec = trained_layers(regime)
    for name, grad in (("W", g.W), ("V", g.V)):
        if grad is None:
            continue
        fd = torch.zeros_like(grad)
        for idx in np.ndindex(*grad.shape):
            plus, minus = p.clone(), p.clone()
            getattr(plus, name)[idx] += h
            getattr(minus, name)[idx] -= h
            fd[idx] = (loss(plus, X, regime) - loss(minus, X, regime)) / (2 * h)
        assert rel_err(grad, fd) < 1e-6, name
    assert enc or dec


def test_gradients_match_central_difference_along_random_direction():
    X = sphere(16, 8, seed=7)
    p = init_params(8, 256, seed=8)
    g = gradients(p, X, "joint")
    gen = torch.Generator().manual_seed(9)
    dW = torch.randn(p.W.shape, generator=gen, dtype=torch.float64)
    dV = torch.randn(p.V.shape, generator=gen, dtype=torch.float64)
    h = 1e-5
    Lp = loss(Params(p.W + h * dW, p.V + h * dV, p.alpha), X, "joint")
    Lm = loss(Params(p.W - h * dW, p.V - h * dV, p.alpha), X, "joint")
    fd = float((Lp - Lm) / (2 * h))
    analytic = float((g.W * dW).sum() + (g.V * dV).sum())
    assert fd == pytest.approx(analytic, rel=1e-6)


def test_tied_gradient_is_chain_rule_of_untied():
    """V = W^T: dL/dW(tied) = dL/dW(untied) + (dL/dV(untied))^T at V = W^T."""
    X = sphere(9, 6, seed=3)
    p = init_params(6, 17, regime="tied", seed=5)
    untied = Params(p.W, p.W.T.clone(), p.alpha)
    g_untied = gradients(untied, X, "joint")
    torch.testing.assert_close(gradients(p, X, "tied").W, g_untied.W + g_untied.V.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("regime", REGIMES)
def test_jvp_and_vjp_equal_autograd(regime):
    n, d, m = 6, 4, 10
    X = sphere(n, d, seed=21)
    p = init_params(d, m, regime=regime, seed=22)
    enc, dec = trained_layers(regime)
    gen = torch.Generator().manual_seed(23)
    tW = torch.randn(p.W.shape, generator=gen, dtype=torch.float64) if enc else None
    tV = torch.randn(d, m, generator=gen, dtype=torch.float64) if dec else None
    c = torch.randn(n, d, generator=gen, dtype=torch.float64)

    def f(W, V):
        Vd = W.T if regime == "tied" else V
        return p.alpha * torch.relu(X @ W.T) @ Vd.T

    W0 = p.W
    V0 = p.V if p.V is not None else torch.zeros(d, m, dtype=torch.float64)
    zero_W = torch.zeros_like(W0)
    zero_V = torch.zeros_like(V0)
    _, ref_jvp = torch.func.jvp(f, (W0, V0), (tW if enc else zero_W, tV if dec else zero_V))
    torch.testing.assert_close(jvp(p, X, regime, Tangent(tW, tV)), ref_jvp, rtol=1e-12, atol=1e-12)
    _, pullback = torch.func.vjp(f, W0, V0)
    ref_W, ref_V = pullback(c)
    got = vjp(p, X, regime, c)
    if enc:
        torch.testing.assert_close(got.W, ref_W, rtol=1e-12, atol=1e-12)
    if dec:
        torch.testing.assert_close(got.V, ref_V, rtol=1e-12, atol=1e-12)


def test_evaluate_returns_consistent_pieces(small_X):
    p = init_params(5, 9, seed=6)
    ev = evaluate(p, small_X, "joint")
    R = forward(p, small_X, "joint") - small_X
    torch.testing.assert_close(ev.residual, R, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(ev.loss, loss(p, small_X, "joint"), rtol=1e-14, atol=0)
    torch.testing.assert_close(ev.features.A, torch.relu(small_X @ p.W.T), rtol=0, atol=0)


@pytest.mark.parametrize("regime", REGIMES)
def test_batched_parameters_match_one_network_at_a_time(small_X, regime):
    """A batch sharing X (whose encoder gradient takes another GEMM layout) and a batch with its own X per network."""
    nets = [init_params(5, 8, regime=regime, seed=s) for s in range(3)]
    V = None if regime == "tied" else torch.stack([q.V for q in nets])
    batch = Params(torch.stack([q.W for q in nets]), V, nets[0].alpha)
    for X in (small_X, torch.stack([small_X, small_X.flip(0), 2 * small_X])):
        U = forward(batch, X, regime)
        L = loss(batch, X, regime)
        g = gradients(batch, X, regime)
        for b, q in enumerate(nets):
            Xb = X if X.ndim == 2 else X[b]
            torch.testing.assert_close(U[b], forward(q, Xb, regime), rtol=1e-13, atol=1e-13)
            torch.testing.assert_close(L[b], loss(q, Xb, regime), rtol=1e-13, atol=0)
            gq = gradients(q, Xb, regime)
            for mine, alone in ((g.W, gq.W), (g.V, gq.V)):
                assert (mine is None) == (alone is None)
                if alone is not None:
                    torch.testing.assert_close(mine[b], alone, rtol=1e-13, atol=1e-13)


def test_init_statistics_and_scales():
    m, d = 20000, 8
    p = init_params(d, m, seed=0, kappa=2.0, nu=0.5)
    N = m * d
    # sample variance of N Gaussians has standard error sigma^2 sqrt(2/N); allow 5 standard errors
    assert float(p.W.var()) == pytest.approx(4.0, abs=5 * 4.0 * math.sqrt(2 / N))
    assert float(p.V.var()) == pytest.approx(0.25, abs=5 * 0.25 * math.sqrt(2 / N))
    assert abs(float(p.W.mean())) < 5 * 2.0 / math.sqrt(N)
    assert p.alpha == pytest.approx(1 / math.sqrt(m))
    rad = init_params(d, 64, seed=0, nu=0.5, decoder_init="rademacher")
    assert set(rad.V.unique().tolist()) == {-0.5, 0.5}
    assert init_params(d, 64, scale="mean-field").alpha == pytest.approx(1 / 64)
    assert init_params(d, 64, scale=0.3).alpha == 0.3
    assert init_params(d, 64, regime="tied").V is None
    assert decoder(init_params(d, 4, regime="tied"), "tied").shape == (d, 4)


def test_same_seed_same_network_different_seed_different():
    a, b, c = init_params(6, 32, seed=1), init_params(6, 32, seed=1), init_params(6, 32, seed=2)
    assert torch.equal(a.W, b.W) and torch.equal(a.V, b.V)
    assert not torch.equal(a.W, c.W)
    assert torch.equal(init_params(6, 32, seed=1, dtype="float32").W, a.W.float())


def test_params_save_load_roundtrip(tmp_path):
    p = init_params(6, 32, seed=1)
    p.save(tmp_path / "p.npz")
    q = Params.load(tmp_path / "p.npz")
    assert torch.equal(p.W, q.W) and torch.equal(p.V, q.V) and p.alpha == q.alpha
    t = init_params(6, 32, seed=1, regime="tied")
    t.save(tmp_path / "t.npz")
    assert Params.load(tmp_path / "t.npz").V is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"width": 0}, "width must be a positive integer"),
    ({"width": -3}, "width must be a positive integer"),
    ({"regime": "encoder"}, "unknown regime"),
    ({"kappa": 0.0}, "kappa"),
    ({"nu": -1.0}, "nu"),
    ({"decoder_init": "uniform"}, "decoder init"),
    ({"scale": "xavier"}, "init scale"),
    ({"scale": -1.0}, "positive"),
])
def test_init_rejects_bad_settings(kwargs, match):
    args = {"d": 4, "width": 8} | kwargs
    with pytest.raises(AedynError, match=match):
        init_params(args.pop("d"), args.pop("width"), **args)


def test_wrong_input_dimension_and_missing_decoder():
    p = init_params(4, 8)
    with pytest.raises(AedynError, match="d = 3"):
        forward(p, torch.ones(2, 3, dtype=torch.float64), "joint")
    with pytest.raises(AedynError, match="needs a decoder"):
        forward(init_params(4, 8, regime="tied"), torch.ones(2, 4), "joint")


def test_tied_refuses_a_decoder_of_its_own(small_X):
    """Tied networks use V = W^T (init_params gives them no V): parameters that carry a V are refused
    in the tied regime, whether or not it equals W^T, rather than having it silently ignored."""
    p = init_params(5, 9, regime="tied", seed=4)
    other = init_params(5, 9, regime="joint", seed=4)
    for V in (other.V, p.W.T.clone()):
        carrying = Params(p.W, V, p.alpha)
        for call in (lambda q: forward(q, small_X, "tied"), lambda q: gradients(q, small_X, "tied"),
                     lambda q: train(small_X, q, "tied", lr=0.1, steps=1)):
            with pytest.raises(AedynError, match=r"tied' uses V = W\^T.*Params\(W, None, alpha\)"):
                call(carrying)


def test_numpy_input_accepted():
    p = init_params(4, 8)
    X = np.eye(4)
    torch.testing.assert_close(forward(p, X, "joint"), forward(p, torch.eye(4, dtype=torch.float64), "joint"))


def test_output_scale_values():
    assert output_scale("ntk", 100) == pytest.approx(0.1)
    assert output_scale("mean-field", 100) == pytest.approx(0.01)
    assert output_scale("0.5", 100) == 0.5


def test_safe_radius_is_exactly_the_distance_no_pattern_can_flip_within():
    """Moves of length just under each neuron's radius, in random directions and straight at its
    nearest hyperplane, flip nothing; the move straight at it of length just over flips; zero
    inputs are ignored; a batch of networks equals each alone; NumPy input is accepted."""
    from aedyn.model import safe_radius

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    X[3] = 0.0
    params = init_params(5, 40, seed=1)
    r = safe_radius(params, X)
    assert r.shape == (40,) and bool((r > 0).all())
    patterns = (X @ params.W.T) > 0
    units = X / X.norm(dim=1, keepdim=True).clamp_min(1e-300)
    scores = (X @ params.W.T).abs() / X.norm(dim=1, keepdim=True).clamp_min(1e-300)
    scores[3] = math.inf
    nearest = scores.argmin(dim=0)  # the sample whose hyperplane each neuron is closest to
    toward = -torch.sign((params.W * units[nearest]).sum(1))[:, None] * units[nearest]
    for scale, flips in ((0.999, False), (1.001, True)):
        W = params.W + scale * r[:, None] * toward
        changed = ((X @ W.T) > 0) != patterns
        assert bool(changed.any(dim=0).all()) is flips
    for _ in range(20):
        direction = torch.randn(40, 5, generator=gen, dtype=torch.float64)
        W = params.W + 0.999 * r[:, None] * direction / direction.norm(dim=1, keepdim=True)
        assert torch.equal((X @ W.T) > 0, patterns)
    batch = Params(torch.stack([params.W, 2 * params.W]), None, params.alpha)
    assert torch.allclose(safe_radius(batch, X), torch.stack([r, 2 * r]))
    assert torch.equal(safe_radius(params, X.numpy()), r)
    assert bool(torch.isinf(safe_radius(params, torch.zeros(3, 5, dtype=torch.float64))).all())
