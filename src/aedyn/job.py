"""A training job from plain settings (data, initialisation, gradient descent): what ``aedyn train``
runs, and what sweeps will run many of. The settings are a flat, JSON-ready dataclass so a result
can always be traced back to the exact job that made it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from aedyn.data import load_data
from aedyn.errors import AedynWarning
from aedyn.gd import TrainResult, train
from aedyn.model import init_params


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
                       target=job.target, record_every=job.record_every, callback=callback)
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
