"""Random streams: one user seed, independent data and initialisation (docs/math/model.md, "Initialisation")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aedyn._seed import SCHEME, numpy_generator, torch_generator
from aedyn.data import load_data
from aedyn.errors import AedynError
from aedyn.job import TrainJob, run_job
from aedyn.model import init_params


def test_init_is_uncorrelated_with_sphere_data_for_equal_seeds():
    """cos(w_r, x_r) for r < n over 50 seeds, with the same integer seeding data and weights.

    For independent directions in R^d: E[cos] = 0, E[cos^2] = 1/d, Var[cos^2] = 3/(d(d+2)) - 1/d^2.
    Both means must lie within 5 standard errors of those values (a shared stream gives cos = 1)."""
    n, d, m, seeds = 32, 8, 64, 50
    cos = []
    for s in range(seeds):
        X = load_data("sphere", n=n, d=d, seed=s)
        W = init_params(d, m, seed=s).W
        cos.append(torch.nn.functional.cosine_similarity(W[:n], X, dim=1))
    c = torch.cat(cos).numpy()
    N = c.size
    assert abs(c.mean()) <= 5 * math.sqrt(1 / d) / math.sqrt(N)
    var_c2 = 3 / (d * (d + 2)) - 1 / d**2
    assert abs((c**2).mean() - 1 / d) <= 5 * math.sqrt(var_c2 / N)
    # the largest |cos| over the n aligned pairs of one seed is at the level of chance, far from 1
    assert np.abs(c.reshape(seeds, n)).max(axis=1).mean() < 0.9


def test_streams_differ_by_purpose_and_repeat_by_seed():
    a = torch.randn(5, generator=torch_generator(3, "data"), dtype=torch.float64)
    b = torch.randn(5, generator=torch_generator(3, "init"), dtype=torch.float64)
    again = torch.randn(5, generator=torch_generator(3, "data"), dtype=torch.float64)
    assert torch.equal(a, again) and not torch.equal(a, b)
    assert numpy_generator(7, "data").integers(1 << 30) == numpy_generator(7, "data").integers(1 << 30)
    with pytest.raises(AedynError, match="unknown random stream"):
        torch_generator(0, "other")
    for bad in (-1, 2**63, 1.5, True, "3"):
        with pytest.raises(AedynError, match="seed"):
            torch_generator(bad, "data")


def test_job_records_both_seeds_and_the_scheme(quiet_aedyn_warnings):
    job = TrainJob(regime="joint", data="sphere", n=12, d=4, width=32, steps=2, seed=5)
    r = run_job(job)
    rec = r.config["job"]
    assert rec["seed"] == 5 and rec["data_seed"] == 5 and rec["seed_scheme"] == SCHEME
    X = load_data("sphere", n=12, d=4, seed=5)
    cos = torch.nn.functional.cosine_similarity(r.init.W[:12], X, dim=1)
    assert float(cos.abs().max()) < 0.999
    other = run_job(TrainJob(regime="joint", data="sphere", n=12, d=4, width=32, steps=2, seed=5, data_seed=6))
    assert other.config["job"]["data_seed"] == 6
    assert torch.equal(other.init.W, r.init.W) and other.loss[0] != r.loss[0]
