"""Networks of neuromodulated neurons (the seed architectures).

Every network takes ``inputs [T, B, D]`` and returns a :class:`~neuromod.models.output.ModelOutput`.
``input_size`` and ``output_size`` come from the task; ``activation`` is the ``af`` family;
``implementation`` (``architecture.implementation``) says how the modulator is executed, one of
:data:`~neuromod.neuron.modulator.IMPLEMENTATIONS` (all compute the same function); ``modulator_init``
(``architecture.modulator_init``) how its weights start (:data:`~neuromod.neuron.modulator.MODULATOR_INITS`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuromod import validation
from neuromod.activation import ActivationFamily
from neuromod.models.output import ModelOutput
from neuromod.neuron import ModulatedNeurons


class NeuromodulatedNetwork(nn.Module):
    """Shared plumbing: ``drive -> ModulatedNeurons -> readout``. Subclasses define drive and readout."""

    #: Input encoding this architecture needs from its task (None: any).
    required_encoding: str | None = None
    uses_activation = True

    neurons: ModulatedNeurons

    def drive(self, inputs: Tensor) -> Tensor:
        raise NotImplementedError

    def readout(self, rates: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, inputs: Tensor, record: bool = False, step_loop: bool = False) -> ModelOutput:
        """``inputs [T, B, D]`` -> outputs, rates, the parameters used at every step and the drive.

        ``record`` asks a network for what it computes only on request (the LSTM control's gates); these
        networks always return everything they have, so it changes nothing here. ``step_loop=True``
        forces the step-by-step path of :class:`~neuromod.neuron.ModulatedNeurons` (for the tests).
        """
        drive = self.drive(inputs)  # [T, B, N]
        rates, params = self.neurons(drive, inputs, step_loop=step_loop)  # [T, B, N], [T, B, N, P]
        return ModelOutput(
            outputs=self.readout(rates),
            activity=rates,
            params=params,
            param_names=self.neurons.activation.param_names,
            drive=drive,
        )


class Additive(NeuromodulatedNetwork):
    """``x_t -> linear -> N modulated neurons -> linear -> outputs``; modulator reads each neuron's drive."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        activation: ActivationFamily,
        n_neurons: int = 20,
        hidden_size: int = 64,
        modulator_inputs: list[str] = ("drive",),
        drive_init_std: float | None = 1.0,
        implementation: str = "auto",
        modulator_init: str = "neuromod",
    ):
        super().__init__()
        validation.integer("architecture.n_neurons", n_neurons, minimum=1)
        self.encoder = nn.Linear(input_size, n_neurons)
        # Drives that differ clearly between cues give the modulator a signal to learn from at once
        # (PyTorch's default init, std ~0.2 here, left a long initial plateau). None: PyTorch's default.
        if drive_init_std is not None:
            validation.number("architecture.drive_init_std", drive_init_std, positive=True)
            nn.init.normal_(self.encoder.weight, std=drive_init_std)
        self.neurons = ModulatedNeurons(
            n_neurons, activation, hidden_size, modulator_inputs, input_size, implementation, modulator_init
        )
        self.decoder = nn.Linear(n_neurons, output_size)

    def drive(self, inputs: Tensor) -> Tensor:
        return self.encoder(inputs)

    def readout(self, rates: Tensor) -> Tensor:
        return self.decoder(rates)


class Factorial(NeuromodulatedNetwork):
    """One neuron per input channel (person x slot). The drive is one scalar affine map shared by all
    neurons; the outputs are the neurons' rates."""

    required_encoding = "factorial"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        activation: ActivationFamily,
        hidden_size: int = 64,
        modulator_inputs: list[str] = ("drive",),
        n_neurons: int | None = None,
        implementation: str = "auto",
        modulator_init: str = "neuromod",
    ):
        super().__init__()
        if output_size != input_size:
            raise ValueError(
                f"architecture=factorial needs as many outputs as input channels "
                f"(task has {input_size} inputs, {output_size} outputs)"
            )
        if n_neurons not in (None, input_size):
            raise ValueError(
                f"architecture=factorial has one neuron per input channel ({input_size}); "
                f"architecture.n_neurons={n_neurons} cannot be honoured (leave it null)"
            )
        self.weight = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.neurons = ModulatedNeurons(
            input_size, activation, hidden_size, modulator_inputs, input_size, implementation, modulator_init
        )

    def drive(self, inputs: Tensor) -> Tensor:
        return self.weight * inputs + self.bias

    def readout(self, rates: Tensor) -> Tensor:
        return rates


class OneNeuron(NeuromodulatedNetwork):
    """A single neuron: ``x_t -> linear -> drive``; its modulator reads the input and its own previous
    output. The output is the neuron's rate (through a linear map when the task has several outputs)."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        activation: ActivationFamily,
        hidden_size: int = 64,
        modulator_inputs: list[str] = ("input", "feedback"),
        n_neurons: int | None = None,
        implementation: str = "auto",
        modulator_init: str = "neuromod",
    ):
        super().__init__()
        if n_neurons not in (None, 1):
            raise ValueError(f"architecture=one_neuron has exactly one neuron, got n_neurons={n_neurons}")
        self.encoder = nn.Linear(input_size, 1)
        self.neurons = ModulatedNeurons(
            1, activation, hidden_size, modulator_inputs, input_size, implementation, modulator_init
        )
        self.decoder = None if output_size == 1 else nn.Linear(1, output_size)

    def drive(self, inputs: Tensor) -> Tensor:
        return self.encoder(inputs)

    def readout(self, rates: Tensor) -> Tensor:
        return rates if self.decoder is None else self.decoder(rates)
