"""User-facing errors and warnings.

Every error aedyn raises for bad input is an :class:`AedynError` whose message is one line that
names the problem and the fix. The CLI prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations

from typing import Any


class AedynError(ValueError):
    """Bad input or an impossible request; the message says what to do instead."""


class MemoryRefusal(AedynError):
    """A job refused before it allocated, because its memory estimate exceeds what is available: an
    error, never evidence about the job (a width search does not count it as a failing width).

    Its line is ``need`` (what the job needs against what there is) and ``advice`` (what to lower);
    :meth:`advise` gives the same refusal with other advice, so the command line names only
    options the running command has."""

    def __init__(self, need: str, advice: str = "make the problem smaller") -> None:
        super().__init__(f"{need}; {advice}")
        self.need, self.advice = need, advice

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (a refusal on a Dask worker)
        return type(self), (self.need, self.advice)

    def advise(self, advice: str) -> MemoryRefusal:
        """This refusal with ``advice`` in place of its own."""
        return type(self)(self.need, advice)


class AedynWarning(UserWarning):
    """Something the user should know (data was normalised, rows are parallel, ...)."""


def first_line(exc: BaseException, limit: int = 100) -> str:
    """A short one-line description of ``exc`` for an error message (its type when it has no text)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def is_out_of_memory(exc: BaseException) -> bool:
    """``exc`` is an allocation failure: Python's ``MemoryError``, torch's CUDA ``OutOfMemoryError``
    or the CPU allocator's ``RuntimeError`` ("can't allocate memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "DefaultCPUAllocator" in text
                                              or "out of memory" in text.lower())
