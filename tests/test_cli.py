"""The command line: a good run, its record, and one clean error line per bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from aedyn import cli
from aedyn.model import Params


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aedyn", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SMALL = ["train", "--data", "sphere", "--n", "16", "--d", "6", "--width", "256", "-q"]


def test_train_writes_record_and_params(tmp_path, capsys, monkeypatch):
    out, params = tmp_path / "run.json", tmp_path / "p.npz"
    code, stdout, _ = run_cli([*SMALL, "--steps", "3000", "--out", str(out), "--save-params", str(params)],
                              capsys, monkeypatch)
    assert code == 0
    for word in ("converged", "eta", "rate", "movement", "flips"):
        assert word in stdout
    record = json.loads(out.read_text())
    assert record["status"] == "converged" and record["config"]["job"]["seed"] == 0
    assert record["config"]["job"]["data"] == "sphere" and record["versions"]["aedyn"]
    assert len(record["loss"]) == record["steps"] + 1 and "pattern_flips" in record["metrics"]
    assert Params.load(params).W.shape == (256, 6)


def test_existing_output_is_not_overwritten(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text("precious")
    code, _, err = run_cli([*SMALL, "--steps", "5", "--out", str(out)], capsys, monkeypatch)
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_text() == "precious"
    code, _, _ = run_cli([*SMALL, "--steps", "5", "--out", str(out), "--force"], capsys, monkeypatch)
    assert code == 0 and json.loads(out.read_text())["steps"] == 5


def test_diverged_run_exits_nonzero(capsys, monkeypatch):
    code, stdout, _ = run_cli([*SMALL, "--lr", "100", "--steps", "200"], capsys, monkeypatch)
    assert code == 3 and "diverged" in stdout and "--lr" in stdout


def test_max_steps_exits_zero(capsys, monkeypatch):
    code, stdout, _ = run_cli([*SMALL, "--steps", "3"], capsys, monkeypatch)
    assert code == 0 and "max_steps" in stdout


def test_normalisation_is_announced(capsys, monkeypatch):
    code, _, err = run_cli(["train", "--data", "digits", "--n", "20", "--width", "64", "--steps", "2", "-q"],
                           capsys, monkeypatch)
    assert code == 0 and "normalised 20 of 20 rows" in err


def bad_file(tmp_path, kind: str) -> str:
    if kind == "nan":
        np.save(tmp_path / "x.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    elif kind == "inf":
        np.save(tmp_path / "x.npy", np.array([[1.0, np.inf], [0.0, 1.0]]))
    elif kind == "zero":
        np.save(tmp_path / "x.npy", np.array([[1.0, 0.0], [0.0, 0.0]]))
    elif kind == "empty":
        np.save(tmp_path / "x.npy", np.zeros((0, 4)))
    elif kind == "shape":
        np.save(tmp_path / "x.npy", np.ones(5))
    elif kind == "csv":
        (tmp_path / "x.csv").write_text("1,2\n3,x\n")
        return str(tmp_path / "x.csv")
    return str(tmp_path / "x.npy")


@pytest.mark.parametrize(("kind", "needle"), [
    ("nan", "NaN"), ("inf", "inf"), ("zero", "all zeros"), ("empty", "empty"), ("shape", "2-D"),
    ("csv", "not a number"),
])
def test_bad_data_gives_one_line_and_exit_2(tmp_path, capsys, monkeypatch, kind, needle):
    code, stdout, err = run_cli(["train", "--data", bad_file(tmp_path, kind), "--steps", "2", "-q"],
                                capsys, monkeypatch)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert stdout == ""


@pytest.mark.parametrize(("args", "needle"), [
    (["--width", "0"], "width must be a positive integer"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "-0.1"], "--lr must be a positive number"),
    (["--lr", "fast"], "--lr must be auto or a positive number"),
    (["--regime", "encoder"], "--regime 'encoder'"),
    (["--data", "missing.npy"], "does not exist"),
    (["--data", "mnist"], "unknown data source"),
    (["--dtype", "float16"], "unknown dtype"),
    (["--device", "tpu"], "unknown device"),
    (["--classes", "a,b", "--data", "digits"], "--classes"),
])
def test_bad_options_give_one_line_and_exit_2(capsys, monkeypatch, args, needle):
    base = ["train", "--data", "sphere", "--n", "4", "--d", "3", "--width", "8", "--steps", "2", "-q"]
    code, _, err = run_cli([*base, *args], capsys, monkeypatch)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_installed_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aedyn.cli", "train", "--data", str(tmp_path / "none.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_version_and_help(capsys, monkeypatch):
    code, stdout, _ = run_cli(["--version"], capsys, monkeypatch)
    assert code == 0 and stdout.startswith("aedyn ")
    code, stdout, _ = run_cli(["train", "--help"], capsys, monkeypatch)
    assert code == 0 and "--regime" in stdout


def test_kernel_report_and_record(tmp_path, capsys, monkeypatch):
    out = tmp_path / "kernel.json"
    code, stdout, _ = run_cli(["kernel", "--data", "sphere", "--n", "24", "--d", "5", "--width", "512",
                               "--out", str(out)], capsys, monkeypatch)
    assert code == 0
    for word in ("lambda_0", "mu_0", "K_joint", "Theta m=512", "gap"):
        assert word in stdout
    record = json.loads(out.read_text())
    assert record["kind"] == "aedyn.kernel" and record["n"] == 24
    inf, fin = record["infinite"], record["finite"]
    assert inf["lambda_min"] >= inf["lambda_0"] + inf["mu_0"] - 1e-12
    assert fin["converged"] and fin["nd"] == 120
    assert record["gap"]["lambda_max"] == pytest.approx(fin["lambda_max"] / inf["lambda_max"] - 1)


def test_kernel_tied_has_finite_width_only(capsys, monkeypatch):
    code, stdout, _ = run_cli(["kernel", "--regime", "tied", "--data", "sphere", "--n", "8", "--d", "3",
                               "--width", "64"], capsys, monkeypatch)
    assert code == 0 and "no infinite-width NTK for tied" in stdout and "Theta m=64" in stdout


def test_kernel_bad_input(capsys, monkeypatch):
    code, _, err = run_cli(["kernel", "--data", "sphere", "--n", "8", "--d", "3", "--width", "0"],
                           capsys, monkeypatch)
    assert code == 2 and "width must be a positive integer" in err


def test_device_auto_float32_and_ntk_every(tmp_path, capsys, monkeypatch):
    """The device/dtype path a GPU run takes (auto resolves to the CPU where no GPU is visible)."""
    out = tmp_path / "run.json"
    code, stdout, _ = run_cli([*SMALL, "--regime", "tied", "--device", "auto", "--dtype", "float32",
                               "--steps", "40", "--ntk-every", "20", "--out", str(out)], capsys, monkeypatch)
    assert code == 0 and "NTK" in stdout and "drift" in stdout
    record = json.loads(out.read_text())
    assert record["config"]["dtype"] == "float32" and record["metrics"]["ntk_step"] == [0, 20, 40]
    assert record["config"]["ntk_drift_method"] == "exact"
