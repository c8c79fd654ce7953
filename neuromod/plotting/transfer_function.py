"""A saved run's activation family (its neurons' transfer function, defined in :mod:`neuromod.activation`)
evaluated on a grid: curves for figures and the morphing animation."""

from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from neuromod.plotting.style import PERIOD_COLOURS, period_spans, shade_periods  # noqa: E402


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
