"""One experiment, from a composed config to a run folder: build -> fit -> finish.

``main.py`` hands its config to :func:`run`, with what the launch does with the folder
(:meth:`~neuromod.runfolder.folder.RunFolder.decide_launch`) and the observers that watch the run (trackers,
figures: :mod:`neuromod.observer`; this package draws and tracks nothing itself). The run folder
(:class:`~neuromod.runfolder.folder.RunFolder`) receives ``summary.json``, ``metrics.csv``,
``checkpoint.pt``, ``trials.npz``, ``params.tex`` and ``figures/``. ``summary.json`` names the run's owner
and is rewritten (heartbeat) at every evaluation and checkpoint. A result file that cannot be written ends
the run with :class:`~neuromod.io.WriteError`, recorded as ``failed`` when the summary can still be written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from neuromod.io import WriteError
from neuromod.observer import ObserverFactory, RunObserver
from neuromod.runfolder import checkpoint, liveness
from neuromod.runfolder.folder import RESUME, SKIP, Launch, RunFolder
from neuromod.runner.build import (
    EVAL_SEED_OFFSET,
    TEST_SEED_OFFSET,
    build,
    choice_name,
    make_optimizer,
    resolve_device,
)
from neuromod.runner.checks import check_before_run, check_task
from neuromod.runner.finish import final_metrics, held_out_metrics, params_table, trial_arrays
from neuromod.runner.memory import check_memory
from neuromod.tasks.base import Batch, Task
from neuromod.training import Diverged, Trainer, eval_delays_tensor, resolve_loss
from neuromod.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass
class RunObjects:
    """What :func:`build_run` makes of a config: the objects a run trains and evaluates."""

    task: Task
    model: torch.nn.Module
    trainer: Trainer
    device: torch.device
    loss_kind: str
    #: Scored once, after training (the evaluation set of ``trainer`` is the validation set).
    test_batch: Batch
    test_generator: torch.Generator


def build_run(cfg: DictConfig) -> RunObjects:
    """Device, task, network, optimiser, the fixed evaluation set and the trainer (ConfigError on settings
    that cannot be used)."""
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    task, model = build(cfg, device)
    check_task(cfg, task)
    check_memory(cfg, task, model, device)
    loss_kind = resolve_loss(cfg.training.loss, task)
    optimizer = make_optimizer(cfg, model)
    training = cfg.training
    eval_generator = torch.Generator(device=device).manual_seed(int(cfg.seed) + EVAL_SEED_OFFSET)
    n_eval = int(training.eval_batch_size)
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    # training.fixed_train_set: one set of batch_size trials, drawn once, is the batch of every step
    fixed = task.sample(int(training.batch_size), generator) if training.fixed_train_set else None
    trainer = Trainer.from_settings(
        training,
        model=model,
        task=task,
        optimizer=optimizer,
        generator=generator,
        eval_batch=task.sample(
            n_eval, eval_generator, eval_delays_tensor(task, n_eval, device), split="validation"
        ),
        loss_kind=loss_kind,
        train_batch=fixed,
    )
    test_batch, test_generator = draw_test_set(cfg, task, device)
    return RunObjects(task, model, trainer, device, loss_kind, test_batch, test_generator)


def draw_test_set(cfg: DictConfig, task: Task, device: torch.device) -> tuple[Batch, torch.Generator]:
    """The run's test set (``training.eval_batch_size`` trials at the test delays, drawn from the seed's
    own stream) and the generator its controls draw from next: the same trials for every rebuild of the
    run (:meth:`neuromod.api.Run.evaluate` scores a saved network on them)."""
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed) + TEST_SEED_OFFSET)
    n_test = int(cfg.training.eval_batch_size)
    delays = eval_delays_tensor(task, n_test, device, task.test_delays)
    return task.sample(n_test, generator, delays, split="test"), generator


def run(
    cfg: DictConfig,
    output_dir: str | Path | RunFolder | None = None,
    settings: dict[str, Any] | None = None,
    launch: Launch | None = None,
    observers: Sequence[ObserverFactory] = (),
) -> dict[str, Any]:
    """Train and evaluate one configuration; write the run folder; return the summary dict.

    ``settings``: the flattened config from :func:`~neuromod.runner.checks.check_before_run`, when the
    caller has checked it already (``main.py`` does, before importing torch); ``launch``: what to do with
    the folder, when the caller has decided it (else decided here). ``observers``: factories of what
    watches the run (``factory(cfg, run_dir)``, called once the run is built; told in this order), e.g.
    :func:`neuromod.plotting.observer.figures` and :func:`neuromod.trackers.open_tracker`; none: the run
    folder is written without figures.

    Raises :class:`ConfigError` for a bad configuration (after recording the run as ``failed``), its
    subclass ``StillRunning`` for a folder whose run is alive in another process (left untouched),
    :class:`~neuromod.io.WriteError` for a file that cannot be written (after recording ``failed`` with what
    is intact, when it can). A diverging run is not an error: its summary says ``diverged``.
    """
    if output_dir is None:
        from hydra.core.hydra_config import HydraConfig

        output_dir = HydraConfig.get().runtime.output_dir
    folder = output_dir if isinstance(output_dir, RunFolder) else RunFolder(output_dir)
    # stored in every checkpoint (converted once): the file alone rebuilds the network
    folder.config = checkpoint.plain_config(cfg)
    started = time.time()
    summary: dict[str, Any] = {"status": "running", "seed": cfg.get("seed"), "steps": 0}
    summary["config"] = settings if settings is not None else check_before_run(cfg, folder, started)
    if launch is None:
        launch = folder.decide_launch(summary["config"], bool(cfg.skip_completed), bool(cfg.training.resume))
    if launch.action == SKIP:
        log.info("%s already holds a completed run: skipped (skip_completed=false to train again)", folder)
        return launch.previous
    with _recording_write_failures(folder, summary, started):
        _claim(cfg, folder, summary, launch)
        watching: list[RunObserver] = []
        try:
            experiment = build_run(cfg)
            # how validation and test trials are kept out of training (the test figure's meaning)
            summary["held_out"] = experiment.task.held_out()
            _prepare_folder(cfg, folder, experiment.trainer, experiment.device, summary, launch)
            for factory in observers:
                watching.append(factory(cfg, folder.path))
        except ValueError as error:
            for observer in watching:
                observer.close()
            error = error if isinstance(error, ConfigError) else ConfigError(str(error))
            folder.record_failure(summary, started, error)
            raise error from None
        trainer = experiment.trainer
        for observer in watching:
            observer.on_fit_start(trainer)
            trainer.on_log.append(lambda row, observer=observer: observer.on_evaluation(trainer, row))
        try:
            status = fit(experiment, folder, summary, started)
            result = finish(cfg, experiment, folder, summary, started, status, watching)
            for observer in watching:
                observer.on_run_end(result, folder.path)
            return result
        finally:
            for observer in watching:
                observer.close()


@contextmanager
def _recording_write_failures(folder: RunFolder, summary: dict, started: float) -> Iterator[None]:
    """A file that cannot be written ends the run: recorded as ``failed`` (when the summary can still be
    written), its message completed with what is intact, and re-raised."""
    try:
        yield
    except WriteError as error:
        folder.record_write_failure(summary, started, error)
        log.error("%s", error)
        raise


def _claim(cfg: DictConfig, folder: RunFolder, summary: dict, launch: Launch) -> None:
    """Say so when an earlier attempt is stale; write the summary naming this process as the owner."""
    if launch.stale is not None:
        again = "from its checkpoint, if any" if cfg.training.resume else "from scratch"
        log.warning("%s: running it again %s (training.resume=%s)", launch.stale, again, cfg.training.resume)
        summary["stale_attempt"] = launch.stale
    summary.update(liveness.owner())
    folder.write_summary(summary)


def _prepare_folder(
    cfg: DictConfig,
    folder: RunFolder,
    trainer: Trainer,
    device: torch.device,
    summary: dict,
    launch: Launch,
) -> None:
    """Resume from the folder's checkpoint or start afresh; checkpoints and metrics.csv as training goes."""
    if launch.action == RESUME and folder.restore(trainer, device):
        summary["resumed_from_step"] = trainer.step
        log.info("resumed from %s at step %d", folder.checkpoint_path, trainer.step)
    elif cfg.training.resume:
        log.info("training.resume=true but %s has no checkpoint: training from step 0", folder)
    else:
        folder.discard_checkpoint()
    every = int(cfg.training.checkpoint_every or 0)
    if every > 0:
        trainer.on_step.append(lambda t: _checkpoint(folder, t, summary) if t.step % every == 0 else None)
    trainer.on_log.append(
        lambda row: log.info(
            "step %d  train_loss %.4f  eval_loss %.4f  eval_accuracy %.3f (chance %.3f)",
            row["step"],
            row["train_loss"],
            row["eval_loss"],
            row["eval_accuracy"],
            row["chance_accuracy"],
        )
    )
    trainer.on_log.append(lambda row: folder.write_metrics(trainer.history))
    trainer.on_log.append(lambda row: folder.heartbeat(summary, row["step"]))
    log.info(
        "task=%s architecture=%s af=%s device=%s parameters=%d loss=%s",
        trainer.task.name,
        choice_name("architecture"),
        choice_name("af"),
        device,
        sum(p.numel() for p in trainer.model.parameters()),
        trainer.loss_kind,
    )


def _checkpoint(folder: RunFolder, trainer: Trainer, summary: dict) -> None:
    folder.save_checkpoint(trainer.checkpoint_state())
    folder.heartbeat(summary, trainer.step)


def fit(experiment: RunObjects, folder: RunFolder, summary: dict, started: float) -> str:
    """Train; returns ``completed`` or ``diverged``. Ctrl-C is recorded (``interrupted``, with a checkpoint
    when the state is consistent) and re-raised; any other error is recorded as ``failed`` and re-raised."""
    trainer = experiment.trainer
    try:
        trainer.fit()
        if trainer.last_eval is None and trainer.step > 0:
            # resumed from a checkpoint taken at the very end: evaluate the restored model once more
            trainer.last_eval = trainer.evaluate(trainer.eval_batch, record=True)
    except Diverged as error:
        summary.update(error=str(error), diverged_step=error.step)
        step = folder.checkpoint_step()  # written before the divergence: non-finite weights are never saved
        if step is not None:
            summary["last_good_checkpoint_step"] = step
        log.error("%s", error)
        return "diverged"
    except KeyboardInterrupt:
        if trainer.interrupted_cleanly:
            folder.save_checkpoint(trainer.checkpoint_state())
            saved = f"checkpoint saved at step {trainer.step}"
        else:  # stopped in the middle of a step: the state is not consistent; keep the last checkpoint
            saved = "the last checkpoint was kept" if folder.checkpoint_path.exists() else "no checkpoint"
        folder.write_metrics(trainer.history)
        summary.update(
            status="interrupted",
            steps=trainer.step,
            wall_time_s=round(time.time() - started, 3),
            error=f"interrupted at step {trainer.step}; {saved}",
        )
        folder.write_summary(summary)
        log.error("interrupted at step %d; %s (resume with training.resume=true)", trainer.step, saved)
        raise
    except WriteError:
        raise  # recorded by run()
    except Exception as error:
        folder.record_failure(summary, started, error, trace=True)
        raise
    return "completed"


def finish(
    cfg: DictConfig,
    experiment: RunObjects,
    folder: RunFolder,
    summary: dict,
    started: float,
    status: str,
    observers: Sequence[RunObserver] = (),
) -> dict[str, Any]:
    """Write what a run keeps: metrics.csv, the final checkpoint, trials.npz, the analyses, params.tex and
    summary.json (the observers are told of the analyses). Everything comes from the last evaluation (no
    further pass)."""
    trainer, task, model = experiment.trainer, experiment.task, experiment.model
    folder.write_metrics(trainer.history)
    final = final_metrics(trainer, task)
    if status == "completed":
        folder.save_checkpoint(trainer.checkpoint_state())
        result = trainer.last_eval
        if result is not None:
            folder.write_trials(trial_arrays(result, trainer.eval_batch, task, model, cfg, trainer.loss_kind))
            from neuromod.analysis import end_of_run_scalars, end_of_run_scalars_by_group

            last_step = task.analysis_last_step(trainer.eval_batch)
            final.update(
                end_of_run_scalars(result.output.activity, trainer.eval_batch, cfg.analysis, last_step)
            )
            groups = task.trial_groups(trainer.eval_batch)  # a multitask's tasks: the analyses per task
            final.update(
                end_of_run_scalars_by_group(
                    result.output.activity, trainer.eval_batch, groups, cfg.analysis, last_step
                )
            )
        final.update(
            held_out_metrics(
                model,
                task,
                experiment.test_batch,
                trainer.loss_kind,
                experiment.test_generator,
                chunk=trainer.batch_size,
            )
        )
    summary.update(
        status=status,
        steps=trainer.step,
        wall_time_s=round(time.time() - started, 3),
        train_wall_time_s=round(trainer.elapsed_s, 3),
        final=final,
        device=str(experiment.device),
        n_parameters=sum(p.numel() for p in model.parameters()),
    )
    folder.write_params_table(params_table(summary["config"]))
    folder.write_summary(summary)
    if status == "completed" and cfg.analysis.dynamics:
        from neuromod.analysis.population import end_of_run

        analysis = end_of_run(model, task, cfg, folder.path, final)
        if analysis is not None:
            for observer in observers:
                observer.on_analysis(analysis, folder.path)
    log.info(
        "%s: test_accuracy %s (validation %s) in %.1f s -> %s",
        status,
        final.get("test_accuracy"),
        final.get("eval_accuracy"),
        summary["wall_time_s"],
        folder,
    )
    return summary
