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
