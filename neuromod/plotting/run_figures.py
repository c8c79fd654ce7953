"""Figures of one run, drawn from the run folder's files alone (``metrics.csv``, ``trials.npz``)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PERIOD_COLOURS = {"lead": "#eeeeee", "cue": "#c6dbef", "delay": "#fdf0c2", "query": "#c7e9c0"}


class NotARunError(ValueError):
    """The folder does not hold the files of a neuromod run."""


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    return {
        key: np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
        for key in rows[0]
    }


def load_trials(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def shade_periods(ax, trials: dict[str, np.ndarray], trial: int, legend: bool = False) -> None:
    for name, colour in PERIOD_COLOURS.items():
        key = f"period_{name}"
        if key in trials:
            start, stop = trials[key][trial]
            if stop > start:
                ax.axvspan(start - 0.5, stop - 0.5, color=colour, zorder=0, label=name if legend else None)


def learning_curves(metrics: dict[str, np.ndarray], path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    step = metrics["step"]
    ax_loss.plot(step, metrics["train_loss"], label="train loss")
    ax_loss.plot(step, metrics["eval_loss"], label="evaluation loss")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss")
    ax_loss.legend()
    ax_acc.plot(step, metrics["eval_accuracy"], color="C2", label="evaluation accuracy")
    if "chance_accuracy" in metrics:
        ax_acc.axhline(metrics["chance_accuracy"][0], color="grey", ls="--", label="chance")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("fraction of trials correct")
    ax_acc.set_title("Accuracy at the query step")
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def example_trials(trials: dict[str, np.ndarray], path: Path, n: int = 3) -> None:
    """Per trial: inputs as a heatmap with channel names; targets and outputs; the query marked."""
    count = min(n, trials["inputs"].shape[1])
    picks = np.linspace(0, trials["inputs"].shape[1] - 1, count).round().astype(int)
    fig, axes = plt.subplots(2, count, figsize=(5.2 * count, 7.5), squeeze=False)
    in_names = [str(s) for s in trials["input_names"]]
    out_names = [str(s) for s in trials["output_names"]]
    for col, trial in enumerate(picks):
        T = trials["inputs"].shape[0]
        query = int(trials["query_step"][trial])
        ax = axes[0, col]
        image = ax.imshow(
            trials["inputs"][:, trial].T,
            aspect="auto",
            cmap="Greys",
            vmin=0,
            vmax=max(1.0, float(np.abs(trials["inputs"]).max())),
            interpolation="nearest",
        )
        ax.set_yticks(range(len(in_names)), in_names, fontsize=7 if len(in_names) > 12 else 9)
        ax.axvline(query, color="C3", lw=1.5, ls="--")
        ax.set_title(f"trial {trial}: inputs (delay {int(trials['delay'][trial])})")
        ax.set_xlabel("step")
        fig.colorbar(image, ax=ax, fraction=0.04)
        ax = axes[1, col]
        shade_periods(ax, trials, trial, legend=col == 0)
        steps = np.arange(T)
        target, output = trials["targets"][:, trial], trials["outputs"][:, trial]
        for k in range(target.shape[1]):
            colour = f"C{k % 10}"
            label = out_names[k] if target.shape[1] <= 10 else None
            ax.plot(steps, output[:, k], color=colour, lw=1.6, label=label)
            ax.plot(steps, target[:, k], color=colour, lw=1, ls=":", alpha=0.9)
        ax.axvline(query, color="C3", lw=1.5, ls="--")
        verdict = "correct" if bool(trials["correct"][trial]) else "wrong"
        ax.set_title(f"outputs (solid) vs targets (dotted); query at step {query}: {verdict}")
        ax.set_xlabel("step")
        ax.set_ylabel("output")
        ax.set_xlim(-0.5, T - 0.5)
        if col == 0:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def activation_params(
    trials: dict[str, np.ndarray], path: Path, trial: int = 0, max_neurons: int = 8
) -> None:
    """The activation parameters over one trial for several neurons, one panel per parameter."""
    params = trials["params"][:, trial]  # [T, N, P]
    names = [str(s) for s in trials["param_names"]]
    n_neurons = min(max_neurons, params.shape[1])
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names)), sharex=True, squeeze=False)
    for p, name in enumerate(names):
        ax = axes[p, 0]
        shade_periods(ax, trials, trial, legend=p == 0)
        for i in range(n_neurons):
            ax.plot(params[:, i, p], lw=1.3, label=f"neuron {i}")
        ax.axvline(int(trials["query_step"][trial]), color="C3", ls="--", lw=1)
        ax.set_ylabel(name)
        if p == 0:
            ax.legend(fontsize=7, ncol=5, loc="upper left")
    axes[0, 0].set_title(f"Activation parameters over trial {trial} (delay {int(trials['delay'][trial])})")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def activation_function(
    trials: dict[str, np.ndarray], path: Path, trial: int = 0, max_neurons: int = 4
) -> None:
    """Each neuron's transfer function at moments of the trial: before the cue, delay, query."""
    from neuromod.plotting.activation import family_from_target

    family = family_from_target(str(trials["activation_target"]))
    params = trials["params"][:, trial]  # [T, N, P]
    moments = {"before the cue": int(trials["period_cue"][trial][0]) if "period_cue" in trials else 0}
    if "period_delay" in trials:
        start, stop = trials["period_delay"][trial]
        moments["mid delay"] = int((start + stop - 1) // 2)
    moments["query"] = int(trials["query_step"][trial])
    drive = trials.get("drive")
    span = 3.0 if drive is None else max(3.0, float(np.abs(drive[:, trial]).max()) * 1.1)
    x = np.linspace(-span, span, 200)
    n_neurons = min(max_neurons, params.shape[1])
    fig, axes = plt.subplots(1, n_neurons, figsize=(3.6 * n_neurons, 3.4), squeeze=False)
    for i in range(n_neurons):
        ax = axes[0, i]
        for j, (label, step) in enumerate(moments.items()):
            y = family.curve(x, params[step, i])
            ax.plot(x, y, color=f"C{j}", label=f"{label} (step {step})")
            if drive is not None:
                d = drive[step, trial, i]
                ax.plot([d], family.curve(np.array([d]), params[step, i]), "o", color=f"C{j}")
        ax.set_title(f"neuron {i}")
        ax.set_xlabel("drive x")
        if i == 0:
            ax.set_ylabel("rate gamma(x)")
            ax.legend(fontsize=7)
    fig.suptitle("Transfer function across the trial (dots: the neuron's actual drive)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lstm_gates(trials: dict[str, np.ndarray], path: Path, trial: int = 0, max_units: int = 6) -> None:
    names = [k for k in trials if k.startswith("gate_")]
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.2 * len(names)), sharex=True, squeeze=False)
    for row, key in enumerate(names):
        ax = axes[row, 0]
        shade_periods(ax, trials, trial, legend=row == 0)
        values = trials[key][:, trial]
        for u in range(min(max_units, values.shape[1])):
            ax.plot(values[:, u], lw=1.2)
        ax.axvline(int(trials["query_step"][trial]), color="C3", ls="--", lw=1)
        ax.set_ylabel(key.removeprefix("gate_").replace("_", " "))
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[0, 0].set_title(f"LSTM gates over trial {trial} (first units)")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_run(run_dir: str | Path) -> list[Path]:
    """(Re)draw every figure of a run folder into ``<run_dir>/figures``; returns the files written."""
    run_dir = Path(run_dir)
    metrics_path, trials_path = run_dir / "metrics.csv", run_dir / "trials.npz"
    if not metrics_path.is_file() or not trials_path.is_file():
        raise NotARunError(f"{run_dir} is not a neuromod run folder (needs metrics.csv and trials.npz)")
    out = run_dir / "figures"
    out.mkdir(exist_ok=True)
    written = []
    metrics = read_metrics(metrics_path)
    if metrics:
        learning_curves(metrics, out / "learning_curves.png")
        written.append(out / "learning_curves.png")
    trials = load_trials(trials_path)
    example_trials(trials, out / "example_trials.png")
    written.append(out / "example_trials.png")
    if "params" in trials and bool(trials.get("uses_activation", True)):
        activation_params(trials, out / "activation_params.png")
        activation_function(trials, out / "activation_function.png")
        written += [out / "activation_params.png", out / "activation_function.png"]
    if any(k.startswith("gate_") for k in trials):
        lstm_gates(trials, out / "lstm_gates.png")
        written.append(out / "lstm_gates.png")
    return written
