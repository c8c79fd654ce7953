"""Figures of the population analyses, drawn from what ``analysis.json`` holds (see
:mod:`neuromod.analysis.population`): ``decoding.png``, ``selectivity.png``, ``state_space.png``,
``psychometric.png`` and ``test_accuracy_by_delay.png`` (beside the run figures' validation-set
``accuracy_by_delay.png``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from neuromod.plotting.style import PERIOD_COLOURS, plt, save

SIGNAL_COLOURS = {
    "rates": "#1f77b4",
    "parameters": "#d62728",
    "modulator_h": "#2ca02c",
    "modulator_c": "#9467bd",
    "cell": "#9467bd",
}


def _shade(ax, results: dict[str, Any]) -> None:
    for name, (start, stop) in results.get("periods", {}).items():
        if name in PERIOD_COLOURS and stop > start:
            ax.axvspan(start - 0.5, stop - 0.5, color=PERIOD_COLOURS[name], zorder=0, label=name)


def _decoding(results: dict[str, Any], path: Path) -> Path:
    decoding, steps = results["decoding"], np.array(results["steps"])
    chance = float(np.mean(list(decoding["chance"].values())))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    _shade(ax, results)
    for name, curves in decoding["signals"].items():
        colour = SIGNAL_COLOURS.get(name, None)
        mean = np.mean(list(curves["accuracy"].values()), axis=0)
        shuffled = np.mean(list(curves["shuffled"].values()), axis=0)
        ax.plot(steps, mean, "-o", ms=2.5, color=colour, label=name)
        ax.plot(steps, shuffled, ":", color=colour, lw=1)
    ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
    ax.plot([], [], "k:", lw=1, label="shuffled labels")
    ax.set_xlabel("step")
    ax.set_ylabel("decoding accuracy (cross-validated)")
    contents = ", ".join(results["contents"])
    ax.set_title(f"{results['task']}, {results['network']}: decoding {contents}", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    return save(fig, path / "decoding.png")


def _state_space(results: dict[str, Any], path: Path) -> Path:
    signals = results["state_space"]["signals"]
    fixed = results.get("fixed_points") or {}
    fig, axes = plt.subplots(1, len(signals), figsize=(3.2 * len(signals), 3.2), squeeze=False)
    steps = np.array(results["steps"])
    end = results.get("delay_end")
    for ax, (name, info) in zip(axes[0], signals.items(), strict=True):
        trajectories = np.array(info["class_trajectories"])  # [C, Ts, 2]
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(trajectories)))
        for k, (traj, colour) in enumerate(zip(trajectories, colours, strict=True)):
            ax.plot(traj[:, 0], traj[:, 1], "-", color=colour, lw=1.2, label=f"class {k}")
            ax.plot(*traj[0], "o", color=colour, ms=3)
            if end is not None and end in steps:
                ax.plot(*traj[int(np.searchsorted(steps, end))], "s", color=colour, ms=5, mec="k", mew=0.5)
        if fixed.get("available") and fixed.get("signal") == name and fixed.get("pca"):
            points = np.array(fixed["pca"])
            ax.plot(points[:, 0], points[:, 1], "x", color="#c0392b", ms=7, mew=1.5, label="fixed points")
        explained = info["variance_explained"]
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)" if len(explained) > 1 else "PC2")
        ratio = info["participation_ratio"].get("delay", info["participation_ratio"]["all"])
        ax.set_title(f"{name}  (PR {ratio:.1f})", fontsize=9)
    axes[0][0].legend(fontsize=6, title=results["state_space"].get("coloured_by"), title_fontsize=6)
    fig.suptitle("mean trajectory per class (o start, square end of delay)", fontsize=9)
    fig.tight_layout()
    return save(fig, path / "state_space.png")


def _selectivity(results: dict[str, Any], path: Path) -> Path:
    signals = results["selectivity"]["signals"]
    fig, axes = plt.subplots(1, len(signals), figsize=(2.6 * len(signals), 3.6), squeeze=False)
    for ax, (name, info) in zip(axes[0], signals.items(), strict=True):
        image = np.array(info["information_bits"])  # [N, K]
        shown = ax.imshow(image, aspect="auto", cmap="magma", vmin=0)
        rows, cols = np.nonzero(np.array(info["selective"]))
        ax.plot(cols, rows, "w.", ms=3)
        ax.set_xticks(range(len(results["contents"])), results["contents"], fontsize=7, rotation=45)
        ax.set_ylabel("neuron")
        ax.set_title(name, fontsize=9)
        fig.colorbar(shown, ax=ax, label="information (bits)")
    fig.suptitle(
        "selectivity at the end of the delay (dots: selective at 5 % false discovery rate)", fontsize=9
    )
    fig.tight_layout()
    return save(fig, path / "selectivity.png")


def _psychometric(results: dict[str, Any], path: Path) -> Path:
    info = results["psychometric"]
    x, p = np.array(info["x"]), np.array(info["p_choice"])
    grid = np.linspace(x.min(), x.max(), 200)
    fig, ax = plt.subplots(figsize=(4, 3.2))
    ax.plot(x, p, "o", label="network")
    guess, lapse = info.get("guess", 0.0), info.get("lapse", 0.0)
    fitted = guess + (1 - guess - lapse) / (1 + np.exp(-(info["bias"] + info["slope"] * grid)))
    ax.plot(grid, fitted, "-", label="fit (with guess and lapse rates)")
    ax.set_xlabel(info["stimulus"])
    ax.set_ylabel("P(choice = 1)")
    ax.set_ylim(-0.02, 1.02)
    if info.get("slope_resolved", True):
        low, high = info.get("slope_ci", (float("nan"), float("nan")))
        slope = f"slope {info['slope']:.3g} (95% CI {low:.3g}-{high:.3g})"
    else:
        slope = f"slope >= {info['slope']:.3g} (choices separate: not resolved)"
    ax.set_title(f"{results['task']}: {slope}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path / "psychometric.png")


def _accuracy_by_delay(results: dict[str, Any], path: Path) -> Path:
    info = results["accuracy_by_delay"]
    delays = sorted(info["accuracy"], key=float)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([float(d) for d in delays], [info["accuracy"][d] for d in delays], "-o", ms=3)
    ax.set_xlabel("delay (steps)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"accuracy by delay ({info['source'].split('_')[0]} set)", fontsize=9)
    fig.tight_layout()
    return save(fig, path / "test_accuracy_by_delay.png")


#: The analyses that have a figure, and its drawer (``<folder>/<name>.png``; accuracy by delay:
#: ``test_accuracy_by_delay.png``).
DRAWERS = {
    "decoding": _decoding,
    "state_space": _state_space,
    "selectivity": _selectivity,
    "psychometric": _psychometric,
    "accuracy_by_delay": _accuracy_by_delay,
}


def draw_analysis(
    results: dict[str, Any], folder: str | Path, only: Iterable[str] | None = None
) -> list[Path]:
    """Every figure ``results`` has the data for (``only``: of these analyses alone, keys of
    :data:`DRAWERS`), into ``folder`` (created)."""
    chosen = list(DRAWERS) if only is None else list(only)
    unknown = [name for name in chosen if name not in DRAWERS]
    if unknown:
        raise ValueError(f"no figure for the analyses {unknown}; those with one: {list(DRAWERS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [DRAWERS[key](results, folder) for key in chosen if results.get(key)]
