"""Conversions shared by every layer: array-likes to tensors, device and dtype names."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aedyn.errors import AedynError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("cpu", "cuda", "auto")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` or a torch floating dtype -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise AedynError(f"dtype {dtype} is not supported; use float32 or float64")
        return dtype
    if dtype not in DTYPES:
        raise AedynError(f"unknown dtype {dtype!r}; use one of: float32, float64")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` (CUDA when available) -> device."""
    name = device.type if isinstance(device, torch.device) else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AedynError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu or auto")
        return torch.device(device)
    if name == "cpu":
        return torch.device("cpu")
    raise AedynError(f"unknown device {device!r}; use one of: cpu, cuda, auto")


def as_tensor(x: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
              name: str = "input") -> torch.Tensor:
    """NumPy array, torch tensor or nested sequence -> floating torch tensor (no copy when possible)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise AedynError(f"{name} must hold numbers; got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not (t.is_floating_point() or t.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                                  torch.int32, torch.int64)):
        raise AedynError(f"{name} must hold real numbers; got a tensor of dtype {t.dtype}")
    target = dtype if dtype is not None else (t.dtype if t.is_floating_point() else torch.float64)
    return t.to(device=device if device is not None else t.device, dtype=target)
