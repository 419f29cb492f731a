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

from aedyn._meta import environment
from aedyn.data import load_data
from aedyn.errors import AedynWarning
from aedyn.gd import TrainResult, train
from aedyn.kernels import kernel_spectrum
from aedyn.model import init_params
from aedyn.ntk import ntk_extremes


@dataclass(frozen=True)
class TrainJob:
    """Everything that determines one run. ``seed`` seeds both the data draw and the
    initialisation; ``lr`` is a number or ``"auto"``."""

    regime: str = "joint"
    data: str = "digits"
    n: int | None = None
    d: int | None = None
    classes: tuple[int, ...] | None = None
    key: str | None = None
    normalize: bool = True
    width: int = 1024
    kappa: float = 1.0
    nu: float = 1.0
    decoder_init: str = "gaussian"
    init_scale: str = "ntk"
    seed: int = 0
    lr: float | str = "auto"
    lr_decoder: float | None = None
    steps: int = 1000
    target: float = 1e-6
    record_every: int = 10
    ntk_every: int | None = None
    device: str = "cpu"
    dtype: str = "float64"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["classes"] = None if self.classes is None else list(self.classes)
        return out


def run_job(job: TrainJob, *, callback: Callable[[int, float], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> TrainResult:
    """Load and validate the data, initialise, train. Warnings about the data (normalisation,
    parallel rows) go to ``on_note`` as they happen (and into ``result.config['notes']``)."""
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        if on_note is not None:
            on_note(message)

    with _notes_to(note):
        X = load_data(job.data, n=job.n, d=job.d, seed=job.seed, classes=job.classes, key=job.key,
                      normalize=job.normalize, dtype=job.dtype, device=job.device)
    params = init_params(X.shape[1], job.width, regime=job.regime, seed=job.seed, kappa=job.kappa, nu=job.nu,
                         decoder_init=job.decoder_init, scale=job.init_scale, dtype=job.dtype, device=job.device)
    with _notes_to(note):
        result = train(X, params, job.regime, lr=job.lr, lr_decoder=job.lr_decoder, steps=job.steps,
                       target=job.target, record_every=job.record_every, ntk_every=job.ntk_every,
                       callback=callback)
    result.config = {**result.config, "job": job.to_dict(), "notes": notes}
    return result


@contextmanager
def _notes_to(note: Callable[[str], None]) -> Iterator[None]:
    """Route :class:`AedynWarning` messages to ``note``; other warnings pass through untouched."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AedynWarning)
        yield
    for w in caught:
        if issubclass(w.category, AedynWarning):
            note(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@dataclass(frozen=True)
class KernelJob:
    """Settings of ``aedyn kernel``: the infinite-width kernels at the data, and with ``width`` the
    finite-width NTK of one random network (NTK scaling) beside them."""

    regime: str = "joint"
    data: str = "digits"
    n: int | None = None
    d: int | None = None
    classes: tuple[int, ...] | None = None
    key: str | None = None
    normalize: bool = True
    width: int | None = None
    kappa: float = 1.0
    nu: float = 1.0
    decoder_init: str = "gaussian"
    seed: int = 0
    tol: float = 1e-8
    device: str = "cpu"
    dtype: str = "float64"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["classes"] = None if self.classes is None else list(self.classes)
        return out


def run_kernel_job(job: KernelJob, *, on_note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The kernel report as a plain record: ``infinite`` (``lambda_0``, ``mu_0``, the regime kernel's
    extremes and condition number; absent for ``tied``) and, with a width, ``finite`` (the NTK's
    extremes, Lanczos/LOBPCG iterations and convergence) and ``gap`` (relative differences)."""
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        if on_note is not None:
            on_note(message)

    t0 = time.perf_counter()
    with _notes_to(note):
        X = load_data(job.data, n=job.n, d=job.d, seed=job.seed, classes=job.classes, key=job.key,
                      normalize=job.normalize, dtype=job.dtype, device=job.device)
    record: dict[str, Any] = {"kind": "aedyn.kernel", "job": job.to_dict(), "n": int(X.shape[0]),
                              "d": int(X.shape[1]), "versions": environment()}
    if job.regime != "tied":
        record["infinite"] = kernel_spectrum(X, job.regime, kappa=job.kappa, nu=job.nu).to_dict()
    if job.width is not None:
        params = init_params(X.shape[1], job.width, regime=job.regime, seed=job.seed, kappa=job.kappa, nu=job.nu,
                             decoder_init=job.decoder_init, dtype=job.dtype, device=job.device)
        with _notes_to(note):
            ext = ntk_extremes(params, X, job.regime, tol=job.tol, seed=job.seed)
        lo, hi = ext.min, ext.max
        record["finite"] = {"width": job.width, "lambda_min": lo, "lambda_max": hi,
                            "condition_number": hi / lo if lo > 0 else math.inf, "iterations": ext.iterations,
                            "converged": ext.converged, "nd": int(X.shape[0] * X.shape[1])}
        if "infinite" in record:
            inf = record["infinite"]
            record["gap"] = {"lambda_min": (lo - inf["lambda_min"]) / inf["lambda_min"],
                             "lambda_max": (hi - inf["lambda_max"]) / inf["lambda_max"]}
    record["notes"] = notes
    record["wall_time"] = time.perf_counter() - t0
    return record
