"""The modulator: one LSTM shared by every neuron, with a state of its own per neuron, and a linear head.

The weights live in an ``nn.LSTM`` (so checkpoints and the CUDA path, which uses cuDNN, stay standard).
How the recurrence is executed is the ``implementation`` setting (:data:`IMPLEMENTATIONS`); every
implementation computes the same function, up to rounding. On the CPU the default runs the hand-written
recurrence of :mod:`neuromod.neuron.kernels`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuromod import validation
from neuromod.chunks import in_chunks
from neuromod.neuron.kernels import gate_order, modulator_sequence

#: Signals a modulator may read, per neuron and step.
MODULATOR_SIGNALS = ("drive", "feedback", "input")
#: Initial forget-gate bias of the modulator: the cell keeps its content by default, which memory
#: tasks need (measured: reaches 0.99 on the default task in fewer steps than 0).
FORGET_BIAS = 2.0
#: How the modulator's recurrence is executed (``architecture.implementation``); all compute the same
#: function:
#:
#: - ``auto``: ``native`` on CUDA (cuDNN), ``fused`` elsewhere;
#: - ``fused``: the hand-written recurrence (:mod:`neuromod.neuron.kernels`); with feedback, the step loop
#:   as one hand-written autograd node (:mod:`neuromod.neuron.step_loop`);
#: - ``native``: ``nn.LSTM`` over the whole sequence, or one ``nn.LSTM`` step per time step with feedback;
#: - ``composed``: as ``fused``, but the feedback step loop composed of autograd operations
#:   (``torch.lstm_cell`` steps), for comparison with the loop node.
IMPLEMENTATIONS = ("auto", "fused", "native", "composed")
#: How the modulator's weights start (``architecture.modulator_init``): ``neuromod`` raises the forget-gate
#: bias to :data:`FORGET_BIAS` and starts the head's bias at the family's initial values; ``pytorch`` leaves
#: PyTorch's initialisation of ``nn.LSTM`` and ``nn.Linear`` as it is (the seed code's modulator).
MODULATOR_INITS = ("neuromod", "pytorch")


def check_implementation(implementation: str) -> str:
    """``implementation`` if it is one of :data:`IMPLEMENTATIONS`, else a ConfigError naming the key."""
    return validation.choice("architecture.implementation", implementation, IMPLEMENTATIONS)


class Modulator(nn.Module):
    """LSTM cell (shared weights) + linear head to the activation family's raw parameters.

    The head's bias starts at the family's initial raw values, so an untrained modulator sets
    parameters scattered around the initial ones (unless ``init="pytorch"``).

    Args:
        implementation: one of :data:`IMPLEMENTATIONS`. It may be changed on a built module (attribute
            ``implementation``): the weights are the same for all.
        init: one of :data:`MODULATOR_INITS`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_params: int,
        initial_raw: Tensor,
        implementation: str = "auto",
        init: str = "neuromod",
    ):
        super().__init__()
        validation.choice("architecture.modulator_init", init, MODULATOR_INITS)
        self.hidden_size = hidden_size
        self.implementation = check_implementation(implementation)
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, n_params)
        self.register_buffer("order", gate_order(hidden_size), persistent=False)
        if init == "pytorch":
            return
        with torch.no_grad():
            self.head.bias.copy_(initial_raw)
            for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                bias[hidden_size : 2 * hidden_size].fill_(FORGET_BIAS / 2)

    def uses_fused(self, like: Tensor) -> bool:
        """Whether the hand-written recurrence runs for a tensor on ``like``'s device."""
        if self.implementation == "auto":
            return like.device.type != "cuda"
        return self.implementation in ("fused", "composed")

    def uses_loop_node(self, like: Tensor) -> bool:
        """Whether a feedback step loop on ``like``'s device runs as one hand-written autograd node."""
        return self.uses_fused(like) and self.implementation != "composed"

    # -- whole sequence -------------------------------------------------------------------------------
    def forward(self, signals: Tensor) -> Tensor:
        """Whole sequence at once: ``signals [T, S, F]`` -> raw parameters ``[T, S, P]``. Over more
        sequences than one call can index, in chunks of sequences (:mod:`neuromod.chunks`)."""
        per_sequence = signals.shape[0] * self.step_width(signals.shape[-1])
        if not self.uses_fused(signals):
            return in_chunks(lambda x: self.head(self.lstm(x)[0]), (signals,), 1, per_sequence)  # [T, S, P]
        w_ih, bias, w_hh = self.reordered_weights()
        head = self.head

        def sequence(x: Tensor) -> Tensor:
            raw = modulator_sequence(x, w_ih, bias, w_hh, head.weight, head.bias)  # [T, P, S]
            return raw.transpose(1, 2)  # [T, S, P]

        return in_chunks(sequence, (signals,), 1, per_sequence)

    def step_width(self, n_inputs: int) -> int:
        """Elements one sequence adds per step to the largest tensor of a call: the four gates, or the
        augmented state ``[h; x; 1]`` when the inputs are wider."""
        return max(4 * self.hidden_size, self.hidden_size + n_inputs + 1)

    def reordered_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """The LSTM's weights for the hand-written kernels: ``W_ih [4H, F]``, the summed bias ``[4H]`` and
        ``W_hh [4H, H]``, gate rows reordered from ``nn.LSTM``'s (i, f, g, o) to (i, f, o, g)."""
        lstm, order = self.lstm, self.order
        return lstm.weight_ih_l0[order], (lstm.bias_ih_l0 + lstm.bias_hh_l0)[order], lstm.weight_hh_l0[order]

    # -- one step (nn.LSTM layout; the composed step loop) -------------------------------------------
    def initial_state(self, n_sequences: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(1, n_sequences, self.hidden_size)  # [1, S, H]
        return zeros, zeros.clone()

    def step(self, signals: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: ``signals [S, F]`` -> raw parameters ``[S, P]`` and the new state (``[1, S, H]``)."""
        hidden, state = self.lstm(signals.unsqueeze(0), state)  # [1, S, H]
        return self.head(hidden[0]), state

    def step_cell(
        self, signals: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """:meth:`step` through ``torch.lstm_cell`` (state ``[S, H]`` each): the same computation with
        less per-call overhead than a one-step ``nn.LSTM``."""
        lstm = self.lstm
        h, c = torch.lstm_cell(
            signals, state, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
        )
        return self.head(h), (h, c)


def params_in_use(produced: Tensor, initial: Tensor, steps: int) -> Tensor:
    """The parameters used at each of ``steps`` steps, given what the modulator produced in the first
    ``steps - lag`` (produced at t, used at t + lag): the first ``lag`` steps use ``initial``.

    ``produced [steps - lag, ..., P]``, ``initial [P]`` -> ``[steps, ..., P]``.
    """
    lag = steps - produced.shape[0]
    if lag == 0:
        return produced
    return torch.cat([initial.expand(lag, *produced.shape[1:]), produced], dim=0)
