"""Orhan & Ma's (2019) short-term memory tasks: DE-1, DE-2, CD, GDE, 2AFC, Sine and COMP.

Every trial has a stimulus period (``stimulus_steps``, default 25), a delay (``delay``, default 100, or
one of ``delays`` per trial: the variable-delay condition) and a response period (``response_steps``,
default 25). Inputs are Poisson spike counts per step of 50 units per stimulus location (Sine: Gaussian
noise), the loss counts over the response period only and the answer is read ``read_offset`` steps
before the trial's end (5; 10 in the tethered condition). Each task scores a network against its optimal
observer (:mod:`neuromod.tasks.observers`): ``extra_metrics`` returns ``info_loss`` (lower is better;
a network counts as trained below 0.5).

Delays map onto :class:`~neuromod.tasks.base.Task`'s keys as ``min_delay = min(delays)``,
``max_delay = max(delays)`` and ``eval_delays = delays`` unless given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from neuromod import validation
from neuromod.tasks import observers
from neuromod.tasks.base import Batch
from neuromod.tasks.orhan_ma_base import N_UNITS, OrhanMaTask

__all__ = [
    "N_UNITS",
    "ChangeDetection",
    "Comparison",
    "DelayedEstimation",
    "GatedDelayedEstimation",
    "OrhanMaTask",
    "Sine",
    "TwoAlternativeForcedChoice",
]


# -- orientation tasks ---------------------------------------------------------------------------------
class _OrientationTask(OrhanMaTask):
    """Von Mises tuning ``exp(kappa (cos 2(s - phi_i) - 1))`` with ``phi_i = i pi / 49``."""

    dynamic_amplitude = 1.0

    kappa: float = 2.0
    feature_range = (0.0, math.pi)

    @property
    def preferred(self) -> Tensor:
        # As specified: i pi / 49 for i = 0..49 (the first and last unit share an orientation).
        return torch.arange(N_UNITS, dtype=torch.float32) * math.pi / (N_UNITS - 1)

    def tuning(self, s: Tensor) -> Tensor:
        phi = self.preferred.to(s.device)
        return torch.exp(self.kappa * (torch.cos(2 * (s[..., None] - phi)) - 1))

    def _orientations(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Uniform orientations ``[B, L]`` in [0, pi)."""
        shape = (batch_size, self.n_locations)
        return torch.rand(shape, generator=generator, device=generator.device) * math.pi

    def _population_rate(self, s: Tensor) -> Tensor:
        """``s [B, L]`` -> stimulus-period rates ``[B, L*50]``."""
        return (self.gain * self.tuning(s)).reshape(s.shape[0], -1)

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        counts = self.stimulus_counts(batch)  # [B, L, 50]
        estimate = observers.orientation_estimate(counts, self.preferred.to(counts.device))  # [B, L]
        return estimate, torch.ones(batch.batch_size, dtype=torch.bool, device=counts.device)


class DelayedEstimation(_OrientationTask):
    """DE-1 (one location) and DE-2 (``n_locations=2``): report every orientation after the delay."""

    name = "de1"

    def __init__(self, n_locations: int = 1, **kwargs):
        validation.choice("task.n_locations", n_locations, (1, 2))
        self.n_locations = int(n_locations)
        self.name = "de1" if n_locations == 1 else "de2"
        self.output_names = (
            ["orientation"] if n_locations == 1 else [f"orientation_{i + 1}" for i in range(n_locations)]
        )
        super().__init__(**kwargs)

    def _draw(self, batch_size, generator):
        s = self._orientations(batch_size, generator)  # [B, L]
        # answer: the first location's orientation (targets hold every location's)
        return {
            "stimulus_rate": self._population_rate(s),
            "response_rate": self._spontaneous_response(batch_size, s.device),
            "target": s,
            "answer": s[:, 0],
            "content": {name: s[:, i] for i, name in enumerate(self.output_names)},
        }


class GatedDelayedEstimation(_OrientationTask):
    """GDE: two orientations; in the response period a cue raises one location's spontaneous rate
    ``cue_factor``-fold (5); report the cued location's orientation."""

    name = "gde"
    n_locations = 2
    output_names = ["orientation"]

    def __init__(self, cue_factor: float = 5.0, **kwargs):
        validation.interval("task.cue_factor", cue_factor, low=1)
        self.cue_factor = float(cue_factor)
        super().__init__(**kwargs)

    def _draw(self, batch_size, generator):
        s = self._orientations(batch_size, generator)  # [B, 2]
        cue = torch.randint(2, (batch_size,), generator=generator, device=s.device)  # [B]
        factor = 1 + (self.cue_factor - 1) * torch.nn.functional.one_hot(cue, 2).float()  # [B, 2]
        response = self._spontaneous_response(batch_size, s.device).reshape(batch_size, 2, N_UNITS)
        cued = s.gather(1, cue[:, None])  # [B, 1]
        return {
            "stimulus_rate": self._population_rate(s),
            "response_rate": (response * factor[..., None]).reshape(batch_size, -1),
            "target": cued,
            "answer": cued[:, 0],
            "content": {"orientation_1": s[:, 0], "orientation_2": s[:, 1]},
            "info": {"cued_location": cue},
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The stimulus-period estimate of the location the cue points at, told the true cue (as Orhan &
        Ma's observer): the network has to infer the cue from a few response-period spikes, so
        ``info_loss`` also counts the trials where that inference fails."""
        estimates, valid = super().observer(batch)  # [B, 2]
        cued = batch.info["cued_location"]  # [B]
        return estimates.gather(1, cued[:, None]), valid

    def inferred_cue(self, batch: Batch) -> Tensor:
        """``[B]``: the cue read from the spikes, the location with more response-period spikes up to
        the read-out (the maximum-likelihood cue for Poisson units; ties go to location 0)."""
        return self.response_counts(batch).sum(-1).argmax(dim=-1)

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        """As every estimation task, plus ``cue_inference_accuracy``: how often the cue can be read from
        the response-period spikes the network has seen at the read-out (the observer is told it)."""
        metrics = super().extra_metrics(outputs, batch)
        right = self.inferred_cue(batch) == batch.info["cued_location"]
        metrics["cue_inference_accuracy"] = float(right.float().mean())
        return metrics


class ChangeDetection(_OrientationTask):
    """CD: the response period shows a second display, with probability ``p_change`` (1/2) a freshly
    drawn orientation; answer 1 if it changed."""

    name = "cd"
    kind = "binary"
    output_names = ["changed"]
    dynamic_amplitude = 0.1

    def __init__(self, p_change: float = 0.5, **kwargs):
        if not 0 < p_change < 1:
            raise ValueError(f"task.p_change must be in (0, 1), got {p_change}")
        self.p_change = float(p_change)
        super().__init__(**kwargs)

    def _draw(self, batch_size, generator):
        s1 = self._orientations(batch_size, generator)  # [B, 1]
        redrawn = self._orientations(batch_size, generator)
        changed = torch.rand(batch_size, generator=generator, device=s1.device) < self.p_change  # [B]
        s2 = torch.where(changed[:, None], redrawn, s1)
        return {
            "stimulus_rate": self._population_rate(s1),
            "response_rate": self._population_rate(s2),
            "target": changed[:, None].float(),
            "answer": changed.long(),
            "content": {"orientation": s1[:, 0], "second": s2[:, 0]},
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        first = self.stimulus_counts(batch)[:, 0]  # [B, 50]
        second = self.response_counts(batch)[:, 0]
        p = observers.change_probability(first, second, self.preferred.to(first.device), self.kappa)
        p = (p * 2 * self.p_change) / (p * 2 * self.p_change + (1 - p) * 2 * (1 - self.p_change))
        return p, torch.ones_like(p, dtype=torch.bool)

    def graded_stimulus(self, batch: Batch) -> tuple[str, Tensor] | None:
        """The size of the change: circular distance between the two displays (0: unchanged)."""
        first, second = batch.content["orientation"], batch.content["second"]
        return "change (rad)", observers.circular_distance(second, first)


# -- tasks on a line -----------------------------------------------------------------------------------
class _LinearFeatureTask(OrhanMaTask):
    """Gaussian tuning ``exp(-(s - phi_i)^2 / (2 width^2))`` over evenly spaced ``phi_i``."""

    kind = "binary"
    width: float = 15.0
    feature_range = (-40.0, 40.0)

    @property
    def preferred(self) -> Tensor:
        lo, hi = self.feature_range
        return torch.linspace(lo, hi, N_UNITS)

    def tuning(self, s: Tensor) -> Tensor:
        phi = self.preferred.to(s.device)
        return torch.exp(-((s[..., None] - phi) ** 2) / (2 * self.width**2))


class TwoAlternativeForcedChoice(_LinearFeatureTask):
    """2AFC: category C ~ Bernoulli(1/2) shows the stimulus -15 (C = 0) or +15 (C = 1); answer C."""

    name = "afc2"
    output_names = ["category"]
    offset = 15.0

    def _draw(self, batch_size, generator):
        device = generator.device
        category = torch.randint(2, (batch_size,), generator=generator, device=device)  # [B]
        s = (2 * category.float() - 1) * self.offset  # [B]
        return {
            "stimulus_rate": self.gain * self.tuning(s),
            "response_rate": self._spontaneous_response(batch_size, device),
            "target": category[:, None].float(),
            "answer": category,
            "content": {"category": category},
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        counts = self.stimulus_counts(batch)[:, 0]
        p = observers.category_probability(counts, self.preferred.to(counts.device), self.offset, self.width)
        return p, torch.ones_like(p, dtype=torch.bool)

    def graded_stimulus(self, batch: Batch) -> tuple[str, Tensor] | None:
        """The evidence for category 1 in the stimulus spikes: the optimal observer's log-odds."""
        p, _ = self.observer(batch)
        return "evidence (log-odds)", torch.logit(p.clamp(1e-6, 1 - 1e-6))


class Comparison(_LinearFeatureTask):
    """COMP: s1 in the stimulus period, s2 in the response period (both uniform on [-40, 40]); answer
    1 if s1 > s2."""

    name = "comp"
    output_names = ["first_larger"]
    dynamic_amplitude = 0.1
    width = 10.0
    feature_range = (-50.0, 50.0)
    stimulus_range = (-40.0, 40.0)

    def _draw(self, batch_size, generator):
        device = generator.device
        lo, hi = self.stimulus_range
        s = lo + (hi - lo) * torch.rand(batch_size, 2, generator=generator, device=device)  # [B, 2]
        larger = s[:, 0] > s[:, 1]
        return {
            "stimulus_rate": self.gain * self.tuning(s[:, 0]),
            "response_rate": self.gain * self.tuning(s[:, 1]),
            "target": larger[:, None].float(),
            "answer": larger.long(),
            "content": {"first": s[:, 0], "second": s[:, 1]},
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        first = self.stimulus_counts(batch)[:, 0]
        second = self.response_counts(batch)[:, 0]
        return observers.comparison_probability(first, second, self.preferred.to(first.device), self.width)

    def graded_stimulus(self, batch: Batch) -> tuple[str, Tensor] | None:
        """The difference between the two stimuli, s1 - s2."""
        return "s1 - s2", batch.content["first"] - batch.content["second"]


# -- Sine -------------------------------------------------------------------------------------------
class Sine(OrhanMaTask):
    """Sine: no stimulus; Gaussian noise (std ``noise_std``, 0.1) on 50 channels during the delay, and
    the target ``sin(0.25 pi k / (R - 1))`` over the response steps k = 0..R-1.

    There is no observer: ``info_loss`` here is the mean absolute error over the response period
    divided by that of an output that stays at 0 (0: perfect, 1: no better than silence)."""

    name = "sine"
    kind = "curve"
    output_names = ["sine"]
    feature_range = (0.0, 1.0)
    width = 0.1

    def __init__(self, noise_std: float = 0.1, tolerance: float = 0.1, **kwargs):
        validation.number("task.noise_std", noise_std, at_least=0)
        self.noise_std = float(noise_std)
        super().__init__(tolerance=tolerance, **kwargs)

    @property
    def chance_level(self) -> float:
        # No stimulus to guess from: an untrained (silent) output is wrong on every trial, as the
        # curve at the read-out step is far from 0 (sin(0.25 pi 20 / 24) = 0.61).
        return 0.0

    @property
    def preferred(self) -> Tensor:
        return torch.linspace(*self.feature_range, N_UNITS)

    def tuning(self, s: Tensor) -> Tensor:
        phi = self.preferred.to(s.device)
        return torch.exp(-((s[..., None] - phi) ** 2) / (2 * self.width**2))

    def curve(self, k: Tensor) -> Tensor:
        """The target at response step ``k`` (0-based)."""
        return torch.sin(0.25 * math.pi * k.float() / max(self.response_steps - 1, 1))

    def _draw(self, batch_size, generator):
        # the answer (the curve at the read-out step) is filled in once the trial's timing is known
        return {"answer": torch.zeros(batch_size, device=generator.device)}

    def _inputs(self, drawn, in_stimulus, in_delay, in_response, delays, generator) -> Tensor:
        T, B = in_delay.shape
        noise = torch.randn(T, B, N_UNITS, generator=generator, device=generator.device)
        return self.noise_std * noise * in_delay[..., None]

    def _targets(self, drawn, in_response, steps, response_start) -> Tensor:
        k = (steps - response_start[None, :]).clamp(min=0)  # [T, B]
        return (self.curve(k) * in_response)[..., None]  # [T, B, 1]

    def _sample(self, batch_size, generator, delays, split):
        batch = super()._sample(batch_size, generator, delays, split)
        batch.answer = batch.at_query(batch.targets)[:, 0]
        return batch

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.loss_weight
        error = ((outputs - batch.targets).abs().mean(-1) * mask).sum() / mask.sum()
        baseline = (batch.targets.abs().mean(-1) * mask).sum() / mask.sum()
        return {"info_loss": float(error / baseline.clamp(min=1e-12)), "mae": float(error)}
