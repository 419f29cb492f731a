"""Data sources, file formats and the one validation path."""

from __future__ import annotations

import gzip
import struct
import warnings

import numpy as np
import pytest
import torch

from aedyn.data import digits, load_data, read_file, sphere, validate
from aedyn.errors import AedynError, AedynWarning


def caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", AedynWarning)
        out = fn(*args, **kwargs)
    return out, [str(x.message) for x in w if issubclass(x.category, AedynWarning)]


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
    Xs, ys = digits(100, seed=1, classes=[0, 1], return_labels=True)
    assert Xs.shape == (100, 64) and set(ys.tolist()) <= {0, 1}
    assert torch.equal(Xs, digits(100, seed=1, classes=[0, 1]))
    assert not torch.equal(Xs, digits(100, seed=2, classes=[0, 1]))
    with pytest.raises(AedynError, match="only 362 samples"):
        digits(1000, classes=[3, 7])
    with pytest.raises(AedynError, match=r"0\.\.9"):
        digits(10, classes=[12])


def test_load_data_digits_normalises_and_says_so():
    X, notes = caught(load_data, "digits", n=50, seed=0)
    assert X.shape == (50, 64)
    torch.testing.assert_close(X.norm(dim=1), torch.ones(50, dtype=torch.float64), rtol=0, atol=1e-14)
    assert any("normalised 50 of 50 rows" in s for s in notes)
    with pytest.raises(AedynError, match="not 1"):
        load_data("digits", n=5, normalize=False)
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
        got = load_data(str(tmp_path / path), key=key)
        np.testing.assert_allclose(got.numpy(), X, rtol=0, atol=1e-15)
    sub = load_data(str(tmp_path / "a.npy"), n=5, seed=2)
    assert sub.shape == (5, 4)
    with pytest.raises(AedynError, match="name one with --key"):
        read_file(tmp_path / "b.npz")
    with pytest.raises(AedynError, match="no array 'x'"):
        read_file(tmp_path / "b.npz", key="x")


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
    np.testing.assert_array_equal(raw, imgs.reshape(10, 12).astype(np.float64))
    X = load_data(str(tmp_path / name), normalize=True, n=4, seed=0)
    assert X.shape == (4, 12)


def test_idx_float_and_corruption(tmp_path):
    arr = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / "x-ubyte", arr, code=0x0D)
    np.testing.assert_array_equal(read_file(tmp_path / "x-ubyte"), arr)
    (tmp_path / "bad-ubyte").write_bytes((tmp_path / "x-ubyte").read_bytes()[:-3])
    with pytest.raises(AedynError, match="truncated"):
        read_file(tmp_path / "bad-ubyte")
    (tmp_path / "junk-ubyte").write_bytes(b"hello world")
    with pytest.raises(AedynError, match="magic"):
        read_file(tmp_path / "junk-ubyte")


def test_csv_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2,3\n4,five,6\n")
    with pytest.raises(AedynError, match=r"line 2 column 2 is not a number \('five'\)"):
        read_file(tmp_path / "bad.csv")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(AedynError, match="different lengths"):
        read_file(tmp_path / "ragged.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AedynError, match="empty"):
        load_data(str(tmp_path / "empty.csv"))


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(AedynError, match="does not exist"):
        load_data(str(tmp_path / "nope.npy"))
    with pytest.raises(AedynError, match="unknown data source 'mnist'"):
        load_data("mnist")
    (tmp_path / "x.txt").write_text("1 2")
    with pytest.raises(AedynError, match="cannot tell the format"):
        load_data(str(tmp_path / "x.txt"))
    with pytest.raises(AedynError, match="needs both n and d"):
        load_data("sphere", n=3)


@pytest.mark.parametrize(("X", "match"), [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "row 0 contains NaN"),
    (np.array([[1.0, 0.0], [np.inf, 1.0]]), "row 1 contains inf"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 0)), "empty"),
    (np.ones(3), "must be 2-D.*reshape"),
    (np.ones((2, 2, 2)), "must be 2-D"),
    (np.array([["a", "b"]]), "must hold numbers"),
])
def test_validate_rejects(X, match):
    with pytest.raises(AedynError, match=match):
        validate(X)


def test_validate_accepts_numpy_and_torch_and_converts():
    X = sphere(4, 3, seed=0)
    a = validate(X.numpy(), dtype="float32")
    b = validate(X)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    torch.testing.assert_close(a.double(), b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_parallel_rows_warn(sign):
    X = sphere(6, 4, seed=1)
    X[4] = sign * 3.0 * X[1]
    _, notes = caught(validate, X)
    hits = [s for s in notes if "rows 1 and 4" in s]
    assert len(hits) == 1
    assert ("singular" in hits[0]) == (sign > 0)


def test_no_parallel_warning_for_distinct_rows_in_chunks():
    from aedyn import data

    X = sphere(50, 3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AedynWarning)
        data._warn_parallel(X, "x", chunk=7)
    X[49] = X[3]
    _, notes = caught(data._warn_parallel, X, "x", 7)
    assert any("rows 3 and 49" in s and "1 such pair" in s for s in notes)
