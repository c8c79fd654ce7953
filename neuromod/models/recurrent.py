"""A recurrent network of modulated neurons (``architecture=modulated_rnn``).

Its memory can live in the recurrence (the network's dynamics), in each neuron's chemistry (its
modulator), or both; the lesions of :mod:`neuromod.neuron.recurrent` tell which (docs/lesions.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from neuromod import validation
from neuromod.activation import ActivationFamily
from neuromod.models.architectures import NeuromodulatedNetwork
from neuromod.models.output import ModelOutput
from neuromod.models.protocol import DelayMap, StepMemory
from neuromod.neuron import ModulatedNeurons
from neuromod.neuron.recurrent import Lesion, run_neurons
from neuromod.validation import ConfigError


class ModulatedRNN(NeuromodulatedNetwork):
    """``drive_t = W_rec r_{t-1} + W_in x_t + b``, ``r_t = gamma(drive_t; params_t)`` with the parameters
    set step by step by the shared per-neuron modulator (any ``af`` family or control), and a linear
    readout of the rates.

    Shape and initialisation are the ``rnn`` control's (Orhan & Ma 2019): ``n_neurons`` units, ``W_rec =
    lambda0 I + sigma0 / sqrt(N) * (off-diagonal Gaussian)``, Glorot-normal input and output weights with
    gain ``io_gain``, a zero readout bias; but the input weights start normal with std ``drive_init_std``
    (default 1, as ``architecture=additive``'s: Glorot's std, ~0.16 here, gives the modulators drives that
    hardly differ between cues; null: Glorot-normal as Orhan & Ma). The drive's bias starts at the
    family's threshold (theta's initial value; 0 for a family without one, or with
    ``bias_at_threshold: false``), so that through the recurrence alone a unit passes its rate on almost
    unchanged, as the rnn control's ReLU does: with a zero bias ``softplus(0.98 r - theta)`` loses theta
    at every step. Options:

    - ``dale``: each unit's outgoing recurrent weights (a column of ``W_rec``) have a fixed sign, the first
      ``round(excitatory_fraction * N)`` units excitatory (>= 0), the others inhibitory (<= 0); the weights
      are ``|W| * sign``, so training keeps the signs;
    - ``sigma_rec``: standard deviation of Gaussian noise added to every drive at every step, in training
      only, from the network's own generator (seeded with the weights from the run's seed);
    - ``connectivity``: the fraction of recurrent connections kept, a fixed mask drawn at initialisation
      (the others are zero and stay zero).

    The drive depends on the previous rates, so the network steps through time (vectorised over trials
    and neurons) with :func:`~neuromod.neuron.recurrent.run_neurons`.
    """

    recurrent_lesions = ("recurrent_cut",)

    def __init__(
        self,
        input_size: int,
        output_size: int,
        activation: ActivationFamily,
        n_neurons: int = 64,
        hidden_size: int = 16,
        modulator_inputs: list[str] = ("drive",),
        lambda0: float = 0.98,
        sigma0: float = 0.0,
        io_gain: float = 0.95,
        dale: bool = False,
        excitatory_fraction: float = 0.8,
        sigma_rec: float = 0.0,
        connectivity: float = 1.0,
        bias_at_threshold: bool = True,
        drive_init_std: float | None = 1.0,
        implementation: str = "auto",
        modulator_init: str = "neuromod",
    ):
        super().__init__()
        n = validation.integer("architecture.n_neurons", n_neurons, minimum=1)
        validation.number("architecture.lambda0", lambda0)
        validation.number("architecture.sigma0", sigma0, at_least=0)
        validation.number("architecture.io_gain", io_gain, positive=True)
        for key, flag in (("dale", dale), ("bias_at_threshold", bias_at_threshold)):
            if not isinstance(flag, bool):
                raise ConfigError(f"architecture.{key}={flag!r} is not allowed: it must be true or false")
        validation.interval("architecture.excitatory_fraction", excitatory_fraction, 0.0, 1.0, closed="both")
        self.sigma_rec = float(validation.number("architecture.sigma_rec", sigma_rec, at_least=0))
        validation.interval("architecture.connectivity", connectivity, 0.0, 1.0, closed="high")
        kept = round(connectivity * n * n)
        if kept < 1:
            raise ConfigError(
                f"architecture.connectivity={connectivity!r} keeps no recurrent connection of "
                f"architecture.n_neurons={n} ({n} x {n}): it must be at least {1 / (n * n):.3g}"
            )
        self.dale = dale
        self.neurons = ModulatedNeurons(
            n, activation, hidden_size, modulator_inputs, input_size, implementation, modulator_init
        )
        self.encoder = nn.Linear(input_size, n)
        self.decoder = nn.Linear(n, output_size)
        with torch.no_grad():
            off_diagonal = torch.randn(n, n) * (sigma0 / math.sqrt(n))
            off_diagonal.fill_diagonal_(0.0)
            weight = lambda0 * torch.eye(n) + off_diagonal
            if drive_init_std is None:
                nn.init.xavier_normal_(self.encoder.weight, gain=io_gain)
            else:  # drives that differ clearly between cues, as architecture=additive's
                validation.number("architecture.drive_init_std", drive_init_std, positive=True)
                nn.init.normal_(self.encoder.weight, std=drive_init_std)
            nn.init.xavier_normal_(self.decoder.weight, gain=io_gain)
            # at the threshold, a unit at rest passes its rate on through the recurrence almost unchanged
            # (softplus(0.98 r + b - theta) ~ 0.98 r), as the rnn control's ReLU does; at 0 the threshold
            # would take theta off every step
            threshold = activation.initial_values.get("theta", 0.0) if bias_at_threshold else 0.0
            self.encoder.bias.fill_(threshold)
            self.decoder.bias.zero_()
        mask = torch.ones(n, n)
        if kept < n * n:
            mask = torch.zeros(n * n)
            mask[torch.randperm(n * n)[:kept]] = 1.0
            mask = mask.reshape(n, n)
        self.register_buffer("mask", mask)
        n_excitatory = round(excitatory_fraction * n)
        sign = torch.cat([torch.ones(n_excitatory), -torch.ones(n - n_excitatory)])
        self.register_buffer("sign", sign)  # [N] the sign of each unit's outgoing weights (with dale)
        self.weight_rec = nn.Parameter(weight.abs() if dale else weight)
        # the noise stream: the network's own, seeded from the model's seed stream
        self.noise_seed = int(torch.randint(0, 2**62, (1,)).item())
        self._noise_generator: torch.Generator | None = None

    @property
    def recurrent_weight(self) -> Tensor:
        """``W_rec [N, N]`` as used: masked, and with Dale's law ``|W| * sign`` of the presynaptic unit."""
        weight = self.weight_rec.abs() * self.sign if self.dale else self.weight_rec
        return weight * self.mask

    def noise(self, like: Tensor) -> Tensor:
        """``sigma_rec * N(0, 1)`` shaped as ``like [T, B, N]``, from the network's own generator."""
        if self._noise_generator is None:
            self._noise_generator = torch.Generator().manual_seed(self.noise_seed)
        noise = torch.randn(like.shape, generator=self._noise_generator, dtype=like.dtype)
        return self.sigma_rec * noise.to(like.device)

    def drive(self, inputs: Tensor) -> Tensor:
        """The external drive ``W_in x_t + b`` (the recurrent part depends on the rates)."""
        return self.encoder(inputs)

    def readout(self, rates: Tensor) -> Tensor:
        return self.decoder(rates)

    def forward(
        self, inputs: Tensor, record: bool = False, step_loop: bool = False, lesion: Lesion | None = None
    ) -> ModelOutput:
        """``inputs [T, B, D]`` -> outputs, rates, the parameters used and the drive (recurrence
        included); noise in training mode only. ``record`` and ``step_loop`` change nothing (everything
        is returned; the network always steps through time)."""
        external = self.encoder(inputs)
        noise = self.noise(external) if self.training and self.sigma_rec > 0 else None
        rates, params, drive = run_neurons(
            self.neurons, external, inputs, self.recurrent_weight, noise, lesion
        )
        return ModelOutput(
            outputs=self.decoder(rates),
            activity=rates,
            params=params,
            param_names=self.neurons.activation.param_names,
            drive=drive,
        )

    def lesioned(self, inputs: Tensor, name: str, steps: Tensor) -> ModelOutput:
        """The pass under lesion ``name`` over ``steps [T, B]`` (no noise: an evaluation)."""
        return self.forward(inputs, lesion=Lesion.named(name, steps))

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """One system (the units are connected): state ``r`` without a modulator, ``(r, h, c)`` of all
        units with one (``af.lag`` 0 or 1; with a longer lag earlier parameters are state too: None)."""
        neurons, family = self.neurons, self.neurons.activation
        T, B, N = signals["rates"].shape
        D = inputs.shape[-1]
        bias = self.encoder.bias
        w_rec = self.recurrent_weight
        rates = signals["rates"]
        if neurons.modulator is None:
            raw = family.initial_raw if neurons.static_raw is None else neurons.static_raw
            params = family.to_params(raw).to(bias).expand(N, family.n_params)

            def step_rates(states: Tensor) -> Tensor:
                return family.gamma(states @ w_rec.T + bias, params.expand(*states.shape, -1))

            return step_rates, rates[:, :, None, :]
        if family.lag > 1:
            return None
        modulator = neurons.modulator
        lstm, H = modulator.lstm, modulator.hidden_size
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

        def step(states: Tensor) -> Tensor:
            lead = states.shape[:-1]
            flat = states.reshape(-1, N * (1 + 2 * H))
            M = flat.shape[0]
            rate = flat[:, :N]
            h = flat[:, N : N * (1 + H)].reshape(M * N, H)
            c = flat[:, N * (1 + H) :].reshape(M * N, H)
            drive = rate @ w_rec.T + bias  # [M, N]
            x = neurons._signals(drive, flat.new_zeros(M, D), rate).reshape(M * N, -1)
            h_new, c_new = torch.lstm_cell(x, (h, c), *weights)
            source = h if family.lag == 1 else h_new
            params = family.to_params(modulator.head(source)).reshape(M, N, -1)
            new_rate = family.gamma(drive, params)
            out = torch.cat([new_rate, h_new.reshape(M, N * H), c_new.reshape(M, N * H)], dim=-1)
            return out.reshape(*lead, -1)

        h = signals["modulator_h"].reshape(T, B, N * H)
        c = signals["modulator_c"].reshape(T, B, N * H)
        return step, torch.cat([rates, h, c], dim=-1)[:, :, None, :]

    def memory_per_step(self) -> StepMemory:
        """An evaluation keeps the rates, parameters and drive; a training step's saved tensors are
        measured (the step loop is composed of autograd operations)."""
        n = self.neurons.n_neurons
        return StepMemory(kept=n * (self.neurons.activation.n_params + 3))
