"""Composing a sweep's jobs as Hydra's own launchers do, and grouping those that can share an ensemble
(:mod:`._groups` runs the groups: one after another in this process, or in joblib's loky workers)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from neuromod.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LauncherSettings:
    """``hydra.launcher.*``, checked."""

    n_jobs: int
    max_members: int | None
    min_members: int
    pad_delays: bool = False

    @classmethod
    def checked(cls, n_jobs: Any, max_members: Any, min_members: Any, pad_delays: Any) -> LauncherSettings:
        def whole(name: str, value: Any, least: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"hydra.launcher.{name}={value!r}: give a whole number of at least {least}")
            return value

        if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs == -1:
            import os

            n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        n_jobs = whole("n_jobs", n_jobs, 1)  # (-1 was turned into the cores above)
        if max_members is not None:
            max_members = whole("max_members", max_members, 1)
        if not isinstance(pad_delays, bool):
            raise ConfigError(f"hydra.launcher.pad_delays={pad_delays!r}: give true or false")
        return cls(n_jobs, max_members, whole("min_members", min_members, 1), pad_delays)


@dataclass
class Job:
    """One job of the sweep: its number, overrides and composed config (Hydra's part included, with its
    run folder in ``hydra.runtime.output_dir``)."""

    idx: int
    overrides: list[str]
    config: DictConfig

    @property
    def run_dir(self) -> Path:
        return Path(str(self.config.hydra.runtime.output_dir))

    def task_config(self) -> DictConfig:
        """The config the task function receives (no ``hydra`` node)."""
        import copy

        task_cfg = copy.deepcopy(self.config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        return task_cfg


@dataclass
class Unit:
    """What one process runs: ``jobs`` as one ensemble (``ensemble``) or one solo run."""

    jobs: list[Job]
    ensemble: bool
    label: str = ""


def compose(hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str], idx: int) -> Job:
    """A job's config as Hydra's basic launcher composes it (job id and number ``idx``), with its run
    folder ``hydra.sweep.dir/hydra.sweep.subdir`` resolved as :func:`hydra.core.utils.run_job` does."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(sweep_config)
    try:
        output_dir = Path(str(OmegaConf.select(sweep_config, "hydra.sweep.dir")))
        output_dir = output_dir / str(OmegaConf.select(sweep_config, "hydra.sweep.subdir"))
        with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
            sweep_config.hydra.runtime.output_dir = str(output_dir.absolute())
    finally:
        HydraConfig.instance().cfg = previous
    return Job(idx, list(overrides), sweep_config)


def _group_key(job: Job) -> str | None:
    """What a job's ensemble must share beyond the run's settings (its environment), or None when it cannot
    join one (``hydra.job.chdir``: an ensemble's jobs share one working directory)."""
    hydra = job.config.hydra
    if hydra.job.get("chdir"):
        return None
    env = OmegaConf.to_container(hydra.job.env_set, resolve=True) if hydra.job.get("env_set") else {}
    return json.dumps(env, sort_keys=True, default=str)


def plan(jobs: Sequence[Job], settings: LauncherSettings) -> list[Unit]:
    """The ensembles (of at least ``min_members`` jobs that ``group_configs`` puts together, at most
    ``max_members``) and the solo jobs, ensembles first, in order of their first job."""
    from neuromod.ensemble.grouping import group_configs

    by_key: dict[str, list[tuple[Job, DictConfig]]] = {}
    solo: list[Job] = []
    for job in jobs:
        key = _group_key(job)
        resolved = None
        if key is not None:
            previous = HydraConfig.instance().cfg
            HydraConfig.instance().set_config(job.config)
            try:  # resolved now, under the job's own Hydra config (its `hydra:` interpolations)
                resolved = OmegaConf.create(OmegaConf.to_container(job.task_config(), resolve=True))
            except Exception:  # a config that cannot be resolved: main.py reports it, solo
                resolved = None
            finally:
                HydraConfig.instance().cfg = previous
        if resolved is None:
            solo.append(job)
        else:
            if not settings.pad_delays:  # no member's trials padded to another's longer delay
                key += json.dumps(OmegaConf.select(resolved, "task.max_delay", default=None), default=str)
            by_key.setdefault(key, []).append((job, resolved))
    units: list[Unit] = []
    for members in by_key.values():
        for group in group_configs([cfg for _, cfg in members], settings.max_members):
            group_jobs = [members[i][0] for i in group]
            if len(group_jobs) >= settings.min_members:
                units.append(Unit(group_jobs, ensemble=True))
            else:
                solo.extend(group_jobs)
    ensembles = sorted(units, key=lambda unit: unit.jobs[0].idx)
    for number, unit in enumerate(ensembles, start=1):
        unit.label = f"ensemble {number}/{len(ensembles)}"
    units = [*ensembles, *(Unit([job], ensemble=False) for job in sorted(solo, key=lambda job: job.idx))]
    if settings.n_jobs > 1:  # the longest first: the workers finish close together
        units.sort(key=_cost, reverse=True)
    return units


def _cost(unit: Unit) -> float:
    """A rough measure of a unit's training time, to start the longest first: steps x trial length x
    modulator size, per member, a member of an ensemble at a third of a solo run's."""

    def get(key: str, default: float) -> float:
        try:
            value = OmegaConf.select(unit.jobs[0].config, key, default=default)
        except Exception:  # (an interpolation that resolves only in the job)
            return default
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default

    per_member = (
        get("training.steps", 300)
        * (get("task.max_delay", 20) + 6)
        * (get("architecture.hidden_size", 64) + 4)
    )
    return per_member * len(unit.jobs) / (3 if unit.ensemble else 1)
