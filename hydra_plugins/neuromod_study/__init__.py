"""neuromod's resumable Optuna study sweeper (``hydra/sweeper=study``; docs/tuning.md)."""
