"""Several composed configs trained as one ensemble, each job writing its own run folder as its solo run
(:func:`neuromod.runner.run.run`) would: ``summary.json`` (with its owner and heartbeat), ``metrics.csv``,
``checkpoint.pt``, ``trials.npz``, ``params.tex``, the analyses and what the observers write.

Each member goes through the solo run's own steps, from the runner: the pre-run checks and the launch
decision, the claim on its folder, :func:`~neuromod.runner.run.build_run`, the folder's hooks (metrics.csv
and the heartbeat at every evaluation, checkpoints every ``training.checkpoint_every`` steps), then
:func:`~neuromod.runner.run.finish` (final metrics from the last validation evaluation, the test set and
its controls, trials.npz, the analyses). Only the training loop is the ensemble's
(:class:`~neuromod.ensemble.trainer.EnsembleTrainer`); the finishing steps run per member, as in a solo
run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from neuromod.ensemble.grouping import check_group
from neuromod.ensemble.trainer import EnsembleTrainer
from neuromod.observer import ObserverFactory, RunObserver
from neuromod.runfolder import checkpoint
from neuromod.runfolder.folder import SKIP, RunFolder
from neuromod.runner.checks import check_before_run

# the solo run's own steps (neuromod.runner.run), so that a member's folder is a solo run's
from neuromod.runner.run import RunObjects, _claim, _prepare_folder, build_run, finish
from neuromod.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass
class _Job:
    index: int
    cfg: DictConfig
    folder: RunFolder
    summary: dict[str, Any]
    experiment: RunObjects | None = None
    observers: list[RunObserver] = field(default_factory=list)


def run_ensemble(
    cfgs: Sequence[DictConfig],
    run_dirs: Sequence[str | Path],
    observers: Sequence[ObserverFactory] = (),
    member_context: Callable[[int], AbstractContextManager] | None = None,
) -> list[dict[str, Any]]:
    """Train ``cfgs`` (configs that can share an ensemble: :func:`~neuromod.ensemble.grouping.check_group`)
    together, job i into ``run_dirs[i]``; returns each job's summary, as :func:`~neuromod.runner.run.run`
    does (a completed folder with the same settings is skipped and its summary returned).

    A ConfigError (a setting the ensemble cannot honour, or a bad setting of one job) is raised before any
    training, naming the key; a job whose folder asks to resume (``training.resume`` with a checkpoint)
    continues from it, as its solo run would (members may be at different steps). Any other error while
    training ends every job still running, recorded ``failed`` in its folder. Ctrl-C is not deferred to
    a step boundary as in a solo run: the jobs' folders keep their last checkpoint and say ``running``
    (stale once this process is gone, so a later launch runs them again).

    ``member_context(i)``: a context entered around job i's own steps (its checks and build, its
    ``on_log`` and ``on_step`` hooks, its finish), e.g. to route its log records to its own log file.
    """
    if len(cfgs) != len(run_dirs):
        raise ValueError(f"{len(cfgs)} configs but {len(run_dirs)} run folders")
    if not cfgs:
        return []
    check_group(cfgs)
    context = member_context or (lambda index: nullcontext())
    started = time.time()
    results: list[dict[str, Any] | None] = [None] * len(cfgs)
    jobs: list[_Job] = []
    training = False
    try:
        for index, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs, strict=True)):
            with context(index):
                job = _open(index, cfg, RunFolder(run_dir), started, observers)
            if isinstance(job, dict):
                results[index] = job
            else:
                _hooks_in_context(job, context)
                jobs.append(job)
        if not jobs:
            return results
        every = [int(j.cfg.training.checkpoint_every or 0) for j in jobs]
        ensemble = EnsembleTrainer([j.experiment for j in jobs], sync_every=math.gcd(*every))
        training = True
        ensemble.fit()
    except BaseException as error:
        for job in jobs:
            for observer in job.observers:
                observer.close()
            if isinstance(error, Exception):  # (a job whose own checks or build failed recorded it)
                why = error if training else RuntimeError(f"its ensemble stopped before training: {error}")
                job.folder.record_failure(job.summary, started, why, trace=training)
        raise
    for k, job in enumerate(jobs):
        try:
            with context(job.index):
                results[job.index] = _finish(job, ensemble, k, started)
        finally:
            for observer in job.observers:
                observer.close()
    return results


def _open(
    index: int, cfg: DictConfig, folder: RunFolder, started: float, observers: Sequence[ObserverFactory]
) -> _Job | dict[str, Any]:
    """A job's folder claimed and its run built, as a solo run's; a completed folder's summary instead."""
    folder.config = checkpoint.plain_config(cfg)
    summary: dict[str, Any] = {"status": "running", "seed": cfg.get("seed"), "steps": 0}
    summary["config"] = check_before_run(cfg, folder, started)
    launch = folder.decide_launch(summary["config"], bool(cfg.skip_completed), bool(cfg.training.resume))
    if launch.action == SKIP:
        log.info("%s already holds a completed run: skipped", folder)
        return launch.previous
    _claim(cfg, folder, summary, launch)
    job = _Job(index, cfg, folder, summary)
    try:
        job.experiment = build_run(cfg)
    except ValueError as error:
        error = error if isinstance(error, ConfigError) else ConfigError(str(error))
        folder.record_failure(summary, started, error)
        raise error from None
    trainer = job.experiment.trainer
    summary["held_out"] = job.experiment.task.held_out()
    _prepare_folder(cfg, folder, trainer, job.experiment.device, summary, launch)
    for factory in observers:
        observer = factory(cfg, folder.path)
        job.observers.append(observer)
        observer.on_fit_start(trainer)
        trainer.on_log.append(lambda row, observer=observer: observer.on_evaluation(trainer, row))
    return job


def _hooks_in_context(job: _Job, context: Callable[[int], AbstractContextManager]) -> None:
    """The job's trainer hooks, each list as one hook that runs them inside ``context(job.index)``."""
    trainer = job.experiment.trainer
    on_log, on_step = list(trainer.on_log), list(trainer.on_step)

    def log_hook(row: dict) -> None:
        with context(job.index):
            for hook in on_log:
                hook(row)

    def step_hook(member: Any) -> None:
        with context(job.index):
            for hook in on_step:
                hook(member)

    trainer.on_log[:] = [log_hook]
    trainer.on_step[:] = [step_hook] if on_step else []


def _finish(job: _Job, ensemble: EnsembleTrainer, k: int, started: float) -> dict[str, Any]:
    """What a solo run does once training has ended (``neuromod.runner.run.fit``'s record of a divergence,
    then :func:`~neuromod.runner.run.finish` and the observers' ``on_run_end``)."""
    status = ensemble.status(k)
    if status == "diverged":
        error = ensemble.diverged[k]
        job.summary.update(error=str(error), diverged_step=error.step)
        step = job.folder.checkpoint_step()  # written before the divergence
        if step is not None:
            job.summary["last_good_checkpoint_step"] = step
        log.error("%s: %s", job.folder, error)
    trainer = job.experiment.trainer
    if status == "completed" and trainer.last_eval is None and trainer.step > 0:
        # resumed from a checkpoint taken at its very end: evaluated once more, as a solo run does
        trainer.last_eval = trainer.evaluate(trainer.eval_batch, record=True)
    result = finish(job.cfg, job.experiment, job.folder, job.summary, started, status, job.observers)
    for observer in job.observers:
        observer.on_run_end(result, job.folder.path)
    return result
