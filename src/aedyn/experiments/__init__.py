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
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator, Mapping
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
