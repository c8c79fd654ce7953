"""The feedback step loop on the hand-written kernels, as one autograd node.

With ``feedback`` a neuron's rate at t - 1 is one of its modulator's inputs at t, so the layer steps
through time (never through neurons or trials). Recorded by autograd, each step's ~35 small operations
would cost a node in the forward and in the backward pass; :class:`StepLoop` runs the whole loop (LSTM
cell, head, parameter transform, transfer function, lag, feedback) as one node with a hand-written
backward pass, built from :mod:`neuromod.neuron.kernels`. :func:`run_step_loop` is the entry point.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from neuromod.activation import ActivationFamily
from neuromod.neuron.kernels import (
    activate,
    augmented_states,
    augmented_weights,
    buffers,
    gate_grads,
    gate_views,
    shared_workspace,
)
from neuromod.neuron.modulator import params_in_use


def run_step_loop(
    x: Tensor,
    drive: Tensor,
    w_ih: Tensor,
    bias: Tensor,
    w_hh: Tensor,
    w_head: Tensor,
    b_head: Tensor,
    family: ActivationFamily,
    feedback_column: int | None,
) -> tuple[Tensor, Tensor]:
    """The step loop (arguments as in :class:`StepLoop`) -> rates ``[T, S]``, parameters used
    ``[T, S, P]``: through :class:`StepLoop` when a gradient is needed, else its forward pass alone
    (nothing kept for a backward pass)."""
    args = (x, drive, w_ih, bias, w_hh, w_head, b_head)
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return StepLoop.apply(*args, family, feedback_column)
    return loop_forward(*args, family, feedback_column)[:2]


class StepLoop(torch.autograd.Function):
    """The whole step loop (LSTM cell, head, parameter transform, transfer function, lag, feedback) as
    one autograd node (the ``fused`` implementation; the default on the CPU).

    ``x [T, S, F]`` (the modulator's inputs, feedback column zero), ``drive [T, S]``, ``w_ih [4H, F]``,
    ``bias [4H]``, ``w_hh [4H, H]`` (gate rows in the kernels' order i, f, o, g), the head's
    ``w_head [P, H]``, ``b_head [P]``, the activation ``family`` and the column of the feedback in ``x``
    (None: no feedback) -> rates ``[T, S]``, parameters used ``[T, S, P]``. The node gives no gradient
    to a family's own trainable state (none of the modulated families has any).

    Why: recorded by autograd, each of a step's ~35 small operations costs a node in the forward and in
    the backward pass. Here the forward pass records nothing and a step is a few in-place operations: one
    product for the gates (the augmented state ``[h_{t-1}; x_t; 1]`` carries the feedback in its
    feedback row, see :func:`~neuromod.neuron.kernels.augmented_weights`), one ``sigmoid`` for all
    gates, the head, and the family's :meth:`~neuromod.activation.ActivationFamily.step_rate`. The local
    derivatives of the transform and the transfer function are taken for all steps at once after the
    loop (the families are elementwise: a rate depends only on its own drive and parameters, a parameter
    only on its own raw value). The backward pass steps back through time with the modulator's in-place
    gate gradients (states transposed, ``[H, S]``) and one product per step back through the weights.
    """

    @staticmethod
    def forward(ctx, x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column):
        workspace = shared_workspace(x)
        rates, used, used_raw, gates, cells, tanh_cells, states = loop_forward(
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
            gate_grads(d_views, dh, dc, steps[t], c_prev, tanh_steps[t], tmp)
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
def loop_forward(x, drive, w_ih, bias, w_hh, w_head, b_head, family, feedback_column, workspace=None):
    """Forward pass of :class:`StepLoop` (arguments as there); returns rates ``[T, S]``, parameters used
    ``[T, S, P]`` and their raw values ``[T, S, P]``, the recurrence's activations ``[T, 4H, S]``, cells
    and their ``tanh`` ``[T, H, S]`` and the augmented states ``[T + 1, H + F + 1, S]`` (these four taken
    from ``workspace`` if one is given)."""
    T, S, F = x.shape
    H = w_hh.shape[1]
    lag = family.lag
    weights = augmented_weights(w_ih, bias, w_hh)  # [4H, K]
    gates, cells, tanh_cells, states = buffers(
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
        activate(gate_steps[t], cell_steps[t - 1] if t > 0 else None, cell_steps[t], tanh_steps[t], h)
        torch.addmm(b_head, w_head, h, out=raw_columns[t])  # [P, S] written into [S, P]
        family.step_rate(context_steps[t], raw_steps[t - lag] if t >= lag else start, out=rate_steps[t])
    used_raw = params_in_use(raw[: max(T - lag, 0)], initial_raw, T)  # [T, S, P]
    if feedback_column is not None:  # a copy: the states may be a workspace buffer, reused later
        rates = rates.clone(memory_format=torch.contiguous_format)
    return rates, family.to_params(used_raw), used_raw, gates, cells, tanh_cells, states
