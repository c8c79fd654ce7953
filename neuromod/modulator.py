"""The modulator: one LSTM shared by every neuron, with a state of its own per neuron.

B trials x N neurons are B*N independent sequences of the same cell. When the modulator's inputs do not
depend on the neuron's output the whole trial is one fused sequence call; with ``feedback`` the layer
steps through time (never through neurons or trials).

Fast path (see docs/performance.md). The weights live in an ``nn.LSTM`` (so checkpoints and the CUDA path,
which uses cuDNN, stay standard). On the CPU the LSTM and its head run in a hand-written recurrence
(:func:`modulator_sequence`, :func:`lstm_cell`) with its own backward pass:

- the input projection of every step is computed before the time loop;
- states are kept *transposed*, ``[H, S]`` per step, so every gate is one contiguous block and each
  elementwise operation runs over contiguous memory (with the usual ``[S, 4H]`` layout a gate is a strided
  column slice);
- the gates are reordered to (input, forget, output, cell): the three sigmoid gates form one block;
- the backward pass is explicit BPTT: every weight gradient is accumulated inside the time loop while the
  step's gate gradient is in cache, and autograd records one node per sequence instead of ~10 per step;
- the large activations live in reused buffers (:class:`Workspace`): fresh tens-of-MB allocations are
  page-faulted in on every step otherwise.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

#: Signals a modulator may read, per neuron and step.
MODULATOR_SIGNALS = ("drive", "feedback", "input")
#: Initial forget-gate bias of the modulator: the cell keeps its content by default, which memory
#: tasks need (measured: reaches 0.99 on the default task in fewer steps than 0).
FORGET_BIAS = 2.0
#: Implementations of the recurrence. ``auto``: cuDNN's ``nn.LSTM`` on CUDA, the hand-written one on CPU.
IMPLEMENTATIONS = ("auto", "fused", "native")
#: What a :class:`Modulator` built without an explicit ``implementation`` uses (the benchmarks change it
#: to compare implementations end to end).
DEFAULT_IMPLEMENTATION = "auto"

#: Sequences (B*N) from which one step of the step loop is a single hand-written autograd node.
CELL_FUNCTION_MIN = 1024
#: Input widths up to this are projected with broadcast multiply-adds (a K=1 matrix product is slow).
_SMALL_INPUT = 4

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


_WORKSPACE = Workspace()


def gate_order(hidden: int, device: torch.device | None = None) -> Tensor:
    """Row permutation from PyTorch's gate order (i, f, g, o) to the fast path's (i, f, o, g)."""
    H = hidden
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(
        device
    )


def _activate(gates: Tensor, c_prev: Tensor | None, c: Tensor, tanh_c: Tensor, h: Tensor) -> None:
    """In place: ``gates [4H, S]`` (pre-activations, order i, f, o, g) -> activations; writes the new
    cell ``c``, ``tanh(c)`` and ``h`` (each ``[H, S]``)."""
    H = c.shape[0]
    gates[: 3 * H].sigmoid_()
    gates[3 * H :].tanh_()
    i, f, o, g = gates[:H], gates[H : 2 * H], gates[2 * H : 3 * H], gates[3 * H :]
    if c_prev is None:  # zero initial cell
        torch.mul(i, g, out=c)
    else:
        torch.mul(f, c_prev, out=c)
        c.addcmul_(i, g)
    torch.tanh(c, out=tanh_c)
    torch.mul(o, tanh_c, out=h)


def _gate_grads(
    d: Tensor, dh: Tensor, dc: Tensor, gates: Tensor, c_prev: Tensor | None, tanh_c: Tensor, tmp: Tensor
) -> None:
    """One step of BPTT, in place. ``dh [H, S]``: gradient reaching h_t; ``dc [H, S]``: gradient reaching
    c_t from later steps, replaced by the gradient reaching c_{t-1}; ``d [4H, S]`` receives the gradient
    of the gate pre-activations."""
    H = dh.shape[0]
    i, f, o, g = gates[:H], gates[H : 2 * H], gates[2 * H : 3 * H], gates[3 * H :]
    torch.mul(dh, tanh_c, out=d[2 * H : 3 * H])  # dL/do
    torch.mul(dh, o, out=tmp)
    dc.add_(_tanh_backward(tmp, tanh_c, grad_input=tmp))  # dL/dc_t
    torch.mul(dc, g, out=d[:H])  # dL/di
    if c_prev is None:
        d[H : 2 * H].zero_()
    else:
        torch.mul(dc, c_prev, out=d[H : 2 * H])  # dL/df
    torch.mul(dc, i, out=d[3 * H :])  # dL/dg
    dc.mul_(f)  # dL/dc_{t-1}
    _sigmoid_backward(d[: 3 * H], gates[: 3 * H], grad_input=d[: 3 * H])
    _tanh_backward(d[3 * H :], gates[3 * H :], grad_input=d[3 * H :])


def _buffers(workspace: Workspace | None, like: Tensor, *shapes: tuple[int, ...]) -> list[Tensor]:
    if workspace is None:
        return [like.new_empty(shape) for shape in shapes]
    return [workspace.take(tuple(shape), like) for shape in shapes]


def _project(x: Tensor, w_ih: Tensor, bias: Tensor, out: Tensor) -> None:
    """``out [T, 4H, S] = w_ih [4H, F] @ x[t]^T + bias`` for every step (``x [T, S, F]``)."""
    T, _, F = x.shape
    x_t = x.transpose(1, 2)  # [T, F, S]
    if F <= _SMALL_INPUT:
        torch.addcmul(bias[None, :, None], w_ih[None, :, :1], x_t[:, :1], out=out)
        for f in range(1, F):
            out.addcmul_(w_ih[None, :, f : f + 1], x_t[:, f : f + 1])
    else:
        torch.bmm(w_ih.expand(T, *w_ih.shape), x_t, out=out)
        out.add_(bias[:, None])


class _ModulatorSequence(torch.autograd.Function):
    """LSTM over a whole sequence from a zero state, then the linear head.

    ``x [T, S, F]``, ``w_ih [4H, F]``, ``bias [4H]``, ``w_hh [4H, H]`` (gate rows in the order i, f, o, g),
    ``w_head [P, H]``, ``b_head [P]`` -> raw parameters ``[T, P, S]``. Every gradient is accumulated
    inside the backward time loop, while that step's gate gradient is still in cache.
    """

    @staticmethod
    def forward(ctx, x, w_ih, bias, w_hh, w_head, b_head):
        T, S, _ = x.shape
        H = w_hh.shape[1]
        workspace = _WORKSPACE if x.device.type == "cpu" else None
        gates, c, tanh_c, h = _buffers(workspace, x, (T, 4 * H, S), (T, H, S), (T, H, S), (T, H, S))
        # input projection of every step before the loop; becomes the activations, kept for backward
        _project(x, w_ih, bias, out=gates)  # [T, 4H, S]
        raw = x.new_empty(T, w_head.shape[0], S)
        b_head = b_head[:, None]
        for t in range(T):
            if t > 0:
                gates[t].addmm_(w_hh, h[t - 1])  # [4H, H] @ [H, S]
            _activate(gates[t], c[t - 1] if t > 0 else None, c[t], tanh_c[t], h[t])
            torch.addmm(b_head, w_head, h[t], out=raw[t])  # [P, S]
        ctx.save_for_backward(x, w_ih, w_hh, w_head, gates, c, tanh_c, h)
        if workspace is not None:
            weakref.finalize(ctx, workspace.give, gates, c, tanh_c, h)
        return raw

    @staticmethod
    def backward(ctx, grad_raw):
        x, w_ih, w_hh, w_head, gates, c, tanh_c, h = ctx.saved_tensors
        T, H, S = h.shape
        F = x.shape[2]
        grad_raw = grad_raw.contiguous()  # [T, P, S]
        need_x = ctx.needs_input_grad[0]
        # [x, 1] per step: one product gives the input weights' and the bias' gradients together
        x_one = torch.cat([x, x.new_ones(T, S, 1)], dim=2)  # [T, S, F + 1]
        d = x.new_empty(4 * H, S)  # gate pre-activation gradient of the current step
        dh, recurrent, dc, tmp = (x.new_zeros(H, S) for _ in range(4))
        d_w_hh = torch.zeros_like(w_hh)
        d_w_in = x.new_zeros(F + 1, 4 * H)  # transposed: one matrix-vector product per column of [x, 1]
        d_w_head = torch.zeros_like(w_head)
        d_x = x.new_empty(T, F, S) if need_x else None
        w_hh_t, w_head_t = w_hh.t(), w_head.t()
        for t in range(T - 1, -1, -1):
            torch.addmm(recurrent, w_head_t, grad_raw[t], out=dh)  # [H, S]
            d_w_head.addmm_(grad_raw[t], h[t].t())
            _gate_grads(d, dh, dc, gates[t], c[t - 1] if t > 0 else None, tanh_c[t], tmp)
            if F <= _SMALL_INPUT:  # a [4H, S] @ [S, F + 1] product is several times slower than these
                for j in range(F + 1):
                    d_w_in[j].addmv_(d, x_one[t, :, j])  # [4H]
            else:
                d_w_in.addmm_(x_one[t].t(), d.t())  # [F + 1, 4H]
            if need_x:
                torch.mm(w_ih.t(), d, out=d_x[t])  # [F, S]
            if t > 0:
                d_w_hh.addmm_(d, h[t - 1].t())  # [4H, H]
                torch.mm(w_hh_t, d, out=recurrent)  # [H, S]
        d_x = d_x.transpose(1, 2) if need_x else None  # [T, S, F]
        return d_x, d_w_in[:F].t(), d_w_in[F], d_w_hh, d_w_head, grad_raw.sum((0, 2))


class _LSTMCell(torch.autograd.Function):
    """One step. ``pre [4H, S]``, ``h, c [H, S]`` (the previous state), ``w_hh [4H, H]`` -> new ``h, c``."""

    @staticmethod
    def forward(ctx, pre: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
        gates = torch.addmm(pre, w_hh, h_prev)  # [4H, S]
        c, tanh_c, h = (torch.empty_like(h_prev) for _ in range(3))
        _activate(gates, c_prev, c, tanh_c, h)
        ctx.save_for_backward(gates, h_prev, c_prev, tanh_c, w_hh)
        return h, c

    @staticmethod
    def backward(ctx, grad_h: Tensor | None, grad_c: Tensor | None):
        gates, h_prev, c_prev, tanh_c, w_hh = ctx.saved_tensors
        dh = torch.zeros_like(h_prev) if grad_h is None else grad_h
        dc = torch.zeros_like(c_prev) if grad_c is None else grad_c.clone()
        d_pre = torch.empty_like(gates)
        _gate_grads(d_pre, dh, dc, gates, c_prev, tanh_c, torch.empty_like(dh))
        d_h = w_hh.t() @ d_pre if ctx.needs_input_grad[1] else None  # [H, S]
        d_w = d_pre @ h_prev.t() if ctx.needs_input_grad[3] else None  # [4H, H]
        return d_pre, d_h, dc, d_w


def modulator_sequence(
    x: Tensor, w_ih: Tensor, bias: Tensor, w_hh: Tensor, w_head: Tensor, b_head: Tensor
) -> Tensor:
    """Fused LSTM + head from a zero state: ``x [T, S, F]``, ``w_ih [4H, F]``, ``bias [4H]``,
    ``w_hh [4H, H]`` (gate rows in the order i, f, o, g), ``w_head [P, H]``, ``b_head [P]`` -> raw
    parameters ``[T, P, S]``."""
    args = (x, w_ih, bias, w_hh, w_head, b_head)
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return _ModulatorSequence.apply(*args)
    return _sequence_without_grad(*args)


@torch.no_grad()
def _sequence_without_grad(x, w_ih, bias, w_hh, w_head, b_head) -> Tensor:
    """:func:`modulator_sequence` for evaluation: nothing is kept for a backward pass, so one step's
    buffers suffice (they stay in cache, and a large evaluation batch needs no trial-sized memory)."""
    T, S, _ = x.shape
    H = w_hh.shape[1]
    gates = x.new_empty(4 * H, S)
    c, c_next, tanh_c, h = (x.new_empty(H, S) for _ in range(4))
    raw = x.new_empty(T, w_head.shape[0], S)
    for t in range(T):
        _project(x[t : t + 1], w_ih, bias, out=gates[None])  # [1, 4H, S]
        if t > 0:
            gates.addmm_(w_hh, h)
        _activate(gates, c if t > 0 else None, c_next, tanh_c, h)
        c, c_next = c_next, c
        torch.addmm(b_head[:, None], w_head, h, out=raw[t])  # [P, S]
    return raw


def lstm_cell(pre: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One step of the recurrence: ``pre [4H, S]``, ``state (h, c)`` each ``[H, S]`` -> new ``(h, c)``.

    For few sequences the step is composed of autograd operations (their C++ backward costs less than
    a Python-level backward at this size); from :data:`CELL_FUNCTION_MIN` sequences on it is one
    hand-written autograd node.
    """
    h, c = state
    if pre.shape[1] >= CELL_FUNCTION_MIN:
        return _LSTMCell.apply(pre, h, c, w_hh)
    H = h.shape[0]
    gates = torch.addmm(pre, w_hh, h)  # [4H, S]
    sig = gates[: 3 * H].sigmoid()  # i, f, o
    g = gates[3 * H :].tanh()
    c = torch.addcmul(sig[H : 2 * H] * c, sig[:H], g)
    return sig[2 * H :] * c.tanh(), c


class Modulator(nn.Module):
    """LSTM cell (shared weights) + linear head to the activation family's raw parameters.

    The head's bias starts at the family's initial raw values, so an untrained modulator sets
    parameters scattered around the initial ones.

    Args:
        implementation: ``auto`` (``native`` on CUDA, ``fused`` elsewhere), ``fused`` (the hand-written
            recurrence) or ``native`` (``nn.LSTM``); None: :data:`DEFAULT_IMPLEMENTATION`. All compute the
            same function. May be changed on a built module (attribute ``implementation``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_params: int,
        initial_raw: Tensor,
        implementation: str | None = None,
    ):
        super().__init__()
        implementation = implementation or DEFAULT_IMPLEMENTATION
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"modulator implementation must be one of {list(IMPLEMENTATIONS)}, got '{implementation}'"
            )
        self.hidden_size = hidden_size
        self.implementation = implementation
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, n_params)
        self.register_buffer("order", gate_order(hidden_size), persistent=False)
        with torch.no_grad():
            self.head.bias.copy_(initial_raw)
            for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                bias[hidden_size : 2 * hidden_size].fill_(FORGET_BIAS / 2)

    def uses_fused(self, like: Tensor) -> bool:
        """Whether the hand-written recurrence runs for a tensor on ``like``'s device."""
        if self.implementation == "auto":
            return like.device.type != "cuda"
        return self.implementation == "fused"

    # -- whole sequence -------------------------------------------------------------------------------
    def forward(self, signals: Tensor) -> Tensor:
        """Whole sequence at once: ``signals [T, S, F]`` -> raw parameters ``[T, S, P]``."""
        if not self.uses_fused(signals):
            hidden, _ = self.lstm(signals)  # [T, S, H]
            return self.head(hidden)  # [T, S, P]
        w_ih, bias, w_hh = self.fast_weights()
        raw = modulator_sequence(signals, w_ih, bias, w_hh, self.head.weight, self.head.bias)  # [T, P, S]
        return raw.transpose(1, 2)  # [T, S, P]

    # -- pieces of the fast path (also used by the step loop) ----------------------------------------
    def fast_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """``W_ih [4H, F]``, the summed bias ``[4H]`` and ``W_hh [4H, H]``, gate rows in the fast order."""
        lstm, order = self.lstm, self.order
        return lstm.weight_ih_l0[order], (lstm.bias_ih_l0 + lstm.bias_hh_l0)[order], lstm.weight_hh_l0[order]

    def read(self, hidden: Tensor) -> Tensor:
        """The head on a transposed state: ``hidden [H, S]`` -> raw parameters ``[P, S]``."""
        return torch.addmm(self.head.bias[:, None], self.head.weight, hidden)

    # -- one step (nn.LSTM layout; kept for callers that step the modulator themselves) ----------------
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


def shift_by_lag(params: Tensor, initial: Tensor, lag: int) -> Tensor:
    """Parameters used at step t are those produced at t - lag; the first ``lag`` steps use ``initial``.

    ``params [T, ...,  P]``, ``initial [P]`` -> ``[T, ..., P]``.
    """
    if lag == 0:
        return params
    steps = params.shape[0]
    head = initial.expand(min(lag, steps), *params.shape[1:])
    return torch.cat([head, params[: max(steps - lag, 0)]], dim=0)
