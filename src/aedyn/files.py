"""Output files: checked before the work, written atomically, never clobbered.

Every writer in aedyn (run records, parameters, kernel records, and the stores and reports that
build on them) goes through this module, so one set of rules holds everywhere:

- :func:`check_outputs` runs **before** any data is loaded or any step taken: the parent folder
  exists and is writable (a file is really created and removed there), the path is not a folder,
  it does not exist unless ``force``, ``force`` replaces regular files only (never a symbolic
  link, a named pipe, a device or a socket), no two outputs of one command are the same file, and
  no output is one of the command's inputs (not even with ``force``).
- :func:`write_atomic` writes to a temporary file in the same folder, flushes and fsyncs it, then
  moves it into place. Without ``force`` the move is exclusive (a hard link, which fails if the
  path exists), so of two processes writing one path exactly one succeeds; with ``force`` it is
  an atomic rename over the old file. A kill at any moment leaves either no file or the whole
  file at the path, never a partial one (at worst a hidden ``.NAME.*.tmp`` beside it).
- :func:`locked` serialises processes that read, change and write one thing (a store's metadata,
  its part files) through an advisory lock the kernel releases if its holder dies.
- OS errors (disk full, read-only folder, permission denied) become one :class:`AedynError` line
  naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from aedyn._meta import jsonable
from aedyn.errors import AedynError

Writer = Callable[[IO[bytes]], None]


class OutputExistsError(AedynError):
    """The output path exists and may not be replaced: ``force`` was not given, or it is not a
    regular file (``force`` never replaces a symbolic link, a named pipe, a device or a socket)."""


def describe_os_error(exc: OSError, path: str | Path, action: str = "write") -> str:
    """One line for an OS error on ``path``: what happened and what to do (``action`` is ``"write"``
    or ``"read"``)."""
    if exc.errno == errno.ENOMEM:
        return (f"cannot {action} {str(path)!r}: out of memory (or of address space, under a limit such as "
                "ulimit -v) to map or buffer it; free memory or raise the limit")
    if action == "read":
        return (f"cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}; check that the file is readable "
                "(permissions, disk, network mount)")
    reasons = {
        errno.ENOSPC: "the disk is full; free some space or choose another folder",
        errno.EDQUOT: "the disk quota is exceeded; free some space or choose another folder",
        errno.EROFS: "the file system is read-only; choose a writable folder",
        errno.EACCES: "permission denied; choose a folder you can write to",
        errno.EPERM: "operation not permitted; choose a folder you can write to",
        errno.ENOENT: "its folder does not exist; create it first",
        errno.ENOTDIR: "a component of the path is not a folder",
        errno.EISDIR: "it is a folder; name a file",
        errno.ENAMETOOLONG: "the name is too long",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"cannot {action} {str(path)!r}: {reason}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path: str | Path, *, force: bool = False, flag: str = "output", probe: bool = True) -> Path:
    """Check that ``path`` can be written: its folder exists and (with ``probe``) accepts a new
    file, it is not a folder, and it does not exist yet unless ``force``, which replaces a regular
    file only. Returns the path and leaves nothing behind."""
    path = Path(path)
    if path.is_dir():
        raise AedynError(f"{flag} {str(path)!r} is a folder; name a file inside it")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputExistsError(f"{flag} {str(path)!r} already exists; choose another path or pass --force "
                                "to replace it")
    kind = _special_kind(path)
    if kind is not None:
        raise OutputExistsError(f"{flag} {str(path)!r} is {kind}, not a regular file; --force replaces regular files "
                                "only: choose another path")
    parent = path.parent
    if not parent.exists():
        raise AedynError(f"the folder of {flag} {str(path)!r} does not exist; create {str(parent)!r} first")
    if not parent.is_dir():
        raise AedynError(f"{flag} {str(path)!r}: {str(parent)!r} is not a folder")
    if not probe:
        return path
    try:  # the only reliable test of writability (root, read-only mounts, ACLs): create a file
        fd, probe = tempfile.mkstemp(dir=parent, prefix=_temporary_prefix(path), suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path)) from None
    return path


def _special_kind(path: Path) -> str | None:
    """What ``path`` is, in words, when it exists and is not a regular file (a symbolic link, a
    named pipe, a device, a socket); ``None`` when it is a regular file or does not exist."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path)) from None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISDIR, "a folder"))
    return next((word for test, word in kinds if test(mode)), "a special file")


def check_outputs(outputs: Mapping[str, str | Path | None], *, force: bool = False,
                  inputs: Mapping[str, str | Path | None] | None = None) -> dict[str, Path]:
    """:func:`check_output` for every named output (``None`` entries are skipped), and refuse two
    outputs that are the same file, or an output that is one of ``inputs`` or lies inside an input
    folder (even with ``force``)."""
    for in_flag, source in (inputs or {}).items():
        if source is None or not Path(source).exists():
            continue
        folder = Path(source).resolve() if Path(source).is_dir() else None
        for flag, path in outputs.items():
            if path is not None and _same_file(Path(path), Path(source)):
                raise AedynError(f"{flag} {str(path)!r} is the {in_flag} input; writing it would destroy the input: "
                                 "choose another path")
            if path is not None and folder is not None and folder in Path(path).resolve().parents:
                raise AedynError(f"{flag} {str(path)!r} is inside the {in_flag} folder; writing there would damage "
                                 "the input: choose a path outside it")
    checked: dict[str, Path] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        path = check_output(path, force=force, flag=flag)
        for other_flag, other in checked.items():
            if _same_file(path, other):
                raise AedynError(f"{other_flag} and {flag} are the same file {str(path)!r}; give them different paths")
        checked[flag] = path
    return checked


def _temporary_prefix(path: Path) -> str:
    """``.NAME.`` for the temporary files beside ``path``, with ``NAME`` cut to 32 characters so that
    a legal output name never makes an illegal temporary one."""
    return f".{path.name[:32]}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, write: Writer, *, force: bool = False, flag: str = "output") -> Path:
    """Write a file atomically: ``write(fh)`` fills a temporary file in the same folder, which is
    flushed, fsynced and then moved into place (exclusively unless ``force``; see the module
    docstring). On any failure, including an interrupt, the temporary file is removed and
    ``path`` is untouched."""
    path = check_output(path, force=force, flag=flag, probe=False)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        if force:
            os.replace(tmp, path)
        else:
            _move_exclusive(tmp, path, flag)
        tmp = None
        _fsync_folder(path.parent)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def _move_exclusive(tmp: str, path: Path, flag: str) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically (a hard link, then
    the temporary name is removed)."""
    try:
        os.link(tmp, path)
        os.unlink(tmp)
        return
    except FileExistsError:
        raise OutputExistsError(f"{flag} {str(path)!r} appeared while this ran (another process?); it was not "
                                "replaced: choose another path or pass --force") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # a file system without hard links: the check and the rename are two steps here
    if path.exists():
        raise OutputExistsError(f"{flag} {str(path)!r} appeared while this ran; it was not replaced")
    os.rename(tmp, path)


def free_sibling(path: str | Path) -> Path:
    """The first of ``NAME.1.SUFFIX``, ``NAME.2.SUFFIX``, ... that does not exist yet."""
    path = Path(path)
    k = 1
    while True:
        candidate = path.with_name(f"{path.stem}.{k}{path.suffix}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
        k += 1


def write_json(path: str | Path, obj: Any, *, force: bool = False, flag: str = "output") -> Path:
    """:func:`write_atomic` of ``obj`` as strict JSON (non-finite floats become ``null``)."""
    text = json.dumps(jsonable(obj), indent=1, allow_nan=False).encode()
    return write_atomic(path, lambda fh: fh.write(text), force=force, flag=flag)


def read_json(path: str | Path, *, what: str, hint: str) -> Any:
    """Parse a JSON file; every failure (missing, a folder, unreadable, binary, malformed) is one
    :class:`AedynError` line naming ``path`` as ``what`` and ending with ``hint``."""
    path = Path(path)
    if path.is_dir():
        raise AedynError(f"{str(path)!r} is a folder, not {what}; {hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AedynError(f"{str(path)!r} does not exist; {hint}") from None
    except UnicodeDecodeError:
        raise AedynError(f"{str(path)!r} is not text (a binary file?), so not {what}; {hint}") from None
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AedynError(f"{str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}), so not {what}; "
                         f"{hint}") from None
    except RecursionError:
        raise AedynError(f"{str(path)!r} is nested too deeply to be {what}; {hint}") from None


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created empty if missing, never removed) while
    the block runs: processes locking the same path take turns. It is the kernel's advisory lock
    (``flock``), so a holder that dies, even by SIGKILL, releases it. OS errors are one
    :class:`AedynError` line."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise AedynError(f"cannot lock {str(path)!r}: {exc.strerror or type(exc).__name__}; use a local folder "
                             "(this file system refuses locks)") from None
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


DIGEST_CHUNK = 1 << 20
"""Bytes read at a time by :func:`file_sha256`."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the bytes of the file ``path`` (hex), read in chunks, so a file of any size
    costs little memory. OS errors are one :class:`AedynError` line."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(DIGEST_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, path, "read")) from None
    return digest.hexdigest()
