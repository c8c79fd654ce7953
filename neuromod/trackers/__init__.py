"""Trackers: a run's progress also written for the tools people already use (``logger=tensorboard``).

A tracker sees the start of training and every evaluation (through the trainer's ``on_log`` hooks) and
hears of the end of the run (:meth:`Tracker.on_run_end`, with the summary and the figures). The run folder
stays the record; a tracker only writes beside it, and its failures never cost the run.
"""

from neuromod.trackers.base import Tracker, hparam_values, open_tracker

__all__ = ["Tracker", "hparam_values", "open_tracker"]
