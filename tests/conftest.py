"""Shared fixtures: float64 everywhere, small seeded problems."""

from __future__ import annotations

import warnings

import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynWarning


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def small_X() -> torch.Tensor:
    """7 unit vectors in R^5 (float64)."""
    return sphere(7, 5, seed=11)


@pytest.fixture
def quiet_aedyn_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AedynWarning)
        yield
