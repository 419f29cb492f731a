"""The ``limit`` and ``memorisation`` measures: a trained network against the infinite-width NTK
predictor (:class:`aedyn.limit.NTKPredictor`), on training and held-out inputs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aedyn.errors import AedynError
from aedyn.limit import NTKPredictor, energy_outside_span
from aedyn.limit import memorisation as iterate_map
from aedyn.measures.maps import heldout_set
from aedyn.model import Params, forward

if TYPE_CHECKING:
    from collections.abc import Callable

    from aedyn.gd import TrainResult


def relative_error(f_net: torch.Tensor, f_pred: torch.Tensor, f0_pred: torch.Tensor) -> float:
    """``||f_net - f_pred||_F / ||f_pred - f0_pred||_F`` (NaN when the denominator is 0 or a value is
    not finite): the error of the learned change of the map."""
    num = float((f_net - f_pred).norm())
    den = float((f_pred - f0_pred).norm())
    return num / den if den > 0 and math.isfinite(num) and math.isfinite(den) else math.nan


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _initial_map(init: Params, regime: str, zero: bool) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The predictor's ``f_0``: ``None`` for a network started at ``f_0 ≡ 0``, else its own initial map."""
    return None if zero else (lambda z: forward(init, z, regime, check_finite=False))


def limit(result: TrainResult, X: torch.Tensor, job: Any, *, n: int | None = None, per_class: int | None = None,
          seed: int = 1) -> dict[str, Any]:
    """The trained network against :class:`~aedyn.limit.NTKPredictor` at the **same** ``eta`` and the
    **same** step count (the steps the run took), started from the network's own initial map (or
    ``f_0 ≡ 0`` for a job with ``zero_output``), on the training inputs and on held-out inputs
    (:func:`aedyn.data.heldout_inputs` with ``n``/``per_class`` and ``seed``). On inputs ``Z``::

        err(Z) = ||f_net(Z) - f_pred(Z)||_F / ||f_pred(Z) - f0_pred(Z)||_F

    the error of the learned change of the map (:func:`relative_error`; for ``f_0 ≡ 0`` the
    denominator is ``||f_pred(Z)||``): ``error_train``, ``error_heldout``, and the denominators
    ``scale_train``, ``scale_heldout``; ``loss_rel = L(T) / L(0)``."""
    init, final = result.init, result.params
    assert init is not None and final is not None
    regime = result.regime
    f0 = _initial_map(init, regime, bool(getattr(job, "zero_output", False)))
    predictor = NTKPredictor(X, regime, kappa=job.kappa, nu=job.nu, f0=f0, eta=float(result.lr),
                             steps=int(result.steps))
    Z = heldout_set(X, job, n=n, per_class=per_class, seed=seed)
    out: dict[str, Any] = {}
    for name, Y in (("train", X), ("heldout", Z)):
        f_net = forward(final, Y, regime, check_finite=False)
        f_pred = predictor(Y)
        f_zero = torch.zeros_like(Y) if f0 is None else f0(Y)
        out[f"error_{name}"] = _finite(relative_error(f_net, f_pred, f_zero))
        out[f"scale_{name}"] = _finite(float((f_pred - f_zero).norm()))
    L0 = float(result.loss[0])
    out["loss_rel"] = _finite(float(result.loss[-1]) / L0) if L0 > 0 else None
    return out


def noisy_copies(X: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """``(x + noise * g / sqrt(d)) / ||x + noise * g / sqrt(d)||`` per row, ``g ~ N(0, I_d)`` (seeded):
    for unit rows the added noise has expected squared norm ``noise^2``."""
    gen = torch.Generator().manual_seed(int(seed))
    g = torch.randn(X.shape, generator=gen, dtype=torch.float64).to(dtype=X.dtype, device=X.device)
    Y = X + noise * g / math.sqrt(X.shape[1])
    return Y / Y.norm(dim=1, keepdim=True)


def random_unit(count: int, d: int, seed: int, like: torch.Tensor) -> torch.Tensor:
    """``count`` Gaussian vectors in ``R^d``, normalised to unit norm (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    G = torch.randn(count, d, generator=gen, dtype=torch.float64)
    return (G / G.norm(dim=1, keepdim=True)).to(dtype=like.dtype, device=like.device)


def span_share(Y: torch.Tensor, X_train: torch.Tensor) -> np.ndarray:
    """``||P y||^2 / ||y||^2`` per row, ``P`` the projector onto the span of the training samples
    (``1 - energy_outside_span``; a zero row gives 1)."""
    return 1.0 - energy_outside_span(Y, X_train).cpu().numpy()


def image_rows(Y: torch.Tensor) -> list[list[float]]:
    """Rows as plain lists rounded to 6 digits (images for the report)."""
    return [[round(float(v), 6) for v in row] for row in Y.detach().cpu()]


def memorisation(result: TrainResult, X: torch.Tensor, job: Any, *, held_per_class: int = 1, noise: float = 0.3,
                 random: int = 10, input_seed: int = 1, iterations: int = 200, tol: float = 1e-3,
                 show: int = 4) -> dict[str, Any]:
    """The trained network and the converged kernel predictor (``NTKPredictor(..., steps=None)``:
    kernel regression, ``f_0`` as in :func:`limit`) off the training set, for a job on digits drawn
    ``per_class`` of each class. Three kinds of inputs: ``held-out`` (``held_per_class`` other digits
    of each class, drawn with ``input_seed``), ``noisy`` (training digits plus Gaussian noise of
    relative size ``noise``, :func:`noisy_copies`), ``random`` (``random`` Gaussian unit vectors).
    Per input and map: the share of the output's energy inside the span of the training samples
    (:func:`span_share`; the input's own beside it), its nearest training sample and distance, the
    gap ``||f_net(x) - f_pred(x)|| / ||f_pred(x)||``, and where the iterates ``x, f(x), f(f(x)), ...``
    end after ``iterations`` steps (:func:`aedyn.limit.memorisation`, tolerance ``tol``); the first
    ``show`` inputs as images. One column, ``memorisation``, holding the whole record."""
    per = getattr(job, "per_class", None)
    if job.data != "digits" or per is None:
        raise AedynError("the memorisation measure needs digits drawn per class (data='digits', per_class=k): "
                         "it names each input's class")
    init, final = result.init, result.params
    assert init is not None and final is not None
    regime = result.regime
    classes = list(range(10)) if job.classes is None else sorted(job.classes)
    train_labels = [c for c in classes for _ in range(per)]
    held = heldout_set(X, job, n=None, per_class=held_per_class, seed=input_seed)
    held_labels = [c for c in classes for _ in range(held_per_class)]
    n, d = X.shape
    inputs = {"held-out": held, "noisy": noisy_copies(X, float(noise), int(input_seed)),
              "random": random_unit(int(random), int(d), int(input_seed) + 1, X)}

    def network(z: torch.Tensor) -> torch.Tensor:
        return forward(final, z, regime, check_finite=False)

    predictor = NTKPredictor(X, regime, kappa=job.kappa, nu=job.nu,
                             f0=_initial_map(init, regime, bool(getattr(job, "zero_output", False))))
    maps = {"network": network, "predictor": predictor}
    kinds: dict[str, Any] = {}
    images: dict[str, Any] = {}
    for kind, Z in inputs.items():
        outputs = {name: f(Z) for name, f in maps.items()}
        gap = ((outputs["network"] - outputs["predictor"]).norm(dim=1)
               / outputs["predictor"].norm(dim=1).clamp_min(1e-300)).cpu().numpy()
        in_near, in_idx = torch.cdist(Z, X).min(dim=1)
        entry: dict[str, Any] = {"count": int(Z.shape[0]), "input_in_span": span_share(Z, X).tolist(),
                                 "input_nearest_distance": in_near.cpu().numpy().tolist(),
                                 "input_nearest_index": in_idx.cpu().numpy().tolist(),
                                 "network_vs_predictor": gap.tolist()}
        if kind == "noisy":
            entry["source"] = list(range(n))
        if kind == "held-out":
            entry["labels"] = held_labels
        for name, f in maps.items():
            m = iterate_map(f, Z, X, iterations=int(iterations), tol=float(tol))
            ends = [int(s.rsplit(" ", 1)[1]) if s.startswith("training sample") else None for s in m.fate]
            entry[name] = {"in_span": span_share(outputs[name], X).tolist(),
                           "nearest_distance": m.nearest_distance.tolist(),
                           "nearest_index": [int(i) for i in m.nearest_index],
                           "input_distance": m.input_distance.tolist(),
                           "output_norm": outputs[name].norm(dim=1).cpu().numpy().tolist(),
                           "fate": list(m.fate), "fate_counts": m.fate_counts(), "end_sample": ends,
                           "final_nearest": m.iterate_nearest[-1].tolist(),
                           "final_norm": m.iterate_norm[-1].tolist()}
        kinds[kind] = entry
        z, first = Z[:show], Z[:show]
        for _ in range(int(iterations)):
            z = torch.nan_to_num(network(z), posinf=0.0, neginf=0.0)
        images[kind] = {"input": image_rows(first), "network": image_rows(outputs["network"][:show]),
                        "predictor": image_rows(outputs["predictor"][:show]), "network_iterate": image_rows(z)}
    return {"memorisation": {"iterations": int(iterations), "train_labels": train_labels,
                             "train_images": image_rows(X), "kinds": kinds, "images": images}}
