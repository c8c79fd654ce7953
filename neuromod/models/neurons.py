"""A population of neurons whose activation parameters are set, step by step, by a shared modulator."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from neuromod.activation import ActivationFamily
from neuromod.modulator import MODULATOR_SIGNALS, Modulator, lstm_cell, shift_by_lag

#: Sequences (B*N) from which the step loop runs on the transposed fast path; below, per-operation
#: overhead dominates and ``torch.lstm_cell`` steps (fewer, C++-composed operations) measured faster.
CELL_LOOP_MIN = 1024


@dataclass
class ModelOutput:
    """What a network returns for a batch of trials."""

    outputs: Tensor  # [T, B, K]
    activity: Tensor  # [T, B, N] the neurons' rates (hidden state for the baselines)
    params: Tensor | None = None  # [T, B, N, P] activation parameters used at each step
    param_names: tuple[str, ...] = ()
    gates: dict[str, Tensor] = field(default_factory=dict)  # name -> [T, B, H] (lstm only)
    drive: Tensor | None = None  # [T, B, N] the neurons' pre-activations


class ModulatedNeurons(nn.Module):
    """N neurons ``y = gamma(drive; params)``; params come from a modulator (or are static / fixed).

    Args:
        n_neurons: N.
        activation: the activation family (also holds ``lag``).
        hidden_size: the modulator's LSTM size.
        modulator_inputs: signals per neuron, from ``drive`` (own pre-activation at t), ``feedback`` (own
            output at t - 1) and ``input`` (the network's input vector at t, shared by all neurons).
        input_size: size of the network's input (needed for the ``input`` signal).
    """

    def __init__(
        self,
        n_neurons: int,
        activation: ActivationFamily,
        hidden_size: int = 64,
        modulator_inputs: list[str] = ("drive",),
        input_size: int = 0,
    ):
        super().__init__()
        if n_neurons < 1:
            raise ValueError(f"architecture.n_neurons must be >= 1, got {n_neurons}")
        if hidden_size < 1:
            raise ValueError(f"architecture.hidden_size must be >= 1, got {hidden_size}")
        signals = list(modulator_inputs)
        unknown = [s for s in signals if s not in MODULATOR_SIGNALS]
        if unknown or not signals or len(set(signals)) != len(signals):
            raise ValueError(
                f"architecture.modulator_inputs must be a non-empty list of distinct signals from "
                f"{list(MODULATOR_SIGNALS)}, got {signals}"
            )
        self.n_neurons = n_neurons
        self.activation = activation
        self.signals = signals
        self.input_size = input_size
        self.modulator: Modulator | None = None
        self.static_raw: nn.Parameter | None = None
        if activation.modulated:
            width = sum(input_size if s == "input" else 1 for s in signals)
            self.modulator = Modulator(width, hidden_size, activation.n_params, activation.initial_raw)
        elif hasattr(activation, "make_static_raw"):
            self.static_raw = activation.make_static_raw(n_neurons)

    @property
    def uses_feedback(self) -> bool:
        return self.modulator is not None and "feedback" in self.signals

    def _signals(self, drive: Tensor, inputs: Tensor, feedback: Tensor | None) -> Tensor:
        """Modulator inputs ``[..., N, F]`` from ``drive [..., N]``, ``inputs [..., D]`` and
        ``feedback [..., N]``."""
        parts = []
        for name in self.signals:
            if name == "drive":
                parts.append(drive.unsqueeze(-1))
            elif name == "feedback":
                parts.append(feedback.unsqueeze(-1))
            else:
                parts.append(inputs.unsqueeze(-2).expand(*drive.shape, inputs.shape[-1]))
        return torch.cat(parts, dim=-1)

    def forward(self, drive: Tensor, inputs: Tensor, step_loop: bool = False) -> tuple[Tensor, Tensor]:
        """``drive [T, B, N]``, ``inputs [T, B, D]`` -> rates ``[T, B, N]``, params ``[T, B, N, P]``.

        ``step_loop=True`` forces the step-by-step path even without feedback (for tests and the
        benchmark); it computes the same thing as the fused path.
        """
        family = self.activation
        T, B, N = drive.shape
        initial = family.initial_params().to(drive)  # [P]
        if self.modulator is None:
            raw = family.initial_raw if self.static_raw is None else self.static_raw  # [P] or [N, P]
            params = family.to_params(raw).to(drive).expand(T, B, N, family.n_params)
            return family.gamma(drive, params), params
        if not self.uses_feedback and not step_loop:
            signals = self._signals(drive, inputs, None)  # [T, B, N, F]
            raw = self.modulator(signals.reshape(T, B * N, -1))  # [T, B*N, P]
            produced = family.to_params(raw).reshape(T, B, N, -1)  # [T, B, N, P]
            params = shift_by_lag(produced, initial, family.lag)
            return family.gamma(drive, params), params
        return self._step_loop(drive, inputs, initial)

    def _step_loop(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        T, B, N = drive.shape
        S = B * N
        if not self.modulator.uses_fused(drive) or S < CELL_LOOP_MIN:
            return self._step_loop_native(drive, inputs, initial)
        family, lag, modulator = self.activation, self.activation.lag, self.modulator
        w_ih, bias, w_hh = modulator.fast_weights()  # [4H, F], [4H], [4H, H]
        # Everything but the feedback is known in advance: project it for all steps at once (the feedback
        # column sees zeros here and is added step by step below).
        signals = self._signals(drive, inputs, drive.new_zeros(()).expand(T, B, N))  # [T, B, N, F]
        signals = signals.reshape(T, S, -1).transpose(1, 2)  # [T, F, S]
        if signals.shape[1] <= 4:  # broadcast multiply-adds: a product with K = 1..4 is slow
            pre = bias[:, None] + sum(w_ih[:, f, None] * signals[:, f, None] for f in range(signals.shape[1]))
        else:
            pre = torch.matmul(w_ih, signals) + bias[:, None]  # [T, 4H, S]
        # unbind, not pre[t]: indexing one step would make autograd build a full [T, ...] zero gradient
        # per step (quadratic in T); unbind's gradient is one stack
        pre_steps, drive_steps = pre.unbind(0), drive.unbind(0)
        w_feedback = w_ih[:, self._signal_column("feedback"), None] if self.uses_feedback else None  # [4H, 1]
        hidden = drive.new_zeros(modulator.hidden_size, S)  # [H, S]
        state = (hidden, hidden)
        previous = None  # y_{t-1}; zero before the trial
        produced, rates, used = [], [], []
        for t in range(T):
            pre_t = pre_steps[t]
            if w_feedback is not None and previous is not None:
                pre_t = torch.addcmul(pre_t, w_feedback, previous.reshape(1, S))  # [4H, S]
            state = lstm_cell(pre_t, state, w_hh)
            # [S, P] laid out row-major: the family's many small operations run faster on it
            raw = torch.addmm(modulator.head.bias, state[0].t(), modulator.head.weight.t())  # [S, P]
            produced.append(family.to_params(raw).reshape(B, N, -1))
            params_t = produced[t - lag] if t >= lag else initial.expand(B, N, -1)  # [B, N, P]
            previous = family.gamma(drive_steps[t], params_t)  # [B, N]
            rates.append(previous)
            used.append(params_t)
        return torch.stack(rates), torch.stack(used)

    def _signal_column(self, name: str) -> int:
        """Column of signal ``name`` in the modulator's input vector."""
        column = 0
        for signal in self.signals:
            if signal == name:
                return column
            column += self.input_size if signal == "input" else 1
        raise KeyError(name)

    def _step_loop_native(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        """The step loop in ``nn.LSTM``'s layout: ``nn.LSTM`` steps (cuDNN) with the native implementation,
        ``torch.lstm_cell`` steps otherwise (few sequences, where per-operation overhead dominates)."""
        family, lag = self.activation, self.activation.lag
        T, B, N = drive.shape
        fused = self.modulator.uses_fused(drive)
        step = self.modulator.step_cell if fused else self.modulator.step
        state = self.modulator.initial_state(B * N, drive)
        if fused:
            state = (state[0][0], state[1][0])  # [S, H]
        previous = drive.new_zeros(B, N)  # y_{t-1}, zero before the trial
        produced, rates, used = [], [], []
        drive_steps, input_steps = drive.unbind(0), inputs.unbind(0)  # see _step_loop
        for t in range(T):
            signals = self._signals(drive_steps[t], input_steps[t], previous)  # [B, N, F]
            raw, state = step(signals.reshape(B * N, -1), state)  # [B*N, P]
            produced.append(family.to_params(raw).reshape(B, N, -1))
            params_t = produced[t - lag] if t >= lag else initial.expand(B, N, -1)  # [B, N, P]
            previous = family.gamma(drive_steps[t], params_t)  # [B, N]
            rates.append(previous)
            used.append(params_t)
        return torch.stack(rates), torch.stack(used)
