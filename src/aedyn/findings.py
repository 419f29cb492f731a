"""Findings: what an experiment found, as data, and the named rules that turn numbers into words.

An experiment does not write sentences by hand. It measures, puts each measured quantity with its
interval (:mod:`aedyn.stats`) into a rule of this module, and the rule returns a :class:`Finding`:
the claim of the paper it speaks to (:data:`CLAIMS`), the quantity and its interval, the seeds and
runs behind it, the runs left out and why, a verdict word (:data:`VERDICTS`) and the sentence. The
rules are where "no stronger than the evidence" is enforced, once for every experiment:

- a slope is compared with the paper's exponent only through its interval
  (:func:`power_law`): inside, "consistent with"; outside, "steeper" or "shallower", with "by
  only 0.02" when the interval is narrow and the slope close;
- two groups are compared only through the interval of their difference or ratio
  (:func:`comparison`): it must exclude equality for "larger" or "less", otherwise
  "indistinguishable";
- below :data:`aedyn.stats.MIN_SEEDS` independent seeds, every rule says "inconclusive";
- a ratio that changes with ``n`` is "persists", "shrinks" or "can no longer be told from none"
  only through the intervals of the ratio and of the difference of the growth exponents, and
  where two growth laws would meet is named an extrapolation (:func:`advantage`);
- counts are spelled so that one run is not "every run" (:func:`count`), a bound that prints
  as 1 is "vacuous" (:func:`bound`), runs stopped by their step budget are named as still
  training (:func:`unfinished`), and a nonnegative quantity that rounding pushed below zero is
  printed as 0 (:func:`nonneg`).

The report's scoreboard (:func:`scoreboard`) is one row per claim, from the findings marked
``headline``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aedyn.stats import MIN_SEEDS, Estimate

VERDICTS: tuple[str, ...] = ("supported", "partly supported", "not supported", "inconclusive")
"""The verdict words, strongest first; every finding carries one."""

CLAIMS: dict[str, str] = {
    "convergence": "Gradient descent converges linearly, at the rate the kernel predicts",
    "width": "Joint training needs less width than weak training, and how that changes with n",
    "laziness": "Weights, activation patterns and the kernel move like m^-1/2 (laziness)",
    "limit": "Wide networks agree with the infinite-width (NTK) prediction",
    "memorisation": "A network started at f_0 = 0 memorises its training samples",
    "tied": "Weight-tied autoencoders degenerate",
    "lazy_to_feature": "Lazy training holds in the NTK scaling and ends towards mean-field scaling",
    "certificate": "Trained runs satisfy the invariants the convergence proofs rely on",
}
"""The paper's claims, in scoreboard order: key -> the claim in one line."""


@dataclass(frozen=True)
class Finding:
    """One claim-sized result of an experiment (see the module docstring).

    ``subject`` says what was measured on ("sphere, joint"), ``quantity`` what ("slope of the
    weight movement against m"), ``estimate`` the number and its interval (``None`` when there is
    none), ``unit`` how to read it (``"exponent"``, ``"x"``, ``"share"``, ...), ``key`` the number as
    the scoreboard prints it, ``verdict`` one of :data:`VERDICTS`, ``sentence`` the rendered
    sentence, ``rule`` the name of the rule that made both. ``seeds`` and ``runs`` stand behind it;
    ``excluded`` names runs left out and why. ``headline`` marks the finding that is its claim's
    row on the scoreboard; ``figure`` the figure that shows it."""

    claim: str
    experiment: str
    subject: str
    quantity: str
    estimate: Estimate | None
    verdict: str
    sentence: str
    rule: str
    key: str = ""
    unit: str = ""
    seeds: int = 0
    runs: int = 0
    excluded: tuple[str, ...] = ()
    headline: bool = False
    figure: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.claim not in CLAIMS:
            raise ValueError(f"claim must be one of {tuple(CLAIMS)}, got {self.claim!r}")

    def as_headline(self, figure: str | None = None) -> Finding:
        return replace(self, headline=True, figure=figure if figure is not None else self.figure)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "experiment": self.experiment, "subject": self.subject,
                "quantity": self.quantity, "estimate": None if self.estimate is None else self.estimate.to_dict(),
                "unit": self.unit, "key": self.key, "verdict": self.verdict, "sentence": self.sentence,
                "rule": self.rule, "seeds": self.seeds, "runs": self.runs, "excluded": list(self.excluded),
                "headline": self.headline, "figure": self.figure}


# ---- numbers and counts in words ----------------------------------------------------------------

def num(x: float | None, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, no minus sign on a rounded zero; ``-`` for none; ``inf``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{round(x, digits) + 0.0:.{digits}f}"


def sig(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (``-`` for none)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def count_like(x: float | None) -> str:
    """A size such as a number of samples, to two significant digits, as a whole number below a
    million (``296.4 -> "300"``) and in powers of ten above (``"1.1e+11"``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.2g}" if abs(x) >= 1e6 else f"{round(float(f'{x:.2g}')):d}"


MEETING_TOP = 1e9
"""An extrapolated meeting point's range is said to have no upper end when its end lies beyond this."""


def meeting_range(e: Estimate) -> str:
    """The 95% range of an extrapolated meeting point: ``"95% range 830 to 9,100"``, or ``"95% range:
    at least 830, no upper end below 10^9"`` when the data bound it only from below."""
    if e.high is None or not math.isfinite(e.high) or e.high > MEETING_TOP:
        return f"95% range: at least {count_like(e.low)}, no upper end below 10^{round(math.log10(MEETING_TOP))}"
    return f"95% range {count_like(e.low)} to {count_like(e.high)}"


def nonneg(x: float | None, scale: float = 1.0) -> float | None:
    """A quantity that cannot be negative (an eigenvalue of a PSD kernel, a ratio of two): ``0``
    where rounding made it negative by at most ``1e-12 * scale``; a larger negative value is kept
    (it is a real error, and the sentence should show it)."""
    if x is None or math.isnan(x):
        return x
    return 0.0 if -1e-12 * max(abs(scale), 1.0) <= x < 0 else x


def interval(e: Estimate | None, digits: int = 2, fmt: str = "num", avoid: float | None = None) -> str:
    """``"[low, high]"`` of an estimate (``"(no interval)"`` without one). With ``avoid`` (the value
    of equality in a comparison), an end that lies strictly on one side of it but would print as
    it gets more digits, so that an interval excluding 0 never reads "[-0.03, 0.00]"."""
    if e is None or not e.has_interval:
        return "(no interval)"
    f = num if fmt == "num" else sig
    if fmt != "num":
        digits = max(digits, 3)  # "[0.88, 1]" would hide whether 1 is inside; "[0.876, 1.01]" does not
    ends = []
    for end in (e.low, e.high):
        k = digits
        while avoid is not None and end != avoid and k < digits + 4 and f(end, k) == f(avoid, k):
            k += 1
        ends.append(f(end, k))
    return f"[{ends[0]}, {ends[1]}]"


def count(k: int, n: int, noun: str = "run") -> str:
    """``k`` of ``n`` things, spelled so that one is never "every": ``"its one run"``, ``"all 3
    runs"``, ``"none of the 2 runs"``, ``"2 of 5 runs"``."""
    plural = noun if noun.endswith("s") else noun + "s"
    if n == 1:
        return f"its one {noun}" if k == 1 else f"not its one {noun}"
    if k == n:
        return f"all {n} {plural}"
    if k == 0:
        return f"none of the {n} {plural}"
    return f"{k} of {n} {plural}"


def seeds_phrase(s: int) -> str:
    return f"{s} seed" + ("" if s == 1 else "s")


def too_few(seeds: int) -> bool:
    """Whether an estimate from ``seeds`` independent seeds is below :data:`MIN_SEEDS`."""
    return seeds < MIN_SEEDS


def bound(bound_value: float, what: str) -> str | None:
    """``None`` when ``bound_value`` (a per-step contraction bound) says something; otherwise the
    words that say it is vacuous: a contraction that prints as 1.0000 bounds nothing."""
    if not (bound_value < 1 - 5e-5):
        return f"{what} is {num(bound_value, 4)}: vacuous (it bounds nothing at this step size)"
    return None


def unfinished(k: int, n: int) -> str | None:
    """The clause for runs stopped by their step budget (``k`` of ``n``): their numbers are those of
    runs still training. ``None`` when every run finished."""
    if k == 0:
        return None
    if n == 1:
        return "its one run stopped at the step budget, still training: its numbers are not those of a trained run"
    return (f"{count(k, n)} stopped at the step budget, still training: their numbers are not those of "
            "trained runs")


# ---- the rules ----------------------------------------------------------------------------------

def power_law(claim: str, experiment: str, subject: str, quantity: str, slope: Estimate | None, *,
              reference: float, kind: str = "equals", close: float = 0.05, runs: int = 0,
              excluded: Sequence[str] = (), earlier: float | None = None, variable: str = "m") -> Finding:
    """A fitted exponent against the paper's: ``kind="equals"`` (the claim is ``q ∝ m^reference``)
    or ``kind="at_most"`` (the claim is the bound ``q = O(m^reference)``: a steeper fall supports it).

    - no estimate, or fewer than :data:`MIN_SEEDS` seeds: ``inconclusive``;
    - interval contains the reference: ``supported`` ("consistent with m^-0.5");
    - interval excludes it, slope within ``close``: ``supported`` for a bound it meets, otherwise
      ``partly supported`` ("steeper than m^-0.5 by only 0.02");
    - steeper, for a bound: ``supported``;
    - otherwise: ``partly supported`` when the quantity still falls (interval below 0) and the
      claim is a fall, ``not supported`` when it does not."""
    ref = f"{variable}^{reference:g}"
    base = dict(claim=claim, experiment=experiment, subject=subject, quantity=quantity, estimate=slope,
                rule=f"power_law/{kind}", unit="exponent", runs=runs, excluded=tuple(excluded))
    if slope is None:
        return Finding(**base, verdict="inconclusive", key="-",
                       sentence=f"{subject}: {quantity}: too few widths to fit a slope.")
    key = f"{variable}^{num(slope.value)} {interval(slope)}"
    seeds = slope.units
    if too_few(seeds) or not slope.has_interval:
        return Finding(**base, seeds=seeds, verdict="inconclusive", key=key,
                       sentence=f"{subject}: {quantity} goes like {variable}^{num(slope.value)} from "
                                f"{seeds_phrase(seeds)}: too few to say whether that is {ref} (at least {MIN_SEEDS} "
                                "are needed).")
    text = f"{subject}: {quantity} goes like {key}"
    if slope.contains(reference):
        verdict, how = "supported", f"consistent with {ref}"
    else:
        steeper = slope.high < reference  # type: ignore[operator]
        gap = abs(slope.value - reference)
        word = "steeper" if steeper else "shallower"
        how = f"{word} than {ref}" + (f" by only {num(gap)}" if gap <= close else "")
        if kind == "at_most" and steeper:
            verdict = "supported"
            how += " (within the bound)"
        elif gap <= close:
            verdict = "partly supported"
        elif kind == "at_most" or reference < 0:
            falls = slope.high < 0  # type: ignore[operator]
            verdict = "partly supported" if falls else "not supported"
            if not falls:
                how += f"; it does not fall with {variable}"
        else:
            verdict = "not supported"
    text += f", {how}"
    if earlier is not None:
        like = "; consistent with" if slope.contains(earlier) else "; unlike"
        text += f"{like} the earlier {variable}^{earlier:g}"
    text += f" ({seeds_phrase(seeds)}"
    text += f"; {'; '.join(excluded)})." if excluded else ")."
    return Finding(**base, seeds=seeds, verdict=verdict, key=key, sentence=text)


def comparison(claim: str, experiment: str, subject: str, quantity: str, estimate: Estimate | None, *,
               equal: float, larger: str, smaller: str, expected: str | None = None, runs: int = 0,
               excluded: Sequence[str] = (), ratio: bool = False) -> Finding:
    """Two groups compared through the interval of their difference (``equal = 0``) or ratio
    (``equal = 1``, ``ratio=True``): the sentence says ``larger`` ("joint needs more width than
    weak") only when the interval lies above ``equal``, ``smaller`` when below, and otherwise that
    the two are indistinguishable. ``expected`` (``"larger"`` or ``"smaller"``) is what the paper
    claims: met, ``supported``; the opposite, ``not supported``; indistinguishable or too few
    seeds, ``inconclusive``. Without ``expected`` (a comparison the paper does not make) a
    difference whose interval excludes equality is ``supported`` (established), else
    ``inconclusive``."""
    f = sig if ratio else num
    base = dict(claim=claim, experiment=experiment, subject=subject, quantity=quantity, estimate=estimate,
                rule="comparison/ratio" if ratio else "comparison/difference", unit="x" if ratio else "difference",
                runs=runs, excluded=tuple(excluded))
    if estimate is None:
        return Finding(**base, verdict="inconclusive", key="-", sentence=f"{subject}: {quantity}: nothing to compare.")
    key = f"{f(estimate.value)}{'x' if ratio else ''} {interval(estimate, fmt='sig' if ratio else 'num', avoid=equal)}"
    seeds = estimate.units
    if too_few(seeds) or not estimate.has_interval:
        return Finding(**base, seeds=seeds, verdict="inconclusive", key=key,
                       sentence=f"{subject}: {quantity} is {f(estimate.value)}{'x' if ratio else ''} from "
                                f"{seeds_phrase(seeds)}: too few to compare (at least {MIN_SEEDS} are needed).")
    if estimate.low > equal:  # type: ignore[operator]
        found, words = "larger", larger
    elif estimate.high < equal:  # type: ignore[operator]
        found, words = "smaller", smaller
    else:
        found, words = "equal", "the two are indistinguishable (the interval contains " + f(equal) + ")"
    if found == "equal":
        verdict = "inconclusive"
    elif expected is None:
        verdict = "supported"  # a difference the paper does not claim, established by its interval
    else:
        verdict = "supported" if found == expected else "not supported"
    text = f"{subject}: {words}: {quantity} {key} ({seeds_phrase(seeds)}"
    text += f"; {'; '.join(excluded)})." if excluded else ")."
    return Finding(**base, seeds=seeds, verdict=verdict, key=key, sentence=text)


def advantage(experiment: str, subject: str, ratio: Estimate | None, trend: Estimate | None, *, n_top: int,
              over: str = "", beside: Estimate | None = None, beside_over: str = "over the whole range",
              ratio_low_n: tuple[int, Estimate] | None = None, meeting: Estimate | None = None, runs: int = 0,
              figure: str | None = None) -> Finding:
    """Whether joint training's width advantage persists, shrinks or vanishes as ``n`` grows: ``ratio``
    is weak's quorum width over joint's at the largest ``n`` measured (``n_top``), ``trend`` joint's
    growth exponent minus weak's ``over`` the larger ``n`` (above 0: the ratio falls with ``n``;
    E2 takes the upper half of its ``n``, where the growth laws are least pre-asymptotic), stated
    beside the same ``beside_over`` the whole range (``beside``: context, it decides nothing);
    ``meeting`` where the growth laws would meet (:func:`aedyn.stats.crossing`; an extrapolation,
    and named as one).

    - the ratio's interval above 1: joint needs less width at ``n_top``, ``supported``; the advantage
      *persists* there, and *shrinks* with ``n`` only if the trend's interval lies above 0 (then the
      meeting point, when given, is stated as an extrapolation);
    - the ratio's interval contains 1: the advantage *cannot be told from none* at ``n_top``: ``partly
      supported`` when the trend says it shrank (it was there at smaller ``n``), else
      ``inconclusive``;
    - below 1: joint needs *more* width at ``n_top``, ``not supported``;
    - fewer than :data:`MIN_SEEDS` seeds, or no ratio: ``inconclusive``."""
    base = dict(claim="width", experiment=experiment, subject=subject, estimate=ratio, rule="advantage/trend",
                unit="x", runs=runs, figure=figure,
                quantity=f"weak's quorum width over joint's at n = {n_top}, and its trend in n")
    if ratio is None:
        return Finding(**base, verdict="inconclusive", key="-", sentence=f"{subject}: no ratio at n = {n_top}.")
    key = f"weak m* / joint m* = {sig(ratio.value)} {interval(ratio, fmt='sig', avoid=1.0)} at n = {n_top}"
    if too_few(ratio.units) or not ratio.has_interval:
        return Finding(**base, seeds=ratio.units, verdict="inconclusive", key=key,
                       sentence=f"{subject}: weak needs {sig(ratio.value)}x joint's width at n = {n_top} from "
                                f"{seeds_phrase(ratio.units)}: too few to compare (at least {MIN_SEEDS} are needed).")

    def said(e: Estimate | None) -> str:
        return "-" if e is None else f"{num(e.value)} {interval(e, avoid=0.0)}"

    diff = "" if trend is None else f"joint's growth exponent minus weak's{' ' + over if over else ''} {said(trend)}"
    if trend is not None and beside is not None:
        diff += f", {beside_over} {said(beside)}"
    shrinks = trend is not None and trend.has_interval and trend.low > 0  # type: ignore[operator]
    grows = trend is not None and trend.has_interval and trend.high < 0  # type: ignore[operator]
    if ratio.low > 1:  # type: ignore[operator]
        verdict = "supported"
        text = f"{subject}: joint needs less width than weak at the largest n measured: {key}"
        if shrinks:
            text += f"; the advantage persists there but shrinks with n ({diff})"
        elif grows:
            text += f"; the advantage grows with n ({diff})"
        elif trend is not None:
            text += f"; whether it changes with n the intervals cannot tell ({diff})"
        if shrinks and meeting is not None:
            text += (f"; extrapolating the growth laws {over or 'fitted'} beyond the data, the widths would meet at "
                     f"n = {count_like(meeting.value)} ({meeting_range(meeting)}): an extrapolation, not a "
                     "measurement")
    elif ratio.high < 1:  # type: ignore[operator]
        verdict = "not supported"
        text = f"{subject}: at n = {n_top} joint needs more width than weak: {key}"
    else:
        verdict = "partly supported" if shrinks else "inconclusive"
        text = f"{subject}: at n = {n_top} joint's advantage can no longer be told from none: {key} contains 1"
        if shrinks:
            text += f"; it shrank with n ({diff})"
        elif trend is not None:
            text += f" ({diff})"
    if ratio_low_n is not None and ratio_low_n[0] != n_top:
        n_low, low = ratio_low_n
        text += f"; at n = {n_low} it was {sig(low.value, 2)}x {interval(low, fmt='sig', avoid=1.0)}"
    return Finding(**base, seeds=ratio.units, verdict=verdict, key=key, sentence=text + ".")


def statement(claim: str, experiment: str, subject: str, quantity: str, sentence: str, verdict: str, *,
              key: str = "", estimate: Estimate | None = None, seeds: int = 0, runs: int = 0,
              excluded: Sequence[str] = (), rule: str = "statement", unit: str = "") -> Finding:
    """A finding whose verdict an experiment decided by a rule of its own (named in ``rule``), made
    with the same fields; fewer than :data:`MIN_SEEDS` seeds always turns it ``inconclusive``."""
    if seeds and too_few(seeds) and verdict != "inconclusive":
        verdict = "inconclusive"
        sentence = sentence.rstrip(".") + f" (from {seeds_phrase(seeds)}: too few for a verdict)."
    return Finding(claim=claim, experiment=experiment, subject=subject, quantity=quantity, estimate=estimate,
                   verdict=verdict, sentence=sentence, rule=rule, key=key, unit=unit, seeds=seeds, runs=runs,
                   excluded=tuple(excluded))


def certificate(experiment: str, subject: str, *, runs: int, inside: int, kernel: int, rate: int,
                safe_radius: int, seeds: int = 0, vacuous: int = 0) -> Finding:
    """What the certificate found over ``runs`` runs: ``inside`` of them satisfy every invariant;
    ``kernel``, ``rate`` and ``safe_radius`` count the runs in which each holds (``vacuous``: runs of
    no step, for which every invariant holds trivially). The sentence names the invariants
    separately, so that a run failing only the safe-radius argument (sufficient, not necessary) is
    not read as a run outside the regime the kernel and rate lines describe.

    Verdict: every run inside, ``supported``; kernel and rate hold everywhere but the safe radius
    does not, ``partly supported``; kernel or rate fail somewhere, ``partly supported`` when some
    run is inside, else ``not supported``."""
    base = dict(claim="certificate", experiment=experiment, subject=subject, quantity="runs inside the NTK regime",
                estimate=None, rule="certificate", unit="runs", seeds=seeds, runs=runs)
    if runs == 0:
        return Finding(**base, verdict="inconclusive", key="-", sentence=f"{subject}: no certified run.")
    head = (f"{subject}: not every invariant holds in its one run" if runs == 1 and not inside else
            f"{subject}: every invariant holds in {count(inside, runs)}")
    parts = (f"the kernel invariant holds in {kernel}, the rate invariant in {rate} and the safe-radius argument in "
             f"{safe_radius} of {runs}")
    key = f"{inside} of {runs} inside; kernel {kernel}, rate {rate}, safe radius {safe_radius}"
    if inside == runs:
        verdict, tail = "supported", ""
    elif kernel == runs and rate == runs:
        verdict = "partly supported"
        tail = ("; the kernel and rate invariants hold in every run, so only the proofs' sufficient argument "
                "(no neuron leaves its safe radius) fails, not the regime it would certify")
    else:
        verdict = "partly supported" if inside else "not supported"
        tail = ""
    text = f"{head} ({parts}){tail}"
    if vacuous:
        text += f"; {count(vacuous, runs)} took no step, so their invariants hold vacuously"
    return Finding(**base, verdict=verdict, key=key, sentence=text + ".")


def above_one(errors: dict[str, float]) -> str | None:
    """The clause for relative errors ``||f(x) - x|| / ||x||`` above 1 (worse than the zero map, whose
    error is exactly 1): ``None`` when none is."""
    over = [k for k, v in errors.items() if v is not None and v > 1]
    if not over:
        return None
    who = over[0] if len(over) == 1 else ("both" if len(over) == 2 else "all")
    verb = "does" if len(over) == 1 else "do"
    return f"{who} {verb} worse than the zero map (relative error above 1)"


def combine(verdicts: Iterable[str]) -> str:
    """One verdict for several findings of a claim: all the same, that; any support mixed with
    anything else, ``partly supported``; only ``not supported`` and ``inconclusive``, ``not
    supported``; nothing, ``inconclusive``."""
    vs = list(verdicts)
    if not vs:
        return "inconclusive"
    if len(set(vs)) == 1:
        return vs[0]
    if any(v in ("supported", "partly supported") for v in vs):
        return "partly supported"
    return "not supported" if "not supported" in vs else "inconclusive"


# ---- the scoreboard -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One row of the scoreboard: a claim of the paper, what was found, its key number, the verdict,
    and where to look (``section``, an experiment name; ``figure``, a figure of that section)."""

    claim: str
    text: str
    finding: str
    key: str
    verdict: str
    section: str
    figure: str | None = None
    findings: tuple[Finding, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "text": self.text, "finding": self.finding, "key": self.key,
                "verdict": self.verdict, "section": self.section, "figure": self.figure}


def scoreboard(findings: Iterable[Finding]) -> list[Row]:
    """One :class:`Row` per claim of :data:`CLAIMS` that some finding marked ``headline`` speaks to,
    in claim order; several headlines of one claim (from two experiments) are joined and their
    verdicts combined (:func:`combine`)."""
    heads: dict[str, list[Finding]] = {}
    for f in findings:
        if f.headline:
            heads.setdefault(f.claim, []).append(f)
    rows = []
    for claim, text in CLAIMS.items():
        mine = heads.get(claim)
        if not mine:
            continue
        rows.append(Row(claim=claim, text=text, finding=" ".join(f.sentence for f in mine),
                        key="; ".join(f.key for f in mine if f.key), verdict=combine(f.verdict for f in mine),
                        section=mine[0].experiment, figure=mine[0].figure, findings=tuple(mine)))
    return rows
