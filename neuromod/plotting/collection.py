"""A collected sweep's figures, drawn from the records collection read
(:func:`neuromod.results.collect.collect`): which plots of :mod:`neuromod.plotting.sweeps` apply, and
what is left out and why (``collection.json``'s ``skipped_plots``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from neuromod.plotting.sweeps import (
    plot_decoding_summary,
    plot_generalisation,
    plot_heatmap,
    plot_learning_curves,
    plot_metric_vs,
    plot_retention,
)
from neuromod.results.collect import Collection
from neuromod.results.runs import COMPLETED, RunRecord

log = logging.getLogger(__name__)


def draw_collection(collection: Collection, metric: str = "eval_accuracy") -> list[Path]:
    """The figures of a collected sweep (:func:`neuromod.results.collect.collect`'s result), into its
    ``out_dir``: ``metric`` against each varying parameter, a heatmap of the first two, generalisation over
    delays, retention, decoding and (up to ``max_runs_to_process`` runs) the learning curves. A figure that
    cannot be drawn is logged and named in ``collection.skipped``; it never costs the tables. The files
    are appended to ``collection.files`` and returned."""
    files = _draw(
        collection.records,
        collection.results,
        collection.params,
        metric,
        collection.out_dir,
        collection.max_runs_to_process,
        collection.skipped,
    )
    collection.files.extend(files)
    return files


def _draw(
    records: Sequence[RunRecord],
    results: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    out_dir: Path,
    max_runs_to_process: int,
    skipped: list[str],
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    swept = [p for p in params if p != "seed"]
    done = results[results["status"] == COMPLETED].copy()
    done.attrs["params"] = list(params)
    files: list[Path] = []

    def attempt(name: str, draw) -> None:
        # A figure must never cost the tables: log what went wrong and go on.
        try:
            files.extend(draw())
        except Exception:
            log.exception("could not draw %s", name)
            skipped.append(f"{name} (error, see the log)")

    if done.empty or metric not in done or pd.to_numeric(done[metric], errors="coerce").isna().all():
        skipped.append(f"summary plots (no completed run reports {metric})")
    else:
        for x in swept[:4]:
            others = [p for p in swept if p != x]
            attempt(
                f"{metric} vs {x}",
                lambda x=x, others=others: plot_metric_vs(done, x, others, metric, out_dir),
            )
        if len(swept) >= 2:
            rows, cols = swept[0], swept[1]
            attempt("heatmap", lambda: plot_heatmap(done, rows, cols, metric, out_dir))
        attempt("generalisation", lambda: plot_generalisation(results, params, out_dir))
        trained = [r.config.get("task.max_delay") for r in records if r.config]
        trained = max((int(d) for d in trained if isinstance(d, (int, float))), default=None)
        attempt("retention", lambda: plot_retention(results, params, out_dir, trained))
        attempt("decoding", lambda: plot_decoding_summary(results, params, out_dir))
    if len(records) > max_runs_to_process:
        skipped.append(f"learning_curves ({len(records)} runs > max_runs_to_process={max_runs_to_process})")
        log.info(
            "%d runs > max_runs_to_process=%d: per-run learning curves skipped",
            len(records),
            max_runs_to_process,
        )
    elif len(results):
        attempt("learning curves", lambda: plot_learning_curves(records, results, swept[:2], out_dir))
    return files
