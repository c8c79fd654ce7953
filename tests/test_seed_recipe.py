"""The seed's recipe (``experiment=seed_additive``) and the keys it needs: ``task.target_amplitude``,
``task.trial_steps``, ``training.fixed_train_set`` and ``training.eval_at_start``."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from neuromod.api import run_config as run
from neuromod.runner.checks import check_config
from neuromod.runner.run import build_run
from neuromod.tasks import TimePerson
from neuromod.training.losses import compute_loss
from neuromod.validation import ConfigError
from tests.conftest import FAST, ROOT, compose_config
from tests.test_cli import main_py


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("encoding", ["additive", "factorial"])
def test_target_amplitude_sets_the_cue_echo_and_the_answer(encoding):
    task = TimePerson(encoding=encoding, target_amplitude=0.8, query_amplitude=0.8)
    batch = task.sample(64, generator())
    trials = torch.arange(64)
    # every non-zero target is 0.8: the cue echo and the answer
    assert torch.allclose(batch.targets.unique(), torch.tensor([0.0, 0.8]))
    assert torch.allclose(batch.targets[batch.query_step, trials, batch.answer], torch.tensor(0.8))
    echo = batch.targets[task.lead : task.lead + task.cue_steps]
    assert echo.gt(0).sum() == 64 * task.n_slots  # one echoed person per cued slot
    # the query's amplitude is the input's at the query step
    assert batch.inputs[batch.query_step, trials].max(dim=-1).values.eq(torch.tensor(0.8)).all()


def test_default_targets_are_one():
    batch = TimePerson().sample(16, generator())
    assert set(batch.targets.unique().tolist()) == {0.0, 1.0}


def test_trial_steps_fixes_the_length_and_counts_every_step():
    task = TimePerson(min_delay=1, max_delay=18, trial_steps=25, response_weight=1.0)
    batch = task.sample(200, generator())
    assert batch.n_steps == 25
    assert torch.equal(batch.loss_weight, torch.ones(25, 200))
    steps = torch.arange(25)[:, None]
    assert batch.targets[steps > batch.query_step[None]].abs().sum() == 0  # silent after the query
    # a longer evaluation delay still gets its whole trial
    longer = task.sample(2, generator(), delays=torch.tensor([1, 30]))
    assert longer.n_steps == task.n_steps_for(30) == 2 + 3 + 30 + 1


def test_the_seed_loss_is_plain_mse_over_every_step_and_channel():
    """With trial_steps and response_weight 1, training.loss=mse is torch's nn.MSELoss (the seed's)."""
    task = TimePerson(min_delay=1, max_delay=18, trial_steps=25, response_weight=1.0)
    batch = task.sample(50, generator())
    outputs = torch.randn(batch.targets.shape, generator=generator(1))
    expected = F.mse_loss(outputs, batch.targets)
    assert compute_loss(outputs, batch, "mse").item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target_amplitude": 0}, "task.target_amplitude=0"),
        ({"target_amplitude": "high"}, "task.target_amplitude='high'"),
        ({"trial_steps": 0}, "task.trial_steps=0"),
        ({"trial_steps": 2.5}, "task.trial_steps=2.5"),
    ],
)
def test_bad_seed_task_keys_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TimePerson(**kwargs)


@pytest.mark.parametrize("key", ["training.fixed_train_set", "training.eval_at_start"])
def test_training_switches_must_be_booleans(key):
    with pytest.raises(ConfigError, match=f"{key}='yes'.*true or false"):
        check_config(compose_config([f"{key}=yes"]))


def test_modulator_init_pytorch_leaves_pytorchs_initialisation():
    from neuromod.runner.build import build

    H = 8

    def model(*overrides):
        cfg = compose_config([f"architecture.hidden_size={H}", *overrides])
        return build(cfg, torch.device("cpu"))[1]

    ours, theirs = model(), model("architecture.modulator_init=pytorch", "architecture.drive_init_std=null")
    forget = [
        (m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0)[H : 2 * H]
        for m in (ours.neurons.modulator, theirs.neurons.modulator)
    ]
    assert torch.allclose(forget[0], torch.full((H,), 2.0))
    assert forget[1].abs().max() <= 2 / H**0.5  # two biases, each uniform +-1/sqrt(H)
    # the gain starts at af.init (1) with ours, near 0 with PyTorch's head bias
    assert ours.neurons.modulator.head.bias[0].item() == 1.0
    assert abs(theirs.neurons.modulator.head.bias[0].item()) <= 1 / H**0.5
    bound = 1 / theirs.encoder.in_features**0.5
    assert theirs.encoder.weight.abs().max() <= bound < ours.encoder.weight.abs().max()
    with pytest.raises(ConfigError, match="architecture.modulator_init='keras'"):
        model("architecture.modulator_init=keras")
    with pytest.raises(ConfigError, match="architecture.drive_init_std=0"):
        model("architecture.drive_init_std=0")


def recorded_inputs(overrides: list[str]) -> tuple[list[torch.Tensor], object]:
    """Train 3 steps; the inputs the model saw at each training step, and the trainer."""
    experiment = build_run(compose_config([*FAST, "training.steps=3", *overrides]))
    trainer, seen = experiment.trainer, []
    forward = trainer.model.forward

    def spy(inputs, *args, **kwargs):
        if torch.is_grad_enabled():  # a training step (evaluations run without gradients)
            seen.append(inputs.clone())
        return forward(inputs, *args, **kwargs)

    trainer.model.forward = spy
    trainer.fit()
    return seen, trainer


def test_fixed_train_set_is_the_same_batch_at_every_step():
    seen, trainer = recorded_inputs(["training.fixed_train_set=true", "training.batch_size=6"])
    assert len(seen) == 3 and seen[0].shape[1] == 6
    assert all(torch.equal(inputs, trainer.train_batch.inputs) for inputs in seen)
    # the validation set is not the training set
    assert not torch.equal(trainer.eval_batch.inputs[:, :6], trainer.train_batch.inputs)
    fresh, fresh_trainer = recorded_inputs(["training.batch_size=6"])
    assert fresh_trainer.train_batch is None
    assert torch.equal(fresh[0], seen[0])  # the fixed set is the first batch the same seed would draw
    assert not torch.equal(fresh[1], fresh[0])


def test_eval_at_start_logs_the_untrained_network_at_step_0(tmp_path):
    quiet = [*FAST, "analysis.figures=false"]
    summary = run(compose_config([*quiet, "training.eval_at_start=true"]), output_dir=tmp_path)
    assert summary["status"] == "completed"
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["step"]) == [0, 1, 2]
    assert math.isnan(metrics["train_loss"][0]) and not metrics["train_loss"][1:].isna().any()
    # the same seed without the extra row: the same later rows (the evaluation changes nothing)
    plain = run(compose_config(quiet), output_dir=tmp_path / "plain")
    assert plain["final"]["eval_accuracy"] == summary["final"]["eval_accuracy"]
    later = pd.read_csv(tmp_path / "plain" / "metrics.csv").drop(columns="wall_time_s")
    pd.testing.assert_frame_equal(later, metrics.iloc[1:].drop(columns="wall_time_s").reset_index(drop=True))


def test_seed_additive_composes_to_the_seed_recipe():
    cfg = compose_config(["experiment=seed_additive"])
    assert cfg.architecture._target_.endswith("Additive") and cfg.af._target_.endswith("Gain")
    assert (cfg.architecture.n_neurons, cfg.architecture.hidden_size, cfg.af.lag) == (20, 64, 2)
    assert cfg.training.fixed_train_set and cfg.training.batch_size == 200 and cfg.training.loss == "mse"
    assert cfg.training.grad_clip is None and cfg.training.lr == 0.01
    task = instantiate(cfg.task)
    batch = task.sample(200, generator())
    assert batch.n_steps == 25 and int(batch.query_step.min()) >= 6 and int(batch.query_step.max()) <= 23
    assert batch.inputs.max().item() == pytest.approx(0.8)
    assert batch.targets.max().item() == pytest.approx(0.8)


@pytest.mark.slow
def test_seed_additive_runs_from_the_command_line(tmp_path):
    command = [
        sys.executable,
        "main.py",
        "experiment=seed_additive",
        "training.steps=4",
        "training.eval_every=2",
        "training.eval_batch_size=16",
        "architecture.hidden_size=8",
        "analysis.figures=false",
        "training.progress=false",
        "threads=1",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["step"]) == [0, 2, 4]
    assert metrics["eval_accuracy"].between(0, 1).all()


@pytest.mark.parametrize(
    "override, line",
    [
        ("task.target_amplitude=-1", "task.target_amplitude=-1 is not allowed: it must be a number > 0"),
        ("training.fixed_train_set=maybe", "training.fixed_train_set='maybe' is not allowed"),
    ],
)
def test_bad_seed_keys_fail_with_one_line_on_the_command_line(tmp_path, override, line):
    done = main_py(tmp_path, ["experiment=seed_additive", override])
    assert done.returncode == 2
    errors = [text for text in done.stderr.splitlines() if text.strip()]
    assert len(errors) == 1 and line in errors[0], done.stderr
