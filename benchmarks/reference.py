"""A naive reference implementation of the neuromodulated networks, for the benchmarks and the tests.

It computes the same function as :class:`~neuromod.models.architectures.NeuromodulatedNetwork` the way
research code of this kind is usually written: a Python loop over time and, inside it, a loop over
neurons, each neuron stepping its own state through an ``nn.LSTMCell``, its own head and its own transfer
function. It is deliberately slow; neuromod itself never loops over neurons (see docs/performance.md).

The reference *shares* every parameter with the network it wraps (the ``LSTMCell``'s weights are the
modulator's ``nn.LSTM`` weights), so outputs and gradients of the two can be compared directly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuromod.models import ModelOutput, NeuromodulatedNetwork


class NaiveReference(nn.Module):
    """``model``'s computation with a loop over neurons. ``forward(inputs [T, B, D])`` -> ModelOutput."""

    def __init__(self, model: NeuromodulatedNetwork):
        super().__init__()
        if not isinstance(model, NeuromodulatedNetwork):
            raise TypeError(
                f"NaiveReference wraps a network of neuromodulated neurons, got {type(model).__name__}"
            )
        self.model = model
        modulator = model.neurons.modulator
        self.cell: nn.LSTMCell | None = None
        if modulator is not None:
            lstm = modulator.lstm
            self.cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
            # share, not copy: the cell's parameters are the modulator's
            self.cell.weight_ih = lstm.weight_ih_l0
            self.cell.weight_hh = lstm.weight_hh_l0
            self.cell.bias_ih = lstm.bias_ih_l0
            self.cell.bias_hh = lstm.bias_hh_l0

    def forward(self, inputs: Tensor, record: bool = False) -> ModelOutput:
        model, neurons = self.model, self.model.neurons
        if neurons.modulator is None:  # the controls have no loop to speak of
            return model(inputs, record=record)
        family, lag, head = neurons.activation, neurons.activation.lag, neurons.modulator.head
        drive = model.drive(inputs)  # [T, B, N]
        T, B, N = drive.shape
        initial = family.initial_params().to(drive)  # [P]
        hidden = [drive.new_zeros(B, neurons.modulator.hidden_size) for _ in range(N)]
        cell = [drive.new_zeros(B, neurons.modulator.hidden_size) for _ in range(N)]
        previous = [drive.new_zeros(B) for _ in range(N)]
        produced: list[list[Tensor]] = [[] for _ in range(N)]
        rates, used = [], []
        for t in range(T):
            rates_t, used_t = [], []
            for n in range(N):
                parts = []
                for name in neurons.signals:
                    if name == "drive":
                        parts.append(drive[t, :, n : n + 1])
                    elif name == "feedback":
                        parts.append(previous[n][:, None])
                    else:
                        parts.append(inputs[t])
                hidden[n], cell[n] = self.cell(torch.cat(parts, dim=1), (hidden[n], cell[n]))  # [B, H]
                produced[n].append(family.to_params(head(hidden[n])))  # [B, P]
                params = produced[n][t - lag] if t >= lag else initial.expand(B, -1)  # [B, P]
                previous[n] = family.gamma(drive[t, :, n], params)  # [B]
                rates_t.append(previous[n])
                used_t.append(params)
            rates.append(torch.stack(rates_t, dim=1))  # [B, N]
            used.append(torch.stack(used_t, dim=1))  # [B, N, P]
        rates_all = torch.stack(rates)  # [T, B, N]
        return ModelOutput(
            outputs=model.readout(rates_all),
            activity=rates_all,
            params=torch.stack(used),
            param_names=family.param_names,
            drive=drive,
        )
