"""The trial structure all of Orhan & Ma's (2019) tasks share (:class:`OrhanMaTask`): stimulus, delay and
response periods, Poisson population inputs, the response-period loss, the optimal-observer score. The
tasks themselves are in :mod:`neuromod.tasks.orhan_ma`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from neuromod import validation
from neuromod.tasks import observers
from neuromod.tasks.base import Batch, Task

N_UNITS = 50
#: Dynamic-input tuning: ``exp(-DYNAMIC_SHARPNESS (s - phi_i)^2)`` in the feature's own units, as in Orhan &
#: Ma's code (narrower than every task's stimulus tuning).
DYNAMIC_SHARPNESS = 10.0


class OrhanMaTask(Task):
    """Shared trial structure, input noise, losses and conditions of the suite.

    Subclasses set ``kind`` (``estimate``, ``binary`` or ``curve``), ``n_locations``, the stimulus
    ``feature_range``, ``dynamic_amplitude`` and :meth:`tuning`, and implement :meth:`_draw`.
    """

    kind: str = "estimate"
    n_locations: int = 1
    #: Range the dynamic-input bump sweeps across over a trial.
    feature_range: tuple[float, float] = (0.0, math.pi)
    #: Peak expected spikes per step of a dynamic-input unit (Orhan & Ma: 1 for DE, GDE and 2AFC, 0.1 for
    #: CD and COMP).
    dynamic_amplitude: float = 1.0

    def __init__(
        self,
        delay: int = 100,
        delays: list[int] | None = None,
        eval_delays: list[int] | None = None,
        test_delays: list[int] | None = None,
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
        delays = validation.eval_delays(delays, key="task.delays")
        super().__init__(
            min(delays), max(delays), delays if eval_delays is None else eval_delays, test_delays
        )
        self.delays = sorted(set(delays))
        for key, value in (("stimulus_steps", stimulus_steps), ("response_steps", response_steps)):
            validation.integer(f"task.{key}", value, minimum=1)
        self.stimulus_steps = int(stimulus_steps)
        self.response_steps = int(response_steps)
        self.tethered = bool(tethered)
        self.read_offset = 10 if self.tethered else 5
        if self.read_offset > self.response_steps:
            raise ValueError(
                f"task.response_steps={response_steps} is too short: the answer is read "
                f"{self.read_offset} steps before the end (tethered={self.tethered})"
            )
        validation.number("task.gain", gain, at_least=0)
        validation.number("task.spontaneous", spontaneous, at_least=0)
        self.gain = float(gain)
        self.spontaneous = float(spontaneous)
        if activity_penalty is None:
            activity_penalty = 0.1 if self.tethered else 1e-4
        validation.number("task.activity_penalty", activity_penalty, at_least=0)
        self.activity_penalty = float(activity_penalty)
        self.dynamic_input = bool(dynamic_input)
        validation.interval("task.tolerance", tolerance, 0, math.pi / 2, closed="high", shown="(0, pi/2]")
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
    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        delays: Tensor | None = None,
        split: str = "train",
    ) -> Batch:
        """As :meth:`Task.sample`, but training delays are drawn from ``task.delays`` (the paper's
        variable-delay condition draws each trial's delay from {10, 40, 70, 100})."""
        if delays is None:
            choices = torch.tensor(self.delays, dtype=torch.long, device=generator.device)
            pick = torch.randint(len(choices), (batch_size,), generator=generator, device=generator.device)
            delays = choices[pick]
        return super().sample(batch_size, generator, delays, split)

    def _draw(self, batch_size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Stimuli of ``batch_size`` trials: ``stimulus_rate [B, D]`` and ``response_rate [B, D]``
        (expected spikes per step), ``target [B, K]``, ``answer [B]`` and optionally ``content`` (name ->
        ``[B]``: the stimulus values, :attr:`Batch.content`) and ``info`` (the batch's
        :attr:`~neuromod.tasks.base.Batch.info`)."""
        raise NotImplementedError

    def held_out(self) -> dict:
        return {
            "by": "continuous",
            "why": "stimuli are continuous and the inputs Poisson spike counts of them: a repeat has "
            "probability 0",
        }

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor, split: str) -> Batch:
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
            content=drawn.get("content", {}),
            info=drawn.get("info", {}),
        )

    @property
    def delay_rate(self) -> float:
        """Spontaneous spikes per unit per delay step: ``spontaneous`` spread over the longest training
        delay, the same in every trial (as Orhan & Ma's variable-delay code; a rate that depended on the
        trial's own delay would tell the network how long the delay is)."""
        return self.spontaneous / max(self.max_delay, 1)

    def _inputs(self, drawn, in_stimulus, in_delay, in_response, delays, generator) -> Tensor:
        """Poisson counts: tuning during the stimulus, :attr:`delay_rate` during the delay, the task's
        response-period rates."""
        rate = (
            in_stimulus[..., None] * drawn["stimulus_rate"][None]
            + in_delay[..., None] * self.delay_rate
            + in_response[..., None] * drawn["response_rate"][None]
        )  # [T, B, D]
        return torch.poisson(rate, generator=generator)

    def _targets(self, drawn, in_response, steps, response_start) -> Tensor:
        return in_response[..., None] * drawn["target"][None]  # [T, B, K]

    def dynamic_rate(self, steps: Tensor, end: Tensor) -> Tensor:
        """Expected spikes per step of the 50 dynamic-input units ``[T, B, 50]``: a bump at
        ``s_t = lo + (hi - lo) t / (end - 1)`` sweeping linearly across :attr:`feature_range` over each
        trial (steps ``0 .. end - 1``; 0 after the trial's end), with tuning
        ``dynamic_amplitude * exp(-10 (s_t - phi_i)^2)`` around the task's preferred stimuli ``phi_i``."""
        lo, hi = self.feature_range
        progress = (steps.float() / (end[None, :] - 1).clamp(min=1).float()).clamp(max=1.0)  # [T, B]
        s = lo + (hi - lo) * progress  # [T, B]
        phi = self.preferred.to(s.device)
        rate = self.dynamic_amplitude * torch.exp(-DYNAMIC_SHARPNESS * (s[..., None] - phi) ** 2)
        return rate * (steps < end[None, :])[..., None]  # [T, B, 50]

    def _dynamic(self, steps: Tensor, end: Tensor, generator: torch.Generator) -> Tensor:
        """Dynamic-input condition: Poisson counts of :meth:`dynamic_rate`, independent of the stimulus
        ``[T, B, 50]``."""
        return torch.poisson(self.dynamic_rate(steps, end), generator=generator)

    def _spontaneous_response(self, batch_size: int, device) -> Tensor:
        """Spontaneous rate per step in the response period ``[B, D]``."""
        return torch.full(
            (batch_size, self.n_task_channels), self.spontaneous / self.response_steps, device=device
        )

    def analysis_last_step(self, batch: Batch) -> Tensor:
        """The whole trial, response period included (Orhan & Ma computed the sequentiality index over
        every step of a trial), not only the steps up to the read-out."""
        return batch.periods["query"][:, 1] - 1

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
