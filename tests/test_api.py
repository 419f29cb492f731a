"""The promises the public API makes everywhere, tested across every entry point.

1. NumPy arrays and torch tensors are both accepted, and give the same results (float64 and float32).
2. Bad arrays (NaN/inf, wrong ndim, wrong d, empty, strings, ragged lists, complex numbers) are an
   :class:`aedyn.AedynError` in every function that takes arrays.
3. The loaders turn every malformed file into an :class:`aedyn.AedynError`; savers never clobber.
4. Numeric parameters follow one set of rules everywhere (:mod:`aedyn._check`).
5. Every :class:`aedyn.AedynError` message is a single line.

Each promise is a table of callables, so covering a new public function is one line. Empty
batches are a policy, stated beside the bad-array table and tested as accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aedyn
from aedyn import (
    AedynError,
    KernelJob,
    LinearisedGD,
    NTKOperator,
    NTKPredictor,
    Params,
    Tangent,
    TrainJob,
    TrainResult,
    init_params,
    k0,
    k1,
    kernel_spectrum,
    load_data,
    memorisation,
    ntk_dense,
    ntk_drift,
    ntk_extremes,
    regime_kernel,
    validate,
)
from aedyn.data import expected_shape, sphere
from aedyn.linalg import lanczos_extremes, lobpcg_min
from aedyn.model import Features

# ----------------------------------------------------------------------------------------------
# one small seeded problem, as NumPy float64 arrays (each test converts them as it needs)

N, D, M, B = 6, 3, 16, 2
X = sphere(N, D, seed=1).numpy()
X_NEW = sphere(4, D, seed=2).numpy()
P = init_params(D, M, seed=0)
P2 = init_params(D, M, seed=5)
P_TIED = init_params(D, M, regime="tied", seed=0)
P32 = P.to(dtype="float32")
PB = Params(torch.stack([P.W, P2.W]), torch.stack([P.V, P2.V]), P.alpha)  # a batch of two networks
_rng = np.random.default_rng(7)
T_W = _rng.standard_normal((M, D))  # a tangent
T_V = _rng.standard_normal((D, M))
COT = _rng.standard_normal((N, D))  # a cotangent / an NTK input (n, d)
V_BATCH = _rng.standard_normal((B, N, D))
V_FLAT = _rng.standard_normal(N * D)
K = regime_kernel(X, "joint").numpy()
R0 = _rng.standard_normal((N, D))
W_NP, V_NP = P.W.numpy().copy(), P.V.numpy().copy()
OP = NTKOperator(P, X, "joint")
OP2 = NTKOperator(P2, X, "joint")
PRED = NTKPredictor(torch.from_numpy(X), "joint")
LIN = LinearisedGD(K, 0.1)


def _diag(dim: int, dtype: torch.dtype) -> torch.Tensor:
    """The diagonal of a positive definite operator with eigenvalues 1, 5.5 and 10 only (solvers converge fast)."""
    return 1.0 + 4.5 * (torch.arange(dim) % 3).to(dtype)


def _diag_matvec(v: torch.Tensor) -> torch.Tensor:
    """:func:`_diag` applied to a vector or a block (dimension 80 is above the solvers' dense cut-off of 64)."""
    scale = _diag(v.shape[0], v.dtype)
    return scale[:, None] * v if v.ndim == 2 else scale * v


def _lanczos(dim: int = 80, **options: Any) -> Any:
    """A short Lanczos run on :func:`_diag_matvec`."""
    return lanczos_extremes(_diag_matvec, dim, dtype=torch.float64, **{"max_iter": 30, "tol": 1e-3, **options})


def _lobpcg(dim: int = 80, **options: Any) -> Any:
    """A short LOBPCG run on :func:`_diag_matvec`, preconditioned by its exact inverse."""
    inverse = lambda R: R / _diag(dim, R.dtype)[:, None]  # noqa: E731
    return lobpcg_min(_diag_matvec, dim, dtype=torch.float64, precondition=inverse,
                      **{"max_iter": 30, "tol": 1e-3, **options})


def as_numpy(a: Any) -> np.ndarray:
    return np.array(a)


def as_torch(a: Any) -> torch.Tensor:
    return torch.tensor(np.array(a))


CONVERT = {"numpy": as_numpy, "torch": as_torch}


def one_line_error(fn: Callable[[], Any], match: str | None = None) -> AedynError:
    """``fn()`` raises an :class:`AedynError` (never another exception) whose message is one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AedynError) as info:
            fn()
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"
    assert message.strip(), "empty message"
    if match is not None:
        assert match in message, f"{match!r} not in {message!r}"
    return info.value


def flat(obj: Any) -> list[Any]:
    """Every number, array and string inside a result, in a fixed order (NumPy arrays)."""
    if isinstance(obj, torch.Tensor):
        return [obj.detach().cpu().numpy()]
    if isinstance(obj, np.ndarray):
        return [obj]
    if obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
        return [obj]
    if isinstance(obj, dict):
        return [x for key in sorted(obj) for x in (key, *flat(obj[key]))]
    if dataclasses.is_dataclass(obj):
        return flat({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, (tuple, list, Features)):  # Features unpacks as (A, D)
        return [x for item in obj for x in flat(item)]
    raise TypeError(f"cannot flatten {type(obj).__name__}")


def assert_same(a: Any, b: Any, tol: float = 1e-12) -> None:
    fa, fb = flat(a), flat(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb, strict=True):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
            assert x.shape == y.shape and x.dtype == y.dtype
            if x.dtype == bool or x.dtype.kind in "iu":
                np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_allclose(x, y, rtol=tol, atol=tol, equal_nan=True)
        elif isinstance(x, float) and isinstance(y, float):
            assert x == y or (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=tol, abs_tol=tol)
        else:
            assert x == y


def float_dtypes(obj: Any) -> set[np.dtype]:
    return {a.dtype for a in flat(obj) if isinstance(a, np.ndarray) and a.dtype.kind == "f"}


def _train_summary(r: TrainResult) -> tuple:
    return r.status, r.steps, r.loss, r.metrics, r.lr, r.lr_decoder, r.lambda_max, r.params, r.message


# ----------------------------------------------------------------------------------------------
# 1. NumPy and torch inputs give the same results
#
# Each entry takes ``cx`` (converts the data X, X_new, K) and ``ca`` (converts every other array:
# tangents, cotangents, NTK inputs, Y, R0, W, V); both are run as NumPy and as torch, and mixed.

Fn = Callable[[Callable[[Any], Any], Callable[[Any], Any]], Any]

ARRAY_API: dict[str, Fn] = {
    "forward": lambda cx, ca: aedyn.forward(P, cx(X), "joint"),
    "forward tied": lambda cx, ca: aedyn.forward(P_TIED, cx(X), "tied"),
    "forward batched": lambda cx, ca: aedyn.forward(P, cx(np.stack([X, X[::-1]])), "joint"),
    "loss": lambda cx, ca: aedyn.loss(P, cx(X), "joint"),
    "gradients joint": lambda cx, ca: aedyn.gradients(P, cx(X), "joint"),
    "gradients tied": lambda cx, ca: aedyn.gradients(P_TIED, cx(X), "tied"),
    "evaluate": lambda cx, ca: aedyn.evaluate(P, cx(X), "joint"),
    "jvp joint": lambda cx, ca: aedyn.jvp(P, cx(X), "joint", Tangent(ca(T_W), ca(T_V))),
    "jvp tied": lambda cx, ca: aedyn.jvp(P_TIED, cx(X), "tied", Tangent(ca(T_W), None)),
    "vjp joint": lambda cx, ca: aedyn.vjp(P, cx(X), "joint", ca(COT)),
    "vjp batched cotangent": lambda cx, ca: aedyn.vjp(P, cx(X), "joint", ca(V_BATCH)),
    "train": lambda cx, ca: _train_summary(aedyn.train(cx(X), P, "joint", lr="auto", steps=4, ntk_every=2)),
    "train weak lr": lambda cx, ca: _train_summary(aedyn.train(cx(X), P, "weak", lr=0.2, steps=3)),
    "train_batch": lambda cx, ca: [_train_summary(r) for r in aedyn.train_batch(cx(X), PB, "joint", steps=4,
                                                                                  ntk_every=2)],
    "train_batch per-network X, lr": lambda cx, ca: [_train_summary(r) for r in aedyn.train_batch(
        cx(np.stack([X, X[::-1]])), PB, "joint", lr=ca(np.array([0.1, 0.2])), lr_decoder=ca(np.array([0.3, 0.1])),
        steps=3)],
    "NTKOperator @ (n, d)": lambda cx, ca: NTKOperator(P, cx(X), "joint") @ ca(COT),
    "NTKOperator @ (b, n, d)": lambda cx, ca: NTKOperator(P, cx(X), "joint") @ ca(V_BATCH),
    "NTKOperator @ (n*d,)": lambda cx, ca: NTKOperator(P, cx(X), "joint") @ ca(V_FLAT),
    "NTKOperator tied @": lambda cx, ca: NTKOperator(P_TIED, cx(X), "tied") @ ca(COT),
    "NTKOperator.extremes": lambda cx, ca: NTKOperator(P, cx(X), "joint").extremes(),
    "ntk_dense": lambda cx, ca: ntk_dense(P, cx(X), "joint"),
    "ntk_dense tied": lambda cx, ca: ntk_dense(P_TIED, cx(X), "tied"),
    "ntk_extremes": lambda cx, ca: ntk_extremes(P, cx(X), "weak"),
    "ntk_drift exact": lambda cx, ca: ntk_drift(NTKOperator(P2, cx(X), "joint"), NTKOperator(P, cx(X), "joint")),
    "ntk_drift probes": lambda cx, ca: ntk_drift(NTKOperator(P2, cx(X), "joint"), NTKOperator(P, cx(X), "joint"),
                                                 probes=3, dense_limit=0),
    "k0": lambda cx, ca: k0(cx(X)),
    "k0 X, Y": lambda cx, ca: k0(cx(X), ca(X_NEW)),
    "k1": lambda cx, ca: k1(cx(X)),
    "k1 X, Y": lambda cx, ca: k1(cx(X), ca(X_NEW)),
    "regime_kernel": lambda cx, ca: regime_kernel(cx(X), "joint", kappa=0.5, nu=2.0),
    "regime_kernel X, Y": lambda cx, ca: regime_kernel(cx(X), "weak", Y=ca(X_NEW)),
    "kernel_spectrum": lambda cx, ca: kernel_spectrum(cx(X), "decoder"),
    "regime_kernel tied": lambda cx, ca: regime_kernel(cx(X), "tied", kappa=0.5),
    "TiedNTKLimit @": lambda cx, ca: aedyn.TiedNTKLimit(cx(X)) @ ca(COT),
    "safe_radius": lambda cx, ca: aedyn.safe_radius(P, cx(X)),
    "certify": lambda cx, ca: aedyn.certify(aedyn.train(cx(X), P, "joint", steps=4, ntk_every=2), cx(X)),
    "LinearisedGD.residual": lambda cx, ca: LinearisedGD(cx(K), 0.1).residual(ca(R0), 7),
    "LinearisedGD.loss_curve": lambda cx, ca: LinearisedGD(cx(K), 0.1).loss_curve(ca(R0), 7),
    "LinearisedGD.contraction": lambda cx, ca: LinearisedGD(cx(K), 0.1).contraction,
    "NTKPredictor converged": lambda cx, ca: NTKPredictor(cx(X), "joint")(cx(X_NEW)),
    "NTKPredictor k steps, f0": lambda cx, ca: NTKPredictor(
        cx(X), "joint", f0=lambda Z: aedyn.forward(P, Z, "joint"), eta=0.1, steps=5)(cx(X_NEW)),
    "NTKPredictor coefficients": lambda cx, ca: NTKPredictor(cx(X), "weak").coefficients,
    "memorisation": lambda cx, ca: memorisation(PRED, cx(X_NEW), cx(X), iterations=3),
    "load_data": lambda cx, ca: load_data(cx(X)),
    "validate": lambda cx, ca: validate(cx(X)),
    "Params": lambda cx, ca: Params(ca(W_NP), ca(V_NP), 0.25),
    "Params then forward": lambda cx, ca: aedyn.forward(Params(ca(W_NP), ca(V_NP), 0.25), cx(X), "joint"),
}

MIXES = [("numpy", "numpy"), ("numpy", "torch"), ("torch", "numpy")]


@pytest.mark.parametrize("mix", MIXES, ids=["+".join(m) for m in MIXES])
@pytest.mark.parametrize("name", list(ARRAY_API))
def test_numpy_and_torch_agree(name: str, mix: tuple[str, str]) -> None:
    fn = ARRAY_API[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", aedyn.AedynWarning)  # unit-norm, non-parallel data: no warning either way
        reference = fn(as_torch, as_torch)
        got = fn(CONVERT[mix[0]], CONVERT[mix[1]])
    assert_same(got, reference)


def test_results_are_float64_tensors() -> None:
    """NumPy float64 in, float64 tensors out (no silent cast to float32)."""
    for out in (aedyn.forward(P, X, "joint"), OP @ COT, ntk_dense(P, X, "joint"), k0(X), regime_kernel(X, "joint"),
                PRED(X_NEW), LIN.residual(R0, 3), load_data(X), Params(W_NP, V_NP, 0.5).W):
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64


# float32: where the dtype follows the parameters, float32 NumPy and torch inputs agree and the
# result takes the parameters' dtype; where it follows the input (kernels, data), it stays float32.

PARAM_DTYPE_API: dict[str, Callable[[Params, Callable[[Any], Any]], Any]] = {
    "forward": lambda p, c: aedyn.forward(p, c(X), "joint"),
    "loss": lambda p, c: aedyn.loss(p, c(X), "joint"),
    "gradients": lambda p, c: aedyn.gradients(p, c(X), "joint"),
    "evaluate": lambda p, c: aedyn.evaluate(p, c(X), "joint"),
    "jvp": lambda p, c: aedyn.jvp(p, c(X), "joint", Tangent(c(T_W), c(T_V))),
    "vjp": lambda p, c: aedyn.vjp(p, c(X), "joint", c(COT)),
    "NTKOperator @": lambda p, c: NTKOperator(p, c(X), "joint") @ c(COT),
    "ntk_dense": lambda p, c: ntk_dense(p, c(X), "joint"),
    "train": lambda p, c: aedyn.train(c(X), p, "joint", lr=0.1, steps=3).params,
    "train_batch": lambda p, c: [r.params for r in aedyn.train_batch(
        c(X), Params(p.W[None], p.V[None], p.alpha), "joint", lr=c(np.array([0.1])), steps=3)],
}


@pytest.mark.parametrize("name", list(PARAM_DTYPE_API))
def test_float32_inputs_follow_the_parameters(name: str) -> None:
    fn = PARAM_DTYPE_API[name]
    f32_np = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    f32_t = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    reference = fn(P32, f32_t)
    assert_same(fn(P32, f32_np), reference)
    assert float_dtypes(reference) == {np.dtype(np.float32)}
    # float64 NumPy data with float32 parameters: cast to the parameters' dtype
    assert_same(fn(P32, as_numpy), reference)
    # float32 data with float64 parameters: float64 results
    out64 = fn(P, f32_np)
    assert float_dtypes(out64) == {np.dtype(np.float64)}
    assert_same(out64, fn(P, f32_t))


INPUT_DTYPE_API: dict[str, Callable[[Callable[[Any], Any]], Any]] = {
    "k0": lambda c: k0(c(X), c(X_NEW)),
    "k1": lambda c: k1(c(X)),
    "regime_kernel": lambda c: regime_kernel(c(X), "joint"),
    "NTKPredictor": lambda c: NTKPredictor(c(X), "joint")(c(X_NEW)),
    "LinearisedGD": lambda c: LinearisedGD(c(K), 0.1).residual(c(R0), 3),
    "Params": lambda c: Params(c(W_NP), c(V_NP), 0.5),
}


@pytest.mark.parametrize("name", list(INPUT_DTYPE_API))
def test_float32_inputs_where_the_dtype_follows_the_input(name: str) -> None:
    fn = INPUT_DTYPE_API[name]
    got = fn(lambda a: np.asarray(a, dtype=np.float32))
    reference = fn(lambda a: torch.tensor(np.asarray(a, dtype=np.float32)))
    assert_same(got, reference)
    assert float_dtypes(reference) == {np.dtype(np.float32)}


def test_validate_and_load_data_take_float32_and_return_the_requested_dtype() -> None:
    x32 = X.astype(np.float32)
    for fn in (validate, load_data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", aedyn.AedynWarning)  # float32 rows are unit to 1e-7, not 1e-10
            a = fn(x32, dtype="float32")
            b = fn(torch.from_numpy(x32), dtype="float32")
        assert a.dtype == b.dtype == torch.float32
        assert torch.equal(a, b)


def test_params_from_numpy_keep_their_dtype_and_v_follows_w() -> None:
    p = Params(W_NP.astype(np.float32), V_NP, 0.5)
    assert p.W.dtype == p.V.dtype == torch.float32
    q = Params(torch.from_numpy(W_NP.astype(np.float32)), torch.from_numpy(V_NP), 0.5)
    assert_same(p, q)
    assert Params(W_NP, None, np.float32(0.5)).alpha == 0.5


# ----------------------------------------------------------------------------------------------
# 2. Bad arrays are an AedynError in every function that takes arrays

GOOD = X  # the shape every X slot expects: (N, D)

BAD_ARRAYS: dict[str, Callable[[np.ndarray], Any]] = {
    "nan": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 1, np.nan, a),
    "inf": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 1, np.inf, a),
    "-inf torch": lambda a: torch.tensor(np.where(np.arange(a.size).reshape(a.shape) == 0, -np.inf, a)),
    "nan torch": lambda a: torch.tensor(np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a)),
    "1-D": lambda a: a[0],
    "0-D": lambda a: np.float64(1.0),
    "3-D": lambda a: np.stack([a, a]),
    "wrong d": lambda a: a[:, :-1],
    "empty": lambda a: a[:0],
    "zero columns": lambda a: a[:, :0],
    "strings": lambda a: a.astype(str),
    "string list": lambda a: [["a"] * a.shape[1]] * a.shape[0],
    "ragged": lambda a: [list(a[0]), list(a[1][:-1]), *map(list, a[2:])],
    "complex": lambda a: a + 1j,
    "complex torch": lambda a: torch.tensor(a + 0j),
    "object": lambda a: np.array([[None] * a.shape[1]] * a.shape[0]),
    "None": lambda a: None,
}

ALL = frozenset(BAD_ARRAYS)
NOT_3D = ALL - {"3-D"}  # batched inputs are legitimate where the network is applied
NO_D = ALL - {"wrong d"}  # no network to disagree with

# slot name -> (call with the bad value in that slot, the bad kinds that apply, the base array)
SLOTS: dict[str, tuple[Callable[[Any], Any], frozenset[str], np.ndarray]] = {
    "forward X": (lambda x: aedyn.forward(P, x, "joint"), NOT_3D, GOOD),
    "loss X": (lambda x: aedyn.loss(P, x, "joint"), NOT_3D, GOOD),
    "gradients X": (lambda x: aedyn.gradients(P, x, "joint"), NOT_3D, GOOD),
    "evaluate X": (lambda x: aedyn.evaluate(P, x, "joint"), NOT_3D, GOOD),
    "jvp X": (lambda x: aedyn.jvp(P, x, "joint", Tangent(T_W, T_V)), NOT_3D, GOOD),
    "vjp X": (lambda x: aedyn.vjp(P, x, "joint", COT), NOT_3D, GOOD),
    "vjp cotangent": (lambda c: aedyn.vjp(P, X, "joint", c), NOT_3D, COT),
    "jvp tangent.W": (lambda t: aedyn.jvp(P, X, "joint", Tangent(t, T_V)), ALL - {"3-D", "empty"}, T_W),
    "jvp tangent.V": (lambda t: aedyn.jvp(P, X, "joint", Tangent(T_W, t)), ALL - {"3-D", "empty"}, T_V),
    "train X": (lambda x: aedyn.train(x, P, "joint", lr=0.1, steps=2), ALL, GOOD),
    "train_batch X": (lambda x: aedyn.train_batch(x, PB, "joint", lr=0.1, steps=2), ALL - {"3-D"}, GOOD),
    "safe_radius X": (lambda x: aedyn.safe_radius(P, x), NOT_3D, GOOD),  # a minimum over samples: none refused
    "NTKOperator X": (lambda x: NTKOperator(P, x, "joint"), ALL, GOOD),
    "NTKOperator @ v": (lambda v: OP @ v, ALL - {"3-D", "nan", "inf", "nan torch", "-inf torch"}, COT),
    "ntk_dense X": (lambda x: ntk_dense(P, x, "joint"), ALL, GOOD),
    "ntk_extremes X": (lambda x: ntk_extremes(P, x, "joint"), ALL, GOOD),
    "k0 X": (lambda x: k0(x), NO_D, GOOD),
    "k0 Y": (lambda y: k0(X, y), ALL - {"None"}, X_NEW),  # Y=None means Y = X
    "k1 X": (lambda x: k1(x), NO_D, GOOD),
    "k1 Y": (lambda y: k1(X, y), ALL - {"None"}, X_NEW),
    "regime_kernel X": (lambda x: regime_kernel(x, "joint"), NO_D, GOOD),
    "regime_kernel Y": (lambda y: regime_kernel(X, "joint", Y=y), ALL - {"None"}, X_NEW),
    "kernel_spectrum X": (lambda x: kernel_spectrum(x, "joint"), NO_D, GOOD),
    "LinearisedGD K": (lambda k: LinearisedGD(k, 0.1), ALL, K),  # "wrong d": not square
    "LinearisedGD.residual R0": (lambda r: LIN.residual(r, 3), NO_D, R0),
    "LinearisedGD.loss_curve R0": (lambda r: LIN.loss_curve(r, 3), NO_D, R0),
    "NTKPredictor X_train": (lambda x: NTKPredictor(x, "joint"), NO_D, GOOD),
    "NTKPredictor call X_new": (lambda x: PRED(x), ALL, X_NEW),
    "memorisation X_new": (lambda x: memorisation(PRED, x, X, iterations=2), ALL, X_NEW),
    "memorisation X_train": (lambda x: memorisation(PRED, X_NEW, x, iterations=2), ALL, GOOD),
    "load_data": (lambda x: load_data(x), NO_D, GOOD),
    "validate": (lambda x: validate(x), NO_D, GOOD),
    # parameters may hold inf/NaN (a diverged run's) and carry a batch dimension, by design
    "Params W": (lambda w: Params(w, None, 0.5), NO_D - {"nan", "inf", "nan torch", "-inf torch", "3-D"}, W_NP),
    "Params V": (lambda v: Params(W_NP, v, 0.5), ALL - {"nan", "inf", "nan torch", "-inf torch", "None"}, V_NP),
}

# Policy: a batch of 0 samples is well-defined for the pure maps (an empty result); whatever solves a
# problem on the samples (train, NTKOperator, ntk_dense, kernel_spectrum, NTKPredictor's and memorisation's
# training sets, LinearisedGD's kernel) refuses it. An n x 0 residual is a valid LinearisedGD input.
EMPTY_BATCH_OK = ("forward X", "loss X", "gradients X", "evaluate X", "jvp X", "k0 X", "k0 Y", "k1 X", "k1 Y",
                  "regime_kernel X", "regime_kernel Y", "NTKPredictor call X_new", "memorisation X_new")
ACCEPTED_BY_POLICY = {*((slot, "empty") for slot in EMPTY_BATCH_OK),
                      ("LinearisedGD.residual R0", "zero columns"), ("LinearisedGD.loss_curve R0", "zero columns")}


def refusal_problem(call: Callable[[], Any], names: str | None = None) -> str | None:
    """What is wrong with how ``call()`` refuses its input (``None``: a one-line AedynError that
    names ``names``, when given): accepted, a raw exception, or a poor message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except AedynError as exc:
        message = str(exc)
        if "\n" in message or (names is not None and names not in message):
            return f"message {message!r}"
        return None
    except Exception as exc:
        return f"raw {type(exc).__name__} ({exc})"
    return "accepted"


def _bad_kinds(slot: str) -> list[str]:
    """The bad kinds that apply to ``slot`` and are not known bugs."""
    return [kind for kind in BAD_ARRAYS if kind in SLOTS[slot][1] and (slot, kind) not in ACCEPTED_BY_POLICY]


@pytest.mark.parametrize("slot", list(SLOTS))
def test_bad_arrays_are_an_aedyn_error(slot: str) -> None:
    """Every bad kind of array in this slot: a one-line AedynError. All kinds are tried; the failure
    lists each kind that got through or raised something else."""
    call, _, base = SLOTS[slot]
    wrong = [f"{kind}: {problem}" for kind in _bad_kinds(slot)
             if (problem := refusal_problem(lambda kind=kind: call(BAD_ARRAYS[kind](base)))) is not None]
    assert not wrong, f"{slot}: " + "; ".join(wrong)


@pytest.mark.parametrize(("slot", "kind"), sorted(ACCEPTED_BY_POLICY))
def test_empty_batches_are_accepted_by_the_pure_maps(slot: str, kind: str) -> None:
    """The policy above: these give an empty result (or zeros, for sums over the empty batch:
    the loss, the gradient, a loss curve), not an error."""
    call, _, base = SLOTS[slot]
    out = call(BAD_ARRAYS[kind](base))
    parts = (dataclasses.astuple(out) if dataclasses.is_dataclass(out) else out if isinstance(out, tuple)
             else (out,))
    tensors = [np.asarray(t) for t in parts if isinstance(t, torch.Tensor | np.ndarray)]
    assert tensors and all(t.size == 0 or not t.any() for t in tensors), [t.shape for t in tensors]


def test_every_slot_accepts_its_good_array() -> None:
    """The bad-array table is meaningful: each slot works with its unmodified base array."""
    for call, _, base in SLOTS.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(base)
            call(torch.from_numpy(base.copy()))


@pytest.mark.parametrize("rows", [N - 1, N + 1])
def test_vjp_cotangent_with_wrong_n(rows: int) -> None:
    one_line_error(lambda: aedyn.vjp(P, X, "joint", np.ones((rows, D))), match="cotangent")


@pytest.mark.parametrize("shape", [(N, D - 1), (N - 1, D), (N * D - 1,), (N * D + 1,), (N,), (D,), (),
                                   (B, N, D - 1), (B, N - 1, D), (1, B, N, D), (N * D, 1), (1, N * D)])
@pytest.mark.parametrize("convert", ["numpy", "torch"])
def test_ntk_operator_matmul_refuses_a_wrong_shape(shape: tuple[int, ...], convert: str) -> None:
    v = CONVERT[convert](np.ones(shape))
    one_line_error(lambda: OP @ v, match=str((N, D)))


@pytest.mark.parametrize("tangent", [(T_W, T_V), None, T_W, [T_W, T_V], "W"],
                         ids=["tuple", "None", "array", "list", "string"])
def test_jvp_tangent_must_be_a_tangent(tangent: Any) -> None:
    one_line_error(lambda: aedyn.jvp(P, X, "joint", tangent), match="tangent")


def test_jvp_tangent_for_a_trained_layer_is_required() -> None:
    one_line_error(lambda: aedyn.jvp(P, X, "joint", Tangent(None, T_V)), match="tangent.W")
    one_line_error(lambda: aedyn.jvp(P, X, "decoder", Tangent(T_W, None)), match="tangent.V")


@pytest.mark.parametrize(("W", "V", "alpha", "match"), [
    (np.ones(D), None, 0.5, "W"),                          # 1-D W
    (np.ones((0, D)), None, 0.5, "W"),                     # width 0
    (np.ones((M, 0)), None, 0.5, "W"),                     # d = 0
    (np.ones((M, D)), np.ones((M, D)), 0.5, "V"),          # V not transposed
    (np.ones((M, D)), np.ones((D, M + 1)), 0.5, "V"),      # V of another width
    (np.ones((M, D)), np.ones((B, D, M)), 0.5, "V"),       # V batched, W not
    (np.ones((M, D)), np.ones(D), 0.5, "V"),               # 1-D V
    (np.ones((M, D)), None, 0.0, "alpha"),
    (np.ones((M, D)), None, -1.0, "alpha"),
    (np.ones((M, D)), None, np.nan, "alpha"),
    (np.ones((M, D)), None, np.inf, "alpha"),
    (np.ones((M, D)), None, True, "alpha"),
    (np.ones((M, D)), None, "1", "alpha"),
    (np.ones((M, D)), None, np.array([0.5]), "alpha"),
    (np.ones((M, D)), None, None, "alpha"),
    (np.ones((M, D)), None, 1 + 0j, "alpha"),
    (torch.ones(M, D), torch.ones(M, D), 0.5, "V"),
    (torch.ones(D), None, 0.5, "W"),
], ids=["1-D W", "0 x d W", "m x 0 W", "V not transposed", "V width", "V batched", "1-D V", "alpha 0", "alpha < 0",
        "alpha nan", "alpha inf", "alpha True", "alpha '1'", "alpha array", "alpha None", "alpha complex",
        "torch V not transposed", "torch 1-D W"])
def test_params_refuse_bad_shapes_and_alpha(W: Any, V: Any, alpha: Any, match: str) -> None:
    one_line_error(lambda: Params(W, V, alpha), match=match)


def test_functions_refuse_things_that_are_not_params() -> None:
    for params in ((P.W, P.V), None, {"W": P.W}, W_NP):
        one_line_error(lambda p=params: aedyn.forward(p, X, "joint"), match="Params")
        one_line_error(lambda p=params: aedyn.train(X, p, "joint", lr=0.1, steps=1), match="Params")
        one_line_error(lambda p=params: NTKOperator(p, X, "joint"), match="Params")
    for params in (None, "W", (P.W, P.V)):
        one_line_error(lambda p=params: aedyn.safe_radius(p, X), match="Params")
        one_line_error(lambda p=params: aedyn.jvp(p, X, "joint", Tangent(T_W, T_V)), match="Params")
    one_line_error(lambda: aedyn.forward(P_TIED, X, "joint"), match="decoder")
    one_line_error(lambda: ntk_drift(OP, P), match="NTKOperator")


@pytest.mark.parametrize(("loss", "match"), [(np.ones((4, 3)), "1-D"), ("abc", "loss"), (["1", "2", "3"], "loss"),
                                           (np.float64(1.0), "1-D"), (None, "loss"), ([[1.0], [2.0, 3.0]], "loss")],
                         ids=["2-D", "string", "strings", "scalar", "None", "ragged"])
def test_fit_linear_rate_refuses_what_is_not_a_loss_history(loss: Any, match: str) -> None:
    one_line_error(lambda: aedyn.fit_linear_rate(loss), match=match)


def test_fit_linear_rate_checks_its_window() -> None:
    for start, stop, match in ((-1, None, "start"), (None, 1.5, "stop"), ("0", None, "start")):
        one_line_error(lambda a=start, b=stop: aedyn.fit_linear_rate(np.ones(8), a, b), match=match)


@pytest.mark.parametrize("job", [None, "kernel", {"regime": "joint"}], ids=["None", "str", "dict"])
def test_job_runners_refuse_what_is_not_a_job(job: Any) -> None:
    one_line_error(lambda: aedyn.run_kernel_job(job), match="KernelJob")
    one_line_error(lambda: aedyn.run_job(job), match="TrainJob")


def test_memorisation_with_a_map_that_returns_nan() -> None:
    """A map whose outputs are not finite is measured, not refused: its trajectories diverge."""
    out = memorisation(lambda Z: Z * math.nan, X_NEW, X, iterations=2)
    assert set(out.fate) == {"diverged"}


@pytest.mark.parametrize("f", [lambda Z: np.asarray(Z), lambda Z: "a", lambda Z: None, lambda Z: Z[:, :-1],
                               lambda Z: Z[0]], ids=["returns NumPy", "returns str", "returns None",
                                                     "returns wrong d", "returns 1-D"])
def test_memorisation_checks_what_the_map_returns(f: Callable[[Any], Any]) -> None:
    try:
        out = memorisation(f, X_NEW, X, iterations=1)
    except AedynError as exc:
        assert "\n" not in str(exc)
        return
    assert_same(out, memorisation(lambda Z: torch.as_tensor(f(Z)), X_NEW, X, iterations=1))


# ----------------------------------------------------------------------------------------------
# 3. Loaders: every malformed file is an AedynError; savers never clobber


@pytest.fixture(scope="module")
def result() -> TrainResult:
    return aedyn.train(X, P, "joint", lr=0.1, steps=4, ntk_every=2)


@pytest.fixture(scope="module")
def record(result: TrainResult) -> dict[str, Any]:
    return json.loads(json.dumps(result.to_record()))


REQUIRED_KEYS = ["kind", "status", "steps", "loss", "metrics", "lr", "regime", "wall_time", "message"]


def _write(path: Path, obj: Any = None, *, raw: bytes | None = None) -> Path:
    path.write_bytes(raw if raw is not None else json.dumps(obj).encode())
    return path


def test_train_result_round_trip(tmp_path: Path, result: TrainResult) -> None:
    path = result.save(tmp_path / "run.json")
    back = TrainResult.load(path)
    assert (back.status, back.steps, back.regime, back.lr, back.lr_decoder, back.message) == \
        (result.status, result.steps, result.regime, result.lr, result.lr_decoder, result.message)
    np.testing.assert_array_equal(back.loss, result.loss)
    assert sorted(back.metrics) == sorted(result.metrics)
    for key, values in result.metrics.items():  # reloaded metrics are float64 (steps included)
        np.testing.assert_array_equal(back.metrics[key], np.asarray(values, dtype=np.float64))
    assert back.summary() == pytest.approx(result.summary(), nan_ok=True)
    assert back.params is None
    assert TrainResult.load(str(path)).steps == result.steps  # str paths too


def test_train_result_round_trip_with_numpy_scalars(tmp_path: Path) -> None:
    """NumPy scalar options are stored as plain JSON numbers."""
    r = aedyn.train(X, P, "joint", lr=np.float32(0.1), lr_decoder=np.float64(0.05), steps=np.int64(3),
                    target=np.float32(1e-3), record_every=np.int32(2), divergence_factor=np.int64(100))
    back = TrainResult.load(r.save(tmp_path / "run.json"))
    assert back.steps == 3 and type(back.config["steps"]) is int
    assert back.lr == pytest.approx(0.1) and back.lr_decoder == 0.05


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_train_result_load_partial_record(tmp_path: Path, record: dict, key: str) -> None:
    partial = {k: v for k, v in record.items() if k != key}
    one_line_error(lambda: TrainResult.load(_write(tmp_path / "r.json", partial)))


BAD_RECORD_VALUES: list[tuple[str, Any]] = [
    ("kind", "aedyn.kernel"), ("kind", None), ("status", "done"), ("status", 3), ("regime", "both"),
    ("regime", None), ("steps", 4.0), ("steps", "4"), ("steps", True), ("steps", None), ("steps", -1),
    ("steps", 10**30), ("loss", "0.1"), ("loss", {"a": 1}), ("loss", ["a"] * 5), ("loss", [[1.0]] * 5),
    ("loss", [{}] * 5), ("loss", [1.0] * 3), ("loss", [1.0] * 99), ("loss", 0.5), ("metrics", []),
    ("metrics", "x"), ("metrics", {"step": 3}), ("metrics", {"step": ["a"]}), ("metrics", {"step": [[1], [2, 3]]}),
    ("lr", "0.1"), ("lr", True), ("lr", None), ("lr", [0.1]), ("wall_time", "1s"), ("wall_time", False),
    ("message", 5), ("message", None), ("config", [1, 2]), ("config", "ab"), ("lambda_max", "big"),
    ("lambda_max", [1]), ("lr_decoder", {}), ("lr_decoder", [0.1]),
]

@pytest.mark.parametrize(("key", "value"), [pytest.param(key, value, id=f"{key}={value!r}"[:40])
                                            for key, value in BAD_RECORD_VALUES])
def test_train_result_load_wrong_types(tmp_path: Path, record: dict, key: str, value: Any) -> None:
    bad = {**record, key: value}
    if key == "steps" and value == -1:
        bad["loss"] = []
    one_line_error(lambda: TrainResult.load(_write(tmp_path / "r.json", bad)))


@pytest.mark.parametrize("value", [True, "0.1"], ids=["bool", "numeric string"])
@pytest.mark.parametrize("key", ["lr_decoder", "lambda_max"])
def test_train_result_load_bool_or_string_where_a_number_belongs(tmp_path: Path, record: dict, key: str,
                                                                 value: Any) -> None:
    one_line_error(lambda: TrainResult.load(_write(tmp_path / "r.json", {**record, key: value})))


@pytest.mark.parametrize("config", [{"n": "abc"}, {"data_norm2": "x"}, {"data_norm2": [1]}],
                         ids=["n string", "data_norm2 string", "data_norm2 list"])
def test_train_result_load_malformed_config(tmp_path: Path, record: dict, config: dict) -> None:
    try:
        loaded = TrainResult.load(_write(tmp_path / "r.json", {**record, "config": config}))
        loaded.summary()
    except AedynError:
        return
    except (ValueError, TypeError) as exc:
        raise AssertionError(f"raw {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("content", [
    b"[]", b"[1, 2, 3]", b"{}", b'{"status": "converged"}', b"null", b"3", b'"aedyn.train"', b"",
    b"{", b"{'kind': 'aedyn.train'}", b"[" * 100_000, bytes(range(256)), b"\xff\xfe\x00\x00garbage",
    b"\x00" * 64, b"PK\x03\x04" + bytes(64),
], ids=["list", "list of numbers", "dict without kind", "dict without kind 2", "null", "number", "string",
        "empty file", "invalid JSON", "single quotes", "deeply nested", "binary", "bad utf", "zeros", "zip"])
def test_train_result_load_not_a_record(tmp_path: Path, content: bytes) -> None:
    one_line_error(lambda: TrainResult.load(_write(tmp_path / "r.json", raw=content)))


def test_train_result_load_folder_and_missing(tmp_path: Path) -> None:
    one_line_error(lambda: TrainResult.load(tmp_path), match="folder")
    one_line_error(lambda: TrainResult.load(tmp_path / "missing.json"), match="does not exist")
    P.save(tmp_path / "p.npz")
    one_line_error(lambda: TrainResult.load(tmp_path / "p.npz"))


def test_train_result_from_record_not_a_dict() -> None:
    for obj in ([], None, "aedyn.train", 3, {"kind": "aedyn.train"}):
        one_line_error(lambda o=obj: TrainResult.from_record(o))


def test_params_round_trip(tmp_path: Path) -> None:
    for params, name in ((P, "joint"), (P_TIED, "tied"), (P32, "f32")):
        path = params.save(tmp_path / f"{name}.npz")
        back = Params.load(path, dtype=params.W.dtype)
        assert_same(back, params, tol=0)
    back32 = Params.load(tmp_path / "joint.npz", dtype="float32")
    assert back32.W.dtype == torch.float32 and back32.alpha == P.alpha


def _npz(path: Path, **arrays: Any) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


def _params_file_cases(tmp: Path) -> dict[str, Path]:
    good = P.save(tmp / "good.npz")
    raw = good.read_bytes()
    npy = tmp / "single.npy"
    np.save(npy, W_NP)
    npy_named_npz = tmp / "single_named.npz"
    npy_named_npz.write_bytes(npy.read_bytes())
    flipped = bytearray(raw)
    for i in range(100, 200):
        flipped[i] ^= 0xFF
    w = W_NP
    cases = {
        "truncated half": raw[: len(raw) // 2],
        "truncated 10 bytes": raw[:10],
        "truncated last byte": raw[:-1],
        "empty": b"",
        "corrupt zip": b"PK\x03\x04" + bytes(range(200)),
        "flipped bytes": bytes(flipped),
        "random bytes": np.random.default_rng(0).bytes(300),
        "text": b"W = [[1, 2], [3, 4]]\n",
        "json": json.dumps({"W": [[1.0]], "alpha": 1.0}).encode(),
    }
    out = {name: tmp / f"{name.replace(' ', '_')}.npz" for name in cases}
    for name, content in cases.items():
        out[name].write_bytes(content)
    out.update({
        "npz without W": _npz(tmp / "noW.npz", V=V_NP, alpha=np.array(0.5)),
        "npz without alpha": _npz(tmp / "noalpha.npz", W=w),
        "npz of other arrays": _npz(tmp / "other.npz", data=X),
        "1-D W": _npz(tmp / "w1.npz", W=w[0], alpha=np.array(0.5)),
        "0-row W": _npz(tmp / "w0.npz", W=w[:0], alpha=np.array(0.5)),
        "mismatched W/V": _npz(tmp / "wv.npz", W=w, V=w, alpha=np.array(0.5)),
        "V of another width": _npz(tmp / "wv2.npz", W=w, V=V_NP[:, :-1], alpha=np.array(0.5)),
        "alpha an array": _npz(tmp / "a1.npz", W=w, V=V_NP, alpha=np.array([0.5, 0.5])),
        "alpha a 1-array": _npz(tmp / "a2.npz", W=w, V=V_NP, alpha=np.array([0.5])),
        "alpha a string": _npz(tmp / "a3.npz", W=w, V=V_NP, alpha=np.array("0.5")),
        "alpha a bool": _npz(tmp / "a4.npz", W=w, V=V_NP, alpha=np.array(True)),
        "alpha complex": _npz(tmp / "a5.npz", W=w, V=V_NP, alpha=np.array(0.5 + 0j)),
        "alpha zero": _npz(tmp / "a6.npz", W=w, V=V_NP, alpha=np.array(0.0)),
        "alpha nan": _npz(tmp / "a7.npz", W=w, V=V_NP, alpha=np.array(np.nan)),
        "alpha inf": _npz(tmp / "a8.npz", W=w, V=V_NP, alpha=np.array(np.inf)),
        "W strings": _npz(tmp / "ws.npz", W=w.astype(str), alpha=np.array(0.5)),
        "W complex": _npz(tmp / "wc.npz", W=w + 1j, alpha=np.array(0.5)),
        "W objects": _npz(tmp / "wo.npz", W=np.array([[None]], dtype=object), alpha=np.array(0.5)),
        "npy file": npy,
        "npy named .npz": npy_named_npz,
        "folder": tmp,
        "missing": tmp / "missing.npz",
    })
    return out


PARAMS_FILE_CASES = [
    "truncated half", "truncated 10 bytes", "truncated last byte", "empty", "corrupt zip", "flipped bytes",
    "random bytes", "text", "json", "npz without W", "npz without alpha", "npz of other arrays", "1-D W", "0-row W",
    "mismatched W/V", "V of another width", "alpha an array", "alpha a 1-array", "alpha a string", "alpha a bool",
    "alpha complex", "alpha zero", "alpha nan", "alpha inf", "W strings", "W complex", "W objects", "npy file",
    "npy named .npz", "folder", "missing",
]


@pytest.fixture(scope="module")
def params_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = _params_file_cases(tmp_path_factory.mktemp("params_files"))
    assert set(paths) == set(PARAMS_FILE_CASES)
    return paths


@pytest.mark.parametrize("case", PARAMS_FILE_CASES)
def test_params_load_malformed(params_files: dict[str, Path], case: str) -> None:
    one_line_error(lambda: Params.load(params_files[case]))
    one_line_error(lambda: Params.load(str(params_files[case])))


@pytest.mark.parametrize("case", ["npy file", "npy named .npz"])
def test_params_load_single_array_message(params_files: dict[str, Path], case: str) -> None:
    one_line_error(lambda: Params.load(params_files[case]), match="single array")


def test_params_load_bad_dtype_and_device(tmp_path: Path) -> None:
    path = P.save(tmp_path / "p.npz")
    one_line_error(lambda: Params.load(path, dtype="float16"), match="dtype")
    one_line_error(lambda: Params.load(path, dtype=torch.int64), match="dtype")
    one_line_error(lambda: Params.load(path, device="tpu"), match="device")


@pytest.mark.parametrize("kind", ["TrainResult", "Params"])
def test_save_refuses_to_overwrite_unless_forced(tmp_path: Path, result: TrainResult, kind: str) -> None:
    obj: Any = result if kind == "TrainResult" else P
    path = tmp_path / ("run.json" if kind == "TrainResult" else "p.npz")
    path.write_bytes(b"old content")
    one_line_error(lambda: obj.save(path), match="already exists")
    one_line_error(lambda: obj.save(str(path)), match="already exists")
    assert path.read_bytes() == b"old content"
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary left behind
    assert obj.save(path, force=True) == path
    loaded = TrainResult.load(path) if kind == "TrainResult" else Params.load(path)
    assert (loaded.steps == result.steps) if kind == "TrainResult" else torch.equal(loaded.W, P.W)
    # a second save of the new content is refused again, and leaves it readable
    one_line_error(lambda: obj.save(path))
    (TrainResult.load if kind == "TrainResult" else Params.load)(path)
    # a folder, a missing folder and an empty name are refused, forced or not
    for force in (False, True):
        one_line_error(lambda f=force: obj.save(tmp_path, force=f), match="folder")
        one_line_error(lambda f=force: obj.save(tmp_path / "no" / "x.json", force=f), match="does not exist")
        one_line_error(lambda f=force: obj.save("", force=f))


# ----------------------------------------------------------------------------------------------
# 4. Numeric parameters: one validator, the same rules everywhere


@dataclasses.dataclass(frozen=True)
class Num:
    """One numeric parameter: how to call with it, its kind, a value that works, values out of range."""

    call: Callable[[Any], Any]
    kind: str  # "int" or "real"
    good: float
    out_of_range: tuple[Any, ...]
    name: str  # appears in the message
    strings_ok: bool = False  # documented: the value may also be given as a numeric string


_TRAIN = dict(lr=0.05, steps=2)

NUMERIC: dict[str, Num] = {
    "train lr": Num(lambda v: aedyn.train(X, P, "joint", lr=v, steps=2), "real", 0.05, (0, -1, -0.0), "lr"),
    "train lr_decoder": Num(lambda v: aedyn.train(X, P, "joint", lr=0.05, lr_decoder=v, steps=2), "real", 0.05,
                            (0, -1), "lr_decoder"),
    "train steps": Num(lambda v: aedyn.train(X, P, "joint", lr=0.05, steps=v), "int", 2, (-1,), "steps"),
    "train target": Num(lambda v: aedyn.train(X, P, "joint", target=v, **_TRAIN), "real", 1e-3, (-0.1, 1, 2),
                        "target"),
    "train record_every": Num(lambda v: aedyn.train(X, P, "joint", record_every=v, **_TRAIN), "int", 1, (0, -1),
                              "record_every"),
    "train divergence_factor": Num(lambda v: aedyn.train(X, P, "joint", divergence_factor=v, **_TRAIN), "real", 10,
                                   (1, 0.5, 0, -1), "divergence_factor"),
    "train ntk_every": Num(lambda v: aedyn.train(X, P, "joint", ntk_every=v, **_TRAIN), "int", 1, (0, -1),
                           "ntk_every"),
    "train_batch steps": Num(lambda v: aedyn.train_batch(X, PB, "joint", lr=0.05, steps=v), "int", 2, (-1,),
                             "steps"),
    "train_batch target": Num(lambda v: aedyn.train_batch(X, PB, "joint", target=v, **_TRAIN), "real", 1e-3,
                              (-0.1, 1, 2), "target"),
    "train_batch sync_every": Num(lambda v: aedyn.train_batch(X, PB, "joint", sync_every=v, **_TRAIN), "int", 2,
                                  (0, -1), "sync_every"),
    "train_batch lr (one for all)": Num(lambda v: aedyn.train_batch(X, PB, "joint", lr=v, steps=2), "real", 0.05,
                                        (0, -1, -0.0), "lr"),
    "init_params d": Num(lambda v: init_params(v, 4), "int", 3, (0, -1), "d"),
    "init_params width": Num(lambda v: init_params(D, v), "int", 4, (0, -1), "width"),
    "init_params seed": Num(lambda v: init_params(D, 4, seed=v), "int", 3, (-1, 2**63), "seed"),
    "init_params kappa": Num(lambda v: init_params(D, 4, kappa=v), "real", 0.5, (0, -1), "kappa"),
    "init_params nu": Num(lambda v: init_params(D, 4, nu=v), "real", 0.5, (-1, -1e-300), "nu"),
    "init_params nu (weak)": Num(lambda v: init_params(D, 4, regime="weak", nu=v), "real", 0.5, (0, -1), "nu"),
    "init_params scale": Num(lambda v: init_params(D, 4, scale=v), "real", 0.5, (0, -1, "0", "-1", "abc", ""),
                             "scale", strings_ok=True),
    "NTKOperator.extremes tol": Num(lambda v: OP.extremes(tol=v), "real", 1e-6, (0, -1, 1, 2), "tol"),
    "NTKOperator.extremes max_iter": Num(lambda v: OP.extremes(max_iter=v), "int", 50, (0, -1), "max_iter"),
    "NTKOperator.extremes seed": Num(lambda v: OP.extremes(seed=v), "int", 3, (-1, 2**63), "seed"),
    "ntk_extremes tol": Num(lambda v: ntk_extremes(P, X, "joint", tol=v), "real", 1e-6, (0, -1, 1, 2), "tol"),
    "ntk_extremes max_iter": Num(lambda v: ntk_extremes(P, X, "joint", max_iter=v), "int", 50, (0, -1), "max_iter"),
    "ntk_extremes seed": Num(lambda v: ntk_extremes(P, X, "joint", seed=v), "int", 3, (-1, 2**63), "seed"),
    "ntk_drift probes": Num(lambda v: ntk_drift(OP2, OP, probes=v, dense_limit=0), "int", 4, (0, -1), "probes"),
    "ntk_drift seed (probes)": Num(lambda v: ntk_drift(OP2, OP, seed=v, dense_limit=0), "int", 3, (-1, 2**63),
                                   "seed"),
    "ntk_drift seed (exact)": Num(lambda v: ntk_drift(OP2, OP, seed=v), "int", 3, (-1, 2**63), "seed"),
    "ntk_drift dense_limit": Num(lambda v: ntk_drift(OP2, OP, dense_limit=v), "int", 0, (-1,), "dense_limit"),
    "LinearisedGD eta": Num(lambda v: LinearisedGD(K, v), "real", 0.1, (0, -1), "eta"),
    "LinearisedGD.residual steps": Num(lambda v: LIN.residual(R0, v), "int", 5, (-1,), "steps"),
    "LinearisedGD.loss_curve steps": Num(lambda v: LIN.loss_curve(R0, v), "int", 5, (-1,), "steps"),
    "NTKPredictor eta": Num(lambda v: NTKPredictor(X, "joint", eta=v, steps=10), "real", 0.1, (0, -1), "eta"),
    "NTKPredictor steps": Num(lambda v: NTKPredictor(X, "joint", eta=0.1, steps=v), "int", 10, (-1,), "steps"),
    "NTKPredictor rcond": Num(lambda v: NTKPredictor(X, "joint", rcond=v), "real", 1e-10, (-1, 1, 2), "rcond"),
    "NTKPredictor kappa": Num(lambda v: NTKPredictor(X, "joint", kappa=v), "real", 0.5, (0, -1), "kappa"),
    "NTKPredictor nu": Num(lambda v: NTKPredictor(X, "joint", nu=v), "real", 0.5, (-1,), "nu"),
    "memorisation iterations": Num(lambda v: memorisation(PRED, X_NEW, X, iterations=v), "int", 2, (-1,),
                                   "iterations"),
    "memorisation tol": Num(lambda v: memorisation(PRED, X_NEW, X, iterations=1, tol=v), "real", 1e-3, (0, -1),
                            "tol"),
    "regime_kernel kappa": Num(lambda v: regime_kernel(X, "joint", kappa=v), "real", 0.5, (0, -1), "kappa"),
    "regime_kernel nu": Num(lambda v: regime_kernel(X, "joint", nu=v), "real", 0.5, (-1,), "nu"),
    "kernel_spectrum kappa": Num(lambda v: kernel_spectrum(X, "joint", kappa=v), "real", 0.5, (0, -1), "kappa"),
    "kernel_spectrum nu": Num(lambda v: kernel_spectrum(X, "joint", nu=v), "real", 0.5, (-1,), "nu"),
    "sphere n": Num(lambda v: sphere(v, D), "int", 4, (0, -1), "n"),
    "sphere d": Num(lambda v: sphere(4, v), "int", 3, (0, -1), "d"),
    "sphere seed": Num(lambda v: sphere(4, D, seed=v), "int", 3, (-1, 2**63), "seed"),
    "load_data n": Num(lambda v: load_data("sphere", n=v, d=D), "int", 4, (0, -1), "n"),
    "load_data d": Num(lambda v: load_data("sphere", n=4, d=v), "int", 3, (0, -1), "d"),
    "load_data seed": Num(lambda v: load_data("sphere", n=4, d=D, seed=v), "int", 3, (-1, 2**63), "seed"),
    "lanczos_extremes tol": Num(lambda v: _lanczos(tol=v), "real", 1e-3, (0, -1, 1), "tol"),
    "lanczos_extremes max_iter": Num(lambda v: _lanczos(max_iter=v), "int", 20, (0, -1), "max_iter"),
    "lanczos_extremes seed": Num(lambda v: _lanczos(seed=v), "int", 3, (-1, 2**63), "seed"),
    "lanczos_extremes seed (dense)": Num(lambda v: _lanczos(dim=10, seed=v), "int", 3, (-1, 2**63), "seed"),
    "lanczos_extremes dim": Num(lambda v: lanczos_extremes(lambda x: x, v, dtype=torch.float64), "int", 5, (0, -1),
                                "dim"),
    "lanczos_extremes check_every": Num(lambda v: _lanczos(check_every=v), "int", 5, (0, -1), "check_every"),
    "lobpcg_min tol": Num(lambda v: _lobpcg(tol=v), "real", 1e-3, (0, -1, 1), "tol"),
    "lobpcg_min max_iter": Num(lambda v: _lobpcg(max_iter=v), "int", 20, (0, -1), "max_iter"),
    "lobpcg_min seed": Num(lambda v: _lobpcg(seed=v), "int", 3, (-1, 2**63), "seed"),
    "lobpcg_min seed (dense)": Num(lambda v: _lobpcg(dim=10, seed=v), "int", 3, (-1, 2**63), "seed"),
    "lobpcg_min block": Num(lambda v: _lobpcg(block=v), "int", 2, (0, -1), "block"),
    # load_data checks its options with check_source/expected_shape before loading (digits load slowly)
    "expected_shape classes entry": Num(lambda v: expected_shape("digits", n=4, classes=[v]), "int", 3, (-1, 10),
                                        "classes"),
    # jobs validate their settings on construction, through the same checks
    "TrainJob width": Num(lambda v: TrainJob(data="sphere", n=4, d=D, width=v), "int", 8, (0, -1), "width"),
    "TrainJob steps": Num(lambda v: TrainJob(data="sphere", n=4, d=D, steps=v), "int", 2, (-1,), "steps"),
    "TrainJob lr": Num(lambda v: TrainJob(data="sphere", n=4, d=D, lr=v), "real", 0.1, (0, -1), "lr"),
    "TrainJob kappa": Num(lambda v: TrainJob(data="sphere", n=4, d=D, kappa=v), "real", 0.5, (0, -1), "kappa"),
    "TrainJob seed": Num(lambda v: TrainJob(data="sphere", n=4, d=D, seed=v), "int", 3, (-1, 2**63), "seed"),
    "TrainJob n": Num(lambda v: TrainJob(data="sphere", n=v, d=D), "int", 4, (0, -1), "n"),
    "TrainJob classes entry": Num(lambda v: TrainJob(data="digits", n=4, classes=[v]), "int", 3, (-1, 10),
                                  "classes"),
    "KernelJob tol": Num(lambda v: KernelJob(data="sphere", n=4, d=D, tol=v), "real", 1e-6, (0, -1, 1), "tol"),
}

_SEED_UNCHECKED = ("is never validated: ntk_drift only passes seed to the random probes, so on the exact (dense) path "
                   "any value (True, -1, 1.5, 'x', NaN) is accepted silently")
_DENSE_SEED = ("is not validated when dim <= 64 (the dense eigvalsh path returns before the seed is used), so "
               "True, -1, 1.5, 'x', NaN are accepted silently there but refused for larger operators")


def _accepted(num: Num) -> list[Any]:
    g = num.good
    if num.kind == "int":
        return [int(g), np.int64(g), np.int32(g), np.uint8(g) if 0 <= g < 256 else np.int16(g)]
    values = [float(g), np.float64(g), np.float32(g)]
    if float(g).is_integer():
        values += [int(g), np.int64(g)]
    return values


def _refused(num: Num) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("True", True), ("False", False), ("np.True_", np.True_), ("nan", math.nan),
                                  ("inf", math.inf), ("-inf", -math.inf), ("np.float32 nan", np.float32("nan")),
                                  ("None", None), ("list", [num.good]), ("array", np.array([num.good])),
                                  ("complex", complex(num.good, 0))]
    if not num.strings_ok:
        out += [("'1'", "1"), ("str good", str(num.good)), ("bytes", b"1")]
    if num.kind == "int":
        out += [("1.5", 1.5), ("2.0", 2.0), ("np.float64 2.0", np.float64(2.0)), ("float good", float(num.good))]
    out += [(f"out of range {v!r}", v) for v in num.out_of_range]
    return out


_OPTIONAL = {"train lr_decoder", "train ntk_every", "train_batch sync_every", "NTKPredictor eta", "NTKPredictor steps",
             "NTKPredictor rcond"}


@pytest.mark.parametrize("label", list(NUMERIC))
def test_numeric_parameter_accepts_python_and_numpy_numbers(label: str) -> None:
    num = NUMERIC[label]
    for value in _accepted(num):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", aedyn.AedynWarning)
            num.call(value)


@pytest.mark.parametrize("label", list(NUMERIC))
def test_numeric_parameter_refuses(label: str) -> None:
    """Every refused value of every numeric parameter: an AedynError of one line that names the
    parameter. All values are tried; the failure lists every value that got through."""
    num = NUMERIC[label]
    wrong = []
    for what, value in _refused(num):
        if value is None and label in _OPTIONAL:
            continue  # None means "not given" there
        problem = refusal_problem(lambda value=value: num.call(value), names=num.name)
        if problem is not None:
            wrong.append(f"{what}: {problem}")
    assert not wrong, f"{label}: " + "; ".join(wrong)


@pytest.mark.parametrize("classes", [
    pytest.param(5, id="int"),
    pytest.param("01", id="string"),
    pytest.param(["a"], id="list of str"),
    pytest.param([1.5], id="float"),
    pytest.param([], id="empty"),
    pytest.param([11], id="out of range"),
])
def test_train_job_classes(classes: Any) -> None:
    """``classes`` must be a list of digits, in a job as in load_data."""
    one_line_error(lambda: load_data("digits", n=4, classes=classes), match="classes")
    one_line_error(lambda: TrainJob(data="digits", n=4, classes=classes), match="classes")


def test_numpy_scalars_give_the_same_result_as_python_numbers() -> None:
    a = aedyn.train(X, P, "joint", lr=0.125, steps=3, record_every=1)
    b = aedyn.train(X, P, "joint", lr=np.float32(0.125), steps=np.int64(3), record_every=np.int32(1))
    np.testing.assert_array_equal(a.loss, b.loss)
    assert_same(init_params(D, 4, seed=3, kappa=0.5), init_params(np.int64(D), np.int64(4), seed=np.uint8(3),
                                                                   kappa=np.float32(0.5)))
    assert_same(NTKPredictor(X, "joint", eta=0.125, steps=10)(X_NEW),
                NTKPredictor(X, "joint", eta=np.float32(0.125), steps=np.int64(10))(X_NEW))
    assert_same(LIN.loss_curve(R0, 4), LIN.loss_curve(R0, np.int64(4)))


def test_named_cases_from_the_issue() -> None:
    one_line_error(lambda: NTKPredictor(X, "joint", eta=-1, steps=10), match="eta")
    one_line_error(lambda: NTKPredictor(X, "joint", eta=0.1, steps=2.5), match="steps")
    for kwargs in ({"tol": 0}, {"tol": -1}, {"max_iter": 0}):
        one_line_error(lambda kw=kwargs: ntk_extremes(P, X, "joint", **kw), match=next(iter(kwargs)))
        one_line_error(lambda kw=kwargs: OP.extremes(**kw), match=next(iter(kwargs)))
    one_line_error(lambda: NTKPredictor(X, "joint", steps=10), match="eta")  # k steps need a step size


def test_string_choices_are_validated_too() -> None:
    one_line_error(lambda: aedyn.forward(P, X, "both"), match="regime")
    one_line_error(lambda: aedyn.train(X, P, "joint", lr="fast", steps=1), match="lr")
    one_line_error(lambda: aedyn.train(X, P, "weak", lr=0.1, lr_decoder=0.1, steps=1), match="lr_decoder")
    one_line_error(lambda: OP.extremes(which="all"), match="which")
    one_line_error(lambda: ntk_extremes(P, X, "joint", which=None), match="which")
    one_line_error(lambda: init_params(D, 4, decoder_init="uniform"), match="decoder")
    one_line_error(lambda: init_params(D, 4, scale="huge"), match="scale")
    one_line_error(lambda: init_params(D, 4, regime="tied", zero_output=True), match="zero_output")
    one_line_error(lambda: kernel_spectrum(X, "tied"), match="TiedNTKLimit")
    one_line_error(lambda: regime_kernel(X, "tied", Y=X[:, :1]))
    one_line_error(lambda: kernel_spectrum(X, None))
    one_line_error(lambda: NTKPredictor(X, "tied"))
    one_line_error(lambda: NTKPredictor(X, 3))
