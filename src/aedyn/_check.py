"""The one validation path for scalar options: integers, real numbers, seeds, choices and paths.

Every public function and every job validates its numeric arguments here, so the rules are the
same everywhere: Python and NumPy numbers are accepted (``np.float32(1e-3)``, ``np.int64(5)``),
``True``/``False`` are not numbers, an integer option refuses ``1.5`` (and ``2.0``: say ``2``),
a real option refuses strings such as ``'1'``. Each failure is an :class:`AedynError` whose one
line names the option, the value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aedyn.errors import AedynError

SEED_MAX = 2**63 - 1
"""Seeds are integers in ``[0, SEED_MAX]`` so they fit a signed 64-bit column everywhere."""


def _is_bool(value: Any) -> bool:
    """``value`` is a Python or NumPy boolean. NumPy is not imported for this: a NumPy boolean can
    exist only once NumPy is (its integers and reals register as :mod:`numbers` types)."""
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              hint: str = "") -> int:
    """``value`` as a Python ``int`` within ``[minimum, maximum]``; Python and NumPy integers only."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, "an integer")  # type: ignore[arg-type]
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise AedynError(f"{name} must be {kind}; got {value!r}{hint}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise AedynError(f"{name} must be {kind if minimum in (0, 1) else f'>= {minimum}'}; got {out}{hint}")
    if maximum is not None and out > maximum:
        raise AedynError(f"{name} must be <= {maximum}; got {out}{hint}")
    return out


def check_float(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite Python ``float`` in the interval given by ``low``/``high``
    (closed unless ``low_open``/``high_open``); Python and NumPy reals only."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise AedynError(f"{name} must be a number; got {value!r}{hint}")
    out = float(value)
    if not math.isfinite(out):
        raise AedynError(f"{name} must be a finite number; got {out}{hint}")
    too_low = low is not None and (out <= low if low_open else out < low)
    too_high = high is not None and (out >= high if high_open else out > high)
    if too_low or too_high:
        left = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        right = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        if low == 0 and high is None:
            allowed = "a positive number" if low_open else "a non-negative number"
        elif low is not None and high is not None:
            allowed = f"in {left}, {right}"
        elif low is not None:
            allowed = f"{'>' if low_open else '>='} {low:g}"
        else:
            allowed = f"{'<' if high_open else '<='} {high:g}"
        raise AedynError(f"{name} must be {allowed}; got {out:g}{hint}")
    return out


def check_positive(value: Any, name: str, *, hint: str = "") -> float:
    """A finite number ``> 0``."""
    return check_float(value, name, low=0.0, low_open=True, hint=hint)


def check_count(value: Any, name: str, *, hint: str = "") -> int:
    """An integer ``>= 1``."""
    return check_int(value, name, minimum=1, hint=hint)


def check_seed(value: Any, name: str = "seed") -> int:
    """An integer in ``[0, 2^63 - 1]``."""
    return check_int(value, name, minimum=0, maximum=SEED_MAX, hint=" (seeds are integers in [0, 2^63 - 1])")


def check_choice(value: Any, allowed: Sequence[str], name: str) -> str:
    """One of ``allowed`` (strings)."""
    if not isinstance(value, str) or value not in allowed:
        raise AedynError(f"unknown {name} {value!r}; use one of: {', '.join(allowed)}")
    return value


def check_path(value: Any, name: str) -> Path:
    """``value`` (a string or ``os.PathLike`` naming something on disk, not empty) as a :class:`~pathlib.Path`."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        plain = value is None or isinstance(value, (numbers.Number, str, bytes))
        shown = repr(value)[:60] if plain else f"a {type(value).__name__}"
        raise AedynError(f"{name} must be a path (a string or pathlib.Path); got {shown}")
    return Path(text)
