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
:meth:`aedyn.limit.LinearisedGD.steps_to`). The two criteria, each judged per seed:

- ``reach``: the loss reaches ``target * L(0)`` within the budget.
- ``lambda0`` (the proofs' own condition): ``lambda_min(Theta(t)) >= lambda_0 / 2`` at every
  check, ``lambda_0 = lambda_min(K)`` the least eigenvalue of the infinite-width NTK
  (``Theta(t)`` is evaluated ``KERNEL_CHECKS`` times across the budget and at the stop). Near
  ``m ≈ n`` the finite kernel's own ``lambda_min(Theta(0))`` is a few percent of ``lambda_0``, so
  a condition relative to it passes networks that train nothing; relative to ``lambda_0`` it is
  monotone in ``m`` and at least as demanding as ``reach``.

Two more columns of every width's table, which are not criteria: ``rate`` (the run reaches the
target and its loss stays below ``L(0) rho^(k/2)``, ``rho = (1 - eta lambda_min(Theta(0)))^2``,
the theorem's rate conclusion) equals ``reach`` in practice and adds nothing: linearised GD's loss
falls like ``rho^k``, already below that line; and ``kernel_ratio = min_t lambda_min(Theta(t)) /
lambda_min(Theta(0))``, the Θ(0)-relative form of the kernel condition.

``m*`` is searched on the geometric grid of widths ``round(2^(j/2))`` (ratio ``2^(1/2)``):
starting at the grid width nearest ``n``, doubling the step along the grid until success and
failure are bracketed, then bisecting. The search assumes that success does not fail again at a
larger width, and checks it: a width above ``m*`` (tried for any criterion) that fails the quorum
moves the search above it, and the threshold records the failure (``checks``). The seeds of one
width train as one batch (:func:`aedyn.job.run_batch`), and each width is trained once for all
criteria.

**Statistics** (:mod:`aedyn.stats`). Each seed's threshold lies in the bracket between its largest
failing and least passing width tried. The *quorum width* (the width at which the quorum's share
of seeds pass) is estimated by maximum likelihood on these brackets, ``log T ~ N(mu, sigma^2)``,
with a profile-likelihood interval; the grid's ``m*`` and its bracket stand beside it. The growth
``log T = a log n + b + sigma z`` gives the exponent ``a`` (widened when the settings scatter about
the line more than the seeds explain), the ratio of weak's and joint's quorum widths at each ``n``
its own profile interval, and the difference of their exponents too. Joint "needs less width"
only where the ratio's interval lies above 1.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from aedyn._check import check_choice, check_count, check_float
from aedyn.errors import AedynError, MemoryRefusal
from aedyn.experiments import small_problems, style
from aedyn.findings import Finding, comparison, interval, nonneg, num, seeds_phrase, sig, statement
from aedyn.gd import TrainResult
from aedyn.job import Notes, TrainJob, run_batch
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.stats import (
    Brackets,
    Estimate,
    Growth,
    QuorumWidth,
    brackets,
    exponent_difference,
    growth,
    quorum_ratio,
    quorum_width,
)

CRITERIA: tuple[str, ...] = ("reach", "lambda0")
RETIRED = {
    "kernel": "the criterion 'kernel' (relative to lambda_min(Theta(0))) was replaced by 'lambda0' "
              "(lambda_min(Theta(t)) >= lambda_0/2 with lambda_0 of the infinite-width kernel); its ratio is a column "
              "of every width's table",
    "rate": "the criterion 'rate' equals 'reach' at every width (linearised GD's loss already falls below its line) "
            "and is now a column of every width's table; use reach or lambda0",
}
"""Criteria of earlier versions, with what replaced them."""
SINGULAR = 1e-9
"""``lambda_min(Theta(0)) / lambda_max(Theta(0))`` at or below which a kernel counts as singular."""
KERNEL_CHECKS = 4
"""How many times across the step budget ``Theta(t)`` is evaluated for the ``lambda0`` criterion."""
MIN_BUDGET = 50
"""The step budget is at least this, whatever the infinite-width prediction."""


def check_criteria(criteria: Sequence[str]) -> tuple[str, ...]:
    """The criteria, validated: an old name is refused with what replaced it."""
    out = []
    for c in criteria:
        if c in RETIRED:
            raise AedynError(RETIRED[c])
        out.append(check_choice(c, CRITERIA, "criterion"))
    out = list(dict.fromkeys(out))
    if not out:
        raise AedynError(f"give at least one criterion of {', '.join(CRITERIA)}")
    return tuple(out)


def width_grid(max_width: int) -> list[int]:
    """The widths ``round(2^(j/2))``, ``j = 0, 1, ...``, up to ``max_width``, without repeats:
    1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, ..."""
    max_width = check_count(max_width, "max_width")
    top = math.floor(2 * math.log2(max_width)) + 1
    return sorted({w for w in (round(2 ** (j / 2)) for j in range(top + 1)) if w <= max_width})


@dataclass(frozen=True)
class Trial:
    """One width, every seed: what each seed did, which criteria it passed, and the two columns
    that are not criteria (``rate_held``, ``kernel_ratio``; see the module docstring)."""

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
    rate_held: tuple[bool, ...] = ()
    kernel_ratio: tuple[float, ...] = ()
    """``min_t lambda_min(Theta(t)) / lambda_min(Theta(0))`` per seed."""
    lambda_min_low: tuple[float, ...] = ()
    """``min_t lambda_min(Theta(t))`` per seed."""

    def fraction(self, criterion: str) -> float:
        """The share of seeds that passed ``criterion``."""
        return float(np.mean(self.passed[check_choice(criterion, CRITERIA, "criterion")]))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trial:
        """The inverse of :meth:`to_dict` (JSON's ``null`` for a seed that could not train is NaN again)."""
        def floats(key: str) -> tuple[float, ...]:
            return tuple(math.nan if v is None else float(v) for v in record.get(key, ()))

        return cls(width=int(record["width"]), seeds=tuple(record["seeds"]), status=tuple(record["status"]),
                   steps=tuple(record["steps"]), lr=floats("lr"), lambda_min0=floats("lambda_min0"),
                   lambda_max0=floats("lambda_max0"), predicted_rate=floats("predicted_rate"),
                   passed={c: tuple(bool(v) for v in p) for c, p in record["passed"].items()},
                   rate_held=tuple(bool(v) for v in record.get("rate_held", ())),
                   kernel_ratio=floats("kernel_ratio"), lambda_min_low=floats("lambda_min_low"))

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "fractions": {c: self.fraction(c) for c in self.passed},
                "seeds": list(self.seeds), "status": list(self.status), "steps": list(self.steps),
                "lr": list(self.lr), "lambda_min0": list(self.lambda_min0), "lambda_max0": list(self.lambda_max0),
                "predicted_rate": list(self.predicted_rate), "passed": {c: list(v) for c, v in self.passed.items()},
                "rate_held": list(self.rate_held), "kernel_ratio": list(self.kernel_ratio),
                "lambda_min_low": list(self.lambda_min_low)}


@dataclass
class Threshold:
    """The result of :func:`least_width`: ``m_star`` per criterion (``None`` when no width up to
    ``max_width`` succeeded), the step budget and its infinite-width basis, every trial, and per
    criterion what the check of the search's assumption found (``checks``: ``failed_above``, the
    widths above the first passing one that failed the quorum; ``checked_above``, the widths above
    ``m*`` that were tried and passed)."""

    setting: dict[str, Any]
    m_star: dict[str, int | None]
    predicted_steps: int
    budget: int
    quorum: float
    trials: list[Trial] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def trial(self, width: int) -> Trial:
        return next(t for t in self.trials if t.width == width)

    def brackets(self, criterion: str) -> Brackets:
        """Each seed's threshold bracket under ``criterion`` (:func:`aedyn.stats.brackets`)."""
        ts = sorted(self.trials, key=lambda t: t.width)
        return brackets([t.width for t in ts], [t.passed[criterion] for t in ts])

    def quorum_width(self, criterion: str) -> QuorumWidth:
        """The estimated quorum width with its interval (:func:`aedyn.stats.quorum_width`)."""
        return quorum_width(self.brackets(criterion), self.quorum)

    def bracket(self, criterion: str) -> tuple[int, int | None]:
        """The grid bracket of ``m*``: the largest width tried below it that failed the quorum (0 when
        none) and ``m*``."""
        m = self.m_star.get(criterion)
        below = [t.width for t in self.trials if (m is None or t.width < m) and t.fraction(criterion) < self.quorum]
        return (max(below) if below else 0), m

    def predicted_rate(self, criterion: str) -> float | None:
        """The median predicted per-step loss contraction ``rho`` over the seeds at ``m*``."""
        m = self.m_star.get(criterion)
        return None if m is None else float(np.nanmedian(self.trial(m).predicted_rate))

    def kernel_ratio(self, criterion: str) -> float | None:
        """The median over the seeds at ``m*`` of ``lambda_min(Theta(0)) / lambda_0``, ``lambda_0`` the
        infinite-width kernel's: far below 1, the network starts near a singular kernel."""
        m, lam_inf = self.m_star.get(criterion), self.setting.get("lambda_min_inf")
        if m is None or not lam_inf or lam_inf <= 0:
            return None
        return nonneg(float(np.nanmedian(self.trial(m).lambda_min0)) / lam_inf)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Threshold:
        """The inverse of :meth:`to_dict`."""
        return cls(setting=dict(record["setting"]), m_star=dict(record["m_star"]),
                   predicted_steps=int(record["predicted_steps"]), budget=int(record["budget"]),
                   quorum=float(record["quorum"]), trials=[Trial.from_dict(t) for t in record["trials"]],
                   checks=dict(record.get("checks", {})))

    def to_dict(self) -> dict[str, Any]:
        return {"m_star": dict(self.m_star),
                "predicted_rate_at_m_star": {c: self.predicted_rate(c) for c in self.m_star},
                "setting": dict(self.setting), "predicted_steps": self.predicted_steps, "budget": self.budget,
                "quorum": self.quorum, "trials": [t.to_dict() for t in sorted(self.trials, key=lambda t: t.width)],
                "checks": dict(self.checks)}


def judge(results: Sequence[TrainResult | None], width: int, seeds: Sequence[int], criteria: Sequence[str], *,
          lambda_0: float) -> Trial:
    """Which of ``criteria`` each run passed (see the module docstring), with ``lambda_0`` the
    least eigenvalue of the infinite-width kernel. The runs must have recorded the NTK at step 0
    and at its cadence (``ntk_every``); a ``None`` run (a network that could not train: a zero NTK
    at initialisation) fails every criterion."""
    nan = math.nan
    lam_min = np.array([nan if r is None else float(r.metrics["ntk_lambda_min"][0]) for r in results])
    lam_max = np.array([nan if r is None else float(r.metrics["ntk_lambda_max"][0]) for r in results])
    low = np.array([nan if r is None else float(np.min(r.metrics["ntk_lambda_min"])) for r in results])
    eta = np.array([nan if r is None else r.lr for r in results])
    rho = (1.0 - eta * lam_min) ** 2
    singular = ~(lam_min > SINGULAR * lam_max)
    reach = np.array([r is not None and r.status == "converged" for r in results])
    below = []
    for r, contraction in zip(results, rho, strict=True):
        if r is None:
            below.append(False)
            continue
        k = np.arange(len(r.loss))
        line = r.loss[0] * np.power(contraction, k / 2.0) * (1 + 1e-9)  # rounding slack of a few ulps
        below.append(bool(np.all(r.loss <= line)))
    passed: dict[str, tuple[bool, ...]] = {}
    if "reach" in criteria:
        passed["reach"] = tuple(bool(v) for v in reach)
    if "lambda0" in criteria:
        passed["lambda0"] = tuple(bool(v) for v in (low >= 0.5 * lambda_0) & np.isfinite(low))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(singular, nan, low / lam_min)
    return Trial(width=width, seeds=tuple(int(s) for s in seeds),
                 status=tuple("untrainable" if r is None else r.status for r in results),
                 steps=tuple(0 if r is None else int(r.steps) for r in results), lr=tuple(float(v) for v in eta),
                 lambda_min0=tuple(float(v) for v in lam_min), lambda_max0=tuple(float(v) for v in lam_max),
                 predicted_rate=tuple(float(v) for v in rho), passed=passed,
                 rate_held=tuple(bool(v) for v in reach & np.array(below) & ~singular),
                 kernel_ratio=tuple(float(v) for v in ratio), lambda_min_low=tuple(float(v) for v in low))


def _alone(job: TrainJob, max_memory: int | None) -> TrainResult | None:
    """One seed's run, or ``None`` when it cannot train (its NTK at initialisation is zero, so
    ``lr="auto"`` is undefined: a network that cannot learn fails every criterion)."""
    try:
        return run_batch([job], max_memory=max_memory)[0]
    except MemoryRefusal:
        raise
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
    criteria = check_criteria(criteria)
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
    lam_top, lam_0 = float(spectrum[-1]), max(0.0, float(spectrum[0]))
    predicted = LinearisedGD(K, 1.0 / lam_top).steps_to(-X, target, covariance=init_output_kernel(X, kappa=kappa,
                                                                                                  nu=nu))
    if predicted is None:
        raise AedynError(f"the infinite-width {regime} kernel is singular at these data (repeated or parallel "
                         "samples?), so it predicts no number of steps to the target; use other data or a larger "
                         "target")
    budget = max(MIN_BUDGET, math.ceil(budget_factor * predicted))
    ntk_every = max(1, budget // KERNEL_CHECKS)
    n_, d_ = X.shape
    setting = {"regime": regime, "data": data, "n": int(n_), "d": int(d_), "seeds": seed_list, "data_seed": data_seed,
               "kappa": kappa, "nu": nu, "target": target, "budget_factor": budget_factor, "dtype": dtype,
               "device": device, "lr": "auto (1/lambda_max of each network's NTK at initialisation)",
               "max_width": max_width, "lambda_min_inf": lam_0}
    trials: dict[int, Trial] = {w: t for w, t in (known or {}).items() if set(criteria) <= set(t.passed)}

    def trial(width: int) -> Trial:
        if width not in trials:
            jobs = [TrainJob(regime=regime, data=data, n=n, d=d, seed=s, data_seed=data_seed, kappa=kappa, nu=nu,
                             width=width, lr="auto", steps=budget, target=target, record_every=budget + 1,
                             ntk_every=ntk_every, dtype=dtype, device=device) for s in seed_list]
            try:
                results: list[TrainResult | None] = list(run_batch(jobs, max_memory=max_memory))
            except MemoryRefusal:  # a refused width is an error, not evidence
                raise
            except AedynError:  # a network with no gradient at initialisation (every ReLU dead): alone, it fails
                results = [_alone(job, max_memory) for job in jobs]
            trials[width] = judge(results, width, seed_list, criteria, lambda_0=lam_0)
            if on_trial is not None:
                on_trial(trials[width])
        return trials[width]

    def ok(criterion: str, j: int) -> bool:
        return trial(grid[j]).fraction(criterion) >= quorum

    start = int(np.argmin([abs(math.log(w / n_)) for w in grid]))
    found: dict[str, int | None] = {}
    for criterion in criteria:
        found[criterion] = search(lambda j, c=criterion: ok(c, j), len(grid), start)
    # the search assumes success lasts: a tried width above m* that fails the quorum moves m* above it
    m_star: dict[str, int | None] = {}
    checks: dict[str, dict[str, Any]] = {}
    for criterion in criteria:
        j = found[criterion]
        first = j
        while j is not None:
            failing = [i for i, w in enumerate(grid) if i > j and w in trials and not ok(criterion, i)]
            if not failing:
                break
            top = max(failing)
            if top == len(grid) - 1:
                j = None
                break
            rest = search(lambda i, c=criterion, top=top: ok(c, top + 1 + i), len(grid) - top - 1, 0)
            j = None if rest is None else top + 1 + rest
        m_star[criterion] = None if j is None else grid[j]
        first_pass = None if first is None else grid[first]
        checks[criterion] = {
            "first_pass": first_pass,
            "failed_above": sorted(w for w in trials if first_pass is not None and w > first_pass
                                   and trials[w].fraction(criterion) < quorum),
            "checked_above": sorted(w for w in trials if m_star[criterion] is not None and w > m_star[criterion]
                                    and trials[w].fraction(criterion) >= quorum)}
    return Threshold(setting=setting, m_star=m_star, predicted_steps=int(predicted), budget=budget, quorum=quorum,
                     trials=sorted(trials.values(), key=lambda t: t.width), checks=checks)


def scaling(regimes: Sequence[str] = ("weak", "joint"), data: str = "sphere", ns: Sequence[int] = (8, 16, 32, 64),
            d: int | None = 8, *, on_threshold: Callable[[Threshold], None] | None = None,
            **options: Any) -> list[Threshold]:
    """:func:`least_width` for every regime and every ``n`` (``options`` are passed on)."""
    out = []
    for regime in regimes:
        for n in ns:
            out.append(least_width(regime, data, n, d, **options))
            if on_threshold is not None:
                on_threshold(out[-1])
    return out


# ---- the analysis: estimates, growth laws, ratios -------------------------------------------------

PROVEN_BOUNDS = {"Du et al. 2019": 6.0, "Song & Yang 2019": 4.0, "Oymak & Soltanolkotabi 2020": 2.0}
"""Exponents ``a`` of the proven width requirements ``m = Omega(n^a)`` (supervised two-layer ReLU
networks), against which the measured growth of ``m*`` is compared."""

PARAMETER_LINES = {"weak": 1.0, "joint": 0.5, "decoder": 1.0}
"""``m / n`` at which a regime's trained parameters equal the ``n d`` equations: weak trains
``m d`` encoder weights (``m = n``), joint ``2 m d`` (``m = n / 2``), decoder ``m d`` (``m = n``)."""


@dataclass
class Analysis:
    """Everything E2 concludes from its thresholds, computed once (:func:`analyse`):

    - ``series``: each merged series with its thresholds (:func:`_series`);
    - ``quorum``: per ``(regime, data, n, d, criterion)``, the estimated quorum width;
    - ``growth``: per ``(series index, regime, data, criterion)``, the fitted growth law (``None``
      with fewer than two settings that found ``m*``... or none fitted);
    - ``ratio``: per ``(series index, data, n, d, criterion)``, weak's quorum width over joint's;
    - ``difference``: per ``(series index, data, criterion)``, joint's exponent minus weak's."""

    series: list[tuple[dict[str, Any], list[Threshold]]]
    quorum: dict[tuple[Any, ...], QuorumWidth]
    growth: dict[tuple[Any, ...], Growth | None]
    ratio: dict[tuple[Any, ...], Estimate]
    difference: dict[tuple[Any, ...], Estimate | None]


_CACHE: dict[str, Analysis] = {}


def analyse(results: dict[str, Any]) -> Analysis:
    """The :class:`Analysis` of ``results`` (cached by their content: every verb of the report reads it)."""
    key = hashlib.sha256(json.dumps(results, sort_keys=True, default=str).encode()).hexdigest()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _analyse(results)
    return _CACHE[key]


def _found(th: Threshold, criterion: str) -> bool:
    return criterion in th.m_star and any(any(t.passed[criterion]) for t in th.trials)


def _analyse(results: dict[str, Any]) -> Analysis:
    series = _series(results)
    quorum: dict[tuple[Any, ...], QuorumWidth] = {}
    for th in {id(th): th for _, ths in series for th in ths}.values():
        s = th.setting
        for c in th.m_star:
            if _found(th, c):
                quorum[(s["regime"], s["data"], s["n"], s["d"], c)] = th.quorum_width(c)
    grow: dict[tuple[Any, ...], Growth | None] = {}
    ratio: dict[tuple[Any, ...], Estimate] = {}
    diff: dict[tuple[Any, ...], Estimate | None] = {}
    for k, (sr, ths) in enumerate(series):
        axis = sr["vary"]
        for regime in sr["regimes"]:
            for data in {th.setting["data"] for th in ths}:
                for c in CRITERIA:
                    mine = [th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                            and _found(th, c)]
                    grow[(k, regime, data, c)] = growth([th.setting[axis] for th in mine],
                                                        [th.brackets(c) for th in mine], mine[0].quorum) \
                        if len({th.setting[axis] for th in mine}) >= 2 else None
        for data in {th.setting["data"] for th in ths}:
            for c in CRITERIA:
                by = {(th.setting["regime"], th.setting["n"], th.setting["d"]): th for th in ths
                      if th.setting["data"] == data and _found(th, c)}
                for (regime, n, d), th in sorted(by.items()):
                    if regime == "weak" and ("joint", n, d) in by:
                        ratio[(k, data, n, d, c)] = quorum_ratio(th.brackets(c), by[("joint", n, d)].brackets(c),
                                                                 th.quorum)
                weak = [th for (r, _, _), th in sorted(by.items()) if r == "weak"]
                joint = [th for (r, _, _), th in sorted(by.items()) if r == "joint"]
                if len(weak) >= 2 and len(joint) >= 2:
                    diff[(k, data, c)] = exponent_difference(
                        [th.setting[axis] for th in joint], [th.brackets(c) for th in joint],
                        [th.setting[axis] for th in weak], [th.brackets(c) for th in weak])
    return Analysis(series, quorum, grow, ratio, diff)


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

    - quick: sphere, ``n`` in 8..64 at ``d = 8`` (the decoder baseline to ``n = 32``); 4 seeds.
    - full on the CPU (with E1 and E3-E6 within 30 minutes on 2 cores): sphere ``n`` in 4..64 at
      ``d = 8``, digits ``n`` in 2..16 (reach only: its strongly correlated samples need widths in the
      thousands from ``n = 16`` on, and the kernel checks at ``n d = 1024`` would double the time),
      sphere ``d`` in 4..64 at ``n = 16``; 8 seeds.
    - full on CUDA: sphere ``n`` in 16..1024 at ``d = 16`` (from ``n = 512`` on reach only), digits
      ``n`` in 4..64, sphere ``d`` in 4..64 at ``n = 64``; 8 seeds, widths up to 16384.
    """
    if quick:  # the decoder baseline to n = 32: its budget at n = 64 (34000 steps) was 74% of E2's training
        series: list[dict[str, Any]] = [{"data": "sphere", "vary": "n", "ns": [8, 16, 32, 64], "d": 8},
                                        {"data": "sphere", "vary": "n", "ns": [8, 16, 32], "d": 8,
                                         "regimes": ["weak", "joint", "decoder"]}]
    elif device.startswith("cuda"):
        series = [{"data": "sphere", "vary": "n", "ns": [16, 32, 64, 128, 256], "d": 16,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "sphere", "vary": "n", "ns": [512, 1024], "d": 16, "criteria": ["reach"]},
                  {"data": "digits", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": None},
                  {"data": "sphere", "vary": "d", "n": 64, "ds": [4, 8, 16, 32, 64]}]
    else:
        series = [{"data": "sphere", "vary": "n", "ns": [4, 8, 16, 32, 64], "d": 8,
                   "regimes": ["weak", "joint", "decoder"]},
                  {"data": "digits", "vary": "n", "ns": [2, 4, 8, 16], "d": None, "criteria": ["reach"]},
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
            "width nearest n; initialisation seeds 0.." + f"{config['seeds'] - 1} at each width. A width tried "
            "above m* that fails moves the search above it, and the table says so.",
            "Step size: eta = 1/lambda_max(Theta(0)) of each network. Step budget: "
            f"{config['budget_factor']:g} x the steps the infinite-width kernel predicts to reach "
            f"{config['target']:g} x the initial loss: linearised GD with eta = 1/lambda_max(K), its expected loss "
            "over the random initial outputs f_0 (a Gaussian process with covariance nu^2 kappa^2 K1 per coordinate) "
            "from the residual f_0(X) - X.",
            f"A width succeeds when at least {100 * config['quorum']:.0f}% of the seeds pass. Criteria: reach (the "
            "target within the budget); lambda0, the proofs' own condition (lambda_min(Theta(t)) >= lambda_0/2 at "
            f"every one of {KERNEL_CHECKS} checks and at the stop, lambda_0 the infinite-width kernel's least "
            "eigenvalue). Every width's table also has rate (the loss below L(0) rho^(k/2), rho = (1 - eta "
            "lambda_min(Theta(0)))^2), which equals reach: linearised GD's loss falls like rho^k, already below that "
            "line; and min_t lambda_min(Theta(t)) / lambda_min(Theta(0)).",
            "Statistics: each seed's threshold lies between its largest failing and least passing width tried. The "
            "quorum width (the width at which the quorum's share of seeds pass), the growth exponent of "
            "log T = a log n + b + sigma z, the ratio of weak's to joint's quorum width and the difference of their "
            "exponents: maximum likelihood on those brackets with 95% profile-likelihood intervals (small-sample "
            "calibrated; widened when the settings scatter about the line more than the seeds explain)."]


def run(config: dict[str, Any], *, progress: Callable[[str, float], None] | None = None,
        checkpoint: Any | None = None) -> dict[str, Any]:
    """Find ``m*`` (:func:`least_width`) for every regime and every setting of every series (a
    setting in two series is run once); returns the config and the thresholds as plain data.
    ``checkpoint`` (an :class:`aedyn.files.Checkpoint`) keeps every width's trial as it finishes,
    so that an interrupted run, restarted, retrains only the width in flight."""
    check_criteria(config["criteria"])
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
    512..1024 with one) are merged into one."""
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


def _q(e: QuorumWidth | None) -> str:
    """A quorum width with its interval, in width units: ``137 [119, 488]``."""
    if e is None:
        return "-"
    high = "inf" if e.high is None or math.isinf(e.high) else f"{e.high:.0f}"
    return f"{e.value:.0f} [{e.low:.0f}, {high}]"


TABLE_COLUMNS = ("regime", "data", "n", "d", "criterion", "m_star", "bracket_low", "quorum_width", "quorum_low",
                 "quorum_high", "sigma", "seeds", "budget", "failed_above", "checked_above", "m_over_n",
                 "lambda_min0_over_inf", "predicted_rate")


def tabulate(results: dict[str, Any]) -> Any:
    """The tidy table, one row per setting and criterion: the grid's ``m_star`` and its bracket
    (``bracket_low``, the largest failing width tried below it), the estimated quorum width with its
    95% interval, the fitted spread ``sigma`` of log thresholds, what the check of the search's
    assumption found, and at ``m*`` the median ``lambda_min(Theta(0)) / lambda_0`` and predicted
    per-step loss contraction. ``m_star`` is NaN where no width succeeded."""
    import pandas as pd

    a = analyse(results)
    rows = []
    for th in {id(th): th for _, ths in a.series for th in ths}.values():
        s = th.setting
        for c, m in th.m_star.items():
            q = a.quorum.get((s["regime"], s["data"], s["n"], s["d"], c))
            chk = th.checks.get(c, {})
            rows.append({"regime": s["regime"], "data": s["data"], "n": s["n"], "d": s["d"], "criterion": c,
                         "m_star": math.nan if m is None else m, "bracket_low": th.bracket(c)[0],
                         "quorum_width": math.nan if q is None else q.value,
                         "quorum_low": math.nan if q is None else q.low,
                         "quorum_high": math.nan if q is None else q.high,
                         "sigma": math.nan if q is None else q.sigma, "seeds": len(s["seeds"]), "budget": th.budget,
                         "failed_above": ",".join(str(w) for w in chk.get("failed_above", [])),
                         "checked_above": ",".join(str(w) for w in chk.get("checked_above", [])),
                         "m_over_n": math.nan if m is None else m / s["n"],
                         "lambda_min0_over_inf": th.kernel_ratio(c), "predicted_rate": th.predicted_rate(c)})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


WIDTH_COLUMNS = ("regime", "data", "n", "d", "width", "seeds", "reach", "lambda0", "rate", "converged", "max_steps",
                 "median_steps", "kernel_ratio_median", "lambda_min0_over_inf_median")


def tables(results: dict[str, Any]) -> dict[str, Any]:
    """Beside the main table, ``widths``: one row per setting and width tried, with the share of
    seeds passing each criterion, the share whose loss stayed below the rate line (``rate``), the
    statuses, and the medians of ``min_t lambda_min(Theta(t)) / lambda_min(Theta(0))`` and of
    ``lambda_min(Theta(0)) / lambda_0``."""
    import pandas as pd

    rows = []
    for t in results["thresholds"]:
        th = Threshold.from_dict(t)
        s = th.setting
        lam = s.get("lambda_min_inf") or math.nan
        for tr in th.trials:
            rows.append({"regime": s["regime"], "data": s["data"], "n": s["n"], "d": s["d"], "width": tr.width,
                         "seeds": len(tr.seeds), **{c: tr.fraction(c) if c in tr.passed else math.nan
                                                    for c in CRITERIA},
                         "rate": float(np.mean(tr.rate_held)) if tr.rate_held else math.nan,
                         "converged": int(sum(st == "converged" for st in tr.status)),
                         "max_steps": int(sum(st == "max_steps" for st in tr.status)),
                         "median_steps": float(np.median(tr.steps)),
                         "kernel_ratio_median": nonneg(float(np.nanmedian(tr.kernel_ratio)))
                         if tr.kernel_ratio and np.isfinite(tr.kernel_ratio).any() else math.nan,
                         "lambda_min0_over_inf_median": nonneg(float(np.nanmedian(tr.lambda_min0)) / lam)
                         if lam and np.isfinite(tr.lambda_min0).any() else math.nan})
    return {"widths": pd.DataFrame(rows, columns=list(WIDTH_COLUMNS))}


def key_table(results: dict[str, Any]) -> Any:
    """The section's table: per n-series setting and criterion, each regime's ``m*`` on the grid with
    the estimated quorum width and its 95% interval, and weak's over joint's with its interval."""
    import pandas as pd

    a = analyse(results)
    rows = []
    for k, (sr, ths) in enumerate(a.series):
        if sr["vary"] != "n":
            continue
        regimes = [r for r in style.REGIME_COLOURS if r in sr["regimes"]]
        for (data, n, d) in sorted({(th.setting["data"], th.setting["n"], th.setting["d"]) for th in ths}):
            for c in CRITERIA:
                here = {th.setting["regime"]: th for th in ths
                        if (th.setting["data"], th.setting["n"], th.setting["d"]) == (data, n, d) and c in th.m_star}
                if not here:
                    continue
                row: dict[str, Any] = {"data": data, "n": n, "d": d, "criterion": c}
                for r in regimes:
                    th = here.get(r)
                    m = None if th is None else th.m_star[c]
                    row[f"{r} m* (estimate [95% CI])"] = "-" if th is None else (
                        f"{'none' if m is None else m} ({_q(a.quorum.get((r, data, n, d, c)))})")
                ratio = a.ratio.get((k, data, n, d, c))
                row["weak / joint [95% CI]"] = "-" if ratio is None else (
                    f"{sig(ratio.value, 2)} {interval(ratio, fmt='sig')}")
                failed = sorted({w for th in here.values() for w in th.checks.get(c, {}).get("failed_above", [])})
                row["search check"] = "held" if not failed else "failed at " + ", ".join(str(w) for w in failed)
                rows.append(row)
    return pd.DataFrame(rows)


def _ns(values: Sequence[int]) -> str:
    return f"n = {min(values)}..{max(values)}" if len(values) > 2 else "n = " + ", ".join(str(v) for v in values)


def findings(results: dict[str, Any]) -> list[Finding]:
    """At most five findings on the first series against ``n`` (and its headline: weak's over joint's
    quorum width at the largest ``n`` under ``reach``):

    1. the ratio at the largest ``n`` (and at the smallest, for how it changed), ``comparison``;
    2. joint's growth exponent minus weak's, ``comparison``;
    3. each regime's growth exponent against the proven bounds;
    4. ``lambda0`` against ``reach``: the proofs' condition holds only at larger widths;
    5. the search's assumption (success lasts) and why ``rate`` is no criterion."""
    a = analyse(results)
    first = next(((k, sr, ths) for k, (sr, ths) in enumerate(a.series) if sr["vary"] == "n"), None)
    if first is None:
        return []
    k, sr, ths = first
    data = sr["data"]
    out: list[Finding] = []
    ns = sorted({th.setting["n"] for th in ths if th.setting["data"] == data})
    runs = sum(len(t.seeds) for th in ths for t in th.trials)
    for c in ("reach",):  # lambda0's ratios are in the key table and the details
        have = sorted(n for (kk, dd, n, _, cc) in a.ratio if (kk, dd, cc) == (k, data, c))
        if not have:
            continue
        n_top, n_low = have[-1], have[0]
        d = next(th.setting["d"] for th in ths if th.setting["n"] == n_top)
        top = a.ratio[(k, data, n_top, d, c)]
        f = comparison("width", NAME, f"{data}, n = {n_top}, criterion {c}", "weak's quorum width over joint's",
                       top, equal=1.0, ratio=True, expected="larger", runs=runs,
                       larger="joint needs less width than weak", smaller="joint needs more width than weak")
        key = f"weak m* / joint m* = {sig(top.value, 3)} {interval(top, fmt='sig')} at n = {n_top}"
        if n_low != n_top:
            low = a.ratio[(k, data, n_low, d, c)]
            f = _with(f, f" At n = {n_low} the ratio was {sig(low.value, 2)}x {interval(low, fmt='sig')}"
                         + (", so the advantage shrinks with n" if low.value > top.value else "")
                         + " (point estimates; see the next finding for whether the growths differ).")
            key += f" ({sig(low.value, 2)} at n = {n_low})"
        f = replace(f, key=key)
        out.append(f.as_headline("width_ratio_vs_n"))
        diff = a.difference.get((k, data, c))
        out.append(comparison("width", NAME, f"{data}, {_ns(ns)}, criterion {c}",
                              "joint's growth exponent minus weak's", diff, equal=0.0, runs=runs,
                              larger="joint's m* grows faster with n than weak's",
                              smaller="joint's m* grows more slowly with n than weak's"))
    out.append(_growth_finding(a, k, sr, data, ns, runs))
    out.append(_lambda0_finding(ths, data, runs))
    out.append(_check_finding(results, ths, runs))
    return out[:5]


def _with(f: Finding, clause: str) -> Finding:
    return replace(f, sentence=f.sentence + clause)


def _growth_finding(a: Analysis, k: int, sr: dict[str, Any], data: str, ns: Sequence[int], runs: int) -> Finding:
    """Each regime's growth exponent under ``reach``, with its interval, against the proven bounds
    (the smallest proven exponent is 2): supported when every upper end lies below it."""
    parts, uppers, seeds = [], [], []
    for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
        g = a.growth.get((k, regime, data, "reach"))
        if g is None:
            parts.append(f"{regime}: too few n with an m* to fit")
            uppers.append(math.inf)
            continue
        seeds.append(g.units)
        text = f"{regime} n^{num(g.value)} {interval(g)}"
        if g.lack_of_fit_p < 0.05:
            text += (f" (no single power law: the points scatter about the line more than the seeds explain, "
                     f"p = {g.lack_of_fit_p:.2g}; the interval is widened for it)")
        parts.append(text)
        uppers.append(g.high if g.high is not None else math.inf)
    smallest = min(PROVEN_BOUNDS.values())
    top = max(uppers) if uppers else math.inf
    if math.isfinite(top) and top < smallest:
        verdict = "supported"
        tail = f"every interval lies below the smallest proven exponent, n^{smallest:g} (Oymak & Soltanolkotabi 2020)"
    else:
        verdict = "inconclusive"
        tail = f"not every interval lies below the smallest proven exponent, n^{smallest:g}"
    sentence = f"{data}, {_ns(ns)}, criterion reach: m* grows like " + "; ".join(parts) + f": {tail}."
    return statement("width", NAME, f"{data}, {_ns(ns)}", "growth exponent of m* in n", sentence, verdict,
                     key="; ".join(parts), seeds=min(seeds) if seeds else 0, runs=runs, rule="growth/proven_bounds",
                     unit="exponent")


def _lambda0_finding(ths: Sequence[Threshold], data: str, runs: int) -> Finding:
    """``lambda0`` against ``reach``, setting by setting on the grid: the proofs' condition is
    conservative when its ``m*`` is never below reach's."""
    pairs = [(th.setting["regime"], th.setting["n"], th.m_star.get("reach"), th.m_star.get("lambda0"))
             for th in ths if th.setting["data"] == data and "lambda0" in th.m_star and "reach" in th.m_star]
    known = [(r, n, a, b) for r, n, a, b in pairs if a is not None and b is not None]
    if not known:
        return statement("width", NAME, data, "lambda0 against reach", f"{data}: no setting found m* under both "
                         "reach and lambda0.", "inconclusive", runs=runs, rule="lambda0/conservative")
    above = [(r, n, a, b) for r, n, a, b in known if b >= a]
    ratios = [b / a for _, _, a, b in known]
    text = (f"{data}: the proofs' own condition (lambda_min(Theta(t)) >= lambda_0/2 throughout) holds from a width at "
            f"least reach's in {len(above)} of {len(known)} settings; its m* is {min(ratios):.2g}-{max(ratios):.2g}x "
            "reach's on the grid")
    below = [f"{r} at n = {n}" for r, n, a, b in known if b < a]
    text += (f", below it for {', '.join(below)}." if below else ": gradient descent reaches the target at widths "
             "where the proofs' condition may not yet hold.")
    verdict = "supported" if not below else "partly supported"
    return statement("width", NAME, data, "lambda0 m* over reach m*", text, verdict,
                     key=f"{min(ratios):.2g}-{max(ratios):.2g}x", runs=runs, rule="lambda0/conservative")


def _check_finding(results: dict[str, Any], ths: Sequence[Threshold], runs: int) -> Finding:
    """The search's assumption (success lasts at larger widths), checked on every width tried; and
    ``rate`` against ``reach`` at every width."""
    failed = [(th.setting["regime"], th.setting["n"], c, chk["failed_above"]) for th in ths
              for c, chk in th.checks.items() if chk.get("failed_above")]
    widths = [tr for t in results["thresholds"] for tr in Threshold.from_dict(t).trials]
    differ = sum(1 for tr in widths if tr.rate_held and "reach" in tr.passed
                 and tuple(tr.rate_held) != tuple(tr.passed["reach"]))
    if failed:
        text = ("The search assumes a width above m* keeps passing; that failed for " + "; ".join(
            f"{r} n = {n} ({c}: m = {', '.join(str(w) for w in ws)} failed above the first passing width)"
            for r, n, c, ws in failed) + ", so m* was moved above those widths.")
        verdict = "partly supported"
    else:
        text = "The search's assumption held: no width tried above m* failed the quorum."
        verdict = "supported"
    text += (f" The theorem's rate conclusion (the loss below L(0) (1 - eta lambda_min)^k) agreed with reach at "
             f"{len(widths) - differ} of {len(widths)} widths: linearised GD's loss falls like (1 - eta "
             "lambda_min)^(2k), already below that line, so rate is no criterion of its own.")
    return statement("width", NAME, "every setting", "the search's assumption", text, verdict,
                     key=f"{len(failed)} settings moved", runs=runs, rule="search/monotone")


def details(results: dict[str, Any]) -> list[str]:
    """Every setting in sentences: per series, regime and criterion the quorum widths with their
    intervals and the growth law; the ratio at every ``n``; the growth against ``d``; widths at
    ``m*`` against the parameter count and ``lambda_min(Theta(0))`` against ``lambda_0``."""
    a = analyse(results)
    out = []
    for k, (sr, ths) in enumerate(a.series):
        axis = sr["vary"]
        for c in CRITERIA:
            for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
                for data in sorted({th.setting["data"] for th in ths}):
                    mine = sorted((th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                                   and c in th.m_star), key=lambda th: th.setting[axis])
                    if not mine:
                        continue
                    parts = []
                    for th in mine:
                        s = th.setting
                        q = a.quorum.get((regime, data, s["n"], s["d"], c))
                        lo, m = th.bracket(c)
                        parts.append(f"{axis} = {s[axis]}: m* {'none' if m is None else m} (bracket {lo}-"
                                     f"{'' if m is None else m}; estimate {_q(q)}"
                                     + ("" if q is None else f", sigma {q.sigma:.2g}") + ")")
                    g = a.growth.get((k, regime, data, c))
                    law = "" if g is None else (f"; growth {axis}^{num(g.value)} {interval(g)}"
                                                f" (lack of fit p = {g.lack_of_fit_p:.2g})")
                    ratio = PARAMETER_LINES.get(regime)
                    over = [th.m_star[c] / th.setting["n"] / ratio for th in mine
                            if th.m_star[c] is not None and ratio]
                    count_text = "" if not over or axis != "n" else (
                        f"; m* is {min(over):.1f}-{max(over):.1f}x the parameter count "
                        f"(m = {'n' if ratio == 1 else 'n/2'})")
                    out.append(f"{data}, {regime}, criterion {c}, {seeds_phrase(len(mine[0].setting['seeds']))}: "
                               + "; ".join(parts) + law + count_text + ".")
        if axis == "n":
            for c in CRITERIA:
                for data in sorted({th.setting["data"] for th in ths}):
                    rs = sorted(((n, e) for (kk, dd, n, _, cc), e in a.ratio.items() if (kk, dd, cc) == (k, data, c)),
                                key=lambda ne: ne[0])
                    if rs:
                        out.append(f"{data}, criterion {c}: weak's quorum width over joint's: " + "; ".join(
                            f"n = {n}: {sig(e.value, 2)}x {interval(e, fmt='sig')}" for n, e in rs) + ".")
    for th in {id(th): th for _, ths in a.series for th in ths}.values():
        for c in th.m_star:
            r = th.kernel_ratio(c)
            if r is not None and r < 0.25:
                out.append(f"{th.setting['regime']}, {th.setting['data']}, n = {th.setting['n']}, d = "
                           f"{th.setting['d']}, criterion {c}: at m* the median lambda_min(Theta(0)) is only "
                           f"{sig(r, 2)} of lambda_0: those networks start near a singular kernel.")
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: ``m_star`` per setting and criterion (with the quorum width and its
    interval), ``exponent_n`` and ``exponent_d`` per regime, criterion and data, ``ratio`` per
    setting, ``difference`` per series and criterion."""
    a = analyse(results)
    table = tabulate(results)
    out: dict[str, Any] = {
        "m_star": [{"regime": r.regime, "criterion": r.criterion, "data": r.data, "n": int(r.n), "d": int(r.d),
                    "m_star": None if r.m_star != r.m_star else int(r.m_star),
                    "quorum_width": None if r.quorum_width != r.quorum_width else float(r.quorum_width),
                    "quorum_low": None if r.quorum_low != r.quorum_low else float(r.quorum_low),
                    "quorum_high": None if not math.isfinite(r.quorum_high) else float(r.quorum_high)}
                   for r in table.itertuples()],
        "exponent_n": [], "exponent_d": [], "ratio": [], "difference": []}
    for (k, regime, data, c), g in a.growth.items():
        sr = a.series[k][0]
        entry = {"regime": regime, "criterion": c, "data": data, **({"n": sr["n"]} if sr["vary"] == "d" else {}),
                 **(g.to_dict() if g is not None else {"value": None})}
        out[f"exponent_{sr['vary']}"].append(entry)
    for (_k, data, n, d, c), e in a.ratio.items():
        out["ratio"].append({"data": data, "n": n, "d": d, "criterion": c, **e.to_dict()})
    for (k, data, c), e in a.difference.items():
        axis = a.series[k][0]["vary"]
        out["difference"].append({"data": data, "criterion": c, "axis": axis, "what": f"joint's exponent in {axis} "
                                  "minus weak's",
                                  **(e.to_dict() if e is not None else {"value": None})})
    return out


# ---- figures -------------------------------------------------------------------------------------

CAPTIONS = {
    "m_star_vs_n": "The least width against the number of samples n, log-log, one panel per criterion: each regime's "
                   "estimated quorum width (filled, with its 95% interval; a bar reaching the top is unbounded above) "
                   "and the grid's m* (open), the fitted growth law, and the parameter-count lines m = n and m = n/2.",
    "width_ratio_vs_n": "How much more width weak training needs than joint training: the ratio of their quorum widths "
                        "against n with 95% intervals, one panel per criterion; above the line at 1, joint needs less. "
                        "An arrow marks an interval that runs beyond the axis.",
    "success_vs_width": "The share of seeds that pass (reach) against the width, one panel per regime, one line per n; "
                        "the dotted line is the quorum.",
    "m_star_vs_d": "The least width against the input dimension d at fixed n, log-log, one panel per criterion "
                   "(estimates with 95% intervals, grid m* open, fitted growth law).",
}


@style.styled
def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The figures (see :data:`CAPTIONS`): against ``n`` over every n-series (sphere and digits
    together), the ratio against ``n``, the success shares, and against ``d`` over the d-series."""
    a = analyse(results)
    out: dict[str, Any] = {}
    for axis in ("n", "d"):
        groups = [(k, sr, ths) for k, (sr, ths) in enumerate(a.series) if sr["vary"] == axis and ths]
        if not groups:
            continue
        out[f"m_star_vs_{axis}"] = _m_star_figure(a, groups, axis)
        if axis == "n":
            ratio = _ratio_figure(a, groups)
            if ratio is not None:
                out["width_ratio_vs_n"] = ratio
            out["success_vs_width"] = _success_figure([th for _, _, ths in groups for th in ths])
    return out


def _m_star_figure(a: Analysis, groups: list[tuple[int, dict[str, Any], list[Threshold]]], axis: str) -> Any:
    from matplotlib.lines import Line2D

    criteria = [c for c in CRITERIA if any(c in th.m_star for _, _, ths in groups for th in ths)]
    fig, axes = style.figure(1, len(criteria), width=4.6 * len(criteria), height=4.2, sharey=True)
    values = sorted({th.setting[axis] for _, _, ths in groups for th in ths})
    top = max(th.setting["max_width"] for _, _, ths in groups for th in ths)
    handles: dict[str, Any] = {}
    for ax, c in zip(axes[0], criteria, strict=True):
        for k, sr, ths in groups:
            for regime in [r for r in style.REGIME_COLOURS if r in sr["regimes"]]:
                for data in sorted({th.setting["data"] for th in ths}):
                    mine = sorted((th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                                   and c in th.m_star), key=lambda th: th.setting[axis])
                    colour, marker = style.REGIME_COLOURS[regime], style.DATA_MARKERS.get(data, "^")
                    xs, est, lo, hi, grid_x, grid_m = [], [], [], [], [], []
                    for th in mine:
                        s = th.setting
                        q = a.quorum.get((regime, data, s["n"], s["d"], c))
                        if q is not None:
                            xs.append(s[axis])
                            est.append(q.value)
                            lo.append(q.value - max(q.low, 0.5))
                            hi.append(min(q.high, top) - q.value if math.isfinite(q.high) else top - q.value)
                        if th.m_star[c] is not None:
                            grid_x.append(s[axis])
                            grid_m.append(th.m_star[c])
                    if xs:  # regimes side by side at each n (a few percent apart on the log axis)
                        shift = 1.0 + 0.035 * (list(style.REGIME_COLOURS).index(regime) - 1)
                        ax.errorbar([x * shift for x in xs], est, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                                    fmt=marker, color=colour, ms=6, capsize=3, lw=1.2)
                    if grid_x:
                        ax.plot(grid_x, grid_m, marker, color=colour, mfc="none", ms=9, mew=1.0)
                    g = a.growth.get((k, regime, data, c))
                    if g is not None:
                        x = np.geomspace(min(g.xs), max(g.xs), 40)  # over the settings it was fitted to
                        ax.plot(x, [g.quorum_at(v) for v in x], "-", color=colour, lw=1.2)
                    name = regime if len({th.setting["data"] for _, _, t in groups for th in t}) == 1 else \
                        f"{regime}, {data}"
                    if xs or grid_x:
                        label = name + ("" if g is None else f": {axis}^{num(g.value)} {interval(g)}")
                        handles.setdefault(f"{c}|{name}", Line2D([], [], color=colour, marker=marker, lw=1.2,
                                                                 label=label))
        if axis == "n":
            x = np.asarray(values, dtype=float)
            ax.plot(x, x, ":", color="0.45", lw=1)
            ax.plot(x, x / 2, "--", color="0.45", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="samples n" if axis == "n" else "input dimension d",
               title=f"criterion {c}")
        style.plain_ticks(ax.xaxis, values)
        legend = [h for key, h in handles.items() if key.startswith(f"{c}|")]
        ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8.5)
    axes[0][0].set_ylabel("least width m*")
    common = [Line2D([], [], color="0.3", marker="o", ls="", label="estimate, 95% interval"),
              Line2D([], [], color="0.3", marker="o", mfc="none", ls="", ms=9, label="grid m*")]
    if axis == "n":
        common += [Line2D([], [], color="0.45", ls=":", label="m = n"),
                   Line2D([], [], color="0.45", ls="--", label="m = n/2")]
    what = "samples n" if axis == "n" else "input dimension d"
    return style.finish(fig, f"E2: the least width that trains, against the {what}", handles=common)


RATIO_SHOWN = (0.1, 30.0)
"""The range of the width-ratio figure's axis; an interval beyond it ends in an arrow."""


def _ratio_figure(a: Analysis, groups: list[tuple[int, dict[str, Any], list[Threshold]]]) -> Any | None:
    from matplotlib.lines import Line2D

    criteria = [c for c in CRITERIA if any(key[4] == c for key in a.ratio)]
    if not criteria:
        return None
    fig, axes = style.figure(1, len(criteria), width=4.2 * len(criteria), height=3.6, sharey=True)
    values = sorted({key[2] for key in a.ratio})
    datas = sorted({key[1] for key in a.ratio})
    for ax, c in zip(axes[0], criteria, strict=True):
        for data in datas:
            pts = sorted(((n, e) for (_k, dd, n, _, cc), e in a.ratio.items() if (dd, cc) == (data, c)),
                         key=lambda ne: ne[0])
            if not pts:
                continue
            x = [n for n, _ in pts]
            y = [e.value for _, e in pts]
            lo = [e.value - max(e.low, RATIO_SHOWN[0]) for _, e in pts]  # intervals cut at the shown range
            hi = [min(e.high, RATIO_SHOWN[1]) - e.value for _, e in pts]
            ax.errorbar(x, y, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt=style.DATA_MARKERS.get(data, "^") + "-",
                        color="0.15", ms=6, capsize=3, lw=1.0, label=data)
            for n, e in pts:  # an interval that runs beyond the shown range: an arrow at the edge
                if e.low < RATIO_SHOWN[0]:
                    ax.plot([n], [RATIO_SHOWN[0]], "v", color="0.15", ms=6)
                if e.high > RATIO_SHOWN[1]:
                    ax.plot([n], [RATIO_SHOWN[1]], "^", color="0.15", ms=6)
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="samples n", title=f"criterion {c}", ylim=(RATIO_SHOWN[0] / 1.3,
                                                                                            RATIO_SHOWN[1] * 1.3))
        style.plain_ticks(ax.xaxis, values)
    axes[0][0].set_ylabel("weak m* / joint m*")
    handles = [Line2D([], [], color="0.15", marker=style.DATA_MARKERS.get(d, "^"), label=d) for d in datas]
    handles.append(Line2D([], [], color="0.5", ls=":", label="equal widths"))
    return style.finish(fig, "E2: how much more width weak training needs than joint", handles=handles)


def _success_figure(ths: Sequence[Threshold]) -> Any:
    from matplotlib.lines import Line2D

    regimes = [r for r in style.REGIME_COLOURS if any(th.setting["regime"] == r for th in ths)]
    datasets = sorted({th.setting["data"] for th in ths})
    fig, axes = style.figure(len(datasets), len(regimes), width=3.1 * len(regimes), height=3.0, sharey=True)
    ns = sorted({th.setting["n"] for th in ths})
    colours = style.ramp("n", ns)
    for row, data in enumerate(datasets):
        for ax, regime in zip(axes[row], regimes, strict=True):
            mine = [th for th in ths if (th.setting["regime"], th.setting["data"]) == (regime, data)
                    and "reach" in th.m_star]
            if not mine:  # a regime this data set was not run in: no panel
                ax.remove()
                continue
            for th in sorted(mine, key=lambda th: th.setting["n"]):
                w = [t.width for t in th.trials]
                f = [t.fraction("reach") for t in th.trials]
                ax.plot(w, f, style.DATA_MARKERS.get(data, "^") + "-", ms=4, color=colours[th.setting["n"]])
            ax.axhline(ths[0].quorum, color="0.5", ls=":", lw=1)
            ax.set(xscale="log", xlabel="width m", ylim=(-0.05, 1.05),
                   title=regime if len(datasets) == 1 else f"{regime}, {data}")
        axes[row][0].set_ylabel("share of seeds reaching the target")
    handles = [Line2D([], [], color=colours[n], marker="o", ms=4, label=f"n = {n}") for n in ns]
    handles.append(Line2D([], [], color="0.5", ls=":", label=f"quorum {100 * ths[0].quorum:.0f}%"))
    return style.finish(fig, "E2: the share of seeds that train, against the width", handles=handles,
                        ncol=min(len(handles), 6))
