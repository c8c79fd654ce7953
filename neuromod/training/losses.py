"""Losses: which one a run trains with (``training.loss``) and how it is computed."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task

#: Values of ``training.loss``.
LOSSES = ("auto", "mse", "cross_entropy", "task")


def resolve_loss(kind: str, task: Task) -> str:
    """``auto`` -> the task's ``default_loss``: ``cross_entropy`` for a class answer, ``mse`` otherwise,
    ``task`` for tasks with a loss of their own (``Task.loss``)."""
    validation.choice("training.loss", kind, LOSSES)
    if kind == "auto":
        return task.default_loss
    if kind == "task" and not task.has_own_loss:
        raise ValueError(f"training.loss=task: task '{task.name}' has no loss of its own (use auto, mse)")
    if kind == "cross_entropy" and task.answer_type != "class":
        raise ValueError(
            f"training.loss=cross_entropy needs a task with a class answer; task '{task.name}' "
            f"answers with a {task.answer_type} value (use training.loss=mse)"
        )
    return kind


def compute_loss(
    outputs: Tensor, batch: Batch, kind: str, task: Task | None = None, activity: Tensor | None = None
) -> Tensor:
    """``mse``: squared error over the masked steps and all channels. ``cross_entropy``: at the query
    step, over every answer channel. ``task``: the task's own loss (which may use the network's
    ``activity [T, B, N]``, e.g. for an activity penalty)."""
    if kind == "task":
        return task.loss(outputs, batch, activity)
    if kind == "mse":
        squared = ((outputs - batch.targets) ** 2).mean(dim=-1)  # [T, B]
        return (squared * batch.loss_weight).sum() / batch.loss_weight.sum().clamp(min=1)
    # over every answer channel, as accuracy is scored (Task.predict)
    return F.cross_entropy(batch.at_query(outputs), batch.answer)
