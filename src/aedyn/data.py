"""Data: where samples come from, and the one path that validates them.

``X`` is ``n x d``, one sample per row. The theory assumes ``||x_i|| = 1``; :func:`validate`
normalises rows by default (and warns that it did), refuses empty, non-2-D, non-finite and zero
rows, and warns when two rows are parallel (``|cos| > 1 - 1e-9``), because the encoder kernel is
then singular (``lambda_0 = 0``; Du et al. 2019, Thm 3.1).

Sources: ``sphere`` (uniform on the unit sphere), ``digits`` (scikit-learn's bundled 8x8 digits,
``d = 64``) and files (``.npy``, ``.npz`` with a key, ``.csv``, MNIST IDX ``*-ubyte[.gz]``).
"""

from __future__ import annotations

import csv
import gzip
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aedyn._seed import numpy_generator, torch_generator
from aedyn._tensor import as_tensor, resolve_device, resolve_dtype
from aedyn.errors import AedynError, AedynWarning

PARALLEL_TOL = 1e-9
"""Rows with ``|cos| > 1 - PARALLEL_TOL`` count as parallel."""

NORM_TOL = 1e-10
"""Rows whose norm differs from 1 by more than this are not unit rows."""

SOURCES = ("sphere", "digits")
FILE_SUFFIXES = (".npy", ".npz", ".csv", "-ubyte", "-ubyte.gz", ".idx", ".idx.gz")


def sphere(n: int, d: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` points uniform on the unit sphere ``S^{d-1}`` (normalised Gaussians), float64."""
    _check_count(n, "n", "number of samples")
    _check_count(d, "d", "input dimension")
    X = torch.randn(n, d, generator=torch_generator(seed, "data"), dtype=torch.float64)
    return X / X.norm(dim=1, keepdim=True)


def digits(n: int | None = None, *, seed: int = 0, classes: Sequence[int] | None = None,
           return_labels: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, ``d = 64``), not normalised.

    ``classes`` keeps only those digit labels; ``n`` draws that many samples at random (seeded)
    without replacement; ``None`` keeps all, in their stored order.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    if classes is not None:
        classes = sorted({int(c) for c in classes})
        bad = [c for c in classes if not 0 <= c <= 9]
        if bad:
            raise AedynError(f"digit classes must be in 0..9; got {bad}; fix --classes")
        keep = np.isin(y, classes)
        X, y = X[keep], y[keep]
    idx = _subsample_index(len(X), n, seed, what="digits" + (f" of classes {classes}" if classes else ""))
    X_t, y_t = torch.from_numpy(X[idx]), torch.from_numpy(y[idx])
    return (X_t, y_t) if return_labels else X_t


def read_file(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Read a data matrix from ``.npy``, ``.npz`` (``key`` names the array; optional if only one),
    ``.csv`` (numbers only, one sample per row, one header line allowed) or MNIST IDX
    (``*-ubyte``, ``*.idx``, gzipped or not; images are flattened to rows)."""
    path = Path(path)
    if not path.exists():
        raise AedynError(f"data file {str(path)!r} does not exist; check the path or use --data sphere|digits")
    if path.is_dir():
        raise AedynError(f"{str(path)!r} is a folder, not a data file; name a .npy, .npz, .csv or IDX file")
    name = path.name.lower()
    if name.endswith(".npy"):
        return _read_npy(path)
    if name.endswith(".npz"):
        return _read_npz(path, key)
    if name.endswith(".csv"):
        return _read_csv(path)
    if name.endswith(("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")):
        return _read_idx(path)
    raise AedynError(f"cannot tell the format of {str(path)!r}; use a file ending in "
                     ".npy, .npz, .csv, -ubyte or -ubyte.gz")


def validate(X: Any, *, normalize: bool = True, dtype: str | torch.dtype = torch.float64,
             device: str | torch.device = "cpu", name: str = "data") -> torch.Tensor:
    """The one validation path for every data source.

    Checks that ``X`` is numeric, 2-D, non-empty and finite with no zero row. Rows are scaled to
    unit norm when ``normalize`` (an :class:`AedynWarning` says how many were changed); with
    ``normalize=False`` a non-unit row is an error. Warns when two rows are parallel.
    Returns a tensor of the requested dtype on the requested device.
    """
    dtype = resolve_dtype(dtype)
    X = as_tensor(X, dtype=torch.float64, name=name).detach().cpu()
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
    norms = X.norm(dim=1)
    zero = norms == 0
    if bool(zero.any()):
        i = int(zero.nonzero()[0])
        raise AedynError(f"{name} row {i} is all zeros ({int(zero.sum())} zero row(s) in all); a zero row "
                         "cannot lie on the unit sphere: drop it")
    off = (norms - 1).abs() > NORM_TOL
    if bool(off.any()):
        if not normalize:
            i = int(off.nonzero()[0])
            raise AedynError(f"{name} row {i} has norm {float(norms[i]):.6g}, not 1 ({int(off.sum())} such rows); "
                             "normalise the rows yourself or drop --no-normalize (normalize=False)")
        X = X / norms[:, None]
        warnings.warn(AedynWarning(f"normalised {int(off.sum())} of {n} rows to unit norm (the theory assumes "
                                   "||x_i|| = 1); pass --no-normalize (normalize=False) to refuse such data instead"),
                      stacklevel=2)
    _warn_parallel(X, name)
    return X.to(device=resolve_device(device), dtype=dtype)


def load_data(source: str | Path | Any = "digits", *, n: int | None = None, d: int | None = None, seed: int = 0,
              classes: Sequence[int] | None = None, key: str | None = None, normalize: bool = True,
              dtype: str | torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Load and validate a data matrix.

    ``source`` is ``"sphere"`` (needs ``n`` and ``d``), ``"digits"`` (optional ``n``, ``classes``),
    a file path (optional ``n`` draws a seeded random subset of rows; ``key`` for ``.npz``), or an
    array/tensor already in memory. Every source goes through :func:`validate`.
    """
    if isinstance(source, str) and source == "sphere":
        if n is None or d is None:
            raise AedynError("the sphere source needs both n and d (e.g. --n 32 --d 8)")
        raw: Any = sphere(n, d, seed=seed)
        label = "sphere"
    elif isinstance(source, str) and source == "digits":
        if d is not None and d != 64:
            raise AedynError(f"digits are 8x8 images, so d = 64; got d = {d}: drop --d")
        raw = digits(n, seed=seed, classes=classes)
        label = "digits"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists() and isinstance(source, str) and "." not in path.name and "/" not in source:
            raise AedynError(f"unknown data source {source!r}; use sphere, digits or a path to a "
                             ".npy/.npz/.csv/IDX file")
        arr = read_file(path, key=key)
        if arr.ndim > 2:
            arr = arr.reshape(arr.shape[0], -1)
        if d is not None and arr.ndim == 2 and arr.shape[1] != d:
            raise AedynError(f"{path.name} has d = {arr.shape[1]} columns but d = {d} was asked for; drop --d")
        if n is not None and arr.ndim == 2:
            arr = arr[_subsample_index(arr.shape[0], n, seed, what=path.name)]
        raw, label = arr, path.name
    else:
        raw, label = source, "data"
        if n is not None or d is not None:
            raise AedynError("n and d select samples of a named source; slice an in-memory array yourself")
    return validate(raw, normalize=normalize, dtype=dtype, device=device, name=label)


# ----------------------------------------------------------------------------------------------
# helpers


def _check_count(value: Any, flag: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AedynError(f"{flag} ({what}) must be a positive integer; got {value!r}")


def _subsample_index(total: int, n: int | None, seed: int, *, what: str) -> np.ndarray:
    if total == 0:
        raise AedynError(f"{what} holds no samples; choose other classes or another file")
    if n is None:
        return np.arange(total)
    _check_count(n, "n", "number of samples")
    if n > total:
        raise AedynError(f"n = {n} but {what} has only {total} samples; pass --n {total} or fewer")
    return np.sort(numpy_generator(seed, "data").choice(total, size=n, replace=False))


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AedynError(f"{path.name} is not a readable .npy array ({_first_line(exc)}); "
                         "save it with numpy.save") from None


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AedynError(f"{path.name} is not a readable .npz archive ({_first_line(exc)}); "
                         "save it with numpy.savez") from None
    with archive:
        keys = list(archive.files)
        if key is None:
            if len(keys) != 1:
                raise AedynError(f"{path.name} holds arrays {keys}; name one with --key (key=...)")
            key = keys[0]
        if key not in keys:
            raise AedynError(f"{path.name} has no array {key!r}; it holds {keys}: pass one of them as --key")
        try:
            return archive[key]
        except ValueError as exc:
            raise AedynError(f"{path.name}[{key!r}] cannot be read ({_first_line(exc)})") from None


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    with path.open(newline="") as fh:
        for lineno, record in enumerate(csv.reader(fh), start=1):
            if not record or all(not c.strip() for c in record):
                continue
            try:
                rows.append([float(c) for c in record])
            except ValueError:
                if lineno == 1 and not rows:
                    continue  # a header line
                col = next(j for j, c in enumerate(record, start=1) if not _is_number(c))
                raise AedynError(f"{path.name} line {lineno} column {col} is not a number "
                                 f"({record[col - 1]!r}); the CSV must hold numbers only, one sample per row "
                                 "(one header line is allowed)") from None
    if rows:
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise AedynError(f"{path.name} has rows of different lengths {sorted(widths)}; every row needs d values")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1 if rows else 0)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise AedynError(f"{path.name} is a damaged gzip file ({_first_line(exc)}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise AedynError(f"{path.name} is not an IDX file (bad magic number); MNIST files look like "
                         "train-images-idx3-ubyte[.gz]")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    dt = np.dtype(_IDX_TYPES[raw[2]])
    expected = math.prod(dims) * dt.itemsize
    if ndim == 0 or len(raw) - header != expected:
        raise AedynError(f"{path.name} is truncated or corrupt: header says {dims} but it holds "
                         f"{len(raw) - header} bytes of data; download it again")
    arr = np.frombuffer(raw, dtype=dt, offset=header).reshape(dims).astype(np.float64)
    return arr.reshape(dims[0], -1) if ndim > 1 else arr.reshape(-1, 1)


def _warn_parallel(X: torch.Tensor, name: str, chunk: int = 4096) -> None:
    """Warn about pairs ``i < j`` with ``|cos(x_i, x_j)| > 1 - PARALLEL_TOL`` (X has unit rows or is
    normalised here), in row blocks so memory stays ``O(chunk * n)``."""
    n = X.shape[0]
    if n < 2:
        return
    Xn = X / X.norm(dim=1, keepdim=True)
    first: tuple[int, int, float] | None = None
    count = 0
    for start in range(0, n, chunk):
        block = Xn[start:start + chunk] @ Xn.T
        rows = torch.arange(start, min(start + chunk, n))
        upper = torch.arange(n)[None, :] > rows[:, None]
        hits = (block.abs() > 1 - PARALLEL_TOL) & upper
        k = int(hits.sum())
        if k and first is None:
            i, j = (int(v) for v in hits.nonzero()[0])
            first = (start + i, j, float(block[i, j]))
        count += k
    if first is not None:
        i, j, c = first
        why = ("identical up to scale: the encoder kernel is then singular (lambda_0 = 0)" if c > 0 else
               "antiparallel: the analysis (Du et al. 2019, Thm 3.1) assumes no two samples are parallel")
        warnings.warn(AedynWarning(
            f"{name} rows {i} and {j} are {why}, so the paper's guarantees do not apply (cos = {c:+.12f}; "
            f"{count} such pair(s)); remove one of each pair to restore them"), stacklevel=3)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
