"""The house figure style: its checker finds each kind of breach, and a figure made the house way passes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from aedyn.experiments import style


@style.styled
def good() -> plt.Figure:
    fig, axes = style.figure(1, 2, height=3.0)
    for ax in axes[0]:
        ax.plot([64, 128, 256], [0.3, 0.2, 0.14], "o-", color=style.REGIME_COLOURS["weak"], label="weak")
        ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="movement", title="sphere")
        style.plain_ticks(ax.xaxis, [64, 128, 256])
    return style.finish(fig, "The movement against the width", handles=axes[0][0].get_lines())


def test_a_figure_made_the_house_way_passes():
    fig = good()
    assert style.check(fig) == []
    assert fig.get_size_inches()[0] <= style.MAX_WIDTH
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["64", "128", "256"]
    plt.close(fig)


@pytest.mark.parametrize(("breach", "words"), [
    (lambda fig, ax: fig.set_size_inches(12, 3), "inches wide"),
    (lambda fig, ax: ax.set_title("weight_change_W"), "a column name as a label"),
    (lambda fig, ax: ax.set_xlabel("width m", fontsize=6.5), "at 6.5 pt"),
    (lambda fig, ax: fig.suptitle(""), "no title"),
    (lambda fig, ax: fig.add_subplot(2, 2, 4), "is empty"),
    (lambda fig, ax: (ax.cla(), ax.plot([256], [0.1], "o"), ax.set_xscale("log")), "log x axis over fewer than two"),
])
def test_each_breach_is_found(breach, words):
    fig = good()
    breach(fig, fig.axes[0])
    problems = style.check(fig, "made-up")
    assert any(words in p for p in problems), problems
    assert all(p.startswith("made-up: ") for p in problems)
    plt.close(fig)


def test_ramps_are_one_per_variable_and_never_pale():
    assert len(set(style.RAMPS.values())) == len(style.RAMPS)  # widths, n, gamma, d: each its own
    colours = style.ramp("width", [1024, 256, 4096])
    assert list(colours) == [256, 1024, 4096] and colours[256] != colours[4096]
    for rgba in colours.values():  # no colour near white
        assert sum(rgba[:3]) < 2.7
    assert not set(style.CATEGORY_COLOURS) & set(style.REGIME_COLOURS.values())
