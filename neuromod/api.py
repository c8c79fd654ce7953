"""neuromod from Python: what ``main.py`` does, callable from a script or a notebook.

:func:`run_config` trains one composed config into a run folder with the observers ``main.py`` hands a
run (:data:`STANDARD_OBSERVERS`: the figures, then the tracker ``logger=`` names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from neuromod.observer import RunObserver


def _figures(cfg: DictConfig, run_dir: Path) -> RunObserver:
    from neuromod.plotting.observer import figures

    return figures(cfg, run_dir)


def _tracker(cfg: DictConfig, run_dir: Path) -> RunObserver:
    from neuromod.trackers import open_tracker

    return open_tracker(cfg, run_dir)


#: What watches a run launched by ``main.py``: its figures (``analysis.figures``), then its tracker
#: (``logger=``), which may send the figures on. (Their modules are imported when a run makes them.)
STANDARD_OBSERVERS = (_figures, _tracker)


def run_config(cfg: DictConfig, output_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train and evaluate a composed config into ``output_dir`` as ``main.py`` would (figures, tracker);
    returns the run's summary. ``options``: those of :func:`neuromod.runner.run.run`."""
    from neuromod.runner.run import run

    options.setdefault("observers", STANDARD_OBSERVERS)
    return run(cfg, output_dir, **options)


def collect_sweep(
    sweep_dir: str | Path, out_dir: str | Path, plots: bool = True, metric: str = "eval_accuracy", **options
):
    """Collect a sweep as ``collect_results.py`` does: its tables, then (``plots``) its figures, then
    ``collection.json``; returns the :class:`~neuromod.results.collect.Collection` (``.results`` is the
    table ``results.csv`` holds, as a pandas DataFrame). ``options``: those of
    :func:`neuromod.results.collect.collect`."""
    from neuromod.results.collect import collect, write_collection_info

    collection = collect(sweep_dir, out_dir, metric=metric, **options)
    if plots:
        from neuromod.plotting.collection import draw_collection

        draw_collection(collection, metric)
    write_collection_info(collection)
    return collection
