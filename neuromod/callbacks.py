"""Hydra callbacks: sweep bookkeeping for ``collect_results.py``.

The file itself (``multirun_paths.txt``) is read and written by :mod:`neuromod.results.sweep_paths`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from neuromod.results.sweep_paths import record_sweep_path

log = logging.getLogger(__name__)


class RecordSweepPath(Callback):
    """Records each multirun's sweep folder (absolute) in ``paths_file``, once per sweep.

    ``on_multirun_start`` runs once, in the process that launches the sweep, whatever launcher then runs
    the jobs (joblib workers, submitit/SLURM processes) and whichever ``hydra.sweep.dir`` was chosen. A
    relative ``paths_file`` or ``hydra.sweep.dir`` is taken from the directory the sweep was launched in.
    """

    def __init__(self, paths_file: str = "multirun_paths.txt"):
        self.paths_file = str(paths_file)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launch_dir = Path(str(config.hydra.runtime.cwd))
        paths_file = Path(self.paths_file)
        paths_file = paths_file if paths_file.is_absolute() else launch_dir / paths_file
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir = Path(os.path.abspath(sweep_dir if sweep_dir.is_absolute() else launch_dir / sweep_dir))
        if record_sweep_path(paths_file, sweep_dir):
            log.info("sweep folder %s recorded in %s", sweep_dir, paths_file)
