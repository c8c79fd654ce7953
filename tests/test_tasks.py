"""Tasks: shapes, determinism, and targets checked against the inputs, independently of the generator."""

import pytest
import torch
from hydra.utils import instantiate

from neuromod.tasks import CueGo, MemorizeReport, TimePerson
from tests.conftest import compose_config


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


TASKS = {
    "time_person": lambda: TimePerson(),
    "time_person_factorial": lambda: TimePerson(encoding="factorial"),
    "time_person_day": lambda: instantiate(compose_config(["task=time_person_day"]).task),
    "cue_go": lambda: CueGo(),
    "memorize_report": lambda: MemorizeReport(),
}


@pytest.mark.parametrize("name", TASKS)
def test_shapes_and_masks(name):
    task = TASKS[name]()
    batch = task.sample(16, generator())
    T, B = batch.inputs.shape[:2]
    assert B == 16
    assert batch.inputs.shape == (T, B, task.input_size)
    assert batch.targets.shape == (T, B, task.output_size)
    assert batch.loss_weight.shape == (T, B)
    assert len(task.input_names) == task.input_size and len(task.output_names) == task.output_size
    assert ((batch.query_step >= 0) & (batch.query_step < T)).all()
    # the loss covers every step up to and including the query, nothing after
    steps = torch.arange(T)[:, None]
    assert torch.equal(batch.loss_weight.bool(), steps <= batch.query_step[None])
    assert ((batch.delay >= task.min_delay) & (batch.delay <= task.max_delay)).all()
    for name_, span in batch.periods.items():
        assert span.shape == (B, 2), name_
        assert (span[:, 0] <= span[:, 1]).all(), name_
    assert 0 < task.chance_level < 1


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_batch(name):
    task = TASKS[name]()
    a, b, c = task.sample(32, generator(3)), task.sample(32, generator(3)), task.sample(32, generator(4))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert torch.equal(a.answer, b.answer)
    assert not torch.equal(a.inputs, c.inputs)


def test_time_person_additive_answer_is_the_person_cued_for_the_queried_slot():
    task = TimePerson()
    P, S = task.n_people, task.n_slots
    batch = task.sample(200, generator(1))
    people, slots = batch.inputs[..., :P], batch.inputs[..., P:]
    for b in range(batch.batch_size):
        active = [t for t in range(batch.n_steps) if slots[t, b].abs().sum() > 0]
        *cue_steps, query = active  # the last slot-only input is the query
        assert people[query, b].abs().sum() == 0, "the query shows no person"
        assert len(cue_steps) == S
        had = {int(slots[t, b].argmax()): int(people[t, b].argmax()) for t in cue_steps}
        assert sorted(had) == list(range(S)), "every slot is cued once"
        expected = had[int(slots[query, b].argmax())]
        assert int(batch.query_step[b]) == query
        assert int(batch.answer[b]) == expected
        assert int(batch.targets[query, b].argmax()) == expected
        assert batch.delay[b] == query - cue_steps[-1] - 1
        # echo: during the cue the target is the cued person
        for t in cue_steps:
            assert int(batch.targets[t, b].argmax()) == int(people[t, b].argmax())


def test_time_person_factorial_answer_is_the_channel_of_the_cued_person_in_the_queried_slot():
    task = TimePerson(encoding="factorial")
    P, S = task.n_people, task.n_slots
    batch = task.sample(200, generator(2))
    x = batch.inputs
    for b in range(batch.batch_size):
        active = [t for t in range(batch.n_steps) if x[t, b].abs().sum() > 0]
        cue, query = active
        cued = (x[cue, b] > 0).nonzero().flatten().tolist()
        assert len(cued) == S and sorted(c // P for c in cued) == list(range(S))
        queried_channels = (x[query, b] > 0).nonzero().flatten().tolist()
        assert torch.allclose(x[query, b][queried_channels], torch.tensor(0.5))
        slot = queried_channels[0] // P
        assert queried_channels == list(range(slot * P, (slot + 1) * P))
        expected = next(c for c in cued if c // P == slot)
        assert int(batch.answer[b]) == expected
        assert int(batch.targets[query, b].argmax()) == expected
        assert batch.answer_mask[b].nonzero().flatten().tolist() == queried_channels


def test_factorial_predict_chooses_within_the_queried_slot():
    task = TimePerson(encoding="factorial")
    batch = task.sample(8, generator(5))
    outputs = torch.zeros_like(batch.targets)
    outputs[batch.query_step, torch.arange(8)] = 5.0  # large everywhere...
    outputs[batch.query_step, torch.arange(8), batch.answer] = 6.0  # ...largest at the answer
    assert task.correct(outputs, batch).all()
    outputs[batch.query_step, torch.arange(8), batch.answer] = 4.0
    assert not task.correct(outputs, batch).any()


def test_cue_go_target_reproduces_the_cue_at_go():
    task = CueGo(noise_std=0.0)
    batch = task.sample(64, generator(3))
    for b in range(64):
        cue = batch.inputs[task.cue_step, b, 0].item()
        go = int(batch.query_step[b])
        assert batch.inputs[go, b, 0].item() == pytest.approx(0.6)
        assert batch.targets[go, b, 0].item() == pytest.approx(cue)
        assert int(batch.answer[b]) == int(cue > 0.4)
    assert 0 < batch.answer.float().mean() < 1


def test_memorize_report_target_is_the_flagged_number():
    task = MemorizeReport()
    batch = task.sample(64, generator(4))
    for b in range(64):
        memorize = int(batch.inputs[:, b, 1].argmax())
        report = int(batch.inputs[:, b, 2].argmax())
        assert report == int(batch.query_step[b]) and report - memorize == int(batch.delay[b])
        value = batch.inputs[memorize, b, 0].item()
        assert batch.answer[b].item() == pytest.approx(value)
        assert batch.targets[report, b, 0].item() == pytest.approx(value)


def test_fixed_delays_and_longer_eval_delays():
    task = TimePerson(min_delay=1, max_delay=5, eval_delays=[1, 5, 30])
    delays = torch.tensor([1, 5, 30, 30])
    batch = task.sample(4, generator(), delays=delays)
    assert torch.equal(batch.delay, delays)
    assert batch.n_steps == task.n_steps_for(30)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_delay": -1}, "min_delay"),
        ({"min_delay": 5, "max_delay": 2}, "max_delay"),
        ({"encoding": "sparse"}, "task.encoding"),
        ({"eval_delays": []}, "eval_delays"),
    ],
)
def test_bad_task_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TimePerson(**kwargs)
