"""Activation-function families of a neuromodulated neuron.

A family declares the parameters of its transfer function, their initial values (used before the
modulator has produced anything), and the transform that maps a modulator's unconstrained output to a
valid parameter value. Families are small ``nn.Module`` objects so that ``static_learned`` can own
per-neuron parameters; the others hold no trainable state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuromod import validation

#: Lower bound of every strictly positive parameter (alpha, n). :func:`scaled_softplus` divides by alpha.
POSITIVE_FLOOR = 1e-3


def stable_softplus(z: Tensor) -> Tensor:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``, with ``max(z, 0)`` written
    as ``(z + |z|) / 2`` so that the gradient at ``z = 0`` is softplus's own, 1/2 (the same values)."""
    return 0.5 * (z + torch.abs(z)) + torch.log1p(torch.exp(-torch.abs(z)))


def inverse_softplus(y: float) -> float:
    """The ``z`` with ``softplus(z) = y`` for ``y > 0``."""
    return y + math.log(-math.expm1(-y))


def scaled_softplus(x: Tensor, g: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The neuron's transfer function ``gamma(x; g, theta, alpha) = g * softplus(alpha (x - theta)) / alpha``
    (all broadcastable): a smooth rectifier with gain ``g`` (its slope well above threshold), threshold
    ``theta`` and sharpness ``alpha`` (``alpha -> inf``: ``g * relu(x - theta)``; dividing by ``alpha``
    keeps the slope ``g`` whatever the sharpness). ``alpha`` is floored at :data:`POSITIVE_FLOOR`."""
    alpha = torch.clamp(alpha, min=POSITIVE_FLOOR)
    return g * stable_softplus(alpha * (x - theta)) / alpha


def geadah(x: Tensor, n: Tensor, s: Tensor) -> Tensor:
    """Geadah et al. (2020): ``(1 - s) softplus(n x) / n + s sigmoid(n x)``, ``n > 0``, ``s in [0, 1]``."""
    n = torch.clamp(n, min=POSITIVE_FLOOR)
    return (1 - s) * stable_softplus(n * x) / n + s * torch.sigmoid(n * x)


class Transform:
    """Maps an unconstrained value to a valid parameter value, and back (for initialisation)."""

    def __call__(self, raw: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, value: float) -> float:
        raise NotImplementedError


class Identity(Transform):
    def __call__(self, raw: Tensor) -> Tensor:
        return raw

    def inverse(self, value: float) -> float:
        return float(value)


class PositiveSoftplus(Transform):
    """``softplus(raw) + floor``: strictly positive, smooth."""

    def __init__(self, floor: float = POSITIVE_FLOOR):
        self.floor = floor

    def __call__(self, raw: Tensor) -> Tensor:
        return F.softplus(raw) + self.floor

    def inverse(self, value: float) -> float:
        if value <= self.floor:
            raise ValueError(f"initial value {value} must exceed the floor {self.floor}")
        return inverse_softplus(value - self.floor)


class UnitSigmoid(Transform):
    """``sigmoid(raw)``: a value in (0, 1)."""

    def __call__(self, raw: Tensor) -> Tensor:
        return torch.sigmoid(raw)

    def inverse(self, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"initial value {value} must lie strictly between 0 and 1")
        return math.log(value / (1 - value))


class ActivationFamily(nn.Module):
    """Base class. Subclasses set ``param_names``, ``defaults`` and ``transforms`` and implement ``gamma``
    (the transfer function; a family is not called as a module).

    Parameters flow as one tensor ``[..., P]`` whose last axis follows ``param_names``.
    """

    param_names: tuple[str, ...] = ()
    defaults: dict[str, float] = {}
    transforms: dict[str, Transform] = {}
    #: Names of the parameters a modulator (or ``static_learned``) may change; the rest stay at their
    #: initial value.
    free: tuple[str, ...] = ()
    #: Whether a modulator sets the free parameters step by step.
    modulated: bool = True

    def __init__(self, lag: int = 1, init: dict[str, float] | None = None):
        super().__init__()
        self.lag = validation.integer("af.lag", lag, minimum=0)
        values = dict(self.defaults)
        for key, value in (init or {}).items():
            if key not in values:
                raise ValueError(f"af.init has unknown parameter '{key}'; allowed: {list(self.param_names)}")
            values[key] = float(value)
        self.initial_values = values
        raw = [self.transforms[name].inverse(values[name]) for name in self.param_names]
        self.register_buffer("initial_raw", torch.tensor(raw, dtype=torch.float32), persistent=False)
        free = torch.tensor([name in self.free for name in self.param_names], dtype=torch.bool)
        self.register_buffer("free_mask", free, persistent=False)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def to_params(self, raw: Tensor) -> Tensor:
        """Unconstrained ``[..., P]`` -> valid parameters ``[..., P]``; fixed parameters keep their
        initial value whatever the raw value is."""
        raw = torch.where(self.free_mask, raw, self.initial_raw)
        # unbind, not raw[..., i]: P selections get P full-size zero gradients, unbind one stack
        pairs = zip(self.param_names, raw.unbind(-1), strict=True)
        columns = [self.transforms[name](column) for name, column in pairs]
        return torch.stack(columns, dim=-1)

    def initial_params(self) -> Tensor:
        """Valid initial parameters ``[P]``."""
        return self.to_params(self.initial_raw)

    def gamma(self, x: Tensor, params: Tensor) -> Tensor:
        """Transfer function: ``x [...]`` with ``params [..., P]`` -> rate ``[...]``."""
        raise NotImplementedError

    # -- one step of a loop through time (the feedback loop calls these; see ModulatedNeurons) ---------
    def step_context(self, drive: Tensor) -> Tensor:
        """What :meth:`step_rate` needs of the drive ``[T, S]``, computed for all steps at once (indexed
        by step). By default the drive itself."""
        return drive

    def step_rate(self, context: Tensor, raw: Tensor, out: Tensor) -> None:
        """``out [S] = gamma(x, to_params(raw))`` for one step, from that step's ``context`` and raw
        parameters ``raw [S, P]``. Families override it with fewer operations where they can."""
        out.copy_(self.gamma(context, self.to_params(raw)))

    def extra_repr(self) -> str:
        return f"lag={self.lag}, init={self.initial_values}"


class ScaledSoftplusFamily(ActivationFamily):
    """Families of :func:`scaled_softplus`, ``g * softplus(alpha (x - theta)) / alpha``: parameters g
    (gain), theta (threshold) and alpha (sharpness, > 0), by default 1 each. Subclasses say which of them
    a modulator may change (``free``)."""

    param_names = ("g", "theta", "alpha")
    defaults = {"g": 1.0, "theta": 1.0, "alpha": 1.0}
    transforms = {"g": Identity(), "theta": Identity(), "alpha": PositiveSoftplus()}

    def gamma(self, x: Tensor, params: Tensor) -> Tensor:
        return scaled_softplus(x, *params.unbind(-1))


class Gain(ScaledSoftplusFamily):
    """``af=gain``: the modulator sets the gain g; theta = alpha = 1."""

    free = ("g",)

    def step_context(self, drive: Tensor) -> Tensor:
        # theta and alpha are fixed: the rate is g times the rate at unit gain, known in advance
        _, theta, alpha = self.initial_params().to(drive)
        return scaled_softplus(drive, torch.ones((), dtype=drive.dtype), theta, alpha)

    def step_rate(self, context: Tensor, raw: Tensor, out: Tensor) -> None:
        torch.mul(raw[:, 0], context, out=out)  # g's transform is the identity


class LearnAllParams(ScaledSoftplusFamily):
    """``af=learn_all_params``: the modulator sets g, theta and alpha."""

    free = ("g", "theta", "alpha")


class Geadah(ActivationFamily):
    """``af=geadah``: the modulator sets n (> 0) and s (in [0, 1])."""

    param_names = ("n", "s")
    defaults = {"n": 1.0, "s": 0.5}
    transforms = {"n": PositiveSoftplus(), "s": UnitSigmoid()}
    free = ("n", "s")

    def gamma(self, x: Tensor, params: Tensor) -> Tensor:
        return geadah(x, *params.unbind(-1))


class Fixed(ScaledSoftplusFamily):
    """``af=fixed``: no modulator, g = theta = alpha = 1 at every step (the control)."""

    free = ()
    modulated = False


class StaticLearned(ScaledSoftplusFamily):
    """``af=static_learned``: g, theta, alpha learned per neuron but constant in time (second control).

    The per-neuron parameters are created by the network through :meth:`make_static_raw`.
    """

    free = ("g", "theta", "alpha")
    modulated = False

    def make_static_raw(self, n_neurons: int) -> nn.Parameter:
        """Trainable unconstrained parameters ``[N, P]`` starting at the initial values."""
        return nn.Parameter(self.initial_raw.clone().expand(n_neurons, -1).contiguous())


class ModulatorRate(ActivationFamily):
    """``af=modulator_rate``, a control matched on state and parameters: each neuron's rate is its
    modulator's output ``r`` itself instead of a transfer function of the drive that the modulator shapes.

    The network is then a bank of N small LSTMs with shared weights, each reading its neuron's drive and
    feeding the readout directly: as many state values as the modulated network (N x hidden x 2) and about
    as many parameters. It asks whether the memory needs to act through the activation function, or only an
    LSTM per neuron. ``lag`` defaults to 0 here: the rate at step t is what the modulator produces at t.
    """

    param_names = ("r",)
    defaults = {"r": 0.0}
    transforms = {"r": Identity()}
    free = ("r",)

    def __init__(self, lag: int = 0, init: dict[str, float] | None = None):
        super().__init__(lag, init)

    def gamma(self, x: Tensor, params: Tensor) -> Tensor:
        return params[..., 0].expand_as(x)
