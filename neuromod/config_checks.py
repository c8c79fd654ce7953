"""Checks of a composed configuration before anything is trained.

Each failure is one :class:`ConfigError` whose message names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from neuromod import io
from neuromod.experiment.settings import changed_settings, flatten

if TYPE_CHECKING:  # torch is imported where it is used, so main.py reports command-line errors quickly
    import torch


#: Values of ``training.loss`` (see :func:`neuromod.training.loop.resolve_loss`).
LOSSES = ("auto", "mse", "cross_entropy", "task")


class ConfigError(ValueError):
    """A configuration value that cannot be used."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(cfg: DictConfig, key: str, minimum: int | None = None, optional: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and optional:
        return
    if not _is_int(value):
        raise ConfigError(f"{key}={value!r} is not allowed: it must be an integer" + _bound(minimum))
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} is not allowed: it must be an integer{_bound(minimum)}")


def require_number(
    cfg: DictConfig, key: str, positive: bool = False, optional: bool = False, at_least: float | None = None
) -> None:
    value = _get(cfg, key)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and positive and not value > 0:
        ok = False
    if ok and at_least is not None and value < at_least:
        ok = False
    if not ok:
        need = (
            "a number > 0" if positive else "a number" + (f" >= {at_least}" if at_least is not None else "")
        )
        raise ConfigError(f"{key}={value!r} is not allowed: it must be {need}")


def require_bool(cfg: DictConfig, key: str) -> None:
    value = _get(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: it must be true or false")


def require_choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed: choose one of {list(choices)}")


def _bound(minimum: int | None) -> str:
    return "" if minimum is None else f" >= {minimum}"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU. A device that does not exist is a ConfigError."""
    import torch

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


def check_config(cfg: DictConfig) -> None:
    """Checks that need no object to be built (types and ranges of the common keys)."""
    require_int(cfg, "seed", minimum=0)
    require_int(cfg, "training.steps", minimum=1)
    require_int(cfg, "training.batch_size", minimum=1)
    require_int(cfg, "training.eval_every", minimum=1)
    require_int(cfg, "training.eval_batch_size", minimum=1)
    require_number(cfg, "training.lr", positive=True)
    require_number(cfg, "training.grad_clip", positive=True, optional=True)
    require_number(cfg, "training.stop_at_accuracy", optional=True, at_least=0.0)
    require_choice(cfg, "training.loss", LOSSES)
    require_int(cfg, "training.checkpoint_every", minimum=0, optional=True)
    for key in ("training.resume", "training.progress", "skip_completed"):
        require_bool(cfg, key)
    require_int(cfg, "threads", minimum=1, optional=True)
    require_int(cfg, "max_trial_steps", minimum=1)
    require_choice(cfg, "objective.direction", ("maximize", "minimize"))
    require_number(cfg, "objective.failed_value", optional=True)
    require_int(cfg, "analysis.n_example_trials", minimum=1)
    require_bool(cfg, "analysis.figures")
    for key in ("architecture.hidden_size", "architecture.n_neurons"):
        if _get(cfg, key) is not None:
            require_int(cfg, key, minimum=1)
    for key in ("task.min_delay", "task.max_delay"):
        if _get(cfg, key) is not None:
            require_int(cfg, key, minimum=0)
    lo, hi = _get(cfg, "task.min_delay"), _get(cfg, "task.max_delay")
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"task.max_delay={hi} is not allowed: it must be >= task.min_delay ({lo})")
    delays = _get(cfg, "task.eval_delays")
    if delays is not None:
        items = list(delays) if OmegaConf.is_list(delays) else None
        if not items or not all(_is_int(d) and d >= 0 for d in items):
            shown = OmegaConf.to_container(delays) if OmegaConf.is_config(delays) else delays
            raise ConfigError(
                f"task.eval_delays={shown!r} is not allowed: it must be a non-empty list of "
                "integers >= 0 (or null for the training range)"
            )
    lag = _get(cfg, "af.lag")
    if lag is not None:
        require_int(cfg, "af.lag", minimum=0)
    if not isinstance(_get(cfg, "device"), str):
        raise ConfigError(f"device={_get(cfg, 'device')!r} is not allowed: use auto, cpu, cuda or cuda:N")


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


def command_line_error(error: BaseException) -> str:
    """One line for an error Hydra raises while composing the config from the command line: an unknown
    group option (with the options there are), an unknown key (with the nearest existing one), an override
    it cannot parse."""
    import difflib
    import re

    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"{group}={option} is not an option of {group}: choose one of [{', '.join(error.options)}]"
    if isinstance(error, OverrideParseException):
        lines = [
            line.strip()
            for line in str(error.message).splitlines()
            if line.strip() and not line.startswith(("See https://", "Error parsing override"))
        ]
        return f"cannot parse the override {error.override!r}: {lines[0] if lines else 'invalid syntax'}"
    cause = error.__cause__
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        parent = getattr(cause, "parent_node", None)
        known = [str(k) for k in parent.keys() if k != "hydra"] if OmegaConf.is_dict(parent) else []
        key = str(getattr(cause, "key", full_key))
        prefix = full_key[: -len(key)] if full_key.endswith(key) else ""
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys: [{', '.join(known)}]"
        append = re.search(r"use (\+\S+)", str(error))
        add = f"; to add a new key write {append.group(1)}" if append else ""
        return f"{full_key} is not a key of the configuration ({hint}){add}"
    message = first_line(error)
    if cause is not None and str(cause).strip():
        message += f" ({first_line(cause)})"
    if not isinstance(error, HydraException):
        message = f"the command line cannot be applied: {message}"
    return message


def instantiation_error(error: BaseException, key: str, node: Any) -> str:
    """One line for an object of config node ``key`` that cannot be built: an unknown ``_target_``, a
    parameter its constructor does not take, or the constructor's own message."""
    import re

    target = OmegaConf.select(node, "_target_", default=None) if OmegaConf.is_config(node) else None
    text = str(error)
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unexpected:
        return (
            f"{key}.{unexpected.group(1)} is not allowed: {target} takes no parameter {unexpected.group(1)!r}"
        )
    if isinstance(error, (ImportError, AttributeError)) or re.search(r"Error (locating|loading)", text):
        return f"{key}._target_={target!r} is not allowed: it cannot be imported (a typo in the name?)"
    return f"{key}: {first_line(error)}"


def completed_summary(out: Path) -> dict | None:
    """The summary of a completed run already in ``out`` (a re-launched sweep), else None."""
    try:
        summary = io.read_json(Path(out) / "summary.json")
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("status") == "completed" else None


def check_before_run(cfg: DictConfig, out: Path, started: float | None = None) -> dict[str, Any]:
    """:func:`check_config` for the run folder ``out``; returns the flattened config.

    On a ``ConfigError`` the folder's ``summary.json`` records the run as ``failed`` with the error (unless
    the folder holds a completed run, which is never overwritten) and the error is raised. Needs no torch,
    so ``main.py`` reports a bad value before importing it. A folder holding a completed run with other
    settings is refused (with ``skip_completed``, reusing it would report old results as new ones).
    """
    summary: dict[str, Any] = {"status": "failed", "seed": OmegaConf.select(cfg, "seed"), "steps": 0}
    try:
        try:
            summary["config"] = flatten(cfg)
        except Exception as error:  # an unresolvable interpolation is a config error too
            summary["config"] = {}
            raise ConfigError(f"configuration cannot be resolved: {first_line(error)}") from None
        check_config(cfg)
        previous = completed_summary(out) if cfg.skip_completed else None
        if previous is not None and isinstance(previous.get("config"), dict):
            changed = changed_settings(previous["config"], summary["config"])
            if changed:
                more = f"; and {len(changed) - 4} more" if len(changed) > 4 else ""
                shown = "; ".join(changed[:4]) + more
                raise ConfigError(
                    f"{out} already holds a completed run with other settings ({shown}); its results are "
                    "kept. Use a new hydra.sweep.dir or hydra.run.dir for new settings, or "
                    "skip_completed=false to train again and replace them"
                )
    except ConfigError as error:
        if completed_summary(out) is None:
            elapsed = 0.0 if started is None else time.time() - started
            summary.update(error=str(error), wall_time_s=round(elapsed, 3))
            io.write_json(Path(out) / "summary.json", summary)
        raise
    return summary["config"]
