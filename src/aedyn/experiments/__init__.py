"""The paper's claims as experiments, one module per claim.

- :mod:`aedyn.experiments.e1`: linear convergence: the measured per-step contraction of the loss
  against the linearised-GD predictions of the kernels, per regime, data set, width and step rule.
- :mod:`aedyn.experiments.e2`: how much over-parameterisation each regime needs: the least width
  ``m*`` at which gradient descent succeeds in most seeds, under the criteria ``reach`` and
  ``lambda0`` (``aedyn threshold``; :func:`aedyn.threshold.least_width`), its estimate from
  every seed's bracket, the growth ``m* ∝ n^a`` and weak's over joint's width, with intervals.
- :mod:`aedyn.experiments.e3`: laziness: weight movement, pattern flips and kernel drift against
  the width, with fitted slopes against the theory's ``m^(-1/2)``, and each run's certificate.
- :mod:`aedyn.experiments.e4`: the infinite-width limit (trained networks against the NTK-limit
  prediction, on training and held-out inputs, against ``m``) and memorisation on digits.
- :mod:`aedyn.experiments.e5`: the weight-tied degeneracy: tied against untied on held-out inputs,
  under NTK and mean-field output scales, and the tied NTK's infinite-width limit.
- :mod:`aedyn.experiments.e6`: from lazy training to feature learning, ``alpha = m^(-gamma)`` for
  ``gamma`` from 1/2 to 1: where the lazy picture stops describing the dynamics.

Experiments are library code: they return numbers, tables, figures and findings and never print
or write files; :mod:`aedyn.report` runs them and writes the report. Each module answers to the
same verbs: ``config``, ``setup``, ``run`` (every training a :class:`~aedyn.job.TrainJob` with the
measures it needs, run by the :class:`~aedyn.sweep.Runner` it is handed: its store makes an
interrupted run resume, its executor may be a Dask cluster),
``tabulate`` (the full tidy table; optionally ``tables``), ``key_table`` (at most ten columns with
human headers), ``figures`` (in the house style, :mod:`aedyn.experiments.style`, each with a caption
in ``CAPTIONS``), ``findings`` (at most five :class:`aedyn.findings.Finding`, made by its rules, with
one headline per claim of the paper the experiment speaks to), ``details`` (every setting in
sentences) and ``summary`` (the numbers for ``summary.json``). Every interval comes from
:mod:`aedyn.stats`; :func:`values_by_seed` lines the runs' values up by seed for its slope fit.

Two more verbs let the report trust finished results before it reuses them: ``runs`` (the
identifying settings of every run the config asks for, e.g. regime, width and seed: what the
results must hold, and how many runs a number of seeds makes) and ``missing`` (how finished
results fall short of their config, in words, or raise ``ValueError`` when they are damaged, not
incomplete); :func:`require` and :func:`missing_runs` do the common part.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch

from aedyn._names import EXPERIMENT_NAMES
from aedyn.experiments.style import DATA_MARKERS, REGIME_COLOURS  # noqa: F401  (the one palette, re-exported)

RECORD_EVERY = 5
"""Experiments that certify their runs (E3, E5, E6) record movement, pattern flips and safe radii
every this many steps (and at the stop): the certificate's safe-radius invariant is judged there."""

EXPERIMENTS: tuple[str, ...] = tuple(name for name in EXPERIMENT_NAMES
                                     if importlib.util.find_spec(f"aedyn.experiments.{name.lower()}") is not None)
"""The experiments this installation has, in report order."""


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (``"E2"``): it has ``NAME``, ``TITLE``, ``CLAIM``, ``CAPTIONS``
    and the verbs of the module docstring."""
    return importlib.import_module(f"aedyn.experiments.{name.lower()}")


@contextmanager
def small_problems(device: str) -> Iterator[None]:
    """Torch on one CPU thread while an experiment's many small problems run (restored after): at
    these sizes one thread is as fast as two, and many times faster when another process holds a core."""
    threads = torch.get_num_threads()
    if str(device).startswith("cpu"):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ---- lining runs up by seed ---------------------------------------------------------------------

def _width(w: Any) -> int:
    m = float(w)
    if not (m > 0 and m.is_integer()):
        raise ValueError(f"a width must be a positive integer, got {w!r}")
    return int(m)


def values_by_seed(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list[int], list[list[float | None]]]:
    """``(widths, values)`` for :func:`aedyn.stats.fit_slope` from records with ``width``, ``seed`` and
    ``key``: the widths in increasing order and ``values[j][i]`` the ``key`` of the ``i``-th seed (in
    increasing order) at ``widths[j]``, ``None`` where that seed has no record there. Two records of
    one width and seed are an error."""
    table: dict[tuple[int, Any], Any] = {}
    for r in records:
        cell = (_width(r["width"]), r["seed"])
        if cell in table:
            raise ValueError(f"two records for width {cell[0]} and seed {cell[1]}")
        table[cell] = r.get(key)
    widths = sorted({m for m, _ in table})
    seeds = sorted({s for _, s in table})
    return widths, [[table.get((m, s)) for s in seeds] for m in widths]


# ---- finished results against their config ------------------------------------------------------

def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def require(record: Any, keys: Sequence[str], what: str = "the results") -> dict[str, Any]:
    """``record`` as a dict that has every key of ``keys``; ``ValueError`` naming the first lack."""
    if not isinstance(record, dict):
        raise ValueError(f"{what} must be an object; got {_kind(record)}")
    for key in keys:
        if key not in record:
            raise ValueError(f"no {key!r} in {what}")
    return record


def require_results(results: Any, config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """An experiment's results as a dict with ``config`` (equal to ``config``: the one their record
    names), ``notes`` (a list of strings) and every key of ``keys``; ``ValueError`` otherwise."""
    require(results, ("config", "notes", *keys))
    if results["config"] != config:
        raise ValueError("the results name another config than their record")
    if not (isinstance(results["notes"], list) and all(isinstance(n, str) for n in results["notes"])):
        raise ValueError(f"'notes' must be a list of strings; got {_kind(results['notes'])}")
    return results


def _same_kind(value: Any, like: Any) -> bool:
    """``value`` is of the JSON kind of ``like`` (any number for a number, a list for a list, ...)."""
    if isinstance(like, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(like, bool)
    if isinstance(like, (int, float)):
        return isinstance(value, (int, float))
    return like is None or isinstance(value, type(like))


def _cell(value: Any) -> Any:
    """A setting as a hashable value that compares as JSON does (``256 == 256.0``)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def missing_runs(records: Any, expected: Sequence[Mapping[str, Any]], what: str = "runs") -> list[str]:
    """How ``records`` (an experiment's run records) fall short of ``expected`` (the identifying
    settings of every run its config asks for, all with the same keys): a clause for the runs it
    lacks and one for runs beyond the config, each naming the first; empty when they are the same
    runs. Records that are not a list of objects with those settings, of their kinds, or whose
    other values are not of one kind per key across the runs (a number where the others have
    text, say), are damaged: ``ValueError``."""
    if not isinstance(records, list):
        raise ValueError(f"{what!r} must be a list of run records; got {_kind(records)}")
    keys = list(expected[0]) if expected else []
    have: Counter = Counter()
    kinds: dict[str, Any] = {}
    for i, record in enumerate(records):
        require(record, keys, f"{what}[{i}]")
        for key in keys:
            if not _same_kind(record[key], expected[0][key]):
                raise ValueError(f"{what}[{i}] has {key} {record[key]!r}, not {_kind(expected[0][key])}")
        for key, value in record.items():
            if value is not None and not _same_kind(value, kinds.setdefault(key, value)):
                raise ValueError(f"{what}[{i}] has {key} {value!r} where other runs have {_kind(kinds[key])}")
        have[tuple(_cell(record[k]) for k in keys)] += 1
    want = Counter(tuple(_cell(e[k]) for k in keys) for e in expected)

    def name(cell: tuple) -> str:
        return ", ".join(f"{k} {v}" for k, v in zip(keys, cell, strict=True))

    out = []
    lack, extra = want - have, have - want
    if lack:
        out.append(f"lacks {sum(lack.values())} of the {len(expected)} {what} its config asks for "
                   f"({name(next(iter(lack)))} first)")
    if extra:
        out.append(f"holds {sum(extra.values())} {what} its config does not ask for ({name(next(iter(extra)))} "
                   "first)")
    return out
