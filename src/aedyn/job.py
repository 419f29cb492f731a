"""Jobs from plain settings: a training run (data, initialisation, gradient descent: what
``aedyn train`` runs, and what sweeps will run many of) and a kernel report (``aedyn kernel``).
Settings are flat, JSON-ready dataclasses, so a result can always be traced back to the exact job
that made it."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aedyn._check import check_int, check_seed
from aedyn._meta import environment
from aedyn._seed import SCHEME
from aedyn._tensor import resolve_device, resolve_dtype
from aedyn.certificate import certify
from aedyn.data import check_source, data_memory, expected_shape, load_data
from aedyn.errors import AedynError, AedynWarning, first_line
from aedyn.gd import TrainResult, check_train_options, train_batch, train_memory
from aedyn.kernels import check_kernel_options, kernel_spectrum, spectrum_memory
from aedyn.measures import NEEDS_NTK, Measure, check_measures, compute
from aedyn.model import Params, check_init, check_regime, check_scales, init_params
from aedyn.ntk import check_solver_options, ntk_extremes, operator_memory
from aedyn.resources import MemoryEstimate, check_memory


@dataclass(frozen=True)
class Job:
    """What every job shares: the regime, where the data come from, the initialisation, the
    seeds, device and dtype. ``seed`` seeds the initialisation and ``data_seed`` (default: the
    same number) the data draw; they feed independent streams (:mod:`aedyn._seed`), so equal
    seeds never correlate weights with samples.

    A job validates all its settings when it is made (through the same checks the library
    functions use), so a bad setting fails before any data is read or any output written."""

    regime: str = "joint"
    data: str = "digits"
    n: int | None = None
    d: int | None = None
    classes: tuple[int, ...] | None = None
    key: str | None = None
    normalize: bool = True
    kappa: float = 1.0
    nu: float = 1.0
    decoder_init: str = "gaussian"
    seed: int = 0
    data_seed: int | None = None
    device: str = "cpu"
    dtype: str = "float64"
    per_class: int | None = None
    zero_output: bool = False

    def __post_init__(self) -> None:
        check_regime(self.regime)
        if not isinstance(self.data, str) or not self.data:
            raise AedynError(f"data must be sphere, digits or a file path; got {self.data!r}")
        self._set(seed=check_seed(self.seed),
                  data_seed=None if self.data_seed is None else check_seed(self.data_seed, "data_seed"))
        check_source(self.data, n=self.n, d=self.d, classes=self.classes, key=self.key, seed=self.resolved_data_seed,
                     per_class=self.per_class)
        if not isinstance(self.zero_output, bool):
            raise AedynError(f"zero_output must be True or False; got {self.zero_output!r}")
        if self.zero_output and self.regime == "tied":
            raise AedynError("zero_output needs a free decoder; a tied network (V = W^T) cannot start at f_0 = 0")
        if self.classes is not None:  # checked above: integers 0..9
            self._set(classes=tuple(int(c) for c in self.classes))
        if not isinstance(self.normalize, bool):
            raise AedynError(f"normalize must be True or False; got {self.normalize!r}")
        resolve_dtype(self.dtype)
        resolve_device(self.device)

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (what names a run: :func:`aedyn.sweep.run_id`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # values are scalars and tuples: no deep copy
        out["classes"] = None if self.classes is None else list(self.classes)
        out["data_seed"] = self.resolved_data_seed
        out["seed_scheme"] = SCHEME
        for name, unset in (("per_class", None), ("zero_output", False)):  # absent unless set: older ids unchanged
            if out[name] == unset:
                del out[name]
        return out

    @property
    def resolved_data_seed(self) -> int:
        """The seed of the data draw: ``data_seed``, or ``seed`` when unset."""
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def data_path(self) -> Path | None:
        """The data file, when the data come from one."""
        return None if self.data in ("sphere", "digits") else Path(self.data)

    def expected_shape(self) -> tuple[int, int] | None:
        """``(n, d)`` of the data before loading them, where that is cheap to know."""
        return expected_shape(self.data, n=self.n, d=self.d, classes=self.classes, key=self.key,
                              per_class=self.per_class)

    def load(self, notes: Notes) -> torch.Tensor:
        """The validated data matrix; data warnings go to ``notes``."""
        with notes.collect():
            return load_data(self.data, n=self.n, d=self.d, seed=self.resolved_data_seed, classes=self.classes,
                             key=self.key, normalize=self.normalize, dtype=self.dtype, device=self.device,
                             per_class=self.per_class)

    def init(self, d: int, width: int, scale: str = "ntk") -> Params:
        return init_params(d, width, regime=self.regime, seed=self.seed, kappa=self.kappa, nu=self.nu,
                           decoder_init=self.decoder_init, scale=scale, zero_output=self.zero_output,
                           dtype=self.dtype, device=self.device)

    def check_memory(self, n: int, d: int, max_memory: int | None) -> None:
        """Refuse the job if its estimated memory (:meth:`memory`) exceeds what is available."""
        check_memory(self.memory(n, d), device=resolve_device(self.device), limit=max_memory,
                     advice="make the problem smaller (--width, --n, --steps)")

    def memory(self, n: int, d: int) -> MemoryEstimate:
        """Bytes this job will hold at ``n x d`` data: the data (:func:`aedyn.data.data_memory`)."""
        est = MemoryEstimate()
        est.add("data", data_memory(n, d), on_device=False)
        return est


CERTIFY_CHECKS = 50
"""A certified job without ``ntk_every`` evaluates the NTK about this many times across its budget."""


@dataclass(frozen=True)
class TrainJob(Job):
    """Everything that determines one training run; ``lr`` is a number or ``"auto"``.

    ``certify``: check, after training, the invariants the convergence proofs rely on along the
    run (:func:`aedyn.certificate.certify`; the result's ``certificate``). It needs the NTK along
    the run: without ``ntk_every`` it is set to ``ceil(steps / CERTIFY_CHECKS)``. (It appears in
    :meth:`to_dict` only when set, so the ids of runs that do not certify are unchanged.)

    ``measures``: what to measure after training, where the job runs (:mod:`aedyn.measures`: names
    from :data:`~aedyn.measures.MEASURES`, or ``{"name": ..., option: value}``); their columns join
    the run's row (in :meth:`to_dict` only when given). ``lr_decoder="auto"`` (joint,
    with ``lr="auto"``): layer-wise steps (:func:`aedyn.gd.train_batch`)."""

    width: int = 1024
    init_scale: str | float = "ntk"
    lr: float | str = "auto"
    lr_decoder: float | str | None = None
    steps: int = 1000
    target: float = 1e-6
    record_every: int = 10
    ntk_every: int | None = None
    certify: bool = False
    measures: tuple[str | dict[str, Any] | Measure, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.certify, bool):
            raise AedynError(f"certify must be True or False; got {self.certify!r}")
        self._set(measures=check_measures(self.measures))
        reads_ntk = [m.name for m in self.measures if m.name in NEEDS_NTK]  # type: ignore[union-attr]
        if self.ntk_every is None and reads_ntk:
            raise AedynError(f"the measures {', '.join(reads_ntk)} read the NTK along the run; set ntk_every")
        if self.certify and self.ntk_every is None:
            self._set(ntk_every=max(1, math.ceil(check_int(self.steps, "steps", minimum=0) / CERTIFY_CHECKS)))
        width, kappa, nu, _ = check_init(self.regime, self.width, kappa=self.kappa, nu=self.nu,
                                         decoder_init=self.decoder_init, scale=self.init_scale)
        opts = check_train_options(self.regime, lr=self.lr, lr_decoder=self.lr_decoder, steps=self.steps,
                                   target=self.target, record_every=self.record_every, ntk_every=self.ntk_every)
        opts.pop("divergence_factor")
        self._set(width=width, kappa=kappa, nu=nu, **opts)

    def to_dict(self) -> dict:
        out = super().to_dict()
        if not self.certify:
            del out["certify"]
        if self.measures:
            out["measures"] = [m.to_json() for m in self.measures]  # type: ignore[union-attr]
        else:
            del out["measures"]
        return out

    def memory(self, n: int, d: int, *, batch: int = 1, sources: int = 1) -> MemoryEstimate:
        """The data and what the run allocates (:func:`aedyn.gd.train_memory`); for a batch of
        ``batch`` such runs on ``sources`` distinct data sets, what the batch allocates."""
        est = super().memory(n, d)
        if sources > 1:
            est.add("data of the other runs", (sources - 1) * data_memory(n, d), on_device=False)
        run = train_memory(n, d, self.width, self.dtype, self.regime, steps=self.steps,
                           record_every=self.record_every, lr_auto=self.lr == "auto", ntk_every=self.ntk_every,
                           batch=batch)
        est.include(run)
        return est


@dataclass(frozen=True)
class KernelJob(Job):
    """Settings of ``aedyn kernel``: the infinite-width kernels at the data, and with ``width`` the
    finite-width NTK of one random network (NTK scaling) beside them. ``tied`` has no ``n x n``
    infinite-width kernel, so it needs ``width``."""

    width: int | None = None
    tol: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width is None and self.regime == "tied":
            raise AedynError("the tied NTK has no n x n infinite-width kernel to report (its limit couples output "
                             "coordinates), so tied needs --width (width=...): the finite-width NTK of one network")
        if self.width is None:
            width, (kappa, nu) = None, check_scales(self.regime, self.kappa, self.nu)
        else:
            width, kappa, nu, _ = check_init(self.regime, self.width, kappa=self.kappa, nu=self.nu,
                                             decoder_init=self.decoder_init)
        if self.regime != "tied":  # the infinite-width kernels scale with kappa^2 and nu^2: refuse overflow now
            check_kernel_options(self.regime, kappa, nu)
        tol, _ = check_solver_options(self.tol, 500)
        self._set(kappa=kappa, nu=nu, width=width, tol=tol)

    def memory(self, n: int, d: int) -> MemoryEstimate:
        """The data, the infinite-width kernels (:func:`aedyn.kernels.spectrum_memory`) and, with
        ``width``, one network and its NTK with eigensolvers (:func:`aedyn.ntk.operator_memory`)."""
        est = super().memory(n, d)
        if self.regime != "tied":
            est.add("infinite-width kernels", spectrum_memory(n))
        if self.width is not None:
            s = resolve_dtype(self.dtype).itemsize
            est.add("parameters", 2 * self.width * d * s)
            for part, size in operator_memory(n, d, self.width, s, self.regime).items():
                est.add(part, size)
        return est


class Notes:
    """Collects :class:`AedynWarning` messages (normalised data, parallel rows, unconverged
    eigensolvers) as they are raised, and passes each to ``on_note``."""

    def __init__(self, on_note: Callable[[str], None] | None = None) -> None:
        self.messages: list[str] = []
        self.on_note = on_note

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Route :class:`AedynWarning` messages here; other warnings pass through untouched."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AedynWarning)
            yield
        for w in caught:
            if issubclass(w.category, AedynWarning):
                self.messages.append(str(w.message))
                if self.on_note is not None:
                    self.on_note(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def batch_key(job: TrainJob) -> tuple:
    """What runs must share to train as one batch (:func:`run_batch`): the regime, the data's shape
    (or, where that is unknown before loading, where the data come from), the network's shape and
    output scale, dtype, device, the stopping rule and recording cadences, the kind of step size
    (auto, layer-wise auto or given; a separate decoder step or not) and the measures the runs
    declare (:data:`aedyn.measures.MEASURES`). Seeds, ``kappa``, ``nu`` and the step sizes themselves may differ
    within a batch."""
    if not isinstance(job, TrainJob):
        raise AedynError(f"batch_key takes a TrainJob; got {type(job).__name__}")
    shape = job.expected_shape()
    where = shape if shape is not None else (job.data, job.n, job.d, job.classes, job.key, job.per_class)
    return (job.regime, where, job.width, job.init_scale, job.dtype, job.device, job.steps, job.target,
            job.record_every, job.ntk_every, job.lr == "auto", job.lr_decoder is None, job.lr_decoder == "auto",
            job.measures)


def run_batch(jobs: Sequence[TrainJob], *, callback: Callable[[int, np.ndarray], None] | None = None,
              on_note: Callable[[str], None] | None = None, max_memory: int | None = None) -> list[TrainResult]:
    """Run training jobs that share :func:`batch_key` as one batch (:func:`aedyn.gd.train_batch`):
    check the memory the batch needs (before loading where the data's shape is known without it,
    and again with the data in hand), load each distinct data set once, initialise every network
    from its own seed, train. Returns one result per job, in order, each with
    ``config["job"]`` and the data warnings of its job in ``config["notes"]`` (also passed to
    ``on_note``). ``callback(k, losses)`` reports progress (see :func:`~aedyn.gd.train_batch`)."""
    jobs = list(jobs)
    if not jobs or not all(isinstance(job, TrainJob) for job in jobs):
        raise AedynError("run_batch needs a non-empty list of TrainJob")
    first = batch_key(jobs[0])
    for job in jobs[1:]:
        if batch_key(job) != first:
            raise AedynError("these jobs cannot train as one batch: they differ in regime, data shape, width, "
                             "dtype, device, budget or cadence; group them with batch_key first")
    shape = jobs[0].expected_shape()
    if shape is not None:
        _check_batch_memory(jobs, *shape, max_memory)
    data: dict[tuple, tuple[torch.Tensor, list[str]]] = {}
    for job in jobs:
        if _source(job) not in data:
            notes = Notes(on_note)
            data[_source(job)] = (job.load(notes), notes.messages)
    loaded = [data[_source(job)] for job in jobs]
    shapes = {tuple(X.shape) for X, _ in loaded}
    if len(shapes) > 1:
        raise AedynError(f"these jobs cannot train as one batch: their data have different shapes {sorted(shapes)}")
    n, d = shapes.pop()
    _check_batch_memory(jobs, n, d, max_memory)
    X = loaded[0][0] if len(data) == 1 else torch.stack([X for X, _ in loaded])
    nets = [job.init(d, job.width, job.init_scale) for job in jobs]
    params = Params.stack(nets)
    lead = jobs[0]
    lr = "auto" if lead.lr == "auto" else np.array([job.lr for job in jobs], dtype=np.float64)
    lr_decoder = lead.lr_decoder if lead.lr_decoder in (None, "auto") else np.array(
        [job.lr_decoder for job in jobs], dtype=np.float64)
    train_notes = Notes(on_note)
    with train_notes.collect():
        results = train_batch(X, params, lead.regime, lr=lr, lr_decoder=lr_decoder, steps=lead.steps,
                              target=lead.target, record_every=lead.record_every, ntk_every=lead.ntk_every,
                              callback=callback)
    for job, result, (Xj, notes) in zip(jobs, results, loaded, strict=True):
        result.config = {**result.config, "job": job.to_dict(), "notes": [*notes, *train_notes.messages]}
        if job.measures:  # what they note (an unstable linearised step, say) is this run's note
            measured = Notes(on_note)
            with measured.collect():
                result.config["measures"] = compute(job.measures, result, Xj, job)  # type: ignore[arg-type]
            result.config["notes"] += measured.messages
        if job.certify and result.status != "diverged":
            try:
                result.certificate = certify(result, Xj)
            except (AedynError, RuntimeError, ArithmeticError, ValueError) as exc:  # never lose the training
                message = f"no certificate for this run: {first_line(str(exc))}"
                result.config["notes"].append(message)
                if on_note is not None:
                    on_note(message)
    return results


def _check_batch_memory(jobs: Sequence[TrainJob], n: int, d: int, max_memory: int | None) -> None:
    """Refuse the batch if its estimated memory (:meth:`TrainJob.memory`) exceeds what is available."""
    if len(jobs) == 1:
        jobs[0].check_memory(n, d, max_memory)
        return
    sources = len({_source(job) for job in jobs})
    check_memory(jobs[0].memory(n, d, batch=len(jobs), sources=sources), device=resolve_device(jobs[0].device),
                 limit=max_memory, advice="make the batch smaller, or the problem (--width, --n, --steps)")


def _source(job: Job) -> tuple:
    """Where a job's data come from: jobs with equal sources train on the same matrix."""
    return (job.data, job.n, job.d, job.classes, job.key, job.normalize, job.resolved_data_seed, job.per_class)


def run_job(job: TrainJob, *, callback: Callable[[int, float], None] | None = None,
            on_note: Callable[[str], None] | None = None, max_memory: int | None = None) -> TrainResult:
    """One training job: :func:`run_batch` with a batch of one. Warnings (normalisation, parallel
    rows) go to ``on_note`` and into ``result.config['notes']``; ``max_memory`` (bytes) replaces
    the measured available memory in the check; ``callback(k, loss)`` reports progress."""
    report = None if callback is None else (lambda k, losses: callback(k, float(losses[0])))
    return run_batch([job], callback=report, on_note=on_note, max_memory=max_memory)[0]


def run_kernel_job(job: KernelJob, *, on_note: Callable[[str], None] | None = None,
                   max_memory: int | None = None) -> dict[str, Any]:
    """The kernel report as a plain record: ``infinite`` (``lambda_0``, ``mu_0``, the regime kernel's
    extremes and condition number; absent for ``tied``) and, with a width, ``finite`` (the NTK's
    extremes, Lanczos/LOBPCG iterations and convergence) and ``gap`` (relative differences)."""
    if not isinstance(job, KernelJob):
        raise AedynError(f"run_kernel_job needs a KernelJob (the settings of aedyn kernel); got {type(job).__name__}")
    notes = Notes(on_note)
    t0 = time.perf_counter()
    shape = job.expected_shape()
    if shape is not None:
        job.check_memory(*shape, max_memory)
    X = job.load(notes)
    job.check_memory(*X.shape, max_memory)
    record: dict[str, Any] = {"kind": "aedyn.kernel", "job": job.to_dict(), "n": int(X.shape[0]),
                              "d": int(X.shape[1]), "versions": environment()}
    if job.regime != "tied":
        record["infinite"] = kernel_spectrum(X, job.regime, kappa=job.kappa, nu=job.nu).to_dict()
    if job.width is not None:
        params = job.init(X.shape[1], job.width)
        with notes.collect():
            ext = ntk_extremes(params, X, job.regime, tol=job.tol, seed=job.seed)
        lo, hi = ext.min, ext.max
        record["finite"] = {"width": job.width, "lambda_min": lo, "lambda_max": hi,
                            "condition_number": hi / lo if lo > 0 else math.inf, "iterations": ext.iterations,
                            "converged": ext.converged, "nd": int(X.shape[0] * X.shape[1])}
        if "infinite" in record:
            inf = record["infinite"]
            record["gap"] = {k: (v - inf[k]) / inf[k] if inf[k] > 0 else None
                             for k, v in (("lambda_min", lo), ("lambda_max", hi))}
    record["notes"] = notes.messages
    record["wall_time"] = time.perf_counter() - t0
    return record
