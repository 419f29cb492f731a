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


def known_trials(passed: dict[int, list[bool]]) -> dict:
    """Trials at every given width whose seeds pass (both criteria) as given."""
    from aedyn.threshold import CRITERIA, Trial

    out = {}
    for w, p in passed.items():
        s = len(p)
        out[w] = Trial(width=w, seeds=tuple(range(s)), status=("converged",) * s, steps=(10,) * s, lr=(0.1,) * s,
                       lambda_min0=(0.1,) * s, lambda_max0=(1.0,) * s, predicted_rate=(0.98,) * s,
                       passed={c: tuple(p) for c in CRITERIA}, rate_held=tuple(p), kernel_ratio=(1.0,) * s,
                       lambda_min_low=(0.1,) * s)
    return out


def check_completeness(mod, finished, key: str = "runs", count: int | None = None) -> None:
    """What the report checks before it reuses an experiment's finished results (``mod.missing``):
    complete ones lack nothing (and ``mod.runs`` names ``count`` runs, default those under ``key``),
    cut or padded ones say so, a run with other settings is named twice, damaged ones are an error."""
    import json

    import pytest

    from aedyn._meta import jsonable

    results = json.loads(json.dumps(jsonable(finished)))
    cfg, runs = results["config"], results[key]
    assert mod.missing(cfg, results) == [] and len(mod.runs(cfg)) == (len(runs) if count is None else count)
    assert "lacks" in mod.missing(cfg, {**results, key: runs[:3]})[0]
    assert "does not ask for" in mod.missing(cfg, {**results, key: runs + runs[:1]})[0]
    assert len(mod.missing(cfg, {**results, key: [runs[0], {**runs[1], "seed": 99}, *runs[2:]]})) == 2
    for damaged in ({**results, key: "x"}, {**results, key: [{}]}, {**results, "notes": None},
                    {k: v for k, v in results.items() if k != "notes"}, [],
                    {**results, key: [{**runs[0], "width": "wide"}, *runs[1:]]}):
        with pytest.raises(ValueError):
            mod.missing(cfg, damaged)
