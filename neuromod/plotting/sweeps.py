"""Figures of a collected sweep: a metric against each varying parameter, a heatmap over two of them,
accuracy by evaluation delay and every run's learning curves (``collect_results.py``; docs/sweeps.md).

Each figure is written as PNG and PDF, atomically. Seeds are pooled: error bars are standard deviations
over them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from neuromod.results.runs import COMPLETED, RunRecord
from neuromod.results.tables import DELAY_KEYS, cell_text, is_numeric
from neuromod.runfolder.files import METRICS

log = logging.getLogger(__name__)

#: Short names for file names and titles.
SHORT_NAMES = {
    "task.max_delay": "delay",
    "task.min_delay": "min_delay",
    "architecture.hidden_size": "hidden_size",
    "architecture.n_neurons": "n_neurons",
    "training.lr": "lr",
}


#: At most this many lines (hue levels) in a figure's legend; more are pooled, and the title says so.
MAX_LINES = 12
#: A heatmap with more rows or columns than this has no numbers written in its cells, and is capped in size.
MAX_ANNOTATED = 20


def _short(key: str) -> str:
    return SHORT_NAMES.get(key, key.replace(".", "_").replace("/", "_"))


def _save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """``name``.png and ``name``.pdf in ``out_dir``, each written atomically."""
    import matplotlib.pyplot as plt

    written = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{ext}", dir=out_dir)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=ext)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    plt.close(fig)
    return written


def _hue_label(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One label per run from ``keys`` (``hidden_size=8, af=gain``), ordered numerically where possible."""
    parts = [frame[k].map(lambda v, k=k: f"{_short(k)}={cell_text(v)}") for k in keys]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def _ordered_labels(frame: pd.DataFrame, keys: Sequence[str], labels: pd.Series) -> list[str]:
    def sort_key(i):
        row = frame.loc[i]
        return tuple(
            (0, float(row[k]), "") if is_numeric(pd.Series([row[k]])) else (1, 0.0, str(row[k])) for k in keys
        )

    order = sorted(frame.index, key=sort_key)
    seen: list[str] = []
    for i in order:
        if labels[i] not in seen:
            seen.append(labels[i])
    return seen


def _chance(results: pd.DataFrame) -> float | None:
    if "chance_accuracy" in results:
        values = pd.to_numeric(results["chance_accuracy"], errors="coerce").dropna().unique()
        if len(values) == 1:
            return float(values[0])
    return None


def plot_metric_vs(
    done: pd.DataFrame, x: str, others: Sequence[str], metric: str, out_dir: Path, max_lines: int = MAX_LINES
) -> list[Path]:
    """``metric`` against parameter ``x``: one line per combination of ``others``, error bars = std over
    seeds (numeric ``x``: line plot; categorical ``x``: point plot)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = done.copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    # Runs without a value for x (a key added to the config later) cannot be placed on the axis.
    frame = frame[frame[x].notna() & frame[metric].notna()]
    if frame[x].nunique() < 2:
        return []
    hue_keys = list(others)
    for key in hue_keys:
        frame[key] = frame[key].where(frame[key].notna(), "none")
    # Too many combinations make an unreadable legend: keep the leading parameters, pool the rest.
    while hue_keys and frame.groupby(hue_keys).ngroups > max_lines:
        hue_keys.pop()
    pooled = [k for k in others if k not in hue_keys]
    hue = None
    hue_order = None
    if hue_keys:
        frame["_hue"] = _hue_label(frame, hue_keys)
        hue, hue_order = "_hue", _ordered_labels(frame, hue_keys, frame["_hue"])
    numeric_x = is_numeric(frame[x])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    # mean and standard deviation over seeds, a line (or points) per combination of the other parameters
    common = {"x": x, "y": metric, "hue": hue, "hue_order": hue_order, "errorbar": "sd", "ax": ax}
    if numeric_x:
        frame[x] = pd.to_numeric(frame[x])
        sns.lineplot(
            data=frame,
            **common,
            err_style="bars",
            marker="o",
            err_kws={"capsize": 3},
        )
        values = frame[x][frame[x] > 0]
        if len(values) == len(frame) and values.max() / values.min() >= 10:
            ax.set_xscale("log")
        ax.set_xticks(sorted(frame[x].unique()))
        ax.set_xticklabels([cell_text(v) for v in sorted(frame[x].unique())])
        ax.minorticks_off()
    else:
        frame[x] = frame[x].astype(str)
        sns.pointplot(
            data=frame,
            **common,
            capsize=0.1,
            # Categories are not a continuum: points with error bars, no joining lines.
            linestyle="none",
            dodge=0.3 if hue else False,
        )
        labels = frame[x].unique()
        if sum(len(label) for label in labels) > 40:  # long category names: slanted, so they do not overlap
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
    chance = _chance(done)
    if chance is not None and metric.endswith("accuracy"):
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    if metric.endswith("accuracy"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(f"final {metric}")
    title = f"{metric} vs {x} (mean ± std over seeds)"
    if pooled:
        title += f"\npooled over {', '.join(pooled)}"
    ax.set_title(title, fontsize=10)
    if hue or chance is not None:
        ax.legend(fontsize=8, title=", ".join(_short(k) for k in hue_keys) or None, title_fontsize=8)
    return _save_figure(fig, out_dir, f"{_short(metric).replace('eval_', '')}_vs_{_short(x)}")


def plot_heatmap(done: pd.DataFrame, rows: str, cols: str, metric: str, out_dir: Path) -> list[Path]:
    """Mean ``metric`` over seeds (and over any other parameters) for each ``rows`` x ``cols`` pair."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = done.copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    table = frame.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean")
    # Many rows or columns: no numbers in the cells (unreadable), and a figure of bounded size.
    annotate = max(table.shape) <= MAX_ANNOTATED
    width = min(1.2 * len(table.columns), 0.3 * len(table.columns) + 18) + 2.5
    height = min(0.6 * len(table.index), 0.25 * len(table.index) + 12) + 2
    fig, ax = plt.subplots(figsize=(width, height))
    accuracy = metric.endswith("accuracy")
    sns.heatmap(
        table,
        annot=annotate,
        fmt=".2f",
        cmap="viridis",
        vmin=0 if accuracy else None,
        vmax=1 if accuracy else None,
        cbar_kws={"label": f"mean final {metric}"},
        ax=ax,
    )
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    others = [c for c in done.attrs.get("params", []) if c not in (rows, cols, "seed")]
    title = f"{metric}: {_short(rows)} x {_short(cols)}"
    if others:
        title += f"\n(averaged over {', '.join(others)})"
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, out_dir, f"heatmap_{_short(rows)}_x_{_short(cols)}")


def plot_learning_curves(
    records: Sequence[RunRecord], results: pd.DataFrame, hue_keys: Sequence[str], out_dir: Path
) -> list[Path]:
    """Every run's ``metrics.csv``: evaluation accuracy and training loss against step, coloured by the
    leading swept parameter."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    curves = []
    for r, (_, row) in zip([r for r in records if r.config], results.iterrows(), strict=True):
        path = r.run_dir / METRICS
        try:
            metrics = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if "step" not in metrics:
            continue
        metrics["_run"] = row["run"]
        for k in hue_keys:
            metrics[k] = row[k]
        curves.append(metrics)
    if not curves:
        return []
    frame = pd.concat(curves, ignore_index=True)
    hue, hue_order = None, None
    if hue_keys:
        frame["_hue"] = _hue_label(frame, hue_keys)
        hue, hue_order = "_hue", _ordered_labels(frame, hue_keys, frame["_hue"])
    panels = [c for c in ("eval_accuracy", "train_loss") if c in frame]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, column in zip(axes[0], panels, strict=True):
        sns.lineplot(
            data=frame,
            x="step",
            y=column,
            hue=hue,
            hue_order=hue_order,
            units="_run",
            estimator=None,
            lw=1,
            alpha=0.8,
            ax=ax,
            legend=column == panels[0],
        )
        ax.set_xlabel("training step")
        ax.set_ylabel(column)
        if column.endswith("loss") and (frame[column] > 0).all():
            ax.set_yscale("log")
    if hue and axes[0][0].get_legend() is not None:
        axes[0][0].legend(fontsize=7, title=", ".join(_short(k) for k in hue_keys), title_fontsize=7)
    fig.suptitle(f"Learning curves of {frame['_run'].nunique()} runs", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, out_dir, "learning_curves")


def _completed_long(
    results: pd.DataFrame, params: Sequence[str], prefix: str, var_name: str
) -> tuple[pd.DataFrame, list[str], pd.DataFrame] | None:
    """The completed runs, the swept parameters but the seed, and the ``<prefix><name>`` columns in long
    form (``var_name``: the name after the prefix, ``accuracy``: the value as a number); None when there is
    no such column or no completed run."""
    columns = [c for c in results.columns if c.startswith(prefix)]
    done = results[results["status"] == COMPLETED]
    if not columns or done.empty:
        return None
    swept = [p for p in params if p != "seed"]
    long = done.melt(id_vars=["run", *swept], value_vars=columns, var_name=var_name, value_name="accuracy")
    long[var_name] = long[var_name].str[len(prefix) :]
    long["accuracy"] = pd.to_numeric(long["accuracy"], errors="coerce")
    return done, swept, long


def plot_generalisation(results: pd.DataFrame, params: Sequence[str], out_dir: Path) -> list[Path]:
    """Accuracy by evaluation delay (``eval_accuracy_by_delay``), mean ± std over seeds, one line per
    value of the leading parameter and one panel per value of the second (if any)."""
    import seaborn as sns

    found = _completed_long(results, params, "eval_accuracy_by_delay.", "eval_delay")
    if found is None:
        return []
    done, swept, long = found
    long["eval_delay"] = pd.to_numeric(long["eval_delay"], errors="coerce")
    long = long.dropna()
    if long["eval_delay"].nunique() < 2:
        return []
    hue = swept[0] if swept else None
    pooled_hue = hue is not None and long[hue].nunique() > MAX_LINES
    if pooled_hue:  # more lines than a legend can tell apart: pooled, and the title says so
        hue = None
    col = swept[1] if len(swept) > 1 and long[swept[1]].nunique() <= 6 else None
    kwargs: dict[str, Any] = {}
    if hue:
        long["_hue"] = _hue_label(long, [hue])
        kwargs.update(hue="_hue", hue_order=_ordered_labels(long, [hue], long["_hue"]))
    if col:
        long["_col"] = _hue_label(long, [col])
        col_order = _ordered_labels(long, [col], long["_col"])
        kwargs.update(col="_col", col_order=col_order, col_wrap=min(3, len(col_order)))
    grid = sns.relplot(
        data=long,
        x="eval_delay",
        y="accuracy",
        kind="line",
        errorbar="sd",
        marker="o",
        height=3.6,
        aspect=1.2,
        facet_kws={"sharey": True},
        **kwargs,
    )
    chance = _chance(done)
    for ax in grid.axes.flat:
        if chance is not None:
            ax.axhline(chance, color="grey", ls="--", lw=1)
        if hue in DELAY_KEYS and hue == "task.max_delay":
            # The training range ends at each run's max_delay: beyond it is generalisation.
            colours = sns.color_palette(n_colors=len(kwargs["hue_order"]))
            palette = dict(zip(kwargs["hue_order"], colours, strict=True))
            for label, colour in palette.items():
                ax.axvline(float(label.split("=", 1)[1]), color=colour, ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("evaluation delay (steps)")
    grid.set_titles("{col_name}" if col else "")
    if grid.legend is not None:
        grid.legend.set_title(_short(hue) if hue else "")
    title = "Accuracy by evaluation delay (mean ± std over seeds)"
    if pooled_hue:
        title += f"\npooled over {swept[0]} ({long[swept[0]].nunique()} values > {MAX_LINES})"
    grid.figure.suptitle(title, fontsize=10, y=1.02)
    return _save_figure(grid.figure, out_dir, "accuracy_by_eval_delay")


def plot_decoding_summary(results: pd.DataFrame, params: Sequence[str], out_dir: Path) -> list[Path]:
    """The population analyses' decoding accuracy at the end of the delay per signal (``analysis.json``),
    mean ± std over seeds, one bar per value of the leading parameter."""
    import seaborn as sns

    found = _completed_long(results, params, "decoding_delay_end.", "signal")
    if found is None:
        return []
    done, swept, long = found
    long = long.dropna(subset=["accuracy"])
    if long.empty:
        return []
    hue = swept[0] if swept and long[swept[0]].nunique() <= MAX_LINES else None
    kwargs: dict[str, Any] = {}
    if hue:
        long["_hue"] = _hue_label(long, [hue])
        kwargs.update(hue="_hue", hue_order=_ordered_labels(long, [hue], long["_hue"]))
    grid = sns.catplot(
        data=long, x="signal", y="accuracy", kind="bar", errorbar="sd", height=3.6, aspect=1.4, **kwargs
    )
    if "decoding_chance" in done:
        chance = pd.to_numeric(done["decoding_chance"], errors="coerce").mean()
        if chance == chance:
            grid.ax.axhline(chance, color="grey", ls="--", lw=1)
    grid.ax.set_ylim(0, 1.02)
    grid.ax.set_ylabel("decoding accuracy, end of delay")
    if grid.legend is not None:
        grid.legend.set_title(_short(hue) if hue else "")
    grid.figure.suptitle("Where the content is held (mean ± std over seeds)", fontsize=10, y=1.02)
    return _save_figure(grid.figure, out_dir, "decoding_end_of_delay")


def retention_table(
    results: pd.DataFrame, params: Sequence[str], trained: int | None = None
) -> tuple[pd.DataFrame, str, int] | None:
    """Mean test accuracy (over seeds and the other swept parameters) with one row per test delay
    (``test_accuracy_by_delay``) and one column per value of the leading swept parameter; with the column's
    name and the longest training delay (``trained``, else a ``task.max_delay`` column). None unless some
    test delay lies beyond the training range (``task.test_delays``)."""
    found = _completed_long(results, params, "test_accuracy_by_delay.", "test_delay")
    if found is None:
        return None
    done, swept, long = found
    long["test_delay"] = pd.to_numeric(long["test_delay"], errors="coerce")
    long = long.dropna()
    if trained is None:
        trained = pd.to_numeric(done.get("task.max_delay", pd.Series(dtype=float)), errors="coerce").max()
    if long["test_delay"].nunique() < 2 or pd.isna(trained) or long["test_delay"].max() <= trained:
        return None
    col = swept[0] if swept else "_col"
    if not swept:
        long["_col"] = "all runs"
    table = long.pivot_table(index="test_delay", columns=col, values="accuracy", aggfunc="mean")
    return table, col, int(trained)


def plot_retention(
    results: pd.DataFrame, params: Sequence[str], out_dir: Path, trained: int | None = None
) -> list[Path]:
    """:func:`retention_table` as a heatmap, a white line under the training range, and the number of runs
    that reached the stop criterion under each column: retention on trials the run never selected on."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    found = retention_table(results, params, trained)
    if found is None:
        return []
    table, col, trained = found
    done = results[results["status"] == COMPLETED]
    fig, ax = plt.subplots(figsize=(1.3 * len(table.columns) + 3, 0.5 * len(table.index) + 2.5))
    sns.heatmap(
        table,
        annot=max(table.shape) <= MAX_ANNOTATED,
        fmt=".2f",
        cmap="viridis",
        vmin=0,
        vmax=1,
        cbar_kws={"label": "mean test accuracy"},
        ax=ax,
    )
    within = int((table.index <= trained).sum())
    if 0 < within < len(table.index):
        ax.axhline(within, color="white", lw=2)
    if "reached_criterion" in done and col in done:
        reached = done.groupby(col)["reached_criterion"].apply(
            lambda s: f"{int(pd.to_numeric(s, errors='coerce').fillna(0).sum())}/{len(s)}"
        )
        ax.set_xticklabels([f"{c}\n(reached {reached.get(c, '?')})" for c in table.columns])
    ax.set_xlabel(_short(col) if col != "_col" else "")
    ax.set_ylabel("test delay (steps)")
    others = [p for p in params if p not in ("seed", col)]
    title = f"Retention: test accuracy by delay (trained on delays <= {trained}, white line)"
    if others:
        title += f"\naveraged over {', '.join(others)}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, out_dir, "retention")
