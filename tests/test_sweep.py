"""Sweeps: the TOML config, planning and run ids, batches, rows, resuming, a killed sweep, Dask."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aedyn import job as jobs
from aedyn import sweep
from aedyn.errors import AedynError
from aedyn.gd import METRICS
from aedyn.job import TrainJob
from aedyn.store import Store

TINY = """
[grid]
regime = ["weak", "joint"]
data = ["sphere"]
n = [5]
d = [3]
width = [8, 16]
seed = [0, 1, 2]
[train]
steps = 60
"""



def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def config(text: str = TINY, **sweep_settings) -> sweep.SweepConfig:
    import tomllib

    data = tomllib.loads(textwrap.dedent(text))
    if sweep_settings:
        data.setdefault("sweep", {}).update(sweep_settings)
    return sweep.parse_config(data)


def grid(**train) -> dict:
    base = {"grid": {"data": "sphere", "n": [5], "d": [3], "width": [8]}, "train": {"steps": 5}}
    base["train"].update(train)
    return base


# ---- the config ---------------------------------------------------------------------------------

def test_valid_config_is_the_product_of_its_axes():
    runs = sweep.plan(config())
    assert len(runs) == 2 * 2 * 3
    assert {r.job.regime for r in runs} == {"weak", "joint"} and {r.job.width for r in runs} == {8, 16}
    assert all(r.job.steps == 60 and r.job.data == "sphere" for r in runs)
    assert runs[0].job.seed == 0 and runs[1].job.seed == 1  # the last key varies fastest


def test_scalars_in_grid_are_axes_of_one_and_lists_in_train_are_axes():
    cfg = sweep.parse_config({"grid": {"data": "sphere", "n": 5, "d": 3, "width": 8},
                              "train": {"lr": ["auto", 0.5], "steps": [3, 4, 5]}})
    runs = sweep.plan(cfg)
    assert len(runs) == 6
    assert {r.job.lr for r in runs} == {"auto", 0.5} and {r.job.steps for r in runs} == {3, 4, 5}


def test_d_is_dropped_for_digits_and_duplicates_are_planned_once():
    cfg = sweep.parse_config({"grid": {"data": ["digits", "sphere"], "n": [10], "d": [3, 4], "width": [8, 8]}})
    runs = sweep.plan(cfg)
    assert len(runs) == 3  # digits once (d dropped), sphere with d = 3 and d = 4
    digits = [r for r in runs if r.job.data == "digits"]
    assert len(digits) == 1 and digits[0].job.d is None


def test_classes_take_one_set_or_an_axis_of_sets():
    one = sweep.plan(sweep.parse_config({"grid": {"data": "digits", "classes": [0, 1], "width": 8}}))
    assert [r.job.classes for r in one] == [(0, 1)]
    axis = sweep.plan(sweep.parse_config({"grid": {"data": "digits", "classes": [[0, 1], "3,8"], "width": 8}}))
    assert [r.job.classes for r in axis] == [(0, 1), (3, 8)]


@pytest.mark.parametrize("data, needle", [
    (grid() | {"grid": {**grid()["grid"], "width": ["a"]}}, "[grid] width = 'a': width must be a positive integer"),
    (grid(steps=1.5), "[train] steps = 1.5: steps must be"),
    (grid(lr="fast"), "[train] lr = 'fast'"),
    (grid() | {"grid": {**grid()["grid"], "width": []}}, "[grid] width: an empty list"),
    ({"grid": {"regime": ["weak", "joint"], "data": "sphere", "n": 5, "d": 3, "width": 8}, "train": {"nu": 0}},
     "[grid] regime = 'weak' with [train] nu = 0: weak training with nu = 0"),
    ({"grid": {"regime": ["weak"], "data": "sphere", "n": 5, "d": 3, "width": 8}, "train": {"lr_decoder": 0.1}},
     "[train] lr_decoder = 0.1"),
    ({"grid": {"data": "digits", "n": [10, 5000], "width": 8}}, "[grid] n = 5000: n = 5000 but digits has only 1797"),
    ({"grid": {"data": "missing.npy", "width": 8}}, "[grid] data = 'missing.npy': data file 'missing.npy' does not"),
    (grid() | {"grid": {**grid()["grid"], "colour": [1]}}, "[grid] colour: unknown key"),
    (grid() | {"grid": {**grid()["grid"], "steps": [1]}}, "steps appears in both [grid] and [train]"),
    (grid() | {"extra": {"a": 1}}, "unknown table [extra]"),
    (grid() | {"width": 8}, "width is outside any table"),
    (grid() | {"sweep": {"batch_size": 0}}, "[sweep] batch_size must be a positive integer"),
    (grid() | {"sweep": {"colour": "red"}}, "[sweep] colour: unknown key"),
    (grid() | {"sweep": {"name": 3}}, "[sweep] name must be a string"),
    (grid() | {"grid": {**grid()["grid"], "d": [[3]]}}, "[grid] d: a value must be a number"),
    (grid() | {"grid": {**grid()["grid"], "classes": [0, 1]}}, "classes = [0, 1]: --classes filters digit labels"),
    ({"train": {"steps": 3}}, "no [grid] table"),
    ({"grid": {"width": 8}, "train": 3}, "train must be a table"),
])
def test_bad_configs_are_one_line_naming_the_key(data, needle):
    with pytest.raises(AedynError) as info:
        sweep.plan(sweep.parse_config(data))
    text = str(info.value)
    assert text.startswith("sweep config") and needle in text and "\n" not in text


def test_toml_file_errors_are_one_line(tmp_path):
    bad = write(tmp_path, "[grid]\nwidth = [8,\nsteps == 3\n")
    with pytest.raises(AedynError, match=r"not valid TOML: .*line 3") as info:
        sweep.load_config(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(AedynError, match="does not exist"):
        sweep.load_config(tmp_path / "none.toml")
    with pytest.raises(AedynError, match="is a folder"):
        sweep.load_config(tmp_path)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe[grid]")
    with pytest.raises(AedynError, match="sweep config"):
        sweep.load_config(binary)
    assert len(sweep.plan(sweep.load_config(write(tmp_path, TINY)))) == 12


def test_store_config_ignores_table_placement_and_run_settings():
    a = sweep.parse_config({"grid": {"width": [8], "data": "sphere"}, "train": {"steps": 3}})
    b = sweep.parse_config({"grid": {"steps": 3, "data": ["sphere"], "width": 8},
                            "sweep": {"batch_size": 3, "name": "x"}})
    assert a.store_config() == b.store_config()
    c = sweep.parse_config({"grid": {"width": [8, 16], "data": "sphere"}, "train": {"steps": 3}})
    assert c.store_config() != a.store_config()


# ---- run ids ------------------------------------------------------------------------------------

def test_run_id_is_stable_across_parses_and_processes(tmp_path):
    ids = [r.run_id for r in sweep.plan(config())]
    assert ids == [r.run_id for r in sweep.plan(config())]
    assert len(set(ids)) == len(ids) and all(len(i) == 16 for i in ids)
    path = write(tmp_path, TINY)
    code = f"from aedyn import sweep; print(' '.join(r.run_id for r in sweep.plan(sweep.load_config({str(path)!r}))))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ids


def test_run_id_changes_with_every_field():
    base = TrainJob(regime="joint", data="sphere", n=5, d=3, width=8, steps=5)
    changed = {"regime": "weak", "data": "digits", "n": 6, "d": 4, "classes": (0, 1), "normalize": False,
               "kappa": 2.0, "nu": 0.5, "decoder_init": "rademacher", "seed": 1, "data_seed": 7,
               "dtype": "float32", "width": 9, "init_scale": "mean-field", "lr": 0.5, "lr_decoder": 0.1,
               "steps": 6, "target": 1e-3, "record_every": 3, "ntk_every": 2, "certify": True,
               "measures": ("ntk_path",), "per_class": 1, "zero_output": True}
    skip = {"key", "device"}  # a .npz-only option; one device on this machine
    assert set(changed) | skip == set(sweep.JOB_FIELDS)
    seen = {sweep.run_id(base)}
    for name, value in changed.items():
        extra = {"data": "digits", "d": None, "n": 10} if name in ("data", "classes") else {}
        if name == "per_class":
            extra = {"data": "digits", "d": None, "n": None}
        if name == "measures":
            extra = {"ntk_every": 2}
        job = dataclasses.replace(base, **{name: value, **extra})
        assert sweep.run_id(job) not in seen, name
        seen.add(sweep.run_id(job))
    assert sweep.run_id(dataclasses.replace(base, data_seed=0)) == sweep.run_id(base)  # data_seed defaults to seed
    # options added later are absent from the id while unset: the runs of older stores keep their ids
    assert "per_class" not in base.to_dict() and "zero_output" not in base.to_dict()


# ---- batches ------------------------------------------------------------------------------------

def test_make_batches_groups_equal_keys_in_chunks(monkeypatch):
    monkeypatch.setattr(sweep, "batch_key", lambda job: (job.regime, job.width))
    runs = sweep.plan(sweep.parse_config({"grid": {"regime": ["weak", "joint"], "data": "sphere", "n": 5, "d": 3,
                                                   "width": [8, 16], "seed": list(range(7))}}))
    batches = sweep.make_batches(runs, 3)
    assert batches == sweep.make_batches(runs, 3)
    assert [len(b) for b in batches] == [3, 2, 2] * 4  # 7 runs per key: the fewest chunks, as even as possible
    for b in batches:
        assert len({(r.job.regime, r.job.width) for r in b}) == 1
    assert [r for b in batches for r in b] == runs  # grid order kept: keys in order of first appearance
    assert [len(b) for b in sweep.make_batches(runs, 64)] == [7] * 4
    assert [len(b) for b in sweep.make_batches(runs, 1)] == [1] * 28
    with pytest.raises(AedynError, match="batch_size"):
        sweep.make_batches(runs, 0)


def test_make_batches_with_the_engines_key():
    runs = sweep.plan(config())
    batches = sweep.make_batches(runs, 2)
    assert sorted(r.run_id for b in batches for r in b) == sorted(r.run_id for r in runs)
    for b in batches:
        assert 1 <= len(b) <= 2 and len({jobs.batch_key(r.job) for r in b}) == 1


# ---- rows ---------------------------------------------------------------------------------------

def test_loss_steps_are_a_log_grid_with_both_ends():
    assert sweep.loss_steps(0) == [0]
    assert sweep.loss_steps(3) == [0, 1, 2, 3]
    grid_ = sweep.loss_steps(2000)
    assert grid_[0] == 0 and grid_[1] == 1 and grid_[-1] == 2000 and len(grid_) <= 66
    assert grid_ == sorted(set(grid_))


def test_result_row_is_plain_values():
    run = sweep.plan(sweep.parse_config(grid(steps=40, record_every=7, ntk_every=20)))[0]
    result = jobs.run_batch([run.job])[0]
    row = sweep.result_row(run.run_id, run.job, result)
    for name in ("run_id", "regime", "data", "n", "d", "width", "seed", "data_seed", "status", "steps",
                 "final_relative_loss", "final_loss", "initial_loss", "rate", "rate_r2", "floor_step", "lr",
                 "lr_auto", "lr_decoder", "lambda_max", "wall_time", "batch_size", "device", "dtype", "message",
                 "version_aedyn", "version_torch", "version_numpy", "version_python", "loss_steps", "loss_curve",
                 "job", *METRICS):
        assert name in row, name
    for value in row.values():
        assert value is None or type(value) in (str, int, float, bool, list), value
    assert row["run_id"] == run.run_id and row["n"] == 5 and row["d"] == 3 and row["steps"] == result.steps
    assert row["lr_auto"] is True and row["lr"] == result.lr and row["lambda_max"] == result.lambda_max
    assert row["final_relative_loss"] == pytest.approx(result.loss[-1] / result.loss[0])
    assert row["loss_steps"][0] == 0 and row["loss_steps"][-1] == result.steps
    assert row["loss_curve"] == [float(result.loss[k]) for k in row["loss_steps"]]
    assert row["pattern_flips"] == result.final("pattern_flips") and row["ntk_drift"] is not None
    assert json.loads(row["job"]) == run.job.to_dict() and row["classes"] is None
    assert row["batch_size"] == 1 and row["device"] == "cpu"


# ---- running locally ----------------------------------------------------------------------------

def test_run_sweep_stores_every_run_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "PROGRESS_EVERY_S", 0.0)
    cfg = config(batch_size=4)
    runs = sweep.plan(cfg)
    events = []
    notes = []
    summary = sweep.run_sweep(cfg, tmp_path / "store", progress=events.append, on_note=notes.append)
    assert (summary.total, summary.skipped, summary.done, summary.failed) == (12, 0, 12, 0)
    assert sum(summary.statuses.values()) == 12 and summary.failures == []
    assert events[0].done == 0 and events[-1].done == 12 and events[-1].batches_done == events[-1].batches
    assert [e.done for e in events] == sorted(e.done for e in events)
    within = [e.partial for e in events if e.partial]
    assert within and all(0 < p <= 4 for p in within)  # progress inside a batch, in runs' worth of work
    frame = Store.open(tmp_path / "store").load()
    assert sorted(frame["run_id"]) == sorted(r.run_id for r in runs) and frame["run_id"].is_unique
    assert set(frame["status"]) <= {"converged", "max_steps", "diverged"}
    assert (frame["steps"] <= 60).all() and (frame["n"] == 5).all()
    parts = list((tmp_path / "store" / "parts").glob("part-*.parquet"))
    assert len(parts) == summary.batches

    again = sweep.run_sweep(cfg, tmp_path / "store", on_note=notes.append)
    assert (again.skipped, again.done, again.batches) == (12, 0, 0)
    assert any("skipping 12 finished runs" in n for n in notes)
    assert len(list((tmp_path / "store" / "parts").glob("part-*.parquet"))) == len(parts)


def test_a_different_sweep_is_refused_and_force_adds_it(tmp_path):
    small = config(TINY.replace("seed = [0, 1, 2]", "seed = [0]"))
    sweep.run_sweep(small, tmp_path / "store")
    bigger = config()
    with pytest.raises(AedynError, match=r"different sweep config.*--force"):
        sweep.run_sweep(bigger, tmp_path / "store")
    summary = sweep.run_sweep(bigger, tmp_path / "store", force=True)
    assert (summary.skipped, summary.done) == (4, 8)
    frame = Store.open(tmp_path / "store").load()
    assert len(frame) == 12 and frame["run_id"].is_unique


def test_a_failing_batch_is_reported_and_the_others_stored(tmp_path, monkeypatch):
    real = jobs.run_batch

    def flaky(batch, **kwargs):
        if batch[0].width == 16 and batch[0].regime == "weak":
            raise AedynError("pretend the memory check refused this batch; use smaller runs")
        return real(batch, **kwargs)

    monkeypatch.setattr(sweep, "run_batch", flaky)
    cfg = config(batch_size=3)
    notes = []
    summary = sweep.run_sweep(cfg, tmp_path / "store", on_note=notes.append)
    assert summary.failed == 3 and summary.done == 9 and len(summary.failures) == 1
    assert "failed: pretend the memory check" in summary.failures[0] and summary.failures[0] in notes
    assert len(Store.open(tmp_path / "store").finished_ids()) == 9
    monkeypatch.setattr(sweep, "run_batch", real)
    summary = sweep.run_sweep(cfg, tmp_path / "store")
    assert (summary.skipped, summary.done, summary.failed) == (9, 3, 0)


def test_memory_refusals_fail_their_batches_and_say_why(tmp_path):
    summary = sweep.run_sweep(config(batch_size=6), tmp_path / "store", max_memory=1000)
    assert (summary.done, summary.failed, summary.refused, len(summary.failures)) == (0, 12, 12, 4)
    assert all("memory" in line and "\n" not in line for line in summary.failures)
    assert Store.open(tmp_path / "store").finished_ids() == set()


def test_executor_options_are_checked_before_any_work(tmp_path):
    cfg = config()
    for kwargs, needle in [({"executor": "spark"}, "unknown executor"),
                           ({"workers": 2}, "for the dask executor"),
                           ({"executor": "dask"}, "needs --scheduler"),
                           ({"executor": "dask", "workers": 2, "scheduler": "tcp://x:1"}, "not both"),
                           ({"executor": "dask", "workers": 0}, "--workers must be a positive integer")]:
        with pytest.raises(AedynError, match=needle):
            sweep.run_sweep(cfg, tmp_path / "store", **kwargs)
    assert not (tmp_path / "store").exists()


def test_dry_run_counts_and_writes_nothing(tmp_path):
    cfg = config(batch_size=4)
    p = sweep.dry_run(cfg, tmp_path / "store")
    assert (p.runs, p.to_run, p.finished, p.store_exists) == (12, 12, 0, False)
    assert p.batches == len(sweep.make_batches(sweep.plan(cfg), 4)) and p.estimate_s > 0
    assert not (tmp_path / "store").exists()
    sweep.run_sweep(config(TINY.replace("seed = [0, 1, 2]", "seed = [0]")), tmp_path / "store")
    p = sweep.dry_run(cfg, tmp_path / "store", workers=2)
    assert (p.finished, p.to_run, p.store_exists, p.same_config) == (4, 8, True, False)


def test_summary_table_and_csv(tmp_path):
    cfg = config()
    sweep.run_sweep(cfg, tmp_path / "store")
    frame = Store.open(tmp_path / "store").load()
    table = sweep.summary_table(frame)
    assert len(table) == 4 and table["runs"].sum() == 12
    assert list(table.columns) == ["regime", "width", "runs", "converged", "diverged", "failed",
                                   "median_relative_loss", "median_rate"]
    out = sweep.write_csv(frame, tmp_path / "all.csv")
    import pandas as pd

    back = pd.read_csv(out)
    assert len(back) == 12 and json.loads(back["loss_steps"][0])[0] == 0
    with pytest.raises(AedynError, match="already exists"):
        sweep.write_csv(frame, out)
    with pytest.raises(AedynError, match="not rows of 'aedyn sweep'"):
        sweep.summary_table(pd.DataFrame({"run_id": ["a"]}))


# ---- a killed sweep -----------------------------------------------------------------------------

KILL = """
[grid]
regime = ["weak", "joint"]
data = ["sphere"]
n = [8]
d = [4]
width = [32]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
[train]
steps = 300
target = 0.0
[sweep]
batch_size = 1
"""


def _frame(store: Path):
    return Store.open(store).load().set_index("run_id").sort_index()


@pytest.mark.slow
def test_a_sweep_killed_mid_run_resumes_to_the_same_store(tmp_path):
    cfg_path = write(tmp_path, KILL)
    store = tmp_path / "killed"
    parts = store / "parts"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # steadier timing on a busy machine
    proc = subprocess.Popen([sys.executable, "-m", "aedyn.cli", "sweep", str(cfg_path), "--out", str(store), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (parts.exists() and any(parts.glob("part-*.parquet"))):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    written = len(list(parts.glob("part-*.parquet")))
    assert 1 <= written < 16, "the sweep finished before it was killed: make its runs longer"
    (parts / ".part-00000000000000000000-dead.parquet.x1y2.tmp").write_bytes(b"PAR1 half a file")  # as a kill leaves

    done = subprocess.run([sys.executable, "-m", "aedyn.cli", "sweep", str(cfg_path), "--out", str(store), "-q"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert f"skipping {written} finished run" in done.stderr

    sweep.run_sweep(sweep.load_config(cfg_path), tmp_path / "whole")
    resumed, whole = _frame(store), _frame(tmp_path / "whole")
    assert list(resumed.index) == list(whole.index) and len(whole) == 16
    assert (resumed["status"] == whole["status"]).all() and (resumed["steps"] == whole["steps"]).all()
    np.testing.assert_allclose(resumed["final_loss"], whole["final_loss"], rtol=1e-8)


# ---- Dask ---------------------------------------------------------------------------------------

DASK = KILL.replace("steps = 300", "steps = 150").replace("batch_size = 1", "batch_size = 2")


@pytest.mark.slow
def test_dask_workers_give_the_local_results(tmp_path):
    from aedyn import cli

    cfg_path = write(tmp_path, DASK)
    assert cli.run(["sweep", str(cfg_path), "--out", str(tmp_path / "dask"), "--workers", "2", "-q"]) == 0
    sweep.run_sweep(sweep.load_config(cfg_path), tmp_path / "local")
    remote, local = _frame(tmp_path / "dask"), _frame(tmp_path / "local")
    assert list(remote.index) == list(local.index) and len(local) == 16
    assert (remote["status"] == local["status"]).all() and (remote["steps"] == local["steps"]).all()
    for column in ("final_loss", "initial_loss", "final_relative_loss"):
        np.testing.assert_allclose(remote[column], local[column], rtol=1e-8)
    np.testing.assert_allclose(np.stack(remote["loss_curve"]), np.stack(local["loss_curve"]), rtol=1e-8)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_loses_no_batch(tmp_path):
    import logging

    from distributed import Client, LocalCluster

    cfg = sweep.load_config(write(tmp_path, KILL.replace("steps = 300", "steps = 200")))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster:
        with Client(cluster) as client:  # one client at a time in a process: the sweep makes its own
            pids = sorted(client.run(os.getpid).values())
        killed = []

        def kill_a_worker(p: sweep.SweepProgress) -> None:
            if p.batches_done == 1 and not killed:  # 15 batches left for 2 workers: both are busy
                killed.append(pids[0])
                os.kill(pids[0], signal.SIGKILL)

        summary = sweep.run_sweep(cfg, tmp_path / "store", executor="dask", scheduler=cluster.scheduler_address,
                                  progress=kill_a_worker)
    assert killed and summary.failed == 0 and summary.done == 16
    assert Store.open(tmp_path / "store").finished_ids() == {r.run_id for r in sweep.plan(cfg)}
    assert math.isclose(len(Store.open(tmp_path / "store").load()), 16)


def test_a_runner_reads_a_stored_row_as_it_gave_it_fresh_and_trains_nothing_twice(tmp_path):
    """Rows with lists holding None and NaN values (a diverged run's map) read back from the store
    equal the rows the runner returned when it trained them; progress counts the batches to train."""
    from aedyn.sweep import Runner

    jobs = [TrainJob(regime="joint", data="sphere", n=6, d=3, width=16, steps=30, seed=s, lr=lr,
                     measures=("linearised", {"name": "heldout", "n": 4, "seed": 5}))
            for s in range(2) for lr in (0.5, 50.0)]  # lr 50 diverges: NaN and inf in its measures
    batches = [[j for j in jobs if j.lr == lr] for lr in (0.5, 50.0)]
    seen = []
    with Runner(tmp_path / "store") as runner:
        fresh = runner.run(batches, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 2), (1, 2), (2, 2)] and runner.trained == 4
    assert {row["status"] for row in fresh[1]} == {"diverged"}
    with Runner(tmp_path / "store") as again:
        stored = again.run(batches)
    assert again.trained == 0 and again.read == 4
    for a, b in zip(fresh, stored, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys()
            for key in x:
                if isinstance(x[key], float):
                    assert y[key] == pytest.approx(x[key], rel=1e-15), key  # a float through Parquet is itself
                else:
                    assert x[key] == y[key], key


# ---- findings of the adversarial pass ---------------------------------------------------------

def test_a_byte_order_mark_before_the_toml_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + textwrap.dedent(TINY).encode())
    assert len(sweep.plan(sweep.load_config(path))) == 12


def test_file_data_is_named_by_its_content_and_other_data_as_before(tmp_path, monkeypatch):
    assert sweep.run_id(TrainJob(regime="joint", data="sphere", n=5, d=3, width=8, steps=5)) == "ae75a1852c19a161"
    assert sweep.run_id(TrainJob(regime="weak", data="digits", classes=(0, 1), width=8, seed=3)) == "04f0609f3330d776"
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    rng = np.random.default_rng(0)
    np.save(here / "x.npy", rng.standard_normal((6, 3)))
    np.save(there / "x.npy", rng.standard_normal((6, 3)))
    cfg = config(TINY.replace('data = ["sphere"]', 'data = ["x.npy"]').replace("seed = [0, 1, 2]", "seed = [0]"))
    monkeypatch.chdir(here)
    first = sweep.run_sweep(cfg, tmp_path / "store")
    ids = {r.run_id for r in sweep.plan(cfg)}
    assert first.done == 4 and Store.open(tmp_path / "store").finished_ids() == ids
    assert {r.run_id for r in sweep.plan(cfg)} == ids  # the same bytes: the same runs

    monkeypatch.chdir(there)  # another folder with its own x.npy
    assert {r.run_id for r in sweep.plan(cfg)}.isdisjoint(ids)
    np.save(here / "x.npy", np.load(here / "x.npy") * 2)  # the file changed in place
    monkeypatch.chdir(here)
    again = sweep.run_sweep(cfg, tmp_path / "store")
    assert (again.skipped, again.done) == (0, 4)
    frame = Store.open(tmp_path / "store").load()
    assert len(frame) == 8 and frame["data_sha256"].nunique() == 2 and set(frame["data"]) == {"x.npy"}
    runs = sweep.plan(cfg)
    assert all(sweep.run_id(r.job) == r.run_id and r.data_sha256 == frame["data_sha256"].iloc[-1] for r in runs)


def test_the_data_file_is_read_once_per_sweep_for_its_digest(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((6, 3)))
    monkeypatch.chdir(tmp_path)
    reads = []
    real = sweep.file_sha256
    monkeypatch.setattr(sweep, "file_sha256", lambda path: reads.append(path) or real(path))
    cfg = config(TINY.replace('data = ["sphere"]', 'data = ["x.npy", "sphere"]'))
    assert len(sweep.plan(cfg)) == 24 and len(reads) == 1
    assert sweep.dry_run(cfg).runs == 24 and len(reads) == 2


def test_dry_run_counts_without_making_every_run(tmp_path):
    text = """
    [grid]
    regime = ["weak", "joint"]
    data = ["sphere", "digits"]
    n = [16, 32]
    d = [8, 9]
    width = [64, 128, 256, 512, 1024, 64]
    kappa = [1, 1.0]
    seed = [3, 1, 3]
    [train]
    lr = ["auto", 0.5]
    steps = 2000
    """
    for batch_size in (1, 5, 64):
        cfg = config(text, batch_size=batch_size)
        runs = sweep.plan(cfg)
        p = sweep.dry_run(cfg)
        batches = sweep.make_batches(runs, batch_size)
        assert (p.runs, p.to_run, p.batches) == (len(runs), len(runs), len(batches)) == (p.runs, p.runs, p.batches)
        assert p.estimate_s == pytest.approx(sum(sweep.estimate_batch_seconds([r.job for r in b]) for b in batches))
    assert len(runs) == 2 * 3 * 5 * 2 * 2 * 2  # sphere 2 d; digits 1; 5 widths; kappa once; 2 seeds; 2 lr; 2 n
    seeds_first = config(text.replace("[grid]", "[grid]\nseed = [3, 1, 3]").replace("seed = [3, 1, 3]\n    [train]",
                                                                                    "[train]"))
    assert [r.run_id for r in sweep.plan(seeds_first)] != [r.run_id for r in runs]  # another order,
    assert sorted(r.run_id for r in sweep.plan(seeds_first)) == sorted(r.run_id for r in runs)  # the same runs

    huge = config(TINY.replace("seed = [0, 1, 2]", f"seed = {list(range(250_000))}"), batch_size=64)
    start = time.perf_counter()
    p = sweep.dry_run(huge, tmp_path / "runs" / "huge")
    assert time.perf_counter() - start < 5  # a million runs, counted, not made
    assert (p.runs, p.batches) == (10**6, 4 * math.ceil(250_000 / 64))
    assert p.new_folders == (str(tmp_path / "runs"), str(tmp_path / "runs" / "huge"))
    assert not (tmp_path / "runs").exists()


def test_a_width_no_machine_holds_is_refused_when_planned(tmp_path):
    cfg = config(TINY.replace("width = [8, 16]", "width = [8, 99999999999999999999]"))
    for call in (lambda: sweep.plan(cfg), lambda: sweep.dry_run(cfg, tmp_path / "s"),
                 lambda: sweep.run_sweep(cfg, tmp_path / "s")):
        with pytest.raises(AedynError, match=r"sweep config: the runs with width = 99999999999999999999, n = 5, d = 3 "
                                             r"would need about .* of memory each, more than any machine holds; use a "
                                             r"smaller width") as info:
            call()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "s").exists()


def test_an_unreachable_scheduler_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "0.5s")
    with pytest.raises(AedynError, match="cannot reach the dask scheduler"):
        sweep.run_sweep(config(), tmp_path / "runs" / "s", executor="dask", scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "runs").exists()


def test_a_refused_store_is_refused_before_the_scheduler_is_tried(tmp_path, monkeypatch):
    sweep.run_sweep(config(TINY.replace("seed = [0, 1, 2]", "seed = [0]")), tmp_path / "s")
    monkeypatch.setattr(sweep, "_dask_client", lambda *a: pytest.fail("connected before refusing"))
    with pytest.raises(AedynError, match="different sweep config"):
        sweep.run_sweep(config(), tmp_path / "s", executor="dask", scheduler="tcp://127.0.0.1:1")


def test_a_sweep_skips_the_runs_another_sweep_stored_meanwhile(tmp_path, monkeypatch):
    cfg = config(batch_size=3)
    runs = sweep.plan(cfg)
    batches = sweep.make_batches(runs, 3)
    other = batches[1]  # a second sweep stores batch 2 while batch 1 trains here
    real = jobs.run_batch

    def meanwhile(batch, **kwargs):
        if batch[0].width == batches[0][0].job.width and batch[0].regime == batches[0][0].job.regime:
            rows = sweep.execute_batch(other)["rows"]
            Store.open(tmp_path / "store").append(rows)
        return real(batch, **kwargs)

    monkeypatch.setattr(sweep, "run_batch", meanwhile)
    events = []
    summary = sweep.run_sweep(cfg, tmp_path / "store", progress=events.append)
    assert (summary.skipped, summary.done, summary.failed) == (3, 9, 0)
    assert events[-1].stored_meanwhile == 3 and events[-1].done == 9
    frame = Store.open(tmp_path / "store").load()
    assert len(frame) == 12 and frame["run_id"].is_unique


def test_summary_groups_by_every_varying_setting_and_counts_divergence(tmp_path):
    cfg = config(TINY.replace("width = [8, 16]", "width = [16]").replace('regime = ["weak", "joint"]',
                                                                          'regime = ["joint"]')
                 .replace("steps = 60", "steps = 30\nlr = [0.5, 500.0]").replace("n = [5]", "n = [5, 8]"))
    sweep.run_sweep(cfg, tmp_path / "store")
    frame = Store.open(tmp_path / "store").load()
    table = sweep.summary_table(frame)
    assert list(table.columns[:2]) == ["n", "lr"] and table[["n", "lr"]].values.tolist() == [
        [5, 0.5], [5, 500.0], [8, 0.5], [8, 500.0]]
    assert table["runs"].tolist() == [3] * 4 and table["diverged"].tolist() == [0, 3, 0, 3]
    assert table["failed"].tolist() == [0] * 4
    calm = table[table["lr"] == 0.5]
    assert (calm["median_relative_loss"] < 1).all() and table[table["lr"] == 500.0]["median_relative_loss"].isna().all()
    fixed = sweep.fixed_settings(frame)
    assert fixed["regime"] == "joint" and fixed["width"] == 16 and fixed["d"] == 3 and fixed["steps"] == 30
    assert not {"n", "lr", "seed", "data_seed", "seed_scheme", "lr_decoder"} & set(fixed)

    untrainable = sweep.untrainable_row("zz", sweep.plan(cfg)[0].job, "the NTK is zero")
    mixed = pd.concat([frame, pd.DataFrame([untrainable])], ignore_index=True)
    row = sweep.summary_table(mixed).iloc[0]
    assert (row["runs"], row["failed"], row["diverged"]) == (4, 1, 0)

    same = sweep.summary_table(frame[(frame["lr"] == 0.5) & (frame["n"] == 5)])  # nothing varies but the seed
    assert list(same.columns) == ["runs", "converged", "diverged", "failed", "median_relative_loss", "median_rate"]
    assert same["runs"].tolist() == [3]


def test_batch_key_of_something_that_is_not_a_job_is_one_line():
    with pytest.raises(AedynError, match=r"batch_key takes a TrainJob; got NoneType"):
        jobs.batch_key(None)


def test_a_long_dry_run_reports_its_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "PROGRESS_EVERY_S", 0.0)
    cfg = config(TINY.replace("width = [8, 16]", "width = [8, 16, 24]"))
    seen = []
    assert sweep.dry_run(cfg, progress=lambda done, total: seen.append((done, total))).runs == 18
    assert seen and {total for _, total in seen} == {6} and [d for d, _ in seen] == sorted(d for d, _ in seen)
    sweep.run_sweep(config(TINY.replace("seed = [0, 1, 2]", "seed = [0]")), tmp_path / "s")
    seen.clear()
    assert sweep.dry_run(cfg, tmp_path / "s", progress=lambda done, total: seen.append((done, total))).finished == 4
    assert seen and {total for _, total in seen} == {18}  # with finished runs, every run is named
