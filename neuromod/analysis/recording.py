"""What the population analyses look at: a network's internal signals over a set of fresh trials.

The trials are drawn from their own seed (none was seen in training, validation or test) with one delay,
the task's longest training delay, so every trial's periods fall on the same steps. The signals:

- ``rates``: the neurons' rates (the hidden state ``h`` of the lstm and rnn controls);
- ``parameters``: the activation parameters a modulator (or ``static_learned``) may change (g / theta /
  alpha, n / s), per neuron;
- ``modulator_h``, ``modulator_c``: every neuron's modulator LSTM state;
- ``cell``: the lstm control's cell state.

A network records only what it has: the controls have no parameters and no modulator (said in ``notes``).
It also gives the delay-period map of its state (:func:`delay_map`) for the fixed-point analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from neuromod.models.baselines import LSTMNetwork, RNNNetwork
from neuromod.models.hebbian import HebbianRNN
from neuromod.tasks.base import Batch, Task

#: Seed offset of the analysis trials (see :mod:`neuromod.experiment.build` for the others).
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


def _modulated(model: torch.nn.Module) -> bool:
    return getattr(model, "neurons", None) is not None


@torch.no_grad()
def record(model: torch.nn.Module, task: Task, batch: Batch) -> Recording:
    """Run ``model`` on ``batch`` (evaluation mode, on the batch's device) and collect its signals (on
    the CPU)."""
    was_training = model.training
    model.eval()
    out = model(batch.inputs, record=True)
    model.train(was_training)
    T, B = out.activity.shape[:2]
    signals = {"rates": out.activity.float()}
    per_neuron = {"rates": out.activity.float()}
    notes: list[str] = []
    if _modulated(model):
        neurons = model.neurons
        free = neurons.activation.free_mask
        if out.params is not None and bool(free.any()):
            params = out.params[..., free].float()  # [T, B, N, Pf]
            names = [n for n, f in zip(neurons.activation.param_names, free.tolist(), strict=True) if f]
            signals["parameters"] = params.reshape(T, B, -1)
            for i, name in enumerate(names):
                per_neuron[f"parameter_{name}"] = params[..., i]
            if neurons.modulator is None:
                notes.append("activation parameters are learned but constant in time (no modulator)")
        else:
            notes.append("no parameter changes: the activation function is fixed")
        if neurons.modulator is not None:
            h, c = neurons.modulator_states(out.drive, batch.inputs, out.activity)  # [T, B, N, H]
            signals["modulator_h"], signals["modulator_c"] = h.reshape(T, B, -1), c.reshape(T, B, -1)
        else:
            notes.append("no modulator: the neurons have no state of their own")
    elif isinstance(model, LSTMNetwork):
        signals["cell"] = out.gates["cell"].float()
        notes.append("lstm control: rates are the hidden state h; no activation parameters or modulator")
    else:
        notes.append(
            f"{type(model).__name__}: rates are the hidden state; no activation parameters or modulator"
        )
    periods = {
        name: (int(span[0, 0]), int(span[0, 1]))
        for name, span in batch.periods.items()
        if bool((span == span[:1]).all())
    }
    contents = {name: value.cpu().numpy() for name, value in batch.content.items()}
    signals = {name: value.cpu() for name, value in signals.items()}
    per_neuron = {name: value.cpu() for name, value in per_neuron.items()}
    return Recording(batch, signals, per_neuron, contents, periods, out.outputs, notes)


def delay_map(
    model: torch.nn.Module, recording: Recording
) -> tuple[Callable[[Tensor], Tensor], Tensor] | None:
    """The network's state map with no input (the delay period) as ``step(states [M, K, D])`` over K
    independent systems, and the states ``[T, B, K, D]`` the recorded trials passed through. None for a
    network whose neurons have no state (``af=fixed``, ``static_learned``), for rnn_hebbian (its fast
    weights are state the map leaves out) and for an unknown network.

    - neuromodulated networks: every neuron's modulator is one system (its neurons are not connected to
      each other): state ``(h, c)``, driven by the neuron's constant drive at zero input;
    - lstm control: one system, state ``(h, c)``;
    - rnn control: one system, state ``h``.
    """
    T, B = recording.signals["rates"].shape[:2]
    if isinstance(model, HebbianRNN):  # its fast weights are state too; not modelled here
        return None
    if _modulated(model):
        neurons = model.neurons
        if neurons.modulator is None:
            return None
        D = recording.batch.inputs.shape[-1]
        with torch.no_grad():
            dtype = next(model.parameters()).dtype
            drive = model.drive(torch.zeros(1, 1, D, dtype=dtype))[0, 0]  # [N]
        H = neurons.modulator.hidden_size
        N = drive.shape[0]

        def step(states: Tensor) -> Tensor:
            M = states.shape[0]
            h, c = neurons.modulator_step(
                states[..., :H], states[..., H:], drive.expand(M, N), states.new_zeros(M, D)
            )
            return torch.cat([h, c], dim=-1)

        h = recording.signals["modulator_h"].reshape(T, B, N, H)
        c = recording.signals["modulator_c"].reshape(T, B, N, H)
        return step, torch.cat([h, c], dim=-1)
    if isinstance(model, LSTMNetwork):
        lstm = model.lstm
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        H = lstm.hidden_size

        def step(states: Tensor) -> Tensor:
            flat = states.reshape(-1, 2 * H)
            zero = flat.new_zeros(flat.shape[0], lstm.input_size)
            h, c = torch.lstm_cell(zero, (flat[:, :H], flat[:, H:]), *weights)
            return torch.cat([h, c], dim=-1).reshape(states.shape)

        states = torch.cat([recording.signals["rates"], recording.signals["cell"]], dim=-1)
        return step, states[:, :, None, :]
    if isinstance(model, RNNNetwork):
        rnn = model.rnn

        def step(states: Tensor) -> Tensor:
            return torch.relu(states @ rnn.weight_hh_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0)

        return step, recording.signals["rates"][:, :, None, :]
    return None
