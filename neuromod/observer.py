"""What a run tells the code that watches it: the observer interface, handed to
:func:`neuromod.runner.run.run` by the entry point.

A run builds nothing it reports to: trackers (``logger=...``), the end-of-run figures and the drawing of the
analyses are observers made by the caller's factories (``factory(cfg, run_dir) -> RunObserver``, called once
the run's objects are built). An observer writes beside the run folder; the folder stays the record. Needs
nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


class RunObserver:
    """Told of the training (its start and every evaluation), of the population analyses, of the run's end
    and of its close. Every method does nothing here; an observer overrides what it needs."""

    def on_fit_start(self, trainer) -> None:
        """Training starts (``trainer.step`` is above 0 for a resumed run)."""

    def on_evaluation(self, trainer, row: dict) -> None:
        """An evaluation was logged as ``row``; ``trainer.last_eval`` holds the network's whole output on
        the validation set."""

    def on_analysis(self, results: dict[str, Any], run_dir: Path) -> None:
        """The population analyses ran (``results``: what ``analysis.json`` holds, already written)."""

    def on_run_end(self, summary: dict[str, Any], run_dir: Path) -> None:
        """The run is finished: ``summary`` is what ``summary.json`` holds. Observers are told in the
        order they were handed over (the figures before a tracker that sends them on)."""

    def close(self) -> None:
        """Flush and release what the observer holds (called however the run ended)."""


#: Makes an observer for one run: ``factory(cfg, run_dir)``; a ConfigError (one line) when its settings
#: cannot be used, which fails the run as a bad setting does.
ObserverFactory = Callable[[Any, Path], RunObserver]
