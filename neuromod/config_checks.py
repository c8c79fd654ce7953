"""Checks of a composed configuration before anything is trained.

Each failure is one :class:`ConfigError` whose message names the key, the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration value that cannot be used."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


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


def require_choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed: choose one of {list(choices)}")


def _bound(minimum: int | None) -> str:
    return "" if minimum is None else f" >= {minimum}"


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
            raise ConfigError(
                f"device={name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
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
    require_choice(cfg, "training.loss", ("auto", "mse", "cross_entropy"))
    require_int(cfg, "threads", minimum=1, optional=True)
    require_int(cfg, "analysis.n_example_trials", minimum=1)
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
