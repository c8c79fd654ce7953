"""``memorize_report``: a stream of numbers in [-1, 1]; a "memorize" flag marks one of them and a later
"report" flag asks for it back (the lab-notebook LSTM exercise)."""

from __future__ import annotations

import torch
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task


class MemorizeReport(Task):
    name = "memorize_report"
    has_query_cue = True
    answer_type = "continuous"
    input_names = ["stream", "memorize", "report"]
    output_names = ["report"]

    def __init__(
        self,
        max_memorize_step: int = 5,
        min_delay: int = 1,
        max_delay: int = 20,
        eval_delays: list[int] | None = None,
        test_delays: list[int] | None = None,
        tolerance: float = 0.1,
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
            "report follows memorize",
        )
        validation.integer("task.max_memorize_step", max_memorize_step, minimum=0)
        validation.number("task.tolerance", tolerance, positive=True)
        validation.number("task.response_weight", response_weight, positive=True)
        self.response_weight = float(response_weight)
        self.max_memorize_step = int(max_memorize_step)
        self.tolerance = float(tolerance)

    @property
    def chance_level(self) -> float:
        # Always answering 0 is within tolerance of a uniform value in [-1, 1] with this probability.
        return min(self.tolerance, 1.0)

    def held_out(self) -> dict:
        return {"by": "continuous", "why": "the stream's values are uniform on [-1, 1]"}

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor, split: str) -> Batch:
        device = generator.device
        B = batch_size
        T = self.max_memorize_step + int(delays.max()) + 1
        trials = torch.arange(B, device=device)
        stream = torch.rand(T, B, generator=generator, device=device) * 2 - 1  # [T, B]
        memorize_step = torch.randint(self.max_memorize_step + 1, (B,), generator=generator, device=device)
        report_step = memorize_step + delays
        inputs = torch.zeros(T, B, 3, device=device)
        inputs[:, :, 0] = stream
        inputs[memorize_step, trials, 1] = 1.0
        inputs[report_step, trials, 2] = 1.0
        answer = stream[memorize_step, trials]  # [B]
        targets = torch.zeros(T, B, 1, device=device)
        targets[report_step, trials, 0] = answer
        loss_weight = self._loss_weights(T, report_step, [report_step])
        periods = {
            "lead": torch.stack([torch.zeros_like(memorize_step), memorize_step], dim=1),
            "cue": torch.stack([memorize_step, memorize_step + 1], dim=1),
            "delay": torch.stack([memorize_step + 1, report_step], dim=1),
            "query": torch.stack([report_step, report_step + 1], dim=1),
        }
        return Batch(inputs, targets, loss_weight, report_step, delays, answer, None, periods)
