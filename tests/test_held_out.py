"""Validation and test trials are held out by construction: no such trial is ever drawn for training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromod.tasks import CueGo, MemorizeReport, TimePerson
from neuromod.tasks.split import ContentSplit
from neuromod.validation import ConfigError

STEPS = 2000
BATCH = 64
N_EVAL = 512


def trial_keys(batch) -> set[bytes]:
    """Each trial's identity: its input sequence up to its answer step (all a network sees before it
    answers), with its delay; padding steps are left out."""
    inputs = batch.inputs.detach().cpu().numpy()  # [T, B, D]
    last = batch.query_step.cpu().numpy()
    keys = set()
    steps = np.arange(inputs.shape[0])[:, None]
    kept = np.where((steps <= last[None, :])[..., None], inputs, 0.0)  # [T, B, D]
    for b in range(inputs.shape[1]):
        keys.add(int(last[b]).to_bytes(4, "little") + kept[: last[b] + 1, b].tobytes())
    return keys


@pytest.mark.parametrize(
    "task",
    [
        TimePerson(),
        TimePerson(
            people=["a", "b", "c", "d", "e", "f", "g", "h"],
            slots=["9", "10", "11", "12", "13", "14", "15", "16"],
        ),
        CueGo(),
        MemorizeReport(),
    ],
    ids=["time_person", "time_person_day", "cue_go", "memorize_report"],
)
def test_no_validation_or_test_trial_is_drawn_for_training(task):
    held = set()
    for split, seed in (("validation", 1), ("test", 2)):
        generator = torch.Generator().manual_seed(seed)
        delays = torch.arange(N_EVAL) % (task.max_delay - task.min_delay + 1) + task.min_delay
        held |= trial_keys(task.sample(N_EVAL, generator, delays, split=split))
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for step in range(STEPS):
        seen |= trial_keys(task.training_batch(BATCH, generator, step))
    assert len(seen) > 1000  # training really drew many distinct trials
    assert not (seen & held)


def test_time_person_training_repeats_trials_so_the_check_can_fail():
    # Without the split, the same check finds the overlap: the default space has 23,040 trials.
    task = TimePerson()
    generator = torch.Generator().manual_seed(0)
    train = set()
    for _ in range(300):
        train |= trial_keys(task.sample(BATCH, generator))
    other = trial_keys(task.sample(N_EVAL, torch.Generator().manual_seed(1)))
    assert len(train & other) > 100


def test_time_person_contents_of_each_split_are_disjoint_and_cover_the_space():
    task = TimePerson()
    sizes = task.held_out()["contents"]
    assert sizes == {"train": 40, "validation": 8, "test": 16}
    codes = {}
    for split in ("train", "validation", "test"):
        batch = task.sample(4096, torch.Generator().manual_seed(3), split=split)
        people = torch.stack([batch.content[s] for s in task.slots], dim=1)
        codes[split] = set(task.codes(people).tolist())
    assert len(codes["train"]) == 40 and len(codes["validation"]) == 8 and len(codes["test"]) == 16
    assert not (codes["train"] & codes["test"]) and not (codes["train"] & codes["validation"])
    assert not (codes["validation"] & codes["test"])


def test_the_split_is_the_task_s_not_the_run_s():
    # Same holdout_seed -> same test contents for every run seed; another holdout_seed -> others.
    a = ContentSplit(64, 0.125, 0.25, seed=0)
    b = ContentSplit(64, 0.125, 0.25, seed=0)
    c = ContentSplit(64, 0.125, 0.25, seed=1)
    assert torch.equal(a.part_of(torch.arange(64)), b.part_of(torch.arange(64)))
    assert not torch.equal(a.part_of(torch.arange(64)), c.part_of(torch.arange(64)))


def test_hashed_split_of_a_large_space_holds_its_fractions():
    split = ContentSplit(8**8, 0.125, 0.25, seed=0)
    assert not split.exact
    parts = split.part_of(torch.randint(8**8, (200_000,), generator=torch.Generator().manual_seed(0)))
    fractions = [float((parts == k).float().mean()) for k in range(3)]
    assert fractions == pytest.approx([0.625, 0.125, 0.25], abs=0.005)
    drawn = split.draw(5000, "test", torch.Generator().manual_seed(1))
    assert bool((split.part_of(drawn) == 2).all())


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"holdout_test": 1.0}, "task.holdout_test"),
        ({"holdout_validation": -0.1}, "task.holdout_validation"),
        ({"holdout_validation": 0.5, "holdout_test": 0.5}, "task.holdout_validation"),
        ({"holdout_test": 0.001}, "task.holdout_test"),
    ],
)
def test_impossible_splits_are_refused_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        TimePerson(**kwargs)


def test_cue_go_without_noise_says_nothing_is_held_out():
    assert CueGo().held_out()["by"] == "continuous"
    assert CueGo(noise_std=0.0).held_out()["by"] == "none"
