"""A population of neurons whose activation parameters are set, step by step, by a shared modulator."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from neuromod.activation import ActivationFamily
from neuromod.modulator import (
    MODULATOR_SIGNALS,
    Modulator,
    _activate,
    _gate_grads,
    lstm_cell,
    shift_by_lag,
)

#: Sequences (B*N) from which the step loop runs on the transposed fast path; below, per-operation
#: overhead dominates and ``torch.lstm_cell`` steps (fewer, C++-composed operations) measured faster.
CELL_LOOP_MIN = 1024
#: Whether the step loop for few sequences on the CPU runs as one hand-written autograd node
#: (:class:`_FeedbackLoop`); False: composed of autograd operations (``torch.lstm_cell`` steps).
FEEDBACK_FUNCTION = True


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

    def _feedback_function(self, drive: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The step loop as one autograd node (:class:`_FeedbackLoop`): ``drive [T, B, N]``,
        ``inputs [T, B, D]`` -> rates ``[T, B, N]``, params ``[T, B, N, P]``."""
        T, B, N = drive.shape
        head, family = self.modulator.head, self.activation
        w_ih, bias, w_hh = self.modulator.fast_weights()  # gate rows in the order i, f, o, g
        column = self._signal_column("feedback") if self.uses_feedback else None
        x = self._signals(drive, inputs, drive.new_zeros(()).expand(T, B, N)).reshape(T, B * N, -1)
        args = (x, drive.reshape(T, B * N), w_ih, bias, w_hh, head.weight, head.bias)
        if torch.is_grad_enabled() and any(a.requires_grad for a in args):
            rates, used = _FeedbackLoop.apply(*args, family, column)
        else:
            rates, used = _feedback_forward(*args, family, column)[:2]
        return rates.reshape(T, B, N), used.reshape(T, B, N, -1)

    def _step_loop_native(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        """The step loop in ``nn.LSTM``'s layout: ``nn.LSTM`` steps (cuDNN) with the native implementation,
        ``torch.lstm_cell`` steps otherwise (few sequences, where per-operation overhead dominates)."""
        family, lag = self.activation, self.activation.lag
        T, B, N = drive.shape
        fused = self.modulator.uses_fused(drive)
        # the node gives no gradient to a family's own trainable state (none of the modulated ones has any)
        if fused and FEEDBACK_FUNCTION and not any(p.requires_grad for p in family.parameters()):
            return self._feedback_function(drive, inputs)
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


class _FeedbackLoop(torch.autograd.Function):
    """The whole step loop (LSTM cell, head, parameter transform, transfer function, lag) as one autograd
    node, for few sequences on the CPU.

    ``x [T, S, F]`` (the modulator's inputs, feedback column zero), ``drive [T, S]``, ``w_ih [4H, F]``,
    ``bias [4H]``, ``w_hh [4H, H]`` (gate rows in the fast order i, f, o, g), the head's ``w_head [P, H]``,
    ``b_head [P]`` -> rates ``[T, S]``, parameters used ``[T, S, P]``.

    Why: with one neuron a step is ~35 small operations, and recorded by autograd each costs a node in
    the forward and in the backward pass. Here the forward pass records nothing; the local derivatives of
    the transform and the transfer function are taken for all steps at once after the loop (the families
    are elementwise: a rate depends only on its own drive and parameters, a parameter only on its own raw
    value); the backward pass steps back through time with the modulator's in-place gate gradients
    (states transposed, ``[H, S]``, as in :mod:`neuromod.modulator`), and every weight gradient is one
    product over all steps.
    """

    @staticmethod
    def forward(ctx, x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column):
        rates, used, raw, gates, cells, tanh_cells, hiddens = _feedback_forward(
            x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column
        )
        with torch.enable_grad():
            raw_leaf = raw.detach().requires_grad_(True)
            (d_params_d_raw,) = torch.autograd.grad(family.to_params(raw_leaf).sum(), raw_leaf)  # [T, S, P]
            used_leaf = used.detach().requires_grad_(True)
            drive_leaf = drive.detach().requires_grad_(True)
            d_rate_d_used, d_rate_d_drive = torch.autograd.grad(
                family.gamma(drive_leaf, used_leaf).sum(), (used_leaf, drive_leaf)
            )
        if feedback_column is not None:  # the inputs the modulator saw, for the weight gradient
            x = x.clone()
            x[1:, :, feedback_column] = rates[:-1]
        ctx.lag, ctx.feedback_column = family.lag, feedback_column
        ctx.save_for_backward(
            x, w_ih, w_hh, w_head, gates, cells, tanh_cells, hiddens, d_params_d_raw, d_rate_d_used,
            d_rate_d_drive,
        )  # fmt: skip
        return rates, used

    @staticmethod
    def backward(ctx, grad_rates, grad_used):
        x, w_ih, w_hh, w_head, gates, cells, tanh_cells, hiddens, d_params_d_raw, d_rate_d_used, d_drive = (
            ctx.saved_tensors
        )
        lag, feedback_column = ctx.lag, ctx.feedback_column
        H, T, S = hiddens.shape
        d_rates = torch.zeros_like(d_drive) if grad_rates is None else grad_rates.clone()  # [T, S]
        d_used = torch.zeros_like(d_rate_d_used) if grad_used is None else grad_used.clone()  # [T, S, P]
        # [4H, T, S]: one step is a [4H, S] view, all steps together one [4H, T * S] matrix
        d_gates = gates.new_empty(4 * H, T, S)
        d_raw = torch.zeros_like(d_params_d_raw)  # [T, S, P]
        dh, recurrent, dc, tmp = (hiddens.new_zeros(H, S) for _ in range(4))
        w_feedback = w_ih[:, feedback_column] if feedback_column is not None else None  # [4H]
        w_head_t, w_hh_t = w_head.t(), w_hh.t()
        for t in range(T - 1, -1, -1):
            # the rate of step t is read by the gates of t + 1 only: its gradient is complete here
            d_used[t].addcmul_(d_rates[t, :, None], d_rate_d_used[t])
            if t + lag < T:
                torch.mul(d_used[t + lag], d_params_d_raw[t], out=d_raw[t])
                torch.addmm(recurrent, w_head_t, d_raw[t].t(), out=dh)  # [H, S]
            else:
                dh.copy_(recurrent)
            d = d_gates[:, t]
            _gate_grads(d, dh, dc, gates[:, t], cells[:, t - 1] if t > 0 else None, tanh_cells[:, t], tmp)
            if t > 0:
                torch.mm(w_hh_t, d, out=recurrent)  # [H, S]
                if w_feedback is not None:
                    d_rates[t - 1].addmv_(d.t(), w_feedback)
        flat = d_gates.reshape(4 * H, T * S)
        d_x = (w_ih.t() @ flat).reshape(-1, T, S).permute(1, 2, 0) if ctx.needs_input_grad[0] else None
        d_drive = d_rates * d_drive if ctx.needs_input_grad[1] else None
        d_w_ih = flat @ x.reshape(T * S, -1)
        d_bias = flat.sum(1)
        d_w_hh = d_gates[:, 1:].reshape(4 * H, -1) @ hiddens[:, :-1].reshape(H, -1).t()
        d_w_head = d_raw.reshape(T * S, -1).t() @ hiddens.reshape(H, T * S).t()
        return d_x, d_drive, d_w_ih, d_bias, d_w_hh, d_w_head, d_raw.sum((0, 1)), None, None


@torch.no_grad()
def _feedback_forward(x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column):
    """Forward pass of :class:`_FeedbackLoop` (arguments as there); returns rates ``[T, S]``, parameters
    used ``[T, S, P]``, raw parameters ``[T, S, P]`` and the recurrence's activations ``[4H, T, S]``,
    cells, ``tanh`` of the cells and hidden states ``[H, T, S]``."""
    T, S, _ = x.shape
    H = w_hh.shape[1]
    lag = family.lag
    # [4H, T, S] and [H, T, S]: the backward pass takes every step's weight gradient in one product
    gates = x.new_empty(4 * H, T, S)
    torch.addmm(bias[:, None], w_ih, x.reshape(T * S, -1).t(), out=gates.view(4 * H, T * S))
    cells, tanh_cells, hiddens = (x.new_empty(H, T, S) for _ in range(3))
    raw = x.new_empty(T, S, w_head.shape[0])
    initial = family.initial_params().to(x).expand(S, -1)  # [S, P]
    w_feedback = w_ih[:, feedback_column, None] if feedback_column is not None else None  # [4H, 1]
    b_head = b_head[:, None]
    produced, rates, used = [], [], []
    for t in range(T):
        gates_t, h_t = gates[:, t], hiddens[:, t]
        if t > 0:
            gates_t.addmm_(w_hh, hiddens[:, t - 1])
            if w_feedback is not None:
                gates_t.addcmul_(w_feedback, rates[t - 1][None])
        _activate(gates_t, cells[:, t - 1] if t > 0 else None, cells[:, t], tanh_cells[:, t], h_t)
        # a [P, S] product (measured faster than [S, P]) written into raw's [S, P] layout, row-major:
        # the family's many small operations run faster on it
        torch.addmm(b_head, w_head, h_t, out=raw[t].t())
        produced.append(family.to_params(raw[t]))
        params_t = produced[t - lag] if t >= lag else initial
        rates.append(family.gamma(drive[t], params_t))
        used.append(params_t)
    return torch.stack(rates), torch.stack(used), raw, gates, cells, tanh_cells, hiddens
