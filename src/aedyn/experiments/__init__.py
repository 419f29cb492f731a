"""The paper's claims as experiments, one module per claim (SPEC.md, "What the experiments test").

- :mod:`aedyn.experiments.e1`: linear convergence: the measured per-step contraction of the loss
  against the linearised-GD predictions of the kernels, per regime, data set, width and step rule.
- :mod:`aedyn.experiments.e2`: how much over-parameterisation each regime needs: the least width
  ``m*`` at which gradient descent succeeds in most seeds, under three criteria (``aedyn threshold``;
  :func:`~aedyn.experiments.e2.least_width`), the tidy table of ``m*`` against ``n``, the fitted
  growth ``m* ∝ n^a`` with bootstrap intervals over seeds, and a verdict computed from them.
- :mod:`aedyn.experiments.e3`: laziness: weight movement, pattern flips and kernel drift against
  the width, with fitted slopes against the theory's ``m^(-1/2)``, and each run's certificate.
- :mod:`aedyn.experiments.e4`: the infinite-width limit (trained networks against the NTK-limit
  prediction, on training and held-out inputs, against ``m``) and memorisation on digits.
- :mod:`aedyn.experiments.e5`: the weight-tied degeneracy: tied against untied on held-out inputs,
  under NTK and mean-field output scales, and the tied NTK's infinite-width limit.
- :mod:`aedyn.experiments.e6`: from lazy training to feature learning, ``alpha = m^(-gamma)`` for
  ``gamma`` from 1/2 to 1: where the lazy picture stops describing the dynamics.

Experiments are library code: they return numbers and tables and never print or write files;
:mod:`aedyn.report` runs them and writes the report.
"""

import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

REGIME_COLOURS = {"weak": "#d95f02", "joint": "#1b9e77", "decoder": "#7570b3", "tied": "#e7298a"}
"""One colour per regime in every experiment's figures."""
DATA_MARKERS = {"sphere": "o", "digits": "s"}
"""One marker per data set in every experiment's figures (others: triangles)."""

_ORDER = ("E1", "E2", "E3", "E4", "E5", "E6")
EXPERIMENTS: tuple[str, ...] = tuple(name for name in _ORDER
                                     if importlib.util.find_spec(f"aedyn.experiments.{name.lower()}") is not None)
"""The experiments this installation has, in report order."""


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (``"E2"``): it has ``NAME``, ``TITLE``, ``CLAIM`` and the
    verbs ``config``, ``setup``, ``run``, ``tabulate``, ``figures``, ``verdict``."""
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
