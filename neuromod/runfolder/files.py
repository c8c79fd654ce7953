"""The names of the files in a run folder and the statuses ``summary.json`` can hold: defined here once,
used by the run that writes a folder and by everything that reads one. Needs no torch."""

from __future__ import annotations

#: The run's own record: status, owner and heartbeat while it runs, settings, final metrics.
SUMMARY = "summary.json"
#: The trainer's state (model, optimiser, RNG, history) and the resolved config it was trained with.
CHECKPOINT = "checkpoint.pt"
#: One row per validation evaluation.
METRICS = "metrics.csv"
#: Arrays of the last validation evaluation's trials (inputs, targets, outputs, activation parameters).
TRIALS = "trials.npz"
#: The run's settings as a LaTeX table.
PARAMS_TABLE = "params.tex"
#: The population analyses (``analysis.dynamics`` or ``python -m neuromod.analyze``).
ANALYSIS = "analysis.json"
#: The figures' folder.
FIGURES = "figures"
#: Hydra's record of a launched job: the composed config, Hydra's own settings, the command line.
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = f"{HYDRA_DIR}/config.yaml"
HYDRA_SETTINGS = f"{HYDRA_DIR}/hydra.yaml"
HYDRA_OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"

# -- statuses -------------------------------------------------------------------------------------
#: Written by the run itself.
RUNNING, COMPLETED, DIVERGED, INTERRUPTED, FAILED = (
    "running",
    "completed",
    "diverged",
    "interrupted",
    "failed",
)
#: Said by a reader: a ``running`` summary whose process is gone or silent (killed).
STALE = "stale"
#: Said by a reader: a job folder without ``summary.json`` (never started training).
INCOMPLETE = "incomplete"
#: Said by a reader: files missing or corrupt.
UNREADABLE = "unreadable"
