"""Shared look of the run figures: task-period shading, the query marker, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PERIOD_COLOURS = {"lead": "#e6e6e6", "cue": "#c6dbef", "delay": "#fdf0c2", "query": "#c7e9c0"}
QUERY_COLOUR = "#c0392b"
DPI = 110


def period_spans(trials: dict[str, np.ndarray], trial: int) -> dict[str, tuple[int, int]]:
    """``{period name: (start, stop)}`` steps of one trial, for the periods the task records."""
    spans = {}
    for name in PERIOD_COLOURS:
        key = f"period_{name}"
        if key in trials:
            start, stop = (int(v) for v in trials[key][trial])
            if stop > start:
                spans[name] = (start, stop)
    return spans


def last_step(trials: dict[str, np.ndarray], trial: int) -> int:
    """The trial's last meaningful step: its query step, or the end of a longer query period."""
    end = int(trials["query_step"][trial])
    if "period_query" in trials:
        end = max(end, int(trials["period_query"][trial][1]) - 1)
    return min(end, trials["inputs"].shape[0] - 1)


def trial_title(trials: dict[str, np.ndarray], trial: int) -> str:
    """``trial 3, delay 12, answered correctly``: which trial a figure shows, for its title."""
    verdict = ""
    if "correct" in trials:
        verdict = ", answered correctly" if bool(trials["correct"][trial]) else ", answered wrongly"
    return f"trial {trial}, delay {int(trials['delay'][trial])}{verdict}"


def shade_periods(ax, trials: dict[str, np.ndarray], trial: int, legend: bool = False) -> None:
    """Shade lead / cue / delay / query behind a time-series panel (x axis: step)."""
    for name, (start, stop) in period_spans(trials, trial).items():
        ax.axvspan(
            start - 0.5, stop - 0.5, color=PERIOD_COLOURS[name], zorder=0, label=name if legend else None
        )


def decorate_heatmap(ax, image, trials: dict[str, np.ndarray], trial: int, label: str, strip: bool = True):
    """Give a heatmap (x axis: step) a colour bar and, above it, a labelled band of the task periods
    (where shading would hide the data). Returns the axes to put the title on."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    divider = make_axes_locatable(ax)
    colour_axis = divider.append_axes("right", size="2.5%", pad=0.08)
    ax.figure.colorbar(image, cax=colour_axis, label=label)
    if not strip:
        return ax
    band = divider.append_axes("top", size=0.2, pad=0.0, sharex=ax)
    for name, (start, stop) in period_spans(trials, trial).items():
        band.axvspan(start - 0.5, stop - 0.5, color=PERIOD_COLOURS[name])
        if stop - start >= 2 or name == "query":
            band.text((start + stop - 1) / 2, 0.5, name, ha="center", va="center", fontsize=7)
    band.set_ylim(0, 1)
    band.set_yticks([])
    band.tick_params(axis="x", labelbottom=False, bottom=False)
    return band


def mark_query(ax, step: int, label: bool = False) -> None:
    ax.axvline(step, color=QUERY_COLOUR, ls="--", lw=1.3, label="query step" if label else None)


def mark_padding(ax, trials: dict[str, np.ndarray], trial: int) -> None:
    """Hatch the steps after the trial's end (padding to the batch's longest trial)."""
    end, T = last_step(trials, trial), trials["inputs"].shape[0]
    if end < T - 1:
        ax.axvspan(end + 0.5, T - 0.5, facecolor="white", edgecolor="0.6", hatch="///", alpha=0.6, zorder=2)


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
