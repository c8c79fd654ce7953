"""time_person's distraction options: person-only flashes and input noise, only inside the delay."""

import pytest
import torch

from neuromod.tasks import TimePerson
from neuromod.validation import ConfigError

DELAYS = torch.tensor([1, 2, 3, 5, 8, 20, 20, 20])


def _batch(**kwargs):
    return TimePerson(**kwargs).sample(len(DELAYS), torch.Generator().manual_seed(3), delays=DELAYS)


def _delay_mask(task, batch):
    steps = torch.arange(batch.inputs.shape[0])[:, None]
    start = task.lead + task.cue_steps
    return (steps >= start) & (steps < batch.query_step[None, :])


def test_distractors_are_person_only_flashes_at_distinct_delay_steps():
    task = TimePerson(distractors=3)
    clean, batch = _batch(), _batch(distractors=3)
    P = task.n_people
    changed = (batch.inputs != clean.inputs).any(dim=-1)  # [T, B]
    delay = _delay_mask(task, batch)
    assert not (changed & ~delay).any(), "a distractor outside the delay"
    # min(3, delay) flashes per trial, each one person at the cue amplitude and no slot
    assert changed.sum(dim=0).tolist() == [min(3, int(d)) for d in DELAYS]
    flashes = batch.inputs[changed]  # [n, D]
    assert (flashes[:, P:] == 0).all()
    assert ((flashes[:, :P] == task.cue_amplitude).sum(dim=1) == 1).all()
    # the answers and every non-delay input are those of the clean trials
    assert torch.equal(batch.answer, clean.answer)
    assert torch.equal(batch.inputs[~delay], clean.inputs[~delay])


def test_delay_noise_is_only_in_the_delay_with_its_std_and_the_same_per_seed():
    task = TimePerson(delay_noise=0.5)
    clean, batch = _batch(), _batch(delay_noise=0.5)
    delay = _delay_mask(task, batch)
    diff = batch.inputs - clean.inputs
    assert (diff[~delay] == 0).all()
    assert diff[delay].std().item() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(batch.inputs, _batch(delay_noise=0.5).inputs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distractors": -1}, "task.distractors"),
        ({"distractors": 1.5}, "task.distractors"),
        ({"delay_noise": -0.1}, "task.delay_noise"),
        ({"distractors": 1, "encoding": "factorial"}, "task.encoding=additive"),
    ],
)
def test_bad_distraction_settings_name_the_key(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TimePerson(**kwargs)
