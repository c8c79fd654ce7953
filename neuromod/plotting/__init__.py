"""Figures: per-run figures drawn from a run folder's files (``python -m neuromod.plot <run_dir>``)."""

from neuromod.plotting.run_figures import plot_run
from neuromod.plotting.run_files import CorruptRunError, NotARunError, load_run

__all__ = ["CorruptRunError", "NotARunError", "load_run", "plot_run"]
