"""The shared power-law fit of E3-E6 (:func:`aedyn.experiments.fit_power_law`) and the helper that
lines runs up by seed: exact power laws recovered, the interval's coverage on noisy data, paired
against per-width resampling, zero widths, missing values, one seed, one width."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aedyn.experiments import PowerLaw, fit_power_law, values_by_seed

WIDTHS = [64, 128, 256, 512, 1024]


def _per_width_bootstrap(widths, values, *, resamples=1000, level=0.95, seed=0):
    """The interval of the estimator this replaced in E3/E6: seeds resampled independently at each width."""
    x = np.log(np.asarray(widths, dtype=float))
    xc = x - x.mean()
    logs = np.log(np.asarray(values, dtype=float))
    rng = np.random.default_rng(seed)
    Y = np.stack([row[rng.integers(0, len(row), size=(resamples, len(row)))].mean(axis=1) for row in logs], axis=1)
    tail = 100 * (1 - level) / 2
    return np.percentile(Y @ xc / (xc @ xc), [tail, 100 - tail])


def test_an_exact_power_law_is_recovered_with_a_point_interval():
    factors = [0.5, 1.0, 3.0, 7.0]  # each seed a constant factor at every width: every paired resample is exact
    fit = fit_power_law(WIDTHS, [[2.0 * m ** -0.5 * c for c in factors] for m in WIDTHS])
    assert isinstance(fit, PowerLaw)
    assert fit.value == pytest.approx(-0.5, abs=1e-12)
    assert fit.ci_low == pytest.approx(-0.5, abs=1e-12) and fit.ci_high == pytest.approx(-0.5, abs=1e-12)
    assert fit.widths == tuple(WIDTHS) and fit.zero_widths == ()
    assert fit.to_dict() == {"value": fit.value, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "n_widths": 5,
                             "widths": WIDTHS, "zero_widths": []}
    flat = fit_power_law(WIDTHS, [[0.7, 0.7, 0.7]] * len(WIDTHS))
    assert flat.value == pytest.approx(0.0, abs=1e-12) and flat.ci_low == pytest.approx(0.0, abs=1e-12)
    # the widths may come in any order (and as floats, as from a table); the fit is the same
    order = [3, 0, 4, 1, 2]
    shuffled = fit_power_law([float(WIDTHS[j]) for j in order], [[WIDTHS[j] ** 0.25, 2 * WIDTHS[j] ** 0.25]
                                                                 for j in order])
    assert shuffled.value == pytest.approx(0.25, abs=1e-12) and shuffled.widths == tuple(WIDTHS)


def test_the_slope_is_the_least_squares_line_through_the_seed_mean_of_the_logs():
    rng = np.random.default_rng(3)
    Q = np.exp(rng.standard_normal((len(WIDTHS), 4)))
    fit = fit_power_law(WIDTHS, Q.tolist(), resamples=0)
    expected = np.polyfit(np.log(WIDTHS), np.log(Q).mean(axis=1), 1)[0]
    assert fit.value == pytest.approx(expected, abs=1e-12)
    assert fit.ci_low is None and fit.ci_high is None  # resamples=0: no interval
    # not the log of the mean (E5/E6's former estimator) nor the pooled fit (E4's): those differ here
    assert fit.value != pytest.approx(np.polyfit(np.log(WIDTHS), np.log(Q.mean(axis=1)), 1)[0], abs=1e-6)
    # a missing value: the mean is over the seeds present at that width
    Q[2, 1] = np.nan
    values = Q.tolist()
    values[3][0] = None
    fit = fit_power_law(WIDTHS, values, resamples=0)
    means = [np.mean([math.log(v) for v in row if v is not None and math.isfinite(v)]) for row in values]
    assert fit.value == pytest.approx(np.polyfit(np.log(WIDTHS), means, 1)[0], abs=1e-12)
    ragged = fit_power_law(WIDTHS[:3], [[1.0, 2.0], [0.5], [0.25, 0.5]], resamples=0)  # short rows: missing
    assert ragged.value == pytest.approx(np.polyfit(np.log(WIDTHS[:3]), np.log([math.sqrt(2), 0.5, math.sqrt(1 / 8)]),
                                                    1)[0], abs=1e-12)


def test_the_interval_covers_a_known_slope_in_most_noisy_trials():
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(40):  # seed noise: the 95% interval holds the true slope about 95% of the time
        seed_factor = np.exp(0.3 * rng.standard_normal(6))
        noisy = [list(3.0 * m ** -0.75 * seed_factor * np.exp(0.2 * rng.standard_normal(6))) for m in WIDTHS]
        fit = fit_power_law(WIDTHS, noisy, resamples=300, seed=trial)
        hits += fit.ci_low <= -0.75 <= fit.ci_high
        assert fit.ci_low <= fit.value <= fit.ci_high and fit.widths == tuple(WIDTHS)
    assert hits >= 30  # percentile bootstrap with 6 seeds under-covers a little; far below means a wrong interval


def test_resampling_is_paired_across_widths():
    """Seeds differ by a large factor shared by all widths, and little else: the paired bootstrap sees
    that the slope hardly depends on which seeds are drawn; resampling each width on its own mixes
    the seed factors into the slope and gives a far wider interval."""
    rng = np.random.default_rng(7)
    seed_factor = np.exp(1.0 * rng.standard_normal(5))
    values = [list(m ** -0.5 * seed_factor * np.exp(0.01 * rng.standard_normal(5))) for m in WIDTHS]
    fit = fit_power_law(WIDTHS, values)
    assert fit.ci_low <= -0.5 <= fit.ci_high and fit.ci_high - fit.ci_low < 0.02
    low, high = _per_width_bootstrap(WIDTHS, values)
    assert high - low > 20 * (fit.ci_high - fit.ci_low)
    assert fit_power_law(WIDTHS, values) == fit  # reproducible: the same seed, the same interval
    # a narrower level, a narrower interval inside the wider one
    half = fit_power_law(WIDTHS, values, level=0.5)
    assert fit.ci_low <= half.ci_low <= half.ci_high <= fit.ci_high


def test_resamples_that_leave_a_width_empty_are_skipped():
    # seed 1 is missing at 128: a resample drawing only seed 1 has no value there and is skipped
    fit = fit_power_law([64, 128, 256], [[1.0, 2.0], [0.5, None], [0.25, 1.0]], resamples=500)
    assert fit.ci_low is not None and fit.ci_high is not None
    assert np.isfinite([fit.ci_low, fit.ci_high]).all()


def test_widths_with_a_zero_are_left_out_and_named():
    zero = fit_power_law([64, 128, 256, 512], [[0.1, 0.2], [0.05, 0.1], [0.0, 0.04], [None, math.nan]])
    assert zero.zero_widths == (256,) and zero.widths == (64, 128)  # the zero width named, the empty one skipped
    assert zero.to_dict()["n_widths"] == 2 and zero.to_dict()["zero_widths"] == [256]
    negative = fit_power_law([64, 128, 256], [[0.1, -0.2], [0.05, 0.1], [0.02, 0.04]])
    assert negative.zero_widths == (64,) and negative.widths == (128, 256)
    missing_not_zero = fit_power_law([64, 128], [[0.1, None], [0.05, 0.1]])
    assert missing_not_zero.zero_widths == () and missing_not_zero.widths == (64, 128)
    assert fit_power_law([64, 128], [[0.0], [0.1]]) is None  # one width left: no slope


def test_one_seed_gives_no_interval_and_one_width_no_fit():
    one_seed = fit_power_law(WIDTHS, [[m ** -0.5] for m in WIDTHS])
    assert one_seed.value == pytest.approx(-0.5) and one_seed.ci_low is None and one_seed.ci_high is None
    # two seeds, but never two at one width: no interval either
    apart = fit_power_law([64, 128, 256], [[1.0, None], [None, 0.5], [0.25, None]])
    assert apart.value is not None and apart.ci_low is None
    assert fit_power_law([256], [[1.0, 2.0]]) is None
    assert fit_power_law([64, 128], [[1.0, 2.0], [None, math.nan]]) is None
    assert fit_power_law([], []) is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="rows"):
        fit_power_law([64, 128], [[1.0]])
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([64, 64], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="positive integer"):
        fit_power_law([0, 64], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="level"):
        fit_power_law([64, 128], [[1.0, 2.0], [0.5, 1.0]], level=95)


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
