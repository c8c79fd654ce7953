"""What the population analyses look at: a network's internal signals over a set of fresh trials.

The trials are drawn from their own seed (none was seen in training, validation or test) with one delay,
the task's longest training delay, so every trial's periods fall on the same steps. The signals:

- ``rates``: the neurons' rates (the hidden state ``h`` of the lstm and rnn controls);
- ``parameters``: the activation parameters a modulator (or ``static_learned``) may change (g / theta /
  alpha, n / s), per neuron;
- ``modulator_h``, ``modulator_c``: every neuron's modulator LSTM state;
- ``cell``: the lstm control's cell state.

A network records only what it has: the controls have no parameters and no modulator (said in ``notes``).
It also gives the delay-period map of its state (:func:`delay_map`) for the fixed-point analysis. Both come
from the network itself (:class:`~neuromod.models.protocol.AnalysedNetwork`), so this module knows no
network class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from neuromod.models.protocol import DelayMap, require
from neuromod.tasks.base import Batch, Task

#: Seed offset of the analysis trials (see :mod:`neuromod.runner.build` for the others).
ANALYSIS_SEED_OFFSET = 3_000_017


@dataclass
class Recording:
    """Signals ``name -> [T, B, F]`` (float32) over trials that share their periods."""

    batch: Batch
    signals: dict[str, Tensor]
    #: Per-neuron views for the selectivity map: name -> ``[T, B, N]``.
    per_neuron: dict[str, Tensor]
    contents: dict[str, np.ndarray]
    periods: dict[str, tuple[int, int]]
    outputs: Tensor
    notes: list[str] = field(default_factory=list)

    @property
    def delay_end(self) -> int | None:
        """The last step of the delay (None when the trials have no delay)."""
        start, stop = self.periods.get("delay", (0, 0))
        return stop - 1 if stop > start else None


def analysis_batch(task: Task, n_trials: int, seed: int, device: torch.device | str = "cpu") -> Batch:
    """``n_trials`` fresh trials, all with the task's longest training delay, from their own seed, with
    test contents (never shown in training)."""
    generator = torch.Generator(device=device).manual_seed(int(seed) + ANALYSIS_SEED_OFFSET)
    delays = torch.full((n_trials,), int(task.max_delay), dtype=torch.long, device=device)
    return task.sample(n_trials, generator, delays, split="test")


@torch.no_grad()
def record(model: torch.nn.Module, task: Task, batch: Batch) -> Recording:
    """Run ``model`` on ``batch`` (evaluation mode, on the batch's device) and collect its signals (on
    the CPU)."""
    network = require(model, "the population analyses")
    was_training = model.training
    model.eval()
    out = model(batch.inputs, record=True)
    model.train(was_training)
    found = network.recorded_signals(out, batch.inputs)
    signals, per_neuron, notes = found.signals, found.per_neuron, found.notes
    periods = {
        name: (int(span[0, 0]), int(span[0, 1]))
        for name, span in batch.periods.items()
        if bool((span == span[:1]).all())
    }
    contents = {name: value.cpu().numpy() for name, value in batch.content.items()}
    signals = {name: value.cpu() for name, value in signals.items()}
    per_neuron = {name: value.cpu() for name, value in per_neuron.items()}
    return Recording(batch, signals, per_neuron, contents, periods, out.outputs, notes)


def delay_map(model: torch.nn.Module, recording: Recording) -> DelayMap | None:
    """The network's state map with no input (the delay period) as ``step(states [M, K, D])`` over K
    independent systems, and the states ``[T, B, K, D]`` the recorded trials passed through. None for a
    network whose neurons have no state (``af=fixed``, ``static_learned``) and for rnn_hebbian (its fast
    weights are state the map leaves out).

    - neuromodulated networks: every neuron's modulator is one system (its neurons are not connected to
      each other): state ``(h, c)``, driven by the neuron's constant drive at zero input;
    - lstm control: one system, state ``(h, c)``;
    - rnn control: one system, state ``h``.
    """
    network = require(model, "the fixed-point analysis")
    return network.delay_map(recording.signals, recording.batch.inputs)
