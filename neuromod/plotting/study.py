"""Figures of a hyperparameter study, drawn from its ``trials.csv`` table (:mod:`neuromod.results.tuning`):
the optimisation history and the value against each searched parameter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def plot_history(trials: pd.DataFrame, metric: str, direction: str, path: Path) -> None:
    """Value of each trial (failed or diverged ones marked on the bottom edge) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = trials["value"].astype(float).to_numpy()
    number = trials["trial"].to_numpy()
    ok = np.isfinite(values) & (trials["status"] == "completed").to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(number[ok], values[ok], "o", color="#3182bd", label="trial")
    if ok.any():
        best = np.where(ok, values, -np.inf if direction == "maximize" else np.inf)
        best = np.maximum.accumulate(best) if direction == "maximize" else np.minimum.accumulate(best)
        shown = np.isfinite(best)
        ax.step(number[shown], best[shown], where="post", color="#e6550d", label="best so far")
    if (~ok).any():
        low, high = ax.get_ylim()
        edge = low if direction == "maximize" else high
        ax.plot(
            number[~ok],
            np.full((~ok).sum(), edge),
            "x",
            color="#a50f15",
            clip_on=False,
            label="failed / diverged",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({direction})")
    ax.set_title(f"Optimisation history ({len(trials)} trials)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_slices(trials: pd.DataFrame, keys: list[str], metric: str, path: Path) -> None:
    """The value of every completed trial against each searched parameter (one panel per parameter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = trials["value"].astype(float).to_numpy()
    ok = np.isfinite(values) & (trials["status"] == "completed").to_numpy()
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):  # no keys: one empty panel
        column = trials[key]
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().all():
            x = numeric.to_numpy(dtype=float)
            ax.scatter(x[ok], values[ok], c=trials["trial"].to_numpy()[ok], cmap="viridis", s=25)
            positive = x[np.isfinite(x)]
            if positive.size and (positive > 0).all() and positive.max() / positive.min() > 20:
                ax.set_xscale("log")
        else:  # a categorical parameter: one column of points per option
            options = sorted(column.astype(str).unique())
            x = column.astype(str).map({name: i for i, name in enumerate(options)}).to_numpy(dtype=float)
            ax.scatter(x[ok], values[ok], c=trials["trial"].to_numpy()[ok], cmap="viridis", s=25)
            ax.set_xticks(range(len(options)), options, rotation=20, fontsize=8)
            ax.set_xlim(-0.5, len(options) - 0.5)
        ax.set_xlabel(key)
    axes[0][0].set_ylabel(metric)
    fig.suptitle("Value against each parameter (colour: trial number)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_study(
    trials: pd.DataFrame, keys: Sequence[str], metric: str, direction: str, sweep_dir: Path
) -> list[Path]:
    """``optimization_history.png`` and, when parameters were searched, ``parameter_slices.png`` of a
    study's trials, into ``sweep_dir``; returns the files written."""
    files = [Path(sweep_dir) / "optimization_history.png"]
    plot_history(trials, metric, direction, files[-1])
    if keys:
        files.append(Path(sweep_dir) / "parameter_slices.png")
        plot_slices(trials, list(keys), metric, files[-1])
    return files
