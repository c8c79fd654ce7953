"""The figures of a run, drawn by an observer the entry point hands to the run
(:class:`~neuromod.observer.RunObserver`): the analysis figures once ``analysis.json`` is written, the
run's figures once it has finished. ``analysis.figures=false`` draws none. A figure must never cost the
result: a failure to draw is logged, and the run goes on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neuromod.io import WriteError
from neuromod.observer import RunObserver
from neuromod.runfolder import files

log = logging.getLogger(__name__)


class Figures(RunObserver):
    """Draws a run's figures into ``run_dir/figures`` (``enabled``: ``analysis.figures``)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def on_analysis(self, results: dict[str, Any], run_dir: Path) -> None:
        if not self.enabled:
            return
        try:
            from neuromod.plotting.analysis_figures import draw_analysis

            draw_analysis(results, Path(run_dir) / files.FIGURES)
        except WriteError:
            raise  # a file that cannot be written ends the run, as any other
        except Exception:
            log.exception("could not draw the analysis figures")

    def on_run_end(self, summary: dict[str, Any], run_dir: Path) -> None:
        if not self.enabled or summary.get("status") != files.COMPLETED:
            return
        try:
            from neuromod.plotting import plot_run

            plot_run(run_dir)
        except Exception:
            log.exception("could not draw the figures")


def figures(cfg: Any, run_dir: Path) -> Figures:
    """The observer factory of a run's figures (``analysis.figures``)."""
    from omegaconf import OmegaConf

    return Figures(bool(OmegaConf.select(cfg, "analysis.figures", default=True)))
