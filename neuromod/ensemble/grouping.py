"""Which composed configs can train together as one ensemble. Needs no torch.

Two configs share an ensemble when they agree on every setting except :data:`MEMBER_KEYS` (settings that
change no shape and that an ensemble keeps per member) and the execution settings that change nothing a
run computes (:data:`~neuromod.runfolder.settings.EXECUTION_KEYS`, the device excepted: one ensemble runs
on one device).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from neuromod.runfolder.settings import flatten, is_execution_key
from neuromod.validation import ConfigError

#: Settings members of one ensemble may differ in: the seed (initial weights, training trials,
#: validation and test sets), the learning rate, the clip, the stop criterion, the number of steps, and the
#: delays of the task's trials (they change a trial's length, not a network's shape: every member's
#: trials are padded at the end to the longest of the step, which changes none of its outputs).
MEMBER_KEYS = (
    "seed",
    "training.lr",
    "training.optimizer.lr",
    "training.grad_clip",
    "training.stop_at_accuracy",
    "training.steps",
    "task.min_delay",
    "task.max_delay",
    "task.eval_delays",
    "task.test_delays",
)


def shared_settings(cfg: DictConfig | dict) -> dict[str, Any]:
    """The flattened settings that members of one ensemble must share."""
    return {
        key: value
        for key, value in flatten(cfg).items()
        if key not in MEMBER_KEYS and (key == "device" or not is_execution_key(key))
    }


def group_configs(cfgs: Sequence[DictConfig], max_members: int | None = None) -> list[list[int]]:
    """Indices of ``cfgs`` in groups that can each train as one ensemble, in order of first appearance
    (each group in the order of ``cfgs``); a group larger than ``max_members`` is split into consecutive
    groups of at most that many."""
    groups: dict[str, list[int]] = {}
    for index, cfg in enumerate(cfgs):
        key = json.dumps(shared_settings(cfg), sort_keys=True, default=str)
        groups.setdefault(key, []).append(index)
    size = max_members if max_members else max(len(cfgs), 1)
    if size < 1:
        raise ValueError(f"max_members must be at least 1, got {max_members}")
    return [members[i : i + size] for members in groups.values() for i in range(0, len(members), size)]


def check_group(cfgs: Sequence[DictConfig]) -> None:
    """A ConfigError naming the first setting in which a config differs from the first, unless all of
    ``cfgs`` can share one ensemble."""
    first = shared_settings(cfgs[0])
    for k, cfg in enumerate(cfgs[1:], start=1):
        other = shared_settings(cfg)
        for key in sorted(set(first) | set(other)):
            if first.get(key) != other.get(key):
                raise ConfigError(
                    f"{key}: member {k} has {other.get(key)!r}, member 0 {first.get(key)!r}; members of an "
                    f"ensemble differ only in {', '.join(MEMBER_KEYS)} (neuromod.ensemble.group_configs)"
                )
