"""Orhan & Ma's tasks against the formulas of the original code: the dynamic-input statistics, the
spontaneous rates, the gde observer's cue, the sequentiality window, and the training defaults that must
not diverge. Expected values are written out here from those formulas, not taken from the task's code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from neuromod.analysis.sequentiality import sequentiality
from neuromod.api import run_config as run
from neuromod.tasks import observers
from tests.conftest import compose_config

TRIALS = 400


def make(name: str, *overrides: str):
    return instantiate(compose_config([f"task={name}", *(f"task.{o}" for o in overrides)]).task)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


#: The original's dynamic input: amplitude and the sweep's range (its units' preferred stimuli span it).
ORIGINAL_DYNAMIC = {
    "de1": (1.0, 0.0, math.pi),
    "de2": (1.0, 0.0, math.pi),
    "gde": (1.0, 0.0, math.pi),
    "afc2": (1.0, -40.0, 40.0),
    "cd": (0.1, 0.0, math.pi),
    "comp": (0.1, -50.0, 50.0),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_DYNAMIC))
def test_dynamic_input_has_the_original_statistics(name):
    amplitude, lo, hi = ORIGINAL_DYNAMIC[name]
    task = make(name, "dynamic_input=true", "delay=50")
    batch = task.sample(TRIALS, gen(1))
    T = batch.n_steps  # 25 + 50 + 25: every trial lasts the whole batch
    counts = batch.inputs[..., -50:]  # [T, B, 50]
    assert bool((counts == counts.round()).all())
    # the original: L_ti = A exp(-10 (s_t - phi_i)^2), s_t = linspace(lo, hi, T), phi = linspace(lo, hi, 50)
    s = np.linspace(lo, hi, T)[:, None]
    phi = np.linspace(lo, hi, 50)[None, :]
    expected = amplitude * np.exp(-10.0 * (s - phi) ** 2)  # [T, 50]
    mean = counts.mean(1).double().numpy()  # [T, 50]
    # every step and unit within 5 Poisson standard errors of the formula
    assert np.all(np.abs(mean - expected) <= 5 * np.sqrt(expected / TRIALS) + 4 / TRIALS)
    # the peak rate: the units the bump passes close to fire about `amplitude` spikes per step
    near = expected > 0.95 * amplitude
    assert near.sum() >= 1 and abs(mean[near].mean() - expected[near].mean()) < 0.1 * amplitude
    # tuning shape: summed over the trial, a unit's counts fall off as exp(-10 d^2) around its peak step
    if name in ("de1", "afc2"):
        unit, step = np.unravel_index(np.argmax(expected), expected.shape)
        for offset in (1, 2, 3):
            assert mean[step + offset, unit] == pytest.approx(expected[step + offset, unit], abs=0.12)
    # the task's own channels are untouched by the dynamic condition
    plain = make(name, "delay=50")
    assert task.input_size == plain.input_size + 50


def test_spontaneous_rates_follow_the_original():
    # fixed delay: spontaneous / delay per delay step, spontaneous / response_steps per response step
    task = make("de1", "delay=80", "spontaneous=2.0")
    inputs = task.sample(TRIALS, gen(2)).inputs  # [130, B, 50]
    assert float(inputs[25:105].mean()) == pytest.approx(2.0 / 80, rel=0.05)
    assert float(inputs[105:130].mean()) == pytest.approx(2.0 / 25, rel=0.05)
    # variable delays: spontaneous / max_delay per step in every trial, whatever its own delay
    task = make("de1", "delays=[10,100]", "spontaneous=2.0")
    assert task.delay_rate == pytest.approx(2.0 / 100)
    batch = task.sample(TRIALS, gen(3))
    steps = torch.arange(batch.n_steps)[:, None]
    for delay in (10, 100):
        trials = batch.delay == delay
        in_delay = ((steps >= 25) & (steps < 25 + delay))[:, 0]
        rate = float(batch.inputs[in_delay][:, trials].mean())
        assert rate == pytest.approx(2.0 / 100, rel=0.15), delay


def test_gde_observer_is_told_the_true_cue():
    # no response-period spikes at all: the cue cannot be read from the spikes, the observer still knows it
    task = make("gde", "gain=1.0", "stimulus_steps=100", "delay=5", "response_steps=100", "spontaneous=0.0")
    batch = task.sample(64, gen(4))
    cue = batch.info["cued_location"]
    assert set(cue.tolist()) == {0, 1}
    estimate, valid = task.observer(batch)
    assert bool(valid.all())
    assert float(observers.circular_distance(estimate[:, 0], batch.answer).max()) < 0.05
    # reading the cue from the (absent) spikes would pick location 0 every time
    metrics = task.extra_metrics(batch.targets, batch)
    assert metrics["cue_inference_accuracy"] == pytest.approx(float((cue == 0).float().mean()))
    assert metrics["circular_error"] == pytest.approx(0.0, abs=1e-6)


def test_info_follows_a_selection():
    batch = make("gde").sample(8, gen(5))
    index = torch.tensor([3, 1])
    assert torch.equal(batch.select(index).info["cued_location"], batch.info["cued_location"][index])


def test_sequentiality_covers_the_whole_orhan_ma_trial():
    task = make("de1", "delays=[10,40]")
    batch = task.sample(16, gen(6))
    assert torch.equal(task.analysis_last_step(batch), 25 + batch.delay + 25 - 1)
    # other tasks keep the query step
    person = make("time_person")
    tp = person.sample(4, gen(6))
    assert torch.equal(person.analysis_last_step(tp), tp.query_step)


def test_silent_background_neurons_are_counted_not_averaged():
    T = 40
    activity = np.full((T, 1, 3), 0.5)  # two neurons active throughout, peaks at steps 10 and 30
    activity[10, 0, 0] = 2.0
    activity[30, 0, 1] = 2.0
    activity[:, 0, 2] = 0.0
    activity[18:22, 0, 2] = 1.0  # silent outside its ridge (steps 18-21, peak 20): no finite ratio
    activity[20, 0, 2] = 3.0
    si = sequentiality(activity)
    assert si.n_kept[0] == 3 and si.n_silent_background[0] == 1
    # the trial's ratio averages the two neurons with a finite one: log((2 + 3 * 0.5) / 4 / 0.5)
    assert si.ridge_to_background[0] == pytest.approx(math.log(3.5 / 4 / 0.5))
    assert si.summary()["si_neurons_silent_background"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["de1", "comp"])
def test_rnn_defaults_do_not_diverge(tmp_path, name):
    # seed 0 diverged at step 4 with lr 0.01: Adam's first steps move every recurrent weight by about lr
    overrides = [f"task={name}", "architecture=rnn", "seed=0", "training.steps=20", "training.eval_every=10"]
    overrides += ["training.eval_batch_size=64", "training.progress=false", "analysis.figures=false"]
    summary = run(compose_config([*overrides, "threads=1"]), output_dir=tmp_path)
    assert summary["status"] == "completed", summary.get("error")
    assert math.isfinite(summary["final"]["info_loss"])
