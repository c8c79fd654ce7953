"""A stored study between launches: who drives it, which directions it keeps, the trials a dead launch
left running, the sampler for the trials still to come, and the record written when a launch ends.

Optuna is imported only by the functions that need it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.neuromod_study._search_space import SearchSpace, StudyError

log = logging.getLogger(__name__)

#: The study's user attribute naming the process that drives it.
OWNER_ATTR = "neuromod_sweeper"
DIRECTIONS = ("minimize", "maximize")


class StudyInUse(StudyError):
    """Another live process on this host drives the same study."""


def directions_of(direction: Any) -> list[str]:
    """``hydra.sweeper.direction`` (a name, or a list of names for several objectives) as Optuna's list
    of direction names; anything else is refused naming the key."""
    if OmegaConf.is_list(direction):
        direction = OmegaConf.to_container(direction)
    items = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    names = [str(getattr(item, "name", item)).lower() for item in items]
    if not names or any(name not in DIRECTIONS for name in names):
        raise StudyError(
            f"hydra.sweeper.direction={direction!r}: give maximize or minimize (a list of them for several "
            "objectives), e.g. hydra.sweeper.direction=maximize"
        )
    return names


def check_directions(study: Any, directions: list[str]) -> None:
    """A continued study keeps the directions it was created with: another direction is refused (Optuna
    would go on optimising the stored one)."""
    stored = [direction.name.lower() for direction in study.directions]
    if stored != [direction.lower() for direction in directions]:
        raise StudyError(
            f"study {study.study_name!r} was created to {'/'.join(stored)}, but this launch asks to "
            f"{'/'.join(directions)}: keep objective.direction, or start another study "
            "(hydra.sweeper.study_name or hydra.sweep.dir)"
        )


def _alive_elsewhere(owner: dict[str, Any]) -> bool:
    """Whether ``owner`` (host, pid) is another live process on this host."""
    if owner.get("host") != socket.gethostname() or owner.get("pid") in (None, os.getpid()):
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def prepare_study(study: Any) -> tuple[int, int]:
    """Make ``study`` ready to continue: trials left ``running`` by a launch that died are marked failed
    and enqueued again with their parameters. Returns ``(completed trials, number of the next trial)``.

    Raises :class:`StudyInUse` when another live process on this host drives the study.
    """
    from optuna.trial import TrialState

    owner = study.user_attrs.get(OWNER_ATTR) or {}
    if _alive_elsewhere(owner):
        raise StudyInUse(
            f"study {study.study_name!r} is being run by process {owner['pid']} on this host; wait for it "
            "to end (or stop it) before launching the same study again"
        )
    study.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(trial.params))
        log.warning(
            "trial %d was running when an earlier launch stopped: marked failed, proposed again with %s",
            trial.number,
            trial.params,
        )
    trials = study.get_trials(deepcopy=False)
    done = sum(trial.state == TrialState.COMPLETE for trial in trials)
    waiting = [trial.number for trial in trials if trial.state == TrialState.WAITING]
    next_number = min(waiting) if waiting else len(trials)
    return done, next_number


def make_sampler(node: DictConfig | None, next_number: int, space: SearchSpace) -> Any:
    """The Optuna sampler of ``hydra.sweeper.sampler`` (``_target_`` and its arguments; None: Optuna's
    default). A seeded sampler restarts its random stream with every launch and would propose a continued
    study's first trials again: from trial ``next_number`` on it is seeded with ``seed + next_number`` (the
    same launches give the same trials). A ``_partial_`` sampler (GridSampler) receives the search space."""
    if node is None:
        return None
    from hydra.utils import instantiate

    seed = node.get("seed")
    extra = {"seed": int(seed) + next_number} if seed is not None and next_number > 0 else {}
    try:
        sampler = instantiate(node, **extra)
    except Exception as error:
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise StudyError(
            f"hydra.sweeper.sampler cannot be built ({reason}); an argument another sampler took is removed "
            "with ~hydra.sweeper.sampler.<name>"
        ) from None
    if isinstance(sampler, functools.partial):
        import optuna

        if sampler.func is not optuna.samplers.GridSampler:
            raise StudyError(
                "hydra.sweeper.sampler._partial_=true is for optuna.samplers.GridSampler (which receives "
                "the search space); drop _partial_ for other samplers"
            )
        sampler = sampler(space.grid())
    return sampler


def grid_size(sampler: Any, space: SearchSpace) -> int | None:
    """The number of combinations a grid sampler runs (None for other samplers)."""
    import optuna

    if not isinstance(sampler, optuna.samplers.GridSampler):
        return None
    return math.prod(len(values) for values in space.grid().values())


def write_results(study: Any, sweep_dir: Path, directions: Sequence[str]) -> Path:
    """``optimization_results.yaml`` in the sweep folder: the study's best trial (or, for several
    objectives, its Pareto front) as Optuna records it."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    record: dict[str, Any] = {
        "name": "study",
        "study_name": study.study_name,
        "directions": list(directions),
        "complete_trials": len(complete),
    }
    if not complete:
        record.update(best_trial=None, best_params=None, best_value=None)
    elif len(directions) == 1:
        best = study.best_trial
        record.update(best_trial=best.number, best_params=dict(best.params), best_value=best.value)
        log.info("best: trial %d, value %s, %s", best.number, best.value, best.params)
    else:
        record["solutions"] = [
            {"trial": t.number, "params": dict(t.params), "values": list(t.values)} for t in study.best_trials
        ]
    path = Path(sweep_dir) / "optimization_results.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(record), path)
    return path
