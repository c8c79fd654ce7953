"""Metrics that can fail: scores of networks whose strategy is known by construction, on the test set and
its controls (query removed, query asking for another slot, cues shuffled between trials)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuromod.models import ModelOutput
from neuromod.runner.finish import held_out_metrics
from neuromod.tasks import TimePerson
from neuromod.training import eval_delays_tensor, evaluate

N_TRIALS = 2000


class SlotMemory(nn.Module):
    """Reads time_person's additive inputs as intended: remembers the person cued with each slot and, at a
    step that shows a slot without a person (the query), answers that slot's person. ``read_query=False``:
    ignores the query and answers the person cued most often (the best guess without it)."""

    def __init__(self, n_people: int, n_slots: int, read_query: bool = True):
        super().__init__()
        self.P, self.S, self.read_query = n_people, n_slots, read_query

    def forward(self, inputs: torch.Tensor, record: bool = False) -> ModelOutput:
        T, B, _ = inputs.shape
        P, S = self.P, self.S
        people, slots = inputs[..., :P], inputs[..., P:]
        memory = torch.zeros(B, S, P)
        outputs = torch.zeros(T, B, P)
        for t in range(T):
            cued = people[t].amax(-1) > 0  # [B]
            slot, person = slots[t].argmax(-1), people[t].argmax(-1)
            rows = cued.nonzero()[:, 0]
            memory[rows, slot[rows]] = nn.functional.one_hot(person[rows], P).float()
            queried = (~cued) & (slots[t].amax(-1) > 0)
            if self.read_query:
                answer = memory[torch.arange(B), slot]  # [B, P]
                outputs[t] = torch.where(queried[:, None], answer, torch.zeros(B, P))
            else:
                outputs[t] = memory.sum(1) + 1e-3 * torch.arange(P, 0, -1)  # the most often cued person
        return ModelOutput(outputs=outputs, activity=outputs)


class Constant(nn.Module):
    """Ignores its input: the same output at every step of every trial."""

    def forward(self, inputs: torch.Tensor, record: bool = False) -> ModelOutput:
        out = torch.zeros(*inputs.shape[:2], 4)
        out[..., 2] = 1.0
        return ModelOutput(outputs=out, activity=out)


def _test_batch(task):
    generator = torch.Generator().manual_seed(5)
    return task.sample(N_TRIALS, generator, eval_delays_tensor(task, N_TRIALS, torch.device("cpu")))


def _metrics(model, task):
    return held_out_metrics(model, task, _test_batch(task), "cross_entropy", torch.Generator().manual_seed(6))


def test_a_network_that_reads_the_query_falls_to_chance_on_the_query_controls():
    task = TimePerson()
    metrics = _metrics(SlotMemory(task.n_people, task.n_slots), task)
    assert metrics["test_accuracy"] == 1.0
    assert metrics["query_swap_accuracy"] == pytest.approx(0.25, abs=0.04)
    assert metrics["cue_shuffle_accuracy"] == pytest.approx(0.25, abs=0.04)
    assert metrics["query_ablation_accuracy"] == pytest.approx(0.25, abs=0.04)


def test_a_network_that_ignores_the_query_scores_its_best_guess_and_no_more():
    """Without the query the best answer is the person cued most often: 9/16 with 4 people and 3 slots
    (people are drawn with replacement). Removing the query costs such a network nothing."""
    task = TimePerson()
    metrics = _metrics(SlotMemory(task.n_people, task.n_slots, read_query=False), task)
    assert metrics["test_accuracy"] == pytest.approx(9 / 16, abs=0.04)
    assert metrics["query_ablation_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=0.01)
    assert metrics["test_accuracy"] < 0.65


def test_a_network_that_ignores_its_input_scores_chance_everywhere():
    task = TimePerson()
    metrics = _metrics(Constant(), task)
    for key in ("test_accuracy", "query_swap_accuracy", "cue_shuffle_accuracy", "query_ablation_accuracy"):
        assert metrics[key] == pytest.approx(task.chance_level, abs=0.04), key


def test_factorial_accuracy_needs_the_query():
    """A factorial read-out that holds every slot's person at the query step but ignores which slot is
    asked: the masked figure (answer chosen among the queried slot's channels) calls it perfect; the
    accuracy over every answer channel scores it as a guess of the slot."""
    task = TimePerson(encoding="factorial")
    batch = _test_batch(task)
    trials = torch.arange(batch.batch_size)
    cue_inputs = batch.inputs[task.lead]  # [B, S*P]: one channel per (slot, cued person)
    outputs = torch.zeros_like(batch.targets)
    outputs[batch.query_step, trials] = cue_inputs  # every cued channel equally high, whatever the query
    result = evaluate(_Fixed(outputs), task, batch, "cross_entropy")
    assert result.extra["masked_accuracy"] == 1.0
    assert result.accuracy <= 1 / task.n_slots + 0.04


class _Fixed(nn.Module):
    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = outputs

    def forward(self, inputs: torch.Tensor, record: bool = False) -> ModelOutput:
        return ModelOutput(outputs=self.outputs, activity=self.outputs)
