"""The names options choose between (regimes, devices, executors, ...), in a module that imports
nothing, so that the command line can list them in ``--help`` without importing torch.

Each is re-exported by the module that gives it meaning (``aedyn.model.REGIMES``, ...).
"""

from __future__ import annotations

REGIMES: tuple[str, ...] = ("weak", "joint", "decoder", "tied")
"""Which layers train: the encoder only, both, the decoder only, or one matrix shared as ``V = W^T``."""
INIT_SCALES: tuple[str, ...] = ("ntk", "mean-field")
"""Named output scales: ``alpha = 1/sqrt(m)`` and ``alpha = 1/m``."""
DECODER_INITS: tuple[str, ...] = ("gaussian", "rademacher")
"""Distributions of the decoder's initial entries."""
SOURCES: tuple[str, ...] = ("sphere", "digits")
"""The embedded data sets (any other ``data`` is a file)."""
DTYPE_NAMES: tuple[str, ...] = ("float64", "float32")
"""Floating-point precisions, the default first."""
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
"""Device names (``cuda:N`` picks one GPU)."""
EXECUTORS: tuple[str, ...] = ("local", "dask")
"""Where a sweep's batches run: this process, or a Dask cluster."""
CRITERIA: tuple[str, ...] = ("reach", "lambda0")
"""A width search's success criteria."""
STEP_RULES: tuple[str, ...] = ("global", "layerwise")
"""How a width search's networks' step sizes are set: one for the network, or one per layer (joint;
see :mod:`aedyn.threshold`)."""
EXPERIMENT_NAMES: tuple[str, ...] = ("E1", "E2", "E3", "E4", "E5", "E6")
"""The experiments of the report, in report order."""
PROFILES: tuple[str, ...] = ("scale",)
"""E2's named configurations besides quick and full: ``scale`` carries the sphere ``n``-series to
large ``n`` (see :func:`aedyn.experiments.e2.config`)."""
