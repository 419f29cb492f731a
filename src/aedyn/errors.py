"""User-facing errors and warnings.

Every error aedyn raises for bad input is an :class:`AedynError` whose message is one line that
names the problem and the fix. The CLI prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class AedynError(ValueError):
    """Bad input or an impossible request; the message says what to do instead."""


class AedynWarning(UserWarning):
    """Something the user should know (data was normalised, rows are parallel, ...)."""
