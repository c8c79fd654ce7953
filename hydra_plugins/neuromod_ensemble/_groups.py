"""The batch composed and planned (:mod:`._plan`), then its units run (:func:`launch`). Running one unit of
the plan: a solo job through the task function (:func:`hydra.core.utils.run_job`,
as Hydra's basic launcher runs it: ``main.py`` decides, trains and reports), or a group of jobs as one
ensemble (:func:`neuromod.ensemble.run.run_ensemble`), each job set up as ``run_job`` sets it up (its run
folder, ``.hydra/`` files, environment, callbacks, its own ``main.log``) and returning what ``main.py``
would.

A group's job trains in the ensemble only when ``main.py`` would train it in its folder, afresh or from
its checkpoint (``training.resume``): its checks pass, its folder holds no completed run to skip and no
run alive elsewhere; every other job runs solo, so that skipping, refusing and the one-line errors are
``main.py``'s own. A group whose architecture has no ensemble form runs solo too.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    configure_log,
    env_override,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.neuromod_ensemble._plan import Job, LauncherSettings, Unit, compose, plan

log = logging.getLogger("neuromod.ensemble.launcher")

#: The number of the job whose steps run now (None: the ensemble's own): routes log records.
_CURRENT: ContextVar[int | None] = ContextVar("neuromod_ensemble_job", default=None)


def run_unit(
    unit: Unit,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    settings: LauncherSettings,
) -> list[tuple[int, JobReturn]]:
    """Each job's number and JobReturn."""
    solo = list(unit.jobs)
    results: list[tuple[int, JobReturn]] = []
    if unit.ensemble:
        members = [job for job in unit.jobs if _trains_here(job)]
        if len(members) >= settings.min_members:
            why = _refusal(members[0])
            if why is None:
                trained = _train_together(members, unit.label, hydra_context, task_function, config)
                if trained is not None:
                    results += trained
                    solo = [job for job in unit.jobs if job not in members]
            else:
                log.info("%s: %s; its %d jobs run solo", unit.label, why, len(unit.jobs))
    for job in solo:
        results.append((job.idx, _solo(job, hydra_context, task_function, config)))
    return results


def _solo(
    job: Job, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
) -> JobReturn:
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=copy.deepcopy(job.config),
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return ret


@contextmanager
def _as_job(job: Job) -> Iterator[None]:
    """Hydra's config is the job's (its overrides, choices, output folder) and its log records go to its
    own log file."""
    previous = HydraConfig.instance().cfg
    token = _CURRENT.set(job.idx)
    HydraConfig.instance().set_config(job.config)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        HydraConfig.instance().cfg = previous


def _trains_here(job: Job) -> bool:
    """Whether ``main.py`` would train the job in its folder, afresh or resumed (reading it only)."""
    from neuromod.runfolder.folder import FRESH, RESUME, RunFolder
    from neuromod.runfolder.settings import flatten
    from neuromod.runner.checks import check_config

    with _as_job(job):
        try:
            cfg = job.task_config()
            settings = flatten(cfg)
            check_config(cfg)
            folder = RunFolder(job.run_dir, create=False)
            launch = folder.decide_launch(settings, bool(cfg.skip_completed), bool(cfg.training.resume))
        except Exception:  # main.py reports it
            return False
    return launch.action in (FRESH, RESUME)


def _refusal(job: Job) -> str | None:
    """Why the job's group cannot train as an ensemble (its first member built and tried), or None."""
    from neuromod.ensemble import EnsembleTrainer
    from neuromod.runner.run import build_run
    from neuromod.validation import first_line

    with _as_job(job):
        try:
            EnsembleTrainer([build_run(job.task_config())])
        except Exception as error:
            return first_line(error)
    return None


def _start(
    job: Job, task_cfg: DictConfig, hydra_context: HydraContext, task_function: TaskFunction
) -> JobReturn:
    """What :func:`hydra.core.utils.run_job` does before it calls the task function: the run folder, the
    ``.hydra/`` files, the callbacks' ``on_job_start``."""
    with _as_job(job):
        ret = JobReturn()
        ret.cfg = task_cfg
        ret.hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
        ret.overrides = OmegaConf.to_container(job.config.hydra.overrides.task)
        job.run_dir.mkdir(parents=True, exist_ok=True)
        ret.working_dir = os.getcwd()
        if job.config.hydra.output_subdir is not None:
            hydra_output = job.run_dir / str(job.config.hydra.output_subdir)
            hydra_output.mkdir(parents=True, exist_ok=True)
            for name, node in (
                ("config.yaml", task_cfg),
                ("hydra.yaml", ret.hydra_cfg),
                ("overrides.yaml", job.config.hydra.overrides.task),
            ):
                (hydra_output / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")
        with env_override(ret.hydra_cfg.hydra.job.env_set):
            hydra_context.callbacks.on_job_start(config=job.config, task_function=task_function)
    return ret


def _train_together(
    members: list[Job],
    label: str,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
) -> list[tuple[int, JobReturn]] | None:
    """The members trained as one ensemble; None when the ensemble refused them before training (they
    then run solo)."""
    import neuromod.compose  # noqa: F401  (the resolvers the configs use)
    from neuromod.api import STANDARD_OBSERVERS
    from neuromod.ensemble.run import run_ensemble
    from neuromod.io import WriteError
    from neuromod.runfolder.objective import objective_value
    from neuromod.validation import ConfigError

    cfgs = [job.task_config() for job in members]
    rets = [_start(job, cfg, hydra_context, task_function) for job, cfg in zip(members, cfgs, strict=True)]
    steps = max(int(cfg.training.steps) for cfg in cfgs)
    numbers = ", ".join(f"#{job.idx}" for job in members)
    handlers = _member_logging(members)
    started = time.perf_counter()
    HydraConfig.instance().set_config(members[0].config)
    try:
        log.info("%s: %d members train together (%s), at most %d steps", label, len(members), numbers, steps)
        with env_override(rets[0].hydra_cfg.hydra.job.env_set):
            try:
                summaries = run_ensemble(
                    cfgs,
                    [job.run_dir for job in members],
                    observers=STANDARD_OBSERVERS,
                    member_context=lambda i: _as_job(members[i]),
                )
            except ConfigError as error:  # before any training: each job runs solo and says why
                log.warning("%s: %s; its jobs run solo", label, error)
                return None
            except WriteError as error:
                print(f"Error: {error}", file=sys.stderr)
                summaries = [{"status": "failed"}] * len(members)
            except Exception:
                log.exception("%s failed (recorded in its jobs' summary.json); the sweep goes on", label)
                summaries = [{"status": "failed"}] * len(members)
        counts: dict[str, int] = {}
        for summary in summaries:
            counts[str(summary.get("status"))] = counts.get(str(summary.get("status")), 0) + 1
        done = [int(summary.get("steps", 0)) for summary in summaries if "steps" in summary]
        log.info(
            "%s: %d members in %.1f s: %s; steps %s",
            label,
            len(members),
            time.perf_counter() - started,
            ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
            f"{min(done)}-{max(done)}" if done else "-",
        )
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
    results = []
    for job, cfg, ret, summary in zip(members, cfgs, rets, summaries, strict=True):
        ret.return_value = objective_value(summary, cfg.objective)
        ret.status = JobStatus.COMPLETED
        ret.task_name = JobRuntime.instance().get("name")
        with _as_job(job):
            hydra_context.callbacks.on_job_end(config=job.config, job_return=ret)
        results.append((job.idx, ret))
    return results


class _OnlyJob(logging.Filter):
    """A job's own log file: its records and the ensemble's, not the other members'."""

    def __init__(self, idx: int):
        super().__init__()
        self.idx = idx

    def filter(self, record: logging.LogRecord) -> bool:
        current = _CURRENT.get()
        return current is None or current == self.idx


class _JobPrefix(logging.Formatter):
    """The console: each member's records prefixed with its job number."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        current = _CURRENT.get()
        return text if current is None else f"#{current} {text}"


def _member_logging(members: list[Job]) -> list[logging.Handler]:
    """Logging as the members' ``hydra.job_logging`` sets it up, with one log file per member (its
    records only) and the console's records marked with the job's number; returns the files' handlers."""
    first = members[0]
    with _as_job(first):
        configure_log(first.config.hydra.job_logging, first.config.hydra.verbose)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):  # the first member's file: replaced below
            root.removeHandler(handler)
            handler.close()
        else:
            handler.setFormatter(_JobPrefix(handler.formatter))
    handlers: list[logging.Handler] = []
    for job in members:
        for handler in _file_handlers(job):
            handler.addFilter(_OnlyJob(job.idx))
            root.addHandler(handler)
            handlers.append(handler)
    return handlers


def _file_handlers(job: Job) -> list[logging.Handler]:
    """The file handlers of the job's ``hydra.job_logging`` (its ``main.log``), resolved for the job."""
    with _as_job(job):
        conf: dict[str, Any] = OmegaConf.to_container(job.config.hydra.job_logging, resolve=True) or {}
    formatters, specs = conf.get("formatters") or {}, conf.get("handlers") or {}
    handlers: list[logging.Handler] = []
    for name in (conf.get("root") or {}).get("handlers") or []:
        spec = specs.get(name) or {}
        if "filename" not in spec:
            continue
        Path(spec["filename"]).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(
            spec["filename"], mode=spec.get("mode", "a"), encoding=spec.get("encoding")
        )
        form = formatters.get(spec.get("formatter")) or {}
        handler.setFormatter(logging.Formatter(form.get("format"), form.get("datefmt")))
        if spec.get("level") is not None:
            handler.setLevel(spec["level"])
        handlers.append(handler)
    return handlers


def launch(
    settings: LauncherSettings,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> list[JobReturn]:
    """Compose, group and run the batch; one JobReturn per job, in the order of ``job_overrides``."""
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info("Launching %d jobs, ensembles where they can share one: %s", len(job_overrides), sweep_dir)
    jobs = [compose(hydra_context, config, o, initial_job_idx + i) for i, o in enumerate(job_overrides)]
    for job in jobs:
        log.info("\t#%d : %s", job.idx, " ".join(filter_overrides(job.overrides)))
    units = plan(jobs, settings)
    for unit in units:
        if unit.ensemble:
            numbers = ", ".join(f"#{job.idx}" for job in unit.jobs)
            log.info("%s: %d members (%s)", unit.label, len(unit.jobs), numbers)
    solo = [unit.jobs[0].idx for unit in units if not unit.ensemble]
    if solo:
        log.info("solo runs: %s", ", ".join(f"#{idx}" for idx in solo))
    if settings.n_jobs == 1 or len(units) == 1:
        results = [run_unit(unit, hydra_context, task_function, config, settings) for unit in units]
    else:
        from joblib import Parallel, delayed

        state = Singleton.get_state()
        results = Parallel(n_jobs=settings.n_jobs, backend="loky")(
            delayed(_run_in_worker)(unit, hydra_context, task_function, config, settings, state)
            for unit in units
        )
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    returns = {idx: ret for result in results for idx, ret in result}
    return [returns[job.idx] for job in jobs]


def _run_in_worker(
    unit: Unit,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    settings: LauncherSettings,
    singleton_state: dict,
) -> list[tuple[int, JobReturn]]:
    """:func:`run_unit` in a joblib worker process (Hydra's globals restored first, as joblib's launcher
    does)."""
    import neuromod.compose  # noqa: F401  (the resolvers the configs use)

    setup_globals()
    Singleton.set_state(singleton_state)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return run_unit(unit, hydra_context, task_function, config, settings)
