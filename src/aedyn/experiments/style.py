"""The one figure style of every experiment: sizes, fonts, palettes, and the check that holds them.

The report shows a figure at the size it was drawn (96 px per inch, so a 9.6-inch figure fills the
1000-px page's text column) and saves the PNG at :data:`DPI` for sharp screens. So a font of
:data:`MIN_FONT` points is 10.7 px on the page, whatever the figure. The rules (:func:`check`
tests them on every figure the experiments draw):

- at most :data:`MAX_WIDTH` inches wide; every text at least :data:`MIN_FONT` points;
- a title (``suptitle``) that states what the figure shows; human labels (no ``snake_case``);
- one meaning per palette: the regimes always :data:`REGIME_COLOURS`; widths, ``n`` and
  ``gamma`` each their own sequential ramp (:func:`ramp`); other categories (where iterates end,
  kinds of input) :data:`CATEGORY_COLOURS`, which share no colour with the regimes;
- no empty panels, and no log axis with fewer than two distinct values.

An experiment's ``figures`` function is decorated with :func:`styled` (the house rcParams while
it draws), makes each figure with :func:`figure` and ends it with :func:`finish` (title, legend).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

REGIME_COLOURS = {"weak": "#d95f02", "joint": "#1b9e77", "decoder": "#7570b3", "tied": "#e7298a"}
"""One colour per regime in every figure (and for nothing else)."""
LAYERWISE_COLOUR = "#0b4f3c"
"""Joint training with layer-wise steps: a dark shade of joint's colour (a variant of joint, not a
regime of its own)."""
CATEGORY_COLOURS = ("#1f77b4", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#000000")
"""Colours for categories that are not regimes (fates of iterates, kinds of inputs): none is a regime's."""
DATA_MARKERS = {"sphere": "o", "digits": "s"}
"""One marker per data set in every figure (others: triangles)."""
RAMPS = {"width": "viridis", "n": "cividis", "gamma": "plasma", "d": "magma"}
"""One sequential colour map per ordered variable: widths, sample counts, gamma and dimensions
never share one."""
MAX_WIDTH = 9.6
"""Largest figure width in inches (the page's text column at 96 px per inch)."""
MIN_FONT = 8.0
"""Smallest font in points (10.7 px on the page)."""
DPI = 150
"""Resolution of the saved PNG files."""
PX_PER_INCH = 96
"""How large the report shows a figure: its drawn size at this many pixels per inch."""

_RC = {"font.size": 10.0, "axes.titlesize": 10.0, "axes.labelsize": 10.0, "xtick.labelsize": 9.0,
       "ytick.labelsize": 9.0, "legend.fontsize": 9.0, "legend.title_fontsize": 9.0, "figure.titlesize": 11.0,
       "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False, "lines.markersize": 5.0,
       "svg.fonttype": "none"}


def styled(draw: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``draw`` (an experiment's ``figures``) with the house rcParams, on the Agg backend."""
    @wraps(draw)
    def inner(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        matplotlib.use("Agg")
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return inner


def ramp(kind: str, values: Sequence[float]) -> dict[float, Any]:
    """A colour for each of ``values`` (ordered) from the ramp of ``kind`` (:data:`RAMPS`), sampled
    over ``[0.05, 0.85]`` so that no colour is too pale to see on white."""
    from matplotlib import colormaps

    cmap = colormaps[RAMPS[kind]]
    ordered = sorted(set(values))
    span = max(1, len(ordered) - 1)
    return {v: cmap(0.05 + 0.8 * i / span) for i, v in enumerate(ordered)}


def figure(rows: int = 1, cols: int = 1, *, width: float | None = None, height: float = 3.0, **kwargs: Any
           ) -> tuple[Any, Any]:
    """``plt.subplots`` in the house style: constrained layout, at most :data:`MAX_WIDTH` inches wide
    (default: 3.2 inches a column), ``height`` inches a row; ``squeeze=False`` (``axes[i][j]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = min(MAX_WIDTH, width if width is not None else 3.2 * cols)
    return plt.subplots(rows, cols, figsize=(w, height * rows), squeeze=False, layout="constrained", **kwargs)


def finish(fig: Any, title: str, *, handles: Sequence[Any] | None = None, ncol: int | None = None) -> Any:
    """Title the figure and put one legend (``handles``) under the panels. Returns ``fig``."""
    fig.suptitle(title, fontsize=_RC["figure.titlesize"])
    if handles:
        cols = ncol if ncol is not None else min(len(handles), 4)
        fig.legend(handles=handles, loc="outside lower center", ncol=cols, fontsize=_RC["legend.fontsize"],
                   frameon=False)
    return fig


def plain_ticks(axis: Any, values: Sequence[float]) -> None:
    """Ticks on ``axis`` (``ax.xaxis``) at ``values`` themselves, written as plain numbers, and no minor
    labels: a log axis over a few sample counts or widths reads 8, 16, 32 rather than 10^1."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    axis.set_major_locator(FixedLocator(list(values)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


_SNAKE = re.compile(r"\b[a-z]{2,}_[A-Za-z0-9_]{2,}\b")


def _texts(fig: Any) -> list[Any]:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def check(fig: Any, name: str = "figure") -> list[str]:
    """The ways ``fig`` breaks the house style (module docstring); empty when it holds. The figure
    is drawn first, so that tick labels exist."""
    problems = []
    fig.canvas.draw()
    w, _ = fig.get_size_inches()
    if w > MAX_WIDTH + 1e-9:
        problems.append(f"{name}: {w:.1f} inches wide (at most {MAX_WIDTH})")
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if not title.strip():
        problems.append(f"{name}: no title saying what it shows")
    for t in _texts(fig):
        if t.get_fontsize() < MIN_FONT - 1e-9:
            problems.append(f"{name}: text {t.get_text()[:40]!r} at {t.get_fontsize():.1f} pt (at least {MIN_FONT})")
        if _SNAKE.search(t.get_text()) and "$" not in t.get_text():
            problems.append(f"{name}: a column name as a label: {t.get_text()[:60]!r}")
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        drawn = ax.lines + ax.collections + ax.patches + ax.images
        if not drawn and not ax.texts:
            problems.append(f"{name}: panel {i + 1} ({ax.get_title()!r}) is empty")
            continue
        for axis, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())):
            if scale == "log" and len(_distinct(ax, axis)) < 2:
                problems.append(f"{name}: panel {i + 1} ({ax.get_title()!r}) has a log {axis} axis over fewer "
                                "than two distinct values")
    return problems


def _distinct(ax: Any, axis: str) -> set[float]:
    """The distinct finite positive data values drawn on ``axis`` of ``ax`` (lines and scatters)."""
    values: set[float] = set()
    for line in ax.lines:
        data = line.get_xdata() if axis == "x" else line.get_ydata()
        values |= {round(float(v), 12) for v in data if _positive(v)}
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            col = 0 if axis == "x" else 1
            values |= {round(float(v), 12) for v in offsets[:, col] if _positive(v)}
    return values


def _positive(v: Any) -> bool:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and x > 0
