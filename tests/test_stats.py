"""aedyn.stats: each interval against an independent computation, and calibrated by simulation at
the seed counts the experiments use."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from aedyn import stats
from aedyn.threshold import search, width_grid

# ---- slopes against the width: per-seed slopes, t interval ---------------------------------------

WIDTHS = [2 ** k for k in range(6, 15)]


def planted(rng: np.random.Generator, seeds: int, slope: float = -0.5) -> list[list[float]]:
    """``q_ij`` for seed ``i`` at width ``j`` with noise like E3's: a seed's own level (its networks at
    every width share their first draws), a seed's own slope deviation, and noise per run."""
    x = np.log(WIDTHS)
    level = rng.normal(0, 0.3, seeds)
    tilt = rng.normal(0, 0.04, seeds)
    noise = rng.normal(0, 0.05, (len(WIDTHS), seeds))
    logs = 1.0 + level[None, :] + (slope + tilt)[None, :] * x[:, None] + noise
    return np.exp(logs).tolist()


def test_the_slope_is_the_mean_of_each_seeds_least_squares_slope():
    rng = np.random.default_rng(0)
    values = planted(rng, 5)
    got = stats.fit_slope(WIDTHS, values)
    Y = np.log(np.asarray(values))
    own = [np.polyfit(np.log(WIDTHS), Y[:, i], 1)[0] for i in range(5)]
    assert got.value == pytest.approx(np.mean(own), rel=1e-12)
    assert got.per_seed == pytest.approx(own, rel=1e-12)
    want = sps.t.interval(0.95, 4, loc=np.mean(own), scale=sps.sem(own))
    assert (got.low, got.high) == pytest.approx(want, rel=1e-12)
    assert got.units == 5 and got.widths == tuple(WIDTHS) and got.zero_widths == ()


def test_missing_values_and_zero_widths():
    values = [[1.0, 2.0, 3.0], [0.5, None, 1.5], [0.25, 0.5, 0.0], [0.125, 0.25, 0.375]]
    got = stats.fit_slope([64, 128, 256, 512], values)
    assert got.zero_widths == (256,)  # a zero there for some seed: no logarithm, left out for every seed
    assert got.widths == (64, 128, 512) and got.units == 3
    seed1 = np.polyfit(np.log([64, 512]), np.log([2.0, 0.25]), 1)[0]  # seed 1 has only two widths left
    assert any(math.isclose(seed1, v, rel_tol=1e-12) for v in got.per_seed)
    assert stats.fit_slope([64], [[1.0]]) is None
    one = stats.fit_slope([64, 128], [[1.0], [2.0]])
    assert one.value == pytest.approx(1.0) and one.low is None and not one.has_interval
    with pytest.raises(ValueError, match="distinct"):
        stats.fit_slope([64, 64], [[1.0], [2.0]])


@pytest.mark.parametrize("seeds", [3, 4, 8])
def test_the_slope_interval_covers_a_planted_slope_95_percent_of_the_time(seeds):
    """400 repetitions at each seed count E3, E4 and E6 use: the nominal 95% covers 92-98%. (The
    paired bootstrap it replaced covered 75-78% at 3 seeds; resampling widths instead of seeds, or a
    90% interval, fall below 92% here.)"""
    rng = np.random.default_rng(seeds)
    covered = sum(stats.fit_slope(WIDTHS, planted(rng, seeds)).contains(-0.5) for _ in range(400))
    assert 0.92 <= covered / 400 <= 0.98


def test_widths_as_the_units_would_undercover():
    """The mutant the interval guards against: a t interval from the regression of the seed-mean
    log q on log m treats the widths as independent, and ignores that each seed has its own slope."""
    rng = np.random.default_rng(11)
    x = np.log(WIDTHS)
    covered = 0
    for _ in range(400):
        fit = sps.linregress(x, np.log(np.asarray(planted(rng, 4))).mean(axis=1))
        covered += abs(fit.slope + 0.5) <= sps.t.ppf(0.975, len(x) - 2) * fit.stderr
    assert covered / 400 < 0.8


def test_welch_against_scipy():
    a, b = [0.1, 0.3, 0.2, 0.5], [0.9, 1.1, 1.4]
    got = stats.welch(a, b)
    want = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((want.low, want.high), rel=1e-10)
    assert got.excludes(0.0) and not got.contains(0.0) and got.units == 3
    assert stats.welch([1.0], b) is None


def test_a_difference_of_slopes_covers_by_simulation():
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(400):
        a = stats.fit_slope(WIDTHS, planted(rng, 4, -0.5))
        b = stats.fit_slope(WIDTHS, planted(rng, 4, -0.75))
        covered += stats.slope_difference(a, b).contains(0.25)
    assert 0.92 <= covered / 400 <= 0.99


# ---- threshold widths: interval-censored likelihood ----------------------------------------------

def test_brackets_and_reversals():
    b = stats.brackets([8, 16, 32, 64], [[False, True, False], [True, True, False], [False, True, True],
                                         [True, True, True]])
    # seed 0 passes at 16, fails at 32 (a reversal), passes at 64: its bracket starts above the failure
    assert b.low == (32.0, 0.0, 16.0) and b.high == (64.0, 8.0, 32.0)
    assert b.reversals == ((32,), (), ()) and not b.monotone
    never = stats.brackets([8, 16], [[False], [False]])
    assert never.low == (16.0,) and never.high == (math.inf,)


def test_the_log_mass_is_exact_in_both_tails():
    """Against SciPy's log survival and log distribution functions, each tail in its own form (a
    plain difference of CDFs would cancel to 0 there)."""
    alpha = np.array([-40.0, -1.0, 3.0, 30.0, -np.inf, 2.0])
    beta = np.array([-39.0, 1.0, 3.5, 31.0, 0.0, np.inf])

    def reference(a: float, b: float) -> float:
        if a > 0:  # upper tail: sf(a) - sf(b)
            return sps.norm.logsf(a) + (0.0 if b == np.inf else np.log1p(-np.exp(sps.norm.logsf(b)
                                                                                   - sps.norm.logsf(a))))
        if b < 0:  # lower tail: cdf(b) - cdf(a)
            return sps.norm.logcdf(b) + (0.0 if a == -np.inf else np.log1p(-np.exp(sps.norm.logcdf(a)
                                                                                     - sps.norm.logcdf(b))))
        return float(np.log(sps.norm.cdf(b) - sps.norm.cdf(a)))

    want = [reference(a, b) for a, b in zip(alpha, beta, strict=True)]
    assert stats._log_mass(alpha, beta) == pytest.approx(want, rel=1e-10)


def test_the_gradient_matches_finite_differences():
    model = stats._Censored([0, 45, 64, 45, 91], [45, 64, 91, math.inf, 128], [1, 2, 3, 4, 5])
    f = stats._Law([1, 2, 3, 4, 5], [stats.Brackets((0.0,), (45.0,)), stats.Brackets((45.0,), (64.0,)),
                                     stats.Brackets((64.0,), (91.0,)), stats.Brackets((45.0,), (math.inf,)),
                                     stats.Brackets((91.0,), (128.0,))]).nll
    for p in ([0.3, 3.5, -1.0], [1.2, 1.0, -3.0], [0.0, 4.5, 0.5]):
        p = np.asarray(p)
        value, grad = f(p)
        assert value == pytest.approx(model.nll(p[0] * np.log([1, 2, 3, 4, 5]) + p[1], math.exp(p[2])), rel=1e-12)
        numeric = optimize.approx_fprime(p, lambda q: f(q)[0], 1e-7)
        assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def test_the_quorum_width_against_a_direct_maximisation():
    """The fit and its profile interval against Nelder-Mead on the plain likelihood: the estimate
    agrees, and at both ends of the interval the profile deviance is the cut-off."""
    b = stats.Brackets((45.0, 45.0, 64.0, 32.0, 45.0), (64.0, 64.0, 91.0, 45.0, 64.0))
    got = stats.quorum_width(b, 0.9)
    lo, hi = np.log(b.low), np.log(b.high)
    z = sps.norm.ppf(0.9)

    def nll(q: float, s: float) -> float:
        mu, sigma = q - math.exp(s) * z, math.exp(s)
        return -np.sum(np.log(sps.norm.cdf((hi - mu) / sigma) - sps.norm.cdf((lo - mu) / sigma)))

    best = optimize.minimize(lambda p: nll(*p), [4.0, -1.0], method="Nelder-Mead",
                             options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000})
    assert math.log(got.value) == pytest.approx(best.x[0], abs=2e-3)
    assert got.sigma == pytest.approx(math.exp(best.x[1]), rel=2e-2)
    for end in (got.low, got.high):
        q = math.log(end)
        prof = optimize.minimize_scalar(lambda s, q=q: nll(q, s), bounds=stats._S_BOUNDS, method="bounded").fun
        assert 2 * (prof - best.fun) == pytest.approx(stats._critical(0.95, 5, 2), abs=0.02)
    # the cut-off: 5 log(1 + F / 3), F the 95% quantile of F(1, 3)
    assert stats._critical(0.95, 5, 2) == pytest.approx(5 * math.log1p(sps.f.ppf(0.95, 1, 3) / 3), rel=1e-12)


def simulated_brackets(rng: np.random.Generator, ns: list[int], exponent: float, level: float, spread: float,
                       seeds: int) -> list[stats.Brackets]:
    """The real search (E2's gallop and bisection on the real width grid, from the width nearest n)
    run on planted per-seed thresholds ``log T = exponent log n + level + spread z``."""
    grid = width_grid(2 ** 20)
    out = []
    for n in ns:
        T = np.exp(exponent * math.log(n) + level + spread * rng.standard_normal(seeds))
        tried: dict[int, np.ndarray] = {}

        def ok(j: int, T=T, tried=tried) -> bool:
            tried.setdefault(grid[j], grid[j] >= T)
            return float(tried[grid[j]].mean()) >= 0.9

        search(ok, len(grid), int(np.argmin([abs(math.log(w / n)) for w in grid])))
        widths = sorted(tried)
        out.append(stats.brackets(widths, [tried[w] for w in widths]))
    return out


NS = [8, 16, 32, 64]


@pytest.mark.parametrize("seeds", [4, 8])
@pytest.mark.parametrize("spread", [0.05, 0.2, 0.5])
def test_quorum_width_and_growth_intervals_cover_planted_thresholds(spread, seeds):
    """On E2's real search over planted thresholds, at the seed counts the quick (4) and full (8)
    runs use and spreads of 0.05, 0.2 and 0.5 in log width: the 95% intervals of the growth exponent
    and of the quorum width cover the truth at least 90% of the time (100 repetitions each)."""
    rng = np.random.default_rng(int(100 * spread) + seeds)
    exponent, level = 0.5, 3.0
    truth_q = math.exp(exponent * math.log(16) + level + spread * sps.norm.ppf(0.9))
    grew = quorum = 0
    reps = 100
    for _ in range(reps):
        groups = simulated_brackets(rng, NS, exponent, level, spread, seeds)
        grew += stats.growth(NS, groups).contains(exponent)
        quorum += stats.quorum_width(groups[1]).contains(truth_q)
    assert grew / reps >= 0.9 and quorum / reps >= 0.9


def test_ratio_and_exponent_difference_cover_planted_thresholds():
    """Weak-like and joint-like settings with known quorum ratio and exponent difference."""
    rng = np.random.default_rng(7)
    ratio = diff = 0
    reps = 40
    for _ in range(reps):
        a = simulated_brackets(rng, NS, 0.5, 4.0, 0.2, 4)
        b = simulated_brackets(rng, NS, 0.8, 2.5, 0.2, 4)
        truth = math.exp((0.5 - 0.8) * math.log(16) + 1.5)
        ratio += stats.quorum_ratio(a[1], b[1]).contains(truth)
        diff += stats.exponent_difference(NS, a, NS, b).contains(-0.3)
    assert ratio / reps >= 0.9 and diff / reps >= 0.9


def test_growth_is_widened_when_settings_scatter_about_the_line():
    """A planted effect of each setting's data (the same for all its seeds): the line fits worse
    than the seeds explain, the lack-of-fit p-value says so and the interval widens."""
    rng = np.random.default_rng(3)
    clean = simulated_brackets(rng, NS, 0.5, 3.0, 0.2, 8)
    g = stats.growth(NS, clean)
    bumped = []
    for k, n in enumerate(NS):
        shift = (0.8, -0.8, 0.8, -0.8)[k]
        bumped += simulated_brackets(rng, [n], 0.5, 3.0 + shift, 0.2, 8)
    h = stats.growth(NS, bumped)
    assert h.lack_of_fit_p < 0.01 < g.lack_of_fit_p
    assert (h.high - h.low) > 2 * (g.high - g.low)
    # the widening is the heterogeneity factor's: without it the same data give a far narrower interval
    plain = stats._critical(0.95, 8 * len(NS), 3)
    real = stats._heterogeneous_critical
    try:
        stats._heterogeneous_critical = lambda level, count, parameters, deviance, df: plain
        narrow = stats.growth(NS, bumped)
    finally:
        stats._heterogeneous_critical = real
    assert (h.high - h.low) > 1.5 * (narrow.high - narrow.low)
    assert h.lack_of_fit / (len(NS) - 2) > 1  # the heterogeneity factor exceeds 1


def test_a_one_sided_bracket_gives_a_one_sided_interval():
    """Seeds that never passed bound the quorum width only from below."""
    q = stats.quorum_width(stats.Brackets((64.0, 64.0, 64.0, 64.0), (math.inf, math.inf, math.inf, 91.0)))
    assert q.low >= 64 and q.high == math.inf
    with pytest.raises(ValueError, match="low < high"):
        stats._Censored([10.0], [10.0])


@pytest.mark.parametrize(("ns", "seeds", "least_given"), [
    ([16, 32, 64, 128], 8, 8),  # the full run's range and seeds: given in at least a third of 24
    ([8, 16, 32, 64], 4, 1),    # the quick run's: rarely given (the exponent difference seldom excludes 0)
])
def test_the_extrapolated_crossing_range_covers_a_planted_meeting_point(ns, seeds, least_given):
    """Weak-like (exponent 0.35) and joint-like (0.65) laws that meet at n* = exp(2.4 / 0.3) ≈ 2981,
    measured on E2's real search at the report's settings and seed counts: the Bonferroni range
    covers n* whenever it is given (at least 90% of the repetitions that give one; it is
    conservative), it is given at least ``least_given`` times in 24, and it is not given for
    parallel laws."""
    rng = np.random.default_rng(11)
    truth = math.exp(2.4 / 0.3)
    given = covered = 0
    reps = 24
    for _ in range(reps):
        a = simulated_brackets(rng, ns, 0.35, 5.0, 0.2, seeds)
        b = simulated_brackets(rng, ns, 0.65, 2.6, 0.2, seeds)
        c = stats.crossing(ns[-1], a[-1], b[-1], ns, a, ns, b)
        if c is not None:
            given += 1
            covered += c.contains(truth)
            assert c.low <= c.value <= c.high and c.low >= ns[-1]
    assert given >= least_given and covered / given >= 0.9
    parallel = [simulated_brackets(rng, ns, e, lv, 0.2, seeds) for e, lv in ((0.5, 4.0), (0.5, 2.8))]
    assert stats.crossing(ns[-1], parallel[0][-1], parallel[1][-1], ns, parallel[0], ns, parallel[1]) is None
