"""Hydra callbacks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class RecordSweepPath(Callback):
    """Appends each multirun's sweep folder (absolute) to ``paths_file``, once per sweep.

    A relative ``paths_file`` is taken from the directory the sweep was launched in. ``on_multirun_start``
    runs in the launching process only, whatever launcher runs the jobs.
    """

    def __init__(self, paths_file: str = "multirun_paths.txt"):
        self.paths_file = Path(paths_file)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launch_dir = Path(str(config.hydra.runtime.cwd))
        paths_file = self.paths_file if self.paths_file.is_absolute() else launch_dir / self.paths_file
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir = sweep_dir if sweep_dir.is_absolute() else launch_dir / sweep_dir
        self.paths_file = paths_file
        existing = paths_file.read_text().splitlines() if paths_file.exists() else []
        if existing and existing[-1].strip() == str(sweep_dir):
            return  # re-launching the same sweep (resume) does not add it again
        with open(self.paths_file, "a") as handle:
            handle.write(f"{sweep_dir}\n")
        log.info("sweep folder recorded in %s", self.paths_file)
