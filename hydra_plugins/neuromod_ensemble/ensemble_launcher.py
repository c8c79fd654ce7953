"""The ensemble launcher (``hydra/launcher=ensemble``): a sweep's batch of jobs, grouped into ensembles
where they can share one (:func:`neuromod.ensemble.grouping.group_configs`), the rest as solo runs; one
:class:`~hydra.core.utils.JobReturn` per job, in order, each with what ``main.py`` would return. The work
is :mod:`._plan` (composing and grouping) and :mod:`._groups` (running a group)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.neuromod_ensemble._groups import launch
from hydra_plugins.neuromod_ensemble._plan import LauncherSettings


class EnsembleLauncher(Launcher):
    """Trains a sweep's jobs as ensembles where they can (settings:
    :class:`~hydra_plugins.neuromod_ensemble.config.EnsembleLauncherConf`)."""

    def __init__(
        self, n_jobs: Any = 1, max_members: Any = None, min_members: Any = 2, pad_delays: Any = False
    ) -> None:
        self.options = {
            "n_jobs": n_jobs,
            "max_members": max_members,
            "min_members": min_members,
            "pad_delays": pad_delays,
        }
        self.settings: LauncherSettings | None = None
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # checked here rather than in __init__, whose errors Hydra wraps in a message of its own
        self.settings = LauncherSettings.checked(**self.options)
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None and self.settings is not None
        return launch(
            self.settings, self.hydra_context, self.task_function, self.config, job_overrides, initial_job_idx
        )
