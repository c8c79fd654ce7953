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
import torch.nn.functional as F
from torch import Tensor

from neuromod.tasks import observers
from neuromod.tasks.base import Batch, Task

N_UNITS = 50


class OrhanMaTask(Task):
    """Shared trial structure, input noise, losses and conditions of the suite.

    Subclasses set ``kind`` (``estimate``, ``binary`` or ``curve``), ``n_locations``, the stimulus
    ``feature_range`` and :meth:`tuning`, and implement :meth:`_draw`.
    """

    kind: str = "estimate"
    n_locations: int = 1
    #: Range the dynamic-input bump sweeps across over a trial.
    feature_range: tuple[float, float] = (0.0, math.pi)

    def __init__(
        self,
        delay: int = 100,
        delays: list[int] | None = None,
        eval_delays: list[int] | None = None,
        stimulus_steps: int = 25,
        response_steps: int = 25,
        gain: float = 0.04,
        spontaneous: float = 0.1,
        tethered: bool = False,
        activity_penalty: float | None = None,
        dynamic_input: bool = False,
        tolerance: float = math.pi / 12,
    ):
        if delays is None:
            delays = [delay]
        delays = list(delays)
        if not delays or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in delays):
            raise ValueError(f"task.delays must be a non-empty list of integers >= 0 (or null), got {delays}")
        super().__init__(min(delays), max(delays), delays if eval_delays is None else eval_delays)
        self.delays = sorted(set(delays))
        for key, value in (("stimulus_steps", stimulus_steps), ("response_steps", response_steps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"task.{key} must be an integer >= 1, got {value!r}")
        self.stimulus_steps = int(stimulus_steps)
        self.response_steps = int(response_steps)
        self.tethered = bool(tethered)
        self.read_offset = 10 if self.tethered else 5
        if self.read_offset > self.response_steps:
            raise ValueError(
                f"task.response_steps={response_steps} is too short: the answer is read "
                f"{self.read_offset} steps before the end (tethered={self.tethered})"
            )
        if gain < 0 or spontaneous < 0:
            raise ValueError(f"task.gain and task.spontaneous must be >= 0, got {gain} and {spontaneous}")
        self.gain = float(gain)
        self.spontaneous = float(spontaneous)
        if activity_penalty is None:
            activity_penalty = 0.1 if self.tethered else 1e-4
        if activity_penalty < 0:
            raise ValueError(f"task.activity_penalty must be >= 0 (or null), got {activity_penalty}")
        self.activity_penalty = float(activity_penalty)
        self.dynamic_input = bool(dynamic_input)
        if not 0 < tolerance <= math.pi / 2:
            raise ValueError(f"task.tolerance must be in (0, pi/2], got {tolerance}")
        self.tolerance = float(tolerance)
        self.input_names = self._channel_names() + (
            [f"dynamic_{i:02d}" for i in range(N_UNITS)] if self.dynamic_input else []
        )
        self.answer_type = {"estimate": "continuous", "binary": "choice", "curve": "continuous"}[self.kind]
        if self.kind == "binary":
            self.choice_values = (0.0, 1.0)

    # -- description -------------------------------------------------------------------------------
    has_own_loss = True

    def _channel_names(self) -> list[str]:
        if self.n_locations == 1:
            return [f"unit_{i:02d}" for i in range(N_UNITS)]
        return [f"loc{loc + 1}_unit_{i:02d}" for loc in range(self.n_locations) for i in range(N_UNITS)]

    @property
    def n_task_channels(self) -> int:
        return self.n_locations * N_UNITS

    @property
    def chance_level(self) -> float:
        if self.kind == "binary":
            return 0.5
        # A guess uniform on [0, pi) lies within the tolerance of each orientation with p = 2 tol / pi.
        return (2 * self.tolerance / math.pi) ** len(self.output_names)

    @property
    def preferred(self) -> Tensor:
        """The units' preferred stimuli ``[50]``."""
        raise NotImplementedError

    def tuning(self, s: Tensor) -> Tensor:
        """Tuning curves (peak 1) of the 50 units for stimuli ``s [...]`` -> ``[..., 50]``."""
        raise NotImplementedError

    # -- trials ------------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator, delays: Tensor | None = None) -> Batch:
        """As :meth:`Task.sample`, but training delays are drawn from ``task.delays`` (the paper's
        variable-delay condition draws each trial's delay from {10, 40, 70, 100})."""
        if delays is None:
            choices = torch.tensor(self.delays, dtype=torch.long, device=generator.device)
            pick = torch.randint(len(choices), (batch_size,), generator=generator, device=generator.device)
            delays = choices[pick]
        return super().sample(batch_size, generator, delays)

    def _draw(self, batch_size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Stimuli of ``batch_size`` trials: ``stimulus_rate [B, D]`` and ``response_rate [B, D]``
        (expected spikes per step), ``target [B, K]`` and ``answer [B]``."""
        raise NotImplementedError

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor) -> Batch:
        device = generator.device
        B, S, R = batch_size, self.stimulus_steps, self.response_steps
        T = S + int(delays.max()) + R
        steps = torch.arange(T, device=device)[:, None]  # [T, 1]
        response_start = S + delays  # [B]
        end = response_start + R  # [B]
        in_stimulus = (steps < S).expand(T, B)  # [T, B]
        in_delay = (steps >= S) & (steps < response_start)  # [T, B]
        in_response = (steps >= response_start) & (steps < end)  # [T, B]
        drawn = self._draw(B, generator)
        inputs = self._inputs(drawn, in_stimulus, in_delay, in_response, delays, generator)  # [T, B, D]
        if self.dynamic_input:
            inputs = torch.cat([inputs, self._dynamic(steps, end, generator)], dim=-1)
        targets = self._targets(drawn, in_response, steps, response_start)  # [T, B, K]
        periods = {
            "cue": torch.stack([torch.zeros_like(delays), torch.full_like(delays, S)], dim=1),
            "delay": torch.stack([torch.full_like(delays, S), response_start], dim=1),
            "query": torch.stack([response_start, end], dim=1),
        }
        return Batch(
            inputs=inputs,
            targets=targets,
            loss_weight=in_response.float(),
            query_step=end - self.read_offset,
            delay=delays,
            answer=drawn["answer"],
            answer_mask=None,
            periods=periods,
        )

    def _inputs(self, drawn, in_stimulus, in_delay, in_response, delays, generator) -> Tensor:
        """Poisson counts: tuning during the stimulus, a spontaneous rate of ``spontaneous`` spikes per
        unit per period spread over the delay, the task's response-period rates."""
        delay_rate = self.spontaneous / delays.clamp(min=1).float()  # [B]
        rate = (
            in_stimulus[..., None] * drawn["stimulus_rate"][None]
            + in_delay[..., None] * delay_rate[None, :, None]
            + in_response[..., None] * drawn["response_rate"][None]
        )  # [T, B, D]
        return torch.poisson(rate, generator=generator)

    def _targets(self, drawn, in_response, steps, response_start) -> Tensor:
        return in_response[..., None] * drawn["target"][None]  # [T, B, K]

    def _dynamic(self, steps: Tensor, end: Tensor, generator: torch.Generator) -> Tensor:
        """Dynamic-input condition: 50 extra Poisson units whose bump sweeps linearly across the feature
        range over each trial, independent of the stimulus ``[T, B, 50]``."""
        lo, hi = self.feature_range
        progress = (steps.float() / (end[None, :] - 1).clamp(min=1).float()).clamp(max=1.0)  # [T, B]
        rate = self.gain * self.tuning(lo + (hi - lo) * progress)  # [T, B, 50]
        rate = rate * (steps < end[None, :])[..., None]
        return torch.poisson(rate, generator=generator)

    def _spontaneous_response(self, batch_size: int, device) -> Tensor:
        """Spontaneous rate per step in the response period ``[B, D]``."""
        return torch.full(
            (batch_size, self.n_task_channels), self.spontaneous / self.response_steps, device=device
        )

    # -- counts the observer sees --------------------------------------------------------------------
    def stimulus_counts(self, batch: Batch) -> Tensor:
        """Spike counts of the stimulus period ``[B, L, 50]`` (task channels only)."""
        start, stop = int(batch.periods["cue"][0, 0]), int(batch.periods["cue"][0, 1])
        counts = batch.inputs[start:stop, :, : self.n_task_channels].sum(0)  # [B, L*50]
        return counts.reshape(batch.batch_size, self.n_locations, N_UNITS)

    def response_counts(self, batch: Batch) -> Tensor:
        """Spike counts of the response period up to and including the read-out step ``[B, L, 50]``:
        what the network has seen when its answer is read."""
        steps = torch.arange(batch.n_steps, device=batch.inputs.device)[:, None]  # [T, 1]
        start = batch.periods["query"][:, 0]
        seen = (steps >= start[None, :]) & (steps <= batch.query_step[None, :])  # [T, B]
        counts = (batch.inputs[..., : self.n_task_channels] * seen[..., None]).sum(0)
        return counts.reshape(batch.batch_size, self.n_locations, N_UNITS)

    # -- scoring -----------------------------------------------------------------------------------
    def predict(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Estimation: the orientations read out ``[B, K]`` in [0, pi); binary: the decision ``[B]``
        (output logit > 0); Sine: the output at the read-out step ``[B]``."""
        at_query = batch.at_query(outputs)  # [B, K]
        if self.kind == "estimate":
            return torch.remainder(at_query, math.pi)
        if self.kind == "binary":
            return (at_query[:, 0] > 0).long()
        return at_query[:, 0]

    def correct(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Estimation: every orientation within ``tolerance`` (circular distance) of its target;
        binary: the right decision; Sine: within ``tolerance`` of the curve at the read-out step."""
        if self.kind == "estimate":
            error = observers.circular_distance(batch.at_query(outputs), batch.at_query(batch.targets))
            return (error < self.tolerance).all(dim=-1)
        return super().correct(outputs, batch)

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The optimal observer's answer per trial (estimation: orientations ``[B, K]``; binary:
        P(target = 1) ``[B]``) and the trials it is defined for ``[B]`` bool."""
        raise NotImplementedError

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        """``info_loss`` against the optimal observer, plus the errors it is computed from."""
        if self.kind == "estimate":
            target = batch.at_query(batch.targets)  # [B, K]
            estimate, _ = self.observer(batch)
            network_error = observers.circular_distance(batch.at_query(outputs), target).mean()
            observer_error = observers.circular_distance(estimate, target).mean()
            return {
                "info_loss": observers.circular_info_loss(network_error, observer_error),
                "circular_error": float(network_error),
                "observer_circular_error": float(observer_error),
            }
        p_observer, valid = self.observer(batch)
        p_network = torch.sigmoid(batch.at_query(outputs)[:, 0])
        observer_correct = ((p_observer > 0.5).long() == batch.answer)[valid].float().mean()
        return {
            "info_loss": observers.binary_info_loss(p_observer[valid], p_network[valid]),
            "observer_accuracy": float(observer_correct),
        }

    # -- loss --------------------------------------------------------------------------------------
    def step_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Per-step loss ``[T, B]``: mean circular error (estimation), binary cross-entropy on the
        sigmoid of the outputs (binary), absolute error (Sine)."""
        if self.kind == "estimate":
            return observers.circular_distance(outputs, targets).mean(-1)
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").mean(-1)
        return (outputs - targets).abs().mean(-1)

    def loss(self, outputs: Tensor, batch: Batch, activity: Tensor | None = None) -> Tensor:
        """The response-period loss plus ``activity_penalty`` times the mean squared activity over
        each trial's last 5 steps."""
        mask = batch.loss_weight
        loss = (self.step_loss(outputs, batch.targets) * mask).sum() / mask.sum().clamp(min=1)
        if activity is not None and self.activity_penalty > 0:
            steps = torch.arange(batch.n_steps, device=outputs.device)[:, None]  # [T, 1]
            end = batch.periods["query"][:, 1][None, :]  # [1, B]
            last = ((steps >= end - 5) & (steps < end)).float()  # [T, B]
            squared = (activity**2).mean(-1)  # [T, B]
            loss = loss + self.activity_penalty * (squared * last).sum() / last.sum().clamp(min=1)
        return loss


# -- orientation tasks ---------------------------------------------------------------------------------
class _OrientationTask(OrhanMaTask):
    """Von Mises tuning ``exp(kappa (cos 2(s - phi_i) - 1))`` with ``phi_i = i pi / 49``."""

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
        if n_locations not in (1, 2):
            raise ValueError(f"task.n_locations must be 1 or 2, got {n_locations}")
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
        }


class GatedDelayedEstimation(_OrientationTask):
    """GDE: two orientations; in the response period a cue raises one location's spontaneous rate
    ``cue_factor``-fold (5); report the cued location's orientation."""

    name = "gde"
    n_locations = 2
    output_names = ["orientation"]

    def __init__(self, cue_factor: float = 5.0, **kwargs):
        if cue_factor <= 1:
            raise ValueError(f"task.cue_factor must be > 1, got {cue_factor}")
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
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The estimate of the location the cue points at; the cue is read from the spikes as the
        location with more response-period spikes (the maximum-likelihood cue for Poisson units)."""
        estimates, valid = super().observer(batch)  # [B, 2]
        cued = self.response_counts(batch).sum(-1).argmax(dim=-1)  # [B]
        return estimates.gather(1, cued[:, None]), valid


class ChangeDetection(_OrientationTask):
    """CD: the response period shows a second display, with probability ``p_change`` (1/2) a freshly
    drawn orientation; answer 1 if it changed."""

    name = "cd"
    kind = "binary"
    output_names = ["changed"]

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
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        first = self.stimulus_counts(batch)[:, 0]  # [B, 50]
        second = self.response_counts(batch)[:, 0]
        p = observers.change_probability(first, second, self.preferred.to(first.device), self.kappa)
        p = (p * 2 * self.p_change) / (p * 2 * self.p_change + (1 - p) * 2 * (1 - self.p_change))
        return p, torch.ones_like(p, dtype=torch.bool)


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
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        counts = self.stimulus_counts(batch)[:, 0]
        p = observers.category_probability(counts, self.preferred.to(counts.device), self.offset, self.width)
        return p, torch.ones_like(p, dtype=torch.bool)


class Comparison(_LinearFeatureTask):
    """COMP: s1 in the stimulus period, s2 in the response period (both uniform on [-40, 40]); answer
    1 if s1 > s2."""

    name = "comp"
    output_names = ["first_larger"]
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
        }

    def observer(self, batch: Batch) -> tuple[Tensor, Tensor]:
        first = self.stimulus_counts(batch)[:, 0]
        second = self.response_counts(batch)[:, 0]
        return observers.comparison_probability(first, second, self.preferred.to(first.device), self.width)


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
        if noise_std < 0:
            raise ValueError(f"task.noise_std must be >= 0, got {noise_std}")
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

    def _sample(self, batch_size, generator, delays):
        batch = super()._sample(batch_size, generator, delays)
        batch.answer = batch.at_query(batch.targets)[:, 0]
        return batch

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.loss_weight
        error = ((outputs - batch.targets).abs().mean(-1) * mask).sum() / mask.sum()
        baseline = (batch.targets.abs().mean(-1) * mask).sum() / mask.sum()
        return {"info_loss": float(error / baseline.clamp(min=1e-12)), "mae": float(error)}
