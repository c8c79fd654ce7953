"""A hyperparameter study's results: the Hydra callback that writes them when a study ends, and the command
line that writes them again for any sweep folder (e.g. an interrupted study).

    python -m neuromod.study [SWEEP_DIR] [--no-figures]

What is written (``trials.csv``, ``best_params.yaml``, the figures) is :mod:`neuromod.results.tuning` and
:mod:`neuromod.plotting.study`; see docs/tuning.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from neuromod.plotting.study import draw_study
from neuromod.results.runs import job_config, read_jobs
from neuromod.results.sweep_paths import read_sweep_paths
from neuromod.results.tuning import keys_from_jobs, searched_keys, write_study_results

log = logging.getLogger(__name__)


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a core dependency
    Callback = object  # type: ignore[misc,assignment]


class WriteStudyResults(Callback):
    """Hydra callback: at the end of a multirun, writes trials.csv, best_params.yaml and the figures.

    Runs in the launching process whatever the launcher. A problem here is logged, never raised: the
    trials themselves are safe in their job folders and ``python -m neuromod.study DIR`` redoes
    this.
    """

    def __init__(self, figures: bool = True):
        self.figures = figures

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_absolute():
            sweep_dir = Path(str(config.hydra.runtime.cwd)) / sweep_dir
        try:
            write_study_results(
                sweep_dir, searched_keys(config), config.objective, draw_study if self.figures else None
            )
        except Exception:
            log.exception(
                "could not write the study's results (retry: python -m neuromod.study %s)", sweep_dir
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.study",
        description="Write trials.csv, best_params.yaml and the optimisation plots of a sweep folder.",
    )
    parser.add_argument("sweep_dir", nargs="?", help="sweep folder (default: newest in multirun_paths.txt)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.sweep_dir:
        sweep_dir = Path(args.sweep_dir)
    else:
        recorded = read_sweep_paths("multirun_paths.txt")
        if not recorded:
            print("Error: no sweep folder given and multirun_paths.txt lists none", file=sys.stderr)
            return 2
        sweep_dir = Path(recorded[-1])
    jobs = read_jobs(sweep_dir)
    if not jobs:
        print(f"Error: {sweep_dir} holds no job folder (no */.hydra/overrides.yaml)", file=sys.stderr)
        return 2
    objective = job_config(jobs[0].run_dir).get("objective")
    if objective is None:
        print(f"Error: {jobs[0].run_dir}/.hydra/config.yaml has no objective section", file=sys.stderr)
        return 2
    write_study_results(sweep_dir, keys_from_jobs(jobs), objective, None if args.no_figures else draw_study)
    return 0


if __name__ == "__main__":
    sys.exit(main())
