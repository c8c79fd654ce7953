"""What a network says about itself, so that the analyses and the memory check need not know its class.

Every network in :mod:`neuromod.models` implements :class:`AnalysedNetwork`:

- :meth:`~AnalysedNetwork.recorded_signals` turns one recorded pass (``forward(..., record=True)``) into
  the signals the population analyses look at (:mod:`neuromod.analysis.recording`), with notes on what
  the network does not have;
- :meth:`~AnalysedNetwork.delay_map` gives its state map at zero input (the delay period) for the
  fixed-point analysis, or None when its state is not all in the recorded signals;
- :meth:`~AnalysedNetwork.memory_per_step` gives the values a trial step keeps, for the memory estimate
  (:mod:`neuromod.runner.memory`).

A new network implements these three methods; the analysis and memory code stay as they are. A network
that does not is refused with one line (:func:`require`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

from neuromod.models.output import ModelOutput

#: The state map at zero input over K independent systems, ``step(states [M, K, D]) -> [M, K, D]``, and the
#: states ``[T, B, K, D]`` the recorded trials passed through.
DelayMap = tuple[Callable[[Tensor], Tensor], Tensor]


@dataclass
class RecordedSignals:
    """A network's signals over recorded trials.

    ``signals``: name -> ``[T, B, F]`` (float32); ``per_neuron``: name -> ``[T, B, N]`` for the
    selectivity map; ``notes``: what the network does not have (said in the analyses' results)."""

    signals: dict[str, Tensor]
    per_neuron: dict[str, Tensor]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepMemory:
    """Float32 values per trial step that a network's passes keep (the memory estimate's shape facts).

    ``kept``: what an evaluation keeps of each trial step for the whole evaluation set (the recorded
    output). ``train`` and ``passing``: what a training step keeps for its backward pass, and what a pass
    without gradients has alive at once; None for both: measure them from the tensors autograd saves."""

    kept: int
    train: int | None = None
    passing: int | None = None


@runtime_checkable
class AnalysedNetwork(Protocol):
    """A network the population analyses can record and the memory check can size."""

    def recorded_signals(self, out: ModelOutput, inputs: Tensor) -> RecordedSignals:
        """The signals of ``out``, the network's recorded pass (``record=True``) over ``inputs [T, B, D]``."""
        ...

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor) -> DelayMap | None:
        """The state map at zero input and the recorded states (from ``signals``, as
        :meth:`recorded_signals` returned them, over ``inputs``); None for a network without one."""
        ...

    def memory_per_step(self) -> StepMemory:
        """The values a trial step keeps, for the memory estimate."""
        ...


def require(model: object, purpose: str) -> AnalysedNetwork:
    """``model`` itself if it implements :class:`AnalysedNetwork`; otherwise a TypeError (one line)."""
    if isinstance(model, AnalysedNetwork):
        return model
    raise TypeError(
        f"{type(model).__name__} cannot be used for {purpose}: a network implements "
        "neuromod.models.protocol.AnalysedNetwork (recorded_signals, delay_map, memory_per_step)"
    )
