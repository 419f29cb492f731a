"""Sweeps: a grid of training runs declared in TOML, run in batches, resumable, into a store.

A sweep is data. The TOML file becomes a :class:`SweepConfig`; :func:`plan` turns it into a list of
:class:`Run` (a validated :class:`~aedyn.job.TrainJob` and its stable ``run_id``), and
:func:`make_batches` groups the runs that can train together (equal :func:`aedyn.job.batch_key`)
into batches. :func:`run_sweep` skips the runs the store already holds, trains the others batch by
batch, in this process (``executor="local"``) or on a Dask cluster (``executor="dask"``), and appends
one row per run (:func:`result_row`) to the store (:mod:`aedyn.store`) as each batch finishes. Only
this process writes the store; a Dask worker returns plain rows. Two sweeps into one store at once
store each run once (the store's lock), and skip what the other has stored. :func:`dry_run` counts
and estimates without making every run; :func:`summary_table` summarises a store per setting.

The config file::

    [grid]                      # every list is an axis; the sweep is their product
    regime = ["weak", "joint"]
    data = ["sphere"]           # sphere | digits | a file path (relative to the working folder;
                                # its bytes' SHA-256 is part of the run_id)
    n = [16, 32]
    d = [8]                     # dropped for fixed-d data (digits, files)
    width = [64, 128]
    seed = [0, 1, 2, 3]         # data_seed defaults to seed
    [train]                     # scalars, or lists that are axes too
    lr = "auto"
    steps = 2000
    [sweep]                     # optional
    batch_size = 64             # networks per batch at most
    name = "E2 width"
    description = "..."

Keys of ``[grid]`` and ``[train]`` are :class:`~aedyn.job.TrainJob` fields, each in one table.
``classes`` takes a list of digits (``[0, 1]``) or a string (``"0,1"``) as one value; an axis of
class sets is a list of those (``[[0, 1], [3, 8]]``). Identical runs (``d`` dropped for digits,
a value listed twice) are planned once.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from aedyn._check import check_count, check_seed
from aedyn._meta import environment
from aedyn._names import EXECUTORS
from aedyn.certificate import columns_of
from aedyn.errors import AedynError, MemoryRefusal, first_line, is_out_of_memory
from aedyn.files import file_sha256, write_atomic
from aedyn.gd import METRICS, TrainResult
from aedyn.job import TrainJob, batch_key, run_batch
from aedyn.store import Store, missing_folders

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXECUTORS", "RUNS_CONFIG", "Run", "Runner", "SweepConfig", "SweepPlan", "SweepProgress", "SweepSummary",
           "check_executor", "dry_run", "execute_batch", "fixed_settings", "load_config", "make_batches", "notes_of",
           "parse_config", "plan", "result_row", "run_id", "run_sweep", "status_counts", "summary_table",
           "untrainable_row", "write_csv"]

JOB_FIELDS = tuple(f.name for f in dataclasses.fields(TrainJob))
"""The keys ``[grid]`` and ``[train]`` accept: every :class:`~aedyn.job.TrainJob` field."""

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainJob)}
FIXED_D_SOURCES = ("digits",)
"""Named sources whose dimension is fixed (and every data file): ``d`` is dropped for them."""

DEFAULT_BATCH_SIZE = 64
LOSS_POINTS = 64
"""Log-spaced points of the stored loss curve (plus step 0 and the last step)."""

PROGRESS_EVERY_S = 0.2
"""Least time between two progress reports from within a batch."""
CONNECT_TIMEOUT = "20s"
"""How long to wait for a Dask scheduler given by address."""
_SWEEP_KEYS = {"batch_size": "a positive integer", "name": "a string", "description": "a string"}
_WHERE = "sweep config"


# ---- the config ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep: ``grid`` (each key a list of values, an axis), ``train`` (scalars, or lists
    that are axes too), and the ``[sweep]`` settings. Make one with :func:`load_config` or
    :func:`parse_config`; :func:`plan` validates every run."""

    grid: dict[str, list]
    train: dict[str, Any] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    name: str | None = None
    description: str | None = None
    source: str | None = None  # the file it was read from, for messages

    @property
    def axes(self) -> dict[str, list]:
        """Every key with its list of values (``[train]`` scalars as one-value lists), in file order."""
        out = {k: list(v) for k, v in self.grid.items()}
        for k, v in self.train.items():
            out[k] = list(v) if _is_axis(k, v) else [v]
        return out

    def table_of(self, key: str) -> str:
        return "grid" if key in self.grid else "train"

    def store_config(self) -> dict[str, Any]:
        """What identifies the sweep in its store (:meth:`aedyn.store.Store.create`): the axes, with
        keys sorted. A key moved between ``[grid]`` and ``[train]`` is the same sweep; the batch
        size, name and description (how it runs, what it is called) are not part of it."""
        return {"kind": "aedyn.sweep", "axes": {k: v for k, v in sorted(self.axes.items())}}


@dataclass(frozen=True)
class Run:
    """One planned run: its stable ``run_id``, the validated job and, for data from a file, the
    SHA-256 of the file's bytes that the ``run_id`` includes."""

    run_id: str
    job: TrainJob
    data_sha256: str | None = None


def load_config(path: str | Path) -> SweepConfig:
    """Read and check a sweep's TOML file (UTF-8, with or without a byte order mark: tables, keys,
    value kinds); every problem is one :class:`AedynError` line naming the file, and the line for
    TOML syntax errors. The runs themselves are validated by :func:`plan`."""
    path = Path(path)
    hint = "pass the sweep's TOML file (see 'aedyn sweep --help')"
    if path.is_dir():
        raise AedynError(f"sweep config {str(path)!r} is a folder; {hint}")
    try:
        with open(path, "rb") as fh:
            data = tomllib.loads(fh.read().decode("utf-8-sig"))  # a byte order mark (some editors write one) is no text
    except FileNotFoundError:
        raise AedynError(f"sweep config {str(path)!r} does not exist; {hint}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AedynError(f"sweep config {str(path)!r} is not valid TOML: {first_line(exc, 200)}; fix that line") \
            from None
    except UnicodeDecodeError:
        raise AedynError(f"sweep config {str(path)!r} is not UTF-8 text, so not a TOML file; {hint}") from None
    except OSError as exc:
        raise AedynError(f"cannot read sweep config {str(path)!r}: {exc.strerror or type(exc).__name__}") from None
    return parse_config(data, source=str(path))


def parse_config(data: Mapping[str, Any], *, source: str | None = None) -> SweepConfig:
    """A :class:`SweepConfig` from the TOML tables as a dict (what :func:`load_config` reads)."""
    if not isinstance(data, Mapping):
        raise AedynError(f"{_WHERE}: expected tables [grid], [train], [sweep]; got {type(data).__name__}")
    for key, value in data.items():
        if key not in ("grid", "train", "sweep"):
            if not isinstance(value, Mapping) and key in JOB_FIELDS:
                raise AedynError(f"{_WHERE}: {key} is outside any table; put it under [grid] or [train]")
            what = f"table [{key}]" if isinstance(value, Mapping) else f"top-level key {key!r}"
            raise AedynError(f"{_WHERE}: unknown {what}; use the tables [grid], [train] and [sweep]")
        if not isinstance(value, Mapping):
            raise AedynError(f"{_WHERE}: {key} must be a table ([{key}]); got {_kind(value)}")
    if "grid" not in data or not data["grid"]:
        raise AedynError(f"{_WHERE}: no [grid] table or an empty one; declare the axes of the sweep under [grid]")
    tables: dict[str, dict[str, Any]] = {"grid": {}, "train": {}}
    for table in tables:
        for key, value in data.get(table, {}).items():
            where = f"{_WHERE}: [{table}] {key}"
            if key not in JOB_FIELDS:
                raise AedynError(f"{where}: unknown key; use training options: {', '.join(JOB_FIELDS)}")
            other = "train" if table == "grid" else "grid"
            if key in data.get(other, {}):
                raise AedynError(f"{_WHERE}: {key} appears in both [grid] and [train]; keep it in one")
            if table == "grid" and not _is_axis(key, value):
                value = [value]  # a scalar in [grid] is an axis of one value
            if _is_axis(key, value):
                if not value:
                    raise AedynError(f"{where}: an empty list; give at least one value")
                tables[table][key] = [_value(key, v, where) for v in value]
            else:
                tables[table][key] = _value(key, value, where)
    settings = data.get("sweep", {})
    for key, value in settings.items():
        if key not in _SWEEP_KEYS:
            raise AedynError(f"{_WHERE}: [sweep] {key}: unknown key; use {', '.join(_SWEEP_KEYS)}")
        if key == "batch_size":
            check_count(value, f"{_WHERE}: [sweep] batch_size")
        elif not isinstance(value, str):
            raise AedynError(f"{_WHERE}: [sweep] {key} must be {_SWEEP_KEYS[key]}; got {_kind(value)}")
    return SweepConfig(grid=tables["grid"], train=tables["train"],
                       batch_size=int(settings.get("batch_size", DEFAULT_BATCH_SIZE)),
                       name=settings.get("name"), description=settings.get("description"), source=source)


def _is_axis(key: str, value: Any) -> bool:
    """A list of values; for ``classes`` (whose one value is a list of digits) a list of lists/strings."""
    if not isinstance(value, list):
        return False
    if key == "classes":
        return all(isinstance(v, (list, str)) for v in value) and bool(value)
    return True


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table"}
    kind = next((v for t, v in names.items() if isinstance(value, t)), type(value).__name__)
    return f"{kind} ({value!r})" if isinstance(value, (bool, int, float, str)) else kind


def _value(key: str, value: Any, where: str) -> Any:
    """One value of ``key``, as the job takes it (kinds only; the job checks the rest)."""
    if key == "classes":
        if isinstance(value, str):
            try:
                value = [int(c) for c in value.split(",") if c.strip()]
            except ValueError:
                raise AedynError(f"{where}: digits separated by commas, e.g. \"0,1\"; got {value!r}") from None
        if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
            raise AedynError(f"{where}: a list of digits such as [0, 1], or a list of such lists for an axis; "
                             f"got {_kind(value)}")
        return value
    if not isinstance(value, (bool, int, float, str)):
        raise AedynError(f"{where}: a value must be a number, a string or a boolean; got {_kind(value)}")
    if key == "init_scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


# ---- planning -----------------------------------------------------------------------------------

def run_id(job: TrainJob, digests: dict[str, str] | None = None) -> str:
    """A stable name for ``job``: the first 16 hex digits of the SHA-256 of its canonical JSON
    (:meth:`~aedyn.job.TrainJob.to_dict`, sorted keys), with, for data from a file, the SHA-256 of
    the file's bytes (``data_sha256``): a file changed in place, or another file at the same
    relative path, names other runs. Equal on every machine and in every process. ``digests``
    (path -> digest) keeps the files' digests between calls: pass one dict for a whole sweep."""
    return _id_of(_spec(job, {} if digests is None else digests))


def _run_of(job: TrainJob, digests: dict[str, str]) -> Run:
    """``job`` as a :class:`Run` (``digests`` as in :func:`run_id`)."""
    spec = _spec(job, digests)
    return Run(_id_of(spec), job, spec.get("data_sha256"))


def _spec(job: TrainJob, digests: dict[str, str]) -> dict[str, Any]:
    """What names the run ``job`` (:func:`run_id`): its settings, and its data file's digest."""
    spec = job.to_dict()
    path = job.data_path
    if path is not None:
        if str(path) not in digests:
            digests[str(path)] = file_sha256(path)
        spec["data_sha256"] = digests[str(path)]
    return spec


def _id_of(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(spec).encode()).hexdigest()[:16]


def _canonical(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _make_job(values: Mapping[str, Any]) -> TrainJob:
    values = dict(values)
    if "d" in values and _fixed_d(values.get("data", _DEFAULTS["data"])):
        values["d"] = None  # digits and files fix d: the axis does not apply
    if values.get("classes") is not None:
        values["classes"] = tuple(values["classes"])
    return TrainJob(**values)


def _fixed_d(data: Any) -> bool:
    return isinstance(data, str) and data != "sphere"


SEED_KEYS = ("seed", "data_seed")
"""The keys a job checks on their own (:func:`aedyn._check.check_seed`) and reads nowhere else in
its checks: the planner checks each seed value once, and each combination of the other keys once."""

ABSURD_MEMORY = 2**50
"""Bytes (1 PiB) beyond which one run is refused when the sweep is planned: no machine holds it."""


@dataclass(frozen=True)
class _Template:
    """The runs of one combination of a sweep's axes other than the seeds: a validated job (its
    seeds at their defaults), what names its runs (``spec``, :func:`run_id`), its batch key, and
    whether it is the first combination with these settings (a later one repeats its runs)."""

    job: TrainJob
    spec: dict[str, Any]
    key: tuple
    first: bool
    pieces: tuple[str, str, str]  # the canonical JSON of spec around data_seed and seed (:meth:`of`)

    @classmethod
    def of(cls, job: TrainJob, spec: dict[str, Any], key: tuple, first: bool) -> _Template:
        marks = [f"@{uuid.uuid4().hex}@" for _ in SEED_KEYS]  # strings no setting holds
        text = _canonical({**spec, "data_seed": marks[1], "seed": marks[0]})
        head, rest = text.split(json.dumps(marks[1]), 1)  # keys sorted: data_seed before seed
        middle, tail = rest.split(json.dumps(marks[0]), 1)
        return cls(job, spec, key, first, (head, middle, tail))

    def run_id(self, seed: int, data_seed: int | None) -> str:
        """:func:`run_id` of this template's job with these seeds."""
        head, middle, tail = self.pieces
        text = f"{head}{seed if data_seed is None else data_seed}{middle}{seed}{tail}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Grid:
    """A sweep's runs, factorised: every combination of the axes but the seeds is validated once
    (a :class:`_Template`), every seed value once (:data:`SEED_KEYS`); a run is a template with its
    seeds. :func:`plan` walks it in grid order; :func:`dry_run` counts it without making every run."""

    def __init__(self, config: SweepConfig) -> None:
        self.config = config
        self.keys = list(config.axes)
        self.values = {k: _seed_values(config, k) if k in SEED_KEYS else _distinct(v) for k, v in config.axes.items()}
        self.others = [k for k in self.keys if k not in SEED_KEYS]
        self.digests: dict[str, str] = {}
        self._templates: dict[tuple, _Template] = {}
        self._specs: set[str] = set()
        self._sized: set[tuple] = set()

    @property
    def seed_pairs(self) -> int:
        """The seed combinations each template runs with."""
        return math.prod(len(self.values[k]) for k in SEED_KEYS if k in self.values)

    def template(self, combo: Sequence[Any]) -> _Template:
        """The template of ``combo`` (values of :attr:`others`, in order), validated at first sight."""
        tag = tuple((type(v).__name__, _frozen(v)) for v in combo)
        found = self._templates.get(tag)
        if found is None:
            values = dict(zip(self.others, combo, strict=True))
            try:
                job = _make_job(values)
            except (ValueError, TypeError) as exc:
                raise AedynError(_blame(self.config, values, exc)) from None
            spec = _spec(job, self.digests)
            text = json.dumps({k: v for k, v in spec.items() if k not in SEED_KEYS}, sort_keys=True)
            found = _Template.of(job, spec, batch_key(job), text not in self._specs)
            self._specs.add(text)
            self._check_size(found)
            self._templates[tag] = found
        return found

    def templates(self) -> Iterator[_Template]:
        """The first template of each distinct setting, in grid order."""
        for combo in itertools.product(*(self.values[k] for k in self.others)):
            template = self.template(combo)
            if template.first:
                yield template

    def walk(self) -> Iterator[tuple[str, _Template, int, int | None]]:
        """``(run_id, template, seed, data_seed)`` of every run, in grid order (the product of the
        axes, the last key varying fastest), each once."""
        cut = len(self.keys)
        while cut and self.keys[cut - 1] in SEED_KEYS:
            cut -= 1
        outer, inner = self.keys[:cut], self.keys[cut:]  # seeds varying fastest: a template's runs in a row
        others = [i for i, k in enumerate(outer) if k not in SEED_KEYS]
        at = {k: i for i, k in enumerate(outer) if k in SEED_KEYS}
        inner_combos = (dict(zip(inner, v, strict=True)) for v in itertools.product(*(self.values[k] for k in inner)))
        pairs = [(c.get("seed"), c.get("data_seed")) for c in inner_combos]
        for combo in itertools.product(*(self.values[k] for k in outer)):
            template = self.template([combo[i] for i in others])
            if not template.first:
                continue
            outer_seed = combo[at["seed"]] if "seed" in at else template.job.seed
            outer_data_seed = combo[at["data_seed"]] if "data_seed" in at else None
            for seed, data_seed in pairs:
                seed = outer_seed if seed is None else seed
                data_seed = outer_data_seed if data_seed is None else data_seed
                yield template.run_id(seed, data_seed), template, seed, data_seed

    def _check_size(self, template: _Template) -> None:
        """Refuse a run no machine could hold (a width of 10^20, say), once per batch key."""
        if template.key in self._sized:
            return
        self._sized.add(template.key)
        job = template.job
        n, d = job.expected_shape() or (job.n or 1, job.d or 1)  # unknown shape: a lower bound
        need = job.memory(n, d)
        if need.total > ABSURD_MEMORY:
            varying = [k for k in ("width", "n", "d", "steps") if len(self.config.axes.get(k, ())) > 1]
            which = f"the runs with width = {job.width}, n = {n}, d = {d}" if varying else "every run"
            raise AedynError(f"{_WHERE}: {which} would need about {need.describe()} of memory each, more than any "
                             "machine holds; use a smaller width (or n, d, steps)")


def _seed_values(config: SweepConfig, key: str) -> list[int]:
    """The distinct values of the seed axis ``key``, each checked."""
    out: dict[int, None] = {}
    for value in config.axes[key]:
        try:
            out.setdefault(check_seed(value, key))
        except AedynError as exc:
            raise AedynError(f"{_WHERE}: [{config.table_of(key)}] {key} = {value!r}: {first_line(exc, 300)}") \
                from None
    return list(out)


def _distinct(values: list) -> list:
    """``values`` without repeats (``1`` and ``1.0`` are two values here; their runs are one)."""
    return list({(type(v).__name__, _frozen(v)): v for v in values}.values())


def _frozen(value: Any) -> Any:
    """``value`` hashable (lists as tuples)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def plan(config: SweepConfig) -> list[Run]:
    """Every run of the sweep, validated, in grid order (the product of the axes, the last key
    varying fastest), each once. A run its job refuses is one :class:`AedynError` line that names
    the key (and value) at fault, or the combination when no single key is; so is a run no machine
    could hold (:data:`ABSURD_MEMORY`). A data file is read once, for its digest (:func:`run_id`)."""
    grid = _Grid(config)
    runs = []
    for rid, template, seed, data_seed in grid.walk():
        job = copy.copy(template.job)  # checked already, as is every seed: no need to check it again
        job._set(seed=seed, data_seed=data_seed)
        runs.append(Run(rid, job, template.spec.get("data_sha256")))
    return runs


def _blame(config: SweepConfig, values: dict[str, Any], exc: Exception) -> str:
    """The one-line error of a refused run: the keys whose default value alone would fix it, or
    the varying keys of the combination."""
    culprits = []
    for key, value in values.items():
        default = _DEFAULTS[key]
        if value == default:
            continue
        try:
            _make_job({**values, key: default})
        except (ValueError, TypeError):
            continue
        culprits.append(f"[{config.table_of(key)}] {key} = {value!r}")
    message = first_line(exc, 300)
    if culprits:
        return f"{_WHERE}: {' with '.join(culprits)}: {message}"
    varying = [f"{k}={v!r}" for k, v in values.items() if len(config.axes[k]) > 1]
    which = f"the run with {', '.join(varying)}" if varying else "every run"
    return f"{_WHERE}: {which}: {message}"


def make_batches(runs: Sequence[Run], batch_size: int) -> list[list[Run]]:
    """Runs grouped by :func:`aedyn.job.batch_key` (groups in order of first appearance, runs in
    their given order), each group cut into the fewest batches of at most ``batch_size`` runs,
    as equal in size as possible. A pure function of its arguments."""
    batch_size = check_count(batch_size, "batch_size")
    groups: dict[Any, list[Run]] = {}
    for run in runs:
        groups.setdefault(batch_key(run.job), []).append(run)
    batches = []
    for group in groups.values():
        start = 0
        for size in _batch_sizes(len(group), batch_size):
            batches.append(group[start:start + size])
            start += size
    return batches


def _batch_sizes(runs: int, batch_size: int) -> list[int]:
    """The sizes :func:`make_batches` cuts a group of ``runs`` runs into: the fewest batches of at
    most ``batch_size``, as equal as possible (the larger first)."""
    if runs == 0:
        return []
    count = math.ceil(runs / batch_size)
    size, extra = divmod(runs, count)
    return [size + 1] * extra + [size] * (count - extra)


# ---- rows ---------------------------------------------------------------------------------------

def loss_steps(steps: int, points: int = LOSS_POINTS) -> list[int]:
    """``0``, about ``points`` log-spaced steps in ``1..steps``, and ``steps`` (unique, increasing)."""
    if steps <= 0:
        return [0]
    grid = np.unique(np.round(np.geomspace(1, steps, points)).astype(np.int64))
    return sorted({0, *(int(k) for k in grid), int(steps)})


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    return {f"version_{k}": str(v) for k, v in environment().items()}


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def result_row(run_id: str, job: TrainJob, result: TrainResult, data_sha256: str | None = None) -> dict[str, Any]:
    """The store's row for one run: the job's settings (and, for data from a file, the digest of
    its bytes, ``data_sha256``: :attr:`Run.data_sha256`), what the run did, and where.

    Job settings keep their names, except where the run fixes the value: ``n``, ``d`` (the data's
    shape), ``lr`` and ``lr_decoder`` (the steps used; ``lr_auto`` says whether ``lr`` was
    ``"auto"``), ``device`` (where it ran) and ``steps`` (those taken; the budget is
    ``step_budget``). The full job is in ``job`` (canonical JSON). Then status, losses, the rate
    fit, the final value of each metric of :data:`aedyn.gd.METRICS` (``None`` when not recorded),
    the columns of the job's declared measures (:data:`aedyn.measures.MEASURES`), for a job with
    ``certify`` the certificate's columns (``cert_*``,
    :meth:`aedyn.certificate.Certificate.columns`; ``None`` for a diverged run), wall time, batch
    size, versions (``version_*``), the message, and the loss curve at :func:`loss_steps`
    (``loss_steps``, ``loss_curve``). Values are plain Python values."""
    spec = job.to_dict()
    cfg = result.config
    loss = np.asarray(result.loss, dtype=np.float64)
    fit = result.rate_fit
    curve_steps = loss_steps(len(loss) - 1)
    row: dict[str, Any] = {
        "run_id": run_id,
        "regime": job.regime,
        "data": job.data,
        **({} if data_sha256 is None else {"data_sha256": data_sha256}),
        "n": int(cfg.get("n", job.n or 0)),
        "d": int(cfg.get("d", job.d or 0)),
        "classes": None if job.classes is None else ",".join(str(c) for c in job.classes),
        "per_class": job.per_class,
        "key": job.key,
        "normalize": bool(job.normalize),
        "kappa": float(job.kappa),
        "nu": float(job.nu),
        "decoder_init": job.decoder_init,
        "zero_output": bool(job.zero_output),
        "seed": int(job.seed),
        "data_seed": int(job.resolved_data_seed),
        "seed_scheme": spec.get("seed_scheme"),
        "width": int(job.width),
        "init_scale": str(job.init_scale),
        "alpha": _num(cfg.get("alpha")),
        "lr_auto": job.lr == "auto",
        "step_budget": int(job.steps),
        "target": float(job.target),
        "record_every": int(job.record_every),
        "ntk_every": None if job.ntk_every is None else int(job.ntk_every),
        "status": result.status,
        "steps": int(result.steps),
        "initial_loss": float(loss[0]),
        "final_loss": float(loss[-1]),
        "final_relative_loss": float(result.relative_loss[-1]),
        "rate": None if fit is None else float(fit.rate),
        "rate_r2": None if fit is None else float(fit.r2),
        "floor_step": None if fit is None or fit.floor_step is None else int(fit.floor_step),
        "lr": float(result.lr),
        "lr_decoder": _num(result.lr_decoder),
        "lambda_max": _num(result.lambda_max),
    }
    for name in METRICS:
        row[name] = result.final(name)
    row.update(cfg.get("measures", {}))  # the job's declared measures (aedyn.measures)
    if job.certify:  # the certificate's column group (aedyn.certificate.CERTIFICATE_COLUMNS); None if diverged
        row.update(columns_of(result))
    row.update({
        "wall_time": float(result.wall_time),
        "batch_size": int(cfg.get("batch_size", 1)),
        "device": str(cfg.get("device", job.device)),
        "dtype": str(cfg.get("dtype", job.dtype)),
        **_versions(),
        "message": result.message,
        "notes": NOTE_SEPARATOR.join(str(n) for n in cfg.get("notes", [])) or None,
        "job": json.dumps(spec, sort_keys=True, separators=(",", ":")),
        "loss_steps": curve_steps,
        "loss_curve": [float(loss[k]) for k in curve_steps],
    })
    return row


NOTE_SEPARATOR = " | "
"""How a row joins its run's notes into one cell."""


def notes_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The notes of ``rows`` (each row's ``notes`` cell, :data:`NOTE_SEPARATOR`-joined), sorted, each once."""
    return sorted({note for row in rows for note in str(row.get("notes") or "").split(NOTE_SEPARATOR) if note})


UNTRAINABLE = "untrainable"
"""The status of a run that could not start (e.g. an NTK of zero at initialisation, so ``lr="auto"``
is undefined), stored by batches that ``isolate`` their runs."""


def untrainable_row(run_id: str, job: TrainJob, message: str, data_sha256: str | None = None) -> dict[str, Any]:
    """The store's row for a run that could not start: its settings, status :data:`UNTRAINABLE`
    and the reason; no losses."""
    return {"run_id": run_id, "regime": job.regime, "data": job.data,
            **({} if data_sha256 is None else {"data_sha256": data_sha256}), "n": job.n, "d": job.d,
            "seed": int(job.seed), "data_seed": int(job.resolved_data_seed), "width": int(job.width),
            "step_budget": int(job.steps), "status": UNTRAINABLE, "steps": 0, "message": message, **_versions(),
            "job": json.dumps(job.to_dict(), sort_keys=True, separators=(",", ":"))}


def execute_batch(runs: Sequence[Run], max_memory: int | None = None, threads: int | None = None,
                  callback: Callable[[int, np.ndarray], None] | None = None, isolate: bool = False) -> dict[str, Any]:
    """Train one batch (:func:`aedyn.job.run_batch`) and return ``{"rows": [...], "notes": [...]}``:
    the store rows of its runs, in order, and the notes (data warnings) it raised. This is what a
    Dask worker runs; ``threads`` sets torch's intra-op threads first (a worker of a local cluster
    gets its share of the cores); ``callback(k, losses)`` is the engine's progress report.

    ``isolate``: a batch refused for a reason of one of its runs (an :class:`AedynError` other than a
    memory refusal) runs again one run at a time, and a run that still cannot start gets an
    :func:`untrainable_row` (a width search counts it as failing) instead of failing the batch."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    notes: list[str] = []
    try:
        results = run_batch([r.job for r in runs], max_memory=max_memory, on_note=notes.append, callback=callback)
    except MemoryRefusal:
        raise
    except AedynError:
        if not isolate:
            raise
        rows = []
        for r in runs:
            try:
                rows.append(result_row(r.run_id, r.job, run_batch([r.job], max_memory=max_memory,
                                                                  on_note=notes.append)[0], r.data_sha256))
            except MemoryRefusal:
                raise
            except AedynError as exc:
                rows.append(untrainable_row(r.run_id, r.job, first_line(exc, 500), r.data_sha256))
        return {"rows": rows, "notes": notes}
    if len(results) != len(runs):
        raise RuntimeError(f"run_batch returned {len(results)} results for {len(runs)} jobs")
    return {"rows": [result_row(r.run_id, r.job, res, r.data_sha256) for r, res in zip(runs, results, strict=True)],
            "notes": notes}


# ---- running ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepProgress:
    """Where a running sweep stands (passed to ``progress`` at the start and after each batch)."""

    total: int  # runs to train in this call (the sweep's runs less the finished ones)
    done: int
    failed: int
    batches_done: int
    batches: int
    elapsed: float  # seconds since the first batch started
    partial: float = 0.0  # runs' worth of work done in the batch under way (local executor), for smooth bars
    stored_meanwhile: int = 0  # runs left out because another writer stored them since the start


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did: runs in the sweep, skipped (already stored, or stored by another
    writer while this one ran), trained now, failed (not stored), of which refused for memory
    (rerunning as it is refuses them again; the others a rerun resumes), batches, wall time,
    statuses of the trained runs, and one line per failed batch."""

    store: Path
    total: int
    skipped: int
    done: int
    failed: int
    batches: int
    wall_time: float
    executor: str
    workers: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    refused: int = 0


def check_executor(executor: str, scheduler: str | None = None, workers: int | None = None) -> int | None:
    """Check the executor options of :func:`run_sweep`; returns ``workers`` checked."""
    if executor not in EXECUTORS:
        raise AedynError(f"unknown executor {executor!r}; use one of: {', '.join(EXECUTORS)}")
    if executor == "local":
        if scheduler is not None or workers is not None:
            raise AedynError("--scheduler and --workers are for the dask executor; add --executor dask or drop them")
        return None
    if scheduler is not None and workers is not None:
        raise AedynError("give --scheduler (join a running cluster) or --workers (start a local one), not both")
    if scheduler is None and workers is None:
        raise AedynError("the dask executor needs --scheduler tcp://HOST:PORT (a running cluster) or --workers N "
                         "(start one on this machine)")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise AedynError(f"--scheduler must be an address such as tcp://HOST:8786; got {scheduler!r}")
    workers = None if workers is None else check_count(workers, "--workers")
    _require_dask()
    return workers


def _require_dask() -> None:
    """Import Dask's ``distributed``, an optional dependency (the ``dask`` extra), or say how to install it."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise AedynError('the dask executor needs Dask, which is not installed: pip install "aedyn[dask]" (or drop '
                         "--executor dask, --scheduler and --workers to run in this process)") from None


def run_sweep(config: SweepConfig, store_path: str | Path, *, executor: str = "local", scheduler: str | None = None,
              workers: int | None = None, force: bool = False,
              progress: Callable[[SweepProgress], None] | None = None,
              on_note: Callable[[str], None] | None = None, max_memory: int | None = None) -> SweepSummary:
    """Run the sweep into the store at ``store_path``, skipping the runs it already holds.

    Order: every run is validated (:func:`plan`) and the store judged (:meth:`Store.inspect`: a
    folder that is not a store, or a store of a different config without ``force``, is refused),
    then the Dask cluster joined or started (when there are runs to train), and only then the store
    created or opened (:meth:`Store.create`, which makes missing parent folders and says so), so a
    refusal or an unreachable scheduler leaves nothing behind. Batches then run in this process
    (``executor="local"``) or on Dask (``"dask"``: join the cluster at ``scheduler``, or start
    ``workers`` single-threaded worker processes on this machine); each finished batch is appended
    to the store at once, by this process only, so a sweep killed at any moment loses at most the
    batches in flight. Runs another writer (a second sweep into the store) stored meanwhile are
    left out: before a local batch starts, and when a batch's rows are written. A worker lost
    mid-batch makes Dask run the batch again elsewhere; a batch that fails (an error, a memory
    refusal, or workers lost too often) is reported through ``on_note`` and in the summary, the
    others go on, and its runs are not stored. ``progress`` gets a :class:`SweepProgress` at the
    start, after each batch and (local executor) a few times a second within a batch; ``on_note``
    one line per note (each distinct data warning once)."""
    workers = check_executor(executor, scheduler, workers)
    runs = plan(config)
    found = Store.inspect(store_path)
    if found is not None:
        found.check_config(config.store_config(), force=force)
    say = _NoteOnce(on_note)
    cluster: tuple[Any, int | None] | None = None
    with ExitStack() as stack:
        if executor == "dask":
            stored = set() if found is None else found.finished_ids()
            if any(r.run_id not in stored for r in runs):  # no cluster to start for nothing
                cluster = stack.enter_context(_dask_client(scheduler, workers))
        store = Store.create(store_path, config.store_config(), force=force, on_note=say)
        summary = _run_batches(config, runs, store, say, cluster, progress, max_memory, executor, workers)
    return summary


def _run_batches(config: SweepConfig, runs: list[Run], store: Store, say: _NoteOnce,
                 cluster: tuple[Any, int | None] | None, progress: Callable[[SweepProgress], None] | None,
                 max_memory: int | None, executor: str, workers: int | None) -> SweepSummary:
    """The body of :func:`run_sweep`, once the store is open (and the cluster, if any, joined)."""
    finished = store.finished_ids()
    todo = [r for r in runs if r.run_id not in finished]
    skipped = len(runs) - len(todo)
    if skipped:
        say(f"skipping {skipped} finished run{'s' * (skipped != 1)} already in {str(store.path)!r}")
    batches = make_batches(todo, config.batch_size)
    summary = SweepSummary(store=store.path, total=len(runs), skipped=skipped, done=0, failed=0,
                           batches=len(batches), wall_time=0.0, executor=executor, workers=workers)
    t0 = time.perf_counter()
    statuses: Counter[str] = Counter()
    batches_done = 0

    def report(partial: float = 0.0) -> None:
        if progress is not None:
            progress(SweepProgress(total=len(todo), done=summary.done, failed=summary.failed,
                                   batches_done=batches_done, batches=len(batches),
                                   elapsed=time.perf_counter() - t0, partial=partial,
                                   stored_meanwhile=summary.skipped - skipped))

    def ticker(batch: list[Run]) -> Callable[[int, np.ndarray], None] | None:
        """The engine's step reports as progress within the batch, at most every PROGRESS_EVERY_S."""
        if progress is None:
            return None
        budget, last = max(batch[0].job.steps, 1), [time.perf_counter()]

        def tick(k: int, losses: np.ndarray) -> None:
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                report(len(batch) * min(k / budget, 1.0))

        return tick

    def finish(index: int, batch: list[Run], outcome: dict[str, Any] | BaseException) -> None:
        nonlocal batches_done
        batches_done += 1
        if isinstance(outcome, BaseException):
            summary.failed += len(batch)
            if isinstance(outcome, MemoryRefusal):
                summary.refused += len(batch)
            line = (f"batch {index + 1} of {len(batches)} ({len(batch)} run{'s' * (len(batch) != 1)}) failed: "
                    f"{_describe_failure(outcome)}; its runs are not stored")
            summary.failures.append(line)
            say(line)
        else:
            for text in outcome["notes"]:
                say(text)
            store.append(outcome["rows"], skip_stored=True)  # another writer may have stored some meanwhile
            summary.done += len(outcome["rows"])
            statuses.update(row["status"] for row in outcome["rows"])
        report()

    report()
    try:
        if executor == "local":
            for index, batch in enumerate(batches):
                finished = store.finished_ids()  # a second sweep into this store may have trained some
                left = [r for r in batch if r.run_id not in finished]
                summary.skipped += len(batch) - len(left)
                if not left:
                    batches_done += 1
                    report()
                    continue
                try:
                    outcome: dict[str, Any] | BaseException = execute_batch(left, max_memory, callback=ticker(left))
                except Exception as exc:  # one batch's failure must not cost the others
                    outcome = exc
                finish(index, left, outcome)
        elif cluster is not None:
            client, threads = cluster
            for index, outcome in _dask_batches(client, batches, max_memory, threads):
                finish(index, batches[index], outcome)
    finally:
        summary.wall_time = time.perf_counter() - t0
        summary.statuses = dict(statuses)
    return summary


class _NoteOnce:
    def __init__(self, on_note: Callable[[str], None] | None) -> None:
        self.on_note = on_note
        self.seen: set[str] = set()

    def __call__(self, text: str) -> None:
        if self.on_note is not None and text not in self.seen:
            self.seen.add(text)
            self.on_note(text)


def _describe_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return "its worker died each time it ran (KilledWorker: out of memory, or killed?)"
    if is_out_of_memory(exc):
        return f"out of memory ({name}); use a smaller batch_size in [sweep], or smaller runs"
    if isinstance(exc, AedynError):  # one line by design: keep all of it
        return first_line(exc, 1000)
    return f"{name}: {first_line(exc, 300)}"


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """SIGINT ignored while a local cluster starts its worker processes, which inherit that: Ctrl-C
    at a terminal reaches every process of the foreground group, and workers would each die with a
    traceback; this way only the client hears it, and it closes the cluster (no worker left). A
    Ctrl-C in the few seconds the cluster takes to start is not seen (an ignored signal cannot be
    held back for later): pressed again once it runs, it ends the command."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _dask_client(scheduler: str | None, workers: int | None) -> Iterator[tuple[Any, int | None]]:
    """A Dask client: joined to ``scheduler``, or to a new loopback cluster of ``workers``
    single-threaded worker processes (no dashboard, quiet logs). Closed on the way out, whatever
    happens (errors, Ctrl-C, SIGTERM turned into an exception)."""
    import logging

    from distributed import Client, LocalCluster

    cluster = client = None
    try:
        if workers is not None:
            with _workers_ignore_ctrl_c():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
            threads: int | None = max(1, (os.cpu_count() or 1) // workers)
        else:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as exc:
                raise AedynError(f"cannot reach the dask scheduler at {scheduler!r} ({first_line(exc)}); start one "
                                 "('dask scheduler' and 'dask worker ADDRESS') or use --workers N") from None
            threads = None
        yield client, threads
    finally:
        if client is not None:
            with _quiet():
                client.close()
        if cluster is not None:
            with _quiet():
                cluster.close()


@contextmanager
def _quiet() -> Iterator[None]:
    """Closing a cluster after an interrupt may raise about half-closed connections: ignore it."""
    with suppress(Exception):
        yield


def _dask_batches(client: Any, batches: list[list[Run]], max_memory: int | None, threads: int | None,
                  isolate: bool = False) -> Iterator[tuple[int, dict[str, Any] | BaseException]]:
    """Submit every batch and yield ``(index, outcome)`` as each completes (rows, or the error);
    pending batches are cancelled if the caller stops early."""
    from distributed import as_completed

    index_of = {}
    futures = []
    for index, batch in enumerate(batches):
        fut = client.submit(execute_batch, batch, max_memory, threads, None, isolate, pure=False,
                            key=f"aedyn-batch-{index}-{batch[0].run_id}-{os.getpid()}-{time.time_ns()}")
        index_of[fut.key] = index
        futures.append(fut)
    try:
        for fut in as_completed(futures):
            index = index_of[fut.key]
            if fut.status == "finished":
                outcome: dict[str, Any] | BaseException = fut.result()
            else:
                exc = fut.exception()
                outcome = exc if isinstance(exc, BaseException) else RuntimeError(f"batch {fut.status}")
            fut.release()
            yield index, outcome
    finally:
        with _quiet():
            client.cancel([f for f in futures if not f.done()])


# ---- the run layer under experiments and searches ---------------------------------------------

RUNS_CONFIG = {"kind": "aedyn.runs", "format": 1}
"""The store config of a :class:`Runner`'s store: runs are named by their content (:func:`run_id`),
so one store holds the runs of any number of experiments and searches."""


class Runner:
    """Trains batches of :class:`~aedyn.job.TrainJob` through one executor and records every run in
    one store: the run layer under the experiments and the width search (:mod:`aedyn.threshold`),
    the same executors and row schema as :func:`run_sweep`.

    :meth:`run` takes a list of batches (each a list of jobs sharing :func:`~aedyn.job.batch_key`)
    and returns their rows (:func:`result_row`), in order. A run already in the store is read, not
    trained (resume: a rerun, or an adaptive search replaying its rounds, trains only what is
    missing); the others train in this process (``executor="local"``) or on Dask (``"dask"``, a
    local cluster of ``workers`` processes or the cluster at ``scheduler``, started at the first
    batch to train and kept until :meth:`close`), and each finished batch is appended to the store
    at once. Batches ``isolate`` their runs (:func:`execute_batch`). Without a store nothing is
    kept beyond this object."""

    def __init__(self, store: str | Path | Store | None = None, *, executor: str = "local",
                 scheduler: str | None = None, workers: int | None = None, max_memory: int | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.workers = check_executor(executor, scheduler, workers)
        self.executor, self.scheduler, self.max_memory = executor, scheduler, max_memory
        self.store = Store.create(store, RUNS_CONFIG) if isinstance(store, (str, Path)) else store
        self._say = _NoteOnce(on_note)
        self._rows: dict[str, dict[str, Any]] | None = None
        self._stack = ExitStack()
        self._client: Any = None
        self._threads: int | None = None
        self.trained = 0
        self.read = 0

    @classmethod
    @contextmanager
    def given(cls, runner: Runner | None) -> Iterator[Runner]:
        """``runner``, or a local one without a store for the duration (closed after): how an
        experiment's ``run`` takes the runner it may be handed."""
        if runner is not None:
            yield runner
            return
        with cls() as own:
            yield own

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Dask client (and the local cluster it started), if any."""
        self._stack.close()
        self._client = None

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every stored row by ``run_id`` (read once from the store, then kept up to date)."""
        if self._rows is None:
            self._rows = {}
            if self.store is not None and self.store.finished_ids():
                frame = self.store.load()
                for row in frame.to_dict(orient="records"):
                    self._rows[row["run_id"]] = _plain_row(row)
        return self._rows

    def run(self, batches: Sequence[Sequence[TrainJob]], *,
            progress: Callable[[int, int], None] | None = None) -> list[list[dict[str, Any]]]:
        """The rows of every job of ``batches`` (see the class docstring), as plain values
        (:func:`_plain_row`: a stored row and a freshly trained one read alike; read missing values
        with ``row.get``). A batch that fails
        raises its error (a memory refusal as it is): what the caller asked for cannot be answered
        without it. ``progress(done, total)`` after each batch trained, ``total`` the batches to train."""
        digests: dict[str, str] = {}  # each data file read once for its digest
        planned = [[_run_of(job, digests) for job in batch] for batch in batches]
        known = self.rows()
        todo: list[list[Run]] = []
        seen: set[str] = set()
        for batch in planned:
            missing = [r for r in batch if r.run_id not in known and r.run_id not in seen]
            seen.update(r.run_id for r in missing)
            if missing:
                todo.append(missing)
        self.read += sum(len(b) for b in planned) - len(seen)
        if progress is not None:
            progress(0, len(todo))
        for done, (index, outcome) in enumerate(self._execute(todo), start=1):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, AedynError):
                    raise outcome
                raise AedynError(f"a batch of {len(todo[index])} run(s) failed: {_describe_failure(outcome)}") \
                    from outcome
            for text in outcome["notes"]:
                self._say(text)
            rows = outcome["rows"]
            if self.store is not None:
                self.store.append(rows, skip_stored=True)  # another writer may have stored some meanwhile
            for row in rows:
                known[row["run_id"]] = _plain_row(row)
            self.trained += len(rows)
            if progress is not None:
                progress(done, len(todo))
        return [[known[r.run_id] for r in batch] for batch in planned]

    def _execute(self, batches: list[list[Run]]) -> Iterator[tuple[int, dict[str, Any] | BaseException]]:
        if not batches:
            return
        if self.executor == "local":
            for index, batch in enumerate(batches):
                try:
                    outcome: dict[str, Any] | BaseException = execute_batch(batch, self.max_memory, isolate=True)
                except MemoryRefusal:
                    raise
                except Exception as exc:
                    outcome = exc
                yield index, outcome
            return
        if self._client is None:
            self._client, self._threads = self._stack.enter_context(_dask_client(self.scheduler, self.workers))
        yield from _dask_batches(self._client, batches, self.max_memory, self._threads, isolate=True)


def _plain(value: Any) -> Any:
    """A cell as a plain Python value, the same whether the row was just trained or loaded from the
    store: NumPy scalars and arrays to numbers and lists, NaN (a missing value, or a number that is
    not one) to ``None``, inside lists too."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as :func:`_plain` values, without its missing ones: a column another part of the store
    has and this run has not, and a value that is ``None``, read alike (``row.get(column)``)."""
    return {k: v for k, v in ((k, _plain(v)) for k, v in row.items()) if v is not None}


# ---- dry run ------------------------------------------------------------------------------------

STEP_OVERHEAD_S = 3e-4
"""Assumed fixed cost of one batched gradient step (Python and kernel launches), seconds."""

LANCZOS_STEPS = 100
"""Assumed Lanczos iterations of ``lr="auto"`` (each about two gradient steps of work)."""

ASSUMED_FLOPS = {"cuda": 5e12}
"""Assumed sustained rate on an accelerator; on the CPU the rate is measured (a small matmul)."""


@dataclass(frozen=True)
class SweepPlan:
    """What :func:`run_sweep` would do: runs, batches (of the runs still to train), runs already
    finished in the store, a rough time estimate (every run spending its step budget), and the
    folders a new store would make (the store folder last)."""

    runs: int
    batches: int
    finished: int
    to_run: int
    store_exists: bool
    same_config: bool | None  # None when there is no store yet
    estimate_s: float
    parallel: int
    new_folders: tuple[str, ...] = ()


def dry_run(config: SweepConfig, store_path: str | Path | None = None, *, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> SweepPlan:
    """Plan the sweep and look into the store (if there is one) without writing or training.
    ``workers`` divides the time estimate (batches run side by side).

    Every run is validated as :func:`plan` does, but runs are counted, not made: each combination
    of the axes but the seeds once, times the seeds; only a store holding finished runs makes it
    name every run (to tell which are finished). ``progress(done, total)`` hears, at most every
    :data:`PROGRESS_EVERY_S`, how many of the combinations (or runs) are done."""
    grid = _Grid(config)
    store = None if store_path is None else Store.inspect(store_path)
    finished = set() if store is None else store.finished_ids()
    sizes: Counter[tuple] = Counter()
    jobs: dict[tuple, TrainJob] = {}
    total = 0
    if finished:
        tick = _ticker(progress, math.prod(len(v) for v in grid.values.values()))
        for k, (rid, template, _, _) in enumerate(grid.walk()):
            tick(k)
            total += 1
            if rid not in finished:
                sizes[template.key] += 1
                jobs.setdefault(template.key, template.job)
    else:
        tick = _ticker(progress, math.prod(len(grid.values[k]) for k in grid.others))
        for k, template in enumerate(grid.templates()):
            tick(k)
            total += grid.seed_pairs
            sizes[template.key] += grid.seed_pairs
            jobs.setdefault(template.key, template.job)
    batches = [(jobs[key], size) for key, runs in sizes.items() for size in _batch_sizes(runs, config.batch_size)]
    parallel = max(1, min(workers or 1, len(batches)))
    seconds = sum(_batch_seconds(job, size) for job, size in batches) / parallel
    to_run = sum(sizes.values())
    return SweepPlan(runs=total, batches=len(batches), finished=total - to_run, to_run=to_run,
                     store_exists=store is not None, same_config=None if store is None else
                     store.holds(config.store_config()), estimate_s=seconds, parallel=parallel,
                     new_folders=() if store_path is None else tuple(map(str, missing_folders(store_path))))


def _ticker(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None]:
    """``tick(done)``: ``progress(done, total)``, at most every :data:`PROGRESS_EVERY_S`."""
    last = [time.perf_counter()]

    def tick(done: int) -> None:
        now = time.perf_counter()
        if progress is not None and now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            progress(done, total)

    return tick


def estimate_batch_seconds(batch: Sequence[TrainJob]) -> float:
    """A rough cost model of one batch: ``steps x (overhead + B x 12 n d m / rate)`` flops per
    gradient step (forward and backward of two ``n x d x m`` products, ``B`` networks), plus
    Lanczos for ``lr="auto"``. An estimate only: converged runs stop early, small problems are
    dominated by overheads the model only guesses."""
    if not batch:
        return 0.0
    return _batch_seconds(batch[0], len(batch))


def _batch_seconds(job: TrainJob, size: int) -> float:
    """:func:`estimate_batch_seconds` of ``size`` runs like ``job`` (a batch shares its budget)."""
    n, d = job.expected_shape() or (job.n or 1000, job.d or 784)
    per_step = STEP_OVERHEAD_S + size * 12.0 * n * d * job.width / _flop_rate(job.device, job.dtype)
    return (job.steps + (2 * LANCZOS_STEPS if job.lr == "auto" else 0)) * per_step


@cache
def _flop_rate(device: str, dtype: str) -> float:
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return ASSUMED_FLOPS["cuda"]

    dt = torch.float32 if dtype == "float32" else torch.float64
    a = torch.randn(256, 256, dtype=dt)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return max(2 * 256**3 / max(best, 1e-9), 1e8)


# ---- reading results ----------------------------------------------------------------------------

SUMMARY_COUNTS = ("runs", "converged", "diverged", "failed")
"""The counts :func:`summary_table` gives per group (``failed``: runs that could not train, e.g.
:data:`UNTRAINABLE`; ``runs`` also counts those that spent their budget, ``max_steps``)."""

_FINISHED = ("converged", "max_steps")
"""Statuses whose final loss and rate :func:`summary_table` takes the median of."""


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per setting of a store's runs (:func:`aedyn.store.load_results`), seeds pooled:
    the runs are grouped by every setting that varies across them (the job's settings, and the data
    file's digest, :func:`run_id`; those held fixed are :func:`fixed_settings`), in increasing
    order. Per group: :data:`SUMMARY_COUNTS` and the median final relative loss and median rate of
    the runs that converged or spent their budget (a diverged run's loss says only that it
    diverged: it is counted, never averaged)."""
    import pandas as pd

    varying, _, keys = _settings(frame)
    groups: dict[tuple, list[int]] = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    status = frame["status"].astype(str).to_numpy()
    rel = pd.to_numeric(frame.get("final_relative_loss", pd.Series(math.nan, index=frame.index)), errors="coerce")
    rate = pd.to_numeric(frame.get("rate", pd.Series(math.nan, index=frame.index)), errors="coerce")
    rows = []
    for key in sorted(groups, key=lambda key: tuple(map(_order, key))):
        at = groups[key]
        kinds = Counter(status[at])
        finished = [k for k in at if status[k] in _FINISHED]
        rows.append({**dict(zip(varying, key, strict=True)), "runs": len(at), "converged": kinds["converged"],
                     "diverged": kinds["diverged"], "failed": len(at) - kinds["diverged"] - len(finished),
                     "median_relative_loss": float(rel.iloc[finished].median()) if finished else math.nan,
                     "median_rate": float(rate.iloc[finished].median()) if finished else math.nan})
    columns = [*varying, *SUMMARY_COUNTS, "median_relative_loss", "median_rate"]
    return pd.DataFrame({c: pd.Series([row[c] for row in rows], dtype=object if c in varying else None)
                         for c in columns}, columns=columns)


def fixed_settings(frame: pd.DataFrame) -> dict[str, Any]:
    """The settings every run of a store's rows shares (the ones :func:`summary_table` does not
    group by), unset ones (``None``) and the seed scheme left out."""
    return {k: v for k, v in _settings(frame)[1].items() if v is not None and k != "seed_scheme"}


def _settings(frame: pd.DataFrame) -> tuple[list[str], dict[str, Any], list[tuple]]:
    """From each row's ``job`` (and ``data_sha256``): the settings that vary across the rows, those
    held fixed (name -> value), and each row's values of the varying ones. Seeds are left out (the
    runs of a setting); lists and tables are compact JSON text."""
    missing = [c for c in ("job", "status") if c not in frame.columns]
    if missing:
        raise AedynError(f"the results have no {', '.join(missing)} column(s), so they are not rows of "
                         "'aedyn sweep'; pass a store written by 'aedyn sweep --out'")
    digests = frame["data_sha256"] if "data_sha256" in frame.columns else [None] * len(frame)
    records = []
    for text, digest in zip(frame["job"], digests, strict=True):
        try:
            spec = json.loads(text)
        except (TypeError, ValueError):
            spec = None
        if not isinstance(spec, dict):
            raise AedynError(f"a row's job column is not a job's JSON ({str(text)[:60]!r}); these are not rows of "
                             "'aedyn sweep': pass a store written by 'aedyn sweep --out'")
        record = {k: _setting(v) for k, v in spec.items() if k not in SEED_KEYS}
        if isinstance(digest, str):
            record["data_sha256"] = digest
        records.append(record)
    order = {k: i for i, k in enumerate((*JOB_FIELDS[:2], "data_sha256", *JOB_FIELDS[2:]))}
    names = sorted({k for r in records for k in r}, key=lambda k: (order.get(k, len(order)), k))
    columns = {k: [r.get(k) for r in records] for k in names}
    varying = [k for k in names if len(set(columns[k])) > 1]
    fixed = {k: columns[k][0] for k in names if k not in varying and columns[k]}
    return varying, fixed, list(zip(*(columns[k] for k in varying), strict=True)) or [()] * len(records)


def _setting(value: Any) -> Any:
    """A setting as a hashable value: lists and tables as compact JSON text."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else value


def _order(value: Any) -> tuple:
    """Numbers in order, then text, then unset."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value)) if value is not None else (2, 0, "")


def write_csv(frame: pd.DataFrame, path: str | Path, *, force: bool = False, flag: str = "--csv") -> Path:
    """All rows as CSV, atomically (:func:`aedyn.files.write_atomic`); list columns (the loss curve)
    as JSON arrays in one field."""
    out = frame.copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            out[column] = out[column].map(_json_cell)
    text = out.to_csv(index=False).encode()

    def write(fh: IO[bytes]) -> None:
        fh.write(text)

    return write_atomic(path, write, force=force, flag=flag)


def _json_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps([None if isinstance(v, float) and not math.isfinite(v) else v
                           for v in np.asarray(value).tolist()])
    return value


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Runs per status, most common first."""
    if "status" not in frame.columns:
        return {}
    return {str(k): int(v) for k, v in frame["status"].value_counts().items()}
