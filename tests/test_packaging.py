"""The package as a user installs it: its declared dependencies, ``python -m aedyn``, a start-up
that loads no heavy module, the lazily imported public names, the optional Dask extra, and the
license and citation files."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aedyn
from aedyn import cli, sweep
from conftest import one_error_line, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "aedyn"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

HEAVY = ("torch", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "sklearn", "dask", "distributed")
"""Modules the command line must not load before a command needs them."""

IMPORT_NAMES = {"scikit-learn": "sklearn", "dask": "distributed"}
"""Distributions imported under another name (``dask[distributed]`` is imported as ``distributed``)."""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()  # type: ignore[union-attr]


def _third_party_imports() -> set[str]:
    """Top-level names of the non-standard modules ``src/aedyn`` imports anywhere (functions included)."""
    names = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "aedyn"}


# ---- dependencies ---------------------------------------------------------------------------------

def test_every_import_is_declared_and_every_dependency_imported():
    project = PYPROJECT["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {_requirement_name(r) for r in project["optional-dependencies"]["dask"]}
    declared = {IMPORT_NAMES.get(name, name) for name in core | extras}
    assert _third_party_imports() == declared


def test_dask_is_an_extra_that_the_tests_install():
    project = PYPROJECT["project"]
    assert not any(_requirement_name(r) == "dask" for r in project["dependencies"])
    assert [_requirement_name(r) for r in project["optional-dependencies"]["dask"]] == ["dask"]
    assert "aedyn[dask]" in project["optional-dependencies"]["test"]


@pytest.mark.parametrize("args", [["sweep", "CONFIG", "--out", "STORE", "--workers", "2"],
                                  ["sweep", "CONFIG", "--out", "STORE", "--scheduler", "tcp://HOST:1", "--dry-run"],
                                  ["threshold", "--n", "4", "--d", "3", "--workers", "2"],
                                  ["reproduce", "--quick", "--out", "REPORT", "--workers", "2"]])
def test_dask_options_without_dask_name_the_extra(tmp_path, capsys, monkeypatch, args):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an installation without the extra has
    config = tmp_path / "sweep.toml"
    config.write_text('[grid]\nregime = ["joint"]\ndata = ["sphere"]\nn = [4]\nd = [3]\nwidth = [8]\n')
    paths = {"CONFIG": str(config), "STORE": str(tmp_path / "store"), "REPORT": str(tmp_path / "report")}
    code, _, err = run_cli([paths.get(a, a) for a in args], capsys)
    assert code == 2 and one_error_line(err) and 'pip install "aedyn[dask]"' in err, err
    assert not (tmp_path / "store").exists() and not (tmp_path / "report").exists()


def test_the_local_executor_needs_no_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert sweep.check_executor("local") is None
    with pytest.raises(aedyn.AedynError, match=r'pip install "aedyn\[dask\]"'):
        sweep.check_executor("dask", workers=2)


# ---- start-up -------------------------------------------------------------------------------------

def test_the_command_line_imports_no_heavy_module():
    proc = _python("import sys, aedyn, aedyn.cli\n"
                   f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["train", "--help"], ["reproduce", "--help"]])
def test_version_and_help_import_no_heavy_module(args):
    proc = _python("import sys\nfrom aedyn import cli\n"
                   f"code = cli.run({args!r})\n"
                   f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
                   "assert code == 0 and not heavy, (code, heavy)")
    assert proc.returncode == 0, proc.stderr


def test_python_dash_m_aedyn_is_the_command_line(tmp_path):
    started = time.perf_counter()
    version = subprocess.run([sys.executable, "-m", "aedyn", "--version"], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    print(f"python -m aedyn --version: {time.perf_counter() - started:.2f} s")
    assert version.returncode == 0 and version.stdout.strip() == f"aedyn {aedyn.__version__}"
    usage = subprocess.run([sys.executable, "-m", "aedyn"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert usage.returncode == 0 and "Usage: aedyn" in usage.stdout and "reproduce" in usage.stdout
    bad = subprocess.run([sys.executable, "-m", "aedyn", "train", "--regime", "wek"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and one_error_line(bad.stderr) and "unknown --regime 'wek'" in bad.stderr


def test_the_console_script_runs_the_same_main():
    assert PYPROJECT["project"]["scripts"] == {"aedyn": "aedyn.cli:main"}
    assert importlib.import_module("aedyn.__main__").main is cli.main


# ---- the public names, imported on first use -----------------------------------------------------

def test_every_public_name_resolves_to_its_module():
    for name in aedyn.__all__:
        assert getattr(aedyn, name) is not None
    exported = {name for names in aedyn._EXPORTS.values() for name in names}
    assert exported | {"__version__"} == set(aedyn.__all__)
    for module, names in aedyn._EXPORTS.items():
        for name in names:
            assert getattr(aedyn, name) is getattr(importlib.import_module(module), name)
    assert set(aedyn.__all__) <= set(dir(aedyn))
    from aedyn import TrainJob, train  # the usual import keeps working

    assert train is aedyn.gd.train and TrainJob is aedyn.job.TrainJob


def test_type_checkers_see_the_same_names():
    """The ``if TYPE_CHECKING:`` imports of ``aedyn/__init__.py`` name what ``_EXPORTS`` does, module by module."""
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        seen[node.module] = tuple(alias.name for alias in node.names)
    assert {m: set(n) for m, n in seen.items()} == {m: set(n) for m, n in aedyn._EXPORTS.items()}


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        aedyn.trian  # noqa: B018
    assert not hasattr(aedyn, "trian")


# ---- files a distribution carries ---------------------------------------------------------------

def test_license_and_citation_agree_with_the_project():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 aedyn developers\n")
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r"^cff-version: 1\.2\.0$", citation, re.M)
    assert re.search(rf"^version: {re.escape(project['version'])}$", citation, re.M)
    assert re.search(r"^license: MIT$", citation, re.M) and "arXiv:1911.11983" in citation
    assert f"## [{project['version']}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_package_is_typed():
    assert (SRC / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["aedyn"]
