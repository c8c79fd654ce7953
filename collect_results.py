"""Aggregate a sweep: `python collect_results.py` (newest sweep), `path=1` (the one before), `dir=FOLDER`.

Writes results.csv, failed_runs.csv, summary.csv, summary.tex and plots to collection_outputs/<date>/<time>/
(config/collect.yaml; docs/sweeps.md); with mlflow=true also records the sweep in MLflow (docs/trackers.md).
The work is done by :func:`neuromod.api.collect_sweep` (tables: :mod:`neuromod.results.collect`, figures:
:mod:`neuromod.plotting.sweeps`).
"""

import importlib.util
import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("neuromod")


@hydra.main(version_base="1.3", config_path="config", config_name="collect")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from neuromod.api import collect_sweep
    from neuromod.results.sweep_paths import CollectionError, resolve_sweep_dir

    runtime = HydraConfig.get().runtime
    try:
        sweep_dir = resolve_sweep_dir(cfg.path, cfg.dir, cfg.paths_file, base_dir=runtime.cwd)
    except CollectionError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)
    if cfg.mlflow and importlib.util.find_spec("mlflow") is None:
        from neuromod.export import INSTALL_HINT

        print(f"Error: mlflow=true: {INSTALL_HINT} (or leave mlflow=false)", file=sys.stderr)
        sys.exit(2)
    result = collect_sweep(
        sweep_dir,
        runtime.output_dir,
        max_runs_to_process=int(cfg.max_runs_to_process),
        metric=cfg.metric,
        table_metrics=list(cfg.table_metrics),
        ignore=list(cfg.ignore),
        progress=bool(cfg.progress),
        plots=bool(cfg.plots),
        stale_after_s=float(cfg.stale_after_s),
        max_table_rows=int(cfg.max_table_rows),
    )
    if cfg.mlflow:
        from neuromod.export import export_sweep

        # the records collection read: the sweep is read once
        export_sweep(
            sweep_dir, cfg.mlflow_tracking_uri, cfg.mlflow_experiment, result.out_dir, records=result.records
        )
    done = int((result.results["status"] == "completed").sum()) if len(result.results) else 0
    stale = int((result.failed["status"] == "stale").sum()) if len(result.failed) else 0
    log.info(
        "collected %s: %d runs (%d completed, %d in failed_runs.csv%s) -> %s",
        sweep_dir,
        result.n_runs,
        done,
        len(result.failed),
        f", {stale} stale: said running, but silent or gone" if stale else "",
        result.out_dir,
    )


if __name__ == "__main__":
    main()
