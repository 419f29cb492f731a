"""Shared fixtures: float64 everywhere, small seeded problems."""

from __future__ import annotations

import warnings

import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynWarning


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``aedyn ARGS`` in this process: exit code, stdout, stderr."""
    from aedyn import cli

    code = cli.run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> bool:
    """stderr holds exactly one ``error:`` line (notes aside) and no traceback."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    return len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err


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
