"""K networks of one architecture as one computation: their parameters stacked into one flat tensor
``[K, n]`` (member k's row holds its parameters in ``named_parameters`` order), and a forward pass with a
leading member dimension.

Supported architectures (the networks whose forward pass has a member-batched form here): ``additive`` and
``factorial`` with a modulator that reads no ``feedback`` (any family without trainable state of its own:
``gain``, ``learn_all_params``, ``geadah``, ``modulator_rate``, ``fixed``, ``static_learned``), the ``lstm``
control and the ``rnn`` control. The modulator and the LSTM control run on the member-batched recurrence of
:mod:`neuromod.ensemble.kernels`; the RNN control is one batched product per time step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from neuromod.ensemble.kernels import member_sequence, member_sequence_without_grad
from neuromod.models import Additive, Factorial, LSTMNetwork, ModelOutput, RNNNetwork
from neuromod.models.baselines import GATE_NAMES
from neuromod.neuron.kernels import gate_order
from neuromod.validation import ConfigError


@dataclass
class MemberOutputs:
    """What an ensemble returns for its members' trials (each member its own trials)."""

    outputs: Tensor  # [K, T, B, C]
    activity: Tensor | None = None  # [K, T, B, N] rates (hidden state for the controls); None in training
    params: Tensor | None = None  # [K, T, B, N, P] activation parameters used at each step
    drive: Tensor | None = None  # [K, T, B, N]
    param_names: tuple[str, ...] = ()
    gates: dict[str, Tensor] = field(default_factory=dict)  # name -> [K, T, B, H] (lstm, with record)

    @classmethod
    def join(cls, parts: list[MemberOutputs]) -> MemberOutputs:
        """The outputs of passes over consecutive chunks of the trials, as one (trials: dim 2)."""
        if len(parts) == 1:
            return parts[0]

        def cat(tensors: list[Tensor | None]) -> Tensor | None:
            return None if tensors[0] is None else torch.cat(tensors, dim=2)

        first = parts[0]
        return cls(
            outputs=cat([p.outputs for p in parts]),
            activity=cat([p.activity for p in parts]),
            params=cat([p.params for p in parts]),
            drive=cat([p.drive for p in parts]),
            param_names=first.param_names,
            gates={name: cat([p.gates[name] for p in parts]) for name in first.gates},
        )

    def member(self, k: int, n_steps: int) -> ModelOutput:
        """Member ``k``'s output on its first ``n_steps`` steps, as its network alone returns it."""

        def part(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor[k, :n_steps]

        return ModelOutput(
            outputs=part(self.outputs),
            activity=part(self.activity),
            params=part(self.params),
            param_names=self.param_names,
            gates={name: part(gate) for name, gate in self.gates.items()},
            drive=part(self.drive),
        )


Forward = Callable[[nn.Module, dict[str, Tensor], Tensor, bool], MemberOutputs]


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Each member's ``nn.Linear``: ``x [K, ..., I]``, ``weight [K, O, I]``, ``bias [K, O]`` ->
    ``[K, ..., O]``."""
    K, *lead, I = x.shape
    out = torch.baddbmm(bias[:, None], x.reshape(K, -1, I), weight.transpose(1, 2))
    return out.reshape(K, *lead, weight.shape[1])


def _lstm_weights(p: dict[str, Tensor], prefix: str, hidden: int) -> tuple[Tensor, Tensor, Tensor]:
    """The members' ``nn.LSTM`` weights for the kernels: ``W_ih [K, 4H, F]``, summed bias ``[K, 4H]``,
    ``W_hh [K, 4H, H]``, gate rows reordered to (i, f, o, g)."""
    order = gate_order(hidden, p[prefix + "weight_ih_l0"].device)
    w_ih, w_hh = p[prefix + "weight_ih_l0"][:, order], p[prefix + "weight_hh_l0"][:, order]
    return w_ih, (p[prefix + "bias_ih_l0"] + p[prefix + "bias_hh_l0"])[:, order], w_hh


def _modulated(
    model: nn.Module, p: dict[str, Tensor], inputs: Tensor, drive: Tensor
) -> tuple[Tensor, Tensor]:
    """The members' modulated neurons (``ModulatedNeurons.forward`` without feedback): ``drive [K, T, B,
    N]``, ``inputs [K, T, B, D]`` -> rates ``[K, T, B, N]``, parameters ``[K, T, B, N, P]``."""
    neurons = model.neurons
    family = neurons.activation
    K, T, B, N = drive.shape
    n_params = family.n_params
    initial = family.initial_params().to(drive)  # [P]
    if neurons.modulator is None:
        raw = family.initial_raw if neurons.static_raw is None else p["neurons.static_raw"][:, None, None]
        params = family.to_params(raw).to(drive).expand(K, T, B, N, n_params)
        return family.gamma(drive, params), params
    steps = T - family.lag  # what the last `lag` steps produce would act after the trial
    if steps <= 0:
        params = initial.expand(K, T, B, N, n_params)
        return family.gamma(drive, params), params
    parts = []
    for name in neurons.signals:  # drive and input (feedback is refused when the ensemble is built)
        if name == "drive":
            parts.append(drive[:, :steps, ..., None])
        else:
            parts.append(inputs[:, :steps, :, None, :].expand(K, steps, B, N, inputs.shape[-1]))
    signals = torch.cat(parts, dim=-1).reshape(K, steps, B * N, -1)  # [K, T - lag, B*N, F]
    hidden = neurons.modulator.hidden_size
    w_ih, bias, w_hh = _lstm_weights(p, "neurons.modulator.lstm.", hidden)
    head_w, head_b = p["neurons.modulator.head.weight"], p["neurons.modulator.head.bias"]
    raw = member_sequence(signals, w_ih, bias, w_hh, head_w, head_b)  # [K, T - lag, B*N, P]
    produced = family.to_params(raw).reshape(K, steps, B, N, n_params)
    if steps < T:
        produced = torch.cat([initial.expand(K, T - steps, B, N, n_params), produced], dim=1)
    return family.gamma(drive, produced), produced


def _additive(model: nn.Module, p: dict[str, Tensor], inputs: Tensor, record: bool) -> MemberOutputs:
    drive = _linear(inputs, p["encoder.weight"], p["encoder.bias"])  # [K, T, B, N]
    rates, params = _modulated(model, p, inputs, drive)
    outputs = _linear(rates, p["decoder.weight"], p["decoder.bias"])
    names = model.neurons.activation.param_names
    return MemberOutputs(outputs, rates, params, drive, names)


def _factorial(model: nn.Module, p: dict[str, Tensor], inputs: Tensor, record: bool) -> MemberOutputs:
    scalar = (-1,) + (1,) * (inputs.dim() - 1)  # one weight and one bias per member
    drive = p["weight"].reshape(scalar) * inputs + p["bias"].reshape(scalar)  # [K, T, B, N]
    rates, params = _modulated(model, p, inputs, drive)
    return MemberOutputs(rates, rates, params, drive, model.neurons.activation.param_names)


def _lstm(model: nn.Module, p: dict[str, Tensor], inputs: Tensor, record: bool) -> MemberOutputs:
    weights = _lstm_weights(p, "lstm.", model.lstm.hidden_size)
    head = (p["decoder.weight"], p["decoder.bias"])
    if record:  # evaluation: every step's hidden state is the activity, and the gates
        raw, hidden = member_sequence_without_grad(inputs, *weights, *head, hidden=True)
        hidden = hidden.transpose(2, 3)  # [K, T, B, H]
        return MemberOutputs(raw, hidden, gates=_lstm_gates(p, inputs, hidden))
    return MemberOutputs(member_sequence(inputs, *weights, *head))  # [K, T, B, C]


def _lstm_gates(p: dict[str, Tensor], inputs: Tensor, hidden: Tensor) -> dict[str, Tensor]:
    """``LSTMNetwork.gates`` per member: every step's gates recomputed from the hidden states ``[K, T, B,
    H]``, all steps at once, in PyTorch's gate order."""
    previous = torch.cat([torch.zeros_like(hidden[:, :1]), hidden[:, :-1]], dim=1)  # h_{t-1}
    bias = p["lstm.bias_ih_l0"] + p["lstm.bias_hh_l0"]
    pre = _linear(inputs, p["lstm.weight_ih_l0"], bias) + _linear(
        previous, p["lstm.weight_hh_l0"], torch.zeros_like(bias)
    )
    i, f, g, o = pre.chunk(4, dim=-1)  # [K, T, B, H] each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    cells, c = [], torch.zeros_like(hidden[:, 0])
    for t in range(inputs.shape[1]):  # c_t = f c_{t-1} + i g, a linear recurrence over time
        c = f[:, t] * c + i[:, t] * g[:, t]
        cells.append(c)
    return dict(zip(GATE_NAMES, (i, f, g, o, torch.stack(cells, dim=1)), strict=True))


def _rnn(model: nn.Module, p: dict[str, Tensor], inputs: Tensor, record: bool) -> MemberOutputs:
    bias = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]
    pre = _linear(inputs, p["rnn.weight_ih_l0"], bias)  # [K, T, B, H]
    w_hh_t = p["rnn.weight_hh_l0"].transpose(1, 2)
    # unbind, not pre[:, t]: one stack as the gradient instead of a full zero tensor per step
    steps = pre.unbind(1)
    h = torch.relu(steps[0])
    hidden = [h]
    for pre_t in steps[1:]:
        h = torch.baddbmm(pre_t, h, w_hh_t).relu_()  # [K, B, H]
        hidden.append(h)
    hidden_states = torch.stack(hidden, dim=1)  # [K, T, B, H]
    outputs = _linear(hidden_states, p["decoder.weight"], p["decoder.bias"])
    return MemberOutputs(outputs, hidden_states)


#: The architectures an ensemble runs (the network's exact class: a subclass may compute something else)
#: -> its member-batched forward pass.
FORWARDS: dict[type, Forward] = {
    Additive: _additive,
    Factorial: _factorial,
    LSTMNetwork: _lstm,
    RNNNetwork: _rnn,
}


def check_supported(model: nn.Module) -> Forward:
    """The member-batched forward pass of ``model``'s architecture, or a ConfigError naming the key."""
    forward = FORWARDS.get(type(model))
    if forward is None:
        names = ", ".join(sorted(f"{c.__module__}.{c.__name__}" for c in FORWARDS))
        raise ConfigError(
            f"architecture._target_={type(model).__module__}.{type(model).__name__} has no ensemble "
            f"forward pass (supported: {names}); train it as a solo run"
        )
    neurons = getattr(model, "neurons", None)
    if neurons is not None:
        if neurons.uses_feedback:
            raise ConfigError(
                "architecture.modulator_inputs with 'feedback': the ensemble has no member-batched step "
                "loop; train it as a solo run"
            )
        if any(p.requires_grad for p in neurons.activation.parameters()):
            raise ConfigError("af: a family with trainable state of its own cannot run in an ensemble")
    return forward


class EnsembleNetwork:
    """K networks of one architecture and shape: ``forward(flat [K, n], inputs [K, T, B, D])``.

    Built from the members' own modules (as each solo run builds them), so each row of :meth:`stack`
    holds exactly the initial weights of that member's solo run. The modules keep the hyperparameters
    (family, lag, signals) the forward pass reads; :meth:`write_back` copies a row into its module.
    """

    def __init__(self, models: Sequence[nn.Module]):
        if not models:
            raise ValueError("an ensemble needs at least one member")
        self.models = list(models)
        self.template = self.models[0]
        self._forward = check_supported(self.template)
        self.layout: list[tuple[str, tuple[int, ...], int, int]] = []
        start = 0
        for name, param in self.template.named_parameters():
            self.layout.append((name, tuple(param.shape), start, start + param.numel()))
            start += param.numel()
        self.n_params = start
        for k, model in enumerate(self.models[1:], start=1):
            if type(model) is not type(self.template):
                raise ConfigError(
                    f"architecture._target_: member {k} is {type(model).__name__}, member 0 "
                    f"{type(self.template).__name__}; members of an ensemble share one architecture"
                )
            if str(model) != str(self.template):  # sizes, activation family, lag, signals
                raise ConfigError(
                    f"architecture, af: member {k}'s network {model} differs from member 0's "
                    f"{self.template}; members of an ensemble share one network (group_configs)"
                )
            shapes = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
            if shapes != [(name, shape) for name, shape, _, _ in self.layout]:
                raise ConfigError(
                    f"architecture: member {k}'s parameters {shapes} differ in shape from member 0's; "
                    "members of an ensemble share every shape (neuromod.ensemble.group_configs)"
                )

    def stack(self) -> Tensor:
        """The members' current parameters, ``[K, n]``, detached."""
        rows = [torch.cat([p.detach().reshape(-1) for p in model.parameters()]) for model in self.models]
        return torch.stack(rows)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """Parameter name -> ``[K, *shape]`` views of ``flat [K, n]``."""
        K = flat.shape[0]
        return {name: flat[:, start:stop].view(K, *shape) for name, shape, start, stop in self.layout}

    def forward(self, flat: Tensor, inputs: Tensor, record: bool = False) -> MemberOutputs:
        """``flat [K, n]`` (the rows of the members that run), ``inputs [K, T, B, D]`` -> outputs
        ``[K, T, B, C]``; ``record`` (evaluation, no gradients): also the activity."""
        return self._forward(self.template, self.views(flat), inputs, record)

    @torch.no_grad()
    def write_back(self, row: Tensor, k: int) -> None:
        """Copy ``row [n]`` into member ``k``'s own module."""
        for (_, shape, start, stop), param in zip(self.layout, self.models[k].parameters(), strict=True):
            param.copy_(row[start:stop].view(shape))

    def unflatten(self, row: Tensor) -> list[Tensor]:
        """``row [n]`` -> one tensor per parameter, in ``parameters()`` order."""
        return [row[start:stop].view(shape) for _, shape, start, stop in self.layout]
