"""What every network returns for a batch of trials."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """What a network returns for a batch of trials."""

    outputs: Tensor  # [T, B, K]
    activity: Tensor  # [T, B, N] the neurons' rates (hidden state for the baselines)
    params: Tensor | None = None  # [T, B, N, P] activation parameters used at each step
    param_names: tuple[str, ...] = ()
    gates: dict[str, Tensor] = field(default_factory=dict)  # name -> [T, B, H] (lstm only)
    drive: Tensor | None = None  # [T, B, N] the neurons' pre-activations

    def for_trials(self, n_trials: int) -> ModelOutput:
        """An output of the same kind for ``n_trials`` trials, its tensors uninitialised (filled with
        :meth:`write`)."""

        def empty(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.new_empty(tensor.shape[0], n_trials, *tensor.shape[2:])

        return ModelOutput(
            outputs=empty(self.outputs),
            activity=empty(self.activity),
            params=empty(self.params),
            param_names=self.param_names,
            gates={name: empty(gate) for name, gate in self.gates.items()},
            drive=empty(self.drive),
        )

    def write(self, start: int, part: ModelOutput) -> None:
        """Copy ``part``'s trials into this output's trials ``start, start + 1, ...`` (dim 1)."""
        pairs = [(self.outputs, part.outputs), (self.activity, part.activity), (self.params, part.params)]
        pairs += [(self.drive, part.drive), *((self.gates[k], part.gates[k]) for k in self.gates)]
        for whole, chunk in pairs:
            if whole is not None:
                whole[:, start : start + chunk.shape[1]].copy_(chunk)
