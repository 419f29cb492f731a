"""Intervals for aedyn's claims: one method per kind of estimate, each checked by simulation.

Every number the report turns into a claim carries one of three kinds of interval, all at
``LEVEL = 0.95`` unless asked otherwise, and every method here has a simulation test at the seed
counts the experiments use (``tests/test_stats.py``: a planted truth, at least 400 repetitions,
the nominal 95% covering it 92-98% of the time):

1. **Slopes against the width** (laziness, the limit's error, E6's movement): ``q ∝ m^s``. A
   seed's networks at different widths share their first random draws (``init_params`` draws
   ``W`` first, so the encoder of width 256 is the first 256 rows of the one of width 1024), so
   the seeds, not the widths, are the independent units. Each seed ``i`` gets its own
   least-squares slope ``s_i`` of ``log q`` on ``log m`` over the widths where it has a value;
   the slope is ``s̄ = mean_i s_i`` and its interval the t interval over the seeds,

       s̄ ± t_{S-1, (1+level)/2} sd(s_i) / sqrt(S)                     (:func:`fit_slope`)

   exact when the ``s_i`` are normal, whatever the correlation across widths. (A bootstrap of
   the seeds covered 75-78% at 3 seeds, 81-83% at 4 and 89-90% at 8.)

2. **Threshold widths** (E2's ``m*``). Seed ``i``'s threshold ``T_i``, the least width from which
   it passes, is only known to lie in a bracket ``(L_i, U_i]``: ``L_i`` its largest failing
   width tried, ``U_i`` its least passing width tried above ``L_i`` (:func:`brackets`;
   ``L_i = 0`` when it never failed, ``U_i = inf`` when it never passed). With
   ``log T_i ~ N(mu, sigma^2)`` the likelihood of the brackets is

       l(mu, sigma) = sum_i log( Phi((log U_i - mu)/sigma) - Phi((log L_i - mu)/sigma) ),

   the **quorum width** (the width at which a share ``p`` of seeds pass, ``p`` the quorum) is
   ``Q_p = exp(mu + sigma z_p)``, and its interval the profile-likelihood interval
   ``{Q : 2 (l_max - max_{sigma} l) <= chi2_1(level)}`` (:func:`quorum_width`). Across settings
   that differ in ``n``, ``log T = a log n + b + sigma z`` (one ``sigma``) gives the **growth
   exponent** ``a``, again by maximum likelihood with a profile interval (:func:`growth`).
   ``sigma`` is kept in ``[SIGMA_MIN, SIGMA_MAX]``: when every seed lands in one bracket the
   likelihood does not fall as ``sigma -> 0``, and the interval is then the bracket, widened by
   what a spread of ``SIGMA_MIN`` allows. (Bootstrapping the largest of the seeds' grid
   thresholds gave intervals of zero width in 93% of cases and covered the truth 3% of the time.)

3. **Comparisons of two groups.** A difference of two slopes: Welch's t interval on the two
   sets of per-seed slopes (:func:`slope_difference`). A ratio of two quorum widths (joint's
   against weak's ``m*``): the profile-likelihood interval of ``log Q_a - log Q_b`` from the two
   settings' likelihoods (:func:`quorum_ratio`); of two growth exponents, the same
   (:func:`exponent_difference`). A comparison is a claim only when its interval excludes
   equality (:meth:`Estimate.excludes`), and with fewer than :data:`MIN_SEEDS` seeds it is none
   at all (:mod:`aedyn.findings` says "inconclusive"). Where two growth laws approach each other,
   the point where they would meet is an extrapolation, with a conservative (Bonferroni) range
   from the ratio's and the exponent difference's intervals (:func:`crossing`).

Everything here is NumPy and SciPy on a handful of numbers: pure functions, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps
from scipy.special import log_ndtr

LEVEL = 0.95
"""The confidence level of every interval in the report."""
MIN_SEEDS = 3
"""Fewer independent seeds than this behind an estimate: no claim is made from it."""
SIGMA_MIN = 0.01
"""The least spread of ``log T`` the threshold model allows (1% in width)."""
SIGMA_MAX = 5.0
"""The largest spread of ``log T`` the threshold model allows."""


@dataclass(frozen=True)
class Estimate:
    """A number with its interval: ``value``, and ``low``/``high`` at ``level`` (``None`` when there
    is no interval: one seed, or nothing to bound it; ``-inf``/``inf`` when the data bound only one
    side). ``method`` names how it was computed, ``units`` how many independent units (seeds)
    stand behind it."""

    value: float
    low: float | None
    high: float | None
    level: float = LEVEL
    method: str = ""
    units: int = 0

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def contains(self, x: float) -> bool:
        """Whether the interval holds ``x`` (no interval: only ``x`` equal to the value)."""
        if not self.has_interval:
            return bool(x == self.value)
        return bool(self.low <= x <= self.high)  # type: ignore[operator]

    def excludes(self, x: float) -> bool:
        """Whether the interval lies wholly on one side of ``x``; ``False`` without an interval."""
        return self.has_interval and not self.contains(x)

    def to_dict(self) -> dict[str, Any]:
        return {"value": _finite_or_none(self.value), "low": _finite_or_none(self.low),
                "high": _finite_or_none(self.high), "level": self.level, "method": self.method, "units": self.units}


def _finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN or infinity: ``None`` for those (an unbounded side is written as ``None``)."""
    return None if x is None or not math.isfinite(x) else float(x)


# ---- 1. slopes against the width ------------------------------------------------------------------

@dataclass(frozen=True)
class Slope(Estimate):
    """``q ∝ m^value`` (:func:`fit_slope`): ``widths`` fitted (increasing), ``zero_widths`` left out
    because some seed has ``q <= 0`` there, ``per_seed`` the seeds' own slopes, ``intercept`` the
    mean of their intercepts (the fitted line is ``exp(intercept) m^value``)."""

    widths: tuple[int, ...] = ()
    zero_widths: tuple[int, ...] = ()
    per_seed: tuple[float, ...] = ()
    intercept: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ci_low": _finite_or_none(self.low), "ci_high": _finite_or_none(self.high),
                "seeds": self.units, "n_widths": len(self.widths), "widths": list(self.widths),
                "zero_widths": list(self.zero_widths), "per_seed": [float(s) for s in self.per_seed]}


def t_interval(samples: Sequence[float], level: float = LEVEL, method: str = "t interval") -> Estimate | None:
    """The mean of ``samples`` with its t interval ``mean ± t_{S-1} sd / sqrt(S)`` (no interval for
    one sample; ``None`` for none). Non-finite samples are dropped."""
    x = np.asarray([v for v in samples if v is not None and math.isfinite(v)], dtype=float)
    if not len(x):
        return None
    mean = float(x.mean())
    if len(x) < 2:
        return Estimate(mean, None, None, level, method, 1)
    half = float(sps.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Estimate(mean, mean - half, mean + half, level, method, len(x))


def fit_slope(widths: Sequence[float], values: Sequence[Sequence[float | None]], *,
              level: float = LEVEL) -> Slope | None:
    """The exponent ``s`` of ``q ∝ m^s`` from ``values[j][i]``, the ``i``-th seed's ``q`` at width
    ``widths[j]`` (``None``, NaN or infinite: missing; short rows are padded with missing values).

    Widths where a present value is ``<= 0`` (no logarithm) are left out for every seed and named in
    ``zero_widths``. Each seed with values at two or more of the remaining widths gets its own
    least-squares slope of ``log q`` on ``log m``; the estimate is their mean with the t interval
    over the seeds (module docstring, item 1). ``None`` when no seed has two widths."""
    if len(widths) != len(values):
        raise ValueError(f"{len(widths)} widths but {len(values)} rows of values")
    ms = [_width(w) for w in widths]
    if len(set(ms)) != len(ms):
        raise ValueError(f"widths must be distinct, got {ms}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    seeds = max((len(v) for v in values), default=0)
    Q = np.full((len(ms), seeds), np.nan)
    for j, row in enumerate(values):
        Q[j, :len(row)] = [math.nan if v is None else float(v) for v in row]
    present = np.isfinite(Q)
    nonpositive = (present & ~(Q > 0)).any(axis=1)
    order = [j for j in np.argsort(ms) if present[j].any() and not nonpositive[j]]
    zeros = tuple(sorted(ms[j] for j in range(len(ms)) if nonpositive[j]))
    x_all = np.log(np.asarray(ms, dtype=float))
    slopes, intercepts, used = [], [], set()
    for i in range(seeds):
        rows = [j for j in order if present[j, i]]
        if len(rows) < 2:
            continue
        x, y = x_all[rows], np.log(Q[rows, i])
        xc = x - x.mean()
        s = float(xc @ (y - y.mean()) / (xc @ xc))
        slopes.append(s)
        intercepts.append(float(y.mean() - s * x.mean()))
        used.update(rows)
    if not slopes:
        return None
    est = t_interval(slopes, level)
    assert est is not None
    kept = tuple(sorted(ms[j] for j in used))
    return Slope(est.value, est.low, est.high, level, "mean of per-seed slopes, t interval over seeds", len(slopes),
                 kept, zeros, tuple(slopes), float(np.mean(intercepts)))


def _width(w: Any) -> int:
    m = float(w)
    if not (m > 0 and m.is_integer()):
        raise ValueError(f"a width must be a positive integer, got {w!r}")
    return int(m)


def slope_difference(a: Slope, b: Slope, level: float = LEVEL) -> Estimate | None:
    """``a - b`` with Welch's t interval on the two sets of per-seed slopes (valid for independent
    seeds; conservative when the two share seeds and are positively correlated). ``None`` when either
    has fewer than two seeds."""
    return welch(a.per_seed, b.per_seed, level)


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Estimate | None:
    """``mean(a) - mean(b)`` with Welch's t interval (Welch-Satterthwaite degrees of freedom)."""
    x, y = (np.asarray([v for v in s if v is not None and math.isfinite(v)], dtype=float) for s in (a, b))
    if len(x) < 2 or len(y) < 2:
        return None
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, diff, diff, level, "Welch t interval", min(len(x), len(y)))
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    half = float(sps.t.ppf((1 + level) / 2, df) * se)
    return Estimate(diff, diff - half, diff + half, level, "Welch t interval", min(len(x), len(y)))


# ---- 2. threshold widths: interval-censored maximum likelihood ------------------------------------

@dataclass(frozen=True)
class Brackets:
    """Each seed's threshold bracket ``(low[i], high[i]]`` in width (``low = 0``: it passed at every
    width tried; ``high = inf``: it failed at every width tried), and ``reversals``: per seed, the
    widths at which it failed although it had passed at a smaller width (success that did not last;
    the bracket then starts above the largest failure)."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    reversals: tuple[tuple[int, ...], ...] = ()

    @property
    def seeds(self) -> int:
        return len(self.low)

    @property
    def monotone(self) -> bool:
        return not any(self.reversals)


def brackets(widths: Sequence[int], passed: Sequence[Sequence[bool]]) -> Brackets:
    """The seeds' brackets from ``passed[j][i]``, whether seed ``i`` passed at ``widths[j]``: ``L_i`` the
    largest width at which it failed, ``U_i`` the least width above ``L_i`` at which it passed."""
    order = np.argsort(np.asarray(widths, dtype=float))
    ws = [int(widths[j]) for j in order]
    P = np.asarray([list(passed[j]) for j in order], dtype=bool)
    if P.ndim != 2 or P.shape[0] != len(ws):
        raise ValueError("passed must hold one row of seeds per width")
    low, high, reversals = [], [], []
    for i in range(P.shape[1]):
        fails = [w for w, p in zip(ws, P[:, i], strict=True) if not p]
        lo = max(fails) if fails else 0
        above = [w for w, p in zip(ws, P[:, i], strict=True) if p and w > lo]
        low.append(float(lo))
        high.append(float(min(above)) if above else math.inf)
        first = next((w for w, p in zip(ws, P[:, i], strict=True) if p), None)
        reversals.append(tuple(w for w in fails if first is not None and w > first))
    return Brackets(tuple(low), tuple(high), tuple(reversals))


def _log_mass(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``log(Phi(beta) - Phi(alpha))`` for ``alpha < beta`` (either may be infinite), without
    cancellation: in the upper tail through ``Phi(-alpha) - Phi(-beta)``."""
    flip = alpha > 0
    a, b = np.where(flip, -beta, alpha), np.where(flip, -alpha, beta)
    la, lb = log_ndtr(a), log_ndtr(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return lb + np.log1p(-np.exp(la - lb))


class _Censored:
    """The negative log-likelihood of interval-censored ``log T_i ~ N(mu_i, sigma^2)`` and its
    gradient. With ``alpha_i = (l_i - mu_i)/sigma``, ``beta_i = (u_i - mu_i)/sigma`` and
    ``M_i = Phi(beta_i) - Phi(alpha_i)``::

        nll = -sum_i log M_i
        d nll / d mu_i = -(phi(alpha_i) - phi(beta_i)) / (sigma M_i)
        d nll / d log sigma = -sum_i (alpha_i phi(alpha_i) - beta_i phi(beta_i)) / M_i

    (``alpha phi(alpha) = 0`` at ``alpha = -inf``)."""

    def __init__(self, low: Sequence[float], high: Sequence[float], x: Sequence[float] | None = None) -> None:
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        if lo.shape != hi.shape or not np.all(lo < hi):
            raise ValueError("every bracket needs low < high")
        with np.errstate(divide="ignore"):
            self.l, self.u = np.log(lo), np.log(hi)  # log 0 = -inf, log inf = inf
        self.x = None if x is None else np.asarray(x, dtype=float)
        self.count = len(lo)
        self.fl, self.fu = np.isfinite(self.l), np.isfinite(self.u)
        if np.any(~self.fl & ~self.fu):
            raise ValueError("a bracket (0, inf) says nothing; drop it")
        finite = np.concatenate([self.l[self.fl], self.u[self.fu]])
        self.span = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)

    def nll(self, mu: np.ndarray | float, sigma: float) -> float:
        return self.nll_grad(mu, math.log(sigma))[0]

    def nll_grad(self, mu: np.ndarray | float, s: float) -> tuple[float, np.ndarray, float]:
        """``(nll, d nll/d mu_i, d nll/d s)`` at ``sigma = e^s`` (infinite bounds by masks fixed at
        construction, so that one pass of array arithmetic serves every kind of bracket)."""
        inv = math.exp(-s)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            alpha, beta = (self.l - mu) * inv, (self.u - mu) * inv
            flip = alpha > 0
            lo, hi = np.where(flip, -beta, alpha), np.where(flip, -alpha, beta)
            log_hi = log_ndtr(hi)
            logm = log_hi + np.log1p(-np.exp(log_ndtr(lo) - log_hi))
            a0, b0 = np.where(self.fl, alpha, 0.0), np.where(self.fu, beta, 0.0)
            pa = np.where(self.fl, np.exp(-0.5 * a0 * a0 - _LOG_SQRT_2PI - logm), 0.0)
            pb = np.where(self.fu, np.exp(-0.5 * b0 * b0 - _LOG_SQRT_2PI - logm), 0.0)
            value = -float(logm.sum())
            g_mu = (pb - pa) * inv
            g_s = -float((a0 * pa - b0 * pb).sum())
        if not (math.isfinite(value) and math.isfinite(g_s)) or not np.all(np.isfinite(g_mu)):
            return 1e300, np.zeros(self.count), 0.0
        return value, g_mu, g_s


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _midpoints(m: _Censored) -> np.ndarray:
    """A starting value per bracket: its midpoint in log width, or its finite end."""
    return np.where(m.fl & m.fu, 0.5 * (m.l + m.u), np.where(m.fu, m.u, m.l))
_S_BOUNDS = (math.log(SIGMA_MIN), math.log(SIGMA_MAX))
_TOLERANCE = 1e-7
"""A minimisation stops when a step gains less than this in ``nll``: the intervals compare
``2 Delta nll`` with cut-offs of about 4, so their ends move by far less than a displayed digit."""


def _minimise(f: Callable[[np.ndarray], tuple[float, np.ndarray]], start: Sequence[float],
              bounds: Sequence[tuple[float, float]]) -> tuple[np.ndarray, float]:
    """``f`` (value and gradient) minimised within the box ``bounds``: Newton steps on the free
    coordinates (a coordinate at a bound whose gradient points outwards is held there), with a
    Hessian from differences of the analytic gradient and Levenberg damping, which makes each step
    a descent step. A handful of parameters, so this is a few dozen evaluations (SciPy's L-BFGS-B
    spent milliseconds per iteration on these problems)."""
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    x = np.clip(np.asarray(start, dtype=float), lo, hi)
    value, grad = f(x)
    damping = 1e-4
    for _ in range(200):
        free = ~(((x <= lo) & (grad > 0)) | ((x >= hi) & (grad < 0)))
        if not free.any() or np.max(np.abs(grad[free])) < 1e-7:
            break
        k = int(free.sum())
        H = np.empty((len(x), len(x)))
        for j in range(len(x)):
            h = 1e-6 * (1.0 + abs(x[j]))
            e = np.zeros(len(x))
            e[j] = h if x[j] + h <= hi[j] else -h
            H[:, j] = (f(x + e)[1] - grad) / e[j]
        H = 0.5 * (H + H.T)[np.ix_(free, free)]
        scale = max(1.0, float(np.max(np.abs(np.diag(H)))))
        accepted = False
        while damping < 1e12:
            try:
                step = np.linalg.solve(H + damping * scale * np.eye(k), -grad[free])
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            trial = x.copy()
            trial[free] = np.clip(x[free] + step, lo[free], hi[free])
            t_value, t_grad = f(trial)
            if t_value < value:
                accepted = True
                gain = value - t_value
                x, value, grad = trial, t_value, t_grad
                damping = max(damping / 10, 1e-12)
                break
            damping *= 10
        if not accepted or gain < _TOLERANCE:
            break
    return x, float(value)


def _critical(level: float, count: int, parameters: int) -> float:
    """The cut-off of ``2 (nll(theta) - nll_min)`` for a profile interval of one parameter, calibrated
    for small samples: with ``count`` observations and ``parameters`` fitted (one of them ``sigma``),
    uncensored normal data give exactly ``2 Delta nll = count log(1 + F / (count - parameters))`` with
    ``F ~ F(1, count - parameters)``, so the cut-off is that function of ``F``'s quantile (it tends
    to ``chi2_1(level)`` as ``count`` grows). No residual degrees of freedom: no interval (``inf``).

    Measured on E2's real search over planted thresholds (300 repetitions): with this cut-off the
    quorum width's interval covered 97-100% at 4 and 8 seeds and spreads 0.05-0.5; with
    ``chi2_1`` it covered only 84-88% at spread 0.5 (the spread is underestimated from few
    censored seeds, and the 90% quantile with it)."""
    df = count - parameters
    if df < 1:
        return math.inf
    return count * math.log1p(float(sps.f.ppf(level, 1, df)) / df)


def _endpoints(make_profile: Callable[[], Callable[[float], float]], centre: float, best: float, critical: float,
               scale: float, limit: float) -> tuple[float, float]:
    """The interval ``{v : 2 (profile(v) - best) <= critical}`` around ``centre``: step outwards by
    ``scale`` (doubling) until the profile passes the critical value, then find the crossing; a side
    that does not cross within ``limit`` of the centre is infinite. ``make_profile()`` gives a fresh
    (warm-starting) profile for each side."""
    if not math.isfinite(critical):
        return -math.inf, math.inf
    ends = []
    for sign in (-1.0, 1.0):
        profile = make_profile()

        def excess(v: float, profile: Callable[[float], float] = profile) -> float:
            return 2.0 * (profile(v) - best) - critical

        reach, step = 0.0, scale  # distances from the centre: inner at `reach`, outer at `reach + step`
        end = sign * math.inf
        while reach < limit:
            far = min(reach + step, limit)
            inner, outer = centre + sign * reach, centre + sign * far
            if excess(outer) > 0:
                lo, hi = (inner, outer) if sign > 0 else (outer, inner)
                # a profile that is not unimodal (excess already positive inside): keep the wider end
                end = outer if excess(inner) > 0 else optimize.brentq(excess, lo, hi, xtol=1e-4)
                break
            reach, step = far, 2 * step
        ends.append(end)
    return ends[0], ends[1]


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _profile_interval(f: Objective, p: np.ndarray, best: float, i: int, bounds: Sequence[tuple[float, float]],
                      critical: float, scale: float, limit: float) -> tuple[float, float]:
    """The profile-likelihood interval of parameter ``i`` of the negative log-likelihood ``f``
    (value and gradient), from its minimum ``p`` (value ``best``): every other parameter is
    minimised out at each value of parameter ``i``."""
    others = [b for j, b in enumerate(bounds) if j != i]
    rest0 = np.delete(p, i)
    seen: dict[float, float] = {}

    def make_profile() -> Callable[[float], float]:
        state = {"rest": rest0.copy()}

        def profile(v: float) -> float:
            if v in seen:
                return seen[v]

            def fixed(rest: np.ndarray) -> tuple[float, np.ndarray]:
                value, grad = f(np.insert(rest, i, v))
                return value, np.delete(grad, i)

            rest, value = _minimise(fixed, state["rest"], others)
            if 2 * (value - best) > critical:  # about to call v outside: make sure no better optimum was missed
                other, again = _minimise(fixed, rest0, others)
                if again < value:
                    rest, value = other, again
            state["rest"] = rest
            seen[v] = value
            return value

        return profile

    best = min(best, make_profile()(float(p[i])))
    return _endpoints(make_profile, float(p[i]), best, critical, scale, limit)


def _fit(f: Objective, starts: Sequence[Sequence[float]], bounds: Sequence[tuple[float, float]],
         ) -> tuple[np.ndarray, float]:
    """The best of :func:`_minimise` from each start."""
    return min((_minimise(f, st, bounds) for st in starts), key=lambda pv: pv[1])


# ---- the quorum width of one setting, and the ratio of two --------------------------------------

@dataclass(frozen=True)
class QuorumWidth(Estimate):
    """The width ``Q_p`` at which a share ``p`` of seeds pass (:func:`quorum_width`), in width units;
    ``sigma`` the fitted spread of ``log T``, ``share`` the ``p``."""

    sigma: float = math.nan
    share: float = 0.9

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "sigma": _finite_or_none(self.sigma), "share": self.share}


def _quantile_nll(model: _Censored, z: float) -> Objective:
    """``(q, s) -> nll`` and its gradient, with ``mu = q - e^s z`` (``q = log Q_p``)."""
    def f(p: np.ndarray) -> tuple[float, np.ndarray]:
        q, s = float(p[0]), float(p[1])
        value, g_mu, g_s = model.nll_grad(q - math.exp(s) * z, s)
        total = float(np.sum(g_mu))
        return value, np.array([total, g_s - total * math.exp(s) * z])

    return f


def _quantile_bounds(model: _Censored) -> list[tuple[float, float]]:
    return [(model.span[0] - 10, model.span[1] + 10), _S_BOUNDS]


def _quorum_fit(b: Brackets, share: float) -> tuple[_Censored, Objective, np.ndarray, float]:
    model = _Censored(b.low, b.high)
    f = _quantile_nll(model, float(sps.norm.ppf(share)))
    lo, hi = model.span
    p, best = _fit(f, [[0.5 * (lo + hi), math.log(0.2)], [hi, math.log(0.05)]], _quantile_bounds(model))
    return model, f, p, best


def quorum_width(b: Brackets, share: float = 0.9, *, level: float = LEVEL) -> QuorumWidth:
    """The quorum width ``Q_p = exp(mu + sigma z_p)`` (``p = share``) of the seeds' thresholds, by
    maximum likelihood on their brackets with the profile-likelihood interval (module docstring,
    item 2; cut-off :func:`_critical` with two parameters). An interval side the data do not bound
    is ``0`` (below) or ``inf`` (above); with two seeds or fewer there is no interval."""
    if not b.seeds:
        raise ValueError("no seeds")
    model, f, p, best = _quorum_fit(b, share)
    low, high = _profile_interval(f, p, best, 0, _quantile_bounds(model), _critical(level, b.seeds, 2), 0.1, 12.0)
    return QuorumWidth(math.exp(p[0]), math.exp(low), math.exp(high) if math.isfinite(high) else math.inf, level,
                       "interval-censored normal model of log thresholds; profile likelihood", b.seeds,
                       math.exp(float(p[1])), share)


def quorum_ratio(a: Brackets, b: Brackets, share: float = 0.9, *, level: float = LEVEL) -> Estimate:
    """``Q_a / Q_b``, the ratio of two settings' quorum widths (:func:`quorum_width`), with the
    profile-likelihood interval of ``r = log Q_a - log Q_b`` from their two (independent)
    likelihoods, parameters ``(r, q_b, s_a, s_b)`` (cut-off :func:`_critical` with four)."""
    model_a, fa, pa, best_a = _quorum_fit(a, share)
    model_b, fb, pb, best_b = _quorum_fit(b, share)

    def f(p: np.ndarray) -> tuple[float, np.ndarray]:
        r, qb, sa, sb = (float(v) for v in p)
        va, ga = fa(np.array([qb + r, sa]))
        vb, gb = fb(np.array([qb, sb]))
        return va + vb, np.array([ga[0], ga[0] + gb[0], ga[1], gb[1]])

    p = np.array([pa[0] - pb[0], pb[0], pa[1], pb[1]])
    span = (min(model_a.span[0], model_b.span[0]), max(model_a.span[1], model_b.span[1]))
    bounds = [(-20.0, 20.0), (span[0] - 10, span[1] + 10), _S_BOUNDS, _S_BOUNDS]
    low, high = _profile_interval(f, p, best_a + best_b, 0, bounds, _critical(level, a.seeds + b.seeds, 4), 0.1,
                                  15.0)
    return Estimate(math.exp(p[0]), math.exp(low), math.exp(high) if math.isfinite(high) else math.inf, level,
                    "ratio of quorum widths; profile likelihood of the log ratio", min(a.seeds, b.seeds))


# ---- the growth of the threshold with n, and the difference of two growths -----------------------

@dataclass(frozen=True)
class Growth(Estimate):
    """``log T = value * log x + intercept + sigma z``, fitted to the seeds' brackets at several ``x``
    (:func:`growth`): ``value`` the exponent with its profile interval; ``xs`` the settings; ``share``
    the quorum share, so that the law's quorum width at ``x`` is :meth:`quorum_at`. ``lack_of_fit``
    is the deviance of the line against one free level per ``x`` (same ``sigma``), ``lack_of_fit_p``
    its chi-square p-value: small, the settings scatter about the line more than the seeds explain
    (curvature, or an effect of each setting's data), and the interval is widened for it."""

    intercept: float = math.nan
    sigma: float = math.nan
    xs: tuple[float, ...] = ()
    share: float = 0.9
    lack_of_fit: float = 0.0
    lack_of_fit_p: float = 1.0

    def quorum_at(self, x: float) -> float:
        return math.exp(self.value * math.log(x) + self.intercept + self.sigma * float(sps.norm.ppf(self.share)))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ci_low": _finite_or_none(self.low), "ci_high": _finite_or_none(self.high),
                "intercept": _finite_or_none(self.intercept), "sigma": _finite_or_none(self.sigma),
                "points": len(self.xs), "xs": list(self.xs), "share": self.share,
                "lack_of_fit": self.lack_of_fit, "lack_of_fit_p": self.lack_of_fit_p}


_GROWTH_BOUNDS = [(-20.0, 20.0), (-100.0, 100.0), _S_BOUNDS]


class _Law:
    """``log T = a log x + b + e^s z`` on the seeds' brackets at several ``x``: the fit, and the fit
    with one free level per ``x`` against which the line's lack of fit is measured."""

    def __init__(self, xs: Sequence[float], groups: Sequence[Brackets]) -> None:
        if len(xs) != len(groups):
            raise ValueError(f"{len(xs)} settings but {len(groups)} groups of brackets")
        self.settings = len(groups)
        self.group = np.asarray([k for k, g in enumerate(groups) for _ in range(g.seeds)])
        x = [math.log(xv) for xv, g in zip(xs, groups, strict=True) for _ in range(g.seeds)]
        self.model = _Censored([v for g in groups for v in g.low], [v for g in groups for v in g.high], x)
        self.x = np.asarray(x)
        self.distinct = len({float(v) for v in xs})

    def nll(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        value, g_mu, g_s = self.model.nll_grad(p[0] * self.x + p[1], float(p[2]))
        return value, np.array([float(g_mu @ self.x), float(np.sum(g_mu)), g_s])

    def fit(self) -> tuple[np.ndarray, float]:
        m = self.model
        mid = _midpoints(m)
        a0, b0 = np.polyfit(self.x, mid, 1) if self.distinct > 1 else (0.0, float(mid.mean()))
        return _fit(self.nll, [[a0, b0, math.log(0.2)], [a0, b0, math.log(0.03)]], _GROWTH_BOUNDS)

    def lack_of_fit(self, best: float) -> tuple[float, int]:
        """``(deviance, degrees of freedom)`` of the line against one free level per setting."""
        k = self.settings
        if k < 3:
            return 0.0, 0

        def free(p: np.ndarray) -> tuple[float, np.ndarray]:
            value, g_mu, g_s = self.model.nll_grad(p[:k][self.group], float(p[k]))
            return value, np.concatenate([np.bincount(self.group, g_mu, minlength=k), [g_s]])

        m = self.model
        mid = _midpoints(m)
        levels = [float(mid[self.group == j].mean()) for j in range(k)]
        bounds = [(m.span[0] - 10, m.span[1] + 10)] * k + [_S_BOUNDS]
        _, free_best = _fit(free, [[*levels, math.log(0.2)], [*levels, math.log(0.03)]], bounds)
        return max(0.0, 2.0 * (best - free_best)), k - 2

    def critical(self, level: float, deviance: float, df: int) -> float:
        return _heterogeneous_critical(level, self.model.count, 3, deviance, df)


def _heterogeneous_critical(level: float, count: int, parameters: int, deviance: float, df: int) -> float:
    """The cut-off for a growth exponent: :func:`_critical`, or, when the settings scatter about the
    line more than the seeds explain (heterogeneity ``h = deviance / df > 1``), ``h F(1, df)``: the
    profile deviance scaled by ``h`` against an F quantile with the settings' residual degrees of
    freedom (Finney's heterogeneity factor, as in probit analysis)."""
    base = _critical(level, count, parameters)
    if df < 1 or deviance <= df:
        return base
    return max(base, deviance / df * float(sps.f.ppf(level, 1, df)))


def growth(xs: Sequence[float], groups: Sequence[Brackets], share: float = 0.9, *,
           level: float = LEVEL) -> Growth | None:
    """The growth exponent ``a`` of ``log T = a log x + b + sigma z`` from the seeds' brackets at each
    ``x`` (``groups[k]`` at ``xs[k]``), by maximum likelihood with the profile-likelihood interval
    (cut-off :func:`_heterogeneous_critical`). ``None`` with fewer than two distinct ``x``."""
    law = _Law(xs, groups)
    if law.distinct < 2:
        return None
    p, best = law.fit()
    deviance, df = law.lack_of_fit(best)
    low, high = _profile_interval(law.nll, p, best, 0, _GROWTH_BOUNDS, law.critical(level, deviance, df), 0.05, 10.0)
    return Growth(float(p[0]), low, high, level, "interval-censored normal model, log T = a log x + b + sigma z; "
                  "profile likelihood", min(g.seeds for g in groups), float(p[1]), math.exp(float(p[2])),
                  tuple(float(x) for x in xs), share, deviance, float(sps.chi2.sf(deviance, df)) if df else 1.0)


def exponent_difference(xs_a: Sequence[float], groups_a: Sequence[Brackets], xs_b: Sequence[float],
                        groups_b: Sequence[Brackets], *, level: float = LEVEL) -> Estimate | None:
    """``a_A - a_B``, the difference of two growth exponents (:func:`growth`, independent data), with
    the profile-likelihood interval of ``delta`` from the sum of the two likelihoods, parameters
    ``(delta, a_B, b_A, s_A, b_B, s_B)``; the cut-off pools the two laws' lack of fit
    (:func:`_heterogeneous_critical`). ``None`` when either exponent cannot be fitted."""
    law_a, law_b = _Law(xs_a, groups_a), _Law(xs_b, groups_b)
    if law_a.distinct < 2 or law_b.distinct < 2:
        return None
    (pa, best_a), (pb, best_b) = law_a.fit(), law_b.fit()

    def f(p: np.ndarray) -> tuple[float, np.ndarray]:
        delta, ab, ba, sa, bb, sb = (float(v) for v in p)
        va, ga = law_a.nll(np.array([ab + delta, ba, sa]))
        vb, gb = law_b.nll(np.array([ab, bb, sb]))
        return va + vb, np.array([ga[0], ga[0] + gb[0], ga[1], ga[2], gb[1], gb[2]])

    p = np.array([pa[0] - pb[0], pb[0], pa[1], pa[2], pb[1], pb[2]])
    (dev_a, df_a), (dev_b, df_b) = law_a.lack_of_fit(best_a), law_b.lack_of_fit(best_b)
    critical = _heterogeneous_critical(level, law_a.model.count + law_b.model.count, 6, dev_a + dev_b, df_a + df_b)
    bounds = [(-40.0, 40.0), *_GROWTH_BOUNDS[:2], _S_BOUNDS, _GROWTH_BOUNDS[1], _S_BOUNDS]
    low, high = _profile_interval(f, p, best_a + best_b, 0, bounds, critical, 0.05, 10.0)
    return Estimate(float(p[0]), low, high, level, "difference of growth exponents; profile likelihood",
                    min(g.seeds for g in (*groups_a, *groups_b)))


def crossing(x_top: float, top_a: Brackets, top_b: Brackets, xs_a: Sequence[float], groups_a: Sequence[Brackets],
             xs_b: Sequence[float], groups_b: Sequence[Brackets], share: float = 0.9, *,
             level: float = LEVEL) -> Estimate | None:
    """Where two growth laws would meet, by extrapolation beyond ``x_top``: with ``r`` the ratio of
    A's quorum width to B's at ``x_top`` (:func:`quorum_ratio` of ``top_a``, ``top_b``) and ``delta =
    a_B - a_A`` the difference of their exponents (:func:`exponent_difference`), the ratio at ``x`` is
    ``r (x / x_top)^(-delta)``, which reaches 1 at

        x* = x_top r^(1 / delta).

    Only when the data say the laws approach: ``r > 1`` and ``delta > 0`` both with intervals that
    exclude equality; otherwise ``None``. The interval is ``[x_top r_low^(1/delta_high), x_top
    r_high^(1/delta_low)]`` from the two intervals at level ``1 - (1 - level)/2`` each (Bonferroni:
    when both cover, the range covers ``x*``, since ``x*`` rises with ``r`` and falls with ``delta``;
    so it covers at least ``level`` of the time, conservatively)."""
    each = 1.0 - (1.0 - level) / 2.0
    r = quorum_ratio(top_a, top_b, share, level=each)
    delta = exponent_difference(xs_b, groups_b, xs_a, groups_a, level=each)
    if delta is None or not (r.has_interval and delta.has_interval and r.low > 1 and delta.low > 0):  # type: ignore[operator]
        return None
    low = x_top * r.low ** (1.0 / delta.high) if math.isfinite(delta.high) else x_top  # type: ignore[arg-type,operator]
    high = x_top * r.high ** (1.0 / delta.low) if math.isfinite(r.high) else math.inf  # type: ignore[arg-type,operator]
    return Estimate(x_top * r.value ** (1.0 / delta.value), low, high, level,
                    "extrapolated meeting point of two growth laws; Bonferroni from the ratio's and the exponent "
                    "difference's profile intervals", min(r.units, delta.units))
