"""The figures of a saved run's transfer function (its activation family, defined in
:mod:`neuromod.activation`, evaluated on a grid): the parameters over a trial, the curve at moments of a
trial and the morphing animation. :func:`neuromod.plotting.plot_run` chooses the trial and the neurons."""

from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from neuromod.plotting.style import (  # noqa: E402
    PERIOD_COLOURS,
    last_step,
    mark_query,
    period_spans,
    save,
    shade_periods,
    trial_title,
)


class FamilyCurve:
    """``gamma(x; params)`` of one activation family (a ``neuromod.activation.ActivationFamily``) on
    numpy arrays."""

    def __init__(self, family):
        self.family = family

    def curves(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``x [M]`` and parameter vectors ``params [..., P]`` -> ``[..., M]``, all at once."""
        import torch  # imported here so that reading a run folder does not need torch

        xs = torch.as_tensor(np.asarray(x, dtype=np.float32))  # [M]
        p = torch.as_tensor(np.asarray(params, dtype=np.float32))  # [..., P]
        grid = xs.expand(*p.shape[:-1], len(xs))  # [..., M]
        with torch.no_grad():
            return self.family.gamma(grid, p.unsqueeze(-2).expand(*grid.shape, p.shape[-1])).numpy()

    def curve(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``gamma(x; params)`` for ``x [M]`` and one parameter vector ``params [P]``."""
        return self.curves(x, np.asarray(params)[None])[0]


def family_from_target(target: str) -> FamilyCurve:
    """``"neuromod.activation.Gain"`` -> a curve evaluator of that family."""
    module_name, _, class_name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"activation family '{target}' cannot be loaded: {error}") from None
    return FamilyCurve(cls())


def drive_grid(drive: np.ndarray | None, points: int = 200) -> np.ndarray:
    """An x grid covering the drives the neurons saw (at least [-3, 3])."""
    span = 3.0 if drive is None or drive.size == 0 else max(3.0, float(np.abs(drive).max()) * 1.1)
    return np.linspace(-span, span, points)


def animate_activation(
    trials: dict[str, np.ndarray],
    path: Path,
    trial: int,
    neurons: list[int],
    frame_stride: int = 1,
    fps: float = 4.0,
) -> Path:
    """Write a GIF of each chosen neuron's transfer function through ``trial``, one frame per
    ``frame_stride`` steps up to the query; a timeline below shows the task periods and the current step."""
    if frame_stride < 1:
        raise ValueError(f"analysis.frame_stride must be >= 1, got {frame_stride}")
    curve = family_from_target(str(trials["activation_target"]))
    query = int(trials["query_step"][trial])
    params = trials["params"][: query + 1, trial][:, neurons]  # [L, K, P]
    drive = trials["drive"][: query + 1, trial][:, neurons] if "drive" in trials else None  # [L, K]
    x = drive_grid(drive)
    shapes = curve.curves(x, params)  # [L, K, M]
    frames = list(range(0, query + 1, frame_stride))
    if frames[-1] != query:
        frames.append(query)  # always end on the query

    cols = min(len(neurons), 2)
    rows = int(np.ceil(len(neurons) / cols))
    fig = plt.figure(figsize=(4.2 * cols, 2.7 * rows + 1.3))
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[3] * rows + [1])
    axes, lines, dots = [], [], []
    for k, neuron in enumerate(neurons):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        low, high = float(shapes[:, k].min()), float(shapes[:, k].max())
        pad = 0.05 * (high - low or 1.0)
        ax.plot(x, shapes[0, k], color="0.7", lw=1, ls="--", label="step 0")
        (line,) = ax.plot(x, shapes[0, k], color="C0", lw=2, label="now")
        (dot,) = ax.plot([], [], "o", color="C3", label="actual drive")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"neuron {neuron}", fontsize=10)
        ax.set_xlabel("drive x", fontsize=9)
        ax.set_ylabel("rate", fontsize=9)
        if k == 0:
            ax.legend(fontsize=7, loc="best")
        axes.append(ax)
        lines.append(line)
        dots.append(dot)
    timeline = fig.add_subplot(grid[rows, :])
    shade_periods(timeline, trials, trial, legend=True)
    timeline.set_xlim(-0.5, query + 0.5)
    timeline.set_yticks([])
    timeline.set_xlabel("step")
    timeline.legend(fontsize=7, ncol=len(PERIOD_COLOURS), loc="upper center", bbox_to_anchor=(0.5, -0.9))
    cursor = timeline.axvline(0, color="C3", lw=2.5)
    title = fig.suptitle("")
    spans = period_spans(trials, trial)

    def update(frame: int):
        step = frames[frame]
        for k in range(len(neurons)):
            lines[k].set_ydata(shapes[step, k])
            if drive is not None:
                d = drive[step, k]
                dots[k].set_data([d], curve.curve(np.array([d]), params[step, k]))
        cursor.set_xdata([step, step])
        period = next((name for name, (a, b) in spans.items() if a <= step < b), "")
        title.set_text(f"Transfer function at step {step}" + (f" ({period})" if period else ""))
        return [*lines, *dots, cursor, title]

    fig.tight_layout(rect=(0, 0, 1, 0.96))
    animation = FuncAnimation(fig, update, frames=len(frames), blit=False)
    animation.save(path, writer=PillowWriter(fps=fps), dpi=85)
    plt.close(fig)
    return path


def varying_params(params: np.ndarray, names: list[str]) -> tuple[list[int], dict[str, float]]:
    """Indices of the parameters that change (over time or neurons) and the constant ones' values."""
    flat = params.reshape(-1, params.shape[-1])
    varying, constant = [], {}
    for p, name in enumerate(names):
        if np.ptp(flat[:, p]) > 1e-6 * max(1.0, float(np.abs(flat[:, p]).max())):
            varying.append(p)
        else:
            constant[name] = float(flat[0, p])
    return varying, constant


def activation_params(trials: dict[str, np.ndarray], path: Path, trial: int, neurons: list[int]) -> Path:
    """The activation parameters over one trial for several neurons, one panel per changing parameter."""
    end = last_step(trials, trial)
    params = trials["params"][: end + 1, trial]  # [L, N, P]
    names = [str(s) for s in trials["param_names"]]
    varying, constant = varying_params(params, names)
    shown = varying or list(range(len(names)))
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 1.2 + 2.4 * len(shown)), sharex=True, squeeze=False)
    steps = np.arange(end + 1)
    for row, p in enumerate(shown):
        ax = axes[row, 0]
        shade_periods(ax, trials, trial, legend=row == 0)
        for colour, i in enumerate(neurons):
            ax.plot(steps, params[:, i, p], lw=1.5, color=f"C{colour % 10}", label=f"neuron {i}")
        mark_query(ax, int(trials["query_step"][trial]), label=row == 0)
        ax.set_ylabel(names[p])
        ax.set_xlim(-0.5, end + 0.5)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(0.0, -0.02 - 1.2 * len(shown)))
    fixed = ", ".join(f"{k} = {v:g}" for k, v in constant.items())
    title = f"Activation parameters over {trial_title(trials, trial)}"
    axes[0, 0].set_title(title + (f"\n(constant: {fixed})" if fixed and varying else ""))
    axes[-1, 0].set_xlabel("step")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.tight_layout(rect=(0, 0.09 if len(labels) > 6 else 0.06, 1, 1))
    return save(fig, path)


def activation_moments(trials: dict[str, np.ndarray], trial: int) -> dict[str, int]:
    """Steps to draw the transfer function at: before the cue, early and late in the delay, the query."""
    spans = period_spans(trials, trial)
    query = int(trials["query_step"][trial])
    moments = {}
    if "cue" in spans:
        moments["before the cue"] = max(spans["cue"][0] - 1, 0)
    if "delay" in spans:
        start, stop = spans["delay"]
        moments["early delay"] = start
        if stop - 1 > start:
            moments["late delay"] = stop - 1
    moments["query"] = query
    unique: dict[str, int] = {}
    for label, step in moments.items():
        if step not in unique.values():
            unique[label] = step
    return unique


def activation_function(trials: dict[str, np.ndarray], path: Path, trial: int, neurons: list[int]) -> Path:
    """Each chosen neuron's transfer function at moments of the trial (before the cue, delay, query)."""
    curve = family_from_target(str(trials["activation_target"]))
    end = last_step(trials, trial)
    params = trials["params"][: end + 1, trial]  # [L, N, P]
    drive = trials["drive"][: end + 1, trial] if "drive" in trials else None  # [L, N]
    moments = activation_moments(trials, trial)
    x = drive_grid(None if drive is None else drive[:, neurons])
    cols = min(len(neurons), 4)
    rows = int(np.ceil(len(neurons) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.4 * rows + 0.6), squeeze=False)
    colours = {"before the cue": "0.45", "early delay": "#e6a100", "late delay": "#b35806", "query": "C3"}
    for k, i in enumerate(neurons):
        ax = axes[k // cols, k % cols]
        for label, step in moments.items():
            colour = colours.get(label, "C0")
            ax.plot(x, curve.curve(x, params[step, i]), color=colour, lw=1.8, label=f"{label} (step {step})")
            if drive is not None:
                d = drive[step, i]
                ax.plot([d], curve.curve(np.array([d]), params[step, i]), "o", color=colour, ms=6)
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_title(f"neuron {i}")
        ax.set_xlabel("drive x")
        ax.set_ylabel("rate gamma(x)")
    for k in range(len(neurons), rows * cols):
        axes[k // cols, k % cols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(
        f"Transfer function at moments of {trial_title(trials, trial)} "
        "(dots: the neuron's actual drive at that step)"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save(fig, path)
