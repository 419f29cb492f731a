"""The measures a job declares (aedyn.measures): their specification, identity and columns."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aedyn.errors import AedynError
from aedyn.job import TrainJob, run_batch
from aedyn.measures import MEASURES, Measure, check_measures, measure
from aedyn.model import Params, init_params
from aedyn.sweep import result_row, run_id


def test_a_measure_is_a_name_or_a_name_with_checked_options():
    assert measure("heldout", seed=2, n=8) == Measure("heldout", (("n", 8), ("seed", 2)))
    assert check_measures(["ntk_path", {"name": "heldout", "n": 8}, "ntk_path"]) == (
        Measure("ntk_path"), Measure("heldout", (("n", 8),)))
    assert Measure("ntk_path").to_json() == "ntk_path"
    assert Measure("heldout", (("n", 8),)).to_json() == {"name": "heldout", "n": 8}
    for bad, match in [("nope", "unknown measure"), ({"name": "heldout", "size": 3}, "no option 'size'"),
                       ({"name": "heldout", "n": [1]}, "finite number"), ({"name": "heldout", "n": float("nan")},
                                                                          "finite number"),
                       (3, "a measure is a name")]:
        with pytest.raises(AedynError, match=match):
            check_measures([bad])
    with pytest.raises(AedynError, match="list of measure names"):
        check_measures("ntk_path")
    with pytest.raises(AedynError, match="declared twice"):
        check_measures([{"name": "heldout", "n": 8}, {"name": "heldout", "n": 9}])
    assert set(MEASURES) >= {"ntk_path", "ntk_ends", "weights", "heldout", "linearised", "limit", "memorisation"}


def test_options_are_part_of_a_jobs_identity_and_bare_names_keep_older_ids():
    base = TrainJob(regime="joint", data="sphere", n=6, d=3, width=16, steps=5, ntk_every=2)
    named = dataclasses.replace(base, measures=("ntk_path",))
    assert named.to_dict()["measures"] == ["ntk_path"]  # as jobs wrote it before measures took options
    a = dataclasses.replace(base, measures=({"name": "heldout", "n": 8},))
    b = dataclasses.replace(base, measures=({"name": "heldout", "n": 9},))
    assert len({run_id(base), run_id(named), run_id(a), run_id(b)}) == 4
    with pytest.raises(AedynError, match="set ntk_every"):
        TrainJob(regime="joint", data="sphere", n=6, d=3, width=16, steps=5, measures=("ntk_ends",))


def test_declared_measures_are_computed_where_the_job_runs_and_join_its_row():
    jobs = [TrainJob(regime="joint", data="sphere", n=6, d=3, width=32, steps=20, seed=s,
                     measures=("weights", {"name": "heldout", "n": 5, "seed": 9})) for s in range(2)]
    results = run_batch(jobs)
    row = result_row(run_id(jobs[1]), jobs[1], results[1])
    assert row["n_test"] == 5 and row["rescale_c_identity"] == pytest.approx((2 / (32 ** -0.5 * 32)) ** 0.5)
    W0, W = results[1].init.W, results[1].params.W  # the second network's own weights, not the first's
    assert row["max_neuron_rel_W"] == pytest.approx(float(((W - W0).norm(dim=1) / W0.norm(dim=1)).max()), rel=1e-12)


def test_two_measures_giving_one_column_are_refused():
    from aedyn.measures import compute

    job = TrainJob(regime="joint", data="sphere", n=6, d=3, width=16, steps=3, ntk_every=1,
                   measures=("ntk_ends", "linearised"))  # both give lambda_min0
    X = job.load(__import__("aedyn.job", fromlist=["Notes"]).Notes())
    (result,) = run_batch([dataclasses.replace(job, measures=())])
    with pytest.raises(AedynError, match="both give the column 'lambda_min0'"):
        compute(job.measures, result, X, job)


def test_params_stack_is_the_one_way_to_batch_networks():
    nets = [init_params(3, 8, seed=s) for s in range(3)]
    batch = Params.stack(nets)
    assert batch.W.shape == (3, 8, 3) and batch.V.shape == (3, 3, 8)
    assert all(torch.equal(batch.network(b).W, nets[b].W) and torch.equal(batch.network(b).V, nets[b].V)
               for b in range(3))
    with pytest.raises(AedynError, match="share their shapes"):
        Params.stack([nets[0], init_params(3, 9)])
    with pytest.raises(AedynError, match="share their shapes"):
        Params.stack([nets[0], init_params(3, 8, regime="tied")])
    with pytest.raises(AedynError, match="at least one"):
        Params.stack([])


def test_zero_output_and_per_class_are_job_settings():
    job = TrainJob(regime="joint", data="digits", per_class=1, classes=(3, 4), width=8, steps=2, zero_output=True)
    assert job.expected_shape() == (2, 64)
    params = job.init(64, 8)
    X = torch.randn(5, 64, dtype=torch.float64)
    paired = params.alpha * torch.relu(X @ params.W.T) * params.V[0]  # one output coordinate, neuron by neuron
    assert torch.equal(paired[:, :4], -paired[:, 4:])  # neurons in cancelling pairs: f_0 ≡ 0 up to the sum's rounding
    with pytest.raises(AedynError, match="tied"):
        TrainJob(regime="tied", data="sphere", n=4, d=3, width=8, zero_output=True)
