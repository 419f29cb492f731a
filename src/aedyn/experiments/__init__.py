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

E3-E6 fit every power law ``q ∝ m^s`` in the width with one estimator, :func:`fit_power_law`
(seed-mean of ``log q`` on ``log m``, paired bootstrap over seeds); :func:`values_by_seed` lines the
runs' values up by seed for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from aedyn.experiments.style import DATA_MARKERS, REGIME_COLOURS  # noqa: F401  (the one palette, re-exported)

RECORD_EVERY = 5
"""Experiments that certify their runs (E3, E5, E6) record movement, pattern flips and safe radii
every this many steps (and at the stop): the certificate's safe-radius invariant is judged there."""

_ORDER = ("E1", "E2", "E3", "E4", "E5", "E6")
EXPERIMENTS: tuple[str, ...] = tuple(name for name in _ORDER
                                     if importlib.util.find_spec(f"aedyn.experiments.{name.lower()}") is not None)
"""The experiments this installation has, in report order."""


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (``"E2"``): it has ``NAME``, ``TITLE``, ``CLAIM`` and the
    verbs ``config``, ``setup``, ``run``, ``tabulate``, ``figures``, ``verdict``."""
    return importlib.import_module(f"aedyn.experiments.{name.lower()}")


def checkpointed(checkpoint: Any | None, key: str, notes: Any, batch: Callable[[], list[dict]]) -> list[dict]:
    """The records of the batch ``key``: from ``checkpoint`` (an :class:`aedyn.files.Checkpoint`, or
    ``None``) when a run before this one finished it, its notes added to ``notes`` (an
    :class:`aedyn.job.Notes`); otherwise ``batch()``'s, kept in the checkpoint with the notes raised
    meanwhile. This is how an interrupted experiment, restarted, retrains only the batch in flight."""
    saved = None if checkpoint is None else checkpoint.get(key)
    if saved is None:
        before = len(notes.messages)
        saved = {"runs": batch(), "notes": notes.messages[before:]}
        if checkpoint is not None:
            checkpoint.put(key, saved)
    else:
        notes.messages += saved["notes"]
    return saved["runs"]


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


# ---- power laws in the width ----------------------------------------------------------------------

@dataclass(frozen=True)
class PowerLaw:
    """``q ∝ m^value``, fitted by :func:`fit_power_law`: ``value`` the slope, ``ci_low``/``ci_high``
    its percentile bootstrap interval (``None`` when there is none), ``widths`` the widths fitted
    (increasing), ``zero_widths`` those left out because some seed has ``q <= 0`` there."""

    value: float
    ci_low: float | None
    ci_high: float | None
    widths: tuple[int, ...]
    zero_widths: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``value, ci_low, ci_high, n_widths, widths, zero_widths`` (JSON-ready)."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n_widths": len(self.widths),
                "widths": list(self.widths), "zero_widths": list(self.zero_widths)}


def fit_power_law(widths: Sequence[float], values: Sequence[Sequence[float | None]], *, resamples: int = 1000,
                  level: float = 0.95, seed: int = 0) -> PowerLaw | None:
    """The exponent ``s`` of ``q ∝ m^s`` from ``values[j]``, the seeds' values of ``q`` at width
    ``widths[j]``, lined up by seed: ``values[j][i]`` belongs to the ``i``-th seed at every width
    (``None``, NaN or infinite: missing; shorter rows are padded with missing values).

    With ``y_j = mean_i log q_ij`` over the seeds present at width ``m_j`` and ``x_j = log m_j``,
    the slope is the least-squares slope over the fitted widths, each width weighing the same::

        s = sum_j (x_j - x̄)(y_j - ȳ) / sum_j (x_j - x̄)^2.

    The interval is the percentile interval (at ``level = 0.95`` the 2.5th and 97.5th percentiles) of
    ``s`` refitted on ``resamples`` paired bootstrap resamples of the seeds: each resample draws
    ``S`` seed indices with replacement (``S``: the seeds with a value at some fitted width) and uses
    that same draw at every width, since a seed's networks at different widths share their first
    random draws (``init_params`` draws ``W`` first, so the network of width 256 is the first 256 rows
    of the one of width 1024) and their values are correlated. A resample that leaves some width
    without a value is skipped. No interval (``None`` bounds) when no fitted width has two seeds,
    when ``resamples`` is 0, or when fewer than 10 resamples are usable.

    Widths without any value are skipped; widths where a present value is ``<= 0`` (no logarithm)
    are left out and named in ``zero_widths``. ``None`` when fewer than two widths can be fitted.
    ``seed`` seeds the resampling, so the interval is reproducible."""
    if len(widths) != len(values):
        raise ValueError(f"{len(widths)} widths but {len(values)} rows of values")
    ms = [_width(w) for w in widths]
    if len(set(ms)) != len(ms):
        raise ValueError(f"widths must be distinct, got {ms}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    seeds = max((len(v) for v in values), default=0)
    Q = np.full((len(ms), seeds), np.nan)
    for j, row in enumerate(values):
        Q[j, :len(row)] = [math.nan if v is None else float(v) for v in row]
    present = np.isfinite(Q)
    nonpositive = (present & ~(Q > 0)).any(axis=1)
    fitted = [j for j in np.argsort(ms) if present[j].any() and not nonpositive[j]]
    zeros = tuple(sorted(ms[j] for j in range(len(ms)) if nonpositive[j]))
    if len(fitted) < 2:
        return None
    active = present[fitted].any(axis=0)  # seeds with no value at any fitted width take no part
    Q, mask = Q[fitted][:, active], present[fitted][:, active]
    logs = np.where(mask, np.log(np.where(mask, Q, 1.0)), 0.0)  # log q_ij where present, else 0
    x = np.log(np.asarray([ms[j] for j in fitted], dtype=float))
    xc = x - x.mean()
    value = float(((logs.sum(axis=1) / mask.sum(axis=1)) @ xc) / (xc @ xc))
    kept = tuple(ms[j] for j in fitted)
    if int(resamples) <= 0 or mask.sum(axis=1).max() < 2:
        return PowerLaw(value, None, None, kept, zeros)
    n = mask.shape[1]
    draws = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
    counts = np.zeros((int(resamples), n))
    np.add.at(counts, (np.arange(int(resamples))[:, None], draws), 1.0)  # how often each seed was drawn
    sums, present_draws = counts @ logs.T, counts @ mask.T  # (resamples, widths)
    usable = (present_draws > 0).all(axis=1)
    if usable.sum() < 10:
        return PowerLaw(value, None, None, kept, zeros)
    slopes = (sums[usable] / present_draws[usable]) @ xc / (xc @ xc)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(slopes, [tail, 100 - tail])
    return PowerLaw(value, float(low), float(high), kept, zeros)


def _width(w: Any) -> int:
    m = float(w)
    if not (m > 0 and m.is_integer()):
        raise ValueError(f"a width must be a positive integer, got {w!r}")
    return int(m)


def values_by_seed(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list[int], list[list[float | None]]]:
    """``(widths, values)`` for :func:`fit_power_law` from records with ``width``, ``seed`` and
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
