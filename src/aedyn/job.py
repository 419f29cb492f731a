"""Jobs from plain settings: a training run (data, initialisation, gradient descent: what
``aedyn train`` runs, and what sweeps will run many of) and a kernel report (``aedyn kernel``).
Settings are flat, JSON-ready dataclasses, so a result can always be traced back to the exact job
that made it."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from aedyn._meta import environment
from aedyn._seed import SCHEME
from aedyn.data import load_data
from aedyn.errors import AedynWarning
from aedyn.gd import TrainResult, train
from aedyn.kernels import kernel_spectrum
from aedyn.model import Params, init_params
from aedyn.ntk import ntk_extremes


@dataclass(frozen=True)
class Job:
    """What every job shares: the regime, where the data come from, the initialisation, the
    seeds, device and dtype. ``seed`` seeds the initialisation and ``data_seed`` (default: the
    same number) the data draw; they feed independent streams (:mod:`aedyn._seed`), so equal
    seeds never correlate weights with samples."""

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

    def to_dict(self) -> dict:
        out = asdict(self)
        out["classes"] = None if self.classes is None else list(self.classes)
        out["data_seed"] = self.resolved_data_seed
        out["seed_scheme"] = SCHEME
        return out

    @property
    def resolved_data_seed(self) -> int:
        """The seed of the data draw: ``data_seed``, or ``seed`` when unset."""
        return self.seed if self.data_seed is None else self.data_seed

    def load(self, notes: Notes) -> torch.Tensor:
        """The validated data matrix; data warnings go to ``notes``."""
        with notes.collect():
            return load_data(self.data, n=self.n, d=self.d, seed=self.resolved_data_seed, classes=self.classes,
                             key=self.key, normalize=self.normalize, dtype=self.dtype, device=self.device)

    def init(self, d: int, width: int, scale: str = "ntk") -> Params:
        return init_params(d, width, regime=self.regime, seed=self.seed, kappa=self.kappa, nu=self.nu,
                           decoder_init=self.decoder_init, scale=scale, dtype=self.dtype, device=self.device)


@dataclass(frozen=True)
class TrainJob(Job):
    """Everything that determines one training run; ``lr`` is a number or ``"auto"``."""

    width: int = 1024
    init_scale: str = "ntk"
    lr: float | str = "auto"
    lr_decoder: float | None = None
    steps: int = 1000
    target: float = 1e-6
    record_every: int = 10
    ntk_every: int | None = None


@dataclass(frozen=True)
class KernelJob(Job):
    """Settings of ``aedyn kernel``: the infinite-width kernels at the data, and with ``width`` the
    finite-width NTK of one random network (NTK scaling) beside them."""

    width: int | None = None
    tol: float = 1e-8


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


def run_job(job: TrainJob, *, callback: Callable[[int, float], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> TrainResult:
    """Load and validate the data, initialise, train. Warnings (normalisation, parallel rows)
    go to ``on_note`` and into ``result.config['notes']``."""
    notes = Notes(on_note)
    X = job.load(notes)
    params = job.init(X.shape[1], job.width, job.init_scale)
    with notes.collect():
        result = train(X, params, job.regime, lr=job.lr, lr_decoder=job.lr_decoder, steps=job.steps,
                       target=job.target, record_every=job.record_every, ntk_every=job.ntk_every,
                       callback=callback)
    result.config = {**result.config, "job": job.to_dict(), "notes": notes.messages}
    return result


def run_kernel_job(job: KernelJob, *, on_note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The kernel report as a plain record: ``infinite`` (``lambda_0``, ``mu_0``, the regime kernel's
    extremes and condition number; absent for ``tied``) and, with a width, ``finite`` (the NTK's
    extremes, Lanczos/LOBPCG iterations and convergence) and ``gap`` (relative differences)."""
    notes = Notes(on_note)
    t0 = time.perf_counter()
    X = job.load(notes)
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
            record["gap"] = {"lambda_min": (lo - inf["lambda_min"]) / inf["lambda_min"],
                             "lambda_max": (hi - inf["lambda_max"]) / inf["lambda_max"]}
    record["notes"] = notes.messages
    record["wall_time"] = time.perf_counter() - t0
    return record
