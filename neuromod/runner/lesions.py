"""Causal lesions of a trained network, scored on the held-out test trials (no retraining).

Each lesion cuts one place where a network could hold the cued content over the delay and asks whether
the answer survives (docs/lesions.md). A network lists the lesions it can take (``lesions``) and runs a
pass under one (``lesioned(inputs, name, steps)``); a lesion it does not list does not apply to it and
is not scored. The steps come from the task's periods:

- ``modulator_clamp``, ``recurrent_cut``: the delay (``periods["delay"]``);
- ``modulator_blind``: the cue and the delay (``periods["cue"]`` start to the delay's end);
- ``parameter_freeze``: from the cue's first step (``periods["cue"]``) to the trial's end.

The metric of a lesion is ``lesion_<name>_test_accuracy`` (the trials whose delay lies in the training
range, as ``test_accuracy``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuromod.tasks.base import Batch, Task


def lesion_steps(batch: Batch) -> dict[str, Tensor]:
    """The steps ``[T, B]`` (bool) of each lesion the batch's periods define."""
    time = torch.arange(batch.n_steps, device=batch.inputs.device)[:, None]  # [T, 1]
    steps: dict[str, Tensor] = {}
    delay = batch.periods.get("delay")
    if delay is not None:
        in_delay = (time >= delay[:, 0]) & (time < delay[:, 1])
        steps["modulator_clamp"] = steps["recurrent_cut"] = in_delay
    cue = batch.periods.get("cue")
    if cue is not None:
        steps["parameter_freeze"] = time >= cue[:, 0]
        if delay is not None:
            steps["modulator_blind"] = (time >= cue[:, 0]) & (time < delay[:, 1])
    return steps


@torch.no_grad()
def lesion_metrics(model: nn.Module, task: Task, batch: Batch, chunk: int | None = None) -> dict[str, float]:
    """``lesion_<name>_test_accuracy`` for every lesion the network can take and the task's periods
    define, on ``batch`` (the test set), ``chunk`` trials per pass (None: all at once)."""
    names = tuple(getattr(model, "lesions", ()))
    spans = lesion_steps(batch)
    metrics: dict[str, float] = {}
    was_training = model.training
    model.eval()
    delays = batch.delay
    in_range = (delays >= task.min_delay) & (delays <= task.max_delay)
    size = batch.batch_size if chunk is None else max(int(chunk), 1)
    try:
        for name in names:
            if name not in spans:
                continue
            outputs = torch.cat(
                [
                    model.lesioned(batch.inputs[:, s : s + size], name, spans[name][:, s : s + size]).outputs
                    for s in range(0, batch.batch_size, size)
                ],
                dim=1,
            )
            correct = task.correct(outputs, batch).float()
            pool = correct[in_range] if bool(in_range.any()) else correct
            metrics[f"lesion_{name}_test_accuracy"] = pool.mean().item()
    finally:
        model.train(was_training)
    return metrics
