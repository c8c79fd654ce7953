"""Collect a sweep: every run folder's ``summary.json`` and ``.hydra/`` -> tables, LaTeX and plots.

Nothing is parsed out of folder names: a run's parameters come from the config it recorded, and the
parameters that vary across the sweep are found by comparing those configs. A folder that cannot be read
(truncated JSON, missing files, a folder that is not a run) becomes a row of ``failed_runs.csv`` with its
reason, never an exception. :func:`read_sweep` reads the sweep once into its tables, writing nothing;
:func:`collect` also writes them (:func:`write_tables`), returning the records it read; the caller draws
from them (:func:`neuromod.plotting.collection.draw_collection`), may send them on (MLflow:
:func:`neuromod.export.export_sweep`), then writes ``collection.json`` (:func:`write_collection_info`).
``collect_results.py`` does all of it; from Python, :func:`neuromod.api.collect_sweep` (and
:func:`neuromod.api.load_sweep`, the table alone).

Finding the sweep is :mod:`neuromod.results.sweep_paths`, reading its runs :mod:`neuromod.results.runs`, the
tables :mod:`neuromod.results.tables`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neuromod import io, latex
from neuromod.results.runs import COMPLETED, STALE, RunRecord, find_run_dirs, read_run
from neuromod.results.sweep_paths import CollectionError, resolve_sweep_dir
from neuromod.results.tables import (
    cell_text,
    expand_metrics,
    failed_table,
    latex_document,
    latex_table,
    results_table,
    summary_table,
    varying_parameters,
)
from neuromod.runfolder.liveness import STALE_AFTER_S

__all__ = [
    "Collection",
    "CollectionError",
    "collect",
    "read_sweep",
    "resolve_sweep_dir",
    "write_collection_info",
    "write_tables",
]

log = logging.getLogger(__name__)


@dataclass
class Collection:
    """What :func:`collect` found and wrote."""

    sweep_dir: Path
    #: Where the tables were written (None: read only, :func:`read_sweep`).
    out_dir: Path | None
    params: list[str]
    n_runs: int
    results: pd.DataFrame
    failed: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    #: Every run folder as read (the one reading of the sweep).
    records: list[RunRecord] = field(default_factory=list)
    #: The figures left out, and why (``collection.json``'s ``skipped_plots``).
    skipped: list[str] = field(default_factory=list)
    max_runs_to_process: int = 40
    #: The metrics of ``summary.csv`` (per-task metrics expanded).
    table_metrics: list[str] = field(default_factory=list)


def read_sweep(
    sweep_dir: str | Path,
    table_metrics: Sequence[str] = ("eval_accuracy", "eval_loss", "train_loss"),
    ignore: Iterable[str] = (),
    progress: bool = True,
    stale_after_s: float = STALE_AFTER_S,
    max_runs_to_process: int = 40,
) -> Collection:
    """Read every run below ``sweep_dir`` into the collection's tables, writing nothing (``out_dir`` is
    None and ``files`` empty until :func:`write_tables`). The arguments are those of :func:`collect`
    (``metric`` is the plots' alone)."""
    from tqdm.auto import tqdm

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise CollectionError(f"sweep folder {sweep_dir} does not exist")
    run_dirs = find_run_dirs(sweep_dir)
    bar = tqdm(run_dirs, desc="reading runs", unit="run", disable=not progress, leave=False)
    now = time.time()  # one instant for every run's staleness
    records = [read_run(d, stale_after_s=stale_after_s, now=now) for d in bar]
    params = varying_parameters(records, ignore)
    swept = [p for p in params if p != "seed"]
    results = results_table(records, params, sweep_dir)
    failed = failed_table(records, params, sweep_dir)
    table_metrics = expand_metrics(table_metrics, results.columns)  # per-task metrics: test_accuracy_*
    summary = summary_table(results, params, table_metrics)
    n_done = int((results["status"] == COMPLETED).sum()) if len(results) else 0
    n_stale = sum(r.status == STALE for r in records)
    log.info(
        "%d run folders in %s: %d completed, %d not completed%s; varying: %s",
        len(records),
        sweep_dir,
        n_done,
        len(failed),
        f" ({n_stale} stale: said running, silent or gone)" if n_stale else "",
        ", ".join(swept) or "nothing but the seed",
    )
    return Collection(
        sweep_dir,
        None,
        params,
        len(records),
        results,
        failed,
        summary,
        [],
        records=records,
        max_runs_to_process=max_runs_to_process,
        table_metrics=list(table_metrics),
    )


def collect(
    sweep_dir: str | Path,
    out_dir: str | Path,
    max_runs_to_process: int = 40,
    metric: str = "eval_accuracy",
    table_metrics: Sequence[str] = ("eval_accuracy", "eval_loss", "train_loss"),
    ignore: Iterable[str] = (),
    progress: bool = True,
    stale_after_s: float = STALE_AFTER_S,
    max_table_rows: int = 60,
) -> Collection:
    """Read every run below ``sweep_dir`` and write the collection's tables to ``out_dir``.

    Files: ``results.csv`` (one row per run), ``failed_runs.csv``, ``summary.csv`` and ``summary.tex``
    (mean ± std (n) per combination of the varying parameters), ``summary_table.tex`` (the table alone,
    for ``\\input``). The figures (:func:`neuromod.plotting.collection.draw_collection`; with more runs than
    ``max_runs_to_process`` the per-run overlay is skipped) and ``collection.json``
    (:func:`write_collection_info`) come after, from what this returns.
    ``ignore``: config keys that are not swept parameters even if they differ between runs, besides
    :data:`~neuromod.runfolder.settings.EXECUTION_KEYS` (always left out). A run whose summary says
    ``running`` but whose process is gone, or silent for more than ``stale_after_s`` seconds, is ``stale``.
    ``summary.tex`` shows at most ``max_table_rows`` combinations (and says how many more summary.csv has).
    Reading alone, without writing: :func:`read_sweep`.
    """
    if not Path(sweep_dir).is_dir():
        raise CollectionError(f"sweep folder {sweep_dir} does not exist")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection = read_sweep(sweep_dir, table_metrics, ignore, progress, stale_after_s, max_runs_to_process)
    write_tables(collection, out_dir, max_table_rows)
    return collection


def write_tables(collection: Collection, out_dir: str | Path, max_table_rows: int = 60) -> list[Path]:
    """Write the tables of a collection read by :func:`read_sweep` into ``out_dir`` (which becomes its
    ``out_dir``): ``results.csv``, ``failed_runs.csv``, ``summary.csv``, ``summary_table.tex`` and
    ``summary.tex``. Returns the files written (also appended to ``collection.files``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection.out_dir = out_dir
    files = collection.files
    summary, params = collection.summary, collection.params

    def write_frame(name: str, frame: pd.DataFrame) -> None:
        io.write_text(out_dir / name, frame.to_csv(index=False))
        files.append(out_dir / name)

    write_frame("results.csv", collection.results)
    write_frame("failed_runs.csv", collection.failed)
    write_frame("summary.csv", summary)
    caption = (
        "Final metrics of completed runs: mean $\\pm$ standard deviation over seeds; $n$: completed runs. "
        f"Sweep: \\texttt{{{latex.escape(collection.sweep_dir.name)}}}."
    )
    if len(summary) > max_table_rows:
        caption += f" The first {max_table_rows} of {len(summary)} combinations; all are in summary.csv."
        log.info(
            "summary.tex: the first %d of %d combinations (max_table_rows); summary.csv has them all",
            max_table_rows,
            len(summary),
        )
    table = latex_table(summary, params, collection.table_metrics, caption, max_rows=max_table_rows)
    io.write_text(out_dir / "summary_table.tex", table)
    io.write_text(out_dir / "summary.tex", latex_document(table))
    files += [out_dir / "summary_table.tex", out_dir / "summary.tex"]
    return files


def write_collection_info(collection: Collection) -> Path:
    """``collection.json``: what was collected, what varied, which figures were left out, the files."""
    results, out_dir = collection.results, collection.out_dir
    n_done = int((results["status"] == COMPLETED).sum()) if len(results) else 0
    info = {
        "sweep_dir": str(collection.sweep_dir),
        "n_runs": collection.n_runs,
        "n_completed": n_done,
        "n_not_completed": len(collection.failed),
        "n_stale": sum(r.status == STALE for r in collection.records),
        "varying_parameters": [p for p in collection.params if p != "seed"],
        "seeds": sorted({cell_text(s) for s in results.get("seed", []) if s is not None and s == s}),
        "max_runs_to_process": collection.max_runs_to_process,
        "skipped_plots": collection.skipped,
        "files": [p.name for p in collection.files],
    }
    io.write_json(out_dir / "collection.json", info)
    collection.files.append(out_dir / "collection.json")
    return out_dir / "collection.json"
