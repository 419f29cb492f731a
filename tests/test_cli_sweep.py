"""The sweep and results commands: dry run, a sweep, one-line errors, the summary table, CSV export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from aedyn import cli, sweep
from aedyn import job as jobs
from aedyn.store import Store
from conftest import one_error_line, run_cli

SMALL = """
[grid]
regime = ["weak", "joint"]
data = ["sphere"]
n = [5]
d = [3]
width = [8, 16]
seed = [0, 1]
[train]
steps = 40
[sweep]
batch_size = 2
name = "tiny"
"""





def config_file(tmp_path: Path, text: str = SMALL, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def store(tmp_path, capsys) -> Path:
    out = tmp_path / "store"
    code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), "-q"], capsys)
    assert code == 0, err
    return out


def test_dry_run_prints_counts_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "store"
    code, stdout, _ = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), "--dry-run"], capsys)
    assert code == 0 and not out.exists()
    assert "tiny: 8 runs" in stdout and "8 runs in 4 batches" in stdout and "does not exist yet" in stdout
    assert "estimate" in stdout and "rough" in stdout and "nothing written" in stdout


def test_sweep_runs_summarises_and_resumes(tmp_path, capsys, store):
    assert len(Store.open(store).finished_ids()) == 8
    code, stdout, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(store)], capsys)
    assert code == 0 and "skipping 8 finished runs" in err
    assert "0 runs in 0 batches" in stdout and "8 already finished" in stdout
    code, stdout, _ = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(store), "--dry-run"], capsys)
    assert code == 0 and "8 of these runs finished" in stdout and "0 runs in 0 batches" in stdout


def test_a_different_sweep_into_the_store_is_refused(tmp_path, capsys, store):
    other = config_file(tmp_path, SMALL.replace("seed = [0, 1]", "seed = [0, 1, 2]"), "other.toml")
    code, stdout, _ = run_cli(["sweep", str(other), "--out", str(store), "--dry-run"], capsys)
    assert code == 0 and "different sweep" in stdout and "4 runs in" in stdout
    code, _, err = run_cli(["sweep", str(other), "--out", str(store), "-q"], capsys)
    assert code == 2 and one_error_line(err) and "--force" in err
    code, stdout, _ = run_cli(["sweep", str(other), "--out", str(store), "-q", "--force"], capsys)
    assert code == 0 and "4 runs in" in stdout and len(Store.open(store).finished_ids()) == 12


@pytest.mark.parametrize("text, needle", [
    (SMALL.replace("width = [8, 16]", 'width = ["a"]'), "[grid] width = 'a'"),
    (SMALL.replace("steps = 40", "steps = 1.5"), "[train] steps = 1.5"),
    (SMALL.replace("steps = 40", 'lr = "fast"'), "[train] lr = 'fast'"),
    (SMALL.replace("width = [8, 16]", "width = []"), "[grid] width: an empty list"),
    (SMALL.replace("steps = 40", "nu = 0"), "[grid] regime = 'weak' with [train] nu = 0"),
    (SMALL.replace("steps = 40", "lr_decoder = 0.1"), "lr_decoder = 0.1"),
    (SMALL.replace('data = ["sphere"]', 'data = ["digits"]').replace("n = [5]", "n = [5000]"), "n = 5000"),
    (SMALL.replace('data = ["sphere"]', 'data = ["nowhere.npy"]'), "does not exist"),
    (SMALL.replace("[train]", "[trian]"), "unknown table [trian]"),
    (SMALL.replace("width = [8, 16]", "width = [8,\n"), "not valid TOML"),
])
def test_bad_configs_exit_2_with_one_line(tmp_path, capsys, text, needle):
    out = tmp_path / "store"
    code, _, err = run_cli(["sweep", str(config_file(tmp_path, text)), "--out", str(out)], capsys)
    assert code == 2 and one_error_line(err) and needle in err.replace("\n", " "), err
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--executor", "spark"], "unknown --executor 'spark'"),
    (["--executor", "local", "--workers", "2"], "for the dask executor"),
    (["--executor", "dask"], "needs --scheduler"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--workers", "0"], "--workers must be a positive integer"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
])
def test_bad_sweep_options_exit_2(tmp_path, capsys, args, needle):
    out = tmp_path / "store"
    code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), *args], capsys)
    assert code == 2 and one_error_line(err) and needle in err, err
    assert not out.exists()


def test_missing_config_and_non_store_out(tmp_path, capsys):
    code, _, err = run_cli(["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and one_error_line(err) and "does not exist" in err
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "precious.txt").write_text("keep")
    code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(tmp_path / "folder")], capsys)
    assert code == 2 and one_error_line(err) and "not an aedyn store" in err


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "1s")
    for address in ("tcp://127.0.0.1:1", "nonsense"):
        code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(tmp_path / "s"), "--scheduler",
                                address, "-q"], capsys)
        assert code == 2 and one_error_line(err) and "cannot reach the dask scheduler" in err, err
        assert not (tmp_path / "s").exists()  # nothing made before the scheduler answered


def test_failed_runs_exit_1_and_say_how_to_resume(tmp_path, capsys, monkeypatch):
    real = jobs.run_batch

    def flaky(batch, **kwargs):
        if batch[0].width == 16:
            raise RuntimeError("the accelerator fell off the bus")
        return real(batch, **kwargs)

    monkeypatch.setattr(sweep, "run_batch", flaky)
    out = tmp_path / "store"
    code, stdout, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), "-q"], capsys)
    assert code == cli.EXIT_RUNS_FAILED == 4 and "fell off the bus" in err
    assert "4 of 8 runs failed" in err and "resume" in err
    assert "failed" in stdout and len(Store.open(out).finished_ids()) == 4
    monkeypatch.setattr(sweep, "run_batch", real)
    code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), "-q"], capsys)
    assert code == 0 and "skipping 4 finished runs" in err and len(Store.open(out).finished_ids()) == 8


def test_results_prints_the_table(capsys, store):
    code, stdout, _ = run_cli(["results", str(store)], capsys)
    assert code == 0 and "8 runs" in stdout
    for word in ("regime", "width", "converged", "median", "weak", "joint"):
        assert word in stdout
    assert stdout.count("weak") == 2 and stdout.count("joint") == 2  # one line per regime and width


def test_results_csv_follows_the_output_rules(tmp_path, capsys, store):
    csv = tmp_path / "runs.csv"
    code, stdout, _ = run_cli(["results", str(store), "--csv", str(csv)], capsys)
    assert code == 0 and "wrote 8 rows" in stdout
    frame = pd.read_csv(csv)
    assert len(frame) == 8 and {"run_id", "status", "final_relative_loss", "loss_curve"} <= set(frame.columns)
    assert isinstance(json.loads(frame["loss_curve"][0]), list)
    csv.write_text("precious")
    code, _, err = run_cli(["results", str(store), "--csv", str(csv)], capsys)
    assert code == 2 and one_error_line(err) and "already exists" in err and csv.read_text() == "precious"
    code, _, _ = run_cli(["results", str(store), "--csv", str(csv), "--force"], capsys)
    assert code == 0 and len(pd.read_csv(csv)) == 8
    code, _, err = run_cli(["results", str(store), "--csv", str(tmp_path / "nowhere" / "x.csv")], capsys)
    assert code == 2 and one_error_line(err)


def test_results_on_a_non_store_exit_2(tmp_path, capsys):
    for path in (tmp_path / "none", tmp_path):
        code, _, err = run_cli(["results", str(path)], capsys)
        assert code == 2 and one_error_line(err) and "store" in err
    (tmp_path / "f.txt").write_text("x")
    code, _, err = run_cli(["results", str(tmp_path / "f.txt")], capsys)
    assert code == 2 and one_error_line(err)


def test_results_of_an_empty_store(tmp_path, capsys):
    Store.create(tmp_path / "empty", {"kind": "aedyn.sweep", "axes": {}})
    code, stdout, _ = run_cli(["results", str(tmp_path / "empty")], capsys)
    assert code == 0 and "no runs stored yet" in stdout


@pytest.mark.slow
@pytest.mark.parametrize(("how", "code", "said"), [("SIGTERM", 143, "terminated"), ("Ctrl-C", 130, "interrupted")])
def test_a_signal_closes_the_dask_cluster(tmp_path, how, code, said):
    """SIGTERM to the client, or Ctrl-C at a terminal (SIGINT to the whole process group, workers
    included): one line, the cluster closed (no worker left), no worker's traceback."""
    cfg = config_file(tmp_path, SMALL.replace("steps = 40", "steps = 400").replace("seed = [0, 1]", "seed = [0, 1, 2]")
                      .replace("batch_size = 2", "batch_size = 1"))
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "aedyn.cli", "sweep", str(cfg), "--out", str(store), "--workers",
                             "1", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    import psutil

    try:
        deadline = time.monotonic() + 120
        while not any((store / "parts").glob("part-*.parquet")) if (store / "parts").exists() else True:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the nanny and its worker
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code and said in err and "Traceback" not in err, err
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert 1 <= len(Store.open(store).finished_ids()) < 12
    assert os.path.isdir(store)


def test_results_csv_never_writes_into_the_store(tmp_path, capsys):
    """--csv inside the STORE folder (onto its marker, or as a would-be part file) is refused, even with --force."""
    store = tmp_path / "store"
    assert run_cli(["sweep", str(config_file(tmp_path)), "--out", str(store), "-q"], capsys)[0] == 0
    marker = (store / "store.json").read_bytes()
    for target, extra in ((store / "store.json", ["--force"]), (store / "parts" / "part-x.parquet", [])):
        code, _, err = run_cli(["results", str(store), "--csv", str(target), *extra], capsys)
        assert code == 2 and "inside the STORE folder" in err and one_error_line(err)
    assert (store / "store.json").read_bytes() == marker and not (store / "parts" / "part-x.parquet").exists()
    assert run_cli(["results", str(store)], capsys)[0] == 0


def test_dry_run_into_an_empty_folder_is_what_the_sweep_does(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, _ = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(empty), "--dry-run"], capsys)
    assert code == 0 and "does not exist yet" in stdout and not any(empty.iterdir())


# ---- findings of the adversarial pass ---------------------------------------------------------

def test_a_store_in_a_missing_folder_is_made_and_said(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = str(config_file(tmp_path))
    code, stdout, _ = run_cli(["sweep", cfg, "--out", "runs/x", "--dry-run"], capsys)
    assert code == 0 and "runs/x does not exist yet: it would be made, with the missing folder 'runs'" in stdout
    assert not (tmp_path / "runs").exists()
    code, _, err = run_cli(["sweep", cfg, "--out", "runs/x", "-q"], capsys)
    assert code == 0 and "note: created the missing folder 'runs' for the store 'runs/x'" in err
    assert len(Store.open(tmp_path / "runs" / "x").finished_ids()) == 8
    (tmp_path / "file").write_text("mine")
    for extra in ([], ["--dry-run"]):
        code, _, err = run_cli(["sweep", cfg, "--out", "file/x", *extra], capsys)
        assert code == 2 and one_error_line(err) and "'file' is a file, not a folder" in err
    assert (tmp_path / "file").read_text() == "mine"


def test_runs_refused_for_memory_are_not_called_resumable(tmp_path, capsys):
    out = tmp_path / "store"
    code, _, err = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(out), "-q", "--max-memory", "1000"],
                           capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == cli.EXIT_RUNS_FAILED and len(lines) == 1
    assert "8 of 8 runs were refused for memory" in lines[0] and "would be refused again" in lines[0]
    assert "--max-memory" in lines[0] and "batch_size" in lines[0] and "resume" not in lines[0]


def test_an_absurd_width_is_refused_by_the_dry_run_too(tmp_path, capsys):
    cfg = config_file(tmp_path, SMALL.replace("width = [8, 16]", "width = [99999999999999999999]"))
    for extra in (["--dry-run"], ["-q"]):
        code, _, err = run_cli(["sweep", str(cfg), "--out", str(tmp_path / "s"), *extra], capsys)
        assert code == 2 and one_error_line(err) and "more than any machine holds" in err
    assert not (tmp_path / "s").exists()


def test_two_sweeps_into_one_store_at_once_store_each_run_once(tmp_path, capsys):
    cfg = config_file(tmp_path, SMALL.replace("batch_size = 2", "batch_size = 1"))
    store = tmp_path / "store"
    command = [sys.executable, "-m", "aedyn.cli", "sweep", str(cfg), "--out", str(store), "-q"]
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    code, stdout, err = run_cli(["results", str(store)], capsys)
    assert code == 0 and "8 runs" in stdout and "warning" not in err
    frame = Store.open(store).load()
    assert len(frame) == 8 and frame["run_id"].is_unique


def test_results_prints_a_warning_as_one_clean_line(capsys, store):
    first = sorted((store / "parts").glob("part-*.parquet"))[0]
    (store / "parts" / (first.stem + "-copy.parquet")).write_bytes(first.read_bytes())  # as an old writer left it
    code, stdout, err = run_cli(["results", str(store)], capsys)
    assert code == 0 and "8 runs" in stdout
    assert err.startswith("warning: store ") and len(err.strip().splitlines()) == 1
    assert "duplicate row(s)" in err and "warnings.warn" not in err and "AedynWarning" not in err


def test_results_group_by_every_varying_setting(tmp_path, capsys):
    text = SMALL.replace('regime = ["weak", "joint"]', 'regime = ["joint"]').replace("width = [8, 16]",
                                                                                      "width = [16]")
    cfg = config_file(tmp_path, text.replace("steps = 40", "steps = 30\nlr = [0.5, 500.0]").replace("n = [5]",
                                                                                                     "n = [5, 8]"))
    assert run_cli(["sweep", str(cfg), "--out", str(tmp_path / "s"), "-q"], capsys)[0] == 0
    code, stdout, _ = run_cli(["results", str(tmp_path / "s")], capsys)
    assert code == 0 and "held fixed: regime=joint, data=sphere, d=3" in stdout and "seeds pooled" in stdout
    lines = [line.split() for line in stdout.splitlines()]
    rows = [line for line in lines if line[:1] in (["5"], ["8"])]
    assert [line[:6] for line in rows] == [["5", "0.5", "2", "0", "0", "0"], ["5", "500.0", "2", "0", "2", "0"],
                                           ["8", "0.5", "2", "0", "0", "0"], ["8", "500.0", "2", "0", "2", "0"]]
    assert all(line[6:] == ["-", "-"] for line in rows if line[1] == "500.0")  # a diverged loss is no median


def test_results_of_a_store_whose_parts_is_a_file_exit_2(tmp_path, capsys):
    Store.create(tmp_path / "s", {"kind": "aedyn.sweep", "axes": {}})
    (tmp_path / "s" / "parts").rmdir()
    (tmp_path / "s" / "parts").write_text("x")
    code, stdout, err = run_cli(["results", str(tmp_path / "s")], capsys)
    assert code == 2 and one_error_line(err) and "damaged store" in err and "no runs" not in stdout


def test_a_dry_run_shows_its_progress_and_then_the_plan(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "PROGRESS_EVERY_S", 0.0)
    code, stdout, _ = run_cli(["sweep", str(config_file(tmp_path)), "--out", str(tmp_path / "s"), "--dry-run"], capsys)
    assert code == 0 and "tiny: 8 runs" in stdout and not (tmp_path / "s").exists()
