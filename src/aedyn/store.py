"""The results store: a folder holding a Parquet dataset of sweep results, one row per training run.

Layout::

    OUT/
      store.json                     marker + config: {"kind": "aedyn.store", "format": 1,
                                     "configs": [...], "created": ISO time, "versions": {...}}
      store.lock                     the lock writers take turns on (empty; always there)
      parts/
        part-<time ns>-<uuid>.parquet    one file per append(), rows written together
        .part-....parquet.*.tmp          (only after a killed writer) a temporary, never read

The store knows nothing about training: it takes rows (plain Python values keyed by column name,
each with a string ``run_id``), tells which runs are finished, and loads everything back as one
pandas ``DataFrame``.

Guarantees:

- **Atomic per file.** Each :meth:`Store.append` writes one new part file through
  :func:`aedyn.files.write_atomic` (temporary file, fsync, exclusive move), so a part file is either
  absent or complete. A writer killed at any moment leaves at most a hidden ``.part-*.tmp``
  temporary, which the reader never treats as data (only ``part-*.parquet`` files are read).
- **Resume = finished_ids.** A sweep that restarts opens the same folder with the same config
  (:meth:`Store.create` accepts it) and skips the runs in :meth:`Store.finished_ids`; runs of a
  part file that never landed are simply run again.
- **Checked before the work.** :meth:`Store.create` refuses a folder that is not an aedyn store, a
  store of a different sweep config (unless ``force``) and an unwritable folder, before any run starts.
  It makes a new store's missing parent folders.
- **Writers take turns.** Changing ``store.json`` (a read-modify-write) and writing a part file
  hold the store's lock (:func:`aedyn.files.locked`), so processes creating one store at once all
  succeed (one makes it, the others open it), every config forced into a store is kept, and of two
  writers of one run exactly one stores it.
- **One row per run.** ``append`` refuses a ``run_id`` already in the store (or leaves its row out,
  ``skip_stored``); a store written by hand or by an older aedyn may still hold a run twice:
  :meth:`Store.load` keeps the first (part files are named in write order) and warns.
- OS errors (permission denied, read-only file system, disk full) are one :class:`AedynError` line.

Loaded values: a column of lists comes back as NumPy arrays, an integer or boolean column with
missing values becomes float or object (pandas' usual rules), and NaN and inf floats round-trip.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from aedyn._check import check_path
from aedyn._meta import environment, jsonable
from aedyn.errors import AedynError, AedynWarning, first_line
from aedyn.files import describe_os_error, locked, read_json, write_atomic, write_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STORE_FILE", "Store", "load_results", "missing_folders"]

STORE_FILE = "store.json"
"""The marker and config file at the top of every store folder."""

LOCK_FILE = "store.lock"
"""The store's lock (:func:`aedyn.files.locked`): held to change ``store.json`` and to write a part file."""

STORE_KIND = "aedyn.store"
STORE_FORMAT = 1
PARTS = "parts"
_PART_GLOB = "part-*.parquet"

_OPEN_HINT = "pass a folder written by 'aedyn sweep --out'"
_CREATE_HINT = "choose a new or empty folder"


def _canonical(config: Any) -> str:
    """The canonical JSON text of ``config`` (sorted keys, no spaces, non-finite floats as null)."""
    return json.dumps(jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _read_store_file(path: Path, hint: str) -> dict[str, Any]:
    """The contents of ``store.json`` in folder ``path``, checked; one-line AedynError if it is not
    a valid store file."""
    marker = path / STORE_FILE
    what = "an aedyn store file"
    fix = f"repair or delete {str(marker)!r}, or {hint}"
    meta = read_json(marker, what=what, hint=fix)
    if not isinstance(meta, dict) or meta.get("kind") != STORE_KIND:
        raise AedynError(f"{str(marker)!r} is not {what} (no \"kind\": \"{STORE_KIND}\"); {fix}")
    fmt = meta.get("format")
    if fmt != STORE_FORMAT:
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > STORE_FORMAT:
            raise AedynError(f"store {str(path)!r} has format {fmt}, newer than this aedyn reads "
                             f"({STORE_FORMAT}); upgrade aedyn")
        raise AedynError(f"{str(marker)!r} has an unknown format {fmt!r}, so it is not {what}; {fix}")
    configs = meta.get("configs")
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise AedynError(f"{str(marker)!r} has no list of configs, so it is not {what}; {fix}")
    return meta


def _store_meta(configs: list[dict], created: str | None = None) -> dict[str, Any]:
    return {
        "kind": STORE_KIND,
        "format": STORE_FORMAT,
        "configs": configs,
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": environment(),
    }


def _is_own(name: str) -> bool:
    """A file a store being created holds before its ``store.json`` lands: the lock, or a temporary
    of the store file (left by a writer that was killed)."""
    return name == LOCK_FILE or (name.startswith(f".{STORE_FILE}.") and name.endswith(".tmp"))


def missing_folders(path: str | Path) -> list[Path]:
    """The folders that making the folder ``path`` creates: ``path`` and its parents that do not
    exist, outermost first (``[]`` if ``path`` exists)."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing[::-1]


def _remove_folders(made: list[Path], path: Path) -> None:
    """Undo :meth:`Store._make_folders` after a failure: remove the folders it made, innermost first,
    where they hold nothing else (the store folder's lock file aside)."""
    for folder in reversed(made):
        with suppress(OSError):
            if folder == path:
                (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()


class Store:
    """A folder of sweep results: ``store.json`` plus Parquet part files, one row per run.

    Make one with :meth:`create` (to write) or :meth:`open` (to read); see the module docstring
    for the layout and guarantees.
    """

    path: Path
    configs: list[dict]

    def __init__(self, path: Path, configs: list[dict]) -> None:
        """Use :meth:`create` or :meth:`open`; this only records the already checked ``path`` and ``configs``."""
        self.path = Path(path)
        self.configs = configs
        self._ids: set[str] = set()  # run_ids of the part files in self._seen
        self._seen: set[str] = set()  # names of the part files already read for finished_ids

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, configs={len(self.configs)})"

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, config: dict, *, force: bool = False,
               on_note: Callable[[str], None] | None = None) -> Store:
        """Open the store at ``path`` for writing the sweep ``config`` (a JSON-ready dict), creating it
        if ``path`` does not exist (with its missing parent folders, said through ``on_note``) or is an
        empty folder.

        A store whose configs contain ``config`` is opened as it is (resume). A store of a different
        config is refused unless ``force``, which appends ``config`` to its configs. A file, or a
        non-empty folder without ``store.json``, is refused even with ``force``. The folder is checked
        to be writable, so call this before any work starts. Processes creating or changing one store
        at once take turns (the store's lock): each config given is kept, the same new store is made
        once and opened by the others.
        """
        path = check_path(path, "the store folder")
        if not isinstance(config, Mapping):
            raise AedynError(f"the sweep config must be a dict; got {type(config).__name__}")
        config = dict(config)
        try:
            key = _canonical(config)
        except (TypeError, ValueError) as exc:
            raise AedynError(f"the sweep config cannot be written as JSON ({first_line(exc)}); use only "
                             "strings, numbers, booleans, None, lists and dicts") from None
        made = cls._make_folders(path)
        try:
            with locked(path / LOCK_FILE):
                configs = cls._settle(path, config, key, force)
            store = cls(path, configs)
            store._check_writable()
        except BaseException:
            _remove_folders(made, path)
            raise
        parents = [str(p) for p in made if p != path]
        if parents and on_note is not None:
            folders = "folder" if len(parents) == 1 else "folders"
            on_note(f"created the missing {folders} {', '.join(map(repr, parents))} for the store {str(path)!r}")
        return store

    @staticmethod
    def _settle(path: Path, config: dict, key: str, force: bool) -> list[dict]:
        """The configs of the store at ``path`` once ``config`` is one of them: read, and written back
        with ``config`` added (``force``), or written new. Call under the store's lock."""
        if not ((path / STORE_FILE).exists() or (path / STORE_FILE).is_symlink()):
            Store._is_store(path)  # still a folder a store may fill (nothing of anyone else's appeared)?
            write_json(path / STORE_FILE, _store_meta([config]), flag="store file")
            return [config]
        meta = _read_store_file(path, _CREATE_HINT)
        configs = meta["configs"]
        if key in {_canonical(c) for c in configs}:
            return configs
        Store(path, configs).check_config(config, force=force)
        configs = [*configs, config]
        stamp = meta.get("created")
        write_json(path / STORE_FILE, _store_meta(configs, stamp if isinstance(stamp, str) else None), force=True,
                   flag="store file")
        return configs

    @staticmethod
    def _is_store(path: Path) -> bool:
        """True for an existing store folder, False where :meth:`create` would make one (a missing
        path whose nearest existing ancestor is a writable folder, or a folder holding nothing but
        what a store being created has: its lock and temporary files); anything else is refused.
        Writes nothing."""
        try:
            if path.is_dir():
                if (path / STORE_FILE).exists() or (path / STORE_FILE).is_symlink():
                    return True
                if any(not _is_own(entry.name) for entry in path.iterdir()):
                    raise AedynError(f"{str(path)!r} is not an aedyn store (no {STORE_FILE}) and is not empty; "
                                     f"{_CREATE_HINT}")
                return False
            if path.exists() or path.is_symlink():
                raise AedynError(f"{str(path)!r} is not an aedyn store (it is a file, not a folder); {_CREATE_HINT}")
            missing = missing_folders(path)
            if not missing:  # made by another process since the check above: judge what is there
                return Store._is_store(path)
            ancestor = missing[0].parent
            if not ancestor.is_dir():
                raise AedynError(f"cannot make the store {str(path)!r}: {str(ancestor)!r} is a file, not a folder; "
                                 "choose another path")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise AedynError(f"cannot make the store {str(path)!r}: the folder {str(ancestor)!r} is not "
                                 "writable; choose a folder you can write to")
        except OSError as exc:
            raise AedynError(describe_os_error(exc, path, "read")) from None
        return False

    @staticmethod
    def _make_folders(path: Path) -> list[Path]:
        """Make ``path`` and its missing parents and return the folders made (outermost first), or
        ``[]`` for an existing store or an empty folder; refuse anything else (:meth:`_is_store`)."""
        if Store._is_store(path) or path.is_dir():
            return []
        made: list[Path] = []
        for folder in missing_folders(path):
            try:
                folder.mkdir()
            except FileExistsError:  # made by another process meanwhile
                if not folder.is_dir():
                    _remove_folders(made, path)
                    raise AedynError(f"{str(folder)!r} appeared while this ran and is not a folder; "
                                     f"{_CREATE_HINT}") from None
                continue
            except OSError as exc:
                _remove_folders(made, path)
                raise AedynError(describe_os_error(exc, folder)) from None
            made.append(folder)
        if path not in made:  # another process made the store folder meanwhile: judge what it holds now
            try:
                Store._is_store(path)
            except AedynError:
                _remove_folders(made, path)
                raise
        return made

    @classmethod
    def inspect(cls, path: str | Path) -> Store | None:
        """The store at ``path``, or ``None`` where :meth:`create` would make a new one (a missing
        path, with :func:`missing_folders` to make, or an empty folder); what :meth:`create` refuses is
        refused. Writes nothing (dry runs)."""
        path = check_path(path, "the store folder")
        return cls.open(path) if cls._is_store(path) else None

    def holds(self, config: Mapping) -> bool:
        """Whether ``config`` is one of the sweep configs written into this store."""
        return _canonical(dict(config)) in {_canonical(c) for c in self.configs}

    def check_config(self, config: Mapping, *, force: bool = False) -> None:
        """Refuse, as :meth:`create` does, ``config`` where this store holds another sweep's results
        and ``force`` is not given. Writes nothing."""
        if not force and not self.holds(config):
            raise AedynError(f"{str(self.path)!r} holds results of a different sweep config; use another --out "
                             "folder, or --force to add these runs to it")

    def _check_writable(self) -> None:
        """Make ``parts/`` if needed and create and remove a hidden probe file there."""
        parts = self.path / PARTS
        try:
            parts.mkdir(exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=parts, prefix=".probe.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except FileExistsError:
            raise AedynError(f"{str(parts)!r} is not a folder, so {str(self.path)!r} is a damaged store; "
                             f"{_CREATE_HINT}") from None
        except OSError as exc:
            raise AedynError(describe_os_error(exc, parts)) from None

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open the existing store at ``path`` for reading (and appending)."""
        path = check_path(path, "the store folder")
        if not path.exists():
            raise AedynError(f"{str(path)!r} does not exist, so it is not an aedyn store; {_OPEN_HINT}")
        if not path.is_dir():
            raise AedynError(f"{str(path)!r} is a file, not an aedyn store folder; {_OPEN_HINT}")
        if not (path / STORE_FILE).exists():
            raise AedynError(f"{str(path)!r} is not an aedyn store (no {STORE_FILE}); {_OPEN_HINT}")
        return cls(path, _read_store_file(path, _OPEN_HINT)["configs"])

    # ---- reading -------------------------------------------------------------------------------

    def _part_files(self, skip: Collection[str] = ()) -> list[Path]:
        """The data files, in write order (their names start with the time of writing), but those
        named in ``skip`` (known already: not looked at again)."""
        parts = self.path / PARTS
        try:
            if not parts.exists():
                return []
            if not parts.is_dir():
                raise AedynError(f"{str(parts)!r} is not a folder, so {str(self.path)!r} is a damaged store; move "
                                 "that file away (a rerun of the sweep makes the folder again)")
            names = sorted(n for n in os.listdir(parts) if n not in skip and fnmatch(n, _PART_GLOB))
            return [parts / n for n in names if (parts / n).is_file()]
        except OSError as exc:
            raise AedynError(describe_os_error(exc, parts, "read")) from None

    @staticmethod
    def _read_part(file: Path, columns: list[str] | None = None) -> pa.Table:
        """One part file as an Arrow table; a damaged file is one AedynError line naming it."""
        damaged = (f"part file {str(file)!r} is damaged ({{}}); delete it and rerun the sweep to redo its runs")
        try:
            fh = open(file, "rb")  # noqa: SIM115 - closed below; OS errors apart from damage
        except OSError as exc:
            raise AedynError(describe_os_error(exc, file, "read")) from None
        with fh:
            try:
                table = pq.read_table(fh, columns=columns)
            except (pa.ArrowException, OSError, ValueError) as exc:
                if isinstance(exc, pa.ArrowInvalid) and "FieldRef" in str(exc):
                    raise AedynError(damaged.format("it has no run_id column")) from None
                raise AedynError(damaged.format(first_line(exc))) from None
        if "run_id" not in table.column_names:
            raise AedynError(damaged.format("it has no run_id column"))
        if not pa.types.is_string(table.schema.field("run_id").type) and table.num_rows:
            raise AedynError(damaged.format("its run_id column is not text"))
        return table

    def finished_ids(self) -> set[str]:
        """The ``run_id`` of every row in the data files (the runs a resumed sweep skips).

        Part files already read are remembered, so a later call only reads files that are new."""
        for file in self._part_files(skip=self._seen):
            ids = self._read_part(file, ["run_id"]).column("run_id").to_pylist()
            self._ids.update(i for i in ids if i is not None)
            self._seen.add(file.name)
        return set(self._ids)

    def load(self) -> pd.DataFrame:
        """All rows, one per run, as a DataFrame with ``run_id`` first; part files in write order,
        rows of one file in the order they were written. A run written twice (two writers) is kept
        once, the first copy, with an :class:`AedynWarning`."""
        return self._load(stacklevel=3)

    def _load(self, stacklevel: int) -> pd.DataFrame:
        import pandas as pd

        tables = [self._read_part(file) for file in self._part_files()]
        if not tables:
            return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
        try:
            frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        except (pa.ArrowException, TypeError, ValueError):  # a column of different kinds across files
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # concatenating all-NA columns
                frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True, sort=False)
        duplicated = frame["run_id"].duplicated(keep="first")
        dropped = int(duplicated.sum())
        if dropped:
            warnings.warn(f"store {str(self.path)!r} holds {dropped} duplicate row(s) of runs written twice "
                          "(two writers?); kept the first of each", AedynWarning, stacklevel=stacklevel)
            frame = frame[~duplicated]
        frame = frame[["run_id", *(c for c in frame.columns if c != "run_id")]]
        return frame.reset_index(drop=True)

    # ---- writing -------------------------------------------------------------------------------

    def append(self, rows: list[dict], *, skip_stored: bool = False) -> Path | None:
        """Write ``rows`` (dicts of plain Python values: str, int, float, bool, None, lists of numbers;
        each with a string ``run_id``) as one new part file, atomically. Returns its path, or None for
        no rows. Refuses a row without ``run_id`` and a ``run_id`` twice in ``rows``. A ``run_id``
        already stored is refused, or with ``skip_stored`` its row is left out (another writer stored
        the run first). The check and the write hold the store's lock, so of two writers of one run
        exactly one stores it."""
        rows = list(rows)
        if not rows:
            return None
        ids: set[str] = set()
        for k, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise AedynError(f"row {k} is a {type(row).__name__}, not a dict; give each row as a dict of "
                                 "column -> value")
            run_id = row.get("run_id")
            if not isinstance(run_id, str) or not run_id:
                raise AedynError(f"row {k} has no run_id (got {run_id!r}); give every row a non-empty string run_id")
            if run_id in ids:
                raise AedynError(f"run_id {run_id!r} appears twice in the rows; write each run once")
            ids.add(run_id)
            for name in row:
                if not isinstance(name, str):
                    raise AedynError(f"row {k} has a column name {name!r} that is not a string; name columns "
                                     "with strings")
        parts = self.path / PARTS
        try:
            parts.mkdir(exist_ok=True)
        except OSError as exc:
            raise AedynError(describe_os_error(exc, parts)) from None
        with locked(self.path / LOCK_FILE):
            stored = ids & self.finished_ids()
            if stored and not skip_stored:
                first = sorted(stored)[0]
                raise AedynError(f"run_id {first!r} is already in the store {str(self.path)!r} ({len(stored)} of "
                                 "these rows are); writing it would duplicate the run: leave out the finished runs")
            rows = [row for row in rows if row["run_id"] not in stored]
            if not rows:
                return None
            file = self._write_part(rows, list(dict.fromkeys(name for row in rows for name in row)))
        self._ids |= ids - stored
        self._seen.add(file.name)
        return file

    def _write_part(self, rows: list[dict], columns: list[str]) -> Path:
        """Write ``rows`` as a new part file, atomically; returns its path."""
        table = self._table(rows, columns)
        file = self.path / PARTS / f"part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"

        def writer(fh: IO[bytes]) -> None:
            pq.write_table(table, fh)

        try:
            write_atomic(file, writer, flag="part file")
        except (pa.ArrowException, ValueError) as exc:
            if isinstance(exc, AedynError):
                raise
            raise AedynError(f"cannot write the rows as Parquet ({first_line(exc)}); use plain values: numbers, "
                             "strings, booleans, None or lists of numbers") from None
        return file

    @staticmethod
    def _table(rows: list[Mapping[str, Any]], columns: list[str]) -> pa.Table:
        """An Arrow table of ``rows`` with every column that appears in any row (missing -> null)."""
        arrays = []
        for name in columns:
            values = [row.get(name) for row in rows]
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                raise AedynError(f"column {name!r} cannot be stored ({first_line(exc)}); give it one kind of value "
                                 "in every row: numbers, strings, booleans, None or lists of numbers") from None
        return pa.Table.from_arrays(arrays, names=columns)


def load_results(path: str | Path) -> pd.DataFrame:
    """All results in the store at ``path`` as a DataFrame, one row per run (``Store.open(path).load()``)."""
    return Store.open(path)._load(stacklevel=3)

