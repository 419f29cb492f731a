"""Version and environment facts recorded beside every result.

Imports nothing heavy at the top: ``aedyn --version`` reads the version without loading torch.
"""

from __future__ import annotations

import math
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def aedyn_version() -> str:
    """The installed package's version (``0+unknown`` in a source tree that was not installed)."""
    try:
        return version("aedyn")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


def environment() -> dict[str, str]:
    """Versions of aedyn, Python, torch and NumPy, and the platform, as plain strings."""
    import numpy as np
    import torch

    return {
        "aedyn": aedyn_version(),
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",
    }


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN or inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value
