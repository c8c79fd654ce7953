"""Tasks: each builds aligned batches of trials from a seeded ``torch.Generator``."""

from neuromod.tasks.base import Batch, Task
from neuromod.tasks.cue_go import CueGo
from neuromod.tasks.memorize_report import MemorizeReport
from neuromod.tasks.neurogym_task import NeuroGymTask
from neuromod.tasks.orhan_ma import (
    ChangeDetection,
    Comparison,
    DelayedEstimation,
    GatedDelayedEstimation,
    OrhanMaTask,
    Sine,
    TwoAlternativeForcedChoice,
)
from neuromod.tasks.time_person import TimePerson

__all__ = [
    "Batch",
    "ChangeDetection",
    "Comparison",
    "CueGo",
    "DelayedEstimation",
    "GatedDelayedEstimation",
    "MemorizeReport",
    "NeuroGymTask",
    "OrhanMaTask",
    "Sine",
    "Task",
    "TimePerson",
    "TwoAlternativeForcedChoice",
]
