"""Matrix-free Lanczos against dense eigvalsh."""

from __future__ import annotations

import warnings

import pytest
import torch

from aedyn.errors import AedynWarning
from aedyn.linalg import lanczos_extremes


def spd_with_spectrum(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    n = len(eigs)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return Q @ torch.diag(eigs) @ Q.T


@pytest.mark.parametrize("which", ["min", "max", "both"])
def test_extremes_match_eigvalsh(which):
    eigs = torch.cat([torch.tensor([1e-3, 2e-3]), torch.linspace(0.1, 1, 150), torch.tensor([5.0])]).double()
    A = spd_with_spectrum(eigs)
    ref = torch.linalg.eigvalsh(A)
    ext = lanczos_extremes(lambda v: A @ v, A.shape[0], dtype=torch.float64, which=which, tol=1e-10,
                           max_iter=152)
    if which in ("min", "both"):
        assert ext.min == pytest.approx(float(ref[0]), rel=1e-8)
    if which in ("max", "both"):
        assert ext.max == pytest.approx(float(ref[-1]), rel=1e-8)
    assert ext.converged


def test_invariant_subspace_stops_early():
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    ext = lanczos_extremes(lambda v: A @ v, 3, dtype=torch.float64, tol=1e-12)
    assert ext.min == pytest.approx(1.0, rel=1e-12) and ext.max == pytest.approx(3.0, rel=1e-12)
    assert ext.iterations <= 3


def test_not_converged_warns():
    A = spd_with_spectrum(torch.linspace(1e-4, 1, 400).double())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", AedynWarning)
        ext = lanczos_extremes(lambda v: A @ v, 400, dtype=torch.float64, which="min", tol=1e-12, max_iter=10)
    assert not ext.converged and any("without reaching" in str(x.message) for x in w)
