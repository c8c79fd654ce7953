"""Orhan & Ma's (2019) ReLU RNN with a Hebbian fast-weight term (their "Hebbian plasticity" condition)."""

from __future__ import annotations

import torch
from torch import Tensor

from neuromod import validation
from neuromod.models.baselines import RNNNetwork
from neuromod.models.output import ModelOutput
from neuromod.models.protocol import DelayMap


class HebbianRNN(RNNNetwork):
    """``h_t = relu(W_rec h_{t-1} + W_in x_t + b + gamma clip(<h_{t-2}, h_{t-1}>, 0, clip) h_{t-2})``.

    The extra term is a rank-1 fast weight ``gamma h_{t-2} h_{t-2}^T`` applied to ``h_{t-1}``: the
    pattern of two steps ago is pulled back in proportion to its overlap with the current one. Weights
    and initialisation are those of :class:`RNNNetwork` (``lambda0``, ``sigma0``, ``io_gain``).

    The term depends on the previous states, so the forward pass is one step loop over time (batched
    over trials and neurons).
    """

    #: None yet: the rnn control's lesions would leave the fast weights out.
    lesions = ()

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        lambda0: float = 0.98,
        sigma0: float = 0.0,
        io_gain: float = 0.95,
        gamma: float = 7e-4,
        clip: float = 100.0,
        activation=None,
    ):
        super().__init__(input_size, output_size, hidden_size, lambda0, sigma0, io_gain)
        validation.number("architecture.gamma", gamma, at_least=0)
        validation.number("architecture.clip", clip, positive=True)
        self.gamma = float(gamma)
        self.clip = float(clip)

    def forward(self, inputs: Tensor, record: bool = False) -> ModelOutput:
        """``inputs [T, B, D]`` -> outputs and hidden states (``record``: nothing more to record)."""
        rnn = self.rnn
        drive = inputs @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0  # [T, B, N]
        before = torch.zeros_like(drive[0])  # h_{t-2}  [B, N]
        previous = torch.zeros_like(drive[0])  # h_{t-1}  [B, N]
        states = []
        for t in range(inputs.shape[0]):
            overlap = (before * previous).sum(-1, keepdim=True).clamp(0.0, self.clip)  # [B, 1]
            fast = self.gamma * overlap * before  # [B, N]
            h = torch.relu(drive[t] + previous @ rnn.weight_hh_l0.T + fast)
            states.append(h)
            before, previous = previous, h
        hidden = torch.stack(states)  # [T, B, N]
        return ModelOutput(outputs=self.decoder(hidden), activity=hidden)

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """None: the fast weights are state too, and the recorded signals leave them out."""
        return None
