"""Building a run's objects from its config: the device, the task, the activation family, the network and
the optimiser. A value that cannot be used is a :class:`~neuromod.validation.ConfigError` with one line."""

from __future__ import annotations

import importlib

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from neuromod.runner.checks import check_compatible
from neuromod.tasks.base import Task
from neuromod.validation import ConfigError, first_line, instantiation_error

#: Seed offsets, so the model, the training stream, the validation set (``eval_*``: watched during training,
#: early stopping, studies) and the test set (``test_*``: scored once at the end) use independent streams.
EVAL_SEED_OFFSET = 1_000_003
TEST_SEED_OFFSET = 2_000_029
MODEL_SEED_OFFSET = 7


def choice_name(group: str) -> str:
    """The option chosen for a config group (``additive`` for ``architecture``), when Hydra knows it."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices.get(group))
    except Exception:  # not running under Hydra (a test composing the config itself)
        return group


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU. A device that does not exist is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not allowed: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} is not available on this machine (no CUDA); use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError(
                f"device={name!r} does not exist: this machine has {count} CUDA device(s); "
                f"use auto, cpu, cuda or cuda:0..cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r} is not allowed: use auto, cpu, cuda or cuda:N")
    return device


def build(cfg: DictConfig, device: torch.device):
    """Task and model (with its activation family) from the config (``ConfigError`` on impossible
    settings)."""
    task: Task = instantiate_checked(cfg.task, "task")
    try:
        module, _, name = str(cfg.architecture._target_).rpartition(".")
        architecture = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(instantiation_error(error, "architecture", cfg.architecture)) from None
    check_compatible(architecture, task, choice_name("architecture"))
    family = instantiate_checked(cfg.af, "af")
    # Parameter initialisation draws from its own seed without touching the global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + MODEL_SEED_OFFSET)
        model = instantiate_checked(
            cfg.architecture,
            "architecture",
            input_size=task.input_size,
            output_size=task.output_size,
            activation=family,
        )
    return task, model.to(device)


def make_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``training.optimizer`` (a partial, e.g. Adam with ``training.lr``) over the model's parameters."""
    return instantiate_checked(cfg.training.optimizer, "training.optimizer")(params=model.parameters())


def instantiate_checked(node: DictConfig, key: str, **kwargs):
    """``instantiate(node, **kwargs)``. A constructor's ``ValueError`` (its own message names the key) and a
    target that cannot be found or called with these arguments are ConfigErrors; an error raised while
    the target runs otherwise propagates."""
    try:
        return instantiate(node, **kwargs)
    except ValueError as error:
        raise ConfigError(first_line(error)) from None
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(first_line(cause)) from None
        if cause is None or isinstance(cause, (TypeError, ImportError, AttributeError)):
            raise ConfigError(instantiation_error(cause or error, key, node)) from None
        raise
