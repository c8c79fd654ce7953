"""``cue_go``: one input channel. A cue of amplitude 0 or ``cue_amplitude`` at ``cue_step``, a go pulse
later; the target echoes the cue at the cue step and reproduces the cue's amplitude at the go step."""

from __future__ import annotations

import torch
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task


class CueGo(Task):
    name = "cue_go"
    has_query_cue = True
    answer_type = "choice"
    input_names = ["signal"]
    output_names = ["rate"]

    def __init__(
        self,
        cue_step: int = 5,
        cue_amplitude: float = 0.8,
        go_amplitude: float = 0.6,
        noise_std: float = 0.02,
        min_delay: int = 5,
        max_delay: int = 20,
        eval_delays: list[int] | None = None,
        test_delays: list[int] | None = None,
        response_weight: float = 10.0,
    ):
        super().__init__(min_delay, max_delay, eval_delays, test_delays)
        validation.delays_at_least(
            {
                "task.min_delay": self.min_delay,
                "task.eval_delays": self.eval_delays,
                "task.test_delays": self.test_delays,
            },
            1,
            "cue_go: go follows cue",
        )
        validation.integer("task.cue_step", cue_step, minimum=0)
        validation.number("task.noise_std", noise_std, at_least=0)
        validation.number("task.response_weight", response_weight, positive=True)
        self.response_weight = float(response_weight)
        self.cue_step = int(cue_step)
        self.cue_amplitude = float(cue_amplitude)
        self.go_amplitude = float(go_amplitude)
        self.noise_std = float(noise_std)
        self.choice_values = (0.0, self.cue_amplitude)

    @property
    def chance_level(self) -> float:
        return 0.5

    def held_out(self) -> dict:
        if self.noise_std > 0:
            return {"by": "continuous", "why": "every step carries Gaussian noise (task.noise_std > 0)"}
        return {
            "by": "none",
            "why": "task.noise_std=0: the trial space is the cue (2) x the delays, every trial occurs "
            "in training",
        }

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor, split: str) -> Batch:
        device = generator.device
        B = batch_size
        T = self.cue_step + int(delays.max()) + 1
        trials = torch.arange(B, device=device)
        cue_class = torch.randint(2, (B,), generator=generator, device=device)  # [B] 0: silent, 1: cue
        amplitude = cue_class.float() * self.cue_amplitude  # [B]
        go_step = self.cue_step + delays  # [B]
        inputs = self.noise_std * torch.randn(T, B, 1, generator=generator, device=device)
        inputs[self.cue_step, :, 0] += amplitude
        inputs[go_step, trials, 0] += self.go_amplitude
        targets = torch.zeros(T, B, 1, device=device)
        targets[self.cue_step, :, 0] = amplitude
        targets[go_step, trials, 0] = amplitude
        cue = torch.full((B,), self.cue_step, device=device)
        loss_weight = self._loss_weights(T, go_step, [cue, go_step])
        periods = {
            "lead": torch.stack([torch.zeros_like(cue), cue], dim=1),
            "cue": torch.stack([cue, cue + 1], dim=1),
            "delay": torch.stack([cue + 1, go_step], dim=1),
            "query": torch.stack([go_step, go_step + 1], dim=1),
        }
        return Batch(inputs, targets, loss_weight, go_step, delays, cue_class, None, periods)
