"""Export a finished (or running) sweep to MLflow, after the fact: `python -m neuromod.export [SWEEP_DIR]`.

Jobs never write to a tracking store while they train (parallel jobs writing one SQLite file collide);
their run folders are the record, and this command copies them into an MLflow experiment: one MLflow run
per run folder with its settings as params, its metrics.csv as metric history, its final and test metrics,
its status (completed -> FINISHED, interrupted -> KILLED, running -> RUNNING, anything else -> FAILED, with
``neuromod.status`` and ``neuromod.error`` tags saying which) and its figures, params.tex and summary.json
as artifacts. With a collection folder (``--collection``, or ``collect_results.py mlflow=true``) a parent
run ``collection`` holds summary.tex, summary.csv and results.csv, and the job runs are nested under it.

The store defaults to ``sqlite:///<sweep>/.mlflow/mlflow.db`` (artifacts in ``.mlflow/mlflow-artifacts/``
beside it); view it with ``mlflow ui --backend-store-uri sqlite:///<sweep>/.mlflow/mlflow.db``. The
experiment's name defaults to the sweep folder's last two path parts (``<date>/<time>``). Every MLflow
run is tagged with its folder's path relative to the sweep (``neuromod.run_dir``), so exporting again
updates the same runs (new metric rows, status, artifacts) and never duplicates them; a folder whose
settings changed since is exported afresh (its old MLflow run deleted). Needs the ``mlflow`` extra
(``pip install -e '.[mlflow]'``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from neuromod.results.runs import COMPLETED, RunRecord, find_run_dirs, read_metrics, read_run
from neuromod.results.sweep_paths import CollectionError, resolve_sweep_dir
from neuromod.runfolder.files import FIGURES, METRICS, PARAMS_TABLE, SUMMARY

log = logging.getLogger(__name__)

RUN_TAG = "neuromod.run_dir"
KIND_TAG = "neuromod.kind"
INSTALL_HINT = "exporting to MLflow needs the mlflow package: pip install -e '.[mlflow]'"
#: MLflow run statuses for the run folders' statuses (anything else: FAILED).
STATUSES = {COMPLETED: "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}
#: Files of a run folder, and of a collection folder, logged as artifacts.
RUN_ARTIFACTS = (PARAMS_TABLE, SUMMARY, METRICS)
COLLECTION_ARTIFACTS = ("summary.tex", "summary.csv", "results.csv", "failed_runs.csv")
_MAX_PARAM = 6000  # MLflow's longest parameter value
_BATCH = 100  # MLflow's most params per log_batch call


def default_tracking_uri(sweep_dir: Path) -> str:
    """``sqlite:///<sweep>/.mlflow/mlflow.db``: in the sweep folder, in a hidden folder that collection
    and the other readers of a sweep pass over."""
    return f"sqlite:///{Path(sweep_dir).resolve() / '.mlflow' / 'mlflow.db'}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside its file, in ``<file name>-artifacts/`` (MLflow's
    default is ./mlruns, wherever the command runs); other stores keep their own default."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///") :]).resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    return (database.parent / f"{database.stem}-artifacts").as_uri()


def export_sweep(
    sweep_dir: str | Path,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    collection_dir: str | Path | None = None,
    records: Sequence[RunRecord] | None = None,
) -> dict[str, str]:
    """Record every run folder of ``sweep_dir`` in the MLflow ``experiment`` (default: the last two parts
    of the sweep folder's path) of ``tracking_uri`` (default: :func:`default_tracking_uri`). Returns
    ``{run folder (relative): MLflow run id}``. Raises ``ImportError`` (with :data:`INSTALL_HINT`) when
    mlflow is missing. ``records``: the sweep's run folders as collection read them (else read here)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    sweep_dir = Path(sweep_dir)
    tracking_uri = tracking_uri or default_tracking_uri(sweep_dir)
    artifacts = _artifact_location(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    name = experiment or "/".join(sweep_dir.resolve().parts[-2:])
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    experiment_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(name, artifact_location=artifacts)
    )
    existing = _runs_by_folder(client, experiment_id)
    parent = None
    if collection_dir is not None:
        parent = _export_collection(client, experiment_id, existing.get("collection"), Path(collection_dir))
    exported = {}
    if records is None:
        records = [read_run(run_dir) for run_dir in find_run_dirs(sweep_dir)]
    for record in records:
        key = record.run_dir.relative_to(sweep_dir).as_posix()
        exported[key] = _export_run(client, experiment_id, existing.get(key), record, key, parent)
    log.info("%d runs of %s -> MLflow experiment %r at %s", len(exported), sweep_dir, name, tracking_uri)
    return exported


def _runs_by_folder(client, experiment_id: str) -> dict[str, Any]:
    """The experiment's active MLflow runs by their ``neuromod.run_dir`` tag."""
    runs: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(RUN_TAG)
            if key is not None:
                runs[key] = run
        token = page.token
        if not token:
            return runs


def _start_ms(record: RunRecord) -> int:
    """When the run started (its summary's ``started_at``, else its folder's time), in ms: fixed for a
    folder, so metric rows exported twice are the same rows."""
    started = (record.summary or {}).get("started_at")
    if started is None:
        started = record.run_dir.stat().st_mtime
    return int(float(started) * 1000)


def _export_run(client, experiment_id: str, run, record: RunRecord, key: str, parent: str | None) -> str:
    from mlflow.entities import Param, RunTag

    params = {name: _param_text(value) for name, value in sorted((record.config or {}).items())}
    if run is not None and any(run.data.params.get(n, v) != v for n, v in params.items()):
        log.info("%s: settings changed since the last export: exported afresh", key)
        client.delete_run(run.info.run_id)
        run = None
    start = _start_ms(record)
    tags = {
        RUN_TAG: key,
        KIND_TAG: "run",
        "neuromod.status": record.status,
        "neuromod.error": (record.reason or "")[:5000],
        "mlflow.runName": key,
    }
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    if run is None:
        run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=key)
    run_id = run.info.run_id
    known = run.data.params if hasattr(run, "data") else {}
    new_params = [Param(n, v) for n, v in params.items() if n not in known]
    metrics = _metrics(record, start)
    tag_list = [RunTag(n, v) for n, v in tags.items()]
    for index in range(0, max(len(new_params), len(metrics), 1), _BATCH):
        client.log_batch(
            run_id,
            metrics=metrics[index : index + _BATCH],
            params=new_params[index : index + _BATCH],
            tags=tag_list if index == 0 else [],
        )
    _log_files(client, run_id, record.run_dir, RUN_ARTIFACTS)
    if (record.run_dir / FIGURES).is_dir():
        client.log_artifacts(run_id, str(record.run_dir / FIGURES), FIGURES)
    status = STATUSES.get(record.status, "FAILED")
    if status == "RUNNING":
        client.update_run(run_id, status=status)
    else:
        wall = (record.summary or {}).get("wall_time_s") or 0.0
        client.set_terminated(run_id, status, end_time=start + int(float(wall) * 1000))
    return run_id


def _metrics(record: RunRecord, start: int) -> list:
    """metrics.csv as metric history (timestamps from its ``wall_time_s``), then the final metrics that
    are not columns of it (test set, analyses) at the run's last step."""
    from mlflow.entities import Metric

    history: dict[str, Any] = {}
    path = record.run_dir / METRICS
    if path.is_file():
        try:
            history = read_metrics(path)
        except (OSError, ValueError) as error:
            log.warning("%s: metrics.csv unreadable (%s): no metric history", record.run_dir, error)
    metrics = []
    steps = history.get("step", [])
    times = history.get("wall_time_s", [0.0] * len(steps))
    for name, values in history.items():
        if name in ("step", "wall_time_s"):
            continue
        for step, seconds, value in zip(steps, times, values, strict=True):
            if math.isfinite(value):
                stamp = start + int(1000 * (seconds if math.isfinite(seconds) else 0.0))
                metrics.append(Metric(name, float(value), stamp, int(step)))
    last = int(record.steps or (steps[-1] if len(steps) else 0))
    end = start + int(1000 * float((record.summary or {}).get("wall_time_s") or 0.0))
    for name, value in (record.final or {}).items():
        if name in history or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            metrics.append(Metric(name, float(value), end, last))
    return metrics


def _param_text(value: Any) -> str:
    return str(value)[:_MAX_PARAM]


def _log_files(client, run_id: str, folder: Path, names: Iterable[str], under: str | None = None) -> None:
    for name in names:
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name), under)


def _export_collection(client, experiment_id: str, run, collection_dir: Path) -> str:
    """The parent run ``collection``: the collection's tables as artifacts."""
    if run is None:
        tags = {RUN_TAG: "collection", KIND_TAG: "collection", "mlflow.runName": "collection"}
        run = client.create_run(experiment_id, start_time=int(time.time() * 1000), tags=tags)
    run_id = run.info.run_id
    client.set_tag(run_id, "neuromod.collection_dir", str(collection_dir.resolve()))
    _log_files(client, run_id, collection_dir, COLLECTION_ARTIFACTS)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.export",
        description="Record every run folder of a sweep in an MLflow experiment (re-exporting updates).",
    )
    parser.add_argument("sweep_dir", nargs="?", help="sweep folder (default: --path in multirun_paths.txt)")
    parser.add_argument("--path", type=int, default=0, help="N-th newest sweep of --paths-file (0: newest)")
    parser.add_argument("--paths-file", default="multirun_paths.txt", help="default: multirun_paths.txt")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///<sweep>/.mlflow/mlflow.db)"
    )
    parser.add_argument(
        "--experiment", help="MLflow experiment name (default: <date>/<time> of the sweep folder)"
    )
    parser.add_argument("--collection", help="a collection folder of the sweep: its tables as artifacts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sweep_dir = resolve_sweep_dir(args.path, args.sweep_dir, args.paths_file)
        if args.collection is not None and not Path(args.collection).is_dir():
            raise CollectionError(f"--collection {args.collection}: no such folder")
        export_sweep(sweep_dir, args.tracking_uri, args.experiment, args.collection)
    except (CollectionError, ImportError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
