"""aedyn: gradient-descent dynamics of over-parameterised two-layer ReLU autoencoders.

The objects of Nguyen, Wong & Hegde, *Benefits of Jointly Training Autoencoders: An Improved
Neural Tangent Kernel Analysis* (arXiv 1911.11983), made computable::

    import aedyn
    X = aedyn.load_data("digits", n=128, seed=0)
    params = aedyn.init_params(X.shape[1], 4096, seed=0)
    result = aedyn.train(X, params, "joint", steps=5000)
    result.summary()

Many networks of one shape train as one computation with :func:`train_batch` (``W`` of shape
``(B, m, d)``); grids of runs go through ``aedyn sweep`` into a Parquet store, read back with
:func:`load_results`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aedyn._meta import aedyn_version

if TYPE_CHECKING:  # what static type checkers see; at run time each name is imported on first use
    from aedyn._names import REGIMES
    from aedyn.certificate import Certificate, certify
    from aedyn.data import load_data, validate
    from aedyn.errors import AedynError, AedynWarning
    from aedyn.gd import TrainResult, fit_linear_rate, train, train_batch
    from aedyn.job import KernelJob, TrainJob, batch_key, run_batch, run_job, run_kernel_job
    from aedyn.kernels import TiedNTKLimit, init_output_kernel, k0, k1, kernel_spectrum, regime_kernel
    from aedyn.limit import LinearisedGD, NTKPredictor, memorisation
    from aedyn.model import Params, Tangent, evaluate, forward, gradients, init_params, jvp, loss, safe_radius, vjp
    from aedyn.ntk import NTKOperator, ntk_dense, ntk_drift, ntk_extremes
    from aedyn.store import Store, load_results

__version__ = aedyn_version()

_EXPORTS: dict[str, tuple[str, ...]] = {
    "aedyn._names": ("REGIMES",),
    "aedyn.certificate": ("Certificate", "certify"),
    "aedyn.data": ("load_data", "validate"),
    "aedyn.errors": ("AedynError", "AedynWarning"),
    "aedyn.gd": ("TrainResult", "fit_linear_rate", "train", "train_batch"),
    "aedyn.job": ("KernelJob", "TrainJob", "batch_key", "run_batch", "run_job", "run_kernel_job"),
    "aedyn.kernels": ("TiedNTKLimit", "init_output_kernel", "k0", "k1", "kernel_spectrum", "regime_kernel"),
    "aedyn.limit": ("LinearisedGD", "NTKPredictor", "memorisation"),
    "aedyn.model": ("Params", "Tangent", "evaluate", "forward", "gradients", "init_params", "jvp", "loss",
                    "safe_radius", "vjp"),
    "aedyn.ntk": ("NTKOperator", "ntk_dense", "ntk_drift", "ntk_extremes"),
    "aedyn.store": ("Store", "load_results"),
}
"""Each submodule and the public names it provides (the same as the ``TYPE_CHECKING`` imports)."""
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "REGIMES",
    "AedynError",
    "AedynWarning",
    "Certificate",
    "KernelJob",
    "LinearisedGD",
    "NTKOperator",
    "NTKPredictor",
    "Params",
    "Store",
    "Tangent",
    "TiedNTKLimit",
    "TrainJob",
    "TrainResult",
    "__version__",
    "batch_key",
    "certify",
    "evaluate",
    "fit_linear_rate",
    "forward",
    "gradients",
    "init_output_kernel",
    "init_params",
    "jvp",
    "k0",
    "k1",
    "kernel_spectrum",
    "load_data",
    "load_results",
    "loss",
    "memorisation",
    "ntk_dense",
    "ntk_drift",
    "ntk_extremes",
    "regime_kernel",
    "run_batch",
    "run_job",
    "run_kernel_job",
    "safe_radius",
    "train",
    "train_batch",
    "validate",
    "vjp",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule on first use (PEP 562): ``import aedyn`` and the
    ``aedyn`` command's ``--help`` and ``--version`` load neither torch nor NumPy."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'aedyn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups find it without this function
    return value


def __dir__() -> list[str]:
    """The module's attributes with every public name, imported yet or not."""
    return sorted(set(globals()) | set(__all__))
