"""The LSTM recurrence of :mod:`neuromod.neuron.kernels` with a leading *member* dimension: M networks of
one shape, each with its own weights, run as one computation.

Per time step one batched product ``[M, 4H, K] @ [M, K, S]`` (``torch.bmm``) gives every member's gates,
input and bias included (the augmented state ``[h_{t-1}; x_t; 1]``); the elementwise gate arithmetic is
that of the single-network kernel (:func:`~neuromod.neuron.kernels.activate`,
:func:`~neuromod.neuron.kernels.gate_grads`) on ``[M, H, S]`` blocks, so a step costs as many operations
for M members as for one. The same recurrence serves the modulator (S = trials x neurons sequences) and the
LSTM control (S = trials, the head being its decoder).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from neuromod.neuron.kernels import activate, buffers, gate_grads, shared_workspace


def member_weights(w_ih: Tensor, bias: Tensor, w_hh: Tensor) -> Tensor:
    """``[W_hh | W_ih | b]`` per member, ``[M, 4H, H + F + 1]``, the cell gate's rows doubled (``tanh(z) =
    2 sigmoid(2 z) - 1``, see :func:`~neuromod.neuron.kernels.augmented_weights`). Gate rows in the
    order i, f, o, g."""
    H = w_hh.shape[-1]
    weights = torch.cat([w_hh, w_ih, bias[..., None]], dim=-1)
    weights[:, 3 * H :] *= 2
    return weights


def member_gate_views(gates: Tensor) -> list[tuple[Tensor, ...]]:
    """Per step of ``gates [T, M, 4H, S]``: ``(all, i, f, o, g, ifo)``, each ``[M, H, S]`` (``ifo``:
    ``[M, 3H, S]``), taken once for every step."""
    H = gates.shape[2] // 4
    blocks = [gates[:, :, k * H : (k + 1) * H].unbind(0) for k in range(4)]
    return list(zip(gates.unbind(0), *blocks, gates[:, :, : 3 * H].unbind(0), strict=True))


class MemberSequence(torch.autograd.Function):
    """M LSTMs over whole sequences from a zero state, then each member's linear head.

    ``x [M, T, S, F]``, ``w_ih [M, 4H, F]``, ``bias [M, 4H]``, ``w_hh [M, 4H, H]`` (gate rows i, f, o, g),
    ``w_head [M, P, H]``, ``b_head [M, P]`` -> raw outputs ``[M, T, S, P]``, a view of ``[T, M, P, S]``
    storage (each step's head product has the sequences innermost: with P innermost, a batched product of
    a few columns measured several times slower). The backward pass is explicit BPTT, every weight gradient
    accumulated inside the time loop (one batched product per step each)."""

    @staticmethod
    def forward(ctx, x, w_ih, bias, w_hh, w_head, b_head):
        M, T, S, F = x.shape
        H = w_hh.shape[-1]
        weights = member_weights(w_ih, bias, w_hh)  # [M, 4H, K], K = H + F + 1
        workspace = shared_workspace(x)
        gates, c, tanh_c, states = buffers(
            workspace, x, (T, M, 4 * H, S), (T, M, H, S), (T, M, H, S), (T + 1, M, H + F + 1, S)
        )
        member_states(x, H, out=states)
        raw = x.new_empty(T, M, w_head.shape[1], S)
        b_head = b_head[..., None]  # [M, P, 1]
        steps = member_gate_views(gates)
        for t in range(T):
            if t > 0:
                torch.bmm(weights, states[t], out=steps[t][0])  # [M, 4H, K] @ [M, K, S]
            else:  # h_{-1} = 0: the input and bias columns only
                torch.bmm(weights[:, :, H:], states[0, :, H:], out=steps[0][0])
            h = states[t + 1, :, :H]
            activate(steps[t], c[t - 1] if t > 0 else None, c[t], tanh_c[t], h)
            torch.baddbmm(b_head, w_head, h, out=raw[t])  # [M, P, S]
        ctx.save_for_backward(w_ih, w_hh, w_head, gates, c, tanh_c, states)
        if workspace is not None:
            weakref.finalize(ctx, workspace.give, gates, c, tanh_c, states)
        return raw.permute(1, 0, 3, 2)

    @staticmethod
    def backward(ctx, grad_raw):
        w_ih, w_hh, w_head, gates, c, tanh_c, states = ctx.saved_tensors
        T, M, H, S = c.shape
        F = w_ih.shape[-1]
        grad_raw = grad_raw.transpose(0, 1).transpose(2, 3)  # [T, M, P, S] (a view)
        need_x = ctx.needs_input_grad[0]
        d = gates.new_empty(M, 4 * H, S)  # the current step's gate pre-activation gradient
        d_views, steps = member_gate_views(d[None])[0], member_gate_views(gates)
        dh, dc, tmp = (gates.new_zeros(M, H, S) for _ in range(3))
        back = gates.new_zeros(M, H + F, S)  # gradient reaching [h_{t-1}; x_t] from step t
        back_weights = torch.cat([w_hh, w_ih], dim=-1).transpose(1, 2)  # [M, H + F, 4H]
        d_weights = gates.new_zeros(M, 4 * H, H + F + 1)  # [d W_hh | d W_ih | d b]
        d_w_head = gates.new_zeros(w_head.shape)  # [M, P, H]
        d_x = gates.new_empty(T, M, F, S) if need_x else None
        w_head_t = w_head.transpose(1, 2)  # [M, H, P]
        for t in range(T - 1, -1, -1):
            torch.baddbmm(back[:, :H], w_head_t, grad_raw[t], out=dh)  # [M, H, S]
            d_w_head.baddbmm_(grad_raw[t], states[t + 1, :, :H].transpose(1, 2))  # [M, P, S] @ [M, S, H]
            gate_grads(d_views, dh, dc, steps[t], c[t - 1] if t > 0 else None, tanh_c[t], tmp)
            if t > 0:
                d_weights.baddbmm_(d, states[t].transpose(1, 2))  # [M, 4H, S] @ [M, S, K]
                # the input rows too (F is small): a batched product's output must be contiguous
                torch.bmm(back_weights, d, out=back)  # [M, H + F, S]
                if need_x:
                    d_x[t].copy_(back[:, H:])
            else:  # h_{-1} = 0: no recurrent weight gradient, nothing to send further back
                d_weights[:, :, H:].baddbmm_(d, states[0, :, H:].transpose(1, 2))
                if need_x:
                    torch.bmm(back_weights[:, H:], d, out=d_x[0])  # [M, F, S]
        d_x = d_x.permute(1, 0, 3, 2) if need_x else None  # [M, T, S, F]
        d_w_hh, d_w_ih, d_bias = d_weights[..., :H], d_weights[..., H : H + F], d_weights[..., H + F]
        return d_x, d_w_ih, d_bias, d_w_hh, d_w_head, grad_raw.sum((0, 3))


def member_states(x: Tensor, hidden: int, out: Tensor) -> Tensor:
    """Fill ``out [T + 1, M, H + F + 1, S]`` so that ``out[t] = [h_{t-1}; x_t; 1]`` once the recurrence
    has written ``h_t`` into ``out[t + 1, :, :H]`` (zero initial state), from ``x [M, T, S, F]``."""
    M, T, _, F = x.shape
    H = hidden
    out[0, :, :H].zero_()
    out[:T, :, H : H + F].copy_(x.permute(1, 0, 3, 2))
    out[:T, :, H + F].fill_(1.0)
    out[T, :, H:].zero_()
    return out


@torch.no_grad()
def member_sequence_without_grad(
    x: Tensor, w_ih: Tensor, bias: Tensor, w_hh: Tensor, w_head: Tensor, b_head: Tensor, hidden: bool
) -> tuple[Tensor, Tensor | None]:
    """:class:`MemberSequence`'s forward for evaluation, with one step's buffers; also every step's
    hidden state ``[M, T, H, S]`` when ``hidden`` (the LSTM control's activity)."""
    M, T, S, F = x.shape
    H = w_hh.shape[-1]
    weights = member_weights(w_ih, bias, w_hh)
    gates = x.new_empty(M, 4 * H, S)
    views = member_gate_views(gates[None])[0]
    c, c_next, tanh_c = (x.new_empty(M, H, S) for _ in range(3))
    state, state_next = (x.new_empty(M, H + F + 1, S) for _ in range(2))
    for s in (state, state_next):
        s[:, H + F].fill_(1.0)
    state[:, :H].zero_()
    raw = x.new_empty(T, M, w_head.shape[1], S)
    kept = x.new_empty(T, M, H, S) if hidden else None
    inputs = x.permute(1, 0, 3, 2)  # [T, M, F, S]
    for t in range(T):
        state[:, H : H + F].copy_(inputs[t])
        torch.bmm(weights, state, out=gates)
        activate(views, c if t > 0 else None, c_next, tanh_c, state_next[:, :H])
        c, c_next = c_next, c
        state, state_next = state_next, state
        torch.baddbmm(b_head[..., None], w_head, state[:, :H], out=raw[t])  # [M, P, S]
        if kept is not None:
            kept[t].copy_(state[:, :H])
    return raw.permute(1, 0, 3, 2), None if kept is None else kept.transpose(0, 1)


def member_sequence(
    x: Tensor, w_ih: Tensor, bias: Tensor, w_hh: Tensor, w_head: Tensor, b_head: Tensor
) -> Tensor:
    """M fused LSTMs + heads from a zero state (:class:`MemberSequence`): ``x [M, T, S, F]`` -> raw
    outputs ``[M, T, S, P]``; without gradients, the evaluation path (one step's buffers)."""
    args = (x, w_ih, bias, w_hh, w_head, b_head)
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return MemberSequence.apply(*args)
    return member_sequence_without_grad(*args, hidden=False)[0]
