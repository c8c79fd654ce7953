"""Every option of every config group composes and builds; models run a forward pass on their task."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from neuromod.runner.build import build
from tests.conftest import CONFIG_DIR, FAST, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def compatible_task(architecture: str) -> list[str]:
    return ["task.encoding=factorial"] if architecture == "factorial" else []


@pytest.mark.parametrize("architecture", options("architecture"))
def test_every_architecture_builds_and_runs(architecture):
    cfg = compose_config([f"architecture={architecture}", *FAST, *compatible_task(architecture)])
    task, model = build(cfg, torch.device("cpu"))
    batch = task.sample(3, torch.Generator().manual_seed(0))
    result = model(batch.inputs, record=True)
    assert result.outputs.shape == batch.targets.shape
    assert result.activity.shape[:2] == batch.inputs.shape[:2]
    result.outputs.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("af", options("af"))
def test_every_activation_family_builds_and_runs(af):
    cfg = compose_config([f"af={af}", *FAST])
    task, model = build(cfg, torch.device("cpu"))
    family = model.neurons.activation
    batch = task.sample(3, torch.Generator().manual_seed(0))
    result = model(batch.inputs)
    assert result.params.shape[-1] == family.n_params
    assert torch.isfinite(result.outputs).all()


@pytest.mark.parametrize("task_name", options("task"))
def test_every_task_builds(task_name):
    if task_name == "neurogym":
        pytest.importorskip("neurogym", reason="optional extra: pip install -e '.[neurogym]'")
    cfg = compose_config([f"task={task_name}", *FAST])
    task, model = build(cfg, torch.device("cpu"))
    batch = task.sample(2, torch.Generator().manual_seed(0))
    assert model(batch.inputs).outputs.shape == batch.targets.shape


def test_training_group_options_compose():
    for option in options("training"):
        cfg = compose_config([f"training={option}"])
        assert cfg.training.steps > 0 and cfg.training.lr > 0


def test_default_experiment_is_additive_gain_time_person():
    cfg = compose_config()
    assert cfg.architecture._target_.endswith("Additive")
    assert cfg.af._target_.endswith("Gain")
    assert cfg.task._target_.endswith("TimePerson")
    assert cfg.architecture.n_neurons == 20 and cfg.architecture.hidden_size == 64 and cfg.af.lag == 1


def test_the_orhan_ma_paper_preset_has_the_papers_scale_on_each_of_its_tasks():
    preset = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / "orhan_ma_paper.yaml")
    sweep = preset.hydra.sweeper.params.task.split(",")
    assert sweep == ["de1", "de2", "cd", "gde", "afc2", "sine", "comp"]  # the paper's seven tasks
    for task_name in sweep:
        cfg = compose_config(["experiment=orhan_ma_paper", f"task={task_name}"])
        training = cfg.training
        assert (training.steps, training.batch_size, training.lr) == (25000, 50, 5e-4)
        task, model = build(cfg, torch.device("cpu"))
        assert model.rnn.hidden_size == 500 and task.sample(2, torch.Generator()).n_steps == 150
