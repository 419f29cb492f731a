"""Every command and Python block of the README and of the documentation runs, as written, in a fresh
folder like a new user's (with copies of the repository's ``examples/`` and ``bench/``): what the docs promise is what
this test checks.

Blocks are taken in document order, one test per page: a page's Python blocks share one namespace
and its commands one folder, so a later block may use what an earlier one made. The HTML comment on
the line before a block may say

- ``test: starts SECONDS``: each command is long (a full report); it must run that long without an
  error (it is then interrupted, as a user would with Ctrl-C) or finish with exit 0;
- ``test: exit CODE``: each command must exit with CODE (a block that shows an error);
- ``test: skip REASON``: not run here (it needs a GPU or a running cluster, or it is the set-up that
  CI runs itself: see :func:`test_ci_runs_the_readme_set_up_commands`).

Every command's output must hold no Python traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DIRECTIVE = re.compile(r"<!--\s*test:\s*(starts|exit|skip)\s*(.*?)\s*-->")
COMMAND_TIMEOUT = 300


@dataclass
class Block:
    page: str
    line: int
    language: str
    text: str
    directive: tuple[str, str] | None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the directive on the line before it, if any."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)\s*([\w-]*)", lines[i])
        if not fence:
            i += 1
            continue
        before = DIRECTIVE.search(lines[i - 1]) if i > 0 else None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1)))
        name = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)
        found.append(Block(name, i + 1, fence.group(2), "\n".join(lines[i + 1:end]),
                           (before.group(1), before.group(2)) if before else None))
        i = end + 1
    return found


def commands(text: str) -> list[str]:
    """The shell commands of a block: one per line, backslash continuations joined, blank lines and
    comment lines dropped."""
    joined = text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in ("bash", "python")]


def _environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HOME=str(folder), MPLBACKEND="Agg", PYTHONWARNINGS="ignore", COLUMNS="100")
    env.pop("AEDYN_DEBUG", None)
    return env


SHELL = re.compile(r"[|;<>$`()]")


def _in_process(command: str) -> list[list[str]] | None:
    """``command`` as the argument lists of ``aedyn`` calls joined by ``&&``, when it is nothing
    else (no pipes, redirections or other programs): those run in this process (``aedyn.cli.run``,
    the entry point's own function), which spares each one the start-up of a new interpreter."""
    parts = [shlex.split(part, comments=True) for part in command.split("&&")]
    if SHELL.search(command.split("#")[0]) or not all(p and p[0] == "aedyn" for p in parts):
        return None
    return [p[1:] for p in parts]


def _run_command(command: str, folder: Path, where: str, directive: tuple[str, str] | None) -> None:
    env = _environment(folder)
    kind, value = directive if directive else ("", "")
    calls = _in_process(command) if kind != "starts" else None
    if calls is not None:
        from aedyn.cli import run

        expected = int(value) if kind == "exit" else 0
        for argv in calls:
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = run(argv)
            output = stdout.getvalue() + stderr.getvalue()
            assert "Traceback" not in output, f"{where}: {command}\n{output}"
            if code != 0:
                assert code == expected, f"{where}: {command}\nexit {code}, expected {expected}\n{output}"
                return
        assert expected == 0, f"{where}: {command}\nexit 0, expected {expected}"
        return
    if kind == "starts":
        process = subprocess.Popen(command, shell=True, cwd=folder, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True, text=True)
        deadline = time.monotonic() + float(value)
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        running = process.poll() is None
        output = None
        while output is None and time.monotonic() < deadline + 120:
            if process.poll() is None:  # Ctrl-C, again every few seconds: one pressed while a Dask
                os.killpg(process.pid, signal.SIGINT)  # cluster starts is not seen (aedyn.sweep)
            with contextlib.suppress(subprocess.TimeoutExpired):
                output, _ = process.communicate(timeout=5)
        if output is None:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise AssertionError(f"{where}: {command} did not end on Ctrl-C\n{output}")
        if running and output.rstrip().endswith("KeyboardInterrupt"):  # a plain script stopped by our Ctrl-C
            output = output[:output.find("Traceback")]
        assert "Traceback" not in output, f"{where}: {command}\n{output}"
        assert "error:" not in output, f"{where}: {command}\n{output}"
        assert running or process.returncode == 0, f"{where}: {command} exit {process.returncode}\n{output}"
        return
    done = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)
    output = done.stdout + done.stderr
    expected = int(value) if kind == "exit" else 0
    assert done.returncode == expected, f"{where}: {command}\nexit {done.returncode}, expected {expected}\n{output}"
    assert "Traceback" not in output, f"{where}: {command}\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_and_snippet_of_the_page_runs(page: Path, tmp_path: Path, monkeypatch) -> None:
    for folder in ("examples", "bench"):  # what a clone has beside the package
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in runnable(page):
        where = f"{block.page}:{block.line}"
        if block.directive and block.directive[0] == "skip":
            continue
        if block.language == "python":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(block.text, where, "exec"), namespace)  # the documented snippet itself
            continue
        for command in commands(block.text):
            _run_command(command, tmp_path, where, block.directive)


def test_every_skipped_block_says_why_and_needs_what_a_test_cannot_have() -> None:
    allowed = ("needs a CUDA GPU", "needs a running Dask scheduler", "the set-up commands: CI runs them")
    for page in PAGES:
        for block in blocks(page):
            if block.directive and block.directive[0] == "skip":
                assert block.directive[1].startswith(allowed), f"{block.page}:{block.line}: {block.directive[1]!r}"


def test_ci_runs_the_readme_set_up_commands() -> None:
    """The README's two set-up commands are skipped above (one installs, the other is this suite);
    CI runs them on a clean clone: the install with the test extra, the suite, and the main job."""
    first = next(b for b in blocks(ROOT / "README.md") if b.language == "bash")
    assert first.directive == ("skip", "the set-up commands: CI runs them (.ci/run)")
    main_job, tests = commands(first.text)
    ci = (ROOT / ".ci" / "run").read_text()
    pin = "torch==2.13.0"  # the CPU build both install
    assert "python -m pip install" in main_job and pin in main_job and pin in ci
    assert main_job.split("&&")[1].strip().removeprefix("aedyn ") in ci  # reproduce --quick --out aedyn-report
    assert tests.split("&&")[1].strip() in ci  # python -m pytest


def test_the_sweep_shown_in_the_guide_is_the_example_file() -> None:
    toml = next(b for b in blocks(ROOT / "docs" / "guide" / "sweeps.md") if b.language == "toml")
    assert toml.text + "\n" == (ROOT / "examples" / "sweep.toml").read_text()


def test_the_runner_reads_directives_continuations_and_comments(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("x\n<!-- test: exit 2 -->\n```bash\n# a comment\naedyn train \\\n  --width many\n\n```\n"
                    "```python\nprint(1)\n```\n```text\nnot run\n```\n")
    parsed = blocks(page)
    assert [(b.language, b.directive) for b in parsed] == [("bash", ("exit", "2")), ("python", None), ("text", None)]
    assert commands(parsed[0].text) == ["aedyn train    --width many"]
