"""Hydra callbacks: sweep bookkeeping for ``collect_results.py``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from neuromod import io

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` (two sweeps started at once must not lose a line).

    The lock is taken on the folder itself, so no lock file is left behind; where ``fcntl`` is missing
    (Windows) the update runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_sweep_paths(paths_file: str | Path) -> list[str]:
    """The sweep folders listed in ``paths_file``, oldest first (blank lines ignored; [] if no file)."""
    try:
        text = Path(paths_file).read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def record_sweep_path(paths_file: str | Path, sweep_dir: str | Path) -> bool:
    """Make ``sweep_dir`` the newest (last) line of ``paths_file``, listed once; True if the file changed.

    Re-launching a sweep into the folder that is already last (resuming it) leaves the file as it is; a
    folder listed further up moves to the end, so ``path=0`` is always the sweep launched last.
    """
    paths_file = Path(paths_file)
    sweep = str(sweep_dir)
    paths_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(paths_file.parent):
        lines = read_sweep_paths(paths_file)
        if lines and lines[-1] == sweep:
            return False
        if sweep in lines:
            kept = [line for line in lines if line != sweep]
            io.write_text(paths_file, "".join(f"{line}\n" for line in [*kept, sweep]))
        else:
            # Appending leaves the lines already there untouched (a missing final newline is repaired).
            text = paths_file.read_text() if paths_file.exists() else ""
            with open(paths_file, "a") as handle:
                handle.write(("\n" if text and not text.endswith("\n") else "") + f"{sweep}\n")
    return True


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
