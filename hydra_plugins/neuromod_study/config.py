"""The study sweeper's settings (``hydra/sweeper=study``) and its samplers (``hydra/sweeper/sampler=...``),
stored in Hydra's ConfigStore when Hydra discovers its plugins. Needs no Optuna: the settings compose
without the ``tune`` extra, and the sweeper says which extra to install when it starts."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

#: The sweeper class Hydra instantiates for ``hydra/sweeper=study``.
SWEEPER_TARGET = "hydra_plugins.neuromod_study.study_sweeper.StudySweeper"


@dataclass
class StudySweeperConf:
    """``hydra.sweeper.*`` of ``hydra/sweeper=study`` (docs/tuning.md)."""

    _target_: str = SWEEPER_TARGET
    # The sweeper builds the sampler itself (its seed depends on the study's progress).
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, "_self_"])

    #: An Optuna sampler given by ``_target_`` and its arguments (hydra/sweeper/sampler=tpe, random, ...).
    sampler: Any = MISSING
    #: ``maximize`` or ``minimize`` (a list of them for several objectives); by default what main.py returns.
    direction: Any = "${objective.direction}"
    #: Where the study is kept; null keeps it in memory (no resuming). Only the sweeper process opens it.
    storage: Any = "sqlite:///${hydra.sweep.dir}/study.db"
    study_name: str = "study"
    #: The study's total number of trials: a continued study runs only the trials still missing.
    n_trials: int = 20
    #: Trials proposed at a time and handed to the launcher together.
    n_jobs: int = 1
    #: Fraction of a batch's jobs that may raise (a crash, not a failed run: main.py returns
    #: objective.failed_value for those) before the study stops with the first job's error.
    max_failure_rate: float = 0.0
    #: The search space, one override per key: ``choice(...)``, ``range(...)``, ``interval(...)``,
    #: ``tag(log, interval(...))``; a plain value is fixed. The command line adds to it and replaces entries.
    params: dict[str, Any] | None = None


def _sampler(target: str, **arguments: Any) -> dict[str, Any]:
    return {"_target_": target, "seed": None, **arguments}


#: The samplers offered as ``hydra/sweeper/sampler=<name>``; any other Optuna sampler is one
#: ``hydra.sweeper.sampler._target_=...`` away. Arguments not listed are added with ``+``, e.g.
#: ``+hydra.sweeper.sampler.multivariate=true``.
SAMPLERS = {
    "tpe": _sampler("optuna.samplers.TPESampler", n_startup_trials=10),
    "random": _sampler("optuna.samplers.RandomSampler"),
    "cmaes": _sampler("optuna.samplers.CmaEsSampler"),
    "gp": _sampler("optuna.samplers.GPSampler"),
    "nsgaii": _sampler("optuna.samplers.NSGAIISampler"),
    "qmc": _sampler("optuna.samplers.QMCSampler"),
    # Every combination of the search space once (it must be discrete: choice or range).
    "grid": _sampler("optuna.samplers.GridSampler", _partial_=True),
}


def register() -> None:
    """Store the sweeper's settings and the samplers in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="neuromod")
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="neuromod")


register()
