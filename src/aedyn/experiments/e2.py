"""E2, how much over-parameterisation: the least width ``m*`` at which gradient descent succeeds.

For one setting (regime, data, ``n``, ``d``) and a set of initialisation seeds, a width ``m``
*succeeds* under a criterion when at least ``quorum`` (default 90%) of the seeds pass it. Every
network trains with ``eta = 1 / lambda_max(Theta(0))`` (its own, ``lr="auto"``) for at most the
step budget ``B = ceil(budget_factor * k_inf)``, where ``k_inf`` is the number of steps the
infinite-width kernel predicts: the least ``k`` at which the expected loss of linearised GD,
``E ||(I - eta_inf K)^k (f_0(X) - X)||_F^2``, is at most ``target`` times its value at ``k = 0``,
for ``K`` the regime's ``n x n`` infinite-width kernel (the NTK is ``K ⊗ I_d``), ``eta_inf = 1 /
lambda_max(K)`` and ``f_0`` the infinite-width network at initialisation, a Gaussian process with
covariance ``nu^2 kappa^2 K1`` per coordinate (:func:`aedyn.kernels.init_output_kernel`,
:meth:`aedyn.limit.LinearisedGD.steps_to`). (The zero-output residual ``-X`` alone predicts far
too few steps: ``X`` lies mostly in ``K``'s top eigenvectors, while the random ``f_0`` puts energy
into its slow modes too.) The criteria, each judged per seed:

- ``reach``: the loss reaches ``target * L(0)`` within the budget.
- ``rate`` (the theorem's conclusion): the run reaches the target, and throughout it the loss stays
  below the line of half the rate ``Theta(0)`` predicts, ``L(k) <= L(0) rho^(k/2)`` with
  ``rho = (1 - eta lambda_min(Theta(0)))^2`` the predicted per-step contraction of the loss.
  Without the reach requirement the test is vacuous when ``lambda_min`` is tiny (half of a rate
  of ``0.99999`` is met by a run that barely moves).
- ``kernel`` (the proofs' mechanism): ``lambda_min(Theta(t)) >= lambda_min(Theta(0)) / 2`` at every
  recorded step (``Theta(t)`` is evaluated ``KERNEL_CHECKS`` times across the budget and at the end).

A network whose kernel is singular at initialisation (``lambda_min(Theta(0)) <= SINGULAR *
lambda_max(Theta(0))``, as for weak training with ``m <= n``) fails ``rate`` and ``kernel``: ratios
of near-zero eigenvalues are noise, not evidence.

``m*`` is searched on the geometric grid of widths ``round(2^(j/2))`` (ratio ``2^(1/2)``):
starting at the grid width nearest ``n``, doubling the step along the grid until success and
failure are bracketed, then bisecting. The search assumes that success does not fail again at a
larger width; every width it tried is in the result, so the assumption can be checked. The seeds
of one width train as one batch (:func:`aedyn.job.run_batch`), and each width is trained once for
all criteria.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aedyn._check import check_choice, check_count, check_float
from aedyn.errors import AedynError
from aedyn.experiments import DATA_MARKERS, REGIME_COLOURS, small_problems
from aedyn.gd import TrainResult
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD

CRITERIA: tuple[str, ...] = ("reach", "rate", "kernel")
SINGULAR = 1e-9
"""``lambda_min(Theta(0)) / lambda_max(Theta(0))`` at or below which a kernel counts as singular."""
KERNEL_CHECKS = 4
"""How many times across the step budget ``Theta(t)`` is evaluated for the ``kernel`` criterion."""
MIN_BUDGET = 50
"""The step budget is at least this, whatever the infinite-width prediction."""


def width_grid(max_width: int) -> list[int]:
    """The widths ``round(2^(j/2))``, ``j = 0, 1, ...``, up to ``max_width``, without repeats:
    1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, ..."""
    max_width = check_count(max_width, "max_width")
    top = math.floor(2 * math.log2(max_width)) + 1
    return sorted({w for w in (round(2 ** (j / 2)) for j in range(top + 1)) if w <= max_width})


@dataclass(frozen=True)
class Trial:
    """One width, every seed: what each seed did and which criteria it passed."""

    width: int
    seeds: tuple[int, ...]
    status: tuple[str, ...]
    steps: tuple[int, ...]
    lr: tuple[float, ...]
    lambda_min0: tuple[float, ...]
    lambda_max0: tuple[float, ...]
    predicted_rate: tuple[float, ...]
    """``rho = (1 - eta lambda_min(Theta(0)))^2`` per seed: the predicted per-step loss contraction."""
    passed: dict[str, tuple[bool, ...]]

    def fraction(self, criterion: str) -> float:
        """The share of seeds that passed ``criterion``."""
        return float(np.mean(self.passed[check_choice(criterion, CRITERIA, "criterion")]))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trial:
        """The inverse of :meth:`to_dict` (JSON's ``null`` for a seed that could not train is NaN again)."""
        def floats(key: str) -> tuple[float, ...]:
            return tuple(math.nan if v is None else float(v) for v in record[key])

        return cls(width=int(record["width"]), seeds=tuple(record["seeds"]), status=tuple(record["status"]),
                   steps=tuple(record["steps"]), lr=floats("lr"), lambda_min0=floats("lambda_min0"),
                   lambda_max0=floats("lambda_max0"), predicted_rate=floats("predicted_rate"),
                   passed={c: tuple(bool(v) for v in p) for c, p in record["passed"].items()})

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "fractions": {c: self.fraction(c) for c in self.passed},
                "seeds": list(self.seeds), "status": list(self.status), "steps": list(self.steps),
                "lr": list(self.lr), "lambda_min0": list(self.lambda_min0), "lambda_max0": list(self.lambda_max0),
                "predicted_rate": list(self.predicted_rate), "passed": {c: list(v) for c, v in self.passed.items()}}


@dataclass
class Threshold:
    """The result of :func:`least_width`: ``m_star`` per criterion (``None`` when no width up to
    ``max_width`` succeeded), the step budget and its infinite-width basis, and every trial."""

    setting: dict[str, Any]
    m_star: dict[str, int | None]
    predicted_steps: int
    budget: int
    quorum: float
    trials: list[Trial] = field(default_factory=list)

    def trial(self, width: int) -> Trial:
        return next(t for t in self.trials if t.width == width)

    def predicted_rate(self, criterion: str) -> float | None:
        """The median predicted per-step loss contraction ``rho`` over the seeds at ``m*``."""
        m = self.m_star.get(criterion)
        return None if m is None else float(np.nanmedian(self.trial(m).predicted_rate))

    def kernel_ratio(self, criterion: str) -> float | None:
        """The median over the seeds at ``m*`` of ``lambda_min(Theta(0)) / lambda_min(K)``, ``K`` the
        infinite-width kernel: far below 1, the network starts near a singular kernel (and the
        ``kernel`` criterion, relative to ``Theta(0)``, says little)."""
        m, lam_inf = self.m_star.get(criterion), self.setting.get("lambda_min_inf")
        if m is None or not lam_inf or lam_inf <= 0:
            return None
        return float(np.nanmedian(self.trial(m).lambda_min0)) / lam_inf

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Threshold:
        """The inverse of :meth:`to_dict`."""
        return cls(setting=dict(record["setting"]), m_star=dict(record["m_star"]),
                   predicted_steps=int(record["predicted_steps"]), budget=int(record["budget"]),
                   quorum=float(record["quorum"]), trials=[Trial.from_dict(t) for t in record["trials"]])

    def to_dict(self) -> dict[str, Any]:
        return {"m_star": dict(self.m_star),
                "predicted_rate_at_m_star": {c: self.predicted_rate(c) for c in self.m_star},
                "setting": dict(self.setting), "predicted_steps": self.predicted_steps, "budget": self.budget,
                "quorum": self.quorum, "trials": [t.to_dict() for t in sorted(self.trials, key=lambda t: t.width)]}


def judge(results: Sequence[TrainResult | None], width: int, seeds: Sequence[int], criteria: Sequence[str]) -> Trial:
    """Which of ``criteria`` each run passed (see the module docstring). The runs must have
    recorded the NTK at step 0 (``ntk_every``), and at its cadence for ``kernel``; a ``None`` run
    (a network that could not train: a zero NTK at initialisation) fails every criterion."""
    nan = math.nan
    lam_min = np.array([nan if r is None else float(r.metrics["ntk_lambda_min"][0]) for r in results])
    lam_max = np.array([nan if r is None else float(r.metrics["ntk_lambda_max"][0]) for r in results])
    eta = np.array([nan if r is None else r.lr for r in results])
    rho = (1.0 - eta * lam_min) ** 2
    singular = ~(lam_min > SINGULAR * lam_max)
    reach = np.array([r is not None and r.status == "converged" for r in results])
    passed: dict[str, tuple[bool, ...]] = {}
    if "reach" in criteria:
        passed["reach"] = tuple(bool(v) for v in reach)
    if "rate" in criteria:
        below = []
        for r, contraction in zip(results, rho, strict=True):
            if r is None:
                below.append(False)
                continue
            k = np.arange(len(r.loss))
            line = r.loss[0] * np.power(contraction, k / 2.0) * (1 + 1e-9)  # rounding slack of a few ulps
            below.append(bool(np.all(r.loss <= line)))
        passed["rate"] = tuple(bool(v) for v in reach & np.array(below) & ~singular)
    if "kernel" in criteria:
        held = np.array([r is not None and bool(np.all(np.asarray(r.metrics["ntk_lambda_min"])
                                                        >= 0.5 * r.metrics["ntk_lambda_min"][0])) for r in results])
        passed["kernel"] = tuple(bool(v) for v in held & ~singular)
    return Trial(width=width, seeds=tuple(int(s) for s in seeds),
                 status=tuple("untrainable" if r is None else r.status for r in results),
                 steps=tuple(0 if r is None else int(r.steps) for r in results), lr=tuple(float(v) for v in eta),
                 lambda_min0=tuple(float(v) for v in lam_min), lambda_max0=tuple(float(v) for v in lam_max),
                 predicted_rate=tuple(float(v) for v in rho), passed=passed)


def _alone(job: TrainJob, max_memory: int | None) -> TrainResult | None:
    """One seed's run, or ``None`` when it cannot train (its NTK at initialisation is zero, so
    ``lr="auto"`` is undefined: a network that cannot learn fails every criterion)."""
    try:
        return run_batch([job], max_memory=max_memory)[0]
    except AedynError:
        return None


def search(ok: Callable[[int], bool], count: int, start: int) -> int | None:
    """The least index ``j`` in ``0..count-1`` with ``ok(j)``, for an ``ok`` that stays true once
    true: from ``start``, gallop (steps 1, 2, 4, ...) until a failing and a passing index are
    bracketed, then bisect. ``None`` when even the last index fails."""
    start = min(max(start, 0), count - 1)
    if ok(start):
        hi, step = start, 1
        while hi > 0:
            j = max(hi - step, 0)
            if not ok(j):
                lo = j
                break
            hi, step = j, 2 * step
        else:
            return 0
    else:
        lo, step = start, 1
        while True:
            j = min(lo + step, count - 1)
            if ok(j):
                hi = j
                break
            if j == count - 1:
                return None
            lo, step = j, 2 * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def least_width(regime: str, data: str = "sphere", n: int | None = 64, d: int | None = 16, *,
                seeds: int | Sequence[int] = 8, criteria: Sequence[str] = CRITERIA, target: float = 1e-6,
                budget_factor: float = 4.0, quorum: float = 0.9, max_width: int = 4096, data_seed: int = 0,
                kappa: float = 1.0, nu: float = 1.0, dtype: str = "float64", device: str = "cpu",
                max_memory: int | None = None, on_trial: Callable[[Trial], None] | None = None,
                known: Mapping[int, Trial] | None = None) -> Threshold:
    """``m*`` for one setting under each of ``criteria`` (see the module docstring).

    ``seeds`` is a count (seeds ``0..seeds-1``) or the seeds themselves; the data are drawn once
    (``data_seed``) and shared. ``on_trial`` is called after each width is trained (progress, a
    checkpoint); ``known`` holds trials of this very setting finished earlier (an interrupted run),
    which are not trained again.
    """
    criteria = tuple(dict.fromkeys(check_choice(c, CRITERIA, "criterion") for c in criteria))
    if not criteria:
        raise AedynError(f"give at least one criterion of {', '.join(CRITERIA)}")
    if regime == "tied":
        raise AedynError("the threshold needs the infinite-width kernel for its step budget, and the tied network "
                         "has none of the form K ⊗ I_d; use weak, joint or decoder")
    seed_list = list(range(check_count(seeds, "seeds"))) if isinstance(seeds, (int, np.integer)) else [
        int(s) for s in seeds]
    if not seed_list:
        raise AedynError("give at least one seed")
    budget_factor = check_float(budget_factor, "budget_factor", low=0.0, low_open=True)
    quorum = check_float(quorum, "quorum (share of seeds that must pass)", low=0.0, high=1.0, low_open=True)
    grid = width_grid(max_width)
    base = TrainJob(regime=regime, data=data, n=n, d=d, seed=seed_list[0], data_seed=data_seed, kappa=kappa, nu=nu,
                    width=grid[0], lr="auto", steps=1, target=target, dtype=dtype, device=device)
    X = base.load(Notes())
    K = regime_kernel(X, regime, kappa=kappa, nu=nu)
    spectrum = np.linalg.eigvalsh(K.double().cpu().numpy())
    lam_top = float(spectrum[-1])
    predicted = LinearisedGD(K, 1.0 / lam_top).steps_to(-X, target, covariance=init_output_kernel(X, kappa=kappa,
                                                                                                  nu=nu))
    if predicted is None:
        raise AedynError(f"the infinite-width {regime} kernel is singular at these data (repeated or parallel "
                         "samples?), so it predicts no number of steps to the target; use other data or a larger "
                         "target")
    budget = max(MIN_BUDGET, math.ceil(budget_factor * predicted))
    ntk_every = max(1, budget // KERNEL_CHECKS) if "kernel" in criteria else budget + 1
    n_, d_ = X.shape
    setting = {"regime": regime, "data": data, "n": int(n_), "d": int(d_), "seeds": seed_list, "data_seed": data_seed,
               "kappa": kappa, "nu": nu, "target": target, "budget_factor": budget_factor, "dtype": dtype,
               "device": device, "lr": "auto (1/lambda_max of each network's NTK at initialisation)",
               "max_width": max_width, "lambda_min_inf": float(spectrum[0])}
    trials: dict[int, Trial] = {w: t for w, t in (known or {}).items() if set(criteria) <= set(t.passed)}

    def trial(width: int) -> Trial:
        if width not in trials:
            jobs = [TrainJob(regime=regime, data=data, n=n, d=d, seed=s, data_seed=data_seed, kappa=kappa, nu=nu,
                             width=width, lr="auto", steps=budget, target=target, record_every=budget + 1,
                             ntk_every=ntk_every, dtype=dtype, device=device) for s in seed_list]
            try:
                results: list[TrainResult | None] = list(run_batch(jobs, max_memory=max_memory))
            except AedynError:  # a network with no gradient at initialisation (every ReLU dead): alone, it fails
                results = [_alone(job, max_memory) for job in jobs]
            trials[width] = judge(results, width, seed_list, criteria)
            if on_trial is not None:
                on_trial(trials[width])
        return trials[width]

    start = int(np.argmin([abs(math.log(w / n_)) for w in grid]))
    m_star: dict[str, int | None] = {}
    for criterion in criteria:
        j = search(lambda i, c=criterion: trial(grid[i]).fraction(c) >= quorum, len(grid), start)
        m_star[criterion] = None if j is None else grid[j]
    return Threshold(setting=setting, m_star=m_star, predicted_steps=int(predicted), budget=budget, quorum=quorum,
                     trials=sorted(trials.values(), key=lambda t: t.width))


# ---- m* against n: the table, the fitted exponents, the verdict ----------------------------------

PROVEN_BOUNDS = {"Du et al. 2019": 6.0, "Song & Yang 2019": 4.0, "Oymak & Soltanolkotabi 2020": 2.0}
"""Exponents ``a`` of the proven width requirements ``m = Omega(n^a)`` (supervised two-layer ReLU
networks; SPEC.md), against which the measured growth of ``m*`` is compared."""

PARAMETER_LINES = {"weak": 1.0, "joint": 0.5, "decoder": 1.0}
"""``m / n`` at which a regime's trained parameters equal the ``n d`` equations: weak trains
``m d`` encoder weights (``m = n``), joint ``2 m d`` (``m = n / 2``), decoder ``m d`` (``m = n``)."""


@dataclass(frozen=True)
class Exponent:
    """``m* ∝ n^value``: the least-squares slope of ``log m*`` on ``log n``, with a percentile
    bootstrap confidence interval over seeds (``None`` bounds when fewer than 2 points)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    points: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "points": self.points}


def m_star_of(trials: Sequence[Trial], criterion: str, quorum: float, seeds: np.ndarray | None = None) -> int | None:
    """The least tried width whose share of passing seeds is at least ``quorum`` (``seeds``: the
    indices of the seeds to count, with repeats, for a bootstrap resample; default all)."""
    for t in sorted(trials, key=lambda t: t.width):
        passed = np.asarray(t.passed[criterion], dtype=float)
        if (passed if seeds is None else passed[seeds]).mean() >= quorum:
            return t.width
    return None


def table_of(thresholds: Sequence[Threshold]) -> Any:
    """The tidy table: one row per setting and criterion (``regime, data, n, d, criterion, m_star,
    m_over_n, predicted_rate, lambda_min0_over_inf, budget, seeds``); ``m_star`` is NaN where no
    width succeeded."""
    import pandas as pd

    rows = []
    for th in thresholds:
        s = th.setting
        for criterion, m in th.m_star.items():
            rows.append({"regime": s["regime"], "data": s["data"], "n": s["n"], "d": s["d"], "criterion": criterion,
                         "m_star": math.nan if m is None else m, "m_over_n": math.nan if m is None else m / s["n"],
                         "predicted_rate": th.predicted_rate(criterion),
                         "lambda_min0_over_inf": th.kernel_ratio(criterion), "budget": th.budget,
                         "seeds": len(s["seeds"])})
    return pd.DataFrame(rows)


def fit_exponent(thresholds: Sequence[Threshold], criterion: str, *, axis: str = "n", resamples: int = 1000,
                 seed: int = 0, level: float = 0.95) -> Exponent | None:
    """``m* ∝ axis^a`` (``axis`` is ``"n"`` or ``"d"``) over settings that differ in that axis only:
    ``a`` from the measured ``m*``, its confidence interval from ``resamples`` bootstrap resamples of
    the seeds (independently per setting; a resample in which some ``m*`` is not found is dropped).
    ``None`` with fewer than two settings that found ``m*``."""
    axis = check_choice(axis, ("n", "d"), "axis")
    found = [th for th in thresholds if th.m_star.get(criterion) is not None]
    if len({th.setting[axis] for th in found}) < 2:
        return None
    x = np.log([th.setting[axis] for th in found])
    value = float(np.polyfit(x, np.log([th.m_star[criterion] for th in found]), 1)[0])
    if min(len(th.setting["seeds"]) for th in found) < 2:  # nothing to resample: no interval
        return Exponent(value, None, None, len(found))
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(check_count(resamples, "resamples")):
        ms = []
        for th in found:
            k = len(th.setting["seeds"])
            ms.append(m_star_of(th.trials, criterion, th.quorum, rng.integers(0, k, size=k)))
        if all(m is not None for m in ms):
            slopes.append(np.polyfit(x, np.log(ms), 1)[0])
    if len(slopes) < 10:
        return Exponent(value, None, None, len(found))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(slopes, [tail, 100 - tail])
    return Exponent(value, float(low), float(high), len(found))


def _num(x: float) -> str:
    """Two decimals, without a minus sign on a rounded zero."""
    return f"{round(x, 2) + 0.0:.2f}"


def conclude(table: Any, exponents: dict[tuple[str, str, str], Exponent | None]) -> list[str]:
    """Sentences computed from the numbers: per data set and criterion, how ``m*`` grows with ``n``
    in each regime (exponent and interval), whether joint needs less width than weak and by what
    factor at the largest ``n`` both reached, and how the exponents and widths compare with the
    parameter count and the proven bounds (:data:`PROVEN_BOUNDS`). ``exponents`` is keyed by
    ``(regime, data, criterion)``."""
    sentences = []
    order = {c: i for i, c in enumerate(CRITERIA)}
    groups = sorted(table.groupby(["data", "criterion"]), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99)))
    for (data, criterion), group in groups:
        parts = []
        for regime in sorted(group["regime"].unique()):
            e = exponents.get((regime, data, criterion))
            if e is None:
                parts.append(f"{regime}: too few widths found to fit a growth")
                continue
            ci = "" if e.ci_low is None else f" (95% CI {_num(e.ci_low)} to {_num(e.ci_high)})"
            parts.append(f"{regime}: m* grows like n^{e.value:.2f}{ci}")
        text = f"{data}, criterion {criterion}: " + "; ".join(parts) + "."
        both = group.pivot_table(index="n", columns="regime", values="m_star").dropna()
        if {"weak", "joint"} <= set(both.columns) and len(both):
            n_top = int(both.index.max())
            weak, joint = float(both.loc[n_top, "weak"]), float(both.loc[n_top, "joint"])
            if joint < weak:
                text += f" Joint training needs {weak / joint:.1f}x less width than weak at n = {n_top}."
            elif joint > weak:
                text += f" Joint training needs {joint / weak:.1f}x more width than weak at n = {n_top}."
            else:
                text += f" Joint and weak training need the same width at n = {n_top}."
        missing = group[group["m_star"].isna()]
        if len(missing):
            text += " No width on the grid succeeded for " + ", ".join(
                f"{r.regime} at n = {r.n}" for r in missing.itertuples()) + "."
        for regime, ratio in PARAMETER_LINES.items():
            rows = group[(group["regime"] == regime) & group["m_star"].notna()]
            if len(rows):
                over = rows["m_over_n"] / ratio
                text += (f" {regime}: m* is {over.min():.1f}-{over.max():.1f}x the parameter count "
                         f"(m = {'n' if ratio == 1 else 'n/2'}).")
        if "lambda_min0_over_inf" in group:
            rows = group[group["lambda_min0_over_inf"].notna()]
            if len(rows):
                ratios = rows["lambda_min0_over_inf"]
                low = rows[ratios < 0.25]
                text += (f" At m*, lambda_min(Theta(0)) is {ratios.min():.2g}-{ratios.max():.2g}x the infinite-width "
                         "kernel's lambda_min" + ("" if low.empty else " (below 0.25 for " + ", ".join(
                             f"{r.regime} at n = {r.n}" for r in low.itertuples())
                             + ": those networks start near a singular kernel)") + ".")
        fitted = [e.value if e.ci_high is None else e.ci_high for (_, dd, c), e in exponents.items()
                  if dd == data and c == criterion and e is not None]
        if fitted:
            top = max(fitted)
            below = [f"n^{a:g} ({name})" for name, a in PROVEN_BOUNDS.items() if top < a]
            above = [f"n^{a:g} ({name})" for name, a in PROVEN_BOUNDS.items() if top >= a]
            text += f" The fitted exponents (at most {top:.2f}, upper ends of the intervals)"
            text += (" are below the proven " + ", ".join(below)) if below else ""
            text += ((" but not below " if below else " are not below ") + ", ".join(above)) if above else ""
            text += "."
        sentences.append(text)
    return sentences


def scaling(regimes: Sequence[str] = ("weak", "joint"), data: str = "sphere", ns: Sequence[int] = (8, 16, 32, 64),
            d: int | None = 8, *, on_threshold: Callable[[Threshold], None] | None = None,
            **options: Any) -> list[Threshold]:
    """:func:`least_width` for every regime and every ``n`` (``options`` are passed on): the
    thresholds from which :func:`table_of`, :func:`fit_exponent` and :func:`plot` work."""
    out = []
    for regime in regimes:
        for n in ns:
            out.append(least_width(regime, data, n, d, **options))
            if on_threshold is not None:
                on_threshold(out[-1])
    return out






def plot(thresholds: Sequence[Threshold], *, axis: str = "n", criterion_for_success: str = "reach") -> dict[str, Any]:
    """Matplotlib figures (no I/O) of a series of settings that vary along ``axis`` (``"n"`` or
    ``"d"``): ``m_star_vs_<axis>``, log-log, one panel per criterion, each regime's (and data set's)
    ``m*`` with its fitted power law, and against ``n`` the parameter-count lines ``m = n`` and
    ``m = n/2``; ``success_vs_width`` (for ``axis="n"``), one panel per regime, the share of seeds
    passing ``criterion_for_success`` against the width for each ``n``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    def _plain_ticks(ticks: Any, values: Sequence[int]) -> None:
        """Ticks at the values themselves, written as plain numbers (no crowded minor labels)."""
        ticks.set_ticks(list(values))
        ticks.set_major_formatter(ScalarFormatter())
        ticks.set_minor_formatter(NullFormatter())

    axis = check_choice(axis, ("n", "d"), "axis")
    criteria = [c for c in CRITERIA if any(c in th.m_star for th in thresholds)]
    regimes = sorted({th.setting["regime"] for th in thresholds}, key=lambda r: list(REGIME_COLOURS).index(r))
    datasets = sorted({th.setting["data"] for th in thresholds})
    values = sorted({th.setting[axis] for th in thresholds})
    grid = np.geomspace(min(values), max(values), 50)
    entries = len(regimes) * len(datasets) + (2 if axis == "n" else 0)  # legend lines under each panel
    two = len(datasets) == 1  # short labels: two legend columns
    fig1, axes = plt.subplots(1, len(criteria), figsize=((3.2 if two else 3.6) * len(criteria),
                                                         3.0 + 0.15 * (entries / 2 if two else entries)),
                              sharey=True, squeeze=False, layout="constrained")
    for ax, criterion in zip(axes[0], criteria, strict=True):
        for regime in regimes:
            for data in datasets:
                mine = [th for th in thresholds if (th.setting["regime"], th.setting["data"]) == (regime, data)
                        and criterion in th.m_star]
                pts = [(th.setting[axis], th.m_star[criterion]) for th in mine if th.m_star[criterion] is not None]
                if not pts:
                    continue
                x, y = np.array(pts, dtype=float).T
                e = fit_exponent(mine, criterion, axis=axis)  # as in the verdict: the same interval
                name = regime if len(datasets) == 1 else f"{regime}, {data}"
                label = name if e is None else f"{name}: ${axis}^{{{e.value:.2f}}}$" + (
                    "" if e.ci_low is None else f" [{_num(e.ci_low)}, {_num(e.ci_high)}]")
                ax.plot(x, y, DATA_MARKERS.get(data, "^"), color=REGIME_COLOURS[regime], label=label)
                if e is not None:
                    c = np.exp(np.mean(np.log(y) - e.value * np.log(x)))
                    ax.plot(grid, c * grid ** e.value, "-", color=REGIME_COLOURS[regime], lw=1)
        if axis == "n":
            ax.plot(grid, grid, ":", color="0.5", lw=1, label="m = n")
            ax.plot(grid, grid / 2, "--", color="0.5", lw=1, label="m = n/2")
        ax.set(xscale="log", yscale="log", xlabel="samples n" if axis == "n" else "input dimension d",
               title=f"criterion: {criterion}")
        _plain_ticks(ax.xaxis, values)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2 if two else 1)
    axes[0][0].set_ylabel("least width m*")
    if axis == "d":
        return {"m_star_vs_d": fig1}
    fig2, axes = plt.subplots(len(datasets), len(regimes), figsize=(3.2 * len(regimes), 3.4 * len(datasets)),
                              sharey=True, squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for row, data in enumerate(datasets):  # one row per data set, one column per regime
        for ax, regime in zip(axes[row], regimes, strict=True):
            for i, n in enumerate(values):
                for th in thresholds:
                    if (th.setting["regime"], th.setting["data"], th.setting["n"]) == (regime, data, n):
                        w = [t.width for t in th.trials]
                        f = [t.fraction(criterion_for_success) for t in th.trials]
                        ax.plot(w, f, DATA_MARKERS.get(data, "^") + "-", ms=3,
                                color=cmap(0.85 * i / max(1, len(values) - 1)), label=f"n = {n}")  # no pale yellow
            quorum = thresholds[0].quorum
            ax.axhline(quorum, color="0.5", ls=":", lw=1, label=f"{100 * quorum:.0f}% of seeds")
            ax.set(xscale="log", xlabel="width m", title=regime if len(datasets) == 1 else f"{regime}, {data}",
                   ylim=(-0.05, 1.05))
            ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
        axes[row][0].set_ylabel(f"share of seeds passing ({criterion_for_success})")
    return {"m_star_vs_n": fig1, "success_vs_width": fig2}


# ---- the experiment's protocol (what `aedyn reproduce` calls) --------------------------------------

NAME = "E2"
TITLE = "How much over-parameterisation"
CLAIM = ("Gradient descent on a weakly or jointly trained over-parameterised autoencoder converges linearly to "
         "zero loss once the width is large enough, and joint training needs far less width than weak training.")


def config(quick: bool = False, seeds: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Everything the run depends on, JSON-ready. ``series``: each a data set and the axis it
    varies, ``n`` at fixed ``d`` or ``d`` at fixed ``n``, optionally with its own ``criteria`` and
    ``regimes`` (weak and joint everywhere; the decoder-only baseline, linear least squares, on
    sphere against ``n``).

    - quick: sphere, ``n`` in 8..64 at ``d = 8``; 4 seeds (about 2 minutes on 2 CPU cores).
    - full on the CPU (with E1 and E3-E6 within 30 minutes on 2 cores): sphere ``n`` in 4..64 at
      ``d = 8``, digits ``n`` in 2..16 (digits on reach and rate only: its strongly correlated
      samples need widths in the thousands from ``n = 16`` on, and the kernel criterion's
      eigenvalue solves at ``n d = 1024`` would double the time), sphere ``d`` in 4..64 at ``n =
      16``; 8 seeds. (Digits at ``n = 32``, 84% of the training work and 16 minutes, was dropped to
      make room for E3-E6: with it the whole report took 32 minutes.)
    - full on CUDA: sphere ``n`` in 16..1024 at ``d = 16`` (from ``n = 512`` on reach and rate
      only: the kernel criterion's eigenvalue solves at ``n d = 16384`` would cost more than the
      training), digits ``n`` in 4..64, sphere ``d`` in 4..64 at ``n = 64``; 8 seeds, widths up
      to 16384. Timed on an H100 (the whole run not yet): the joint search at ``n = 256`` took
      42 s, one width of 8 networks at ``n = 1024`` (40,000 steps) a minute.
    """
    if quick:
        series: list[dict[str, Any]] = [{"data": "sphere", "vary": "n", "ns": [8, 16, 32, 64], "d": 8,
                                         "regimes": ["weak", "joint", "decoder"]}]
    elif device.startswith("cuda"):
        series = [{"data": "sphere", "vary": "n", "ns": [16, 32, 64, 128, 256], "d": 16,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "sphere", "vary": "n", "ns": [512, 1024], "d": 16, "criteria": ["reach", "rate"]},
                  {"data": "digits", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": None},
                  {"data": "sphere", "vary": "d", "n": 64, "ds": [4, 8, 16, 32, 64]}]
    else:
        series = [{"data": "sphere", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": 8,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "digits", "vary": "n", "ns": [2, 4, 8, 16], "d": None, "criteria": ["reach", "rate"]},
                  {"data": "sphere", "vary": "d", "n": 16, "ds": [4, 8, 16, 32, 64]}]
    return {"regimes": ["weak", "joint"], "series": series,
            "seeds": seeds if seeds is not None else (4 if quick else 8), "criteria": list(CRITERIA),
            "target": 1e-6, "budget_factor": 4.0, "quorum": 0.9,
            "max_width": 16384 if device.startswith("cuda") and not quick else 4096, "data_seed": 0,
            "device": device, "dtype": "float64"}


def _settings(series: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    """The ``(data, n, d)`` of a series (``d = None``: the data's own, for digits and files)."""
    if series["vary"] == "n":
        return [(series["data"], int(n), series["d"]) for n in series["ns"]]
    return [(series["data"], int(series["n"]), int(d)) for d in series["ds"]]


def _describe(series: dict[str, Any]) -> str:
    only = f" (criteria {', '.join(series['criteria'])} only)" if "criteria" in series else ""
    if "regimes" in series:
        only += f" (regimes {', '.join(series['regimes'])})"
    if series["vary"] == "n":
        d = "its own d" if series["d"] is None else f"d = {series['d']}"
        return f"{series['data']}, n in {series['ns']} at {d}{only}"
    return f"{series['data']}, d in {series['ds']} at n = {series['n']}{only}"


def setup(config: dict[str, Any]) -> list[str]:
    """The set-up, in sentences for the report."""
    return [f"Data (seed {config['data_seed']}, shared by all widths and seeds): "
            + "; ".join(_describe(sr) for sr in config["series"])
            + f". Regimes {', '.join(config['regimes'])} in every series"
            + (", plus those a series names." if any("regimes" in sr for sr in config["series"]) else "."),
            f"Widths on the grid round(2^(j/2)) up to {config['max_width']}, searched (gallop, then bisect) from the "
            "width nearest n; initialisation seeds 0.." + f"{config['seeds'] - 1} at each width.",
            "Step size: eta = 1/lambda_max(Theta(0)) of each network. Step budget: "
            f"{config['budget_factor']:g} x the steps the infinite-width kernel predicts to reach "
            f"{config['target']:g} x the initial loss: linearised GD with eta = 1/lambda_max(K), its expected loss "
            "over the random initial outputs f_0 (a Gaussian process with covariance nu^2 kappa^2 K1 per coordinate) "
            "from the residual f_0(X) - X.",
            f"A width succeeds when at least {100 * config['quorum']:.0f}% of the seeds pass. Criteria: reach (the "
            "target within the budget); rate (the target, and the loss below L(0) rho^(k/2) throughout, "
            "rho = (1 - eta lambda_min(Theta(0)))^2); kernel (lambda_min(Theta(t)) >= lambda_min(Theta(0))/2 "
            f"throughout, checked {KERNEL_CHECKS} times). A kernel singular at initialisation "
            f"(lambda_min <= {SINGULAR:g} lambda_max) fails rate and kernel.",
            "Growth m* ~ n^a (and ~ d^b): least-squares slope of log m* on log n (log d); 95% interval from 1000 "
            "bootstrap resamples of the seeds."]


def run(config: dict[str, Any], *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict[str, Any]:
    """Find ``m*`` (:func:`least_width`) for every regime and every setting of every series (a
    setting in two series is run once); returns the config and the thresholds as plain data.
    ``checkpoint`` (an :class:`aedyn.files.Checkpoint`) keeps every width's trial as it finishes,
    so that an interrupted run, restarted, retrains only the width in flight."""
    criteria: dict[tuple[str, int, int | None], list[str]] = {}
    regimes: dict[tuple[str, int, int | None], list[str]] = {}
    for sr in config["series"]:  # a setting in several series is run once, for all their regimes and criteria
        for st in _settings(sr):
            criteria[st] = list(dict.fromkeys(criteria.get(st, []) + list(sr.get("criteria", config["criteria"]))))
            regimes[st] = list(dict.fromkeys(regimes.get(st, []) + list(sr.get("regimes", config["regimes"]))))
    settings = list(criteria)
    keys = ("seeds", "target", "budget_factor", "quorum", "max_width", "data_seed", "device", "dtype")
    total = sum(len(r) for r in regimes.values())
    thresholds = []
    with small_problems(config["device"]):
        for data, n, d in settings:  # each setting in every regime before the next: a stopped run has pairs
            for regime in regimes[(data, n, d)]:
                prefix = f"{regime}|{data}|{n}|{d}|"
                saved = {} if checkpoint is None else {w: checkpoint.get(prefix + str(w))
                                                        for w in width_grid(config["max_width"])}
                known = {w: Trial.from_dict(v) for w, v in saved.items() if v is not None}

                def keep(trial: Trial, prefix: str = prefix, what: str = f"{regime} {data} n = {n}") -> None:
                    if checkpoint is not None:
                        checkpoint.put(prefix + str(trial.width), trial.to_dict())
                    if progress is not None:
                        progress(f"{what}: width {trial.width}", len(thresholds) / total)

                th = least_width(regime, data, n, d, criteria=criteria[(data, n, d)], on_trial=keep, known=known,
                                 **{k: config[k] for k in keys})
                thresholds.append(th.to_dict())
                if progress is not None:
                    progress(f"{regime} {data} n = {n}, d = {th.setting['d']}: m* {th.m_star}",
                             len(thresholds) / total)
    return {"config": config, "thresholds": thresholds}


def _series(results: dict[str, Any]) -> list[tuple[dict[str, Any], list[Threshold]]]:
    """Each series of the run's config with its thresholds; series that vary the same axis on the
    same data at the same fixed value (e.g. sphere ``n`` in 16..256 with every criterion and in
    512..1024 with two) are merged into one."""
    ths = [Threshold.from_dict(t) for t in results["thresholds"]]
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for sr in results["config"]["series"]:
        key = (sr["data"], sr["vary"], sr["d"] if sr["vary"] == "n" else sr["n"])
        axis = "ns" if sr["vary"] == "n" else "ds"
        regimes = list(sr.get("regimes", results["config"]["regimes"]))
        if key in merged:
            merged[key][axis] = sorted(set(merged[key][axis]) | set(sr[axis]))
            merged[key]["regimes"] = list(dict.fromkeys(merged[key]["regimes"] + regimes))
        else:
            merged[key] = {**sr, axis: list(sr[axis]), "regimes": regimes}
    out = []
    for sr in merged.values():
        def member(th: Threshold, sr: dict[str, Any] = sr) -> bool:
            st = th.setting
            if st["data"] != sr["data"] or st["regime"] not in sr["regimes"]:
                return False
            if sr["vary"] == "n":
                return st["n"] in sr["ns"] and (sr["d"] is None or st["d"] == sr["d"])
            return st["n"] == sr["n"] and st["d"] in sr["ds"]

        out.append((sr, [th for th in ths if member(th)]))
    return out


def _exponents(ths: Sequence[Threshold], axis: str) -> dict[tuple[str, str, str], Exponent | None]:
    keys = sorted({(th.setting["regime"], th.setting["data"]) for th in ths})
    criteria = sorted({c for th in ths for c in th.m_star})
    return {(r, data, c): fit_exponent([th for th in ths if (th.setting["regime"], th.setting["data"]) == (r, data)],
                                       c, axis=axis) for r, data in keys for c in criteria}


def tabulate(results: dict[str, Any]) -> Any:
    """The tidy table of ``m*`` (:func:`table_of`), every setting once."""
    return table_of([Threshold.from_dict(t) for t in results["thresholds"]])


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The figures (:func:`plot`): against ``n`` over every n-series (sphere and digits together),
    and against ``d`` over the d-series."""
    out: dict[str, Any] = {}
    for axis in ("n", "d"):
        ths = [th for sr, group in _series(results) if sr["vary"] == axis for th in group]
        if ths:
            out.update(plot(ths, axis=axis))
    return out


def verdict(results: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The sentences (:func:`conclude` over the n-series; the growth with ``d`` over the
    d-series) and the summary: ``m_star`` per setting and criterion, ``exponent_n`` and
    ``exponent_d`` per regime, criterion and data, as in ``summary.json``."""
    table = tabulate(results)
    summary: dict[str, Any] = {
        "m_star": [{"regime": r.regime, "criterion": r.criterion, "data": r.data, "n": int(r.n), "d": int(r.d),
                    "m_star": None if r.m_star != r.m_star else int(r.m_star)} for r in table.itertuples()],
        "exponent_n": [], "exponent_d": []}
    sentences: list[str] = []
    for sr, ths in _series(results):
        exps = _exponents(ths, sr["vary"])
        summary[f"exponent_{sr['vary']}"] += [
            {"regime": r, "criterion": c, "data": data, **({"n": sr["n"]} if sr["vary"] == "d" else {}),
             **(e.to_dict() if e else {"value": None})} for (r, data, c), e in exps.items()]
        if sr["vary"] == "n":
            sentences += conclude(table_of(ths), exps)
        else:
            for criterion in [c for c in CRITERIA if any(c2 == c for (_, _, c2) in exps)]:
                parts = []
                for (r, _, c), e in exps.items():
                    if c == criterion:
                        parts.append(f"{r}: too few widths found" if e is None else
                                     f"{r}: m* grows like d^{e.value:.2f}" + ("" if e.ci_low is None else
                                     f" (95% CI {_num(e.ci_low)} to {_num(e.ci_high)})"))
                sentences.append(f"{sr['data']} at n = {sr['n']}, criterion {criterion}, against d: "
                                 + "; ".join(parts) + ".")
    return sentences, summary
