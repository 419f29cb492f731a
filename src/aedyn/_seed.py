"""Independent random streams from one user-facing seed.

Two generators seeded with the same integer give the same draws, so seeding the data and the
initialisation with one number would make ``w_r`` a multiple of ``x_r`` (docs/math/model.md, "Initialisation"). Every
random draw in aedyn therefore comes from a stream named by its purpose::

    stream(seed, purpose) = SeedSequence(seed, spawn_key=(PURPOSES[purpose],))

(NumPy's ``SeedSequence`` hashes the pair, so streams with different purposes are independent
for every seed, including equal ones). ``data`` draws synthetic samples and subsets, ``init``
the network, ``solver`` the start vectors of the eigensolvers, ``probe`` random probes,
``heldout`` the held-out inputs drawn from a finite source (:func:`aedyn.data.heldout_inputs`). The
scheme is versioned by :data:`SCHEME`, which every run record carries.
"""

from __future__ import annotations

import numpy as np
import torch

from aedyn._check import check_seed
from aedyn.errors import AedynError

SCHEME = "aedyn-seed-1: SeedSequence(seed, spawn_key=(purpose,))"

PURPOSES = {"data": 1, "init": 2, "solver": 3, "probe": 4, "heldout": 5}


def _sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    if purpose not in PURPOSES:
        raise AedynError(f"unknown random stream {purpose!r}; use one of: {', '.join(PURPOSES)}")
    return np.random.SeedSequence(check_seed(seed), spawn_key=(PURPOSES[purpose],))


def torch_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for ``purpose``, seeded with 64 bits drawn from the stream."""
    lo, hi = (int(v) for v in _sequence(seed, purpose).generate_state(2, np.uint32))
    return torch.Generator().manual_seed(lo | (hi << 32))


def numpy_generator(seed: int, purpose: str) -> np.random.Generator:
    """A NumPy ``Generator`` for ``purpose``."""
    return np.random.default_rng(_sequence(seed, purpose))
