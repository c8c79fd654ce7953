"""Analyses of a trained network's activity, added to ``summary.json``'s ``final`` metrics."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from torch import nn

from neuromod.tasks.base import Batch, Task


def run_analysis(
    model: nn.Module, task: Task, eval_batch: Batch, result: Any, cfg: DictConfig
) -> dict[str, Any]:
    """Scalar results of the end-of-run analyses on the evaluation set (none registered yet)."""
    return {}
