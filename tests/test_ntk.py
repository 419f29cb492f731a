"""Finite-width NTK products and extremes against dense autograd Jacobians (float64)."""

from __future__ import annotations

import pytest
import torch

from aedyn.data import sphere
from aedyn.model import REGIMES, init_params, trained_layers
from aedyn.ntk import NTKOperator, ntk_extremes


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
