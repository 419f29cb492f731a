"""Finite-width NTK products and extremes against dense autograd Jacobians (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.gd import train
from aedyn.kernels import regime_kernel
from aedyn.model import REGIMES, init_params, trained_layers
from aedyn.ntk import NTKOperator, ntk_dense, ntk_drift, ntk_extremes


def autograd_ntk(params, X, regime) -> torch.Tensor:
    """``J J^T`` from torch.func Jacobians of vec U w.r.t. the trained layers (n d x n d)."""
    enc, dec = trained_layers(regime)
    W0, V0 = params.W, params.V

    def f(W, V):
        Vd = W.T if regime == "tied" else V
        return (params.alpha * torch.relu(X @ W.T) @ Vd.T).reshape(-1)

    V_arg = V0 if V0 is not None else torch.zeros(W0.shape[1], W0.shape[0], dtype=W0.dtype)
    JW, JV = torch.func.jacrev(f, argnums=(0, 1))(W0, V_arg)
    blocks = ([JW.reshape(JW.shape[0], -1)] if enc else []) + ([JV.reshape(JV.shape[0], -1)] if dec else [])
    J = torch.cat(blocks, dim=1)
    return J @ J.T


@pytest.mark.parametrize("regime", REGIMES)
def test_matvec_equals_autograd_jjt(regime):
    X = sphere(6, 4, seed=1)
    p = init_params(4, 32, regime=regime, seed=2)
    K = autograd_ntk(p, X, regime)
    op = NTKOperator(p, X, regime)
    v = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = op @ v
    ref = (K @ v.reshape(-1)).reshape(6, 4)
    assert float((got - ref).norm() / ref.norm()) < 1e-10
    assert torch.equal(op @ v.reshape(-1), got.reshape(-1))


@pytest.mark.parametrize("regime", REGIMES)
def test_extremes_equal_dense_eigvalsh(regime):
    X = sphere(8, 5, seed=4)
    p = init_params(5, 64, regime=regime, seed=5)
    ev = torch.linalg.eigvalsh(autograd_ntk(p, X, regime))
    ext = ntk_extremes(p, X, regime, tol=1e-11)
    assert ext.max == pytest.approx(float(ev[-1]), rel=1e-8)
    assert ext.min == pytest.approx(float(ev[0]), rel=1e-8)


def test_decoder_part_is_gram_kron_identity():
    X = sphere(5, 3, seed=6)
    p = init_params(3, 16, seed=7)
    G = NTKOperator(p, X, "decoder").decoder_gram()
    dense = autograd_ntk(p, X, "decoder")
    torch.testing.assert_close(dense, torch.kron(G, torch.eye(3, dtype=torch.float64)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("regime", REGIMES)
def test_dense_formula_equals_autograd_jjt(regime):
    X = sphere(7, 4, seed=8)
    p = init_params(4, 48, regime=regime, seed=9)
    K = autograd_ntk(p, X, regime)
    assert float((ntk_dense(p, X, regime) - K).norm() / K.norm()) < 1e-10


@pytest.mark.parametrize("regime", ["weak", "joint", "tied"])
def test_matrix_free_extremes_on_a_larger_problem(regime):
    """nd = 400: Lanczos and preconditioned LOBPCG really iterate here."""
    X = sphere(40, 10, seed=10)
    p = init_params(10, 512, regime=regime, seed=11)
    ev = torch.linalg.eigvalsh(ntk_dense(p, X, regime))
    ext = ntk_extremes(p, X, regime, tol=1e-10)
    assert ext.converged
    assert ext.min == pytest.approx(float(ev[0]), rel=1e-8)
    assert ext.max == pytest.approx(float(ev[-1]), rel=1e-8)


def test_block_products_equal_dense():
    X = sphere(9, 3, seed=12)
    p = init_params(3, 40, seed=13)
    op = NTKOperator(p, X, "joint")
    dense = ntk_dense(p, X, "joint")
    V = torch.randn(27, 5, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    torch.testing.assert_close(op.matmat(V), dense @ V, rtol=1e-12, atol=1e-12)
    batch = V.mT.reshape(5, 9, 3)
    torch.testing.assert_close((op @ batch).reshape(5, -1), (dense @ V).mT, rtol=1e-12, atol=1e-12)


def test_finite_width_kernel_tends_to_infinite_width_like_inverse_sqrt_m():
    """||Theta_m - K ⊗ I|| / ||K ⊗ I|| over m = 2^8..2^14, averaged over 4 seeds: log-log slope ~ -1/2."""
    X = sphere(6, 3, seed=15)
    K = torch.kron(regime_kernel(X, "joint"), torch.eye(3, dtype=torch.float64))
    widths = [2**k for k in range(8, 15)]
    errors = []
    for m in widths:
        errs = [float((ntk_dense(init_params(3, m, seed=s), X, "joint") - K).norm() / K.norm()) for s in range(4)]
        errors.append(np.mean(errs))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.7 <= slope <= -0.3, slope


def test_drift_exact_and_probe_estimate():
    X = sphere(12, 4, seed=16)
    p0 = init_params(4, 64, seed=17)
    r = train(X, p0, "joint", steps=100, target=0.0)
    op0, op1 = NTKOperator(p0, X, "joint"), NTKOperator(r.params, X, "joint")
    exact = ntk_drift(op1, op0)
    T0, T1 = ntk_dense(p0, X, "joint"), ntk_dense(r.params, X, "joint")
    assert exact.method == "exact"
    assert exact.value == pytest.approx(float((T1 - T0).norm() / T0.norm()), rel=1e-12)
    assert exact.value > 0
    # Hutchinson with 400 Rademacher probes. Measured over probe seeds 0..299 on this problem:
    # relative error of the estimate mean -0.03%, sd 0.99%, largest 3.4%. One estimate must be
    # within 5 sd (5%); the mean of 20 estimates (seeds 0..19) within 5 sd / sqrt(20) (1.2%),
    # which also bounds the estimator's bias. The drift scaled by 1.2 fails both (+20%), and
    # even a 1.05x error fails the mean.
    est = ntk_drift(op1, op0, probes=400, dense_limit=0)
    assert est.method.startswith("hutchinson")
    assert est.value == pytest.approx(exact.value, rel=0.05)
    mean = np.mean([ntk_drift(op1, op0, probes=400, seed=s, dense_limit=0).value for s in range(20)])
    assert mean == pytest.approx(exact.value, rel=0.012)


def test_train_records_ntk_at_cadence():
    X = sphere(10, 4, seed=18)
    r = train(X, init_params(4, 128, seed=19), "joint", steps=40, target=0.0, ntk_every=20)
    assert r.metrics["ntk_step"].tolist() == [0, 20, 40]
    assert r.metrics["ntk_drift"][0] == 0.0
    ev0 = torch.linalg.eigvalsh(ntk_dense(init_params(4, 128, seed=19), X, "joint"))
    assert r.metrics["ntk_lambda_min"][0] == pytest.approx(float(ev0[0]), rel=1e-6)
    assert r.config["ntk_drift_method"] == "exact"


def test_preconditioner_inverts_the_averaged_kernel():
    X = sphere(9, 3, seed=20)
    op = NTKOperator(init_params(3, 64, seed=21), X, "joint")
    K = op.averaged_kernel()
    V = torch.randn(27, 4, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    KV = (torch.kron(K, torch.eye(3, dtype=torch.float64)) @ V)
    torch.testing.assert_close(op.preconditioner()(KV), V, rtol=1e-6, atol=1e-8)
    # K is the coordinate trace-average of Theta's blocks
    dense = ntk_dense(op.params, X, "joint").reshape(9, 3, 9, 3)
    torch.testing.assert_close(K, torch.einsum("ikjk->ij", dense) / 3, rtol=1e-12, atol=1e-12)


def test_singular_ntk_lambda_min_is_zero_and_converges():
    """A duplicated sample makes Theta singular: lambda_min = 0 up to rounding of the largest eigenvalue."""
    X = sphere(12, 4, seed=23)
    X[11] = X[2]
    p = init_params(4, 256, seed=24)
    ev = torch.linalg.eigvalsh(ntk_dense(p, X, "joint"))
    ext = ntk_extremes(p, X, "joint")
    assert ext.converged
    assert abs(ext.min) < 1e-12 * float(ev[-1]) and abs(float(ev[0])) < 1e-12 * float(ev[-1])


@pytest.mark.parametrize("batched", [False, True])
def test_a_run_stopping_on_the_ntk_cadence_keeps_its_last_ntk_record(batched):
    """A network that converges exactly at a step of the NTK cadence (here step 89 of
    ``ntk_every = 89``) stops there, and that step's NTK record is its last: ``ntk_step`` ends
    at 89 and the final ``ntk_drift`` is the real drift from the final parameters, not the
    value at step 0. (E3's drift and the certificate's last kernel check read this record.)"""
    from aedyn.gd import train_batch
    from aedyn.model import Params

    X = sphere(8, 4, seed=5)
    p = init_params(4, 256, regime="weak", seed=7)
    free = train(X, p, "weak", lr=0.05, steps=120, target=0.0)
    L = free.loss
    assert np.all(np.diff(L[80:100]) < 0)
    target = float(np.sqrt(L[88] * L[89]) / L[0])  # crossed first at step 89
    if batched:  # with a partner that runs on: the stopped network is not the whole batch
        q = init_params(4, 256, regime="weak", seed=8)
        both = Params(torch.stack([p.W, q.W]), torch.stack([p.V, q.V]), p.alpha)
        r = train_batch(X, both, "weak", lr=np.array([0.05, 0.001]), steps=200, target=target, ntk_every=89)[0]
    else:
        r = train(X, p, "weak", lr=0.05, steps=200, target=target, ntk_every=89)
    assert (r.status, r.steps) == ("converged", 89)
    assert r.metrics["ntk_step"].tolist() == [0, 89]
    want = ntk_drift(NTKOperator(r.params, X, "weak"), NTKOperator(p, X, "weak")).value
    assert want > 1e-3
    assert r.metrics["ntk_drift"][-1] == pytest.approx(want, rel=1e-9)
