"""Figures: per-run figures drawn from a run folder's files."""

from neuromod.plotting.run_figures import NotARunError, plot_run

__all__ = ["NotARunError", "plot_run"]
