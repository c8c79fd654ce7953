"""A resumable Optuna study: Hydra's official Optuna sweeper, continued where it stopped.

``hydra/sweeper=study`` (config/hydra/sweeper/study.yaml) keeps the study in an SQLite file in the sweep
folder (``study.db``). Launching the same command again (same ``hydra.sweep.dir``) continues it:

- ``n_trials`` is the study's total: only the trials still missing are run (none once it is complete);
  completed trials are never run again and the sampler proposes the next trials from all their results.
- A job folder's number is its Optuna trial number, so a continued study never reuses a folder.
- A seeded sampler is seeded with ``seed + the number of trials so far`` (it would otherwise propose the
  study's first trials again); the same launches give the same trials.
- Trials that were running when an earlier launch died (kill -9, a lost node) are marked failed in the
  study and proposed again with the same parameters; their folders stay as they were left.

Only this process (the sweeper) opens the storage: it asks Optuna for the trials, hands their overrides to
the launcher and tells Optuna the values the jobs returned. The jobs themselves, parallel ones included
(``hydra/launcher=parallel``), never touch it, so SQLite is safe here. Two launches of one study at once
are refused (the study records which process drives it).

Hydra finds this module as a plugin (the ``hydra_plugins`` namespace) when ``main.py`` runs from the
repository. It needs the ``tune`` extra (hydra-optuna-sweeper, which requires optuna<3); without it the
module defines nothing, and ``hydra/sweeper=study`` fails like ``optuna`` would.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

try:
    import optuna
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
    from optuna.trial import TrialState
except ImportError:  # the tune extra is not installed
    OptunaSweeper = None

#: The study's user attribute naming the process that drives it.
OWNER_ATTR = "neuromod_sweeper"


class StudyInUse(RuntimeError):
    """Another live process on this host drives the same study."""


def _directions(direction: Any) -> list[str]:
    """The sweeper's ``direction`` setting as Optuna's list of direction names."""
    items = [direction] if isinstance(direction, str) or hasattr(direction, "name") else list(direction)
    return [str(getattr(item, "name", item)) for item in items]


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


def check_directions(study, directions: list[str]) -> None:
    """A continued study keeps the directions it was created with: another direction is refused (Optuna
    would go on optimising the stored one)."""
    stored = [direction.name.lower() for direction in study.directions]
    if stored != [direction.lower() for direction in directions]:
        raise ValueError(
            f"study {study.study_name!r} was created to {'/'.join(stored)}, but this launch asks to "
            f"{'/'.join(directions)}: keep objective.direction, or start another study "
            "(hydra.sweeper.study_name or hydra.sweep.dir)"
        )


def prepare_study(study) -> tuple[int, int]:
    """Make ``study`` ready to continue: trials left ``running`` by a launch that died are marked failed
    and enqueued again with their parameters. Returns ``(completed trials, number of the next trial)``.

    Raises :class:`StudyInUse` when another live process on this host drives the study.
    """
    owner = study.user_attrs.get(OWNER_ATTR) or {}
    if _alive_elsewhere(owner):
        raise StudyInUse(
            f"study {study.study_name!r} is being run by process {owner['pid']} on this host; wait for it "
            "to end (or stop it) before launching the same study again"
        )
    study.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        with warnings.catch_warnings():  # enqueue_trial is "experimental" in Optuna 2.10
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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


def _continued_sampler(config, sampler: Any, next_number: int) -> Any:
    """A seeded sampler restarts its random stream with every launch and would propose a continued
    study's first trials again: seeded with ``seed + next_number`` instead (the same launches give the
    same trials). An unseeded sampler is kept as it is."""
    node = config.hydra.sweeper.get("sampler")
    seed = node.get("seed") if node is not None else None
    if seed is None or node.get("_partial_"):
        return sampler
    from hydra.utils import instantiate

    return instantiate(node, seed=int(seed) + next_number)


if OptunaSweeper is not None:

    class StudySweeper(OptunaSweeper):
        """The official Optuna sweeper, with ``n_trials`` as the study's total and the study continued
        from its storage (see the module's description)."""

        def sweep(self, arguments: list[str]) -> None:
            impl = self.sweeper
            if impl.storage is None:
                raise ValueError(
                    "hydra/sweeper=study needs hydra.sweeper.storage "
                    "(its default: sqlite:///<sweep dir>/study.db)"
                )
            Path(str(impl.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
            directions = _directions(impl.direction)
            study = optuna.create_study(
                study_name=impl.study_name, storage=impl.storage, directions=directions, load_if_exists=True
            )
            check_directions(study, directions)
            total = int(impl.n_trials)
            done, next_number = prepare_study(study)
            remaining = max(0, total - done)
            log.info(
                "study %r in %s: %d of %d trials complete, %d to run (from trial %d)",
                study.study_name,
                impl.storage,
                done,
                total,
                remaining,
                next_number,
            )
            impl.n_trials = remaining
            if next_number > 0:
                impl.sampler = _continued_sampler(impl.config, impl.sampler, next_number)
            # The official sweeper numbers jobs from 0 on every launch; here a job's number is its trial's
            # (Optuna numbers the trials it is asked for one after the other).
            impl.job_idx = next_number
            super().sweep(arguments)
