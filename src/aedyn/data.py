"""Data: where samples come from, and the one path that validates them.

``X`` is ``n x d``, one sample per row. The theory assumes ``||x_i|| = 1``; :func:`validate`
normalises rows by default (and warns that it did), refuses empty, non-2-D, non-finite, zero and
subnormal rows, and warns when two rows are parallel (``|cos| > 1 - 1e-9``): rows in the same
direction make the encoder kernel singular (``lambda_0 = 0``), and the analysis (Du et al. 2019,
Thm 3.1) assumes no two samples are parallel or antiparallel.

Sources: ``sphere`` (uniform on the unit sphere), ``digits`` (scikit-learn's bundled 8x8 digits,
``d = 64``) and files (``.npy``, ``.npz`` with a key, ``.csv``, MNIST IDX ``*-ubyte[.gz]``).
:func:`check_source` checks every source option before anything is loaded, and
:func:`expected_shape` says what :func:`load_data` will return without loading it where that is
cheap. Every unreadable file is an :class:`AedynError` whose one line names the file and the fix.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import math
import os
import warnings
import zipfile
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import torch

from aedyn._check import check_count, check_int, check_seed
from aedyn._names import SOURCES
from aedyn._seed import numpy_generator, torch_generator
from aedyn._tensor import as_tensor, resolve_device, resolve_dtype
from aedyn.errors import AedynError, AedynWarning, MemoryRefusal, first_line, is_out_of_memory
from aedyn.files import describe_os_error
from aedyn.resources import available_memory, format_bytes

PARALLEL_TOL = 1e-9
"""Rows with ``|cos| > 1 - PARALLEL_TOL`` count as parallel."""

NORM_TOL = 1e-10
"""Rows whose norm differs from 1 by more than this are not unit rows (by more than
``8 sqrt(d) eps`` of the data's own dtype, when that is larger: float32 data)."""

PARALLEL_CAP = 32 * 2**20
"""Bytes of temporaries the parallel-row check may use on top of ``O(n d)``."""

PARALLEL_BUDGET = 2 * 10**8
"""Candidate pairs the parallel-row check examines at most (about 10 s); beyond, each row is
compared with its nearest candidates only and the warning says the check was cut short."""

DIGIT_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
"""Samples per label 0..9 in scikit-learn's digits (1797 in all), so shapes are known unloaded."""

_TINY = float(np.finfo(np.float64).tiny)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
_GZIP_MAGIC = b"\x1f\x8b"


def sphere(n: int, d: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` points uniform on the unit sphere ``S^{d-1}`` (normalised Gaussians), float64."""
    n = check_count(n, "n", hint=" (the number of samples, --n)")
    d = check_count(d, "d", hint=" (the input dimension, --d)")
    X = torch.randn(n, d, generator=torch_generator(seed, "data"), dtype=torch.float64)
    return X / X.norm(dim=1, keepdim=True)


def digits(n: int | None = None, *, seed: int = 0, classes: Sequence[int] | None = None,
           per_class: int | None = None,
           return_labels: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, ``d = 64``), not normalised.

    ``classes`` keeps only those digit labels; ``n`` draws that many samples at random (seeded)
    without replacement; ``per_class`` instead draws that many of each class (seeded, class by
    class in increasing order; ``n`` must then be ``None``); neither keeps all, in their stored order.
    """
    from sklearn.datasets import load_digits

    chosen = None if classes is None else _digit_classes(classes)
    bunch = load_digits()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    if chosen is not None:
        keep = np.isin(y, chosen)
        X, y = X[keep], y[keep]
    if per_class is not None:
        idx = _per_class_index(y, per_class, seed, chosen)
    else:
        idx = _subsample_index(len(X), n, seed, what=_digits_label(chosen))
    X_t, y_t = torch.from_numpy(X[idx]), torch.from_numpy(y[idx])
    return (X_t, y_t) if return_labels else X_t


def _per_class_index(labels: np.ndarray, per_class: int, seed: int, chosen: list[int] | None) -> np.ndarray:
    """``per_class`` rows of every class present (or ``chosen``), drawn by one seeded stream, class by class."""
    per_class = check_count(per_class, "per_class", hint=" (samples of each class, --per-class)")
    rng = numpy_generator(seed, "data")
    out = []
    for c in (sorted(set(labels.tolist())) if chosen is None else chosen):
        rows = np.flatnonzero(labels == c)
        _check_fits(per_class, len(rows), f"digits of class {c}")
        out.append(np.sort(rng.choice(rows, size=per_class, replace=False)))
    return np.concatenate(out)


def heldout_inputs(source: str | Path, X: torch.Tensor, n: int | None = None, *, seed: int,
                   per_class: int | None = None, d: int | None = None, classes: Sequence[int] | None = None,
                   key: str | None = None, normalize: bool = True) -> torch.Tensor:
    """Inputs from the source of the training data ``X`` that are not rows of ``X``, for evaluating a
    trained map off its training set; validated like :func:`load_data`, in ``X``'s dtype and device.

    - ``sphere``: ``n`` fresh points of the stream of ``seed`` (``d`` columns); a point equal to a
      row of ``X`` (the data seed given again) is an :class:`AedynError`.
    - a finite source (``digits``, a file): every row (of ``classes``) not equal to a row of ``X``,
      normalised as ``X`` was; of them ``n`` drawn with ``seed``, or with ``per_class`` (digits)
      that many of each class, in their stored order.
    """
    kind, _ = _source_kind(source)
    dtype, device = X.dtype, X.device
    if kind == "sphere":
        if n is None:
            raise AedynError("held-out sphere points need their number n")
        Z = load_data("sphere", n=n, d=d or int(X.shape[1]), seed=seed, normalize=normalize, dtype=dtype,
                      device=device)
        if bool((Z[:, None, :] == X[None, :, :]).all(dim=2).any()):
            raise AedynError(f"the held-out seed {seed} draws the training points again; use another held-out seed")
        return Z
    with warnings.catch_warnings():  # the training data's load already said what normalising did
        warnings.simplefilter("ignore", AedynWarning)
        if kind == "digits":
            raw, labels = digits(seed=seed, classes=classes, return_labels=True)  # type: ignore[misc]
            every = validate(raw, normalize=normalize, dtype=dtype, device=device, name="digits")
        else:
            every = load_data(source, key=key, normalize=normalize, dtype=dtype, device=device)
            labels = None
    fresh = ~(every[:, None, :] == X[None, :, :].to(every)).all(dim=2).any(dim=1)
    pool = torch.nonzero(fresh).flatten().cpu().numpy()
    if per_class is not None:
        if labels is None:
            raise AedynError("per_class draws held-out inputs by digit class; a file has no classes: give n")
        pick = pool[_per_class_index(labels.numpy()[pool], per_class, seed, None)]
    else:
        if n is None:
            raise AedynError("give the number n of held-out inputs (or per_class for digits)")
        _check_fits(n, len(pool), "the inputs that are not training rows")
        pick = np.sort(numpy_generator(seed, "heldout").choice(pool, size=n, replace=False))
    return every[torch.as_tensor(pick, device=every.device)]


def read_file(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Read a data matrix from ``.npy``, ``.npz`` (``key`` names the array; optional if only one),
    ``.csv`` (numbers only, one sample per row, one header line allowed) or MNIST IDX
    (``*-ubyte``, ``*.idx``, gzipped or not; images are flattened to float64 rows).

    Returns an in-memory array. Any file that cannot be read (missing, a folder, unreadable,
    empty, truncated, corrupt, of the wrong format, too large for memory) is an
    :class:`AedynError` naming the file and the problem.
    """
    path = Path(path)
    _check_path(path)
    label = _label(path)
    with _memory_guard(label):
        arr = _open_file(path, key)
        if _format(path) == "idx":
            return arr.astype(np.float64)
        if isinstance(arr, np.memmap):
            _check_room(arr.shape, arr.dtype, label)
            return np.array(arr)
        return arr


def validate(X: Any, *, normalize: bool = True, dtype: str | torch.dtype = torch.float64,
             device: str | torch.device = "cpu", name: str = "data") -> torch.Tensor:
    """The one validation path for every data source.

    Checks that ``X`` is numeric, 2-D, non-empty and finite with no zero or subnormal row (a row
    whose largest ``|entry|`` is below the smallest normal float64 has no accurately
    representable direction). Rows are scaled to unit norm when ``normalize`` (an
    :class:`AedynWarning` says how many were changed); with ``normalize=False`` a non-unit row is
    an error. Norms are computed as ``s * ||x / s||`` with ``s = max_j |x_j|``, so rows of
    ``1e308`` or ``1e-300`` neither overflow nor underflow. Warns when two rows are parallel.
    Returns a tensor of the requested dtype on the requested device.
    """
    dtype = resolve_dtype(dtype)
    source = as_tensor(X, name=name)
    stored = X.dtype if isinstance(X, torch.Tensor) and X.is_floating_point() else source.dtype
    source_eps = torch.finfo(stored).eps  # float32 (or half) data were made unit in their dtype: judge them so
    X = source.detach().to(device="cpu", dtype=torch.float64)
    if X.ndim != 2:
        hint = " (a single sample? reshape it to 1 x d)" if X.ndim == 1 else ""
        raise AedynError(f"{name} must be 2-D (n samples x d features); got shape {tuple(X.shape)}{hint}")
    n, d = X.shape
    if n == 0 or d == 0:
        raise AedynError(f"{name} is empty (shape {n} x {d}); give at least one sample with at least one feature")
    finite = torch.isfinite(X).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        kind = "NaN" if bool(torch.isnan(X[i]).any()) else "inf"
        count = int((~finite).sum())
        raise AedynError(f"{name} row {i} contains {kind} ({count} non-finite row(s) in all); "
                         "remove or impute those rows")
    scale = X.abs().amax(dim=1)
    zero = scale == 0
    if bool(zero.any()):
        i = int(zero.nonzero()[0])
        raise AedynError(f"{name} row {i} is all zeros ({int(zero.sum())} zero row(s) in all); a zero row "
                         "cannot lie on the unit sphere: drop it")
    subnormal = scale < _TINY
    if bool(subnormal.any()):
        i = int(subnormal.nonzero()[0])
        raise AedynError(f"{name} row {i} is subnormal (largest |entry| {float(scale[i]):.3g} < {_TINY:.2g}): its "
                         f"direction is not representable accurately ({int(subnormal.sum())} such row(s)); "
                         "rescale the data")
    Y = X / scale[:, None]
    rel = Y.norm(dim=1)  # in [1, sqrt(d)]: no overflow, no underflow
    norms = scale * rel  # inf when the true norm exceeds the float64 range: then certainly not 1
    off = (norms - 1).abs() > max(NORM_TOL, 8 * math.sqrt(d) * source_eps)
    if bool(off.any()):
        if not normalize:
            i = int(off.nonzero()[0])
            shown = (f"{float(norms[i]):.12g}" if math.isfinite(float(norms[i]))
                     else f"{float(rel[i]):.6g} x {float(scale[i]):.6g} (beyond float64)")
            raise AedynError(f"{name} row {i} has norm {shown}, not 1 ({int(off.sum())} such rows); "
                             "normalise the rows yourself or drop --no-normalize (normalize=False)")
        X = Y.div_(rel[:, None])
        warnings.warn(AedynWarning(f"normalised {int(off.sum())} of {n} rows to unit norm (the theory assumes "
                                   "||x_i|| = 1); pass --no-normalize (normalize=False) to refuse such data instead"),
                      stacklevel=2)
    del Y
    _warn_parallel(X, name)
    return X.to(device=resolve_device(device), dtype=dtype)


def check_source(source: str | Path | Any, *, n: int | None = None, d: int | None = None,
                 classes: Sequence[int] | None = None, key: str | None = None, seed: int = 0,
                 per_class: int | None = None) -> None:
    """Check every source option of :func:`load_data` without loading any data.

    ``n`` and ``d`` are positive integers or ``None``; ``seed`` an integer in ``[0, 2^63 - 1]``;
    ``sphere`` needs ``n`` and ``d``; ``digits`` takes ``d = 64`` only and non-empty ``classes``
    in ``0..9``, with at most as many samples as those classes hold (``per_class``, instead of
    ``n``: at most as many as the smallest chosen class holds); ``classes`` belongs to
    ``digits`` and ``key`` to ``.npz`` files only; a file must exist, be a regular readable file
    with a known suffix (the header of a ``.npy`` file or of the ``.npz`` array, not its data, is
    read to check ``n`` and ``d``); in-memory data takes
    none of ``n``, ``d``, ``classes``, ``key``. Raises :class:`AedynError`; returns ``None``.
    """
    check_seed(seed)
    if n is not None:
        check_count(n, "n", hint=" (the number of samples, --n)")
    if d is not None:
        check_count(d, "d", hint=" (the input dimension, --d)")
    kind, path = _source_kind(source)
    label = kind if path is None else _label(path)
    if kind == "data":
        label = "in-memory data"
    if classes is not None and kind != "digits":
        raise AedynError(f"--classes filters digit labels; {label} has none: drop --classes (classes=None)")
    if per_class is not None:
        if kind != "digits":
            raise AedynError(f"--per-class draws digits of each class; {label} has no classes: drop --per-class")
        check_count(per_class, "per_class", hint=" (samples of each class, --per-class)")
        if n is not None:
            raise AedynError("give --n (samples drawn at random) or --per-class (that many of each class), not both")
    if key is not None:
        if not isinstance(key, str) or not key:
            raise AedynError(f"--key must name an array inside a .npz file; got {key!r}")
        if path is None or _format(path) != "npz":
            raise AedynError(f"--key names an array inside a .npz file; {label} is not one: drop --key (key=None)")
    if kind == "sphere":
        if n is None or d is None:
            raise AedynError("the sphere source needs both n and d (e.g. --n 32 --d 8)")
    elif kind == "digits":
        if d is not None and d != 64:
            raise AedynError(f"digits are 8x8 images, so d = 64; got d = {d}: drop --d")
        chosen = None if classes is None else _digit_classes(classes)
        if n is not None:
            _check_fits(n, _digit_total(chosen), _digits_label(chosen))
        if per_class is not None:
            smallest = min(DIGIT_COUNTS[c] for c in (range(10) if chosen is None else chosen))
            _check_fits(per_class, smallest, "the smallest digit class")
    elif kind == "file":
        assert path is not None
        header = _stored_header(path, key)
        if header is not None:
            rows, cols = _matrix_shape(header.shape, header.dtype, label)
            _check_columns(cols, d, label)
            if n is not None:
                _check_fits(n, rows, label)
    elif n is not None or d is not None:
        raise AedynError("n and d select samples of a named source; slice an in-memory array yourself")


def data_memory(n: int, d: int) -> int:
    """Bytes :func:`load_data` holds for ``n x d`` data at its peak: the raw array, its float64
    copy, the unit rows, the parallel-row check's unit rows and its :data:`PARALLEL_CAP`, and the
    returned tensor."""
    return 5 * n * d * 8 + PARALLEL_CAP


def expected_shape(source: str | Path | Any, *, n: int | None = None, d: int | None = None,
                   classes: Sequence[int] | None = None, key: str | None = None,
                   per_class: int | None = None) -> tuple[int, int] | None:
    """The ``(rows, columns)`` that :func:`load_data` will return for these options, or ``None``
    where that is not cheap to know (``.csv``, IDX files and in-memory data).

    Nothing is loaded: ``sphere`` gives ``(n, d)``, ``digits`` ``(n or the samples of the chosen
    classes, 64)``, a ``.npy`` file or the array of a ``.npz`` archive its header's rows (or
    ``n``) and the product of its other dimensions. The options are checked with
    :func:`check_source` first.
    """
    check_source(source, n=n, d=d, classes=classes, key=key, per_class=per_class)
    kind, path = _source_kind(source)
    if kind == "sphere":
        assert n is not None and d is not None
        return (int(n), int(d))
    if kind == "digits":
        chosen = None if classes is None else _digit_classes(classes)
        if per_class is not None:
            return (int(per_class) * (10 if chosen is None else len(chosen)), 64)
        return (_digit_total(chosen) if n is None else int(n), 64)
    header = None if path is None else _stored_header(path, key)
    if header is not None:
        rows, cols = _matrix_shape(header.shape, header.dtype, _label(path))  # type: ignore[arg-type]
        return (rows if n is None else int(n), cols)
    return None


def load_data(source: str | Path | Any = "digits", *, n: int | None = None, d: int | None = None, seed: int = 0,
              classes: Sequence[int] | None = None, key: str | None = None, normalize: bool = True,
              dtype: str | torch.dtype = torch.float64, device: str | torch.device = "cpu",
              per_class: int | None = None) -> torch.Tensor:
    """Load and validate a data matrix.

    ``source`` is ``"sphere"`` (needs ``n`` and ``d``), ``"digits"`` (optional ``n`` or
    ``per_class``, ``classes``),
    a file path (optional ``n`` draws a seeded random subset of rows; ``key`` for ``.npz``), or an
    array/tensor already in memory. The options are checked first by :func:`check_source`. A
    ``.npy`` file is memory-mapped and a ``.npz`` array streamed, so ``n`` rows of a huge file are
    read without holding the rest; rows that would not fit in the memory available are refused
    before they are read. The result is always an ordinary in-memory tensor. Every source goes
    through :func:`validate`.
    """
    check_source(source, n=n, d=d, seed=seed, classes=classes, key=key, per_class=per_class)
    kind, path = _source_kind(source)
    label = "data" if path is None else _label(path)
    if kind in SOURCES:
        label = kind
    with _memory_guard(label):
        if kind == "sphere":
            assert n is not None and d is not None
            raw: Any = sphere(n, d, seed=seed)
        elif kind == "digits":
            raw = digits(n, seed=seed, classes=classes, per_class=per_class)
        elif kind == "file":
            assert path is not None
            raw = _load_file(path, key=key, n=n, d=d, seed=seed)
        else:
            raw = source
        return validate(raw, normalize=normalize, dtype=dtype, device=device, name=label)


# ----------------------------------------------------------------------------------------------
# sources and options


def _source_kind(source: Any) -> tuple[str, Path | None]:
    """``("sphere" | "digits", None)``, ``("file", path)`` after the path checks, or ``("data", None)``."""
    if isinstance(source, str) and source in SOURCES:
        return source, None
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, bytes) or not text.strip():
            raise AedynError(f"data source {source!r} is not a name or a path; use sphere, digits or a path "
                             "to a .npy/.npz/.csv/IDX file")
        path = Path(text)
        if (isinstance(source, str) and not path.exists() and "." not in path.name
                and "/" not in text and os.sep not in text):
            raise AedynError(f"unknown data source {source!r}; use sphere, digits or a path to a "
                             ".npy/.npz/.csv/IDX file")
        _check_path(path)
        return "file", path
    return "data", None


def _check_path(path: Path) -> None:
    """A path names an existing, regular, readable file with a known suffix."""
    shown = repr(str(path))
    try:
        if path.is_symlink() and not path.exists():
            raise AedynError(f"data file {shown} is a broken or looping symbolic link; check where it points")
        if not path.exists():
            raise AedynError(f"data file {shown} does not exist; check the path or use --data sphere|digits")
        if path.is_dir():
            raise AedynError(f"{shown} is a folder, not a data file; name a .npy, .npz, .csv or IDX file")
        if not path.is_file():
            raise AedynError(f"{shown} is not a regular file; name a .npy, .npz, .csv or IDX file")
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    if _format(path) is None:
        raise AedynError(f"cannot tell the format of {shown}; use a file ending in "
                         ".npy, .npz, .csv, -ubyte or -ubyte.gz")
    if not os.access(path, os.R_OK):
        raise AedynError(f"cannot read {shown}: permission denied; make the file readable (chmod u+r)")


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")):
        return "idx"
    return None


def _digit_classes(classes: Any) -> list[int]:
    """``classes`` as a sorted list of distinct digits 0..9; empty, non-integer, out of range refused."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise AedynError(f"--classes must be a list of digits 0..9, e.g. [0, 1]; got {classes!r}")
    values = [check_int(c, "each --classes entry", hint=" (digit labels are 0..9)") for c in classes]
    if not values:
        raise AedynError("--classes is empty; name at least one digit 0..9 or drop --classes (classes=None)")
    bad = sorted({c for c in values if not 0 <= c <= 9})
    if bad:
        raise AedynError(f"digit classes must be in 0..9; got {bad}; fix --classes")
    return sorted(set(values))


def _digit_total(chosen: list[int] | None) -> int:
    return sum(DIGIT_COUNTS) if chosen is None else sum(DIGIT_COUNTS[c] for c in chosen)


def _digits_label(chosen: list[int] | None) -> str:
    return "digits" + (f" of classes {chosen}" if chosen else "")


def _check_fits(n: int, total: int, what: str) -> None:
    if total == 0:
        raise AedynError(f"{what} holds no samples; name another file")
    if n > total:
        raise AedynError(f"n = {n} but {what} has only {total} samples; pass --n {total} or fewer")


def _check_columns(cols: int, d: int | None, label: str) -> None:
    if d is not None and cols != d:
        raise AedynError(f"{label} has d = {cols} columns but d = {d} was asked for; drop --d")


def _subsample_index(total: int, n: int | None, seed: int, *, what: str) -> np.ndarray:
    if total == 0:
        raise AedynError(f"{what} holds no samples; name another file")
    if n is None:
        return np.arange(total)
    n = check_count(n, "n", hint=" (the number of samples, --n)")
    _check_fits(n, total, what)
    return np.sort(numpy_generator(seed, "data").choice(total, size=n, replace=False))


def _matrix_shape(shape: tuple[int, ...], dtype: np.dtype, label: str) -> tuple[int, int]:
    """``(rows, columns)`` of an array of ``shape`` read as one sample per leading index; checks
    that its ``dtype`` is numeric."""
    if dtype.kind not in "biuf":
        what = "complex numbers" if dtype.kind == "c" else f"values of dtype {dtype}"
        raise AedynError(f"{label} holds {what}, not real numbers; save a real numeric array")
    if len(shape) < 2:
        got = "a single number" if not shape else f"a 1-D array of {shape[0]} values"
        raise AedynError(f"{label} holds {got}; data must be 2-D (n samples x d features): save it reshaped "
                         "to (-1, 1) for d = 1 or (1, -1) for one sample")
    return int(shape[0]), int(math.prod(shape[1:]))


def _load_file(path: Path, *, key: str | None, n: int | None, d: int | None, seed: int) -> np.ndarray:
    """The rows of a data file as an in-memory ``rows x columns`` array (a seeded subset when ``n``).
    A ``.npy`` or ``.npz`` array is judged by its header first: only the rows asked for are read
    (memory-mapped, or streamed from the archive), after checking that they fit in memory."""
    label = _label(path)
    header = _stored_header(path, key)
    if header is None:
        arr = _open_file(path, key)
        rows, cols = _matrix_shape(arr.shape, arr.dtype, label)
        _check_columns(cols, d, label)
        if n is not None:
            arr = arr[_subsample_index(rows, n, seed, what=label)]
        return arr.reshape(arr.shape[0], cols)
    rows, cols = _matrix_shape(header.shape, header.dtype, label)
    _check_columns(cols, d, label)
    pick = None if n is None else _subsample_index(rows, n, seed, what=label)
    shape = (rows if pick is None else len(pick), cols)
    if _format(path) == "npz":
        return _read_npz(path, key, pick).reshape(shape)
    _check_room(shape, header.dtype, label)
    arr = _read_npy(path)
    arr = arr if pick is None else arr[pick]  # fancy indexing reads only those rows
    return np.array(arr).reshape(shape)  # an ordinary in-memory copy; the file is read here


# ----------------------------------------------------------------------------------------------
# file readers: each returns the stored array (a memory map for .npy) or raises one AedynError line


def _open_file(path: Path, key: str | None) -> np.ndarray:
    _check_not_empty(path)
    fmt = _format(path)
    if fmt == "npy":
        return _read_npy(path)
    if fmt == "npz":
        return _read_npz(path, key)
    if fmt == "csv":
        return _read_csv(path)
    return _read_idx(path)


def _check_not_empty(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    if size == 0:
        raise AedynError(f"{_label(path)} is empty (0 bytes); write the data to it again or name another file")


def _check_room(shape: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    """Refuse to read an array of ``shape`` and ``dtype`` that would not fit in the memory available
    now (a :class:`MemoryRefusal`, before anything is allocated)."""
    need = math.prod(shape) * dtype.itemsize
    room = available_memory("cpu")
    if room is not None and need > room:
        size = " x ".join(map(str, shape)) or "1"
        raise MemoryRefusal(f"{what} is too large for memory: {size} values of {dtype} take "
                            f"{format_bytes(need)} and {format_bytes(room)} is available; draw a subset with --n "
                            "(n=...), which reads only those rows, or free memory")


class _Header(NamedTuple):
    """What a ``.npy`` header says (of a file, or of an array in a ``.npz`` archive)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _parse_header(fh: IO[bytes], what: str) -> _Header:
    """The ``.npy`` header at ``fh``'s position (only the header is read; a damaged one raises the
    parser's exception). An array of Python objects is refused here, by name: aedyn never
    unpickles."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:  # 3.0: numpy writes it only for structured dtypes whose field names are not Latin-1
        raise AedynError(f"{what} is a structured array (.npy format {version[0]}.{version[1]}), not real numbers; "
                         "save a real numeric array")
    if dtype.hasobject:
        raise AedynError(f"{what} holds Python objects (dtype object), not numbers; aedyn reads numeric arrays only "
                         "and never unpickles: save an array of numbers with numpy.save")
    return _Header(tuple(int(k) for k in shape), dtype, bool(fortran))


def _stored_header(path: Path, key: str | None) -> _Header | None:
    """The header of a ``.npy`` file or of the array ``key`` of a ``.npz`` archive (nothing else is
    read); ``None`` for the other formats."""
    fmt = _format(path)
    if fmt not in ("npy", "npz"):
        return None
    _check_not_empty(path)
    if fmt == "npz":
        with _npz_member(path, key) as (_, _, header):
            return header
    label = _label(path)
    _check_npy_magic(path)
    try:
        with path.open("rb") as fh:
            return _parse_header(fh, label)
    except AedynError:
        raise
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    except Exception as exc:  # a damaged header fails anywhere in NumPy's parser (even tokenize errors)
        raise AedynError(f"{label} is truncated or corrupt ({_first_line(exc)}); save it again with "
                         "numpy.save") from None


def _head(path: Path, size: int = 8) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None


def _check_npy_magic(path: Path) -> None:
    label = _label(path)
    head = _head(path)
    if not head.startswith(_NPY_MAGIC):
        if head.startswith(_ZIP_MAGIC):
            raise AedynError(f"{label} is a .npz archive, not a .npy array; rename it to .npz")
        raise AedynError(f"{label} is not a .npy file (it does not start with the NumPy header); "
                         "save the array with numpy.save")


def _read_npy(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped read-only (nothing is read until indexed); its
    header is read first, so an array of Python objects is named as such."""
    label = _label(path)
    _stored_header(path, None)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except MemoryError:
        raise
    except OSError as exc:  # ENOMEM (no address space for the map: ulimit -v) is said as such
        raise AedynError(describe_os_error(exc, path, "read")) from None
    except Exception as exc:  # a damaged file fails anywhere in NumPy's parser or in mmap
        raise AedynError(f"{label} is truncated or corrupt ({_first_line(exc)}); save it again with "
                         "numpy.save") from None
    if not isinstance(arr, np.ndarray):
        raise AedynError(f"{label} is not a .npy array; save it with numpy.save")
    return arr


@contextmanager
def _npz_member(path: Path, key: str | None) -> Iterator[tuple[str, IO[bytes], _Header]]:
    """The array ``key`` of a ``.npz`` archive (``None``: its only one): its key, its stream just past
    its header, and the header. Only the archive's directory and that header are read."""
    label = _label(path)
    head = _head(path)
    if head.startswith(_NPY_MAGIC):
        raise AedynError(f"{label} is a .npy array, not a .npz archive; rename it to .npy")
    if not head.startswith(_ZIP_MAGIC):
        raise AedynError(f"{label} is not a .npz archive (not a zip file); save it with numpy.savez")
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, ...
        raise AedynError(f"{label} is a truncated or corrupt .npz archive ({_first_line(exc)}); "
                         "save it again with numpy.savez") from None
    with archive:
        members: dict[str, str] = {}  # key -> member, as numpy.load names them (".npy" dropped)
        for name in archive.namelist():
            members.setdefault(name.removesuffix(".npy"), name)
        keys = list(members)
        if not keys:
            raise AedynError(f"{label} holds no arrays; save the data into it with numpy.savez")
        if key is None:
            if len(keys) != 1:
                raise AedynError(f"{label} holds arrays {_listing(keys)}; name one with --key (key=...)")
            key = keys[0]
        if key not in members:
            raise AedynError(f"{label} has no array {key!r}; it holds {_listing(keys)}: pass one of them as --key")
        what = f"{label}[{key!r}]"
        if not members[key].endswith(".npy"):
            raise AedynError(f"{what} is not a NumPy array; save the archive with numpy.savez")
        with _npz_errors(path, what):
            fh = archive.open(members[key])
            header = _parse_header(fh, what)
        with fh:
            yield key, fh, header


@contextmanager
def _npz_errors(path: Path, what: str) -> Iterator[None]:
    """Reading an array of a ``.npz`` archive: every failure but memory is one line naming it."""
    try:
        yield
    except (AedynError, MemoryError):
        raise
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, ValueError, header parse errors
        raise AedynError(f"{what} cannot be read ({_first_line(exc)}); the archive is damaged: save it again "
                         "with numpy.savez") from None


_CHUNK = 4 * 2**20
"""Bytes of a ``.npz`` array decompressed at a time."""


def _read_npz(path: Path, key: str | None, rows: np.ndarray | None = None) -> np.ndarray:
    """The array ``key`` of a ``.npz`` archive in memory, decompressed a chunk at a time: all of it,
    after checking that it fits in the memory available; or, with ``rows`` (sorted indices of its
    leading dimension), only those rows as a ``len(rows) x columns`` matrix, streamed past the
    others (an array stored in Fortran order has no rows to stream: it is read whole)."""
    label = _label(path)
    with _npz_member(path, key) as (key, fh, header):
        what = f"{label}[{key!r}]"
        shape, dtype = header.shape, header.dtype
        cols = math.prod(shape[1:])
        with _npz_errors(path, what):
            if rows is not None and not header.fortran:
                return _stream_rows(fh, rows, cols, dtype, what)
            _check_room(shape, dtype, what)
            out = np.empty(math.prod(shape), dtype=dtype)
            _read_into(fh, out.view(np.uint8), what)
            fh.read(1)  # the end of the member, where its CRC is checked
        out = out.reshape(shape[::-1]).transpose() if header.fortran else out.reshape(shape)
        return out if rows is None else out[rows].reshape(len(rows), cols)


def _read_into(fh: IO[bytes], buffer: np.ndarray, what: str) -> None:
    """Fill the byte array ``buffer`` from ``fh``, a chunk at a time."""
    done, total = 0, buffer.size
    while done < total:
        chunk = fh.read(min(_CHUNK, total - done))
        if not chunk:
            raise EOFError(f"EOF after {done} of the {total} bytes of {what}")
        buffer[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)


def _stream_rows(fh: IO[bytes], rows: np.ndarray, cols: int, dtype: np.dtype, what: str) -> np.ndarray:
    """Rows ``rows`` (sorted) of the C-order ``? x cols`` array whose data ``fh`` is at the start of,
    read in blocks of about :data:`_CHUNK` bytes of which only those rows are kept."""
    _check_room((len(rows), cols), dtype, what)
    out = np.empty((len(rows), cols), dtype=dtype)
    row_bytes = cols * dtype.itemsize
    block = max(1, _CHUNK // max(row_bytes, 1))
    last = int(rows[-1]) + 1 if len(rows) else 0
    buffer = np.empty(min(block, last) * row_bytes, dtype=np.uint8)
    for start in range(0, last, block):
        stop = min(start + block, last)
        part = buffer[:(stop - start) * row_bytes]
        _read_into(fh, part, what)
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            out[lo:hi] = part.view(dtype).reshape(stop - start, cols)[rows[lo:hi] - start]
    return out


def _read_csv(path: Path) -> np.ndarray:
    """Numbers only, one sample per row, comma-separated, UTF-8 (a BOM is fine). The first non-empty
    row is a header, skipped with a note, only when none of its fields is a number; values are
    parsed into a compact float64 buffer (8 bytes a value)."""
    label = _label(path)
    values = array("d")
    ncol = first_line = 0
    rows = records = 0
    header = False
    lineno = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for record in reader:
                lineno = reader.line_num
                if not record or all(not c.strip() for c in record):
                    continue  # a blank line is no sample
                records += 1
                if rows and len(record) != ncol:
                    raise AedynError(f"{label} has rows of different lengths: line {lineno} has {len(record)} "
                                     f"values but line {first_line} has {ncol}; every row needs d values")
                try:
                    values.extend(map(float, record))
                except ValueError:
                    del values[rows * ncol:]
                    if records == 1 and not any(_is_number(c) for c in record):
                        header = True
                        if not any("\x00" in c for c in record):
                            warnings.warn(AedynWarning(f"{label}: skipped header line {lineno} "
                                                       f"{_short(','.join(record))}"), stacklevel=4)
                            continue
                    raise _csv_cell_error(label, lineno, record, records == 1) from None
                if not rows:
                    ncol, first_line = len(record), lineno
                rows += 1
    except UnicodeDecodeError:
        line, byte = _first_non_utf8(path)
        raise AedynError(f"{label} is not UTF-8 text (byte 0x{byte:02x} on line {line}); save it as a UTF-8 "
                         "comma-separated file") from None
    except csv.Error as exc:
        raise AedynError(f"{label} line {lineno + 1} cannot be parsed as CSV ({_first_line(exc)}); save the "
                         "data as comma-separated numbers") from None
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    if not rows:
        what = "only a header line" if header else "no data rows"
        raise AedynError(f"{label} holds {what}; the CSV needs one sample per row")
    return np.frombuffer(values, dtype=np.float64).reshape(rows, ncol)


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """Line number and value of the first byte that is not UTF-8, read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:  # exc.object: a partial character (no newline) + chunk
                    return line + exc.object.count(b"\n", 0, exc.start), exc.object[exc.start]
                line += chunk.count(b"\n")
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    return line, 0


def _csv_cell_error(label: str, lineno: int, record: list[str], first: bool) -> AedynError:
    if any("\x00" in c for c in record):
        return AedynError(f"{label} line {lineno} holds a NUL byte: it looks like a binary file, not CSV text; "
                          "save the data as comma-separated numbers")
    col = next(j for j, c in enumerate(record, start=1) if not _is_number(c))
    cell = record[col - 1]
    what = "is empty" if not cell.strip() else f"is not a number ({_short(cell)})"
    if first:
        return AedynError(f"{label} line {lineno} column {col} {what} but other cells of that first row are "
                          "numbers: a header row must hold no numbers at all; fix or remove that row")
    hint = "; separate values with commas" if any(s in cell.strip() for s in (";", "\t", " ")) else ""
    return AedynError(f"{label} line {lineno} column {col} {what}; the CSV must hold numbers only, one sample "
                      f"per row (one header line is allowed){hint}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file as ``samples x features`` in its stored dtype (flattened images)."""
    label = _label(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise AedynError(f"{label} is a damaged gzip file ({_first_line(exc)}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise AedynError(f"{label} is not an IDX file (bad magic number); MNIST files look like "
                         "train-images-idx3-ubyte[.gz]")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise AedynError(f"{label} is truncated or corrupt: its header declares {ndim} dimensions in "
                         f"{len(raw)} bytes; download it again")
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    if ndim == 1:
        other = path.name.replace("labels", "images").replace("idx1", "idx3")
        hint = f" ({_short(other)})" if other != path.name else ""
        raise AedynError(f"{label} is a 1-D IDX file of {dims[0]} values, i.e. a labels file; load the matching "
                         f"images file{hint} instead")
    if dims[0] == 0:
        raise AedynError(f"{label} holds no samples (header shape {dims}); download it again or name another file")
    if 0 in dims:
        raise AedynError(f"{label} holds samples of zero size (header shape {dims}); download it again or name "
                         "another file")
    dt = np.dtype(_IDX_TYPES[raw[2]])
    count = math.prod(dims)
    if len(raw) - header != count * dt.itemsize:
        raise AedynError(f"{label} is truncated or corrupt: header says {dims} but it holds "
                         f"{len(raw) - header} bytes of data; download it again")
    return np.frombuffer(raw, dtype=dt, offset=header, count=count).reshape(dims[0], -1)


# ----------------------------------------------------------------------------------------------
# parallel rows


def _unit_rows(X: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm as ``(x / s) / ||x / s||``, ``s = max_j |x_j|`` (no over/underflow)."""
    Y = X / X.abs().amax(dim=1, keepdim=True)
    return Y.div_(Y.norm(dim=1, keepdim=True))


_PROJECTIONS = 4
"""Fixed random directions of the parallel-row check: one to sort by, the rest to filter."""

Pair = tuple[int, int, float]


def _parallel_pairs(X: torch.Tensor, *, cap: int = PARALLEL_CAP,
                    budget: int = PARALLEL_BUDGET) -> tuple[int, Pair | None, bool]:
    """The number of pairs ``i < j`` with ``|cos(x_i, x_j)| > 1 - PARALLEL_TOL`` and the
    lexicographically smallest such pair ``(i, j, cos)``; exact, in memory ``O(n d)`` plus ``cap``.

    Rows are scaled to unit vectors ``u``; for a fixed unit vector ``r``, ``q(u) = |u . r|``.
    If ``u . v > 1 - tol`` then ``||u - v||^2 = 2 - 2 u . v < 2 tol``; if ``u . v < -(1 - tol)``
    then ``||u + v||^2 < 2 tol``. Since ``| |a| - |b| | <= min(|a - b|, |a + b|)``,
    ``|q(u) - q(v)| <= min(|(u - v) . r|, |(u + v) . r|) <= min(||u - v||, ||u + v||) < sqrt(2 tol)``.
    Rounding (unit norms, dot products and projections are off by at most ``~(d + 2) eps``) is
    covered by the slack ``s = 8 (d + 2) eps``: every parallel pair has ``|q(u) - q(v)| <= w`` with
    ``w = sqrt(2 (tol + s)) + s``, for every fixed ``r``.

    So the rows are sorted by ``q`` for one direction ``r_0``; the partners of sorted row ``a``
    among later rows lie among ``a + 1, ..., a + span_a``, the rows whose ``q`` is at most ``w``
    larger. Those candidate pairs are visited offset by offset (for ``k = 1, 2, ...`` every row
    with ``span_a >= k`` against row ``a + k``), in chunks of at most ``cap / 64`` pairs. A pair is
    dropped as soon as its ``q`` differ by more than ``w`` for one of ``_PROJECTIONS - 1`` further
    fixed directions (a necessary condition, as shown), and the dot product is computed only for
    the pairs left, ``cap / (16 d + 64)`` at a time (their two gathered rows).

    Rows that are bitwise equal up to sign have equal ``q``; when more than 1% of the sorted
    ``q`` repeat, such rows are grouped first (a sort of the rows' bytes) and only one row of each
    group is scanned: a group of ``c`` rows adds ``c (c - 1) / 2`` pairs, a parallel pair of
    groups ``c_A c_B`` pairs, and the smallest pair of two groups is that of their smallest
    indices, so counts and first pair stay exact. This keeps ``d = 1`` data or data with many
    duplicate rows fast.

    Memory: the unit rows, a few length-``n`` vectors and ``cap`` (the loop is single-threaded
    NumPy, so a busy machine does not stall it). Time: ``O(n log n + n d)`` plus ``O(1)`` per
    candidate pair plus ``O(d)`` per surviving pair, in ``max span`` rounds: fast unless many
    distinct rows are nearly parallel, quadratic (still bounded in memory) when all of them are.
    """
    n, d = X.shape
    if n < 2:
        return 0, None, True
    U = _unit_rows(X.detach().to(device="cpu", dtype=torch.float64)).numpy()
    R = np.random.default_rng(0x5EED_CAFE).standard_normal((d, _PROJECTIONS))
    Q = np.abs(U @ (R / np.linalg.norm(R, axis=0)))
    q0 = np.sort(Q[:, 0])
    repeats = int(np.count_nonzero(q0[1:] == q0[:-1]))
    del q0
    if repeats * 100 <= n:
        return _window_scan(U, Q, np.arange(n), None, cap=cap, budget=budget)
    # group rows equal up to sign: flip each so its first nonzero entry is positive (+ 0.0 turns -0.0 into 0.0)
    first = np.argmax(U != 0, axis=1)
    sign = np.sign(U[np.arange(n), first])
    keys = np.ascontiguousarray(U * sign[:, None] + 0.0).view(np.dtype((np.void, 8 * d))).ravel()
    by_key = np.argsort(keys, kind="stable")  # within a group, indices ascend
    keys = keys[by_key]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    del keys
    sizes = np.diff(np.r_[starts, n])
    heads = by_key[starts]  # the smallest index of each group
    count = int((sizes * (sizes - 1) // 2).sum())
    best: tuple[int, int, int, float] | None = None
    multi = np.flatnonzero(sizes > 1)
    if len(multi):
        pairs = np.stack([heads[multi], by_key[starts[multi] + 1]], axis=1)
        g = int(np.argmin(pairs[:, 0] * n + pairs[:, 1]))
        i, j = int(pairs[g, 0]), int(pairs[g, 1])
        best = (i * n + j, i, j, float(U[i] @ U[j]))
    del by_key
    order = np.argsort(heads)
    heads, sizes = heads[order], sizes[order]
    cross, first_cross, complete = _window_scan(U[heads], Q[heads], heads, sizes, cap=cap, budget=budget)
    count += cross
    if first_cross is not None and (best is None or first_cross[0] * n + first_cross[1] < best[0]):
        return count, first_cross, complete
    return count, None if best is None else best[1:], complete


def _window_scan(U: np.ndarray, Q: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, *,
                 cap: int, budget: int) -> tuple[int, Pair | None, bool]:
    """The sorted-window scan of :func:`_parallel_pairs` over unit rows ``U`` with projections
    ``Q``; row ``t`` is reported as index ``labels[t]`` and stands for ``weights[t]`` rows. When
    the windows hold more than ``budget`` candidate pairs, each is cut to its nearest
    ``budget / m`` rows and the scan reports itself incomplete."""
    m, d = U.shape
    if m < 2:
        return 0, None, True
    total = int(labels.max()) + 1
    eps = float(np.finfo(np.float64).eps)
    slack = 8 * (d + 2) * eps
    w = math.sqrt(2 * (PARALLEL_TOL + slack)) + slack
    order = np.argsort(Q[:, 0], kind="stable")
    q = Q[order, 0]
    span = np.searchsorted(q, q + w, side="right") - np.arange(1, m + 1)  # candidates a+1 .. a+span[a]
    complete = int(span.sum()) <= budget
    if not complete:
        span = np.minimum(span, max(1, budget // m))
    filters = Q[order, 1:].T.copy()  # one contiguous row per further direction, in sorted order
    del q
    thresh = 1 - PARALLEL_TOL
    chunk = max(1, cap // 64)  # pairs filtered at once: indices, gathered projections, masks
    dot_chunk = max(1, cap // (16 * d + 64))  # pairs whose two rows are gathered at once
    count = 0
    best: tuple[int, int, int, float] | None = None  # (code = i * total + j, i, j, cos)
    active = np.flatnonzero(span > 0)
    k = 1
    while len(active):
        for s in range(0, len(active), chunk):
            a = active[s:s + chunk]
            b = a + k
            for f in filters:
                near = np.abs(f.take(a) - f.take(b)) <= w
                a, b = a[near], b[near]
            for t in range(0, len(a), dot_chunk):
                oi, oj = order[a[t:t + dot_chunk]], order[b[t:t + dot_chunk]]
                cos = np.einsum("ij,ij->i", U.take(oi, axis=0), U.take(oj, axis=0))
                hit = np.flatnonzero(np.abs(cos) > thresh)
                if not len(hit):
                    continue
                oi, oj = oi[hit], oj[hit]
                count += len(hit) if weights is None else int(weights[oi] @ weights[oj])
                li, lj = labels[oi], labels[oj]
                lo, hi = np.minimum(li, lj), np.maximum(li, lj)
                g = int(np.argmin(lo * total + hi))
                code = int(lo[g]) * total + int(hi[g])
                if best is None or code < best[0]:
                    best = (code, int(lo[g]), int(hi[g]), float(cos[hit[g]]))
        active = active[span[active] > k]
        k += 1
    return count, None if best is None else best[1:], complete


def _warn_parallel(X: torch.Tensor, name: str, *, cap: int = PARALLEL_CAP, budget: int = PARALLEL_BUDGET) -> None:
    """Warn about pairs ``i < j`` with ``|cos(x_i, x_j)| > 1 - PARALLEL_TOL`` (see
    :func:`_parallel_pairs`: exact, memory ``O(n d)`` plus ``cap`` bytes for any ``n``, and at most
    ``budget`` candidate pairs, saying so when that cut the check short)."""
    count, first, complete = _parallel_pairs(X, cap=cap, budget=budget)
    if first is not None:
        i, j, c = first
        why = ("identical up to scale: the encoder kernel is then singular (lambda_0 = 0)" if c > 0 else
               "antiparallel: the analysis (Du et al. 2019, Thm 3.1) assumes no two samples are parallel")
        found = f"{count} such pair(s)" if complete else f"at least {count} such pair(s)"
        warnings.warn(AedynWarning(
            f"{name} rows {i} and {j} are {why}, so the paper's guarantees do not apply (cos = {c:+.12f}; "
            f"{found}); remove one of each pair to restore them"), stacklevel=3)
    elif not complete:
        warnings.warn(AedynWarning(
            f"{name}: the parallel-row check was cut short (the rows are so nearly collinear that more than "
            f"{budget:.0e} pairs were candidates) and found none among the nearest; parallel rows may remain"),
            stacklevel=3)


# ----------------------------------------------------------------------------------------------
# messages


@contextmanager
def _memory_guard(what: str) -> Iterator[None]:
    """Turn an allocation failure (NumPy ``MemoryError``, torch allocator errors) into one line."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        where = "GPU memory" if "CUDA" in str(exc) or type(exc).__name__ == "OutOfMemoryError" else "memory"
        fix = "use --device cpu" if where == "GPU memory" else "free memory"
        raise AedynError(f"{what} is too large for {where}; draw a subset with --n (n=...) or {fix}") from None


def _label(path: Path) -> str:
    name = path.name
    return name if name.isprintable() and name else repr(str(path))


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _listing(keys: list[str], limit: int = 10) -> str:
    return str(keys) if len(keys) <= limit else f"{keys[:limit]} and {len(keys) - limit} more"


def _first_line(exc: BaseException) -> str:
    """:func:`aedyn.errors.first_line`, except that a parser's internal error is called a damaged header."""
    if not isinstance(exc, (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error, csv.Error)):
        return f"damaged header: {type(exc).__name__}"
    return first_line(exc)
