"""The modulator's hand-written CPU kernels: the LSTM recurrence and its backward pass, step by step.

B trials x N neurons are B*N independent sequences of one LSTM cell and its linear head. These functions
run the cell over the S = B*N sequences at once (see docs/performance.md for what each choice saved):

- the state is *augmented*, ``[h_{t-1}; x_t; 1]``, and the weights with it, ``[W_hh | W_ih | b]``: one
  matrix product per step gives the gates with input and bias, and one per step gives every weight's
  gradient (:func:`augmented_weights`, :func:`augmented_states`);
- states are kept *transposed*, ``[H, S]`` per step, so every gate is one contiguous block and each
  elementwise operation runs over contiguous memory (with the usual ``[S, 4H]`` layout a gate is a strided
  column slice);
- the gates are reordered to (input, forget, output, cell) (:func:`gate_order`) and ``tanh`` is computed
  as ``2 sigmoid(2 z) - 1``: all four gates take one ``sigmoid`` (CPU ``tanh`` costs about three);
- the backward pass is explicit BPTT (:func:`gate_grads`): every weight gradient is accumulated inside the
  time loop while the step's gate gradient is in cache, and autograd records one node per sequence
  instead of ~10 per step (:class:`ModulatorSequence`);
- the large activations live in reused buffers (:class:`Workspace`, :func:`shared_workspace`): fresh
  tens-of-MB allocations are page-faulted in on every step otherwise.

The weights themselves stay in the :class:`~neuromod.neuron.modulator.Modulator`'s ``nn.LSTM``; the
feedback step loop (:mod:`neuromod.neuron.step_loop`) is built from the same pieces.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input


class Workspace:
    """A few reusable flat buffers for the fused recurrence's large activations.

    Freshly allocated tensors of this size (tens of MB) come straight from the OS and every page is
    faulted in on first write, which measured as a large share of a training step on CPU. Buffers taken
    here go back to the pool when the autograd node that saved them is released (or at the end of a
    pass), so a training loop reuses the same memory every step. At most ``keep`` buffers are kept.
    """

    def __init__(self, keep: int = 6):
        self.keep = keep
        self.free: list[Tensor] = []

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        numel = 1
        for size in shape:
            numel *= size
        fits = [
            i
            for i, b in enumerate(self.free)
            if b.numel() >= numel and b.dtype == like.dtype and b.device == like.device
        ]
        if fits:
            buffer = self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        else:
            buffer = like.new_empty(numel)
        return buffer[:numel].view(shape)

    def give(self, *tensors: Tensor) -> None:
        """Return buffers obtained from :meth:`take` (the smallest are dropped beyond ``keep``)."""
        for tensor in tensors:
            base = tensor._base if tensor._base is not None else tensor
            self.free.append(base)
        if len(self.free) > self.keep:
            self.free.sort(key=Tensor.numel, reverse=True)
            del self.free[self.keep :]


_SHARED = Workspace()


def shared_workspace(like: Tensor) -> Workspace | None:
    """The process's buffer pool for tensors on ``like``'s device: one :class:`Workspace` on the CPU
    (where fresh allocations are page-faulted in), None elsewhere (fresh buffers)."""
    return _SHARED if like.device.type == "cpu" else None


def gate_order(hidden: int, device: torch.device | None = None) -> Tensor:
    """Row permutation from PyTorch's gate order (i, f, g, o) to the kernels' (i, f, o, g)."""
    H = hidden
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(
        device
    )


#: ``-1`` as a 0-dim tensor: ``torch.add(_MINUS_ONE, s, alpha=2, out=s)`` is ``2 s - 1`` in one operation.
_MINUS_ONE = torch.tensor(-1.0)


def augmented_weights(w_ih: Tensor, bias: Tensor, w_hh: Tensor) -> Tensor:
    """``[W_hh | W_ih | b]`` ``[4H, H + F + 1]`` with the cell-gate rows doubled, for :func:`activate`.

    The recurrence multiplies it with the augmented state ``[h_{t-1}; x_t; 1]``, so one product per step
    gives the gates' pre-activations, input and bias included (and, in the backward pass, one product
    every weight's gradient). The cell gate's rows are doubled because ``tanh(z) = 2 sigmoid(2 z) - 1``:
    all four gates then take one ``sigmoid`` (PyTorch's CPU ``tanh`` costs about three ``sigmoid``).
    """
    H = w_hh.shape[1]
    weights = torch.cat([w_hh, w_ih, bias[:, None]], dim=1)
    weights[3 * H :] *= 2
    return weights


def tanh_from_sigmoid(x: Tensor, out: Tensor) -> None:
    """``out = tanh(x) = 2 sigmoid(2 x) - 1`` (2.6-2.8x faster than ``torch.tanh`` on a CPU for a
    ``[64, 4000]`` block; about as fast for small ones)."""
    torch.mul(x, 2, out=out)
    out.sigmoid_()
    torch.add(_MINUS_ONE, out, alpha=2, out=out)


def gate_views(gates: Tensor) -> list[tuple[Tensor, ...]]:
    """Per step of ``gates [T, 4H, S]``: the step's block and its gates, ``(all, i, f, o, g, ifo)``
    (``ifo``: the three sigmoid gates). Taken once for every step (a view costs as much as a small
    operation at the step loop's sizes)."""
    H = gates.shape[1] // 4
    blocks = [gates[:, k * H : (k + 1) * H].unbind(0) for k in range(4)]
    return list(zip(gates.unbind(0), *blocks, gates[:, : 3 * H].unbind(0), strict=True))


def activate(gates: tuple[Tensor, ...], c_prev: Tensor | None, c: Tensor, tanh_c: Tensor, h: Tensor) -> None:
    """In place: one step's gate pre-activations (:func:`gate_views` of ``[4H, S]``, order i, f, o, g,
    the cell gate's doubled, see :func:`augmented_weights`) -> activations; writes the new cell ``c``,
    ``tanh(c)`` and ``h`` (each ``[H, S]``)."""
    block, i, f, o, g, _ = gates
    block.sigmoid_()
    torch.add(_MINUS_ONE, g, alpha=2, out=g)  # tanh of the cell gate's pre-activation
    if c_prev is None:  # zero initial cell
        torch.mul(i, g, out=c)
    else:
        torch.mul(f, c_prev, out=c)
        c.addcmul_(i, g)
    tanh_from_sigmoid(c, tanh_c)
    torch.mul(o, tanh_c, out=h)


def gate_grads(
    d: tuple[Tensor, ...],
    dh: Tensor,
    dc: Tensor,
    gates: tuple[Tensor, ...],
    c_prev: Tensor | None,
    tanh_c: Tensor,
    tmp: Tensor,
) -> None:
    """One step of BPTT, in place. ``dh [H, S]``: gradient reaching h_t; ``dc [H, S]``: gradient reaching
    c_t from later steps, replaced by the gradient reaching c_{t-1}; ``d`` (:func:`gate_views` of a
    ``[4H, S]`` buffer) receives the gradient of the gate pre-activations (the true ones, not the doubled
    cell gate); ``gates``: the step's activations."""
    _, di, df, do, dg, d_ifo = d
    _, i, f, o, g, ifo = gates
    torch.mul(dh, tanh_c, out=do)
    torch.mul(dh, o, out=tmp)
    dc.add_(_tanh_backward(tmp, tanh_c, grad_input=tmp))  # dL/dc_t
    torch.mul(dc, g, out=di)
    if c_prev is None:
        df.zero_()
    else:
        torch.mul(dc, c_prev, out=df)
    torch.mul(dc, i, out=dg)
    dc.mul_(f)  # dL/dc_{t-1}
    _sigmoid_backward(d_ifo, ifo, grad_input=d_ifo)
    _tanh_backward(dg, g, grad_input=dg)


def buffers(workspace: Workspace | None, like: Tensor, *shapes: tuple[int, ...]) -> list[Tensor]:
    """Uninitialised tensors of ``shapes`` like ``like``: taken from ``workspace``, or fresh if None."""
    if workspace is None:
        return [like.new_empty(shape) for shape in shapes]
    return [workspace.take(tuple(shape), like) for shape in shapes]


def augmented_states(x: Tensor, hidden: int, out: Tensor) -> Tensor:
    """Fill ``out [T + 1, H + F + 1, S]`` so that ``out[t] = [h_{t-1}; x_t; 1]`` once the recurrence has
    written ``h_t`` into ``out[t + 1, :H]``: zero initial state, the inputs ``x [T, S, F]``, a row of ones
    (for the bias). ``out[T]`` holds the last hidden state only."""
    T, _, F = x.shape
    H = hidden
    out[0, :H].zero_()
    out[:T, H : H + F].copy_(x.transpose(1, 2))
    out[:T, H + F].fill_(1.0)
    out[T, H:].zero_()
    return out


class ModulatorSequence(torch.autograd.Function):
    """LSTM over a whole sequence from a zero state, then the linear head.

    ``x [T, S, F]``, ``w_ih [4H, F]``, ``bias [4H]``, ``w_hh [4H, H]`` (gate rows in the order i, f, o, g),
    ``w_head [P, H]``, ``b_head [P]`` -> raw parameters ``[T, P, S]``. One product per step in each
    direction (see :func:`augmented_weights`); every gradient is accumulated inside the backward time
    loop, while that step's gate gradient is still in cache.
    """

    @staticmethod
    def forward(ctx, x, w_ih, bias, w_hh, w_head, b_head):
        T, S, F = x.shape
        H = w_hh.shape[1]
        weights = augmented_weights(w_ih, bias, w_hh)  # [4H, K], K = H + F + 1
        workspace = shared_workspace(x)
        gates, c, tanh_c, states = buffers(
            workspace, x, (T, 4 * H, S), (T, H, S), (T, H, S), (T + 1, H + F + 1, S)
        )
        augmented_states(x, H, out=states)
        raw = x.new_empty(T, w_head.shape[0], S)
        b_head = b_head[:, None]
        steps = gate_views(gates)
        for t in range(T):
            if t > 0:
                torch.mm(weights, states[t], out=steps[t][0])  # [4H, K] @ [K, S]
            else:  # h_{-1} = 0: the input and bias columns only
                torch.mm(weights[:, H:], states[0, H:], out=steps[0][0])
            h = states[t + 1, :H]
            activate(steps[t], c[t - 1] if t > 0 else None, c[t], tanh_c[t], h)
            torch.addmm(b_head, w_head, h, out=raw[t])  # [P, S]
        ctx.save_for_backward(w_ih, w_hh, w_head, gates, c, tanh_c, states)
        if workspace is not None:
            weakref.finalize(ctx, workspace.give, gates, c, tanh_c, states)
        return raw

    @staticmethod
    def backward(ctx, grad_raw):
        w_ih, w_hh, w_head, gates, c, tanh_c, states = ctx.saved_tensors
        T, H, S = c.shape
        F = w_ih.shape[1]
        grad_raw = grad_raw.contiguous()  # [T, P, S]
        need_x = ctx.needs_input_grad[0]
        d = gates.new_empty(4 * H, S)  # gate pre-activation gradient of the current step
        d_views, steps = gate_views(d[None])[0], gate_views(gates)
        dh, dc, tmp = (gates.new_zeros(H, S) for _ in range(3))
        back = gates.new_zeros(H + F, S)  # gradient reaching [h_{t-1}; x_t] from step t
        back_weights = torch.cat([w_hh, w_ih], dim=1).t()  # [H + F, 4H]
        d_weights = gates.new_zeros(4 * H, H + F + 1)  # [d W_hh | d W_ih | d b]
        d_x = gates.new_empty(T, F, S) if need_x else None
        w_head_t = w_head.t()
        for t in range(T - 1, -1, -1):
            torch.addmm(back[:H], w_head_t, grad_raw[t], out=dh)  # [H, S]
            gate_grads(d_views, dh, dc, steps[t], c[t - 1] if t > 0 else None, tanh_c[t], tmp)
            if t > 0:
                d_weights.addmm_(d, states[t].t())  # [4H, S] @ [S, K]
                if need_x:
                    torch.mm(back_weights, d, out=back)  # [H + F, S]
                    d_x[t].copy_(back[H:])
                else:
                    torch.mm(back_weights[:H], d, out=back[:H])  # [H, S]
            else:  # h_{-1} = 0: no recurrent weight gradient, nothing to send further back
                d_weights[:, H:].addmm_(d, states[0, H:].t())
                if need_x:
                    torch.mm(back_weights[H:], d, out=d_x[0])  # [F, S]
        d_x = d_x.transpose(1, 2) if need_x else None  # [T, S, F]
        # the head's weight gradient over every step at once: sum_t grad_raw[t] h_t^T
        d_w_head = torch.bmm(grad_raw, states[1:, :H].transpose(1, 2)).sum(0)  # [P, H]
        d_w_hh, d_w_ih, d_bias = d_weights[:, :H], d_weights[:, H : H + F], d_weights[:, H + F]
        return d_x, d_w_ih, d_bias, d_w_hh, d_w_head, grad_raw.sum((0, 2))


def modulator_sequence(
    x: Tensor, w_ih: Tensor, bias: Tensor, w_hh: Tensor, w_head: Tensor, b_head: Tensor
) -> Tensor:
    """Fused LSTM + head from a zero state: ``x [T, S, F]``, ``w_ih [4H, F]``, ``bias [4H]``,
    ``w_hh [4H, H]`` (gate rows in the order i, f, o, g), ``w_head [P, H]``, ``b_head [P]`` -> raw
    parameters ``[T, P, S]``."""
    args = (x, w_ih, bias, w_hh, w_head, b_head)
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return ModulatorSequence.apply(*args)
    return sequence_without_grad(*args)


@torch.no_grad()
def sequence_without_grad(x, w_ih, bias, w_hh, w_head, b_head) -> Tensor:
    """:func:`modulator_sequence` for evaluation: nothing is kept for a backward pass, so one step's
    buffers suffice (a large evaluation batch needs no trial-sized memory)."""
    T, S, F = x.shape
    H = w_hh.shape[1]
    weights = augmented_weights(w_ih, bias, w_hh)
    gates = x.new_empty(4 * H, S)
    views = gate_views(gates[None])[0]
    c, c_next, tanh_c = (x.new_empty(H, S) for _ in range(3))
    state, state_next = (x.new_empty(H + F + 1, S) for _ in range(2))
    for s in (state, state_next):
        s[H + F].fill_(1.0)
    state[:H].zero_()
    raw = x.new_empty(T, w_head.shape[0], S)
    for t in range(T):
        state[H : H + F].copy_(x[t].t())
        torch.mm(weights, state, out=gates)
        activate(views, c if t > 0 else None, c_next, tanh_c, state_next[:H])
        c, c_next = c_next, c
        state, state_next = state_next, state
        torch.addmm(b_head[:, None], w_head, state[:H], out=raw[t])  # [P, S]
    return raw
