"""The helper that lines runs up by seed for the slope fit (:func:`aedyn.experiments.values_by_seed`);
the fit itself and its calibration are in test_stats.py."""

from __future__ import annotations

import pytest

from aedyn.experiments import values_by_seed


def test_values_by_seed_lines_the_runs_up():
    records = [{"width": 256, "seed": 1, "q": 0.3}, {"width": 64, "seed": 0, "q": 1.0},
               {"width": 64, "seed": 1, "q": 2.0}, {"width": 256.0, "seed": 0, "q": None},
               {"width": 1024, "seed": 1, "q": 0.1}]
    widths, values = values_by_seed(records, "q")
    assert widths == [64, 256, 1024]
    assert values == [[1.0, 2.0], [None, 0.3], [None, 0.1]]
    assert values_by_seed([], "q") == ([], [])
    with pytest.raises(ValueError, match="two records"):
        values_by_seed([*records, {"width": 64, "seed": 0, "q": 5.0}], "q")
