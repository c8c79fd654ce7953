"""A resumable Optuna study as a Hydra sweeper (``hydra/sweeper=study``; docs/tuning.md).

The study is kept in an SQLite file in the sweep folder (``study.db``; ``hydra.sweeper.storage=null``
keeps it in memory). Launching the same command again (same ``hydra.sweep.dir``) continues it:

- ``n_trials`` is the study's total: only the trials still missing are run (none once it is complete);
  completed trials are never run again and the sampler proposes the next trials from all their results.
- A job folder's number is its Optuna trial number, so a continued study never reuses a folder.
- A seeded sampler is seeded with ``seed + the number of trials so far`` (it would otherwise propose the
  study's first trials again); the same launches give the same trials.
- Trials that were running when an earlier launch died (kill -9, a lost node) are marked failed in the
  study and proposed again with the same parameters; their folders stay as they were left.

Each batch of ``n_jobs`` trials is asked from Optuna, handed to the launcher as override lines
(:mod:`._search_space`) and told the values the jobs returned. Only this process opens the storage; the
jobs, parallel ones included (``hydra/launcher=parallel``), never touch it, so SQLite is safe here. Two
launches of one study at once are refused (the study records which process drives it).

Hydra finds this module as a plugin (the ``hydra_plugins`` namespace) when ``main.py`` runs from the
repository, and the settings in :mod:`.config`. Optuna (the ``tune`` extra) is imported when a study
starts, not when Hydra scans its plugins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.neuromod_study._search_space import SearchSpace, StudyError, parse_search_space
from hydra_plugins.neuromod_study._study_state import (
    OWNER_ATTR,
    StudyInUse,
    check_directions,
    directions_of,
    grid_size,
    make_sampler,
    prepare_study,
    write_results,
)

__all__ = ["OWNER_ATTR", "StudyError", "StudyInUse", "StudySweeper", "check_directions", "prepare_study"]

log = logging.getLogger(__name__)

#: ``launch(batch, initial_job_idx)``: the launcher's call, one list of override lines per job.
Launch = Callable[[Sequence[Sequence[str]], int], Sequence[JobReturn]]


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise StudyError(
            "hydra/sweeper=study needs Optuna, an optional extra: make install EXTRAS=tune "
            "(or pip install -e '.[tune]')"
        ) from None


class StudySweeper(Sweeper):
    """Runs ``n_trials`` trials of an Optuna study in total, over as many launches as it takes (see the
    module's description); the settings are :class:`~hydra_plugins.neuromod_study.config.StudySweeperConf`."""

    def __init__(
        self,
        sampler: DictConfig | None,
        direction: Any,
        storage: str | None,
        study_name: str,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
    ) -> None:
        self.sampler_node = sampler
        self.direction = direction
        self.storage = None if storage in (None, "") else str(storage)
        self.study_name = str(study_name)
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else params
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # checked here rather than in __init__, whose errors Hydra wraps in a message of its own
        _require_optuna()
        self.n_trials = _count("n_trials", self.n_trials, 0)
        self.n_jobs = _count("n_jobs", self.n_jobs, 1)
        if not 0.0 <= float(self.max_failure_rate) <= 1.0:
            raise StudyError(
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: give a fraction in [0, 1]"
            )
        self.max_failure_rate = float(self.max_failure_rate)
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        import optuna

        assert self.config is not None and self.launcher is not None
        space = parse_search_space(self.params, arguments)
        directions = directions_of(self.direction)
        _make_parent(self.storage)
        try:
            study = optuna.create_study(
                study_name=self.study_name, storage=self.storage, directions=directions, load_if_exists=True
            )
        except Exception as error:  # e.g. a file of an older Optuna, to be upgraded first
            raise StudyError(
                f"cannot open study {self.study_name!r} in {self.storage}: {str(error).splitlines()[0]}"
            ) from error
        check_directions(study, directions)
        space.check_compatible(study)
        done, next_number = prepare_study(study)
        study.sampler = make_sampler(self.sampler_node, next_number, space) or study.sampler
        total = self.n_trials
        combinations = grid_size(study.sampler, space)
        if combinations is not None and combinations < total:
            log.info(
                "the grid has %d combinations: the study's total is %d, not %d",
                combinations,
                combinations,
                total,
            )
            total = combinations
        remaining = max(0, total - done)
        log.info(
            "study %r in %s: %d of %d trials complete, %d to run (from trial %d)",
            study.study_name,
            self.storage or "memory",
            done,
            total,
            remaining,
            next_number,
        )
        returns = run_trials(
            study,
            space,
            remaining,
            self.n_jobs,
            lambda batch, first: self.launcher.launch(batch, initial_job_idx=first),
            n_objectives=len(directions),
            max_failure_rate=self.max_failure_rate,
            validate=self.validate_batch_is_legal,
        )
        write_results(study, Path(str(self.config.hydra.sweep.dir)), directions)
        return returns


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise StudyError(f"hydra.sweeper.{name}={value!r}: give a whole number of at least {least}")
    return value


def _make_parent(storage: str | None) -> None:
    """An SQLite file's folder is made before Optuna opens the file (the sweep folder, at first launch)."""
    prefix = "sqlite:///"
    if storage and storage.startswith(prefix) and storage != prefix + ":memory:":
        Path(storage[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def run_trials(
    study: Any,
    space: SearchSpace,
    count: int,
    n_jobs: int,
    launch: Launch,
    *,
    n_objectives: int = 1,
    max_failure_rate: float = 0.0,
    validate: Callable[[Sequence[Sequence[str]]], None] | None = None,
) -> list[JobReturn]:
    """Run ``count`` trials of ``study`` in batches of ``n_jobs``: ask Optuna, launch the jobs (job number
    = trial number), tell Optuna what each returned. A job that raised, or returned no number, is a failed
    trial; more than ``max_failure_rate`` of a batch failing stops the study with the first one's error.
    A batch that cannot be composed (``validate``) fails its trials and stops the study."""
    from optuna.trial import TrialState

    returns: list[JobReturn] = []
    while count > 0:
        trials = [study.ask(space.distributions) for _ in range(min(n_jobs, count))]
        batch = [space.overrides(trial.params) for trial in trials]
        if validate is not None:
            try:
                validate(batch)
            except Exception:
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                log.error("trials %s cannot be composed: the study stops", [t.number for t in trials])
                raise
        results: list[JobReturn] = []
        for start, stop in _consecutive([t.number for t in trials]):
            results += launch(batch[start:stop], trials[start].number)
        failures = [
            (trial, result)
            for trial, result in zip(trials, results, strict=True)
            if not _tell(study, trial, result, n_objectives)
        ]
        returns += results
        if failures and len(failures) / len(trials) > max_failure_rate:
            log.error(
                "%d of %d trials of the batch failed (hydra.sweeper.max_failure_rate=%s): the study stops",
                len(failures),
                len(trials),
                max_failure_rate,
            )
            failures[0][1].return_value  # noqa: B018  (raises the job's own error)
            raise StudyError(f"trial {failures[0][0].number} returned no number")
        count -= len(trials)
    return returns


def _consecutive(numbers: list[int]) -> list[tuple[int, int]]:
    """Index ranges of ``numbers`` that count up by one: each is launched with its first job number."""
    bounds, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            bounds.append((start, i))
            start = i
    return bounds


def _tell(study: Any, trial: Any, result: JobReturn, n_objectives: int) -> bool:
    """Tell Optuna a job's values; False if the job failed (raised, or returned no number)."""
    from optuna.trial import TrialState

    try:
        value = result.return_value
        items = [value] if n_objectives == 1 else list(value)
        values = [float(v) for v in items]
        if len(values) != n_objectives:
            raise ValueError(f"{len(values)} values for {n_objectives} objectives")
    except Exception as error:
        log.warning("trial %d failed: %s", trial.number, f"{type(error).__name__}: {error}")
        _tell_state(study, trial, state=TrialState.FAIL)
        return False
    _tell_state(study, trial, values=values)
    return True


def _tell_state(study: Any, trial: Any, **kwargs: Any) -> None:
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as error:
        # a grid sampler stops its study when the grid is done, which only an optimize() loop accepts;
        # the trial is recorded all the same
        if "Study.stop" not in str(error):
            raise
