"""Checks of a composed configuration before anything is trained, for the settings no built object owns
(``seed``, ``training.*``, ``threads``, ``objective.*``, ``analysis.*``, ``device``, the package
``logger.requires`` names) and for combinations
(an architecture and its task's encoding, delays against what the task can generate).

Besides values of the wrong type or range, settings that are valid one by one but would make a run
meaningless are refused the same way (one line, before training): a modulator whose output never acts
within a trial (``af.lag``), an accuracy criterion no run can reach or any untrained network reaches
(``training.stop_at_accuracy``), evaluation sets too small to score (``training.eval_batch_size``), an
objective on the test set or in the wrong direction (``objective.*``,
:func:`neuromod.runfolder.objective.check_objective`). docs/reliability.md lists them.

A setting that belongs to an object (a task's delays, a network's sizes, ``af.lag``, ``training.loss``) is
checked by that object with the same rules (:mod:`neuromod.validation`), when it is built.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from neuromod import validation
from neuromod.runfolder.folder import RunFolder
from neuromod.runfolder.objective import check_objective
from neuromod.runfolder.settings import flatten
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
    ("objective.failed_value", "number?", {"finite": False}),
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
    check_meaningful(cfg)
    if not isinstance(_get(cfg, "device"), str):
        raise ConfigError(f"device={_get(cfg, 'device')!r} is not allowed: use auto, cpu, cuda or cuda:N")
    required = _get(cfg, "logger.requires")
    if required and importlib.util.find_spec(str(required)) is None:
        raise ConfigError(
            f"the logger ({_get(cfg, 'logger._target_')}) needs the {required} package, which is not "
            f"installed: pip install -e '.[{required}]', or run with logger=none"
        )


def check_meaningful(cfg: DictConfig) -> None:
    """Settings of the right type that would leave a run without meaning, judged from the config alone
    (after :data:`RULES`). Those that need the task (its trial length, its chance level) are in
    :func:`check_task`.

    - ``training.stop_at_accuracy`` above 1: no accuracy reaches it, the run never stops early.
    - ``training.eval_batch_size`` 1: the validation and test accuracies would be one trial's (0 or 1),
      so early stopping and tuning go by luck, and the cue-shuffle control needs two trials.
    - ``objective.*``: :func:`~neuromod.runfolder.objective.check_objective` (no tuning on the test set,
      no loss maximised, ...).
    """
    stop = _get(cfg, "training.stop_at_accuracy")
    if stop is not None and stop > 1:
        raise ConfigError(
            f"training.stop_at_accuracy={stop} is not allowed: no accuracy exceeds 1, so the run would "
            "never stop early; use a value above the task's chance level and at most 1, or null to run "
            "all steps"
        )
    eval_batch_size = _get(cfg, "training.eval_batch_size")
    if eval_batch_size is not None and eval_batch_size < 2:
        raise ConfigError(
            f"training.eval_batch_size={eval_batch_size} is not allowed: the validation and test "
            "accuracies would each be one trial's (0 or 1) and the cue-shuffle control needs two "
            "trials; use at least 2 (the default is 512)"
        )
    if _get(cfg, "objective") is not None:
        check_objective(_get(cfg, "objective"))


def check_before_run(cfg: DictConfig, folder: RunFolder, started: float | None = None) -> dict[str, Any]:
    """:func:`check_config` for a run in ``folder``; returns the flattened settings.

    On a ``ConfigError`` the folder's ``summary.json`` records the run as ``failed`` with the error (unless
    the folder holds a completed run, which is never overwritten) and the error is raised. Needs no torch,
    so ``main.py`` reports a bad value before importing it. What the launch then does with the folder is
    :meth:`RunFolder.decide_launch`.
    """
    summary: dict[str, Any] = {"status": "failed", "seed": OmegaConf.select(cfg, "seed"), "steps": 0}
    try:
        try:
            summary["config"] = flatten(cfg)
        except Exception as error:  # an unresolvable interpolation is a config error too
            summary["config"] = {}
            raise ConfigError(f"configuration cannot be resolved: {first_line(error)}") from None
        check_config(cfg)
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
    otherwise exhaust memory); a task with a fixed trial length declares ``max_supported_delay``.

    Then the settings that are meaningless for this task: ``af.lag`` against the longest training trial
    (:func:`check_lag`), ``training.stop_at_accuracy`` against the task's chance level
    (:func:`check_stop_at_accuracy`) and the batch sizes of a task made of several tasks
    (:func:`check_components`)."""
    import torch

    limit = int(cfg.max_trial_steps)
    delay_key = _delay_key(cfg)
    eval_delays = [int(d) for d in task.eval_delays]
    probes = [
        (delay_key, int(task.max_delay)),
        ("task.eval_delays", min(eval_delays)),
        ("task.eval_delays", max(eval_delays)),
        ("task.test_delays", max(int(d) for d in task.test_delays)),
    ]
    supported = getattr(task, "max_supported_delay", None)
    probed: set[int] = set()
    training_steps = 0  # length of the longest training trial (the first probe)
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
        training_steps = training_steps or trial.n_steps
    check_lag(cfg, task, training_steps)
    check_stop_at_accuracy(cfg, task)
    check_components(cfg, task)


def _target_attribute(cfg: DictConfig, key: str, attribute: str, default: Any) -> Any:
    """An attribute of the class a config node's ``_target_`` names (``default`` when it cannot be found:
    building would have failed first)."""
    from hydra.utils import get_class

    try:
        return getattr(get_class(str(_get(cfg, f"{key}._target_"))), attribute, default)
    except Exception:
        return default


def check_lag(cfg: DictConfig, task: Any, longest: int) -> None:
    """``af.lag`` at least as long as the longest training trial (``longest`` steps, at the task's
    longest training delay): what the modulator produces at step t acts at step t + lag, after the
    end of every training trial, so it never receives a gradient and the network runs on the initial
    parameters (``af.init``) throughout training: an unmodulated control under another name, whatever
    longer evaluation trials it then meets. Only checked when the family has a modulator (not ``fixed``,
    ``static_learned``) and the architecture uses the family (not the ``lstm`` and ``rnn`` controls),
    where the lag has an effect."""
    lag = _get(cfg, "af.lag")
    if not validation.is_int(lag) or lag < longest or longest < 1:
        return
    if not _target_attribute(cfg, "af", "modulated", True):
        return
    if not _target_attribute(cfg, "architecture", "uses_activation", True):
        return
    max_delay = getattr(task, "max_delay", None)
    at_delay = f" (delay {max_delay})" if max_delay is not None else ""
    raise ConfigError(
        f"af.lag={lag} is not allowed: the modulator's output acts {lag} steps after it is produced and the "
        f"longest {task.name} training trial{at_delay} has {longest} steps, so it would never act within a "
        f"trial (the network would run on af.init throughout); use af.lag < {longest} (the default is "
        f"{_default_lag(cfg)})"
    )


def _default_lag(cfg: DictConfig) -> int:
    """The lag the chosen family's own constructor defaults to (1, or 0 for ``modulator_rate``)."""
    import inspect

    from hydra.utils import get_class

    try:
        parameter = inspect.signature(get_class(str(_get(cfg, "af._target_")))).parameters["lag"]
        return int(parameter.default)
    except Exception:
        return 1


def check_stop_at_accuracy(cfg: DictConfig, task: Any) -> None:
    """``training.stop_at_accuracy`` at or below the task's chance level: an untrained network scores about
    chance, so the run would stop at its first evaluation by luck and report an untrained network."""
    stop = _get(cfg, "training.stop_at_accuracy")
    if stop is None:
        return
    try:
        chance = float(task.chance_level)
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        return
    if stop <= chance:
        raise ConfigError(
            f"training.stop_at_accuracy={stop} is not allowed: it is at or below the chance accuracy of "
            f"{task.name} ({chance:.4g}), which an untrained network already scores about, so the run would "
            f"stop at its first evaluation untrained; use a value above {chance:.4g} (at most 1), or null "
            "to run all steps"
        )


def check_components(cfg: DictConfig, task: Any) -> None:
    """A task made of several tasks (``task=multitask``) puts trial i of a mixed batch in task
    ``mix_order[i mod n]``: a validation or test set of fewer trials than tasks never scores the last
    ones (``training.eval_batch_size``), and with ``task.schedule=mixed`` a training batch of fewer trials
    never trains them (``training.batch_size``)."""
    names = list(getattr(task, "task_names", None) or [])
    order = list(getattr(task, "mix_order", None) or range(len(names)))
    if len(names) < 2 or len(order) != len(names):
        return
    n = len(names)

    def left_out(size: int) -> str:
        return ", ".join(names[k] for k in order[size:])

    eval_batch_size = _get(cfg, "training.eval_batch_size")
    if validation.is_int(eval_batch_size) and eval_batch_size < n:
        raise ConfigError(
            f"training.eval_batch_size={eval_batch_size} is not allowed: the validation and test sets of "
            f"task={task.name} hold its {n} tasks in turn, so {left_out(eval_batch_size)} would never be "
            f"scored; use at least {n}"
        )
    batch_size = _get(cfg, "training.batch_size")
    if getattr(task, "schedule", None) == "mixed" and validation.is_int(batch_size) and batch_size < n:
        raise ConfigError(
            f"training.batch_size={batch_size} is not allowed with task.schedule=mixed: every batch holds "
            f"the {n} tasks in turn, so {left_out(batch_size)} would never be trained; use at least {n} "
            "(or task.schedule=alternate)"
        )
