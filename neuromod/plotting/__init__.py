"""Figures, drawn from the files runs and sweeps leave behind (never from live objects).

- one run: :mod:`.run_figures` (:func:`plot_run`; command line ``python -m neuromod.plot <run_dir>``),
  reading the run folder with :mod:`.run_files`; :mod:`.transfer_function` draws the neurons' transfer
  function (activation parameters, curves, animation); :mod:`.style` holds shared colours and helpers;
- a collected sweep: :mod:`.sweeps` (the plots), :mod:`.collection` (which plots a collection gets;
  ``collect_results.py``);
- a hyperparameter study: :mod:`.study` (``trials.csv``).
"""

from neuromod.plotting.run_figures import plot_run
from neuromod.plotting.run_files import CorruptRunError, NotARunError, load_run

__all__ = ["CorruptRunError", "NotARunError", "load_run", "plot_run"]
