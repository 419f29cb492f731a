"""Data sources, file formats and the one validation path."""

from __future__ import annotations

import gzip
import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from aedyn import data
from aedyn.data import (
    DIGIT_COUNTS,
    PARALLEL_TOL,
    check_source,
    digits,
    expected_shape,
    load_data,
    read_file,
    sphere,
    validate,
)
from aedyn.errors import AedynError, AedynWarning


def caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", AedynWarning)
        out = fn(*args, **kwargs)
    return out, [str(x.message) for x in w if issubclass(x.category, AedynWarning)]


def fails(match: str, fn, *args, **kwargs) -> str:
    """``fn`` raises an :class:`AedynError` whose message is one line and contains ``match`` (a regex)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AedynWarning)
        with pytest.raises(AedynError, match=match) as info:
            fn(*args, **kwargs)
    text = str(info.value)
    assert "\n" not in text and "\r" not in text, text
    return text


def test_sphere_is_unit_seeded_and_spread():
    X = sphere(500, 6, seed=3)
    assert X.shape == (500, 6) and X.dtype == torch.float64
    torch.testing.assert_close(X.norm(dim=1), torch.ones(500, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.equal(X, sphere(500, 6, seed=3)) and not torch.equal(X, sphere(500, 6, seed=4))
    # uniform on the sphere: E[x] = 0, E[x x^T] = I/d; 5 standard errors of a mean of 500 draws
    assert float(X.mean(0).abs().max()) < 5 / np.sqrt(500 * 6)
    torch.testing.assert_close(X.T @ X / 500, torch.eye(6, dtype=torch.float64) / 6, rtol=0, atol=0.05)


def test_digits_subsets_and_classes():
    X, y = digits(return_labels=True)
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert tuple(np.bincount(y.numpy()).tolist()) == DIGIT_COUNTS  # the shapes expected_shape promises
    Xs, ys = digits(100, seed=1, classes=[0, 1], return_labels=True)
    assert Xs.shape == (100, 64) and set(ys.tolist()) <= {0, 1}
    assert torch.equal(Xs, digits(100, seed=1, classes=[0, 1]))
    assert not torch.equal(Xs, digits(100, seed=2, classes=[0, 1]))
    fails("only 362 samples", digits, 1000, classes=[3, 7])
    fails(r"0\.\.9", digits, 10, classes=[12])
    fails("--classes is empty", digits, 10, classes=[])


def test_load_data_digits_normalises_and_says_so():
    X, notes = caught(load_data, "digits", n=50, seed=0)
    assert X.shape == (50, 64)
    torch.testing.assert_close(X.norm(dim=1), torch.ones(50, dtype=torch.float64), rtol=0, atol=1e-14)
    assert any("normalised 50 of 50 rows" in s for s in notes)
    fails("not 1", load_data, "digits", n=5, normalize=False)
    _, notes = caught(load_data, "sphere", n=5, d=3)
    assert notes == []


def test_npy_npz_csv_roundtrip(tmp_path):
    X = sphere(12, 4, seed=1).numpy()
    np.save(tmp_path / "a.npy", X)
    np.savez(tmp_path / "b.npz", data=X, labels=np.arange(12))
    np.savez(tmp_path / "c.npz", X)
    np.savetxt(tmp_path / "d.csv", X, delimiter=",", header="a,b,c,e", comments="")
    np.savetxt(tmp_path / "e.csv", X, delimiter=",")
    for path, key in (("a.npy", None), ("b.npz", "data"), ("c.npz", None), ("d.csv", None), ("e.csv", None)):
        got, _ = caught(load_data, str(tmp_path / path), key=key)
        np.testing.assert_allclose(got.numpy(), X, rtol=0, atol=1e-15)
        assert type(read_file(tmp_path / path, key=key)) is np.ndarray  # in memory, never a memory map
    sub = load_data(str(tmp_path / "a.npy"), n=5, seed=2)
    assert sub.shape == (5, 4)
    fails("name one with --key", read_file, tmp_path / "b.npz")
    fails("no array 'x'", read_file, tmp_path / "b.npz", key="x")


def test_npy_is_memory_mapped_and_a_subset_reads_only_its_rows(tmp_path, monkeypatch):
    X = np.random.default_rng(0).standard_normal((40, 3, 2))
    np.save(tmp_path / "big.npy", np.asfortranarray(X))
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(data.np, "load", spy)
    sub, _ = caught(load_data, str(tmp_path / "big.npy"), n=7, seed=5)
    assert calls and set(calls) == {"r"}
    idx = data._subsample_index(40, 7, 5, what="x")
    want = X.reshape(40, 6)[idx]
    np.testing.assert_allclose(sub.numpy(), want / np.linalg.norm(want, axis=1, keepdims=True), rtol=0, atol=1e-15)
    assert isinstance(sub, torch.Tensor) and sub.is_contiguous() and sub.shape == (7, 6)
    raw = data._load_file(tmp_path / "big.npy", key=None, n=7, d=None, seed=5)
    assert type(raw) is np.ndarray and not isinstance(raw.base, np.memmap)
    full, _ = caught(load_data, str(tmp_path / "big.npy"))
    assert full.shape == (40, 6)


def test_csv_header_rule_bom_and_note(tmp_path):
    (tmp_path / "h.csv").write_bytes("\ufeffx,y\n1,2\n3,4\n".encode())
    X, notes = caught(read_file, tmp_path / "h.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert len(notes) == 1 and "h.csv" in notes[0] and "skipped header line 1 'x,y'" in notes[0]
    (tmp_path / "b.csv").write_bytes("\ufeff1,2\n3,4\n".encode())  # BOM, no header: nothing skipped
    X, notes = caught(read_file, tmp_path / "b.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert notes == []
    (tmp_path / "blank.csv").write_text("\n\nname,value\n\n5,6\n,\n7,8\n")  # first non-empty row is the header
    X, notes = caught(read_file, tmp_path / "blank.csv")
    np.testing.assert_array_equal(X, [[5, 6], [7, 8]])
    assert any("line 3" in s for s in notes)
    _, notes = caught(load_data, str(tmp_path / "h.csv"))
    assert any("skipped header" in s for s in notes)  # the CLI turns it into a note
    assert read_file(tmp_path / "h.csv").dtype == np.float64


CSV_CASES = [
    ("bad.csv", b"1,2,3\n4,five,6\n", r"line 2 column 2 is not a number \('five'\)"),
    ("part.csv", b"a,1,2\n3,4,5\n", r"line 1 column 1 is not a number \('a'\) but other cells of that first row"),
    ("part2.csv", b"\n1,b,2\n3,4,5\n", r"line 2 column 2 is not a number \('b'\) but other cells"),
    ("cell.csv", b"1,2,3\n4,,6\n", "line 2 column 2 is empty"),
    ("ragged.csv", b"1,2,3\n4,5\n", "different lengths: line 2 has 2 values but line 1 has 3"),
    ("latin1.csv", "1,2\n3,\u00e9\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 on line 2\)"),
    ("long.csv", b"1,2\n" * 300_000 + b"4,\xff\n", r"not UTF-8 text \(byte 0xff on line 300001\)"),
    ("nul.csv", b"1,2\n3,\x004\n", "line 2 holds a NUL byte"),
    ("nulhead.csv", b"\x00\x00,\x00\n1,2\n", "line 1 holds a NUL byte"),
    ("wide.csv", b"1," + b"2" * 200_000 + b"\n", r"cannot be parsed as CSV \(field larger than field limit"),
    ("semi.csv", b"1;2;3\n4;5;6\n", "separate values with commas"),
    ("head.csv", b"a,b\n", "holds only a header line"),
    ("blank.csv", b"\n \n\n", "holds no data rows"),
    ("second.csv", b"x,y\nu,v\n1,2\n", r"line 2 column 1 is not a number \('u'\)"),
]


@pytest.mark.parametrize(("name", "content", "match"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv_errors(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    text = fails(match, read_file, tmp_path / name)
    assert name in text
    fails(match, load_data, str(tmp_path / name))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npz_bytes(compress: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def flipped(raw: bytes, at: int) -> bytes:
    out = bytearray(raw)
    out[at] ^= 0xFF
    return bytes(out)


def huge_npy_header() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**7)})
    return buf.getvalue() + bytes(64)


_GOOD_NPY = npy_bytes(np.arange(1.0, 13.0).reshape(3, 4))
_GOOD_NPZ = npz_bytes(a=np.arange(1.0, 13.0).reshape(3, 4))
_RANDOM = np.random.default_rng(7).integers(0, 256, 512, dtype=np.uint8).tobytes().replace(b"\x1f\x8b", b"xx")
_RANDOM = b"\xff\xfe" + _RANDOM[2:]  # not UTF-8, not any magic number

FILE_CASES = [
    ("trunc.npy", _GOOD_NPY[:-5], r"truncated or corrupt \(mmap length is greater than file size\)"),
    ("trunchead.npy", _GOOD_NPY[:20], "truncated or corrupt"),
    ("obj.npy", npy_bytes(np.array([[1, "a"]], dtype=object)),
     r"obj.npy holds Python objects \(dtype object\), not numbers; aedyn reads numeric arrays only"),
    ("zip.npy", _GOOD_NPZ, "is a .npz archive, not a .npy array; rename it to .npz"),
    ("npy.npz", _GOOD_NPY, "is a .npy array, not a .npz archive; rename it to .npy"),
    ("trunc.npz", _GOOD_NPZ[: len(_GOOD_NPZ) // 2], r"truncated or corrupt .npz archive \(File is not a zip file\)"),
    ("crc.npz", flipped(_GOOD_NPZ, 100), r"\['a'\] cannot be read \(Bad CRC-32"),
    ("zlib.npz", flipped(npz_bytes(True, a=np.arange(5000.0)), 150), r"\['a'\] cannot be read \(Error -3 while"),
    ("header.npz", flipped(npz_bytes(True, a=np.random.default_rng(0).random(2000)), 200),
     r"\['a'\] cannot be read \(damaged header: TokenError\)"),
    ("header.npy", _GOOD_NPY.replace(b"'shape'", b"'sh\x9dpe"), "truncated or corrupt"),
    ("cut.npz", zip_bytes({"a.npy": _GOOD_NPY[:-8]}), r"\['a'\] cannot be read \(EOF"),
    ("objects.npz", npz_bytes(a=np.array([[1, "a"]], dtype=object)),
     r"\['a'\] holds Python objects \(dtype object\), not numbers; aedyn reads numeric arrays only"),
    ("none.npz", zip_bytes({}), "holds no arrays"),
    ("text.npz", zip_bytes({"notes.txt": b"hello"}), r"\['notes.txt'\] is not a NumPy array"),
    ("huge.npz", zip_bytes({"a.npy": huge_npy_header()}), "too large for memory.*draw a subset with --n"),
    ("gz-ubyte.gz", gzip.compress(b"\x00\x00\x08\x02" + b"\x00" * 20)[:-6], "damaged gzip file"),
    ("junkgz-ubyte.gz", b"\x1f\x8b" + bytes(30), "damaged gzip file"),
    ("nodim-ubyte", b"\x00\x00\x08\x00", "truncated or corrupt: its header declares 0 dimensions"),
    ("short-ubyte", b"\x00\x00\x08\x03\x00\x00", "truncated or corrupt: its header declares 3 dimensions in 6 bytes"),
    ("extra-ubyte", b"\x00\x00\x08\x02" + struct.pack(">ii", 1, 2) + b"\x01\x02\x03", "truncated or corrupt"),
]
for _suffix in (".npy", ".npz", ".csv", "-ubyte", "-ubyte.gz", ".idx", ".idx.gz"):
    FILE_CASES.append(("empty" + _suffix, b"", r"is empty \(0 bytes\)"))
    FILE_CASES.append(("random" + _suffix, _RANDOM, {
        ".npy": "is not a .npy file", ".npz": r"is not a .npz archive \(not a zip file\)", ".csv": "not UTF-8 text",
    }.get(_suffix, "is not an IDX file")))


@pytest.mark.parametrize(("name", "content", "match"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    text = fails(match, read_file, tmp_path / name)
    assert name in text
    fails(match, load_data, str(tmp_path / name))


@pytest.mark.parametrize("order", ["C", "F"])
def test_npz_reads_only_the_rows_asked_for_and_refuses_what_would_not_fit(tmp_path, monkeypatch, order):
    """A compressed .npz whose array is far larger than its file: its header is read first. With --n
    only those rows are kept as the array is decompressed a chunk at a time (peak memory a fraction
    of the array), the same rows a .npy gives; the whole array, when it would not fit in the memory
    available, is refused before anything is decompressed. (Fortran order has no rows to stream: it
    is read whole, so it must fit.)"""
    import tracemalloc

    X = np.tile(np.random.default_rng(0).standard_normal((31, 64)), (3130, 1))  # 97030 x 64: 47 MiB
    path, flat = tmp_path / "big.npz", tmp_path / "big.npy"
    np.savez_compressed(path, x=np.asfortranarray(X) if order == "F" else X)
    np.save(flat, X)
    del X
    assert path.stat().st_size < 5 * 2**20
    assert expected_shape(str(path), n=100) == (100, 64)
    monkeypatch.setattr(data, "available_memory", lambda device="cpu": 24 * 2**20)
    tracemalloc.start()
    try:
        if order == "C":
            got, _ = caught(load_data, str(path), n=100, seed=3)
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 16 * 2**20, peak
            want, _ = caught(load_data, str(flat), n=100, seed=3)
            assert torch.equal(got, want)
        tracemalloc.reset_peak()
        fails(r"big.npz\['x'\] is too large for memory: 97030 x 64 values of float64 take 47.4 MiB and 24 MiB is "
              "available; draw a subset with --n", load_data, str(path))
        fails(r"big.npz\['x'\] is too large for memory", read_file, path)
        if order == "F":
            fails(r"big.npz\['x'\] is too large for memory", load_data, str(path), n=100)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 2**20, peak  # refused from the header: nothing was decompressed
    finally:
        tracemalloc.stop()


def test_a_npy_that_cannot_be_mapped_is_a_memory_error_not_a_permission_one(tmp_path):
    """An 8 GB .npy (sparse on disk) under an address-space limit (ulimit -v): mapping it fails with
    ENOMEM, which is reported as memory, not as an unreadable file."""
    big = tmp_path / "big.npy"
    with big.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 1000)})
        fh.truncate(fh.tell() + 8 * 10**9)
    script = textwrap.dedent(f"""
        import re, resource
        from aedyn.data import load_data
        from aedyn.errors import AedynError
        used = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**31, resource.RLIM_INFINITY))
        try:
            load_data({str(big)!r}, n=10)
        except AedynError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "out of memory (or of address space" in out.stdout and "permissions" not in out.stdout, out.stdout


def write_idx(path, arr: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    dt = {0x08: ">u1", 0x0D: ">f4"}[code]
    payload = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">i", s) for s in arr.shape)
    payload += arr.astype(dt).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_images_are_flattened(tmp_path, compress):
    imgs = np.random.default_rng(0).integers(0, 256, size=(10, 4, 3)).astype(np.uint8)
    imgs[:, 0, 0] = 1  # no zero rows
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write_idx(tmp_path / name, imgs, compress=compress)
    raw = read_file(tmp_path / name)
    assert raw.dtype == np.float64
    np.testing.assert_array_equal(raw, imgs.reshape(10, 12).astype(np.float64))
    X, _ = caught(load_data, str(tmp_path / name), normalize=True, n=4, seed=0)
    assert X.shape == (4, 12)


def test_idx_float_and_corruption(tmp_path):
    arr = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / "x-ubyte", arr, code=0x0D)
    np.testing.assert_array_equal(read_file(tmp_path / "x-ubyte"), arr)
    (tmp_path / "bad-ubyte").write_bytes((tmp_path / "x-ubyte").read_bytes()[:-3])
    fails("truncated", read_file, tmp_path / "bad-ubyte")
    (tmp_path / "junk-ubyte").write_bytes(b"hello world")
    fails("magic", read_file, tmp_path / "junk-ubyte")


@pytest.mark.parametrize(("name", "shape", "match"), [
    ("t10k-images-idx3-ubyte", (0, 28, 28), r"holds no samples \(header shape \[0, 28, 28\]\)"),
    ("empty-images-idx3-ubyte.gz", (0, 28, 28), "holds no samples"),
    ("flat-idx2-ubyte", (5, 0), "holds samples of zero size"),
    ("train-labels-idx1-ubyte.gz", (7,), r"labels file; load the matching images file \('train-images-idx3-ubyte"),
    ("labels.idx", (7,), "1-D IDX file of 7 values, i.e. a labels file"),
])
def test_idx_shapes_without_samples(tmp_path, name, shape, match):
    write_idx(tmp_path / name, np.zeros(shape, dtype=np.uint8), compress=name.endswith(".gz"))
    fails(match, read_file, tmp_path / name)
    fails(match, load_data, str(tmp_path / name))


def test_os_errors_name_the_path_and_the_reason(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.eye(3))
    write_idx(tmp_path / "a-ubyte", np.eye(3, dtype=np.uint8))
    (tmp_path / "a.csv").write_text("1,2\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(data.np, "load", denied)
    text = fails(r"cannot read '.*a\.npy': Permission denied", load_data, str(tmp_path / "a.npy"))
    assert str(tmp_path) in text
    monkeypatch.setattr(Path, "read_bytes", broken)
    fails(r"cannot read '.*a-ubyte': Input/output error", read_file, tmp_path / "a-ubyte")
    monkeypatch.setattr(Path, "open", broken)
    fails(r"cannot read '.*a\.csv': Input/output error", read_file, tmp_path / "a.csv")
    monkeypatch.undo()
    monkeypatch.setattr(data.os, "access", lambda *a, **k: False)
    fails(r"cannot read '.*a\.csv': permission denied", check_source, str(tmp_path / "a.csv"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_permission(tmp_path):
    path = tmp_path / "locked.csv"
    path.write_text("1,2\n")
    path.chmod(0)
    try:
        fails("permission denied", load_data, str(path))
    finally:
        path.chmod(0o600)


def test_allocation_failures_say_too_large(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.eye(3))

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 80000000000 bytes.")

    monkeypatch.setattr(data, "as_tensor", no_memory)
    fails(r"a\.npy is too large for memory", load_data, str(tmp_path / "a.npy"))
    monkeypatch.setattr(data, "as_tensor", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):  # not every RuntimeError is about memory
        load_data(str(tmp_path / "a.npy"))


@pytest.mark.parametrize(("arr", "match"), [
    (np.arange(1.0, 4.0), "holds a 1-D array of 3 values; data must be 2-D"),
    (np.float64(3.0), "holds a single number"),
    (np.ones((2, 2), dtype=complex), "holds complex numbers"),
    (np.zeros(2, dtype=[("a", "<f8")]), "not real numbers"),
])
def test_npy_contents_that_are_not_a_matrix(tmp_path, arr, match):
    np.save(tmp_path / "x.npy", arr)
    fails(match, load_data, str(tmp_path / "x.npy"))
    fails(match, check_source, str(tmp_path / "x.npy"))


@pytest.mark.parametrize(("shape", "n", "match"), [
    ((0, 4), None, r"x\.npy is empty \(shape 0 x 4\)"),
    ((3, 0), None, r"x\.npy is empty \(shape 3 x 0\)"),
    ((0, 2, 2), None, r"x\.npy is empty \(shape 0 x 4\)"),
    ((0, 4), 2, "x.npy holds no samples"),
])
def test_npy_without_values(tmp_path, shape, n, match):
    np.save(tmp_path / "x.npy", np.zeros(shape))
    fails(match, load_data, str(tmp_path / "x.npy"), n=n)


def test_missing_and_unknown_sources(tmp_path):
    fails("does not exist", load_data, str(tmp_path / "nope.npy"))
    fails("unknown data source 'mnist'", load_data, "mnist")
    (tmp_path / "x.txt").write_text("1 2")
    fails("cannot tell the format", load_data, str(tmp_path / "x.txt"))
    fails("needs both n and d", load_data, "sphere", n=3)
    fails("is a folder", load_data, str(tmp_path))


def _source_files(tmp_path: Path) -> dict[str, str]:
    np.save(tmp_path / "m.npy", np.random.default_rng(0).standard_normal((30, 2, 3)))
    np.savez(tmp_path / "m.npz", x=np.eye(4) + 1)
    (tmp_path / "m.csv").write_text("1,2\n3,4\n5,7\n")
    return {name: str(tmp_path / name) for name in ("m.npy", "m.npz", "m.csv")}


@pytest.mark.parametrize(("source", "kwargs", "match"), [
    ("sphere", {"n": 3, "d": 2, "classes": [1]}, "--classes filters digit labels; sphere has none: drop --classes"),
    ("m.csv", {"classes": [1]}, "--classes filters digit labels; m.csv has none"),
    ("m.npy", {"classes": [0, 1]}, "m.npy has none: drop --classes"),
    ("array", {"classes": [1]}, "in-memory data has none"),
    ("digits", {"classes": []}, "--classes is empty"),
    ("digits", {"classes": [3, 12, -1]}, r"digit classes must be in 0\.\.9; got \[-1, 12\]"),
    ("digits", {"classes": "01"}, "--classes must be a list of digits"),
    ("digits", {"classes": [1.5]}, "each --classes entry must be"),
    ("digits", {"classes": 3}, "--classes must be a list of digits"),
    ("digits", {"d": 32}, "d = 64; got d = 32: drop --d"),
    ("digits", {"n": 400, "classes": [3, 7]}, "n = 400 but digits of classes \\[3, 7\\] has only 362 samples"),
    ("digits", {"n": 2000}, "has only 1797 samples"),
    ("digits", {"key": "x"}, "--key names an array inside a .npz file; digits is not one"),
    ("m.csv", {"key": "x"}, "m.csv is not one: drop --key"),
    ("m.npy", {"key": "x"}, "m.npy is not one"),
    ("m.npz", {"key": 3}, "--key must name an array"),
    ("sphere", {"n": 3}, "needs both n and d"),
    ("sphere", {"n": 0, "d": 3}, "n must be"),
    ("sphere", {"n": 1.5, "d": 3}, "n must be"),
    ("sphere", {"n": 3, "d": True}, "d must be"),
    ("sphere", {"n": 3, "d": 2, "seed": -1}, "seed must be"),
    ("sphere", {"n": 3, "d": 2, "seed": 2.0}, "seed must be"),
    ("m.npy", {"n": 31}, "n = 31 but m.npy has only 30 samples"),
    ("m.npy", {"d": 5}, "m.npy has d = 6 columns but d = 5 was asked for"),
    ("array", {"n": 2}, "slice an in-memory array yourself"),
    ("mnist", {}, "unknown data source 'mnist'"),
    ("", {}, "is not a name or a path"),
    ("missing.npy", {}, "does not exist"),
    ("folder", {}, "is a folder"),
])
def test_check_source_refuses_before_loading(tmp_path, monkeypatch, source, kwargs, match):
    files = _source_files(tmp_path)
    (tmp_path / "folder").mkdir()
    src = {"array": np.eye(3), "missing.npy": str(tmp_path / "missing.npy"), "folder": str(tmp_path / "folder")}
    src.update(files)
    resolved = src.get(source, source)
    monkeypatch.setattr(data, "_read_csv", lambda *a: pytest.fail("check_source must not read a CSV"))
    monkeypatch.setattr(data, "_read_npz", lambda *a: pytest.fail("check_source must not read a .npz"))
    fails(match, check_source, resolved, **kwargs)
    monkeypatch.undo()
    fails(match, load_data, resolved, **kwargs)


def test_check_source_accepts_good_options(tmp_path):
    files = _source_files(tmp_path)
    assert check_source("sphere", n=3, d=2, seed=np.int64(5)) is None
    assert check_source("digits", n=np.int64(10), classes=(0, 1, 1), d=64) is None
    assert check_source(files["m.npz"], key="x") is None
    assert check_source(Path(files["m.npy"]), n=30, d=6) is None
    assert check_source(np.eye(3)) is None


def test_expected_shape_matches_load_data(tmp_path):
    files = _source_files(tmp_path)
    cases = [
        ("sphere", {"n": 5, "d": 3}, (5, 3)),
        ("digits", {}, (1797, 64)),
        ("digits", {"classes": [0, 1]}, (360, 64)),
        ("digits", {"classes": [9], "n": 7}, (7, 64)),
        (files["m.npy"], {}, (30, 6)),
        (files["m.npy"], {"n": 4}, (4, 6)),
        (files["m.npz"], {}, (4, 4)),
        (files["m.npz"], {"n": 3}, (3, 4)),
        (files["m.csv"], {}, None),
        (np.eye(3) + 1, {}, None),
    ]
    for source, kwargs, want in cases:
        assert expected_shape(source, **kwargs) == want
        got, _ = caught(load_data, source, **kwargs)
        if want is not None:
            assert tuple(got.shape) == want
    fails("--classes filters digit labels", expected_shape, "sphere", n=2, d=2, classes=[1])


@pytest.mark.parametrize(("X", "match"), [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "row 0 contains NaN"),
    (np.array([[1.0, 0.0], [np.inf, 1.0]]), "row 1 contains inf"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
    (np.array([[1.0, 0.0], [1e-320, -1e-320]]),
     r"row 1 is subnormal \(largest \|entry\| 1e-320 < 2\.2e-308\): its direction is not representable"),
    (np.array([[5e-324, 0.0]]), "row 0 is subnormal"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 0)), "empty"),
    (np.ones(3), "must be 2-D.*reshape"),
    (np.ones((2, 2, 2)), "must be 2-D"),
    (np.array([["a", "b"]]), "must hold numbers"),
])
def test_validate_rejects(X, match):
    fails(match, validate, X)


def test_validate_accepts_numpy_and_torch_and_converts():
    X = sphere(4, 3, seed=0)
    a = validate(X.numpy(), dtype="float32")
    b = validate(X)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    torch.testing.assert_close(a.double(), b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("scale", [1e308, 1.7e308, 1e-300, 1e-307, 1.0, 3.7])
def test_normalisation_neither_overflows_nor_underflows(scale):
    base = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0], [-0.5, 0.25, 0.75], [1.0, 0.0, 0.0]])
    base /= np.abs(base).max(axis=1, keepdims=True)
    X, notes = caught(validate, base * scale)
    norms = X.norm(dim=1)
    assert float((norms - 1).abs().max()) <= 1e-15
    want = base / np.linalg.norm(base, axis=1, keepdims=True)
    np.testing.assert_allclose(X.numpy(), want, rtol=0, atol=4e-16)
    assert any("normalised 3 of 4 rows" in s for s in notes) or scale != 1.0


def test_no_normalize_reports_huge_rows_as_not_unit():
    fails(r"row 0 has norm 1\.41421 x 1\.5e\+308 \(beyond float64\), not 1", validate,
          np.array([[1.5e308, 1.5e308], [0.0, 1.0]]), normalize=False)
    fails(r"row 0 has norm 1\.41421356237e\+308, not 1", validate, np.array([[1e308, 1e308]]), normalize=False)
    fails(r"row 1 has norm 1e-300, not 1", validate, np.array([[1.0, 0.0], [1e-300, 0.0]]), normalize=False)
    ok = validate(np.array([[0.6, 0.8], [1.0, 0.0]]), normalize=False)
    assert ok.shape == (2, 2)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_parallel_rows_warn(sign):
    X = sphere(6, 4, seed=1)
    X[4] = sign * 3.0 * X[1]
    _, notes = caught(validate, X)
    hits = [s for s in notes if "rows 1 and 4" in s]
    assert len(hits) == 1
    assert ("singular" in hits[0]) == (sign > 0)


def test_no_parallel_warning_for_distinct_rows_in_chunks():
    X = sphere(50, 3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AedynWarning)
        data._warn_parallel(X, "x", cap=64 * 7)
    X[49] = X[3]
    _, notes = caught(data._warn_parallel, X, "x", cap=64 * 7)
    assert any("rows 3 and 49" in s and "1 such pair" in s for s in notes)


def brute_force_pairs(X: torch.Tensor) -> tuple[int, tuple[int, int, float] | None]:
    U = data._unit_rows(X.double())
    C = (U @ U.T).numpy()
    i, j = np.nonzero(np.triu(np.abs(C) > 1 - PARALLEL_TOL, k=1))
    if not len(i):
        return 0, None
    return len(i), (int(i[0]), int(j[0]), float(C[i[0], j[0]]))  # np.nonzero is row-major: lexicographic


def assert_same_pairs(got: tuple, want: tuple, d: int) -> None:
    """``_parallel_pairs``'s answer against :func:`brute_force_pairs`: the count, the pair and the
    completeness flag exactly, the cosine within the rounding of a dot product of unit rows,
    ``8 (d + 2) eps`` (the slack ``_parallel_pairs`` itself allows; the two cosines come from
    different summation orders, a GEMM here and gathered rows there, which differ between CPUs)."""
    (count, first, complete), (want_count, want_first) = got, want[:2]
    assert (count, complete) == (want_count, True)
    if want_first is None:
        assert first is None
        return
    assert first is not None and first[:2] == want_first[:2]
    assert first[2] == pytest.approx(want_first[2], rel=0, abs=8 * (d + 2) * np.finfo(np.float64).eps)


def planted(seed: int, n: int = 240, d: int = 5, dupes: int = 0) -> tuple[torch.Tensor, set[tuple[int, int]]]:
    """Random rows with scaled copies, negated copies and near-threshold partners planted, and
    ``dupes`` exact (or negated, or power-of-two scaled) copies of a few rows."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    slots = rng.permutation(n)
    must: set[tuple[int, int]] = set()
    if dupes:
        sources, targets = slots[36:40], slots[40:40 + dupes]
        for t, target in enumerate(targets):
            X[target] = X[sources[t % 4]] * (-1.0, 1.0, 0.25, -8.0)[t % 4 if t > 3 else 1]
        groups = [[int(sources[g])] + [int(x) for t, x in enumerate(targets) if t % 4 == g] for g in range(4)]
        extra = int(slots[40 + dupes])
        X[extra] = 3.0 * X[sources[0]]  # parallel to group 0 (bitwise equal to it or not, once unit)
        groups[0].append(extra)
        must |= {(min(p), max(p)) for g in groups for p in ((u, v) for u in g for v in g if u < v)}
    for t in range(0, 36, 2):
        a, b = int(slots[t]), int(slots[t + 1])
        u = X[a] / np.linalg.norm(X[a])
        kind = t // 2 % 6
        if kind == 0:
            X[b] = rng.uniform(0.1, 10) * X[a]
        elif kind == 1:
            X[b] = -rng.uniform(0.1, 10) * X[a]
        else:  # |cos| = 1 - tol (1 -+ 1%): just inside (kinds 2, 4) or just outside (kinds 3, 5)
            v = rng.standard_normal(d)
            v -= (v @ u) * u
            v /= np.linalg.norm(v)
            c = 1 - PARALLEL_TOL * (0.99 if kind in (2, 4) else 1.01)
            X[b] = (c * u + np.sqrt(1 - c * c) * v) * (1 if kind < 4 else -1) * rng.uniform(0.5, 2)
        if kind in (0, 1, 2, 4):
            must.add((min(a, b), max(a, b)))
    return torch.from_numpy(X), must


@pytest.mark.parametrize(("seed", "dupes"), [(0, 0), (1, 0), (2, 0), (3, 0), (4, 12), (5, 40), (6, 40)])
def test_parallel_check_agrees_with_brute_force(seed, dupes):
    X, must = planted(seed, dupes=dupes)  # 40 of 240 copies: more than 1% repeats, so rows are grouped
    want = brute_force_pairs(X)
    assert want[0] == len(must) and want[1] is not None and (want[1][0], want[1][1]) == min(must)
    assert_same_pairs(data._parallel_pairs(X), want, X.shape[1])
    assert_same_pairs(data._parallel_pairs(X, cap=64 * 3), want, X.shape[1])  # tiny chunks
    count, first, _ = data._parallel_pairs(X[:, :1])  # d = 1: every pair is parallel
    assert count == len(X) * (len(X) - 1) // 2 and first is not None and first[:2] == (0, 1)


def test_parallel_check_all_parallel_and_none():
    X = torch.ones(300, 4, dtype=torch.float64)
    X[::3] *= -2.0
    assert_same_pairs(data._parallel_pairs(X, cap=64 * 50), brute_force_pairs(X), 4)
    Y = X * torch.linspace(1, 3, 300, dtype=torch.float64)[:, None]  # parallel, but not bitwise equal when unit
    Y[:, 0] += torch.linspace(0, 1e-6, 300, dtype=torch.float64)  # some pairs beyond the tolerance
    assert_same_pairs(data._parallel_pairs(Y, cap=64 * 50), brute_force_pairs(Y), 4)
    binary = torch.from_numpy(np.random.default_rng(1).integers(0, 2, (3000, 4)).astype(float) + np.eye(4)[[0]])
    # at most 15 distinct rows: grouped, counted exactly
    assert_same_pairs(data._parallel_pairs(binary), brute_force_pairs(binary), 4)
    assert data._parallel_pairs(sphere(2000, 8, seed=3)) == (0, None, True)
    assert data._parallel_pairs(sphere(1, 8)) == (0, None, True)


def test_parallel_check_is_bounded_in_time_and_says_so():
    """Distinct, nearly collinear rows make every pair a candidate; past the budget each row meets
    its nearest candidates only, and the warning says the check was cut short."""
    t = torch.linspace(0, 1e-6, 400, dtype=torch.float64)  # all within 1e-6 rad: every pair parallel
    X = torch.stack([torch.cos(t), torch.sin(t), torch.zeros_like(t)], dim=1)
    assert data._parallel_pairs(X)[2] and data._parallel_pairs(X)[0] == 400 * 399 // 2
    count, first, complete = data._parallel_pairs(X, budget=4000)
    assert not complete and 0 < count <= 4000 and first[:2] == (0, 1)
    _, notes = caught(data._warn_parallel, X, "x", budget=4000)
    assert any("at least" in text for text in notes)
    spread = torch.linspace(0, 1e-4 * 399, 400, dtype=torch.float64)  # 1e-4 rad apart: cos = 1 - 5e-9, none parallel
    Y = torch.stack([torch.cos(spread), torch.sin(spread), torch.zeros_like(spread)], dim=1)
    assert data._parallel_pairs(Y) == (0, None, True)
    _, notes = caught(data._warn_parallel, Y, "y", budget=1)
    assert any("cut short" in text and "may remain" in text for text in notes)


def test_parallel_check_of_a_million_rows_runs_in_bounded_memory(tmp_path):
    script = textwrap.dedent("""
        import resource, time, warnings
        from pathlib import Path
        import numpy as np
        from aedyn import data
        from aedyn.data import sphere, load_data

        # a 1 GiB .npy (sparse on disk): --n draws rows without reading the rest
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows, cols = 2**20, 128
        path = %(path)r
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (rows, cols)})
            start = fh.tell()
            fh.truncate(start + rows * cols * 8)
        got = data._load_file(Path(path), key=None, n=1000, d=None, seed=0)
        assert got.shape == (1000, cols) and type(got) is np.ndarray
        rss_subset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        X = sphere(10**6, 3, seed=0)
        X[999_999] = -2.0 * X[17]
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            data._warn_parallel(X, "x")
        elapsed = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        msg = str(w[-1].message)
        assert "such pair(s)" in msg, msg
        print(rss_before, rss_subset, rss, elapsed, msg)
    """) % {"path": str(tmp_path / "huge.npy")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rss_before, rss_subset, rss, elapsed, _ = proc.stdout.split(" ", 4)
    # kilobytes: 1000 rows of the 1 GiB file cost their pages and the readahead (65 MiB alone, 285 MiB in the
    # suite), never half the file
    assert int(rss_subset) - int(rss_before) < 512 * 1024, f"{(int(rss_subset) - int(rss_before)) // 1024} MiB"
    assert int(rss) < 1024 * 1024, f"peak RSS {int(rss) // 1024} MiB"
    assert float(elapsed) < 30, f"{float(elapsed):.1f} s"


def test_digits_per_class_draws_that_many_of_each_class_seeded():
    X, y = digits(per_class=3, seed=4, classes=[2, 7, 9], return_labels=True)
    assert X.shape == (9, 64) and y.tolist() == [2, 2, 2, 7, 7, 7, 9, 9, 9]
    again, _ = digits(per_class=3, seed=4, classes=[2, 7, 9], return_labels=True)
    other, _ = digits(per_class=3, seed=5, classes=[2, 7, 9], return_labels=True)
    assert torch.equal(X, again) and not torch.equal(X, other)
    every, labels = digits(return_labels=True)  # each drawn row is a stored row of its class
    for row, label in zip(X, y, strict=True):
        match = (every == row).all(dim=1)
        assert bool(match.any()) and set(labels[match].tolist()) == {int(label)}
    assert expected_shape("digits", per_class=3, classes=[2, 7, 9]) == (9, 64)
    assert load_data("digits", per_class=2, seed=0).shape == (20, 64)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"per_class": 2, "n": 10}, "not both"),
    ({"per_class": 175}, "smallest digit class"),
    ({"per_class": 0}, "per_class"),
])
def test_per_class_is_checked_before_loading(kwargs, match):
    with pytest.raises(AedynError, match=match):
        check_source("digits", **kwargs)
    with pytest.raises(AedynError, match="no classes"):
        check_source("sphere", n=4, d=3, per_class=1)


def test_heldout_inputs_are_fresh_rows_of_the_same_source():
    from aedyn.data import heldout_inputs

    X = load_data("digits", per_class=2, seed=0)
    Z = heldout_inputs("digits", X, 50, seed=3)
    assert Z.shape == (50, 64) and Z.dtype == X.dtype
    assert not bool((Z[:, None, :] == X[None, :, :]).all(dim=2).any())  # none is a training row
    assert torch.allclose(Z.norm(dim=1), torch.ones(50, dtype=Z.dtype))  # normalised as X was
    assert torch.equal(Z, heldout_inputs("digits", X, 50, seed=3))
    held = heldout_inputs("digits", X, per_class=1, seed=3, classes=[1, 5])
    every, labels = digits(classes=[1, 5], return_labels=True)
    unit = every / every.norm(dim=1, keepdim=True)
    found = [labels[(unit - row).abs().amax(dim=1) < 1e-12].tolist() for row in held]
    assert found == [[1], [5]]
    S = load_data("sphere", n=6, d=3, seed=0)
    T = heldout_inputs("sphere", S, 4, seed=1)
    assert torch.equal(T, load_data("sphere", n=4, d=3, seed=1))
    with pytest.raises(AedynError, match="draws the training points again"):
        heldout_inputs("sphere", S, 6, seed=0)  # the same draw as the training data
