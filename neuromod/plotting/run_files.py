"""Reading a run folder for figures: ``summary.json``, ``metrics.csv`` and ``trials.npz``, checked."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuromod.results.runs import read_metrics, status_text
from neuromod.runfolder.folder import RunFolder

#: Arrays every ``trials.npz`` must hold, and the axis layout figures rely on.
REQUIRED_TRIAL_ARRAYS = ("inputs", "targets", "outputs", "query_step", "delay", "input_names", "output_names")


class NotARunError(ValueError):
    """The folder does not hold the files of a (completed) neuromod run, or they cannot be read."""


class CorruptRunError(NotARunError):
    """A run file exists but is truncated, corrupt or inconsistent."""


@dataclass
class RunFiles:
    """What the figures of one run are drawn from."""

    path: Path
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]  # column -> values over logged steps (may be empty)
    trials: dict[str, np.ndarray]

    @property
    def config(self) -> dict[str, Any]:
        return self.summary.get("config") or {}

    @property
    def final(self) -> dict[str, Any]:
        return self.summary.get("final") or {}


def load_trials(path: Path) -> dict[str, np.ndarray]:
    """Every array of ``trials.npz``, read in full (so a truncated file fails here, not mid-figure)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def check_trials(trials: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` naming what is missing or inconsistent in the ``trials.npz`` arrays."""
    missing = [key for key in REQUIRED_TRIAL_ARRAYS if key not in trials]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    inputs = trials["inputs"]
    if inputs.ndim != 3 or inputs.shape[1] == 0:
        raise ValueError(f"inputs must have shape [T, B, D] with B > 0, got {inputs.shape}")
    T, B = inputs.shape[:2]
    for key in ("targets", "outputs", "activity", "params", "drive"):
        if key in trials and trials[key].shape[:2] != (T, B):
            raise ValueError(f"{key} has shape {trials[key].shape}, expected [{T}, {B}, ...]")
    for key in ("query_step", "delay"):
        if trials[key].shape != (B,):
            raise ValueError(f"{key} has shape {trials[key].shape}, expected ({B},)")
    if trials["query_step"].min() < 0 or trials["query_step"].max() >= T:
        raise ValueError("query_step lies outside the trial")
    if len(trials["input_names"]) != inputs.shape[2]:
        raise ValueError(f"{len(trials['input_names'])} input names for {inputs.shape[2]} input channels")


def load_run(run_dir: str | Path) -> RunFiles:
    """The checked files of a completed run; :class:`NotARunError` (one line) otherwise."""
    path = Path(run_dir)
    if not path.is_dir():
        raise NotARunError(f"{path} is not a directory")
    folder = RunFolder(path, create=False)
    if not folder.summary_path.is_file():
        raise NotARunError(f"{path} is not a neuromod run folder (no summary.json)")
    try:
        summary = folder.read_summary()
    except (OSError, ValueError) as error:
        raise CorruptRunError(f"{folder.summary_path} is unreadable: {error}") from None
    status = summary.get("status")
    trials_path, metrics_path = folder.trials_path, folder.metrics_path
    if status != "completed" and not trials_path.is_file():
        # A run that says running but whose process is gone or silent is named stale, with for how long.
        text = status_text(summary, path)
        raise NotARunError(f"{path}: the run's status is '{text}', not completed; there is nothing to plot")
    for needed in (metrics_path, trials_path):
        if not needed.is_file():
            raise CorruptRunError(f"{path} is an incomplete run folder: {needed.name} is missing")
    try:
        metrics = read_metrics(metrics_path)
    except (OSError, ValueError, csv.Error) as error:
        raise CorruptRunError(f"{metrics_path} is unreadable: {error}") from None
    try:
        trials = load_trials(trials_path)
        check_trials(trials)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CorruptRunError(f"{trials_path} is unreadable (truncated or corrupt?): {message}") from None
    return RunFiles(path=path, summary=summary, metrics=metrics, trials=trials)
