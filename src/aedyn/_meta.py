"""Version and environment facts recorded beside every result."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch


def aedyn_version() -> str:
    try:
        return version("aedyn")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


def environment() -> dict[str, str]:
    """Versions of aedyn, Python, torch and NumPy, and the platform, as plain strings."""
    return {
        "aedyn": aedyn_version(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",
    }
