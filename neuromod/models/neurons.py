"""A population of neurons whose activation parameters are set, step by step, by a shared modulator."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from neuromod.activation import ActivationFamily
from neuromod.modulator import (
    _WORKSPACE,
    MODULATOR_SIGNALS,
    Modulator,
    _activate,
    _buffers,
    _gate_grads,
    augmented_states,
    augmented_weights,
    gate_views,
    params_in_use,
)

#: Whether the step loop on the CPU runs as one hand-written autograd node (:class:`_StepLoop`); False:
#: composed of autograd operations (``torch.lstm_cell`` steps; the benchmark compares the two).
LOOP_FUNCTION = True


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
            # what the modulator produces in the last `lag` steps would act after the trial: not computed
            steps = T - family.lag
            if steps <= 0:
                params = initial.expand(T, B, N, -1)
                return family.gamma(drive, params), params
            signals = self._signals(drive[:steps], inputs[:steps], None)  # [T - lag, B, N, F]
            raw = self.modulator(signals.reshape(steps, B * N, -1))  # [T - lag, B*N, P]
            produced = family.to_params(raw).reshape(steps, B, N, -1)  # [T - lag, B, N, P]
            params = params_in_use(produced, initial, T)  # [T, B, N, P]
            return family.gamma(drive, params), params
        return self._step_loop(drive, inputs, initial)

    def _step_loop(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        # the node gives no gradient to a family's own trainable state (none of the modulated ones has any)
        family = self.activation
        if (
            self.modulator.uses_fused(drive)
            and LOOP_FUNCTION
            and not any(p.requires_grad for p in family.parameters())
        ):
            return self._loop_function(drive, inputs)
        return self._step_loop_native(drive, inputs, initial)

    def _signal_column(self, name: str) -> int:
        """Column of signal ``name`` in the modulator's input vector."""
        column = 0
        for signal in self.signals:
            if signal == name:
                return column
            column += self.input_size if signal == "input" else 1
        raise KeyError(name)

    def _loop_function(self, drive: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The step loop as one autograd node (:class:`_StepLoop`): ``drive [T, B, N]``,
        ``inputs [T, B, D]`` -> rates ``[T, B, N]``, params ``[T, B, N, P]``."""
        T, B, N = drive.shape
        head, family = self.modulator.head, self.activation
        w_ih, bias, w_hh = self.modulator.fast_weights()  # gate rows in the order i, f, o, g
        column = self._signal_column("feedback") if self.uses_feedback else None
        x = self._signals(drive, inputs, drive.new_zeros(()).expand(T, B, N)).reshape(T, B * N, -1)
        args = (x, drive.reshape(T, B * N), w_ih, bias, w_hh, head.weight, head.bias)
        if torch.is_grad_enabled() and any(a.requires_grad for a in args):
            rates, used = _StepLoop.apply(*args, family, column)
        else:
            rates, used = _loop_forward(*args, family, column)[:2]
        return rates.reshape(T, B, N), used.reshape(T, B, N, -1)

    def _step_loop_native(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        """The step loop composed of autograd operations, in ``nn.LSTM``'s layout: ``nn.LSTM`` steps
        (cuDNN) with the native implementation, ``torch.lstm_cell`` steps with the fused one when
        :data:`LOOP_FUNCTION` is off (for comparison)."""
        family, lag = self.activation, self.activation.lag
        T, B, N = drive.shape
        fused = self.modulator.uses_fused(drive)
        step = self.modulator.step_cell if fused else self.modulator.step
        state = self.modulator.initial_state(B * N, drive)
        if fused:
            state = (state[0][0], state[1][0])  # [S, H]
        previous = drive.new_zeros(B, N)  # y_{t-1}, zero before the trial
        produced, rates, used = [], [], []
        # unbind, not drive[t]: indexing one step would make autograd build a full [T, ...] zero gradient
        # per step (quadratic in T); unbind's gradient is one stack
        drive_steps, input_steps = drive.unbind(0), inputs.unbind(0)
        for t in range(T):
            signals = self._signals(drive_steps[t], input_steps[t], previous)  # [B, N, F]
            raw, state = step(signals.reshape(B * N, -1), state)  # [B*N, P]
            produced.append(family.to_params(raw).reshape(B, N, -1))
            params_t = produced[t - lag] if t >= lag else initial.expand(B, N, -1)  # [B, N, P]
            previous = family.gamma(drive_steps[t], params_t)  # [B, N]
            rates.append(previous)
            used.append(params_t)
        return torch.stack(rates), torch.stack(used)


class _StepLoop(torch.autograd.Function):
    """The whole step loop (LSTM cell, head, parameter transform, transfer function, lag, feedback) as
    one autograd node, on the CPU.

    ``x [T, S, F]`` (the modulator's inputs, feedback column zero), ``drive [T, S]``, ``w_ih [4H, F]``,
    ``bias [4H]``, ``w_hh [4H, H]`` (gate rows in the fast order i, f, o, g), the head's ``w_head [P, H]``,
    ``b_head [P]`` -> rates ``[T, S]``, parameters used ``[T, S, P]``.

    Why: recorded by autograd, each of a step's ~35 small operations costs a node in the forward and in
    the backward pass. Here the forward pass records nothing and a step is a few in-place operations: one
    product for the gates (the augmented state ``[h_{t-1}; x_t; 1]`` carries the feedback in its
    feedback row, see :func:`~neuromod.modulator.augmented_weights`), one ``sigmoid`` for all gates, the
    head, and the family's :meth:`~neuromod.activation.ActivationFamily.step_rate`. The local
    derivatives of the transform and the transfer function are taken for all steps at once after the
    loop (the families are elementwise: a rate depends only on its own drive and parameters, a parameter
    only on its own raw value). The backward pass steps back through time with the modulator's in-place
    gate gradients (states transposed, ``[H, S]``) and one product per step back through the weights.
    """

    @staticmethod
    def forward(ctx, x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column):
        workspace = _WORKSPACE if x.device.type == "cpu" else None
        rates, used, used_raw, gates, cells, tanh_cells, states = _loop_forward(
            x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column, workspace
        )
        if workspace is not None:  # the buffers go back to the pool with this node
            weakref.finalize(ctx, workspace.give, gates, cells, tanh_cells, states)
        with torch.enable_grad():  # derivatives of rate and parameters by their raw values, every step
            raw_leaf = used_raw.detach().requires_grad_(True)
            drive_leaf = drive.detach().requires_grad_(True)
            params = family.to_params(raw_leaf)
            rate_by_raw, rate_by_drive = torch.autograd.grad(
                family.gamma(drive_leaf, params).sum(), (raw_leaf, drive_leaf), retain_graph=True
            )
            (params_by_raw,) = torch.autograd.grad(params.sum(), raw_leaf)  # [T, S, P]
        ctx.lag, ctx.feedback_column = family.lag, feedback_column
        ctx.save_for_backward(
            w_ih, w_hh, w_head, gates, cells, tanh_cells, states, rate_by_raw, rate_by_drive, params_by_raw
        )
        return rates, used

    @staticmethod
    def backward(ctx, grad_rates, grad_used):
        w_ih, w_hh, w_head, gates, cells, tanh_cells, states, rate_by_raw, rate_by_drive, params_by_raw = (
            ctx.saved_tensors
        )
        lag, column = ctx.lag, ctx.feedback_column
        T, H, S = cells.shape
        F = w_ih.shape[1]
        need_x = ctx.needs_input_grad[0]
        # total gradient of each step's rate: from the output, plus (feedback) from the next step's gates
        d_rates = torch.zeros_like(rate_by_drive) if grad_rates is None else grad_rates.clone()  # [T, S]
        # gradient of the raw parameters used at step u through the 'used' output: known in advance
        from_used = None if grad_used is None else grad_used * params_by_raw  # [T, S, P]
        d_raw = torch.zeros_like(rate_by_raw)  # [T, S, P] by the step that produced them
        steps = gate_views(gates)
        dh, dc, tmp = (gates.new_zeros(H, S) for _ in range(3))
        # gradient reaching [h_{t-1}; x_t] from step t (its feedback row: y_{t-1}); kept per step, so that
        # the input rows are the inputs' gradient
        back = gates.new_zeros(T + 1, H + F, S)
        back_weights = torch.cat([w_hh, w_ih], dim=1).t()  # [H + F, 4H]
        w_head_t = w_head.t()
        # every step's views, taken once
        back_steps, recurrent = back.unbind(0), back[:, :H].unbind(0)
        fed_back = back[:, H + column].unbind(0) if column is not None else None
        d_rate_rows, d_rate_steps = d_rates.unbind(0), d_rates[:, :, None].unbind(0)
        d_raw_steps, by_raw_steps = d_raw.unbind(0), rate_by_raw.unbind(0)
        from_used_steps = from_used.unbind(0) if from_used is not None else None
        d_raw_columns = d_raw.transpose(1, 2).unbind(0)  # [P, S] per step
        cell_steps, tanh_steps = cells.unbind(0), tanh_cells.unbind(0)
        d = gates.new_empty(4 * H, S)  # gate pre-activation gradient of the current step
        d_views = gate_views(d[None])[0]
        d_weights = gates.new_zeros(4 * H, H + F + 1)  # [d W_hh | d W_ih | d b]
        state_columns = states.transpose(1, 2).unbind(0)  # [S, K] per step
        for t in range(T - 1, -1, -1):
            if fed_back is not None and t < T - 1:
                d_rate_rows[t].add_(fed_back[t + 1])
            u = t + lag  # the step that uses the parameters produced at t
            if u < T:
                if from_used_steps is None:
                    torch.mul(d_rate_steps[u], by_raw_steps[u], out=d_raw_steps[t])
                else:
                    torch.addcmul(from_used_steps[u], d_rate_steps[u], by_raw_steps[u], out=d_raw_steps[t])
                torch.addmm(recurrent[t + 1], w_head_t, d_raw_columns[t], out=dh)  # [H, S]
            else:
                dh.copy_(recurrent[t + 1])
            c_prev = cell_steps[t - 1] if t > 0 else None
            _gate_grads(d_views, dh, dc, steps[t], c_prev, tanh_steps[t], tmp)
            d_weights.addmm_(d, state_columns[t])  # [4H, S] @ [S, K], while d is in cache
            torch.mm(back_weights, d, out=back_steps[t])  # [H + F, S]
        d_x = back[:T, H:].transpose(1, 2) if need_x else None  # [T, S, F]
        if d_x is not None and column is not None:
            d_x = d_x.clone()
            d_x[..., column] = 0  # the feedback column of x is a placeholder: the loop used the rates
        d_drive = d_rates * rate_by_drive if ctx.needs_input_grad[1] else None
        d_w_hh, d_w_ih, d_bias = d_weights[:, :H], d_weights[:, H : H + F], d_weights[:, H + F]
        hidden = states[1:, :H]  # h_t, [T, H, S]
        d_w_head = torch.tensordot(d_raw, hidden, dims=([0, 1], [0, 2]))  # [P, H]
        return d_x, d_drive, d_w_ih, d_bias, d_w_hh, d_w_head, d_raw.sum((0, 1)), None, None


@torch.no_grad()
def _loop_forward(x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column, workspace=None):
    """Forward pass of :class:`_StepLoop` (arguments as there); returns rates ``[T, S]``, parameters used
    ``[T, S, P]`` and their raw values ``[T, S, P]``, the recurrence's activations ``[T, 4H, S]``, cells
    and their ``tanh`` ``[T, H, S]`` and the augmented states ``[T + 1, H + F + 1, S]`` (these four taken
    from ``workspace`` if one is given)."""
    T, S, F = x.shape
    H = w_hh.shape[1]
    lag = family.lag
    weights = augmented_weights(w_ih, bias, w_hh)  # [4H, K]
    gates, cells, tanh_cells, states = _buffers(
        workspace, x, (T, 4 * H, S), (T, H, S), (T, H, S), (T + 1, H + F + 1, S)
    )
    augmented_states(x, H, out=states)
    raw = x.new_empty(T, S, w_head.shape[0])  # row-major [S, P] per step: the family reads columns
    # with feedback the rates are written straight into the feedback row of the next step's state
    rates = states[1:, H + feedback_column] if feedback_column is not None else x.new_empty(T, S)
    context = family.step_context(drive)
    initial_raw = family.initial_raw.to(x)
    # one call each for every step's view
    gate_steps, state_steps = gate_views(gates), states.unbind(0)
    cell_steps, tanh_steps = cells.unbind(0), tanh_cells.unbind(0)
    hidden_steps, raw_steps, rate_steps = states[:, :H].unbind(0), raw.unbind(0), rates.unbind(0)
    raw_columns = raw.transpose(1, 2).unbind(0)  # [P, S] per step
    context_steps = context.unbind(0)
    b_head = b_head[:, None]
    start = initial_raw.expand(S, -1)
    for t in range(T):
        torch.mm(weights, state_steps[t], out=gate_steps[t][0])  # [4H, K] @ [K, S]
        h = hidden_steps[t + 1]
        _activate(gate_steps[t], cell_steps[t - 1] if t > 0 else None, cell_steps[t], tanh_steps[t], h)
        torch.addmm(b_head, w_head, h, out=raw_columns[t])  # [P, S] written into [S, P]
        family.step_rate(context_steps[t], raw_steps[t - lag] if t >= lag else start, out=rate_steps[t])
    used_raw = params_in_use(raw[: max(T - lag, 0)], initial_raw, T)  # [T, S, P]
    if feedback_column is not None:  # a copy: the states may be a workspace buffer, reused later
        rates = rates.clone(memory_format=torch.contiguous_format)
    return rates, family.to_params(used_raw), used_raw, gates, cells, tanh_cells, states
