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
from neuromod.models.protocol import DelayMap, RecordedSignals, StepMemory
from neuromod.neuron import ModulatedNeurons
from neuromod.neuron.recurrent import Lesion, run_neurons


class NeuromodulatedNetwork(nn.Module):
    """Shared plumbing: ``drive -> ModulatedNeurons -> readout``. Subclasses define drive and readout."""

    #: Input encoding this architecture needs from its task (None: any).
    required_encoding: str | None = None
    uses_activation = True
    #: Lesions of the network's connections (docs/lesions.md); the neurons of these are not connected.
    recurrent_lesions: tuple[str, ...] = ()

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

    @property
    def lesions(self) -> tuple[str, ...]:
        """The lesions this network can take (docs/lesions.md): the modulator's (clamp, blind) and the
        parameter freeze where the neurons have a modulator, and its connections' lesions."""
        modulated = self.neurons.modulator is not None
        own = ("modulator_clamp", "modulator_blind", "parameter_freeze") if modulated else ()
        return own + self.recurrent_lesions

    def lesioned(self, inputs: Tensor, name: str, steps: Tensor) -> ModelOutput:
        """The pass under lesion ``name`` over ``steps [T, B]`` (bool), stepped through time
        (:func:`~neuromod.neuron.recurrent.run_neurons`): for evaluations, not training."""
        rates, params, drive = run_neurons(
            self.neurons, self.drive(inputs), inputs, lesion=Lesion.named(name, steps)
        )
        return ModelOutput(
            outputs=self.readout(rates),
            activity=rates,
            params=params,
            param_names=self.neurons.activation.param_names,
            drive=drive,
        )

    def recorded_signals(self, out: ModelOutput, inputs: Tensor) -> RecordedSignals:
        """The rates, the activation parameters that may change (per neuron too) and every neuron's
        modulator state ``(h, c)``; what the neurons do not have is said in the notes."""
        T, B = out.activity.shape[:2]
        signals = {"rates": out.activity.float()}
        per_neuron = {"rates": out.activity.float()}
        notes: list[str] = []
        neurons = self.neurons
        free = neurons.activation.free_mask
        if out.params is not None and bool(free.any()):
            params = out.params[..., free].float()  # [T, B, N, Pf]
            names = [n for n, f in zip(neurons.activation.param_names, free.tolist(), strict=True) if f]
            signals["parameters"] = params.reshape(T, B, -1)
            for i, name in enumerate(names):
                per_neuron[f"parameter_{name}"] = params[..., i]
            if neurons.modulator is None:
                notes.append("activation parameters are learned but constant in time (no modulator)")
        else:
            notes.append("no parameter changes: the activation function is fixed")
        if neurons.modulator is not None:
            h, c = neurons.modulator_states(out.drive, inputs, out.activity)  # [T, B, N, H]
            signals["modulator_h"], signals["modulator_c"] = h.reshape(T, B, -1), c.reshape(T, B, -1)
        else:
            notes.append("no modulator: the neurons have no state of their own")
        return RecordedSignals(signals, per_neuron, notes)

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """Every neuron's modulator is one system (the neurons are not connected to each other): state
        ``(h, c)``, driven by the neuron's constant drive at zero input. None without a modulator (the
        neurons have no state)."""
        neurons = self.neurons
        if neurons.modulator is None:
            return None
        T, B = signals["rates"].shape[:2]
        D = inputs.shape[-1]
        with torch.no_grad():
            dtype = next(self.parameters()).dtype
            drive = self.drive(torch.zeros(1, 1, D, dtype=dtype))[0, 0]  # [N]
        H = neurons.modulator.hidden_size
        N = drive.shape[0]

        def step(states: Tensor) -> Tensor:
            M = states.shape[0]
            h, c = neurons.modulator_step(
                states[..., :H], states[..., H:], drive.expand(M, N), states.new_zeros(M, D)
            )
            return torch.cat([h, c], dim=-1)

        h = signals["modulator_h"].reshape(T, B, N, H)
        c = signals["modulator_c"].reshape(T, B, N, H)
        return step, torch.cat([h, c], dim=-1)

    def memory_per_step(self) -> StepMemory:
        """Counted from the shapes, per trial step, for all N neurons: the modulator's recurrence keeps its
        gates, cells, ``tanh`` of the cells and augmented states, plus its inputs, raw parameters, the
        parameters, drive and rate with their intermediates; without a modulator only the latter. An
        evaluation keeps the rates, parameters and drive."""
        n = self.neurons.n_neurons
        n_params = self.neurons.activation.n_params
        modulator = self.neurons.modulator
        if modulator is None:  # parameters broadcast from constants: drive, rate and the transfer function's
            train = passing = 2 * n_params + 2
        else:
            hidden, width = modulator.lstm.hidden_size, modulator.lstm.input_size
            # the recurrence's buffers, its inputs, raw and used parameters with transforms, drive, rate,
            # gradients; without gradients: the hidden states (nn.LSTM's output), inputs, parameters and
            # the transfer function
            train = 7 * hidden + 2 * width + 4 * n_params + 11
            passing = hidden + width + 3 * n_params + 4
        return StepMemory(kept=n * (n_params + 3), train=n * train, passing=n * passing)


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
