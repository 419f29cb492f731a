"""Output files: pre-flight checks, atomic exclusive writes, OS errors as one line, kill safety."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aedyn import files
from aedyn.errors import AedynError
from aedyn.files import (
    OutputExistsError,
    check_output,
    check_outputs,
    file_sha256,
    free_sibling,
    locked,
    read_json,
    write_atomic,
    write_json,
)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".probe")))


def test_write_is_exclusive_unless_forced(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    with pytest.raises(OutputExistsError, match=r"already exists.*--force"):
        write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 1}
    write_json(path, {"x": 3}, force=True)
    assert json.loads(path.read_text()) == {"x": 3}
    assert leftovers(tmp_path) == []


def _special_outputs(tmp_path) -> dict[str, object]:
    """A named pipe and symbolic links (to a file and dangling) where an output would go."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = tmp_path / "target.json"
    target.write_text("mine")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    return {"named pipe": fifo, "symbolic link": link, "dangling": dangling}


@pytest.mark.parametrize("kind", ["named pipe", "symbolic link", "dangling"])
def test_force_replaces_regular_files_only(tmp_path, kind):
    path = _special_outputs(tmp_path)[kind]
    what = "named pipe" if kind == "named pipe" else "symbolic link"
    with pytest.raises(OutputExistsError, match=rf"is a {what}.*regular files only"):
        check_outputs({"--out": path}, force=True)
    with pytest.raises(OutputExistsError, match=rf"is a {what}.*regular files only"):
        write_json(path, {"x": 1}, force=True)
    assert path.is_symlink() if kind != "named pipe" else path.is_fifo()
    assert (tmp_path / "target.json").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_written_file_has_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files; the result must get 0666 minus the umask like any new file."""
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "p.json", [1])
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_strict_json_and_non_finite_numbers(tmp_path):
    path = write_json(tmp_path / "n.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}


@pytest.mark.parametrize(("make", "match"), [
    (lambda d: d / "missing" / "x.json", "does not exist; create"),
    (lambda d: d, "is a folder"),
    (lambda d: d / "", "is a folder"),
])
def test_check_output_refuses_before_any_work(tmp_path, make, match):
    with pytest.raises(AedynError, match=match):
        check_output(make(tmp_path), flag="--out")


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(AedynError, match="not a folder"):
        check_output(tmp_path / "f" / "x.json")


def test_same_file_twice_and_output_onto_input(tmp_path):
    a = tmp_path / "s.json"
    with pytest.raises(AedynError, match="--out and --save-params are the same file"):
        check_outputs({"--out": a, "--save-params": tmp_path / "." / "s.json"})
    data = tmp_path / "x.npy"
    data.write_bytes(b"precious")
    for force in (False, True):
        with pytest.raises(AedynError, match="destroy the input"):
            check_outputs({"--out": data}, force=force, inputs={"--data": data})
    assert data.read_bytes() == b"precious"
    os.link(data, tmp_path / "hard.npy")  # the same file under another name
    with pytest.raises(AedynError, match="destroy the input"):
        check_outputs({"--out": tmp_path / "hard.npy"}, force=True, inputs={"--data": data})


@pytest.mark.parametrize(("code", "needle"), [
    (errno.EACCES, "permission denied"), (errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full"),
])
def test_unwritable_folder_is_one_line(tmp_path, monkeypatch, code, needle):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    with pytest.raises(AedynError, match=needle) as info:
        check_output(tmp_path / "x.json")
    assert "\n" not in str(info.value) and "x.json" in str(info.value)


def test_disk_full_during_write_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(AedynError, match="disk is full") as info:
        write_json(tmp_path / "r.json", {"x": 1})
    assert "r.json" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_inside_the_writer_leaves_nothing(tmp_path):
    def boom(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "r.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_no_hard_links_falls_back_to_a_checked_rename(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    path = write_json(tmp_path / "r.json", [1])
    assert json.loads(path.read_text()) == [1] and leftovers(tmp_path) == []
    with pytest.raises(OutputExistsError):
        write_json(path, [2])


def test_two_writers_one_path_exactly_one_wins(tmp_path):
    """Threads race to create the same paths without --force: every path gets exactly one writer."""
    wins: dict[int, list[int]] = {}
    lock = threading.Lock()

    def writer(who: int) -> None:
        for k in range(40):
            try:
                write_json(tmp_path / f"{k}.json", {"who": who})
            except OutputExistsError:
                continue
            with lock:
                wins.setdefault(k, []).append(who)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == list(range(40)) and all(len(v) == 1 for v in wins.values())
    for k, (who,) in wins.items():
        assert json.loads((tmp_path / f"{k}.json").read_text()) == {"who": who}
    assert leftovers(tmp_path) == []


def test_kill_at_any_moment_never_leaves_a_partial_file(tmp_path):
    """A child rewrites a 4 MB file (with --force) in a loop; it is killed with SIGKILL at random
    moments. The path must hold a whole file every time (or not exist yet), never a partial one."""
    path = tmp_path / "big.bin"
    child = textwrap.dedent(f"""
        import hashlib, os, sys
        from aedyn.files import write_atomic
        k = 0
        while True:
            body = os.urandom(4 << 20)
            digest = hashlib.sha256(body).hexdigest().encode()
            write_atomic({str(path)!r}, lambda fh: (fh.write(digest), fh.write(body)), force=True)
            k += 1
            if k == 1:
                print("ready", flush=True)
    """)
    for delay in (0.0, 0.05, 0.13, 0.29, 0.41):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        raw = path.read_bytes()
        assert len(raw) == 64 + (4 << 20)
        assert hashlib.sha256(raw[64:]).hexdigest().encode() == raw[:64]
    # a killed writer may leave its hidden temporary file; it never blocks a rerun
    for name in leftovers(tmp_path):
        assert name.startswith(".big.bin.") and name.endswith(".tmp")
    write_atomic(path, lambda fh: fh.write(b"ok"), force=True)
    assert path.read_bytes() == b"ok"


def test_kill_during_exclusive_creation_never_leaves_a_partial_file(tmp_path):
    """The same with exclusive creation (no --force, the hard-link path): a child creates new files
    0.bin, 1.bin, ... until killed; every file that exists is whole."""
    child = textwrap.dedent(f"""
        import hashlib, os
        from aedyn.files import write_atomic
        k = 0
        while True:
            body = os.urandom(2 << 20)
            digest = hashlib.sha256(body).hexdigest().encode()
            write_atomic(os.path.join({str(tmp_path)!r}, f"{{k}}.bin"), lambda fh: (fh.write(digest), fh.write(body)))
            k += 1
            if k == 1:
                print("ready", flush=True)
    """)
    for delay in (0.0, 0.07, 0.19):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for path in tmp_path.glob("*.bin"):
            raw = path.read_bytes()
            assert len(raw) == 64 + (2 << 20) and hashlib.sha256(raw[64:]).hexdigest().encode() == raw[:64], path
        for path in tmp_path.glob("*.bin"):
            path.unlink()


def test_free_sibling(tmp_path):
    (tmp_path / "run.json").write_text("")
    (tmp_path / "run.1.json").write_text("")
    assert free_sibling(tmp_path / "run.json") == tmp_path / "run.2.json"


@pytest.mark.parametrize(("content", "match"), [
    (None, "does not exist"), (b"\xff\xfe\x00binary", "not text"), (b"{nope", "not valid JSON"),
    (b"[" * 100000, "nested too deeply|not valid JSON"),
])
def test_read_json_errors_are_one_line(tmp_path, content, match):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AedynError, match=match) as info:
        read_json(path, what="a record", hint="pass a record")
    assert "\n" not in str(info.value)
    with pytest.raises(AedynError, match="is a folder"):
        read_json(tmp_path, what="a record", hint="pass a record")


def test_probe_leaves_nothing_behind(tmp_path):
    check_output(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []
    assert not any(n.endswith(".probe") for n in os.listdir(tempfile.gettempdir()) if n.startswith(".x.json"))


def _count_up(barrier, counter: str) -> None:
    barrier.wait()
    for _ in range(50):
        with locked(counter + ".lock"):
            value = int(Path(counter).read_text())
            time.sleep(0.0005)  # widen the read-modify-write window
            with open(counter, "w") as fh:
                fh.write(str(value + 1))


def test_locked_makes_processes_take_turns(tmp_path):
    """Four processes each add 1 fifty times to a number in a file (read, then write): none is lost."""
    counter = tmp_path / "n.txt"
    counter.write_text("0")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_count_up, args=(barrier, str(counter))) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert counter.read_text() == "200"
    assert (tmp_path / "n.txt.lock").read_bytes() == b""  # the lock file stays, empty


def test_locked_and_file_sha256_errors_are_one_line(tmp_path):
    with pytest.raises(AedynError, match=r"cannot write '.*lock': its folder does not exist") as err, \
            locked(tmp_path / "no" / "lock"):
        pass
    assert "\n" not in str(err.value)
    with pytest.raises(AedynError, match=r"cannot read '.*missing.npy'") as err:
        file_sha256(tmp_path / "missing.npy")
    assert "\n" not in str(err.value)


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path, monkeypatch):
    body = os.urandom(5000)
    (tmp_path / "x.bin").write_bytes(body)
    monkeypatch.setattr(files, "DIGEST_CHUNK", 1024)  # several chunks
    assert file_sha256(tmp_path / "x.bin") == hashlib.sha256(body).hexdigest()
