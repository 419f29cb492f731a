"""The width search: the least width ``m*`` at which gradient descent succeeds (E2, ``aedyn threshold``).

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

**Step rules.** ``global`` (the default): one step ``eta = 1/lambda_max(Theta(0))`` for both
layers; the budget's prediction uses ``eta_inf = 1/lambda_max(K)``. ``layerwise`` (joint only):
the encoder at ``1/lambda_max(Theta_W(0))`` and the decoder at ``1/lambda_max(Theta_V(0))``, the
NTK's two blocks (``lr_decoder="auto"``); the prediction runs linearised GD with the operator
``K_W / lambda_max(K_W) + K_V / lambda_max(K_V)`` at step 1, ``K_W = nu^2 K0`` and ``K_V = kappa^2
K1`` the infinite-width blocks.

``m*`` is searched on the geometric grid of widths ``round(2^(j/2))`` (ratio ``2^(1/2)``):
starting at the grid width nearest ``n``, doubling the step along the grid until success and
failure are bracketed, then bisecting. The search assumes that success does not fail again at a
larger width, and checks it: a width above ``m*`` (tried for any criterion) that fails the quorum
moves the search above it, and the threshold records the failure (``checks``). The seeds of one
width train as one batch, and each width is trained once for all criteria.

**Running.** A search is a sequence of rounds: :class:`WidthSearch` names the width it needs next
(its decision replayed from the trials it has, so it never trains a width twice), and
:func:`least_widths` asks every unfinished search for its next width and trains all of them at once
through a :class:`aedyn.sweep.Runner` (local, or a Dask cluster: the searches of many settings then
train side by side). Every run is a :class:`~aedyn.job.TrainJob` recorded in the runner's store
with the sweep's row schema; rerun with the same store, a search replays its finished rounds from
the stored rows without training.

**Estimates.** Each seed's threshold lies in the bracket between its largest failing and least
passing width tried (:meth:`Threshold.brackets`); :meth:`Threshold.quorum_width` estimates the
quorum width from them (:func:`aedyn.stats.quorum_width`). E2 builds its growth laws and ratios on
these (:mod:`aedyn.experiments.e2`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aedyn._check import SEED_MAX, check_choice, check_count, check_float, check_int, check_seed
from aedyn._names import CRITERIA, STEP_RULES
from aedyn._tensor import resolve_device
from aedyn.errors import AedynError
from aedyn.findings import nonneg
from aedyn.job import Notes, TrainJob
from aedyn.kernels import init_output_kernel, regime_kernel
from aedyn.limit import LinearisedGD
from aedyn.resources import RUN_BYTES, MemoryEstimate, check_memory
from aedyn.stats import Brackets, QuorumWidth, brackets, quorum_width
from aedyn.sweep import UNTRAINABLE, Runner

__all__ = ["CRITERIA", "KERNEL_CHECKS", "MIN_BUDGET", "STEP_RULES", "Threshold", "Trial", "WidthSearch",
           "check_criteria", "judge", "least_width", "least_widths", "scaling", "search", "width_grid"]

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
MAX_BUDGET = 2**63 - 1
"""A step budget beyond this is refused: a run's steps are counted in 64 bits (the store's columns)."""


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

    def decided(self, criteria: Sequence[str]) -> dict[str, int | None] | None:
        """``m*`` per criterion of ``criteria`` as the search decides it from these trials (replayed:
        :class:`WidthSearch`), or ``None`` when it would still train a width: a finished search
        decides its own ``m_star``."""
        grid = width_grid(self.setting["max_width"])
        try:
            m_star, _ = _decide(grid, _first_width(grid, int(self.setting["n"])), {t.width: t for t in self.trials},
                                self.quorum, list(criteria))
        except _Pending:
            return None
        return m_star

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




def _num(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return math.nan if value is None else float(value)


def judge(rows: Sequence[Mapping[str, Any]], width: int, seeds: Sequence[int], criteria: Sequence[str], *,
          lambda_0: float) -> Trial:
    """Which of ``criteria`` each run passed (see the module docstring), with ``lambda_0`` the
    least eigenvalue of the infinite-width kernel. ``rows`` are the runs' store rows
    (:func:`aedyn.sweep.result_row`) with the ``ntk_path`` measure (:func:`aedyn.measures.ntk.ntk_path`); a
    run that could not start (status ``untrainable``: a zero NTK at initialisation) fails every
    criterion."""
    nan = math.nan
    ran = [row.get("status") != UNTRAINABLE for row in rows]
    lam_min = np.array([_num(r, "ntk_lambda_min_0") if ok else nan for r, ok in zip(rows, ran, strict=True)])
    lam_max = np.array([_num(r, "ntk_lambda_max_0") if ok else nan for r, ok in zip(rows, ran, strict=True)])
    low = np.array([_num(r, "ntk_lambda_min_low") if ok else nan for r, ok in zip(rows, ran, strict=True)])
    eta = np.array([_num(r, "lr") if ok else nan for r, ok in zip(rows, ran, strict=True)])
    rho = (1.0 - eta * lam_min) ** 2
    singular = ~(lam_min > SINGULAR * lam_max)
    reach = np.array([ok and r.get("status") == "converged" for r, ok in zip(rows, ran, strict=True)])
    below = np.array([ok and bool(r.get("below_rate_line")) for r, ok in zip(rows, ran, strict=True)])
    passed: dict[str, tuple[bool, ...]] = {}
    if "reach" in criteria:
        passed["reach"] = tuple(bool(v) for v in reach)
    if "lambda0" in criteria:
        passed["lambda0"] = tuple(bool(v) for v in (low >= 0.5 * lambda_0) & np.isfinite(low))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(singular, nan, low / lam_min)
    return Trial(width=width, seeds=tuple(int(s) for s in seeds),
                 status=tuple(str(r.get("status")) for r in rows),
                 steps=tuple(int(r.get("steps") or 0) for r in rows), lr=tuple(float(v) for v in eta),
                 lambda_min0=tuple(float(v) for v in lam_min), lambda_max0=tuple(float(v) for v in lam_max),
                 predicted_rate=tuple(float(v) for v in rho), passed=passed,
                 rate_held=tuple(bool(v) for v in reach & below & ~singular),
                 kernel_ratio=tuple(float(v) for v in ratio), lambda_min_low=tuple(float(v) for v in low))


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


class _Pending(Exception):
    """Raised inside a search's decision when it needs a width not yet trained."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.width = width


class WidthSearch:
    """The search for ``m*`` of one setting, round by round (see the module docstring): made with
    the setting (validated; the data loaded and the infinite-width kernel, budget and ``lambda_0``
    computed at once), it names the next width it needs (:meth:`pending`), the jobs of that width
    (:meth:`jobs`), takes their rows (:meth:`give`), and when :meth:`pending` is ``None`` gives its
    :class:`Threshold` (:meth:`result`). ``known`` holds trials of this very setting found earlier.

    Before the seeds' list is made, the first width's batch is checked against the memory
    available (or ``max_memory`` bytes; :meth:`memory`): a search that cannot train even that is
    refused at once (:class:`~aedyn.errors.MemoryRefusal`), an error and never a failing width."""

    def __init__(self, regime: str, data: str = "sphere", n: int | None = 64, d: int | None = 16, *,
                 seeds: int | Sequence[int] = 8, criteria: Sequence[str] = CRITERIA, target: float = 1e-6,
                 budget_factor: float = 4.0, quorum: float = 0.9, max_width: int = 4096, data_seed: int = 0,
                 kappa: float = 1.0, nu: float = 1.0, dtype: str = "float64", device: str = "cpu",
                 step_rule: str = "global", known: Mapping[int, Trial] | None = None,
                 max_memory: int | None = None) -> None:
        self.criteria = check_criteria(criteria)
        if regime == "tied":
            raise AedynError("the threshold needs the infinite-width kernel for its step budget, and the tied network "
                             "has none of the form K ⊗ I_d; use weak, joint or decoder")
        self.step_rule = check_choice(step_rule, STEP_RULES, "step rule")
        if self.step_rule == "layerwise" and regime != "joint":
            raise AedynError(f"the layerwise step rule sets the encoder's and the decoder's steps apart, which needs "
                             f"regime joint; {regime} trains one layer: use step rule global")
        if not isinstance(seeds, (list, tuple, range, np.ndarray)):  # a number of seeds (checked: an integer)
            count = check_int(seeds, "seeds", minimum=1, maximum=SEED_MAX + 1,
                              hint=" (the seeds 0..N-1 are integers up to 2^63 - 1)")
            given = None
        else:
            given = [check_seed(s) for s in seeds]
            if not given:
                raise AedynError("give at least one seed")
            count = len(given)
        budget_factor = check_float(budget_factor, "budget_factor", low=0.0, low_open=True)
        self.quorum = check_float(quorum, "quorum (share of seeds that must pass)", low=0.0, high=1.0,
                                  low_open=True)
        target = check_float(target, "target (relative loss)", low=0.0, high=1.0, low_open=True, high_open=True)
        self.grid = width_grid(max_width)
        self._job = dict(regime=regime, data=data, n=n, d=d, data_seed=data_seed, kappa=kappa, nu=nu,
                         lr="auto", lr_decoder="auto" if self.step_rule == "layerwise" else None, target=target,
                         dtype=dtype, device=device)
        base = TrainJob(**self._job, seed=0 if given is None else given[0], width=self.grid[0], steps=1)
        X = base.load(Notes())
        K = regime_kernel(X, regime, kappa=kappa, nu=nu)
        spectrum = np.linalg.eigvalsh(K.double().cpu().numpy())
        self.lambda_0 = max(0.0, float(spectrum[0]))
        if self.step_rule == "layerwise":  # each block at its own step: the operator K_W/l_W + K_V/l_V at step 1
            blocks = [regime_kernel(X, r, kappa=kappa, nu=nu) for r in ("weak", "decoder")]
            operator, eta = sum(B / float(np.linalg.eigvalsh(B.double().cpu().numpy())[-1]) for B in blocks), 1.0
        else:
            operator, eta = K, 1.0 / float(spectrum[-1])
        predicted = LinearisedGD(operator, eta).steps_to(-X, target, covariance=init_output_kernel(X, kappa=kappa,
                                                                                                     nu=nu))
        if predicted is None:
            raise AedynError(f"the infinite-width {regime} kernel is singular at these data (repeated or parallel "
                             "samples?), so it predicts no number of steps to the target; use other data or a larger "
                             "target")
        self.predicted = int(predicted)
        steps = budget_factor * predicted
        if not steps <= MAX_BUDGET:
            raise AedynError(f"the step budget budget_factor x {predicted} (the infinite-width kernel's steps) is "
                             f"{steps:.3g} steps, beyond what a run can count (2^63 - 1); lower budget_factor")
        self.budget = max(MIN_BUDGET, math.ceil(steps))
        self.ntk_every = max(1, self.budget // KERNEL_CHECKS)
        n_, d_ = X.shape
        self.n, self._d = int(n_), int(d_)
        self.start = _first_width(self.grid, self.n)
        check_memory(self.memory(count), device=resolve_device(device), limit=max_memory,
                     what=f"the width search's first width (m = {self.grid[self.start]}: {count} seed"
                          f"{'s' if count > 1 else ''} side by side, {self.budget} steps each)",
                     advice="use fewer seeds or a smaller budget_factor")
        self.seeds = list(range(count)) if given is None else given
        rule = ("auto (1/lambda_max of each network's NTK at initialisation)" if self.step_rule == "global" else
                "layer-wise auto (encoder 1/lambda_max(Theta_W(0)), decoder 1/lambda_max(Theta_V(0)))")
        self.setting = {"regime": regime, "data": data, "n": int(n_), "d": int(d_), "seeds": self.seeds,
                        "data_seed": data_seed, "kappa": kappa, "nu": nu, "target": target,
                        "budget_factor": budget_factor, "dtype": dtype, "device": device, "lr": rule,
                        "step_rule": self.step_rule, "max_width": max_width, "lambda_min_inf": self.lambda_0}
        self.trials: dict[int, Trial] = {w: t for w, t in (known or {}).items() if set(self.criteria) <= set(t.passed)}
        self._next: int | None = None
        self._decision: tuple[dict[str, int | None], dict[str, dict[str, Any]]] | None = None

    def _train_job(self, seed: int, width: int) -> TrainJob:
        return TrainJob(**self._job, seed=seed, width=width, steps=self.budget, record_every=self.budget + 1,
                        ntk_every=self.ntk_every, measures=("ntk_path",))

    def jobs(self, width: int) -> list[TrainJob]:
        """The seeds' jobs at ``width`` (one batch), each declaring the ``ntk_path`` measure."""
        return [self._train_job(s, width) for s in self.seeds]

    def memory(self, seeds: int) -> MemoryEstimate:
        """What training ``seeds`` seeds at the first width the search tries (the grid width nearest
        ``n``) holds: the batch (:meth:`aedyn.job.TrainJob.memory`) and, on the host, each run's job
        and row (:data:`aedyn.resources.RUN_BYTES`). Every search trains its first width, so an
        estimate beyond the memory available refuses it before anything is allocated (the seeds'
        list included)."""
        est = self._train_job(0, self.grid[self.start]).memory(self.n, self._d, batch=seeds)
        est.add("run records", seeds * RUN_BYTES, on_device=False)
        return est

    def give(self, width: int, rows: Sequence[Mapping[str, Any]]) -> Trial:
        """Judge the rows of :meth:`jobs` at ``width`` and keep the trial."""
        self.trials[width] = judge(rows, width, self.seeds, self.criteria, lambda_0=self.lambda_0)
        self._next = self._decision = None  # a new trial: decide again
        return self.trials[width]

    def pending(self) -> int | None:
        """The width the search needs next, or ``None`` when it has decided every criterion (the
        decision is replayed over the trials once per new trial)."""
        if self._next is None and self._decision is None:
            try:
                self._decision = self._decide()
            except _Pending as need:
                self._next = need.width
        return self._next

    def result(self) -> Threshold:
        """The finished search's :class:`Threshold`."""
        if self.pending() is not None:
            raise AedynError("the search has not finished: train the width pending() names first")
        assert self._decision is not None
        m_star, checks = self._decision
        return Threshold(setting=dict(self.setting), m_star=m_star, predicted_steps=self.predicted,
                         budget=self.budget, quorum=self.quorum,
                         trials=sorted(self.trials.values(), key=lambda t: t.width), checks=checks)

    def _decide(self) -> tuple[dict[str, int | None], dict[str, dict[str, Any]]]:
        return _decide(self.grid, self.start, self.trials, self.quorum, self.criteria)


def _first_width(grid: Sequence[int], n: int) -> int:
    """The index of the grid width nearest ``n`` (on a log scale): where every search starts."""
    return int(np.argmin([abs(math.log(w / n)) for w in grid]))


def _decide(grid: Sequence[int], start: int, trials: Mapping[int, Trial], quorum: float,
            criteria: Sequence[str]) -> tuple[dict[str, int | None], dict[str, dict[str, Any]]]:
    """The search, replayed over the trials at hand (``_Pending`` names the width it needs next):
    gallop and bisect per criterion from the grid index ``start``, then the check that success
    lasts (a tried width above ``m*`` that fails moves ``m*`` above it)."""
    def ok(criterion: str, j: int) -> bool:
        if grid[j] not in trials:
            raise _Pending(grid[j])
        return trials[grid[j]].fraction(criterion) >= quorum

    found = {c: search(lambda j, c=c: ok(c, j), len(grid), start) for c in criteria}
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
    return m_star, checks


def least_widths(searches: Sequence[WidthSearch], *, runner: Runner | None = None,
                 on_trial: Callable[[WidthSearch, Trial], None] | None = None) -> list[Threshold]:
    """Run ``searches`` to the end in rounds (see the module docstring): each round trains the next
    width of every unfinished search at once through ``runner`` (default: a local one without a
    store). ``on_trial(search, trial)`` is called after each width is judged (progress)."""
    own = runner is None
    runner = Runner() if runner is None else runner
    try:
        while True:
            need = [(s, w) for s in searches if (w := s.pending()) is not None]
            if not need:
                break
            rows = runner.run([s.jobs(w) for s, w in need])
            for (s, w), batch in zip(need, rows, strict=True):
                trial = s.give(w, batch)
                if on_trial is not None:
                    on_trial(s, trial)
    finally:
        if own:
            runner.close()
    return [s.result() for s in searches]


def least_width(regime: str, data: str = "sphere", n: int | None = 64, d: int | None = 16, *,
                runner: Runner | None = None, max_memory: int | None = None,
                on_trial: Callable[[Trial], None] | None = None, **options: Any) -> Threshold:
    """``m*`` for one setting under each criterion (see the module docstring): a
    :class:`WidthSearch` (``options`` are its settings: ``seeds``, ``criteria``, ``target``,
    ``budget_factor``, ``quorum``, ``max_width``, ``data_seed``, ``kappa``, ``nu``, ``dtype``,
    ``device``, ``step_rule``, ``known``) run by :func:`least_widths`. Without a ``runner``, a
    local one without a store (``max_memory`` its memory limit). ``on_trial`` is called after each
    width is trained (progress)."""
    one = WidthSearch(regime, data, n, d, max_memory=max_memory if runner is None else runner.max_memory, **options)
    report = None if on_trial is None else (lambda s, t: on_trial(t))
    if runner is None:
        with Runner(max_memory=max_memory) as own:
            return least_widths([one], runner=own, on_trial=report)[0]
    return least_widths([one], runner=runner, on_trial=report)[0]


def scaling(regimes: Sequence[str] = ("weak", "joint"), data: str = "sphere", ns: Sequence[int] = (8, 16, 32, 64),
            d: int | None = 8, *, runner: Runner | None = None, **options: Any) -> list[Threshold]:
    """``m*`` for every regime and every ``n``: one :class:`WidthSearch` each (``options`` are
    their settings), all run side by side by :func:`least_widths`."""
    return least_widths([WidthSearch(regime, data, n, d, **options) for regime in regimes for n in ns], runner=runner)
