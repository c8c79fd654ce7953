"""Trackers: a run's progress also written for the tools people already use (``logger=tensorboard``).

A tracker is a :class:`~neuromod.training.loop.TrainingCallback` (it sees every evaluation) that also
hears of the end of the run (:meth:`Tracker.on_run_end`, with the summary and the figures). The run folder
stays the record; a tracker only writes beside it, and its failures never cost the run.
"""

from neuromod.trackers.base import Tracker, hparam_values, open_tracker

__all__ = ["Tracker", "hparam_values", "open_tracker"]
