"""Memory: how much is available, and a job's estimated need, checked before anything is allocated.

A job states what it will hold (parameters, activations, eigensolver bases, histories, ...) as a
:class:`MemoryEstimate`; :func:`check_memory` compares it with the memory available on the device
(or a limit the user sets) and refuses with one line that gives the estimate and its largest parts.
The estimates are upper-bound-minded (they count the copies the code really makes), not exact.
On the host, what is available is the least of the kernel's free memory, the room under a
container's limit and the room under the process's address-space limit (``ulimit -v``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX (Windows): no address-space limit to read
    resource = None  # type: ignore[assignment]

from aedyn.errors import AedynError, MemoryRefusal

if TYPE_CHECKING:
    import torch

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
          "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "t": 1024**4, "tib": 1024**4, "tb": 1000**4}


RUN_BYTES = 16 * 1024
"""Host bytes one run takes while the run layer holds it, beyond its training: its job (about 3
KiB) and its row (about 11 KiB with the NTK path measured), rounded up."""


def parse_size(text: str | int | float) -> int:
    """Bytes from ``"8GB"`` (powers of 1000), ``"8GiB"``/``"8G"`` (powers of 1024), ``"512MB"``,
    ``"1.5e9"`` or a plain number of bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise AedynError(f"cannot read the memory size {text!r}; write it like 8GB, 16GiB, 512MB or a number "
                             "of bytes")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = value * _UNITS[unit]
    if not math.isfinite(size):
        raise AedynError(f"the memory size {text!r} is too large to be a number of bytes; write it like 8GB, 16GiB "
                         "or 512MB")
    if size < 1:
        raise AedynError(f"a memory size must be at least 1 byte; got {text!r}")
    return int(size)


def format_bytes(size: float) -> str:
    """``12.3 GiB`` style."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} B"


def _proc_bytes(path: str, key: str) -> int | None:
    """The ``key:`` line of a ``/proc`` file given in kB, in bytes; ``None`` when it cannot be read."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo_available() -> int | None:
    return _proc_bytes("/proc/meminfo", "MemAvailable")


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1), if there is a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:
            return None
        return max(int(limit) - usage, 0)
    return None


def _mapped() -> int:
    """Bytes of address space this process has mapped (``VmSize``); 0 when it cannot be told."""
    return _proc_bytes("/proc/self/status", "VmSize") or 0


def _address_space_room() -> int | None:
    """Room left under the process's address-space limit (``RLIMIT_AS``, ``ulimit -v``), if there is
    one: the soft limit less the address space already mapped. An allocation beyond it fails
    however much memory the machine has free."""
    if resource is None:  # pragma: no cover - not POSIX
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return max(int(soft) - _mapped(), 0)


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device``: free GPU memory for CUDA; for the host the
    least of the kernel's ``MemAvailable`` (``sysconf`` where there is no ``/proc``), the room under
    a cgroup limit and the room under the address-space limit (``ulimit -v``). ``None`` when it
    cannot be told."""
    import torch  # here, not at the top: parse_size serves the command line before torch is needed

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    free = _meminfo_available()
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    known = [v for v in (free, _cgroup_available(), _address_space_room()) if v is not None]
    return min(known) if known else None


@dataclass
class MemoryEstimate:
    """Bytes a job will hold, by part, on the host and on the compute device."""

    host: dict[str, int] = field(default_factory=dict)
    device: dict[str, int] = field(default_factory=dict)

    def add(self, part: str, size: float, *, on_device: bool = True) -> None:
        where = self.device if on_device else self.host
        where[part] = where.get(part, 0) + int(size)

    def include(self, other: MemoryEstimate) -> None:
        """Add every part of ``other``, where it lives."""
        for part, size in other.host.items():
            self.add(part, size, on_device=False)
        for part, size in other.device.items():
            self.add(part, size)

    def all_parts(self) -> dict[str, int]:
        """Host and device parts together (a name in both is summed)."""
        out = dict(self.host)
        for part, size in self.device.items():
            out[part] = out.get(part, 0) + size
        return out

    @property
    def total(self) -> int:
        return sum(self.host.values()) + sum(self.device.values())

    def describe(self, parts: dict[str, int] | None = None, top: int = 3) -> str:
        """``"12.3 GiB: parameters 7.6 GiB, activations 4.1 GiB, ..."``."""
        parts = self.all_parts() if parts is None else parts
        ranked = sorted(parts.items(), key=lambda kv: -kv[1])[:top]
        return f"{format_bytes(sum(parts.values()))} ({', '.join(f'{k} {format_bytes(v)}' for k, v in ranked)})"


def check_memory(estimate: MemoryEstimate, *, device: str | torch.device = "cpu", limit: int | None = None,
                 advice: str = "", what: str = "this job") -> None:
    """Refuse a job whose estimate exceeds what is available (or ``limit`` bytes, when given: the
    user's word replaces the measurement). On a GPU the device part is checked against free GPU
    memory and the host part against host memory; on the CPU their sum against host memory.
    ``what`` names the job in the refusal, ``advice`` says what to lower."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        checks = [(estimate.host, available_memory("cpu"), "host memory"),
                  (estimate.device, limit if limit is not None else available_memory(device), "GPU memory")]
    else:
        checks = [(estimate.all_parts(), limit if limit is not None else available_memory("cpu"),
                   "memory")]
    for parts, room, kind in checks:
        need = sum(parts.values())
        if room is not None and need > room:
            source = "the --max-memory limit" if limit is not None and kind != "host memory" else f"available {kind}"
            raise MemoryRefusal(f"{what} needs about {estimate.describe(parts)} but {source} is {format_bytes(room)}",
                                f"{advice or 'make the problem smaller'} (or set --max-memory if you know better)")
