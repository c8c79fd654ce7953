"""Figures of one run, drawn from the run folder's files alone (``summary.json``, ``metrics.csv``,
``trials.npz``), so a saved run can be re-plotted without retraining (``python -m neuromod.plot``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuromod.plotting.run_files import NotARunError, RunFiles, load_run  # noqa: E402
from neuromod.plotting.style import (  # noqa: E402
    QUERY_COLOUR,
    decorate_heatmap,
    last_step,
    mark_padding,
    mark_query,
    save,
    shade_periods,
    trial_title,
)
from neuromod.plotting.transfer_function import (  # noqa: E402
    activation_function,
    activation_params,
    animate_activation,
)
from neuromod.runfolder.files import FIGURES

log = logging.getLogger(__name__)

#: Order (and names on the figure) of the LSTM's recorded gates.
GATE_LABELS = {
    "gate_input_gate": "input gate",
    "gate_forget_gate": "forget gate",
    "gate_cell_input": "cell input",
    "gate_output_gate": "output gate",
    "gate_cell": "cell",
}


# -- choosing what to show ------------------------------------------------------------------------------
def showcase_trial(files: RunFiles) -> int:
    """The trial the single-trial figures follow: the longest delay within the training range that the
    network answered correctly (remembering is what these figures are about); else the longest delay."""
    trials, config = files.trials, files.config
    delay = trials["delay"]
    in_range = np.ones_like(delay, dtype=bool)
    if "task.max_delay" in config:
        in_range &= delay <= int(config["task.max_delay"])
    if "task.min_delay" in config:
        in_range &= delay >= int(config["task.min_delay"])
    candidates = in_range & trials["correct"].astype(bool) if "correct" in trials else in_range
    if not candidates.any():
        candidates = in_range if in_range.any() else np.ones_like(in_range)
    index = np.flatnonzero(candidates)
    return int(index[np.argmax(delay[index])])


def most_modulated(params: np.ndarray, count: int) -> list[int]:
    """The ``count`` neurons whose parameters move most over the trial, ``params [L, N, P]`` (ascending)."""
    spread = params.std(axis=0)  # [N, P]
    scale = np.maximum(np.abs(params).mean(axis=(0, 1)), 1e-6)  # [P], so parameters count alike
    score = (spread / scale).sum(axis=1)  # [N]
    order = np.argsort(-score, kind="stable")[:count]
    return sorted(int(i) for i in order)


# -- figures --------------------------------------------------------------------------------------------
def learning_curves(metrics: dict[str, np.ndarray], path: Path) -> Path:
    """Training and evaluation loss, evaluation accuracy with chance, over training steps."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    step = metrics["step"]
    style = {"marker": "o", "ms": 3} if len(step) < 15 else {}
    for key, label in (("train_loss", "training loss"), ("eval_loss", "evaluation loss")):
        if key in metrics:
            ax_loss.plot(step, metrics[key], label=label, **style)
    losses = np.concatenate([metrics[k] for k in ("train_loss", "eval_loss") if k in metrics] or [[]])
    if losses.size and np.nanmin(losses) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss")
    ax_loss.legend()
    if "eval_accuracy" in metrics:
        ax_acc.plot(step, metrics["eval_accuracy"], color="C2", label="evaluation accuracy", **style)
    if "chance_accuracy" in metrics:
        ax_acc.axhline(metrics["chance_accuracy"][0], color="grey", ls="--", label="chance")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("fraction of evaluation trials correct")
    ax_acc.set_title("Accuracy at the query step (delays of the training range)")
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    return save(fig, path)


def _at_query_values(trials: dict[str, np.ndarray], trial: int) -> tuple[np.ndarray, str]:
    """The network's answer channels at the query: probabilities for a cross-entropy readout."""
    query = int(trials["query_step"][trial])
    output = trials["outputs"][query, trial].astype(np.float64)  # [K]
    if str(trials.get("loss_kind", "")) == "cross_entropy":
        mask = trials["answer_mask"][trial] if "answer_mask" in trials else np.ones_like(output, bool)
        logits = np.where(mask, output, -np.inf)
        prob = np.exp(logits - logits.max())
        return prob / prob.sum(), "probability (softmax)"
    return output, "output"


def example_trials(trials: dict[str, np.ndarray], path: Path, n: int = 3) -> Path:
    """Per trial: inputs as a heatmap with channel names; outputs vs targets over the trial; the answer
    channels at the query (output vs target)."""
    B = trials["inputs"].shape[1]
    picks = np.unique(np.linspace(0, B - 1, min(n, B)).round().astype(int))
    in_names = [str(s) for s in trials["input_names"]]
    out_names = [str(s) for s in trials["output_names"]]
    K = len(out_names)
    fig, axes = plt.subplots(
        3, len(picks), figsize=(5.4 * len(picks), 10.5), squeeze=False, height_ratios=[1.1, 1, 0.8]
    )
    scale = max(1.0, float(np.abs(trials["inputs"]).max()))
    for col, trial in enumerate(picks):
        T = trials["inputs"].shape[0]
        query = int(trials["query_step"][trial])
        # Inputs.
        ax = axes[0, col]
        image = ax.imshow(
            trials["inputs"][:, trial].T,
            aspect="auto",
            cmap="Greys",
            vmin=min(0.0, float(trials["inputs"].min())),
            vmax=scale,
            interpolation="nearest",
        )
        every = int(np.ceil(len(in_names) / 16))  # at most 16 readable channel names
        ticks = range(0, len(in_names), every)
        ax.set_yticks(ticks, [in_names[i] for i in ticks], fontsize=7 if len(in_names) > 12 else 9)
        mark_query(ax, query)
        mark_padding(ax, trials, trial)
        band = decorate_heatmap(ax, image, trials, trial, "input value")
        band.set_title(f"Inputs ({trial_title(trials, trial)})")
        ax.set_xlabel("step")
        ax.set_ylabel("input channel")
        # Outputs over time.
        ax = axes[1, col]
        shade_periods(ax, trials, trial, legend=col == 0)
        steps = np.arange(T)
        target, output = trials["targets"][:, trial], trials["outputs"][:, trial]
        if K <= 10:
            for k in range(K):
                colour = f"C{k % 10}"
                ax.plot(steps, output[:, k], color=colour, lw=1.6, label=out_names[k])
                ax.plot(steps, target[:, k], color=colour, lw=1.2, ls=":")
        else:  # too many channels for colours: the target's and the network's channels stand out
            wanted = int(np.argmax(target[query]))
            chosen = int(np.argmax(_at_query_values(trials, trial)[0]))
            ax.plot(steps, output, color="0.8", lw=0.8)
            shown = ax.plot(steps, output[:, wanted], color="C2", lw=1.8, label=f"target {out_names[wanted]}")
            ax.plot(steps, target[:, wanted], color="C2", lw=1.2, ls=":")
            if chosen != wanted:
                shown += ax.plot(
                    steps, output[:, chosen], color="C3", lw=1.8, label=f"chosen {out_names[chosen]}"
                )
            ax.legend(handles=shown, fontsize=7, loc="upper left")
        mark_query(ax, query, label=col == 0)
        mark_padding(ax, trials, trial)
        logits = str(trials.get("loss_kind", "")) == "cross_entropy"
        ax.set_title("Outputs (solid" + (", logits" if logits else "") + ") and targets (dotted)")
        ax.set_xlabel("step")
        ax.set_ylabel("output")
        ax.set_xlim(-0.5, T - 0.5)
        if col == 0:
            handles, labels = ax.get_legend_handles_labels()
            if K > 10:  # the channel lines are labelled per panel
                keep = [i for i, text in enumerate(labels) if not text.startswith(("target ", "chosen "))]
                handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
        # The answer at the query.
        ax = axes[2, col]
        values, what = _at_query_values(trials, trial)
        x = np.arange(K)
        ax.bar(x, values, width=0.7, color=[f"C{k % 10}" for k in range(K)], alpha=0.85, label="network")
        ax.bar(
            x, trials["targets"][query, trial], width=0.7, fill=False, edgecolor="black", lw=1.5,
            ls="--", label="target",
        )  # fmt: skip
        ax.set_xticks(x, out_names, rotation=45 if K > 6 else 0, ha="right" if K > 6 else "center")
        ax.set_ylabel(what)
        ax.set_title(f"At the query (step {query}): network vs target", color=QUERY_COLOUR)
        ax.axhline(0, color="0.3", lw=0.8)
        if col == 0:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle("Example evaluation trials (hatched: padding after the trial's end)", fontsize=13)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 12), fontsize=8)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return save(fig, path)


def accuracy_by_delay(final: dict[str, Any], config: dict[str, Any], path: Path) -> Path:
    """Evaluation accuracy per delay; delays of the training range vs delays beyond it."""
    by_delay = {int(k): v for k, v in (final.get("eval_accuracy_by_delay") or {}).items() if v is not None}
    delays = np.array(sorted(by_delay))
    accuracy = np.array([by_delay[d] for d in delays], dtype=float)
    low = int(config.get("task.min_delay", delays.min()))
    high = int(config.get("task.max_delay", delays.max()))
    inside = (delays >= low) & (delays <= high)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.axvspan(low - 0.5, high + 0.5, color="#c6dbef", alpha=0.5, zorder=0, label="training range")
    ax.plot(delays, accuracy, color="0.5", lw=1, zorder=1)
    ax.scatter(delays[inside], accuracy[inside], color="C0", zorder=2, label="trained delays")
    if (~inside).any():
        ax.scatter(
            delays[~inside], accuracy[~inside], color="C3", marker="D", zorder=2, label="beyond training"
        )
    chance = final.get("chance_accuracy")
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", label="chance")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("delay (steps between the end of the cue and the query)")
    ax.set_ylabel("fraction of evaluation trials correct")
    overall = final.get("eval_accuracy")
    headline = f" (accuracy {overall:.3f} on the training range)" if overall is not None else ""
    ax.set_title("Accuracy by delay" + headline)
    if len(delays) <= 30:
        ax.set_xticks(delays)
    if not (~inside).any():
        ax.text(
            0.99, 0.02, "no evaluation delay beyond the training range (see task.eval_delays)",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.35",
        )  # fmt: skip
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def activity_sequence(
    trials: dict[str, np.ndarray], final: dict[str, Any], path: Path, trial: int, threshold: float
) -> Path:
    """Every neuron's activity over one trial, neurons ordered by peak time, beside their mean activity
    (the sequentiality index's threshold marked)."""
    end = last_step(trials, trial)
    activity = trials["activity"][: end + 1, trial].astype(np.float64)  # [L, N]
    N = activity.shape[1]
    peak = activity.argmax(axis=0)
    mean = activity.mean(axis=0)
    kept = mean > threshold
    # The kept neurons first, by peak step (a sequence reads as a diagonal), then the others.
    order = np.lexsort((np.arange(N), peak, ~kept))
    fig, (ax, ax_mean) = plt.subplots(
        1, 2, figsize=(11, 2.2 + 0.1 * min(N, 64)), width_ratios=[4, 1], sharey=True
    )
    low, high = float(activity.min()), float(activity.max())
    if low < 0:
        bound = max(abs(low), abs(high), 1e-9)
        cmap, vmin, vmax = "RdBu_r", -bound, bound
    else:
        cmap, vmin, vmax = "viridis", 0.0, max(high, 1e-9)
    image = ax.imshow(
        activity[:, order].T, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    rows = np.flatnonzero(kept[order])
    ax.plot(peak[order][rows], rows, "o", mfc="none", mec="black", ms=4, label="peak (kept neurons)")
    if 0 < len(rows) < N:
        ax.axhline(len(rows) - 0.5, color="black", lw=1)
    mark_query(ax, int(trials["query_step"][trial]))
    if N <= 40:
        ax.set_yticks(range(N), [str(i) for i in order], fontsize=7)
    ax.set_ylabel("neuron (kept ones first, by peak step)")
    ax.set_xlabel("step")
    band = decorate_heatmap(ax, image, trials, trial, "activity")
    # An empty band of the same height keeps the bar rows level with the heatmap rows.
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    spacer = make_axes_locatable(ax_mean).append_axes("top", size=0.2, pad=0.0)
    spacer.axis("off")
    ax_mean.barh(np.arange(N), mean[order], color=np.where(kept[order], "C0", "0.75"))
    ax_mean.axvline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax_mean.set_xlabel("mean activity over the trial")
    ax_mean.legend(fontsize=7, loc="best")
    si = final.get("sequentiality_index")
    kept_mean = final.get("si_neurons_kept")
    line = "sequentiality index " + (f"{si:.2f}" if si is not None else "n/a (no neuron kept)")
    if kept_mean is not None:
        line += f" over the evaluation set ({kept_mean:.1f} of {N} neurons kept per trial)"
    band.set_title(f"Activity over {trial_title(trials, trial)}\n{line}")
    fig.tight_layout()
    return save(fig, path)


def lstm_gates(trials: dict[str, np.ndarray], path: Path, trial: int) -> Path:
    """The LSTM's gates and cell over one trial, all units as heatmaps (units ordered by their cell
    value just before the query, so the units holding the memory sit together)."""
    keys = [k for k in GATE_LABELS if k in trials] + sorted(
        k for k in trials if k.startswith("gate_") and k not in GATE_LABELS
    )
    end = last_step(trials, trial)
    query = int(trials["query_step"][trial])
    cell = trials.get("gate_cell")
    H = trials[keys[0]].shape[2]
    order = np.argsort(cell[max(query - 1, 0), trial]) if cell is not None else np.arange(H)
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 1.0 + 2.1 * len(keys)), sharex=True, squeeze=False)
    for row, key in enumerate(keys):
        ax = axes[row, 0]
        values = trials[key][: end + 1, trial][:, order].T  # [H, L]
        name = GATE_LABELS.get(key, key.removeprefix("gate_").replace("_", " "))
        if name.endswith("gate"):
            image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        else:
            bound = max(float(np.abs(values).max()), 1e-9)
            image = ax.imshow(
                values, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest"
            )
        mark_query(ax, query)
        ax.set_ylabel(f"{name}\nunit", fontsize=9)
        ax.set_yticks([])
        band = decorate_heatmap(ax, image, trials, trial, "", strip=row == 0)
        if row == 0:
            title_axis = band
    title_axis.set_title(
        f"LSTM gates and cell over {trial_title(trials, trial)}\n"
        f"({H} units, ordered by their cell value at step {max(query - 1, 0)})"
    )
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return save(fig, path)


# -- the whole run ------------------------------------------------------------------------------------
def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def plot_run(run_dir: str | Path, animate: bool | None = None, frame_stride: int | None = None) -> list[Path]:
    """(Re)draw every figure of a run folder into ``<run_dir>/figures``; returns the files written.

    ``animate`` / ``frame_stride`` default to the run's ``analysis.animate`` / ``analysis.frame_stride``.
    Raises :class:`NotARunError` (a one-line message) for a folder that is not a readable run; a figure
    that fails to draw is logged, the others are still drawn, and a ``RuntimeError`` names the failures.
    """
    files = load_run(run_dir)
    trials, final, config = files.trials, files.final, files.config
    out = files.path / FIGURES
    out.mkdir(exist_ok=True)
    trial = showcase_trial(files)
    threshold = float(final.get("si_threshold", config.get("analysis.si_threshold", 0.1)))
    animate = _flag(config.get("analysis.animate") if animate is None else animate, False)
    stride = int(frame_stride if frame_stride is not None else config.get("analysis.frame_stride", 1) or 1)
    has_activation = "params" in trials and _flag(trials.get("uses_activation"), True)

    jobs: dict[str, Any] = {}
    if files.metrics:
        jobs["learning_curves.png"] = lambda p: learning_curves(files.metrics, p)
    jobs["example_trials.png"] = lambda p: example_trials(trials, p)
    if final.get("eval_accuracy_by_delay"):
        jobs["accuracy_by_delay.png"] = lambda p: accuracy_by_delay(final, config, p)
    if "activity" in trials:
        jobs["activity_sequence.png"] = lambda p: activity_sequence(trials, final, p, trial, threshold)
    if has_activation:
        params = trials["params"][: last_step(trials, trial) + 1, trial]
        neurons = most_modulated(params, 6)
        jobs["activation_params.png"] = lambda p: activation_params(trials, p, trial, neurons)
        jobs["activation_function.png"] = lambda p: activation_function(trials, p, trial, neurons[:4])
        if animate:
            jobs["activation_function.gif"] = lambda p: animate_activation(
                trials, p, trial, neurons[:4], frame_stride=stride
            )
    elif animate:
        log.info("analysis.animate: this architecture has no activation parameters; no animation drawn")
    if any(k.startswith("gate_") for k in trials):
        jobs["lstm_gates.png"] = lambda p: lstm_gates(trials, p, trial)

    written, failed = [], []
    for name, draw in jobs.items():
        try:
            written.append(draw(out / name))
        except Exception as error:  # one broken figure must not cost the others
            log.exception("could not draw %s", name)
            failed.append(f"{name} ({type(error).__name__}: {error})")
            plt.close("all")
    if failed:
        raise RuntimeError(f"could not draw {len(failed)} figure(s) of {files.path}: " + "; ".join(failed))
    return written


__all__ = ["NotARunError", "plot_run"]
