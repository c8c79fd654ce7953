"""Controls without neuromodulated neurons: a plain LSTM network and a vanilla ReLU RNN.

Their constructors take ``activation`` because the run passes every architecture the ``af`` family; they
have no modulated neurons, so it is not used. Any other key they do not know is an error.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from neuromod import validation
from neuromod.chunks import in_chunks
from neuromod.models.output import ModelOutput
from neuromod.models.protocol import DelayMap, RecordedSignals, StepMemory
from neuromod.neuron.modulator import FORGET_BIAS

GATE_NAMES = ("input_gate", "forget_gate", "cell_input", "output_gate", "cell")


def _control_memory(decoder: nn.Linear) -> StepMemory:
    """A control's evaluation keeps the output, the activity and what the network records (the lstm's
    five gate tensors) per trial step; what a training step keeps is measured (not counted)."""
    return StepMemory(kept=decoder.out_features + 6 * decoder.in_features)


class LSTMNetwork(nn.Module):
    """``nn.LSTM`` + linear readout. ``forward(..., record=True)`` also returns the gate activations.

    ``forget_bias``: the initial forget-gate bias (split evenly between PyTorch's two bias vectors, as the
    modulator's is), so that the control starts out holding its cell content as the modulated network's
    modulators do; default 2, the modulator's (:data:`neuromod.neuron.modulator.FORGET_BIAS`). ``None``
    keeps PyTorch's initialisation (uniform in +-1/sqrt(hidden), forget gate half open).
    """

    required_encoding = None
    uses_activation = False

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        forget_bias: float | None = FORGET_BIAS,
        activation=None,
    ):
        super().__init__()
        validation.integer("architecture.hidden_size", hidden_size, minimum=1)
        if forget_bias is not None:
            validation.number("architecture.forget_bias", forget_bias)
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, output_size)
        if forget_bias is not None:
            with torch.no_grad():
                for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                    bias[hidden_size : 2 * hidden_size].fill_(float(forget_bias) / 2)

    def forward(self, inputs: Tensor, record: bool = False) -> ModelOutput:
        T, _, D = inputs.shape
        # trials are independent: in chunks where one cuDNN call could not index them all
        per_trial = T * max(4 * self.lstm.hidden_size, D)
        hidden = in_chunks(lambda x: self.lstm(x)[0], (inputs,), 1, per_trial)  # [T, B, H]
        out = ModelOutput(outputs=self.decoder(hidden), activity=hidden)
        if record:
            out.gates = self.gates(inputs, hidden)
        return out

    @torch.no_grad()
    def gates(self, inputs: Tensor, hidden: Tensor) -> dict[str, Tensor]:
        """Recompute every step's gates from the fused pass's hidden states, all steps at once."""
        lstm = self.lstm
        previous = torch.cat([torch.zeros_like(hidden[:1]), hidden[:-1]])  # h_{t-1}  [T, B, H]
        pre = (
            inputs @ lstm.weight_ih_l0.T + previous @ lstm.weight_hh_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
        )
        i, f, g, o = pre.chunk(4, dim=-1)  # PyTorch's gate order  [T, B, H] each
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        # c_t = f c_{t-1} + i g  (a linear recurrence; a short loop over time is fine outside training)
        cells, c = [], torch.zeros_like(hidden[0])
        for t in range(inputs.shape[0]):
            c = f[t] * c + i[t] * g[t]
            cells.append(c)
        return dict(zip(GATE_NAMES, (i, f, g, o, torch.stack(cells)), strict=True))

    #: The lesions it can take (docs/lesions.md).
    lesions = ("recurrent_cut",)

    def lesioned(self, inputs: Tensor, name: str, steps: Tensor) -> ModelOutput:
        """The pass under lesion ``name`` over ``steps [T, B]`` (bool). ``recurrent_cut``: every step of
        the span starts from the zero state (h and c), so the recurrent weights and the cell's carry pass
        nothing on from one step to the next; the lstm's counterpart of the rnn's recurrent cut."""
        if name not in self.lesions:
            raise ValueError(f"the lstm control has no lesion {name!r}")
        lstm = self.lstm
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        h = c = inputs.new_zeros(inputs.shape[1], lstm.hidden_size)
        states = []
        for t in range(inputs.shape[0]):
            cut = steps[t, :, None]
            h, c = torch.where(cut, 0.0, h), torch.where(cut, 0.0, c)
            h, c = torch.lstm_cell(inputs[t], (h, c), *weights)
            states.append(h)
        hidden = torch.stack(states)
        return ModelOutput(outputs=self.decoder(hidden), activity=hidden)

    def recorded_signals(self, out: ModelOutput, inputs: Tensor) -> RecordedSignals:
        """The rates (the hidden state ``h``) and the cell state."""
        return RecordedSignals(
            signals={"rates": out.activity.float(), "cell": out.gates["cell"].float()},
            per_neuron={"rates": out.activity.float()},
            notes=["lstm control: rates are the hidden state h; no activation parameters or modulator"],
        )

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """One system, state ``(h, c)``."""
        lstm = self.lstm
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        H = lstm.hidden_size

        def step(states: Tensor) -> Tensor:
            flat = states.reshape(-1, 2 * H)
            zero = flat.new_zeros(flat.shape[0], lstm.input_size)
            h, c = torch.lstm_cell(zero, (flat[:, :H], flat[:, H:]), *weights)
            return torch.cat([h, c], dim=-1).reshape(states.shape)

        states = torch.cat([signals["rates"], signals["cell"]], dim=-1)
        return step, states[:, :, None, :]

    def memory_per_step(self) -> StepMemory:
        return _control_memory(self.decoder)


class RNNNetwork(nn.Module):
    """``h_t = relu(W_rec h_{t-1} + W_in x_t + b)`` with a linear readout (Orhan & Ma 2019).

    ``W_rec = lambda0 I + sigma0 / sqrt(N) * (off-diagonal Gaussian)``; input and output weights are
    Glorot-normal with gain ``io_gain``.
    """

    required_encoding = None
    uses_activation = False

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        lambda0: float = 0.98,
        sigma0: float = 0.0,
        io_gain: float = 0.95,
        activation=None,
    ):
        super().__init__()
        validation.integer("architecture.hidden_size", hidden_size, minimum=1)
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity="relu")
        self.decoder = nn.Linear(hidden_size, output_size)
        with torch.no_grad():
            n = hidden_size
            off_diagonal = torch.randn(n, n) * (sigma0 / math.sqrt(n))
            off_diagonal.fill_diagonal_(0.0)
            self.rnn.weight_hh_l0.copy_(lambda0 * torch.eye(n) + off_diagonal)
            nn.init.xavier_normal_(self.rnn.weight_ih_l0, gain=io_gain)
            nn.init.xavier_normal_(self.decoder.weight, gain=io_gain)
            self.rnn.bias_ih_l0.zero_()
            self.rnn.bias_hh_l0.zero_()
            self.decoder.bias.zero_()

    def forward(self, inputs: Tensor, record: bool = False) -> ModelOutput:
        """``inputs [T, B, D]`` -> outputs and hidden states (``record``: nothing more to record)."""
        T, _, D = inputs.shape
        per_trial = T * max(self.rnn.hidden_size, D)
        hidden = in_chunks(lambda x: self.rnn(x)[0], (inputs,), 1, per_trial)  # [T, B, H]
        return ModelOutput(outputs=self.decoder(hidden), activity=hidden)

    #: The lesions it can take (docs/lesions.md).
    lesions = ("recurrent_cut",)

    def lesioned(self, inputs: Tensor, name: str, steps: Tensor) -> ModelOutput:
        """The pass under lesion ``name`` over ``steps [T, B]`` (bool). ``recurrent_cut``: the recurrent
        input ``W_rec h_{t-1}`` is zero over the span."""
        if name not in self.lesions:
            raise ValueError(f"{type(self).__name__} has no lesion {name!r}")
        rnn = self.rnn
        drive = inputs @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0  # [T, B, N]
        h = torch.zeros_like(drive[0])
        states = []
        for t in range(inputs.shape[0]):
            h = torch.relu(drive[t] + torch.where(steps[t, :, None], 0.0, h @ rnn.weight_hh_l0.T))
            states.append(h)
        hidden = torch.stack(states)
        return ModelOutput(outputs=self.decoder(hidden), activity=hidden)

    def recorded_signals(self, out: ModelOutput, inputs: Tensor) -> RecordedSignals:
        """The rates (the hidden state)."""
        name = type(self).__name__
        return RecordedSignals(
            signals={"rates": out.activity.float()},
            per_neuron={"rates": out.activity.float()},
            notes=[f"{name}: rates are the hidden state; no activation parameters or modulator"],
        )

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """One system, state ``h``."""
        rnn = self.rnn

        def step(states: Tensor) -> Tensor:
            return torch.relu(states @ rnn.weight_hh_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0)

        return step, signals["rates"][:, :, None, :]

    def memory_per_step(self) -> StepMemory:
        return _control_memory(self.decoder)
