"""The NeuroGym adapter: a clear message without neurogym; with it, seeded aligned batches from the
environment's own trials (these tests are skipped when neurogym is not installed; `make test` installs it)."""

from __future__ import annotations

import sys

import pytest
import torch
from hydra.utils import instantiate

from neuromod.api import run_config as run
from neuromod.validation import ConfigError
from tests.conftest import FAST, compose_config


def test_without_neurogym_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "neurogym", None)  # as if not installed (import raises ImportError)
    with pytest.raises(ConfigError) as error:
        run(compose_config([*FAST, "task=neurogym"]), output_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message and "pip install -e '.[neurogym]'" in message


def make(*overrides: str):
    pytest.importorskip("neurogym")
    return instantiate(compose_config(["task=neurogym", *overrides]).task)


def test_batches_are_aligned_padded_and_seeded():
    task = make("task.env_id=DelayComparison-v0")
    assert task.output_names[0] == "fixation" and task.chance_level == 0.5
    batch = task.sample(16, torch.Generator().manual_seed(0))
    T = batch.n_steps
    assert batch.inputs.shape == (T, 16, task.input_size) and batch.targets.shape == (T, 16, 3)
    again = task.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(batch.inputs, again.inputs) and torch.equal(batch.answer, again.answer)
    other = task.sample(16, torch.Generator().manual_seed(1))
    assert not torch.equal(batch.inputs, other.inputs)
    start, stop = batch.periods["query"][:, 0], batch.periods["query"][:, 1]
    steps = torch.arange(T)[:, None]
    assert torch.equal(batch.loss_weight, ((steps >= start) & (steps < stop)).float())
    assert torch.equal(batch.query_step, stop - 1)
    assert set(batch.answer.tolist()) <= {1, 2}  # a choice, never fixation
    # after each trial's end: padding only
    ends = torch.stack(list(batch.periods.values())).amax(0)[:, 1]  # [B]
    assert float((batch.inputs * (steps >= ends)[..., None]).abs().sum()) == 0.0


def test_delay_match_sample_answer_matches_the_stimuli():
    # Without observation noise the test stimulus equals the sample exactly when the answer is "match".
    task = make("task.env_id=DelayMatchSample-v0", "+task.kwargs.sigma=0.0")
    batch = task.sample(32, torch.Generator().manual_seed(2))
    trials = torch.arange(32)
    sample = batch.inputs[batch.periods["sample"][:, 0], trials, 1:]  # [B, 2]
    test = batch.inputs[batch.periods["test"][:, 0], trials, 1:]
    same = (sample - test).abs().amax(-1) < 1e-5
    match = task.output_names.index("match")
    assert torch.equal(same, batch.answer == match)
    assert 0 < int(same.sum()) < 32


def test_bad_env_id_and_period_name_the_key():
    with pytest.raises(Exception, match="task.env_id"):  # wrapped by hydra.utils.instantiate
        make("task.env_id=NoSuchTask-v0")
    task = make("task.decision_period=nonexistent")
    with pytest.raises(ValueError, match="task.decision_period"):
        task.sample(2, torch.Generator().manual_seed(0))


def test_a_short_run_records_accuracy(tmp_path):
    pytest.importorskip("neurogym")
    summary = run(compose_config([*FAST, "task=neurogym", "architecture=lstm"]), output_dir=tmp_path)
    assert summary["status"] == "completed"
    assert summary["final"]["chance_accuracy"] == 0.5
    assert 0 <= summary["final"]["eval_accuracy"] <= 1
