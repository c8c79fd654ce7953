"""Checks of a composed configuration before anything is trained, for the settings no built object owns
(``seed``, ``training.*``, ``threads``, ``objective.*``, ``analysis.*``, ``device``, the package
``logger.requires`` names) and for combinations
(an architecture and its task's encoding, delays against what the task can generate).

A setting that belongs to an object (a task's delays, a network's sizes, ``af.lag``, ``training.loss``) is
checked by that object with the same rules (:mod:`neuromod.validation`), when it is built.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from neuromod import validation
from neuromod.experiment.folder import RunFolder
from neuromod.experiment.settings import flatten
from neuromod.validation import ConfigError, first_line


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


#: (key, rule, arguments): the settings checked before torch is imported. A ``None`` value is allowed for
#: the keys marked optional.
RULES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("seed", "integer", {"minimum": 0}),
    ("training.steps", "integer", {"minimum": 1}),
    ("training.batch_size", "integer", {"minimum": 1}),
    ("training.eval_every", "integer", {"minimum": 1}),
    ("training.eval_batch_size", "integer", {"minimum": 1}),
    ("training.lr", "number", {"positive": True}),
    ("training.grad_clip", "number?", {"positive": True}),
    ("training.stop_at_accuracy", "number?", {"at_least": 0.0}),
    ("training.checkpoint_every", "integer?", {"minimum": 0}),
    ("training.resume", "boolean", {}),
    ("training.progress", "boolean", {}),
    ("training.fixed_train_set", "boolean", {}),
    ("training.eval_at_start", "boolean", {}),
    ("skip_completed", "boolean", {}),
    ("threads", "integer?", {"minimum": 1}),
    ("max_trial_steps", "integer", {"minimum": 1}),
    ("objective.direction", "choice", {"choices": ("maximize", "minimize")}),
    ("objective.failed_value", "number?", {}),
    ("analysis.n_example_trials", "integer", {"minimum": 1}),
    ("analysis.figures", "boolean", {}),
    ("analysis.dynamics", "boolean?", {}),
    ("analysis.fixed_points", "boolean?", {}),
    ("analysis.n_trials", "integer?", {"minimum": 10}),
)


def check_config(cfg: DictConfig) -> None:
    """The :data:`RULES`, then ``device``'s type (its existence is checked when it is resolved), then the
    package the logger needs (``logger.requires``: installed, or one line naming the extra)."""
    for key, rule, arguments in RULES:
        value = _get(cfg, key)
        if rule.endswith("?"):
            if value is None:
                continue
            rule = rule[:-1]
        getattr(validation, rule)(key, value, **arguments)
    if not isinstance(_get(cfg, "device"), str):
        raise ConfigError(f"device={_get(cfg, 'device')!r} is not allowed: use auto, cpu, cuda or cuda:N")
    required = _get(cfg, "logger.requires")
    if required and importlib.util.find_spec(str(required)) is None:
        raise ConfigError(
            f"the logger ({_get(cfg, 'logger._target_')}) needs the {required} package, which is not "
            f"installed: pip install -e '.[{required}]', or run with logger=none"
        )


def check_before_run(cfg: DictConfig, folder: RunFolder, started: float | None = None) -> dict[str, Any]:
    """:func:`check_config` for a run in ``folder``; returns the flattened settings.

    On a ``ConfigError`` the folder's ``summary.json`` records the run as ``failed`` with the error (unless
    the folder holds a completed run, which is never overwritten) and the error is raised. Needs no torch,
    so ``main.py`` reports a bad value before importing it. A folder holding a completed run with other
    settings is refused (:meth:`RunFolder.refuse_other_settings`).
    """
    summary: dict[str, Any] = {"status": "failed", "seed": OmegaConf.select(cfg, "seed"), "steps": 0}
    try:
        try:
            summary["config"] = flatten(cfg)
        except Exception as error:  # an unresolvable interpolation is a config error too
            summary["config"] = {}
            raise ConfigError(f"configuration cannot be resolved: {first_line(error)}") from None
        check_config(cfg)
        if cfg.skip_completed:
            folder.refuse_other_settings(summary["config"])
    except ConfigError as error:
        folder.record_failure(summary, started if started is not None else time.time(), error)
        raise
    return summary["config"]


def check_compatible(architecture: type, task: Any, architecture_name: str) -> None:
    """An architecture (class) that needs a particular input encoding says so."""
    needed = getattr(architecture, "required_encoding", None)
    if needed is not None and getattr(task, "encoding", None) != needed:
        raise ConfigError(
            f"architecture={architecture_name} requires task.encoding={needed} "
            f"(got task.encoding={getattr(task, 'encoding', None)}); add task.encoding={needed} "
            f"with task=time_person"
        )


def _shown(cfg: DictConfig, key: str) -> Any:
    value = _get(cfg, key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _delay_key(cfg: DictConfig) -> str:
    """The key through which this task's config sets its longest training delay."""
    for key in ("task.max_delay", "task.delays", "task.delay"):
        if _get(cfg, key) is not None:
            return key
    return "task.max_delay"


def check_task(cfg: DictConfig, task: Any) -> None:
    """Delays against what the built task can generate: one trial is drawn at the longest training delay
    and at the shortest and longest evaluation delays (cheap: one trial each). A trial may not exceed
    ``max_trial_steps`` steps (a guard against a typo such as ``task.max_delay=100000000``, which would
    otherwise exhaust memory); a task with a fixed trial length declares ``max_supported_delay``."""
    import torch

    limit = int(cfg.max_trial_steps)
    delay_key = _delay_key(cfg)
    eval_delays = [int(d) for d in task.eval_delays]
    probes = [
        (delay_key, int(task.max_delay)),
        ("task.eval_delays", min(eval_delays)),
        ("task.eval_delays", max(eval_delays)),
    ]
    supported = getattr(task, "max_supported_delay", None)
    probed: set[int] = set()
    for key, delay in probes:
        if delay in probed:
            continue
        probed.add(delay)
        value = _shown(cfg, key)
        # a task whose config has no delay key (e.g. one whose trials set their own timing) is named instead
        setting = f"{key}={value!r}" if value is not None else f"task={task.name}"
        if supported is not None and delay > supported:
            raise ConfigError(
                f"{setting} is not allowed: task {task.name} can generate delays up to {supported}"
            )
        if delay >= limit:
            raise ConfigError(
                f"{setting} is not allowed: a trial may have at most max_trial_steps={limit} steps; "
                f"use a shorter delay (or raise max_trial_steps)"
            )
        try:
            trial = task.sample(1, torch.Generator().manual_seed(0), torch.tensor([delay]))
        except (ValueError, IndexError, RuntimeError) as error:
            raise ConfigError(
                f"{setting} is not allowed: task {task.name} cannot generate a trial with delay "
                f"{delay} ({first_line(error)})"
            ) from None
        if trial.n_steps > limit:
            longest = delay - (trial.n_steps - limit)
            fix = f"use delays <= {longest}" if longest >= 0 and value is not None else "use shorter trials"
            raise ConfigError(
                f"{setting} is not allowed: a {task.name} trial with delay {delay} has {trial.n_steps} "
                f"steps, more than max_trial_steps={limit}; {fix} (or raise max_trial_steps)"
            )
