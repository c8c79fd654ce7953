"""The modulator: one LSTM shared by every neuron, with a state of its own per neuron.

B trials x N neurons are B*N independent sequences of the same cell. When the modulator's inputs do not
depend on the neuron's output the whole trial is one fused ``nn.LSTM`` call; with ``feedback`` the layer
steps through time (never through neurons or trials).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Signals a modulator may read, per neuron and step.
MODULATOR_SIGNALS = ("drive", "feedback", "input")
#: Initial forget-gate bias of the modulator: the cell keeps its content by default, which memory
#: tasks need (measured: reaches 0.99 on the default task in fewer steps than 0).
FORGET_BIAS = 2.0


class Modulator(nn.Module):
    """LSTM cell (shared weights) + linear head to the activation family's raw parameters.

    The head's bias starts at the family's initial raw values, so an untrained modulator sets
    parameters scattered around the initial ones.
    """

    def __init__(self, input_size: int, hidden_size: int, n_params: int, initial_raw: Tensor):
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, n_params)
        with torch.no_grad():
            self.head.bias.copy_(initial_raw)
            for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                bias[hidden_size : 2 * hidden_size].fill_(FORGET_BIAS / 2)

    def forward(self, signals: Tensor) -> Tensor:
        """Whole sequence at once: ``signals [T, S, F]`` -> raw parameters ``[T, S, P]``."""
        hidden, _ = self.lstm(signals)  # [T, S, H]
        return self.head(hidden)  # [T, S, P]

    def initial_state(self, n_sequences: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(1, n_sequences, self.hidden_size)  # [1, S, H]
        return zeros, zeros.clone()

    def step(self, signals: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: ``signals [S, F]`` -> raw parameters ``[S, P]`` and the new state."""
        hidden, state = self.lstm(signals.unsqueeze(0), state)  # [1, S, H]
        return self.head(hidden[0]), state


def shift_by_lag(params: Tensor, initial: Tensor, lag: int) -> Tensor:
    """Parameters used at step t are those produced at t - lag; the first ``lag`` steps use ``initial``.

    ``params [T, ...,  P]``, ``initial [P]`` -> ``[T, ..., P]``.
    """
    if lag == 0:
        return params
    steps = params.shape[0]
    head = initial.expand(min(lag, steps), *params.shape[1:])
    return torch.cat([head, params[: max(steps - lag, 0)]], dim=0)
