"""Measurements a training job declares beyond the standard row, computed where the job runs.

A :class:`~aedyn.job.TrainJob` lists its measures by name (``measures=("ntk_path",)``), or with
options (``{"name": "heldout", "n": 64, "seed": 1}``, or :func:`measure`). After the job has
trained, on the machine that trained it (this process or a Dask worker), each measure is a function
of the run's :class:`~aedyn.gd.TrainResult` (its initial and final parameters included), the
training data ``X`` and the job; its columns join the run's row in the store
(:func:`aedyn.sweep.result_row`), so what an experiment needs beyond losses and movements travels
with the run, is stored once and is never recomputed on resume. Options are part of the job's
identity (its ``run_id``); a measure without options is written as its bare name, so the ids of
jobs that declared ``"ntk_path"`` before options existed are unchanged.

The measures (each one module, the formula beside its code):

- ``ntk_path`` (:mod:`aedyn.measures.ntk`): what the width search judges a run by;
- ``ntk_ends``: the NTK's extremes at the start and at the stop, its drift at the stop;
- ``weights`` (:mod:`aedyn.measures.maps`): how the encoder moved as a whole and per neuron;
- ``heldout``: the trained map on held-out and training inputs (error, the best multiple of the
  identity, what remains beyond it, the tied network's identity gap at initialisation);
- ``linearised`` (:mod:`aedyn.measures.linearised`): the measured rate against linearised gradient
  descent with the finite-width, exact and infinite-width kernels over the same steps;
- ``limit`` (:mod:`aedyn.measures.limit`): the trained network against the infinite-width NTK
  predictor at the same step size and step count;
- ``memorisation``: the trained network and the converged kernel predictor off the training set.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aedyn._meta import jsonable
from aedyn.errors import AedynError
from aedyn.measures.limit import limit, memorisation
from aedyn.measures.linearised import linearised
from aedyn.measures.maps import heldout, weights
from aedyn.measures.ntk import ntk_ends, ntk_path

if TYPE_CHECKING:
    import torch

    from aedyn.gd import TrainResult

__all__ = ["MEASURES", "NEEDS_NTK", "Measure", "check_measures", "compute", "measure"]

MeasureFn = Callable[..., dict[str, Any]]

MEASURES: dict[str, MeasureFn] = {"ntk_path": ntk_path, "ntk_ends": ntk_ends, "weights": weights,
                                  "heldout": heldout, "linearised": linearised, "limit": limit,
                                  "memorisation": memorisation}
"""Every measure by name: ``fn(result, X, job, **options) -> {column: value}``."""

NEEDS_NTK = ("ntk_path", "ntk_ends")
"""Measures that read the NTK records of the run, so need its ``ntk_every``."""

_CONTEXT = ("result", "X", "job")


@dataclass(frozen=True)
class Measure:
    """A declared measure: its name and its options (sorted ``(key, value)`` pairs of JSON scalars)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> str | dict[str, Any]:
        """The bare name without options, else ``{"name": ..., **options}`` (what a job's record holds)."""
        return self.name if not self.options else {"name": self.name, **dict(self.options)}

    def __call__(self, result: TrainResult, X: torch.Tensor, job: Any) -> dict[str, Any]:
        return MEASURES[self.name](result, X, job, **dict(self.options))


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    return {k: p for k, p in inspect.signature(MEASURES[name]).parameters.items() if k not in _CONTEXT}


def measure(name: str, **options: Any) -> Measure:
    """A :class:`Measure`, checked: a known name, options it takes, each a number, string or boolean."""
    if not isinstance(name, str) or name not in MEASURES:
        raise AedynError(f"unknown measure {name!r}; use one of: {', '.join(MEASURES)}")
    known = _parameters(name)
    for key, value in options.items():
        if key not in known:
            takes = ", ".join(known) or "no options"
            raise AedynError(f"the measure {name} has no option {key!r}; it takes {takes}")
        if not isinstance(value, (bool, int, float, str)) or (isinstance(value, float) and not math.isfinite(value)):
            raise AedynError(f"the measure {name}'s option {key} must be a finite number, a string or a boolean; "
                             f"got {value!r}")
    missing = [k for k, p in known.items() if p.default is inspect.Parameter.empty and k not in options]
    if missing:
        raise AedynError(f"the measure {name} needs the option(s) {', '.join(missing)}")
    return Measure(name, tuple(sorted(options.items())))


def check_measures(specs: Any) -> tuple[Measure, ...]:
    """A job's ``measures`` as :class:`Measure` s, in order, each once: names, ``{"name": ..., **options}``
    mappings or :class:`Measure` s. Anything else is one :class:`AedynError` line."""
    if isinstance(specs, (str, Mapping, Measure)) or not isinstance(specs, Sequence):
        raise AedynError(f"measures must be a list of measure names (or {{'name': ..., option: value}}) from "
                         f"{', '.join(MEASURES)}; got {specs!r}")
    out: dict[Measure, None] = {}
    for spec in specs:
        if isinstance(spec, Measure):
            one = measure(spec.name, **dict(spec.options))
        elif isinstance(spec, str):
            one = measure(spec)
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            one = measure(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
        else:
            raise AedynError(f"a measure is a name from {', '.join(MEASURES)} or a mapping with its 'name'; "
                             f"got {spec!r}")
        out[one] = None
    names = [m.name for m in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AedynError(f"the measure {twice[0]} is declared twice with different options; declare it once")
    return tuple(out)


def compute(measures: Sequence[Measure], result: TrainResult, X: torch.Tensor, job: Any) -> dict[str, Any]:
    """Every declared measure of one run, their columns merged in order: values are numbers, strings,
    booleans, lists of them or ``None``; a structure (a mapping) is stored as JSON text, its
    non-finite numbers as ``null``."""
    columns: dict[str, Any] = {}
    for m in measures:
        for key, value in m(result, X, job).items():
            if key in columns:
                raise AedynError(f"the measures {', '.join(x.name for x in measures)} both give the column {key!r}; "
                                 "declare one of them")
            columns[key] = json.dumps(jsonable(value), allow_nan=False) if isinstance(value, dict) else value
    return columns
