"""The command line: a good run, its record, and one clean error line per bad input."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.main import get_command

from aedyn import _names, cli, files, gd, job
from aedyn.model import Params
from conftest import one_error_line, run_cli

SMALL = ["train", "--data", "sphere", "--n", "16", "--d", "6", "--width", "256", "-q"]


def test_train_writes_record_and_params(tmp_path, capsys, monkeypatch):
    out, params = tmp_path / "run.json", tmp_path / "p.npz"
    code, stdout, _ = run_cli([*SMALL, "--steps", "3000", "--out", str(out), "--save-params", str(params)], capsys)
    assert code == 0
    for word in ("converged", "eta", "rate", "movement", "flips"):
        assert word in stdout
    predicted = next(line for line in stdout.splitlines() if line.startswith("predicted"))
    assert re.search(r"0\.\d{6} finite width \(averaged Theta\(0\)\); 0\.\d{6} infinite width", predicted)
    record = json.loads(out.read_text())
    assert record["status"] == "converged" and record["config"]["job"]["seed"] == 0
    assert record["config"]["job"]["data"] == "sphere" and record["versions"]["aedyn"]
    assert len(record["loss"]) == record["steps"] + 1 and "pattern_flips" in record["metrics"]
    assert Params.load(params).W.shape == (256, 6)


def test_train_certify_prints_each_invariant_and_the_verdict(tmp_path, capsys):
    out = tmp_path / "run.json"
    wide = ["train", "--regime", "weak", "--data", "sphere", "--n", "8", "--d", "4", "--width", "16384", "-q"]
    code, stdout, _ = run_cli([*wide, "--certify", "--out", str(out)], capsys)
    assert code == 0
    lines = [line for line in stdout.splitlines() if "kernel:" in line or "rate:" in line or "safe radius:" in line]
    assert len(lines) == 3 and all(line.rstrip().endswith("holds") for line in lines)
    assert "inside the NTK regime" in stdout
    record = json.loads(out.read_text())
    assert record["certificate"]["inside"] is True and record["config"]["job"]["certify"] is True
    narrow = ["train", "--regime", "weak", "--data", "sphere", "--n", "16", "--d", "8", "--width", "4", "-q"]
    code, stdout, _ = run_cli([*narrow, "--steps", "100", "--certify"], capsys)
    assert code == 0
    kernel = next(line for line in stdout.splitlines() if "kernel:" in line)
    assert "singular" in kernel and kernel.rstrip().endswith("FAILS") and "outside the NTK regime" in stdout
    code, stdout, _ = run_cli([*narrow, "--steps", "100"], capsys)
    assert "certificate" not in stdout


def test_train_certify_with_no_step_says_the_certificate_is_vacuous(tmp_path, capsys):
    out = tmp_path / "run.json"
    code, stdout, _ = run_cli([*SMALL, "--steps", "0", "--certify", "--out", str(out)], capsys)
    assert code == 0 and "vacuous" in stdout and "nothing is certified" in stdout
    assert "every invariant" not in stdout
    assert not any(line.rstrip().endswith(("holds", "FAILS")) for line in stdout.splitlines())
    assert stdout.count("not checked (no step taken)") == 3
    assert json.loads(out.read_text())["certificate"]["vacuous"] is True


def test_existing_output_is_not_overwritten(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text("precious")
    code, _, err = run_cli([*SMALL, "--steps", "5", "--out", str(out)], capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_text() == "precious"
    code, _, _ = run_cli([*SMALL, "--steps", "5", "--out", str(out), "--force"], capsys)
    assert code == 0 and json.loads(out.read_text())["steps"] == 5


def test_diverged_run_exits_nonzero(capsys, monkeypatch):
    code, stdout, _ = run_cli([*SMALL, "--lr", "100", "--steps", "200"], capsys)
    assert code == 3 and "diverged" in stdout and "--lr" in stdout


def test_max_steps_exits_zero(capsys, monkeypatch):
    code, stdout, _ = run_cli([*SMALL, "--steps", "3"], capsys)
    assert code == 0 and "max_steps" in stdout


def test_normalisation_is_announced(capsys, monkeypatch):
    code, _, err = run_cli(["train", "--data", "digits", "--n", "20", "--width", "64", "--steps", "2", "-q"], capsys)
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
    code, stdout, err = run_cli(["train", "--data", bad_file(tmp_path, kind), "--steps", "2", "-q"], capsys)
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
    code, _, err = run_cli([*base, *args], capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_installed_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aedyn.cli", "train", "--data", str(tmp_path / "none.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_version_and_help(capsys, monkeypatch):
    code, stdout, _ = run_cli(["--version"], capsys)
    assert code == 0 and stdout.startswith("aedyn ")
    code, stdout, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and "--regime" in stdout


HELP_CHOICES = {"--regime": _names.REGIMES, "--data": _names.SOURCES, "--decoder-init": _names.DECODER_INITS,
                "--init-scale": _names.INIT_SCALES, "--lr": ("auto",), "--device": _names.DEVICES,
                "--dtype": _names.DTYPE_NAMES, "--executor": _names.EXECUTORS, "--criterion": (*_names.CRITERIA, "all"),
                "--step-rule": _names.STEP_RULES, "--only": _names.EXPERIMENT_NAMES, "--profile": _names.PROFILES}
"""Every option that takes one of a set of values, with the values its help must list."""


def test_help_lists_the_choices_of_every_option_that_has_them(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    seen = set()
    for command in get_command(cli.app).commands:  # type: ignore[attr-defined]
        code, stdout, _ = run_cli([command, "--help"], capsys)
        assert code == 0
        for line in stdout.splitlines():
            name = re.match(r"[│*\s]*(--[\w-]+)", line)
            if name is None or name.group(1) not in HELP_CHOICES:
                continue
            listed = [set(group.split("|")) for group in re.findall(r"\[([^\]]*)\]", line)]
            wanted = set(HELP_CHOICES[name.group(1)])
            if (command, name.group(1)) == ("threshold", "--regime"):  # tied has no kernel for the budget
                wanted.discard("tied")
                assert not any("tied" in values for values in listed), line
            assert any(wanted <= values for values in listed), (command, line)
            seen.add(name.group(1))
    assert seen == set(HELP_CHOICES)


def test_kernel_report_and_record(tmp_path, capsys, monkeypatch):
    out = tmp_path / "kernel.json"
    code, stdout, _ = run_cli(["kernel", "--data", "sphere", "--n", "24", "--d", "5", "--width", "512",
                               "--out", str(out)], capsys)
    assert code == 0
    for word in ("lambda_0", "mu_0", "K_joint", "Theta m=512", "gap"):
        assert word in stdout
    record = json.loads(out.read_text())
    assert record["kind"] == "aedyn.kernel" and record["n"] == 24
    inf, fin = record["infinite"], record["finite"]
    assert inf["lambda_min"] >= inf["lambda_0"] + inf["mu_0"] - 1e-12
    assert fin["converged"] and fin["nd"] == 120
    assert record["gap"]["lambda_max"] == pytest.approx(fin["lambda_max"] / inf["lambda_max"] - 1)


def test_kernel_tied_reports_the_finite_width_ntk(capsys, monkeypatch):
    """The tied NTK has an infinite-width limit, but not of the form K ⊗ I_d: the report says so
    and gives the finite-width kernel."""
    code, stdout, _ = run_cli(["kernel", "--regime", "tied", "--data", "sphere", "--n", "8", "--d", "3",
                               "--width", "64"], capsys)
    assert code == 0 and "couples output coordinates" in stdout and "Theta m=64" in stdout
    assert "no infinite-width" not in stdout


def test_kernel_tied_without_width_is_refused(capsys, monkeypatch):
    """Without --width there is nothing to compute for tied (no n x n infinite-width kernel): one line
    saying --width is needed, exit 2, nothing computed."""
    no_training(monkeypatch)
    code, stdout, err = run_cli(["kernel", "--regime", "tied", "--data", "sphere", "--n", "8", "--d", "3"], capsys)
    assert code == 2 and "--width" in err and "tied" in err and one_error_line(err) and stdout == ""


def test_kernel_bad_input(capsys, monkeypatch):
    code, _, err = run_cli(["kernel", "--data", "sphere", "--n", "8", "--d", "3", "--width", "0"], capsys)
    assert code == 2 and "width must be a positive integer" in err


def test_device_auto_float32_and_ntk_every(tmp_path, capsys, monkeypatch):
    """The device/dtype path a GPU run takes (auto resolves to the CPU where no GPU is visible)."""
    out = tmp_path / "run.json"
    code, stdout, _ = run_cli([*SMALL, "--regime", "tied", "--device", "auto", "--dtype", "float32",
                               "--steps", "40", "--ntk-every", "20", "--out", str(out)], capsys)
    assert code == 0 and "NTK" in stdout and "drift" in stdout
    record = json.loads(out.read_text())
    assert record["config"]["dtype"] == "float32" and record["metrics"]["ntk_step"] == [0, 20, 40]
    assert record["config"]["ntk_drift_method"] == "exact"


# ----------------------------------------------------------------------------------------------
# outputs: checked before the work, atomic, never clobbered


def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the job ran before its outputs were checked")

    monkeypatch.setattr(job, "run_job", refuse)
    monkeypatch.setattr(job, "run_kernel_job", refuse)


@pytest.mark.parametrize(("extra", "needle"), [
    (["--out", "{tmp}/nodir/sub/run.json"], "does not exist; create"),
    (["--out", "{tmp}/s.json", "--save-params", "{tmp}/s.json"], "are the same file"),
    (["--out", "{tmp}"], "is a folder"),
    (["--save-params", "{tmp}/nodir/p.npz"], "does not exist; create"),
])
def test_bad_outputs_fail_before_any_work(tmp_path, capsys, monkeypatch, extra, needle):
    no_training(monkeypatch)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, stdout, err = run_cli([*SMALL, "--steps", "5", *args], capsys)
    assert code == 2 and needle in err and one_error_line(err) and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_out_onto_the_data_file_is_refused_even_with_force(tmp_path, capsys, monkeypatch):
    no_training(monkeypatch)
    data = tmp_path / "x.npy"
    np.save(data, np.eye(3))
    before = data.read_bytes()
    code, _, err = run_cli(["train", "--data", str(data), "--out", str(data), "--force", "-q"], capsys)
    assert code == 2 and "destroy the input" in err and data.read_bytes() == before


@pytest.mark.parametrize("flag", ["--out", "--save-params"])
def test_force_never_replaces_a_pipe_or_a_link(tmp_path, capsys, monkeypatch, flag):
    """--force replaces regular files only: a named pipe or a symbolic link in its place is refused by
    name, before any work, and stays what it was (the link's target untouched)."""
    no_training(monkeypatch)
    fifo, target, link = tmp_path / "pipe", tmp_path / "mine.npz", tmp_path / "link.npz"
    os.mkfifo(fifo)
    target.write_text("precious")
    link.symlink_to(target)
    for path, kind in ((fifo, "named pipe"), (link, "symbolic link")):
        code, stdout, err = run_cli([*SMALL, "--steps", "5", flag, str(path), "--force"], capsys)
        assert code == 2 and kind in err and "regular files only" in err and one_error_line(err) and stdout == ""
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "precious"


def test_kernel_outputs_follow_the_same_rules(tmp_path, capsys, monkeypatch):
    no_training(monkeypatch)
    out = tmp_path / "k.json"
    out.write_text("precious")
    code, _, err = run_cli(["kernel", "--data", "sphere", "--n", "4", "--d", "3", "--out", str(out)], capsys)
    assert code == 2 and "already exists" in err and out.read_text() == "precious"


@pytest.mark.parametrize(("code_", "needle"), [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only")])
def test_unwritable_output_folder_is_one_line(tmp_path, capsys, monkeypatch, code_, needle):
    no_training(monkeypatch)

    def refuse(*args, **kwargs):
        raise OSError(code_, os.strerror(code_))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    code, _, err = run_cli([*SMALL, "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and needle in err and "r.json" in err and one_error_line(err)


def test_disk_full_while_writing_the_record(tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        if os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", full)
    code, _, err = run_cli([*SMALL, "--steps", "3", "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and "disk is full" in err and one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_output_that_appears_during_the_run_is_kept_and_the_result_too(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    real = job.run_job

    def run_and_race(*args, **kwargs):
        result = real(*args, **kwargs)
        out.write_text("someone else's")
        return result

    monkeypatch.setattr(job, "run_job", run_and_race)
    code, stdout, err = run_cli([*SMALL, "--steps", "3", "--out", str(out)], capsys)
    assert code == 0 and out.read_text() == "someone else's"
    assert "r.1.json" in err and json.loads((tmp_path / "r.1.json").read_text())["steps"] == 3
    assert "record to " + str(tmp_path / "r.1.json") in stdout


def wait_until_busy(pid: int, cpu_seconds: float, timeout: float = 120.0) -> None:
    """Wait until process ``pid`` has used ``cpu_seconds`` of CPU (Linux /proc), whatever the load."""
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= cpu_seconds:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not start working within {timeout} s")


def _interrupt(*args, **kwargs):
    """Ctrl-C while the library works: SIGINT to this process, as a terminal sends it."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
    raise AssertionError("SIGINT did not interrupt the command")


@pytest.mark.parametrize(("command", "target"), [
    (SMALL, ("aedyn.job", "run_job")),
    (["kernel", "--data", "sphere", "--n", "8", "--d", "3"], ("aedyn.job", "run_kernel_job")),
    (["threshold", "--n", "8", "--d", "3", "--seeds", "1", "--max-width", "8", "-q"],
     ("aedyn.threshold", "least_widths")),
    (["reproduce", "--quick", "--out", "{tmp}/report", "-q"], ("aedyn.report", "reproduce")),
], ids=["train", "kernel", "threshold", "reproduce"])
def test_sigint_says_interrupted_and_exits_130(tmp_path, capsys, monkeypatch, command, target):
    """Every command: Ctrl-C ends it with the one line 'interrupted' on stderr and exit code 130
    (typer alone would exit 130 saying nothing), and the previous SIGINT handler is restored."""
    module, name = target
    if isinstance(module, str):
        import importlib

        module = importlib.import_module(module)
    monkeypatch.setattr(module, name, _interrupt)
    before = signal.getsignal(signal.SIGINT)
    code, stdout, err = run_cli([a.replace("{tmp}", str(tmp_path)) for a in command], capsys)
    assert code == 130 and err.strip() == "interrupted" and stdout == ""
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_during_training_leaves_no_file(tmp_path):
    out = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "aedyn.cli", "train", "--data", "sphere", "--n", "64", "--d", "16",
                             "--width", "4096", "--steps", "10000000", "--target", "0", "--lr", "0.01", "-q",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_busy(proc.pid, cpu_seconds=5.0)  # import (~2 CPU-s), then training: the handler is installed
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a ten-million-step run behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# options: validated at the boundary, one line each


@pytest.mark.parametrize(("args", "needle"), [
    (["--width", "abc"], "Invalid value for '--width'"),
    (["--bogus"], "No such option: --bogus"),
    (["--width"], "requires an argument"),
    (["--seed", "99999999999999999999"], "seed must be <= "),
    (["--seed", "-1"], "seed must be a non-negative integer"),
    (["--data-seed", "-3"], "data_seed must be a non-negative integer"),
    (["--init-scale", "1e300"], "the loss overflows at initialisation"),
    (["--init-scale", "0"], "output scale alpha (--init-scale) must be a positive number"),
    (["--init-scale", "nan"], "must be a finite number"),
    (["--kappa", "1e200", "--dtype", "float32"], "the initial W overflows float32"),
    (["--nu", "1e300"], "the loss overflows at initialisation"),
    (["--nu", "nan"], "nu (decoder init scale) must be a finite number"),
    (["--kappa", "0"], "kappa (encoder init scale) must be a positive number"),
    (["--regime", "weak", "--nu", "0"], "weak training with nu = 0"),
    (["--steps", "-1"], "steps must be a non-negative integer"),
    (["--steps", str(10**12)], "loss history"),
    (["--width", "20000000", "--d", "64"], "needs about"),
    (["--width", str(10**9)], "needs about"),
    (["--target", "1"], "target (relative loss) must be in [0, 1)"),
    (["--target", "nan"], "target (relative loss) must be a finite number"),
    (["--record-every", "0"], "record_every must be a positive integer"),
    (["--ntk-every", "0"], "ntk_every must be a positive integer"),
    (["--lr-decoder", "0.1", "--regime", "weak"], "drop --lr-decoder"),
    (["--lr", "inf"], "--lr must be a positive number"),
    (["--classes", "0,1"], "--classes filters digit labels"),
    (["--key", "x"], "--key names an array inside a .npz file"),
    (["--device", "cuda:abc"], "unknown device 'cuda:abc'"),
    (["--max-memory", "lots"], "cannot read the memory size"),
    (["--max-memory", "1KB"], "--max-memory limit is"),
    (["--n", "0"], "n must be a positive integer"),
    (["--n", str(10**12)], "needs about"),
])
def test_bad_and_extreme_options_are_one_line_exit_2(capsys, args, needle):
    base = ["train", "--data", "sphere", "--n", "6", "--d", "3", "--width", "8", "--steps", "2", "-q"]
    code, _, err = run_cli([*base, *args], capsys)
    assert code == 2, err
    assert needle in err and one_error_line(err)


@pytest.mark.parametrize(("args", "needle"), [
    (["--tol", "0"], "tol (relative accuracy of the eigenvalues) must be in (0, 1)"),
    (["--tol", "1"], "must be in (0, 1)"),
    (["--tol", "-1e-3"], "must be in (0, 1)"),
    (["--kappa", "-1"], "kappa (encoder init scale) must be a positive number"),
    (["--nu", "inf"], "must be a finite number"),
    (["--regime", "weak", "--nu", "0"], "weak training with nu = 0"),
    (["--regime", "weak", "--nu", "0", "--width", "16"], "weak training with nu = 0"),
    (["--width", "0"], "width must be a positive integer"),
    (["--seed", "99999999999999999999"], "seed must be <="),
    (["--n", str(10**7)], "needs about"),
    (["--kappa", "1e200"], "makes the kernel overflow"),  # found by the fuzz test: kappa ** 2 raised OverflowError
    (["--nu", "1e200", "--regime", "weak"], "makes the kernel overflow"),
])
def test_kernel_validates_like_train(capsys, args, needle):
    code, _, err = run_cli(["kernel", "--data", "sphere", "--n", "6", "--d", "3", *args], capsys)
    assert code == 2 and needle in err and one_error_line(err)


def test_no_arguments_prints_help(capsys):
    code, stdout, _ = run_cli([], capsys)
    assert code == 0 and "train" in stdout and "kernel" in stdout


def test_unknown_command_is_one_line(capsys):
    code, _, err = run_cli(["trian"], capsys)
    assert code == 2 and "No such command" in err and one_error_line(err)


# ----------------------------------------------------------------------------------------------
# the last line of defence


def test_unexpected_exception_is_one_line_and_debug_shows_it(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(job, "run_job", broken)
    code, _, err = run_cli([*SMALL], capsys)
    assert code == 1 and one_error_line(err)
    assert "internal error: ZeroDivisionError: float division by zero; rerun with --debug" in err
    code, _, err = run_cli([*SMALL, "--debug"], capsys)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_out_of_memory_is_named(capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(job, "run_job", oom)
    code, _, err = run_cli([*SMALL], capsys)
    assert code == 2 and "out of memory" in err and one_error_line(err)


def test_memory_advice_names_only_options_the_command_has():
    """Each command's advice when its work does not fit names its own options, and --max-memory only
    where it has that option."""
    import re

    from typer.main import get_command

    commands = get_command(cli.app).commands
    for name, advice in cli.SHRINK.items():
        options = {o for p in commands[name].params for o in p.opts}
        named = set(re.findall(r"--[a-z-]+", advice))
        assert named and named <= options, (name, named - options)
        for refused in (True, False):
            text = cli.memory_advice(name, refused=refused)
            assert ("--max-memory" in text) == ("--max-memory" in options), name
            assert set(re.findall(r"--[a-z-]+", text)) <= options, name


def test_out_of_memory_in_reproduce_names_its_options(capsys, monkeypatch, tmp_path):
    from aedyn import report

    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(report, "reproduce", oom)
    code, _, err = run_cli(["reproduce", "--quick", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "out of memory" in err and one_error_line(err)
    assert "--seeds" in err and "--width" not in err and "--steps" not in err


def test_divergence_message_survives_a_failing_suggestion(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("eigensolver exploded")

    monkeypatch.setattr(gd, "auto_lr", broken)
    code, stdout, _ = run_cli([*SMALL, "--lr", "100", "--steps", "200"], capsys)
    assert code == 3 and "diverged" in stdout and "--lr 10" in stdout


# ----------------------------------------------------------------------------------------------
# what the summary says


def test_zero_decoder_movement_is_reported_as_absolute(capsys, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, _ = run_cli([*SMALL, "--nu", "0", "--steps", "20", "--out", str(out)], capsys)
    assert code == 0 and "||V-V0||/||V0|| undefined (V0 = 0), ||V-V0|| = " in stdout
    metrics = json.loads(out.read_text())["metrics"]
    assert all(v is None for v in metrics["weight_change_V"][1:]) and metrics["weight_distance_V"][-1] > 0


def test_movement_from_tiny_weights_is_printed_finite(capsys):
    """--kappa 1e-200: ||W0|| underflows if squared unscaled; the printed ratio is a finite ~1e199."""
    code, stdout, _ = run_cli(["train", "--data", "sphere", "--n", "8", "--d", "4", "--width", "16", "--steps", "10",
                               "--kappa", "1e-200", "-q"], capsys)
    movement = next(line for line in stdout.splitlines() if line.startswith("movement"))
    ratio = float(re.search(r"\|\|W-W0\|\|/\|\|W0\|\| = (\S+?),", movement).group(1))
    assert code == 0 and 1e150 < ratio < 1e250


def test_target_zero_reports_the_rounding_floor(capsys):
    code, stdout, _ = run_cli(["train", "--data", "sphere", "--n", "8", "--d", "4", "--width", "256",
                               "--regime", "weak", "--steps", "12000", "--target", "0", "-q"], capsys)
    assert code == 0 and "rounding floor" in stdout and "later steps are not fitted" in stdout
    assert "raise --steps" not in stdout
    rate = float(stdout.split("rate")[1].split()[0])
    assert 0 < rate < 0.999  # fitted before the floor: a real contraction, not noise around 1


def test_csv_header_is_announced(tmp_path, capsys):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,0,0\n0,1,0\n0,0,1\n1,1,0\n")
    code, stdout, err = run_cli(["train", "--data", str(path), "--width", "16", "--steps", "2", "-q"], capsys)
    assert code == 0 and "header" in err
    data_line = next(line for line in stdout.splitlines() if line.startswith("data"))
    assert "n = 4, d = 3" in data_line and "skipped header line 1 'a,b,c'" in data_line
