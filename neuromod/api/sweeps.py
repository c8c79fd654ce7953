"""A sweep's results, from Python: :func:`load_sweep` (a DataFrame, nothing written) and
:func:`collect_sweep` (what ``collect_results.py`` writes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from neuromod.results.collect import Collection


def load_sweep(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    plots: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """The table of a sweep's runs, one row per job folder: what ``results.csv`` of a collection holds.

    Columns: ``run_dir``, ``status`` (``completed``, ``failed``, ``diverged``, ``stale``, ...), the
    parameters that vary across the sweep (from each job's recorded config, e.g. ``seed``,
    ``architecture.hidden_size``), the final validation and test metrics (``eval_accuracy``,
    ``test_accuracy``, ...) and the analyses' scalars. The sweep's varying parameters are also in
    ``frame.attrs["params"]``.

    Nothing is written unless ``out_dir`` is given: then the collection's files go there as
    :func:`collect_sweep` writes them (with its figures when ``plots``). ``options``: those of
    :func:`neuromod.results.collect.read_sweep` (e.g. ``ignore``: keys that are no parameters).
    Raises :class:`~neuromod.results.sweep_paths.CollectionError` (one line naming the folder) when
    ``sweep_dir`` does not exist or holds no run folder.
    """
    from neuromod.results.collect import CollectionError, read_sweep
    from neuromod.results.runs import find_run_dirs

    if Path(sweep_dir).is_dir() and not find_run_dirs(sweep_dir):
        raise CollectionError(f"{sweep_dir} holds no run folder (no job folder with .hydra/ or a summary)")
    if out_dir is not None:
        collection = collect_sweep(sweep_dir, out_dir, plots=plots, **options)
    else:
        options.setdefault("progress", False)
        collection = read_sweep(sweep_dir, **options)
    results = collection.results
    results.attrs["params"] = list(collection.params)
    return results


def collect_sweep(
    sweep_dir: str | Path, out_dir: str | Path, plots: bool = True, metric: str = "eval_accuracy", **options
) -> Collection:
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
