"""A run's settings as flat ``key: value`` pairs: what ``summary.json`` records, what a re-launch compares
and what collection reads to tell which parameters a sweep varied. Needs no torch."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> plain values (lists kept as lists). Hydra's own node is left out."""
    data = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "hydra":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


#: Keys that change how a run is executed, not what it computes (a completed run is reused whatever they
#: say; collection never treats them as swept parameters). A key stands for the keys below it too.
EXECUTION_KEYS = (
    "threads",
    "device",
    "skip_completed",
    "training.progress",
    "training.resume",
    "training.checkpoint_every",
    "analysis.figures",
    "analysis.animate",
    "analysis.frame_stride",
    # the population analyses read the trained network; they change nothing a run trains
    "analysis.dynamics",
    "analysis.fixed_points",
    "analysis.n_trials",
    # how the modulator's recurrence is computed; every implementation computes the same function
    "architecture.implementation",
    # the trackers a run also writes to (logger=tensorboard), and everything below that key
    "logger",
)


def is_execution_key(key: str) -> bool:
    """Whether ``key`` is one of :data:`EXECUTION_KEYS` or below one of them."""
    return any(key == name or key.startswith(name + ".") for name in EXECUTION_KEYS)


def changed_settings(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting (outside :data:`EXECUTION_KEYS`) two flattened configs
    disagree on; a key only one of them has counts as changed."""
    keys = sorted(key for key in set(before) | set(now) if not is_execution_key(key))
    missing = "(not set)"
    return [
        f"{key}: {before.get(key, missing)!r} -> {now.get(key, missing)!r}"
        for key in keys
        if before.get(key, missing) != now.get(key, missing)
    ]
