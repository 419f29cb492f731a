"""Conversions shared by every layer: array-likes to tensors, device and dtype names."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from aedyn._names import DEVICES as DEVICES  # re-exported: the device names
from aedyn.errors import AedynError, first_line

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise AedynError(f"device must be cpu, cuda, cuda:N or auto; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise AedynError(f"unknown device {device!r}; use one of: cpu, cuda, cuda:N, auto")
    if not torch.cuda.is_available():
        raise AedynError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu or auto")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise AedynError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return torch.device("cuda", index)


def as_tensor(x: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
              name: str = "input", finite: bool = False, detach: bool = False) -> torch.Tensor:
    """NumPy array, torch tensor, NumPy/Python scalar or nested sequence -> real floating tensor.

    The one conversion path of the library: integer and boolean data become float64, float32 and
    float64 keep their dtype unless ``dtype`` is given, and every other real dtype becomes float64
    (float16, bfloat16 and long double, NumPy or torch alike), so a half-precision input computes
    wherever a float64 one does. NumPy arrays of any byte order are accepted. Ragged sequences,
    strings, objects and complex numbers are an :class:`AedynError`; so is NaN or inf when
    ``finite``. ``detach`` drops a tensor's autograd history (``requires_grad=True`` inputs of the
    computations that leave autograd: training, measures read into NumPy). No copy is made when
    the input already has the requested dtype and device.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach() if detach else x
        if t.is_complex() or not (t.is_floating_point() or t.dtype in _TORCH_INTEGERS):
            raise AedynError(f"{name} must hold real numbers; got a tensor of dtype {t.dtype}")
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise AedynError(f"{name} must be a rectangular array of numbers ({first_line(exc)})") from None
        if arr.dtype.kind not in "biuf":
            what = "real numbers" if arr.dtype.kind == "c" else "numbers"
            raise AedynError(f"{name} must hold {what}; got an array of dtype {arr.dtype}")
        if arr.dtype not in (np.float32, np.float64) or not arr.dtype.isnative:
            with np.errstate(over="ignore"):  # a long double beyond float64 becomes inf, refused below
                arr = arr.astype(np.float64)
        elif not arr.flags.writeable:  # e.g. a memory-mapped file: torch needs memory it may write
            arr = arr.copy()
        t = torch.from_numpy(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))
    target = dtype if dtype is not None else (t.dtype if t.dtype in DTYPES.values() else torch.float64)
    out = t.to(device=device if device is not None else t.device, dtype=target)
    if finite and out.numel() and not bool(torch.isfinite(out).all()):
        raise AedynError(f"{name} contains NaN or inf; pass finite numbers")
    return out


_TORCH_INTEGERS = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)

