"""A population of neurons whose activation parameters are set, step by step, by a shared modulator.

B trials x N neurons are B*N independent sequences of the same modulator cell. When the modulator's
inputs do not depend on the neuron's output the whole trial is one fused sequence call; with ``feedback``
the layer steps through time (never through neurons or trials): on the hand-written kernels as one
autograd node (:mod:`neuromod.neuron.step_loop`), otherwise composed of autograd operations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuromod import validation
from neuromod.activation import ActivationFamily
from neuromod.chunks import in_chunks
from neuromod.neuron.modulator import (
    MODULATOR_INITS,
    MODULATOR_SIGNALS,
    Modulator,
    check_implementation,
    params_in_use,
)
from neuromod.neuron.step_loop import run_step_loop


class ModulatedNeurons(nn.Module):
    """N neurons ``y = gamma(drive; params)``; params come from a modulator (or are static / fixed).

    Args:
        n_neurons: N.
        activation: the activation family (also holds ``lag``).
        hidden_size: the modulator's LSTM size.
        modulator_inputs: signals per neuron, from ``drive`` (own pre-activation at t), ``feedback`` (own
            output at t - 1) and ``input`` (the network's input vector at t, shared by all neurons).
        input_size: size of the network's input (needed for the ``input`` signal).
        implementation: how the modulator runs, one of
            :data:`~neuromod.neuron.modulator.IMPLEMENTATIONS` (``architecture.implementation``); all
            compute the same function.
        modulator_init: how the modulator's weights start, one of
            :data:`~neuromod.neuron.modulator.MODULATOR_INITS` (``architecture.modulator_init``).
    """

    def __init__(
        self,
        n_neurons: int,
        activation: ActivationFamily,
        hidden_size: int = 64,
        modulator_inputs: list[str] = ("drive",),
        input_size: int = 0,
        implementation: str = "auto",
        modulator_init: str = "neuromod",
    ):
        super().__init__()
        check_implementation(implementation)
        validation.choice("architecture.modulator_init", modulator_init, MODULATOR_INITS)
        validation.integer("architecture.n_neurons", n_neurons, minimum=1)
        validation.integer("architecture.hidden_size", hidden_size, minimum=1)
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
            self.modulator = Modulator(
                width,
                hidden_size,
                activation.n_params,
                activation.initial_raw,
                implementation,
                modulator_init,
            )
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

    @torch.no_grad()
    def modulator_states(self, drive: Tensor, inputs: Tensor, rates: Tensor) -> tuple[Tensor, Tensor]:
        """The modulators' LSTM states ``h, c [T, B, N, H]`` of a pass, recomputed from its ``drive [T, B,
        N]``, ``inputs [T, B, D]`` and ``rates [T, B, N]`` (the feedback signal is the previous rate): for
        the analyses, not for training. Vectorised over trials and neurons, one ``lstm_cell`` per step."""
        T, B, N = drive.shape
        lstm = self.modulator.lstm
        previous = torch.cat([torch.zeros_like(rates[:1]), rates[:-1]])  # y_{t-1}  [T, B, N]
        x = self._signals(drive, inputs, previous).reshape(T, B * N, -1)
        h = c = drive.new_zeros(B * N, self.modulator.hidden_size)
        hs, cs = [], []
        for t in range(T):
            h, c = torch.lstm_cell(
                x[t], (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
            )
            hs.append(h)
            cs.append(c)
        return torch.stack(hs).reshape(T, B, N, -1), torch.stack(cs).reshape(T, B, N, -1)

    def modulator_step(self, h: Tensor, c: Tensor, drive: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """One step of every neuron's modulator from ``h, c [..., N, H]`` with a constant ``drive [..., N]``
        and ``inputs [..., D]``; the feedback signal is the rate the current state sets. This is the
        autonomous map whose fixed points the analyses look for (at a fixed point the ``lag`` between
        producing and using parameters changes nothing). Differentiable."""
        lstm, shape = self.modulator.lstm, h.shape
        rate = self.activation.gamma(drive, self.activation.to_params(self.modulator.head(h)))  # [..., N]
        x = self._signals(drive, inputs, rate).reshape(-1, self.modulator.lstm.input_size)
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        h, c = torch.lstm_cell(x, (h.reshape(-1, shape[-1]), c.reshape(-1, shape[-1])), *weights)
        return h.reshape(shape), c.reshape(shape)

    def _step_loop(self, drive: Tensor, inputs: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        """The step-by-step path over the B*N sequences, in chunks of sequences where one call could not
        index them all (:mod:`neuromod.chunks`): ``drive [T, B, N]``, ``inputs [T, B, D]`` -> rates
        ``[T, B, N]``, params ``[T, B, N, P]``."""
        T, B, N = drive.shape
        column = self._signal_column("feedback") if self.uses_feedback else None
        # the modulator's inputs per sequence; the feedback column is a placeholder the loop fills
        x = self._signals(drive, inputs, drive.new_zeros(()).expand(T, B, N)).reshape(T, B * N, -1)
        width = self.modulator.step_width(x.shape[-1])
        # the node is not recorded by autograd: it gives no gradient to a family's own trainable state
        # (none of the modulated ones has any)
        trainable_family = any(p.requires_grad for p in self.activation.parameters())
        if self.modulator.uses_loop_node(drive) and not trainable_family:
            rates, used = self._loop_node(x, drive.reshape(T, B * N), column, T * width)
        else:  # the composed loop's largest call is one step's

            def composed(xs: Tensor, ds: Tensor) -> tuple[Tensor, Tensor]:
                return self._step_loop_composed(xs, ds, initial, column)

            rates, used = in_chunks(composed, (x, drive.reshape(T, B * N)), 1, width)
        return rates.reshape(T, B, N), used.reshape(T, B, N, -1)

    def _signal_column(self, name: str) -> int:
        """Column of signal ``name`` in the modulator's input vector."""
        column = 0
        for signal in self.signals:
            if signal == name:
                return column
            column += self.input_size if signal == "input" else 1
        raise KeyError(name)

    def _loop_node(
        self, x: Tensor, drive: Tensor, column: int | None, per_sequence: int
    ) -> tuple[Tensor, Tensor]:
        """The step loop as one autograd node per chunk of sequences
        (:func:`~neuromod.neuron.step_loop.run_step_loop`): ``x [T, S, F]``, ``drive [T, S]`` -> rates
        ``[T, S]``, params ``[T, S, P]``."""
        head, family = self.modulator.head, self.activation
        w_ih, bias, w_hh = self.modulator.reordered_weights()  # gate rows in the order i, f, o, g

        def loop(xs: Tensor, ds: Tensor) -> tuple[Tensor, Tensor]:
            return run_step_loop(xs, ds, w_ih, bias, w_hh, head.weight, head.bias, family, column)

        return in_chunks(loop, (x, drive), 1, per_sequence)

    def _step_loop_composed(
        self, x: Tensor, drive: Tensor, initial: Tensor, column: int | None
    ) -> tuple[Tensor, Tensor]:
        """The step loop composed of autograd operations, in ``nn.LSTM``'s layout: ``nn.LSTM`` steps
        (cuDNN) with the ``native`` implementation, ``torch.lstm_cell`` steps with ``composed`` (for
        comparison with the loop node) or with ``fused`` when the family has trainable state.
        ``x [T, S, F]`` (feedback column a placeholder), ``drive [T, S]`` -> rates ``[T, S]``, params
        ``[T, S, P]``."""
        family, lag = self.activation, self.activation.lag
        T, S, _ = x.shape
        fused = self.modulator.uses_fused(drive)
        step = self.modulator.step_cell if fused else self.modulator.step
        state = self.modulator.initial_state(S, drive)
        if fused:
            state = (state[0][0], state[1][0])  # [S, H]
        previous = drive.new_zeros(S, 1)  # y_{t-1}, zero before the trial
        produced, rates, used = [], [], []
        # unbind, not x[t]: indexing one step would make autograd build a full [T, ...] zero gradient
        # per step (quadratic in T); unbind's gradient is one stack
        x_steps, drive_steps = x.unbind(0), drive.unbind(0)
        for t in range(T):
            signals = x_steps[t]  # [S, F]
            if column is not None:
                signals = torch.cat([signals[:, :column], previous, signals[:, column + 1 :]], dim=1)
            raw, state = step(signals, state)  # [S, P]
            produced.append(family.to_params(raw))
            params_t = produced[t - lag] if t >= lag else initial.expand(S, -1)  # [S, P]
            rate = family.gamma(drive_steps[t], params_t)  # [S]
            previous = rate[:, None]
            rates.append(rate)
            used.append(params_t)
        return torch.stack(rates), torch.stack(used)
