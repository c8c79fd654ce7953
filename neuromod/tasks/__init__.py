"""Tasks: each builds aligned batches of trials from a seeded ``torch.Generator``."""

from neuromod.tasks.base import Batch, Task
from neuromod.tasks.cue_go import CueGo
from neuromod.tasks.memorize_report import MemorizeReport
from neuromod.tasks.time_person import TimePerson

__all__ = ["Batch", "CueGo", "MemorizeReport", "Task", "TimePerson"]
